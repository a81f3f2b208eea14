/*
 * test_hostile.c: peers that mean harm (docs/reliability.md "Hostile peers"): silent peers
 * holding every slot make room for a newcomer once they have been idle evict_idle_ms; an
 * address opening connections faster than conn_rate is reset and counted; two IPv6 addresses
 * of one /64 are one peer for every per-address limit (the key, tested on its own: loopback
 * has only ::1). The UDP cases are in test_udp.c and tests/scripts/udp_hostile.py.
 */
#include "harness.h"
#include "iocpi.h"
#include "net_util.h"

#include <string.h>

/* 1 when one byte goes out on s and comes back. */
static int echoes(SOCKET s)
{
    char c = 'e';
    return send(s, &c, 1, 0) == 1 && tn_recv_exact(s, &c, 1) == 1 && c == 'e';
}

/* Ten slots, ten silent peers. Before the threshold a newcomer is reset and nothing is
 * evicted; after it, the first newcomer evicts the idlest (the first connected) and is
 * served in its place; the other nine still echo. */
static void evict_makes_room(void)
{
    enum { SLOTS = 10 };
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.max_connections = SLOTS;
    cfg.evict_idle_ms = 1500;
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_port(e);
    SOCKET s[SLOTS];
    uint64_t first = test_now_ms(); /* s[0]'s last activity is its open, after this */
    for (int i = 0; i < SLOTS; i++) {
        s[i] = tn_connect("127.0.0.1", port, 5000);
        CHECK(s[i] != INVALID_SOCKET);
        CHECK(tn_wait_stat(e, ST(accepted), (uint64_t)i + 1, 5000)); /* in this order */
    }
    uint64_t filled = test_now_ms();
    SOCKET early = tn_connect("127.0.0.1", port, 5000);
    CHECK(early != INVALID_SOCKET);
    CHECK(tn_wait_stat(e, ST(rejected), 1, 5000));
    CHECK(tn_wait_closed(early, 5000));
    closesocket(early);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_MSG(st.closed[IOCP_CLOSE_EVICTED] == 0 || test_now_ms() - first >= 1500 - 32,
              "evicted %llu before the threshold",
              (unsigned long long)st.closed[IOCP_CLOSE_EVICTED]);
    /* Newcomers until one is served (a poll with a deadline: the sweep names the candidates
     * once they have been idle 1.5 s, at most a period later). */
    SOCKET served = INVALID_SOCKET;
    int tries = 0;
    uint64_t deadline = test_now_ms() + 15000;
    while (served == INVALID_SOCKET && test_now_ms() < deadline) {
        SOCKET n = tn_connect("127.0.0.1", port, 3000);
        CHECK(n != INVALID_SOCKET);
        tries++;
        if (echoes(n)) {
            served = n;
        } else {
            closesocket(n);
            Sleep(20); /* a poll's interval, not a synchronization */
        }
    }
    CHECK_MSG(served != INVALID_SOCKET, "no newcomer served in %d tries", tries);
    iocp_engine_stats(e, &st);
    printf("served after %d tries, %llu ms after the slots filled; evicted %llu, rejected %llu\n",
           tries, (unsigned long long)(test_now_ms() - filled),
           (unsigned long long)st.closed[IOCP_CLOSE_EVICTED], (unsigned long long)st.rejected);
    CHECK(test_now_ms() - first >= 1500 - 32); /* the tick's granularity (16 ms) twice */
    /* The newcomer that evicted is the one served: one eviction, of the idlest. */
    CHECK_EQ_U(st.closed[IOCP_CLOSE_EVICTED], 1);
    CHECK_MSG(tn_wait_closed(s[0], 5000), "the idlest peer was not the one evicted");
    for (int i = 1; i < SLOTS; i++)
        CHECK_MSG(echoes(s[i]), "silent peer %d lost its connection", i);
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.rejected, (uint64_t)tries); /* the early one, and those before the threshold */
    closesocket(served);
    for (int i = 0; i < SLOTS; i++)
        closesocket(s[i]);
    tn_stop_clean(e);
}

/* evict_idle_ms 0: slots stay with their silent holders (the old behaviour). */
static void evict_off_keeps_holders(void)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.max_connections = 2;
    cfg.evict_idle_ms = 0;
    cfg.idle_receive_ms = 0;
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_port(e);
    SOCKET a = tn_connect("127.0.0.1", port, 5000), b = tn_connect("127.0.0.1", port, 5000);
    CHECK(tn_wait_stat(e, ST(accepted), 2, 5000));
    uint64_t t0 = test_now_ms();
    int rejected = 0;
    while (test_now_ms() - t0 < 2500) { /* well past any sweep period */
        SOCKET n = tn_connect("127.0.0.1", port, 3000);
        CHECK(!echoes(n));
        closesocket(n);
        rejected++;
    }
    CHECK(echoes(a) && echoes(b));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.closed[IOCP_CLOSE_EVICTED], 0);
    CHECK_EQ_U(st.rejected, (uint64_t)rejected);
    closesocket(a);
    closesocket(b);
    tn_stop_clean(e);
}

