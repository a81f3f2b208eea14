/*
 * start_report.c: what `start` says when the service did not start, and what `start` and
 * `status` note about a service made without `install` (by `sc create`).
 *
 * The service can hand the SCM only a number (87, 10013, ...), and the Event Log keeps
 * nothing under Wine; but `start` can read the same Parameters the service read, so it names
 * the bad value and what it should be, or the port and how to find its holder, itself.
 */
#include "svc.h"

#include <string.h>

static void event_source_key(const char *name, wchar_t *out, size_t count)
{
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    swprintf(out, count, L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\%ls", wname);
    out[count - 1] = L'\0';
}

/* The option a params.c message is about ("parameter Framing: ..."), or NULL. */
static const svc_server_opt *named_value(const char *err)
{
    const char *p = strstr(err, "parameter ");
    if (p == NULL)
        return NULL;
    p += strlen("parameter ");
    for (size_t i = 0; i < svc_server_opt_count; i++) {
        char name[64];
        svc_narrow(svc_server_opts[i].value, name, sizeof name);
        size_t n = strlen(name);
        if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == ':' || p[n] == '\0'))
            return &svc_server_opts[i];
    }
    return NULL;
}

/* "reg add ... /v Framing /t REG_SZ /d raw /f" with the option's default as the example. */
static void print_reg_fix(FILE *to, const char *name, const svc_server_opt *def)
{
    wchar_t path[200];
    char key[300], value[64], example[SVC_PATH_MAX];
    svc_server_options defaults;
    svc_server_options_init(&defaults);
    svc_params_path(name, path, sizeof path / sizeof path[0]);
    svc_narrow(path, key, sizeof key);
    svc_narrow(def->value, value, sizeof value);
    svc_server_opt_get(&defaults, def, example, sizeof example);
    const char *type = def->kind == SVC_OPT_NUMBER || def->kind == SVC_OPT_SWITCH ? "REG_DWORD"
                       : def->kind == SVC_OPT_SECRET                              ? "REG_BINARY"
                                                                                  : "REG_SZ";
    if (def->kind == SVC_OPT_SECRET) {
        fprintf(to,
                "iocp-service: fix: install the service again (uninstall --name %s, then "
                "install with --tls-password -)\n",
                name);
        return;
    }
    fprintf(to,
            "iocp-service: fix: reg add \"HKLM\\%s\" /v %s /t %s /d \"%s\" /f   (%s: the "
            "default; see %s in iocp-service --help), then start it again\n",
            key, value, type, example, example[0] ? example : "empty", def->flag);
}

