/*
 * load.c: iocp-client HOST PORT --load: many connections through one client-only engine.
 *
 * Each connection (a "slot") keeps --depth messages in flight. A message is a generated payload
 * (payload.h) of stream = slot index and seq = the slot's next number; every echoed byte is
 * checked against it as it arrives, so raw mode needs no copy of what was sent. The ring of a
 * slot holds the seq and send time of each message in flight, oldest first.
 *
 * Threads: the engine's workers run the handlers; callbacks of one connection never overlap,
 * and a slot has at most one connection at a time (it dials again only after on_close or
 * on_connect_failed), so the slot's ring and counters need no lock. The main thread dials
 * (paced by --connect-rate), watches for stalled echoes, prints progress, and ends the run.
 * What both sides touch is a volatile LONG/LONG64 used through the Interlocked functions.
 *
 * Latency histograms live in STRIPES stripes and payload scratch buffers in up to STRIPES
 * more (fewer for big payloads: SCRATCH_BUDGET bytes in all), each under an SRW lock, picked
 * by slot index: memory does not grow with the number of connections.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modes.h"

#include "backoff.h"
#include "exit_codes.h"
#include "payload.h"
#include "report.h"
#include "sys.h"
#include "tls_client.h"

#include "histogram.h"
#include "iocp/iocp.h"

#define STRIPES            64u
#define SCRATCH_BUDGET     (256u << 20)
#define MAX_PRINTED_ERRORS 10 /* errors printed as they happen; the summary counts the rest */

enum slot_state { SLOT_IDLE, SLOT_CONNECTING, SLOT_OPEN, SLOT_DONE };

typedef struct inflight {
    uint64_t seq;
    uint64_t sent_us;
} inflight;

typedef struct load_run load_run;

/* One connection's place; allocated in an array by client_run_load, freed at its end. */
typedef struct slot {
    load_run *run;
    uint32_t index;
    volatile LONG state;          /* enum slot_state */
    volatile LONG64 due_us;       /* SLOT_IDLE: dial at this time */
    volatile LONG64 dial_us;      /* SLOT_CONNECTING: when iocp_engine_connect was called */
    volatile LONG64 last_rx_us;   /* SLOT_OPEN: last echo progress */
    volatile LONG64 id;           /* SLOT_OPEN: the connection */
    volatile LONG inflight_count; /* == count, readable by the main thread */
    volatile LONG kill_kind;      /* main closed it (stall): client_error_kind + 1 */
    volatile LONG redial;         /* the next dial is a reconnect */
    /* the current connection's own, see the threads note above */
    uint64_t next_seq;
    inflight *ring;
    uint32_t head, count;
    size_t rx_offset;  /* raw mode: bytes of the oldest message already checked */
    uint32_t failures; /* dials failed or connections lost in a row */
    int closing;       /* we closed it: churn or a mismatch */
    uint64_t rng;
} slot;

typedef struct stripe {
    SRWLOCK lock;
    iocp_histogram hist;    /* echo latency */
    iocp_histogram connect; /* dial start to on_open (with TLS: the handshake included) */
} stripe;

typedef struct scratch {
    SRWLOCK lock;
    uint8_t *buf; /* one payload, generated here then queued (the engine copies it) */
} scratch;

/* The run: allocated on client_run_load's stack. */
struct load_run {
    const client_args *args;
    iocp_engine *engine;
    payload_kind kind;
    int framed;
    char where[300];
    slot *slots;
    stripe *stripes;
    scratch *scratches;
    uint32_t scratch_count;
    HANDLE wake; /* auto-reset: a slot wants dialling now */
    client_tls_log tls_log;
    volatile LONG tls_protocol_taken;
    char tls_protocol[64]; /* iocp_conn_tls of the first connection opened */

    volatile LONG stopping;    /* no new messages or dials */
    volatile LONG stopped;     /* the engine is closing everything: closes are not errors */
    volatile LONG active;      /* connections open */
    volatile LONG idle_slots;  /* slots in SLOT_IDLE */
    volatile LONG64 inflight;  /* messages sent and not echoed, all slots */
    volatile LONG64 issued;    /* messages sent */
    volatile LONG64 completed; /* echoes received and verified */
    volatile LONG64 bytes_sent, bytes_received;
    volatile LONG64 connects, connect_failures, reconnects, lost_in_flight, mismatches;
    volatile LONG64 errors[CLIENT_ERR_COUNT_];
    volatile LONG printed_errors;
    volatile LONG first_error_taken;
    volatile LONG last_error_kind; /* client_error_kind + 1 of the latest error, 0 none */
    char first_error[256];
    int first_error_exit;
};

