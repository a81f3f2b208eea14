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
    iocpi_held held;        /* first: iocpi_held_new and iocpi_held_free see only this */
    char bind_address[256]; /* to bind again in its place (iocp_held_udp_renew_if_stuck) */
    const char *blocked;    /* "receives" or "sends": why the last socket was closed */
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
    iocp_held_udp *u;
    iocp_err rc = iocpi_held_new(sizeof *u, "udp socket", (void **)&u, err);
    if (rc != IOCP_OK)
        return rc;
    if (config->bind_address != NULL && strlen(config->bind_address) >= sizeof u->bind_address) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "the bind address is too long");
        u->held.sock = INVALID_SOCKET;
        iocpi_held_free(&u->held);
        return IOCP_E_INVALID_ARG;
    }
    snprintf(u->bind_address, sizeof u->bind_address, "%s",
             config->bind_address != NULL ? config->bind_address : "");
    int connreset_error = 0; /* the workers' engines count what it lets through */
    rc = iocpi_udp_bind(config->bind_address, port, &u->held.sock, &u->held.family,
                        &connreset_error, err);
    if (rc != IOCP_OK) {
        u->held.sock = INVALID_SOCKET;
        iocpi_held_free(&u->held);
        return rc;
    }
    iocpi_held_name(&u->held);
    *out = u;
    return IOCP_OK;
}

const char *iocp_held_udp_address(const iocp_held_udp *u)
{
    return u != NULL ? u->held.address : "";
}

uint16_t iocp_held_udp_port(const iocp_held_udp *u)
{
    return u != NULL ? u->held.port : 0;
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
    iocp_err rc = iocpi_held_duplicate(&u->held, target_pid, "udp socket", &info, err);
    if (rc != IOCP_OK)
        return rc;
    out->target_pid = target_pid;
    out->port = u->held.port;
    out->family = (uint16_t)u->held.family;
    out->by_events = 1;
    memcpy(out->info, &info, sizeof info);
    return IOCP_OK;
}

iocp_err iocp_held_udp_renew_if_stuck(iocp_held_udp *u, int *renewed, iocp_error_info *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (u == NULL || renewed == NULL) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "iocp_held_udp_renew_if_stuck needs u and renewed");
        return IOCP_E_INVALID_ARG;
    }
    *renewed = 0;
    unsigned long waiting = 0;
    if (u->held.sock != INVALID_SOCKET) { /* else a failed renewal left none: bind again */
        iocpi_udp_state state = iocpi_udp_probe(u->held.sock, &waiting);
        if (state == IOCPI_UDP_SERVES || state == IOCPI_UDP_UNKNOWN)
            return IOCP_OK;
        u->blocked = state == IOCPI_UDP_SENDS_BLOCKED ? "sends" : "receives";
        /* Our last handle: Wine frees a blocked receive with the socket; a blocked send holds
         * the socket itself (and its port) for as long as the Wine server runs. */
        closesocket(u->held.sock);
        u->held.sock = INVALID_SOCKET;
    }
    /* The port is free from here until the bind: another program could take it, and then
     * this fails (the next call binds again). */
    int connreset_error = 0;
    const char *what = u->blocked != NULL ? u->blocked : "receives";
    iocp_err rc = iocpi_udp_bind(u->bind_address, u->held.port, &u->held.sock, &u->held.family,
                                 &connreset_error, err);
    if (rc != IOCP_OK) {
        u->held.sock = INVALID_SOCKET;
        unsigned long sys = err != NULL ? err->sys_code : 0;
        iocpi_error_set(err, rc, sys,
                        "udp on %s: its %s were blocked by a dead process's unfinished I/O, "
                        "and the port cannot be bound again (Wine keeps such a socket)",
                        u->held.address, what);
        return rc;
    }
    iocpi_held_name(&u->held);
    *renewed = 1;
    if (err != NULL)
        snprintf(err->message, sizeof err->message,
                 "udp on %s: the socket's %s were blocked by a dead process's unfinished I/O "
                 "(%lu bytes waiting in it, dropped): bound a new socket in its place",
                 u->held.address, what, waiting);
    return IOCP_OK;
}

void iocp_held_udp_close(iocp_held_udp *u)
{
    if (u != NULL)
        iocpi_held_free(&u->held);
}
