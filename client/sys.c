/* sys.c: clocks, terminal, files and console control for iocp-client (Win32). */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <share.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "safe_text.h"
#include "sys.h"

#include "iocp/iocp.h"

uint64_t client_now_us(void)
{
    static LARGE_INTEGER freq; /* written once, same value from any thread */
    LARGE_INTEGER now;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    /* Split to avoid overflow of now * 1e6 on long uptimes. */
    uint64_t q = (uint64_t)now.QuadPart / (uint64_t)freq.QuadPart;
    uint64_t r = (uint64_t)now.QuadPart % (uint64_t)freq.QuadPart;
    return q * 1000000u + r * 1000000u / (uint64_t)freq.QuadPart;
}

uint64_t client_now_ms(void)
{
    return GetTickCount64();
}

void client_sleep_ms(uint32_t ms)
{
    Sleep(ms);
}

int client_is_terminal(FILE *f)
{
    return _isatty(_fileno(f)) != 0;
}

int client_stdout_is_console(void)
{
    /* GetConsoleMode, not _isatty: _isatty is true for any character device, NUL included. */
    DWORD mode;
    return GetConsoleMode(GetStdHandle(STD_OUTPUT_HANDLE), &mode) != 0;
}

void client_write_echo(FILE *f, const void *data, size_t len, int console)
{
    if (!console) {
        fwrite(data, 1, len, f);
        return;
    }
    const char *p = data;
    char clean[4096];
    while (len > 0) {
        /* Chunks never split "\r\n" or a two-byte C1 control: cut one byte short when the
         * chunk's last byte could start either. */
        size_t n = len < sizeof clean ? len : sizeof clean;
        if (n < len && n > 1 && (p[n - 1] == '\r' || (unsigned char)p[n - 1] == 0xC2))
            n--;
        fwrite(clean, 1, safe_text(p, n, clean, sizeof clean, SAFE_TEXT_KEEP_LINES), f);
        p += n;
        len -= n;
    }
}

void client_binary_stdio(void)
{
    (void)_setmode(_fileno(stdin), _O_BINARY);
    (void)_setmode(_fileno(stdout), _O_BINARY);
}

void client_errorf(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fflush(stdout); /* keep the order of echoes and diagnostics when both go to one place */
    fprintf(stderr, "iocp-client: %s\n", line);
    fflush(stderr);
}

void client_format_where(char *buf, size_t size, const char *host, uint16_t port)
{
    if (strchr(host, ':') != NULL)
        snprintf(buf, size, "[%s]:%u", host, (unsigned)port);
    else
        snprintf(buf, size, "%s:%u", host, (unsigned)port);
}

static int read_stream(FILE *f, uint8_t **data, size_t *len)
{
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (n == cap) {
            uint8_t *grown = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (grown == NULL) {
                free(buf);
                return -1;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

int client_read_file(const char *path, uint8_t **data, size_t *len, char *err, size_t err_size)
{
    if (strcmp(path, "-") == 0) {
        (void)_setmode(_fileno(stdin), _O_BINARY);
        if (read_stream(stdin, data, len) != 0) {
            snprintf(err, err_size, "cannot read standard input");
            return -1;
        }
        return 0;
    }
    wchar_t wpath[MAX_PATH * 4];
    if (MultiByteToWideChar(CP_UTF8, 0, path, -1, wpath, (int)(sizeof wpath / sizeof *wpath)) ==
        0) {
        snprintf(err, err_size, "cannot read %s: bad file name", path);
        return -1;
    }
    /* _wfsopen: _wfopen is C4996 for MSVC, and _wfopen_s opens without sharing. */
    FILE *f = _wfsopen(wpath, L"rb", _SH_DENYNO);
    if (f == NULL) {
        unsigned long code = GetLastError();
        char why[128];
        iocp_format_error(iocp_err_from_sys(code), code, why, sizeof why);
        if (code == ERROR_FILE_NOT_FOUND || code == ERROR_PATH_NOT_FOUND)
            snprintf(why, sizeof why, "no such file (Win32 %lu)", code);
        snprintf(err, err_size, "cannot read %s: %s", path, why);
        return -1;
    }
    int rc = read_stream(f, data, len);
    fclose(f);
    if (rc != 0) {
        snprintf(err, err_size, "cannot read %s: read failed or out of memory", path);
        return -1;
    }
    return 0;
}

static volatile LONG interrupted;

static BOOL WINAPI on_console_ctrl(DWORD type)
{
    if (type == CTRL_C_EVENT || type == CTRL_BREAK_EVENT) {
        /* A second Ctrl+C ends the process the usual way. */
        if (InterlockedExchange(&interrupted, 1) != 0)
            return FALSE;
        return TRUE;
    }
    return FALSE;
}

void client_catch_interrupt(void)
{
    SetConsoleCtrlHandler(on_console_ctrl, TRUE);
}

int client_interrupted(void)
{
    return InterlockedCompareExchange(&interrupted, 0, 0) != 0;
}

uint64_t client_random_seed(void)
{
    LARGE_INTEGER now;
    QueryPerformanceCounter(&now);
    uint64_t seed = (uint64_t)now.QuadPart ^ ((uint64_t)GetCurrentProcessId() << 32);
    return seed ? seed : 1;
}
