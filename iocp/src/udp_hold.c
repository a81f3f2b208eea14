/*
 * udp_hold.c: a UDP socket a supervisor holds for its worker processes, as listener_hold.c
 * holds the TCP listener. Bound as the engine's UDP endpoint binds its own (iocpi_udp_bind:
 * the address, SO_EXCLUSIVEADDRUSE, dual-stack, the buffers, SIO_UDP_CONNRESET off), then only
 * duplicated: never received on, never put on a completion port, so that each worker's
 * duplicate works by events (udp_handover.c) whichever worker came first, and a worker's
 * death costs only the datagrams its own receives had taken. Datagrams that arrive while no
 * worker receives wait in the socket's buffer.
 */
#include "udpi.h"

struct iocp_held_udp {
    SOCKET sock;
    int family;
    uint16_t port;
    char address[80];
};

iocp_err iocp_udp_hold(const iocp_config *config, uint16_t port, iocp_held_udp **out,
                       iocp_error_info *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (config == NULL || out == NULL) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "iocp_udp_hold needs config and out");
        return IOCP_E_INVALID_ARG;
    }
    *out = NULL;
    WSADATA wsa;
    int wsa_rc = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (wsa_rc != 0) {
        iocpi_error_set(err, iocp_err_from_sys((DWORD)wsa_rc), (DWORD)wsa_rc, "WSAStartup");
        return iocp_err_from_sys((DWORD)wsa_rc);
    }
    iocp_held_udp *u = calloc(1, sizeof *u);
    if (u == NULL) {
        WSACleanup();
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "cannot allocate the held udp socket");
        return IOCP_E_NO_MEMORY;
    }
    int connreset_error = 0; /* the workers' engines count what it lets through */
    iocp_err rc =
        iocpi_udp_bind(config->bind_address, port, &u->sock, &u->family, &connreset_error, err);
    if (rc != IOCP_OK) {
        free(u);
        WSACleanup();
        return rc;
    }
    SOCKADDR_STORAGE bound;
    int bound_len = sizeof bound;
    if (getsockname(u->sock, (struct sockaddr *)&bound, &bound_len) == 0) {
        iocpi_format_addr((struct sockaddr *)&bound, u->address, sizeof u->address);
        u->port = ntohs(((struct sockaddr_in *)&bound)->sin_port); /* same offset in v6 */
    }
    *out = u;
    return IOCP_OK;
}

const char *iocp_held_udp_address(const iocp_held_udp *u)
{
    return u != NULL ? u->address : "";
}

uint16_t iocp_held_udp_port(const iocp_held_udp *u)
{
    return u != NULL ? u->port : 0;
}

iocp_err iocp_held_udp_export(iocp_held_udp *u, uint32_t target_pid, iocp_udp_export *out,
                              iocp_error_info *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (u == NULL || out == NULL) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "iocp_held_udp_export needs u and out");
        return IOCP_E_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    WSAPROTOCOL_INFOW info;
    if (WSADuplicateSocketW(u->sock, (DWORD)target_pid, &info) != 0) {
        DWORD sys = (DWORD)WSAGetLastError();
        iocp_err code = iocp_err_from_sys(sys);
        iocpi_error_set(err, code, sys, "cannot duplicate udp on %s for process %lu", u->address,
                        (unsigned long)target_pid);
        return code;
    }
    out->target_pid = target_pid;
    out->port = u->port;
    out->family = (uint16_t)u->family;
    out->by_events = 1;
    memcpy(out->info, &info, sizeof info);
    return IOCP_OK;
}

void iocp_held_udp_close(iocp_held_udp *u)
{
    if (u == NULL)
        return;
    closesocket(u->sock);
    free(u);
    WSACleanup();
}
