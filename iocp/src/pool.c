/*
 * pool.c: the preallocated connection contexts (the .NET SocketAsyncEventArgsPool), the
 * receive buffer pool, and the cache of send chunks.
 *
 * At start: one array of max_connections contexts from VirtualAlloc, held until destroy; free
 * contexts sit on a lock-free SLIST. Receive buffers are not per context: a connection holds
 * one only while it is active (conn.c), so they come from a pool sized by what is in use,
 * with a cap (buffer_pool_max). Its region is reserved at start and committed a buffer at a
 * time when first taken; returned buffers beyond a few are decommitted again, so a burst
 * does not leave its memory behind. A send queue longer than the context's 512 bytes borrows
 * buffer_size chunks from the heap; they are recycled through a second SLIST, so a busy
 * server stops allocating once warm.
 */
#include "iocpi.h"

/* Chunks kept for reuse at most: enough for bursts, bounded so a spike does not pin memory. */
#define CHUNK_CACHE_MAX 1024
/* Free receive buffers kept committed at most (the rest are decommitted). */
#define BUFFERS_WARM_MAX 64

static iocp_err buffers_init(iocp_engine *e, iocp_error_info *err)
{
    iocpi_buffers *b = &e->buffers;
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    size_t page = si.dwPageSize ? si.dwPageSize : 4096;
    size_t buf = e->config.buffer_size;
    uint64_t slots = e->config.buffer_pool_max / buf;
    if (slots > e->config.max_connections)
        slots = e->config.max_connections; /* a connection holds one at most */
    if (slots < 1)
        slots = 1;
    InitializeSRWLock(&b->lock);
    b->stride = (buf + page - 1) / page * page; /* decommitted a buffer at a time */
    b->slots = (uint32_t)slots;
    b->warm_keep = BUFFERS_WARM_MAX;
    b->base = VirtualAlloc(NULL, (SIZE_T)slots * b->stride, MEM_RESERVE, PAGE_READWRITE);
    b->warm = calloc(slots, sizeof *b->warm);
    b->cold = calloc(slots, sizeof *b->cold);
    if (b->base == NULL || b->warm == NULL || b->cold == NULL) {
        DWORD sys = GetLastError();
        iocpi_error_set(err, IOCP_E_NO_MEMORY, sys,
                        "cannot reserve a receive buffer pool of %lu x %lu bytes",
                        (unsigned long)slots, (unsigned long)b->stride);
        return IOCP_E_NO_MEMORY;
    }
    /* Slot 0 on top: handed out first, as the contexts are. */
    for (uint32_t i = 0; i < b->slots; i++)
        b->cold[b->cold_n++] = b->slots - 1 - i;
    return IOCP_OK;
}

static void buffers_fini(iocp_engine *e)
{
    iocpi_buffers *b = &e->buffers;
    if (b->base != NULL && !e->lost_ops) /* a lost operation may still write into one */
        VirtualFree(b->base, 0, MEM_RELEASE);
    b->base = NULL;
    free(b->warm);
    free(b->cold);
    b->warm = b->cold = NULL;
}

uint8_t *iocpi_buffer_take(iocp_engine *e, iocp_conn *waiter)
{
    iocpi_buffers *b = &e->buffers;
    uint32_t slot;
    int commit = 0;
    AcquireSRWLockExclusive(&b->lock);
    if (b->warm_n > 0) {
        slot = b->warm[--b->warm_n];
    } else if (b->cold_n > 0) {
        slot = b->cold[--b->cold_n];
        commit = 1;
    } else {
        if (waiter != NULL) {
            IOCPI_ASSERT(!waiter->pool_waiting);
            waiter->pool_waiting = 1;
            waiter->pool_next = NULL;
            if (b->wait_tail != NULL)
                b->wait_tail->pool_next = waiter;
            else
                b->wait_head = waiter;
            b->wait_tail = waiter;
            InterlockedIncrement(&b->waiters);
            InterlockedIncrement64(&e->counters.buffer_waits);
        }
        ReleaseSRWLockExclusive(&b->lock);
        return NULL;
    }
    LONG used = InterlockedIncrement(&b->in_use);
    if (used > b->peak)
        b->peak = used;
    ReleaseSRWLockExclusive(&b->lock);
    uint8_t *p = b->base + (size_t)slot * b->stride;
    if (commit && VirtualAlloc(p, b->stride, MEM_COMMIT, PAGE_READWRITE) == NULL) {
        /* Out of memory: as if at the cap (the caller waits with a zero-byte receive). */
        AcquireSRWLockExclusive(&b->lock);
        b->cold[b->cold_n++] = slot;
        InterlockedDecrement(&b->in_use);
        ReleaseSRWLockExclusive(&b->lock);
        return NULL;
    }
    return p;
}

