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
 * Addresses are keyed as 16 bytes: IPv6 as it is, IPv4 as the IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d), so a client counts the same whether it reached a dual-stack listener or
 * an IPv4 one. The hash is keyed with a seed chosen at start: a remote peer cannot pick
 * addresses (an IPv6 host has a whole /64 to pick from) that all land on one probe chain.
 */
#include "iocpi.h"

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The 16-byte key of an address; 0 for a family that has none (never seen from AcceptEx). */
static int key_of(const struct sockaddr *sa, uint8_t key[16])
{
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 1;
    }
    if (sa->sa_family == AF_INET) {
        memcpy(key, v4_mapped_prefix, 12);
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 1;
    }
    return 0;
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
    free(e->peers);
    e->peers = NULL;
}

int iocpi_peers_admit(iocp_engine *e, const struct sockaddr *remote, iocp_conn *c)
{
    c->peer_counted = 0;
    if (e->peers == NULL || !key_of(remote, c->peer_key))
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
