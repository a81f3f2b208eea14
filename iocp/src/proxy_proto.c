/*
 * proxy_proto.c: the PROXY protocol header parser (v1 text, v2 binary) and the trusted
 * source list; see proxy_proto.h. The specification is HAProxy's doc/proxy-protocol.txt.
 *
 * Strict where the specification is: a v1 line is "PROXY TCP4|TCP6 src dst sport dport\r\n"
 * or "PROXY UNKNOWN...\r\n" within 107 bytes; a v2 header is the 12-byte signature, version 2
 * with command LOCAL or PROXY, a family and transport this TCP listener can use, and a length
 * that covers the addresses. Every rule fails as soon as the byte that breaks it arrives, so a
 * source that is not speaking the protocol is told at once, not after a timeout.
 */
#include "proxy_proto.h"

#include <stdio.h>
#include <string.h>

static const uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
#define V2_FIXED 16
#define V2_KEEP  (V2_FIXED + 36) /* the fixed part and two IPv6 addresses with their ports */

void iocpi_proxy_init(iocpi_proxy_parser *p)
{
    memset(p, 0, sizeof *p);
}

/* what is a string literal: "PROXY protocol: " is pasted in front at compile time. */
#define fail(p, what) fail_with((p), "PROXY protocol: " what)

static iocpi_proxy_status fail_with(iocpi_proxy_parser *p, const char *error)
{
    p->error = error;
    p->status = IOCPI_PROXY_ERROR;
    return p->status;
}

/* ---- addresses in text ----------------------------------------------------------------- */

static int parse_ipv4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.')
                return 0;
            i++;
        }
        unsigned v = 0, digits = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
            v = v * 10 + (unsigned)(s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[i - digits] == '0'))
            return 0;
        out[part] = (uint8_t)v;
    }
    return i == len;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* RFC 4291 text: up to eight groups of 1-4 hex digits, one "::" for a run of zero groups,
 * and an IPv4 dotted quad in place of the last two groups. */
static int parse_ipv6(const char *s, size_t len, uint8_t out[16])
{
    uint16_t groups[8] = {0};
    int n = 0, gap = -1;
    size_t i = 0;
    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        i = 2;
    } else if (len >= 1 && s[0] == ':') {
        return 0;
    }
    while (i < len) {
        if (n == 8)
            return 0;
        /* An IPv4 tail: the rest has a '.' and no ':'. */
        size_t j = i;
        int dot = 0;
        while (j < len && s[j] != ':') {
            if (s[j] == '.')
                dot = 1;
            j++;
        }
        if (dot) {
            uint8_t v4[4];
            if (j != len || n > 6 || !parse_ipv4(s + i, len - i, v4))
                return 0;
            groups[n++] = (uint16_t)(v4[0] << 8 | v4[1]);
            groups[n++] = (uint16_t)(v4[2] << 8 | v4[3]);
            i = len;
            break;
        }
        unsigned v = 0, digits = 0;
        while (i < len && hex_value(s[i]) >= 0) {
            if (++digits > 4)
                return 0;
            v = v << 4 | (unsigned)hex_value(s[i]);
            i++;
        }
        if (digits == 0)
            return 0;
        groups[n++] = (uint16_t)v;
        if (i == len)
            break;
        if (s[i] != ':')
            return 0;
        i++;
        if (i < len && s[i] == ':') {
            if (gap >= 0)
                return 0; /* a second "::" */
            gap = n;
            i++;
        } else if (i == len) {
            return 0; /* a trailing single ':' */
        }
    }
    if (gap < 0 && n != 8)
        return 0;
    if (gap >= 0 && n == 8)
        return 0; /* "::" must stand for at least one group */
    uint16_t full[8] = {0};
    if (gap < 0) {
        memcpy(full, groups, sizeof full);
    } else {
        int tail = n - gap;
        for (int k = 0; k < gap; k++)
            full[k] = groups[k];
        for (int k = 0; k < tail; k++)
            full[8 - tail + k] = groups[gap + k];
    }
    for (int k = 0; k < 8; k++) {
        out[2 * k] = (uint8_t)(full[k] >> 8);
        out[2 * k + 1] = (uint8_t)full[k];
    }
    return 1;
}

