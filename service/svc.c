/*
 * svc.c: the service process. The SCM starts "iocp-service.exe service --name <name>"; main
 * calls StartServiceCtrlDispatcherW at once, and service_main runs the server on the
 * dispatcher's ServiceMain thread, which also takes and releases the instance mutex.
 *
 *   START_PENDING, checkpoints 1, 2, ... (parameters read, log file, mutex, listener, pipe)
 *   RUNNING (accepts stop, shutdown, preshutdown)
 *   STOP_PENDING, a checkpoint about every 500 ms while connections drain
 *   STOPPED, only after everything is released (Wine may end the process right then)
 *
 * A start that fails reports STOPPED with a specific Win32 exit code (WSAEADDRINUSE for a
 * port in use, ERROR_INVALID_PARAMETER for a bad parameter, ERROR_SERVICE_ALREADY_RUNNING
 * when another instance holds the mutex) and writes the reason to the Event Log and the log
 * file; `iocp-service start` prints it.
 */
#include "svc.h"

#include <string.h>

#include "messages.h"

#define START_WAIT_HINT_MS 10000
#define STOP_WAIT_HINT_MS  5000

static struct {
    svc_options opt;
    SERVICE_STATUS_HANDLE handle;
    CRITICAL_SECTION lock; /* status and checkpoint: ServiceMain vs the handler thread */
    SERVICE_STATUS status;
    HANDLE stop_event;
    HANDLE paramchange_event; /* auto-reset: SERVICE_CONTROL_PARAMCHANGE for the main thread */
} s;

static void report(DWORD state, DWORD win32_exit, DWORD wait_hint)
{
    EnterCriticalSection(&s.lock);
    s.status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    s.status.dwCurrentState = state;
    s.status.dwWaitHint = wait_hint;
    s.status.dwControlsAccepted = state == SERVICE_RUNNING
                                      ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN |
                                            SERVICE_ACCEPT_PRESHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE
                                      : 0;
    if (win32_exit == ERROR_SERVICE_SPECIFIC_ERROR) {
        s.status.dwWin32ExitCode = ERROR_SERVICE_SPECIFIC_ERROR;
        s.status.dwServiceSpecificExitCode = SVC_EXIT_CANNOT_START;
    } else {
        s.status.dwWin32ExitCode = win32_exit;
        s.status.dwServiceSpecificExitCode = 0;
    }
    if (state == SERVICE_RUNNING || state == SERVICE_STOPPED)
        s.status.dwCheckPoint = 0;
    else
        s.status.dwCheckPoint++;
    SetServiceStatus(s.handle, &s.status);
    LeaveCriticalSection(&s.lock);
}

/* svc_host's progress callback: one more checkpoint in the current pending state. */
static void progress(void *user)
{
    DWORD hint = (DWORD)(uintptr_t)user;
    EnterCriticalSection(&s.lock);
    DWORD state = s.status.dwCurrentState;
    LeaveCriticalSection(&s.lock);
    report(state, NO_ERROR, hint);
}

static void report_running(void)
{
    report(SERVICE_RUNNING, NO_ERROR, 0);
}

static void report_stopping(void)
{
    report(SERVICE_STOP_PENDING, NO_ERROR, STOP_WAIT_HINT_MS);
}

