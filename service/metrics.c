/*
 * metrics.c: the engine's statistics in the Prometheus text exposition format (version
 * 0.0.4), for the admin endpoint's GET /metrics (admin_http.c).
 *
 * The names follow Prometheus's conventions: an iocp_ prefix, base units (seconds, bytes),
 * counters ending in _total, one family per quantity with a label for the kind (rejected and
 * closed connections by reason). The counters are the same numbers the status pipe reports
 * (host.c, `status`): connections accepted, rejected (slots + per address), bytes and
 * messages, TLS handshakes and failures, UDP.
 */
#include "svc.h"

#include <string.h>

typedef struct out_buf {
    char *p;
    size_t size, len;
} out_buf;

static void emit(out_buf *o, const char *fmt, ...)
#if defined(__MINGW_PRINTF_FORMAT)
    __attribute__((format(__MINGW_PRINTF_FORMAT, 2, 3)))
#elif defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void emit(out_buf *o, const char *fmt, ...)
{
    if (o->len + 1 >= o->size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->size - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n < o->size - o->len ? (size_t)n : o->size - o->len - 1;
}

/* One family of one sample: HELP, TYPE and the value. */
static void family(out_buf *o, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    emit(o, "# HELP %s %s\n# TYPE %s %s\n%s%s %llu\n", name, help, name, type, name,
         strcmp(type, "counter") == 0 ? "_total" : "", v);
}

/* The close reasons as label values, in the enum's order. A reason added to the engine
 * without a name here is still reported, as "reason_<n>". */
static const char *const close_names[] = {
    "peer",     "reset",         "local", "idle_timeout", "message_timeout", "send_timeout",
    "protocol", "send_overflow", "stop",  "error",        "handshake",       "evicted",
};

size_t svc_metrics_format(const iocp_stats *st, const svc_metrics_state *s, char *out, size_t size)
{
    out_buf o = {out, size, 0};
    if (size == 0)
        return 0;
    out[0] = '\0';
    emit(&o, "# HELP iocp_up 1 while the instance serves.\n# TYPE iocp_up gauge\niocp_up 1\n");
    emit(&o,
         "# HELP iocp_uptime_seconds Seconds since the server started.\n"
         "# TYPE iocp_uptime_seconds gauge\niocp_uptime_seconds %.3f\n",
         (double)st->uptime_ms / 1000.0);
    family(&o, "iocp_ready", "gauge",
           "1 while accepting new connections; 0 while draining, stopping or out of slots.",
           (unsigned long long)s->ready);
    family(&o, "iocp_draining", "gauge", "1 once a stop or a drain has begun.",
           (unsigned long long)s->draining);
    family(&o, "iocp_connections_open", "gauge", "TCP connections open now.",
           (unsigned long long)st->active);
    family(&o, "iocp_connection_slots", "gauge", "TCP connections served at once at most.",
           (unsigned long long)st->contexts_total);
    family(&o, "iocp_connection_slots_in_use", "gauge",
           "Connection contexts out of the pool (open and closing).",
           (unsigned long long)st->contexts_in_use);
    family(&o, "iocp_connections_accepted", "counter", "TCP connections accepted and opened.",
           (unsigned long long)st->accepted);
    emit(&o, "# HELP iocp_connections_rejected Connections refused at once, by reason.\n"
             "# TYPE iocp_connections_rejected counter\n");
    emit(&o, "iocp_connections_rejected_total{reason=\"slots\"} %llu\n",
         (unsigned long long)st->rejected);
    emit(&o, "iocp_connections_rejected_total{reason=\"per_address\"} %llu\n",
         (unsigned long long)st->rejected_per_address);
    emit(&o, "iocp_connections_rejected_total{reason=\"proxy_header\"} %llu\n",
         (unsigned long long)st->proxy_rejected);
    emit(&o, "iocp_connections_rejected_total{reason=\"rate\"} %llu\n",
         (unsigned long long)st->rejected_rate);
    emit(&o, "# HELP iocp_connections_closed Connections closed, by reason.\n"
             "# TYPE iocp_connections_closed counter\n");
    for (int i = 0; i < IOCP_CLOSE_REASON_COUNT_; i++) {
        if ((size_t)i < sizeof close_names / sizeof close_names[0])
            emit(&o, "iocp_connections_closed_total{reason=\"%s\"} %llu\n", close_names[i],
                 (unsigned long long)st->closed[i]);
        else
            emit(&o, "iocp_connections_closed_total{reason=\"reason_%d\"} %llu\n", i,
                 (unsigned long long)st->closed[i]);
    }
    family(&o, "iocp_accept_errors", "counter", "AcceptEx calls that failed and were re-armed.",
           (unsigned long long)st->accept_errors);
    family(&o, "iocp_proxy_headers", "counter", "PROXY protocol headers accepted.",
           (unsigned long long)st->proxy_headers);
    family(&o, "iocp_received_bytes", "counter", "TCP payload bytes received.",
           (unsigned long long)st->bytes_in);
    family(&o, "iocp_sent_bytes", "counter", "TCP payload bytes sent.",
           (unsigned long long)st->bytes_out);
    family(&o, "iocp_messages_received", "counter",
           "Messages received (raw framing: reads delivered).",
           (unsigned long long)st->messages_in);
    family(&o, "iocp_messages_sent", "counter", "Messages sent.",
           (unsigned long long)st->messages_out);
    family(&o, "iocp_protocol_errors", "counter", "Peers that broke the framing.",
           (unsigned long long)st->protocol_errors);
    family(&o, "iocp_tls_handshakes", "counter", "TLS handshakes completed.",
           (unsigned long long)st->tls_handshakes);
    family(&o, "iocp_tls_handshake_failures", "counter",
           "TLS handshakes failed, timed out, or plaintext on a TLS port.",
           (unsigned long long)st->tls_handshake_failures);
    family(&o, "iocp_tls_below_floor", "counter",
           "TLS sessions refused for a protocol or suite below the floor (--tls-min-version).",
           (unsigned long long)st->tls_below_floor);
    family(&o, "iocp_udp_received_datagrams", "counter", "UDP datagrams received.",
           (unsigned long long)st->udp_datagrams_in);
    family(&o, "iocp_udp_sent_datagrams", "counter", "UDP datagrams sent.",
           (unsigned long long)st->udp_datagrams_out);
    family(&o, "iocp_udp_received_bytes", "counter", "UDP payload bytes received.",
           (unsigned long long)st->udp_bytes_in);
    family(&o, "iocp_udp_sent_bytes", "counter", "UDP payload bytes sent.",
           (unsigned long long)st->udp_bytes_out);
    family(&o, "iocp_udp_dropped_datagrams", "counter", "UDP sends dropped: the queue was full.",
           (unsigned long long)st->udp_dropped);
    family(&o, "iocp_udp_truncated_datagrams", "counter",
           "UDP datagrams longer than the buffer, dropped.", (unsigned long long)st->udp_truncated);
    family(&o, "iocp_udp_errors", "counter", "UDP receives or sends that failed.",
           (unsigned long long)st->udp_errors);
    emit(&o, "# HELP iocp_udp_refused_datagrams UDP datagrams not answered, by reason.\n"
             "# TYPE iocp_udp_refused_datagrams counter\n");
    emit(&o, "iocp_udp_refused_datagrams_total{reason=\"low_port\"} %llu\n",
         (unsigned long long)st->udp_refused_port);
    emit(&o, "iocp_udp_refused_datagrams_total{reason=\"own_port\"} %llu\n",
         (unsigned long long)st->udp_refused_self);
    emit(&o, "iocp_udp_refused_datagrams_total{reason=\"no_reply_address\"} %llu\n",
         (unsigned long long)st->udp_refused_address);
    emit(&o, "iocp_udp_refused_datagrams_total{reason=\"loop\"} %llu\n",
         (unsigned long long)st->udp_refused_loop);
    emit(&o, "iocp_udp_refused_datagrams_total{reason=\"source_rate\"} %llu\n",
         (unsigned long long)st->udp_rate_limited);
    emit(&o, "iocp_udp_refused_datagrams_total{reason=\"total_rate\"} %llu\n",
         (unsigned long long)st->udp_capped);
    family(&o, "iocp_receive_buffers_in_use", "gauge", "Receive buffers held by connections now.",
           (unsigned long long)st->buffers_in_use);
    family(&o, "iocp_receive_buffers_peak", "gauge", "The most receive buffers held at once.",
           (unsigned long long)st->buffers_peak);
    family(&o, "iocp_receive_buffers_max", "gauge", "The receive buffer pool's cap.",
           (unsigned long long)st->buffers_max);
    family(&o, "iocp_receive_buffer_waits", "counter",
           "Times a connection with data waiting found the buffer pool empty.",
           (unsigned long long)st->buffer_waits);
    family(&o, "iocp_send_queue_bytes", "gauge", "Bytes queued for sending on all connections.",
           (unsigned long long)st->bytes_queued);
    family(&o, "iocp_send_heap_chunks", "gauge", "Send queue chunks from the heap now.",
           (unsigned long long)st->heap_chunks);
    return o.len;
}
