/*
 * scm.c: the Service Control Manager side: install, uninstall, start, stop, status. Each
 * prints one clear result and returns an exit code from the table in svc.h.
 *
 * Waiting for a state polls QueryServiceStatusEx (bounded by --timeout): `net start` style
 * notifications are not needed, and under Wine they return before the state is reached.
 */
#include "svc.h"

#include <string.h>

#include "safe_text.h"

#define START_TIMEOUT_S 30
#define STOP_EXTRA_S    30 /* stop waits the drain timeout plus this */
/* Longer than a pipe session lives: with every instance held by other clients, one comes
 * free within SVC_PIPE_SESSION_MS. */
#define PIPE_TIMEOUT_MS   (SVC_PIPE_SESSION_MS + 3000)
#define PRESHUTDOWN_EXTRA 10000 /* preshutdown timeout = drain + this */

static const char *state_name(DWORD state)
{
    switch (state) {
    case SERVICE_STOPPED:
        return "STOPPED";
    case SERVICE_START_PENDING:
        return "START_PENDING";
    case SERVICE_STOP_PENDING:
        return "STOP_PENDING";
    case SERVICE_RUNNING:
        return "RUNNING";
    case SERVICE_CONTINUE_PENDING:
        return "CONTINUE_PENDING";
    case SERVICE_PAUSE_PENDING:
        return "PAUSE_PENDING";
    case SERVICE_PAUSED:
        return "PAUSED";
    default:
        return "UNKNOWN";
    }
}

/* Prints "what: reason" for a failed call and returns the exit code for it. */
static int fail(const char *what, DWORD code)
{
    char text[300];
    svc_win32_text(code, text, sizeof text);
    switch (code) {
    case ERROR_ACCESS_DENIED:
        fprintf(stderr, "iocp-service: %s: %s\n", what, text);
        fprintf(stderr, "iocp-service: this needs administrator rights: run it from an "
                        "elevated prompt (Run as administrator)\n");
        return SVC_EXIT_ACCESS_DENIED;
    case ERROR_SERVICE_DOES_NOT_EXIST:
        fprintf(stderr, "iocp-service: %s: no such service is installed\n", what);
        return SVC_EXIT_NAME;
    case ERROR_SERVICE_MARKED_FOR_DELETE:
        fprintf(stderr,
                "iocp-service: %s: the service is marked for deletion (close "
                "services.msc or other programs holding it)\n",
                what);
        return SVC_EXIT_NAME;
    default:
        fprintf(stderr, "iocp-service: %s: %s\n", what, text);
        return SVC_EXIT_SYSTEM;
    }
}

static SC_HANDLE open_scm(DWORD access, int *rc)
{
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, access);
    if (scm == NULL)
        *rc = fail("cannot open the Service Control Manager", GetLastError());
    return scm;
}

static SC_HANDLE open_service(SC_HANDLE scm, const char *name, DWORD access, int *rc)
{
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    SC_HANDLE svc = OpenServiceW(scm, wname, access);
    if (svc == NULL) {
        char what[120];
        snprintf(what, sizeof what, "service '%s'", name);
        *rc = fail(what, GetLastError());
    }
    return svc;
}

static int query(SC_HANDLE svc, SERVICE_STATUS_PROCESS *st)
{
    DWORD needed;
    return QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)st, sizeof *st, &needed) ? 0
                                                                                              : -1;
}

/* Polls until the state is neither pending state given, or the deadline passes. */
static int wait_state(SC_HANDLE svc, DWORD pending1, DWORD pending2, uint32_t timeout_s,
                      SERVICE_STATUS_PROCESS *st)
{
    uint64_t deadline = svc_now_ms() + (uint64_t)timeout_s * 1000u;
    for (;;) {
        if (query(svc, st) != 0)
            return -1;
        if (st->dwCurrentState != pending1 && st->dwCurrentState != pending2)
            return 0;
        if (svc_now_ms() >= deadline)
            return 1;
        Sleep(50);
    }
}

