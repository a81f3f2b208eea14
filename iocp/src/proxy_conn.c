/*
 * proxy_conn.c: the PROXY protocol on the engine's accepted connections (the header parser
 * itself is proxy_proto.c).
 *
 * A connection accepted from a trusted source (config.proxy_protocol_from) opens as any other
 * but is not announced: its first bytes go to the parser instead of TLS or the framing
 * (conn.c, recv_handle). Its per-address count waits for the header too: the accept path
 * skips it (iocpi_proxy_begin), and once the header says whose connection this is the count
 * is taken here, in one call, with the client's address (or, for a v2 LOCAL or v1 UNKNOWN
 * header, the connection's own). So the count is taken exactly once for every connection
 * that reaches the application, never for one that fails before, and the release (conn.c,
 * final_done) undoes it on every close path as it does for a plain connection.
 */
#include "iocpi.h"
#include "proxy_proto.h"

typedef struct iocpi_proxy_conn {
    iocpi_proxy_parser parser;
    SOCKADDR_IN6 real; /* the connection's own address (the balancer's); IPv4 as SOCKADDR_IN */
} iocpi_proxy_conn;

iocp_err iocpi_proxy_engine_start(iocp_engine *e, iocp_error_info *err)
{
    const char *list = e->config.proxy_protocol_from;
    if (list == NULL || list[0] == '\0' || !e->config.listen)
        return IOCP_OK;
    char why[160];
    size_t n = 0;
    if (!iocpi_cidr_list_parse(list, NULL, 0, &n, why, sizeof why)) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0, "proxy_protocol_from: %s", why);
        return IOCP_E_INVALID_ARG;
    }
    if (e->config.proxy_header_timeout_ms == 0 || e->config.proxy_header_timeout_ms > 600000) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "proxy_header_timeout_ms %lu is out of range 1..600000",
                        (unsigned long)e->config.proxy_header_timeout_ms);
        return IOCP_E_INVALID_ARG;
    }
    e->proxy_from = calloc(n, sizeof *e->proxy_from);
    e->proxy_states = calloc(e->config.max_connections, sizeof *e->proxy_states);
    if (e->proxy_from == NULL || e->proxy_states == NULL) {
        iocpi_proxy_engine_stop(e);
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "cannot allocate the PROXY protocol state");
        return IOCP_E_NO_MEMORY;
    }
    iocpi_cidr_list_parse(list, e->proxy_from, n, &e->proxy_from_n, why, sizeof why);
    return IOCP_OK;
}

void iocpi_proxy_engine_stop(iocp_engine *e)
{
    free(e->proxy_from);
    free(e->proxy_states);
    e->proxy_from = NULL;
    e->proxy_states = NULL;
    e->proxy_from_n = 0;
}

/* The 16-byte form of an address (IPv4 as ::ffff:a.b.c.d); 0 for another family. */
static int key_of(const struct sockaddr *sa, uint8_t key[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const SOCKADDR_IN6 *)sa)->sin6_addr, 16);
        return 1;
    }
    if (sa->sa_family == AF_INET) {
        memcpy(key, mapped, 12);
        memcpy(key + 12, &((const SOCKADDR_IN *)sa)->sin_addr, 4);
        return 1;
    }
    return 0;
}

int iocpi_proxy_trusted(iocp_engine *e, const struct sockaddr *remote)
{
    uint8_t key[16];
    return e->proxy_from != NULL && key_of(remote, key) &&
           iocpi_cidr_match(e->proxy_from, e->proxy_from_n, key);
}

int iocpi_proxy_begin(iocp_engine *e, iocp_conn *c, const struct sockaddr *remote)
{
    c->proxy_pending = 0;
    if (!iocpi_proxy_trusted(e, remote))
        return 0;
    iocpi_proxy_conn *p = &e->proxy_states[c->index];
    iocpi_proxy_init(&p->parser);
    memset(&p->real, 0, sizeof p->real);
    memcpy(&p->real, remote,
           remote->sa_family == AF_INET6 ? sizeof(SOCKADDR_IN6) : sizeof(SOCKADDR_IN));
    c->proxy_pending = 1;
    c->peer_counted = 0; /* counted once the header says whose it is */
    return 1;
}

void iocpi_proxy_closed_early(iocp_conn *c, const char *why)
{
    iocp_engine *e = c->engine;
    c->proxy_pending = 0;
    InterlockedIncrement64(&e->counters.proxy_rejected);
    iocpi_log(e, IOCP_LOG_INFO, "%s: %s; closing it", c->peer, why);
}

int iocpi_proxy_header(iocp_conn *c, const uint8_t *data, size_t len, size_t *used)
{
    iocp_engine *e = c->engine;
    iocpi_proxy_conn *p = &e->proxy_states[c->index];
    iocpi_proxy_status st = iocpi_proxy_feed(&p->parser, data, len, used);
    if (st == IOCPI_PROXY_NEED_MORE)
        return 0;
    if (st == IOCPI_PROXY_ERROR) {
        iocpi_proxy_closed_early(c, p->parser.error);
        iocpi_conn_close(c, IOCP_CLOSE_PROTOCOL, 0, IOCP_ABORT);
        return -1;
    }
    /* The sweep may have just reset it for a late header: then it is not announced. */
    AcquireSRWLockExclusive(&c->lock);
    int live = c->state == CONN_OPEN && c->proxy_pending;
    c->proxy_pending = 0;
    ReleaseSRWLockExclusive(&c->lock);
    if (!live)
        return -1;
    InterlockedIncrement64(&e->counters.proxy_headers);
    SOCKADDR_STORAGE client;
    memset(&client, 0, sizeof client);
    if (!p->parser.has_address) {
        memcpy(&client, &p->real, sizeof p->real);
    } else if (p->parser.family == 4) {
        SOCKADDR_IN *sin = (SOCKADDR_IN *)&client;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, p->parser.addr + 12, 4);
        sin->sin_port = htons(p->parser.port);
    } else {
        SOCKADDR_IN6 *sin6 = (SOCKADDR_IN6 *)&client;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, p->parser.addr, 16);
        sin6->sin6_port = htons(p->parser.port);
    }
    if (p->parser.has_address) {
        char via[64];
        memcpy(via, c->peer, sizeof via);
        iocpi_format_addr((const struct sockaddr *)&client, c->peer, sizeof c->peer);
        iocpi_log(e, IOCP_LOG_DEBUG, "%s: PROXY header from %s", c->peer, via);
    }
    /* The one place a proxied connection is counted per address, and by its address's
     * connection rate (the listener skips both for a trusted balancer). */
    if (!iocpi_peers_rate_admit(e, (const struct sockaddr *)&client)) {
        InterlockedIncrement64(&e->counters.rejected_rate);
        iocpi_log(e, IOCP_LOG_DEBUG, "connection rate (%lu a second) passed: rejected %s",
                  (unsigned long)e->config.conn_rate, c->peer);
        iocpi_conn_close(c, IOCP_CLOSE_LOCAL, 0, IOCP_ABORT);
        return -1;
    }
    if (!iocpi_peers_admit(e, (const struct sockaddr *)&client, c)) {
        InterlockedIncrement64(&e->counters.rejected_per_address);
        iocpi_log(e, IOCP_LOG_DEBUG, "per-address limit (%lu) reached: rejected %s",
                  (unsigned long)e->config.max_connections_per_address, c->peer);
        iocpi_conn_close(c, IOCP_CLOSE_LOCAL, 0, IOCP_ABORT);
        return -1;
    }
    return 1;
}
