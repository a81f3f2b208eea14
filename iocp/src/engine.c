/*
 * engine.c: the engine's lifecycle (configure, start, stop, destroy), the sweep timer and
 * statistics. The workers are in worker.c, the shared helpers in support.c.
 *
 * Stopping, in order: refuse new work (stopping = 1), close the listener so its AcceptEx calls
 * complete, close every connection gracefully, wait for the contexts to come home, abort the
 * stragglers after the drain timeout, then post one exit packet per worker and join them.
 */
#include "iocpi.h"

/* ---- configuration --------------------------------------------------------------------- */

void iocp_config_init(iocp_config *config)
{
    memset(config, 0, sizeof *config);
    config->listen = 1;
    config->accepts_outstanding = 16;
    config->max_connections = 1024;
    config->buffer_size = 16384;
    config->buffer_pool_max = (size_t)32 * 1024 * 1024;
    config->idle_receive_ms = 1000;
    config->send_queue_cap = 4u * 1024u * 1024u;
    config->send_timeout_ms = 60000; /* nginx's send_timeout */
    config->framing = IOCP_FRAMING_RAW;
    config->max_message = IOCP_DEFAULT_MAX_MESSAGE;
    config->log_level = IOCP_LOG_INFO;
    config->tls.handshake_timeout_ms = 10000;
    config->udp_buffer_size = 65536;
    config->udp_send_queue = 1024;
    config->ipv6_prefix_len = 64;
    config->evict_idle_ms = 10000;
    config->udp_rate = 32000;
    config->udp_burst = 4000;
    config->udp_byte_rate = 32u * 1024u * 1024u;
    config->udp_byte_burst = 4u * 1024u * 1024u;
    config->udp_sources = 4096;
    config->udp_total_rate = 100000;
    config->udp_flow_rate = 2000;
    config->proxy_header_timeout_ms = 5000;
}

iocp_err iocpi_config_check(iocp_config *c, iocp_error_info *err)
{
#define REJECT(...)                                                                                \
    do {                                                                                           \
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, __VA_ARGS__);                                  \
        return IOCP_E_INVALID_ARG;                                                                 \
    } while (0)
    if (c->max_connections < 1 || c->max_connections > 1000000)
        REJECT("max_connections %lu is out of range 1..1000000", (unsigned long)c->max_connections);
    if (c->buffer_size < 512 || c->buffer_size > 16u * 1024u * 1024u)
        REJECT("buffer_size %lu is out of range 512..16777216", (unsigned long)c->buffer_size);
    if (c->buffer_pool_max < c->buffer_size || c->buffer_pool_max > ((size_t)1 << 40))
        REJECT("buffer_pool_max %llu is out of range buffer_size (%lu)..2^40",
               (unsigned long long)c->buffer_pool_max, (unsigned long)c->buffer_size);
    if (c->listen && (c->accepts_outstanding < 1 || c->accepts_outstanding > 1024))
        REJECT("accepts_outstanding %lu is out of range 1..1024",
               (unsigned long)c->accepts_outstanding);
    if (c->workers > 256)
        REJECT("workers %lu is out of range 0..256 (0 = one per processor)",
               (unsigned long)c->workers);
    if (c->backlog < 0)
        REJECT("backlog %d is negative", c->backlog);
    if (iocp_framing_name(c->framing) == NULL)
        REJECT("framing %d is not raw, line or length", (int)c->framing);
    if (c->framing != IOCP_FRAMING_RAW && (c->max_message < 1 || c->max_message > 0x7fffffffu))
        REJECT("max_message %lu is out of range 1..2147483647", (unsigned long)c->max_message);
    if (c->ipv6_prefix_len < 1 || c->ipv6_prefix_len > 128)
        REJECT("ipv6_prefix_len %lu is out of range 1..128", (unsigned long)c->ipv6_prefix_len);
    if (c->udp_rate != 0 && c->udp_burst == 0)
        REJECT("udp_burst is 0: no datagram could pass; give a burst of 1 or more, or udp_rate 0");
    if (c->udp_byte_rate != 0 && c->udp_byte_burst < IOCP_UDP_MAX_DATAGRAM)
        REJECT("udp_byte_burst %lu is below %d: the longest datagram could never pass",
               (unsigned long)c->udp_byte_burst, IOCP_UDP_MAX_DATAGRAM);
    if (c->udp && (c->udp_sources < 16 || c->udp_sources > 1048576))
        REJECT("udp_sources %lu is out of range 16..1048576", (unsigned long)c->udp_sources);
    if ((unsigned)c->log_level > IOCP_LOG_DEBUG)
        REJECT("log_level %d is out of range 0..3", (int)c->log_level);
    /* One read can queue at most one buffer of raw echo, or one whole message plus the rest
     * of the buffer: reading pauses at half the cap, so the other half must hold that. */
    size_t per_read = c->buffer_size;
    if (c->framing != IOCP_FRAMING_RAW)
        per_read += (size_t)c->max_message + IOCP_LENGTH_HEADER_SIZE;
    if (c->send_queue_cap < 2 * per_read)
        REJECT("send_queue_cap %llu is too small: it must be at least %llu (2 x (buffer_size%s))",
               (unsigned long long)c->send_queue_cap, (unsigned long long)(2 * per_read),
               c->framing != IOCP_FRAMING_RAW ? " + max_message + 4" : "");
    return IOCP_OK;
