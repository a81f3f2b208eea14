/*
 * peers.c: how many accepted connections each peer address holds, for
 * max_connections_per_address (without it one host could take every context).
 *
 * An open-addressing hash table (linear probing) of address -> count, allocated at start
 * with at least twice as many slots as there are contexts: a counted address always holds at
 * least one context, so the table is never more than half full and a probe always ends at an
 * empty slot. A slot with count 0 is empty; deletion shifts the following entries back
 * instead of leaving tombstones, so the table never degrades however long the engine runs.
 * One SRWLOCK guards it: an accept and a release each hold it for one short probe.
 *
 * Addresses are keyed as 16 bytes (iocpi_peer_key, the one place every per-address limit
 * gets its key): IPv6 cut to its first ipv6_prefix_len bits (default 64: a host is given a
 * whole /64, so counting each address would let it hold 2^64 shares), IPv4 as the
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, never cut), so a client counts the same whether
 * it reached a dual-stack listener or an IPv4 one. The hash is keyed with a seed chosen at start: a
 * remote peer cannot pick addresses (an IPv6 host has a whole /64 to pick from) that all land on
 * one probe chain.
 */
#include "iocpi.h"

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int iocpi_peer_key(const struct sockaddr *sa, uint32_t ipv6_prefix_len, uint8_t key[16])
{
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        /* An IPv4-mapped address is an IPv4 host: all of it counts, as for AF_INET. */
        if (memcmp(key, v4_mapped_prefix, 12) == 0 || ipv6_prefix_len >= 128)
            return 1;
        /* One host is given a whole prefix (a /64 at least): it counts once. */
        uint32_t full = ipv6_prefix_len / 8, bits = ipv6_prefix_len % 8;
        if (bits != 0)
            key[full++] &= (uint8_t)(0xff00u >> bits);
        memset(key + full, 0, 16 - full);
        return 1;
    }
    if (sa->sa_family == AF_INET) {
        memcpy(key, v4_mapped_prefix, 12);
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 1;
    }
    return 0;
}

static int key_of(const iocp_engine *e, const struct sockaddr *sa, uint8_t key[16])
{
    return iocpi_peer_key(sa, e->config.ipv6_prefix_len, key);
}

static uint64_t mix(uint64_t x)
{
    /* splitmix64's finaliser: every input bit reaches every output bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint32_t home_of(const iocp_engine *e, const uint8_t key[16])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    return (uint32_t)(mix(mix(a ^ e->peer_seed) ^ b) & e->peer_mask);
}

iocp_err iocpi_peers_init(iocp_engine *e, iocp_error_info *err)
{
    InitializeSRWLock(&e->peer_lock);
    if (e->config.listen && e->config.conn_rate != 0) {
        /* conn_rate's buckets: a table as large as the contexts' (an address that opens
         * connections usually holds some), 4096 at least. */
        iocpi_rate_limits limits = {
            e->config.conn_rate, e->config.conn_burst ? e->config.conn_burst : e->config.conn_rate,
            0, 0};
        uint32_t sources = e->config.max_connections < 4096 ? 4096 : e->config.max_connections;
        if (iocpi_rate_init(&e->conn_rate, sources, &limits) != IOCP_OK) {
            iocpi_error_set(err, IOCP_E_NO_MEMORY, 0,
                            "cannot allocate the connection-rate table (%lu sources)",
                            (unsigned long)sources);
            return IOCP_E_NO_MEMORY;
        }
    }
    if (e->config.max_connections_per_address == 0 || !e->config.listen)
        return IOCP_OK; /* nothing is counted */
    uint32_t slots = 16;
    while (slots < 2 * e->config.max_connections)
        slots *= 2; /* max_connections <= 1,000,000: at most 2^21 slots of 20 bytes */
    e->peers = calloc(slots, sizeof *e->peers);
    if (e->peers == NULL) {
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0,
                        "cannot allocate the per-address table (%lu slots)", (unsigned long)slots);
        return IOCP_E_NO_MEMORY;
    }
    e->peer_mask = slots - 1;
    LARGE_INTEGER t;
    QueryPerformanceCounter(&t);
    e->peer_seed = mix((uint64_t)t.QuadPart ^ ((uint64_t)(uintptr_t)e << 16) ^ GetTickCount64());
    return IOCP_OK;
}

void iocpi_peers_fini(iocp_engine *e)
{
    iocpi_rate_fini(&e->conn_rate);
    free(e->peers);
    e->peers = NULL;
}

int iocpi_peers_rate_admit(iocp_engine *e, const struct sockaddr *remote)
{
    uint8_t key[16];
    if (e->config.conn_rate == 0 || !key_of(e, remote, key))
        return 1;
    return iocpi_rate_take(&e->conn_rate, key, 0, 0, iocpi_now_ms());
}

int iocpi_peers_admit(iocp_engine *e, const struct sockaddr *remote, iocp_conn *c)
{
    c->peer_counted = 0;
    if (e->peers == NULL || !key_of(e, remote, c->peer_key))
        return 1;
    int admitted = 0;
    AcquireSRWLockExclusive(&e->peer_lock);
    uint32_t i = home_of(e, c->peer_key);
    for (uint32_t probes = 0; probes <= e->peer_mask; probes++, i = (i + 1) & e->peer_mask) {
        iocpi_peer_slot *s = &e->peers[i];
        if (s->count == 0) {
            memcpy(s->addr, c->peer_key, 16);
            s->count = 1;
            admitted = 1;
            break;
        }
        if (memcmp(s->addr, c->peer_key, 16) == 0) {
            if (s->count < e->config.max_connections_per_address) {
                s->count++;
                admitted = 1;
            }
            break;
        }
    }
    /* Never full (see the top): a full table would refuse, not overrun. */
    ReleaseSRWLockExclusive(&e->peer_lock);
    c->peer_counted = admitted;
    return admitted;
}

/* Deletes slot i by moving back each following entry whose probe chain passes over i. */
static void remove_slot_locked(iocp_engine *e, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & e->peer_mask;
        iocpi_peer_slot *s = &e->peers[j];
        if (s->count == 0)
            break;
        uint32_t home = home_of(e, s->addr);
        /* The entry at j may stay when its home lies cyclically in (i, j]. */
        int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            e->peers[i] = *s;
            i = j;
        }
    }
    e->peers[i].count = 0;
}

void iocpi_peers_release(iocp_engine *e, iocp_conn *c)
{
    if (!c->peer_counted)
        return;
    c->peer_counted = 0;
    AcquireSRWLockExclusive(&e->peer_lock);
    uint32_t i = home_of(e, c->peer_key);
    for (uint32_t probes = 0; probes <= e->peer_mask; probes++, i = (i + 1) & e->peer_mask) {
        iocpi_peer_slot *s = &e->peers[i];
        IOCPI_ASSERT(s->count != 0); /* a counted address is in the table */
        if (s->count == 0)
            break;
        if (memcmp(s->addr, c->peer_key, 16) == 0) {
            if (--s->count == 0)
                remove_slot_locked(e, i);
            break;
        }
    }
    ReleaseSRWLockExclusive(&e->peer_lock);
}
