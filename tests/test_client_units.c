/* test_client_units.c: iocp-client's parts that need no network: the command line, the help
 * text, payload generation and checking, reconnect backoff, and the summary's text and JSON. */
#include "harness.h"

#include <share.h>
#include <winsock2.h> /* before windows.h: client_runner.h brings it too */
#include <windows.h>  /* DeleteFileW */
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "backoff.h"
#include "exit_codes.h"
#include "payload.h"
#include "report.h"
#include "sys.h"
#include "tls_client.h"
#include "client_runner.h"

/* Splits a command line at spaces (no quoting) and parses it. */
static int parse(const char *line, client_args *a, char *err, size_t es)
{
    static char copy[1024];
    static char *argv[64];
    int argc = 0;
    snprintf(copy, sizeof copy, "%s", line);
    argv[argc++] = "iocp-client";
    char *next = NULL;
    for (char *tok = strtok_s(copy, " ", &next); tok != NULL && argc < 63;
         tok = strtok_s(NULL, " ", &next))
        argv[argc++] = tok;
    argv[argc] = NULL;
    client_args_init(a);
    return client_args_parse(argc, argv, a, err, es);
}

static void args_defaults(void)
{
    client_args a;
    char err[256];
    CHECK(parse("localhost 9000", &a, err, sizeof err) == 0);
    CHECK(strcmp(a.host, "localhost") == 0);
    CHECK_EQ_U(a.port, 9000);
    CHECK(a.mode == CLIENT_MODE_INTERACTIVE);
    CHECK(a.framing == IOCP_FRAMING_RAW);
    CHECK_EQ_U(a.timeout_ms, CLIENT_DEFAULT_TIMEOUT_MS);
    CHECK(!a.reconnect);
    CHECK_EQ_U(a.backoff_ms, CLIENT_DEFAULT_BACKOFF_MS);
    CHECK_EQ_U(a.backoff_max_ms, CLIENT_DEFAULT_BACKOFF_MAX_MS);
    CHECK_EQ_U(a.attempts, CLIENT_DEFAULT_ATTEMPTS);
    CHECK_EQ_U(a.max_message, IOCP_DEFAULT_MAX_MESSAGE);
    CHECK_EQ_U(a.message_count, 0);
    client_args_free(&a);
}

static void args_message_mode(void)
{
    client_args a;
    char err[256];
    CHECK(parse("127.0.0.1 7 one --file data.bin two --framing=length --timeout 500 "
                "--reconnect --backoff 10 --backoff-max 20 --attempts 0",
                &a, err, sizeof err) == 0);
    CHECK(a.mode == CLIENT_MODE_MESSAGE);
    CHECK_EQ_U(a.message_count, 3);
    CHECK(a.messages[0].file == NULL && strcmp(a.messages[0].data, "one") == 0);
    CHECK_EQ_U(a.messages[0].len, 3);
    CHECK(a.messages[1].file != NULL && strcmp(a.messages[1].file, "data.bin") == 0);
    CHECK(strcmp(a.messages[2].data, "two") == 0);
    CHECK(a.framing == IOCP_FRAMING_LENGTH);
    CHECK_EQ_U(a.timeout_ms, 500);
    CHECK(a.reconnect);
    CHECK_EQ_U(a.backoff_ms, 10);
    CHECK_EQ_U(a.backoff_max_ms, 20);
    CHECK_EQ_U(a.attempts, 0);
    client_args_free(&a);

    /* "--" ends the options: a message may look like one. */
    CHECK(parse("::1 80 -- --load -x", &a, err, sizeof err) == 0);
    CHECK(a.mode == CLIENT_MODE_MESSAGE);
    CHECK_EQ_U(a.message_count, 2);
    CHECK(strcmp(a.messages[0].data, "--load") == 0);
    CHECK(strcmp(a.host, "::1") == 0);
    client_args_free(&a);

    /* "[::1]" as in a URL; "-" is a message, not an option. */
    CHECK(parse("[::1] 80 -", &a, err, sizeof err) == 0);
    CHECK(strcmp(a.host, "::1") == 0);
    CHECK_EQ_U(a.message_count, 1);
    client_args_free(&a);
}

