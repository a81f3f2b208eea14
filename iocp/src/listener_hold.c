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
    SOCKET sock;
    int family;
    uint16_t port;
    char address[80];
};

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
    WSADATA wsa;
    int wsa_rc = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (wsa_rc != 0) {
        iocpi_error_set(err, iocp_err_from_sys((DWORD)wsa_rc), (DWORD)wsa_rc, "WSAStartup");
        return iocp_err_from_sys((DWORD)wsa_rc);
    }
    iocp_held_listener *l = calloc(1, sizeof *l);
    if (l == NULL) {
        WSACleanup();
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "cannot allocate the held listener");
        return IOCP_E_NO_MEMORY;
    }
    iocp_err rc = iocpi_bind_listener(config, &l->family, &l->sock, err);
    if (rc != IOCP_OK) {
        free(l);
        WSACleanup();
        return rc;
    }
    SOCKADDR_STORAGE bound;
    int bound_len = sizeof bound;
    if (getsockname(l->sock, (struct sockaddr *)&bound, &bound_len) == 0) {
        iocpi_format_addr((struct sockaddr *)&bound, l->address, sizeof l->address);
        l->port = ntohs(((struct sockaddr_in *)&bound)->sin_port); /* same offset in v6 */
    }
    *out = l;
    return IOCP_OK;
}

const char *iocp_held_listener_address(const iocp_held_listener *l)
{
    return l != NULL ? l->address : "";
}

uint16_t iocp_held_listener_port(const iocp_held_listener *l)
{
    return l != NULL ? l->port : 0;
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
    if (WSADuplicateSocketW(l->sock, (DWORD)target_pid, &info) != 0) {
        DWORD sys = (DWORD)WSAGetLastError();
        iocp_err code = iocp_err_from_sys(sys);
        iocpi_error_set(err, code, sys, "cannot duplicate the listener on %s for process %lu",
                        l->address, (unsigned long)target_pid);
        return code;
    }
    out->target_pid = target_pid;
    out->port = l->port;
    out->family = (uint16_t)l->family;
    out->accept_by_events = 1;
    memcpy(out->tcp, &info, sizeof info);
    return IOCP_OK;
}

void iocp_held_listener_close(iocp_held_listener *l)
{
    if (l == NULL)
        return;
    closesocket(l->sock);
    free(l);
    WSACleanup();
}
