/*
 * dialer.c: outgoing connections. The host is resolved on a thread-pool thread
 * (GetAddrInfoW blocks), then each address is tried in turn with ConnectEx, each within the
 * timeout (the sweep cancels a ConnectEx past its deadline). The context is reserved from the
 * pool for the whole dial; a dial that fails hands it back and reports on a worker.
 */
#include "iocpi.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000

static void connect_done(iocpi_op *op, DWORD bytes, DWORD error);
static void failed_done(iocpi_op *op, DWORD bytes, DWORD error);

/* Once, when the engine makes the context. */
void iocpi_dialer_init(iocp_conn *c)
{
    iocpi_op_init(&c->connect_op, connect_done);
    iocpi_op_init(&c->dial_failed_op, failed_done);
}

/* Reports the failure on a worker (user code never runs on the resolver's thread). */
void iocpi_dialer_fail(iocp_conn *c, DWORD error)
{
    c->dial->last_error = error ? error : WSAECONNREFUSED;
    iocpi_post(c->engine, &c->dial_failed_op);
}

/* Entered from our own packet: DIALING, every address tried. */
static void failed_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    (void)bytes;
    (void)error;
    iocp_conn *c = CONTAINING_RECORD(op, iocp_conn, dial_failed_op);
    iocp_engine *e = c->engine;
    IOCPI_ASSERT(c->state == CONN_DIALING && c->sock == INVALID_SOCKET);
    DWORD sys = c->dial->last_error;
    iocp_err err = e->stopping ? IOCP_E_STOPPED : iocp_err_from_sys(sys);
    if (c->dial->addrs != NULL)
        FreeAddrInfoW(c->dial->addrs);
    c->dial->addrs = c->dial->next = NULL;
    InterlockedIncrement64(&e->counters.connect_failures);
    char why[96];
    iocpi_log(e, IOCP_LOG_DEBUG, "cannot connect to %s:%u: %s", c->dial->host,
              (unsigned)c->dial->port, iocp_format_error(err, sys, why, sizeof why));
    if (e->handlers.on_connect_failed != NULL)
        e->handlers.on_connect_failed(e, c->dial->user, err, sys);
    AcquireSRWLockExclusive(&c->lock);
    iocpi_dial *dial = c->dial;
    c->dial = NULL;
    InterlockedIncrement(&c->generation);
    if (c->generation == 0)
        c->generation = 1;
    c->state = CONN_FREE;
    ReleaseSRWLockExclusive(&c->lock);
    free(dial);
    iocpi_pool_return(e, c);
}

/* Starts ConnectEx on the next address that takes one; reports failure when none is left.
 * Any thread. */
static void try_next(iocp_conn *c)
{
    iocp_engine *e = c->engine;
    DWORD last = c->dial->last_error;
    while (c->dial->next != NULL && !e->stopping) {
        ADDRINFOW *ai = c->dial->next;
        c->dial->next = ai->ai_next;
        SOCKET s = iocpi_socket(ai->ai_family);
        if (s == INVALID_SOCKET) {
            last = (DWORD)WSAGetLastError();
            continue;
        }
        /* ConnectEx wants a bound socket. */
        SOCKADDR_STORAGE any;
        memset(&any, 0, sizeof any);
        any.ss_family = (ADDRESS_FAMILY)ai->ai_family;
        int any_len = ai->ai_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                                : (int)sizeof(struct sockaddr_in);
        DWORD sys = 0;
        if (bind(s, (struct sockaddr *)&any, any_len) != 0) {
            last = (DWORD)WSAGetLastError();
            closesocket(s);
            continue;
        }
        if (iocpi_associate(e, s, &sys) != IOCP_OK) {
            last = sys;
            closesocket(s);
            continue;
        }
        iocpi_format_addr(ai->ai_addr, c->peer, sizeof c->peer);
        AcquireSRWLockExclusive(&c->lock);
        c->sock = s;
        c->dial->timed_out = 0;
        c->dial->deadline_ms = (LONG64)(iocpi_now_ms() + c->dial->timeout_ms);
        memset(&c->connect_op.ov, 0, sizeof c->connect_op.ov);
        InterlockedIncrement64(&e->counters.ops_in_flight);
        /* The socket is not in skip mode yet: a packet comes even on immediate success. */
        BOOL ok =
            e->connect_ex(s, ai->ai_addr, (int)ai->ai_addrlen, NULL, 0, NULL, &c->connect_op.ov);
        DWORD error = ok ? 0 : (DWORD)WSAGetLastError();
        if (ok || error == ERROR_IO_PENDING) {
            ReleaseSRWLockExclusive(&c->lock);
            return;
        }
        InterlockedDecrement64(&e->counters.ops_in_flight);
        c->sock = INVALID_SOCKET;
        c->dial->deadline_ms = 0;
        ReleaseSRWLockExclusive(&c->lock);
        closesocket(s);
        last = error;
    }
    iocpi_dialer_fail(c, e->stopping ? WSAECONNABORTED : last);
}

