/*
 * listener.c: the listening socket and its ring of outstanding AcceptEx calls.
 *
 * Each slot always has an AcceptEx posted (no receive data, so a client that connects and
 * says nothing cannot hold an accept), with a fresh socket each time. A slot that fails is
 * re-armed; a slot that cannot get a socket (out of sockets) waits for a thread-pool timer
 * with a growing delay, so a starved listener backs off instead of spinning. At the
 * connection limit an accepted socket is reset at once and counted as rejected; so is one
 * from an address that already holds max_connections_per_address (rejected_per_address).
 */
#include "iocpi.h"

#define ADDR_LEN          (sizeof(SOCKADDR_STORAGE) + 16)
#define BACKOFF_FIRST_MS  50
#define BACKOFF_MAX_MS    2000
#define PROBE_WINDOW_MS   50
#define ERROR_STREAK_SLOW 64    /* this many failed accepts in a row: back off too */
#define SHORTAGE_WARN_MS  60000 /* at most one shortage warning a minute (then: debug) */

static void accept_done(iocpi_op *op, DWORD bytes, DWORD error);

/* Every path out of accept_lock: what was logged under it is written now, outside it. */
static void accept_unlock(iocp_engine *e)
{
    ReleaseSRWLockExclusive(&e->accept_lock);
    iocpi_log_flush();
}

static void timer_in(iocp_engine *e, uint32_t ms)
{
    if (e->accept_retry_timer != NULL)
        iocpi_timer_set(e->accept_retry_timer, ms, 0);
}

/* Closes our handle to the listener (a successor's duplicate keeps the socket open). Under
 * accept_lock. */
static void close_listener_locked(iocp_engine *e)
{
    if (e->listen_sock != INVALID_SOCKET) {
        closesocket(e->listen_sock);
        e->listen_sock = INVALID_SOCKET;
    }
}

/* The next try after a growing delay. */
static void retry_later(iocp_engine *e)
{
    if (e->accept_backoff_ms == 0)
        e->accept_backoff_ms = BACKOFF_FIRST_MS;
    else if (e->accept_backoff_ms < BACKOFF_MAX_MS)
        e->accept_backoff_ms *= 2;
    timer_in(e, e->accept_backoff_ms);
}

/* Out of sockets (or accepts failing in a row): say so, take back the accepts still
 * posted and let the timer own the slots from now on (retry_cb). Under Wine a
 * pending AcceptEx that the wineserver cannot complete (no descriptor to spare) is retried in
 * a busy loop by Wine itself; the probe keeps that to a sliver of the time. Under
 * accept_lock. */
static void starve_locked(iocp_engine *e, DWORD sys)
{
    if (e->accept_starved)
        return; /* the timer is already set */
    /* A listener at the edge of the descriptor limit can go in and out of shortages: one
     * warning a minute, the others (and their ends) at debug level. */
    uint64_t now = iocpi_now_ms();
    int warn = e->accept_warned_ms == 0 || now - e->accept_warned_ms >= SHORTAGE_WARN_MS;
    if (warn)
        e->accept_warned_ms = now;
    e->accept_shortage_warned = warn;
    char why[96];
    iocpi_log_later(e, warn ? IOCP_LOG_WARN : IOCP_LOG_DEBUG,
                    "cannot accept: %s; accepting backs off until an accept succeeds",
                    iocp_format_error(iocp_err_from_sys(sys), sys, why, sizeof why));
    e->accept_starved = 1;
    e->accept_ok_while_starved = 0;
    for (uint32_t i = 0; i < e->config.accepts_outstanding; i++) {
        if (e->accepts[i].posted && e->listen_sock != INVALID_SOCKET)
            CancelIoEx((HANDLE)e->listen_sock, &e->accepts[i].op.ov);
    }
    retry_later(e);
}

/* Posts AcceptEx on an idle slot. Returns 1 when posted. Takes accept_lock, but creates the
 * socket before: two workers re-arming accepts at once wait for each other only for the
 * AcceptEx call (which must not meet a listener being closed), not for the socket too. */
