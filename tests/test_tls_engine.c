/* test_tls_engine.c: TLS through the engine, both roles: a TLS echo server engine and a TLS
 * client engine dialling it; plaintext and silence on the TLS port; refusals at start; close
 * and stop with close_notify; every context back in the pool. The server role needs
 * server-side Schannel (Windows, Wine 10): under Wine 8 each case checks instead that the
 * engine refuses to start with the cause named. Native peers (Python ssl, openssl) are in
 * tests/scripts/tls_peers.sh. */
#include "harness.h"
#include "net_util.h"

#include <string.h>

#include "tls.h" /* the engine's own TLS layer: a hand-driven client over a blocking socket */

#ifndef IOCP_TLS_DIR
#error "IOCP_TLS_DIR must name tests/tls (set by tests/CMakeLists.txt)"
#endif

static char pfx[MAX_PATH * 2], ca[MAX_PATH * 2];

static void paths(void)
{
    snprintf(pfx, sizeof pfx, "%s/server.pfx", IOCP_TLS_DIR);
    snprintf(ca, sizeof ca, "%s/ca.pem", IOCP_TLS_DIR);
}

/* Lines the engines log, kept for the checks. */
static SRWLOCK log_lock = SRWLOCK_INIT;
static char log_text[16384];

static void keep_log(void *user, iocp_log_level level, const char *message)
{
    (void)user;
    (void)level;
    AcquireSRWLockExclusive(&log_lock);
    size_t used = strlen(log_text);
    snprintf(log_text + used, sizeof log_text - used, "%s\n", message);
    ReleaseSRWLockExclusive(&log_lock);
}

static int log_has(const char *text)
{
    AcquireSRWLockShared(&log_lock);
    int found = strstr(log_text, text) != NULL;
    ReleaseSRWLockShared(&log_lock);
    return found;
}

static void server_config(iocp_config *cfg)
{
    iocp_config_init(cfg);
    cfg->bind_address = "127.0.0.1";
    cfg->tls.pfx_path = pfx;
    cfg->tls.pfx_password = "iocp-test";
    cfg->log = keep_log;
}

/* Starts the TLS server; under Wine 8 checks the refusal and returns NULL. */
static iocp_engine *start_server(iocp_config *cfg, const iocp_handlers *h)
{
    if (!test_tls_server_role()) {
        iocp_engine *e = NULL;
        iocp_error_info err;
        iocp_err rc = iocp_engine_start(cfg, h, NULL, &e, &err);
        CHECK_MSG(rc == IOCP_E_TLS, "started without server-side TLS (%d): %s", (int)rc,
                  err.message);
        CHECK_MSG(strstr(err.message, "SEC_E_UNSUPPORTED_FUNCTION") != NULL, "%s", err.message);
        printf("no server-side Schannel here; refused as it should: %s\n", err.message);
        return NULL;
    }
    return tn_start(cfg, h, NULL);
}

/* ---- the client side: an engine that dials, sends a payload, checks the echo ------------ */

typedef struct client {
    const uint8_t *payload;
    size_t len, chunk;
    uint8_t *echo;
    volatile LONG got;
    HANDLE done;
    volatile LONG opened, failed, closed;
    iocp_err fail_err;
    unsigned long fail_sys;
    iocp_close_reason close_reason;
    char tls[80];
} client;

static void client_open(iocp_conn *conn)
{
    client *cl = iocp_engine_user(iocp_conn_engine(conn));
    const char *tls = iocp_conn_tls(conn);
    snprintf(cl->tls, sizeof cl->tls, "%s", tls ? tls : "(none)");
    InterlockedExchange(&cl->opened, 1);
    for (size_t pos = 0; cl->chunk > 0 && pos < cl->len;) {
        size_t n = cl->len - pos < cl->chunk ? cl->len - pos : cl->chunk;
        if (iocp_conn_send(conn, cl->payload + pos, n) != IOCP_OK) {
            Sleep(1); /* the queue is full: the worker sending it will drain it */
            continue;
        }
        pos += n;
    }
}

static void client_data(iocp_conn *conn, const void *data, size_t len)
{
    client *cl = iocp_engine_user(iocp_conn_engine(conn));
    size_t at = (size_t)cl->got;
    if (at + len <= cl->len)
        memcpy(cl->echo + at, data, len);
    InterlockedExchangeAdd(&cl->got, (LONG)len);
    if ((size_t)cl->got >= cl->len) {
        iocp_conn_close(conn, IOCP_GRACEFUL); /* close_notify, then FIN */
    }
}

