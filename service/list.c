/*
 * list.c: `iocp-service list`, every instance on this machine, service or console.
 *
 * Services: EnumServicesStatusExW, kept when the command the SCM runs names an executable
 * of this program's file name (a copy elsewhere counts; `sc create` services too). Consoles
 * have no registry entry; every running instance serves a status pipe, so the pipes are
 * enumerated (FindFirstFileW on \\.\pipe\*, which lists the pipe namespace) and each one
 * with this program's prefix is asked who it is, through the same trusted path as `status`
 * (svc_instance_ask: only the mutex owner's or the service's answer counts). A console that
 * could not make its pipe (a squatter took the name) is not listed: `status --name` still
 * names it through the mutex.
 *
 * Where the pipes cannot be listed (Wine 8 and 10 answer ERROR_BAD_DEV_TYPE, docs/wine.md),
 * the processes running this program are: the --name of each `run` is read from its command
 * line (its PEB, as Process Explorer shows it; only processes this account may read), then
 * asked over its pipe like the others.
 */
#include "svc.h"

#include <stdlib.h>
#include <string.h>

#include <shellapi.h>
#include <tlhelp32.h>
#include <winternl.h>

#include "safe_text.h"

#define LIST_ASK_MS 3000 /* one instance's answer; a busy one is listed without its address */
/* All the answers together: pipes that never answer (a squatter's, made by any local user)
 * cannot hold `list` longer; the rows after it are listed without asking. */
#define LIST_BUDGET_MS 15000

static uint64_t ask_deadline_ms;

/* This program's file name ("iocp-service.exe"). */
static void own_file_name(wchar_t *out, size_t count)
{
    wchar_t path[SVC_PATH_MAX];
    DWORD n = GetModuleFileNameW(NULL, path, SVC_PATH_MAX);
    out[0] = L'\0';
    if (n == 0 || n >= SVC_PATH_MAX)
        return;
    const wchar_t *base = wcsrchr(path, L'\\');
    swprintf(out, count, L"%ls", base != NULL ? base + 1 : path);
    out[count - 1] = L'\0';
}

/* 1 when the service's command line runs an executable with this file name (any case). The
 * path is quoted, or (unquoted, as `sc create` allows) ends at ".exe". */
static int runs_this_program(const wchar_t *command, const wchar_t *own)
{
    wchar_t exe[SVC_PATH_MAX];
    const wchar_t *p = command;
    size_t n = 0;
    if (*p == L'"') {
        p++;
        while (p[n] != L'\0' && p[n] != L'"')
            n++;
    } else {
        while (p[n] != L'\0' && _wcsnicmp(p + n, L".exe", 4) != 0)
            n++;
        if (p[n] != L'\0')
            n += 4;
    }
    if (n == 0 || n >= SVC_PATH_MAX || own[0] == L'\0')
        return 0;
    memcpy(exe, p, n * sizeof(wchar_t));
    exe[n] = L'\0';
    const wchar_t *base = wcsrchr(exe, L'\\');
    return _wcsicmp(base != NULL ? base + 1 : exe, own) == 0;
}

static const char *state_text(DWORD state)
{
    switch (state) {
    case SERVICE_STOPPED:
        return "STOPPED";
    case SERVICE_START_PENDING:
        return "STARTING";
    case SERVICE_STOP_PENDING:
        return "STOPPING";
    case SERVICE_RUNNING:
        return "RUNNING";
    default:
        return "OTHER";
    }
}

static void print_row(const char *name, const char *kind, const char *state, unsigned long pid,
                      const char *where)
{
    char pid_text[16] = "-";
    if (pid != 0)
        snprintf(pid_text, sizeof pid_text, "%lu", pid);
    printf("%-24s %-8s %-9s %-7s %s\n", name, kind, state, pid_text, where);
}

static void print_header(int *shown)
{
    if ((*shown)++ == 0)
        printf("%-24s %-8s %-9s %-7s %s\n", "NAME", "KIND", "STATE", "PID", "LISTENING");
}

/* Where a running instance listens, from its own answer ("[::]:9000"). */
static void ask_address(const char *name, char *out, size_t size, unsigned long *pid, char *mode,
                        size_t mode_size)
{
    svc_status_info info;
    char err[300];
    memset(&info, 0, sizeof info);
    uint64_t now = svc_now_ms();
    if (now >= ask_deadline_ms) {
        snprintf(out, size, "(not asked: %u s spent on the others)", LIST_BUDGET_MS / 1000);
        return;
    }
    uint64_t left = ask_deadline_ms - now;
    if (svc_instance_ask(name, "INFO", left < LIST_ASK_MS ? (uint32_t)left : LIST_ASK_MS, &info,
                         err, sizeof err) == 0) {
        safe_text_str(info.address, SAFE_TEXT_ONE_LINE);
        safe_text_str(info.mode, SAFE_TEXT_ONE_LINE);
        snprintf(out, size, "%s", info.address);
        if (pid != NULL)
            *pid = info.pid;
        if (mode != NULL)
            snprintf(mode, mode_size, "%s", info.mode);
    } else {
        safe_text_str(err, SAFE_TEXT_ONE_LINE);
        snprintf(out, size, "(no answer: %s)", err);
    }
}