/* The exit code a stopped service reported, as one line. */
static const char *exit_reason(const SERVICE_STATUS_PROCESS *st, char *buf, size_t size)
{
    if (st->dwWin32ExitCode == ERROR_SERVICE_SPECIFIC_ERROR) {
        snprintf(buf, size, "service-specific error %lu",
                 (unsigned long)st->dwServiceSpecificExitCode);
        return buf;
    }
    return svc_win32_text(st->dwWin32ExitCode, buf, size);
}

static void self_path(wchar_t *out, size_t count)
{
    DWORD n = GetModuleFileNameW(NULL, out, (DWORD)count);
    if (n == 0 || n >= count)
        out[0] = L'\0';
}

/* Reads the server options the service will use (for the drain timeout and log file). */
static void read_params(const char *name, svc_server_options *o)
{
    wchar_t path[200];
    char err[300];
    svc_server_options_init(o);
    svc_params_path(name, path, sizeof path / sizeof path[0]);
    svc_params_read(HKEY_LOCAL_MACHINE, path, o, err, sizeof err);
    SecureZeroMemory(o->tls_password, sizeof o->tls_password); /* not needed here */
}

/* ---- install --------------------------------------------------------------------------- */

/* An optional configuration call: "not supported here" (an old Windows, or Wine) is a
 * warning; any other failure undoes the install. */
static int config2(SC_HANDLE svc, DWORD level, void *info, const char *what)
{
    if (ChangeServiceConfig2W(svc, level, info)) {
        printf("  %s: set\n", what);
        return 0;
    }
    DWORD e = GetLastError();
    char text[300];
    svc_win32_text(e, text, sizeof text);
    if (e == ERROR_INVALID_LEVEL || e == ERROR_CALL_NOT_IMPLEMENTED || e == ERROR_NOT_SUPPORTED) {
        printf("  %s: not supported by this system (%s)\n", what, text);
        return 0;
    }
    fprintf(stderr, "iocp-service: cannot set %s: %s\n", what, text);
    return -1;
}

/* Refuses (1) an executable others may change, unless allowed; then it is a warning. */
static int check_location(const wchar_t *exe, int allow)
{
    char msg[1200];
    int rc = svc_check_exe_location(exe, msg, sizeof msg);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        /* Cannot tell: say so, and let the administrator decide with the flag. */
        fprintf(stderr, "iocp-service: %s%s\n", allow ? "warning: " : "", msg);
    } else {
        fprintf(stderr,
                "iocp-service: %s%s\n"
                "iocp-service: the service would run this file as its account at every start: "
                "whoever may change it, or add a DLL beside it, gets their code run too\n",
                allow ? "warning: " : "", msg);
    }
    if (allow)
        return 0;
    fprintf(stderr, "iocp-service: not installed. Copy iocp-service.exe to a folder only "
                    "administrators may change (for example C:\\Program Files\\iocp-service) "
                    "and run install from there, or pass --allow-unsafe-location to install "
                    "anyway\n");
    return 1;
}

