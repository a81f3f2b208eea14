/*
 * udp_handover.c: giving the UDP endpoint's socket to a successor engine, here or in another
 * process, as handover.c gives the listener.
 *
 * The exporter duplicates its socket for the successor's pid (WSADuplicateSocketW); the
 * successor makes the socket from that protocol info and posts its receives on it. Both
 * receive on one socket now: the system gives each datagram to one pending receive, and one
 * that arrives while none is pending waits in the socket's buffer. Then the exporter stops
 * receiving (iocp_engine_stop_udp_receiving): its posted receives are cancelled one by one
 * (a receive that already holds a datagram completes with it and is served), and from then
 * on only the successor's receives take datagrams. No datagram is lost to the switch itself.
 *
 * The duplicate cannot join the successor's completion port (the original is on the
 * exporter's), so every op on it completes by an event, with the low bit of hEvent set so
 * that no packet goes to the exporter's port: the receives each by an event and a
 * thread-pool wait that posts the OVERLAPPED to our port (handover.c's iocpi_emulated), the
 * sends by an event the worker waits for (a datagram's send pends only while the socket's
 * buffer is full). The exporter keeps the socket for its replies until it stops.
 */
#include "udpi.h"

#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

#define STOP_RECEIVING_WAIT_MS 2000u

/* The blob travels as plain bytes (public header without Winsock). */
typedef char udp_info_fits[sizeof(WSAPROTOCOL_INFOW) <= IOCP_LISTENER_INFO_BYTES ? 1 : -1];

iocp_err iocp_engine_export_udp(iocp_engine *engine, uint32_t target_pid, iocp_udp_export *out,
                                iocp_error_info *err)
{
    iocp_engine *e = engine;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (e == NULL || out == NULL || e->udp == NULL) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "iocp_engine_export_udp needs an engine with UDP and out");
        return IOCP_E_INVALID_ARG;
    }
    iocpi_udp *u = e->udp;
    memset(out, 0, sizeof *out);
    WSAPROTOCOL_INFOW info;
    int rc = SOCKET_ERROR;
    DWORD sys = 0;
    AcquireSRWLockShared(&u->lock); /* the socket is not closed meanwhile */
    int gone = e->stopping || u->receiving_stopped || u->sock == INVALID_SOCKET;
    if (!gone) {
        rc = WSADuplicateSocketW(u->sock, (DWORD)target_pid, &info);
        sys = rc != 0 ? (DWORD)WSAGetLastError() : 0;
    }
    ReleaseSRWLockShared(&u->lock);
    if (gone) {
        iocpi_error_set(err, IOCP_E_STATE, 0, "udp on %s is closed or handed over already",
                        u->address);
        return IOCP_E_STATE;
    }
    if (rc != 0) {
        iocp_err code = iocp_err_from_sys(sys);
        iocpi_error_set(err, code, sys, "cannot duplicate udp on %s for process %lu", u->address,
                        (unsigned long)target_pid);
        return code;
    }
    out->target_pid = target_pid;
    out->port = u->port;
    out->family = (uint16_t)u->family;
    memcpy(out->info, &info, sizeof info);
    iocpi_log(e, IOCP_LOG_INFO, "udp on %s exported to process %lu", u->address,
              (unsigned long)target_pid);
    return IOCP_OK;
}

iocp_err iocp_engine_stop_udp_receiving(iocp_engine *engine)
{
    iocp_engine *e = engine;
    if (e == NULL || e->udp == NULL)
        return IOCP_E_INVALID_ARG;
    iocpi_udp *u = e->udp;
    int stopped = 0;
    AcquireSRWLockExclusive(&u->lock); /* no receive is being posted meanwhile */
    if (!u->receiving_stopped && u->sock != INVALID_SOCKET) {
        InterlockedExchange(&u->receiving_stopped, 1);
        /* One op at a time: CancelIoEx(s, NULL) would also take a successor's receives when
         * both engines are in one process (one socket). One not pending: ERROR_NOT_FOUND. */
        for (uint32_t i = 0; i < u->recv_count; i++)
            CancelIoEx((HANDLE)u->sock, &u->recvs[i].op.ov);
        stopped = 1;
    }
    ReleaseSRWLockExclusive(&u->lock);
    /* A receive that took a datagram before its cancel is handled on a worker: its echo
     * is sent before the slot retires. Waited for here, so that an iocp_engine_stop right
     * after (a drain with no connection open) does not find the datagram unanswered and
     * refuse its send as stopping. Bounded: the workers may be busy, or this is one. */
    uint64_t until = GetTickCount64() + STOP_RECEIVING_WAIT_MS;
    while (u->recvs_live > 0 && GetTickCount64() < until)
        Sleep(1);
    if (stopped && u->recvs_live > 0)
        iocpi_log(e, IOCP_LOG_WARN,
                  "udp on %s: stopped receiving, but %ld receives had not finished after %u ms",
                  u->address, (long)u->recvs_live, STOP_RECEIVING_WAIT_MS);
    else if (stopped)
        iocpi_log(e, IOCP_LOG_INFO, "udp on %s: stopped receiving (the successor receives)",
                  u->address);
    return IOCP_OK;
}