#undef REJECT
}

/* ---- the sweep: idle, message and connect timeouts ------------------------------------- */

static VOID CALLBACK sweep_cb(PTP_CALLBACK_INSTANCE inst, PVOID ctx, PTP_TIMER timer)
{
    (void)inst;
    (void)timer;
    iocp_engine *e = ctx;
    uint64_t now = iocpi_now_ms();
    iocpi_evict_pick pick;
    pick.n = 0;
    for (uint32_t i = 0; i < e->config.max_connections; i++) {
        iocp_conn *c = &e->conns[i];
        LONG state = c->state; /* a hint: each sweep looks again under the lock */
        if (state == CONN_DIALING)
            iocpi_dialer_sweep(c, now);
        else if (state != CONN_FREE)
            iocpi_conn_sweep(c, now);
        iocpi_evict_consider(e, &pick, c, now);
    }
    iocpi_evict_publish(e, &pick);
    iocpi_evict_expire(e, now, 0);
    /* Posts retried where nothing may be logged (iocpi_post_packet): said here. */
    LONG64 retries = e->counters.post_retries;
    LONG64 seen = InterlockedExchange64(&e->post_retries_logged, retries);
    if (retries > seen)
        iocpi_log(e, IOCP_LOG_WARN,
                  "the completion port refused %lld packets (the system is short of memory); "
                  "each was posted again",
                  (long long)(retries - seen));
}

uint32_t iocpi_sweep_period_ms(const iocp_config *c)
{
    uint32_t shortest = 1000;
    if (c->idle_timeout_ms && c->idle_timeout_ms / 8 < shortest)
        shortest = c->idle_timeout_ms / 8;
    if (c->message_timeout_ms && c->message_timeout_ms / 8 < shortest)
        shortest = c->message_timeout_ms / 8;
    if (c->send_timeout_ms && c->send_timeout_ms / 8 < shortest)
        shortest = c->send_timeout_ms / 8;
    /* The idle switch is late by a period at most: a half of it, with one second at most. */
    if (c->idle_receive_ms && c->idle_receive_ms / 2 < shortest)
        shortest = c->idle_receive_ms / 2;
    if (c->tls.handshake_timeout_ms && c->tls.handshake_timeout_ms / 8 < shortest &&
        (c->tls.pfx_path || c->tls.cert_thumbprint || c->tls.client))
        shortest = c->tls.handshake_timeout_ms / 8;
    if (c->evict_idle_ms && c->evict_idle_ms / 4 < shortest)
        shortest = c->evict_idle_ms / 4; /* the candidates are at most this stale */
    if (c->proxy_protocol_from && c->proxy_protocol_from[0] &&
        c->proxy_header_timeout_ms / 8 < shortest)
        shortest = c->proxy_header_timeout_ms / 8;
    return shortest < 10 ? 10 : shortest;
}

