/*
 * test_idle.c: quiet connections give their receive buffer back and wait with a zero-byte
 * receive; every way such a receive completes (data, the peer's FIN, a reset, the stop);
 * framed messages and bytes that span the switches; the buffer pool's cap (reading pauses
 * and resumes, nothing lost). Every case ends with tn_stop_clean: every context, receive
 * buffer and zero-byte receive back.
 */
#include "harness.h"
#include "net_util.h"

#include <stdlib.h>
#include <string.h>

/* The idle switch the cases use: quick, so that waiting for it is short. */
#define SWITCH_MS 100

static iocp_engine *start_quick(iocp_config *cfg)
{
    cfg->idle_receive_ms = SWITCH_MS;
    return tn_start(cfg, NULL, NULL);
}

/* Echoes len random bytes on s and checks they come back exactly. */
static void echo_exact(SOCKET s, uint64_t *seed, size_t len)
{
    uint8_t *out = malloc(len), *in = malloc(len);
    CHECK(out != NULL && in != NULL);
    test_fill_random(seed, out, len);
    CHECK(tn_send_all(s, out, len) == 0);
    CHECK_EQ_U(tn_recv_exact(s, in, len), len);
    CHECK(memcmp(in, out, len) == 0);
    free(out);
    free(in);
}

/* Waits until n connections wait on zero-byte receives and no buffer is held. */
static void wait_all_idle(iocp_engine *e, uint64_t n)
{
    CHECK(tn_wait_stat(e, ST(idle_receives), n, 10000));
    CHECK(tn_wait_stat(e, ST(buffers_in_use), 0, 10000));
}

/* A quiet connection holds no buffer; data wakes it (the zero-byte receive completes, a
 * buffer is taken, the data read), it echoes, and goes quiet again: several rounds. */
static void quiet_connection_gives_buffer_back(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    iocp_engine *e = start_quick(&cfg);
    SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(s != INVALID_SOCKET);
    uint64_t seed = 7;
    echo_exact(s, &seed, 64);
    for (int round = 0; round < 4; round++) {
        wait_all_idle(e, 1);
        echo_exact(s, &seed, round == 3 ? 200000 : 64 + (size_t)round * 1000);
    }
    wait_all_idle(e, 1);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK(st.buffers_peak >= 1);
    CHECK_EQ_U(st.buffers_max, cfg.max_connections); /* 32 MiB / 16 KiB is more */
    CHECK_EQ_U(st.closed[IOCP_CLOSE_PEER] + st.closed[IOCP_CLOSE_RESET], 0);
    closesocket(s);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    tn_stop_clean(e);
}

/* A connection that never sends goes quiet too (from its first receive). */
static void silent_connection_goes_idle(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    iocp_engine *e = start_quick(&cfg);
    SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(s != INVALID_SOCKET);
    wait_all_idle(e, 1);
    uint64_t seed = 8;
    echo_exact(s, &seed, 3000);
    closesocket(s);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    tn_stop_clean(e);
}

/* The peer's FIN completes the zero-byte receive with 0 bytes, as data would: the read that
 * follows sees the end, and the connection closes gracefully (the client sees our FIN). */
static void zero_byte_receive_then_fin(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    iocp_engine *e = start_quick(&cfg);
    SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(s != INVALID_SOCKET);
    uint64_t seed = 9;
    echo_exact(s, &seed, 10);
    wait_all_idle(e, 1);
    CHECK(shutdown(s, SD_SEND) == 0);
    CHECK(tn_wait_closed(s, 5000));
    closesocket(s);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.closed[IOCP_CLOSE_PEER], 1);
    CHECK_EQ_U(st.bytes_in, 10);
    tn_stop_clean(e);
}

/* Data and the FIN together while quiet: the data is echoed, then the close. */
static void zero_byte_receive_data_then_fin(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    iocp_engine *e = start_quick(&cfg);
    SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(s != INVALID_SOCKET);
    wait_all_idle(e, 1);
    CHECK(tn_send_all(s, "last words", 10) == 0);
    CHECK(shutdown(s, SD_SEND) == 0);
    char buf[10];
    CHECK_EQ_U(tn_recv_exact(s, buf, 10), 10);
    CHECK(memcmp(buf, "last words", 10) == 0);
    CHECK(tn_wait_closed(s, 5000));
    closesocket(s);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.closed[IOCP_CLOSE_PEER], 1);
    tn_stop_clean(e);
}

/* A reset completes the zero-byte receive with an error (or the read after it fails). */
static void zero_byte_receive_then_reset(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    iocp_engine *e = start_quick(&cfg);
    SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(s != INVALID_SOCKET);
    uint64_t seed = 10;
    echo_exact(s, &seed, 10);
    wait_all_idle(e, 1);
    tn_reset(s);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.closed[IOCP_CLOSE_RESET] + st.closed[IOCP_CLOSE_ERROR], 1);
    CHECK_EQ_U(st.closed[IOCP_CLOSE_PEER], 0);
    tn_stop_clean(e);
}