static void args_load_mode(void)
{
    client_args a;
    char err[256];
    CHECK(parse("localhost 9000 --load --connections 100 --depth 8 --size 4k --duration 2.5 "
                "--connect-rate 50 --threads 2 --json --quiet",
                &a, err, sizeof err) == 0);
    CHECK(a.mode == CLIENT_MODE_LOAD);
    CHECK_EQ_U(a.connections, 100);
    CHECK_EQ_U(a.depth, 8);
    CHECK_EQ_U(a.size, 4096);
    CHECK(a.duration_s == 2.5);
    CHECK(a.connect_rate == 50.0);
    CHECK_EQ_U(a.threads, 2);
    CHECK(a.json && a.quiet && !a.churn);
    client_args_free(&a);

    /* Defaults: 10 s unless --messages bounds the run; churn is one message per connection. */
    CHECK(parse("h 1 --load", &a, err, sizeof err) == 0);
    CHECK(a.duration_s == CLIENT_DEFAULT_DURATION_S);
    CHECK_EQ_U(a.connections, CLIENT_DEFAULT_CONNECTIONS);
    CHECK_EQ_U(a.depth, CLIENT_DEFAULT_DEPTH);
    CHECK_EQ_U(a.size, CLIENT_DEFAULT_SIZE);
    client_args_free(&a);
    CHECK(parse("h 1 --load --messages 1000", &a, err, sizeof err) == 0);
    CHECK(a.duration_s == 0);
    CHECK_EQ_U(a.messages_limit, 1000);
    client_args_free(&a);
    CHECK(parse("h 1 --load --churn --depth 4", &a, err, sizeof err) == 0);
    CHECK(a.churn);
    CHECK_EQ_U(a.depth, 1);
    client_args_free(&a);
    CHECK(parse("h 1 --load --framing line --size 0", &a, err, sizeof err) == 0);
    CHECK_EQ_U(a.size, 0);
    client_args_free(&a);
}

