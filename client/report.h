/*
 * report.h: the load mode's numbers and how they are printed: the progress line, the final
 * summary as text, and the same summary as one JSON object. Formatting only (into a caller's
 * buffer), plain C11, so it is unit-tested without the engine.
 *
 * Units: latency in microseconds; MB is 10^6 bytes; throughput counts echoed payload bytes.
 */
#ifndef CLIENT_REPORT_H
#define CLIENT_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "iocp/iocp.h"

/* Errors by kind, as the summary counts them. */
typedef enum client_error_kind {
    CLIENT_ERR_RESOLVE = 0, /* the host name did not resolve */
    CLIENT_ERR_REFUSED,     /* connection refused */
    CLIENT_ERR_TIMEOUT,     /* connect timed out, or an echo stopped making progress */
    CLIENT_ERR_RESET,       /* the connection was reset or lost */
    CLIENT_ERR_CLOSED,      /* the server closed the connection with echoes outstanding */
    CLIENT_ERR_PROTOCOL,    /* the echo broke the framing (oversized frame, ...) */
    CLIENT_ERR_MISMATCH,    /* echoed bytes differ from the bytes sent */
    CLIENT_ERR_TLS,         /* the TLS handshake failed (a certificate that did not validate) */
    CLIENT_ERR_OTHER,       /* anything else; the first error message says what */
    CLIENT_ERR_COUNT_
} client_error_kind;

/* "resolve", "refused", ... (the JSON keys). */
const char *client_error_kind_name(client_error_kind kind);
client_error_kind client_error_kind_for_err(iocp_err err);
/* The exit code an error of this kind gives (exit_codes.h). */
int client_exit_for_kind(client_error_kind kind);

typedef struct client_latency {
    uint64_t count;
    uint64_t min, p50, p90, p99, p999, max;
    double mean;
} client_latency;

typedef struct client_summary {
    /* what was run */
    const char *host;
    uint16_t port;
    const char *framing;
    uint32_t connections, depth, size;
    int churn;
    double connect_rate;
    /* what happened */
    double elapsed_s;
    uint64_t messages; /* echoes received complete and verified */
    uint64_t bytes_sent, bytes_received;
    client_latency latency;
    /* dial start (iocp_engine_connect) to on_open: resolve and TCP connect, and with TLS the
     * whole handshake too (on_open comes after it) */
    client_latency connect;
    int tls;                         /* --tls: the handshake figures below apply */
    char tls_protocol[64];           /* "TLS 1.2, AES-256" of the first connection, "" if none */
    uint64_t tls_handshakes;         /* the engine's count of completed handshakes */
    uint64_t tls_handshake_failures; /* the engine's count of failed ones */
    uint64_t connects;               /* connections opened */
    uint64_t connect_failures;       /* dials that failed */
    uint64_t reconnects;             /* dials after a loss or a failure */
    uint64_t lost_in_flight;         /* messages sent whose echo never came: connection lost */
    uint64_t errors[CLIENT_ERR_COUNT_];
    uint64_t mismatches;
    char first_error[256]; /* the first error's full message, "" if none */
    int exit_code;
} client_summary;

double report_rate(uint64_t count, double seconds);
uint64_t report_error_total(const client_summary *s);

/* All return the length they need, like snprintf; the text ends with '\n'. */
size_t report_text(const client_summary *s, char *buf, size_t size);
size_t report_json(const client_summary *s, char *buf, size_t size);
/* "[   3 s] 41152 msg/s   2.63 MB/s   100 active   0 errors" (no line end). */
size_t report_progress(char *buf, size_t size, double t_s, double msg_per_s, double mb_per_s,
                       uint64_t active, uint64_t errors);

#endif
