/*
 * udp_guard.c: which datagrams the UDP endpoint answers, so that it cannot be made a reflector
 * or one end of a loop (the echo/chargen attack, CVE-1999-0103).
 *
 * Never answered (counted, never passed on):
 * - a source port below 1024: no client sends from one, and the echo, chargen, daytime, DNS,
 *   NTP and SNMP servers are there (an echo pointed at one of them loops or amplifies);
 * - the endpoint's own port number, from any address: a spoofed datagram "from ourselves"
 *   (our loopback address, the bound one, or any other address of this host: a [::] endpoint
 *   answers on all of them, so all of them are "our own address") would loop inside this
 *   server; from another host it is most likely another echo server on the same port (the
 *   classic loop between two echo ports). A client whose ephemeral port happens to equal ours
 *   is the price: it is refused (and counted) and picks another port on its next socket;
 * - an unspecified, multicast or broadcast source (0.0.0.0/8, 224.0.0.0/4 and 240.0.0.0/4
 *   with 255.255.255.255, ::, ff00::/8, and their IPv4-mapped forms): no reply can be meant
 *   for one, and a reply to one reaches many hosts.
 * A loop between two echo servers (a spoofed datagram from one sent to the other) is the
 * same bytes answered back and forth as fast as both ends go. With no callback (the echo),
 * each source remembers the hashes of the last IOCPI_ANSWERED datagrams echoed to it: when
 * LOOP_RETURNS datagrams in a row come back from it exactly as they were echoed, each within
 * LOOP_WINDOW_MS of the last answer to it, it is a loop and the datagram is refused
 * (udp_refused_loop): the loop dies after LOOP_RETURNS round trips, however slow or fast the
 * two ends are. A client sending the same bytes again is only refused when it does so eight
 * times in a row, each time within a quarter second of its answer; the load generators
 * (bench/loadgen.c, iocp-client) number their datagrams. A loop of more distinct datagrams
 * than that memory holds runs faster in proportion, and the flow's rate thins it until it
 * is short enough for the memory to catch.
 * Then three token buckets (see iocp_config): the flow's (address and port, the loop
 * memory's entry: udp_flow_rate, what thins a loop), the address's (grouped as every
 * per-address limit is: udp_rate, udp_burst and the byte limits, so a host or a spoofer that
 * varies its source port gets one burst, not one a port), and all sources' together
 * (udp_total_rate). The flow's entry stays locked while the other two are asked (lock order:
 * flow table, address table, total), so a datagram refused by any of them is not remembered
 * as answered.
 *
 * Logging: one warning a second at most, with the totals, for a flood of refusals must not
 * become a flood of lines.
 */
#include "iocpi.h"

#define LOOP_RETURNS   8
#define LOOP_WINDOW_MS 250

/* Made by iocpi_udp_guard_new, freed by iocpi_udp_guard_free (udp.c's start and free). */
typedef struct iocpi_udp_guard {
    iocp_engine *e;
    iocpi_rate per_flow;    /* exact address and port: the loop memory, udp_flow_rate */
    iocpi_rate per_address; /* address (iocpi_peer_key): udp_rate, udp_burst, bytes */
    iocpi_rate total;
    volatile LONG64 warned_ms;
} iocpi_udp_guard;

struct iocpi_udp_guard *iocpi_udp_guard_new(iocp_engine *e, iocp_error_info *err)
{
    const iocp_config *c = &e->config;
    iocpi_udp_guard *g = calloc(1, sizeof *g);
    if (g == NULL) {
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "udp: the source table");
        return NULL;
    }
    g->e = e;
    /* The flow's burst: half a second of its rate (a loop's first half second). */
    iocpi_rate_limits flow = {c->udp_flow_rate, c->udp_flow_rate > 1 ? c->udp_flow_rate / 2 : 1, 0,
                              0};
    iocpi_rate_limits address = {c->udp_rate, c->udp_burst, c->udp_byte_rate, c->udp_byte_burst};
    iocpi_rate_limits all = {c->udp_total_rate, c->udp_total_rate, 0, 0};
    if (iocpi_rate_init(&g->per_flow, c->udp_sources, &flow) != IOCP_OK ||
        iocpi_rate_init(&g->per_address, c->udp_sources, &address) != IOCP_OK ||
        iocpi_rate_init(&g->total, 0, &all) != IOCP_OK) {
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "udp: cannot allocate the source tables (%lu)",
                        (unsigned long)c->udp_sources);
        iocpi_udp_guard_free(g);
        return NULL;
    }
    return g;
}

void iocpi_udp_guard_free(struct iocpi_udp_guard *g)
{
    if (g == NULL)
        return;
    iocpi_rate_fini(&g->per_flow);
    iocpi_rate_fini(&g->per_address);
    iocpi_rate_fini(&g->total);
    free(g);
}

