/*
 * evict.c: which connection gives its context up when every context is taken
 * (config.evict_idle_ms).
 *
 * Finding the idlest connection at accept time would walk every context on the worker, for
 * every connection that comes while the server is full. The sweep already walks them once a
 * period (a second at most) and reads each one's last activity: it keeps the
 * IOCPI_EVICT_CANDIDATES idlest open accepted connections quiet for at least evict_idle_ms,
 * idlest first, and publishes them. An accept that finds the pool empty takes the next
 * candidate and iocpi_conn_evict checks it again under its lock (by id: a context that has been
 * reused since is another connection, whose generation differs, and a candidate that has had
 * traffic since is skipped). At most that many evictions a period: a flood of newcomers cannot
 * empty the server of its quiet connections faster than they become candidates.
 *
 * A newcomer evicts only once it holds a place to wait for the context it frees (below): a
 * flood larger than those places evicts no more connections than there are places, and each
 * evicted context goes to the newcomer that evicted for it, not to whichever accept pops the
 * pool first. So evictions and newcomers served through them are equal (evict_served), but
 * for a newcomer whose context took more than a second to come back, or the stop.
 */
#include "iocpi.h"

/* A hint read without the lock (iocpi_conn_evict looks again). */
void iocpi_evict_consider(iocp_engine *e, iocpi_evict_pick *p, const iocp_conn *c, uint64_t now)
{
    if (e->config.evict_idle_ms == 0 || c->outgoing || c->state != CONN_OPEN)
        return;
    LONG64 last = c->last_activity_ms;
    uint64_t idle = (LONG64)now > last ? now - (uint64_t)last : 0;
    if (idle < e->config.evict_idle_ms)
        return;
    uint32_t at = p->n;
    while (at > 0 && p->idle[at - 1] < idle)
        at--;
    if (at >= IOCPI_EVICT_CANDIDATES)
        return;
    uint32_t last_kept = p->n < IOCPI_EVICT_CANDIDATES ? p->n : IOCPI_EVICT_CANDIDATES - 1;
    for (uint32_t i = last_kept; i > at; i--) {
        p->id[i] = p->id[i - 1];
        p->idle[i] = p->idle[i - 1];
    }
    p->id[at] = ((uint64_t)(uint32_t)c->generation << 32) | c->index;
    p->idle[at] = idle;
    if (p->n < IOCPI_EVICT_CANDIDATES)
        p->n++;
}

void iocpi_evict_publish(iocp_engine *e, const iocpi_evict_pick *p)
{
    AcquireSRWLockExclusive(&e->evict_lock);
    memcpy(e->evict_candidates, p->id, p->n * sizeof p->id[0]);
    e->evict_count = p->n;
    e->evict_next = 0;
    ReleaseSRWLockExclusive(&e->evict_lock);
}

/* Closes the next candidate still idle for the newcomer in park slot `slot`; 0: none left. */
static int evict_one(iocp_engine *e, uint32_t slot, uint32_t ticket)
{
    uint64_t now = iocpi_now_ms();
    for (;;) {
        iocp_conn_id id = 0;
        AcquireSRWLockExclusive(&e->evict_lock);
        if (e->evict_next < e->evict_count)
            id = e->evict_candidates[e->evict_next++];
        ReleaseSRWLockExclusive(&e->evict_lock);
        if (id == 0)
            return 0;
        if (iocpi_conn_evict(e, id, now, e->config.evict_idle_ms, slot, ticket))
            return 1;
    }
}

/* ---- the newcomer waits for the context it freed ----------------------------------------
 *
 * The evicted connection's context comes back once its last operation completes (a reset
 * socket's receive completes at once), not while the accept that evicted it is running. So
 * the newcomer first reserves one of accepts_outstanding park slots (none free: it is reset
 * and nobody is evicted), then evicts, marking the evicted context with the slot and the
 * reservation's ticket; that context, when it comes back, goes straight to the slot
 * (iocpi_evict_claim, from the pool) by posting the slot's op, which runs the ordinary
 * admission on a worker. A context another connection gives back meanwhile may serve a
 * waiting newcomer sooner (handoff_locked); its own then goes to the pool. A newcomer still
 * waiting after PARK_MS (the context did not come back: its connection was busy closing) is
 * reset as it would have been. Lock order: evict_lock, then nothing (the pool is lock-free, the
 * post never blocks; a connection is evicted with evict_lock released). */

#define PARK_MS 1000

static void parked_done(iocpi_op *op, DWORD bytes, DWORD error);

iocp_err iocpi_evict_init(iocp_engine *e, iocp_error_info *err)
{
    InitializeSRWLock(&e->evict_lock);
    if (!e->config.listen || e->config.evict_idle_ms == 0)
        return IOCP_OK;
    e->parked_slots = e->config.accepts_outstanding;
    e->parked = calloc(e->parked_slots, sizeof *e->parked);
    if (e->parked == NULL) {
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "eviction: %lu waiting slots",
                        (unsigned long)e->parked_slots);
        return IOCP_E_NO_MEMORY;
    }
    for (uint32_t i = 0; i < e->parked_slots; i++) {
        e->parked[i].engine = e;
        e->parked[i].sock = INVALID_SOCKET;
        iocpi_op_init(&e->parked[i].op, parked_done);
    }
    return IOCP_OK;
}

void iocpi_evict_fini(iocp_engine *e)
{
    free(e->parked);
    e->parked = NULL;
}

/* Under evict_lock: free contexts to waiting slots, oldest first is not needed (at most a
 * second apart). */
