/*
 * udp.c: the engine's UDP endpoint, on the same completion port and workers as TCP.
 *
 * One datagram socket (dual-stack [::] by default, on the TCP listener's port number unless
 * udp_port says otherwise) with udp_receives overlapped WSARecvFrom calls always posted, each
 * into a 64 KiB buffer of its own (no datagram is cut; udp_buffer_size, if smaller, is the
 * longest passed on, the others counted truncated). A
 * receive that completes at once (skip-completion-port-on-success) takes a turn in the
 * worker's round, as a TCP receive does. on_datagram runs on the worker; then the same slot
 * is posted again.
 *
 * Sending: udp_send_queue slots, each holding one datagram (its own 1,536 bytes, or a heap
 * buffer for a longer one) from iocp_send_to until its WSASendTo completes. No slot free: the
 * datagram is dropped and counted, the caller never waits. A worker starts the send at once;
 * another thread posts the slot to the port and a worker starts it (so a caller never makes
 * the system call, and a burst from outside is bounded by the slots, not by memory).
 *
 * Every datagram passes the guard first (udp_guard.c: no answer to a source that makes the
 * endpoint a reflector or a loop, and a rate per source and in all), whether it is echoed or
 * passed to on_datagram.
 *
 * SIO_UDP_CONNRESET is turned off: on Windows an ICMP port-unreachable (an echo to a peer
 * that has gone) would otherwise fail the endpoint's next receive with WSAECONNRESET. Such
 * errors, if they come anyway, are counted and the receive is posted again.
 *
 * Stopping: the socket is closed under the exclusive lock (calls on it take it shared), each
 * posted receive and send cancelled by its OVERLAPPED first (a successor's duplicate keeps the
 * socket open, and CancelIoEx(s, NULL) would take a successor's ops in this process), so
 * every one completes; busy (receives posted + send slots taken) falls to 0, which the
 * engine's stop waits for. Handing the endpoint to a successor: udp_handover.c.
 */
#include "udpi.h"

#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif
#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

#define ERROR_STREAK   64 /* failed receives in a row on one slot: it is retired */
#define SOCKET_BUFFERS (4 * 1024 * 1024)

/* ---- receiving ------------------------------------------------------------------------- */

static void recv_done(iocpi_op *op, DWORD bytes, DWORD error);

/* A slot leaves the ring (the socket is closed, or it failed too often). */
static void recv_retire(udp_recv *r)
{
    InterlockedDecrement(&r->udp->recvs_live);
    InterlockedDecrement64(&r->udp->busy);
}

static int closed(iocpi_udp *u)
{
    return u->sock == INVALID_SOCKET; /* a hint; recv_post looks again under the lock */
}

/* Posts the slot's WSARecvFrom. A receive that finished at once with skip mode queues no
 * packet: on a worker it takes a turn (iocpi_defer_turn), elsewhere (the start) it is posted
 * to the port. */
static void recv_post(udp_recv *r)
{
    iocpi_udp *u = r->udp;
    iocp_engine *e = u->e;
    for (;;) {
        AcquireSRWLockShared(&u->lock);
        if (u->sock == INVALID_SOCKET || u->receiving_stopped) {
            ReleaseSRWLockShared(&u->lock);
            recv_retire(r);
            return;
        }
        memset(&r->op.ov, 0, sizeof r->op.ov);
        if (u->emulated) /* its event's wait posts the completion, even an immediate one */
            r->op.ov.hEvent = iocpi_emulated_event(&r->emulated);
        r->from_len = (INT)sizeof r->from;
        r->flags = 0;
        WSABUF b;
        b.buf = (char *)r->buf;
        b.len = u->buffer_size;
        DWORD got = 0;
        InterlockedIncrement64(&e->counters.ops_in_flight);
        int rc = WSARecvFrom(u->sock, &b, 1, &got, &r->flags, (struct sockaddr *)&r->from,
                             &r->from_len, &r->op.ov, NULL);
        DWORD error = rc == 0 ? 0 : (DWORD)WSAGetLastError();
        ReleaseSRWLockShared(&u->lock);
        /* WSAEMSGSIZE (a datagram longer than the buffer) ends with a warning status, for
         * which the system queues a packet even in skip mode, as for a pending call. */
        if (error == WSA_IO_PENDING || error == WSAEMSGSIZE || (rc == 0 && !u->skip))
            return;
        if (rc == 0) {
            if (iocpi_on_worker()) {
                InterlockedDecrement64(&e->counters.ops_in_flight);
                iocpi_defer_turn_spread(e, &r->op, got);
            } else {
                iocpi_post_packet(e, got, 0, &r->op.ov); /* still counted in flight */
            }
            return;
        }
        /* Failed at once: no packet. An ICMP error reported late (WSAECONNRESET,
         * WSAENETRESET) is worth another try; so is anything else a few times. */
        InterlockedDecrement64(&e->counters.ops_in_flight);
        if (u->sock == INVALID_SOCKET) {
            recv_retire(r);
            return;
        }
        InterlockedIncrement64(&e->counters.udp_errors);
        if (++r->error_streak >= ERROR_STREAK) {
            char why[96];
            iocpi_log(e, IOCP_LOG_ERROR,
                      "udp: a receive failed %u times in a row: %s; one "
                      "receive fewer from now on",
                      (unsigned)ERROR_STREAK,
                      iocp_format_error(iocp_err_from_sys(error), error, why, sizeof why));
            recv_retire(r);
            return;
        }
    }
}