int iocpi_udp_no_reply_address(const uint8_t a[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t zero[16] = {0};
    if (memcmp(a, mapped, 12) == 0)
        return a[12] == 0 || a[12] >= 224;           /* 0/8; 224/4 multicast; 240/4 and broadcast */
    return memcmp(a, zero, 16) == 0 || a[0] == 0xff; /* ::, ff00::/8 */
}

static void refused(iocpi_udp_guard *g, volatile LONG64 *counter, const struct sockaddr *from,
                    const char *why)
{
    iocp_engine *e = g->e;
    InterlockedIncrement64(counter);
    LONG64 now = (LONG64)iocpi_now_ms();
    LONG64 last = g->warned_ms;
    if ((last != 0 && now - last < 1000) ||
        InterlockedCompareExchange64(&g->warned_ms, now, last) != last)
        return;
    const iocpi_counters *n = &e->counters;
    char peer[80];
    iocpi_format_addr(from, peer, sizeof peer);
    iocpi_log(e, IOCP_LOG_WARN,
              "udp: not answered: %s (%s); so far: %lld from ports below 1024, %lld from our own "
              "port, %lld from no-reply addresses, %lld echo loops, %lld over a source's rate, "
              "%lld over the total rate",
              peer, why, (long long)n->udp_refused_port, (long long)n->udp_refused_self,
              (long long)n->udp_refused_address, (long long)n->udp_refused_loop,
              (long long)n->udp_rate_limited, (long long)n->udp_capped);
}

/* The datagram's length, its first and its last 128 bytes (a loop repeats all of it); never
 * 0, which marks an empty memory slot. */
static uint64_t datagram_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    size_t head = n < 128 ? n : 128;
    for (size_t i = 0; i < head; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    for (size_t i = n > 256 ? n - 128 : head; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return h | 1;
}

enum verdict { PASS, LOOP, FLOW, ADDRESS, TOTAL };

/* Under the flow table's lock: the flow's loop memory and bucket, then the address's and the
 * total bucket; the datagram is remembered only when it passes them all. */
static enum verdict admit_locked(iocpi_udp_guard *g, iocpi_rate_entry *en, const uint8_t key[16],
                                 uint64_t hash, size_t bytes, uint64_t now)
{
    if (hash != 0) {
        int seen = 0;
        for (int i = 0; i < IOCPI_ANSWERED; i++)
            seen |= en->answered[i] == hash;
        if (seen && en->answered_ms != 0 && now - en->answered_ms <= LOOP_WINDOW_MS)
            en->returns++;
        else
            en->returns = 0;
        if (en->returns >= LOOP_RETURNS)
            return LOOP;
    }
    if (!iocpi_rate_take_locked(&g->per_flow, en, 0, now))
        return FLOW;
    if (!iocpi_rate_take(&g->per_address, key, 0, bytes, now))
        return ADDRESS;
    if (!iocpi_rate_take(&g->total, key, 0, 0, now))
        return TOTAL;
    if (hash != 0) {
        en->answered[en->answered_next++ % IOCPI_ANSWERED] = hash;
        en->answered_ms = now;
    }
    return PASS;
}

int iocpi_udp_guard_admit(struct iocpi_udp_guard *g, uint16_t own_port, const struct sockaddr *from,
                          const void *data, size_t bytes)
{
    iocp_engine *e = g->e;
    iocpi_counters *n = &e->counters;
    uint8_t exact[16], key[16];
    if (!iocpi_peer_key(from, 128, exact) || !iocpi_peer_key(from, e->config.ipv6_prefix_len, key))
        return 0; /* not IPv4 or IPv6: never seen from WSARecvFrom */
    uint16_t port = ntohs(((const struct sockaddr_in *)from)->sin_port); /* same offset in v6 */
    if (port < 1024) {
        refused(g, &n->udp_refused_port, from, "source port below 1024");
        return 0;
    }
    if (port == own_port) {
        refused(g, &n->udp_refused_self, from, "source port is ours: a loop");
        return 0;
    }
    if (iocpi_udp_no_reply_address(exact)) {
        refused(g, &n->udp_refused_address, from, "unspecified, multicast or broadcast source");
        return 0;
    }
    uint64_t now = iocpi_now_ms();
    uint64_t hash = e->config.on_datagram == NULL ? datagram_hash(data, bytes) : 0;
    iocpi_rate_entry *en = iocpi_rate_lock(&g->per_flow, exact, port, now);
    enum verdict v = admit_locked(g, en, key, hash, bytes, now);
    iocpi_rate_unlock(&g->per_flow);
    switch (v) {
    case PASS:
        return 1;
    case LOOP:
        refused(g, &n->udp_refused_loop, from, "an echo loop: our answers come back");
        return 0;
    case FLOW:
        refused(g, &n->udp_rate_limited, from, "over its flow's rate (its address and port)");
        return 0;
    case ADDRESS:
        refused(g, &n->udp_rate_limited, from, "over its address's rate");
        return 0;
    default:
        refused(g, &n->udp_capped, from, "over the total rate");
        return 0;
    }
}
