/*
 * proc_util.h: a program of this project run as a child process by a test: its standard
 * output and error read through pipes while it runs (so a test can wait for a line it prints),
 * its exit code, and a kill that never leaves it behind. The one way the tests start
 * iocp-service and iocp-client.
 */
#ifndef TESTS_PROC_UTIL_H
#define TESTS_PROC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <winsock2.h> /* before windows.h, for the tests that use both */
#include <windows.h>

typedef struct tp_child {
    HANDLE process;
    DWORD pid;
    unsigned long exit_code;
    /* What it wrote so far, NUL-terminated (may hold NUL bytes: see the lengths). With
     * merge_stderr, err stays empty and out has both, in the order written. */
    char *out, *err;
    size_t out_len, err_len;
    /* while running */
    HANDLE out_pipe, err_pipe;
    size_t out_cap, err_cap;
} tp_child;

/* The absolute Windows path of a program given as CMake gives it (a Unix path of a Linux
 * cross-build is reached through Wine's Z: drive). */
void tp_program_path(const char *program, wchar_t *out, size_t count);
/* Starts program with args (the command line after the program's name). stdin_handle: its
 * standard input (inherited; the caller closes its own copy after), or NULL for an empty
 * one. flags: CreateProcess flags (CREATE_NEW_PROCESS_GROUP...). Only the three standard
 * handles are inherited where the system allows a handle list, so a child that outlives the
 * test cannot hold the test's own output open. */
void tp_start(tp_child *c, const char *program, const char *args, HANDLE stdin_handle,
              int merge_stderr, DWORD flags);
/* Reads what is waiting in the pipes, without blocking. */
void tp_drain(tp_child *c);
/* Waits until a line of the output starts with prefix (1), or the child ended or timeout_ms
 * passed (0). */
int tp_wait_line(tp_child *c, const char *prefix, uint32_t timeout_ms);
/* Where a line of text starts with prefix, or NULL. */
const char *tp_find_line(const char *text, const char *prefix);
/* Waits for the exit (killing it after timeout_ms), reads everything, sets exit_code and
 * closes the handles. Returns 1 when it ended by itself. */
int tp_wait(tp_child *c, uint32_t timeout_ms);
/* Whether the system never ran it: it ended with STATUS_DLL_INIT_FAILED (0xC0000142) before
 * writing anything: a DLL's initialization failed before the program's code ran (seen once
 * under Wine 8, under load: docs/wine.md), so running the same command once more is safe. */
int tp_never_started(const tp_child *c);
/* Ends it now (exit code 1) and reads what it wrote. */
void tp_kill(tp_child *c);
/* Frees the output. */
void tp_free(tp_child *c);

#endif