/* Dialling a local port nobody listens on can end in TCP's simultaneous open: the kernel
 * picked that very port for our bind(0), and the socket is connected to itself. Nobody is
 * listening, so that is a refusal. */
static int connected_to_itself(SOCKET s)
{
    SOCKADDR_STORAGE local, peer;
    int local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(s, (struct sockaddr *)&local, &local_len) != 0 ||
        getpeername(s, (struct sockaddr *)&peer, &peer_len) != 0)
        return 0;
    return local_len == peer_len && memcmp(&local, &peer, (size_t)local_len) == 0;
}

/* Entered from the port when ConnectEx finishes: DIALING (succeeded, failed, cancelled by the
 * sweep's timeout or by the stop). */
static void connect_done(iocpi_op *op, DWORD bytes, DWORD error)
{
    (void)bytes;
    iocp_conn *c = CONTAINING_RECORD(op, iocp_conn, connect_op);
    iocp_engine *e = c->engine;
    AcquireSRWLockExclusive(&c->lock);
    IOCPI_ASSERT(c->state == CONN_DIALING && c->sock != INVALID_SOCKET);
    SOCKET s = c->sock;
    c->sock = INVALID_SOCKET;
    c->dial->deadline_ms = 0;
    if (error != 0 && c->dial->timed_out)
        error = WSAETIMEDOUT;
    ReleaseSRWLockExclusive(&c->lock);
    if (error != 0 && !c->dial->timed_out) {
        /* The port reports ERROR_CONNECTION_REFUSED (1225) and the like; the socket is still
         * ours, so ask Winsock for the code people know (WSAECONNREFUSED, 10061). */
        DWORD moved = 0, flags = 0;
        if (!WSAGetOverlappedResult(s, &c->connect_op.ov, &moved, FALSE, &flags))
            error = (DWORD)WSAGetLastError();
    }
    if (error == 0 && setsockopt(s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0) != 0)
        error = (DWORD)WSAGetLastError();
    if (error == 0 && connected_to_itself(s))
        error = WSAECONNREFUSED;
    if (error == 0 && e->stopping)
        error = WSAECONNABORTED;
    if (error != 0) {
        iocpi_close_socket(s, 1);
        c->dial->last_error = error;
        try_next(c);
        return;
    }
    FreeAddrInfoW(c->dial->addrs);
    c->user = c->dial->user;
    if (e->tls_client != NULL)
        iocpi_conn_tls_client(c, e->config.tls.server_name ? e->config.tls.server_name
                                                           : c->dial->host);
    AcquireSRWLockExclusive(&c->lock); /* the sweep reads it under the lock */
    iocpi_dial *dial = c->dial;
    c->dial = NULL;
    ReleaseSRWLockExclusive(&c->lock);
    free(dial);
    iocpi_conn_open(c, s, 1);
}