static void client_close(iocp_conn *conn, iocp_close_reason reason, unsigned long sys)
{
    (void)sys;
    client *cl = iocp_engine_user(iocp_conn_engine(conn));
    cl->close_reason = reason;
    InterlockedExchange(&cl->closed, 1);
    SetEvent(cl->done);
}

static void client_failed(iocp_engine *e, void *user, iocp_err err, unsigned long sys)
{
    (void)user;
    client *cl = iocp_engine_user(e);
    cl->fail_err = err;
    cl->fail_sys = sys;
    InterlockedExchange(&cl->failed, 1);
    SetEvent(cl->done);
}

static const iocp_handlers client_handlers = {client_open, client_data, client_close,
                                              client_failed};

/* Dials 127.0.0.1:port as `name` with TLS (ca: trusted extra CA or NULL) and runs the payload
 * through. Returns the client engine, stopped and checked. */
static void run_client(client *cl, uint16_t port, const char *name, const char *ca_file,
                       iocp_framing framing)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.listen = 0;
    cfg.framing = framing;
    cfg.tls.client = 1;
    cfg.tls.ca_file = ca_file;
    cfg.tls.server_name = name;
    cfg.log = keep_log;
    cl->done = CreateEventW(NULL, TRUE, FALSE, NULL);
    cl->echo = calloc(1, cl->len + 1);
    CHECK(cl->done != NULL && cl->echo != NULL);
    iocp_engine *e = NULL;
    iocp_error_info err;
    CHECK_MSG(iocp_engine_start(&cfg, &client_handlers, cl, &e, &err) == IOCP_OK, "%s",
              err.message);
    CHECK_OK(iocp_engine_connect(e, "127.0.0.1", port, 10000, NULL));
    CHECK_MSG(WaitForSingleObject(cl->done, 60000) == WAIT_OBJECT_0,
              "no end after 60 s: %ld of %zu", (long)cl->got, cl->len);
    tn_stop_clean(e);
    CloseHandle(cl->done);
}

static uint8_t *random_payload(size_t len, uint32_t seed)
{
    uint8_t *p = malloc(len);
    CHECK(p != NULL);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    return p;
}

/* A trusting TLS client (our CA, "localhost") that sends len random bytes in pieces of chunk
 * and must get every byte back: the neighbour the misbehaving peers must not disturb. */
static void neighbour_echo(uint16_t port, size_t len, size_t chunk, uint32_t seed)
{
    client cl;
    memset(&cl, 0, sizeof cl);
    cl.len = len;
    cl.chunk = chunk;
    cl.payload = random_payload(len, seed);
    run_client(&cl, port, "localhost", ca, IOCP_FRAMING_RAW);
    CHECK_MSG(!cl.failed, "the neighbour's dial failed: %s", iocp_strerror(cl.fail_err));
    CHECK_EQ_U((size_t)cl.got, len);
    CHECK(memcmp(cl.echo, cl.payload, len) == 0);
    free((void *)cl.payload);
    free(cl.echo);
}

/* 1 MiB through TLS both ways, sent in 3,000-byte sends; the client closes with close_notify
 * and the server sees a peer close. */
static void echo_through_both_roles(void)
{
    paths();
    iocp_config cfg;
    server_config(&cfg);
    iocp_engine *srv = start_server(&cfg, NULL);
    if (srv == NULL)
        return;
    client cl;
    memset(&cl, 0, sizeof cl);
    cl.len = 1 << 20;
    cl.chunk = 3000;
    cl.payload = random_payload(cl.len, 7);
    run_client(&cl, iocp_engine_port(srv), "localhost", ca, IOCP_FRAMING_RAW);
    CHECK_MSG(cl.opened && !cl.failed, "failed: %s (%lu)", iocp_strerror(cl.fail_err), cl.fail_sys);
    CHECK_EQ_U((size_t)cl.got, cl.len);
    CHECK(memcmp(cl.echo, cl.payload, cl.len) == 0);
    CHECK_MSG(strncmp(cl.tls, "TLS 1.", 6) == 0, "%s", cl.tls);
    printf("client saw %s\n", cl.tls);
    /* The server saw the client's close_notify (or its FIN) as a peer close. */
    CHECK(tn_wait_stat(srv, ST(closed[IOCP_CLOSE_PEER]), 1, 5000));
    iocp_stats st;
    iocp_engine_stats(srv, &st);
    CHECK_EQ_U(st.tls_handshakes, 1);
    CHECK_EQ_U(st.tls_handshake_failures, 0);
    tn_stop_clean(srv);
    free((void *)cl.payload);
    free(cl.echo);
}

