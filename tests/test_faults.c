/*
 * test_faults.c: the engine built with fault injection (iocp_faulty). Receives and sends that
 * move one byte at a time must still echo exactly; calls that fail with the codes Windows and
 * Wine use for a lost connection end that connection only, and every context comes back.
 */
#include "harness.h"
#include "net_util.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static void short_io_echo_exact(void)
{
    SetEnvironmentVariableA("IOCP_FAULT_SHORT", "1");
    iocp_engine *e = tn_start(NULL, NULL, NULL);
    uint64_t seed = 5;
    static const size_t sizes[] = {1, 100, 5000, 70000};
    uint8_t *data = malloc(70000);
    CHECK(data != NULL);
    tn_ledger echoed = {0, 0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        test_fill_random(&seed, data, sizes[i]);
        SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 20000);
        CHECK(s != INVALID_SOCKET);
        echoed.sent += sizes[i];
        echoed.back += tn_echo_split(s, data, sizes[i], seed);
        closesocket(s);
    }
    iocp_stats st;
    iocp_engine_stats(e, &st);
    uint64_t leaked = tn_stop_counting_leaks(e);
    /* One byte per call: every read and every send a fault. */
    tn_metric("short_io", 4, (int64_t)st.messages_in, 0, (int64_t)(echoed.sent - echoed.back),
              (int64_t)leaked, 0);
    CHECK_EQ_U(echoed.back, echoed.sent);
    /* One byte per call: at least as many reads as bytes. */
    CHECK(st.messages_in >= 1 + 100 + 5000 + 70000);
    free(data);
    tn_stop_clean(e);
}

static void short_io_length_framing(void)
{
    SetEnvironmentVariableA("IOCP_FAULT_SHORT", "1");
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.framing = IOCP_FRAMING_LENGTH;
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    uint8_t frames[3 * (4 + 300)];
    size_t n = 0;
    uint64_t seed = 11;
    for (int i = 0; i < 3; i++) {
        size_t len = (size_t)(i * 150);
        n += iocp_frame_prefix(IOCP_FRAMING_LENGTH, len, frames + n);
        test_fill_random(&seed, frames + n, len);
        n += len;
    }
    SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 20000);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ_U(tn_echo_split(s, frames, n, 3), n);
    closesocket(s);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 10000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.messages_in, 3);
    tn_stop_clean(e);
}

typedef struct client_result {
    uint16_t port;
    int index;
    int exact;   /* rounds whose echo matched */
    int cut;     /* 1 if the connection ended early (allowed) */
    int corrupt; /* wrong bytes: never allowed */
} client_result;

static DWORD WINAPI faulty_client(LPVOID arg)
{
    client_result *r = arg;
    SOCKET s = tn_connect("127.0.0.1", r->port, 20000);
    if (s == INVALID_SOCKET) {
        r->cut = 1;
        return 0;
    }
    uint64_t seed = 1000 + (uint64_t)r->index;
    uint8_t msg[700], back[700];
    for (int round = 0; round < 100; round++) {
        size_t len = 1 + (size_t)(test_rand(&seed) % sizeof msg);
        test_fill_random(&seed, msg, len);
        if (tn_send_all(s, msg, len) != 0) {
            r->cut = 1;
            break;
        }
        size_t got = tn_recv_exact(s, back, len);
        if (memcmp(back, msg, got) != 0)
            r->corrupt = 1;
        if (got < len) {
            r->cut = 1;
            break;
        }
        r->exact++;
    }
    closesocket(s);
    return 0;
}

static void random_failures_end_only_their_connection(void)
{
    SetEnvironmentVariableA("IOCP_FAULT_SHORT", "0");
    SetEnvironmentVariableA("IOCP_FAULT_FAIL_PERMILLE", "3");
    SetEnvironmentVariableA("IOCP_FAULT_SEED", "7");
    iocp_engine *e = tn_start(NULL, NULL, NULL);
    enum { CLIENTS = 40 };
    client_result r[CLIENTS];
    HANDLE t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].port = iocp_engine_port(e);
        r[i].index = i;
        t[i] = CreateThread(NULL, 0, faulty_client, &r[i], 0, NULL);
        CHECK(t[i] != NULL);
    }
    int cut = 0, whole = 0;
    for (int i = 0; i < CLIENTS; i++) {
        WaitForSingleObject(t[i], INFINITE);
        CloseHandle(t[i]);
        CHECK_MSG(!r[i].corrupt, "client %d received bytes that differ from what it sent", i);
        cut += r[i].cut;
        whole += r[i].exact == 100;
    }
    /* 40 x 100 echoes at 3 per mille per call: some connections must have been hit, and
     * every other one must have finished whole. */
    CHECK_MSG(cut > 0, "no injected failure reached a client");
    CHECK_EQ_U(cut + whole, CLIENTS);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 10000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK(st.closed[IOCP_CLOSE_RESET] + st.closed[IOCP_CLOSE_ERROR] >= (uint64_t)cut);
    /* A cut connection loses its echo by design; the others' bytes are checked above. */
    uint64_t leaked = tn_stop_counting_leaks(e);
    tn_metric("random_failures", CLIENTS, cut, 0, TN_NOT_MEASURED, (int64_t)leaked, 0);
    SetEnvironmentVariableA("IOCP_FAULT_FAIL_PERMILLE", "0");
    tn_stop_clean(e);
}

