/* report.c: the load mode's progress line and summary, as text and as JSON. */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "exit_codes.h"

static const char *const kind_names[CLIENT_ERR_COUNT_] = {
    [CLIENT_ERR_RESOLVE] = "resolve",   [CLIENT_ERR_REFUSED] = "refused",
    [CLIENT_ERR_TIMEOUT] = "timeout",   [CLIENT_ERR_RESET] = "reset",
    [CLIENT_ERR_CLOSED] = "closed",     [CLIENT_ERR_PROTOCOL] = "protocol",
    [CLIENT_ERR_MISMATCH] = "mismatch", [CLIENT_ERR_TLS] = "tls",
    [CLIENT_ERR_OTHER] = "other",
};

const char *client_error_kind_name(client_error_kind kind)
{
    return (unsigned)kind < CLIENT_ERR_COUNT_ ? kind_names[kind] : "other";
}

client_error_kind client_error_kind_for_err(iocp_err err)
{
    switch (err) {
    case IOCP_E_RESOLVE:
        return CLIENT_ERR_RESOLVE;
    case IOCP_E_REFUSED:
        return CLIENT_ERR_REFUSED;
    case IOCP_E_TIMEOUT:
        return CLIENT_ERR_TIMEOUT;
    case IOCP_E_RESET:
    case IOCP_E_NOT_CONNECTED:
        return CLIENT_ERR_RESET;
    case IOCP_E_PROTOCOL:
        return CLIENT_ERR_PROTOCOL;
    case IOCP_E_TLS:
        return CLIENT_ERR_TLS;
    default:
        return CLIENT_ERR_OTHER;
    }
}

int client_exit_for_kind(client_error_kind kind)
{
    switch (kind) {
    case CLIENT_ERR_RESOLVE:
        return CLIENT_EXIT_RESOLVE;
    case CLIENT_ERR_REFUSED:
        return CLIENT_EXIT_REFUSED;
    case CLIENT_ERR_TIMEOUT:
        return CLIENT_EXIT_TIMEOUT;
    case CLIENT_ERR_RESET:
    case CLIENT_ERR_CLOSED:
        return CLIENT_EXIT_RESET;
    case CLIENT_ERR_MISMATCH:
        return CLIENT_EXIT_MISMATCH;
    case CLIENT_ERR_TLS:
        return CLIENT_EXIT_TLS;
    default:
        return CLIENT_EXIT_OTHER;
    }
}

double report_rate(uint64_t count, double seconds)
{
    return seconds > 0 ? (double)count / seconds : 0.0;
}

uint64_t report_error_total(const client_summary *s)
{
    uint64_t total = 0;
    for (int k = 0; k < CLIENT_ERR_COUNT_; k++)
        total += s->errors[k];
    return total;
}

typedef struct out {
    char *buf;
    size_t size, len;
} out;

static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->len < o->size ? o->buf + o->len : NULL,
                      o->len < o->size ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static out out_start(char *buf, size_t size)
{
    out o = {buf, buf != NULL ? size : 0, 0};
    if (o.size > 0)
        o.buf[0] = '\0';
    return o;
}

/* A JSON number: finite, '.' as the separator (the C locale is never changed here). */
static double json_finite(double v)
{
    return isfinite(v) ? v : 0.0;
}

static void put_json_string(out *o, const char *s)
{
    put(o, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            put(o, "\\%c", *p);
        else if (*p == '\n')
            put(o, "\\n");
        else if (*p == '\r')
            put(o, "\\r");
        else if (*p == '\t')
            put(o, "\\t");
        else if (*p < 0x20)
            put(o, "\\u%04x", *p);
        else
            put(o, "%c", *p); /* UTF-8 passes through as it is */
    }
    put(o, "\"");
}

/* {"count":..,"min":..,"p50":..,"p90":..,"p99":..,"p99_9":..,"max":..,"mean":..} */
static void put_latency_json(out *o, const client_latency *l)
{
    put(o,
        "{\"count\":%llu,\"min\":%llu,\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p99_9\":%llu,"
        "\"max\":%llu,\"mean\":%.1f}",
        (unsigned long long)l->count, (unsigned long long)l->min, (unsigned long long)l->p50,
        (unsigned long long)l->p90, (unsigned long long)l->p99, (unsigned long long)l->p999,
        (unsigned long long)l->max, json_finite(l->mean));
}

/* "  LABEL p50 .., p90 .., ... (min .., mean ..)SUFFIX\n", label padded to the column. */
static void put_latency_text(out *o, const char *label, const client_latency *l, const char *suffix)
{
    if (l->count == 0) {
        put(o, "  %-12s none recorded\n", label);
        return;
    }
    put(o, "  %-12s p50 %llu, p90 %llu, p99 %llu, p99.9 %llu, max %llu (min %llu, mean %.1f)%s\n",
        label, (unsigned long long)l->p50, (unsigned long long)l->p90, (unsigned long long)l->p99,
        (unsigned long long)l->p999, (unsigned long long)l->max, (unsigned long long)l->min,
        json_finite(l->mean), suffix);
}