/* Line and length framing over TLS: messages split across records and records across reads. */
static void framed_modes(void)
{
    paths();
    iocp_framing modes[] = {IOCP_FRAMING_LINE, IOCP_FRAMING_LENGTH};
    for (int m = 0; m < 2; m++) {
        iocp_config cfg;
        server_config(&cfg);
        cfg.framing = modes[m];
        iocp_engine *srv = start_server(&cfg, NULL);
        if (srv == NULL)
            return;
        /* 2,000 messages of 1..200 bytes: as a stream for the client engine in raw mode
         * (the client frames them itself), compared as a stream. */
        size_t cap = 2000 * 210, len = 0;
        uint8_t *stream = malloc(cap);
        CHECK(stream != NULL);
        uint32_t seed = 99;
        for (int i = 0; i < 2000; i++) {
            seed = seed * 1103515245u + 12345u;
            size_t n = (seed >> 16) % 200 + 1;
            if (modes[m] == IOCP_FRAMING_LENGTH) {
                stream[len++] = (uint8_t)(n >> 24);
                stream[len++] = (uint8_t)(n >> 16);
                stream[len++] = (uint8_t)(n >> 8);
                stream[len++] = (uint8_t)n;
            }
            for (size_t k = 0; k < n; k++)
                stream[len++] = (uint8_t)('a' + (k + (size_t)i) % 26);
            if (modes[m] == IOCP_FRAMING_LINE)
                stream[len++] = '\n';
        }
        client cl;
        memset(&cl, 0, sizeof cl);
        cl.len = len;
        cl.chunk = 777;
        cl.payload = stream;
        run_client(&cl, iocp_engine_port(srv), "localhost", ca, IOCP_FRAMING_RAW);
        CHECK_MSG(!cl.failed, "failed: %s", iocp_strerror(cl.fail_err));
        CHECK_EQ_U((size_t)cl.got, len);
        CHECK(memcmp(cl.echo, stream, len) == 0);
        iocp_stats st;
        iocp_engine_stats(srv, &st);
        CHECK_EQ_U(st.messages_in, 2000);
        printf("%s framing: 2000 messages, %zu bytes, exact\n", iocp_framing_name(modes[m]), len);
        tn_stop_clean(srv);
        free(stream);
        free(cl.echo);
    }
}

/* A client that does not trust the certificate (no extra CA; the wrong name) fails the dial
 * with IOCP_E_TLS, and the server serves the next client. (Schannel's client role checks the
 * certificate once its side of the handshake is done, so the server saw a handshake.) */
static void client_refuses_certificate(void)
{
    paths();
    iocp_config cfg;
    server_config(&cfg);
    iocp_engine *srv = start_server(&cfg, NULL);
    if (srv == NULL)
        return;
    const char *cases[][2] = {{"localhost", NULL}, {"wrong.example", "ca"}};
    for (int i = 0; i < 2; i++) {
        client cl;
        memset(&cl, 0, sizeof cl);
        cl.len = 16;
        cl.chunk = 16;
        cl.payload = (const uint8_t *)"0123456789abcdef";
        log_text[0] = '\0';
        run_client(&cl, iocp_engine_port(srv), cases[i][0], cases[i][1] ? ca : NULL,
                   IOCP_FRAMING_RAW);
        CHECK_MSG(cl.failed && !cl.opened, "the client accepted the certificate for %s",
                  cases[i][0]);
        CHECK_EQ_U(cl.fail_err, IOCP_E_TLS);
        CHECK_MSG(log_has("failed validation"), "log:\n%s", log_text);
        printf("%s: refused (%s)\n", cases[i][0], strstr(log_text, "failed validation"));
        free(cl.echo);
    }
    CHECK(tn_wait_stat(srv, ST(contexts_in_use), 0, 5000));
    /* And the next, trusting client is served. */
    neighbour_echo(iocp_engine_port(srv), 100, 100, 3);
    tn_stop_clean(srv);
}

/* Plaintext on the TLS port is closed at its first byte with a log line; a client that sends
 * half a ClientHello and stops is reset at the handshake deadline; a TLS client meanwhile is
 * served. */