/* ---- errors ---------------------------------------------------------------------------- */

static void record_error(load_run *r, client_error_kind kind, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    InterlockedIncrement64(&r->errors[kind]);
    InterlockedExchange(&r->last_error_kind, (LONG)kind + 1);
    if (InterlockedCompareExchange(&r->first_error_taken, 1, 0) == 0) {
        memcpy(r->first_error, text, sizeof text);
        r->first_error_exit = client_exit_for_kind(kind);
    }
    LONG n = InterlockedIncrement(&r->printed_errors);
    if (n <= MAX_PRINTED_ERRORS)
        client_errorf("%s", text);
    else if (n == MAX_PRINTED_ERRORS + 1)
        client_errorf("more errors: see the summary");
}

static client_error_kind kind_for_close(iocp_close_reason reason, unsigned long sys)
{
    switch (reason) {
    case IOCP_CLOSE_PEER:
        return CLIENT_ERR_CLOSED;
    case IOCP_CLOSE_IDLE_TIMEOUT:
    case IOCP_CLOSE_MESSAGE_TIMEOUT:
    case IOCP_CLOSE_SEND_TIMEOUT:
        return CLIENT_ERR_TIMEOUT;
    case IOCP_CLOSE_PROTOCOL:
        return CLIENT_ERR_PROTOCOL;
    case IOCP_CLOSE_RESET:
        return CLIENT_ERR_RESET;
    default:
        return sys != 0 ? client_error_kind_for_err(iocp_err_from_sys(sys)) : CLIENT_ERR_OTHER;
    }
}

/* ---- slot scheduling ------------------------------------------------------------------- */

static void slot_set_idle(slot *sl, uint64_t due_us, int redial)
{
    load_run *r = sl->run;
    InterlockedExchange64(&sl->due_us, (LONG64)due_us);
    InterlockedExchange(&sl->redial, redial);
    InterlockedIncrement(&r->idle_slots);
    InterlockedExchange(&sl->state, SLOT_IDLE);
    SetEvent(r->wake);
}

/* After a failed dial or a lost connection: dial again later, or give up on the slot. */
static void slot_retry_or_done(slot *sl, int allowed)
{
    load_run *r = sl->run;
    const client_args *a = r->args;
    if (allowed && !r->stopping && a->reconnect &&
        (a->attempts == 0 || sl->failures < a->attempts)) {
        uint32_t delay = client_backoff_ms(sl->failures, a->backoff_ms, a->backoff_max_ms,
                                           client_rand32(&sl->rng));
        sl->failures++;
        slot_set_idle(sl, client_now_us() + (uint64_t)delay * 1000u, 1);
    } else {
        InterlockedExchange(&sl->state, SLOT_DONE);
    }
}

/* ---- sending and checking -------------------------------------------------------------- */

/* Queues the slot's next message. Returns 1 if sent, 0 if the run wants no more, -1 on error. */
static int send_next(slot *sl, iocp_conn *conn)
{
    load_run *r = sl->run;
    const client_args *a = r->args;
    if (r->stopping)
        return 0;
    if (a->messages_limit != 0) {
        if ((uint64_t)InterlockedIncrement64(&r->issued) > a->messages_limit) {
            InterlockedDecrement64(&r->issued);
            return 0;
        }
    } else {
        InterlockedIncrement64(&r->issued);
    }
    uint64_t seq = sl->next_seq++;
    inflight *m = &sl->ring[(sl->head + sl->count) % a->depth];
    m->seq = seq;
    m->sent_us = client_now_us();
    sl->count++;
    InterlockedIncrement(&sl->inflight_count);
    InterlockedIncrement64(&r->inflight);

    scratch *sc = &r->scratches[sl->index % r->scratch_count];
    AcquireSRWLockExclusive(&sc->lock);
    payload_fill(r->kind, sl->index, seq, sc->buf, a->size);
    iocp_err err = iocp_conn_send_message(conn, sc->buf, a->size);
    ReleaseSRWLockExclusive(&sc->lock);
    if (err != IOCP_OK) {
        sl->count--;
        InterlockedDecrement(&sl->inflight_count);
        InterlockedDecrement64(&r->inflight);
        InterlockedDecrement64(&r->issued);
        if (err != IOCP_E_NOT_CONNECTED) {
            char why[160];
            record_error(r, CLIENT_ERR_OTHER, "cannot send to %s on connection %lu: %s", r->where,
                         (unsigned long)sl->index, iocp_format_error(err, 0, why, sizeof why));
            sl->closing = 1;
            iocp_conn_close(conn, IOCP_ABORT);
        }
        return -1;
    }
    InterlockedAdd64(&r->bytes_sent, (LONG64)a->size);
    return 1;
}