static int post_accept(iocpi_accept *a)
{
    iocp_engine *e = a->engine;
    for (;;) {
        if (e->stopping)
            return 0; /* checked again under the lock; this only saves a socket */
        SOCKET s = iocpi_socket(e->family);
        DWORD sys = s == INVALID_SOCKET ? (DWORD)WSAGetLastError() : 0;
        AcquireSRWLockExclusive(&e->accept_lock);
        if (e->stopping || e->accept_stopped || e->listen_sock == INVALID_SOCKET || a->posted) {
            accept_unlock(e);
            if (s != INVALID_SOCKET)
                closesocket(s);
            return 0;
        }
        if (s == INVALID_SOCKET) {
            starve_locked(e, sys);
            accept_unlock(e);
            return 0;
        }
        a->sock = s;
        memset(&a->op.ov, 0, sizeof a->op.ov);
        if (e->accept_emulated) /* the low bit: no port packet; the event's wait posts one */
            a->op.ov.hEvent = iocpi_emulated_event(&a->emulated);
        a->posted = 1;
        a->probe = e->accept_starved;
        InterlockedIncrement(&e->accepts_posted);
        InterlockedIncrement64(&e->counters.ops_in_flight);
        DWORD got = 0;
        if (e->accept_ex(e->listen_sock, a->sock, a->addrs, 0, ADDR_LEN, ADDR_LEN, &got,
                         &a->op.ov) ||
            WSAGetLastError() == ERROR_IO_PENDING) {
            accept_unlock(e);
            return 1; /* the listener is not in skip mode: a packet always comes */
        }
        /* Failed at once: no packet will come. A peer that reset in the backlog is worth
         * another try straight away; anything else waits for the timer. */
        sys = (DWORD)WSAGetLastError();
        InterlockedDecrement64(&e->counters.ops_in_flight);
        InterlockedDecrement(&e->accepts_posted);
        a->posted = 0;
        closesocket(a->sock);
        a->sock = INVALID_SOCKET;
        InterlockedIncrement64(&e->counters.accept_errors);
        if (sys != WSAECONNRESET)
            starve_locked(e, sys);
        accept_unlock(e);
        if (sys != WSAECONNRESET)
            return 0;
    }
}

/* Arms every idle slot. Returns 1 when every slot has an AcceptEx posted afterwards. */
static int arm_idle_slots(iocp_engine *e)
{
    int all = 1;
    for (uint32_t i = 0; i < e->config.accepts_outstanding; i++) {
        if (!e->accepts[i].posted && !post_accept(&e->accepts[i]))
            all = 0;
    }
    return all;
}

/* The back-off timer. While starved it alternates: post the accepts for a probe window, take
 * them back, wait longer. The shortage ends at the start of a probe once an accept has
 * succeeded during it (release_slot says so) and every slot can be armed: one accept that
 * got through at the edge of the limit does not end it, or the listener would flap in and
 * out (and log each time). */
static VOID CALLBACK retry_cb(PTP_CALLBACK_INSTANCE inst, PVOID ctx, PTP_TIMER timer)
{
    (void)inst;
    (void)timer;
    iocp_engine *e = ctx;
    int may_resume = 0;
    AcquireSRWLockExclusive(&e->accept_lock);
    if (e->stopping || e->accept_stopped) {
        accept_unlock(e);
        return;
    }
    if (e->accept_starved) {
        int probing = 0;
        for (uint32_t i = 0; i < e->config.accepts_outstanding; i++) {
            if (e->accepts[i].posted && e->listen_sock != INVALID_SOCKET) {
                probing = 1;
                CancelIoEx((HANDLE)e->listen_sock, &e->accepts[i].op.ov);
            }
        }
        if (probing) {
            /* The probe window passed: take them back, wait longer. */
            retry_later(e);
            accept_unlock(e);
            return;
        }
        timer_in(e, PROBE_WINDOW_MS);
        may_resume = e->accept_ok_while_starved;
    }
    accept_unlock(e);
    if (arm_idle_slots(e) && may_resume) {
        AcquireSRWLockExclusive(&e->accept_lock);
        if (e->accept_starved) {
            e->accept_starved = 0;
            e->accept_backoff_ms = 0;
            iocpi_log_later(e, e->accept_shortage_warned ? IOCP_LOG_INFO : IOCP_LOG_DEBUG,
                            "accepting resumed");
        }
        accept_unlock(e);
    }
}

