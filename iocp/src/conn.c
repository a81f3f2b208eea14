/*
 * conn.c: one connection's life: open, the receive chain, the send queue, close, release.
 *
 * References: an open connection holds one reference for itself (dropped when its socket is
 * closed) and one for its receive chain (a posted WSARecv, a resume packet, or its place on
 * the pool's wait list); each posted WSASend holds one more. When the count reaches zero a
 * final packet goes to the port, and a worker calls on_close and returns the context to the
 * pool: exactly once, only after every operation has completed, and never from inside a
 * caller's send or close.
 *
 * The lock guards state, socket and send queue. User callbacks never run under it, so a
 * handler may send or close freely; they are serialised by the receive chain (one WSARecv at
 * a time) and by the final packet.
 *
 * The receive buffer comes from the engine's pool (pool.c) and is held only while the
 * connection is active: the sweep cancels the receive of a connection quiet for
 * idle_receive_ms, whose completion gives the buffer back, and the connection then waits with
 * a zero-byte receive; when that completes (data, the FIN, or nothing: it cannot say which) a
 * real receive into a fresh buffer follows at once and tells. With the pool at its cap, a
 * connection with data waiting parks its receive chain on the pool's wait list.
 *
 * TLS (tls.h) sits between the socket and the framing: the receive chain hands ciphertext to
 * the session, which decrypts records in place in the receive buffer, and the plaintext goes
 * on exactly as a plaintext read would; an incomplete record stays at the front of the buffer
 * for the next read. Sends are encrypted when they are queued, under the lock, so records go
 * out in queue order; handshake messages and alerts join the same queue, so the cap,
 * backpressure and the lingering close hold for them too. A TLS connection is announced
 * (on_open) only once its handshake is done.
 */
#include "tls.h"

/* A graceful close waits this long for the peer to take the queued bytes (no idle timeout). */
#define DEFAULT_CLOSE_LINGER_MS 30000
/* Once our FIN is out, this long for the peer's (see finish_graceful_locked). */
#define LINGER_READ_MS 5000
/* A peer that sent nothing for this long is not lingered for (see finish_graceful_locked). */
#define LINGER_QUIET_MS 1000

static void recv_done(iocpi_op *op, DWORD bytes, DWORD error);
static void send_done(iocpi_op *op, DWORD bytes, DWORD error);
static void resume_done(iocpi_op *op, DWORD bytes, DWORD error);
static void final_done(iocpi_op *op, DWORD bytes, DWORD error);
static int queue_bytes_locked(iocp_conn *c, const void *const *parts, const size_t *lens,
                              int nparts);
static void send_pump_locked(iocp_conn *c);

/* Milliseconds from then to now; 0 when then is later (a worker stamped the connection after
 * the sweep read the clock: unsigned wrap-around would make it look idle for ages). */
static uint64_t elapsed(uint64_t now, LONG64 then)
{
    return (uint64_t)then < now ? now - (uint64_t)then : 0;
}

void iocpi_conn_ref(iocp_conn *c)
{
    InterlockedIncrement(&c->refs);
}

/* Safe under the lock: the release itself is always posted, never run inline. */
void iocpi_conn_unref(iocp_conn *c)
{
    if (InterlockedDecrement(&c->refs) == 0)
        iocpi_post(c->engine, &c->final_op);
}

/* The same, for a worker at the end of a completion, holding no lock and inside no user
 * call: the release runs right here, saving a trip through the port. */
static void unref_on_worker(iocp_conn *c)
{
    if (InterlockedDecrement(&c->refs) == 0)
        final_done(&c->final_op, 0, 0);
}

static iocp_conn_id conn_id(const iocp_conn *c)
{
    return ((uint64_t)(uint32_t)c->generation << 32) | c->index;
}

/* ---- closing --------------------------------------------------------------------------- */

/* Closes the socket; the caller drops the connection's own reference after unlocking.
 * Entered from CONN_CLOSING with the lock held. */
static void teardown_locked(iocp_conn *c)
{
    /* closesocket cancels a pending receive by itself (Windows: 995; Wine: 676). A pending
     * WSASend needs CancelIoEx first: under Wine, towards a peer that does not read, it would
     * otherwise keep the socket alive until the peer drains. */
    if (c->send_pending)
        CancelIoEx((HANDLE)c->sock, NULL);
    iocpi_close_socket(c->sock, !c->close_graceful);
    c->sock = INVALID_SOCKET;
    c->state = CONN_CLOSED;
    /* A receive chain waiting for a pool buffer stops waiting: it ends now. */
    if (c->pool_waiting && iocpi_buffer_unwait(c->engine, c))
        iocpi_post(c->engine, &c->resume_op);
}

/* Whether the peer may still be sending: it sent something in the last LINGER_QUIET_MS
 * (the receive chain stamps what it discards while the queue drains too), or backpressure
 * stopped our reading, so whatever it sent since waits unread. nginx's lingering_close
 * makes the same guess: a peer quiet that long (or silent from the start, or idle for the
 * idle timeout) is not in the middle of a message, and waiting for its FIN would only hold a
 * stop back (an interactive client waits on its user, not us). Under the lock. */
static int peer_may_be_sending(const iocp_conn *c)
{
    LONG64 last = c->last_recv_ms;
    return c->recv_paused || (last != 0 && elapsed(iocpi_now_ms(), last) < LINGER_QUIET_MS);
}

/* A graceful close whose queue is empty. If the peer may still be sending, our FIN goes out
 * now (shutdown SD_SEND) and the receive chain goes on reading and discarding until the
 * peer's FIN, for LINGER_READ_MS at most: closing a socket that has unread bytes, or that
 * receives some afterwards, makes the system reset the connection, and a reset can destroy
 * replies the peer has not read yet. Otherwise closesocket sends the FIN at once. Returns 1
 * when the socket was closed (drop the open reference). */
static int finish_graceful_locked(iocp_conn *c)
{
    if (c->lingering)
        return 0; /* the receive chain ends it */
    if (!c->peer_closed && peer_may_be_sending(c) && shutdown(c->sock, SD_SEND) == 0) {
        c->lingering = 1;
        c->closing_since_ms = (LONG64)iocpi_now_ms();
        if (c->recv_paused) {
            /* Backpressure had stopped the receive chain: reading is all that is left. */
            c->recv_paused = 0;
            iocpi_conn_ref(c);
            iocpi_post(c->engine, &c->resume_op);
        }
        return 0;
    }
    teardown_locked(c);
    return 1;
}