/* The oldest message's echo is complete and verified. */
static void complete(slot *sl, iocp_conn *conn, uint64_t now_us)
{
    load_run *r = sl->run;
    const client_args *a = r->args;
    inflight *m = &sl->ring[sl->head];
    uint64_t latency = now_us > m->sent_us ? now_us - m->sent_us : 0;
    stripe *st = &r->stripes[sl->index % STRIPES];
    AcquireSRWLockExclusive(&st->lock);
    iocp_histogram_record(&st->hist, latency);
    ReleaseSRWLockExclusive(&st->lock);
    sl->head = (sl->head + 1) % a->depth;
    sl->count--;
    sl->rx_offset = 0;
    sl->failures = 0;
    InterlockedDecrement(&sl->inflight_count);
    InterlockedDecrement64(&r->inflight);
    InterlockedIncrement64(&r->completed);
    if (a->churn) {
        sl->closing = 1;
        iocp_conn_close(conn, IOCP_GRACEFUL);
    } else {
        send_next(sl, conn);
    }
}

/* Bytes that are not the echo expected: count, tell what arrived, reset the connection. */
static void mismatch(slot *sl, iocp_conn *conn, const uint8_t *data, size_t n, size_t at)
{
    load_run *r = sl->run;
    const client_args *a = r->args;
    InterlockedIncrement64(&r->mismatches);
    if (sl->count == 0) {
        record_error(r, CLIENT_ERR_MISMATCH,
                     "echo mismatch from %s on connection %lu: %zu bytes arrived that no "
                     "message asked for",
                     r->where, (unsigned long)sl->index, n);
    } else {
        const inflight *m = &sl->ring[sl->head];
        size_t offset = (r->framed ? 0 : sl->rx_offset) + at;
        char what[120] = "";
        uint32_t stream = 0;
        uint64_t seq = 0;
        if (r->framed && n != a->size)
            snprintf(what, sizeof what, "; the echo is %zu bytes", n);
        else if (offset == 0 && payload_parse_header(r->kind, data, n, &stream, &seq) == 0)
            snprintf(what, sizeof what, "; it carries message %llu of connection %lu",
                     (unsigned long long)seq, (unsigned long)stream);
        if (at < n)
            record_error(r, CLIENT_ERR_MISMATCH,
                         "echo mismatch from %s on connection %lu: message %llu (%lu bytes) "
                         "differs at byte %zu: expected 0x%02x, got 0x%02x%s",
                         r->where, (unsigned long)sl->index, (unsigned long long)m->seq,
                         (unsigned long)a->size, offset,
                         payload_byte(r->kind, sl->index, m->seq, a->size, offset), data[at], what);
        else
            record_error(r, CLIENT_ERR_MISMATCH,
                         "echo mismatch from %s on connection %lu: message %llu: sent %lu "
                         "bytes%s",
                         r->where, (unsigned long)sl->index, (unsigned long long)m->seq,
                         (unsigned long)a->size, what);
    }
    sl->closing = 1;
    iocp_conn_close(conn, IOCP_ABORT);
}

/* ---- handlers, on engine workers ------------------------------------------------------- */