void iocpi_buffer_return(iocp_engine *e, uint8_t *buf)
{
    iocpi_buffers *b = &e->buffers;
    uint32_t slot = (uint32_t)((size_t)(buf - b->base) / b->stride);
    IOCPI_ASSERT(slot < b->slots && buf == b->base + (size_t)slot * b->stride);
    iocp_conn *w = NULL;
    AcquireSRWLockExclusive(&b->lock);
    if (b->wait_head != NULL) {
        /* Handed over as it is: the waiter's receive chain is parked, nothing else reads
         * recv_buf until its resume_op runs. */
        w = b->wait_head;
        b->wait_head = w->pool_next;
        if (b->wait_head == NULL)
            b->wait_tail = NULL;
        w->pool_next = NULL;
        w->pool_waiting = 0;
        InterlockedDecrement(&b->waiters);
        w->recv_buf = buf;
        ReleaseSRWLockExclusive(&b->lock);
        iocpi_post(e, &w->resume_op);
        return;
    }
    if (b->warm_n < b->warm_keep) {
        b->warm[b->warm_n++] = slot;
        InterlockedDecrement(&b->in_use);
        ReleaseSRWLockExclusive(&b->lock);
        return;
    }
    ReleaseSRWLockExclusive(&b->lock);
    /* Beyond the warm few: its memory goes back to the system (taken again, it is
     * committed again, zeroed). Still counted in use until it is on the cold stack. */
    VirtualFree(buf, b->stride, MEM_DECOMMIT);
    AcquireSRWLockExclusive(&b->lock);
    b->cold[b->cold_n++] = slot;
    InterlockedDecrement(&b->in_use);
    w = b->wait_head;
    ReleaseSRWLockExclusive(&b->lock);
    if (w != NULL) {
        /* A connection began to wait while this one was decommitted: take it again for it. */
        uint8_t *again = iocpi_buffer_take(e, NULL);
        if (again != NULL)
            iocpi_buffer_return(e, again);
    }
}

int iocpi_buffer_unwait(iocp_engine *e, iocp_conn *c)
{
    iocpi_buffers *b = &e->buffers;
    int was = 0;
    AcquireSRWLockExclusive(&b->lock);
    if (c->pool_waiting) {
        iocp_conn **pp = &b->wait_head, *prev = NULL;
        while (*pp != c) {
            prev = *pp;
            pp = &(*pp)->pool_next;
        }
        *pp = c->pool_next;
        if (b->wait_tail == c)
            b->wait_tail = prev;
        c->pool_next = NULL;
        c->pool_waiting = 0;
        InterlockedDecrement(&b->waiters);
        was = 1;
    }
    ReleaseSRWLockExclusive(&b->lock);
    return was;
}