/* Returns 1 when the socket was closed and the caller must drop the open reference. */
static int close_locked(iocp_conn *c, iocp_close_reason reason, DWORD sys, iocp_close_mode how)
{
    if (c->state == CONN_OPEN) {
        c->state = CONN_CLOSING;
        c->close_reason = reason;
        c->close_sys = sys;
        c->close_graceful = how == IOCP_GRACEFUL;
        c->closing_since_ms = (LONG64)iocpi_now_ms();
        InterlockedDecrement64(&c->engine->counters.active);
    } else if (c->state == CONN_CLOSING && how == IOCP_ABORT && c->close_graceful) {
        c->close_graceful = 0; /* escalate: stop waiting for the queue to drain */
    } else {
        return 0;
    }
    if (c->close_graceful) {
        /* TLS: close_notify goes last in the queue, so the peer knows nothing was cut off. */
        if (c->tls != NULL && c->tls->established && !c->tls->shut_down &&
            iocpi_tls_shutdown(c->tls) == 0 && c->tls->out_len > 0) {
            const void *parts[1] = {c->tls->out};
            size_t lens[1] = {c->tls->out_len};
            int rc = queue_bytes_locked(c, parts, lens, 1);
            iocpi_tls_output_taken(c->tls);
            if (rc != 0)
                return 0; /* closed abortively by queue_bytes_locked, reference dropped */
            if (!c->send_pending)
                send_pump_locked(c);
            if (c->state == CONN_CLOSED)
                return 0; /* the send failed and closed it */
        }
        if (c->send_pending || c->queued > 0)
            return 0; /* send_done finishes the close once the queue is empty */
        return finish_graceful_locked(c);
    }
    teardown_locked(c);
    return 1;
}

void iocpi_conn_close(iocp_conn *c, iocp_close_reason reason, DWORD sys, iocp_close_mode how)
{
    AcquireSRWLockExclusive(&c->lock);
    int drop = close_locked(c, reason, sys, how);
    ReleaseSRWLockExclusive(&c->lock);
    if (drop)
        iocpi_conn_unref(c);
}

static iocp_close_reason reason_for_error(DWORD error)
{
    return iocp_err_from_sys(error) == IOCP_E_RESET ? IOCP_CLOSE_RESET : IOCP_CLOSE_ERROR;
}

/* ---- the send queue -------------------------------------------------------------------- */

/* Drops n bytes (sent, or abandoned when sent = 0) from the head of the queue, recycling
 * emptied chunks. */
static void consume_locked(iocp_conn *c, size_t n, int sent)
{
    iocp_engine *e = c->engine;
    InterlockedAdd64(&e->counters.bytes_queued, -(LONG64)n);
    if (sent)
        InterlockedAdd64(&e->counters.bytes_out, (LONG64)n);
    c->queued -= n;
    if (c->queued == 0)
        c->send_stalled_ms = 0;
    else if (sent && n > 0)
        c->send_stalled_ms = (LONG64)iocpi_now_ms(); /* the peer took some: a new window */
    while (n > 0 && c->send_head != NULL) {
        iocpi_chunk *h = c->send_head;
        size_t take = h->len - h->off < n ? h->len - h->off : n;
        h->off += take;
        n -= take;
        if (h->off < h->len)
            break;
        c->send_head = h->next;
        if (c->send_head == NULL)
            c->send_tail = NULL;
        h->next = NULL;
        h->off = h->len = 0;
        if (h->kind == CHUNK_SMALL)
            c->small_busy = 0;
        else
            iocpi_chunk_return(e, h);
    }
}

static void drop_queue_locked(iocp_conn *c)
{
    if (c->queued > 0)
        consume_locked(c, c->queued, 0);
}

/* Posts WSASend over the queued chunks, looping while sends complete at once. Entered with
 * the lock held, state OPEN or CLOSING, no send pending. */
static void send_pump_locked(iocp_conn *c)
{
    iocp_engine *e = c->engine;
    for (;;) {
        DWORD nbufs = 0;
        for (iocpi_chunk *ch = c->send_head; ch != NULL && nbufs < IOCPI_SEND_BUFS; ch = ch->next) {
            if (ch->len > ch->off) {
                c->send_bufs[nbufs].buf = (char *)ch->data + ch->off;
                c->send_bufs[nbufs].len = (ULONG)(ch->len - ch->off);
                nbufs++;
            }
        }
        if (nbufs == 0)
            return;
        c->send_pending = 1;
        iocpi_conn_ref(c);
        memset(&c->send_op.ov, 0, sizeof c->send_op.ov);
        InterlockedIncrement64(&e->counters.ops_in_flight);
        DWORD sent = 0;
        int rc = IOCPI_WSASEND(e, c->sock, c->send_bufs, nbufs, &sent, 0, &c->send_op.ov);
        DWORD error = rc == 0 ? 0 : (DWORD)WSAGetLastError();
        if (error == WSA_IO_PENDING || (rc == 0 && !e->skip_on_success))
            return; /* the completion packet finishes it */
        /* Finished at once, and no packet will come. The open reference is held (we are
         * OPEN or CLOSING under the lock), so this cannot be the last one. */
        InterlockedDecrement64(&e->counters.ops_in_flight);
        InterlockedDecrement(&c->refs);
        c->send_pending = 0;
        if (error != 0) {
            drop_queue_locked(c);
            if (close_locked(c, reason_for_error(error), error, IOCP_ABORT))
                iocpi_conn_unref(c); /* may be the last: the release is posted */
            return;
        }
        c->last_activity_ms = (LONG64)iocpi_now_ms();
        consume_locked(c, sent, 1);
    }
}

/* Appends bytes to the queue's chunks (the caller checked the cap). Returns -1 when no chunk
 * could be had: the connection is closed then (part of a message may be queued). */
static int queue_bytes_locked(iocp_conn *c, const void *const *parts, const size_t *lens,
                              int nparts)
{
    iocp_engine *e = c->engine;
    size_t total = 0;
    for (int i = 0; i < nparts; i++)
        total += lens[i];
    if (total == 0)
        return 0;
    if (c->queued == 0)
        c->send_stalled_ms = (LONG64)iocpi_now_ms(); /* see iocpi_conn_sweep */
    for (int i = 0; i < nparts; i++) {
        const uint8_t *p = parts[i];
        size_t left = lens[i];
        while (left > 0) {
            iocpi_chunk *t = c->send_tail;
            if (t == NULL || t->len == t->cap) {
                iocpi_chunk *n;
                if (!c->small_busy) {
                    n = &c->small_chunk;
                    c->small_busy = 1;
                } else {
                    n = iocpi_chunk_take(e);
                }
                if (n == NULL) {
                    /* Part of a message is queued: the stream is broken, so end it. */
                    drop_queue_locked(c);
                    if (close_locked(c, IOCP_CLOSE_ERROR, ERROR_NOT_ENOUGH_MEMORY, IOCP_ABORT))
                        iocpi_conn_unref(c);
                    return -1;
                }
                if (t == NULL)
                    c->send_head = n;
                else
                    t->next = n;
                c->send_tail = t = n;
            }
            size_t room = t->cap - t->len;
            size_t take = left < room ? left : room;
            memcpy(t->data + t->len, p, take);
            t->len += take;
            c->queued += take;
            p += take;
            left -= take;
        }
    }
    InterlockedAdd64(&e->counters.bytes_queued, (LONG64)total);
    return 0;
}

/* TLS: what the session made to send (handshake messages, alerts, close_notify) joins the
 * queue as it is, and sending starts. Returns -1 when the connection was closed for it. */
static int queue_tls_output_locked(iocp_conn *c)
{
    iocpi_tls *t = c->tls;
    if (t == NULL || t->out_len == 0)
        return 0;
    const void *parts[1] = {t->out};
    size_t lens[1] = {t->out_len};
    int rc = queue_bytes_locked(c, parts, lens, 1);
    iocpi_tls_output_taken(t);
    if (rc == 0 && !c->send_pending && c->sock != INVALID_SOCKET)
        send_pump_locked(c);
    return rc;
}

