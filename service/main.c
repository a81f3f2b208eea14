/*
 * main.c: iocp-service, the echo server as a console program and as a Windows service.
 * Reads the command line (UTF-16, converted to UTF-8 once here), then hands over to the one
 * file that does the command. Exit codes: the table in svc.h and README.md.
 */
#include "svc.h"

#include "secret_input.h"

#include <shellapi.h>
#include <stdlib.h>
#include <string.h>

/* The PFX's password for run and install: from the command line (with a warning), or asked
 * for like an account's (echo off on a console, else one line of standard input). 0 or -1. */
static int tls_password(svc_options *opt)
{
    char who[SVC_PATH_MAX + 20], err[SVC_PATH_MAX + 200];
    if (opt->server.tls_pfx[0] == '\0')
        return 0;
    if (opt->tls_password_given == 1) {
        fprintf(stderr, "iocp-service: warning: a password on the command line can be read by "
                        "other programs, process-creation auditing and shell history; use "
                        "--tls-password - (or leave it out) to be asked for it\n");
        return 0;
    }
    snprintf(who, sizeof who, "the PFX file %s", opt->server.tls_pfx);
    if (secret_get(who, opt->server.tls_password, sizeof opt->server.tls_password, err,
                   sizeof err) != NO_ERROR) {
        fprintf(stderr, "iocp-service: %s\n", err);
        return -1;
    }
    return 0;
}

static int dispatch(svc_options *opt)
{
    switch (opt->command) {
    case SVC_CMD_SERVICE:
        return svc_service_dispatch(opt);
    case SVC_CMD_RUN:
        if (tls_password(opt) != 0)
            return SVC_EXIT_USAGE;
        return svc_console_run(opt);
    case SVC_CMD_INSTALL: {
        /* The service would refuse to start with these: say so now, not at the first start. */
        char why[600];
        if (svc_server_memory_check(&opt->server, svc_physical_memory(), why, sizeof why) != 0) {
            fprintf(stderr, "iocp-service: not installed: %s\n", why);
            return SVC_EXIT_CANNOT_START;
        }
        if (tls_password(opt) != 0)
            return SVC_EXIT_USAGE;
        /* What the service would take by default, written down. */
        if (opt->server.tls_cert[0] != '\0' && opt->server.tls_store == SVC_TLS_STORE_DEFAULT)
            opt->server.tls_store = SVC_TLS_STORE_MACHINE;
        return svc_scm_install(opt);
    }
    case SVC_CMD_UNINSTALL:
        return svc_scm_uninstall(opt);
    case SVC_CMD_START:
        return svc_scm_start(opt);
    case SVC_CMD_STOP:
        return svc_scm_stop(opt);
    case SVC_CMD_STATUS:
        return svc_scm_status(opt);
    case SVC_CMD_DRAIN:
        return svc_drain(opt);
    case SVC_CMD_LIST:
        return svc_list(opt);
    case SVC_CMD_CONFIGURE:
        return svc_configure(opt);
    case SVC_CMD_UPGRADE:
        return svc_upgrade(opt);
    case SVC_CMD_HELP:
        svc_usage(stdout);
        return SVC_EXIT_OK;
    case SVC_CMD_VERSION:
        printf("iocp-service %s\n", iocp_version());
        return SVC_EXIT_OK;
    default:
        svc_usage(stderr);
        return SVC_EXIT_USAGE;
    }
}

int main(void)
{
    iocp_install_crash_guard();

    int argc = 0;
    wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &argc);
    if (wargv == NULL) {
        fprintf(stderr, "iocp-service: cannot read the command line (Win32 %lu)\n",
                (unsigned long)GetLastError());
        return SVC_EXIT_SYSTEM;
    }
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    for (int i = 0; argv != NULL && i < argc; i++) {
        int n = WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, NULL, 0, NULL, NULL);
        argv[i] = malloc(n > 0 ? (size_t)n : 1);
        if (argv[i] == NULL) {
            argv = NULL;
            break;
        }
        argv[i][0] = '\0';
        if (n > 0)
            WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, argv[i], n, NULL, NULL);
    }
    LocalFree(wargv);
    if (argv == NULL) {
        fprintf(stderr, "iocp-service: out of memory\n");
        return SVC_EXIT_SYSTEM;
    }

    /* The hidden verb of a supervised service's worker process (worker_proc.c). */
    if (argc >= 2 && strcmp(argv[1], "worker") == 0)
        return svc_worker_main(argc, argv);

    static svc_options opt; /* large: not on the stack */
    char err[400];
    if (svc_options_parse(argc, argv, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "iocp-service: %s\nrun 'iocp-service --help' for usage\n", err);
        return SVC_EXIT_USAGE;
    }

    int rc = dispatch(&opt);
    SecureZeroMemory(opt.server.tls_password, sizeof opt.server.tls_password);
    return rc;
}