static void reject(iocp_engine *e, SOCKET s, const char *peer)
{
    LONG64 n = InterlockedIncrement64(&e->counters.rejected);
    /* One line per hundred: a storm of rejects must not become a storm of log lines. */
    if (n % 100 == 1)
        iocpi_log(e, IOCP_LOG_WARN, "connection limit (%lu) reached: rejected %s (%lld so far)",
                  (unsigned long)e->config.max_connections, peer, (long long)n);
    iocpi_close_socket(s, 1);
}

/* One address already holds max_connections_per_address: reset at once, like reject. A
 * host that opens connections in a loop is refused thousands of times a second, so one
 * warning a second at most; the others at debug level. */
static void reject_per_address(iocp_engine *e, SOCKET s, const char *peer)
{
    LONG64 n = InterlockedIncrement64(&e->counters.rejected_per_address);
    LONG64 now = (LONG64)iocpi_now_ms();
    LONG64 last = e->peer_warned_ms;
    int warn = (last == 0 || now - last >= 1000) &&
               InterlockedCompareExchange64(&e->peer_warned_ms, now, last) == last;
    iocpi_log(e, warn ? IOCP_LOG_WARN : IOCP_LOG_DEBUG,
              "per-address limit (%lu) reached: rejected %s (%lld so far)",
              (unsigned long)e->config.max_connections_per_address, peer, (long long)n);
    iocpi_close_socket(s, 1);
}

void iocpi_listener_reject(iocp_engine *e, SOCKET s, const char *peer)
{
    reject(e, s, peer);
}

void iocpi_listener_admit(iocp_engine *e, iocp_conn *c, SOCKET s, const char *peer,
                          const SOCKADDR_STORAGE *remote)
{
    DWORD sys = 0;
    if (!iocpi_proxy_begin(e, c, (const struct sockaddr *)remote) &&
        !iocpi_peers_admit(e, (const struct sockaddr *)remote, c)) {
        /* After the pool, not before: only an address holding a context is counted, so the
         * table never holds more addresses than there are contexts (peers.c). From a trusted
         * balancer the count waits for the PROXY header's address (proxy_conn.c). */
        iocpi_pool_return(e, c);
        reject_per_address(e, s, peer);
    } else if (iocpi_associate(e, s, &sys) != IOCP_OK) {
        iocpi_log(e, IOCP_LOG_ERROR, "cannot associate %s with the port (Win32 %lu)", peer,
                  (unsigned long)sys);
        iocpi_close_socket(s, 1);
        iocpi_peers_release(e, c);
        c->proxy_pending = 0;
        iocpi_pool_return(e, c);
    } else {
        memcpy(c->peer, peer, sizeof c->peer);
        iocpi_conn_open(c, s, 0);
    }
}

/* The address opened more than conn_burst connections and conn_rate a second since: reset
 * before it takes a context (or a TLS handshake). Logged as reject_per_address is. */
static void reject_rate(iocp_engine *e, SOCKET s, const char *peer)
{
    LONG64 n = InterlockedIncrement64(&e->counters.rejected_rate);
    LONG64 now = (LONG64)iocpi_now_ms();
    LONG64 last = e->rate_warned_ms;
    int warn = (last == 0 || now - last >= 1000) &&
               InterlockedCompareExchange64(&e->rate_warned_ms, now, last) == last;
    iocpi_log(e, warn ? IOCP_LOG_WARN : IOCP_LOG_DEBUG,
              "connection rate (%lu a second) passed: rejected %s (%lld so far)",
              (unsigned long)e->config.conn_rate, peer, (long long)n);
    iocpi_close_socket(s, 1);
}