/* One record's worth of scratch per thread: plaintext is gathered at the record's data
 * offset, encrypted in place, and the record queued. */
#define TLS_SCRATCH (IOCP_TLS_MIN_BUFFER + 2048)
static _Thread_local uint8_t tls_scratch[TLS_SCRATCH];

/* TLS: parts become records of at most one maximum record each, in order. */
static int queue_encrypted_locked(iocp_conn *c, const void *const *parts, const size_t *lens,
                                  size_t total)
{
    iocpi_tls *t = c->tls;
    size_t header = t->sizes.cbHeader, overhead = iocpi_tls_overhead(t);
    size_t max = iocpi_tls_max_record(t);
    if (max > TLS_SCRATCH - overhead)
        max = TLS_SCRATCH - overhead;
    int part = 0;
    size_t part_off = 0;
    while (total > 0) {
        size_t n = total < max ? total : max, filled = 0;
        while (filled < n) {
            size_t take = lens[part] - part_off;
            if (take > n - filled)
                take = n - filled;
            memcpy(tls_scratch + header + filled, (const uint8_t *)parts[part] + part_off, take);
            filled += take;
            part_off += take;
            if (part_off == lens[part]) {
                part++;
                part_off = 0;
            }
        }
        size_t record = 0;
        if (iocpi_tls_encrypt(t, tls_scratch + header, n, (char *)tls_scratch, &record) != 0) {
            iocpi_log_later(c->engine, IOCP_LOG_WARN, "%s: %s; closing it", c->peer, t->err);
            drop_queue_locked(c);
            if (close_locked(c, IOCP_CLOSE_ERROR, (DWORD)t->status, IOCP_ABORT))
                iocpi_conn_unref(c);
            return -1;
        }
        const void *rp[1] = {tls_scratch};
        size_t rl[1] = {record};
        if (queue_bytes_locked(c, rp, rl, 1) != 0)
            return -1;
        total -= n;
    }
    return 0;
}

/* Appends parts to the queue as one unit (all or nothing) and starts sending. */
static iocp_err send_parts_locked(iocp_conn *c, const void *const *parts, const size_t *lens,
                                  int nparts)
{
    iocp_engine *e = c->engine;
    if (c->state != CONN_OPEN || (c->tls != NULL && !c->tls->established) || c->proxy_pending)
        return IOCP_E_NOT_CONNECTED; /* not announced yet: nothing may reach it */
    size_t total = 0;
    for (int i = 0; i < nparts; i++)
        total += lens[i];
    /* With TLS the queue holds records: the plaintext plus each record's header and trailer. */
    size_t wire = total;
    if (c->tls != NULL && total > 0)
        wire += (total / iocpi_tls_max_record(c->tls) + 1) * iocpi_tls_overhead(c->tls);
    if (wire > e->config.send_queue_cap || c->queued > e->config.send_queue_cap - wire)
        return IOCP_E_QUEUE_FULL;
    if (total == 0)
        return IOCP_OK;
    int rc = c->tls != NULL ? queue_encrypted_locked(c, parts, lens, total)
                            : queue_bytes_locked(c, parts, lens, nparts);
    if (rc != 0)
        return IOCP_E_NO_MEMORY;
    InterlockedIncrement64(&e->counters.messages_out);
    if (!c->send_pending)
        send_pump_locked(c);
    return IOCP_OK;
}

static iocp_err send_message_locked(iocp_conn *c, const void *data, size_t len)
{
    iocp_engine *e = c->engine;
    iocp_framing mode = e->config.framing;
    if (iocp_frame_check(mode, data, len, mode == IOCP_FRAMING_RAW ? 0 : e->config.max_message))
        return IOCP_E_INVALID_ARG;
    uint8_t prefix[IOCP_LENGTH_HEADER_SIZE];
    size_t suffix_len = 0;
    const void *parts[3];
    size_t lens[3];
    parts[0] = prefix;
    lens[0] = iocp_frame_prefix(mode, len, prefix);
    parts[1] = data;
    lens[1] = len;
    parts[2] = iocp_frame_suffix(mode, &suffix_len);
    lens[2] = suffix_len;
    return send_parts_locked(c, parts, lens, 3);
}

/* Entered from a posted WSASend's completion: OPEN, CLOSING or CLOSED (cancelled). */
static void send_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    iocp_conn *c = CONTAINING_RECORD(op, iocp_conn, send_op);
    iocp_engine *e = c->engine;
    int drop = 0;
    AcquireSRWLockExclusive(&c->lock);
    IOCPI_ASSERT(c->state == CONN_OPEN || c->state == CONN_CLOSING || c->state == CONN_CLOSED);
    IOCPI_ASSERT(c->send_pending && c->refs >= 1);
    c->send_pending = 0;
    if (error != 0 || c->state == CONN_CLOSED) {
        drop_queue_locked(c);
        drop = close_locked(c, reason_for_error(error), error, IOCP_ABORT);
    } else {
        c->last_activity_ms = (LONG64)iocpi_now_ms();
        consume_locked(c, bytes, 1);
        if (c->queued > 0)
            send_pump_locked(c);
        if (c->state == CONN_CLOSING && c->close_graceful && !c->send_pending && c->queued == 0) {
            drop = finish_graceful_locked(c);
        } else if (c->state == CONN_OPEN && c->recv_paused && c->queued <= e->low_mark) {
            /* Backpressure over: the receive chain restarts on a worker of its own turn. */
            c->recv_paused = 0;
            iocpi_conn_ref(c);
            iocpi_post(e, &c->resume_op);
        }
    }
    ReleaseSRWLockExclusive(&c->lock);
    if (drop)
        unref_on_worker(c);
    unref_on_worker(c);
}

/* ---- the receive chain ----------------------------------------------------------------- */

typedef struct deliver_ctx {
    iocp_conn *conn;
} deliver_ctx;

static int deliver_message(void *user, const uint8_t *msg, size_t len)
{
    iocp_conn *c = ((deliver_ctx *)user)->conn;
    InterlockedIncrement64(&c->engine->counters.messages_in);
    c->engine->handlers.on_data(c, msg, len);
    /* A handler that closed the connection wants no more of its messages. */
    return c->state != CONN_OPEN;
}

/* Whether the receive chain goes on: while open, and through a graceful close (see
 * finish_graceful_locked; its send queue cannot grow any more). Read without the lock:
 * start_recv looks again under it. */
static int keeps_reading(const iocp_conn *c)
{
    return c->state == CONN_OPEN || (c->state == CONN_CLOSING && c->close_graceful);
}

/* The peer's FIN (or a receive error while closing gracefully): nothing more will come. An
 * open connection closes gracefully (what we owe the peer is flushed first); a lingering
 * close is over. Decided under the lock: the state may have changed since the receive chain
 * looked at it (a close from another thread). Returns 1 when the socket was closed. */
static int peer_finished_locked(iocp_conn *c)
{
    c->peer_closed = 1;
    if (c->state == CONN_OPEN)
        return close_locked(c, IOCP_CLOSE_PEER, 0, IOCP_GRACEFUL);
    if (c->state == CONN_CLOSING && c->lingering) {
        teardown_locked(c);
        return 1;
    }
    return 0; /* abortive, or still flushing: send_done closes once the queue is empty */
}

