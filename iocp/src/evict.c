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

int iocpi_evict(iocp_engine *e)
{
    if (e->config.evict_idle_ms == 0)
        return 0;
    uint64_t now = iocpi_now_ms();
    for (;;) {
        iocp_conn_id id = 0;
        AcquireSRWLockExclusive(&e->evict_lock);
        if (e->evict_next < e->evict_count)
            id = e->evict_candidates[e->evict_next++];
        ReleaseSRWLockExclusive(&e->evict_lock);
        if (id == 0)
            return 0;
        if (iocpi_conn_evict(e, id, now, e->config.evict_idle_ms))
            return 1;
    }
}