/* A finished AcceptEx gives its slot back; the caller has read the slot's address buffer
 * (retry_cb may post a free slot at any time). Returns whether to re-arm it now: not while
 * starved (the timer owns the slots then; a success lets its next probe end the shortage),
 * and not after ERROR_STREAK_SLOW failures in a row (say, Wine failing accepts for want of
 * descriptors, or a storm of clients that reset in the backlog), which back off as a
 * shortage does. */
static int release_slot(iocp_engine *e, iocpi_accept *a, DWORD error)
{
    int rearm = 0;
    AcquireSRWLockExclusive(&e->accept_lock);
    a->sock = INVALID_SOCKET;
    a->posted = 0;
    if (e->stopping || e->accept_stopped) {
        /* the stop takes the slots back */
    } else if (error == 0) {
        e->accept_error_streak = 0;
        /* While starved, a probe's success lets the next probe end the shortage; one posted
         * before it began (its cancel came too late) shows nothing new. */
        if (e->accept_starved)
            e->accept_ok_while_starved |= a->probe;
        else
            rearm = 1;
    } else if (!e->accept_starved) {
        if (++e->accept_error_streak >= ERROR_STREAK_SLOW) {
            e->accept_error_streak = 0;
            starve_locked(e, error);
        } else {
            rearm = 1;
        }
    }
    accept_unlock(e);
    return rearm;
}

/* Entered from the port when a posted AcceptEx finishes: succeeded, failed, or cancelled by
 * the stop (the listener closed) or by the shortage's probe. */
static void accept_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    (void)bytes;
    iocpi_accept *a = CONTAINING_RECORD(op, iocpi_accept, op);
    iocp_engine *e = a->engine;
    SOCKET s = a->sock;
    IOCPI_ASSERT(a->posted && s != INVALID_SOCKET);
    char peer[64] = "?";
    SOCKADDR_STORAGE remote_addr; /* a copy: the slot's buffer is reused once it is re-armed */
    memset(&remote_addr, 0, sizeof remote_addr);

    if (error == 0 && !e->stopping) {
        SOCKET ls = e->listen_sock;
        if (setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (const char *)&ls, sizeof ls) != 0)
            error = (DWORD)WSAGetLastError();
    }
    if (error == 0 && !e->stopping) {
        struct sockaddr *local = NULL, *remote = NULL;
        int local_len = 0, remote_len = 0;
        e->get_accept_addrs(a->addrs, 0, ADDR_LEN, ADDR_LEN, &local, &local_len, &remote,
                            &remote_len);
        if (remote != NULL) {
            iocpi_format_addr(remote, peer, sizeof peer);
            if (remote_len > 0 && (size_t)remote_len <= sizeof remote_addr)
                memcpy(&remote_addr, remote, (size_t)remote_len);
        }
    }
    int rearm = release_slot(e, a, error);
    if (e->stopping) {
        iocpi_close_socket(s, 1);
    } else if (error != 0) {
        /* e.g. the client reset before the accept completed: this slot just goes on. A
         * cancel by iocp_engine_stop_accepting is no error. */
        if (!(e->accept_stopped && error == ERROR_OPERATION_ABORTED))
            InterlockedIncrement64(&e->counters.accept_errors);
        iocpi_log(e, IOCP_LOG_DEBUG, "accept failed (Win32 %lu)%s", (unsigned long)error,
                  rearm ? "; re-arming" : "");
        iocpi_close_socket(s, 1);
        if (rearm)
            post_accept(a);
    } else if (!iocpi_proxy_trusted(e, (const struct sockaddr *)&remote_addr) &&
               !iocpi_peers_rate_admit(e, (const struct sockaddr *)&remote_addr)) {
        /* A trusted balancer's connections are rated by the PROXY header's client instead. */
        reject_rate(e, s, peer);
        if (rearm)
            post_accept(a);
    } else {
        iocp_conn *c = iocpi_pool_take(e);
        if (rearm)
            post_accept(a); /* accepting goes on while this connection starts */
        if (c != NULL)
            iocpi_listener_admit(e, c, s, peer, &remote_addr);
        else if (!iocpi_evict_for(e, s, peer, &remote_addr))
            reject(e, s, peer);
        /* else: every context was taken and the idlest quiet connection makes room; this one
         * gets its context when it is back in the pool (evict.c) */
    }
    /* Last: the stop waits for this count, and the re-arm above is already counted. After
     * iocp_engine_stop_accepting the last accept to finish closes the listener. */
    if (InterlockedDecrement(&e->accepts_posted) == 0 && e->accept_stopped) {
        AcquireSRWLockExclusive(&e->accept_lock);
        if (e->accepts_posted == 0)
            close_listener_locked(e);
        accept_unlock(e);
    }
}