int svc_scm_install(const svc_options *opt)
{
    int rc = SVC_EXIT_OK;
    SC_HANDLE scm = NULL, svc = NULL;
    wchar_t exe[SVC_PATH_MAX], image[SVC_PATH_MAX + 100], wname[SVC_NAME_MAX + 1];
    wchar_t display[SVC_TEXT_MAX], description[SVC_TEXT_MAX * 2], account[SVC_TEXT_MAX];
    wchar_t password[SVC_TEXT_MAX], params[200];
    char text[300];

    self_path(exe, sizeof exe / sizeof exe[0]);
    if (exe[0] == L'\0') {
        fprintf(stderr, "iocp-service: cannot find this program's path\n");
        return SVC_EXIT_SYSTEM;
    }
    if (check_location(exe, opt->allow_unsafe_location) != 0)
        return SVC_EXIT_UNSAFE;
    if (opt->password_given) {
        fprintf(stderr, "iocp-service: warning: a password on the command line can be read by "
                        "other programs, process-creation auditing and shell history; leave "
                        "--password out to be asked for it\n");
        svc_widen(opt->password, password, sizeof password / sizeof password[0]);
    } else if (!svc_account_is_builtin(opt->account)) {
        char typed[SVC_TEXT_MAX];
        if (svc_get_password(opt->account, typed, sizeof typed, text, sizeof text) != 0) {
            fprintf(stderr, "iocp-service: %s\n", text);
            return SVC_EXIT_USAGE;
        }
        svc_widen(typed, password, sizeof password / sizeof password[0]);
        SecureZeroMemory(typed, sizeof typed);
    } else {
        password[0] = L'\0'; /* the built-in accounts have none */
    }
    svc_widen(opt->name, wname, sizeof wname / sizeof wname[0]);
    svc_widen(opt->display_name, display, sizeof display / sizeof display[0]);
    svc_widen(opt->description, description, sizeof description / sizeof description[0]);
    svc_widen(opt->account, account, sizeof account / sizeof account[0]);
    /* The SCM runs this; main sees "service" and calls StartServiceCtrlDispatcherW. */
    swprintf(image, sizeof image / sizeof image[0], L"\"%ls\" service --name %ls", exe, wname);
    image[sizeof image / sizeof image[0] - 1] = L'\0';

    scm = open_scm(SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE, &rc);
    if (scm == NULL)
        return rc;
    DWORD start = opt->start_type == SVC_START_DEMAND ? SERVICE_DEMAND_START : SERVICE_AUTO_START;
    svc = CreateServiceW(scm, wname, display, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS, start,
                         SERVICE_ERROR_NORMAL, image, NULL, NULL, NULL, account,
                         /* NULL for a virtual or managed account, "" for the built-in ones,
                          * as CreateServiceW documents */
                         svc_account_password_null(opt->account) ? NULL : password);
    SecureZeroMemory(password, sizeof password);
    if (svc == NULL) {
        DWORD e = GetLastError();
        if (e == ERROR_SERVICE_EXISTS || e == ERROR_DUPLICATE_SERVICE_NAME) {
            fprintf(stderr,
                    "iocp-service: a service named '%s' already exists%s: remove it first "
                    "(iocp-service uninstall --name %s) or choose another --name\n",
                    opt->name, e == ERROR_DUPLICATE_SERVICE_NAME ? " (as a display name)" : "",
                    opt->name);
            rc = SVC_EXIT_NAME;
        } else {
            char what[120];
            snprintf(what, sizeof what, "cannot install service '%s'", opt->name);
            rc = fail(what, e);
        }
        CloseServiceHandle(scm);
        return rc;
    }
    printf("installed service '%s' (\"%s\")\n", opt->name, opt->display_name);
    printf("  command: %ls\n", image);
    printf("  start: %s, account: %s\n", svc_start_type_name(opt->start_type), opt->account);

    svc_params_path(opt->name, params, sizeof params / sizeof params[0]);
    SERVICE_DESCRIPTIONW desc = {description};
    /* Restart on every failure, sooner first (svc_failure_schedule), the count forgotten
     * after an hour up; and a stop with an error (a port taken at boot, a bad parameter)
     * counts as a failure too, not only a crash. */
    SC_ACTION actions[SVC_FAILURE_STEPS];
    SERVICE_FAILURE_ACTIONSW failure;
    svc_failure_schedule(opt->restart_delay_s, actions, &failure);
    SERVICE_FAILURE_ACTIONS_FLAG non_crash = {TRUE};
    SERVICE_PRESHUTDOWN_INFO pre = {opt->server.drain_timeout_s * 1000u + PRESHUTDOWN_EXTRA};
    SERVICE_DELAYED_AUTO_START_INFO delayed = {TRUE};
    /* Least privilege: the process needs none of its account's privileges beyond change
     * notification; the SCM drops the others from its token. */
    static wchar_t privileges[] = L"SeChangeNotifyPrivilege\0";
    SERVICE_REQUIRED_PRIVILEGES_INFOW priv = {privileges};
    /* NT SERVICE\<name> in the token: the mutex and the pipe admit this service alone, not
     * every service that runs as LocalService. */
    SERVICE_SID_INFO sid_type = {SERVICE_SID_TYPE_UNRESTRICTED};
    char what[200];
    svc_failure_text(&failure, what, sizeof what);
    if (config2(svc, SERVICE_CONFIG_DESCRIPTION, &desc, "description") != 0 ||
        config2(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &failure, what) != 0 ||
        config2(svc, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &non_crash,
                "failure actions also when it stops with an error (not only a crash)") != 0 ||
        config2(svc, SERVICE_CONFIG_PRESHUTDOWN_INFO, &pre, "preshutdown timeout") != 0 ||
        config2(svc, SERVICE_CONFIG_REQUIRED_PRIVILEGES_INFO, &priv, "required privileges") != 0 ||
        config2(svc, SERVICE_CONFIG_SERVICE_SID_INFO, &sid_type, "per-service SID") != 0 ||
        (opt->start_type == SVC_START_DELAYED &&
         config2(svc, SERVICE_CONFIG_DELAYED_AUTO_START_INFO, &delayed, "delayed auto-start") !=
             0)) {
        rc = SVC_EXIT_SYSTEM;
        goto undo;
    }

    /* The key first, private (it may hold the TLS password), then its values. */
    DWORD e = svc_params_create_private(HKEY_LOCAL_MACHINE, params, opt->name);
    if (e == NO_ERROR)
        e = svc_params_write(HKEY_LOCAL_MACHINE, params, &opt->server);
    if (e != NO_ERROR) {
        snprintf(what, sizeof what, "cannot write the parameters");
        rc = fail(what, e);
        goto undo;
    }
    printf("  parameters: HKLM\\%ls (readable by SYSTEM, administrators and NT SERVICE\\%s "
           "only)\n",
           params, opt->name);
    for (size_t i = 0; i < svc_server_opt_count; i++) {
        char value[SVC_PATH_MAX];
        char name[64];
        svc_server_opt_get(&opt->server, &svc_server_opts[i], value, sizeof value);
        svc_narrow(svc_server_opts[i].value, name, sizeof name);
        printf("    %s = %s\n", name, value);
    }

    e = svc_eventlog_register(opt->name, exe);
    if (e != NO_ERROR) {
        rc = fail("cannot register the Event Log source", e);
        goto undo;
    }
    printf("  event log source: Application\\%s\n", opt->name);
    printf("service '%s' installed; start it with: iocp-service start --name %s\n", opt->name,
           opt->name);
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return SVC_EXIT_OK;

undo:
    svc_params_delete(HKEY_LOCAL_MACHINE, params);
    svc_eventlog_unregister(opt->name);
    if (!DeleteService(svc))
        fprintf(stderr, "iocp-service: could not undo the install: %s\n",
                svc_win32_text(GetLastError(), text, sizeof text));
    else
        fprintf(stderr, "iocp-service: install undone\n");
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return rc;
}

