/*
 * pool.c: the preallocated connection contexts and the buffer slab (the .NET
 * SocketAsyncEventArgsPool and BufferManager), and the cache of overflow send chunks.
 *
 * At start: one array of max_connections contexts and one slab of 2 x buffer_size per
 * context (a receive buffer and a send chunk), both from VirtualAlloc, both held until
 * destroy. Pages are touched as they are used, so idle capacity costs address space only. Free
 * contexts sit on a lock-free SLIST. A send queue longer than one buffer borrows buffer_size chunks
 * from the heap; they are recycled through a second SLIST, so a busy server stops allocating once
 * warm.
 */
#include "iocpi.h"

/* Chunks kept for reuse at most: enough for bursts, bounded so a spike does not pin memory. */
#define CHUNK_CACHE_MAX 1024

iocp_err iocpi_pool_init(iocp_engine *e, iocp_error_info *err)
{
    uint32_t n = e->config.max_connections;
    size_t buf = e->config.buffer_size;
    e->conns =
        VirtualAlloc(NULL, (SIZE_T)n * sizeof(iocp_conn), MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    e->slab_size = (size_t)n * 2 * buf;
    e->slab = VirtualAlloc(NULL, e->slab_size, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (e->conns == NULL || e->slab == NULL) {
        DWORD sys = GetLastError();
        iocpi_error_set(err, IOCP_E_NO_MEMORY, sys,
                        "cannot allocate %lu contexts and a %llu-byte buffer slab",
                        (unsigned long)n, (unsigned long long)e->slab_size);
        return IOCP_E_NO_MEMORY;
    }
    InitializeSListHead(&e->free_conns);
    InitializeSListHead(&e->chunk_cache);
    /* Pushed in reverse so the pool hands out index 0 first: easier to read in a debugger. */
    for (uint32_t i = n; i-- > 0;) {
        iocp_conn *c = &e->conns[i];
        iocpi_conn_init(c, e, i, e->slab + (size_t)i * 2 * buf);
        iocpi_dialer_init(c);
        InterlockedPushEntrySList(&e->free_conns, &c->pool_entry);
    }
    return IOCP_OK;
}

void iocpi_pool_fini(iocp_engine *e)
{
    if (e->lost_ops) {
        /* An operation may still complete into a context and its buffer: keep them. */
        e->conns = NULL;
        e->slab = NULL;
    }
    if (e->conns != NULL) {
        for (uint32_t i = 0; i < e->config.max_connections; i++)
            iocpi_conn_fini(&e->conns[i]);
        VirtualFree(e->conns, 0, MEM_RELEASE);
    }
    if (e->slab != NULL)
        VirtualFree(e->slab, 0, MEM_RELEASE);
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
    InterlockedPushEntrySList(&e->free_conns, &c->pool_entry);
    InterlockedDecrement64(&e->counters.contexts_in_use);
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