/* Makes, binds and listens on the configured address; *s is the socket (or INVALID_SOCKET),
 * *family its address family. Also a supervisor's held listener (listener_hold.c). */
iocp_err iocpi_bind_listener(const iocp_config *config, int *family, SOCKET *out,
                             iocp_error_info *err)
{
    ADDRINFOW *ai = NULL;
    iocp_err rc =
        iocpi_resolve_bind(config->bind_address, config->port, SOCK_STREAM, IPPROTO_TCP, &ai, err);
    if (rc != IOCP_OK)
        return rc;
    char want[80];
    iocpi_format_addr(ai->ai_addr, want, sizeof want);
    DWORD sys = 0;
    SOCKET s = iocpi_socket(ai->ai_family);
    if (s == INVALID_SOCKET) {
        sys = (DWORD)WSAGetLastError();
        rc = iocp_err_from_sys(sys);
        iocpi_error_set(err, rc, sys, "cannot create the listening socket");
        goto fail;
    }
    *family = ai->ai_family;
    /* Nobody else may bind this port while we hold it (SO_REUSEADDR would let them). */
    BOOL yes = TRUE;
    setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&yes, sizeof yes);
    if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ai->ai_addr;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
            DWORD off = 0; /* dual-stack: IPv4 clients arrive as ::ffff:a.b.c.d */
            setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&off, sizeof off);
        }
    }
    if (bind(s, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
        sys = (DWORD)WSAGetLastError();
        /* 10013 (another socket's SO_EXCLUSIVEADDRUSE) reads as "port taken" too. */
        rc = iocpi_bind_failed(err, sys, 0, want, config->port);
        goto fail;
    }
    if (listen(s, config->backlog > 0 ? config->backlog : SOMAXCONN) != 0) {
        sys = (DWORD)WSAGetLastError();
        rc = iocp_err_from_sys(sys);
        iocpi_error_set(err, rc, sys, "cannot listen on %s", want);
        goto fail;
    }
    FreeAddrInfoW(ai);
    *out = s;
    return IOCP_OK;

fail:
    if (s != INVALID_SOCKET)
        closesocket(s);
    FreeAddrInfoW(ai);
    return rc;
}

