/*
 * log.c: where the program's words go. Every line goes to the log file when one is set, and
 * to stderr in the console; the events (started, stopped, failed, protocol-error summary,
 * abandoned mutex) also go to the Event Log as messages from messages.mc. Under Wine the
 * Event Log is a stub that stores nothing, so the log file is the channel tests read.
 *
 * The network must not be able to fill the disk through the log: the engine's lines (the
 * ones peers cause) are rate-limited per kind, and the file has a size cap: before a line
 * would pass it, file -> file.1 -> ... -> file.<keep> (the oldest deleted) and a new file.
 * Several processes may append to one file (a console instance and the service, two
 * names): each line is one append (FILE_APPEND_DATA without FILE_WRITE_DATA, so it lands
 * whole at the end), and the size check, the rotation and the write happen under an
 * exclusive byte-range lock on the file far past its end (it never blocks the appends). A
 * process whose file was rotated away by another finds out under that lock (the path no
 * longer names its file) and opens the new one. Every file is opened by safefile.c.
 */
#include "svc.h"

#include <string.h>

#include "messages.h"

#define LOCK_OFFSET_HIGH 0x40000000u /* the lock byte: at 2^62, never reached by a log */
#define ROTATE_RETRY_MS  10000u      /* after a failed rotation */

static struct {
    INIT_ONCE once;
    CRITICAL_SECTION lock;
    HANDLE file;
    HANDLE dir; /* its folder, held so it cannot be swapped while the log is open */
    wchar_t path[SVC_PATH_MAX];
    uint64_t max_bytes;
    uint32_t keep;
    uint64_t retry_ms; /* a rotation failed: lines past the cap are dropped until then */
    uint64_t dropped;
    int to_stderr;
    HANDLE source; /* RegisterEventSourceW */
    wchar_t name[SVC_NAME_MAX + 1];
    iocp_log_level level;
    svc_ratelimit rl;
} g = {INIT_ONCE_STATIC_INIT, {0},    NULL, NULL, {0},  (uint64_t)SVC_DEFAULT_LOG_MIB << 20,
       SVC_DEFAULT_LOG_KEEP,  0,      0,    0,    NULL, {0},
       IOCP_LOG_INFO,         {{{0}}}};

static BOOL CALLBACK init_lock(INIT_ONCE *once, void *param, void **ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    InitializeCriticalSection(&g.lock);
    return TRUE;
}

static void lock(void)
{
    InitOnceExecuteOnce(&g.once, init_lock, NULL, NULL);
    EnterCriticalSection(&g.lock);
}

static void unlock(void)
{
    LeaveCriticalSection(&g.lock);
}

void svc_log_init(const char *name, int to_stderr)
{
    lock();
    g.to_stderr = to_stderr;
    if (name != NULL && g.source == NULL) {
        svc_widen(name, g.name, sizeof g.name / sizeof g.name[0]);
        g.source = RegisterEventSourceW(NULL, g.name);
    }
    unlock();
}

void svc_log_set_limits(uint64_t max_bytes, uint32_t keep)
{
    lock();
    g.max_bytes = max_bytes;
    g.keep = keep;
    unlock();
}

/* The log's file access: FILE_READ_DATA only because LockFileEx needs read or write access;
 * no FILE_WRITE_DATA, so every write is an append. */
#define LOG_ACCESS (FILE_READ_DATA | FILE_APPEND_DATA)

