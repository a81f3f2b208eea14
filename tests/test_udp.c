/*
 * test_udp.c: the engine's UDP endpoint (udp.c) against plain blocking Winsock UDP sockets:
 * exact echoes from several sockets, the largest datagram whole, empty datagrams, a datagram
 * longer than a small buffer counted and dropped, an echo to a closed port that does not
 * break the endpoint, a full send queue counted, a stop with receives and sends pending.
 * Native peers (Python) are in tests/scripts/udp_peers.sh.
 */
#include "harness.h"
#include "net_util.h"

#include <stdlib.h>
#include <string.h>

/* A blocking UDP socket on host (port 0), with a receive timeout. */
static SOCKET udp_client(int family, uint32_t timeout_ms)
{
    SOCKET s = socket(family, SOCK_DGRAM, IPPROTO_UDP);
    CHECK(s != INVALID_SOCKET);
    DWORD t = timeout_ms;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&t, sizeof t);
    int big = 1 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, (const char *)&big, sizeof big);
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, (const char *)&big, sizeof big);
    return s;
}

static struct sockaddr_in loop4(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void send_to4(SOCKET s, uint16_t port, const void *data, size_t len)
{
    struct sockaddr_in a = loop4(port);
    int n = sendto(s, (const char *)data, (int)len, 0, (const struct sockaddr *)&a, sizeof a);
    CHECK_MSG(n == (int)len, "sendto %d bytes: %d (WSA %d)", (int)len, n, WSAGetLastError());
}

/* One datagram back, or -1 on timeout. */
static int recv_one(SOCKET s, void *buf, size_t size)
{
    return recv(s, (char *)buf, (int)size, 0);
}

static iocp_engine *udp_start(iocp_config *cfg, iocp_datagram_fn h, void *user)
{
    cfg->udp = 1;
    cfg->on_datagram = h;
    cfg->bind_address = NULL; /* dual-stack */
    iocp_engine *e = tn_start(cfg, NULL, user);
    CHECK(iocp_engine_udp_port(e) != 0);
    CHECK_EQ_U(iocp_engine_udp_port(e), iocp_engine_port(e)); /* the TCP port's number */
    return e;
}

/* Payload of datagram `seq` of socket `sock`: its length and bytes follow from both. */
static size_t payload(uint32_t sock, uint32_t seq, uint8_t *out)
{
    uint64_t st = 0x9e3779b97f4a7c15ull ^ ((uint64_t)sock << 32 | seq);
    size_t len = (size_t)(test_rand(&st) % 1473); /* 0..1472 */
    test_fill_random(&st, out, len);
    if (len >= 8) {
        memcpy(out, &sock, 4);
        memcpy(out + 4, &seq, 4);
    }
    return len;
}

/* 2,000 datagrams of 0..1,472 bytes from 8 sockets, 8 in flight at a time: every echo exact. */
static void echo_exact(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 2;
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    enum { SOCKS = 8, EACH = 250 };
    SOCKET s[SOCKS];
    for (int i = 0; i < SOCKS; i++)
        s[i] = udp_client(AF_INET, 2000);
    static uint8_t want[1500], got[2000];
    uint64_t bytes = 0, resent = 0;
    for (uint32_t seq = 0; seq < EACH; seq++) {
        for (uint32_t i = 0; i < SOCKS; i++) {
            size_t len = payload(i, seq, want);
            send_to4(s[i], port, want, len);
            bytes += len;
        }
        for (uint32_t i = 0; i < SOCKS; i++) {
            size_t len = payload(i, seq, want);
            int n = recv_one(s[i], got, sizeof got);
            for (int tries = 0; n < 0 && tries < 3; tries++) { /* lost on the loopback: again */
                resent++;
                send_to4(s[i], port, want, len);
                n = recv_one(s[i], got, sizeof got);
            }
            CHECK_MSG(n == (int)len, "socket %u datagram %u: %d bytes back, sent %u (WSA %d)",
                      (unsigned)i, (unsigned)seq, n, (unsigned)len, WSAGetLastError());
            CHECK_MSG(memcmp(got, want, len) == 0, "socket %u datagram %u differs", (unsigned)i,
                      (unsigned)seq);
        }
    }
    for (int i = 0; i < SOCKS; i++)
        closesocket(s[i]);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    /* A send is counted at its completion, which may come after the client has its echo. */
    CHECK(tn_wait_stat(e, ST(udp_datagrams_out), st.udp_datagrams_in, 5000));
    iocp_engine_stats(e, &st);
    printf("2000 datagrams, %llu bytes, echoed exact (%llu sent again); in %llu out %llu\n",
           (unsigned long long)bytes, (unsigned long long)resent,
           (unsigned long long)st.udp_datagrams_in, (unsigned long long)st.udp_datagrams_out);
    CHECK(st.udp_datagrams_in >= 2000);
    CHECK_EQ_U(st.udp_datagrams_out, st.udp_datagrams_in);
    CHECK_EQ_U(st.udp_bytes_out, st.udp_bytes_in);
    CHECK_EQ_U(st.udp_dropped, 0);
    CHECK_EQ_U(st.udp_truncated, 0);
    tn_stop_clean(e);
}

/* The largest datagram over IPv4 (65,507 bytes) comes back whole; so does an empty one. */
static void largest_and_empty(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 1;
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    SOCKET s = udp_client(AF_INET, 3000);
    uint8_t *big = malloc(IOCP_UDP_MAX_DATAGRAM), *back = malloc(70000);
    CHECK(big != NULL && back != NULL);
    uint64_t seed = 65507;
    test_fill_random(&seed, big, IOCP_UDP_MAX_DATAGRAM);
    send_to4(s, port, big, IOCP_UDP_MAX_DATAGRAM);
    int n = recv_one(s, back, 70000);
    CHECK_MSG(n == IOCP_UDP_MAX_DATAGRAM, "%d bytes back (WSA %d)", n, WSAGetLastError());
    CHECK(memcmp(big, back, IOCP_UDP_MAX_DATAGRAM) == 0);
    for (int i = 0; i < 3; i++) {
        send_to4(s, port, "", 0);
        n = recv_one(s, back, 70000);
        CHECK_MSG(n == 0, "an empty datagram: %d back (WSA %d)", n, WSAGetLastError());
    }
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.udp_datagrams_in, 4);
    CHECK_EQ_U(st.udp_bytes_in, IOCP_UDP_MAX_DATAGRAM);
    CHECK_EQ_U(st.udp_truncated, 0);
    closesocket(s);
    free(big);
    free(back);
    tn_stop_clean(e);
}

