/*
 * reconfigure.c: changing a running engine's limits and timeouts (iocp_engine_reconfigure),
 * for a service that re-reads its parameters without a restart. Only fields that are read
 * afresh at each use change live (the sweep's timeouts, the log level, the per-address limit);
 * what shapes the engine at start (the listener, the contexts, the buffers, the framing, TLS
 * credentials) is named back to the caller instead.
 */
#include "iocpi.h"

/* Appends name to the list. */
static void name_it(char *out, size_t size, const char *name)
{
    if (out == NULL || size == 0)
        return;
    size_t n = strlen(out);
    snprintf(out + n, size - n, "%s%s", n ? ", " : "", name);
}

static int text_differs(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

iocp_err iocp_engine_reconfigure(iocp_engine *engine, const iocp_config *next, char *not_live,
                                 size_t not_live_size, iocp_error_info *err)
{
    iocp_engine *e = engine;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (not_live != NULL && not_live_size > 0)
        not_live[0] = '\0';
    if (e == NULL || next == NULL) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "iocp_engine_reconfigure needs engine and next");
        return IOCP_E_INVALID_ARG;
    }
    iocp_config c = *next;
    iocp_err rc = iocpi_config_check(&c, err);
    if (rc != IOCP_OK)
        return rc;
    /* The one range iocpi_proxy_engine_start checks beyond the common ones: 0 would reset every
     * proxied connection waiting for its header. */
    if (c.proxy_protocol_from != NULL && c.proxy_protocol_from[0] != '\0' &&
        c.proxy_header_timeout_ms == 0) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "proxy_header_timeout_ms must be at least 1 with proxy_protocol_from");
        return IOCP_E_INVALID_ARG;
    }
    const iocp_config *now = &e->config;
#define FIXED(field, name)                                                                         \
    do {                                                                                           \
        if (c.field != now->field)                                                                 \
            name_it(not_live, not_live_size, name);                                                \
    } while (0)
    FIXED(port, "port");
    if (text_differs(c.bind_address, now->bind_address))
        name_it(not_live, not_live_size, "bind_address");
    FIXED(framing, "framing");
    FIXED(max_message, "max_message");
    FIXED(buffer_size, "buffer_size");
    FIXED(buffer_pool_max, "buffer_pool_max");
    FIXED(max_connections, "max_connections");
    FIXED(send_queue_cap, "send_queue_cap");
    FIXED(workers, "workers");
    FIXED(backlog, "backlog");
    FIXED(accepts_outstanding, "accepts_outstanding");
    FIXED(udp, "udp");
    FIXED(udp_port, "udp_port");
    /* The hostile-peer limits are read into their tables at start. */
    FIXED(ipv6_prefix_len, "ipv6_prefix_len");
    FIXED(evict_idle_ms, "evict_idle_ms");
    FIXED(conn_rate, "conn_rate");
    FIXED(conn_burst, "conn_burst");
    FIXED(udp_rate, "udp_rate");
    FIXED(udp_burst, "udp_burst");
    FIXED(udp_byte_rate, "udp_byte_rate");
    FIXED(udp_byte_burst, "udp_byte_burst");
    FIXED(udp_sources, "udp_sources");
    FIXED(udp_total_rate, "udp_total_rate");
    FIXED(udp_flow_rate, "udp_flow_rate");
    if (text_differs(c.tls.pfx_path, now->tls.pfx_path) ||
        text_differs(c.tls.cert_thumbprint, now->tls.cert_thumbprint))
        name_it(not_live, not_live_size, "tls credentials");
    if (text_differs(c.proxy_protocol_from, now->proxy_protocol_from))
        name_it(not_live, not_live_size, "proxy_protocol_from");
    /* The per-address table exists only when a limit was set at start, and a limit of 0 in
     * it would refuse everyone: between two limits only. */
    uint32_t per_address = now->max_connections_per_address;
    if (c.max_connections_per_address != per_address) {
        if (c.max_connections_per_address != 0 && e->peers != NULL)
            per_address = c.max_connections_per_address;
        else
            name_it(not_live, not_live_size, "max_connections_per_address");
    }
#undef FIXED
    /* Each a 32-bit field read afresh at each use (the sweep, the accept path, the log). */
    InterlockedExchange((volatile LONG *)&e->config.idle_timeout_ms, (LONG)c.idle_timeout_ms);
    InterlockedExchange((volatile LONG *)&e->config.message_timeout_ms, (LONG)c.message_timeout_ms);
    InterlockedExchange((volatile LONG *)&e->config.send_timeout_ms, (LONG)c.send_timeout_ms);
    InterlockedExchange((volatile LONG *)&e->config.tls.handshake_timeout_ms,
                        (LONG)c.tls.handshake_timeout_ms);
    InterlockedExchange((volatile LONG *)&e->config.proxy_header_timeout_ms,
                        (LONG)c.proxy_header_timeout_ms);
    InterlockedExchange((volatile LONG *)&e->config.max_connections_per_address, (LONG)per_address);
    InterlockedExchange((volatile LONG *)&e->config.log_level, (LONG)c.log_level);
    if (e->sweep_timer != NULL && !e->stopping) {
        uint32_t period = iocpi_sweep_period_ms(&e->config);
        iocpi_timer_set(e->sweep_timer, period, period);
    }
    iocpi_log(e, IOCP_LOG_INFO, "configuration changed live%s%s",
              not_live != NULL && not_live[0] ? "; not live (restart or take over): " : "",
              not_live != NULL ? not_live : "");
    return IOCP_OK;
}
