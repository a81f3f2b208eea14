/*
 * secret_input.h: a password from standard input, as both programs take one (iocp-service's
 * PFX and account passwords, iocp-client's --tls-client-pfx password).
 *
 * A password on the command line is visible to every process that can read command lines,
 * kept by process-creation auditing and in shell history. So it is asked for on a console
 * with echo off, or read as one line from standard input when that is not a console (a pipe
 * or a file: scripts and tests).
 */
#ifndef IOCP_SECRET_INPUT_H
#define IOCP_SECRET_INPUT_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stddef.h>

/* The longest password taken, with its NUL (a longer one is refused, never cut). */
#define SECRET_MAX 256

/* Where a password comes from, decided from the standard input handle. */
typedef enum secret_source {
    SECRET_SOURCE_NONE,    /* no standard input at all */
    SECRET_SOURCE_CONSOLE, /* a console: prompt, read with echo off */
    SECRET_SOURCE_STREAM   /* a pipe or a file: one line */
} secret_source;

/* The source for handle `in`; for a console, *console_mode is its mode (may be NULL). */
secret_source secret_source_of(HANDLE in, DWORD *console_mode);

/* One line from in (a pipe or a file), without its "\n" or "\r\n", read a byte at a time so
 * that what follows stays for the next reader. NO_ERROR; ERROR_HANDLE_EOF when the input ends
 * before any byte; ERROR_INSUFFICIENT_BUFFER when the line does not fit (out is wiped then). */
DWORD secret_read_line(HANDLE in, char *out, size_t size);

/* The password from standard input: "password for <who>: " and echo off on a console, one
 * line otherwise; UTF-8 in out (size at most SECRET_MAX is used). NO_ERROR, or the cause with
 * err set: ERROR_INVALID_HANDLE (no standard input), ERROR_HANDLE_EOF (nothing came),
 * ERROR_INSUFFICIENT_BUFFER (too long), or the read's own error. */
DWORD secret_get(const char *who, char *out, size_t size, char *err, size_t err_size);

#endif