static void plaintext_and_silence(void)
{
    paths();
    iocp_config cfg;
    server_config(&cfg);
    cfg.tls.handshake_timeout_ms = 1000;
    log_text[0] = '\0';
    iocp_engine *srv = start_server(&cfg, NULL);
    if (srv == NULL)
        return;
    uint16_t port = iocp_engine_port(srv);
    SOCKET plain = tn_connect("127.0.0.1", port, 5000);
    SOCKET stuck = tn_connect("127.0.0.1", port, 5000);
    CHECK(plain != INVALID_SOCKET && stuck != INVALID_SOCKET);
    CHECK(tn_send_all(plain, "hello\n", 6) == 0);
    CHECK(tn_send_all(stuck, "\x16\x03\x01\x00\xff\x01", 6) == 0); /* a ClientHello's start */
    uint64_t t0 = GetTickCount64();
    CHECK_MSG(tn_wait_closed(plain, 3000), "plaintext client not closed");
    CHECK_MSG(log_has("not a TLS ClientHello (first byte 0x68"), "log:\n%s", log_text);

    neighbour_echo(port, 5000, 1000, 11);

    CHECK_MSG(tn_wait_closed(stuck, 5000), "a half handshake was not reset");
    uint64_t waited = GetTickCount64() - t0;
    printf("half handshake reset after %llu ms (deadline 1000 ms)\n", (unsigned long long)waited);
    CHECK(waited >= 900);
    CHECK(log_has("no TLS handshake after"));
    closesocket(plain);
    closesocket(stuck);
    iocp_stats st;
    CHECK(tn_wait_stat(srv, ST(tls_handshake_failures), 2, 5000));
    CHECK(tn_wait_stat(srv, ST(closed[IOCP_CLOSE_HANDSHAKE]), 2, 5000));
    iocp_engine_stats(srv, &st);
    CHECK_EQ_U(st.tls_handshakes, 1);
    tn_stop_clean(srv);
}

/* Start-up refusals: each names its cause and nothing listens. */
static void start_refusals(void)
{
    paths();
    struct {
        const char *pfx, *password, *thumb, *want;
    } cases[] = {
        {"server.pfx", "wrong", NULL, "wrong password"},
        {"missing.pfx", "iocp-test", NULL, "cannot open"},
        {"ca.pem", "iocp-test", NULL, "is not a PFX"},
        {NULL, NULL, "00112233445566778899aabbccddeeff00112233", "no certificate with thumbprint"},
        {"server.pfx", "iocp-test", "00112233445566778899aabbccddeeff00112233", "not both"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        iocp_config cfg;
        char path[MAX_PATH * 2];
        iocp_config_init(&cfg);
        cfg.log = keep_log;
        if (cases[i].pfx != NULL) {
            snprintf(path, sizeof path, "%s/%s", IOCP_TLS_DIR, cases[i].pfx);
            cfg.tls.pfx_path = path;
        }
        cfg.tls.pfx_password = cases[i].password;
        cfg.tls.cert_thumbprint = cases[i].thumb;
        iocp_engine *e = NULL;
        iocp_error_info err;
        iocp_err rc = iocp_engine_start(&cfg, NULL, NULL, &e, &err);
        CHECK_MSG(rc != IOCP_OK && e == NULL, "started with %s", cases[i].want);
        CHECK_MSG(strstr(err.message, cases[i].want) != NULL, "'%s' lacks '%s'", err.message,
                  cases[i].want);
        printf("refused: %s\n", err.message);
    }
}

/* A stop with TLS clients connected: each gets close_notify (a peer close on its side), and
 * every context of both engines comes back. */
static void stop_sends_close_notify(void)
{
    paths();
    iocp_config cfg;
    server_config(&cfg);
    iocp_engine *srv = start_server(&cfg, NULL);
    if (srv == NULL)
        return;
    /* Ten clients that send one small message and then wait. */
    client cl[10];
    iocp_engine *ce[10];
    for (int i = 0; i < 10; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].len = 1 << 30; /* never reached: the client waits for the server's close */
        cl[i].chunk = 0;
        cl[i].done = CreateEventW(NULL, TRUE, FALSE, NULL);
        iocp_config c;
        iocp_config_init(&c);
        c.listen = 0;
        c.tls.client = 1;
        c.tls.ca_file = ca;
        c.tls.server_name = "localhost";
        c.log = keep_log;
        iocp_error_info err;
        CHECK_MSG(iocp_engine_start(&c, &client_handlers, &cl[i], &ce[i], &err) == IOCP_OK, "%s",
                  err.message);
        cl[i].echo = NULL;
        CHECK_OK(iocp_engine_connect(ce[i], "127.0.0.1", iocp_engine_port(srv), 10000, NULL));
    }
    CHECK(tn_wait_stat(srv, ST(tls_handshakes), 10, 20000));
    CHECK(tn_wait_stat(srv, ST(active), 10, 5000));
    CHECK_OK(iocp_engine_stop(srv, 5000));
    for (int i = 0; i < 10; i++) {
        CHECK_MSG(WaitForSingleObject(cl[i].done, 10000) == WAIT_OBJECT_0, "client %d", i);
        CHECK_MSG(cl[i].closed && cl[i].close_reason == IOCP_CLOSE_PEER,
                  "client %d: closed %ld, reason %s", i, (long)cl[i].closed,
                  iocp_close_reason_str(cl[i].close_reason));
        tn_stop_clean(ce[i]);
        CloseHandle(cl[i].done);
    }
    iocp_stats st;
    iocp_engine_stats(srv, &st);
    CHECK_EQ_U(st.closed[IOCP_CLOSE_STOP], 10);
    CHECK_EQ_U(st.contexts_in_use, 0);
    iocp_engine_destroy(srv);
}

