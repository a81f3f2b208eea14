/*
 * tls_hello.c: the ClientHello reader of tls_hello.h (plain C11, no Win32).
 *
 * Two steps, each bounded. First the handshake message is gathered from the records that
 * carry it (a client may split it over several records of type 22, and a read may end
 * anywhere): record headers are checked (type 22, major version 3, a length of 1..16384) and
 * their payloads copied into a local buffer until the 4-byte handshake header and the length
 * it announces are there. Then the ClientHello body is walked with a cursor that checks each
 * length against what is left before using it: legacy_version, random, session id, cipher
 * suites, compression methods, and the extensions, of which only supported_versions (43)
 * matters here. RFC 8446 4.1.2 and 4.2.1; RFC 5246 7.4.1.2 for the older shape (the
 * extensions may be absent altogether).
 */
#include "tls_hello.h"

#include <stdio.h>
#include <string.h>

#define RECORD_HEADER          5u
#define RECORD_MAX             16384u /* the largest plaintext fragment (RFC 8446 5.1) */
#define TYPE_HANDSHAKE         22u
#define HANDSHAKE_CLIENT_HELLO 1u
#define EXT_SUPPORTED_VERSIONS 43u

/* A read-only cursor over b[0..len). Every take checks what is left first. */
typedef struct cursor {
    const uint8_t *b;
    size_t len, pos;
} cursor;

static int take_u8(cursor *c, unsigned *v)
{
    if (c->len - c->pos < 1)
        return -1;
    *v = c->b[c->pos++];
    return 0;
}

static int take_u16(cursor *c, unsigned *v)
{
    if (c->len - c->pos < 2)
        return -1;
    *v = (unsigned)c->b[c->pos] << 8 | c->b[c->pos + 1];
    c->pos += 2;
    return 0;
}

static int skip(cursor *c, size_t n)
{
    if (c->len - c->pos < n)
        return -1;
    c->pos += n;
    return 0;
}

/* GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa; never a real version. */
static int grease(unsigned v)
{
    return (v & 0x0f0fu) == 0x0a0au && (v >> 12) == ((v >> 4) & 0x0fu);
}

static iocpi_hello_result malformed(iocpi_hello *out, const char *why)
{
    out->error = why;
    return IOCPI_HELLO_MALFORMED;
}

/* The body of a ClientHello (after its 4-byte handshake header). */
static iocpi_hello_result parse_body(const uint8_t *body, size_t len, iocpi_hello *out)
{
    cursor c = {body, len, 0};
    unsigned v, n;
    if (take_u16(&c, &v) != 0 || skip(&c, 32) != 0)
        return malformed(out, "ClientHello shorter than its version and random");
    out->legacy_version = (uint16_t)v;
    out->highest = (uint16_t)v;
    if (take_u8(&c, &n) != 0 || n > 32 || skip(&c, n) != 0)
        return malformed(out, "bad session id");
    if (take_u16(&c, &n) != 0 || n < 2 || n % 2 != 0 || c.len - c.pos < n)
        return malformed(out, "bad cipher suite list");
    for (size_t end = c.pos + n; c.pos < end;) {
        take_u16(&c, &v); /* cannot fail: the list lies within the message */
        const iocpi_tls_suite *s = iocpi_tls_suite_find(v);
        if (s != NULL && s->forward_secret) {
            out->offers_fs |= s->auth;
            if (s->aead)
                out->offers_fs_aead |= s->auth;
        }
    }
    if (take_u8(&c, &n) != 0 || n < 1 || skip(&c, n) != 0)
        return malformed(out, "bad compression method list");
    if (c.pos == c.len)
        return IOCPI_HELLO_OK; /* no extensions (allowed before TLS 1.3) */
    if (take_u16(&c, &n) != 0 || n != c.len - c.pos)
        return malformed(out, "the extensions' length does not match the message");
    while (c.pos < c.len) {
        unsigned type, ext_len;
        if (take_u16(&c, &type) != 0 || take_u16(&c, &ext_len) != 0 || c.len - c.pos < ext_len)
            return malformed(out, "an extension runs past the message");
        cursor ext = {c.b + c.pos, ext_len, 0};
        c.pos += ext_len;
        if (type != EXT_SUPPORTED_VERSIONS)
            continue;
        if (out->has_supported_versions)
            return malformed(out, "supported_versions given twice");
        unsigned list_len;
        if (take_u8(&ext, &list_len) != 0 || list_len < 2 || list_len % 2 != 0 ||
            list_len != ext.len - ext.pos)
            return malformed(out, "bad supported_versions list");
        out->has_supported_versions = 1;
        out->highest = 0;
        while (ext.pos < ext.len) {
            take_u16(&ext, &v); /* cannot fail: the list's length is even and checked */
            if (!grease(v) && v > out->highest)
                out->highest = (uint16_t)v;
        }
    }
    return IOCPI_HELLO_OK;
}

