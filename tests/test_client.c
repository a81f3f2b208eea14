/*
 * test_client.c: iocp-client as a program, run as a child process against servers started in
 * this process (an engine on port 0): the three modes, host names, exit codes and messages of
 * each failure, load mode's counts against the server's own statistics, reconnecting, and
 * --tls against a TLS server engine (that needs server-side Schannel: Windows or Wine 10; under
 * Wine 8 those cases check the engine's refusal to start and say so, and the client-side checks
 * that need no TLS server run everywhere).
 */
#include "harness.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "net_util.h"
#include "client_runner.h"

#include "iocp/iocp.h"

#ifndef IOCP_TLS_DIR
#error "IOCP_TLS_DIR must name tests/tls (set by tests/CMakeLists.txt)"
#endif

static iocp_engine *echo_server(iocp_framing framing)
{
    iocp_config c;
    iocp_config_init(&c);
    c.framing = framing;
    c.max_message = 16u << 20;
    c.send_queue_cap = 2 * ((size_t)c.buffer_size + c.max_message + 4);
    return tn_start(&c, NULL, NULL);
}

/* Runs the client: fmt is the command line after the program name, with "%u" for the port. */
static void run(tc_run *r, iocp_engine *e, uint16_t port, const char *fmt, const wchar_t *in,
                uint32_t timeout_ms)
{
    char args[4096];
    snprintf(args, sizeof args, fmt, (unsigned)(e != NULL ? iocp_engine_port(e) : port));
    tc_client(r, args, in, timeout_ms);
}

static void wait_idle(iocp_engine *e)
{
    CHECK_MSG(tn_wait_stat(e, offsetof(iocp_stats, active), 0, 10000),
              "the server still has connections");
}

static void check_err_says(const tc_run *r, const char *want)
{
    CHECK_MSG(strstr(r->err, want) != NULL, "stderr lacks \"%s\"", want);
}

/* ---- message mode ----------------------------------------------------------------------- */

static void message_small(void)
{
    iocp_engine *e = echo_server(IOCP_FRAMING_RAW);
    tc_run r;
    run(&r, e, 0, "127.0.0.1 %u hello \"two words\" x", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK(strcmp(r.out, "hello\ntwo words\nx\n") == 0);
    CHECK_EQ_U(r.err_len, 0);
    tc_run_free(&r);
    wait_idle(e);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.accepted, 1);
    CHECK_EQ_U(st.bytes_in, 15);
    CHECK_EQ_U(st.bytes_out, 15);
    tn_stop_clean(e);
}

static void message_empty(void)
{
    /* raw: nothing to send, the echo is trivially empty */
    iocp_engine *e = echo_server(IOCP_FRAMING_RAW);
    tc_run r;
    run(&r, e, 0, "127.0.0.1 %u \"\"", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK(strcmp(r.out, "\n") == 0);
    tc_run_free(&r);
    wait_idle(e);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.bytes_in, 0);
    tn_stop_clean(e);

    /* length and line framing: an empty message is a real one, and it comes back */
    static const iocp_framing modes[] = {IOCP_FRAMING_LENGTH, IOCP_FRAMING_LINE};
    static const char *const names[] = {"length", "line"};
    for (int m = 0; m < 2; m++) {
        e = echo_server(modes[m]);
        char fmt[128];
        snprintf(fmt, sizeof fmt, "127.0.0.1 %%u --framing %s \"\" abc \"\"", names[m]);
        run(&r, e, 0, fmt, NULL, 30000);
        CHECK_EQ_U(r.exit_code, 0);
        CHECK(strcmp(r.out, "\nabc\n\n") == 0);
        tc_run_free(&r);
        wait_idle(e);
        iocp_engine_stats(e, &st);
        CHECK_EQ_U(st.messages_in, 3);
        CHECK_EQ_U(st.messages_out, 3);
        tn_stop_clean(e);
    }
}

static void message_10_mib(void)
{
    const size_t len = 10u << 20;
    uint8_t *data = malloc(len);
    CHECK(data != NULL);
    uint64_t rng = 10;
    test_fill_random(&rng, data, len);
    wchar_t path[260];
    char upath[520];
    tc_write_temp(data, len, path, upath);

    static const char *const framings[] = {"raw", "length"};
    for (int f = 0; f < 2; f++) {
        iocp_engine *e = echo_server(f == 0 ? IOCP_FRAMING_RAW : IOCP_FRAMING_LENGTH);
        char args[800];
        snprintf(args, sizeof args, "127.0.0.1 %u --framing %s --file \"%s\"",
                 (unsigned)iocp_engine_port(e), framings[f], upath);
        tc_run r;
        tc_client(&r, args, NULL, 120000);
        CHECK_EQ_U(r.exit_code, 0);
        CHECK_EQ_U(r.out_len, len + 1);
        CHECK(memcmp(r.out, data, len) == 0);
        CHECK(r.out[len] == '\n');
        tc_run_free(&r);
        wait_idle(e);
        iocp_stats st;
        iocp_engine_stats(e, &st);
        CHECK_EQ_U(st.bytes_out, st.bytes_in);
        CHECK(st.bytes_in >= len);
        tn_stop_clean(e);
    }
    DeleteFileW(path);
    free(data);
}