/* ---- a TLS client by hand, over a blocking socket: to misbehave after the handshake ---- */

typedef struct hand_client {
    SOCKET s;
    iocpi_tls_creds creds;
    iocpi_tls tls;
} hand_client;

/* Connects and completes the handshake (no validation: the peer is the server under test).
 * Returns 0, or -1 when the server closed or the handshake failed. */
static int hand_connect(hand_client *h, uint16_t port)
{
    char err[300];
    char in[20000]; /* per thread: several hand clients run at once */
    size_t have = 0;
    memset(h, 0, sizeof *h);
    CHECK_MSG(iocpi_tls_creds_client(&h->creds, NULL, 1, err, sizeof err) == 0, "%s", err);
    CHECK(iocpi_tls_init(&h->tls, &h->creds, "localhost") == 0);
    h->s = tn_connect("127.0.0.1", port, 5000);
    if (h->s == INVALID_SOCKET)
        return -1;
    if (iocpi_tls_begin(&h->tls) == IOCPI_TLS_FAILED)
        return -1;
    while (!h->tls.established) {
        if (h->tls.out_len > 0) {
            if (tn_send_all(h->s, h->tls.out, h->tls.out_len) != 0)
                return -1;
            iocpi_tls_output_taken(&h->tls);
        }
        int n = recv(h->s, in + have, (int)(sizeof in - have), 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        for (;;) {
            size_t used;
            char *p;
            size_t pl;
            iocpi_tls_status r = iocpi_tls_input(&h->tls, in, have, &used, &p, &pl);
            if (r == IOCPI_TLS_FAILED)
                return -1;
            memmove(in, in + used, have - used);
            have -= used;
            if (r == IOCPI_TLS_NEED_MORE || have == 0 || h->tls.established)
                break;
        }
    }
    if (h->tls.out_len > 0) {
        tn_send_all(h->s, h->tls.out, h->tls.out_len);
        iocpi_tls_output_taken(&h->tls);
    }
    return 0;
}

/* Reads records until len bytes of plaintext came; 0 when they equal want. */
static int hand_expect(hand_client *h, const void *want, size_t len)
{
    char in[20000], got[256];
    size_t have = 0, plain_have = 0;
    CHECK(len <= sizeof got);
    while (plain_have < len) {
        int n = recv(h->s, in + have, (int)(sizeof in - have), 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        for (;;) {
            size_t used, pl;
            char *p;
            iocpi_tls_status r = iocpi_tls_input(&h->tls, in, have, &used, &p, &pl);
            if (r == IOCPI_TLS_FAILED || r == IOCPI_TLS_CLOSED)
                return -1;
            if (r == IOCPI_TLS_DATA) {
                CHECK(plain_have + pl <= sizeof got);
                memcpy(got + plain_have, p, pl);
                plain_have += pl;
            }
            memmove(in, in + used, have - used);
            have -= used;
            if (r == IOCPI_TLS_NEED_MORE || have == 0)
                break;
        }
    }
    return plain_have == len && memcmp(got, want, len) == 0 ? 0 : -1;
}

/* Sends one record of len bytes; with corrupt, one byte of its ciphertext flipped. */
static int hand_send(hand_client *h, const void *data, size_t len, int corrupt)
{
    char record[20000];
    size_t n = 0;
    CHECK(len <= iocpi_tls_max_record(&h->tls));
    CHECK(iocpi_tls_encrypt(&h->tls, data, len, record, &n) == 0);
    if (corrupt)
        record[n / 2] ^= 0x40;
    return tn_send_all(h->s, record, n);
}

static void hand_close(hand_client *h, int reset)
{
    if (reset)
        tn_reset(h->s);
    else
        closesocket(h->s);
    iocpi_tls_fini(&h->tls);
    iocpi_tls_creds_free(&h->creds);
}

/* Garbage over TLS (the fault suite's scenario again): random bytes that start like a
 * handshake record, and records altered after the handshake, each close only their own
 * connection (a handshake failure; a protocol error, with the alert); a neighbour keeps its
 * exact echo; every context comes back. */
static void garbage_over_tls(void)
{
    paths();
    iocp_config cfg;
    server_config(&cfg);
    cfg.tls.handshake_timeout_ms = 1000; /* junk that announces a long record waits for it */
    iocp_engine *srv = start_server(&cfg, NULL);
    if (srv == NULL)
        return;
    uint16_t port = iocp_engine_port(srv);
    uint64_t seed = 41;
    for (int round = 0; round < 10; round++) {
        /* Before the handshake: a record header of the handshake type, then junk. */
        SOCKET junk = tn_connect("127.0.0.1", port, 5000);
        CHECK(junk != INVALID_SOCKET);
        uint8_t bytes[3000];
        size_t len = 6 + (size_t)(test_rand(&seed) % (sizeof bytes - 6));
        test_fill_random(&seed, bytes, len);
        bytes[0] = 22;
        CHECK(tn_send_all(junk, bytes, len) == 0);
        CHECK_MSG(tn_wait_closed(junk, 5000), "round %d: junk handshake not closed", round);
        closesocket(junk);
        /* After it: a record with one byte flipped. */
        hand_client h;
        CHECK(hand_connect(&h, port) == 0);
        CHECK(hand_send(&h, "fine", 4, 0) == 0);
        CHECK_MSG(hand_expect(&h, "fine", 4) == 0, "round %d: no echo of a good record", round);
        CHECK(hand_send(&h, "altered record", 14, 1) == 0);
        CHECK_MSG(tn_wait_closed(h.s, 5000), "round %d: an altered record did not close it", round);
        hand_close(&h, 0);
        neighbour_echo(port, 1000, 300, (uint32_t)round);
    }
    CHECK(tn_wait_stat(srv, ST(contexts_in_use), 0, 10000));
    iocp_stats st;
    iocp_engine_stats(srv, &st);
    printf("handshakes %llu, failed %llu, protocol errors %llu\n",
           (unsigned long long)st.tls_handshakes, (unsigned long long)st.tls_handshake_failures,
           (unsigned long long)st.protocol_errors);
    CHECK_EQ_U(st.tls_handshake_failures, 10);
    CHECK_EQ_U(st.protocol_errors, 10);
    tn_stop_clean(srv);
}

/* Resets in the middle of TLS transfers, from 4 threads: every context back. */
typedef struct tls_resetter {
    uint16_t port;
    int rounds;
    uint64_t seed;
} tls_resetter;

static DWORD WINAPI tls_resetter_main(LPVOID arg)
{
    tls_resetter *r = arg;
    static char block[8192];
    for (int i = 0; i < r->rounds; i++) {
        hand_client h;
        if (hand_connect(&h, r->port) != 0) {
            hand_close(&h, 1);
            continue;
        }
        int records = 1 + (int)(test_rand(&r->seed) % 6);
        for (int k = 0; k < records; k++)
            if (hand_send(&h, block, sizeof block, 0) != 0)
                break;
        char back[1000];
        recv(h.s, back, (int)(test_rand(&r->seed) % sizeof back) + 1, 0);
        hand_close(&h, 1);
    }
    return 0;
}

static void resets_mid_tls_transfer(void)
{
    paths();
    iocp_config cfg;
    server_config(&cfg);
    iocp_engine *srv = start_server(&cfg, NULL);
    if (srv == NULL)
        return;
    enum { THREADS = 4 };
    tls_resetter r[THREADS];
    HANDLE t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i].port = iocp_engine_port(srv);
        r[i].rounds = 10;
        r[i].seed = 200 + (uint64_t)i;
        t[i] = CreateThread(NULL, 0, tls_resetter_main, &r[i], 0, NULL);
        CHECK(t[i] != NULL);
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK(WaitForSingleObject(t[i], 60000) == WAIT_OBJECT_0);
        CloseHandle(t[i]);
    }
    neighbour_echo(iocp_engine_port(srv), 20000, 5000, 5);
    CHECK(tn_wait_stat(srv, ST(contexts_in_use), 0, 10000));
    iocp_stats st;
    iocp_engine_stats(srv, &st);
    printf("%llu handshakes, %llu resets\n", (unsigned long long)st.tls_handshakes,
           (unsigned long long)st.closed[IOCP_CLOSE_RESET]);
    CHECK(st.tls_handshakes >= THREADS * 10);
    tn_stop_clean(srv);
}

