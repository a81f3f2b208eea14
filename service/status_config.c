/*
 * status_config.c: how an installed service is configured, for `status`: what the SCM holds
 * (start type, account, the command it runs) and what the service will read (its log file
 * and the options under Parameters that differ from the defaults).
 */
#include "svc.h"

#include <stdlib.h>
#include <string.h>

static const char *start_type_text(DWORD t, int delayed)
{
    switch (t) {
    case SERVICE_AUTO_START:
        return delayed ? "auto (delayed)" : "auto";
    case SERVICE_DEMAND_START:
        return "demand (manual)";
    case SERVICE_DISABLED:
        return "disabled";
    case SERVICE_BOOT_START:
        return "boot";
    case SERVICE_SYSTEM_START:
        return "system";
    default:
        return "unknown";
    }
}

/* The VERSIONINFO of the executable a service command line names ("\"C:\\x\\a.exe\" service
 * --name n" or unquoted up to ".exe"): the version the service runs, whatever this program's. */
static void print_command_version(const wchar_t *command)
{
    wchar_t path[MAX_PATH + 1];
    size_t n = 0;
    const wchar_t *p = command;
    if (*p == L'"') {
        for (p++; *p && *p != L'"' && n < MAX_PATH; p++)
            path[n++] = *p;
    } else {
        const wchar_t *end = wcsstr(p, L".exe");
        size_t len = end ? (size_t)(end - p) + 4 : wcslen(p);
        for (; n < len && n < MAX_PATH; p++)
            path[n++] = *p;
    }
    path[n] = L'\0';
    DWORD ignored = 0, size = n ? GetFileVersionInfoSizeW(path, &ignored) : 0;
    void *block = size ? malloc(size) : NULL;
    VS_FIXEDFILEINFO *info = NULL;
    UINT info_len = 0;
    if (block != NULL && GetFileVersionInfoW(path, 0, size, block) &&
        VerQueryValueW(block, L"\\", (void **)&info, &info_len) && info_len >= sizeof *info)
        printf("    version: %lu.%lu.%lu (the executable's VERSIONINFO)\n",
               (unsigned long)HIWORD(info->dwFileVersionMS),
               (unsigned long)LOWORD(info->dwFileVersionMS),
               (unsigned long)HIWORD(info->dwFileVersionLS));
    else
        printf("    version: unknown (the executable has no VERSIONINFO, or cannot be read)\n");
    free(block);
}

/* The options under Parameters, as the service will read them: the log file, and every
 * value that is not the default ("Port=0 Framing=line"). */
static void print_options(const char *name)
{
    wchar_t path[200];
    char err[600], text[SVC_PATH_MAX], deflt[SVC_PATH_MAX], vname[64];
    svc_server_options o, d;
    svc_server_options_init(&o);
    svc_server_options_init(&d);
    svc_params_path(name, path, sizeof path / sizeof path[0]);
    DWORD pe = svc_params_read(HKEY_LOCAL_MACHINE, path, &o, err, sizeof err);
    SecureZeroMemory(o.tls_password, sizeof o.tls_password); /* never shown */
    if (pe == ERROR_ACCESS_DENIED) {
        printf("    options: cannot read HKLM\\%ls (administrators and the service only: run "
               "status elevated)\n",
               path);
        return;
    }
    if (pe == ERROR_FILE_NOT_FOUND) {
        printf("    log file: none (Event Log only)\n");
        printf("    options: the defaults (no Parameters key)\n");
        return;
    }
    if (pe != NO_ERROR) {
        printf("    options: wrong, the service will not start: %s\n", err);
        return;
    }
    printf("    log file: %s\n", o.log_file[0] ? o.log_file : "none (Event Log only)");
    printf("    options:");
    int any = 0;
    for (size_t i = 0; i < svc_server_opt_count; i++) {
        const svc_server_opt *def = &svc_server_opts[i];
        if (def->kind == SVC_OPT_SECRET)
            continue;
        svc_server_opt_get(&o, def, text, sizeof text);
        svc_server_opt_get(&d, def, deflt, sizeof deflt);
        if (strcmp(text, deflt) == 0)
            continue;
        svc_narrow(def->value, vname, sizeof vname);
        printf(" %s=%s", vname, text);
        any = 1;
    }
    printf("%s\n", any ? " (the rest at their defaults)" : " the defaults");
}

void svc_print_config(SC_HANDLE svc, const char *name)
{
    DWORD needed = 0;
    QueryServiceConfigW(svc, NULL, 0, &needed);
    QUERY_SERVICE_CONFIGW *qc = needed ? malloc(needed) : NULL;
    printf("  configuration:\n");
    if (qc == NULL || !QueryServiceConfigW(svc, qc, needed, &needed)) {
        char text[300];
        printf("    start type, account, command: cannot read them: %s\n",
               svc_win32_text(GetLastError(), text, sizeof text));
    } else {
        SERVICE_DELAYED_AUTO_START_INFO delayed = {FALSE};
        DWORD n = 0;
        if (qc->dwStartType == SERVICE_AUTO_START &&
            !QueryServiceConfig2W(svc, SERVICE_CONFIG_DELAYED_AUTO_START_INFO, (BYTE *)&delayed,
                                  sizeof delayed, &n))
            delayed.fDelayedAutostart = FALSE; /* not supported here (Wine): plain auto */
        printf("    start: %s, account: %ls\n",
               start_type_text(qc->dwStartType, delayed.fDelayedAutostart),
               qc->lpServiceStartName ? qc->lpServiceStartName : L"LocalSystem");
        printf("    command: %ls\n", qc->lpBinaryPathName ? qc->lpBinaryPathName : L"");
        print_command_version(qc->lpBinaryPathName ? qc->lpBinaryPathName : L"");
    }
    free(qc);
    print_options(name);
    /* The options are the stored ones; `configure` changes some of them live (configure.c). */
    SERVICE_STATUS st;
    if (QueryServiceStatus(svc, &st) && st.dwCurrentState == SERVICE_RUNNING)
        printf("    (stored values: the live ones, the timeouts, per-IP limit, drain timeout, "
               "unready delay and log limits, are in force; any other changed since the start "
               "applies at the next start: `configure` and the log named it)\n");
}