static int wait_idle(iocp_engine *e, uint64_t deadline);
/* After the abort, how long a closed socket's operations may take to complete. */
#define LOST_OP_WAIT_MS 10000

/* ---- start ----------------------------------------------------------------------------- */

static void engine_free(iocp_engine *e)
{
    iocpi_timer_close(&e->sweep_timer);
    iocpi_timer_close(&e->accept_retry_timer);
    if (e->workers != NULL) {
        for (uint32_t i = 0; i < e->worker_count; i++)
            iocpi_post_packet(e, 0, IOCPI_EXIT_KEY, NULL);
        for (uint32_t i = 0; i < e->worker_count; i++) {
            WaitForSingleObject(e->workers[i], INFINITE);
            CloseHandle(e->workers[i]);
        }
        free(e->workers);
    }
    if (e->listen_sock != INVALID_SOCKET)
        closesocket(e->listen_sock);
    iocpi_handover_waits_stop(e);
    free(e->accepts);
    iocpi_udp_fini(e);
    iocpi_peers_fini(e);
    iocpi_evict_fini(e);
    iocpi_proxy_engine_stop(e);
    iocpi_pool_fini(e);
    iocpi_tls_engine_stop(e);
    if (e->port != NULL)
        CloseHandle(e->port);
    if (e->stopped_event != NULL)
        CloseHandle(e->stopped_event);
    if (e->stopper_thread != NULL)
        CloseHandle(e->stopper_thread);
    free(e);
    WSACleanup();
}

iocp_err iocp_engine_start(const iocp_config *config, const iocp_handlers *handlers, void *user,
                           iocp_engine **out, iocp_error_info *err)
{
    iocp_err rc;
    if (out == NULL || config == NULL) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "iocp_engine_start needs config and out");
        return IOCP_E_INVALID_ARG;
    }
    *out = NULL;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    iocpi_workers_prepare();
#ifdef IOCP_FAULT_INJECTION
    iocpi_fault_init();