/* Entered from the port (a pending or failed receive, or a start-up one that finished at
 * once) or from a turn (finished at once on a worker). The slot is posted: it is this
 * call's to post again or retire. */
static void recv_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    udp_recv *r = CONTAINING_RECORD(op, udp_recv, op);
    iocpi_udp *u = r->udp;
    iocp_engine *e = u->e;
    if (error != 0) {
        if (error == ERROR_MORE_DATA || error == WSAEMSGSIZE) {
            /* Longer than the buffer: never passed on in part. */
            InterlockedIncrement64(&e->counters.udp_truncated);
            r->error_streak = 0;
        } else if (closed(u) || u->receiving_stopped) {
            recv_retire(r); /* closed, or cancelled for a successor */
            return;
        } else {
            /* With SIO_UDP_CONNRESET off an ICMP error should not get here; counted if it
             * does, and the endpoint goes on. */
            InterlockedIncrement64(&e->counters.udp_errors);
            if (++r->error_streak >= ERROR_STREAK) {
                char why[96];
                iocpi_log(e, IOCP_LOG_ERROR,
                          "udp: a receive failed %u times in a row: %s; "
                          "one receive fewer from now on",
                          (unsigned)ERROR_STREAK,
                          iocp_format_error(iocp_err_from_sys(error), error, why, sizeof why));
                recv_retire(r);
                return;
            }
        }
        recv_post(r);
        return;
    }
    r->error_streak = 0;
    if ((r->flags & MSG_PARTIAL) || bytes > u->max_datagram) {
        InterlockedIncrement64(&e->counters.udp_truncated);
        recv_post(r);
        return;
    }
    InterlockedIncrement64(&e->counters.udp_datagrams_in);
    InterlockedAdd64(&e->counters.udp_bytes_in, (LONG64)bytes);
    iocp_addr from;
    memset(&from, 0, sizeof from);
    size_t n = r->from_len > 0 ? (size_t)r->from_len : 0;
    if (n > sizeof from.sa.bytes)
        n = sizeof from.sa.bytes;
    memcpy(from.sa.bytes, &r->from, n);
    from.len = (int)n;
    if (!iocpi_udp_guard_admit(u->guard, u->port, (const struct sockaddr *)&r->from, r->buf,
                               bytes)) {
        /* counted by the guard */
    } else if (e->config.on_datagram != NULL) {
        e->config.on_datagram(e, &from, r->buf, bytes);
    } else if (iocp_send_to(e, &from, r->buf, bytes) == IOCP_E_QUEUE_FULL) {
        /* counted in udp_dropped; nothing else to do for a datagram */
    }
    recv_post(r);
}

/* ---- sending --------------------------------------------------------------------------- */

static void send_release(udp_send *s)
{
    iocpi_udp *u = s->udp;
    if (s->data != s->small)
        free(s->data);
    s->data = NULL;
    InterlockedExchange(&s->phase, SEND_FREE);
    InterlockedPushEntrySList(&u->free_sends, &s->entry);
    InterlockedDecrement64(&u->busy);
}

static void send_finish(udp_send *s, DWORD error)
{
    iocp_engine *e = s->udp->e;
    if (error == 0) {
        InterlockedIncrement64(&e->counters.udp_datagrams_out);
        InterlockedAdd64(&e->counters.udp_bytes_out, (LONG64)s->len);
    } else if (!closed(s->udp)) {
        InterlockedIncrement64(&e->counters.udp_errors);
    }
    send_release(s);
}

