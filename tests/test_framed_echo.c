/*
 * test_framed_echo.c: the echo server in each framing mode, end to end: thousands of messages
 * of random sizes sent in random splits come back whole and in order; a frame over the limit
 * closes that connection only.
 */
#include "harness.h"
#include "net_util.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE (64u * 1024u)
#define MESSAGES    3000

typedef struct stream {
    uint8_t *data;
    size_t len, cap;
} stream;

static void stream_put(stream *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->data = realloc(s->data, s->cap);
        CHECK(s->data != NULL);
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
}

/* Encodes MESSAGES random messages the way a client would frame them. */
static stream make_stream(iocp_framing mode, uint64_t seed)
{
    stream s = {NULL, 0, 0};
    uint8_t *payload = malloc(MAX_MESSAGE);
    CHECK(payload != NULL);
    for (int i = 0; i < MESSAGES; i++) {
        uint64_t r = test_rand(&seed);
        size_t len = (r % 10 == 0) ? (size_t)(r >> 16) % MAX_MESSAGE : (size_t)(r >> 16) % 300;
        test_fill_random(&seed, payload, len);
        if (mode == IOCP_FRAMING_LINE) {
            for (size_t k = 0; k < len; k++)
                if (payload[k] == '\n' || payload[k] == '\r')
                    payload[k] = 'x';
        }
        CHECK(iocp_frame_check(mode, payload, len, MAX_MESSAGE) == 0);
        uint8_t prefix[IOCP_LENGTH_HEADER_SIZE];
        size_t suffix_len;
        stream_put(&s, prefix, iocp_frame_prefix(mode, len, prefix));
        stream_put(&s, payload, len);
        const uint8_t *suffix = iocp_frame_suffix(mode, &suffix_len);
        stream_put(&s, suffix, suffix_len);
    }
    free(payload);
    return s;
}

static void echo_in_mode(iocp_framing mode)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.framing = mode;
    cfg.max_message = MAX_MESSAGE;
    cfg.buffer_size = 4096;
    cfg.send_queue_cap = 2 * (MAX_MESSAGE + 4 + 4096);
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    stream in = make_stream(mode, 7 + (uint64_t)mode);
    SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 20000);
    CHECK(s != INVALID_SOCKET);
    size_t same = tn_echo_split(s, in.data, in.len, 99);
    CHECK_MSG(same == in.len, "%s: echo matched for %zu of %zu bytes", iocp_framing_name(mode),
              same, in.len);
    closesocket(s);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    if (mode != IOCP_FRAMING_RAW) {
        CHECK_EQ_U(st.messages_in, MESSAGES);
        CHECK_EQ_U(st.messages_out, MESSAGES);
    }
    CHECK_EQ_U(st.protocol_errors, 0);
    free(in.data);
    tn_stop_clean(e);
}

static void raw_mode_echo(void)
{
    echo_in_mode(IOCP_FRAMING_RAW);
}

static void line_mode_echo(void)
{
    echo_in_mode(IOCP_FRAMING_LINE);
}

static void length_mode_echo(void)
{
    echo_in_mode(IOCP_FRAMING_LENGTH);
}

/* A bad frame closes its own connection with a protocol error; a neighbour keeps echoing. */
static void oversized_frame_closes_only_that_connection(iocp_framing mode, const void *bad,
                                                        size_t bad_len)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.framing = mode;
    cfg.max_message = 1024;
    cfg.buffer_size = 4096;
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    SOCKET good = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    SOCKET evil = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(good != INVALID_SOCKET && evil != INVALID_SOCKET);
    CHECK(tn_send_all(evil, bad, bad_len) == 0);
    CHECK(tn_wait_closed(evil, 5000));
    CHECK(tn_wait_stat(e, ST(protocol_errors), 1, 5000));
    CHECK(tn_wait_stat(e, ST(active), 1, 5000));
    tn_echo_message(good, mode, "still");
    closesocket(good);
    closesocket(evil);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.closed[IOCP_CLOSE_PROTOCOL], 1);
    tn_stop_clean(e);
}

static void oversized_length_header(void)
{
    const uint8_t header[4] = {0x00, 0x00, 0x04, 0x01}; /* 1025 > 1024 */
    oversized_frame_closes_only_that_connection(IOCP_FRAMING_LENGTH, header, 4);
}

static void overflowing_length_header(void)
{
    const uint8_t header[4] = {0xff, 0xff, 0xff, 0xff};
    oversized_frame_closes_only_that_connection(IOCP_FRAMING_LENGTH, header, 4);
}

static void overlong_line(void)
{
    char line[2048];
    memset(line, 'a', sizeof line);
    oversized_frame_closes_only_that_connection(IOCP_FRAMING_LINE, line, sizeof line);
}

static const test_case cases[] = {
    {"raw_mode_echo", raw_mode_echo},
    {"line_mode_echo", line_mode_echo},
    {"length_mode_echo", length_mode_echo},
    {"oversized_length_header", oversized_length_header},
    {"overflowing_length_header", overflowing_length_header},
    {"overlong_line", overlong_line},
};

TEST_MAIN(cases)
