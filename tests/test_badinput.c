/*
 * test_badinput.c: malformed, oversized and random command lines for iocp-client and
 * iocp-service. Every run must end with a documented exit code and, when it fails, a message
 * on stderr; never a crash (70), never a hang. (The status pipe's bad requests are in
 * test_service.c: status_pipe_abuse.)
 */
#include "harness.h"
#include "net_util.h"
#include "client_runner.h"

#include <stdlib.h>
#include <string.h>

static const char *const values[] = {
    "",          "0",
    "-1",        "1",
    "65536",     "99999999999999999999",
    "abc",       "1k",
    "1M",        "4G",
    "0x10",      "1e9",
    "raw",       "line",
    "length",    "bogus",
    "-",         "--",
    "\"\"",      "\xc3\xa9t\xc3\xa9",
    "%s%n%s",    "127.0.0.1",
    "::1",       "[::1]",
    "localhost", "9.5",
    "  7",       "--port",
};

static const char *const client_options[] = {
    "--framing",      "--timeout",        "--file",  "--max-message", "--backoff",  "--backoff-max",
    "--attempts",     "--connections",    "--depth", "--size",        "--messages", "--threads",
    "--connect-rate", "--load",           "--json",  "--quiet",       "--churn",    "--help",
    "--version",      "--no-such-option", "-x",      "---",
};

static const char *const service_options[] = {
    "--port",    "--max-connections", "--buffer-size",
    "--framing", "--max-message",     "--idle-timeout",
    "--workers", "--drain-timeout",   "--log-file",
    "--name",    "--start",           "--account",
    "--timeout", "--no-such-option",  "--help",
    "-p",
};

static const char *pick(uint64_t *seed, const char *const *list, size_t n)
{
    return list[test_rand(seed) % n];
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Appends " token" quoted, so empty and spaced values arrive as one argument. */
static void add(char *cmd, size_t size, const char *token)
{
    size_t len = strlen(cmd);
    snprintf(cmd + len, size - len, " \"%s\"", token);
}

static int documented(unsigned long code, const unsigned long *ok, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (code == ok[i])
            return 1;
    return 0;
}

/* Silent when the run behaves: the log of a failure then shows the one that did not. */
static void check_run(const char *program, const char *args, const unsigned long *ok, size_t n)
{
    tc_run r;
    tc_program_start(&r, program, args, NULL);
    int exited = tc_program_wait(&r, 30000);
    CHECK_MSG(exited, "still running after 30 s on: %s\nstdout: %s\nstderr: %s", args, r.out,
              r.err);
    CHECK_MSG(r.exit_code != 70, "crashed on: %s\nstderr: %s", args, r.err);
    CHECK_MSG(documented(r.exit_code, ok, n),
              "exit code %lu (undocumented) on: %s\nstdout: %s\nstderr: %s", r.exit_code, args,
              r.out, r.err);
    if (r.exit_code != 0)
        CHECK_MSG(r.err_len > 0, "exit code %lu but no message on: %s\nstdout: %s", r.exit_code,
                  args, r.out);
    tc_run_free(&r);
}

/* Random option lists after a safe host and a port nobody listens on: a valid combination
 * is refused (3) at once; nothing long-running (--reconnect, --duration) is generated. */
static void client_random_command_lines(void)
{
    static const unsigned long ok[] = {0, 1, 2, 3, 4, 5, 7};
    uint64_t seed = 2026;
    uint16_t port = tc_free_port();
    int runs = 0;
    for (int i = 0; i < 60; i++) {
        char args[2048];
        snprintf(args, sizeof args, "127.0.0.1 %u --timeout 2000", (unsigned)port);
        int tokens = 1 + (int)(test_rand(&seed) % 6);
        for (int t = 0; t < tokens; t++) {
            add(args, sizeof args, pick(&seed, client_options, COUNT(client_options)));
            if (test_rand(&seed) % 4)
                add(args, sizeof args, pick(&seed, values, COUNT(values)));
        }
        check_run(IOCP_CLIENT_EXE, args, ok, COUNT(ok));
        runs++;
    }
    /* Malformed positions: no host, a bad port, a huge argument. */
    static const char *const fixed[] = {
        "",      "127.0.0.1", "127.0.0.1 0", "127.0.0.1 70000", "127.0.0.1 port", "127.0.0.1 -5",
        "\"\" 9"};
    for (size_t i = 0; i < COUNT(fixed); i++) {
        check_run(IOCP_CLIENT_EXE, fixed[i], ok, COUNT(ok));
        runs++;
    }
    char *huge = malloc(20000);
    CHECK(huge != NULL);
    snprintf(huge, 64, "127.0.0.1 %u --framing ", (unsigned)port);
    size_t at = strlen(huge);
    memset(huge + at, 'A', 19000 - at);
    huge[19000] = '\0';
    check_run(IOCP_CLIENT_EXE, huge, ok, COUNT(ok));
    free(huge);
    runs++;
    tn_metric("client_command_lines", TN_NOT_MEASURED, TN_NOT_MEASURED, runs, TN_NOT_MEASURED,
              TN_NOT_MEASURED, 0);
}

/* iocp-service: random commands and options. `run` always ends with --port of a listener
 * this test holds, so a combination that parses fails with "port in use" (2) instead of
 * serving; SCM commands are left out (they would really install services). */
static void service_random_command_lines(void)
{
    static const unsigned long ok[] = {0, 1, 2, 3, 5, 7, 8};
    iocp_engine *holder = tn_start(NULL, NULL, NULL);
    uint16_t busy = iocp_engine_port(holder);
    uint64_t seed = 1969;
    int runs = 0;
    static const char *const commands[] = {"run", "run", "run", "status", "bogus", "--help", ""};
    for (int i = 0; i < 60; i++) {
        char args[2048];
        const char *cmd = pick(&seed, commands, COUNT(commands));
        snprintf(args, sizeof args, "%s", cmd);
        int tokens = (int)(test_rand(&seed) % 6);
        for (int t = 0; t < tokens; t++) {
            const char *opt = pick(&seed, service_options, COUNT(service_options));
            if (strcmp(opt, "--port") == 0 || strcmp(opt, "--name") == 0 ||
                strcmp(opt, "--log-file") == 0)
                opt = "--workers"; /* those three stay as this test sets them */
            add(args, sizeof args, opt);
            if (test_rand(&seed) % 4)
                add(args, sizeof args, pick(&seed, values, COUNT(values)));
        }
        size_t len = strlen(args);
        snprintf(args + len, sizeof args - len, " --name badinput-%lu --port %u",
                 (unsigned long)GetCurrentProcessId(), (unsigned)busy);
        check_run(IOCP_SERVICE_EXE, args, ok, COUNT(ok));
        runs++;
    }
    tn_stop_clean(holder);
    tn_metric("service_command_lines", TN_NOT_MEASURED, TN_NOT_MEASURED, runs, TN_NOT_MEASURED,
              TN_NOT_MEASURED, 0);
}

static const test_case cases[] = {
    {"client_random_command_lines", client_random_command_lines},
    {"service_random_command_lines", service_random_command_lines},
};

TEST_MAIN(cases)