static void args_errors_are_usage_errors(void)
{
    static const struct {
        const char *line;
        const char *says;
    } bad[] = {
        {"", "missing HOST"},
        {"localhost", "missing PORT"},
        {"localhost 0", "PORT"},
        {"localhost 65536", "PORT"},
        {"localhost http", "PORT"},
        {"localhost 9000 --bogus", "--bogus"},
        {"localhost 9000 --framing", "needs a value"},
        {"localhost 9000 --framing xml", "raw, line or length"},
        {"localhost 9000 --timeout 0", "--timeout"},
        {"localhost 9000 --connections 10", "only applies with --load"},
        {"localhost 9000 --json", "only applies with --load"},
        {"localhost 9000 --load hello", "no MESSAGE"},
        {"localhost 9000 --load --connections 0", "--connections"},
        {"localhost 9000 --load --depth x", "--depth"},
        {"localhost 9000 --load --size 0", "--size 0"},
        {"localhost 9000 --load --size 2G", "--size"},
        {"localhost 9000 --load --duration -1", "--duration"},
        {"localhost 9000 --reconnect=yes", "takes no value"},
        {"localhost 9000 --tls-ca ca.pem", "--tls-ca only applies with --tls"},
        {"localhost 9000 --tls-insecure", "--tls-insecure only applies with --tls"},
        {"localhost 9000 --tls-server-name x", "--tls-server-name only applies with --tls"},
        {"localhost 9000 --load --tls-ca ca.pem", "only applies with --tls"},
        {"localhost 9000 --tls --tls-ca", "needs a value"},
        {"localhost 9000 --tls --tls-ca=", "--tls-ca: the value is empty"},
        {"localhost 9000 --tls --tls-server-name=", "--tls-server-name: the value is empty"},
        {"localhost 9000 --tls --tls-insecure --tls-ca ca.pem", "--tls-insecure checks no"},
        {"localhost 9000 --tls=yes", "takes no value"},
        {"localhost 9000 --tls-revocation hard", "--tls-revocation only applies with --tls"},
        {"localhost 9000 --tls --tls-revocation strict", "'strict' is not off, soft or hard"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        client_args a;
        char err[256] = "";
        int rc = parse(bad[i].line, &a, err, sizeof err);
        CHECK_MSG(rc != 0, "'%s' was accepted", bad[i].line);
        CHECK_MSG(strstr(err, bad[i].says) != NULL, "'%s' says '%s', wanted '%s'", bad[i].line, err,
                  bad[i].says);
        client_args_free(&a);
    }
}

static void args_tls(void)
{
    client_args a;
    char err[256];
    /* off by default */
    CHECK(parse("localhost 443 hi", &a, err, sizeof err) == 0);
    CHECK(!a.tls && !a.tls_insecure && a.tls_ca == NULL && a.tls_server_name == NULL);
    client_args_free(&a);
    /* every mode takes them; the value forms of the other options work here too */
    CHECK(parse("localhost 443 --tls --tls-ca ca.pem --tls-server-name=example.org hi", &a, err,
                sizeof err) == 0);
    CHECK(a.mode == CLIENT_MODE_MESSAGE && a.tls && !a.tls_insecure);
    CHECK(strcmp(a.tls_ca, "ca.pem") == 0 && strcmp(a.tls_server_name, "example.org") == 0);
    client_args_free(&a);
    CHECK(parse("::1 443 --tls-insecure --tls", &a, err, sizeof err) == 0); /* any order */
    CHECK(a.mode == CLIENT_MODE_INTERACTIVE && a.tls && a.tls_insecure && a.tls_ca == NULL);
    client_args_free(&a);
    CHECK(parse("h 1 --load --tls --tls-ca=c.pem --connections 5", &a, err, sizeof err) == 0);
    CHECK(a.mode == CLIENT_MODE_LOAD && a.tls && strcmp(a.tls_ca, "c.pem") == 0);
    CHECK_EQ_U(a.connections, 5);
    client_args_free(&a);
    /* --tls-revocation: soft unless given, and into config.tls */
    static const struct {
        const char *line;
        int mode;
    } revocation[] = {
        {"h 1 --tls hi", IOCP_TLS_REVOCATION_SOFT},
        {"h 1 --tls --tls-revocation off hi", IOCP_TLS_REVOCATION_OFF},
        {"h 1 --tls --tls-revocation=soft hi", IOCP_TLS_REVOCATION_SOFT},
        {"h 1 --tls --tls-revocation hard hi", IOCP_TLS_REVOCATION_HARD},
    };
    for (size_t i = 0; i < sizeof revocation / sizeof revocation[0]; i++) {
        iocp_config c;
        client_tls_log log;
        CHECK_MSG(parse(revocation[i].line, &a, err, sizeof err) == 0, "%s: %s", revocation[i].line,
                  err);
        iocp_config_init(&c);
        client_tls_configure(&a, &c, &log);
        CHECK_MSG(c.tls.revocation == revocation[i].mode, "%s: revocation %d", revocation[i].line,
                  c.tls.revocation);
        client_args_free(&a);
    }
}

/* The options map onto the engine's config.tls; the engine's TLS failure line is kept (without
 * its peer) for the message of the dial that failed, once. */
static void tls_config_and_failure_text(void)
{
    client_args a;
    char err[256], why[400];
    iocp_config c;
    client_tls_log log;
    CHECK(parse("localhost 443 hi", &a, err, sizeof err) == 0);
    iocp_config_init(&c);
    c.log_level = IOCP_LOG_ERROR;
    client_tls_configure(&a, &c, &log);
    CHECK(!c.tls.client && c.log == NULL && c.log_level == IOCP_LOG_ERROR); /* untouched */
    client_args_free(&a);

    CHECK(parse("localhost 443 --tls --tls-ca ca.pem --tls-server-name n.example hi", &a, err,
                sizeof err) == 0);
    iocp_config_init(&c);
    client_tls_configure(&a, &c, &log);
    CHECK(c.tls.client == 1 && !c.tls.insecure);
    CHECK(strcmp(c.tls.ca_file, "ca.pem") == 0 && strcmp(c.tls.server_name, "n.example") == 0);
    CHECK(c.tls.pfx_path == NULL && c.tls.cert_thumbprint == NULL); /* no server role */
    CHECK(c.log != NULL && c.log_level == IOCP_LOG_INFO);
    client_args_free(&a);

    /* nothing logged: the status code is named */
    client_tls_failure(&log, 0x80090326ul, why, sizeof why);
    CHECK_MSG(strstr(why, "SEC_E_ILLEGAL_MESSAGE") != NULL, "%s", why);
    client_tls_failure(&log, 0x80090327ul, why, sizeof why);
    CHECK_MSG(strstr(why, "TLS handshake failed (0x80090327 SEC_E_CERT_UNKNOWN") == why, "%s", why);
    client_tls_failure(&log, 0x12345ul, why, sizeof why);
    CHECK_MSG(strcmp(why, "TLS handshake failed (0x00012345)") == 0, "%s", why);
    /* the engine's line, as conn.c logs it; lines about other things are not kept */
    c.log(c.log_user, IOCP_LOG_INFO,
          "[::1]:5001: the server's certificate failed validation: the name does not match "
          "the server name (0x800b010f); closing it");
    c.log(c.log_user, IOCP_LOG_INFO, "stopped in 3 ms");
    c.log(c.log_user, IOCP_LOG_DEBUG, "TLS: debug detail");
    client_tls_failure(&log, 0x80090327ul, why, sizeof why);
    CHECK_MSG(strcmp(why, "TLS handshake failed: the server's certificate failed validation: the "
                          "name does not match the server name (0x800b010f)") == 0,
              "%s", why);
    client_tls_failure(&log, 0x80090327ul, why, sizeof why); /* kept for the next dial too */
    CHECK_MSG(strstr(why, "(0x800b010f)") != NULL, "%s", why);
    c.log(c.log_user, IOCP_LOG_INFO, "127.0.0.1:9: no TLS handshake after 10000 ms: resetting");
    client_tls_failure(&log, 0, why, sizeof why);
    CHECK_MSG(strcmp(why, "TLS handshake failed: no TLS handshake after 10000 ms: resetting") == 0,
              "%s", why);
}

static void help_shows_every_option_with_default(void)
{
    size_t need = client_args_help(NULL, 0);
    char *text = malloc(need + 1);
    CHECK(text != NULL);
    CHECK_EQ_U(client_args_help(text, need + 1), need);
    CHECK_EQ_U(strlen(text), need);
    CHECK(client_option_count >= 20);
    /* each option has its own line, "  --name ...", and its description ends with [default] */
    for (size_t i = 0; i < client_option_count; i++) {
        const client_option *o = &client_options[i];
        char line_start[64];
        snprintf(line_start, sizeof line_start, "\n  %s ", o->name);
        const char *at = strstr(text, line_start);
        CHECK_MSG(at != NULL, "help has no line for %s", o->name);
        const char *next = strstr(at + 1, "\n  -");
        if (next == NULL)
            next = text + need;
        if (o->deflt[0] != '\0') {
            char shown[64];
            snprintf(shown, sizeof shown, "[%s]", o->deflt);
            const char *d = strstr(at, shown);
            CHECK_MSG(d != NULL && d < next, "help shows no default %s for %s", shown, o->name);
        }
    }
    /* the exit codes are listed too, and every line fits 100 columns */
    CHECK(strstr(text, "6 echo mismatch") != NULL);
    CHECK(strstr(text, "8 TLS: the server's certificate failed validation") != NULL);
    CHECK(strstr(text, "70 crashed") != NULL);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        CHECK_MSG(len <= 100, "help line of %zu columns: %.*s", len, (int)len, line);
        line += len + (end ? 1 : 0);
    }
    /* a small buffer is cut, NUL-terminated */
    char small[16];
    CHECK_EQ_U(client_args_help(small, sizeof small), need);
    CHECK_EQ_U(strlen(small), sizeof small - 1);
    free(text);
}

