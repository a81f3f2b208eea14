/*
 * handover.c: giving the listening socket to a successor engine, here or in another process,
 * so that a restart never refuses a connection (nginx's binary upgrade, HAProxy's seamless
 * reload, libuv's uv__tcp_xfer_export/import).
 *
 * The exporter duplicates its listener for the successor's pid (WSADuplicateSocketW); the
 * successor makes the socket from that protocol info. Both accept on it until the exporter
 * stops accepting (listener.c) and drains. A socket handle goes on one completion port only,
 * and the original is on the exporter's, so the successor's CreateIoCompletionPort fails
 * (ERROR_INVALID_PARAMETER): its AcceptEx calls then complete by an event each (the low bit of
 * hEvent set: no port packet) and a thread-pool wait posts the same OVERLAPPED to our port,
 * where accept_done runs as for any accept (libuv's UV_HANDLE_EMULATE_IOCP). The accepted
 * sockets are new and go on our port as usual.
 */
#include "iocpi.h"

/* The blob travels as plain bytes (public header without Winsock). */
typedef char handover_info_fits[sizeof(WSAPROTOCOL_INFOW) <= IOCP_LISTENER_INFO_BYTES ? 1 : -1];

iocp_err iocp_engine_export_listener(iocp_engine *engine, uint32_t target_pid,
                                     iocp_listener_export *out, iocp_error_info *err)
{
    iocp_engine *e = engine;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (e == NULL || out == NULL || !e->config.listen) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "iocp_engine_export_listener needs a listening engine and out");
        return IOCP_E_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    WSAPROTOCOL_INFOW info;
    int rc = SOCKET_ERROR;
    DWORD sys = 0;
    AcquireSRWLockExclusive(&e->accept_lock); /* the listener is not closed meanwhile */
    int gone = e->stopping || e->accept_stopped || e->listen_sock == INVALID_SOCKET;
    if (!gone) {
        rc = WSADuplicateSocketW(e->listen_sock, (DWORD)target_pid, &info);
        sys = rc != 0 ? (DWORD)WSAGetLastError() : 0;
    }
    ReleaseSRWLockExclusive(&e->accept_lock);
    if (gone) {
        iocpi_error_set(err, IOCP_E_STATE, 0, "the listener on %s is closed or handed over already",
                        e->address);
        return IOCP_E_STATE;
    }
    if (rc != 0) {
        iocp_err code = iocp_err_from_sys(sys);
        iocpi_error_set(err, code, sys, "cannot duplicate the listener on %s for process %lu",
                        e->address, (unsigned long)target_pid);
        return code;
    }
    out->target_pid = target_pid;
    out->port = e->bound_port;
    out->family = (uint16_t)e->family;
    memcpy(out->tcp, &info, sizeof info);
    iocpi_log(e, IOCP_LOG_INFO, "listener on %s exported to process %lu", e->address,
              (unsigned long)target_pid);
    return IOCP_OK;
}

iocp_err iocpi_handover_inherit(iocp_engine *e, SOCKET *out, iocp_error_info *err)
{
    const iocp_listener_export *x = e->config.inherit_listener;
    if (x->target_pid != GetCurrentProcessId()) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "the inherited listener was exported for process %lu, not this one (%lu)",
                        (unsigned long)x->target_pid, (unsigned long)GetCurrentProcessId());
        return IOCP_E_INVALID_ARG;
    }
    /* WSADuplicateSocketW has already made our handle (the blob carries it): open it even to
     * refuse it, or it would hold the listener open after its owner closes its own. */
    WSAPROTOCOL_INFOW info;
    memcpy(&info, x->tcp, sizeof info);
    SOCKET s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL)
        s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                       WSA_FLAG_OVERLAPPED);
    if (s != INVALID_SOCKET && e->config.port != 0 && e->config.port != x->port) {
        closesocket(s);
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "the inherited listener is on port %u, not on the configured port %u: "
                        "a take-over keeps the port (restart to change it)",
                        (unsigned)x->port, (unsigned)e->config.port);
        return IOCP_E_INVALID_ARG;
    }
    if (s == INVALID_SOCKET) {
        DWORD sys = (DWORD)WSAGetLastError();
        iocp_err code = iocp_err_from_sys(sys);
        iocpi_error_set(err, code, sys, "cannot open the inherited listener (port %u)",
                        (unsigned)x->port);
        return code;
    }
    e->family = info.iAddressFamily;
    *out = s;
    return IOCP_OK;
}

/* An emulated op's event fired: its OVERLAPPED holds the result (Internal, InternalHigh),
 * which the worker reads as for a port packet. The op is counted in flight since it was
 * posted. */
static VOID CALLBACK emulated_signalled(PVOID ctx, BOOLEAN timed_out)
{
    (void)timed_out;
    iocpi_emulated *em = ctx;
    iocpi_post_packet(em->engine, (DWORD)em->op->ov.InternalHigh, 0, &em->op->ov);
}

iocp_err iocpi_emulated_start(iocpi_emulated *em, iocp_engine *e, iocpi_op *op, DWORD *sys)
{
    em->engine = e;
    em->op = op;
    /* Auto-reset: each completion sets it once, and the satisfied wait resets it. */
    em->event = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (em->event == NULL || !RegisterWaitForSingleObject(&em->wait, em->event, emulated_signalled,
                                                          em, INFINITE, WT_EXECUTEINWAITTHREAD)) {
        *sys = GetLastError();
        return iocp_err_from_sys(*sys); /* iocpi_emulated_stop takes back what was made */
    }
    return IOCP_OK;
}

void iocpi_emulated_stop(iocpi_emulated *em)
{
    if (em->wait != NULL)
        UnregisterWaitEx(em->wait, INVALID_HANDLE_VALUE); /* waits for a running callback */
    if (em->event != NULL)
        CloseHandle(em->event);
    em->wait = em->event = NULL;
}

HANDLE iocpi_emulated_event(const iocpi_emulated *em)
{
    return (HANDLE)((ULONG_PTR)em->event | 1); /* the low bit: no port packet */
}

iocp_err iocpi_handover_waits_start(iocp_engine *e, iocp_error_info *err)
{
    for (uint32_t i = 0; i < e->config.accepts_outstanding; i++) {
        iocpi_accept *a = &e->accepts[i];
        DWORD sys = 0;
        iocp_err code = iocpi_emulated_start(&a->emulated, e, &a->op, &sys);
        if (code != IOCP_OK) {
            iocpi_error_set(err, code, sys, "cannot make the events of the inherited listener");
            return code; /* engine_free takes back what was made */
        }
    }
    iocpi_log(e, IOCP_LOG_INFO,
              "the inherited listener is on another port: its accepts complete by events");
    return IOCP_OK;
}

void iocpi_handover_waits_stop(iocp_engine *e)
{
    if (e->accepts == NULL)
        return;
    for (uint32_t i = 0; i < e->config.accepts_outstanding; i++)
        iocpi_emulated_stop(&e->accepts[i].emulated);
}