iocpi_hello_result iocpi_hello_parse(const uint8_t *in, size_t len, iocpi_hello *out)
{
    uint8_t msg[RECORD_MAX];
    size_t have = 0, want = 0, pos = 0; /* want: the whole message, once its header is in */
    memset(out, 0, sizeof *out);
    for (unsigned records = 0;; records++) {
        if (pos + RECORD_HEADER > IOCPI_HELLO_WIRE_MAX)
            return IOCPI_HELLO_TOO_LARGE;
        if (records == IOCPI_HELLO_MAX_RECORDS)
            return malformed(out, "a ClientHello in more than 32 records");
        if (len - pos < RECORD_HEADER) {
            out->need = pos + RECORD_HEADER;
            return IOCPI_HELLO_NEED_MORE;
        }
        const uint8_t *h = in + pos;
        size_t frag = (size_t)h[3] << 8 | h[4];
        if (h[0] != TYPE_HANDSHAKE)
            return malformed(out, pos == 0 ? "the first record is not a handshake record"
                                           : "a record of another type inside the ClientHello");
        if (h[1] != 3)
            return malformed(out, "a record version that is not 3.x");
        if (frag == 0 || frag > RECORD_MAX)
            return malformed(out, "a handshake record of length 0 or over 16384");
        if (pos == 0)
            out->record_version = (uint16_t)(h[1] << 8 | h[2]);
        if (pos + RECORD_HEADER + frag > IOCPI_HELLO_WIRE_MAX)
            return IOCPI_HELLO_TOO_LARGE;
        /* What this record adds to the message (possibly only part of its payload is here). */
        size_t avail = len - pos - RECORD_HEADER;
        size_t part = frag < avail ? frag : avail;
        if (want != 0 && part > want - have)
            part = want - have; /* bytes after the ClientHello: not ours */
        if (part > sizeof msg - have)
            return IOCPI_HELLO_TOO_LARGE;
        memcpy(msg + have, h + RECORD_HEADER, part);
        have += part;
        if (want == 0 && have >= 4) {
            if (msg[0] != HANDSHAKE_CLIENT_HELLO)
                return malformed(out, "the first handshake message is not a ClientHello");
            size_t body = (size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3];
            if (body > sizeof msg - 4)
                return IOCPI_HELLO_TOO_LARGE;
            want = 4 + body;
            if (have > want)
                have = want;
        }
        if (want != 0 && have == want) {
            /* The record that ends the message: its payload may hold nothing else (a
             * ClientHello is the client's only handshake message of its first flight). */
            out->wire_len = pos + RECORD_HEADER + frag;
            if (frag > avail) {
                out->need = out->wire_len;
                return IOCPI_HELLO_NEED_MORE;
            }
            return parse_body(msg + 4, want - 4, out);
        }
        if (frag > avail) {
            /* The record's end; or, while the handshake header is incomplete, the header's
             * end (its length may settle the answer at once: too large, not a ClientHello). */
            size_t before = have - part;
            size_t header_rest = 4 - before < frag ? 4 - before : frag;
            out->need = pos + RECORD_HEADER + (want == 0 ? header_rest : frag);
            return IOCPI_HELLO_NEED_MORE;
        }
        pos += RECORD_HEADER + frag;
    }
}