size_t report_json(const client_summary *s, char *buf, size_t size)
{
    out o = out_start(buf, size);
    put(&o, "{\"mode\":\"load\",\"host\":");
    put_json_string(&o, s->host);
    put(&o, ",\"port\":%u,\"framing\":", (unsigned)s->port);
    put_json_string(&o, s->framing);
    put(&o,
        ",\"connections\":%lu,\"depth\":%lu,\"size\":%lu,\"churn\":%s,\"connect_rate\":%.3f,"
        "\"elapsed_s\":%.3f,\"messages\":%llu,\"bytes_sent\":%llu,\"bytes_received\":%llu,"
        "\"messages_per_s\":%.1f,\"mb_per_s\":%.3f,",
        (unsigned long)s->connections, (unsigned long)s->depth, (unsigned long)s->size,
        s->churn ? "true" : "false", json_finite(s->connect_rate), json_finite(s->elapsed_s),
        (unsigned long long)s->messages, (unsigned long long)s->bytes_sent,
        (unsigned long long)s->bytes_received, json_finite(report_rate(s->messages, s->elapsed_s)),
        json_finite(report_rate(s->bytes_received, s->elapsed_s) / 1e6));
    put(&o, "\"latency_us\":");
    put_latency_json(&o, &s->latency);
    put(&o, ",\"connect_us\":");
    put_latency_json(&o, &s->connect);
    if (s->tls) {
        put(&o, ",\"tls\":{\"protocol\":");
        put_json_string(&o, s->tls_protocol);
        put(&o,
            ",\"handshakes\":%llu,\"handshake_failures\":%llu,\"handshakes_per_s\":%.1f,"
            "\"handshake_us\":",
            (unsigned long long)s->tls_handshakes, (unsigned long long)s->tls_handshake_failures,
            json_finite(report_rate(s->tls_handshakes, s->elapsed_s)));
        put_latency_json(&o, &s->connect);
        put(&o, "},");
    } else {
        put(&o, ",\"tls\":null,");
    }
    put(&o,
        "\"connects\":%llu,\"connect_failures\":%llu,\"reconnects\":%llu,"
        "\"lost_in_flight\":%llu,\"mismatches\":%llu,\"errors\":{",
        (unsigned long long)s->connects, (unsigned long long)s->connect_failures,
        (unsigned long long)s->reconnects, (unsigned long long)s->lost_in_flight,
        (unsigned long long)s->mismatches);
    for (int k = 0; k < CLIENT_ERR_COUNT_; k++)
        put(&o, "%s\"%s\":%llu", k ? "," : "", kind_names[k], (unsigned long long)s->errors[k]);
    put(&o, ",\"total\":%llu},\"first_error\":", (unsigned long long)report_error_total(s));
    put_json_string(&o, s->first_error);
    put(&o, ",\"exit_code\":%d,\"result\":\"%s\"}\n", s->exit_code, client_exit_name(s->exit_code));
    return o.len;
}

size_t report_text(const client_summary *s, char *buf, size_t size)
{
    out o = out_start(buf, size);
    const client_latency *l = &s->latency;
    const char *host = s->host ? s->host : "?";
    int v6 = strchr(host, ':') != NULL; /* "[::1]:9000" */
    put(&o, "load: %s%s%s:%u%s, %s framing, %lu connections, depth %lu, %lu-byte messages%s\n",
        v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)s->port, s->tls ? " over TLS" : "",
        s->framing ? s->framing : "?", (unsigned long)s->connections, (unsigned long)s->depth,
        (unsigned long)s->size, s->churn ? ", churn" : "");
    put(&o, "  elapsed      %.2f s\n", json_finite(s->elapsed_s));
    put(&o, "  messages     %llu (%.1f/s)\n", (unsigned long long)s->messages,
        json_finite(report_rate(s->messages, s->elapsed_s)));
    put(&o, "  bytes        %llu sent, %llu received (%.3f MB/s)\n",
        (unsigned long long)s->bytes_sent, (unsigned long long)s->bytes_received,
        json_finite(report_rate(s->bytes_received, s->elapsed_s) / 1e6));
    put_latency_text(&o, "latency us", l, "");
    if (s->tls) {
        put_latency_text(&o, "handshake us", &s->connect, ": connect start to open, TLS included");
        put(&o, "  tls          %s; %llu handshakes (%.1f/s), %llu failed\n",
            s->tls_protocol[0] ? s->tls_protocol : "no connection opened",
            (unsigned long long)s->tls_handshakes,
            json_finite(report_rate(s->tls_handshakes, s->elapsed_s)),
            (unsigned long long)s->tls_handshake_failures);
    } else {
        put_latency_text(&o, "connect us", &s->connect, ": connect start to open");
    }
    put(&o, "  connections  %llu opened, %llu connect failures, %llu reconnects\n",
        (unsigned long long)s->connects, (unsigned long long)s->connect_failures,
        (unsigned long long)s->reconnects);
    uint64_t total = report_error_total(s);
    put(&o, "  errors       %llu", (unsigned long long)total);
    if (total > 0) {
        const char *sep = " (";
        for (int k = 0; k < CLIENT_ERR_COUNT_; k++) {
            if (s->errors[k] == 0)
                continue;
            put(&o, "%s%s %llu", sep, kind_names[k], (unsigned long long)s->errors[k]);
            sep = ", ";
        }
        put(&o, ")");
    }
    put(&o, "; %llu echoes lost with their connection\n", (unsigned long long)s->lost_in_flight);
    put(&o, "  mismatches   %llu\n", (unsigned long long)s->mismatches);
    if (s->first_error[0] != '\0')
        put(&o, "  first error  %s\n", s->first_error);
    put(&o, "  result       %s (exit code %d)\n", client_exit_name(s->exit_code), s->exit_code);
    return o.len;
}

size_t report_progress(char *buf, size_t size, double t_s, double msg_per_s, double mb_per_s,
                       uint64_t active, uint64_t errors)
{
    out o = out_start(buf, size);
    put(&o, "[%5.0f s] %10.0f msg/s %9.3f MB/s %7llu active %6llu errors", json_finite(t_s),
        json_finite(msg_per_s), json_finite(mb_per_s), (unsigned long long)active,
        (unsigned long long)errors);
    return o.len;
}