static int truncated_is(void *arg)
{
    iocp_stats st;
    iocp_engine_stats(arg, &st);
    return st.udp_truncated >= 3;
}

/* udp_buffer_size 1,024: longer datagrams are counted in udp_truncated and never passed on
 * (not even in part); the endpoint goes on with the next one. */
static void truncated_counted(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 1;
    cfg.udp_receives = 2;
    cfg.udp_buffer_size = 1024;
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    SOCKET s = udp_client(AF_INET, 300);
    static uint8_t data[4000], back[4000];
    memset(data, 'x', sizeof data);
    for (int i = 0; i < 3; i++)
        send_to4(s, port, data, 1025 + (size_t)i * 1000);
    int counted = test_wait_until(truncated_is, e, 5000);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    printf("3 long datagrams: truncated %llu, in %llu, out %llu, errors %llu, ops %llu\n",
           (unsigned long long)st.udp_truncated, (unsigned long long)st.udp_datagrams_in,
           (unsigned long long)st.udp_datagrams_out, (unsigned long long)st.udp_errors,
           (unsigned long long)st.ops_in_flight);
    CHECK_MSG(counted, "3 long datagrams not counted");
    CHECK(recv_one(s, back, sizeof back) < 0); /* nothing of them came back */
    DWORD t = 3000;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&t, sizeof t);
    for (int i = 0; i < 4; i++) { /* every receive slot went on */
        send_to4(s, port, data, 1024);
        CHECK_MSG(recv_one(s, back, sizeof back) == 1024, "a 1,024-byte datagram after them");
    }
    /* Sends are counted at their completion, which may come after the client has the echo. */
    CHECK(tn_wait_stat(e, ST(udp_bytes_out), 4 * 1024, 5000));
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.udp_truncated, 3);
    CHECK_EQ_U(st.udp_datagrams_in, 4);
    CHECK_EQ_U(st.udp_bytes_out, 4 * 1024);
    closesocket(s);
    tn_stop_clean(e);
}

/* Echoes to a port nobody listens on (on Windows an ICMP port-unreachable comes back) leave
 * the endpoint serving: the next receives still work. */