/* A receive finished while the connection closes gracefully: its data is not wanted (the
 * close said so), but the chain reads on until the peer's FIN, which ends a lingering close.
 * Returns 1 to post the next one. */
static int recv_while_closing(iocp_conn *c, DWORD bytes, DWORD error)
{
    int more = 0, drop = 0;
    AcquireSRWLockExclusive(&c->lock);
    if (c->state == CONN_CLOSING && c->close_graceful) {
        if (error == 0 && bytes > 0) {
            c->last_recv_ms = (LONG64)iocpi_now_ms(); /* still sending: see peer_may_be_sending */
            more = 1;
        } else {
            drop = peer_finished_locked(c);
        }
    }
    ReleaseSRWLockExclusive(&c->lock);
    if (drop)
        iocpi_conn_unref(c); /* not the last: the receive chain still holds one */
    return more;
}

/* Plaintext from the peer (a read, or a decrypted record) to the handler: as it is, or
 * through the decoder. Afterwards the caller looks at the state (a handler may have closed). */
static void deliver_plain(iocp_conn *c, const uint8_t *data, size_t len, uint64_t now)
{
    iocp_engine *e = c->engine;
    if (e->config.framing == IOCP_FRAMING_RAW) {
        InterlockedIncrement64(&e->counters.messages_in);
        e->handlers.on_data(c, data, len);
        return;
    }
    deliver_ctx ctx = {c};
    uint64_t allocs = c->decoder.allocations;
    iocp_frame_status st = iocp_decoder_feed(&c->decoder, data, len, deliver_message, &ctx);
    if (c->decoder.allocations != allocs)
        InterlockedAdd64(&e->counters.allocations, (LONG64)(c->decoder.allocations - allocs));
    if (st != IOCP_FRAME_OK && st != IOCP_FRAME_STOPPED) {
        InterlockedIncrement64(&e->counters.protocol_errors);
        iocpi_log(e, IOCP_LOG_WARN, "protocol error from %s: %s; closing it", c->peer,
                  c->decoder.error);
        iocpi_conn_close(c, IOCP_CLOSE_PROTOCOL, 0, IOCP_GRACEFUL);
        return;
    }
    if (!iocp_decoder_in_message(&c->decoder))
        c->message_started_ms = 0;
    else if (c->message_started_ms == 0)
        c->message_started_ms = (LONG64)now;
}

/* The peer's FIN, or its TLS close_notify, on an open connection. */
static void peer_finished(iocp_conn *c)
{
    if (iocp_decoder_finish(&c->decoder) != IOCP_FRAME_OK)
        iocpi_log(c->engine, IOCP_LOG_DEBUG, "%s closed in the middle of a message", c->peer);
    AcquireSRWLockExclusive(&c->lock);
    int drop = peer_finished_locked(c);
    ReleaseSRWLockExclusive(&c->lock);
    if (drop)
        iocpi_conn_unref(c);
}

/* TLS: queues what the session made to send. */
static void send_tls_output(iocp_conn *c)
{
    if (c->tls->out_len == 0)
        return;
    AcquireSRWLockExclusive(&c->lock);
    if (c->state == CONN_OPEN || c->state == CONN_CLOSING)
        queue_tls_output_locked(c);
    else
        iocpi_tls_output_taken(c->tls);
    ReleaseSRWLockExclusive(&c->lock);
}

/* TLS: the handshake is done: the connection is announced, as a plaintext one is at open. */
static void tls_established(iocp_conn *c)
{
    iocp_engine *e = c->engine;
    char what[80];
    InterlockedIncrement64(&e->counters.tls_handshakes);
    if (e->config.log_level >= IOCP_LOG_DEBUG) {
        iocpi_tls_describe(c->tls, what, sizeof what);
        iocpi_log(e, IOCP_LOG_DEBUG, "%s: %s%s%s", c->peer, what,
                  c->tls->peer_subject[0] ? ", peer certificate " : "", c->tls->peer_subject);
    }
    if (c->tls->creds->server && c->tls->creds->extra_ca != NULL)
        iocpi_log(e, IOCP_LOG_INFO, "%s: client certificate %s", c->peer, c->tls->peer_subject);
    if (e->stopping) {
        iocpi_conn_close(c, IOCP_CLOSE_STOP, 0, IOCP_ABORT);
        return;
    }
    c->announced = 1;
    if (e->handlers.on_open != NULL)
        e->handlers.on_open(c);
}

/* TLS: a handshake that failed or a record that did not decrypt. An alert the session made
 * goes out first (a graceful close flushes it); a handshake failure is never announced. */
static void tls_failed(iocp_conn *c)
{
    iocp_engine *e = c->engine;
    int handshake = !c->announced;
    if (handshake)
        InterlockedIncrement64(&e->counters.tls_handshake_failures);
    if (handshake && c->tls->below_floor)
        InterlockedIncrement64(&e->counters.tls_below_floor);
    if (!handshake)
        InterlockedIncrement64(&e->counters.protocol_errors);
    iocpi_log(e, handshake ? IOCP_LOG_INFO : IOCP_LOG_WARN, "%s: %s; closing it", c->peer,
              c->tls->err);
    send_tls_output(c);
    iocpi_conn_close(c, handshake ? IOCP_CLOSE_HANDSHAKE : IOCP_CLOSE_PROTOCOL,
                     (DWORD)c->tls->status, IOCP_GRACEFUL);
}

/* TLS: recv_buf[0 .. tls_kept + bytes) holds ciphertext. Each record is decrypted in place
 * and its plaintext delivered; an incomplete record's bytes move to the front for the next
 * read. */
static void tls_receive(iocp_conn *c, DWORD bytes, uint64_t now)
{
    iocpi_tls *t = c->tls;
    size_t len = c->tls_kept + bytes, pos = 0;
    c->tls_kept = 0;
    while (c->state == CONN_OPEN) {
        size_t used = 0, n = 0;
        char *plain = NULL;
        int was_established = t->established;
        /* Under the lock: a send encrypts with the same context, and a close may append
         * close_notify to the same output, from another thread. One SSPI call at a time per
         * context, whatever an implementation promises about concurrent ones. The peer's
         * certificate is validated inside this call, so validation must not block: the chain
         * is built from the cache only (CERT_CHAIN_CACHE_ONLY_URL_RETRIEVAL, no fetch of a
         * missing issuer or a CRL; tls.c), which costs CPU time bounded by the chain. */
        AcquireSRWLockExclusive(&c->lock);
        iocpi_tls_status r =
            iocpi_tls_input(t, (char *)c->recv_buf + pos, len - pos, &used, &plain, &n);
        if (r != IOCPI_TLS_FAILED && (c->state == CONN_OPEN || c->state == CONN_CLOSING))
            queue_tls_output_locked(c);
        ReleaseSRWLockExclusive(&c->lock);
        pos += used;
        if (r == IOCPI_TLS_FAILED) {
            tls_failed(c);
            return;
        }
        if (r == IOCPI_TLS_CLOSED) {
            peer_finished(c);
            return;
        }
        if (r == IOCPI_TLS_DATA)
            deliver_plain(c, (const uint8_t *)plain, n, now);
        if (!was_established && t->established)
            tls_established(c);
        if (r == IOCPI_TLS_NEED_MORE || pos == len)
            break;
    }
    if (c->state != CONN_OPEN || pos == len)
        return;
    size_t keep = len - pos;
    if (keep >= c->engine->config.buffer_size) {
        /* A record larger than the buffer: not one a TLS peer sends. */
        snprintf(t->err, sizeof t->err, "a TLS record larger than %lu bytes",
                 (unsigned long)c->engine->config.buffer_size);
        t->status = SEC_E_ILLEGAL_MESSAGE;
        tls_failed(c);
        return;
    }
    memmove(c->recv_buf, c->recv_buf + pos, keep);
    c->tls_kept = keep;
}