/* A receive whose completion never comes, even after its socket is closed (Wine lost one
 * that way under load): the stop gives up on it after the abort and its wait, says so with
 * IOCP_E_TIMEOUT, and leaves that context in use (its memory is never freed) instead of
 * hanging; destroying the engine afterwards is safe. */
static void stop_gives_up_on_a_lost_receive(void)
{
    SetEnvironmentVariableA("IOCP_FAULT_LOSE_RECV", "1");
    iocp_engine *e = tn_start(NULL, NULL, NULL);
    SetEnvironmentVariableA("IOCP_FAULT_LOSE_RECV", NULL);
    SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 10000);
    CHECK(s != INVALID_SOCKET);
    CHECK(tn_wait_stat(e, ST(accepted), 1, 10000));
    uint64_t t0 = test_now_ms();
    iocp_err err = iocp_engine_stop(e, 200);
    uint64_t took = test_now_ms() - t0;
    CHECK_MSG(err == IOCP_E_TIMEOUT, "stop returned %d (%s), not IOCP_E_TIMEOUT", (int)err,
              iocp_strerror(err));
    /* 200 ms drain, then the 10 s wait for operations of closed sockets. */
    CHECK_MSG(took >= 10000 && took < 20000, "stop took %llu ms", (unsigned long long)took);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    tn_metric("lost_receive", 1, 1, 0, TN_NOT_MEASURED, (int64_t)st.contexts_in_use, 1);
    CHECK_EQ_U(st.contexts_in_use, 1); /* kept on purpose: the system may still write into it */
    CHECK_EQ_U(st.ops_in_flight, 1);
    CHECK(iocp_engine_stop(e, 200) == IOCP_E_TIMEOUT); /* a second call says the same */
    iocp_engine_destroy(e);
    closesocket(s);
}

/* A stop that races accepts and dials (each open made to wait 300 ms, so the stop comes in the
 * middle of it): on_close runs exactly once per on_open, never for a connection the handler
 * never saw, and each dial ends in exactly one of on_open and on_connect_failed. */
typedef struct pairing {
    volatile LONG opens, outgoing_opens, closes, connect_failed;
} pairing;

static void pairing_open(iocp_conn *c)
{
    pairing *p = iocp_engine_user(iocp_conn_engine(c));
    InterlockedIncrement(&p->opens);
    if (iocp_conn_is_outgoing(c))
        InterlockedIncrement(&p->outgoing_opens);
}

static void pairing_data(iocp_conn *c, const void *data, size_t len)
{
    iocp_conn_send(c, data, len);
}

static void pairing_close(iocp_conn *c, iocp_close_reason reason, unsigned long sys)
{
    pairing *p = iocp_engine_user(iocp_conn_engine(c));
    (void)reason;
    (void)sys;
    InterlockedIncrement(&p->closes);
}

static void pairing_connect_failed(iocp_engine *e, void *user, iocp_err err, unsigned long sys)
{
    pairing *p = iocp_engine_user(e);
    (void)user;
    (void)err;
    (void)sys;
    InterlockedIncrement(&p->connect_failed);
}

static int some_accepted(void *engine)
{
    iocp_stats st;
    iocp_engine_stats(engine, &st);
    return st.accepted >= 1;
}

static void stop_racing_opens_pairs_callbacks(void)
{
    iocp_handlers h = {pairing_open, pairing_data, pairing_close, pairing_connect_failed};
    for (int round = 0; round < 20; round++) {
        pairing p = {0, 0, 0, 0};
        SetEnvironmentVariableA("IOCP_FAULT_OPEN_DELAY_MS", round % 2 ? "300" : "0");
        iocp_engine *e = tn_start(NULL, &h, &p);
        SetEnvironmentVariableA("IOCP_FAULT_OPEN_DELAY_MS", NULL);
        SOCKET s = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
        CHECK(s != INVALID_SOCKET);
        CHECK_OK(iocp_engine_connect(e, "127.0.0.1", iocp_engine_port(e), 5000, NULL));
        CHECK(test_wait_until(some_accepted, e, 5000));
        CHECK_OK(iocp_engine_stop(e, 1000));
        iocp_stats st;
        iocp_engine_stats(e, &st);
        CHECK_EQ_U(st.contexts_in_use, 0);
        CHECK_MSG(p.opens == p.closes, "round %d: %ld on_open, %ld on_close", round, p.opens,
                  p.closes);
        CHECK_MSG(p.outgoing_opens + p.connect_failed == 1,
                  "round %d: the dial ended in %ld on_open and %ld on_connect_failed", round,
                  p.outgoing_opens, p.connect_failed);
        iocp_engine_destroy(e);
        closesocket(s);
    }
}