static DWORD WINAPI handler(DWORD control, DWORD event_type, void *event_data, void *context)
{
    (void)event_type;
    (void)event_data;
    (void)context;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
    case SERVICE_CONTROL_PRESHUTDOWN:
        /* Say "stopping" at once; ServiceMain does the work and the checkpoints. */
        report(SERVICE_STOP_PENDING, NO_ERROR, STOP_WAIT_HINT_MS);
        SetEvent(s.stop_event);
        return NO_ERROR;
    case SERVICE_CONTROL_PARAMCHANGE:
        /* Reading the registry and reconfiguring is the main thread's (configure.c). */
        SetEvent(s.paramchange_event);
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        return NO_ERROR;
    default:
        return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

/* Start parameters (`sc start NAME --port 0`, or "Start parameters" in services.msc): server
 * options for this start only, over the Parameters, as "--flag value" (a switch alone). 0, or
 * -1 with err set. The TLS password is not taken here: start parameters are no secret. */
static int apply_start_args(DWORD argc, wchar_t **argv, svc_server_options *o, char *err,
                            size_t err_size)
{
    char arg[SVC_PATH_MAX * 3], value[SVC_PATH_MAX * 3], why[300];
    for (DWORD i = 1; i < argc; i++) {
        const svc_server_opt *def = NULL;
        svc_narrow(argv[i], arg, sizeof arg);
        for (size_t k = 0; k < svc_server_opt_count && def == NULL; k++)
            if (strcmp(arg, svc_server_opts[k].flag) == 0)
                def = &svc_server_opts[k];
        if (def == NULL || def->kind == SVC_OPT_SECRET) {
            snprintf(err, err_size,
                     "start parameter '%.64s' is not a server option (see "
                     "iocp-service --help)",
                     arg);
            return -1;
        }
        if (def->kind == SVC_OPT_SWITCH) {
            snprintf(value, sizeof value, "1");
        } else if (i + 1 < argc) {
            svc_narrow(argv[++i], value, sizeof value);
        } else {
            snprintf(err, err_size, "start parameter %s needs a value", def->flag);
            return -1;
        }
        if (svc_server_opt_set(o, def, value, why, sizeof why) != 0) {
            snprintf(err, err_size, "start parameter %s", why);
            return -1;
        }
    }
    if (svc_server_options_check(o, why, sizeof why) != 0) {
        snprintf(err, err_size, "start parameters: %s", why);
        return -1;
    }
    return 0;
}

static void WINAPI service_main(DWORD argc, wchar_t **argv)
{
    /* The SCM passes the service's own name first: it wins over --name. */
    if (argc >= 1 && argv != NULL && argv[0] != NULL && argv[0][0] != L'\0') {
        char name[SVC_NAME_MAX + 1];
        svc_narrow(argv[0], name, sizeof name);
        if (svc_name_valid(name))
            snprintf(s.opt.name, sizeof s.opt.name, "%s", name);
    }
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(s.opt.name, wname, sizeof wname / sizeof wname[0]);
    s.handle = RegisterServiceCtrlHandlerExW(wname, handler, NULL);
    if (s.handle == NULL)
        return; /* nothing to report to: the SCM sees the process end */
    report(SERVICE_START_PENDING, NO_ERROR, START_WAIT_HINT_MS);
    svc_log_init(s.opt.name, 0);
    /* Before any file is made: the log's DACL names NT SERVICE\<name> (safefile.c). */
    svc_identity_set_service(s.opt.name);

    DWORD win32 = NO_ERROR;
    char err[600];
    wchar_t path[200];
    svc_params_path(s.opt.name, path, sizeof path / sizeof path[0]);
    DWORD pe = svc_params_read(HKEY_LOCAL_MACHINE, path, &s.opt.server, err, sizeof err);
    if (pe == ERROR_FILE_NOT_FOUND) {
        /* Made by `sc create` alone: the defaults are a whole configuration. */
        char note[400];
        snprintf(note, sizeof note,
                 "no Parameters key (%s): running on the defaults; `iocp-service install` "
                 "writes one, or add values under it",
                 err);
        svc_event(IOCP_LOG_WARN, MSG_WARNING, note);
        pe = NO_ERROR;
    }
    if (pe == NO_ERROR && argc > 1 && argv != NULL &&
        apply_start_args(argc, argv, &s.opt.server, err, sizeof err) != 0)
        pe = ERROR_INVALID_PARAMETER;
    if (pe != NO_ERROR) {
        /* Open the log file anyway if that parameter was read: the reason belongs there. */
        SecureZeroMemory(s.opt.server.tls_password, sizeof s.opt.server.tls_password);
        if (s.opt.server.log_file[0] != '\0')
            svc_log_open_file(s.opt.server.log_file);
        char why[700];
        snprintf(why, sizeof why, "bad configuration: %s", err);
        svc_event(IOCP_LOG_ERROR, MSG_START_FAILED, why);
        svc_log_close();
        report(SERVICE_STOPPED, ERROR_INVALID_PARAMETER, 0);
        return;
    }
    progress((void *)(uintptr_t)START_WAIT_HINT_MS);

    char note[400];
    if (svc_supervised(&s.opt.server, note, sizeof note)) {
        /* supervisor.c: this process holds the listener, workers serve. */
        svc_supervisor_scm scm = {progress,       (void *)(uintptr_t)START_WAIT_HINT_MS,
                                  report_running, report_stopping,
                                  s.stop_event,   s.paramchange_event};
        DWORD code = svc_supervisor_run(&s.opt, &scm);
        svc_log_close();
        report(SERVICE_STOPPED, code, 0);
        return;
    }
    if (note[0] != '\0')
        svc_event(IOCP_LOG_WARN, MSG_WARNING, note);

    svc_host host;
    int started = svc_host_start(&host, &s.opt, "service", progress,
                                 (void *)(uintptr_t)START_WAIT_HINT_MS, &win32);
    SecureZeroMemory(s.opt.server.tls_password, sizeof s.opt.server.tls_password); /* used */
    if (started != SVC_EXIT_OK) {
        svc_log_close();
        report(SERVICE_STOPPED, win32 != NO_ERROR ? win32 : ERROR_SERVICE_SPECIFIC_ERROR, 0);
        return;
    }
    report(SERVICE_RUNNING, NO_ERROR, 0);

    int failed = 0;
    HANDLE wake[2] = {s.stop_event, s.paramchange_event};
    DWORD woke;
    while ((woke = WaitForMultipleObjects(2, wake, FALSE, 1000)) != WAIT_OBJECT_0) {
        if (woke == WAIT_OBJECT_0 + 1)
            svc_configure_apply(&host);
        if (svc_host_tick(&host) != 0) {
            svc_event(IOCP_LOG_ERROR, MSG_ERROR, "the server stopped on its own");
            failed = 1;
            report(SERVICE_STOP_PENDING, NO_ERROR, STOP_WAIT_HINT_MS);
            break;
        }
        if (host.drain_requested) {
            /* `iocp-service drain`: a stop as the SCM's, asked for over the status pipe. */
            report(SERVICE_STOP_PENDING, NO_ERROR, STOP_WAIT_HINT_MS);
            break;
        }
    }
    svc_host_stop(&host, progress, (void *)(uintptr_t)STOP_WAIT_HINT_MS);
    svc_log_close();
    report(SERVICE_STOPPED, failed ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR, 0);
}

int svc_service_dispatch(const svc_options *opt)
{
    static wchar_t table_name[] = L"iocp-service"; /* ignored for an own-process service */
    SERVICE_TABLE_ENTRYW table[] = {{table_name, service_main}, {NULL, NULL}};

    s.opt = *opt;
    InitializeCriticalSection(&s.lock);
    s.stop_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    s.paramchange_event = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (s.stop_event == NULL || s.paramchange_event == NULL)
        return SVC_EXIT_SYSTEM;
    if (!StartServiceCtrlDispatcherW(table)) {
        DWORD e = GetLastError();
        char text[200];
        if (e == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
            fprintf(stderr, "iocp-service: the 'service' command is for the Service Control "
                            "Manager; in a console use 'run' (or 'start' for the installed "
                            "service)\n");
            return SVC_EXIT_USAGE;
        }
        fprintf(stderr, "iocp-service: StartServiceCtrlDispatcher failed: %s\n",
                svc_win32_text(e, text, sizeof text));
        return SVC_EXIT_SYSTEM;
    }
    return SVC_EXIT_OK;
}