static VOID CALLBACK resolve_cb(PTP_CALLBACK_INSTANCE inst, PVOID ctx)
{
    (void)inst;
    iocp_conn *c = ctx;
    iocp_engine *e = c->engine;
    wchar_t whost[256], wport[8];
    ADDRINFOW hints, *list = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    swprintf(wport, 8, L"%u", (unsigned)c->dial->port);
    int rc = WSAHOST_NOT_FOUND;
    if (iocpi_utf8_to_wide(c->dial->host, whost, 256))
        rc = GetAddrInfoW(whost, wport, &hints, &list);
    if (rc != 0) {
        iocpi_dialer_fail(c, (DWORD)rc);
    } else {
        c->dial->addrs = c->dial->next = list; /* dial_addrs: what FreeAddrInfoW gets back */
#ifdef IOCP_FAULT_INJECTION
        c->dial->next = iocpi_fault_first_address(c, list);
#endif
        c->dial->last_error = WSAECONNREFUSED;
        try_next(c);
    }
    InterlockedDecrement(&e->dials_resolving);
}

iocp_err iocp_engine_connect(iocp_engine *engine, const char *host, uint16_t port,
                             uint32_t timeout_ms, void *user)
{
    iocp_engine *e = engine;
    if (e == NULL || host == NULL || host[0] == '\0' || port == 0)
        return IOCP_E_INVALID_ARG;
    size_t n = strlen(host);
    if (n >= sizeof((iocpi_dial *)0)->host)
        return IOCP_E_INVALID_ARG;
    if (e->stopping)
        return IOCP_E_STOPPED;
    iocpi_dial *dial = calloc(1, sizeof *dial);
    if (dial == NULL)
        return IOCP_E_NO_MEMORY;
    iocp_conn *c = iocpi_pool_take(e);
    if (c == NULL) {
        free(dial);
        return IOCP_E_NO_RESOURCES;
    }
    c->dial = dial;
    /* "[::1]" names the same host as "::1". */
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        memcpy(c->dial->host, host + 1, n - 2);
        c->dial->host[n - 2] = '\0';
    } else {
        memcpy(c->dial->host, host, n + 1);
    }
    c->dial->port = port;
    c->dial->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    c->dial->user = user;
    c->dial->addrs = c->dial->next = NULL;
    c->dial->deadline_ms = 0;
    c->sock = INVALID_SOCKET;
    c->state = CONN_DIALING;
    /* The dial's state, and GetAddrInfoW's address list. */
    InterlockedAdd64(&e->counters.allocations, 2);
    InterlockedIncrement(&e->dials_resolving);
    if (!TrySubmitThreadpoolCallback(resolve_cb, c, NULL)) {
        DWORD sys = GetLastError();
        InterlockedDecrement(&e->dials_resolving);
        c->dial = NULL;
        free(dial);
        c->state = CONN_FREE;
        iocpi_pool_return(e, c);
        return iocp_err_from_sys(sys);
    }
    return IOCP_OK;
}

/* From the sweep timer's thread: a ConnectEx past its deadline is cancelled; its completion
 * reports the timeout (connect_done). */
void iocpi_dialer_sweep(iocp_conn *c, uint64_t now)
{
    AcquireSRWLockExclusive(&c->lock);
    iocpi_dial *dial = c->state == CONN_DIALING ? c->dial : NULL;
    if (dial != NULL && dial->deadline_ms && now >= (uint64_t)dial->deadline_ms) {
        dial->timed_out = 1;
        dial->deadline_ms = 0;
        if (c->sock != INVALID_SOCKET)
            CancelIoEx((HANDLE)c->sock, &c->connect_op.ov);
    }
    ReleaseSRWLockExclusive(&c->lock);
}

/* From the stop: abandon a dial in progress. Its completion reports the failure. */
void iocpi_dialer_cancel(iocp_conn *c)
{
    AcquireSRWLockExclusive(&c->lock);
    if (c->state == CONN_DIALING && c->sock != INVALID_SOCKET)
        CancelIoEx((HANDLE)c->sock, &c->connect_op.ov);
    ReleaseSRWLockExclusive(&c->lock);
}
