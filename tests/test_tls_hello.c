/* test_tls_hello.c: the ClientHello reader behind the engine's TLS floor (iocp/src/tls_hello.c)
 * finds the highest offered version the way RFC 8446 says (supported_versions over
 * legacy_version, GREASE ignored), asks for more bytes for every cut of a ClientHello (within
 * a record and across records), refuses malformed and oversized ones with a reason, and builds
 * the alert the server sends. Plain C: builds for Windows (run under Wine) and natively
 * (scripts/fuzz.sh runs it under ASan/UBSan). */
#include "harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_hello.h"

/* ---- building ClientHellos ------------------------------------------------------------- */

typedef struct hello_spec {
    unsigned legacy_version;
    const unsigned *versions; /* supported_versions, or NULL for none */
    size_t version_count;
    int extensions;    /* 0: no extension block at all (pre-TLS 1.3 shape) */
    size_t session_id; /* its length */
    size_t padding;    /* an extra extension (type 21) of this many bytes, 0 = none */
    const unsigned
        *suites; /* NULL: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256 */
    size_t suite_count;
} hello_spec;

static size_t put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

/* The handshake message (header and body) into msg; returns its length. */
static size_t build_message(const hello_spec *s, uint8_t *msg, size_t cap)
{
    size_t n = 4;
    n += put16(msg + n, s->legacy_version);
    memset(msg + n, 0xab, 32); /* random */
    n += 32;
    msg[n++] = (uint8_t)s->session_id;
    memset(msg + n, 0x11, s->session_id);
    n += s->session_id;
    static const unsigned default_suites[] = {0xc02f, 0x1301};
    const unsigned *suites = s->suites != NULL ? s->suites : default_suites;
    size_t suite_count = s->suites != NULL ? s->suite_count : 2;
    n += put16(msg + n, (unsigned)(2 * suite_count));
    for (size_t i = 0; i < suite_count; i++)
        n += put16(msg + n, suites[i]);
    msg[n++] = 1; /* one compression method: null */
    msg[n++] = 0;
    if (s->extensions) {
        size_t ext_start = n;
        n += 2;
        n += put16(msg + n, 0x000a); /* supported_groups: one group */
        n += put16(msg + n, 4);
        n += put16(msg + n, 2);
        n += put16(msg + n, 0x001d);
        if (s->versions != NULL) {
            n += put16(msg + n, 43);
            n += put16(msg + n, (unsigned)(1 + 2 * s->version_count));
            msg[n++] = (uint8_t)(2 * s->version_count);
            for (size_t i = 0; i < s->version_count; i++)
                n += put16(msg + n, s->versions[i]);
        }
        if (s->padding > 0) {
            n += put16(msg + n, 21);
            n += put16(msg + n, (unsigned)s->padding);
            memset(msg + n, 0, s->padding);
            n += s->padding;
        }
        put16(msg + ext_start, (unsigned)(n - ext_start - 2));
    }
    CHECK(n <= cap);
    msg[0] = 1; /* client_hello */
    msg[1] = (uint8_t)((n - 4) >> 16);
    msg[2] = (uint8_t)((n - 4) >> 8);
    msg[3] = (uint8_t)(n - 4);
    return n;
}

/* The message in records of at most `frag` payload bytes each; returns the wire length. */
static size_t build_records(const uint8_t *msg, size_t len, size_t frag, uint8_t *wire, size_t cap)
{
    size_t n = 0;
    for (size_t pos = 0; pos < len; pos += frag) {
        size_t part = len - pos < frag ? len - pos : frag;
        CHECK(n + 5 + part <= cap);
        wire[n++] = 22;
        wire[n++] = 3;
        wire[n++] = 1;
        n += put16(wire + n, (unsigned)part);
        memcpy(wire + n, msg + pos, part);
        n += part;
    }
    return n;
}

static uint8_t msg_buf[40000], wire_buf[80000];

