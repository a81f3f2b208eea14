/*
 * client_runner.h: helpers for the iocp-client tests: a small JSON reader (to check the
 * --json summary parses and to read its numbers) and iocp-client run to its end as a child
 * process (tests/proc_util.h underneath), standard input from a file.
 */
#ifndef TESTS_CLIENT_RUNNER_H
#define TESTS_CLIENT_RUNNER_H

#include <stddef.h>
#include <stdint.h>

/* 0 when text is exactly one JSON value (whitespace around allowed), -1 otherwise. */
int tj_valid(const char *text);
/* The number at a dotted path of object keys ("latency_us.p50"); 0 when found. */
int tj_number(const char *text, const char *path, double *out);
/* The string at a dotted path, unescaped (ASCII escapes only); 0 when found. */
int tj_string(const char *text, const char *path, char *out, size_t size);

#ifdef _WIN32
#include "proc_util.h"

typedef struct tc_run {
    unsigned long exit_code;
    char *out; /* standard output, NUL-terminated (may hold NUL bytes: see out_len) */
    size_t out_len;
    char *err; /* standard error, NUL-terminated */
    size_t err_len;
    tp_child child; /* while running */
} tc_run;

/* A fresh temporary file name (the file exists, empty). */
void tc_temp_file(wchar_t path[260]);
/* Writes len bytes to a fresh temporary file; returns its path in path (UTF-8 too in utf8). */
void tc_write_temp(const void *data, size_t len, wchar_t path[260], char utf8[520]);

/* Starts iocp-client with `args` (the command line after the program name); standard input
 * from stdin_path (NULL = empty input). */
void tc_client_start(tc_run *r, const char *args, const wchar_t *stdin_path);
/* The same for any program (a path as CMake gives it, e.g. IOCP_SERVICE_EXE). */
void tc_program_start(tc_run *r, const char *program, const char *args, const wchar_t *stdin_path);
/* Waits up to timeout_ms (fails the test after), then collects exit code and output. */
void tc_client_finish(tc_run *r, uint32_t timeout_ms);
/* Waits for a started program (killing it after timeout_ms), collects its exit code and
 * output, prints nothing; returns 0 when it had to be killed. */
int tc_program_wait(tc_run *r, uint32_t timeout_ms);
/* Both of the above. */
void tc_client(tc_run *r, const char *args, const wchar_t *stdin_path, uint32_t timeout_ms);
void tc_run_free(tc_run *r);
/* A port with nothing listening on it, outside the ephemeral ranges (bound and released). */
uint16_t tc_free_port(void);
#endif

#endif
