/* secret_input.c: a password from standard input (see secret_input.h). */
#include "secret_input.h"

#include <stdio.h>

secret_source secret_source_of(HANDLE in, DWORD *console_mode)
{
    DWORD mode = 0;
    if (in == NULL || in == INVALID_HANDLE_VALUE)
        return SECRET_SOURCE_NONE;
    if (GetConsoleMode(in, &mode)) {
        if (console_mode != NULL)
            *console_mode = mode;
        return SECRET_SOURCE_CONSOLE;
    }
    return SECRET_SOURCE_STREAM;
}

DWORD secret_read_line(HANDLE in, char *out, size_t size)
{
    size_t len = 0;
    int got_any = 0;
    out[0] = '\0';
    /* A byte at a time: what follows the line stays unread for whoever reads next. */
    for (;;) {
        char c;
        DWORD n = 0;
        if (!ReadFile(in, &c, 1, &n, NULL)) {
            DWORD e = GetLastError();
            if (e != ERROR_BROKEN_PIPE && e != ERROR_HANDLE_EOF) {
                SecureZeroMemory(out, size);
                return e;
            }
            n = 0;
        }
        if (n == 0) {
            if (!got_any)
                return ERROR_HANDLE_EOF;
            break;
        }
        got_any = 1;
        if (c == '\n')
            break;
        if (len + 1 >= size) {
            SecureZeroMemory(out, size);
            return ERROR_INSUFFICIENT_BUFFER;
        }
        out[len++] = c;
    }
    if (len > 0 && out[len - 1] == '\r')
        len--;
    out[len] = '\0';
    return NO_ERROR;
}

/* The console's mode while echo is off, for the Ctrl+C handler to put back: the mode belongs
 * to the console, not to this process, and the shell would go on without echo. */
static HANDLE echo_off_console;
static DWORD echo_off_saved_mode;

static BOOL WINAPI restore_echo(DWORD type)
{
    (void)type;
    SetConsoleMode(echo_off_console, echo_off_saved_mode);
    return FALSE; /* and end the process as usual */
}

/* The console: prompt on the console's screen, read with echo off. */
static DWORD read_console_password(HANDLE in, DWORD mode, const char *who, char *out, size_t size)
{
    wchar_t line[SECRET_MAX + 2];
    DWORD n = 0, e = NO_ERROR;
    fprintf(stderr, "password for %s: ", who);
    fflush(stderr);
    echo_off_console = in;
    echo_off_saved_mode = mode;
    SetConsoleCtrlHandler(restore_echo, TRUE);
    if (!SetConsoleMode(in, (mode & ~(DWORD)ENABLE_ECHO_INPUT) | ENABLE_LINE_INPUT |
                                ENABLE_PROCESSED_INPUT)) {
        e = GetLastError();
        SetConsoleCtrlHandler(restore_echo, FALSE);
        return e;
    }
    if (!ReadConsoleW(in, line, SECRET_MAX + 1, &n, NULL))
        e = GetLastError();
    SetConsoleMode(in, mode);
    SetConsoleCtrlHandler(restore_echo, FALSE);
    fprintf(stderr, "\n"); /* the Enter the user typed was not echoed */
    if (e == NO_ERROR) {
        while (n > 0 && (line[n - 1] == L'\n' || line[n - 1] == L'\r'))
            n--;
        if (n > SECRET_MAX - 1)
            e = ERROR_INSUFFICIENT_BUFFER;
        line[n] = L'\0';
        if (e == NO_ERROR &&
            WideCharToMultiByte(CP_UTF8, 0, line, -1, out, (int)size, NULL, NULL) == 0)
            e = GetLastError();
    }
    SecureZeroMemory(line, sizeof line);
    return e;
}

static void error_text(DWORD code, char *buf, size_t size)
{
    char text[200];
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code,
                             MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), text, sizeof text, NULL);
    while (n > 0 &&
           (text[n - 1] == '\r' || text[n - 1] == '\n' || text[n - 1] == '.' || text[n - 1] == ' '))
        text[--n] = '\0';
    snprintf(buf, size, "%s (error %lu)", n > 0 ? text : "error", (unsigned long)code);
}

DWORD secret_get(const char *who, char *out, size_t size, char *err, size_t err_size)
{
    HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
    DWORD mode = 0, e;
    char text[300];
    if (size > SECRET_MAX)
        size = SECRET_MAX;
    switch (secret_source_of(in, &mode)) {
    case SECRET_SOURCE_NONE:
        snprintf(err, err_size,
                 "%s needs a password and there is no standard input to read it from: pipe it "
                 "in (one line), or run this from a console",
                 who);
        return ERROR_INVALID_HANDLE;
    case SECRET_SOURCE_CONSOLE:
        e = read_console_password(in, mode, who, out, size);
        break;
    default:
        e = secret_read_line(in, out, size);
        break;
    }
    if (e == ERROR_HANDLE_EOF)
        snprintf(err, err_size,
                 "%s needs a password: none came on standard input (give it as one line there, "
                 "or run this from a console to be asked)",
                 who);
    else if (e == ERROR_INSUFFICIENT_BUFFER)
        snprintf(err, err_size, "the password is longer than %d bytes", SECRET_MAX - 1);
    else if (e != NO_ERROR) {
        error_text(e, text, sizeof text);
        snprintf(err, err_size, "cannot read the password: %s", text);
    }
    return e;
}