/* Entered from SLOT_CONNECTING: the dial succeeded. */
static void on_open(iocp_conn *conn)
{
    slot *sl = iocp_conn_user(conn);
    load_run *r = sl->run;
    uint64_t now = client_now_us();
    uint64_t dialled = (uint64_t)InterlockedCompareExchange64(&sl->dial_us, 0, 0);
    stripe *st = &r->stripes[sl->index % STRIPES];
    AcquireSRWLockExclusive(&st->lock);
    iocp_histogram_record(&st->connect, now > dialled ? now - dialled : 0);
    ReleaseSRWLockExclusive(&st->lock);
    const char *tls = iocp_conn_tls(conn);
    if (tls != NULL && InterlockedCompareExchange(&r->tls_protocol_taken, 1, 0) == 0)
        snprintf(r->tls_protocol, sizeof r->tls_protocol, "%s", tls);
    sl->head = 0;
    sl->count = 0;
    sl->rx_offset = 0;
    sl->closing = 0;
    InterlockedExchange(&sl->inflight_count, 0);
    InterlockedExchange(&sl->kill_kind, 0);
    InterlockedExchange64(&sl->last_rx_us, (LONG64)now);
    InterlockedExchange64(&sl->id, (LONG64)iocp_conn_get_id(conn));
    InterlockedExchange(&sl->state, SLOT_OPEN);
    InterlockedIncrement64(&r->connects);
    InterlockedIncrement(&r->active);
    uint32_t sent = 0;
    while (sent < r->args->depth && send_next(sl, conn) > 0)
        sent++;
    if (sent == 0 && !sl->closing) { /* the run is over: nothing to do here */
        sl->closing = 1;
        iocp_conn_close(conn, IOCP_GRACEFUL);
    }
}

/* Entered in SLOT_OPEN: raw bytes as they come, or one whole message (line, length). */
static void on_data(iocp_conn *conn, const void *data, size_t len)
{
    slot *sl = iocp_conn_user(conn);
    load_run *r = sl->run;
    const client_args *a = r->args;
    const uint8_t *p = data;
    uint64_t now = client_now_us();
    if (sl->closing)
        return; /* reset after a mismatch: the rest of the stream means nothing */
    InterlockedExchange64(&sl->last_rx_us, (LONG64)now);
    if (r->framed) {
        if (sl->count == 0) {
            mismatch(sl, conn, p, len, len);
            return;
        }
        size_t common = len < a->size ? len : a->size;
        size_t ok =
            payload_check(r->kind, sl->index, sl->ring[sl->head].seq, a->size, 0, p, common);
        if (ok != common || len != a->size) {
            mismatch(sl, conn, p, len, ok != common ? ok : len);
            return;
        }
        InterlockedAdd64(&r->bytes_received, (LONG64)len);
        complete(sl, conn, now);
        return;
    }
    while (len > 0) {
        if (sl->count == 0) {
            mismatch(sl, conn, p, len, len);
            return;
        }
        size_t want = a->size - sl->rx_offset;
        size_t n = len < want ? len : want;
        size_t ok =
            payload_check(r->kind, sl->index, sl->ring[sl->head].seq, a->size, sl->rx_offset, p, n);
        if (ok != n) {
            mismatch(sl, conn, p, n, ok);
            return;
        }
        InterlockedAdd64(&r->bytes_received, (LONG64)n);
        sl->rx_offset += n;
        p += n;
        len -= n;
        if (sl->rx_offset == a->size)
            complete(sl, conn, now);
    }
}

