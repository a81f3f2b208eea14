/*
 * listener_hold.c: a listening socket a supervisor holds for its worker processes. Bound as an
 * engine binds its own (iocpi_bind_listener: the address, SO_EXCLUSIVEADDRUSE, dual-stack),
 * then only duplicated: never accepted on, never put on a completion port, so that each
 * worker's duplicate accepts by events (handover.c) and a worker's death costs only the
 * connections it had accepted. Connects that arrive while no worker accepts wait in the
 * backlog.
 */
#include "iocpi.h"

struct iocp_held_listener {
    iocpi_held held; /* first: iocpi_held_new and iocpi_held_free see only this */
};

iocp_err iocpi_held_new(size_t size, const char *what, void **out, iocp_error_info *err)
{
    WSADATA wsa;
    int wsa_rc = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (wsa_rc != 0) {
        iocpi_error_set(err, iocp_err_from_sys((DWORD)wsa_rc), (DWORD)wsa_rc, "WSAStartup");
        return iocp_err_from_sys((DWORD)wsa_rc);
    }
    iocpi_held *h = calloc(1, size);
    if (h == NULL) {
        WSACleanup();
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "cannot allocate the held %s", what);
        return IOCP_E_NO_MEMORY;
    }
    h->sock = INVALID_SOCKET;
    *out = h;
    return IOCP_OK;
}

void iocpi_held_name(iocpi_held *h)
{
    SOCKADDR_STORAGE bound;
    int bound_len = sizeof bound;
    if (getsockname(h->sock, (struct sockaddr *)&bound, &bound_len) == 0) {
        iocpi_format_addr((struct sockaddr *)&bound, h->address, sizeof h->address);
        h->port = ntohs(((struct sockaddr_in *)&bound)->sin_port); /* same offset in v6 */
    }
}

iocp_err iocpi_held_duplicate(const iocpi_held *h, uint32_t target_pid, const char *what,
                              WSAPROTOCOL_INFOW *info, iocp_error_info *err)
{
    if (WSADuplicateSocketW(h->sock, (DWORD)target_pid, info) != 0) {
        DWORD sys = (DWORD)WSAGetLastError();
        iocp_err code = iocp_err_from_sys(sys);
        iocpi_error_set(err, code, sys, "cannot duplicate the %s on %s for process %lu", what,
                        h->address, (unsigned long)target_pid);
        return code;
    }
    return IOCP_OK;
}

void iocpi_held_free(iocpi_held *h)
{
    if (h == NULL)
        return;
    if (h->sock != INVALID_SOCKET)
        closesocket(h->sock);
    free(h);
    WSACleanup();
}

iocp_err iocp_listener_hold(const iocp_config *config, iocp_held_listener **out,
                            iocp_error_info *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (config == NULL || out == NULL) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "iocp_listener_hold needs config and out");
        return IOCP_E_INVALID_ARG;
    }
    *out = NULL;
    iocp_held_listener *l;
    iocp_err rc = iocpi_held_new(sizeof *l, "listener", (void **)&l, err);
    if (rc != IOCP_OK)
        return rc;
    rc = iocpi_bind_listener(config, &l->held.family, &l->held.sock, err);
    if (rc != IOCP_OK) {
        l->held.sock = INVALID_SOCKET;
        iocpi_held_free(&l->held);
        return rc;
    }
    iocpi_held_name(&l->held);
    *out = l;
    return IOCP_OK;
}

const char *iocp_held_listener_address(const iocp_held_listener *l)
{
    return l != NULL ? l->held.address : "";
}

uint16_t iocp_held_listener_port(const iocp_held_listener *l)
{
    return l != NULL ? l->held.port : 0;
}

iocp_err iocp_held_listener_export(iocp_held_listener *l, uint32_t target_pid,
                                   iocp_listener_export *out, iocp_error_info *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (l == NULL || out == NULL) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "iocp_held_listener_export needs l and out");
        return IOCP_E_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    WSAPROTOCOL_INFOW info;
    iocp_err rc = iocpi_held_duplicate(&l->held, target_pid, "listener", &info, err);
    if (rc != IOCP_OK)
        return rc;
    out->target_pid = target_pid;
    out->port = l->held.port;
    out->family = (uint16_t)l->held.family;
    out->accept_by_events = 1;
    memcpy(out->tcp, &info, sizeof info);
    return IOCP_OK;
}

void iocp_held_listener_close(iocp_held_listener *l)
{
    if (l != NULL)
        iocpi_held_free(&l->held);
}