/* PROXY protocol: recv_buf[0 .. bytes) are among the first bytes of a connection from a
 * trusted balancer, which begin with its header (proxy_conn.c). Once the header is complete
 * the connection is announced as a plaintext one is at open (a TLS one after its handshake,
 * which starts with the bytes that follow); those bytes move to the front of the buffer.
 * Returns how many there are: 0 when the header is not complete yet, or the connection was
 * closed (a bad header, the per-address limit, a handler's on_open). */
static DWORD proxy_receive(iocp_conn *c, DWORD bytes)
{
    iocp_engine *e = c->engine;
    size_t used = 0;
    if (iocpi_proxy_header(c, c->recv_buf, bytes, &used) <= 0)
        return 0;
    c->opened_ms = (LONG64)iocpi_now_ms(); /* a TLS handshake's deadline starts now */
    if (c->tls == NULL) {
        if (e->stopping) {
            iocpi_conn_close(c, IOCP_CLOSE_STOP, 0, IOCP_ABORT);
            return 0;
        }
        c->announced = 1;
        if (e->handlers.on_open != NULL)
            e->handlers.on_open(c);
    }
    if (c->state != CONN_OPEN || used == bytes)
        return 0;
    memmove(c->recv_buf, c->recv_buf + used, bytes - used);
    return bytes - (DWORD)used;
}

/* The sweep cancelled a quiet connection's receive (error 995 and no bytes: had data come
 * first, the receive would have completed with it instead). Its buffer goes back to the pool
 * and it waits with a zero-byte receive, unless a TLS record's first bytes are kept in it. */
static void recv_go_idle(iocp_conn *c)
{
    AcquireSRWLockExclusive(&c->lock);
    c->recv_cancel = 0;
    if (c->tls_kept == 0 && c->recv_buf != NULL) {
        iocpi_buffer_return(c->engine, c->recv_buf);
        c->recv_buf = NULL;
        c->recv_idle = 1;
    }
    ReleaseSRWLockExclusive(&c->lock);
}

/* Handles one finished receive. Returns 0 when the chain ends, 1 to post the next receive
 * after the worker's round, 2 to post it now. */
static int recv_handle(iocp_conn *c, DWORD bytes, DWORD error)
{
    iocp_engine *e = c->engine;
    if (c->recv_zero) {
        c->recv_zero = 0;
        InterlockedDecrement64(&e->counters.idle_receives);
        if (error == 0) {
            /* Data, the peer's FIN, or nothing after all: a zero-byte receive completes with 0
             * bytes for each. The receive that follows, into a buffer, tells them apart (it
             * completes at once with the data, or with 0 bytes at the FIN). */
            c->recv_idle = 0;
            c->recv_ready = 1;
            return 2;
        }
        /* An error (a reset, the socket closed): handled below as any receive's. */
    } else if (error == ERROR_OPERATION_ABORTED && bytes == 0 && c->recv_cancel &&
               keeps_reading(c)) {
        /* (A graceful close since the cancel reads on, with a zero-byte receive.) */
        recv_go_idle(c);
        return 2;
    }
    if (c->state != CONN_OPEN)
        return recv_while_closing(c, bytes, error);
    if (error != 0) {
        iocpi_conn_close(c, reason_for_error(error), error, IOCP_ABORT);
        return 0;
    }
    if (bytes == 0) {
        if (c->proxy_pending)
            iocpi_proxy_closed_early(c, "closed before its PROXY header was complete");
        /* The peer shut down its side: flush what we owe it, then close. A TLS peer that
         * did so without close_notify may have been cut off: logged, then the same. */
        if (c->tls != NULL && c->tls->established)
            iocpi_log(e, IOCP_LOG_DEBUG, "%s ended TLS without close_notify", c->peer);
        peer_finished(c);
        return 0;
    }
    uint64_t now = iocpi_now_ms();
    c->last_activity_ms = c->last_recv_ms = (LONG64)now;
    InterlockedAdd64(&e->counters.bytes_in, bytes);
    if (c->proxy_pending && (bytes = proxy_receive(c, bytes)) == 0)
        return keeps_reading(c);
    if (c->tls != NULL)
        tls_receive(c, bytes, now);
    else
        deliver_plain(c, c->recv_buf, bytes, now);
    return keeps_reading(c); /* a handler's graceful close reads on to the peer's FIN */
}

/* Posts the next receive, unless the connection stops or backpressure pauses it. The caller
 * holds the receive chain's reference; this passes it on to the posted WSARecv, or drops it.
 * Returns 1 when the receive completed at once with *got bytes (no packet will come): the
 * caller still holds the reference and must handle them. Workers only. */
static int start_recv(iocp_conn *c, DWORD *got)
{
    iocp_engine *e = c->engine;
    AcquireSRWLockExclusive(&c->lock);
    if (!keeps_reading(c)) {
        ReleaseSRWLockExclusive(&c->lock);
        unref_on_worker(c);
        return 0;
    }
    c->recv_pending = c->recv_cancel = 0;
    if (c->state == CONN_OPEN && c->queued >= e->high_mark) {
        c->recv_paused = 1; /* send_done resumes below the low mark */
        if (c->recv_buf != NULL && c->tls_kept == 0) {
            iocpi_buffer_return(e, c->recv_buf); /* not needed while paused */
            c->recv_buf = NULL;
        }
        ReleaseSRWLockExclusive(&c->lock);
        unref_on_worker(c);
        return 0;
    }
    /* Connections wait for the pool: the buffer goes to one of them unless this one needs
     * it now (a zero-byte receive said data is waiting, or TLS bytes are kept in it). */
    if (c->recv_buf != NULL && e->buffers.waiters > 0 && !c->recv_ready && c->tls_kept == 0) {
        iocpi_buffer_return(e, c->recv_buf);
        c->recv_buf = NULL;
    }
    int zero = 0;
    if (c->recv_buf == NULL) {
        if (c->recv_idle && !c->recv_ready) {
            zero = 1; /* quiet: no buffer until something comes */
        } else if ((c->recv_buf = iocpi_buffer_take(e, c->recv_ready ? c : NULL)) == NULL) {
            if (c->recv_ready) {
                /* Data waits in the socket and the pool is at its cap: the chain (and its
                 * reference) waits on the pool's list, which hands over the next buffer
                 * returned and posts resume_op. */
                ReleaseSRWLockExclusive(&c->lock);
                return 0;
            }
            zero = 1; /* at the cap: wait for data without a buffer */
        }
    }
    WSABUF buf;
    if (zero) {
        buf.buf = (char *)c->small_data; /* any address: nothing is written */
        buf.len = 0;
        InterlockedIncrement64(&e->counters.idle_receives);
    } else {
        buf.buf = (char *)c->recv_buf + c->tls_kept; /* after an incomplete TLS record */
        buf.len = e->config.buffer_size - (ULONG)c->tls_kept;
        c->recv_ready = 0;
    }
    c->recv_zero = zero;
    DWORD flags = 0;
    *got = 0;
    memset(&c->recv_op.ov, 0, sizeof c->recv_op.ov);
    InterlockedIncrement64(&e->counters.ops_in_flight);
    int rc = IOCPI_WSARECV(e, c->sock, &buf, 1, got, &flags, &c->recv_op.ov);
    DWORD error = rc == 0 ? 0 : (DWORD)WSAGetLastError();
    if (error == WSA_IO_PENDING || (rc == 0 && !e->skip_on_success)) {
        c->recv_pending = !zero; /* the sweep may cancel it once the connection is quiet */
        ReleaseSRWLockExclusive(&c->lock);
        return 0;
    }
    ReleaseSRWLockExclusive(&c->lock);
    InterlockedDecrement64(&e->counters.ops_in_flight);
    if (error != 0) {
        recv_handle(c, 0, error); /* closes it */
        unref_on_worker(c);
        return 0;
    }
    return 1;
}