/* Entered from SLOT_OPEN, once per on_open, after all the connection's I/O finished. */
static void on_close(iocp_conn *conn, iocp_close_reason reason, unsigned long sys_code)
{
    slot *sl = iocp_conn_user(conn);
    load_run *r = sl->run;
    const client_args *a = r->args;
    InterlockedDecrement(&r->active);
    InterlockedExchange64(&sl->id, 0);
    uint32_t lost = sl->count;
    if (lost > 0) {
        InterlockedAdd64(&r->lost_in_flight, lost);
        InterlockedAdd64(&r->inflight, -(LONG64)lost);
        sl->count = 0;
        InterlockedExchange(&sl->inflight_count, 0);
    }
    LONG killed = InterlockedExchange(&sl->kill_kind, 0);
    int expected = sl->closing || r->stopped || reason == IOCP_CLOSE_STOP;
    if (!expected && killed == 0) {
        char why[160];
        iocp_err err = sys_code != 0 ? iocp_err_from_sys(sys_code) : IOCP_E_RESET;
        iocp_format_error(err, sys_code, why, sizeof why);
        client_error_kind kind = kind_for_close(reason, sys_code);
        if (reason == IOCP_CLOSE_PEER)
            record_error(r, kind,
                         "connection %lu to %s closed by the server (echoes outstanding: %lu)",
                         (unsigned long)sl->index, r->where, (unsigned long)lost);
        else
            record_error(r, kind, "connection %lu to %s lost (echoes outstanding: %lu): %s",
                         (unsigned long)sl->index, r->where, (unsigned long)lost,
                         sys_code == 0 && reason != IOCP_CLOSE_RESET ? iocp_close_reason_str(reason)
                                                                     : why);
    }
    /* What next: churn dials again at once; a loss follows the reconnect policy. */
    int normal_churn = a->churn && sl->closing && !r->stopping && killed == 0 && lost == 0;
    sl->closing = 0;
    if (r->stopping)
        InterlockedExchange(&sl->state, SLOT_DONE);
    else if (normal_churn)
        slot_set_idle(sl, 0, 0);
    else
        slot_retry_or_done(sl, 1);
}

/* Entered from SLOT_CONNECTING: every address failed. */
static void dial_failed(slot *sl, iocp_err err, unsigned long sys_code)
{
    load_run *r = sl->run;
    if (r->stopped || err == IOCP_E_STOPPED) { /* our own stop ended the dial */
        InterlockedExchange(&sl->state, SLOT_DONE);
        return;
    }
    char why[400];
    if (err == IOCP_E_TLS)
        client_tls_failure(&r->tls_log, sys_code, why, sizeof why);
    else
        iocp_format_error(err, sys_code, why, sizeof why);
    InterlockedIncrement64(&r->connect_failures);
    client_error_kind kind = client_error_kind_for_err(err);
    record_error(r, kind, "cannot connect to %s: %s", r->where, why);
    /* A name that does not resolve will not resolve on the next try either, nor will a
     * certificate become valid. */
    slot_retry_or_done(sl, kind != CLIENT_ERR_RESOLVE && kind != CLIENT_ERR_TLS);
}

static void on_connect_failed(iocp_engine *engine, void *user, iocp_err err, unsigned long sys_code)
{
    (void)engine;
    dial_failed(user, err, sys_code);
}

static const iocp_handlers load_handlers = {on_open, on_data, on_close, on_connect_failed};

/* ---- main thread ----------------------------------------------------------------------- */

/* Dials the slots that are due, within the --connect-rate budget. Returns dials made. */
static uint64_t dial_due(load_run *r, uint64_t now_us, uint64_t budget, uint32_t *cursor)
{
    const client_args *a = r->args;
    uint64_t made = 0;
    uint32_t n = a->connections;
    for (uint32_t k = 0; k < n && made < budget && r->idle_slots > 0 && !r->stopping; k++) {
        slot *sl = &r->slots[(*cursor + k) % n];
        if (sl->state != SLOT_IDLE || (uint64_t)sl->due_us > now_us)
            continue;
        if (InterlockedCompareExchange(&sl->state, SLOT_CONNECTING, SLOT_IDLE) != SLOT_IDLE)
            continue;
        InterlockedDecrement(&r->idle_slots);
        if (InterlockedExchange(&sl->redial, 0) != 0)
            InterlockedIncrement64(&r->reconnects);
        made++;
        InterlockedExchange64(&sl->dial_us, (LONG64)client_now_us());
        iocp_err err = iocp_engine_connect(r->engine, a->host, a->port, a->timeout_ms, sl);
        if (err != IOCP_OK) /* no callback will come: this thread owns the slot */
            dial_failed(sl, err, 0);
        if (made >= budget)
            *cursor = (*cursor + k + 1) % n;
    }
    return made;
}

