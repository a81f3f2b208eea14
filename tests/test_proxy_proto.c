/*
 * test_proxy_proto.c: the PROXY protocol header parser and the trusted-source list
 * (iocp/src/proxy_proto.c), without sockets. Plain C: it builds natively too
 * (scripts/fuzz.sh runs it under ASan and UBSan).
 */
#include "harness.h"
#include "proxy_proto.h"

#include <string.h>

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Feeds the whole input in pieces of `step` bytes (0 = at once); the status and the bytes
 * the header used. */
static iocpi_proxy_status feed_split(iocpi_proxy_parser *p, const uint8_t *d, size_t len,
                                     size_t step, size_t *header_len)
{
    iocpi_proxy_init(p);
    size_t pos = 0;
    *header_len = 0;
    while (pos < len) {
        size_t n = step == 0 || len - pos < step ? len - pos : step, used = 99999;
        iocpi_proxy_status st = iocpi_proxy_feed(p, d + pos, n, &used);
        if (st == IOCPI_PROXY_ERROR)
            return st;
        CHECK(used <= n);
        if (st == IOCPI_PROXY_DONE) {
            *header_len = pos + used;
            return st;
        }
        CHECK_EQ_U(used, n); /* NEED_MORE takes everything fed */
        pos += n;
    }
    return IOCPI_PROXY_NEED_MORE;
}

static const uint8_t v4_7[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 7};

/* A v1 TCP4 line followed by application data: every split gives the same address, and the
 * header ends exactly at the CRLF (the data after it is never consumed). */
static void v1_tcp4_every_split(void)
{
    const char *line = "PROXY TCP4 127.0.0.7 10.0.0.1 40001 9000\r\nHELLO";
    size_t len = strlen(line), hdr = strlen(line) - 5;
    for (size_t step = 0; step <= len; step++) {
        iocpi_proxy_parser p;
        size_t used;
        CHECK(feed_split(&p, (const uint8_t *)line, len, step, &used) == IOCPI_PROXY_DONE);
        CHECK_EQ_U(used, hdr);
        CHECK(p.has_address && p.family == 4 && p.port == 40001);
        CHECK(memcmp(p.addr, v4_7, 16) == 0);
    }
}

static void v1_tcp6(void)
{
    const char *line = "PROXY TCP6 2001:db8::1:2 ::1 65535 443\r\n";
    iocpi_proxy_parser p;
    size_t used;
    CHECK(feed_split(&p, (const uint8_t *)line, strlen(line), 3, &used) == IOCPI_PROXY_DONE);
    static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2};
    CHECK(p.has_address && p.family == 6 && p.port == 65535 && memcmp(p.addr, want, 16) == 0);
}