/* conn_rate 5, burst 5: 12 connections at once from 127.0.0.1; those over the bucket are reset
 * before on_open and counted in rejected_rate, and no more are served than the bucket
 * allowed in the time taken; 127.0.0.2 has a bucket of its own. */
static void conn_rate_resets_and_counts(void)
{
    enum { N = 12 };
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.conn_rate = 5;
    cfg.conn_burst = 5;
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_port(e);
    SOCKET s[N];
    uint64_t t0 = test_now_ms();
    for (int i = 0; i < N; i++) {
        s[i] = tn_connect_from("127.0.0.1", "127.0.0.1", port, 5000);
        CHECK(s[i] != INVALID_SOCKET);
    }
    int served = 0;
    for (int i = 0; i < N; i++)
        served += echoes(s[i]);
    uint64_t took = test_now_ms() - t0;
    iocp_stats st;
    iocp_engine_stats(e, &st);
    printf("%d of %d served in %llu ms; rejected_rate %llu\n", served, N, (unsigned long long)took,
           (unsigned long long)st.rejected_rate);
    CHECK_EQ_U(st.accepted + st.rejected_rate, N);
    CHECK_EQ_U((uint64_t)served, st.accepted);
    CHECK(st.rejected_rate >= 1);
    CHECK_MSG(st.accepted <= 5 + 5 * (took / 1000 + 1), "%llu accepted in %llu ms",
              (unsigned long long)st.accepted, (unsigned long long)took);
    CHECK_EQ_U(st.rejected, 0);
    SOCKET other = tn_connect_from("127.0.0.2", "127.0.0.1", port, 5000);
    CHECK(other != INVALID_SOCKET && echoes(other));
    closesocket(other);
    for (int i = 0; i < N; i++)
        closesocket(s[i]);
    tn_stop_clean(e);
}

static struct sockaddr_in6 v6(const char *text)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    CHECK_MSG(inet_pton(AF_INET6, text, &a.sin6_addr) == 1, "%s", text);
    return a;
}

static int same_key(const char *x, const char *y, uint32_t prefix)
{
    struct sockaddr_in6 a = v6(x), b = v6(y);
    uint8_t ka[16], kb[16];
    CHECK(iocpi_peer_key((struct sockaddr *)&a, prefix, ka));
    CHECK(iocpi_peer_key((struct sockaddr *)&b, prefix, kb));
    return memcmp(ka, kb, 16) == 0;
}

/* The per-address key (peers.c): one /64 is one peer by default, another /64 is another; the
 * prefix is a setting (60 cuts inside a byte, 128 = every address); IPv4-mapped addresses
 * are IPv4 hosts, never cut, and equal to the plain IPv4 address. */
static void ipv6_prefix_groups_one_peer(void)
{
    CHECK(same_key("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", 64));
    CHECK(!same_key("2001:db8:1:2::1", "2001:db8:1:3::1", 64));
    CHECK(same_key("2001:db8:1:20::1", "2001:db8:1:2f::1", 60));
    CHECK(!same_key("2001:db8:1:20::1", "2001:db8:1:30::1", 60));
    CHECK(!same_key("2001:db8::1", "2001:db8::2", 128));
    CHECK(!same_key("::ffff:10.0.0.1", "::ffff:10.0.0.2", 64));
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    a4.sin_addr.s_addr = htonl(0x0a000001);
    struct sockaddr_in6 m = v6("::ffff:10.0.0.1");
    uint8_t k4[16], km[16];
    CHECK(iocpi_peer_key((struct sockaddr *)&a4, 64, k4));
    CHECK(iocpi_peer_key((struct sockaddr *)&m, 64, km));
    CHECK(memcmp(k4, km, 16) == 0);
    /* And the engine refuses a prefix that means nothing. */
    iocp_config cfg;
    iocp_config_init(&cfg);
    CHECK_EQ_U(cfg.ipv6_prefix_len, 64);
    cfg.ipv6_prefix_len = 129;
    iocp_engine *e = NULL;
    iocp_error_info err;
    CHECK(iocp_engine_start(&cfg, NULL, NULL, &e, &err) == IOCP_E_INVALID_ARG && e == NULL);
    CHECK_MSG(strstr(err.message, "ipv6_prefix_len 129") != NULL, "%s", err.message);
}

static int no_reply(const char *text)
{
    struct sockaddr_in6 a = v6(text);
    uint8_t k[16];
    CHECK(iocpi_peer_key((struct sockaddr *)&a, 128, k));
    return iocpi_udp_no_reply_address(k);
}

/* The UDP sources never answered for their address (udp_guard.c), every range of them (the
 * raw-socket test, tests/scripts/udp_hostile.sh, spoofs 224.0.0.1 and 255.255.255.255). */