static void sizes_parse(void)
{
    uint64_t v = 0;
    CHECK(client_parse_size("64", &v) == 0 && v == 64);
    CHECK(client_parse_size("4k", &v) == 0 && v == 4096);
    CHECK(client_parse_size("10M", &v) == 0 && v == 10u << 20);
    CHECK(client_parse_size("1G", &v) == 0 && v == 1u << 30);
    CHECK(client_parse_size("2KiB", &v) == 0 && v == 2048);
    CHECK(client_parse_size("0", &v) == 0 && v == 0);
    CHECK(client_parse_size("", &v) != 0);
    CHECK(client_parse_size("k", &v) != 0);
    CHECK(client_parse_size("-1", &v) != 0);
    CHECK(client_parse_size("5q", &v) != 0);
    CHECK(client_parse_size("99999999999999999999", &v) != 0);
    CHECK(client_parse_size("17179869184G", &v) != 0); /* 2^34 G overflows */
}

static void payload_round_trip(void)
{
    static const size_t sizes[] = {0, 1, 7, 15, 16, 17, 26, 27, 28, 64, 1000, 65536};
    for (int text = 0; text <= 1; text++) {
        payload_kind kind = {text};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t len = sizes[s];
            uint8_t *buf = malloc(len + 1);
            CHECK(buf != NULL);
            payload_fill(kind, 7, 123456789, buf, len);
            CHECK_EQ_U(payload_check(kind, 7, 123456789, len, 0, buf, len), len);
            for (size_t i = 0; i < len; i++) {
                CHECK(buf[i] == payload_byte(kind, 7, 123456789, len, i));
                if (text)
                    CHECK_MSG(buf[i] > ' ' && buf[i] < 0x7f, "byte %zu = 0x%02x", i, buf[i]);
            }
            /* any split into pieces checks the same */
            uint64_t rng = 42 + len;
            for (size_t off = 0; off < len;) {
                size_t n = 1 + (size_t)(test_rand(&rng) % 100);
                if (n > len - off)
                    n = len - off;
                CHECK_EQ_U(payload_check(kind, 7, 123456789, len, off, buf + off, n), n);
                off += n;
            }
            free(buf);
        }
    }
}