/* A ClientHello in one record. */
static size_t build(const hello_spec *s)
{
    size_t m = build_message(s, msg_buf, sizeof msg_buf);
    return build_records(msg_buf, m, 16384, wire_buf, sizeof wire_buf);
}

/* Parses a heap copy of exactly len bytes (so that a read past the end is caught by ASan). */
static iocpi_hello_result parse_copy(const uint8_t *in, size_t len, iocpi_hello *h)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, in, len);
    iocpi_hello_result r = iocpi_hello_parse(copy, len, h);
    free(copy);
    return r;
}

/* ---- cases -------------------------------------------------------------------------------- */

static void highest_version_offered(void)
{
    static const unsigned v13[] = {0x0304, 0x0303};
    static const unsigned grease_11[] = {0x1a1a, 0x0302, 0x0301};
    static const unsigned only_grease[] = {0xfafa};
    static const unsigned low_first[] = {0x0301, 0x0304, 0x0303};
    struct {
        hello_spec spec;
        unsigned want;
        int has_sv;
    } cases[] = {
        {{0x0301, NULL, 0, 0, 0, 0, NULL, 0}, 0x0301, 0},  /* TLS 1.0, no extensions */
        {{0x0302, NULL, 0, 1, 32, 0, NULL, 0}, 0x0302, 0}, /* TLS 1.1 with extensions */
        {{0x0303, NULL, 0, 1, 0, 0, NULL, 0}, 0x0303, 0},  /* TLS 1.2 */
        {{0x0303, v13, 2, 1, 32, 0, NULL, 0}, 0x0304, 1},  /* TLS 1.3 */
        {{0x0303, grease_11, 3, 1, 0, 0, NULL, 0},
         0x0302,
         1}, /* supported_versions wins, GREASE out */
        {{0x0303, only_grease, 1, 1, 0, 0, NULL, 0}, 0, 1},    /* nothing real offered */
        {{0x0301, low_first, 3, 1, 0, 0, NULL, 0}, 0x0304, 1}, /* the largest, not the first */
        {{0x0303, v13, 2, 1, 0, 1000, NULL, 0}, 0x0304, 1},    /* padded */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = build(&cases[i].spec);
        iocpi_hello h;
        CHECK_MSG(parse_copy(wire_buf, n, &h) == IOCPI_HELLO_OK, "case %lu: %s", (unsigned long)i,
                  h.error ? h.error : "not OK");
        CHECK_EQ_U(h.highest, cases[i].want);
        CHECK_EQ_U(h.legacy_version, cases[i].spec.legacy_version);
        CHECK_EQ_U(h.has_supported_versions, cases[i].has_sv);
        CHECK_EQ_U(h.record_version, 0x0301);
        CHECK_EQ_U(h.wire_len, n);
    }
}

/* Every cut of a ClientHello, in one record or in many, asks for more; the whole says OK;
 * bytes after it (the client's next records) change nothing. */
static void every_split_needs_more(void)
{
    static const unsigned v13[] = {0x0304, 0x0303};
    hello_spec s = {0x0303, v13, 2, 1, 32, 200, NULL, 0};
    size_t m = build_message(&s, msg_buf, sizeof msg_buf);
    static const size_t frags[] = {16384, 100, 11};
    for (size_t f = 0; f < sizeof frags / sizeof frags[0]; f++) {
        size_t n = build_records(msg_buf, m, frags[f], wire_buf, sizeof wire_buf);
        iocpi_hello h;
        for (size_t cut = 0; cut < n; cut++) {
            CHECK_MSG(parse_copy(wire_buf, cut, &h) == IOCPI_HELLO_NEED_MORE,
                      "records of %lu: a cut at %lu of %lu did not ask for more",
                      (unsigned long)frags[f], (unsigned long)cut, (unsigned long)n);
            /* need: the end of the header or record being waited for, past the cut */
            CHECK(h.need > cut && h.need <= n);
        }
        memcpy(wire_buf + n, "\x14\x03\x03\x00\x01\x01garbage", 14);
        for (size_t extra = 0; extra <= 14; extra++) {
            CHECK(parse_copy(wire_buf, n + extra, &h) == IOCPI_HELLO_OK);
            CHECK_EQ_U(h.highest, 0x0304);
            CHECK_EQ_U(h.wire_len, n);
        }
    }
}