/* Resets connections whose oldest echo made no progress for --timeout ms. */
static void kill_stalled(load_run *r, uint64_t now_us)
{
    const client_args *a = r->args;
    uint64_t limit = (uint64_t)a->timeout_ms * 1000u;
    for (uint32_t i = 0; i < a->connections; i++) {
        slot *sl = &r->slots[i];
        if (sl->state != SLOT_OPEN || sl->inflight_count == 0)
            continue;
        uint64_t last = (uint64_t)sl->last_rx_us;
        if (now_us <= last || now_us - last < limit)
            continue;
        iocp_conn_id id = (iocp_conn_id)sl->id;
        if (id == 0 || InterlockedCompareExchange(&sl->kill_kind, CLIENT_ERR_TIMEOUT + 1, 0) != 0)
            continue;
        record_error(r, CLIENT_ERR_TIMEOUT,
                     "timed out waiting for an echo from %s on connection %lu: nothing for %lu "
                     "ms",
                     r->where, (unsigned long)i, (unsigned long)a->timeout_ms);
        iocp_close(r->engine, id, IOCP_ABORT);
    }
}

/* A 64-bit counter read whole, on 32-bit Windows too. */
static uint64_t rd(volatile LONG64 *counter)
{
    return (uint64_t)InterlockedCompareExchange64(counter, 0, 0);
}

static uint64_t total_errors(load_run *r)
{
    uint64_t t = 0;
    for (int k = 0; k < CLIENT_ERR_COUNT_; k++)
        t += rd(&r->errors[k]);
    return t;
}

static int all_done(load_run *r)
{
    for (uint32_t i = 0; i < r->args->connections; i++) {
        if (r->slots[i].state != SLOT_DONE)
            return 0;
    }
    return 1;
}

typedef struct progress {
    int enabled, terminal;
    uint64_t last_us, last_messages, last_bytes;
    int printed;
} progress;

static void progress_tick(load_run *r, progress *pg, uint64_t now_us, uint64_t start_us)
{
    if (!pg->enabled || now_us - pg->last_us < 1000000u)
        return;
    double dt = (double)(now_us - pg->last_us) / 1e6;
    uint64_t msgs = rd(&r->completed), bytes = rd(&r->bytes_received);
    char line[200];
    report_progress(line, sizeof line, (double)(now_us - start_us) / 1e6,
                    (double)(msgs - pg->last_messages) / dt,
                    (double)(bytes - pg->last_bytes) / dt / 1e6, (uint64_t)r->active,
                    total_errors(r));
    if (pg->terminal)
        fprintf(stderr, "\r%s ", line);
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
    pg->printed = 1;
    pg->last_us = now_us;
    pg->last_messages = msgs;
    pg->last_bytes = bytes;
}

/* The stripes' echo (connect = 0) or connect histograms merged into percentiles. */
static void fill_latency(load_run *r, int connect, client_latency *l)
{
    iocp_histogram *all = malloc(sizeof *all);
    memset(l, 0, sizeof *l);
    if (all == NULL)
        return;
    iocp_histogram_init(all);
    for (uint32_t i = 0; i < STRIPES; i++)
        iocp_histogram_merge(all, connect ? &r->stripes[i].connect : &r->stripes[i].hist);
    l->count = all->total;
    if (all->total > 0) {
        l->min = all->min;
        l->max = all->max;
        l->p50 = iocp_histogram_percentile(all, 50.0);
        l->p90 = iocp_histogram_percentile(all, 90.0);
        l->p99 = iocp_histogram_percentile(all, 99.0);
        l->p999 = iocp_histogram_percentile(all, 99.9);
        l->mean = iocp_histogram_mean(all);
    }
    free(all);
}

/* The exit code: a mismatch always fails. Without --reconnect the first error decides; with
 * it, errors the run recovered from do not count, but ending with nothing connected does. */
static int run_exit_code(load_run *r, int ended_connected)
{
    if (rd(&r->mismatches) > 0)
        return CLIENT_EXIT_MISMATCH;
    if (total_errors(r) == 0)
        return CLIENT_EXIT_OK;
    if (!r->args->reconnect)
        return r->first_error_exit;
    if (rd(&r->completed) > 0 && ended_connected)
        return CLIENT_EXIT_OK;
    LONG last = r->last_error_kind;
    return last > 0 ? client_exit_for_kind((client_error_kind)(last - 1)) : r->first_error_exit;
}