static void closed_port_no_break(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 1;
    cfg.udp_receives = 1; /* one receive: an error on it would show at once */
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    static uint8_t back[2000];
    for (int round = 0; round < 5; round++) {
        /* A client that sends, then closes before the echo arrives. */
        SOCKET gone = udp_client(AF_INET, 1000);
        send_to4(gone, port, "to a closed port", 16);
        closesocket(gone);
        /* And iocp_send_to straight to the closed port. */
        SOCKET probe = udp_client(AF_INET, 1000);
        struct sockaddr_in a = loop4(0);
        CHECK(bind(probe, (struct sockaddr *)&a, sizeof a) == 0);
        int alen = sizeof a;
        CHECK(getsockname(probe, (struct sockaddr *)&a, &alen) == 0);
        closesocket(probe);
        iocp_addr to;
        memset(&to, 0, sizeof to);
        memcpy(to.sa.bytes, &a, sizeof a);
        to.len = (int)sizeof a;
        CHECK_OK(iocp_send_to(e, &to, "nobody", 6));
        SOCKET s = udp_client(AF_INET, 3000);
        send_to4(s, port, "still there?", 12);
        int n = recv_one(s, back, sizeof back);
        CHECK_MSG(n == 12 && memcmp(back, "still there?", 12) == 0,
                  "round %d: the endpoint stopped answering (%d, WSA %d)", round, n,
                  WSAGetLastError());
        closesocket(s);
    }
    iocp_stats st;
    iocp_engine_stats(e, &st);
    printf("after 10 echoes to closed ports: in %llu out %llu errors %llu\n",
           (unsigned long long)st.udp_datagrams_in, (unsigned long long)st.udp_datagrams_out,
           (unsigned long long)st.udp_errors);
    CHECK_EQ_U(st.udp_datagrams_in, 10);
    tn_stop_clean(e);
}

/* ---- a full send queue ----------------------------------------------------------------- */

typedef struct blocker {
    HANDLE entered, release;
    iocp_addr from;
} blocker;

static void blocking_datagram(iocp_engine *e, const iocp_addr *from, const void *data, size_t len)
{
    blocker *b = iocp_engine_user(e);
    (void)data;
    (void)len;
    b->from = *from;
    SetEvent(b->entered);
    WaitForSingleObject(b->release, 30000);
}

/* With the only worker held in a handler, iocp_send_to from another thread fills the 16 slots;
 * each datagram past them is refused with IOCP_E_QUEUE_FULL and counted in udp_dropped, none
 * silently. Released, the 16 queued ones arrive. */
static void queue_full_counted(void)
{
    blocker b;
    b.entered = CreateEventW(NULL, TRUE, FALSE, NULL);
    b.release = CreateEventW(NULL, TRUE, FALSE, NULL);
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 1;
    cfg.udp_send_queue = 16;
    iocp_engine *e = udp_start(&cfg, blocking_datagram, &b);
    SOCKET s = udp_client(AF_INET, 3000);
    send_to4(s, iocp_engine_udp_port(e), "hold", 4);
    CHECK(WaitForSingleObject(b.entered, 10000) == WAIT_OBJECT_0);
    int full = 0;
    for (uint32_t i = 0; i < 16 + 100; i++) {
        iocp_err rc = iocp_send_to(e, &b.from, &i, sizeof i);
        if (rc == IOCP_E_QUEUE_FULL)
            full++;
        else
            CHECK_OK(rc);
    }
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(full, 100);
    CHECK_EQ_U(st.udp_dropped, 100);
    SetEvent(b.release);
    for (uint32_t i = 0; i < 16; i++) {
        uint32_t v = 0xffffffffu;
        int n = recv_one(s, &v, sizeof v);
        CHECK_MSG(n == 4, "queued datagram %u did not arrive (%d)", (unsigned)i, n);
        CHECK_EQ_U(v, i); /* one worker: in the order queued */
    }
    CHECK(tn_wait_stat(e, ST(udp_datagrams_out), 16, 5000));
    closesocket(s);
    tn_stop_clean(e);
    CloseHandle(b.entered);
    CloseHandle(b.release);
}

/* ---- stop, addresses, configuration ---------------------------------------------------- */

/* A stop with 64 receives posted and sends queued from outside: every operation completes,
 * every slot comes back (tn_stop_clean: no op in flight). */
static void stop_with_pending(void)
{
    for (int round = 0; round < 3; round++) {
        iocp_config cfg;
        iocp_config_init(&cfg);
        cfg.workers = 2;
        cfg.udp_receives = 64;
        iocp_engine *e = udp_start(&cfg, NULL, NULL);
        iocp_stats st;
        iocp_engine_stats(e, &st);
        CHECK_MSG(st.ops_in_flight >= 64, "%llu ops in flight, 64 receives posted",
                  (unsigned long long)st.ops_in_flight);
        struct sockaddr_in a = loop4(9); /* discard: nobody there */
        iocp_addr to;
        memset(&to, 0, sizeof to);
        memcpy(to.sa.bytes, &a, sizeof a);
        to.len = (int)sizeof a;
        static uint8_t junk[3000];
        for (int i = 0; i < 200; i++)
            (void)iocp_send_to(e, &to, junk, (size_t)(i * 13) % sizeof junk);
        tn_stop_clean(e);
    }
}