static void udp_no_reply_addresses(void)
{
    static const char *const refused[] = {
        "::",               /* unspecified */
        "ff02::1",          /* multicast */
        "ff05::1:3",        /* multicast, site */
        "::ffff:0.0.0.0",   /* unspecified IPv4 */
        "::ffff:0.1.2.3",   /* 0/8 */
        "::ffff:224.0.0.1", /* multicast */
        "::ffff:239.255.255.250",
        "::ffff:240.0.0.1",       /* reserved */
        "::ffff:255.255.255.255", /* broadcast */
    };
    static const char *const answered[] = {
        "::1",
        "2001:db8::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.255",
        "::ffff:223.255.255.255",
        "::ffff:1.0.0.0",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        CHECK_MSG(no_reply(refused[i]), "%s would be answered", refused[i]);
    for (size_t i = 0; i < sizeof answered / sizeof answered[0]; i++)
        CHECK_MSG(!no_reply(answered[i]), "%s would not be answered", answered[i]);
}

static int candidates_are(void *arg)
{
    iocp_engine *e = arg;
    AcquireSRWLockShared(&e->evict_lock);
    uint32_t n = e->evict_count - e->evict_next;
    ReleaseSRWLockShared(&e->evict_lock);
    return n >= 10;
}

/* Ten slots held by silent peers idle past the threshold, one place for a newcomer to wait
 * (accepts_outstanding 1), then eight newcomers at once: a newcomer evicts only when it has a
 * place to wait for the context it frees, so every eviction serves one newcomer (the
 * counters agree), every context is in use again afterwards, the newcomers that found no
 * place are reset without evicting anyone, and the silent peers not evicted still echo. */
static void evict_burst_serves_every_eviction(void)
{
    enum { SLOTS = 10, PARK = 1, NEWCOMERS = 8 };
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.max_connections = SLOTS;
    cfg.accepts_outstanding = PARK;
    cfg.evict_idle_ms = 1000;
    iocp_engine *e = tn_start(&cfg, NULL, NULL);
    uint16_t port = iocp_engine_port(e);
    SOCKET s[SLOTS], n[NEWCOMERS];
    for (int i = 0; i < SLOTS; i++) {
        s[i] = tn_connect("127.0.0.1", port, 5000);
        CHECK(s[i] != INVALID_SOCKET);
    }
    CHECK(tn_wait_stat(e, ST(active), SLOTS, 5000));
    /* Every silent peer a candidate (the sweep names them once idle 1 s, a period later). */
    CHECK_MSG(test_wait_until(candidates_are, e, 10000),
              "the silent peers never became candidates");
    for (int i = 0; i < NEWCOMERS; i++) {
        n[i] = tn_connect("127.0.0.1", port, 3000);
        CHECK(n[i] != INVALID_SOCKET);
    }
    uint64_t served = 0;
    for (int i = 0; i < NEWCOMERS; i++) {
        if (echoes(n[i]))
            served++;
        else
            CHECK_MSG(tn_wait_closed(n[i], 5000), "newcomer %d neither served nor reset", i);
    }
    CHECK(tn_wait_stat(e, ST(accepted), SLOTS + served, 5000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    uint64_t alive = 0;
    for (int i = 0; i < SLOTS; i++)
        alive += (uint64_t)echoes(s[i]);
    printf("%d newcomers, %d place(s) to wait: served %llu, evicted %llu, rejected %llu, active "
           "%llu, silent peers alive %llu\n",
           NEWCOMERS, PARK, (unsigned long long)served,
           (unsigned long long)st.closed[IOCP_CLOSE_EVICTED], (unsigned long long)st.rejected,
           (unsigned long long)st.active, (unsigned long long)alive);
    CHECK(served >= 1);
    CHECK_EQ_U(st.closed[IOCP_CLOSE_EVICTED], served);
    CHECK_EQ_U(st.evict_served, served);
    CHECK_EQ_U(st.rejected, NEWCOMERS - served);
    CHECK_EQ_U(st.active, SLOTS); /* no context freed for nobody */
    CHECK_EQ_U(alive, SLOTS - served);
    for (int i = 0; i < NEWCOMERS; i++)
        closesocket(n[i]);
    for (int i = 0; i < SLOTS; i++)
        closesocket(s[i]);
    tn_stop_clean(e);
}

static const test_case cases[] = {
    {"evict_makes_room", evict_makes_room},
    {"evict_off_keeps_holders", evict_off_keeps_holders},
    {"conn_rate_resets_and_counts", conn_rate_resets_and_counts},
    {"ipv6_prefix_groups_one_peer", ipv6_prefix_groups_one_peer},
    {"udp_no_reply_addresses", udp_no_reply_addresses},
    {"evict_burst_serves_every_eviction", evict_burst_serves_every_eviction},
};

TEST_MAIN(cases)