/* ---- a record split across the idle switch --------------------------------------------- */

/* A relay between the client engine and the server: towards the server, each read is sent as
 * its first 3 bytes (a part of a record header), a pause of several idle switches, then the
 * rest; the other way as it is. During each pause the server holds an incomplete record at
 * the front of its receive buffer (tls_kept): it must keep that buffer. */
#define RELAY_SWITCH_MS 40
typedef struct relay {
    SOCKET listener;
    uint16_t port, target;
    iocp_engine *srv;
    volatile LONG pauses, kept_buffer; /* pauses, and those the server kept its buffer in */
    HANDLE thread;
} relay;

static int relay_pump(SOCKET from, SOCKET to, relay *r, int split)
{
    char buf[16384];
    int n = recv(from, buf, sizeof buf, 0);
    if (n <= 0)
        return 0;
    if (split && n > 3) {
        CHECK(tn_send_all(to, buf, 3) == 0);
        uint64_t until = test_now_ms() + 5 * RELAY_SWITCH_MS; /* past the switch: the point */
        while (test_now_ms() < until)
            test_pause();
        iocp_stats st;
        iocp_engine_stats(r->srv, &st);
        InterlockedIncrement(&r->pauses);
        if (st.buffers_in_use == 1 && st.idle_receives == 0)
            InterlockedIncrement(&r->kept_buffer);
        CHECK(tn_send_all(to, buf + 3, (size_t)n - 3) == 0);
    } else {
        CHECK(tn_send_all(to, buf, (size_t)n) == 0);
    }
    return 1;
}

