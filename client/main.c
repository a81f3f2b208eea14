/*
 * iocp-client: the console client and load generator of the iocp engine.
 *
 *   iocp-client HOST PORT MESSAGE...     send each message, print each echo
 *   iocp-client HOST PORT                interactive: lines from standard input
 *   iocp-client HOST PORT --load ...     load generator with verified echoes
 *
 * main parses the command line and hands over to one of the modes (modes.h); every mode
 * returns an exit code from exit_codes.h.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "exit_codes.h"
#include "modes.h"
#include "sys.h"

#include "iocp/iocp.h"

static int client_main(int argc, char **argv)
{
    client_args args;
    client_args_init(&args);
    char err[512];
    if (client_args_parse(argc, argv, &args, err, sizeof err) != 0) {
        client_errorf("%s", err);
        client_args_free(&args);
        return CLIENT_EXIT_USAGE;
    }
    int rc = CLIENT_EXIT_OK;
    if (args.help) {
        size_t need = client_args_help(NULL, 0) + 1;
        char *text = malloc(need);
        if (text != NULL) {
            client_args_help(text, need);
            fputs(text, stdout);
            free(text);
        }
    } else if (args.version) {
        printf("iocp-client %s\n", iocp_version());
    } else {
        client_binary_stdio();
        if (args.udp)
            rc = args.mode == CLIENT_MODE_LOAD ? client_run_udp_load(&args)
                                               : client_run_udp_message(&args);
        else
            switch (args.mode) {
            case CLIENT_MODE_MESSAGE:
                rc = client_run_message(&args);
                break;
            case CLIENT_MODE_INTERACTIVE:
                rc = client_run_interactive(&args);
                break;
            case CLIENT_MODE_LOAD:
                rc = client_run_load(&args);
                break;
            }
    }
    fflush(stdout);
    client_args_free(&args);
    return rc;
}

/* wmain: arguments arrive as UTF-16 and are passed on as UTF-8, so a message in any script
 * goes on the wire as UTF-8. */
int wmain(int argc, wchar_t **wargv)
{
    iocp_install_crash_guard();
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    if (argv == NULL)
        return CLIENT_EXIT_OTHER;
    for (int i = 0; i < argc; i++) {
        int n = WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, NULL, 0, NULL, NULL);
        argv[i] = malloc(n > 0 ? (size_t)n : 1);
        if (argv[i] == NULL)
            return CLIENT_EXIT_OTHER;
        if (n <= 0 || WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, argv[i], n, NULL, NULL) <= 0)
            argv[i][0] = '\0';
    }
    int rc = client_main(argc, argv);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    return rc;
}