/* On a worker: WSASendTo for the slot. */
static void send_issue(udp_send *s)
{
    iocpi_udp *u = s->udp;
    iocp_engine *e = u->e;
    AcquireSRWLockShared(&u->lock);
    if (u->sock == INVALID_SOCKET) {
        ReleaseSRWLockShared(&u->lock);
        send_release(s); /* the endpoint closed under it: not sent, not an error */
        return;
    }
    InterlockedExchange(&s->phase, SEND_PENDING);
    memset(&s->op.ov, 0, sizeof s->op.ov);
    udp_event *ev = NULL;
    if (u->emulated) {
        /* No packet may come (it would go to the owner's port): an event of our own. */
        ev = iocpi_udp_event_take(u);
        if (ev == NULL) {
            ReleaseSRWLockShared(&u->lock);
            send_finish(s, ERROR_NOT_ENOUGH_MEMORY);
            return;
        }
        ResetEvent(ev->event);
        s->op.ov.hEvent = (HANDLE)((ULONG_PTR)ev->event | 1);
    }
    InterlockedIncrement64(&e->counters.ops_in_flight);
    WSABUF b;
    b.buf = (char *)s->data;
    b.len = (ULONG)s->len;
    DWORD sent = 0;
    int rc = WSASendTo(u->sock, &b, 1, &sent, 0, (const struct sockaddr *)&s->to, s->to_len,
                       &s->op.ov, NULL);
    DWORD error = rc == 0 ? 0 : (DWORD)WSAGetLastError();
    ReleaseSRWLockShared(&u->lock);
    if (ev != NULL) {
        /* A datagram's send pends only while the socket's buffer is full, and the stop
         * cancels it: the worker waits for it here. */
        if (error == WSA_IO_PENDING) {
            WaitForSingleObject(ev->event, INFINITE);
            error = iocpi_op_error(&s->op.ov);
        }
        iocpi_udp_event_return(u, ev);
        InterlockedDecrement64(&e->counters.ops_in_flight);
        send_finish(s, error);
        return;
    }
    if (error == WSA_IO_PENDING || (rc == 0 && !u->skip))
        return; /* the packet finishes it */
    InterlockedDecrement64(&e->counters.ops_in_flight);
    send_finish(s, error);
}

/* Entered from the port: SEND_ISSUE (posted by iocp_send_to off the workers) or
 * SEND_PENDING (WSASendTo completed). */
static void send_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    (void)bytes;
    udp_send *s = CONTAINING_RECORD(op, udp_send, op);
    IOCPI_ASSERT(s->phase == SEND_ISSUE || s->phase == SEND_PENDING);
    if (s->phase == SEND_ISSUE)
        send_issue(s);
    else
        send_finish(s, error);
}

/* The destination in the socket's family: an IPv4 peer of a dual-stack socket as
 * ::ffff:a.b.c.d, an IPv4-mapped one of an IPv4 socket as plain IPv4. 0 = unusable. */
static int dest_address(const iocpi_udp *u, const iocp_addr *to, SOCKADDR_STORAGE *out)
{
    const struct sockaddr *sa = (const struct sockaddr *)to->sa.bytes;
    memset(out, 0, sizeof *out);
    if (to->len >= (int)sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)to->sa.bytes;
        if (u->family == AF_INET) {
            memcpy(out, in, sizeof *in);
            return (int)sizeof *in;
        }
        struct sockaddr_in6 *o6 = (struct sockaddr_in6 *)out;
        o6->sin6_family = AF_INET6;
        o6->sin6_port = in->sin_port;
        o6->sin6_addr.s6_addr[10] = 0xff;
        o6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&o6->sin6_addr.s6_addr[12], &in->sin_addr, 4);
        return (int)sizeof *o6;
    }
    if (to->len >= (int)sizeof(struct sockaddr_in6) && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)to->sa.bytes;
        if (u->family == AF_INET6) {
            memcpy(out, in6, sizeof *in6);
            return (int)sizeof *in6;
        }
        if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return 0;
        struct sockaddr_in *o4 = (struct sockaddr_in *)out;
        o4->sin_family = AF_INET;
        o4->sin_port = in6->sin6_port;
        memcpy(&o4->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
        return (int)sizeof *o4;
    }
    return 0;
}