/* The services that run this program. names collects them (for the consoles' pass). */
static int list_services(char (*names)[SVC_NAME_MAX + 1], size_t max, size_t *count)
{
    wchar_t own[MAX_PATH];
    own_file_name(own, MAX_PATH);
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_ENUMERATE_SERVICE);
    if (scm == NULL) {
        char text[300];
        printf("(services: cannot open the Service Control Manager: %s)\n",
               svc_win32_text(GetLastError(), text, sizeof text));
        return 0;
    }
    DWORD needed = 0, returned = 0, resume = 0;
    BYTE *buf = NULL;
    BOOL ok;
    do { /* grows until the whole list fits (services come and go meanwhile) */
        free(buf);
        buf = malloc(needed + 4096);
        if (buf == NULL)
            break;
        resume = 0;
        ok = EnumServicesStatusExW(scm, SC_ENUM_PROCESS_INFO, SERVICE_WIN32, SERVICE_STATE_ALL, buf,
                                   needed + 4096, &needed, &returned, &resume, NULL);
    } while (!ok && GetLastError() == ERROR_MORE_DATA);
    int shown = 0;
    ENUM_SERVICE_STATUS_PROCESSW *all = (ENUM_SERVICE_STATUS_PROCESSW *)buf;
    for (DWORD i = 0; buf != NULL && i < returned; i++) {
        SC_HANDLE svc = OpenServiceW(scm, all[i].lpServiceName, SERVICE_QUERY_CONFIG);
        if (svc == NULL)
            continue;
        DWORD size = 0;
        QueryServiceConfigW(svc, NULL, 0, &size);
        QUERY_SERVICE_CONFIGW *qc = size ? malloc(size) : NULL;
        int ours = qc != NULL && QueryServiceConfigW(svc, qc, size, &size) &&
                   qc->lpBinaryPathName != NULL && runs_this_program(qc->lpBinaryPathName, own);
        free(qc);
        CloseServiceHandle(svc);
        if (!ours)
            continue;
        char name[SVC_NAME_MAX + 1], where[200];
        svc_narrow(all[i].lpServiceName, name, sizeof name);
        const SERVICE_STATUS_PROCESS *st = &all[i].ServiceStatusProcess;
        if (st->dwCurrentState == SERVICE_RUNNING || st->dwCurrentState == SERVICE_STOP_PENDING) {
            ask_address(name, where, sizeof where, NULL, NULL, 0);
        } else {
            /* Not listening: the port it will take, if the Parameters are readable. */
            wchar_t path[200];
            char err[300];
            svc_server_options o;
            svc_server_options_init(&o);
            svc_params_path(name, path, sizeof path / sizeof path[0]);
            DWORD pe = svc_params_read(HKEY_LOCAL_MACHINE, path, &o, err, sizeof err);
            SecureZeroMemory(o.tls_password, sizeof o.tls_password);
            if (pe == NO_ERROR || pe == ERROR_FILE_NOT_FOUND)
                snprintf(where, sizeof where, "(port %u when started)", (unsigned)o.port);
            else
                snprintf(where, sizeof where, "-");
        }
        print_header(&shown);
        print_row(name, "service", state_text(st->dwCurrentState), st->dwProcessId, where);
        if (*count < max)
            snprintf(names[(*count)++], SVC_NAME_MAX + 1, "%s", name);
    }
    free(buf);
    CloseServiceHandle(scm);
    return shown;
}

typedef NTSTATUS(NTAPI *query_process_fn)(HANDLE, PROCESSINFOCLASS, PVOID, ULONG, PULONG);

/* The --name of a `run` in another process of this program, from its command line; 0, or -1
 * (not a `run`, or its memory is not ours to read). */