/* ---- stop (also the first half of uninstall) ------------------------------------------- */

/* Asks the service to stop and waits. Returns an exit code; prints the result. */
static int stop_and_wait(SC_HANDLE svc, const char *name, uint32_t timeout_s)
{
    SERVICE_STATUS_PROCESS st;
    char text[300];
    memset(&st, 0, sizeof st);
    if (query(svc, &st) != 0)
        return fail("cannot query the service", GetLastError());
    if (st.dwCurrentState == SERVICE_STOPPED) {
        printf("service '%s' is not running\n", name);
        return SVC_EXIT_OK;
    }
    if (st.dwCurrentState == SERVICE_START_PENDING) {
        /* Stop is not accepted while starting: let the start finish first. */
        if (wait_state(svc, SERVICE_START_PENDING, SERVICE_START_PENDING, timeout_s, &st) != 0) {
            fprintf(stderr, "iocp-service: service '%s' is still starting after %lu s\n", name,
                    (unsigned long)timeout_s);
            return SVC_EXIT_TIMEOUT;
        }
    }
    if (st.dwCurrentState != SERVICE_STOPPED && st.dwCurrentState != SERVICE_STOP_PENDING) {
        SERVICE_STATUS ss;
        if (!ControlService(svc, SERVICE_CONTROL_STOP, &ss)) {
            DWORD e = GetLastError();
            if (e != ERROR_SERVICE_NOT_ACTIVE)
                return fail("cannot stop the service", e);
        }
    }
    uint64_t t0 = svc_now_ms();
    int w = wait_state(svc, SERVICE_STOP_PENDING, SERVICE_RUNNING, timeout_s, &st);
    if (w < 0)
        return fail("cannot query the service", GetLastError());
    if (w > 0) {
        fprintf(stderr,
                "iocp-service: service '%s' did not stop within %lu s (state %s, "
                "checkpoint %lu)\n",
                name, (unsigned long)timeout_s, state_name(st.dwCurrentState),
                (unsigned long)st.dwCheckPoint);
        return SVC_EXIT_TIMEOUT;
    }
    if (st.dwWin32ExitCode != NO_ERROR) {
        printf("service '%s' stopped after %.1f s, reporting: %s\n", name,
               (double)(svc_now_ms() - t0) / 1000.0, exit_reason(&st, text, sizeof text));
    } else {
        printf("service '%s' stopped (%.1f s)\n", name, (double)(svc_now_ms() - t0) / 1000.0);
    }
    return SVC_EXIT_OK;
}