/* The next receive of a handled connection. One that completes at once waits for this
 * connection's turn in the worker's round: never recursion or an unbounded loop here. */
static void post_next_recv(iocp_conn *c)
{
    DWORD got;
    if (start_recv(c, &got))
        iocpi_defer_turn(c->engine, &c->recv_op, got);
}

/* Entered from a WSARecv's completion (a packet, or a turn of the worker's round for one that
 * completed at once): OPEN, CLOSING or CLOSED, the receive chain's reference held. */
static void recv_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    iocp_conn *c = CONTAINING_RECORD(op, iocp_conn, recv_op);
    IOCPI_ASSERT(c->state == CONN_OPEN || c->state == CONN_CLOSING || c->state == CONN_CLOSED);
    IOCPI_ASSERT(c->refs >= 1);
    int next = recv_handle(c, bytes, error);
    if (next == 2)
        post_next_recv(c); /* a zero-byte receive's, or the idle switch's: nothing was read */
    else if (next == 1)
        iocpi_defer_after_round(&c->resume_op); /* the next receive, after the round */
    else
        unref_on_worker(c);
}

/* Entered from our own packet or the worker's after-round list: the receive chain goes on
 * (after a handled receive, or once backpressure is over). Any state but FREE and DIALING. */
static void resume_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    (void)bytes;
    (void)error;
    iocp_conn *c = CONTAINING_RECORD(op, iocp_conn, resume_op);
    IOCPI_ASSERT(c->state != CONN_FREE && c->state != CONN_DIALING && c->refs >= 1);
    post_next_recv(c);
}

/* ---- open and release ------------------------------------------------------------------ */

/* Entered on a worker with a context from the pool (FREE or DIALING) and a connected socket
 * already associated with the port. */
void iocpi_conn_open(iocp_conn *c, SOCKET sock, int outgoing)
{
    iocp_engine *e = c->engine;
    IOCPI_ASSERT(c->state == CONN_FREE || c->state == CONN_DIALING);
    IOCPI_ASSERT(c->queued == 0 && c->send_head == NULL && !c->send_pending);
    c->sock = sock;
    c->outgoing = outgoing;
    c->refs = 2; /* the connection itself and its receive chain */
    c->queued = 0;
    c->send_stalled_ms = 0;
    c->send_head = c->send_tail = NULL;
    c->send_pending = c->recv_paused = 0;
    IOCPI_ASSERT(c->recv_buf == NULL && !c->pool_waiting);
    c->recv_zero = c->recv_ready = c->recv_idle = c->recv_pending = c->recv_cancel = 0;
    c->small_busy = 0;
    c->close_reason = IOCP_CLOSE_PEER;
    c->close_sys = 0;
    c->close_graceful = 1;
    c->lingering = c->peer_closed = 0;
    c->last_recv_ms = 0;
    c->message_started_ms = 0;
    c->last_activity_ms = c->opened_ms = (LONG64)iocpi_now_ms();
    c->tls_kept = 0;
    if (!outgoing && e->tls_server != NULL) {
        c->tls = &e->tls_sessions[c->index];
        iocpi_tls_init(c->tls, e->tls_server, NULL);
    }
    if (e->skip_on_success)
        SetFileCompletionNotificationModes((HANDLE)sock, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS |
                                                             FILE_SKIP_SET_EVENT_ON_HANDLE);
    BOOL nodelay = TRUE;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, (const char *)&nodelay, sizeof nodelay);
    InterlockedIncrement64(outgoing ? &e->counters.connected : &e->counters.accepted);
    InterlockedIncrement64(&e->counters.active);
    c->state = CONN_OPEN;
#ifdef IOCP_FAULT_INJECTION
    iocpi_fault_open_delay();
#endif
    /* Opened while the engine stops: closed at once, and the handler never hears of it
     * (on_close only follows an on_open; a dial reports on_connect_failed instead). A TLS
     * connection is announced once its handshake is done (tls_established). */
    c->announced = !e->stopping && c->tls == NULL && !c->proxy_pending;
    if (e->stopping) {
        iocpi_conn_close(c, IOCP_CLOSE_STOP, 0, IOCP_ABORT);
    } else if (c->tls != NULL && outgoing) {
        /* The client speaks first: the ClientHello. */
        AcquireSRWLockExclusive(&c->lock);
        iocpi_tls_status r = iocpi_tls_begin(c->tls);
        if (r != IOCPI_TLS_FAILED)
            queue_tls_output_locked(c);
        ReleaseSRWLockExclusive(&c->lock);
        if (r == IOCPI_TLS_FAILED)
            tls_failed(c);
    } else if (c->announced && e->handlers.on_open != NULL) {
        e->handlers.on_open(c);
    }
    /* The first receive is handled at once when its data is already there (a client that
     * connects and sends right away): it has waited for the accept, not for a turn. */
    DWORD got;
    if (start_recv(c, &got))
        recv_done(&c->recv_op, got, 0);
}

/* Once, when the engine makes the context: its buffers, and every op bound to its done for
 * good. */
void iocpi_conn_init(iocp_conn *c, iocp_engine *e, uint32_t index)
{
    c->engine = e;
    c->index = index;
    c->generation = 1;
    c->sock = INVALID_SOCKET;
    c->state = CONN_FREE;
    InitializeSRWLock(&c->lock);
    iocpi_op_init(&c->recv_op, recv_done);
    iocpi_op_init(&c->send_op, send_done);
    iocpi_op_init(&c->resume_op, resume_done);
    iocpi_op_init(&c->final_op, final_done);
    c->small_chunk.data = c->small_data;
    c->small_chunk.cap = IOCPI_SMALL_CHUNK;
    c->small_chunk.kind = CHUNK_SMALL;
    iocp_decoder_init(&c->decoder, e->config.framing, e->config.max_message);
}

void iocpi_conn_fini(iocp_conn *c)
{
    iocp_decoder_fini(&c->decoder);
}