/* Moves bytes both ways between the client's socket a and the server's b until both have
 * shut down (a half-close is passed on), then closes both; split_client: relay_pump's
 * splitting of what the client sends. */
static void relay_both_ways(relay *r, SOCKET a, SOCKET b, int split_client)
{
    for (int open_a = 1, open_b = 1; open_a || open_b;) {
        fd_set rd;
        FD_ZERO(&rd);
        if (open_a)
            FD_SET(a, &rd);
        if (open_b)
            FD_SET(b, &rd);
        struct timeval tv = {10, 0};
        CHECK(select(0, &rd, NULL, NULL, &tv) > 0);
        if (open_a && FD_ISSET(a, &rd) && !relay_pump(a, b, r, split_client)) {
            open_a = 0;
            shutdown(b, SD_SEND);
        }
        if (open_b && FD_ISSET(b, &rd) && !relay_pump(b, a, r, 0)) {
            open_b = 0;
            shutdown(a, SD_SEND);
        }
    }
    closesocket(a);
    closesocket(b);
}

static DWORD WINAPI relay_main(LPVOID arg)
{
    relay *r = arg;
    SOCKET a = accept(r->listener, NULL, NULL);
    CHECK(a != INVALID_SOCKET);
    SOCKET b = tn_connect("127.0.0.1", r->target, 10000);
    CHECK(b != INVALID_SOCKET);
    relay_both_ways(r, a, b, 1);
    return 0;
}

static void record_split_across_idle_switch(void)
{
    paths();
    iocp_config cfg;
    server_config(&cfg);
    cfg.idle_receive_ms = RELAY_SWITCH_MS;
    iocp_engine *srv = start_server(&cfg, NULL);
    if (srv == NULL)
        return;
    relay r;
    memset(&r, 0, sizeof r);
    r.srv = srv;
    r.target = iocp_engine_port(srv);
    r.listener = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(r.listener != INVALID_SOCKET);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(r.listener, (struct sockaddr *)&sa, sizeof sa) == 0);
    int len = sizeof sa;
    CHECK(getsockname(r.listener, (struct sockaddr *)&sa, &len) == 0);
    CHECK(listen(r.listener, 1) == 0);
    r.port = ntohs(sa.sin_port);
    r.thread = CreateThread(NULL, 0, relay_main, &r, 0, NULL);
    CHECK(r.thread != NULL);
    client cl;
    memset(&cl, 0, sizeof cl);
    cl.len = 40000;
    cl.chunk = 3000;
    cl.payload = random_payload(cl.len, 11);
    run_client(&cl, r.port, "localhost", ca, IOCP_FRAMING_RAW);
    CHECK_MSG(cl.opened && !cl.failed, "failed: %s (%lu)", iocp_strerror(cl.fail_err), cl.fail_sys);
    CHECK_EQ_U((size_t)cl.got, cl.len);
    CHECK(memcmp(cl.echo, cl.payload, cl.len) == 0);
    CHECK(WaitForSingleObject(r.thread, 20000) == WAIT_OBJECT_0);
    CloseHandle(r.thread);
    closesocket(r.listener);
    printf("%ld split reads, the server kept its buffer in %ld\n", (long)r.pauses,
           (long)r.kept_buffer);
    CHECK(r.pauses >= 3);
    CHECK_EQ_U(r.kept_buffer, r.pauses);
    iocp_stats st;
    iocp_engine_stats(srv, &st);
    CHECK_EQ_U(st.tls_handshakes, 1);
    tn_stop_clean(srv);
    free((void *)cl.payload);
    free(cl.echo);
}