int iocpi_ip_parse(const char *text, size_t len, uint8_t out[16], int *family)
{
    if (text == NULL || len == 0 || len > 45)
        return 0;
    if (memchr(text, ':', len) != NULL) {
        if (!parse_ipv6(text, len, out))
            return 0;
        *family = 6;
        return 1;
    }
    uint8_t v4[4];
    if (!parse_ipv4(text, len, v4))
        return 0;
    memcpy(out, v4_mapped_prefix, 12);
    memcpy(out + 12, v4, 4);
    *family = 4;
    return 1;
}

/* ---- v1 ---------------------------------------------------------------------------------- */

/* The next space-separated field of line[*pos .. end): its start and length. */
static int next_field(const char *line, size_t end, size_t *pos, const char **field, size_t *len)
{
    if (*pos >= end)
        return 0;
    size_t start = *pos;
    while (*pos < end && line[*pos] != ' ')
        (*pos)++;
    *field = line + start;
    *len = *pos - start;
    if (*pos < end)
        (*pos)++; /* the single space */
    return *len > 0;
}

static int parse_port(const char *s, size_t len, uint16_t *port)
{
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return 0;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return 0;
    *port = (uint16_t)v;
    return 1;
}

/* The whole line is in buf, "\r\n" at have - 2. */
static iocpi_proxy_status finish_v1(iocpi_proxy_parser *p)
{
    const char *line = (const char *)p->buf;
    size_t end = p->have - 2, pos = 6; /* after "PROXY " */
    const char *f;
    size_t n;
    if (!next_field(line, end, &pos, &f, &n))
        return fail(p, "v1 line has no protocol (TCP4, TCP6 or UNKNOWN)");
    if (n == 7 && memcmp(f, "UNKNOWN", 7) == 0 && (f + n == line + end || f[n] == ' ')) {
        p->has_address = 0; /* the rest of the line is to be ignored */
        return p->status = IOCPI_PROXY_DONE;
    }
    int want;
    if (n == 4 && memcmp(f, "TCP4", 4) == 0)
        want = 4;
    else if (n == 4 && memcmp(f, "TCP6", 4) == 0)
        want = 6;
    else
        return fail(p, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
    uint8_t src[16], dst[16];
    int src_family = 0, dst_family = 0;
    uint16_t sport = 0, dport = 0;
    if (!next_field(line, end, &pos, &f, &n) || !iocpi_ip_parse(f, n, src, &src_family) ||
        src_family != want)
        return want == 4 ? fail(p, "v1 source is not an IPv4 address")
                         : fail(p, "v1 source is not an IPv6 address");
    if (!next_field(line, end, &pos, &f, &n) || !iocpi_ip_parse(f, n, dst, &dst_family) ||
        dst_family != want)
        return want == 4 ? fail(p, "v1 destination is not an IPv4 address")
                         : fail(p, "v1 destination is not an IPv6 address");
    if (!next_field(line, end, &pos, &f, &n) || !parse_port(f, n, &sport))
        return fail(p, "v1 source port is not 0..65535");
    if (!next_field(line, end, &pos, &f, &n) || !parse_port(f, n, &dport) || pos != end ||
        line[end - 1] == ' ')
        return fail(p, "v1 destination port is not 0..65535, or the line goes on after it");
    p->has_address = 1;
    p->family = want;
    memcpy(p->addr, src, 16);
    p->port = sport;
    return p->status = IOCPI_PROXY_DONE;
}

static iocpi_proxy_status feed_v1(iocpi_proxy_parser *p, const uint8_t *data, size_t len,
                                  size_t *used)
{
    static const char prefix[] = "PROXY ";
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = data[i];
        if (p->have < 6 && ch != (uint8_t)prefix[p->have])
            return fail(p, "v1 line does not begin with \"PROXY \"");
        if (ch == '\n') {
            if (p->have == 0 || p->buf[p->have - 1] != '\r')
                return fail(p, "v1 line ends in a bare LF, not CRLF");
            p->buf[p->have++] = ch;
            p->total++;
            *used = i + 1;
            return finish_v1(p);
        }
        if (ch == '\r' && p->have > 0 && p->buf[p->have - 1] == '\r')
            return fail(p, "v1 line has a CR inside it");
        if (ch != '\r' && (ch < 0x20 || ch > 0x7e))
            return fail(p, "v1 line has a byte that is not printable ASCII");
        if (p->have + 1 >= IOCPI_PROXY_V1_MAX)
            return fail(p, "v1 line longer than 107 bytes");
        p->buf[p->have++] = ch;
        p->total++;
    }
    *used = len;
    return IOCPI_PROXY_NEED_MORE;
}

