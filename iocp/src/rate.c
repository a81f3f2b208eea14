/*
 * rate.c: token buckets, one per source, in a table allocated at start.
 *
 * A bucket holds up to `burst` events (datagrams, connections) and, when a byte limit is set,
 * up to `byte_burst` bytes; it refills at `rate` events and `byte_rate` bytes a second. An event
 * passes when the bucket holds one event and its bytes, and takes them; otherwise it is refused
 * and takes nothing. Tokens are kept in thousandths, so the refill is an integer product of
 * the milliseconds elapsed and the rate.
 *
 * The table is set-associative (SET_WAYS entries a set, sets a power of two) and never grows:
 * a source not in its set takes a free way, or else the way seen longest ago. That entry's
 * bucket had been refilling since it was last seen, so a source it belonged to comes back with
 * a full bucket, which it would have had anyway if it had been quiet for burst / rate seconds;
 * only a sender cycling through more sources than the table holds gets more than its share, and
 * the total cap (a table of no entries: one bucket for everyone) bounds that. The set is chosen
 * by a hash keyed with a seed picked at start, so a peer cannot aim its sources at one set.
 * One SRWLOCK guards the table: a lookup is a few compares. An entry also holds what its
 * caller remembers about the source (the UDP guard: the datagrams it answered it lately).
 */
#include "iocpi.h"

#define SET_WAYS   4
#define MILLI      1000u
#define MAX_REFILL 100000000ull /* ms: no product below can overflow */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static int off(const iocpi_rate_limits *l)
{
    return l->rate == 0 && l->byte_rate == 0;
}

iocp_err iocpi_rate_init(iocpi_rate *r, uint32_t sources, const iocpi_rate_limits *limits)
{
    memset(r, 0, sizeof *r);
    InitializeSRWLock(&r->lock);
    r->limits = *limits;
    if (sources == 0) {
        if (off(limits))
            return IOCP_OK; /* every event passes */
        r->total.tokens = (uint64_t)limits->burst * MILLI;
        r->total.bytes = limits->byte_burst * MILLI;
        r->total.at_ms = iocpi_now_ms();
        return IOCP_OK;
    }
    uint32_t sets = 1;
    while ((uint64_t)sets * SET_WAYS < sources)
        sets *= 2;
    r->entries = calloc((size_t)sets * SET_WAYS, sizeof *r->entries);
    if (r->entries == NULL)
        return IOCP_E_NO_MEMORY;
    r->set_mask = sets - 1;
    LARGE_INTEGER t;
    QueryPerformanceCounter(&t);
    r->seed = mix((uint64_t)t.QuadPart ^ ((uint64_t)(uintptr_t)r << 20) ^ GetTickCount64());
    return IOCP_OK;
}

void iocpi_rate_fini(iocpi_rate *r)
{
    free(r->entries);
    r->entries = NULL;
}

static void refill(const iocpi_rate_limits *l, iocpi_bucket *b, uint64_t now)
{
    uint64_t elapsed = now > b->at_ms ? now - b->at_ms : 0;
    if (elapsed > MAX_REFILL)
        elapsed = MAX_REFILL;
    if (now > b->at_ms)
        b->at_ms = now; /* a worker with an older clock reading never counts a span twice */
    uint64_t cap = (uint64_t)l->burst * MILLI;
    b->tokens += elapsed * l->rate;
    if (b->tokens > cap)
        b->tokens = cap;
    if (l->byte_rate != 0) {
        uint64_t byte_cap = l->byte_burst * MILLI;
        b->bytes += elapsed * l->byte_rate;
        if (b->bytes > byte_cap)
            b->bytes = byte_cap;
    }
}

/* rate 0: events are not counted, only bytes (and the other way round). */
static int take(const iocpi_rate_limits *l, iocpi_bucket *b, uint64_t bytes)
{
    uint64_t need = bytes * MILLI;
    if ((l->rate != 0 && b->tokens < MILLI) || (l->byte_rate != 0 && b->bytes < need))
        return 0;
    if (l->rate != 0)
        b->tokens -= MILLI;
    if (l->byte_rate != 0)
        b->bytes -= need;
    return 1;
}

/* The entry of (key, port) in its set, claimed (full bucket) when it was not there. */
static iocpi_rate_entry *entry_of(iocpi_rate *r, const uint8_t key[16], uint16_t port, uint64_t now)
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint32_t set = (uint32_t)(mix(mix(a ^ r->seed) ^ b ^ port) & r->set_mask);
    iocpi_rate_entry *ways = &r->entries[(size_t)set * SET_WAYS];
    iocpi_rate_entry *victim = &ways[0];
    for (int i = 0; i < SET_WAYS; i++) {
        iocpi_rate_entry *w = &ways[i];
        if (w->used && w->port == port && memcmp(w->key, key, 16) == 0)
            return w;
        if (!w->used) {
            victim = w; /* ways are never freed: the ones after a free way are free too */
            break;
        }
        if (w->bucket.at_ms < victim->bucket.at_ms)
            victim = w;
    }
    /* A free way, or the one seen longest ago (see the top); either starts full. */
    memcpy(victim->key, key, 16);
    victim->port = port;
    victim->used = 1;
    victim->bucket.tokens = (uint64_t)r->limits.burst * MILLI;
    victim->bucket.bytes = r->limits.byte_burst * MILLI;
    victim->bucket.at_ms = now;
    memset(victim->answered, 0, sizeof victim->answered);
    victim->answered_ms = 0;
    victim->returns = 0;
    return victim;
}

int iocpi_rate_take(iocpi_rate *r, const uint8_t key[16], uint16_t port, uint64_t bytes,
                    uint64_t now)
{
    if (off(&r->limits))
        return 1;
    AcquireSRWLockExclusive(&r->lock);
    iocpi_bucket *b = r->entries != NULL ? &entry_of(r, key, port, now)->bucket : &r->total;
    refill(&r->limits, b, now);
    int ok = take(&r->limits, b, bytes);
    ReleaseSRWLockExclusive(&r->lock);
    return ok;
}

iocpi_rate_entry *iocpi_rate_lock(iocpi_rate *r, const uint8_t key[16], uint16_t port, uint64_t now)
{
    AcquireSRWLockExclusive(&r->lock);
    return entry_of(r, key, port, now);
}

int iocpi_rate_take_locked(iocpi_rate *r, iocpi_rate_entry *entry, uint64_t bytes, uint64_t now)
{
    if (off(&r->limits)) {
        if (now > entry->bucket.at_ms)
            entry->bucket.at_ms = now; /* seen now: the entry a full set gives up last */
        return 1;
    }
    refill(&r->limits, &entry->bucket, now);
    return take(&r->limits, &entry->bucket, bytes);
}

void iocpi_rate_unlock(iocpi_rate *r)
{
    ReleaseSRWLockExclusive(&r->lock);
}