iocp_err iocpi_pool_init(iocp_engine *e, iocp_error_info *err)
{
    uint32_t n = e->config.max_connections;
    e->conns =
        VirtualAlloc(NULL, (SIZE_T)n * sizeof(iocp_conn), MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (e->conns == NULL) {
        DWORD sys = GetLastError();
        iocpi_error_set(err, IOCP_E_NO_MEMORY, sys, "cannot allocate %lu contexts",
                        (unsigned long)n);
        return IOCP_E_NO_MEMORY;
    }
    iocp_err rc = buffers_init(e, err);
    if (rc != IOCP_OK)
        return rc;
    InitializeSListHead(&e->free_conns);
    InitializeSListHead(&e->chunk_cache);
    /* Pushed in reverse so the pool hands out index 0 first: easier to read in a debugger. */
    for (uint32_t i = n; i-- > 0;) {
        iocp_conn *c = &e->conns[i];
        iocpi_conn_init(c, e, i);
        iocpi_dialer_init(c);
        InterlockedPushEntrySList(&e->free_conns, &c->pool_entry);
    }
    return IOCP_OK;
}

void iocpi_pool_fini(iocp_engine *e)
{
    if (e->lost_ops)
        e->conns = NULL; /* an operation may still complete into a context: keep them */
    if (e->conns != NULL) {
        for (uint32_t i = 0; i < e->config.max_connections; i++)
            iocpi_conn_fini(&e->conns[i]);
        VirtualFree(e->conns, 0, MEM_RELEASE);
    }
    buffers_fini(e);
    PSLIST_ENTRY entry;
    while ((entry = InterlockedPopEntrySList(&e->chunk_cache)) != NULL)
        _aligned_free(CONTAINING_RECORD(entry, iocpi_cached_chunk, entry));
}

iocp_conn *iocpi_pool_take(iocp_engine *e)
{
    PSLIST_ENTRY entry = InterlockedPopEntrySList(&e->free_conns);
    if (entry == NULL)
        return NULL;
    InterlockedIncrement64(&e->counters.contexts_in_use);
    return CONTAINING_RECORD(entry, iocp_conn, pool_entry);
}

void iocpi_pool_return(iocp_engine *e, iocp_conn *c)
{
    if (c->evict_ticket != 0 && iocpi_evict_claim(e, c))
        return; /* straight to the newcomer that evicted its connection, still in use */
    InterlockedPushEntrySList(&e->free_conns, &c->pool_entry);
    InterlockedDecrement64(&e->counters.contexts_in_use);
    /* A newcomer that evicted a connection waits for this context (evict.c). After the push:
     * iocpi_evict_park counts itself waiting before it looks at the pool once more, so one of
     * the two always sees the other. */
    if (e->parked_waiting > 0)
        iocpi_evict_handoff(e);
}

iocpi_chunk *iocpi_chunk_take(iocp_engine *e)
{
    iocpi_cached_chunk *cc;
    PSLIST_ENTRY entry = InterlockedPopEntrySList(&e->chunk_cache);
    if (entry != NULL) {
        InterlockedDecrement(&e->cached_chunks);
        cc = CONTAINING_RECORD(entry, iocpi_cached_chunk, entry);
    } else {
        cc = _aligned_malloc(sizeof *cc + e->config.buffer_size, MEMORY_ALLOCATION_ALIGNMENT);
        InterlockedIncrement64(&e->counters.allocations);
        if (cc == NULL)
            return NULL;
        cc->chunk.data = (uint8_t *)(cc + 1);
        cc->chunk.cap = e->config.buffer_size;
        cc->chunk.kind = CHUNK_CACHE;
    }
    cc->chunk.next = NULL;
    cc->chunk.off = cc->chunk.len = 0;
    InterlockedIncrement64(&e->counters.heap_chunks);
    return &cc->chunk;
}

void iocpi_chunk_return(iocp_engine *e, iocpi_chunk *chunk)
{
    iocpi_cached_chunk *cc = CONTAINING_RECORD(chunk, iocpi_cached_chunk, chunk);
    InterlockedDecrement64(&e->counters.heap_chunks);
    if (InterlockedIncrement(&e->cached_chunks) <= CHUNK_CACHE_MAX) {
        InterlockedPushEntrySList(&e->chunk_cache, &cc->entry);
        return;
    }
    InterlockedDecrement(&e->cached_chunks);
    _aligned_free(cc);
}
