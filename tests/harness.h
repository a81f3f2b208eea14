/*
 * harness.h: the test runner shared by every test executable.
 *
 * Each test file ends with a table of named cases and TEST_MAIN(table). Run with no argument
 * it runs every case; with a name it runs that case alone (CTest registers one test per case).
 * A failed CHECK prints the expression, where it was, the project error text and the raw
 * Win32 code, then ends the process with exit code 1: a case never goes on in a broken state.
 * Builds natively too (the framing tests run on Linux as well as under Wine).
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

int test_main(int argc, char **argv, const test_case *cases, size_t count);

#define TEST_MAIN(table)                                                                           \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return test_main(argc, argv, table, sizeof(table) / sizeof(table[0]));                     \
    }

/* Prints the failure with the last system error and ends the process with exit code 1. */
void test_fail(const char *file, int line, const char *expr, const char *detail);
/* Same, with an iocp_err (as int, so this header needs no iocp.h) and its raw code. */
void test_fail_err(const char *file, int line, const char *expr, int err, unsigned long sys);

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr))                                                                               \
            test_fail(__FILE__, __LINE__, #expr, NULL);                                            \
    } while (0)

#define CHECK_MSG(expr, ...)                                                                       \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            char detail_[512];                                                                     \
            snprintf(detail_, sizeof detail_, __VA_ARGS__);                                        \
            test_fail(__FILE__, __LINE__, #expr, detail_);                                         \
        }                                                                                          \
    } while (0)

/* A path that must not be reached: fails with the message (no constant condition, which
 * MSVC's /W4 reports as C4127). */
#define FAIL_MSG(...)                                                                              \
    do {                                                                                           \
        char detail_[512];                                                                         \
        snprintf(detail_, sizeof detail_, __VA_ARGS__);                                            \
        test_fail(__FILE__, __LINE__, "unreachable", detail_);                                     \
    } while (0)

/* For calls returning an iocp_err: fails with the error's text when it is not IOCP_OK. */
#define CHECK_OK(call)                                                                             \
    do {                                                                                           \
        int err_ = (int)(call);                                                                    \
        if (err_ != 0)                                                                             \
            test_fail_err(__FILE__, __LINE__, #call, err_, 0);                                     \
    } while (0)

#define CHECK_EQ_U(a, b)                                                                           \
    CHECK_MSG((uint64_t)(a) == (uint64_t)(b), "%s = %llu, %s = %llu", #a, (unsigned long long)(a), \
              #b, (unsigned long long)(b))

/* Deterministic PRNG for tests (xorshift64*), seeded per case so failures reproduce. */
/* The running Wine's major version (8, 10, ...), or 0 when this is not Wine. */
int test_wine_major(void);
/* Whether this system has server-side TLS (Schannel's AcceptSecurityContext): Windows, or Wine
 * 10 and later (Wine 8 has none). */
int test_tls_server_role(void);
uint64_t test_rand(uint64_t *state);
void test_fill_random(uint64_t *state, void *buf, size_t len);

/* Milliseconds from a monotonic clock. */
uint64_t test_now_ms(void);
/* Sleeps a little (1 ms); the building block of polls with a deadline, never a sync. */
void test_pause(void);

/* Polls pred(arg) until it is true or timeout_ms passes; returns its last value. */
int test_wait_until(int (*pred)(void *arg), void *arg, uint32_t timeout_ms);

#ifdef _WIN32
struct _STARTUPINFOW;
struct _PROCESS_INFORMATION;
/* CreateProcessW for tests. Under Wine a start can fail with Win32 1359 (ERROR_INTERNAL_ERROR:
 * the new process died before it was initialised) when the machine is busy; such a start is
 * tried again a few times, saying so, instead of failing the case. Returns CreateProcessW's
 * result; GetLastError() holds the last failure. */
int test_create_process(const wchar_t *app, wchar_t *cmd, int inherit, unsigned long flags,
                        struct _STARTUPINFOW *si, struct _PROCESS_INFORMATION *pi);
#endif

#endif