iocp_err iocp_send_to(iocp_engine *engine, const iocp_addr *to, const void *data, size_t len)
{
    iocp_engine *e = engine;
    if (e == NULL || to == NULL || (data == NULL && len > 0) || len > IOCP_UDP_MAX_DATAGRAM)
        return IOCP_E_INVALID_ARG;
    iocpi_udp *u = e->udp;
    if (u == NULL)
        return IOCP_E_STATE;
    if (e->stopping || closed(u))
        return IOCP_E_STOPPED;
    SOCKADDR_STORAGE dest;
    int dest_len = dest_address(u, to, &dest);
    if (dest_len == 0)
        return IOCP_E_INVALID_ARG;
    InterlockedIncrement64(&u->busy); /* before the slot: the stop never sees it uncounted */
    PSLIST_ENTRY entry = InterlockedPopEntrySList(&u->free_sends);
    if (entry == NULL) {
        InterlockedDecrement64(&u->busy);
        InterlockedIncrement64(&e->counters.udp_dropped);
        return IOCP_E_QUEUE_FULL;
    }
    udp_send *s = CONTAINING_RECORD(entry, udp_send, entry);
    IOCPI_ASSERT(s->phase == SEND_FREE);
    if (len <= sizeof s->small) {
        s->data = s->small;
    } else {
        s->data = malloc(len);
        InterlockedIncrement64(&e->counters.allocations);
        if (s->data == NULL) {
            s->data = s->small;
            send_release(s);
            InterlockedIncrement64(&e->counters.udp_dropped);
            return IOCP_E_NO_MEMORY;
        }
    }
    if (len > 0)
        memcpy(s->data, data, len);
    s->len = len;
    memcpy(&s->to, &dest, sizeof dest);
    s->to_len = dest_len;
    if (iocpi_on_worker()) {
        send_issue(s);
    } else {
        InterlockedExchange(&s->phase, SEND_ISSUE);
        iocpi_post(e, &s->op);
    }
    return IOCP_OK;
}

/* ---- start and stop -------------------------------------------------------------------- */

static void *pages(size_t size)
{
    return VirtualAlloc(NULL, size, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
}

static void udp_free(iocpi_udp *u)
{
    if (u->sock != INVALID_SOCKET)
        closesocket(u->sock);
    iocpi_udp_unemulate(u);
    iocpi_udp_events_free(u);
    if (u->sends != NULL) {
        for (uint32_t i = 0; i < u->send_count; i++)
            if (u->sends[i].data != NULL && u->sends[i].data != u->sends[i].small)
                free(u->sends[i].data);
        VirtualFree(u->sends, 0, MEM_RELEASE);
    }
    if (u->recv_slab != NULL)
        VirtualFree(u->recv_slab, 0, MEM_RELEASE);
    free(u->recvs);
    iocpi_udp_guard_free(u->guard);
    free(u);
}

/* Makes and binds a datagram socket on bind_address:port as the endpoint's own is made
 * (exclusive, dual-stack on [::], 4 MiB buffers, SIO_UDP_CONNRESET off); also for a
 * supervisor's held socket (udp_hold.c). *connreset_error: the WSA error when
 * SIO_UDP_CONNRESET could not be turned off (the caller says so in its log), else 0. On
 * failure *out is INVALID_SOCKET. */
iocp_err iocpi_udp_bind(const char *bind_address, uint16_t port, SOCKET *out, int *family,
                        int *connreset_error, iocp_error_info *err)
{
    ADDRINFOW *ai = NULL;
    *out = INVALID_SOCKET;
    *connreset_error = 0;
    iocp_err rc = iocpi_resolve_bind(bind_address, port, SOCK_DGRAM, IPPROTO_UDP, &ai, err);
    if (rc != IOCP_OK)
        return rc;
    char want[80];
    iocpi_format_addr(ai->ai_addr, want, sizeof want);
    DWORD sys = 0;
    *family = ai->ai_family;
    SOCKET s = WSASocketW(ai->ai_family, SOCK_DGRAM, IPPROTO_UDP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL)
        s = WSASocketW(ai->ai_family, SOCK_DGRAM, IPPROTO_UDP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET) {
        sys = (DWORD)WSAGetLastError();
        rc = iocp_err_from_sys(sys);
        iocpi_error_set(err, rc, sys, "udp: cannot create the socket");
        goto done;
    }
    BOOL yes = TRUE;
    setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&yes, sizeof yes);
    if (ai->ai_family == AF_INET6 &&
        IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr)) {
        DWORD off = 0; /* dual-stack: IPv4 peers arrive as ::ffff:a.b.c.d */
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&off, sizeof off);
    }
    if (bind(s, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
        sys = (DWORD)WSAGetLastError();
        rc = iocpi_bind_failed(err, sys, 1, want, port);
        closesocket(s);
        goto done;
    }
    /* Room for bursts while every receive is being handled (the system may cap it). */
    int bufsize = SOCKET_BUFFERS;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, (const char *)&bufsize, sizeof bufsize);
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, (const char *)&bufsize, sizeof bufsize);
    BOOL report = FALSE;
    DWORD ignored = 0;
    if (WSAIoctl(s, SIO_UDP_CONNRESET, &report, sizeof report, NULL, 0, &ignored, NULL, NULL) != 0)
        *connreset_error = WSAGetLastError();
    *out = s;
