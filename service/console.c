/*
 * console.c: `run`, the server in the foreground. Prints "listening on <address>" on stdout
 * once the listener accepts (scripts parse it), then runs until Ctrl+C, Ctrl+Break or the
 * console closing, and stops gracefully: drain, release, exit 0.
 */
#include "svc.h"

static HANDLE stop_event; /* set by the console control handler */
static HANDLE done_event; /* set when the stop has finished (the close handler waits) */

static BOOL WINAPI on_console_ctrl(DWORD type)
{
    switch (type) {
    case CTRL_C_EVENT:
    case CTRL_BREAK_EVENT:
        SetEvent(stop_event);
        return TRUE;
    case CTRL_CLOSE_EVENT:
    case CTRL_LOGOFF_EVENT:
    case CTRL_SHUTDOWN_EVENT:
        /* The process ends when this handler returns (after about 5 s at most): hold it
         * until the drain has finished, or as long as the system allows. */
        SetEvent(stop_event);
        WaitForSingleObject(done_event, 20000);
        return TRUE;
    default:
        return FALSE;
    }
}

int svc_console_run(svc_options *opt)
{
    svc_host host;
    DWORD win32 = 0;
    int rc;

    stop_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    done_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (stop_event == NULL || done_event == NULL) {
        fprintf(stderr, "iocp-service: cannot create an event (Win32 %lu)\n",
                (unsigned long)GetLastError());
        return SVC_EXIT_SYSTEM;
    }
    svc_log_init(NULL, 1);
    SetConsoleCtrlHandler(on_console_ctrl, TRUE);

    rc = svc_host_start(&host, opt, "console", NULL, NULL, &win32);
    SecureZeroMemory(opt->server.tls_password, sizeof opt->server.tls_password); /* used */
    if (rc != SVC_EXIT_OK) {
        /* The reason is already on stderr (and in the log file). */
        svc_log_close();
        SetEvent(done_event);
        return rc;
    }
    printf("listening on %s%s\n", svc_host_address(&host), opt->server.udp_only ? " (udp)" : "");
    if (opt->server.udp)
        printf("udp on %s\n", iocp_engine_udp_address(host.engine));
    fflush(stdout);

    int failed = 0;
    while (WaitForSingleObject(stop_event, 1000) == WAIT_TIMEOUT) {
        if (svc_host_tick(&host) != 0) {
            svc_log(IOCP_LOG_ERROR, "the server stopped on its own");
            failed = 1;
            break;
        }
        if (host.drain_requested)
            break; /* `iocp-service drain`: the stop below drains */
    }
    svc_host_stop(&host, NULL, NULL);
    svc_log_close();
    printf("stopped\n");
    fflush(stdout);
    SetEvent(done_event);
    return failed ? SVC_EXIT_SYSTEM : SVC_EXIT_OK;
}