iocp_err iocpi_udp_inherit(iocp_engine *e, SOCKET *out, int *family, iocp_error_info *err)
{
    const iocp_udp_export *x = e->config.inherit_udp;
    if (x->target_pid != GetCurrentProcessId()) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "the inherited udp socket was exported for process %lu, not this one (%lu)",
                        (unsigned long)x->target_pid, (unsigned long)GetCurrentProcessId());
        return IOCP_E_INVALID_ARG;
    }
    /* Opened even to refuse it: the blob already carries our handle (handover.c). */
    WSAPROTOCOL_INFOW info;
    memcpy(&info, x->info, sizeof info);
    SOCKET s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL)
        s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                       WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET) {
        DWORD sys = (DWORD)WSAGetLastError();
        iocp_err code = iocp_err_from_sys(sys);
        iocpi_error_set(err, code, sys, "cannot open the inherited udp socket (port %u)",
                        (unsigned)x->port);
        return code;
    }
    if (e->config.udp_port != 0 && e->config.udp_port != x->port) {
        closesocket(s);
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "the inherited udp socket is on port %u, not on the configured udp port "
                        "%u: a take-over keeps the port (restart to change it)",
                        (unsigned)x->port, (unsigned)e->config.udp_port);
        return IOCP_E_INVALID_ARG;
    }
    *family = info.iAddressFamily;
    *out = s;
    return IOCP_OK;
}

iocp_err iocpi_udp_emulate(iocpi_udp *u, iocp_error_info *err)
{
    for (uint32_t i = 0; i < u->recv_count; i++) {
        udp_recv *r = &u->recvs[i];
        DWORD sys = 0;
        iocp_err code = iocpi_emulated_start(&r->emulated, u->e, &r->op, &sys);
        if (code != IOCP_OK) {
            iocpi_error_set(err, code, sys, "udp: cannot make the events of the inherited socket");
            return code; /* udp_free takes back what was made */
        }
    }
    return IOCP_OK;
}

void iocpi_udp_unemulate(iocpi_udp *u)
{
    if (u->recvs == NULL)
        return;
    for (uint32_t i = 0; i < u->recv_count; i++)
        iocpi_emulated_stop(&u->recvs[i].emulated);
}

udp_event *iocpi_udp_event_take(iocpi_udp *u)
{
    PSLIST_ENTRY got = InterlockedPopEntrySList(&u->send_events);
    if (got != NULL)
        return CONTAINING_RECORD(got, udp_event, entry);
    udp_event *ev = _aligned_malloc(sizeof *ev, MEMORY_ALLOCATION_ALIGNMENT);
    if (ev == NULL)
        return NULL;
    ev->event = CreateEventW(NULL, TRUE, FALSE, NULL); /* manual: reset before each use */
    if (ev->event == NULL) {
        _aligned_free(ev);
        return NULL;
    }
    InterlockedIncrement64(&u->e->counters.allocations);
    return ev;
}

void iocpi_udp_event_return(iocpi_udp *u, udp_event *ev)
{
    InterlockedPushEntrySList(&u->send_events, &ev->entry);
}

void iocpi_udp_events_free(iocpi_udp *u)
{
    PSLIST_ENTRY got;
    while ((got = InterlockedPopEntrySList(&u->send_events)) != NULL) {
        udp_event *ev = CONTAINING_RECORD(got, udp_event, entry);
        CloseHandle(ev->event);
        _aligned_free(ev);
    }
}