static uint32_t stop_timeout(const svc_options *opt)
{
    if (opt->timeout_s != 0)
        return opt->timeout_s;
    svc_server_options o;
    read_params(opt->name, &o);
    return o.drain_timeout_s + STOP_EXTRA_S;
}

int svc_scm_stop(const svc_options *opt)
{
    int rc = SVC_EXIT_OK;
    SC_HANDLE scm = open_scm(SC_MANAGER_CONNECT, &rc);
    if (scm == NULL)
        return rc;
    SC_HANDLE svc = open_service(scm, opt->name, SERVICE_STOP | SERVICE_QUERY_STATUS, &rc);
    if (svc != NULL) {
        rc = stop_and_wait(svc, opt->name, stop_timeout(opt));
        CloseServiceHandle(svc);
    }
    CloseServiceHandle(scm);
    return rc;
}

/* ---- uninstall ------------------------------------------------------------------------- */

#define REMOVAL_WAIT_MS 5000 /* for the stopped service's process to let go of it */

int svc_scm_uninstall(const svc_options *opt)
{
    int rc = SVC_EXIT_OK;
    char text[300];
    wchar_t params[200];
    SC_HANDLE scm = open_scm(SC_MANAGER_CONNECT, &rc);
    if (scm == NULL)
        return rc;
    SC_HANDLE svc = open_service(scm, opt->name, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE, &rc);
    if (svc == NULL) {
        CloseServiceHandle(scm);
        return rc;
    }
    rc = stop_and_wait(svc, opt->name, stop_timeout(opt));
    if (rc != SVC_EXIT_OK) {
        fprintf(stderr, "iocp-service: not removing service '%s': it did not stop\n", opt->name);
        goto out;
    }
    svc_params_path(opt->name, params, sizeof params / sizeof params[0]);
    DWORD e = svc_params_delete(HKEY_LOCAL_MACHINE, params);
    if (e != NO_ERROR)
        fprintf(stderr, "iocp-service: warning: cannot remove the parameters: %s\n",
                svc_win32_text(e, text, sizeof text));
    if (!DeleteService(svc)) {
        e = GetLastError();
        if (e != ERROR_SERVICE_MARKED_FOR_DELETE) {
            rc = fail("cannot remove the service", e);
            goto out;
        }
    }
    e = svc_eventlog_unregister(opt->name);
    if (e != NO_ERROR)
        fprintf(stderr, "iocp-service: warning: cannot remove the Event Log source: %s\n",
                svc_win32_text(e, text, sizeof text));
    CloseServiceHandle(svc);
    svc = NULL;

    /* With our handle closed the SCM removes it once no program holds one. The service's own
     * process reports STOPPED before it has exited and let go of its handles, so give it a
     * moment (Wine's SCM was seen still listing it right after the stop). */
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(opt->name, wname, sizeof wname / sizeof wname[0]);
    int still_there = 1;
    for (int tries = 0; still_there && tries < REMOVAL_WAIT_MS / 100; tries++) {
        SC_HANDLE again = OpenServiceW(scm, wname, SERVICE_QUERY_STATUS);
        still_there = again != NULL;
        if (still_there) {
            CloseServiceHandle(again);
            Sleep(100);
        }
    }
    if (still_there) {
        printf("service '%s' marked for deletion: it goes when the last program holding it "
               "(services.msc?) lets go\n",
               opt->name);
    } else {
        printf("service '%s' removed (with its parameters and Event Log source)\n", opt->name);
    }
out:
    if (svc != NULL)
        CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return rc;
}