/* The stop with only zero-byte receives pending: each completes (the socket closed) and
 * every context comes back. */
#define STOP_CLIENTS 50
static void stop_with_zero_byte_receives(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    iocp_engine *e = start_quick(&cfg);
    SOCKET s[STOP_CLIENTS];
    uint64_t seed = 11;
    for (int i = 0; i < STOP_CLIENTS; i++) {
        s[i] = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
        CHECK(s[i] != INVALID_SOCKET);
        if (i % 2 == 0)
            echo_exact(s[i], &seed, 100); /* half of them said something first */
    }
    wait_all_idle(e, STOP_CLIENTS);
    /* Quiet for over a second (LINGER_QUIET_MS): the graceful close does not linger for a
     * FIN these clients would only send after the stop. A time the engine counts, not a
     * synchronisation. */
    uint64_t quiet = test_now_ms() + 1100;
    while (test_now_ms() < quiet)
        test_pause();
    uint64_t t0 = test_now_ms();
    tn_stop_clean(e);
    CHECK_MSG(test_now_ms() - t0 < 4000, "the stop took %llu ms",
              (unsigned long long)(test_now_ms() - t0));
    for (int i = 0; i < STOP_CLIENTS; i++) {
        CHECK(tn_wait_closed(s[i], 5000));
        closesocket(s[i]);
    }
}

/* A line sent in pieces with pauses longer than the idle switch: the buffer goes back to the
 * pool between the pieces, the decoder keeps what came, the message arrives whole. */
static void line_spans_buffer_returns(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.framing = IOCP_FRAMING_LINE;
    iocp_engine *e = start_quick(&cfg);
    SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(s != INVALID_SOCKET);
    static const char *pieces[] = {"hel", "lo, w", "orld: a line in ", "five pieces\n"};
    size_t sent = 0;
    for (int i = 0; i < 4; i++) {
        wait_all_idle(e, 1);
        CHECK(tn_send_all(s, pieces[i], strlen(pieces[i])) == 0);
        sent += strlen(pieces[i]);
        CHECK(tn_wait_stat(e, ST(bytes_in), sent, 5000)); /* read: a buffer is held again */
    }
    static const char want[] = "hello, world: a line in five pieces\n";
    char got[sizeof want];
    CHECK_EQ_U(tn_recv_exact(s, got, sizeof want - 1), sizeof want - 1);
    CHECK(memcmp(got, want, sizeof want - 1) == 0);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.messages_in, 1);
    CHECK(st.idle_receives + st.buffers_in_use >= 1);
    closesocket(s);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    tn_stop_clean(e);
}

/* Many clients send at once through a pool of two buffers: reading pauses (connections wait
 * for a buffer, the bytes stay in their sockets) and resumes; every echo is exact. */
#define CAP_CLIENTS 16
#define CAP_BYTES   (64 * 1024)
static void pool_cap_pauses_and_resumes(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.buffer_size = 1024;
    cfg.buffer_pool_max = 2 * 1024;
    cfg.send_queue_cap = 256 * 1024;
    iocp_engine *e = start_quick(&cfg);
    SOCKET s[CAP_CLIENTS];
    uint8_t *out = malloc((size_t)CAP_CLIENTS * CAP_BYTES), *in = malloc(CAP_BYTES);
    CHECK(out != NULL && in != NULL);
    uint64_t seed = 12;
    test_fill_random(&seed, out, (size_t)CAP_CLIENTS * CAP_BYTES);
    for (int i = 0; i < CAP_CLIENTS; i++) {
        s[i] = tn_connect("127.0.0.1", iocp_engine_port(e), 10000);
        CHECK(s[i] != INVALID_SOCKET);
    }
    for (int i = 0; i < CAP_CLIENTS; i++)
        CHECK(tn_send_all(s[i], out + (size_t)i * CAP_BYTES, CAP_BYTES) == 0);
    for (int i = 0; i < CAP_CLIENTS; i++) {
        CHECK_EQ_U(tn_recv_exact(s[i], in, CAP_BYTES), CAP_BYTES);
        CHECK_MSG(memcmp(in, out + (size_t)i * CAP_BYTES, CAP_BYTES) == 0, "client %d", i);
    }
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.buffers_max, 2);
    CHECK(st.buffers_peak <= 2);
    CHECK(st.buffer_waits > 0);
    CHECK_EQ_U(st.bytes_in, (uint64_t)CAP_CLIENTS * CAP_BYTES);
    for (int i = 0; i < CAP_CLIENTS; i++)
        closesocket(s[i]);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 10000));
    free(out);
    free(in);
    tn_stop_clean(e);
}

/* One buffer, and connections keep theirs while open (idle_receive_ms 0): the second client's
 * bytes wait in its socket until the first closes and its buffer is handed over. */