/* UNKNOWN: the connection's own address; whatever follows UNKNOWN on the line is ignored. */
static void v1_unknown(void)
{
    const char *lines[] = {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ::2 1 2\r\n"};
    for (int i = 0; i < 2; i++) {
        iocpi_proxy_parser p;
        size_t used;
        CHECK(feed_split(&p, (const uint8_t *)lines[i], strlen(lines[i]), 1, &used) ==
              IOCPI_PROXY_DONE);
        CHECK_EQ_U(used, strlen(lines[i]));
        CHECK(!p.has_address);
    }
}

/* Each broken v1 line fails with an error naming the rule, at any split. */
static void v1_rejects(void)
{
    static const struct {
        const char *line, *error_has;
    } bad[] = {
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare LF"},
        {"PROXZ TCP4", "begin with"},
        {"GET / HTTP/1.1\r\n", "does not begin"},
        {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "TCP4, TCP6 or UNKNOWN"},
        {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "source is not an IPv4"},
        {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "source is not an IPv4"},
        {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "source is not an IPv4"},
        {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "source is not an IPv6"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "source port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "source port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "destination port"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "destination port"},
        {"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "source is not"},
        {"PROXY TCP4 1.2.3.4\x01 5.6.7.8 1 2\r\n", "printable"},
        {"PROXY TCP4 1.2.3.4\r\r\n", "CR inside"},
        {"PROXY TCP6 1::2::3 ::1 1 2\r\n", "source is not an IPv6"},
        {"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "source is not an IPv6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (size_t step = 0; step < 3; step++) {
            iocpi_proxy_parser p;
            size_t used;
            iocpi_proxy_status st =
                feed_split(&p, (const uint8_t *)bad[i].line, strlen(bad[i].line), step, &used);
            CHECK_MSG(st == IOCPI_PROXY_ERROR, "'%s' step %zu: status %d", bad[i].line, step,
                      (int)st);
            CHECK_MSG(strstr(p.error, bad[i].error_has) != NULL, "'%s': error '%s', want '%s'",
                      bad[i].line, p.error, bad[i].error_has);
        }
    }
}

/* 107 bytes with the CRLF is the most; 108 fails before the line ends (bounded state). */
static void v1_oversize(void)
{
    char line[200];
    /* "PROXY UNKNOWN " (14) + padding + "\r\n" */
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 105, "\r\n", 2);
    iocpi_proxy_parser p;
    size_t used;
    CHECK(feed_split(&p, (const uint8_t *)line, 107, 0, &used) == IOCPI_PROXY_DONE);
    CHECK_EQ_U(used, 107);
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 106, "\r\n", 2);
    CHECK(feed_split(&p, (const uint8_t *)line, 108, 1, &used) == IOCPI_PROXY_ERROR);
    CHECK(strstr(p.error, "longer than 107") != NULL);
    /* no CRLF at all: fails at byte 107, not at the end of the stream */
    CHECK(feed_split(&p, (const uint8_t *)line, 200, 0, &used) == IOCPI_PROXY_ERROR);
}

/* A truncated header is NEED_MORE, never DONE nor an error: the engine's timeout ends it. */
static void truncated(void)
{
    const char *line = "PROXY TCP4 127.0.0.7 10.0.0.1 40001 9000\r";
    iocpi_proxy_parser p;
    size_t used;
    CHECK(feed_split(&p, (const uint8_t *)line, strlen(line), 0, &used) == IOCPI_PROXY_NEED_MORE);
    uint8_t v2[20];
    memcpy(v2, sig, 12);
    v2[12] = 0x21;
    v2[13] = 0x11;
    v2[14] = 0;
    v2[15] = 12;
    CHECK(feed_split(&p, v2, 20, 1, &used) == IOCPI_PROXY_NEED_MORE);
    CHECK(feed_split(&p, v2, 10, 0, &used) == IOCPI_PROXY_NEED_MORE);
}

static size_t v2_header(uint8_t *out, uint8_t cmd, uint8_t fam, const uint8_t *payload, size_t plen)
{
    memcpy(out, sig, 12);
    out[12] = cmd;
    out[13] = fam;
    out[14] = (uint8_t)(plen >> 8);
    out[15] = (uint8_t)plen;
    memcpy(out + 16, payload, plen);
    return 16 + plen;
}

/* v2 PROXY TCP/IPv4 with TLVs after the addresses: skipped, at every split. */
static void v2_tcp4_with_tlvs(void)
{
    uint8_t payload[12 + 40], buf[200];
    const uint8_t addrs[12] = {127, 0, 0, 7, 10, 0, 0, 1, 0x9c, 0x41, 0x23, 0x28};
    memcpy(payload, addrs, 12);
    for (int i = 0; i < 40; i++)
        payload[12 + i] = (uint8_t)(0xE0 + i); /* TLV bytes: never looked at */
    size_t n = v2_header(buf, 0x21, 0x11, payload, sizeof payload);
    memcpy(buf + n, "\x16\x03\x01", 3); /* a ClientHello's first bytes follow */
    for (size_t step = 0; step <= n + 3; step++) {
        iocpi_proxy_parser p;
        size_t used;
        CHECK(feed_split(&p, buf, n + 3, step, &used) == IOCPI_PROXY_DONE);
        CHECK_EQ_U(used, n);
        CHECK(p.has_address && p.family == 4 && p.port == 40001 && memcmp(p.addr, v4_7, 16) == 0);
    }
}

static void v2_ipv6(void)
{
    uint8_t payload[36], buf[100];
    for (int i = 0; i < 16; i++)
        payload[i] = (uint8_t)(0x20 + i);
    memset(payload + 16, 0, 16);
    payload[32] = 0x01;
    payload[33] = 0xBB;
    payload[34] = 0x23;
    payload[35] = 0x28;
    size_t n = v2_header(buf, 0x21, 0x21, payload, 36);
    iocpi_proxy_parser p;
    size_t used;
    CHECK(feed_split(&p, buf, n, 5, &used) == IOCPI_PROXY_DONE);
    CHECK(p.has_address && p.family == 6 && p.port == 443 && memcmp(p.addr, payload, 16) == 0);
    /* 35 bytes cannot hold two IPv6 addresses and ports */
    n = v2_header(buf, 0x21, 0x21, payload, 35);
    CHECK(feed_split(&p, buf, n, 0, &used) == IOCPI_PROXY_ERROR);
    CHECK(strstr(p.error, "IPv6 header shorter") != NULL);
}

/* LOCAL (a health check): the connection's own address, whatever family it claims; its
 * payload is skipped. UNSPEC and UNIX under PROXY: the own address too. */
static void v2_local(void)
{
    uint8_t buf[300], junk[216] = {0};
    iocpi_proxy_parser p;
    size_t used, n;
    n = v2_header(buf, 0x20, 0x00, junk, 0);
    CHECK(feed_split(&p, buf, n, 1, &used) == IOCPI_PROXY_DONE && !p.has_address);
    CHECK_EQ_U(used, 16);
    n = v2_header(buf, 0x20, 0x11, junk, 12);
    CHECK(feed_split(&p, buf, n, 0, &used) == IOCPI_PROXY_DONE && !p.has_address);
    CHECK_EQ_U(used, 28);
    n = v2_header(buf, 0x21, 0x00, junk, 0);
    CHECK(feed_split(&p, buf, n, 0, &used) == IOCPI_PROXY_DONE && !p.has_address);
    n = v2_header(buf, 0x21, 0x31, junk, 216);
    CHECK(feed_split(&p, buf, n, 7, &used) == IOCPI_PROXY_DONE && !p.has_address);
}

static void v2_rejects(void)
{
    uint8_t buf[2000], payload[1100] = {0};
    iocpi_proxy_parser p;
    size_t used, n;
    n = v2_header(buf, 0x21, 0x11, payload, 12);
    buf[7] = 'X';
    CHECK(feed_split(&p, buf, n, 1, &used) == IOCPI_PROXY_ERROR);
    CHECK(strstr(p.error, "signature") != NULL);
    n = v2_header(buf, 0x11, 0x11, payload, 12);
    CHECK(feed_split(&p, buf, n, 0, &used) == IOCPI_PROXY_ERROR);
    CHECK(strstr(p.error, "version") != NULL);
    n = v2_header(buf, 0x22, 0x11, payload, 12);
    CHECK(feed_split(&p, buf, n, 0, &used) == IOCPI_PROXY_ERROR);
    CHECK(strstr(p.error, "command") != NULL);
    n = v2_header(buf, 0x21, 0x12, payload, 12); /* UDP over IPv4 on a TCP listener */
    CHECK(feed_split(&p, buf, n, 0, &used) == IOCPI_PROXY_ERROR);
    CHECK(strstr(p.error, "family") != NULL);
    n = v2_header(buf, 0x21, 0x11, payload, 11);
    CHECK(feed_split(&p, buf, n, 0, &used) == IOCPI_PROXY_ERROR);
    /* Oversize: refused at the length field, before any of the payload is read. */
    n = v2_header(buf, 0x21, 0x11, payload, 1025);
    CHECK(feed_split(&p, buf, 16, 0, &used) == IOCPI_PROXY_ERROR);
    CHECK(strstr(p.error, "longer than 1040") != NULL);
    n = v2_header(buf, 0x21, 0x11, payload, 1024);
    CHECK(feed_split(&p, buf, n, 100, &used) == IOCPI_PROXY_DONE);
    CHECK_EQ_U(used, 1040);
    /* After DONE or ERROR nothing more is consumed. */
    used = 5;
    CHECK(iocpi_proxy_feed(&p, buf, 10, &used) == IOCPI_PROXY_DONE && used == 0);
}

static void addresses_in_text(void)
{
    uint8_t a[16];
    int fam = 0;
    CHECK(iocpi_ip_parse("::ffff:127.0.0.7", 16, a, &fam) && fam == 6 && memcmp(a, v4_7, 16) == 0);
    CHECK(iocpi_ip_parse("127.0.0.7", 9, a, &fam) && fam == 4 && memcmp(a, v4_7, 16) == 0);
    CHECK(iocpi_ip_parse("::", 2, a, &fam) && fam == 6);
    CHECK(iocpi_ip_parse("1:2:3:4:5:6:7:8", 15, a, &fam) && a[15] == 8 && a[0] == 0);
    CHECK(iocpi_ip_parse("1::", 3, a, &fam) && a[1] == 1 && a[15] == 0);
    static const char *bad[] = {":",
                                ":::",
                                "1:2:3:4:5:6:7:8::",
                                "1:2:3:4:5:6:7",
                                "12345::",
                                "1.2.3",
                                "1.2.3.4.5",
                                "256.1.1.1",
                                "1::2:",
                                "::1.2.3",
                                "g::1",
                                "1:2:3:4:5:6:7:1.2.3.4",
                                "[::1]",
                                "fe80::1%1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(!iocpi_ip_parse(bad[i], strlen(bad[i]), a, &fam), "'%s' was accepted", bad[i]);
}

static void cidr_lists(void)
{
    iocpi_cidr list[8];
    size_t n = 0;
    char err[160];
    CHECK(iocpi_cidr_list_parse("127.0.0.1/32, ::1/128 ,10.0.0.0/8,192.168.1.9", list, 8, &n, err,
                                sizeof err));
    CHECK_EQ_U(n, 4);
    uint8_t a[16];
    int fam;
    CHECK(iocpi_ip_parse("10.200.3.4", 10, a, &fam) && iocpi_cidr_match(list, n, a));
    CHECK(iocpi_ip_parse("11.0.0.1", 8, a, &fam) && !iocpi_cidr_match(list, n, a));
    CHECK(iocpi_ip_parse("127.0.0.1", 9, a, &fam) && iocpi_cidr_match(list, n, a));
    CHECK(iocpi_ip_parse("127.0.0.2", 9, a, &fam) && !iocpi_cidr_match(list, n, a));
    CHECK(iocpi_ip_parse("::1", 3, a, &fam) && iocpi_cidr_match(list, n, a));
    CHECK(iocpi_ip_parse("::2", 3, a, &fam) && !iocpi_cidr_match(list, n, a));
    CHECK(iocpi_ip_parse("192.168.1.9", 11, a, &fam) && iocpi_cidr_match(list, n, a));
    /* an IPv6 /0 matches every address, IPv4-mapped ones included */
    CHECK(iocpi_cidr_list_parse("::/0", list, 8, &n, err, sizeof err) && n == 1);
    CHECK(iocpi_ip_parse("10.0.0.1", 8, a, &fam) && iocpi_cidr_match(list, n, a));
    /* a /12 with host bits set matches its network */
    CHECK(iocpi_cidr_list_parse("172.31.255.255/12", list, 8, &n, err, sizeof err));
    CHECK(iocpi_ip_parse("172.16.0.1", 10, a, &fam) && iocpi_cidr_match(list, n, a));
    CHECK(iocpi_ip_parse("172.32.0.1", 10, a, &fam) && !iocpi_cidr_match(list, n, a));
    static const struct {
        const char *text, *error_has;
    } bad[] = {{"", "empty"},
               {"10.0.0.0/33", "0..32 for IPv4"},
               {"::1/129", "0..128"},
               {"10.0.0.0/", "prefix length"},
               {"10.0.0.0/8,", "empty entry"},
               {"10.0.0.0/8 10.1.0.0/16", "expected a comma"},
               {"localhost", "not an IPv4 or IPv6"},
               {"10.0.0.0/08", "prefix length"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(!iocpi_cidr_list_parse(bad[i].text, list, 8, &n, err, sizeof err),
                  "'%s' accepted", bad[i].text);
        CHECK_MSG(strstr(err, bad[i].error_has) != NULL, "'%s': '%s'", bad[i].text, err);
    }
}

static const test_case cases[] = {
    {"v1_tcp4_every_split", v1_tcp4_every_split},
    {"v1_tcp6", v1_tcp6},
    {"v1_unknown", v1_unknown},
    {"v1_rejects", v1_rejects},
    {"v1_oversize", v1_oversize},
    {"truncated", truncated},
    {"v2_tcp4_with_tlvs", v2_tcp4_with_tlvs},
    {"v2_ipv6", v2_ipv6},
    {"v2_local", v2_local},
    {"v2_rejects", v2_rejects},
    {"addresses_in_text", addresses_in_text},
    {"cidr_lists", cidr_lists},
};

TEST_MAIN(cases)