static void payload_detects_damage(void)
{
    for (int text = 0; text <= 1; text++) {
        payload_kind kind = {text};
        enum { LEN = 300 };
        uint8_t a[LEN], b[LEN];
        payload_fill(kind, 3, 10, a, LEN);
        /* one byte changed anywhere */
        for (size_t i = 0; i < LEN; i++) {
            memcpy(b, a, LEN);
            b[i] ^= 0x20;
            CHECK_EQ_U(payload_check(kind, 3, 10, LEN, 0, b, LEN), i);
        }
        /* another message, connection or size: differs within the header */
        payload_fill(kind, 3, 11, b, LEN);
        CHECK(payload_check(kind, 3, 10, LEN, 0, b, LEN) < LEN);
        payload_fill(kind, 4, 10, b, LEN);
        CHECK(payload_check(kind, 3, 10, LEN, 0, b, LEN) < LEN);
        /* bytes shifted by any distance (a lost or duplicated byte) */
        for (size_t shift = 1; shift < 40; shift++)
            CHECK(payload_check(kind, 3, 10, LEN, 100, a + 100 + shift, 100) < 100);
        /* more bytes than the payload has */
        CHECK_EQ_U(payload_check(kind, 3, 10, LEN, LEN - 2, a + LEN - 2, 2), 2);
        CHECK_EQ_U(payload_check(kind, 3, 10, LEN - 2, LEN - 2, a + LEN - 2, 2), 0);
        /* the header says what it is */
        uint32_t stream = 0;
        uint64_t seq = 0;
        CHECK(payload_parse_header(kind, a, LEN, &stream, &seq) == 0);
        CHECK_EQ_U(stream, 3);
        CHECK_EQ_U(seq, 10);
        CHECK(payload_parse_header(kind, a, 10, &stream, &seq) != 0);
    }
}