void svc_start_explain(const char *name, DWORD code)
{
    wchar_t path[200];
    char err[600];
    svc_server_options o;
    svc_server_options_init(&o);
    svc_params_path(name, path, sizeof path / sizeof path[0]);
    DWORD pe = svc_params_read(HKEY_LOCAL_MACHINE, path, &o, err, sizeof err);
    SecureZeroMemory(o.tls_password, sizeof o.tls_password); /* not needed here */
    const char *bind = o.bind[0] ? o.bind : "[::]";
    unsigned port = o.port;

    if (pe != NO_ERROR && pe != ERROR_FILE_NOT_FOUND && pe != ERROR_ACCESS_DENIED) {
        fprintf(stderr, "iocp-service: its configuration is wrong: %s\n", err);
        const svc_server_opt *def = named_value(err);
        if (def != NULL)
            print_reg_fix(stderr, name, def);
        else
            fprintf(stderr,
                    "iocp-service: fix: correct the values under HKLM\\%ls, or uninstall "
                    "and install it again with the options you want\n",
                    path);
    } else if (code == WSAEADDRINUSE || code == WSAEACCES) {
        /* 10013: the holder set SO_EXCLUSIVEADDRUSE (always, under Wine), or the port is
         * one this account may not use: the code cannot tell which. */
        fprintf(stderr, "iocp-service: %s port %u is in use by another program%s\n",
                o.udp_only ? "UDP" : "TCP", port,
                code == WSAEACCES ? ", or this account may not use it" : "");
        if (o.udp_only)
            fprintf(stderr,
                    "iocp-service: find it with: netstat -ano -p udp | findstr :%u, or "
                    "Get-NetUDPEndpoint -LocalPort %u\n",
                    port, port);
        else
            fprintf(stderr,
                    "iocp-service: find it with: netstat -ano | findstr :%u, or "
                    "Get-NetTCPConnection -LocalPort %u\n",
                    port, port);
        fprintf(stderr,
                "iocp-service: fix: stop that program, or give this service another "
                "port: reg add \"HKLM\\%ls\" /v Port /t REG_DWORD /d PORT /f\n",
                path);
    } else if (code == WSAEADDRNOTAVAIL) {
        fprintf(stderr,
                "iocp-service: the address %s (parameter Bind) is not on this machine\n"
                "iocp-service: fix: one of its addresses (ipconfig), or none to listen on all: "
                "reg add \"HKLM\\%ls\" /v Bind /t REG_SZ /d \"\" /f\n",
                bind, path);
    } else if (code == ERROR_SERVICE_ALREADY_RUNNING) {
        fprintf(stderr,
                "iocp-service: another instance named '%s' (a console `run`, or a "
                "second service with this name) holds it; see who: iocp-service "
                "status --name %s\n",
                name, name);
    } else if ((code == ERROR_PATH_NOT_FOUND || code == ERROR_FILE_NOT_FOUND) &&
               o.log_file[0] != '\0') {
        fprintf(stderr,
                "iocp-service: the log file's folder (parameter LogFile: %s) does not "
                "exist: create the folder, or set LogFile to a path in one that does\n",
                o.log_file);
    }
    if (o.log_file[0] != '\0')
        fprintf(stderr,
                "iocp-service: details: the log file %s and the Event Log (Application, "
                "source %s)\n",
                o.log_file, name);
    else
        fprintf(stderr,
                "iocp-service: details: the Event Log (Application, source %s); a log "
                "file (parameter LogFile) keeps them too\n",
                name);
}

void svc_setup_notes(const char *name)
{
    wchar_t path[300], exe[SVC_PATH_MAX];
    HKEY key;
    svc_params_path(name, path, sizeof path / sizeof path[0]);
    LONG rc = RegOpenKeyExW(HKEY_LOCAL_MACHINE, path, 0, KEY_QUERY_VALUE, &key);
    if (rc == ERROR_SUCCESS)
        RegCloseKey(key);
    else if (rc == ERROR_FILE_NOT_FOUND)
        printf("note: service '%s' has no Parameters key (made with sc create?): it runs on the "
               "defaults (port %u, raw framing); set values under HKLM\\%ls (the names: "
               "iocp-service install's output), or install it with iocp-service install\n",
               name, (unsigned)SVC_DEFAULT_PORT, path);
    event_source_key(name, path, sizeof path / sizeof path[0]);
    rc = RegOpenKeyExW(HKEY_LOCAL_MACHINE, path, 0, KEY_QUERY_VALUE, &key);
    if (rc == ERROR_SUCCESS) {
        RegCloseKey(key);
    } else if (rc == ERROR_FILE_NOT_FOUND) {
        DWORD n = GetModuleFileNameW(NULL, exe, sizeof exe / sizeof exe[0]);
        if (n == 0 || n >= sizeof exe / sizeof exe[0])
            swprintf(exe, sizeof exe / sizeof exe[0], L"%ls", L"C:\\path\\to\\iocp-service.exe");
        printf("note: service '%s' has no Event Log source: its events show without their "
               "text; add it (elevated) with:\n"
               "  reg add \"HKLM\\%ls\" /v EventMessageFile /t REG_EXPAND_SZ /d \"%ls\" /f\n"
               "  reg add \"HKLM\\%ls\" /v TypesSupported /t REG_DWORD /d 7 /f\n",
               name, path, exe, path);
    }
}