done:
    FreeAddrInfoW(ai);
    return rc;
}

/* Makes and binds the endpoint's own socket (u->sock, u->family). */
static iocp_err udp_bind(iocp_engine *e, iocpi_udp *u, uint16_t port, iocp_error_info *err)
{
    int connreset_error = 0;
    iocp_err rc =
        iocpi_udp_bind(e->config.bind_address, port, &u->sock, &u->family, &connreset_error, err);
    if (rc == IOCP_OK && connreset_error != 0)
        iocpi_log(e, IOCP_LOG_WARN,
                  "udp: SIO_UDP_CONNRESET cannot be turned off (WSA %d): an ICMP error may "
                  "fail a receive (counted in udp_errors, the receive is posted again)",
                  connreset_error);
    return rc;
}

iocp_err iocpi_udp_start(iocp_engine *e, iocp_error_info *err)
{
    const iocp_config *c = &e->config;
    uint32_t receives = c->udp_receives ? c->udp_receives : 4 * e->worker_count;
    if (receives > 1024)
        receives = 1024;
    if (c->udp_receives > 1024) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "udp_receives %lu is out of range 0..1024",
                        (unsigned long)c->udp_receives);
        return IOCP_E_INVALID_ARG;
    }
    if (c->udp_buffer_size < 512 || c->udp_buffer_size > 65536) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "udp_buffer_size %lu is out of range 512..65536",
                        (unsigned long)c->udp_buffer_size);
        return IOCP_E_INVALID_ARG;
    }
    if (c->udp_send_queue < 1 || c->udp_send_queue > 65536) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "udp_send_queue %lu is out of range 1..65536",
                        (unsigned long)c->udp_send_queue);
        return IOCP_E_INVALID_ARG;
    }
    uint16_t port = c->udp_port ? c->udp_port : (c->listen ? e->bound_port : 0);
    iocpi_udp *u = calloc(1, sizeof *u);
    if (u == NULL) {
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "udp endpoint");
        return IOCP_E_NO_MEMORY;
    }
    u->e = e;
    u->sock = INVALID_SOCKET;
    InitializeSRWLock(&u->lock);
    InitializeSListHead(&u->free_sends);
    InitializeSListHead(&u->send_events);
    /* The system always gets 64 KiB, more than any IPv4 datagram (65,507), so it never
     * truncates one and udp_buffer_size is enforced here. A receive into a smaller buffer
     * fails with WSAEMSGSIZE, and whether a packet follows an immediate one differs: Windows
     * queues one (a warning status), Wine 10 does not (the slot would be lost). */
    u->buffer_size = 65536;
    u->max_datagram = c->udp_buffer_size;
    u->recv_count = receives;
    u->send_count = c->udp_send_queue;
    u->guard = iocpi_udp_guard_new(e, err);
    if (u->guard == NULL) {
        udp_free(u);
        return IOCP_E_NO_MEMORY;
    }

    iocp_err rc = c->inherit_udp != NULL ? iocpi_udp_inherit(e, &u->sock, &u->family, err)
                                         : udp_bind(e, u, port, err);
    if (rc != IOCP_OK) {
        udp_free(u);
        return rc;
    }
    DWORD sys = 0;
    SOCKADDR_STORAGE bound;
    int bound_len = sizeof bound;
    if (getsockname(u->sock, (struct sockaddr *)&bound, &bound_len) == 0) {
        iocpi_format_addr((struct sockaddr *)&bound, u->address, sizeof u->address);
        u->port = ntohs(((struct sockaddr_in *)&bound)->sin_port); /* same offset in v6 */
    }
    if (c->inherit_udp != NULL && c->inherit_udp->by_events)
        u->emulated = 1; /* a supervisor's socket: never on any port (udp_hold.c) */
    else
        rc = iocpi_associate(e, u->sock, &sys);
    if (rc != IOCP_OK && c->inherit_udp != NULL && sys == ERROR_INVALID_PARAMETER) {
        /* The original is on its owner's port: every op completes by an event instead
         * (udp_handover.c), as the inherited listener's accepts do. */
        u->emulated = 1;
        rc = IOCP_OK;
    }
    if (rc != IOCP_OK) {
        iocpi_error_set(err, rc, sys, "udp: cannot associate %s with the port", u->address);
        goto fail;
    }
    if (!u->emulated && e->skip_on_success && iocpi_providers_are_ifs(SOCK_DGRAM, IPPROTO_UDP) &&
        SetFileCompletionNotificationModes((HANDLE)u->sock, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS |
                                                                FILE_SKIP_SET_EVENT_ON_HANDLE))
        u->skip = 1;

    u->recvs = calloc(receives, sizeof *u->recvs);
    u->recv_slab = pages((size_t)receives * u->buffer_size);
    u->sends = pages((size_t)u->send_count * sizeof *u->sends);
    if (u->recvs == NULL || u->recv_slab == NULL || u->sends == NULL) {
        rc = IOCP_E_NO_MEMORY;
        iocpi_error_set(err, rc, GetLastError(), "udp: cannot allocate %lu receive buffers",
                        (unsigned long)receives);
        goto fail;
    }
    for (uint32_t i = u->send_count; i-- > 0;) {
        udp_send *s = &u->sends[i];
        s->udp = u;
        iocpi_op_init(&s->op, send_done);
        InterlockedPushEntrySList(&u->free_sends, &s->entry);
    }
    for (uint32_t i = 0; i < receives; i++) {
        udp_recv *r = &u->recvs[i];
        r->udp = u;
        r->buf = u->recv_slab + (size_t)i * u->buffer_size;
        iocpi_op_init(&r->op, recv_done);
    }
    if (u->emulated && (rc = iocpi_udp_emulate(u, err)) != IOCP_OK)
        goto fail;
    e->udp = u;
    u->busy = receives;
    u->recvs_live = (LONG)receives;
    for (uint32_t i = 0; i < receives; i++)
        recv_post(&u->recvs[i]);
    iocpi_log(e, IOCP_LOG_INFO, "udp on %s (%lu receives of %lu bytes, %lu send slots)%s",
              u->address, (unsigned long)receives, (unsigned long)u->buffer_size,
              (unsigned long)u->send_count,
              u->emulated ? "; inherited from another engine: its ops complete by events" : "");
    return IOCP_OK;