DWORD svc_log_open_file_ex(const char *path, char *why, size_t why_size)
{
    wchar_t wide[SVC_PATH_MAX], full[SVC_PATH_MAX], dir[SVC_PATH_MAX];
    wchar_t *file_part = NULL;
    char reason[600];
    DWORD code;
    int created = 0;
    why[0] = '\0';
    svc_widen(path, wide, sizeof wide / sizeof wide[0]);
    DWORD n = GetFullPathNameW(wide, SVC_PATH_MAX, full, &file_part);
    if (n == 0 || n >= SVC_PATH_MAX || file_part == NULL || file_part == full) {
        snprintf(why, why_size, "it is not the path of a file");
        return ERROR_INVALID_NAME;
    }
    /* The folder: up to the last backslash, which stays only for a root ("C:\"). */
    size_t dir_len = (size_t)(file_part - full);
    memcpy(dir, full, dir_len * sizeof(wchar_t));
    dir[dir_len] = L'\0';
    if (dir_len > 1 && dir[dir_len - 2] != L':')
        dir[dir_len - 1] = L'\0';
    HANDLE d = svc_dir_open_checked(dir, &created, &code, reason, sizeof reason);
    if (d == INVALID_HANDLE_VALUE) {
        char where[SVC_PATH_MAX];
        svc_narrow(dir, where, sizeof where);
        snprintf(why, why_size, "its folder %s: %s", where, reason);
        return code;
    }
    HANDLE f = svc_file_open_checked(full, LOG_ACCESS, OPEN_ALWAYS, &code, reason, sizeof reason);
    if (f == INVALID_HANDLE_VALUE) {
        char text[300];
        snprintf(why, why_size, "%s", reason[0] ? reason : svc_win32_text(code, text, sizeof text));
        CloseHandle(d);
        return code;
    }
    lock();
    if (g.file != NULL)
        CloseHandle(g.file);
    if (g.dir != NULL)
        CloseHandle(g.dir);
    g.file = f;
    g.dir = d;
    memcpy(g.path, full, sizeof g.path);
    g.retry_ms = 0;
    unlock();
    if (created) {
        char where[SVC_PATH_MAX];
        svc_narrow(dir, where, sizeof where);
        svc_log(IOCP_LOG_INFO,
                "created the log folder %s (system and administrators: full control; this "
                "account: modify; nobody else)",
                where);
    }
    return NO_ERROR;
}

DWORD svc_log_open_file(const char *path)
{
    char why[700];
    return svc_log_open_file_ex(path, why, sizeof why);
}

static void close_file_locked(void)
{
    if (g.file != NULL)
        CloseHandle(g.file);
    if (g.dir != NULL)
        CloseHandle(g.dir);
    g.file = g.dir = NULL;
}

/* ---- rotation ----------------------------------------------------------------------------- */

static void numbered(wchar_t *out, size_t count, uint32_t i)
{
    swprintf(out, count, L"%ls.%lu", g.path, (unsigned long)i);
    out[count - 1] = L'\0';
}

/* Opens path to rename or delete it, checked like the log itself. NULL: it does not exist. */
static DWORD open_for_delete(const wchar_t *path, HANDLE *out, char *why, size_t why_size)
{
    DWORD code;
    *out = svc_file_open_checked(path, DELETE, OPEN_EXISTING, &code, why, why_size);
    if (*out == INVALID_HANDLE_VALUE) {
        *out = NULL;
        if (code == ERROR_FILE_NOT_FOUND)
            return NO_ERROR;
    }
    return code;
}

static DWORD remove_checked(const wchar_t *path, char *why, size_t why_size)
{
    HANDLE h;
    DWORD code = open_for_delete(path, &h, why, why_size);
    if (h == NULL)
        return code;
    FILE_DISPOSITION_INFO di = {TRUE};
    code = SetFileInformationByHandle(h, FileDispositionInfo, &di, sizeof di) ? NO_ERROR
                                                                              : GetLastError();
    CloseHandle(h);
    return code;
}

/* Renames from to to (which must not exist) through a checked handle. */
static DWORD rename_checked(const wchar_t *from, const wchar_t *to, char *why, size_t why_size)
{
    HANDLE h;
    DWORD code = open_for_delete(from, &h, why, why_size);
    if (h == NULL)
        return code;
    union {
        FILE_RENAME_INFO info;
        BYTE raw[sizeof(FILE_RENAME_INFO) + SVC_PATH_MAX * sizeof(wchar_t)];
    } u;
    size_t len = wcslen(to);
    memset(&u, 0, sizeof u);
    u.info.ReplaceIfExists = FALSE; /* a name planted meanwhile is not ours to replace */
    u.info.FileNameLength = (DWORD)(len * sizeof(wchar_t));
    memcpy(u.info.FileName, to, len * sizeof(wchar_t));
    code = SetFileInformationByHandle(h, FileRenameInfo, &u, (DWORD)sizeof u) ? NO_ERROR
                                                                              : GetLastError();
    CloseHandle(h);
    return code;
}

/* file.<keep> is deleted, file.<i> becomes file.<i+1>, file becomes file.1 (keep 0: file is
 * deleted); then a new file is opened. On failure nothing is lost: the current file stays. */