static void host_names(void)
{
    iocp_engine *e = echo_server(IOCP_FRAMING_RAW); /* [::] dual-stack */
    static const char *const hosts[] = {"localhost", "127.0.0.1", "::1", "[::1]"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        char fmt[128];
        snprintf(fmt, sizeof fmt, "%s %%u ping-%zu", hosts[i], i);
        tc_run r;
        run(&r, e, 0, fmt, NULL, 30000);
        CHECK_MSG(r.exit_code == 0, "host %s: exit %lu", hosts[i], r.exit_code);
        char want[32];
        snprintf(want, sizeof want, "ping-%zu\n", i);
        CHECK(strcmp(r.out, want) == 0);
        tc_run_free(&r);
    }
    wait_idle(e);
    tn_stop_clean(e);
}

/* ---- interactive mode ------------------------------------------------------------------- */

static void interactive_from_file(void)
{
    /* raw: each line goes as it was read; the output is the input, byte for byte */
    static const char input[] = "one\ntwo words\n\n\tthree\r\nlast line without newline";
    wchar_t in[260];
    tc_write_temp(input, sizeof input - 1, in, NULL);
    iocp_engine *e = echo_server(IOCP_FRAMING_RAW);
    tc_run r;
    run(&r, e, 0, "127.0.0.1 %u", in, 30000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK_EQ_U(r.out_len, sizeof input - 1);
    CHECK(memcmp(r.out, input, sizeof input - 1) == 0);
    tc_run_free(&r);
    wait_idle(e);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.bytes_in, sizeof input - 1);
    tn_stop_clean(e);

    /* line framing: one message per line, line ends normalised to '\n' */
    e = echo_server(IOCP_FRAMING_LINE);
    run(&r, e, 0, "localhost %u --framing line", in, 30000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK(strcmp(r.out, "one\ntwo words\n\n\tthree\nlast line without newline\n") == 0);
    tc_run_free(&r);
    wait_idle(e);
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.messages_in, 5);
    tn_stop_clean(e);

    /* empty input: connects, ends cleanly */
    e = echo_server(IOCP_FRAMING_RAW);
    run(&r, e, 0, "127.0.0.1 %u", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK_EQ_U(r.out_len, 0);
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
    DeleteFileW(in);
}

/* Output that is not a console gets the echo's exact bytes, control characters included: only
 * a console gets them filtered (test_client_units.echo_filtered_only_on_console). */
static void control_bytes_exact_when_redirected(void)
{
    static const char input[] = "\x1b[2J\x1b]0;title\x07\r\n\xc2\x9b"
                                "31m\x08\x7f\x00\x01\rend\n";
    wchar_t in[260];
    tc_write_temp(input, sizeof input - 1, in, NULL);
    iocp_engine *e = echo_server(IOCP_FRAMING_RAW);
    tc_run r;
    run(&r, e, 0, "127.0.0.1 %u", in, 30000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK_EQ_U(r.out_len, sizeof input - 1);
    CHECK(memcmp(r.out, input, sizeof input - 1) == 0);
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
    DeleteFileW(in);
}

/* ---- load mode -------------------------------------------------------------------------- */

static double num(const tc_run *r, const char *path)
{
    double v = -1;
    CHECK_MSG(tj_number(r->out, path, &v) == 0, "no number %s in the JSON", path);
    return v;
}

static void load_100_connections(void)
{
    iocp_engine *e = echo_server(IOCP_FRAMING_RAW);
    tc_run r;
    run(&r, e, 0, "127.0.0.1 %u --load --connections 100 --duration 3 --json", NULL, 60000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK_MSG(tj_valid(r.out) == 0, "not one JSON object: %s", r.out);
    CHECK(strstr(r.err, "msg/s") != NULL); /* progress lines, plain when not a terminal */
    double messages = num(&r, "messages");
    CHECK(messages > 0);
    CHECK(num(&r, "messages_per_s") > 0);
    CHECK(num(&r, "mb_per_s") > 0);
    CHECK(num(&r, "mismatches") == 0);
    CHECK(num(&r, "errors.total") == 0);
    CHECK(num(&r, "connects") == 100);
    CHECK(num(&r, "latency_us.count") == messages);
    CHECK(num(&r, "latency_us.p50") <= num(&r, "latency_us.p99"));
    CHECK(num(&r, "latency_us.p99") <= num(&r, "latency_us.max"));
    CHECK(num(&r, "bytes_sent") == messages * 64);
    CHECK(num(&r, "bytes_received") == messages * 64);
    wait_idle(e);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.accepted, 100);
    CHECK_EQ_U(st.bytes_in, (uint64_t)num(&r, "bytes_sent"));
    CHECK_EQ_U(st.bytes_out, (uint64_t)num(&r, "bytes_received"));
    tc_run_free(&r);
    tn_stop_clean(e);
}

static void load_length_depth_count(void)
{
    iocp_engine *e = echo_server(IOCP_FRAMING_LENGTH);
    tc_run r;
    run(&r, e, 0,
        "127.0.0.1 %u --load --framing length --connections 20 --depth 8 --size 1000 "
        "--messages 20000 --json --quiet",
        NULL, 120000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK(tj_valid(r.out) == 0);
    CHECK(r.err_len == 0);
    CHECK(num(&r, "messages") == 20000);
    CHECK(num(&r, "bytes_received") == 20000.0 * 1000);
    wait_idle(e);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.messages_in, 20000);
    CHECK_EQ_U(st.messages_out, 20000);
    CHECK_EQ_U(st.bytes_in, 20000u * 1004u);
    tc_run_free(&r);
    tn_stop_clean(e);
}

static void load_churn_line(void)
{
    iocp_engine *e = echo_server(IOCP_FRAMING_LINE);
    tc_run r;
    run(&r, e, 0,
        "127.0.0.1 %u --load --framing line --churn --connections 10 --duration 2 --size 100 "
        "--json --quiet",
        NULL, 60000);
    CHECK_EQ_U(r.exit_code, 0);
    double connects = num(&r, "connects"), messages = num(&r, "messages");
    CHECK(connects > 10);
    CHECK(messages <= connects && messages >= connects - 10);
    CHECK(num(&r, "mismatches") == 0);
    wait_idle(e);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    /* A dial still in flight when the run ends is cancelled by the client's stop and not
     * counted, but the server may have accepted it already: at most one per slot. */
    CHECK_MSG(st.accepted >= (uint64_t)connects && st.accepted <= (uint64_t)connects + 10,
              "the server accepted %llu, the client connected %.0f times with 10 slots",
              (unsigned long long)st.accepted, connects);
    CHECK_EQ_U(st.messages_in, (uint64_t)messages);
    tc_run_free(&r);
    tn_stop_clean(e);
}

static void load_connect_rate(void)
{
    iocp_engine *e = echo_server(IOCP_FRAMING_RAW);
    tc_run r;
    run(&r, e, 0,
        "127.0.0.1 %u --load --connections 40 --connect-rate 80 --duration 1 --json --quiet", NULL,
        60000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK(num(&r, "connects") == 40);
    wait_idle(e);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.accepted, 40);
    tc_run_free(&r);
    tn_stop_clean(e);
}

/* ---- failures: exit code and message ---------------------------------------------------- */

static void refused_port(void)
{
    uint16_t port = tc_free_port();
    tc_run r;
    run(&r, NULL, port, "127.0.0.1 %u hello", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 3);
    char want[128];
    snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%u: connection refused (",
             (unsigned)port);
    check_err_says(&r, want);
    CHECK(r.out_len == 0);
    tc_run_free(&r);

    run(&r, NULL, port, "127.0.0.1 %u --load --connections 3 --duration 1 --json --quiet", NULL,
        30000);
    CHECK_EQ_U(r.exit_code, 3);
    CHECK(tj_valid(r.out) == 0);
    CHECK(num(&r, "errors.refused") == 3);
    CHECK(num(&r, "connect_failures") == 3);
    CHECK(num(&r, "exit_code") == 3);
    tc_run_free(&r);
}

static void unresolvable_name(void)
{
    tc_run r;
    run(&r, NULL, 9, "no-such-host.invalid %u hello", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 2);
    check_err_says(&r, "cannot connect to no-such-host.invalid:9: cannot resolve host name (");
    tc_run_free(&r);
}

static void usage_errors(void)
{
    tc_run r;
    tc_client(&r, "127.0.0.1 9 --bogus", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 1);
    check_err_says(&r, "unknown option '--bogus'");
    tc_run_free(&r);
    tc_client(&r, "127.0.0.1", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 1);
    tc_run_free(&r);
    tc_client(&r, "--help", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK(strstr(r.out, "--connect-rate R") != NULL && strstr(r.out, "[10000]") != NULL);
    tc_run_free(&r);
    tc_client(&r, "127.0.0.1 9 --file no-such-file.bin", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 7);
    check_err_says(&r, "cannot read no-such-file.bin: no such file (Win32 2)");
    tc_run_free(&r);
}

/* Servers that misbehave on purpose. */
static void half_echo_then_close(iocp_conn *conn, const void *data, size_t len)
{
    iocp_conn_send(conn, data, len / 2);
    iocp_conn_close(conn, IOCP_GRACEFUL);
}

static void half_echo_then_reset(iocp_conn *conn, const void *data, size_t len)
{
    iocp_conn_send(conn, data, len / 2);
    iocp_conn_close(conn, IOCP_ABORT);
}

static void corrupt_echo(iocp_conn *conn, const void *data, size_t len)
{
    uint8_t buf[65536];
    size_t n = len < sizeof buf ? len : sizeof buf;
    memcpy(buf, data, n);
    if (n > 0)
        buf[n - 1] ^= 0x01;
    iocp_conn_send(conn, buf, n);
}

static void no_echo(iocp_conn *conn, const void *data, size_t len)
{
    (void)conn;
    (void)data;
    (void)len;
}

static void nop_open(iocp_conn *conn)
{
    (void)conn;
}

static void nop_close(iocp_conn *conn, iocp_close_reason reason, unsigned long sys_code)
{
    (void)conn;
    (void)reason;
    (void)sys_code;
}

static iocp_engine *odd_server(void (*on_data)(iocp_conn *, const void *, size_t))
{
    static iocp_handlers h;
    h.on_open = nop_open;
    h.on_data = on_data;
    h.on_close = nop_close;
    h.on_connect_failed = NULL;
    return tn_start(NULL, &h, NULL);
}

static char *long_message(size_t len)
{
    char *m = malloc(len + 1);
    CHECK(m != NULL);
    memset(m, 'x', len);
    m[len] = '\0';
    return m;
}

static void server_closes_mid_echo(void)
{
    char *msg = long_message(1000);
    char fmt[1200];
    snprintf(fmt, sizeof fmt, "127.0.0.1 %%u %s", msg);

    iocp_engine *e = odd_server(half_echo_then_close);
    tc_run r;
    run(&r, e, 0, fmt, NULL, 30000);
    CHECK_EQ_U(r.exit_code, 5);
    char want[128];
    snprintf(want, sizeof want, "connection to 127.0.0.1:%u closed by the server after ",
             (unsigned)iocp_engine_port(e));
    check_err_says(&r, want);
    check_err_says(&r, " of 1000 echo bytes");
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);

    e = odd_server(half_echo_then_reset);
    run(&r, e, 0, fmt, NULL, 30000);
    CHECK_EQ_U(r.exit_code, 5);
    snprintf(want, sizeof want, "connection to 127.0.0.1:%u ", (unsigned)iocp_engine_port(e));
    check_err_says(&r, want);
    check_err_says(&r, " of 1000 echo bytes");
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
    free(msg);
}

static void echo_mismatch(void)
{
    iocp_engine *e = odd_server(corrupt_echo);
    tc_run r;
    run(&r, e, 0, "127.0.0.1 %u hello", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 6);
    check_err_says(&r, "echo mismatch from 127.0.0.1:");
    check_err_says(&r, "message 1 (5 bytes) differs at byte 4: sent 0x6f, got 0x6e");
    CHECK(strcmp(r.out, "helln\n") == 0); /* the echo is printed as it came */
    tc_run_free(&r);

    run(&r, e, 0, "127.0.0.1 %u --load --connections 4 --duration 1 --json --quiet", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 6);
    CHECK(num(&r, "mismatches") >= 1);
    CHECK(num(&r, "errors.mismatch") >= 1);
    check_err_says(&r, "echo mismatch from 127.0.0.1:");
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
}

static void echo_timeout(void)
{
    iocp_engine *e = odd_server(no_echo);
    tc_run r;
    run(&r, e, 0, "127.0.0.1 %u --timeout 500 hello", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 4);
    check_err_says(&r, "timed out waiting for the echo from 127.0.0.1:");
    tc_run_free(&r);

    run(&r, e, 0, "127.0.0.1 %u --load --connections 2 --duration 1 --timeout 300 --json --quiet",
        NULL, 30000);
    CHECK_EQ_U(r.exit_code, 4);
    CHECK(num(&r, "errors.timeout") >= 2);
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
}

/* A framed client against a server that frames otherwise never sees a whole message: the
 * timeout says the framings may differ, and says which one the client used. */
static void framing_mismatch(void)
{
    iocp_engine *e = echo_server(IOCP_FRAMING_LINE); /* waits for a '\n' that never comes */
    tc_run r;
    run(&r, e, 0, "127.0.0.1 %u --framing length --timeout 500 hello", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 4);
    check_err_says(&r, "no whole length-framed message came back in 500 ms for the 5-byte "
                       "message sent; the server's framing may differ: match it with --framing");
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
    /* Raw bytes to a length-framed server: "hell" is a header past max_message, so the
     * server closes; the client says framing may be why. */
    e = echo_server(IOCP_FRAMING_LENGTH);
    run(&r, e, 0, "127.0.0.1 %u --timeout 5000 hello", NULL, 30000);
    CHECK_MSG(r.exit_code == 5, "exit %lu: %s", r.exit_code, r.err);
    check_err_says(&r, "after 0 of 5 echo bytes (a server that frames its messages closes on "
                       "raw bytes: match it with --framing line or length)");
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
}

/* ---- reconnect -------------------------------------------------------------------------- */

/* An echo server on a given port: the port may still be held for a moment after a stop. */
static iocp_engine *echo_server_on(uint16_t port)
{
    uint64_t deadline = test_now_ms() + 15000;
    for (;;) {
        iocp_config c;
        iocp_config_init(&c);
        c.port = port;
        iocp_engine *e = NULL;
        iocp_error_info err;
        iocp_err rc = iocp_engine_start(&c, NULL, NULL, &e, &err);
        if (rc == IOCP_OK)
            return e;
        CHECK_MSG(rc == IOCP_E_ADDR_IN_USE && test_now_ms() < deadline,
                  "cannot restart on port %u: %s", (unsigned)port, err.message);
        Sleep(100);
    }
}

static void reconnect_resumes_after_restart(void)
{
    /* A port outside the ephemeral ranges: while the server is down, the client's redials
     * must not be able to connect to themselves on it (TCP simultaneous open). */
    uint16_t port = tc_free_port();
    iocp_engine *first = echo_server_on(port);
    char args[256];
    snprintf(args, sizeof args,
             "127.0.0.1 %u --load --connections 5 --duration 6 --reconnect --backoff 50 "
             "--backoff-max 400 --attempts 0 --json",
             (unsigned)port);
    printf("  iocp-client %s\n", args);
    tc_run r;
    tc_client_start(&r, args, NULL);
    /* Let it run, then take the server away under it. */
    CHECK(tn_wait_stat(first, offsetof(iocp_stats, active), 5, 20000));
    Sleep(1000);
    CHECK_OK(iocp_engine_stop(first, 0));
    iocp_stats st1;
    iocp_engine_stats(first, &st1);
    CHECK(st1.bytes_in > 0);
    iocp_engine_destroy(first);
    Sleep(1000); /* down for a while: the client backs off and retries */
    iocp_engine *second = echo_server_on(port);
    tc_client_finish(&r, 60000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK(tj_valid(r.out) == 0);
    CHECK(num(&r, "reconnects") >= 5);
    CHECK(num(&r, "mismatches") == 0);
    CHECK(num(&r, "connects") >= 10);
    wait_idle(second);
    iocp_stats st2;
    iocp_engine_stats(second, &st2);
    CHECK(st2.accepted >= 5);
    CHECK(st2.bytes_in > 0); /* it resumed against the new server */
    /* every byte sent was echoed, or lost with its connection when the server went away
     * (then the server may or may not have read it) */
    uint64_t server_in = st1.bytes_in + st2.bytes_in;
    CHECK(server_in >= (uint64_t)num(&r, "bytes_received"));
    CHECK(server_in <= (uint64_t)num(&r, "bytes_sent"));
    CHECK_EQ_U(num(&r, "bytes_sent"), num(&r, "bytes_received") + 64 * num(&r, "lost_in_flight"));
    tc_run_free(&r);
    tn_stop_clean(second);
}

static void reconnect_waits_for_server(void)
{
    uint16_t port = tc_free_port();
    char args[256];
    snprintf(args, sizeof args, "127.0.0.1 %u --reconnect --backoff 100 --backoff-max 300 hello",
             (unsigned)port);
    printf("  iocp-client %s\n", args);
    tc_run r;
    tc_client_start(&r, args, NULL);
    Sleep(700); /* refused a few times */
    iocp_engine *e = echo_server_on(port);
    tc_client_finish(&r, 30000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK(strcmp(r.out, "hello\n") == 0);
    check_err_says(&r, "connection refused (");
    check_err_says(&r, "retrying in ");
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
}

/* ---- TLS -------------------------------------------------------------------------------- */

/* "/path/tests/tls/NAME" (static storage: the engine's config may keep the pointer). */
static const char *tls_file(const char *name)
{
    static char paths[4][600];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", IOCP_TLS_DIR, name);
    return p;
}

/* A TLS echo server (dual-stack, port 0) with the certificate in tests/tls/PFX. Where the
 * system has no server-side Schannel (Wine 8) it checks that the engine refuses to start with
 * IOCP_E_TLS, says the case needs Wine 10 (or Windows), and returns NULL. */
static iocp_engine *tls_server(const char *pfx, iocp_framing framing)
{
    iocp_config c;
    iocp_config_init(&c);
    c.framing = framing;
    c.tls.pfx_path = tls_file(pfx);
    c.tls.pfx_password = "iocp-test";
    c.log_level = IOCP_LOG_WARN;
    if (!test_tls_server_role()) {
        iocp_engine *e = NULL;
        iocp_error_info err;
        iocp_err rc = iocp_engine_start(&c, NULL, NULL, &e, &err);
        CHECK_MSG(rc == IOCP_E_TLS, "a TLS server started without server-side TLS (%d): %s",
                  (int)rc, err.message);
        printf("  no server-side Schannel here (Wine 8): the engine refused as it should (%s);\n"
               "  the TLS server part of this case needs Wine 10 or Windows\n",
               err.message);
        return NULL;
    }
    return tn_start(&c, NULL, NULL);
}

/* What needs no TLS server, so it runs under every Wine: option errors, a CA file that cannot
 * be used, and a server that does not speak TLS (a plaintext echo server: the client's
 * ClientHello comes back as the "reply"). */
static void tls_client_side_errors(void)
{
    tc_run r;
    tc_client(&r, "127.0.0.1 9 --tls-insecure hi", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 1);
    check_err_says(&r, "--tls-insecure only applies with --tls");
    tc_run_free(&r);
    tc_client(&r, "127.0.0.1 9 --tls --tls-ca ca.pem --tls-insecure hi", NULL, 30000);
    CHECK_EQ_U(r.exit_code, 1);
    tc_run_free(&r);

    iocp_engine *e = echo_server(IOCP_FRAMING_RAW);
    /* a missing --tls-ca file: said before any dial, in every mode */
    static const char *const modes[] = {"hello", "", "--load --duration 1 --quiet"};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        char fmt[200];
        snprintf(fmt, sizeof fmt, "127.0.0.1 %%u --tls --tls-ca no-such-ca.pem %s", modes[m]);
        run(&r, e, 0, fmt, NULL, 30000);
        CHECK_MSG(r.exit_code == 7, "mode '%s': exit %lu", modes[m], r.exit_code);
        check_err_says(&r, "cannot use --tls-ca no-such-ca.pem: cannot open no-such-ca.pem: ");
        tc_run_free(&r);
    }
    /* a file that holds no certificate */
    wchar_t path[260];
    char upath[520];
    tc_write_temp("not a certificate\n", 18, path, upath);
    char args[900];
    snprintf(args, sizeof args, "127.0.0.1 %u --tls --tls-ca \"%s\" hello",
             (unsigned)iocp_engine_port(e), upath);
    tc_client(&r, args, NULL, 30000);
    CHECK_EQ_U(r.exit_code, 7);
    check_err_says(&r, "holds no certificate");
    tc_run_free(&r);
    DeleteFileW(path);

    /* A client certificate that cannot be used, beside a good --tls-ca: the message names
     * --tls-client-pfx, not the CA file (it once said "cannot use --tls-ca" for both). */
    tc_write_temp("not-the-password\n", 17, path, upath);
    char pfx[600];
    snprintf(pfx, sizeof pfx, "%s", tls_file("client.pfx"));
    snprintf(args, sizeof args, "127.0.0.1 %u --tls --tls-ca \"%s\" --tls-client-pfx \"%s\" hello",
             (unsigned)iocp_engine_port(e), tls_file("ca.pem"), pfx);
    tc_client(&r, args, path, 30000);
    CHECK_MSG(r.exit_code == 7, "exit %lu: %s", r.exit_code, r.err);
    char want[700];
    snprintf(want, sizeof want, "cannot use --tls-client-pfx %s: cannot open %s: wrong password",
             pfx, pfx);
    check_err_says(&r, want);
    CHECK_MSG(strstr(r.err, "--tls-ca") == NULL, "the CA file is blamed: %s", r.err);
    tc_run_free(&r);
    DeleteFileW(path);

    /* a plaintext server: the handshake fails, exit code 8, not "cannot connect" (3) */
    run(&r, e, 0, "127.0.0.1 %u --tls --timeout 5000 hello", NULL, 30000);
    CHECK_MSG(r.exit_code == 8, "exit %lu: %s", r.exit_code, r.err);
    check_err_says(&r, "TLS handshake failed");
    /* not an SSPI status name the user cannot act on */
    check_err_says(&r, "the server did not answer TLS (it sent our ClientHello back");
    printf("  plaintext server: %s", r.err);
    CHECK(r.out_len == 0);
    tc_run_free(&r);
    run(&r, e, 0, "127.0.0.1 %u --tls --load --connections 2 --duration 1 --json --quiet", NULL,
        30000);
    CHECK_EQ_U(r.exit_code, 8);
    CHECK(tj_valid(r.out) == 0);
    CHECK(num(&r, "errors.tls") == 2);
    CHECK(num(&r, "tls.handshakes") == 0);
    char result[32];
    CHECK(tj_string(r.out, "result", result, sizeof result) == 0 && strcmp(result, "tls") == 0);
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
}

/* Message and interactive modes over TLS, the server's certificate trusted through --tls-ca. */
static void tls_message_and_interactive(void)
{
    iocp_engine *e = tls_server("server.pfx", IOCP_FRAMING_RAW);
    if (e == NULL)
        return;
    char fmt[900];
    tc_run r;
    snprintf(fmt, sizeof fmt, "localhost %%u --tls --tls-ca \"%s\" hello \"two words\"",
             tls_file("ca.pem"));
    run(&r, e, 0, fmt, NULL, 30000);
    CHECK_MSG(r.exit_code == 0, "exit %lu: %s", r.exit_code, r.err);
    CHECK(strcmp(r.out, "hello\ntwo words\n") == 0);
    CHECK_EQ_U(r.err_len, 0);
    tc_run_free(&r);
    wait_idle(e);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.tls_handshakes, 1);
    CHECK_EQ_U(st.accepted, 1);
    tn_stop_clean(e);

    /* interactive, line framing, an address as HOST and the name given apart */
    static const char input[] = "one\ntwo words\n";
    wchar_t in[260];
    tc_write_temp(input, sizeof input - 1, in, NULL);
    e = tls_server("server.pfx", IOCP_FRAMING_LINE);
    snprintf(fmt, sizeof fmt,
             "127.0.0.1 %%u --framing line --tls --tls-ca \"%s\" --tls-server-name localhost",
             tls_file("ca.pem"));
    run(&r, e, 0, fmt, in, 30000);
    CHECK_MSG(r.exit_code == 0, "exit %lu: %s", r.exit_code, r.err);
    CHECK(strcmp(r.out, input) == 0);
    tc_run_free(&r);
    wait_idle(e);
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.messages_in, 2);
    CHECK_EQ_U(st.tls_handshakes, 1);
    tn_stop_clean(e);
    DeleteFileW(in);
}

/* Certificates that must not validate: exit code 8 with the chain error named; accepted with
 * --tls-insecure; the same refusal in load mode. */
static void tls_refusals(void)
{
    static const struct {
        const char *pfx;
        const char *ca; /* the --tls-ca file, NULL for the system's roots only */
        const char *cause, *or_cause;
    } bad[] = {
        {"wronghost.pfx", "ca.pem", "the name does not match the server name (0x800b010f)", NULL},
        {"expired.pfx", "ca.pem", "expired or not yet valid (0x800b0101)", NULL},
        {"selfsigned.pfx", "ca.pem", "untrusted root (0x800b0109)", NULL},
        /* our CA is not a system root: Windows ends the chain at it (untrusted root), Wine 10
         * does not build the chain that far (CERT_E_CHAINING) */
        {"server.pfx", NULL, "untrusted root (0x800b0109)",
         "no chain to a trusted root (0x800b010a)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        iocp_engine *e = tls_server(bad[i].pfx, IOCP_FRAMING_RAW);
        if (e == NULL)
            return;
        char ca_opt[700] = "", fmt[900], want[300];
        if (bad[i].ca != NULL)
            snprintf(ca_opt, sizeof ca_opt, "--tls-ca \"%s\"", tls_file(bad[i].ca));
        tc_run r;
        snprintf(fmt, sizeof fmt, "localhost %%u --tls %s hello", ca_opt);
        run(&r, e, 0, fmt, NULL, 30000);
        printf("  %s: exit %lu: %s", bad[i].pfx, r.exit_code, r.err);
        CHECK_MSG(r.exit_code == 8, "%s: exit %lu", bad[i].pfx, r.exit_code);
        snprintf(want, sizeof want,
                 "cannot connect to localhost:%u: TLS handshake failed: the server's "
                 "certificate failed validation: ",
                 (unsigned)iocp_engine_port(e));
        check_err_says(&r, want);
        CHECK_MSG(strstr(r.err, bad[i].cause) != NULL ||
                      (bad[i].or_cause != NULL && strstr(r.err, bad[i].or_cause) != NULL),
                  "stderr lacks \"%s\"", bad[i].cause);
        CHECK(r.out_len == 0);
        tc_run_free(&r);

        /* --reconnect does not retry a certificate: it will not become valid */
        snprintf(fmt, sizeof fmt, "localhost %%u --tls %s --reconnect --backoff 10 hello", ca_opt);
        run(&r, e, 0, fmt, NULL, 30000);
        CHECK_EQ_U(r.exit_code, 8);
        CHECK(strstr(r.err, "retrying") == NULL);
        tc_run_free(&r);

        run(&r, e, 0, "localhost %u --tls --tls-insecure hello", NULL, 30000);
        CHECK_MSG(r.exit_code == 0, "%s with --tls-insecure: exit %lu: %s", bad[i].pfx, r.exit_code,
                  r.err);
        CHECK(strcmp(r.out, "hello\n") == 0);
        tc_run_free(&r);

        if (i == 0) {
            snprintf(fmt, sizeof fmt,
                     "localhost %%u --tls %s --load --connections 3 --duration 1 --json --quiet",
                     ca_opt);
            run(&r, e, 0, fmt, NULL, 30000);
            CHECK_EQ_U(r.exit_code, 8);
            CHECK(tj_valid(r.out) == 0);
            CHECK(num(&r, "errors.tls") == 3);
            CHECK(num(&r, "connect_failures") == 3);
            CHECK(num(&r, "tls.handshake_failures") == 3);
            char first[300];
            CHECK(tj_string(r.out, "first_error", first, sizeof first) == 0);
            CHECK_MSG(strstr(first, bad[i].cause) != NULL, "first_error: %s", first);
            tc_run_free(&r);
        }
        wait_idle(e);
        iocp_stats st;
        iocp_engine_stats(e, &st);
        CHECK(st.tls_handshakes + st.tls_handshake_failures >= 3);
        tn_stop_clean(e);
    }
}

/* Load mode over TLS: handshake percentiles and handshakes/s apart from the echo latency, in
 * the JSON and the text; a plain run names the same figure "connect us". */
static void tls_load_handshakes(void)
{
    iocp_engine *e = tls_server("server.pfx", IOCP_FRAMING_RAW);
    if (e == NULL)
        return;
    char fmt[900];
    tc_run r;
    snprintf(fmt, sizeof fmt,
             "localhost %%u --tls --tls-ca \"%s\" --load --connections 10 --duration 1 --json "
             "--quiet",
             tls_file("ca.pem"));
    run(&r, e, 0, fmt, NULL, 60000);
    CHECK_MSG(r.exit_code == 0, "exit %lu: %s", r.exit_code, r.err);
    CHECK_MSG(tj_valid(r.out) == 0, "not one JSON object: %s", r.out);
    printf("  %s", r.out);
    double messages = num(&r, "messages");
    CHECK(messages > 0);
    CHECK(num(&r, "latency_us.count") == messages);
    CHECK(num(&r, "connects") == 10);
    CHECK(num(&r, "tls.handshakes") == 10);
    CHECK(num(&r, "tls.handshake_failures") == 0);
    CHECK(num(&r, "tls.handshakes_per_s") > 0);
    CHECK(num(&r, "tls.handshake_us.count") == 10);
    CHECK(num(&r, "tls.handshake_us.min") > 0);
    CHECK(num(&r, "tls.handshake_us.p50") <= num(&r, "tls.handshake_us.p99"));
    CHECK(num(&r, "tls.handshake_us.p99") <= num(&r, "tls.handshake_us.max"));
    CHECK(num(&r, "connect_us.p50") == num(&r, "tls.handshake_us.p50"));
    char protocol[64];
    CHECK(tj_string(r.out, "tls.protocol", protocol, sizeof protocol) == 0);
    CHECK_MSG(strncmp(protocol, "TLS 1.", 6) == 0, "protocol %s", protocol);
    tc_run_free(&r);
    wait_idle(e);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.tls_handshakes, 10);

    /* churn: a handshake per message; the text report */
    snprintf(fmt, sizeof fmt,
             "localhost %%u --tls --tls-ca \"%s\" --load --churn --connections 4 --duration 1 "
             "--quiet",
             tls_file("ca.pem"));
    run(&r, e, 0, fmt, NULL, 60000);
    CHECK_MSG(r.exit_code == 0, "exit %lu: %s", r.exit_code, r.err);
    printf("%s", r.out);
    CHECK(strstr(r.out, "over TLS") != NULL);
    CHECK(strstr(r.out, "  handshake us p50 ") != NULL);
    CHECK(strstr(r.out, "  tls          TLS 1.") != NULL);
    CHECK(strstr(r.out, " handshakes (") != NULL && strstr(r.out, "/s), 0 failed") != NULL);
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);

    /* without TLS the same measure is the connect time */
    e = echo_server(IOCP_FRAMING_RAW);
    run(&r, e, 0, "localhost %u --load --connections 10 --duration 1 --json --quiet", NULL, 60000);
    CHECK_EQ_U(r.exit_code, 0);
    CHECK(num(&r, "connect_us.count") == 10);
    CHECK(strstr(r.out, "\"tls\":null") != NULL);
    tc_run_free(&r);
    wait_idle(e);
    tn_stop_clean(e);
}

static const test_case cases[] = {
    {"message_small", message_small},
    {"message_empty", message_empty},
    {"message_10_mib", message_10_mib},
    {"host_names", host_names},
    {"interactive_from_file", interactive_from_file},
    {"control_bytes_exact_when_redirected", control_bytes_exact_when_redirected},
    {"load_100_connections", load_100_connections},
    {"load_length_depth_count", load_length_depth_count},
    {"load_churn_line", load_churn_line},
    {"load_connect_rate", load_connect_rate},
    {"refused_port", refused_port},
    {"unresolvable_name", unresolvable_name},
    {"usage_errors", usage_errors},
    {"server_closes_mid_echo", server_closes_mid_echo},
    {"echo_mismatch", echo_mismatch},
    {"echo_timeout", echo_timeout},
    {"framing_mismatch", framing_mismatch},
    {"reconnect_resumes_after_restart", reconnect_resumes_after_restart},
    {"reconnect_waits_for_server", reconnect_waits_for_server},
    {"tls_client_side_errors", tls_client_side_errors},
    {"tls_message_and_interactive", tls_message_and_interactive},
    {"tls_refusals", tls_refusals},
    {"tls_load_handshakes", tls_load_handshakes},
};

TEST_MAIN(cases)
