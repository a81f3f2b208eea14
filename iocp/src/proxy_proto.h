/*
 * proxy_proto.h: the PROXY protocol (HAProxy's, versions 1 and 2) that a load balancer puts
 * in front of a connection to say whose it is, and the list of sources it is believed from.
 *
 * Plain C with no Win32 and no allocation, so that the parser builds natively too (the unit
 * tests and the libFuzzer target, scripts/fuzz.sh). The engine's side (when a connection must
 * begin with a header, what its address then becomes) is in conn.c and listener.c.
 *
 * The parser is incremental: feed it the connection's first bytes as they arrive, in any
 * split; it keeps what it needs in its own fixed state (a v1 line is at most 107 bytes; of a
 * v2 header only the first 52 bytes are kept, the rest, TLVs included, is counted and
 * skipped) and says how many of the bytes fed were the header's. Every byte after the header
 * is the application's (TLS, framing) and is never consumed.
 */
#ifndef IOCP_PROXY_PROTO_H
#define IOCP_PROXY_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* A v1 line, "PROXY ... \r\n" included, is at most this long (the specification's bound). */
#define IOCPI_PROXY_V1_MAX 107
/* A v2 header: the 16 fixed bytes plus at most this many of addresses and TLVs. HAProxy's
 * own receiver accepts up to its buffer size; 1 KiB holds both IPv6 addresses and the TLVs a
 * balancer sends (ALPN, authority, a unique id, SSL details) with room to spare, and bounds
 * what a trusted but broken source can make a connection hold. */
#define IOCPI_PROXY_V2_MAX_PAYLOAD 1024

typedef enum iocpi_proxy_status {
    IOCPI_PROXY_NEED_MORE = 0, /* every byte fed was the header's; it is not complete yet */
    IOCPI_PROXY_DONE,          /* complete: *used bytes were the header's, the rest is data */
    IOCPI_PROXY_ERROR          /* not a valid header (error says why): close the connection */
} iocpi_proxy_status;

typedef struct iocpi_proxy_parser {
    uint8_t buf[IOCPI_PROXY_V1_MAX + 1]; /* v1: the line so far; v2: the first 52 bytes */
    size_t have;                         /* bytes of buf filled */
    size_t total;                        /* header bytes consumed so far */
    size_t v2_total;                     /* v2: the whole header's length, once known */
    int version;                         /* 0 until the first byte tells, then 1 or 2 */
    iocpi_proxy_status status;
    /* The result, once DONE: has_address 0 = use the connection's own address (v2 LOCAL, v1
     * UNKNOWN, v2 UNSPEC or UNIX); else the client's address, IPv4 as ::ffff:a.b.c.d. */
    int has_address;
    int family; /* 4 or 6: how the header gave the address */
    uint8_t addr[16];
    uint16_t port;
    const char *error; /* on ERROR: "PROXY protocol: <the rule broken>" (static text) */
} iocpi_proxy_parser;

void iocpi_proxy_init(iocpi_proxy_parser *p);

/* Feeds the next bytes of the connection. *used: how many of them belonged to the header
 * (all of them on NEED_MORE; 0 or more on DONE; undefined on ERROR). After DONE or ERROR
 * every further call returns the same status and uses nothing. */
iocpi_proxy_status iocpi_proxy_feed(iocpi_proxy_parser *p, const uint8_t *data, size_t len,
                                    size_t *used);

/* An IPv4 or IPv6 address in text ("10.0.0.1", "::1", "::ffff:1.2.3.4") as 16 bytes (IPv4
 * as ::ffff:a.b.c.d); *family 4 or 6. Strict: no leading zeros in IPv4, no zone, no
 * brackets. Returns 1 when valid. */
int iocpi_ip_parse(const char *text, size_t len, uint8_t out[16], int *family);

/* One trusted source: an address and a prefix length over the 16-byte form (an IPv4 prefix
 * /n is stored as /96+n, so 10.0.0.0/8 also matches ::ffff:10.x.y.z). */
typedef struct iocpi_cidr {
    uint8_t addr[16];
    unsigned bits;
} iocpi_cidr;

/* Parses "127.0.0.1/32,::1/128,10.0.0.0/8" (spaces around commas allowed; an address alone
 * is /32 or /128). Stores at most max entries in out and their count in *n (call with
 * out = NULL and max = 0 to count). Returns 1, or 0 with the reason in err ("'10.0.0.0/33':
 * the prefix length must be 0..32 for IPv4"). */
int iocpi_cidr_list_parse(const char *text, iocpi_cidr *out, size_t max, size_t *n, char *err,
                          size_t err_size);

/* Whether the 16-byte address lies in one of the n ranges. */
int iocpi_cidr_match(const iocpi_cidr *list, size_t n, const uint8_t addr[16]);

#endif
