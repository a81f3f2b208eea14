/*
 * log.c: where the program's words go. Every line goes to the log file when one is set, and
 * to stderr in the console; the events (started, stopped, failed, protocol-error summary,
 * abandoned mutex) also go to the Event Log as messages from messages.mc. Under Wine the
 * Event Log is a stub that stores nothing, so the log file is the channel tests read.
 */
#include "svc.h"

#include <string.h>

#include "messages.h"

static struct {
    INIT_ONCE once;
    CRITICAL_SECTION lock;
    HANDLE file;
    int to_stderr;
    HANDLE source; /* RegisterEventSourceW */
    wchar_t name[SVC_NAME_MAX + 1];
    iocp_log_level level;
} g = {INIT_ONCE_STATIC_INIT, {0}, NULL, 0, NULL, {0}, IOCP_LOG_INFO};

static BOOL CALLBACK init_lock(INIT_ONCE *once, void *param, void **ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    InitializeCriticalSection(&g.lock);
    return TRUE;
}

void svc_log_init(const char *name, int to_stderr)
{
    InitOnceExecuteOnce(&g.once, init_lock, NULL, NULL);
    EnterCriticalSection(&g.lock);
    g.to_stderr = to_stderr;
    if (name != NULL && g.source == NULL) {
        svc_widen(name, g.name, sizeof g.name / sizeof g.name[0]);
        g.source = RegisterEventSourceW(NULL, g.name);
    }
    LeaveCriticalSection(&g.lock);
}

DWORD svc_log_open_file(const char *path)
{
    wchar_t wide[SVC_PATH_MAX];
    svc_widen(path, wide, sizeof wide / sizeof wide[0]);
    /* Appending (FILE_APPEND_DATA only) keeps lines of several processes whole; others may
     * read, rotate or delete the file while it is open. */
    HANDLE f = CreateFileW(wide, FILE_APPEND_DATA | SYNCHRONIZE,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE)
        return GetLastError();
    InitOnceExecuteOnce(&g.once, init_lock, NULL, NULL);
    EnterCriticalSection(&g.lock);
    if (g.file != NULL)
        CloseHandle(g.file);
    g.file = f;
    LeaveCriticalSection(&g.lock);
    return NO_ERROR;
}

void svc_log_close(void)
{
    InitOnceExecuteOnce(&g.once, init_lock, NULL, NULL);
    EnterCriticalSection(&g.lock);
    if (g.file != NULL) {
        CloseHandle(g.file);
        g.file = NULL;
    }
    if (g.source != NULL) {
        DeregisterEventSource(g.source);
        g.source = NULL;
    }
    LeaveCriticalSection(&g.lock);
}

static const char *level_name(iocp_log_level level)
{
    switch (level) {
    case IOCP_LOG_ERROR:
        return "error";
    case IOCP_LOG_WARN:
        return "warn";
    case IOCP_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

static void write_line(iocp_log_level level, const char *message)
{
    if (level > g.level)
        return;
    InitOnceExecuteOnce(&g.once, init_lock, NULL, NULL);
    EnterCriticalSection(&g.lock);
    if (g.file != NULL) {
        SYSTEMTIME t;
        GetLocalTime(&t);
        char line[1200];
        int n = snprintf(line, sizeof line, "%04u-%02u-%02u %02u:%02u:%02u.%03u [%lu] %s: %s\r\n",
                         t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute, t.wSecond, t.wMilliseconds,
                         (unsigned long)GetCurrentProcessId(), level_name(level), message);
        if (n > 0) {
            DWORD len = (DWORD)n < sizeof line ? (DWORD)n : (DWORD)sizeof line - 1;
            DWORD written;
            WriteFile(g.file, line, len, &written, NULL);
        }
    }
    if (g.to_stderr) {
        fprintf(stderr, "iocp-service: %s: %s\n", level_name(level), message);
        fflush(stderr);
    }
    LeaveCriticalSection(&g.lock);
}

void svc_log(iocp_log_level level, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    write_line(level, message);
}

void svc_log_engine(void *user, iocp_log_level level, const char *message)
{
    (void)user;
    write_line(level, message);
}

void svc_event(iocp_log_level level, DWORD message_id, const char *text)
{
    write_line(level, text);
    InitOnceExecuteOnce(&g.once, init_lock, NULL, NULL);
    EnterCriticalSection(&g.lock);
    if (g.source != NULL) {
        wchar_t wtext[1024];
        svc_widen(text, wtext, sizeof wtext / sizeof wtext[0]);
        const wchar_t *inserts[2] = {g.name, wtext};
        WORD type = level == IOCP_LOG_ERROR  ? EVENTLOG_ERROR_TYPE
                    : level == IOCP_LOG_WARN ? EVENTLOG_WARNING_TYPE
                                             : EVENTLOG_INFORMATION_TYPE;
        ReportEventW(g.source, type, 0, message_id, NULL, 2, 0, inserts, NULL);
    }
    LeaveCriticalSection(&g.lock);
}

static void source_key(const char *name, wchar_t *out, size_t count)
{
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    swprintf(out, count, L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\%ls", wname);
    out[count - 1] = L'\0';
}

DWORD svc_eventlog_register(const char *name, const wchar_t *exe_path)
{
    wchar_t path[200];
    HKEY key;
    source_key(name, path, sizeof path / sizeof path[0]);
    LONG rc = RegCreateKeyExW(HKEY_LOCAL_MACHINE, path, 0, NULL, REG_OPTION_NON_VOLATILE,
                              KEY_SET_VALUE, NULL, &key, NULL);
    if (rc != ERROR_SUCCESS)
        return (DWORD)rc;
    DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE;
    rc = RegSetValueExW(key, L"EventMessageFile", 0, REG_EXPAND_SZ, (const BYTE *)exe_path,
                        (DWORD)((wcslen(exe_path) + 1) * sizeof(wchar_t)));
    if (rc == ERROR_SUCCESS)
        rc = RegSetValueExW(key, L"TypesSupported", 0, REG_DWORD, (const BYTE *)&types,
                            sizeof types);
    RegCloseKey(key);
    return (DWORD)rc;
}

DWORD svc_eventlog_unregister(const char *name)
{
    wchar_t path[200];
    source_key(name, path, sizeof path / sizeof path[0]);
    return svc_params_delete(HKEY_LOCAL_MACHINE, path);
}