/* The record that ends the ClientHello carries more handshake bytes after it (a client
 * never sends them, but a peer may): the message ends where its header says, in one record
 * or across many. */
static void record_holds_more_than_hello(void)
{
    static const unsigned v13[] = {0x0304, 0x0303};
    hello_spec s = {0x0303, v13, 2, 1, 0, 0, NULL, 0};
    size_t m = build_message(&s, msg_buf, sizeof msg_buf);
    memcpy(msg_buf + m, "\x0b\x00\x00", 3);
    static const size_t frags[] = {16384, 100, 7};
    for (size_t f = 0; f < sizeof frags / sizeof frags[0]; f++) {
        size_t n = build_records(msg_buf, m + 3, frags[f], wire_buf, sizeof wire_buf);
        iocpi_hello h;
        CHECK_MSG(parse_copy(wire_buf, n, &h) == IOCPI_HELLO_OK, "records of %lu",
                  (unsigned long)frags[f]);
        CHECK_EQ_U(h.highest, 0x0304);
        CHECK_EQ_U(h.wire_len, n);
    }
}

/* Each defect named; never OK, never a read past the input. */
static void malformed_refused(void)
{
    static const unsigned v13[] = {0x0304, 0x0303};
    hello_spec s = {0x0303, v13, 2, 1, 0, 0, NULL, 0};
    size_t n = build(&s);
    uint8_t good[1024];
    CHECK(n <= sizeof good);
    memcpy(good, wire_buf, n);
    /* Offsets: record header 0..4, handshake header 5..8, version 9..10, random 11..42,
     * session id length 43, suites length 44..45, suites 46..49, compression 50..51,
     * extensions length 52..53, supported_groups 54..61, supported_versions 62.. */
    struct {
        size_t at;
        uint8_t value;
        const char *what;
    } defects[] = {
        {0, 23, "the first record is not a handshake record"},
        {1, 2, "a record version that is not 3.x"},
        {5, 2, "the first handshake message is not a ClientHello"},
        {43, 33, "bad session id"},
        {45, 3, "bad cipher suite list"},
        {50, 0, "bad compression method list"},
        {53, 0xff, "the extensions' length does not match the message"},
        {57, 0xff, "an extension runs past the message"},
        {66, 3, "bad supported_versions list"},
    };
    for (size_t i = 0; i < sizeof defects / sizeof defects[0]; i++) {
        memcpy(wire_buf, good, n);
        wire_buf[defects[i].at] = defects[i].value;
        iocpi_hello h;
        iocpi_hello_result r = parse_copy(wire_buf, n, &h);
        CHECK_MSG(r == IOCPI_HELLO_MALFORMED, "defect %lu (%s): result %d", (unsigned long)i,
                  defects[i].what, (int)r);
        CHECK_MSG(h.error != NULL && strcmp(h.error, defects[i].what) == 0,
                  "defect %lu: '%s', wanted '%s'", (unsigned long)i, h.error ? h.error : "(none)",
                  defects[i].what);
    }
    /* A zero-length record; a record of another type between two parts of the hello. */
    static const uint8_t empty[] = {22, 3, 1, 0, 0};
    iocpi_hello h;
    CHECK(parse_copy(empty, sizeof empty, &h) == IOCPI_HELLO_MALFORMED);
    size_t m = build_message(&s, msg_buf, sizeof msg_buf);
    size_t w = build_records(msg_buf, m, 20, wire_buf, sizeof wire_buf);
    wire_buf[25] = 23; /* the second record */
    CHECK(parse_copy(wire_buf, w, &h) == IOCPI_HELLO_MALFORMED);
    CHECK(strcmp(h.error, "a record of another type inside the ClientHello") == 0);
    /* supported_versions twice. */
    uint8_t twice[1024];
    memcpy(twice, good, n);
    memcpy(twice + n, good + 62, 9); /* the extension again, at the end */
    twice[3] = (uint8_t)((n + 9 - 5) >> 8);
    twice[4] = (uint8_t)(n + 9 - 5);
    twice[7] = (uint8_t)((n + 9 - 9) >> 8);
    twice[8] = (uint8_t)(n + 9 - 9);
    twice[52] = (uint8_t)((n + 9 - 54) >> 8);
    twice[53] = (uint8_t)(n + 9 - 54);
    CHECK(parse_copy(twice, n + 9, &h) == IOCPI_HELLO_MALFORMED);
    CHECK(strcmp(h.error, "supported_versions given twice") == 0);
}