static int setup(load_run *r, const client_args *a)
{
    size_t per = a->size > 0 ? a->size : 1;
    r->scratch_count = SCRATCH_BUDGET / per < STRIPES ? (uint32_t)(SCRATCH_BUDGET / per) : STRIPES;
    if (r->scratch_count == 0)
        r->scratch_count = 1;
    r->slots = calloc(a->connections, sizeof *r->slots);
    r->stripes = calloc(STRIPES, sizeof *r->stripes);
    r->scratches = calloc(r->scratch_count, sizeof *r->scratches);
    r->wake = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (r->slots == NULL || r->stripes == NULL || r->scratches == NULL || r->wake == NULL)
        return -1;
    for (uint32_t i = 0; i < STRIPES; i++) {
        InitializeSRWLock(&r->stripes[i].lock);
        iocp_histogram_init(&r->stripes[i].hist);
        iocp_histogram_init(&r->stripes[i].connect);
    }
    for (uint32_t i = 0; i < r->scratch_count; i++) {
        InitializeSRWLock(&r->scratches[i].lock);
        r->scratches[i].buf = malloc(per);
        if (r->scratches[i].buf == NULL)
            return -1;
    }
    uint64_t seed = client_random_seed();
    for (uint32_t i = 0; i < a->connections; i++) {
        slot *sl = &r->slots[i];
        sl->run = r;
        sl->index = i;
        sl->rng = seed ^ ((uint64_t)i * 0x9E3779B97F4A7C15ull) ^ 1u;
        sl->ring = calloc(a->depth, sizeof *sl->ring);
        if (sl->ring == NULL)
            return -1;
        sl->state = SLOT_IDLE;
    }
    r->idle_slots = (LONG)a->connections;
    return 0;
}

static void teardown(load_run *r)
{
    if (r->slots != NULL) {
        for (uint32_t i = 0; i < r->args->connections; i++)
            free(r->slots[i].ring);
        free(r->slots);
    }
    free(r->stripes);
    if (r->scratches != NULL) {
        for (uint32_t i = 0; i < r->scratch_count; i++)
            free(r->scratches[i].buf);
        free(r->scratches);
    }
    if (r->wake != NULL)
        CloseHandle(r->wake);
}

static iocp_err start_engine(load_run *r, const client_args *a, iocp_error_info *info)
{
    iocp_config config;
    iocp_config_init(&config);
    config.listen = 0;
    config.workers = a->threads;
    /* Churn and reconnects dial while the previous context may still be closing. */
    uint64_t contexts = (uint64_t)a->connections * (a->churn || a->reconnect ? 2u : 1u) + 16u;
    config.max_connections = contexts > 1000000u ? 1000000u : (uint32_t)contexts;
    config.framing = a->framing;
    config.max_message = a->max_message > a->size ? a->max_message : a->size;
    /* The messages in flight stay below half the cap, where the engine would pause reading;
     * and the engine wants room for two reads. */
    size_t window = (size_t)a->depth * ((size_t)a->size + IOCP_LENGTH_HEADER_SIZE) + 64u;
    size_t per_read = config.buffer_size;
    if (a->framing != IOCP_FRAMING_RAW)
        per_read += (size_t)config.max_message + IOCP_LENGTH_HEADER_SIZE;
    size_t cap = 2 * (window > per_read ? window : per_read);
    if (config.send_queue_cap < cap)
        config.send_queue_cap = cap;
    config.log_level = IOCP_LOG_ERROR;
    client_tls_configure(a, &config, &r->tls_log);
    return iocp_engine_start(&config, &load_handlers, r, &r->engine, info);
}