/* ---- start ----------------------------------------------------------------------------- */

/* Asks the running instance (best effort); only an answer from the instance itself counts.
 * Whatever of it gets printed (its text fields, an error that quotes it) is made safe for a
 * console first: the pipe's other end is another process. */
static int fetch_info(const char *name, const char *req, svc_status_info *info, char *err,
                      size_t err_size)
{
    err[0] = '\0';
    memset(info, 0, sizeof *info);
    int rc = svc_instance_ask(name, req, PIPE_TIMEOUT_MS, info, err, err_size);
    safe_text_str(err, SAFE_TEXT_ONE_LINE);
    safe_text_str(info->name, SAFE_TEXT_ONE_LINE);
    safe_text_str(info->mode, SAFE_TEXT_ONE_LINE);
    safe_text_str(info->address, SAFE_TEXT_ONE_LINE);
    safe_text_str(info->tls_source, SAFE_TEXT_ONE_LINE);
    return rc;
}

int svc_scm_start(const svc_options *opt)
{
    int rc = SVC_EXIT_OK;
    char text[300];
    SERVICE_STATUS_PROCESS st;
    memset(&st, 0, sizeof st);
    uint32_t timeout_s = opt->timeout_s ? opt->timeout_s : START_TIMEOUT_S;
    SC_HANDLE scm = open_scm(SC_MANAGER_CONNECT, &rc);
    if (scm == NULL)
        return rc;
    SC_HANDLE svc = open_service(scm, opt->name, SERVICE_START | SERVICE_QUERY_STATUS, &rc);
    if (svc == NULL) {
        CloseServiceHandle(scm);
        return rc;
    }
    uint64_t t0 = svc_now_ms();
    int w;
    if (!StartServiceW(svc, 0, NULL)) {
        DWORD e = GetLastError();
        /* A service that stopped with an error before the SCM's start handshake ended (a bad
         * parameter is found at once) can make StartService say 1053 at once (seen under Wine
         * 10): its status then holds the code it reported, which says why. */
        if (e == ERROR_SERVICE_REQUEST_TIMEOUT && query(svc, &st) == 0 &&
            st.dwCurrentState == SERVICE_STOPPED && st.dwWin32ExitCode != NO_ERROR) {
            w = 0;
            goto started;
        }
        if (e == ERROR_SERVICE_ALREADY_RUNNING) {
            svc_status_info info;
            char err[300];
            query(svc, &st);
            printf("service '%s' is already running (pid %lu)\n", opt->name,
                   (unsigned long)st.dwProcessId);
            if (fetch_info(opt->name, "INFO", &info, err, sizeof err) == 0)
                printf("listening on %s\n", info.address);
        } else {
            rc = fail("cannot start the service", e);
        }
        goto out;
    }
    w = wait_state(svc, SERVICE_START_PENDING, SERVICE_START_PENDING, timeout_s, &st);
started:
    if (w < 0) {
        rc = fail("cannot query the service", GetLastError());
    } else if (w > 0) {
        fprintf(stderr, "iocp-service: service '%s' still starting after %lu s (checkpoint %lu)\n",
                opt->name, (unsigned long)timeout_s, (unsigned long)st.dwCheckPoint);
        rc = SVC_EXIT_TIMEOUT;
    } else if (st.dwCurrentState == SERVICE_RUNNING) {
        svc_status_info info;
        char err[300];
        printf("service '%s' is running (pid %lu, %.1f s)\n", opt->name,
               (unsigned long)st.dwProcessId, (double)(svc_now_ms() - t0) / 1000.0);
        if (fetch_info(opt->name, "INFO", &info, err, sizeof err) == 0)
            printf("listening on %s\n", info.address);
        else
            printf("(listener address unavailable: %s)\n", err);
    } else {
        /* It stopped: the exit code it reported says why (the Event Log and the log file have
         * the full sentence). */
        DWORD code = st.dwWin32ExitCode;
        if (code == ERROR_SERVICE_SPECIFIC_ERROR)
            rc = (int)st.dwServiceSpecificExitCode;
        else
            rc = code == NO_ERROR ? SVC_EXIT_CANNOT_START : svc_exit_from_win32(code);
        fprintf(stderr, "iocp-service: service '%s' failed to start: %s\n", opt->name,
                code == NO_ERROR ? "it stopped without reporting an error"
                                 : exit_reason(&st, text, sizeof text));
        svc_start_explain(opt->name, code); /* the cause and the fix, from the Parameters */
    }
    svc_setup_notes(opt->name);
out:
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return rc;
}