/* Bounded: a ClientHello longer than one record's worth, or announced so, or in more than
 * IOCPI_HELLO_MAX_RECORDS records, is refused, and the reader never asks for more than
 * IOCPI_HELLO_WIRE_MAX bytes. */
static void oversized_refused(void)
{
    static const unsigned v13[] = {0x0304, 0x0303};
    hello_spec big = {0x0303, v13, 2, 1, 0, 16384, NULL, 0};
    size_t m = build_message(&big, msg_buf, sizeof msg_buf);
    size_t n = build_records(msg_buf, m, 16384, wire_buf, sizeof wire_buf);
    iocpi_hello h;
    CHECK(parse_copy(wire_buf, n, &h) == IOCPI_HELLO_TOO_LARGE);
    /* In records of 600 bytes, a hello of 16,370 needs 28 records and more than the wire
     * bound: refused as soon as the next record could not end within it. */
    hello_spec mid = {0x0303, v13, 2, 1, 0, 16300, NULL, 0};
    m = build_message(&mid, msg_buf, sizeof msg_buf);
    n = build_records(msg_buf, m, 600, wire_buf, sizeof wire_buf);
    CHECK(n > IOCPI_HELLO_WIRE_MAX);
    CHECK(parse_copy(wire_buf, IOCPI_HELLO_WIRE_MAX - 700, &h) == IOCPI_HELLO_NEED_MORE);
    CHECK(parse_copy(wire_buf, IOCPI_HELLO_WIRE_MAX, &h) == IOCPI_HELLO_TOO_LARGE);
    CHECK(parse_copy(wire_buf, n, &h) == IOCPI_HELLO_TOO_LARGE);
    /* One-byte records: refused once 32 whole records have not finished it. */
    hello_spec small = {0x0303, v13, 2, 1, 0, 0, NULL, 0};
    m = build_message(&small, msg_buf, sizeof msg_buf);
    n = build_records(msg_buf, m, 1, wire_buf, sizeof wire_buf);
    CHECK(parse_copy(wire_buf, 32 * 6 - 1, &h) == IOCPI_HELLO_NEED_MORE);
    CHECK(parse_copy(wire_buf, 32 * 6, &h) == IOCPI_HELLO_MALFORMED);
    CHECK(strcmp(h.error, "a ClientHello in more than 32 records") == 0);
    /* A header announcing 1 MiB: refused from its first 9 bytes. */
    static const uint8_t huge[] = {22, 3, 1, 0x40, 0x00, 1, 0x10, 0x00, 0x00};
    CHECK(parse_copy(huge, sizeof huge, &h) == IOCPI_HELLO_TOO_LARGE);
    /* A record longer than 16384. */
    static const uint8_t long_record[] = {22, 3, 1, 0x40, 0x01, 1, 0, 0, 40};
    CHECK(parse_copy(long_record, sizeof long_record, &h) == IOCPI_HELLO_MALFORMED);
}

/* What the suite floor needs from the offer: a forward-secret AEAD suite, or at least a
 * forward-secret one (enough below TLS 1.2), for each kind of certificate; unknown suites
 * count as neither. */