static void handoff_locked(iocp_engine *e)
{
    for (uint32_t i = 0; i < e->parked_slots && e->parked_waiting > 0; i++) {
        iocpi_parked *p = &e->parked[i];
        if (p->sock == INVALID_SOCKET || p->conn != NULL || p->reserved)
            continue;
        iocp_conn *c = iocpi_pool_take(e);
        if (c == NULL)
            return;
        p->conn = c;
        InterlockedDecrement(&e->parked_waiting);
        iocpi_post(e, &p->op);
    }
}

/* A free park slot reserved for s (under its ticket), or parked_slots when there is none. */
static uint32_t reserve(iocp_engine *e, SOCKET s, const char *peer, const SOCKADDR_STORAGE *remote,
                        uint32_t *ticket)
{
    uint32_t slot = e->parked_slots;
    AcquireSRWLockExclusive(&e->evict_lock);
    for (uint32_t i = 0; i < e->parked_slots && !e->stopping; i++) {
        iocpi_parked *p = &e->parked[i];
        if (p->sock != INVALID_SOCKET)
            continue;
        p->sock = s;
        p->conn = NULL;
        p->reserved = 1;
        if (++e->park_tickets == 0)
            e->park_tickets = 1; /* 0 marks a context evicted for nobody */
        p->ticket = *ticket = e->park_tickets;
        memcpy(p->peer, peer, sizeof p->peer);
        p->peer[sizeof p->peer - 1] = '\0';
        p->remote = *remote;
        slot = i;
        break;
    }
    ReleaseSRWLockExclusive(&e->evict_lock);
    return slot;
}

int iocpi_evict_for(iocp_engine *e, SOCKET s, const char *peer, const SOCKADDR_STORAGE *remote)
{
    if (e->parked == NULL)
        return 0; /* eviction is off */
    uint32_t ticket = 0;
    uint32_t slot = reserve(e, s, peer, remote, &ticket);
    if (slot == e->parked_slots)
        return 0; /* no place to wait: evicting now would free a context for nobody */
    int evicted = evict_one(e, slot, ticket);
    int kept = 1;
    AcquireSRWLockExclusive(&e->evict_lock);
    iocpi_parked *p = &e->parked[slot];
    p->reserved = 0;
    if (p->conn != NULL) {
        iocpi_post(e, &p->op); /* the evicted context came back while we were evicting */
    } else if (!evicted || e->stopping) {
        /* Nobody to evict (the candidates are used up until the next sweep), or the stop
         * began: the slot is free again (an evicted context then goes to the pool). */
        p->sock = INVALID_SOCKET;
        kept = 0;
    } else {
        p->since_ms = iocpi_now_ms();
        InterlockedIncrement(&e->parked_waiting);
        handoff_locked(e); /* another context may be free already */
    }
    ReleaseSRWLockExclusive(&e->evict_lock);
    return kept;
}

int iocpi_evict_claim(iocp_engine *e, iocp_conn *c)
{
    uint32_t slot = c->evict_slot, ticket = c->evict_ticket;
    c->evict_ticket = 0;
    int handed = 0;
    AcquireSRWLockExclusive(&e->evict_lock);
    iocpi_parked *p = e->parked != NULL && slot < e->parked_slots ? &e->parked[slot] : NULL;
    /* The same reservation, still waiting (not expired, not served by another context). */
    if (p != NULL && p->ticket == ticket && p->sock != INVALID_SOCKET && p->conn == NULL &&
        !e->stopping) {
        p->conn = c;
        handed = 1;
        if (!p->reserved) { /* else iocpi_evict_for posts it once it has finished evicting */
            InterlockedDecrement(&e->parked_waiting);
            iocpi_post(e, &p->op);
        }
    }
    ReleaseSRWLockExclusive(&e->evict_lock);
    return handed;
}

void iocpi_evict_handoff(iocp_engine *e)
{
    AcquireSRWLockExclusive(&e->evict_lock);
    if (!e->stopping)
        handoff_locked(e);
    ReleaseSRWLockExclusive(&e->evict_lock);
}

void iocpi_evict_expire(iocp_engine *e, uint64_t now, int all)
{
    for (uint32_t i = 0; i < e->parked_slots; i++) {
        iocpi_parked *p = &e->parked[i];
        SOCKET s = INVALID_SOCKET;
        char peer[64];
        AcquireSRWLockExclusive(&e->evict_lock);
        if (p->sock != INVALID_SOCKET && p->conn == NULL && !p->reserved &&
            (all || (now >= p->since_ms && now - p->since_ms >= PARK_MS))) {
            /* (a newcomer parked after the sweep read its clock is younger than now) */
            s = p->sock;
            memcpy(peer, p->peer, sizeof peer);
            p->sock = INVALID_SOCKET;
            InterlockedDecrement(&e->parked_waiting);
        }
        ReleaseSRWLockExclusive(&e->evict_lock);
        if (s != INVALID_SOCKET)
            iocpi_listener_reject(e, s, peer);
    }
}

/* Entered from the port: the pool handed this waiting newcomer a context. */
static void parked_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    (void)bytes;
    (void)error;
    iocpi_parked *p = CONTAINING_RECORD(op, iocpi_parked, op);
    iocp_engine *e = p->engine;
    IOCPI_ASSERT(p->sock != INVALID_SOCKET && p->conn != NULL);
    SOCKET s = p->sock;
    iocp_conn *c = p->conn;
    char peer[64];
    SOCKADDR_STORAGE remote = p->remote;
    memcpy(peer, p->peer, sizeof peer);
    AcquireSRWLockExclusive(&e->evict_lock);
    p->conn = NULL;
    p->sock = INVALID_SOCKET; /* the slot is free again */
    ReleaseSRWLockExclusive(&e->evict_lock);
    if (e->stopping) {
        iocpi_close_socket(s, 1);
        iocpi_pool_return(e, c);
        return;
    }
    InterlockedIncrement64(&e->counters.evict_served);
    iocpi_listener_admit(e, c, s, peer, &remote);
}