/* Entered from our own packet once the last reference is gone: CLOSED. */
static void final_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    (void)bytes;
    (void)error;
    iocp_conn *c = CONTAINING_RECORD(op, iocp_conn, final_op);
    iocp_engine *e = c->engine;
    /* The release (libuv's endgame): the last reference is gone, so no operation is left. */
    IOCPI_ASSERT(c->refs == 0 && c->state == CONN_CLOSED && c->sock == INVALID_SOCKET);
    IOCPI_ASSERT(!c->send_pending);
    InterlockedIncrement64(&e->counters.closed[c->close_reason]);
    if (c->announced && e->handlers.on_close != NULL)
        e->handlers.on_close(c, c->close_reason, c->close_sys);
    else if (!c->announced && c->outgoing && e->handlers.on_connect_failed != NULL)
        e->handlers.on_connect_failed(
            e, c->user, c->close_reason == IOCP_CLOSE_STOP ? IOCP_E_STOPPED : IOCP_E_TLS,
            c->close_reason == IOCP_CLOSE_STOP ? WSAECONNABORTED : c->close_sys);
    c->announced = 0;
    if (c->tls != NULL)
        iocpi_tls_fini(c->tls);
    c->tls = NULL;
    c->tls_kept = 0;
    AcquireSRWLockExclusive(&c->lock);
    IOCPI_ASSERT(!c->pool_waiting && !c->recv_zero);
    if (c->recv_buf != NULL)
        iocpi_buffer_return(e, c->recv_buf);
    c->recv_buf = NULL;
    drop_queue_locked(c);
    iocp_decoder_reset(&c->decoder);
    uint64_t allocs = c->decoder.allocations;
    iocp_decoder_trim(&c->decoder, e->config.buffer_size);
    if (c->decoder.allocations != allocs)
        InterlockedAdd64(&e->counters.allocations, (LONG64)(c->decoder.allocations - allocs));
    c->user = NULL;
    c->peer[0] = '\0';
    c->proxy_pending = 0;
    InterlockedIncrement(&c->generation);
    if (c->generation == 0)
        c->generation = 1; /* ids are never 0 */
    IOCPI_ASSERT(c->queued == 0 && c->send_head == NULL && !c->small_busy);
    c->state = CONN_FREE;
    ReleaseSRWLockExclusive(&c->lock);
    iocpi_peers_release(e, c); /* before the pool: the address may connect again at once */
    iocpi_pool_return(e, c);
}

/* ---- lookups and the sweep ------------------------------------------------------------- */

iocp_conn *iocpi_conn_lookup(iocp_engine *e, iocp_conn_id id)
{
    uint32_t index = (uint32_t)id;
    if (e == NULL || index >= e->config.max_connections)
        return NULL;
    iocp_conn *c = &e->conns[index];
    AcquireSRWLockExclusive(&c->lock);
    if ((uint32_t)c->generation != (uint32_t)(id >> 32) || c->state != CONN_OPEN) {
        ReleaseSRWLockExclusive(&c->lock);
        return NULL;
    }
    return c;
}

/* From the sweep timer's thread: OPEN or CLOSING (or anything it became since the sweep
 * looked: the lock is taken here). */
void iocpi_conn_sweep(iocp_conn *c, uint64_t now)
{
    iocp_engine *e = c->engine;
    const iocp_config *cfg = &e->config;
    int drop = 0;
    AcquireSRWLockExclusive(&c->lock);
    if (c->state == CONN_OPEN) {
        uint64_t idle = elapsed(now, c->last_activity_ms);
        LONG64 started = c->message_started_ms;
        LONG64 stalled = c->send_stalled_ms;
        if (cfg->send_timeout_ms && stalled != 0 && elapsed(now, stalled) >= cfg->send_timeout_ms) {
            /* The peer stopped reading, or vanished without a FIN or a reset reaching us: a
             * pending WSASend then never completes, and with reading paused by backpressure
             * nothing else would ever end this connection. Abortive: a graceful close would
             * wait for the same queue. */
            iocpi_log_later(
                e, IOCP_LOG_INFO, "%s took none of %llu queued bytes for %llu ms: resetting",
                c->peer, (unsigned long long)c->queued, (unsigned long long)elapsed(now, stalled));
            drop = close_locked(c, IOCP_CLOSE_SEND_TIMEOUT, 0, IOCP_ABORT);
        } else if (c->proxy_pending && elapsed(now, c->opened_ms) >= cfg->proxy_header_timeout_ms) {
            /* From a trusted balancer and no whole PROXY header in time (a stalled or hostile
             * client behind it, or not a balancer at all). */
            c->proxy_pending = 0;
            InterlockedIncrement64(&e->counters.proxy_rejected);
            iocpi_log_later(e, IOCP_LOG_INFO, "%s: no PROXY header after %llu ms: resetting",
                            c->peer, (unsigned long long)elapsed(now, c->opened_ms));
            drop = close_locked(c, IOCP_CLOSE_PROTOCOL, WAIT_TIMEOUT, IOCP_ABORT);
        } else if (c->tls != NULL && !c->tls->established && cfg->tls.handshake_timeout_ms &&
                   elapsed(now, c->opened_ms) >= cfg->tls.handshake_timeout_ms) {
            InterlockedIncrement64(&e->counters.tls_handshake_failures);
            iocpi_log_later(e, IOCP_LOG_INFO, "%s: no TLS handshake after %llu ms: resetting",
                            c->peer, (unsigned long long)elapsed(now, c->opened_ms));
            drop = close_locked(c, IOCP_CLOSE_HANDSHAKE, WAIT_TIMEOUT, IOCP_ABORT);
        } else if (cfg->idle_timeout_ms && idle >= cfg->idle_timeout_ms) {
            iocpi_log_later(e, IOCP_LOG_DEBUG, "%s idle for %llu ms: closing", c->peer,
                            (unsigned long long)idle);
            drop = close_locked(c, IOCP_CLOSE_IDLE_TIMEOUT, 0, IOCP_GRACEFUL);
        } else if (cfg->message_timeout_ms && started != 0 &&
                   elapsed(now, started) >= cfg->message_timeout_ms) {
            iocpi_log_later(e, IOCP_LOG_INFO, "%s sent part of a message %llu ms ago: closing",
                            c->peer, (unsigned long long)elapsed(now, started));
            /* Abortive: a peer dribbling a message this slowly is broken or hostile, and a
             * graceful close would go on reading from it (finish_graceful_locked). */
            drop = close_locked(c, IOCP_CLOSE_MESSAGE_TIMEOUT, 0, IOCP_ABORT);
        } else if (cfg->idle_receive_ms && c->recv_pending && !c->recv_cancel &&
                   c->recv_buf != NULL && c->tls_kept == 0 &&
                   elapsed(now, c->last_recv_ms ? c->last_recv_ms : c->opened_ms) >=
                       cfg->idle_receive_ms) {
            /* Quiet: its receive is cancelled, and its completion (995, recv_go_idle) gives
             * the buffer back. Data that comes meanwhile completes the receive instead (a
             * cancel never loses bytes); recv_pending may be stale (the receive completed
             * and is being handled): the cancel then finds nothing (1168), and the next
             * start_recv clears recv_cancel. */
            c->recv_cancel = 1;
            CancelIoEx((HANDLE)c->sock, &c->recv_op.ov);
        }
    } else if (c->state == CONN_CLOSING) {
        uint64_t linger = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : DEFAULT_CLOSE_LINGER_MS;
        if (c->lingering && linger > LINGER_READ_MS)
            linger = LINGER_READ_MS;
        if (elapsed(now, c->closing_since_ms) >= linger)
            drop = close_locked(c, c->close_reason, c->close_sys, IOCP_ABORT);
    }
    ReleaseSRWLockExclusive(&c->lock);
    iocpi_log_flush();
    if (drop)
        iocpi_conn_unref(c);
}