#endif

    WSADATA wsa;
    int wsa_rc = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (wsa_rc != 0) {
        iocpi_error_set(err, iocp_err_from_sys((DWORD)wsa_rc), (DWORD)wsa_rc, "WSAStartup");
        return iocp_err_from_sys((DWORD)wsa_rc);
    }
    iocp_engine *e = calloc(1, sizeof *e);
    if (e == NULL) {
        WSACleanup();
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "engine");
        return IOCP_E_NO_MEMORY;
    }
    e->listen_sock = INVALID_SOCKET;
    e->config = *config;
    if (e->config.log == NULL)
        e->config.log = iocp_log_stderr;
    e->handlers = handlers ? *handlers : *iocp_echo_handlers();
    e->user = user;
    rc = iocpi_config_check(&e->config, err);
    if (rc != IOCP_OK)
        goto fail;

    SYSTEM_INFO si;
    GetSystemInfo(&si);
    e->worker_count = e->config.workers ? e->config.workers : si.dwNumberOfProcessors;
    if (e->worker_count == 0)
        e->worker_count = 1;
    e->high_mark = e->config.send_queue_cap / 2;
    e->low_mark = e->config.send_queue_cap / 4;
    e->skip_on_success = iocpi_providers_are_ifs(SOCK_STREAM, IPPROTO_TCP);
    e->started_ms = iocpi_now_ms();
    InitializeSRWLock(&e->accept_lock);

    e->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, e->worker_count);
    e->stopped_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (e->port == NULL || e->stopped_event == NULL) {
        DWORD sys = GetLastError();
        rc = iocp_err_from_sys(sys);
        iocpi_error_set(err, rc, sys, "cannot create the completion port");
        goto fail;
    }
    rc = iocpi_tls_engine_start(e, err); /* first: it may raise buffer_size */
    if (rc == IOCP_OK)
        rc = iocpi_pool_init(e, err);
    if (rc == IOCP_OK)
        rc = iocpi_peers_init(e, err);
    if (rc == IOCP_OK)
        rc = iocpi_evict_init(e, err);
    if (rc == IOCP_OK)
        rc = iocpi_proxy_engine_start(e, err);
    if (rc != IOCP_OK)
        goto fail;

    e->sweep_timer = CreateThreadpoolTimer(sweep_cb, e, NULL);
    if (e->sweep_timer == NULL) {
        DWORD sys = GetLastError();
        rc = iocp_err_from_sys(sys);
        iocpi_error_set(err, rc, sys, "cannot create the sweep timer");
        goto fail;
    }
    e->workers = calloc(e->worker_count, sizeof *e->workers);
    if (e->workers == NULL) {
        rc = IOCP_E_NO_MEMORY;
        iocpi_error_set(err, rc, 0, "worker table");
        goto fail;
    }
    for (uint32_t i = 0; i < e->worker_count; i++) {
        e->workers[i] = CreateThread(NULL, 0, iocpi_worker_main, e, 0, NULL);
        if (e->workers[i] == NULL) {
            DWORD sys = GetLastError();
            rc = iocp_err_from_sys(sys);
            iocpi_error_set(err, rc, sys, "cannot start worker thread %lu", (unsigned long)i);
            goto fail;
        }
    }
    if (e->config.listen) {
        rc = iocpi_listener_start(e, err);
        if (rc != IOCP_OK)
            goto fail;
    } else {
        /* A client-only engine still needs ConnectEx, loaded through any TCP socket. */
        DWORD sys = 0;
        SOCKET probe = iocpi_socket(AF_INET);
        rc = probe == INVALID_SOCKET ? iocp_err_from_sys(sys = (DWORD)WSAGetLastError())
                                     : iocpi_load_extensions(e, probe, &sys);
        if (probe != INVALID_SOCKET)
            closesocket(probe);
        if (rc != IOCP_OK) {
            iocpi_error_set(err, rc, sys, "cannot load ConnectEx");
            goto fail;
        }
    }
    if (e->config.udp) {
        rc = iocpi_udp_start(e, err); /* after the listener: its port number is the default */
        if (rc != IOCP_OK) {
            /* The listener's accepts are posted: take them back before freeing. */
            InterlockedExchange(&e->stopping, 1);
            iocpi_listener_stop(e);
            wait_idle(e, iocpi_now_ms() + LOST_OP_WAIT_MS);
            goto fail;
        }
    }
    iocpi_timer_set(e->sweep_timer, iocpi_sweep_period_ms(&e->config),
                    iocpi_sweep_period_ms(&e->config));
    if (e->config.listen)
        iocpi_log(e, IOCP_LOG_INFO, "listening on %s (%lu contexts, %lu workers, %s framing)",
                  e->address, (unsigned long)e->config.max_connections,
                  (unsigned long)e->worker_count, iocp_framing_name(e->config.framing));
    *out = e;
    return IOCP_OK;

fail:
    if (e->workers != NULL) {
        /* only the threads created so far */
        uint32_t made = 0;
        while (made < e->worker_count && e->workers[made] != NULL)
            made++;
        e->worker_count = made;
    }
    engine_free(e);
    return rc;
}

/* ---- stop ------------------------------------------------------------------------------ */

static uint64_t busy_count(iocp_engine *e)
{
    return (uint64_t)e->counters.contexts_in_use + (uint64_t)e->accepts_posted +
           (uint64_t)e->dials_resolving + iocpi_udp_busy(e);
}

static void close_all(iocp_engine *e, iocp_close_mode how)
{
    for (uint32_t i = 0; i < e->config.max_connections; i++) {
        iocp_conn *c = &e->conns[i];
        LONG state = c->state;
        if (state == CONN_OPEN || state == CONN_CLOSING)
            iocpi_conn_close(c, IOCP_CLOSE_STOP, 0, how);
        else if (state == CONN_DIALING)
            iocpi_dialer_cancel(c);
    }
}

/* Waits until the engine is idle or the deadline passes; 1 when idle. A poll with a deadline:
 * contexts come home from many threads and there is no single event to wait on. */
