/*
 * status_proto.h: the status pipe's requests and answers. Plain C11, no Win32 (it also
 * compiles natively), so the parsing is tested on its own.
 *
 * A request is one pipe message holding one word: "PING", "INFO", "STATS" or "DRAIN", optionally
 * followed by "\n" or "\r\n"; at most SVC_PROTO_REQUEST_MAX bytes. Anything else is
 * malformed. An answer is text: "OK\n" then "key=value\n" lines, or "ERR reason\n" (after
 * which the server closes the pipe).
 */
#ifndef IOCP_SERVICE_STATUS_PROTO_H
#define IOCP_SERVICE_STATUS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SVC_PROTO_REQUEST_MAX 1100 /* "UPGRADE 1 <path>" (supervisor.c) */
#define SVC_PROTO_ANSWER_MAX  2048

typedef enum svc_request {
    SVC_REQ_MALFORMED = 0,
    SVC_REQ_PING,
    SVC_REQ_INFO,
    SVC_REQ_STATS,
    SVC_REQ_DRAIN /* stop as a stop does (drain.c); answered as INFO, draining=1 */
} svc_request;

/* What an instance tells about itself. */
typedef struct svc_status_info {
    char name[72];
    char mode[16]; /* "console" or "service" */
    char address[80];
    uint32_t pid;
    int draining; /* 1 once a stop has begun */
    uint64_t uptime_ms;
    uint64_t active, accepted, rejected;
    uint64_t bytes_in, bytes_out, messages_in, messages_out;
    uint64_t protocol_errors;
    int tls;              /* 1: the listener speaks TLS */
    char tls_source[128]; /* "PFX <path>" or "certificate <thumbprint> in <store>\My" */
    uint64_t tls_handshakes, tls_failures;
    uint64_t tls_below_floor; /* of the failures: refused by --tls-min-version or the suites */
    int udp;                  /* 1: UDP echo is served too (or alone) */
    char udp_address[80];     /* "[::]:9000" */
    uint64_t udp_datagrams_in, udp_datagrams_out, udp_bytes_in, udp_bytes_out;
    uint64_t udp_dropped, udp_truncated, udp_errors;
    /* hostile peers: connections over --conn-rate, evicted for a newcomer; datagrams not
     * answered (port below 1024, our own port, a no-reply address; over a source's rate, over
     * the total) */
    uint64_t rejected_rate, evicted;
    uint64_t udp_refused_port, udp_refused_self, udp_refused_address;
    uint64_t udp_rate_limited, udp_capped;
    uint64_t udp_refused_loop;
} svc_status_info;

svc_request svc_proto_parse_request(const char *buf, size_t len);
/* The answer to a valid request; returns its length (< size, NUL-terminated). */
size_t svc_proto_format(svc_request req, const svc_status_info *info, char *out, size_t size);
/* "ERR reason\n". */
size_t svc_proto_format_error(const char *reason, char *out, size_t size);
/* Reads an answer. Returns 0; -1 with err set for "ERR ..." or a garbled answer. Unknown keys
 * are ignored (newer servers may add some). */
int svc_proto_parse_answer(const char *text, size_t len, svc_status_info *out, char *err,
                           size_t err_size);

#endif