/* From an accept (evict.c): the id is the sweep's candidate, checked again under the lock. */
int iocpi_conn_evict(iocp_engine *e, iocp_conn_id id, uint64_t now, uint64_t min_idle_ms,
                     uint32_t slot, uint32_t ticket)
{
    iocp_conn *c = iocpi_conn_lookup(e, id);
    if (c == NULL)
        return 0; /* closed, or the context serves another connection now */
    int evicted = 0, drop = 0;
    uint64_t idle = elapsed(now, c->last_activity_ms);
    if (!c->outgoing && idle >= min_idle_ms) {
        iocpi_log_later(e, IOCP_LOG_INFO, "%s idle for %llu ms: evicted for a new connection",
                        c->peer, (unsigned long long)idle);
        c->evict_slot = slot; /* its context goes to that newcomer (iocpi_evict_claim) */
        c->evict_ticket = ticket;
        drop = close_locked(c, IOCP_CLOSE_EVICTED, 0, IOCP_ABORT);
        evicted = 1;
    }
    ReleaseSRWLockExclusive(&c->lock);
    iocpi_log_flush();
    if (drop)
        iocpi_conn_unref(c);
    return evicted;
}

/* ---- public: inside callbacks ---------------------------------------------------------- */

iocp_conn_id iocp_conn_get_id(const iocp_conn *conn)
{
    return conn_id(conn);
}

iocp_engine *iocp_conn_engine(const iocp_conn *conn)
{
    return conn->engine;
}

void *iocp_conn_user(const iocp_conn *conn)
{
    return conn->user;
}

void iocp_conn_set_user(iocp_conn *conn, void *user)
{
    conn->user = user;
}

int iocp_conn_is_outgoing(const iocp_conn *conn)
{
    return conn->outgoing;
}

const char *iocp_conn_peer(const iocp_conn *conn)
{
    return conn->peer;
}

size_t iocp_conn_queued(const iocp_conn *conn)
{
    return conn->queued;
}

const char *iocp_conn_tls(const iocp_conn *conn)
{
    static _Thread_local char text[80];
    if (conn == NULL || conn->tls == NULL || !conn->tls->established)
        return NULL;
    iocpi_tls_describe(conn->tls, text, sizeof text);
    return text;
}

const char *iocp_conn_tls_peer_subject(const iocp_conn *conn)
{
    static _Thread_local char text[sizeof conn->tls->peer_subject];
    if (conn == NULL || conn->tls == NULL || !conn->tls->established ||
        conn->tls->peer_subject[0] == '\0')
        return NULL;
    memcpy(text, conn->tls->peer_subject, sizeof text);
    return text;
}

void iocpi_conn_tls_client(iocp_conn *c, const char *server_name)
{
    iocp_engine *e = c->engine;
    c->tls = &e->tls_sessions[c->index];
    iocpi_tls_init(c->tls, e->tls_client, server_name);
}

uintptr_t iocp_conn_socket(const iocp_conn *conn)
{
    return conn->state == CONN_OPEN ? (uintptr_t)conn->sock : (uintptr_t)INVALID_SOCKET;
}

iocp_err iocp_conn_send(iocp_conn *conn, const void *data, size_t len)
{
    if (conn == NULL || (data == NULL && len > 0))
        return IOCP_E_INVALID_ARG;
    const void *parts[1] = {data};
    size_t lens[1] = {len};
    AcquireSRWLockExclusive(&conn->lock);
    iocp_err rc = send_parts_locked(conn, parts, lens, 1);
    ReleaseSRWLockExclusive(&conn->lock);
    return rc;
}

iocp_err iocp_conn_send_message(iocp_conn *conn, const void *data, size_t len)
{
    if (conn == NULL || (data == NULL && len > 0))
        return IOCP_E_INVALID_ARG;
    AcquireSRWLockExclusive(&conn->lock);
    iocp_err rc = send_message_locked(conn, data, len);
    ReleaseSRWLockExclusive(&conn->lock);
    return rc;
}

iocp_err iocp_conn_close(iocp_conn *conn, iocp_close_mode how)
{
    if (conn == NULL || (how != IOCP_ABORT && how != IOCP_GRACEFUL))
        return IOCP_E_INVALID_ARG;
    iocpi_conn_close(conn, IOCP_CLOSE_LOCAL, 0, how);
    return IOCP_OK;
}

iocp_err iocp_conn_abort(iocp_conn *conn, iocp_close_reason reason)
{
    if (conn == NULL || (unsigned)reason >= IOCP_CLOSE_REASON_COUNT_)
        return IOCP_E_INVALID_ARG;
    iocpi_conn_close(conn, reason, 0, IOCP_ABORT);
    return IOCP_OK;
}

/* ---- public: by id, from any thread ---------------------------------------------------- */

iocp_err iocp_send(iocp_engine *engine, iocp_conn_id id, const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return IOCP_E_INVALID_ARG;
    iocp_conn *c = iocpi_conn_lookup(engine, id);
    if (c == NULL)
        return IOCP_E_NOT_CONNECTED;
    const void *parts[1] = {data};
    size_t lens[1] = {len};
    iocp_err rc = send_parts_locked(c, parts, lens, 1);
    ReleaseSRWLockExclusive(&c->lock);
    return rc;
}

iocp_err iocp_send_message(iocp_engine *engine, iocp_conn_id id, const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return IOCP_E_INVALID_ARG;
    iocp_conn *c = iocpi_conn_lookup(engine, id);
    if (c == NULL)
        return IOCP_E_NOT_CONNECTED;
    iocp_err rc = send_message_locked(c, data, len);
    ReleaseSRWLockExclusive(&c->lock);
    return rc;
}

size_t iocp_broadcast(iocp_engine *engine, const void *data, size_t len)
{
    iocp_engine *e = engine;
    size_t sent = 0;
    if (e == NULL || (data == NULL && len > 0))
        return 0;
    for (uint32_t i = 0; i < e->config.max_connections; i++) {
        iocp_conn *c = &e->conns[i];
        if (c->state != CONN_OPEN)
            continue;
        AcquireSRWLockExclusive(&c->lock);
        if (send_message_locked(c, data, len) == IOCP_OK)
            sent++;
        ReleaseSRWLockExclusive(&c->lock);
    }
    return sent;
}

iocp_err iocp_close(iocp_engine *engine, iocp_conn_id id, iocp_close_mode how)
{
    if (how != IOCP_ABORT && how != IOCP_GRACEFUL)
        return IOCP_E_INVALID_ARG;
    iocp_conn *c = iocpi_conn_lookup(engine, id);
    if (c == NULL)
        return IOCP_E_NOT_CONNECTED;
    int drop = close_locked(c, IOCP_CLOSE_LOCAL, 0, how);
    ReleaseSRWLockExclusive(&c->lock);
    if (drop)
        iocpi_conn_unref(c);
    return IOCP_OK;
}