/* The suites Schannel and its peers negotiate (IANA numbers, RFC 5246, 5289, 7905, 8446). */
static const iocpi_tls_suite suites[] = {
    {0x0004, 0, 0, IOCPI_TLS_AUTH_RSA, "TLS_RSA_WITH_RC4_128_MD5"},
    {0x0005, 0, 0, IOCPI_TLS_AUTH_RSA, "TLS_RSA_WITH_RC4_128_SHA"},
    {0x000a, 0, 0, IOCPI_TLS_AUTH_RSA, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0x002f, 0, 0, IOCPI_TLS_AUTH_RSA, "TLS_RSA_WITH_AES_128_CBC_SHA"},
    {0x0033, 1, 0, IOCPI_TLS_AUTH_RSA, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
    {0x0035, 0, 0, IOCPI_TLS_AUTH_RSA, "TLS_RSA_WITH_AES_256_CBC_SHA"},
    {0x0039, 1, 0, IOCPI_TLS_AUTH_RSA, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
    {0x003c, 0, 0, IOCPI_TLS_AUTH_RSA, "TLS_RSA_WITH_AES_128_CBC_SHA256"},
    {0x003d, 0, 0, IOCPI_TLS_AUTH_RSA, "TLS_RSA_WITH_AES_256_CBC_SHA256"},
    {0x0067, 1, 0, IOCPI_TLS_AUTH_RSA, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"},
    {0x006b, 1, 0, IOCPI_TLS_AUTH_RSA, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"},
    {0x009c, 0, 1, IOCPI_TLS_AUTH_RSA, "TLS_RSA_WITH_AES_128_GCM_SHA256"},
    {0x009d, 0, 1, IOCPI_TLS_AUTH_RSA, "TLS_RSA_WITH_AES_256_GCM_SHA384"},
    {0x009e, 1, 1, IOCPI_TLS_AUTH_RSA, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0x009f, 1, 1, IOCPI_TLS_AUTH_RSA, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0x1301, 1, 1, IOCPI_TLS_AUTH_ANY, "TLS_AES_128_GCM_SHA256"},
    {0x1302, 1, 1, IOCPI_TLS_AUTH_ANY, "TLS_AES_256_GCM_SHA384"},
    {0x1303, 1, 1, IOCPI_TLS_AUTH_ANY, "TLS_CHACHA20_POLY1305_SHA256"},
    {0x1304, 1, 1, IOCPI_TLS_AUTH_ANY, "TLS_AES_128_CCM_SHA256"},
    {0x1305, 1, 1, IOCPI_TLS_AUTH_ANY, "TLS_AES_128_CCM_8_SHA256"},
    {0xc009, 1, 0, IOCPI_TLS_AUTH_ECDSA, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"},
    {0xc00a, 1, 0, IOCPI_TLS_AUTH_ECDSA, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"},
    {0xc013, 1, 0, IOCPI_TLS_AUTH_RSA, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
    {0xc014, 1, 0, IOCPI_TLS_AUTH_RSA, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"},
    {0xc023, 1, 0, IOCPI_TLS_AUTH_ECDSA, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"},
    {0xc024, 1, 0, IOCPI_TLS_AUTH_ECDSA, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"},
    {0xc027, 1, 0, IOCPI_TLS_AUTH_RSA, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"},
    {0xc028, 1, 0, IOCPI_TLS_AUTH_RSA, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"},
    {0xc02b, 1, 1, IOCPI_TLS_AUTH_ECDSA, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
    {0xc02c, 1, 1, IOCPI_TLS_AUTH_ECDSA, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
    {0xc02f, 1, 1, IOCPI_TLS_AUTH_RSA, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0xc030, 1, 1, IOCPI_TLS_AUTH_RSA, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0xc09e, 1, 1, IOCPI_TLS_AUTH_RSA, "TLS_DHE_RSA_WITH_AES_128_CCM"},
    {0xc09f, 1, 1, IOCPI_TLS_AUTH_RSA, "TLS_DHE_RSA_WITH_AES_256_CCM"},
    {0xc0ac, 1, 1, IOCPI_TLS_AUTH_ECDSA, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"},
    {0xc0ad, 1, 1, IOCPI_TLS_AUTH_ECDSA, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"},
    {0xcca8, 1, 1, IOCPI_TLS_AUTH_RSA, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xcca9, 1, 1, IOCPI_TLS_AUTH_ECDSA, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xccaa, 1, 1, IOCPI_TLS_AUTH_RSA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
};

const iocpi_tls_suite *iocpi_tls_suite_find(unsigned id)
{
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        if (suites[i].id == id)
            return &suites[i];
    return NULL;
}

const char *iocpi_tls_version_name(unsigned version, char *buf, size_t size)
{
    if (version == 0x0300u)
        snprintf(buf, size, "SSL 3.0");
    else if (version >= IOCPI_TLS_V1_0 && version <= 0x0309u)
        snprintf(buf, size, "TLS 1.%u", version - IOCPI_TLS_V1_0);
    else if (version == 0)
        snprintf(buf, size, "no version");
    else
        snprintf(buf, size, "version 0x%04x", version);
    return buf;
}

size_t iocpi_tls_alert(uint8_t out[IOCPI_TLS_ALERT_LEN], unsigned record_version,
                       unsigned description)
{
    out[0] = 21; /* alert */
    out[1] = (uint8_t)(record_version >> 8);
    out[2] = (uint8_t)record_version;
    out[3] = 0;
    out[4] = 2;
    out[5] = 2; /* fatal */
    out[6] = (uint8_t)description;
    return IOCPI_TLS_ALERT_LEN;
}