static int wait_idle(iocp_engine *e, uint64_t deadline)
{
    for (;;) {
        if (busy_count(e) == 0)
            return 1;
        if (iocpi_now_ms() >= deadline)
            return 0;
        Sleep(5);
    }
}

static void stop_run(iocp_engine *e)
{
    uint64_t t0 = iocpi_now_ms();
    InterlockedExchange(&e->stopping, 1);
    iocpi_listener_stop(e);                   /* and its retry timer */
    iocpi_evict_expire(e, iocpi_now_ms(), 1); /* newcomers waiting for an evicted context */
    iocpi_udp_stop(e);                        /* every receive and send completes */
    close_all(e, IOCP_GRACEFUL);
    if (!wait_idle(e, t0 + e->drain_ms)) {
        iocpi_log(e, IOCP_LOG_WARN, "drain timeout (%lu ms): aborting %lld connections",
                  (unsigned long)e->drain_ms, (long long)e->counters.contexts_in_use);
        close_all(e, IOCP_ABORT);
        /* Every socket is closed now and its sends cancelled, so each operation completes at
         * once by the Win32 contract. Wine has been seen to lose the completion of a pending
         * WSARecv at closesocket under heavy load (CancelIoEx first did not help): the stop
         * does not hang on it forever. Such contexts stay in use and their memory is never
         * freed, so a completion that does come late writes into memory we still own. */
        uint64_t give_up = iocpi_now_ms() + LOST_OP_WAIT_MS;
        while (!wait_idle(e, iocpi_now_ms() + 1000)) {
            if (iocpi_now_ms() >= give_up) {
                iocpi_log(e, IOCP_LOG_ERROR,
                          "%lld operations on closed sockets never completed in %u ms (the "
                          "system lost them): stopping without %lld contexts, whose memory "
                          "stays allocated",
                          (long long)e->counters.ops_in_flight, (unsigned)LOST_OP_WAIT_MS,
                          (long long)e->counters.contexts_in_use);
                e->lost_ops = 1;
                break;
            }
            close_all(e, IOCP_ABORT);
        }
    }
    iocpi_timer_close(&e->sweep_timer);
    iocpi_log(e, IOCP_LOG_INFO, "stopped in %llu ms", (unsigned long long)(iocpi_now_ms() - t0));
    SetEvent(e->stopped_event);
}

static DWORD WINAPI stopper_main(LPVOID arg)
{
    stop_run(arg);
    return 0;
}

iocp_err iocp_engine_stop(iocp_engine *engine, uint32_t drain_timeout_ms)
{
    iocp_engine *e = engine;
    if (e == NULL)
        return IOCP_E_INVALID_ARG;
    if (InterlockedCompareExchange(&e->stop_started, 1, 0) == 0) {
        e->drain_ms = drain_timeout_ms;
        if (iocpi_on_worker()) {
            /* A worker cannot wait for the other operations (it may be one of them): a
             * thread of its own finishes the stop. */
            InterlockedExchange(&e->stopping, 1);
            e->stopper_thread = CreateThread(NULL, 0, stopper_main, e, 0, NULL);
            if (e->stopper_thread == NULL) {
                iocpi_log(e, IOCP_LOG_ERROR, "cannot start the stop thread (Win32 %lu)",
                          (unsigned long)GetLastError());
                return iocp_err_from_sys(GetLastError());
            }
            return IOCP_OK;
        }
        stop_run(e);
        return e->lost_ops ? IOCP_E_TIMEOUT : IOCP_OK;
    }
    if (!iocpi_on_worker())
        WaitForSingleObject(e->stopped_event, INFINITE);
    return e->lost_ops ? IOCP_E_TIMEOUT : IOCP_OK;
}

iocp_err iocp_engine_wait(iocp_engine *engine, uint32_t timeout_ms)
{
    iocp_engine *e = engine;
    DWORD ms = timeout_ms == UINT32_MAX ? INFINITE : timeout_ms;
    return WaitForSingleObject(e->stopped_event, ms) == WAIT_OBJECT_0 ? IOCP_OK : IOCP_E_TIMEOUT;
}