/* ---- status ---------------------------------------------------------------------------- */

static void print_stats(const svc_status_info *i)
{
    printf("  listening on %s\n", i->address);
    printf("  connections: %llu open, %llu accepted, %llu rejected\n",
           (unsigned long long)i->active, (unsigned long long)i->accepted,
           (unsigned long long)i->rejected);
    printf("  bytes: %llu in, %llu out\n", (unsigned long long)i->bytes_in,
           (unsigned long long)i->bytes_out);
    printf("  messages: %llu in, %llu out\n", (unsigned long long)i->messages_in,
           (unsigned long long)i->messages_out);
    printf("  protocol errors: %llu\n", (unsigned long long)i->protocol_errors);
    if (i->tls)
        printf("  tls: on (%s), handshakes: %llu completed, %llu failed (%llu below the "
               "floor)\n",
               i->tls_source, (unsigned long long)i->tls_handshakes,
               (unsigned long long)i->tls_failures, (unsigned long long)i->tls_below_floor);
    else
        printf("  tls: off\n");
    if (i->udp)
        printf("  udp: on %s; datagrams: %llu in, %llu out; bytes: %llu in, %llu out; %llu "
               "dropped (send queue full), %llu truncated, %llu errors\n",
               i->udp_address, (unsigned long long)i->udp_datagrams_in,
               (unsigned long long)i->udp_datagrams_out, (unsigned long long)i->udp_bytes_in,
               (unsigned long long)i->udp_bytes_out, (unsigned long long)i->udp_dropped,
               (unsigned long long)i->udp_truncated, (unsigned long long)i->udp_errors);
    else
        printf("  udp: off\n");
    /* Hostile peers: what the limits turned away (docs/reliability.md "Hostile peers"). */
    printf("  limits: %llu connections over the rate, %llu evicted idle",
           (unsigned long long)i->rejected_rate, (unsigned long long)i->evicted);
    if (i->udp)
        printf("; datagrams not answered: %llu from ports below 1024, %llu from our own port, "
               "%llu from no-reply addresses, %llu echo loops, %llu over a source's rate, %llu "
               "over the total rate",
               (unsigned long long)i->udp_refused_port, (unsigned long long)i->udp_refused_self,
               (unsigned long long)i->udp_refused_address, (unsigned long long)i->udp_refused_loop,
               (unsigned long long)i->udp_rate_limited, (unsigned long long)i->udp_capped);
    printf("\n");
    printf("  uptime: %.1f s%s\n", (double)i->uptime_ms / 1000.0,
           i->draining ? " (stopping: draining connections)" : "");
}