fail:
    udp_free(u);
    return rc;
}

void iocpi_udp_stop(iocp_engine *e)
{
    iocpi_udp *u = e->udp;
    if (u == NULL)
        return;
    AcquireSRWLockExclusive(&u->lock);
    SOCKET s = u->sock;
    u->sock = INVALID_SOCKET;
    if (s != INVALID_SOCKET) {
        /* Each op by its OVERLAPPED (ERROR_NOT_FOUND for one not pending): closesocket alone
         * leaves them pending while a successor's duplicate holds the socket open. */
        for (uint32_t i = 0; i < u->recv_count; i++)
            CancelIoEx((HANDLE)s, &u->recvs[i].op.ov);
        for (uint32_t i = 0; i < u->send_count; i++)
            if (u->sends[i].phase == SEND_PENDING)
                CancelIoEx((HANDLE)s, &u->sends[i].op.ov);
        closesocket(s);
    }
    ReleaseSRWLockExclusive(&u->lock);
}

uint64_t iocpi_udp_busy(const iocp_engine *e)
{
    return e->udp != NULL ? (uint64_t)e->udp->busy : 0;
}

void iocpi_udp_fini(iocp_engine *e)
{
    iocpi_udp *u = e->udp;
    if (u == NULL)
        return;
    if (u->busy != 0) {
        /* The stop gave up on an operation the system never completed: it may still write
         * into these buffers, so they are kept. */
        return;
    }
    e->udp = NULL;
    udp_free(u);
}

uint16_t iocp_engine_udp_port(const iocp_engine *engine)
{
    return engine->udp != NULL ? engine->udp->port : 0;
}

const char *iocp_engine_udp_address(const iocp_engine *engine)
{
    return engine->udp != NULL ? engine->udp->address : "";
}

const char *iocp_addr_format(const iocp_addr *addr, char *buf, size_t size)
{
    if (addr == NULL || addr->len < (int)sizeof(struct sockaddr_in)) {
        snprintf(buf, size, "(no address)");
        return buf;
    }
    iocpi_format_addr((const struct sockaddr *)addr->sa.bytes, buf, size);
    return buf;
}