/* ---- v2 ---------------------------------------------------------------------------------- */

static iocpi_proxy_status finish_v2(iocpi_proxy_parser *p)
{
    const uint8_t *h = p->buf;
    size_t payload = p->v2_total - V2_FIXED;
    p->has_address = 0;
    if ((h[12] & 0x0F) == 0x0)
        return p->status = IOCPI_PROXY_DONE; /* LOCAL: the balancer's own (a health check) */
    switch (h[13]) {
    case 0x00: /* UNSPEC: the sender does not know; use the connection's address */
        break;
    case 0x11: /* TCP over IPv4: src(4) dst(4) sport(2) dport(2) */
        if (payload < 12)
            return fail(p, "v2 TCP/IPv4 header shorter than its addresses (12 bytes)");
        p->has_address = 1;
        p->family = 4;
        memcpy(p->addr, v4_mapped_prefix, 12);
        memcpy(p->addr + 12, h + 16, 4);
        p->port = (uint16_t)(h[24] << 8 | h[25]);
        break;
    case 0x21: /* TCP over IPv6: src(16) dst(16) sport(2) dport(2) */
        if (payload < 36)
            return fail(p, "v2 TCP/IPv6 header shorter than its addresses (36 bytes)");
        p->has_address = 1;
        p->family = 6;
        memcpy(p->addr, h + 16, 16);
        p->port = (uint16_t)(h[48] << 8 | h[49]);
        break;
    case 0x31: /* a UNIX stream socket: no address this server can use */
        if (payload < 216)
            return fail(p, "v2 UNIX header shorter than its addresses (216 bytes)");
        break;
    default:
        return fail(p, "v2 family/transport is not TCP over IPv4 or IPv6, UNIX or UNSPEC");
    }
    return p->status = IOCPI_PROXY_DONE;
}

static iocpi_proxy_status feed_v2(iocpi_proxy_parser *p, const uint8_t *data, size_t len,
                                  size_t *used)
{
    size_t i = 0;
    while (p->total < V2_FIXED && i < len) {
        uint8_t ch = data[i++];
        size_t at = p->have;
        if (at < 12 && ch != v2_signature[at])
            return fail(p, "v2 signature is wrong");
        if (at == 12 && (ch >> 4) != 2)
            return fail(p, "v2 version is not 2");
        if (at == 12 && (ch & 0x0F) > 1)
            return fail(p, "v2 command is neither LOCAL nor PROXY");
        p->buf[p->have++] = ch;
        p->total++;
        if (p->total == V2_FIXED) {
            size_t payload = (size_t)p->buf[14] << 8 | p->buf[15];
            if (payload > IOCPI_PROXY_V2_MAX_PAYLOAD)
                return fail(p, "v2 header longer than 1040 bytes");
            p->v2_total = V2_FIXED + payload;
        }
    }
    if (p->total >= V2_FIXED) {
        /* Addresses: kept. TLVs: counted and skipped (nothing here needs them). */
        size_t want = p->v2_total - p->total, take = len - i < want ? len - i : want;
        for (size_t k = 0; k < take && p->have < V2_KEEP; k++)
            p->buf[p->have++] = data[i + k];
        p->total += take;
        i += take;
        if (p->total == p->v2_total) {
            *used = i;
            return finish_v2(p);
        }
    }
    *used = i;
    return IOCPI_PROXY_NEED_MORE;
}