int client_run_load(const client_args *a)
{
    load_run run;
    load_run *r = &run;
    memset(r, 0, sizeof *r);
    r->args = a;
    r->kind.text = a->framing == IOCP_FRAMING_LINE;
    r->framed = a->framing != IOCP_FRAMING_RAW;
    client_format_where(r->where, sizeof r->where, a->host, a->port);
    if (setup(r, a) != 0) {
        client_errorf("out of memory for %lu connections", (unsigned long)a->connections);
        teardown(r);
        return CLIENT_EXIT_OTHER;
    }
    iocp_error_info info;
    memset(&info, 0, sizeof info);
    iocp_err err = start_engine(r, a, &info);
    if (err != IOCP_OK) {
        int rc = client_engine_start_failed(a, err, &info);
        teardown(r);
        return rc;
    }
    client_catch_interrupt();

    progress pg = {!a->quiet, client_is_terminal(stderr), 0, 0, 0, 0};
    uint64_t start = client_now_us();
    pg.last_us = start;
    uint64_t duration_us = (uint64_t)(a->duration_s * 1e6);
    uint64_t dials = 0, last_stall_check = start;
    uint32_t cursor = 0;

    /* Running: dial, watch, report, until the duration, the count, Ctrl+C or no slot left. */
    for (;;) {
        uint64_t now = client_now_us();
        if (client_interrupted() || (duration_us != 0 && now - start >= duration_us) ||
            (a->messages_limit != 0 && rd(&r->completed) >= a->messages_limit))
            break;
        if (r->idle_slots == 0 && r->active == 0 && all_done(r))
            break;
        uint64_t budget = UINT64_MAX;
        if (a->connect_rate > 0) {
            double allowed = 1.0 + a->connect_rate * (double)(now - start) / 1e6;
            budget = allowed > (double)dials ? (uint64_t)(allowed - (double)dials) : 0;
        }
        if (r->idle_slots > 0 && budget > 0)
            dials += dial_due(r, now, budget, &cursor);
        if (now - last_stall_check >= 100000u) {
            kill_stalled(r, now);
            last_stall_check = now;
        }
        progress_tick(r, &pg, now, start);
        WaitForSingleObject(r->wake, r->idle_slots > 0 ? 1 : 20);
    }

    /* Draining: no new messages; wait for the echoes in flight while they make progress. */
    InterlockedExchange(&r->stopping, 1);
    uint64_t last_count = rd(&r->completed);
    uint64_t last_change = client_now_us();
    while (rd(&r->inflight) > 0 && !client_interrupted()) {
        uint64_t now = client_now_us();
        if (rd(&r->completed) != last_count) {
            last_count = rd(&r->completed);
            last_change = now;
        } else if (now - last_change >= (uint64_t)a->timeout_ms * 1000u) {
            record_error(r, CLIENT_ERR_TIMEOUT,
                         "timed out waiting for %lld echoes from %s at the end of the run",
                         (long long)rd(&r->inflight), r->where);
            break;
        }
        kill_stalled(r, now);
        progress_tick(r, &pg, now, start);
        Sleep(1);
    }
    uint64_t end = client_now_us();
    int ended_connected = r->active > 0;

    InterlockedExchange(&r->stopped, 1);
    iocp_engine_stop(r->engine, 2000);
    iocp_stats engine_stats;
    iocp_engine_stats(r->engine, &engine_stats);
    iocp_engine_destroy(r->engine);
    if (pg.terminal && pg.printed)
        fputc('\n', stderr);

    client_summary s;
    memset(&s, 0, sizeof s);
    s.host = a->host;
    s.port = a->port;
    s.framing = iocp_framing_name(a->framing);
    s.connections = a->connections;
    s.depth = a->depth;
    s.size = a->size;
    s.churn = a->churn;
    s.connect_rate = a->connect_rate;
    s.elapsed_s = (double)(end - start) / 1e6;
    s.messages = rd(&r->completed);
    s.bytes_sent = rd(&r->bytes_sent);
    s.bytes_received = rd(&r->bytes_received);
    fill_latency(r, 0, &s.latency);
    fill_latency(r, 1, &s.connect);
    s.tls = a->tls;
    memcpy(s.tls_protocol, r->tls_protocol, sizeof s.tls_protocol);
    s.tls_handshakes = engine_stats.tls_handshakes;
    s.tls_handshake_failures = engine_stats.tls_handshake_failures;
    s.connects = rd(&r->connects);
    s.connect_failures = rd(&r->connect_failures);
    s.reconnects = rd(&r->reconnects);
    s.lost_in_flight = rd(&r->lost_in_flight);
    for (int k = 0; k < CLIENT_ERR_COUNT_; k++)
        s.errors[k] = rd(&r->errors[k]);
    s.mismatches = rd(&r->mismatches);
    memcpy(s.first_error, r->first_error, sizeof s.first_error);
    s.exit_code = run_exit_code(r, ended_connected);

    char text[4096];
    size_t n = a->json ? report_json(&s, text, sizeof text) : report_text(&s, text, sizeof text);
    fwrite(text, 1, n < sizeof text ? n : sizeof text - 1, stdout);
    fflush(stdout);
    teardown(r);
    return s.exit_code;
}