static void from_address(iocp_engine *e, const iocp_addr *from, const void *data, size_t len)
{
    char text[80];
    iocp_addr_format(from, text, sizeof text);
    char reply[128];
    int n = snprintf(reply, sizeof reply, "%.*s from %s", (int)len, (const char *)data, text);
    CHECK_OK(iocp_send_to(e, from, reply, (size_t)n));
}

/* The handler sees the sender's address (IPv4 peers of the dual-stack endpoint as
 * ::ffff:127.0.0.1) and answers to it; an IPv6 peer is served too. */
static void sender_address(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    iocp_engine *e = udp_start(&cfg, from_address, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    SOCKET s = udp_client(AF_INET, 3000);
    struct sockaddr_in me = loop4(0);
    CHECK(bind(s, (struct sockaddr *)&me, sizeof me) == 0);
    int mlen = sizeof me;
    CHECK(getsockname(s, (struct sockaddr *)&me, &mlen) == 0);
    send_to4(s, port, "hi", 2);
    char back[200], want[128];
    int n = recv_one(s, back, sizeof back - 1);
    CHECK(n > 0);
    back[n] = '\0';
    snprintf(want, sizeof want, "hi from [::ffff:127.0.0.1]:%u", (unsigned)ntohs(me.sin_port));
    CHECK_MSG(strcmp(back, want) == 0, "got '%s', wanted '%s'", back, want);
    closesocket(s);

    SOCKET s6 = udp_client(AF_INET6, 3000);
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    a6.sin6_addr.s6_addr[15] = 1;
    CHECK(sendto(s6, "v6", 2, 0, (struct sockaddr *)&a6, sizeof a6) == 2);
    n = recv_one(s6, back, sizeof back - 1);
    CHECK_MSG(n > 0, "no answer over IPv6 (WSA %d)", WSAGetLastError());
    back[n] = '\0';
    CHECK_MSG(strncmp(back, "v6 from [::1]:", 14) == 0, "got '%s'", back);
    closesocket(s6);
    tn_stop_clean(e);
}

/* UDP alone (listen = 0): any free port, echo works; iocp_send_to without an endpoint is
 * IOCP_E_STATE; out-of-range settings are refused at start. */
static void udp_only_and_config(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.listen = 0;
    cfg.udp = 1;
    cfg.workers = 1;
    iocp_engine *e = NULL;
    iocp_error_info err;
    CHECK_OK(iocp_engine_start(&cfg, NULL, NULL, &e, &err));
    CHECK_EQ_U(iocp_engine_port(e), 0);
    uint16_t port = iocp_engine_udp_port(e);
    CHECK(port != 0);
    CHECK(strstr(iocp_engine_udp_address(e), "]:") != NULL);
    SOCKET s = udp_client(AF_INET, 3000);
    char back[16];
    send_to4(s, port, "alone", 5);
    CHECK(recv_one(s, back, sizeof back) == 5 && memcmp(back, "alone", 5) == 0);
    closesocket(s);
    tn_stop_clean(e);

    iocp_config_init(&cfg);
    iocp_engine *tcp = tn_start(&cfg, NULL, NULL);
    iocp_addr to;
    memset(&to, 0, sizeof to);
    CHECK_EQ_U(iocp_send_to(tcp, &to, "x", 1), IOCP_E_STATE);
    CHECK_EQ_U(iocp_engine_udp_port(tcp), 0);
    tn_stop_clean(tcp);

    struct {
        uint32_t buffer, receives, queue;
    } bad[] = {{100, 0, 16}, {70000, 0, 16}, {65536, 2000, 16}, {65536, 0, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        iocp_config_init(&cfg);
        cfg.udp = 1;
        cfg.udp_buffer_size = bad[i].buffer;
        cfg.udp_receives = bad[i].receives;
        cfg.udp_send_queue = bad[i].queue;
        e = NULL;
        iocp_err rc = iocp_engine_start(&cfg, NULL, NULL, &e, &err);
        CHECK_MSG(rc == IOCP_E_INVALID_ARG && e == NULL, "case %u: %s", (unsigned)i,
                  iocp_strerror(rc));
        printf("refused: %s\n", err.message);
    }
}

/* ---- hostile sources (udp_guard.c) ------------------------------------------------------ */

static iocp_addr addr_of(const void *sa, int len)
{
    iocp_addr a;
    memset(&a, 0, sizeof a);
    memcpy(a.sa.bytes, sa, (size_t)len);
    a.len = len;
    return a;
}

/* A datagram whose source is the endpoint itself (iocp_send_to its own address, IPv4 and
 * IPv6: what a spoofed "from ourselves" datagram looks like) is refused once and counted,
 * not echoed to itself for ever. */
static void self_loop_refused(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 2;
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    struct sockaddr_in self4 = loop4(port);
    iocp_addr to = addr_of(&self4, sizeof self4);
    CHECK_OK(iocp_send_to(e, &to, "loop?", 5));
    CHECK(tn_wait_stat(e, ST(udp_refused_self), 1, 5000));
    struct sockaddr_in6 self6;
    memset(&self6, 0, sizeof self6);
    self6.sin6_family = AF_INET6;
    self6.sin6_port = htons(port);
    self6.sin6_addr.s6_addr[15] = 1;
    to = addr_of(&self6, sizeof self6);
    CHECK_OK(iocp_send_to(e, &to, "loop6?", 6));
    CHECK(tn_wait_stat(e, ST(udp_refused_self), 2, 5000));
    /* Both were refused where they arrived: nothing is left circulating. A client is served. */
    SOCKET s = udp_client(AF_INET, 3000);
    char back[16];
    send_to4(s, port, "client", 6);
    CHECK(recv_one(s, back, sizeof back) == 6 && memcmp(back, "client", 6) == 0);
    closesocket(s);
    /* Counted when the send completes, which may be after the client has its echo. */
    CHECK(tn_wait_stat(e, ST(udp_datagrams_out), 3, 5000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    printf("self: in %llu, out %llu, refused_self %llu\n", (unsigned long long)st.udp_datagrams_in,
           (unsigned long long)st.udp_datagrams_out, (unsigned long long)st.udp_refused_self);
    CHECK_EQ_U(st.udp_datagrams_in, 3);  /* the two to itself, the client's */
    CHECK_EQ_U(st.udp_datagrams_out, 3); /* the same: sent once each, never again */
    CHECK_EQ_U(st.udp_refused_self, 2);
    tn_stop_clean(e);
}

/* A datagram from a port below 1024 (chargen's 19, echo's 7...) gets no answer and is
 * counted; a client on an ordinary port is answered exactly. */
static void reflector_ports_refused(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 1;
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    static const uint16_t low[] = {19, 7, 13, 17, 1023};
    int sent = 0;
    for (size_t i = 0; i < sizeof low / sizeof low[0]; i++) {
        SOCKET r = udp_client(AF_INET, 200);
        struct sockaddr_in me = loop4(low[i]);
        if (bind(r, (struct sockaddr *)&me, sizeof me) != 0) { /* taken on this host */
            closesocket(r);
            continue;
        }
        send_to4(r, port, "reflect me", 10);
        sent++;
        CHECK(tn_wait_stat(e, ST(udp_refused_port), (uint64_t)sent, 5000));
        char back[16];
        CHECK_MSG(recv_one(r, back, sizeof back) < 0, "port %u was answered", (unsigned)low[i]);
        closesocket(r);
    }
    CHECK_MSG(sent >= 1, "no port below 1024 could be bound");
    SOCKET s = udp_client(AF_INET, 3000);
    uint8_t want[600], got[700];
    uint64_t seed = 19;
    test_fill_random(&seed, want, sizeof want);
    send_to4(s, port, want, sizeof want);
    CHECK(recv_one(s, got, sizeof got) == (int)sizeof want && memcmp(got, want, sizeof want) == 0);
    closesocket(s);
    CHECK(tn_wait_stat(e, ST(udp_datagrams_out), 1, 5000)); /* counted at the send's completion */
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.udp_refused_port, (uint64_t)sent);
    CHECK_EQ_U(st.udp_datagrams_out, 1);
    tn_stop_clean(e);
}

typedef struct loop_pair {
    iocp_engine *e[2];
    uint64_t datagrams;
} loop_pair;

static int loops_refused(void *arg)
{
    loop_pair *lp = arg;
    iocp_stats a, b;
    iocp_engine_stats(lp->e[0], &a);
    iocp_engine_stats(lp->e[1], &b);
    return a.udp_refused_loop + b.udp_refused_loop + a.udp_rate_limited + b.udp_rate_limited >=
           lp->datagrams;
}

/* Two echo endpoints pointed at each other, A sending `datagrams` different datagrams to B
 * from its own port (what a spoofed datagram does to two servers), each with udp_flow_rate
 * flow_rate (0: the default). Returns once every datagram was refused once (as a loop or over
 * its flow's rate), so none is left, checked while a client is served. */
static void loop_dies(uint32_t datagrams, uint32_t flow_rate, iocp_stats *a, iocp_stats *bs)
{
    loop_pair lp = {{NULL, NULL}, datagrams};
    iocp_engine **pair = lp.e;
    for (int i = 0; i < 2; i++) {
        iocp_config cfg;
        iocp_config_init(&cfg);
        cfg.workers = 1;
        if (flow_rate != 0)
            cfg.udp_flow_rate = flow_rate;
        pair[i] = udp_start(&cfg, NULL, NULL);
    }
    struct sockaddr_in b = loop4(iocp_engine_udp_port(pair[1]));
    iocp_addr to = addr_of(&b, sizeof b);
    for (uint32_t i = 0; i < datagrams; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "ping-pong %u", (unsigned)i);
        CHECK_OK(iocp_send_to(pair[0], &to, msg, (size_t)n));
    }
    uint64_t t0 = test_now_ms();
    int dead = test_wait_until(loops_refused, &lp, 20000);
    uint64_t took = test_now_ms() - t0;
    iocp_engine_stats(pair[0], a);
    iocp_engine_stats(pair[1], bs);
    printf("%u datagrams in %llu ms: A: in %llu out %llu loops %llu rate %llu; B: in %llu out "
           "%llu loops %llu rate %llu\n",
           (unsigned)datagrams, (unsigned long long)took, (unsigned long long)a->udp_datagrams_in,
           (unsigned long long)a->udp_datagrams_out, (unsigned long long)a->udp_refused_loop,
           (unsigned long long)a->udp_rate_limited, (unsigned long long)bs->udp_datagrams_in,
           (unsigned long long)bs->udp_datagrams_out, (unsigned long long)bs->udp_refused_loop,
           (unsigned long long)bs->udp_rate_limited);
    CHECK_MSG(dead, "the loops still run");
    /* Every datagram in flight was refused once, so none is left: the counts stay put while
     * a client is served (its round trip takes longer than a loop's). */
    SOCKET s = udp_client(AF_INET, 3000);
    char back[16];
    for (int i = 0; i < 3; i++) {
        send_to4(s, iocp_engine_udp_port(pair[0]), "client", 6);
        CHECK(recv_one(s, back, sizeof back) == 6 && memcmp(back, "client", 6) == 0);
    }
    closesocket(s);
    iocp_stats a2, b2;
    iocp_engine_stats(pair[0], &a2);
    iocp_engine_stats(pair[1], &b2);
    CHECK_EQ_U(a2.udp_datagrams_in, a->udp_datagrams_in + 3);
    CHECK_EQ_U(b2.udp_datagrams_in, bs->udp_datagrams_in);
    CHECK_EQ_U(a->udp_refused_loop + bs->udp_refused_loop + a->udp_rate_limited +
                   bs->udp_rate_limited,
               datagrams);
    tn_stop_clean(pair[0]);
    tn_stop_clean(pair[1]);
}

/* Six different datagrams looping: each is echoed back and forth only until its answers have
 * come back eight times in a row: each dies with one refusal, and both endpoints go quiet.
 * Main's code echoed them until the engines stopped. */
static void loop_between_two_engines_dies(void)
{
    iocp_stats a, bs;
    loop_dies(6, 0, &a, &bs);
    CHECK(a.udp_datagrams_in + bs.udp_datagrams_in <= 6 * 2 * 10); /* a few round trips each */
}

/* 32 different datagrams looping, more than the loop memory holds (8 a flow), with the flow's
 * rate (200/s here) below the loop's speed: each datagram over it leaves the loop for good,
 * and once 8 or fewer are left the memory ends them. (A per-address rate alone, set above the
 * endpoint's speed so as to spare the benchmark, would never drop one.) */
static void loop_of_many_datagrams_dies(void)
{
    iocp_stats a, bs;
    loop_dies(32, 200, &a, &bs);
    CHECK(a.udp_rate_limited + bs.udp_rate_limited >= 32 - 2 * 8); /* the rate made it short */
}

/* Another source address than the IPv4 clients' ::ffff:127.0.0.1: one datagram from ::1 to
 * the dual-stack endpoint comes back exactly. (Not 127.0.0.2: under Wine 8 a UDP socket bound
 * to it still sends from 127.0.0.1, docs/wine.md.) */
static void answered_from_v6(uint16_t port)
{
    SOCKET s6 = udp_client(AF_INET6, 3000);
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    a6.sin6_addr.s6_addr[15] = 1;
    char back[16];
    for (int i = 0; i < 3; i++) {
        CHECK(sendto(s6, "mine", 4, 0, (struct sockaddr *)&a6, sizeof a6) == 4);
        CHECK_MSG(recv_one(s6, back, sizeof back) == 4 && memcmp(back, "mine", 4) == 0,
                  "::1, a source of its own, not answered (WSA %d)", WSAGetLastError());
    }
    closesocket(s6);
}

typedef struct flood_state {
    iocp_engine *e;
    uint64_t want;
} flood_state;

static int all_received(void *arg)
{
    flood_state *f = arg;
    iocp_stats st;
    iocp_engine_stats(f->e, &st);
    return st.udp_datagrams_in >= f->want;
}

/* The end of a flood of `sent` datagrams sent from t0 on: waits (10 s at most) until the
 * engine has taken every one in, prints what came of them under `what`, then checks that all
 * arrived and that every one not over a rate was answered. The stats in *out; the ms taken. */
static uint64_t flood_answered(iocp_engine *e, uint64_t t0, uint32_t sent, const char *what,
                               iocp_stats *out)
{
    flood_state f = {e, sent};
    int all = test_wait_until(all_received, &f, 10000);
    uint64_t took = test_now_ms() - t0;
    iocp_stats st;
    iocp_engine_stats(e, &st);
    printf("%s: in %llu, out %llu, rate-limited %llu in %llu ms\n", what,
           (unsigned long long)st.udp_datagrams_in, (unsigned long long)st.udp_datagrams_out,
           (unsigned long long)st.udp_rate_limited, (unsigned long long)took);
    CHECK_MSG(all, "only %llu of %lu arrived", (unsigned long long)st.udp_datagrams_in,
              (unsigned long)sent);
    CHECK(tn_wait_stat(e, ST(udp_datagrams_out), st.udp_datagrams_in - st.udp_rate_limited, 5000));
    *out = st;
    return took;
}

/* 1,000 datagrams at once from s to e, then flood_answered. */
static uint64_t flood_from_one_socket(iocp_engine *e, SOCKET s, const char *what, iocp_stats *out)
{
    uint16_t port = iocp_engine_udp_port(e);
    uint64_t t0 = test_now_ms();
    for (uint32_t i = 0; i < 1000; i++)
        send_to4(s, port, &i, sizeof i);
    return flood_answered(e, t0, 1000, what, out);
}

/* udp_rate 200, udp_burst 100: 1,000 datagrams at once from one socket: every one is answered
 * or counted over its source's rate, and no more are answered than the bucket allows in the
 * time taken; another source (address: ::1), with a bucket of its own, is answered exactly. */
static void source_rate_limits_flood(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 2;
    cfg.udp_rate = 200;
    cfg.udp_burst = 100;
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    SOCKET s = udp_client(AF_INET, 3000);
    iocp_stats st;
    uint64_t took = flood_from_one_socket(e, s, "flood", &st);
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.udp_datagrams_out + st.udp_rate_limited, st.udp_datagrams_in);
    CHECK(st.udp_rate_limited >= 1);
    CHECK_MSG(st.udp_datagrams_out <= 100 + 200 * (took / 1000 + 1), "%llu answered in %llu ms",
              (unsigned long long)st.udp_datagrams_out, (unsigned long long)took);
    answered_from_v6(port);
    closesocket(s);
    tn_stop_clean(e);
}

/* The byte bucket (udp_byte_burst 65,507: one longest datagram) and the total cap
 * (udp_total_rate 50 for every source together): what passes is answered, the rest counted. */
static void byte_rate_and_total_cap(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 1;
    cfg.udp_rate = 0; /* no datagram rate: the bytes decide */
    cfg.udp_byte_rate = 1000;
    cfg.udp_byte_burst = 65507;
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    SOCKET s = udp_client(AF_INET, 3000);
    static uint8_t big[40000], back[70000];
    memset(big, 'b', sizeof big);
    for (int i = 0; i < 3; i++) {
        big[0] = (uint8_t)i; /* three different datagrams */
        send_to4(s, port, big, sizeof big);
    }
    CHECK(tn_wait_stat(e, ST(udp_rate_limited), 2, 5000)); /* 40,000 + 40,000 > 65,507 */
    CHECK(recv_one(s, back, sizeof back) == (int)sizeof big && back[0] == 0);
    CHECK(tn_wait_stat(e, ST(udp_datagrams_out), 1, 5000)); /* counted at the send's completion */
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.udp_datagrams_out, 1);
    closesocket(s);
    tn_stop_clean(e);

    iocp_config_init(&cfg);
    cfg.workers = 1;
    cfg.udp_total_rate = 50;
    e = udp_start(&cfg, NULL, NULL);
    port = iocp_engine_udp_port(e);
    SOCKET a = udp_client(AF_INET, 3000), b = udp_client(AF_INET, 3000);
    uint64_t t0 = test_now_ms();
    for (uint32_t i = 0; i < 100; i++) {
        send_to4(a, port, &i, sizeof i);
        send_to4(b, port, &i, sizeof i);
    }
    flood_state f = {e, 200};
    CHECK(test_wait_until(all_received, &f, 10000));
    uint64_t took = test_now_ms() - t0;
    iocp_engine_stats(e, &st);
    printf("total cap 50: in %llu, answered %llu, capped %llu in %llu ms\n",
           (unsigned long long)st.udp_datagrams_in, (unsigned long long)st.udp_datagrams_out,
           (unsigned long long)st.udp_capped, (unsigned long long)took);
    CHECK(st.udp_capped >= 1);
    CHECK_EQ_U(st.udp_rate_limited, 0); /* each source is far below its own rate */
    CHECK(tn_wait_stat(e, ST(udp_datagrams_out), 200 - st.udp_capped, 5000));
    CHECK_MSG(200 - st.udp_capped <= 50 + 50 * (took / 1000 + 1), "%llu answered in %llu ms",
              (unsigned long long)(200 - st.udp_capped), (unsigned long long)took);
    closesocket(a);
    closesocket(b);
    tn_stop_clean(e);
}