int svc_scm_status(const svc_options *opt)
{
    int rc = SVC_EXIT_OK;
    char text[300];
    char err[300];
    svc_status_info info;
    SERVICE_STATUS_PROCESS st;
    memset(&st, 0, sizeof st);
    /* This program's version: the running instance's, as long as the service runs the
     * executable it was installed from (the status pipe does not carry one). */
    printf("version: %s\n", iocp_version());
    SC_HANDLE scm = open_scm(SC_MANAGER_CONNECT, &rc);
    if (scm == NULL)
        return rc;
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(opt->name, wname, sizeof wname / sizeof wname[0]);
    SC_HANDLE svc = OpenServiceW(scm, wname, SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG);
    if (svc == NULL) {
        DWORD e = GetLastError();
        CloseServiceHandle(scm);
        if (e != ERROR_SERVICE_DOES_NOT_EXIST)
            return fail("cannot open the service", e);
        /* No such service; a console instance of that name may still be running. */
        if (fetch_info(opt->name, "STATS", &info, err, sizeof err) == 0) {
            printf("no service named '%s' is installed; a %s instance is running (pid %lu)\n",
                   opt->name, info.mode, (unsigned long)info.pid);
            print_stats(&info);
            return SVC_EXIT_OK;
        }
        printf("no service named '%s' is installed%s\n", opt->name,
               strcmp(opt->name, SVC_DEFAULT_NAME) == 0
                   ? " (the default name: give yours with --name NAME; every instance: "
                     "iocp-service list)"
                   : "");
        if (strstr(err, "answer ignored") != NULL) /* someone else answers on the pipe */
            printf("(the status pipe: %s)\n", err);
        return SVC_EXIT_NAME;
    }
    if (query(svc, &st) != 0) {
        rc = fail("cannot query the service", GetLastError());
    } else if (st.dwCurrentState == SERVICE_RUNNING || st.dwCurrentState == SERVICE_STOP_PENDING) {
        printf("service '%s': %s (pid %lu)\n", opt->name, state_name(st.dwCurrentState),
               (unsigned long)st.dwProcessId);
        if (fetch_info(opt->name, "STATS", &info, err, sizeof err) == 0)
            print_stats(&info);
        else
            printf("  statistics unavailable: %s\n", err);
        svc_upgrade_print_workers(opt->name); /* a supervised service's workers (upgrade.c) */
        rc = SVC_EXIT_OK;
    } else {
        printf("service '%s': %s", opt->name, state_name(st.dwCurrentState));
        if (st.dwCurrentState == SERVICE_START_PENDING)
            printf(" (pid %lu, checkpoint %lu)", (unsigned long)st.dwProcessId,
                   (unsigned long)st.dwCheckPoint);
        if (st.dwCurrentState == SERVICE_STOPPED && st.dwWin32ExitCode != NO_ERROR)
            printf(" (last exit: %s)", exit_reason(&st, text, sizeof text));
        printf("\n");
        rc = SVC_EXIT_NOT_RUNNING;
    }
    svc_print_config(svc, opt->name); /* status_config.c */
    svc_setup_notes(opt->name);
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return rc;
}