static void pool_waiter_gets_a_closed_connections_buffer(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.buffer_size = 1024;
    cfg.buffer_pool_max = 1024;
    cfg.idle_receive_ms = 0;
    cfg.send_queue_cap = 64 * 1024;
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    SOCKET a = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(a != INVALID_SOCKET);
    uint64_t seed = 13;
    echo_exact(a, &seed, 100); /* a holds the only buffer */
    SOCKET b = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(b != INVALID_SOCKET);
    CHECK(tn_wait_stat(e, ST(idle_receives), 1, 5000)); /* b: no buffer, a zero-byte receive */
    CHECK(tn_send_all(b, "waiting", 7) == 0);
    CHECK(tn_wait_stat(e, ST(buffer_waits), 1, 5000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.bytes_in, 100); /* b's bytes are still in its socket */
    closesocket(a);
    char buf[7];
    CHECK_EQ_U(tn_recv_exact(b, buf, 7), 7);
    CHECK(memcmp(buf, "waiting", 7) == 0);
    /* A third waits too, and the stop ends its wait (the context comes back). */
    SOCKET c = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(c != INVALID_SOCKET);
    CHECK(tn_send_all(c, "never read", 10) == 0);
    CHECK(tn_wait_stat(e, ST(buffer_waits), 2, 5000));
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.bytes_in, 100 + 7);
    /* b quiet for over a second (LINGER_QUIET_MS), so that the stop does not linger for its
     * FIN: a time the engine counts, not a synchronisation. */
    uint64_t quiet = test_now_ms() + 1100;
    while (test_now_ms() < quiet)
        test_pause();
    uint64_t t0 = test_now_ms();
    tn_stop_clean(e);
    CHECK_MSG(test_now_ms() - t0 < 4000, "the stop took %llu ms",
              (unsigned long long)(test_now_ms() - t0));
    closesocket(b);
    closesocket(c);
}

/* Clients that talk with pauses around the idle switch (the sweep's cancel races the data):
 * nothing lost, nothing doubled. */
#define RACE_CLIENTS 8
#define RACE_ROUNDS  12
static void cancel_races_data(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.idle_receive_ms = 20; /* a sweep every 10 ms */
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    SOCKET s[RACE_CLIENTS];
    for (int i = 0; i < RACE_CLIENTS; i++) {
        s[i] = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
        CHECK(s[i] != INVALID_SOCKET);
    }
    uint64_t seed = 14, total = 0;
    for (int r = 0; r < RACE_ROUNDS; r++) {
        for (int i = 0; i < RACE_CLIENTS; i++) {
            size_t len = 1 + (size_t)(test_rand(&seed) % 5000);
            echo_exact(s[i], &seed, len);
            total += len;
        }
        /* A pause of 0 to 40 ms: some connections switch, some are being switched. */
        uint64_t until = test_now_ms() + test_rand(&seed) % 40;
        while (test_now_ms() < until)
            test_pause();
    }
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.bytes_in, total);
    CHECK_EQ_U(st.bytes_out, total);
    CHECK_EQ_U(st.closed[IOCP_CLOSE_RESET] + st.closed[IOCP_CLOSE_ERROR], 0);
    for (int i = 0; i < RACE_CLIENTS; i++)
        closesocket(s[i]);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    tn_stop_clean(e);
}

static void pool_config_checked(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    CHECK_EQ_U(cfg.buffer_pool_max, 32u * 1024 * 1024);
    CHECK_EQ_U(cfg.idle_receive_ms, 1000);
    cfg.buffer_pool_max = cfg.buffer_size - 1;
    iocp_engine *e = NULL;
    iocp_error_info err;
    CHECK(iocp_engine_start(&cfg, NULL, NULL, &e, &err) == IOCP_E_INVALID_ARG);
    CHECK(e == NULL);
    CHECK(strstr(err.message, "buffer_pool_max") != NULL);
    iocp_config_init(&cfg);
    cfg.max_connections = 100000;
    cfg.buffer_size = 4096;
    cfg.buffer_pool_max = 3 * 4096 + 100; /* whole buffers only */
    e = tn_start(&cfg, NULL, NULL);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.buffers_max, 3);
    CHECK_EQ_U(st.buffers_in_use, 0);
    tn_stop_clean(e);
}

static const test_case cases[] = {
    {"quiet_connection_gives_buffer_back", quiet_connection_gives_buffer_back},
    {"silent_connection_goes_idle", silent_connection_goes_idle},
    {"zero_byte_receive_then_fin", zero_byte_receive_then_fin},
    {"zero_byte_receive_data_then_fin", zero_byte_receive_data_then_fin},
    {"zero_byte_receive_then_reset", zero_byte_receive_then_reset},
    {"stop_with_zero_byte_receives", stop_with_zero_byte_receives},
    {"line_spans_buffer_returns", line_spans_buffer_returns},
    {"pool_cap_pauses_and_resumes", pool_cap_pauses_and_resumes},
    {"pool_waiter_gets_a_closed_connections_buffer", pool_waiter_gets_a_closed_connections_buffer},
    {"cancel_races_data", cancel_races_data},
    {"pool_config_checked", pool_config_checked},
};

TEST_MAIN(cases)