/* udp_rate 200, udp_burst 100: 50 sockets of 127.0.0.1 (50 source ports) send 20 datagrams
 * each at once. One address is one source whatever its ports: no more are answered than one
 * bucket allows in the time taken (a bucket per port answered all 1,000, each port below its
 * burst); ::1 has a bucket of its own and is answered exactly. */
static void one_address_many_ports_one_bucket(void)
{
    enum { SOCKS = 50, EACH = 20 };
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 2;
    cfg.udp_rate = 200;
    cfg.udp_burst = 100;
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    SOCKET s[SOCKS];
    for (int i = 0; i < SOCKS; i++)
        s[i] = udp_client(AF_INET, 3000);
    uint64_t t0 = test_now_ms();
    for (uint32_t seq = 0; seq < EACH; seq++)
        for (uint32_t i = 0; i < SOCKS; i++) {
            uint32_t id = i << 16 | seq;
            send_to4(s[i], port, &id, sizeof id);
        }
    char what[40];
    snprintf(what, sizeof what, "%d ports of one address", SOCKS);
    iocp_stats st;
    uint64_t took = flood_answered(e, t0, SOCKS * EACH, what, &st);
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.udp_datagrams_out + st.udp_rate_limited, st.udp_datagrams_in);
    CHECK_MSG(st.udp_datagrams_out <= 100 + 200 * (took / 1000 + 1),
              "%llu answered in %llu ms: a bucket per port",
              (unsigned long long)st.udp_datagrams_out, (unsigned long long)took);
    answered_from_v6(port);
    for (int i = 0; i < SOCKS; i++)
        closesocket(s[i]);
    tn_stop_clean(e);
}