void iocp_engine_destroy(iocp_engine *engine)
{
    iocp_engine *e = engine;
    if (e == NULL)
        return;
    iocp_engine_stop(engine, 5000);
    WaitForSingleObject(e->stopped_event, INFINITE);
    if (e->stopper_thread != NULL)
        WaitForSingleObject(e->stopper_thread, INFINITE);
    engine_free(e);
}

/* ---- accessors and statistics ---------------------------------------------------------- */

uint16_t iocp_engine_port(const iocp_engine *engine)
{
    return engine->bound_port;
}

const char *iocp_engine_address(const iocp_engine *engine)
{
    return engine->address;
}

void *iocp_engine_user(const iocp_engine *engine)
{
    return engine->user;
}

void iocp_engine_stats(const iocp_engine *engine, iocp_stats *out)
{
    const iocp_engine *e = (const iocp_engine *)engine;
    const iocpi_counters *c = &e->counters;
    memset(out, 0, sizeof *out);
    out->accepted = (uint64_t)c->accepted;
    out->connected = (uint64_t)c->connected;
    out->rejected = (uint64_t)c->rejected;
    out->rejected_per_address = (uint64_t)c->rejected_per_address;
    out->accept_errors = (uint64_t)c->accept_errors;
    out->connect_failures = (uint64_t)c->connect_failures;
    for (int i = 0; i < IOCP_CLOSE_REASON_COUNT_; i++)
        out->closed[i] = (uint64_t)c->closed[i];
    out->bytes_in = (uint64_t)c->bytes_in;
    out->bytes_out = (uint64_t)c->bytes_out;
    out->messages_in = (uint64_t)c->messages_in;
    out->messages_out = (uint64_t)c->messages_out;
    out->protocol_errors = (uint64_t)c->protocol_errors;
    out->active = (uint64_t)c->active;
    out->contexts_in_use = (uint64_t)c->contexts_in_use;
    out->contexts_total = e->config.max_connections;
    out->ops_in_flight = (uint64_t)c->ops_in_flight;
    out->bytes_queued = (uint64_t)c->bytes_queued;
    out->heap_chunks = (uint64_t)c->heap_chunks;
    out->allocations = (uint64_t)c->allocations;
    out->post_retries = (uint64_t)c->post_retries;
    out->tls_handshakes = (uint64_t)c->tls_handshakes;
    out->tls_handshake_failures = (uint64_t)c->tls_handshake_failures;
    out->tls_below_floor = (uint64_t)c->tls_below_floor;
    out->buffers_in_use = (uint64_t)e->buffers.in_use;
    out->buffers_peak = (uint64_t)e->buffers.peak;
    out->buffers_max = e->buffers.slots;
    out->buffer_waits = (uint64_t)c->buffer_waits;
    out->idle_receives = (uint64_t)c->idle_receives;
    out->udp_datagrams_in = (uint64_t)c->udp_datagrams_in;
    out->udp_bytes_in = (uint64_t)c->udp_bytes_in;
    out->udp_datagrams_out = (uint64_t)c->udp_datagrams_out;
    out->udp_bytes_out = (uint64_t)c->udp_bytes_out;
    out->udp_dropped = (uint64_t)c->udp_dropped;
    out->udp_truncated = (uint64_t)c->udp_truncated;
    out->udp_errors = (uint64_t)c->udp_errors;
    out->rejected_rate = (uint64_t)c->rejected_rate;
    out->udp_refused_port = (uint64_t)c->udp_refused_port;
    out->udp_refused_self = (uint64_t)c->udp_refused_self;
    out->udp_refused_address = (uint64_t)c->udp_refused_address;
    out->udp_rate_limited = (uint64_t)c->udp_rate_limited;
    out->udp_capped = (uint64_t)c->udp_capped;
    out->udp_refused_loop = (uint64_t)c->udp_refused_loop;
    out->evict_served = (uint64_t)c->evict_served;
    out->uptime_ms = iocpi_now_ms() - e->started_ms;
    out->proxy_headers = (uint64_t)c->proxy_headers;
    out->proxy_rejected = (uint64_t)c->proxy_rejected;
}
