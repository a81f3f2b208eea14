/*
 * sys.h: what iocp-client needs from the system besides the engine: clocks, the terminal,
 * binary standard streams, reading a payload file, Ctrl+C, diagnostics on stderr.
 */
#ifndef CLIENT_SYS_H
#define CLIENT_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Monotonic clocks. */
uint64_t client_now_us(void);
uint64_t client_now_ms(void);
void client_sleep_ms(uint32_t ms);

/* 1 when the stream is a console or terminal. */
int client_is_terminal(FILE *f);
/* 1 when standard output is a console (not a file, a pipe or NUL). */
int client_stdout_is_console(void);
/* Writes an echo to f: byte for byte, unless console is set; then control characters are
 * replaced first (safe_text.h), since the bytes came from the network and a console would
 * act on them. Scripts that redirect the output keep the exact echo. */
void client_write_echo(FILE *f, const void *data, size_t len, int console);

/* Standard input and output in binary mode: echoes are printed byte for byte, no "\r\n". */
void client_binary_stdio(void);

/* Reads a whole file (path in UTF-8; "-" = standard input). On failure returns -1 and writes
 * "cannot read PATH: reason (Win32 n)" into err. *data is malloc'd (never NULL on success). */
int client_read_file(const char *path, uint8_t **data, size_t *len, char *err, size_t err_size);

/* printf-style checking where the compiler has it; MinGW's stdio is its own (C99 formats). */
#if defined(__MINGW_PRINTF_FORMAT)
#define CLIENT_PRINTF(f, a) __attribute__((format(__MINGW_PRINTF_FORMAT, f, a)))
#elif defined(__GNUC__) || defined(__clang__)
#define CLIENT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLIENT_PRINTF(f, a)
#endif

/* "iocp-client: " + message + "\n" on stderr. */
void client_errorf(const char *fmt, ...) CLIENT_PRINTF(1, 2);

/* "host:port", or "[host]:port" for an IPv6 literal. */
void client_format_where(char *buf, size_t size, const char *host, uint16_t port);

/* Ctrl+C / Ctrl+Break set a flag instead of ending the process (load mode prints its summary). */
void client_catch_interrupt(void);
int client_interrupted(void);

/* A seed for jitter that differs between processes and runs. */
uint64_t client_random_seed(void);

#endif