/* udp_flow_rate 200 (a burst of 100), the address's bucket at its default: 1,000 datagrams at
 * once from one socket are thinned by its flow's bucket (what shrinks a loop of many
 * datagrams), while another socket of the same address, a flow of its own, is answered. */
static void flow_rate_limits_one_port(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.workers = 2;
    cfg.udp_flow_rate = 200;
    iocp_engine *e = udp_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(e);
    SOCKET s = udp_client(AF_INET, 3000);
    iocp_stats st;
    uint64_t took = flood_from_one_socket(e, s, "one flow", &st);
    CHECK_MSG(st.udp_datagrams_in - st.udp_rate_limited <= 100 + 200 * (took / 1000 + 1),
              "%llu answered in %llu ms",
              (unsigned long long)(st.udp_datagrams_in - st.udp_rate_limited),
              (unsigned long long)took);
    SOCKET other = udp_client(AF_INET, 3000);
    char back[16];
    send_to4(other, port, "mine", 4);
    CHECK_MSG(recv_one(other, back, sizeof back) == 4 && memcmp(back, "mine", 4) == 0,
              "another port of the same address not answered");
    closesocket(other);
    closesocket(s);
    tn_stop_clean(e);
}

static const test_case cases[] = {
    {"echo_exact", echo_exact},
    {"largest_and_empty", largest_and_empty},
    {"truncated_counted", truncated_counted},
    {"closed_port_no_break", closed_port_no_break},
    {"queue_full_counted", queue_full_counted},
    {"stop_with_pending", stop_with_pending},
    {"sender_address", sender_address},
    {"udp_only_and_config", udp_only_and_config},
    {"self_loop_refused", self_loop_refused},
    {"reflector_ports_refused", reflector_ports_refused},
    {"source_rate_limits_flood", source_rate_limits_flood},
    {"loop_between_two_engines_dies", loop_between_two_engines_dies},
    {"byte_rate_and_total_cap", byte_rate_and_total_cap},
    {"one_address_many_ports_one_bucket", one_address_many_ports_one_bucket},
    {"flow_rate_limits_one_port", flow_rate_limits_one_port},
    {"loop_of_many_datagrams_dies", loop_of_many_datagrams_dies},
};

TEST_MAIN(cases)