iocpi_proxy_status iocpi_proxy_feed(iocpi_proxy_parser *p, const uint8_t *data, size_t len,
                                    size_t *used)
{
    *used = 0;
    if (p->status != IOCPI_PROXY_NEED_MORE)
        return p->status;
    if (len == 0)
        return IOCPI_PROXY_NEED_MORE;
    if (p->version == 0) {
        if (data[0] == 'P')
            p->version = 1;
        else if (data[0] == 0x0D)
            p->version = 2;
        else
            return fail(p, "the connection does not begin with a v1 or v2 header");
    }
    return p->version == 1 ? feed_v1(p, data, len, used) : feed_v2(p, data, len, used);
}

/* ---- the trusted sources ------------------------------------------------------------------ */

static int parse_one_cidr(const char *s, size_t len, iocpi_cidr *out, char *err, size_t err_size)
{
    const char *slash = memchr(s, '/', len);
    size_t addr_len = slash != NULL ? (size_t)(slash - s) : len;
    int family = 0;
    uint8_t addr[16];
    if (!iocpi_ip_parse(s, addr_len, addr, &family)) {
        snprintf(err, err_size, "'%.*s': not an IPv4 or IPv6 address (e.g. 10.0.0.0/8, ::1/128)",
                 (int)(len > 60 ? 60 : len), s);
        return 0;
    }
    unsigned max = family == 4 ? 32 : 128, bits = max;
    if (slash != NULL) {
        size_t n = len - addr_len - 1;
        uint16_t v = 0;
        if (!parse_port(slash + 1, n, &v) || v > max) {
            snprintf(err, err_size, "'%.*s': the prefix length must be 0..%u for %s",
                     (int)(len > 60 ? 60 : len), s, max, family == 4 ? "IPv4" : "IPv6");
            return 0;
        }
        bits = v;
    }
    if (out != NULL) {
        out->bits = family == 4 ? 96 + bits : bits;
        memset(out->addr, 0, 16);
        for (unsigned b = 0; b < out->bits; b++)
            out->addr[b / 8] |= (uint8_t)(addr[b / 8] & (0x80u >> (b % 8)));
    }
    return 1;
}

int iocpi_cidr_list_parse(const char *text, iocpi_cidr *out, size_t max, size_t *n, char *err,
                          size_t err_size)
{
    *n = 0;
    if (text == NULL || text[0] == '\0') {
        snprintf(err, err_size, "the list is empty (e.g. 127.0.0.1/32,::1/128,10.0.0.0/8)");
        return 0;
    }
    const char *s = text;
    for (;;) {
        while (*s == ' ')
            s++;
        const char *end = s;
        while (*end != '\0' && *end != ',' && *end != ' ')
            end++;
        if (end == s) {
            snprintf(err, err_size, "an empty entry in '%.60s' (entries are separated by commas)",
                     text);
            return 0;
        }
        if (!parse_one_cidr(s, (size_t)(end - s), out != NULL && *n < max ? &out[*n] : NULL, err,
                            err_size))
            return 0;
        (*n)++;
        s = end;
        while (*s == ' ')
            s++;
        if (*s == '\0')
            return 1;
        if (*s != ',') {
            snprintf(err, err_size, "'%.60s': expected a comma before '%.20s'", text, s);
            return 0;
        }
        s++;
    }
}

int iocpi_cidr_match(const iocpi_cidr *list, size_t n, const uint8_t addr[16])
{
    for (size_t i = 0; i < n; i++) {
        unsigned bits = list[i].bits, full = bits / 8, rest = bits % 8;
        if (memcmp(list[i].addr, addr, full) != 0)
            continue;
        if (rest != 0 && ((addr[full] ^ list[i].addr[full]) & (uint8_t)(0xFF00u >> rest)) != 0)
            continue;
        return 1;
    }
    return 0;
}