static DWORD rotate_locked(char *why, size_t why_size)
{
    wchar_t from[SVC_PATH_MAX + 16], to[SVC_PATH_MAX + 16];
    DWORD code = NO_ERROR;
    why[0] = '\0';
    if (g.keep == 0) {
        code = remove_checked(g.path, why, why_size);
    } else {
        numbered(to, sizeof to / sizeof to[0], g.keep);
        code = remove_checked(to, why, why_size);
        for (uint32_t i = g.keep - 1; code == NO_ERROR && i >= 1; i--) {
            numbered(from, sizeof from / sizeof from[0], i);
            numbered(to, sizeof to / sizeof to[0], i + 1);
            code = rename_checked(from, to, why, why_size);
        }
        if (code == NO_ERROR) {
            numbered(to, sizeof to / sizeof to[0], 1);
            code = rename_checked(g.path, to, why, why_size);
        }
    }
    if (code != NO_ERROR)
        return code;
    HANDLE f = svc_file_open_checked(g.path, LOG_ACCESS, OPEN_ALWAYS, &code, why, why_size);
    if (f == INVALID_HANDLE_VALUE)
        return code;
    CloseHandle(g.file); /* its lock goes with it */
    g.file = f;
    return NO_ERROR;
}

/* Whether the path still names the file we hold (another process may have rotated it). */
static int still_current_locked(void)
{
    HANDLE h = CreateFileW(g.path, FILE_READ_ATTRIBUTES,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return 0;
    BY_HANDLE_FILE_INFORMATION a, b;
    int same = GetFileInformationByHandle(h, &a) && GetFileInformationByHandle(g.file, &b) &&
               a.nFileIndexHigh == b.nFileIndexHigh && a.nFileIndexLow == b.nFileIndexLow;
    /* Wine reports volume serial 0 through some handles: compare it only when both have it. */
    if (same && a.dwVolumeSerialNumber != 0 && b.dwVolumeSerialNumber != 0)
        same = a.dwVolumeSerialNumber == b.dwVolumeSerialNumber;
    CloseHandle(h);
    return same;
}

static void event_locked(WORD type, const char *text);

/* One line into the log file: lock, follow a rotation made elsewhere, rotate at the cap,
 * append. */
static void file_write_locked(const char *line, DWORD len)
{
    /* Each pass that does not write found that another process rotated (or that we must):
     * some process always makes progress, but this one may need a few passes when several
     * rotate at once (up to 8 seen with two writers under Wine). A file system whose file
     * ids do not compare would never settle: after 16 passes the line goes to the file we
     * hold, never nowhere. */
    for (int attempt = 0; g.file != NULL; attempt++) {
        if (attempt == 16) {
            DWORD w;
            WriteFile(g.file, line, len, &w, NULL);
            return;
        }
        OVERLAPPED ov;
        memset(&ov, 0, sizeof ov);
        ov.OffsetHigh = LOCK_OFFSET_HIGH;
        /* A file system without byte-range locks: no lock, the lines stay whole anyway. */
        BOOL locked = LockFileEx(g.file, LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, &ov);
        if (!still_current_locked()) {
            char why[600];
            DWORD code;
            HANDLE f =
                svc_file_open_checked(g.path, LOG_ACCESS, OPEN_ALWAYS, &code, why, sizeof why);
            if (locked)
                UnlockFileEx(g.file, 0, 1, 0, &ov);
            if (f != INVALID_HANDLE_VALUE) {
                CloseHandle(g.file);
                g.file = f;
                continue;
            }
            /* The new file is refused (planted?): keep writing to the one we hold. */
            locked = LockFileEx(g.file, LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, &ov);
        }
        LARGE_INTEGER size;
        if (g.max_bytes != 0 && GetFileSizeEx(g.file, &size) && size.QuadPart > 0 &&
            (uint64_t)size.QuadPart + len > g.max_bytes) {
            uint64_t now = svc_now_ms();
            char why[600], text[900], code_text[200];
            if (now >= g.retry_ms) {
                DWORD code = rotate_locked(why, sizeof why);
                if (code == NO_ERROR) {
                    /* The old handle is closed, and its lock with it. */
                    if (g.dropped > 0) {
                        int m = snprintf(text, sizeof text,
                                         "log: %llu lines were dropped while the log could not "
                                         "be rotated\r\n",
                                         (unsigned long long)g.dropped);
                        DWORD w;
                        if (m > 0)
                            WriteFile(g.file, text, (DWORD)m, &w, NULL);
                        g.dropped = 0;
                    }
                    g.retry_ms = 0;
                    continue;
                }
                /* Said once per attempt, past the cap by this one line: the disk is safe, the
                 * operator told (Event Log too). */
                g.retry_ms = now + ROTATE_RETRY_MS;
                int m = snprintf(
                    text, sizeof text,
                    "log: cannot rotate at the size cap (%llu bytes): %s%s%s; "
                    "lines are dropped until it can (tried again in %u s)\r\n",
                    (unsigned long long)g.max_bytes, why[0] ? why : "", why[0] ? ": " : "",
                    svc_win32_text(code, code_text, sizeof code_text), ROTATE_RETRY_MS / 1000u);
                DWORD w;
                if (m > 0) {
                    WriteFile(g.file, text, (DWORD)m, &w, NULL);
                    event_locked(EVENTLOG_WARNING_TYPE, text);
                }
            }
            g.dropped++;
            if (locked)
                UnlockFileEx(g.file, 0, 1, 0, &ov);
            return;
        }
        DWORD written;
        WriteFile(g.file, line, len, &written, NULL);
        if (locked)
            UnlockFileEx(g.file, 0, 1, 0, &ov);
        return;
    }
}

static void emit_locked(void *user, iocp_log_level level, const char *text);

void svc_log_close(void)
{
    lock();
    /* What was suppressed is said before the file closes. */
    svc_ratelimit_flush(&g.rl, svc_now_ms(), 1, emit_locked, NULL);
    close_file_locked();
    if (g.source != NULL) {
        DeregisterEventSource(g.source);
        g.source = NULL;
    }
    unlock();
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

static void write_line_locked(iocp_log_level level, const char *message)
{
    if (g.file != NULL) {
        SYSTEMTIME t;
        GetLocalTime(&t);
        char line[1200];
        int n = snprintf(line, sizeof line, "%04u-%02u-%02u %02u:%02u:%02u.%03u [%lu] %s: %s\r\n",
                         t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute, t.wSecond, t.wMilliseconds,
                         (unsigned long)GetCurrentProcessId(), level_name(level), message);
        if (n > 0) {
            /* A cut line still ends the line. */
            if ((size_t)n >= sizeof line) {
                n = (int)sizeof line - 1;
                line[n - 2] = '\r';
                line[n - 1] = '\n';
            }
            file_write_locked(line, (DWORD)n);
        }
    }
    if (g.to_stderr) {
        fprintf(stderr, "iocp-service: %s: %s\n", level_name(level), message);
        fflush(stderr);
    }
}

static void write_line(iocp_log_level level, const char *message)
{
    if (level > g.level)
        return;
    lock();
    write_line_locked(level, message);
    unlock();
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

/* ---- the rate limit of engine lines ------------------------------------------------------- */

uint64_t svc_log_kind_key(iocp_log_level level, const char *message)
{
    /* FNV-1a over the level and the words without digits, one space between them. */
    uint64_t h = 14695981039346656037ull;
    h = (h ^ (uint64_t)level) * 1099511628211ull;
    const char *p = message;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        const char *w = p;
        int digit = 0;
        while (*p != '\0' && *p != ' ') {
            if (*p >= '0' && *p <= '9')
                digit = 1;
            p++;
        }
        if (digit || p == w)
            continue;
        for (const char *c = w; c < p; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
        h = (h ^ ' ') * 1099511628211ull;
    }
    return h != 0 ? h : 1; /* 0 marks a free slot */
}

static void summary_text(svc_log_kind *k, uint64_t now_ms, char *out, size_t size)
{
    uint64_t s = (now_ms - k->first_dropped + 999) / 1000;
    snprintf(out, size, "%llu similar messages suppressed in the last %llu s (the last: %s)",
             (unsigned long long)k->suppressed, (unsigned long long)(s != 0 ? s : 1), k->sample);
    k->suppressed = 0;
}

static svc_log_kind *find_kind(svc_ratelimit *rl, uint64_t key, uint64_t now_ms)
{
    svc_log_kind *free_slot = NULL;
    for (size_t i = 0; i < SVC_LOG_KINDS - 1; i++) {
        svc_log_kind *k = &rl->kinds[i];
        if (k->key == key)
            return k;
        /* Reusable: empty, or nothing pending and quiet for its whole second. */
        int idle =
            k->key == 0 || (k->suppressed == 0 && now_ms - k->window_ms >= SVC_LOG_WINDOW_MS);
        if (idle && (free_slot == NULL || k->used_ms < free_slot->used_ms))
            free_slot = k;
    }
    if (free_slot == NULL)
        return &rl->kinds[SVC_LOG_KINDS - 1]; /* every slot busy: the rest share the last */
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->key = key;
    free_slot->window_ms = now_ms;
    return free_slot;
}

int svc_ratelimit_pass(svc_ratelimit *rl, iocp_log_level level, const char *message,
                       uint64_t now_ms, char *summary, size_t summary_size)
{
    summary[0] = '\0';
    svc_log_kind *k = find_kind(rl, svc_log_kind_key(level, message), now_ms);
    k->level = level;
    k->used_ms = now_ms;
    if (now_ms - k->window_ms >= SVC_LOG_WINDOW_MS) {
        k->window_ms = now_ms;
        k->lines = 0;
        if (k->suppressed > 0)
            summary_text(k, now_ms, summary, summary_size);
    }
    if (k->lines < SVC_LOG_BURST) {
        k->lines++;
        return 1;
    }
    if (k->suppressed == 0)
        k->first_dropped = now_ms;
    k->suppressed++;
    snprintf(k->sample, sizeof k->sample, "%s", message);
    return 0;
}

void svc_ratelimit_flush(svc_ratelimit *rl, uint64_t now_ms, int all,
                         void (*emit)(void *user, iocp_log_level level, const char *text),
                         void *user)
{
    for (size_t i = 0; i < SVC_LOG_KINDS; i++) {
        svc_log_kind *k = &rl->kinds[i];
        if (k->suppressed == 0 || (!all && now_ms - k->window_ms < SVC_LOG_WINDOW_MS))
            continue;
        char text[400];
        summary_text(k, now_ms, text, sizeof text);
        /* The summary opens a new second: the next line of the kind is not held back by it. */
        k->window_ms = now_ms;
        k->lines = 0;
        emit(user, k->level, text);
    }
}

static void emit_locked(void *user, iocp_log_level level, const char *text)
{
    (void)user;
    write_line_locked(level, text);
}

void svc_log_engine(void *user, iocp_log_level level, const char *message)
{
    (void)user;
    if (level > g.level)
        return; /* not written, so not counted either */
    char summary[400];
    lock();
    int pass = svc_ratelimit_pass(&g.rl, level, message, svc_now_ms(), summary, sizeof summary);
    if (summary[0] != '\0')
        write_line_locked(level, summary);
    if (pass)
        write_line_locked(level, message);
    unlock();
}

void svc_log_flush(void)
{
    lock();
    svc_ratelimit_flush(&g.rl, svc_now_ms(), 0, emit_locked, NULL);
    unlock();
}

static void event_locked(WORD type, const char *text)
{
    if (g.source == NULL)
        return;
    wchar_t wtext[1024];
    svc_widen(text, wtext, sizeof wtext / sizeof wtext[0]);
    const wchar_t *inserts[2] = {g.name, wtext};
    DWORD id = type == EVENTLOG_ERROR_TYPE     ? MSG_ERROR
               : type == EVENTLOG_WARNING_TYPE ? MSG_WARNING
                                               : MSG_INFO;
    ReportEventW(g.source, type, 0, id, NULL, 2, 0, inserts, NULL);
}

void svc_event(iocp_log_level level, DWORD message_id, const char *text)
{
    write_line(level, text);
    lock();
    if (g.source != NULL) {
        wchar_t wtext[1024];
        svc_widen(text, wtext, sizeof wtext / sizeof wtext[0]);
        const wchar_t *inserts[2] = {g.name, wtext};
        WORD type = level == IOCP_LOG_ERROR  ? EVENTLOG_ERROR_TYPE
                    : level == IOCP_LOG_WARN ? EVENTLOG_WARNING_TYPE
                                             : EVENTLOG_INFORMATION_TYPE;
        ReportEventW(g.source, type, 0, message_id, NULL, 2, 0, inserts, NULL);
    }
    unlock();
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