static void backoff_grows_with_jitter(void)
{
    uint64_t rng = 1;
    uint32_t prev_max = 0;
    for (uint32_t attempt = 0; attempt < 40; attempt++) {
        uint64_t d = 100ull << (attempt < 20 ? attempt : 20);
        if (d > 5000)
            d = 5000;
        uint32_t lo = UINT32_MAX, hi = 0;
        for (int i = 0; i < 200; i++) {
            uint32_t v = client_backoff_ms(attempt, 100, 5000, client_rand32(&rng));
            CHECK_MSG(v >= d / 2 && v <= d, "attempt %u: %u not in [%llu, %llu]", attempt, v,
                      (unsigned long long)d / 2, (unsigned long long)d);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        CHECK_MSG(hi > lo, "attempt %u: no jitter", attempt); /* the delays spread out */
        CHECK(hi >= prev_max / 2);
        prev_max = hi;
    }
    CHECK_EQ_U(client_backoff_ms(0, 100, 5000, 0), 50);
    CHECK_EQ_U(client_backoff_ms(0, 100, 5000, 50), 100);
    CHECK_EQ_U(client_backoff_ms(100, 100, 5000, 0), 2500);
    CHECK(client_backoff_ms(0, 0, 0, 7) <= 1);
}

static client_summary sample_summary(void)
{
    client_summary s;
    memset(&s, 0, sizeof s);
    s.host = "::1";
    s.port = 9000;
    s.framing = "raw";
    s.connections = 100;
    s.depth = 4;
    s.size = 64;
    s.elapsed_s = 2.0;
    s.messages = 50000;
    s.bytes_sent = 3200000;
    s.bytes_received = 3200000;
    s.latency.count = 50000;
    s.latency.min = 40;
    s.latency.p50 = 150;
    s.latency.p90 = 300;
    s.latency.p99 = 900;
    s.latency.p999 = 2000;
    s.latency.max = 4100;
    s.latency.mean = 170.5;
    s.connect.count = 100;
    s.connect.min = 800;
    s.connect.p50 = 1200;
    s.connect.p90 = 1800;
    s.connect.p99 = 2500;
    s.connect.p999 = 2900;
    s.connect.max = 3000;
    s.connect.mean = 1300.0;
    s.connects = 100;
    s.errors[CLIENT_ERR_RESET] = 2;
    s.errors[CLIENT_ERR_REFUSED] = 1;
    s.connect_failures = 1;
    s.lost_in_flight = 3;
    snprintf(s.first_error, sizeof s.first_error, "said \"no\"\\ then\nleft\x01");
    s.exit_code = CLIENT_EXIT_REFUSED;
    return s;
}

static void report_json_parses_and_agrees(void)
{
    client_summary s = sample_summary();
    char buf[4096];
    size_t n = report_json(&s, buf, sizeof buf);
    CHECK(n < sizeof buf);
    CHECK_EQ_U(strlen(buf), n);
    CHECK(buf[n - 1] == '\n');
    CHECK(strchr(buf, '\n') == buf + n - 1); /* one line */
    CHECK_MSG(tj_valid(buf) == 0, "not JSON: %s", buf);
    double v = 0;
    char str[256];
    CHECK(tj_number(buf, "messages", &v) == 0 && v == 50000);
    CHECK(tj_number(buf, "messages_per_s", &v) == 0 && v == 25000);
    CHECK(tj_number(buf, "mb_per_s", &v) == 0 && v == 1.6);
    CHECK(tj_number(buf, "latency_us.p50", &v) == 0 && v == 150);
    CHECK(tj_number(buf, "latency_us.p99_9", &v) == 0 && v == 2000);
    CHECK(tj_number(buf, "latency_us.max", &v) == 0 && v == 4100);
    CHECK(tj_number(buf, "errors.reset", &v) == 0 && v == 2);
    CHECK(tj_number(buf, "errors.total", &v) == 0 && v == 3);
    CHECK(tj_number(buf, "connect_failures", &v) == 0 && v == 1);
    CHECK(tj_number(buf, "exit_code", &v) == 0 && v == CLIENT_EXIT_REFUSED);
    CHECK(tj_string(buf, "result", str, sizeof str) == 0 && strcmp(str, "refused") == 0);
    CHECK(tj_string(buf, "host", str, sizeof str) == 0 && strcmp(str, "::1") == 0);
    CHECK(tj_string(buf, "first_error", str, sizeof str) == 0);
    CHECK_MSG(strcmp(str, "said \"no\"\\ then\nleft\x01") == 0, "first_error = %s", str);
    for (int k = 0; k < CLIENT_ERR_COUNT_; k++) {
        char path[64];
        snprintf(path, sizeof path, "errors.%s", client_error_kind_name((client_error_kind)k));
        CHECK_MSG(tj_number(buf, path, &v) == 0, "no %s", path);
    }
    CHECK(tj_number(buf, "connect_us.p99", &v) == 0 && v == 2500);
    CHECK_MSG(strstr(buf, "\"tls\":null") != NULL, "%s", buf);
    CHECK(tj_number(buf, "tls.handshakes", &v) != 0);

    /* with --tls: the handshakes, their rate and percentiles (the connect histogram) */
    s.tls = 1;
    snprintf(s.tls_protocol, sizeof s.tls_protocol, "TLS 1.2, AES-256");
    s.tls_handshakes = 100;
    s.tls_handshake_failures = 3;
    n = report_json(&s, buf, sizeof buf);
    CHECK(n < sizeof buf);
    CHECK_MSG(tj_valid(buf) == 0, "not JSON: %s", buf);
    CHECK(tj_string(buf, "tls.protocol", str, sizeof str) == 0);
    CHECK(strcmp(str, "TLS 1.2, AES-256") == 0);
    CHECK(tj_number(buf, "tls.handshakes", &v) == 0 && v == 100);
    CHECK(tj_number(buf, "tls.handshake_failures", &v) == 0 && v == 3);
    CHECK(tj_number(buf, "tls.handshakes_per_s", &v) == 0 && v == 50);
    CHECK(tj_number(buf, "tls.handshake_us.p50", &v) == 0 && v == 1200);
    CHECK(tj_number(buf, "tls.handshake_us.p99_9", &v) == 0 && v == 2900);
    CHECK(tj_number(buf, "tls.handshake_us.count", &v) == 0 && v == 100);
    CHECK(tj_number(buf, "connect_us.p50", &v) == 0 && v == 1200);

    /* nothing measured: still valid, no division by zero */
    client_summary empty;
    memset(&empty, 0, sizeof empty);
    report_json(&empty, buf, sizeof buf);
    CHECK_MSG(tj_valid(buf) == 0, "not JSON: %s", buf);
    CHECK(tj_number(buf, "messages_per_s", &v) == 0 && v == 0);
}

static void report_text_and_progress(void)
{
    client_summary s = sample_summary();
    char buf[4096];
    size_t n = report_text(&s, buf, sizeof buf);
    CHECK(n < sizeof buf);
    static const char *const want[] = {"[::1]:9000",
                                       "messages     50000 (25000.0/s)",
                                       "1.600 MB/s",
                                       "p50 150",
                                       "p90 300",
                                       "p99 900",
                                       "p99.9 2000",
                                       "max 4100",
                                       "1 connect failures",
                                       "reset 2",
                                       "refused 1",
                                       "result       refused (exit code 3)"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK_MSG(strstr(buf, want[i]) != NULL, "no '%s' in:\n%s", want[i], buf);
    CHECK_MSG(strstr(buf, "connect us   p50 1200, p90 1800, p99 2500") != NULL, "%s", buf);
    CHECK(strstr(buf, "TLS") == NULL && strstr(buf, "handshake") == NULL);
    s.tls = 1;
    snprintf(s.tls_protocol, sizeof s.tls_protocol, "TLS 1.2, AES-256");
    s.tls_handshakes = 100;
    s.tls_handshake_failures = 3;
    report_text(&s, buf, sizeof buf);
    static const char *const want_tls[] = {
        "[::1]:9000 over TLS", "handshake us p50 1200, p90 1800, p99 2500, p99.9 2900, max 3000",
        "tls          TLS 1.2, AES-256; 100 handshakes (50.0/s), 3 failed", "p50 150"};
    for (size_t i = 0; i < sizeof want_tls / sizeof want_tls[0]; i++)
        CHECK_MSG(strstr(buf, want_tls[i]) != NULL, "no '%s' in:\n%s", want_tls[i], buf);
    CHECK(strstr(buf, "connect us") == NULL); /* the same figures, named once */
    n = report_progress(buf, sizeof buf, 3.0, 41152.4, 2.634, 100, 7);
    CHECK_EQ_U(strlen(buf), n);
    CHECK_MSG(strstr(buf, "41152 msg/s") != NULL && strstr(buf, "2.634 MB/s") != NULL &&
                  strstr(buf, "100 active") != NULL && strstr(buf, "7 errors") != NULL,
              "%s", buf);
    CHECK(strchr(buf, '\n') == NULL);
}

static void exit_codes_are_distinct(void)
{
    /* The documented numbers are constants: checked when this file compiles. */
    _Static_assert(CLIENT_EXIT_OK == 0 && CLIENT_EXIT_USAGE == 1 && CLIENT_EXIT_RESOLVE == 2 &&
                       CLIENT_EXIT_REFUSED == 3 && CLIENT_EXIT_TIMEOUT == 4 &&
                       CLIENT_EXIT_RESET == 5 && CLIENT_EXIT_MISMATCH == 6 &&
                       CLIENT_EXIT_OTHER == 7 && CLIENT_EXIT_TLS == 8,
                   "client exit codes as documented in exit_codes.h");
    CHECK(client_exit_for_err(IOCP_E_RESOLVE) == CLIENT_EXIT_RESOLVE);
    CHECK(client_exit_for_err(IOCP_E_REFUSED) == CLIENT_EXIT_REFUSED);
    CHECK(client_exit_for_err(IOCP_E_TIMEOUT) == CLIENT_EXIT_TIMEOUT);
    CHECK(client_exit_for_err(IOCP_E_RESET) == CLIENT_EXIT_RESET);
    CHECK(client_exit_for_err(IOCP_E_SYSTEM) == CLIENT_EXIT_OTHER);
    CHECK(client_exit_for_err(IOCP_E_TLS) == CLIENT_EXIT_TLS);
    CHECK(client_exit_for_kind(client_error_kind_for_err(IOCP_E_TLS)) == CLIENT_EXIT_TLS);
    CHECK(strcmp(client_exit_name(CLIENT_EXIT_TLS), "tls") == 0);
    CHECK(strcmp(client_error_kind_name(CLIENT_ERR_TLS), "tls") == 0);
    for (int k = 0; k < CLIENT_ERR_COUNT_; k++)
        CHECK(client_exit_for_kind((client_error_kind)k) != CLIENT_EXIT_OK);
    CHECK(client_exit_for_kind(CLIENT_ERR_MISMATCH) == CLIENT_EXIT_MISMATCH);
    CHECK(client_exit_for_kind(CLIENT_ERR_CLOSED) == CLIENT_EXIT_RESET);
    CHECK(strcmp(client_exit_name(CLIENT_EXIT_MISMATCH), "mismatch") == 0);
}

static void json_reader_rejects_bad_json(void)
{
    CHECK(tj_valid("{\"a\":[1,2.5e3,-0.1,true,false,null,\"x\\u0041\"]}") == 0);
    CHECK(tj_valid(" {} \n") == 0);
    CHECK(tj_valid("{\"a\":1,}") != 0);
    CHECK(tj_valid("{\"a\":01}") != 0);
    CHECK(tj_valid("{\"a\":nan}") != 0);
    CHECK(tj_valid("{\"a\":\"x\ny\"}") != 0);
    CHECK(tj_valid("{} {}") != 0);
    CHECK(tj_valid("{\"a\":1") != 0);
    double v;
    CHECK(tj_number("{\"a\":{\"b\":[1,{\"c\":2}],\"c\":3}}", "a.c", &v) == 0 && v == 3);
    CHECK(tj_number("{\"a\":{\"b\":1}}", "a.x", &v) != 0);
}

/* What client_write_echo leaves in a file: exact bytes, or the console's filtered text. */
static size_t written(const char *echo, size_t len, int console, char *out, size_t size)
{
    wchar_t path[260];
    tc_temp_file(path);
    /* _wfsopen: tmpfile and _wfopen are C4996 for MSVC. */
    FILE *f = _wfsopen(path, L"w+b", _SH_DENYNO);
    CHECK(f != NULL);
    client_write_echo(f, echo, len, console);
    CHECK(fflush(f) == 0);
    rewind(f);
    size_t n = fread(out, 1, size, f);
    fclose(f);
    DeleteFileW(path);
    return n;
}

static void echo_filtered_only_on_console(void)
{
    /* ESC (clear screen), CRLF, C1 CSI in UTF-8, BEL, tab, a lone CR at the end. */
    static const char echo[] = "ok\x1b[2J\r\n\xc2\x9b\x07\tend\r";
    static char out[16384];
    /* Redirected: the exact bytes (scripts and the tests compare them). */
    size_t n = written(echo, sizeof echo - 1, 0, out, sizeof out);
    CHECK(n == sizeof echo - 1 && memcmp(out, echo, n) == 0);
    /* A console: no control reaches it; line ends stay. */
    n = written(echo, sizeof echo - 1, 1, out, sizeof out);
    static const char want[] = "ok?[2J\r\n??\tend?";
    CHECK_MSG(n == sizeof want - 1 && memcmp(out, want, n) == 0, "%.*s", (int)n, out);

    /* Long echoes go in chunks; a CRLF or a C1 control across a chunk's end is still seen
     * whole. */
    static char big[8200];
    for (size_t cut = 4094; cut <= 4097; cut++) {
        memset(big, 'a', sizeof big);
        memcpy(big + cut, "\r\n", 2);
        memcpy(big + cut + 100, "\xc2\x9b", 2);
        memcpy(big + 4095 + 4096 - 1, "\xc2\x85", 2);
        n = written(big, sizeof big, 1, out, sizeof out);
        CHECK_EQ_U(n, sizeof big - 2);
        CHECK_MSG(memcmp(out + cut, "\r\n", 2) == 0, "cut %zu", cut);
        CHECK(out[cut + 100] == '?' && out[cut + 101] == 'a');
        CHECK(memchr(out, 0xc2, n) == NULL);
    }
}

static const test_case cases[] = {
    {"args_defaults", args_defaults},
    {"args_message_mode", args_message_mode},
    {"args_load_mode", args_load_mode},
    {"args_errors_are_usage_errors", args_errors_are_usage_errors},
    {"args_tls", args_tls},
    {"tls_config_and_failure_text", tls_config_and_failure_text},
    {"help_shows_every_option_with_default", help_shows_every_option_with_default},
    {"sizes_parse", sizes_parse},
    {"payload_round_trip", payload_round_trip},
    {"payload_detects_damage", payload_detects_damage},
    {"backoff_grows_with_jitter", backoff_grows_with_jitter},
    {"report_json_parses_and_agrees", report_json_parses_and_agrees},
    {"report_text_and_progress", report_text_and_progress},
    {"exit_codes_are_distinct", exit_codes_are_distinct},
    {"json_reader_rejects_bad_json", json_reader_rejects_bad_json},
    {"echo_filtered_only_on_console", echo_filtered_only_on_console},
};

TEST_MAIN(cases)