iocp_err iocpi_listener_start(iocp_engine *e, iocp_error_info *err)
{
    SOCKET s = INVALID_SOCKET;
    /* Handed over by another engine (handover.c), or our own. */
    iocp_err rc = e->config.inherit_listener != NULL
                      ? iocpi_handover_inherit(e, &s, err)
                      : iocpi_bind_listener(&e->config, &e->family, &s, err);
    if (rc != IOCP_OK)
        return rc;
    DWORD sys = 0;
    SOCKADDR_STORAGE bound;
    int bound_len = sizeof bound;
    if (getsockname(s, (struct sockaddr *)&bound, &bound_len) == 0) {
        iocpi_format_addr((struct sockaddr *)&bound, e->address, sizeof e->address);
        e->bound_port = ntohs(((struct sockaddr_in *)&bound)->sin_port); /* same offset in v6 */
    }
    rc = iocpi_load_extensions(e, s, &sys);
    if (rc == IOCP_OK && e->config.inherit_listener != NULL &&
        e->config.inherit_listener->accept_by_events)
        e->accept_emulated = 1; /* a supervisor's listener: never on any port (handover.c) */
    else if (rc == IOCP_OK)
        rc = iocpi_associate(e, s, &sys);
    if (rc != IOCP_OK && e->config.inherit_listener != NULL && sys == ERROR_INVALID_PARAMETER) {
        /* The original is on its owner's port, and a handle goes on one port only: our
         * AcceptEx calls complete by an event each instead (handover.c). */
        e->accept_emulated = 1;
        rc = IOCP_OK;
    }
    if (rc != IOCP_OK) {
        iocpi_error_set(err, rc, sys, "cannot prepare the listener on %s", e->address);
        goto fail;
    }
    e->accept_retry_timer = CreateThreadpoolTimer(retry_cb, e, NULL);
    e->accepts = calloc(e->config.accepts_outstanding, sizeof *e->accepts);
    if (e->accept_retry_timer == NULL || e->accepts == NULL) {
        rc = IOCP_E_NO_MEMORY;
        iocpi_error_set(err, rc, GetLastError(), "cannot allocate the accept slots");
        goto fail;
    }
    for (uint32_t i = 0; i < e->config.accepts_outstanding; i++) {
        iocpi_accept *a = &e->accepts[i];
        a->engine = e;
        iocpi_op_init(&a->op, accept_done);
        a->sock = INVALID_SOCKET;
    }
    if (e->accept_emulated) {
        rc = iocpi_handover_waits_start(e, err);
        if (rc != IOCP_OK)
            goto fail;
    }
    e->listen_sock = s;
    for (uint32_t i = 0; i < e->config.accepts_outstanding; i++)
        post_accept(&e->accepts[i]);
    return IOCP_OK;

fail:
    closesocket(s);
    return rc;
}

/* Stops posting accepts and takes back the posted ones. The listener is closed by the last
 * of them to finish (accept_done), not here: an AcceptEx that completed before its cancel
 * came is a connection, which needs the listener for SO_UPDATE_ACCEPT_CONTEXT. */
iocp_err iocp_engine_stop_accepting(iocp_engine *engine)
{
    iocp_engine *e = engine;
    if (e == NULL || !e->config.listen)
        return IOCP_E_INVALID_ARG;
    AcquireSRWLockExclusive(&e->accept_lock);
    if (e->accept_stopped || e->listen_sock == INVALID_SOCKET) {
        accept_unlock(e);
        return IOCP_OK;
    }
    e->accept_stopped = 1;
    /* Cancel one op at a time: CancelIoEx(s, NULL) would also take the successor's accepts
     * when both engines are in one process (one file object, every handle's requests). */
    for (uint32_t i = 0; i < e->config.accepts_outstanding; i++) {
        if (e->accepts[i].posted)
            CancelIoEx((HANDLE)e->listen_sock, &e->accepts[i].op.ov);
    }
    if (e->accepts_posted == 0)
        close_listener_locked(e);
    iocpi_log_later(e, IOCP_LOG_INFO, "stopped accepting on %s", e->address);
    accept_unlock(e);
    return IOCP_OK;
}

/* Closes the listener: its pending AcceptEx calls complete with an error and their sockets
 * are closed in accept_done. */
void iocpi_listener_stop(iocp_engine *e)
{
    /* The retry timer is detached under accept_lock, where every timer_in runs: a worker in
     * starve_locked or a running retry_cb then finds no timer, never a closed one. */
    AcquireSRWLockExclusive(&e->accept_lock);
    PTP_TIMER timer = e->accept_retry_timer;
    e->accept_retry_timer = NULL;
    SOCKET s = e->listen_sock;
    e->listen_sock = INVALID_SOCKET;
    if (s != INVALID_SOCKET) {
        /* One op at a time, not CancelIoEx(s, NULL): that would take a successor's accepts
         * too when it runs in this process (one socket, two handles; handover.c). */
        for (uint32_t i = 0; i < e->config.accepts_outstanding; i++) {
            if (e->accepts[i].posted)
                CancelIoEx((HANDLE)s, &e->accepts[i].op.ov);
        }
        closesocket(s);
    }
    accept_unlock(e);
    iocpi_timer_close(&timer); /* outside the lock: a running retry_cb may be waiting for it */
}