static int run_instance_name(DWORD pid, char *out, size_t size)
{
    HANDLE h = OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_VM_READ, FALSE, pid);
    if (h == NULL)
        return -1;
    query_process_fn query = (query_process_fn)(void (*)(void))GetProcAddress(
        GetModuleHandleW(L"ntdll.dll"), "NtQueryInformationProcess");
    PROCESS_BASIC_INFORMATION pbi;
    PEB peb;
    RTL_USER_PROCESS_PARAMETERS params;
    static wchar_t cmd[8192];
    ULONG n = 0;
    int rc = -1;
    if (query != NULL && query(h, ProcessBasicInformation, &pbi, sizeof pbi, &n) >= 0 &&
        ReadProcessMemory(h, pbi.PebBaseAddress, &peb, sizeof peb, NULL) &&
        ReadProcessMemory(h, peb.ProcessParameters, &params, sizeof params, NULL) &&
        params.CommandLine.Length < sizeof cmd &&
        ReadProcessMemory(h, params.CommandLine.Buffer, cmd, params.CommandLine.Length, NULL)) {
        cmd[params.CommandLine.Length / sizeof(wchar_t)] = L'\0';
        int argc = 0;
        wchar_t **argv = CommandLineToArgvW(cmd, &argc);
        if (argv != NULL && argc >= 2 && wcscmp(argv[1], L"run") == 0) {
            snprintf(out, size, "%s", SVC_DEFAULT_NAME);
            for (int i = 2; i + 1 < argc; i++)
                if (wcscmp(argv[i], L"--name") == 0)
                    svc_narrow(argv[i + 1], out, size);
            rc = svc_name_valid(out) ? 0 : -1;
        }
        LocalFree(argv);
    }
    CloseHandle(h);
    return rc;
}

/* The consoles, where the pipes cannot be listed: the processes of this program. */
static void list_console_processes(int *shown)
{
    wchar_t own[MAX_PATH];
    own_file_name(own, MAX_PATH);
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE)
        return;
    PROCESSENTRY32W pe;
    pe.dwSize = sizeof pe;
    for (BOOL more = Process32FirstW(snap, &pe); more; more = Process32NextW(snap, &pe)) {
        if (pe.th32ProcessID == GetCurrentProcessId() || _wcsicmp(pe.szExeFile, own) != 0)
            continue;
        char name[SVC_NAME_MAX + 1], where[400], mode[16] = "";
        unsigned long pid = 0;
        if (run_instance_name(pe.th32ProcessID, name, sizeof name) != 0)
            continue; /* a service (listed above), another command, or not ours to read */
        ask_address(name, where, sizeof where, &pid, mode, sizeof mode);
        print_header(shown);
        print_row(name, "console", pid == pe.th32ProcessID ? "RUNNING" : "STARTING",
                  pe.th32ProcessID, where);
    }
    CloseHandle(snap);
}

int svc_list(const svc_options *opt)
{
    (void)opt;
    ask_deadline_ms = svc_now_ms() + LIST_BUDGET_MS;
    static char services[512][SVC_NAME_MAX + 1];
    size_t nservices = 0;
    int shown = list_services(services, 512, &nservices);

    /* The pipe name of an instance is the prefix svc_pipe_name gives, then its name. */
    wchar_t prefix_path[200];
    svc_pipe_name("", prefix_path, sizeof prefix_path / sizeof prefix_path[0]);
    const wchar_t *prefix = wcsstr(prefix_path, L"\\pipe\\");
    prefix = prefix != NULL ? prefix + 6 : prefix_path;
    size_t plen = wcslen(prefix);

    WIN32_FIND_DATAW fd;
    HANDLE find = FindFirstFileW(L"\\\\.\\pipe\\*", &fd);
    if (find == INVALID_HANDLE_VALUE) {
        list_console_processes(&shown);
    } else {
        do {
            if (wcsncmp(fd.cFileName, prefix, plen) != 0)
                continue;
            char name[SVC_NAME_MAX * 3 + 1];
            svc_narrow(fd.cFileName + plen, name, sizeof name);
            if (!svc_name_valid(name))
                continue;
            int is_service = 0;
            for (size_t i = 0; i < nservices && !is_service; i++)
                is_service = _stricmp(services[i], name) == 0;
            char where[400], mode[16] = "";
            unsigned long pid = 0;
            ask_address(name, where, sizeof where, &pid, mode, sizeof mode);
            /* The service's own pipe is its row above; a console of a service's name (the
             * service stopped) is listed. */
            if (is_service && strcmp(mode, "console") != 0)
                continue;
            print_header(&shown);
            print_row(name, mode[0] ? mode : "console", pid ? "RUNNING" : "UNKNOWN", pid, where);
        } while (FindNextFileW(find, &fd));
        FindClose(find);
    }
    if (shown == 0)
        printf("no iocp-service instances on this machine (no service runs this program, no "
               "console instance answers)\n");
    return SVC_EXIT_OK;
}