static void suites_offered(void)
{
    static const unsigned cbc_only[] = {0xc013, 0x002f, 0x0035};
    static const unsigned rsa_gcm[] = {0x009c, 0x009d};
    static const unsigned mixed[] = {0x002f, 0xcca8};
    static const unsigned unknown[] = {0x5600, 0xff85};
    static const unsigned tls13[] = {0x1302};
    static const unsigned ecdsa_gcm_rsa_cbc[] = {0xc02b, 0xc014};
    struct {
        const unsigned *suites;
        size_t count;
        unsigned fs, fs_aead;
    } cases[] = {
        {cbc_only, 3, IOCPI_TLS_AUTH_RSA, 0},
        {rsa_gcm, 2, 0, 0},
        {mixed, 2, IOCPI_TLS_AUTH_RSA, IOCPI_TLS_AUTH_RSA},
        {ecdsa_gcm_rsa_cbc, 2, IOCPI_TLS_AUTH_RSA | IOCPI_TLS_AUTH_ECDSA, IOCPI_TLS_AUTH_ECDSA},
        {unknown, 2, 0, 0},
        {tls13, 1, IOCPI_TLS_AUTH_ANY, IOCPI_TLS_AUTH_ANY},
        {NULL, 0, IOCPI_TLS_AUTH_RSA | IOCPI_TLS_AUTH_ANY, IOCPI_TLS_AUTH_RSA | IOCPI_TLS_AUTH_ANY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hello_spec s = {0x0303, NULL, 0, 1, 0, 0, cases[i].suites, cases[i].count};
        size_t n = build(&s);
        iocpi_hello h;
        CHECK(parse_copy(wire_buf, n, &h) == IOCPI_HELLO_OK);
        CHECK_MSG(h.offers_fs == cases[i].fs && h.offers_fs_aead == cases[i].fs_aead,
                  "case %lu: offers_fs %u, offers_fs_aead %u", (unsigned long)i, h.offers_fs,
                  h.offers_fs_aead);
    }
    const iocpi_tls_suite *s = iocpi_tls_suite_find(0xc030);
    CHECK(s != NULL && s->forward_secret && s->aead && s->auth == IOCPI_TLS_AUTH_RSA &&
          strcmp(s->name, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384") == 0);
    CHECK(iocpi_tls_suite_find(0x5600) == NULL);
}

static void alert_and_names(void)
{
    uint8_t a[IOCPI_TLS_ALERT_LEN];
    static const uint8_t want[] = {21, 3, 1, 0, 2, 2, 70};
    CHECK_EQ_U(iocpi_tls_alert(a, 0x0301, 70), IOCPI_TLS_ALERT_LEN);
    CHECK(memcmp(a, want, sizeof want) == 0);
    char buf[32];
    CHECK(strcmp(iocpi_tls_version_name(0x0301, buf, sizeof buf), "TLS 1.0") == 0);
    CHECK(strcmp(iocpi_tls_version_name(0x0303, buf, sizeof buf), "TLS 1.2") == 0);
    CHECK(strcmp(iocpi_tls_version_name(0x0304, buf, sizeof buf), "TLS 1.3") == 0);
    CHECK(strcmp(iocpi_tls_version_name(0x0300, buf, sizeof buf), "SSL 3.0") == 0);
    CHECK(strcmp(iocpi_tls_version_name(0x7f1c, buf, sizeof buf), "version 0x7f1c") == 0);
}

static const test_case cases[] = {
    {"highest_version_offered", highest_version_offered},
    {"every_split_needs_more", every_split_needs_more},
    {"record_holds_more_than_hello", record_holds_more_than_hello},
    {"malformed_refused", malformed_refused},
    {"oversized_refused", oversized_refused},
    {"suites_offered", suites_offered},
    {"alert_and_names", alert_and_names},
};

TEST_MAIN(cases)