/* Every address a name resolves to is tried in turn: with a refusing address put first
 * (IOCP_FAULT_REFUSING_FIRST), a dial still reaches the server, by address and by name (a
 * server on 127.0.0.1 only, the client given "localhost"); with nothing listening behind
 * either, it fails as refused, once. */
typedef struct dial_outcome {
    volatile LONG opened, failed;
    volatile LONG last_err;
} dial_outcome;

static void outcome_open(iocp_conn *c)
{
    dial_outcome *d = iocp_engine_user(iocp_conn_engine(c));
    InterlockedIncrement(&d->opened);
    iocp_conn_close(c, IOCP_GRACEFUL);
}

static void outcome_data(iocp_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
}

static void outcome_failed(iocp_engine *e, void *user, iocp_err err, unsigned long sys)
{
    dial_outcome *d = iocp_engine_user(e);
    (void)user;
    (void)sys;
    d->last_err = (LONG)err;
    InterlockedIncrement(&d->failed);
}

static int outcome_done(void *arg)
{
    dial_outcome *d = arg;
    return d->opened + d->failed >= 1;
}

/* A client-only engine reporting into d, started with one fault set (name=value). */
static iocp_engine *client_with_fault(dial_outcome *d, const char *fault, const char *value)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.listen = 0;
    static const iocp_handlers handlers = {outcome_open, outcome_data, NULL, outcome_failed};
    iocp_engine *client = NULL;
    iocp_error_info err;
    SetEnvironmentVariableA(fault, value);
    CHECK_MSG(iocp_engine_start(&cfg, &handlers, d, &client, &err) == IOCP_OK, "%s", err.message);
    SetEnvironmentVariableA(fault, NULL);
    return client;
}

/* A client-only engine whose dials all get a refusing address first. */
static iocp_engine *refusing_first_client(dial_outcome *d)
{
    return client_with_fault(d, "IOCP_FAULT_REFUSING_FIRST", "1");
}

static void dial_falls_back_past_a_refusing_address(void)
{
    iocp_config scfg;
    iocp_config_init(&scfg);
    scfg.bind_address = "127.0.0.1";
    iocp_engine *server = tn_start(&scfg, NULL, NULL);
    static const char *const hosts[] = {"127.0.0.1", "localhost"};
    for (size_t h = 0; h < sizeof hosts / sizeof hosts[0]; h++) {
        dial_outcome d = {0, 0, 0};
        iocp_engine *client = refusing_first_client(&d);
        CHECK_OK(iocp_engine_connect(client, hosts[h], iocp_engine_port(server), 5000, NULL));
        CHECK(test_wait_until(outcome_done, &d, 10000));
        CHECK_MSG(d.opened == 1 && d.failed == 0, "%s: %ld opened, %ld failed (%s)", hosts[h],
                  d.opened, d.failed, iocp_strerror((iocp_err)d.last_err));
        tn_stop_clean(client);
    }
    /* Nothing behind either address (port 1: nobody here listens there): refused, reported
     * once. */
    tn_stop_clean(server);
    dial_outcome d = {0, 0, 0};
    iocp_engine *client = refusing_first_client(&d);
    CHECK_OK(iocp_engine_connect(client, "127.0.0.1", 1, 5000, NULL));
    CHECK(test_wait_until(outcome_done, &d, 10000));
    CHECK_MSG(d.failed == 1 && d.opened == 0 && d.last_err == IOCP_E_REFUSED,
              "%ld opened, %ld failed (%s)", d.opened, d.failed,
              iocp_strerror((iocp_err)d.last_err));
    tn_stop_clean(client);
}

/* PostQueuedCompletionStatus failing (the system out of memory for the packet): the engine
 * posts again instead of aborting or dropping the packet, and says so. A failed dial's report
 * is such a packet. */
static void refused_posts_are_retried(void)
{
    dial_outcome d = {0, 0, 0};
    iocp_engine *client = client_with_fault(&d, "IOCP_FAULT_POST_FAILS", "3");
    CHECK_OK(iocp_engine_connect(client, "127.0.0.1", 1, 5000, NULL));
    CHECK(test_wait_until(outcome_done, &d, 10000));
    CHECK_MSG(d.failed == 1 && d.last_err == IOCP_E_REFUSED, "%ld failed (%s)", d.failed,
              iocp_strerror((iocp_err)d.last_err));
    iocp_stats st;
    iocp_engine_stats(client, &st);
    CHECK_EQ_U(st.post_retries, 3);
    tn_stop_clean(client);
}

static const test_case cases[] = {
    {"short_io_echo_exact", short_io_echo_exact},
    {"short_io_length_framing", short_io_length_framing},
    {"random_failures_end_only_their_connection", random_failures_end_only_their_connection},
    {"stop_gives_up_on_a_lost_receive", stop_gives_up_on_a_lost_receive},
    {"stop_racing_opens_pairs_callbacks", stop_racing_opens_pairs_callbacks},
    {"dial_falls_back_past_a_refusing_address", dial_falls_back_past_a_refusing_address},
    {"refused_posts_are_retried", refused_posts_are_retried},
};

TEST_MAIN(cases)