/* ---- TLS behind a load balancer: the PROXY header first ----------------------------------- */

/* A balancer in miniature: it accepts the client engine's connection, and sends the server a
 * PROXY v1 header with the ClientHello's first bytes in the same write (so the header and
 * TLS share one read on the server), then relays both ways as they come. */
static DWORD WINAPI proxy_relay_main(LPVOID arg)
{
    relay *r = arg;
    SOCKET a = accept(r->listener, NULL, NULL);
    CHECK(a != INVALID_SOCKET);
    SOCKET b = tn_connect("127.0.0.1", r->target, 10000);
    CHECK(b != INVALID_SOCKET);
    static const char header[] = "PROXY TCP4 198.51.100.23 127.0.0.1 50123 443\r\n";
    char first[16384 + sizeof header];
    memcpy(first, header, sizeof header - 1);
    int n = recv(a, first + sizeof header - 1, 16384, 0);
    CHECK(n > 0);
    CHECK(tn_send_all(b, first, sizeof header - 1 + (size_t)n) == 0);
    relay_both_ways(r, a, b, 0);
    return 0;
}

static char proxied_peer[64];

static void proxied_open(iocp_conn *conn)
{
    snprintf(proxied_peer, sizeof proxied_peer, "%s", iocp_conn_peer(conn));
}

static void proxied_data(iocp_conn *conn, const void *data, size_t len)
{
    iocp_conn_send(conn, data, len);
}

/* The server trusts 127.0.0.1 for PROXY headers: the handshake starts after the header, the
 * echo is exact, and the connection's address is the header's client. */
static void tls_after_proxy_header(void)
{
    paths();
    iocp_config cfg;
    server_config(&cfg);
    cfg.proxy_protocol_from = "127.0.0.1/32";
    static const iocp_handlers h = {proxied_open, proxied_data, NULL, NULL};
    iocp_engine *srv = start_server(&cfg, &h);
    if (srv == NULL)
        return;
    relay r;
    memset(&r, 0, sizeof r);
    r.srv = srv;
    r.target = iocp_engine_port(srv);
    r.listener = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(r.listener != INVALID_SOCKET);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(r.listener, (struct sockaddr *)&sa, sizeof sa) == 0);
    int len = sizeof sa;
    CHECK(getsockname(r.listener, (struct sockaddr *)&sa, &len) == 0);
    CHECK(listen(r.listener, 1) == 0);
    r.port = ntohs(sa.sin_port);
    r.thread = CreateThread(NULL, 0, proxy_relay_main, &r, 0, NULL);
    CHECK(r.thread != NULL);
    neighbour_echo(r.port, 30000, 4000, 23);
    CHECK(WaitForSingleObject(r.thread, 20000) == WAIT_OBJECT_0);
    CloseHandle(r.thread);
    closesocket(r.listener);
    iocp_stats st;
    iocp_engine_stats(srv, &st);
    CHECK_EQ_U(st.tls_handshakes, 1);
    CHECK_EQ_U(st.proxy_headers, 1);
    CHECK_MSG(strcmp(proxied_peer, "198.51.100.23:50123") == 0, "iocp_conn_peer: '%s'",
              proxied_peer);
    tn_stop_clean(srv);
}

static const test_case cases[] = {
    {"echo_through_both_roles", echo_through_both_roles},
    {"framed_modes", framed_modes},
    {"client_refuses_certificate", client_refuses_certificate},
    {"plaintext_and_silence", plaintext_and_silence},
    {"start_refusals", start_refusals},
    {"stop_sends_close_notify", stop_sends_close_notify},
    {"garbage_over_tls", garbage_over_tls},
    {"resets_mid_tls_transfer", resets_mid_tls_transfer},
    {"record_split_across_idle_switch", record_split_across_idle_switch},
    {"tls_after_proxy_header", tls_after_proxy_header},
};

TEST_MAIN(cases)
