/* test_framing.c: the decoder gives the same messages for any split of the stream, delivers in
 * place when it can, refuses oversized frames before allocating, and round-trips the encoder.
 * Plain C: builds for Windows (run under Wine) and natively (run under ASan/UBSan). */
#include "harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iocp/framing.h"

/* ---- capturing messages ------------------------------------------------------------------ */

/* Every message a decoder delivered, copied, and where it was delivered from. */
typedef struct capture {
    uint8_t *bytes; /* the payloads, concatenated */
    size_t len, cap;
    size_t *lens; /* one per message */
    size_t count, lens_cap;
    const iocp_decoder *d;
    const uint8_t *chunk; /* the chunk being fed */
    size_t chunk_len;
    size_t in_place;   /* messages delivered by pointer into the chunk */
    size_t assembled;  /* messages delivered from d->buf */
    size_t stop_after; /* the callback returns 1 on this message (0: never) */
} capture;

static void capture_init(capture *c, const iocp_decoder *d)
{
    memset(c, 0, sizeof *c);
    c->d = d;
}

static void capture_free(capture *c)
{
    free(c->bytes);
    free(c->lens);
    memset(c, 0, sizeof *c);
}

static int within(const uint8_t *p, size_t len, const uint8_t *base, size_t base_len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return base != NULL && a >= b && a - b <= base_len && len <= base_len - (a - b);
}

static int on_message(void *user, const uint8_t *msg, size_t len)
{
    capture *c = user;
    CHECK(msg != NULL);
    if (len > 0) {
        /* In place (inside the fed chunk) or assembled (d->buf); nowhere else. */
        if (within(msg, len, c->chunk, c->chunk_len)) {
            c->in_place++;
        } else {
            CHECK_MSG(msg == c->d->buf && len <= c->d->buf_cap,
                      "message of %llu bytes is neither in the chunk nor in d->buf",
                      (unsigned long long)len);
            c->assembled++;
        }
    }
    if (c->len + len > c->cap) {
        size_t cap = c->cap ? c->cap : 64;
        while (cap < c->len + len)
            cap *= 2;
        c->bytes = realloc(c->bytes, cap);
        CHECK(c->bytes != NULL);
        c->cap = cap;
    }
    if (c->count == c->lens_cap) {
        c->lens_cap = c->lens_cap ? c->lens_cap * 2 : 16;
        c->lens = realloc(c->lens, c->lens_cap * sizeof *c->lens);
        CHECK(c->lens != NULL);
    }
    if (len > 0)
        memcpy(c->bytes + c->len, msg, len);
    c->len += len;
    c->lens[c->count++] = len;
    return c->stop_after != 0 && c->count == c->stop_after;
}

static void capture_same(const capture *a, const capture *b, const char *what)
{
    CHECK_MSG(a->count == b->count, "%s: %llu messages vs %llu", what, (unsigned long long)a->count,
              (unsigned long long)b->count);
    for (size_t i = 0; i < a->count; i++)
        CHECK_MSG(a->lens[i] == b->lens[i], "%s: message %llu has %llu bytes vs %llu", what,
                  (unsigned long long)i, (unsigned long long)a->lens[i],
                  (unsigned long long)b->lens[i]);
    CHECK(a->len == b->len);
    CHECK_MSG(a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0, "%s: bytes differ", what);
}

/* ---- feeding ----------------------------------------------------------------------------- */

typedef struct outcome {
    iocp_frame_status feed;   /* the first non-OK feed status, or OK */
    iocp_frame_status finish; /* iocp_decoder_finish when every feed was OK */
} outcome;

/* Feeds one chunk from a heap copy of exactly its size, so a read past it or a pointer kept
 * into it after the call is caught by ASan. */
static iocp_frame_status feed_copy(iocp_decoder *d, capture *c, const uint8_t *data, size_t len)
{
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        CHECK(copy != NULL);
        memcpy(copy, data, len);
    }
    c->chunk = copy;
    c->chunk_len = len;
    iocp_frame_status st = iocp_decoder_feed(d, copy, len, on_message, c);
    c->chunk = NULL;
    c->chunk_len = 0;
    free(copy);
    if (st != IOCP_FRAME_OK)
        CHECK_MSG(d->error[0] != '\0', "status %d without an error text", (int)st);
    return st;
}

/* Feeds data in chunks of the given sizes (the last chunk takes whatever is left). */
static outcome feed_sizes(iocp_decoder *d, capture *c, const uint8_t *data, size_t len,
                          const size_t *sizes, size_t nsizes)
{
    outcome o = {IOCP_FRAME_OK, IOCP_FRAME_OK};
    size_t pos = 0;
    for (size_t i = 0; i <= nsizes; i++) {
        size_t n = i < nsizes ? sizes[i] : len - pos;
        if (n > len - pos)
            n = len - pos;
        o.feed = feed_copy(d, c, data + pos, n);
        pos += n;
        if (o.feed != IOCP_FRAME_OK)
            return o;
    }
    CHECK(pos == len);
    o.finish = iocp_decoder_finish(d);
    if (o.finish != IOCP_FRAME_OK)
        CHECK(d->error[0] != '\0');
    return o;
}

static outcome run_sizes(iocp_framing mode, uint32_t max, const uint8_t *data, size_t len,
                         const size_t *sizes, size_t nsizes, capture *c)
{
    iocp_decoder d;
    iocp_decoder_init(&d, mode, max);
    capture_init(c, &d);
    outcome o = feed_sizes(&d, c, data, len, sizes, nsizes);
    /* Capacity never passes the limit, nor the bytes fed so far by more than doubling. */
    CHECK_MSG(d.buf_cap <= d.max_message, "buf_cap %llu, limit %lu", (unsigned long long)d.buf_cap,
              (unsigned long)d.max_message);
    CHECK_MSG(d.buf_cap <= 256 || d.buf_cap <= 2 * len, "buf_cap %llu after %llu bytes",
              (unsigned long long)d.buf_cap, (unsigned long long)len);
    iocp_decoder_fini(&d);
    c->d = NULL;
    return o;
}

/* ---- streams with known messages --------------------------------------------------------- */

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

typedef struct stream {
    iocp_framing mode;
    uint32_t max;
    const uint8_t *data;
    size_t len;
    const char *msgs[6]; /* NULL-terminated; an entry may be "" */
    iocp_frame_status feed;
    iocp_frame_status finish;
} stream;

static const stream streams[] = {
    /* line */
    {IOCP_FRAMING_LINE, 0, S(""), {NULL}, IOCP_FRAME_OK, IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE, 0, S("\n"), {"", NULL}, IOCP_FRAME_OK, IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE,
     0,
     S("hello\r\nworld\n"),
     {"hello", "world", NULL},
     IOCP_FRAME_OK,
     IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE, 0, S("a\r\r\n\r\n\n"), {"a\r", "", "", NULL}, IOCP_FRAME_OK, IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE,
     0,
     S("x\ry\n\r\rz\n"),
     {"x\ry", "\r\rz", NULL},
     IOCP_FRAME_OK,
     IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE, 0, S("one\ntwo"), {"one", NULL}, IOCP_FRAME_OK, IOCP_FRAME_TRUNCATED},
    {IOCP_FRAMING_LINE, 0, S("abc\r"), {NULL}, IOCP_FRAME_OK, IOCP_FRAME_TRUNCATED},
    {IOCP_FRAMING_LINE,
     8,
     S("12345678\r\n1\n"),
     {"12345678", "1", NULL},
     IOCP_FRAME_OK,
     IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE, 8, S("12345678\r\r\n"), {NULL}, IOCP_FRAME_TOO_LARGE, IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE, 8, S("ab\n123456789\n"), {"ab", NULL}, IOCP_FRAME_TOO_LARGE, IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE, 8, S("ab\n123456789"), {"ab", NULL}, IOCP_FRAME_TOO_LARGE, IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE, 8, S("12345678\rx\n"), {NULL}, IOCP_FRAME_TOO_LARGE, IOCP_FRAME_OK},
    {IOCP_FRAMING_LINE, 8, S("12345678\r"), {NULL}, IOCP_FRAME_OK, IOCP_FRAME_TRUNCATED},
    {IOCP_FRAMING_LINE,
     1,
     S("\r\n\n1\r\n\r\r\n"),
     {"", "", "1", "\r", NULL},
     IOCP_FRAME_OK,
     IOCP_FRAME_OK},
    /* length */
    {IOCP_FRAMING_LENGTH, 0, S(""), {NULL}, IOCP_FRAME_OK, IOCP_FRAME_OK},
    {IOCP_FRAMING_LENGTH, 0, S("\0\0\0\0"), {"", NULL}, IOCP_FRAME_OK, IOCP_FRAME_OK},
    {IOCP_FRAMING_LENGTH,
     0,
     S("\0\0\0\5hello\0\0\0\0\0\0\0\1!"),
     {"hello", "", "!", NULL},
     IOCP_FRAME_OK,
     IOCP_FRAME_OK},
    {IOCP_FRAMING_LENGTH,
     0,
     S("\0\0\0\2ab\0\0"),
     {"ab", NULL},
     IOCP_FRAME_OK,
     IOCP_FRAME_TRUNCATED},
    {IOCP_FRAMING_LENGTH, 0, S("\0\0\0\4abc"), {NULL}, IOCP_FRAME_OK, IOCP_FRAME_TRUNCATED},
    {IOCP_FRAMING_LENGTH,
     5,
     S("\0\0\0\5hello\0\0\0\6world!"),
     {"hello", NULL},
     IOCP_FRAME_TOO_LARGE,
     IOCP_FRAME_OK},
    {IOCP_FRAMING_LENGTH,
     0,
     S("\0\0\0\1x\xff\xff\xff\xff"),
     {"x", NULL},
     IOCP_FRAME_TOO_LARGE,
     IOCP_FRAME_OK},
    {IOCP_FRAMING_LENGTH,
     3,
     S("\0\0\0\3\n\r\n\0\0\0\0"),
     {"\n\r\n", "", NULL},
     IOCP_FRAME_OK,
     IOCP_FRAME_OK},
    /* raw: one message per chunk, so only the concatenation is split-independent */
    {IOCP_FRAMING_RAW,
     1,
     S("any bytes \0 at all, past the limit"),
     {NULL},
     IOCP_FRAME_OK,
     IOCP_FRAME_OK},
};

static size_t stream_count(const stream *s)
{
    size_t n = 0;
    while (s->msgs[n] != NULL)
        n++;
    return n;
}

/* The whole-stream result matches the table. Length payloads here hold no NUL, so strlen
 * works on the expected messages. */
static void check_expected(const stream *s, const capture *c, outcome o, size_t index)
{
    CHECK_MSG(o.feed == s->feed, "stream %llu: feed %s, expected %s", (unsigned long long)index,
              iocp_frame_status_str(o.feed), iocp_frame_status_str(s->feed));
    if (o.feed == IOCP_FRAME_OK)
        CHECK_MSG(o.finish == s->finish, "stream %llu: finish %s, expected %s",
                  (unsigned long long)index, iocp_frame_status_str(o.finish),
                  iocp_frame_status_str(s->finish));
    if (s->mode == IOCP_FRAMING_RAW) {
        CHECK(c->len == s->len && (s->len == 0 || memcmp(c->bytes, s->data, s->len) == 0));
        return;
    }
    CHECK_EQ_U(c->count, stream_count(s));
    size_t off = 0;
    for (size_t i = 0; i < c->count; i++) {
        size_t n = strlen(s->msgs[i]);
        CHECK_MSG(c->lens[i] == n && (n == 0 || memcmp(c->bytes + off, s->msgs[i], n) == 0),
                  "stream %llu message %llu differs", (unsigned long long)index,
                  (unsigned long long)i);
        off += n;
    }
}

static void check_split(const stream *s, const capture *whole, outcome ow, const size_t *sizes,
                        size_t nsizes, const char *what)
{
    capture c;
    outcome o = run_sizes(s->mode, s->max, s->data, s->len, sizes, nsizes, &c);
    CHECK_MSG(o.feed == ow.feed && o.finish == ow.finish, "%s: %s/%s vs whole %s/%s", what,
              iocp_frame_status_str(o.feed), iocp_frame_status_str(o.finish),
              iocp_frame_status_str(ow.feed), iocp_frame_status_str(ow.finish));
    if (s->mode == IOCP_FRAMING_RAW) {
        CHECK(c.len == whole->len && (c.len == 0 || memcmp(c.bytes, whole->bytes, c.len) == 0));
        size_t nonempty = 0;
        for (size_t i = 0; i < nsizes; i++)
            nonempty += sizes[i] > 0;
        CHECK(c.count <= nonempty + 1);
    } else {
        capture_same(&c, whole, what);
    }
    capture_free(&c);
}

static void every_split_of(const stream *s, size_t index)
{
    char what[96];
    capture whole;
    outcome ow = run_sizes(s->mode, s->max, s->data, s->len, NULL, 0, &whole);
    check_expected(s, &whole, ow, index);
    /* Whole streams are small enough that every message is delivered in place. */
    CHECK_EQ_U(whole.assembled, 0);

    size_t sizes[64];
    for (size_t i = 0; i <= s->len; i++) { /* two chunks, every cut */
        sizes[0] = i;
        snprintf(what, sizeof what, "stream %llu cut at %llu", (unsigned long long)index,
                 (unsigned long long)i);
        check_split(s, &whole, ow, sizes, 1, what);
    }
    for (size_t i = 0; i <= s->len; i++) { /* three chunks, every pair of cuts */
        for (size_t j = i; j <= s->len; j++) {
            sizes[0] = i;
            sizes[1] = j - i;
            snprintf(what, sizeof what, "stream %llu cut at %llu and %llu",
                     (unsigned long long)index, (unsigned long long)i, (unsigned long long)j);
            check_split(s, &whole, ow, sizes, 2, what);
        }
    }
    CHECK(s->len <= sizeof sizes / sizeof sizes[0]);
    for (size_t i = 0; i < s->len; i++) /* one byte at a time */
        sizes[i] = 1;
    snprintf(what, sizeof what, "stream %llu byte by byte", (unsigned long long)index);
    check_split(s, &whole, ow, sizes, s->len, what);
    capture_free(&whole);
}

static void line_every_split(void)
{
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
        if (streams[i].mode == IOCP_FRAMING_LINE)
            every_split_of(&streams[i], i);
}

static void length_every_split(void)
{
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
        if (streams[i].mode == IOCP_FRAMING_LENGTH)
            every_split_of(&streams[i], i);
}

static void raw_every_split(void)
{
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
        if (streams[i].mode == IOCP_FRAMING_RAW)
            every_split_of(&streams[i], i);
}

/* ---- generated streams ------------------------------------------------------------------- */

typedef struct buffer {
    uint8_t *p;
    size_t len, cap;
} buffer;

static void buffer_put(buffer *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p != NULL);
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->p + b->len, data, len);
    b->len += len;
}

/* Appends the frame of one payload, built with the encoder functions. */
static void encode(buffer *b, iocp_framing mode, const uint8_t *payload, size_t len)
{
    uint8_t prefix[IOCP_LENGTH_HEADER_SIZE];
    size_t suffix_len = 99;
    int overflow = -1;
    CHECK(iocp_frame_check(mode, payload, len, 0) == 0);
    size_t prefix_len = iocp_frame_prefix(mode, len, prefix);
    const uint8_t *suffix = iocp_frame_suffix(mode, &suffix_len);
    CHECK(iocp_frame_size(mode, len, &overflow) == prefix_len + len + suffix_len);
    CHECK(overflow == 0);
    size_t before = b->len;
    buffer_put(b, prefix, prefix_len);
    buffer_put(b, payload, len);
    buffer_put(b, suffix, suffix_len);
    CHECK(b->len - before == prefix_len + len + suffix_len);
}

/* Random payloads, framed, fed with random chunk sizes: the messages come back exactly. */
static void round_trip_mode(iocp_framing mode, uint64_t seed)
{
    uint64_t rng = seed;
    buffer wire = {0}, expect = {0};
    size_t lens[200];
    size_t count = sizeof lens / sizeof lens[0];
    uint8_t payload[700];
    for (size_t i = 0; i < count; i++) {
        size_t len = (size_t)(test_rand(&rng) % (i % 10 == 0 ? sizeof payload : 12));
        test_fill_random(&rng, payload, len);
        if (mode == IOCP_FRAMING_LINE) {
            for (size_t k = 0; k < len; k++)
                if (payload[k] == '\n' || (k + 1 == len && payload[k] == '\r'))
                    payload[k] = (uint8_t)'x';
            if (len > 1 && test_rand(&rng) % 4 == 0)
                payload[0] = '\r'; /* a '\r' inside a line is payload */
        }
        lens[i] = len;
        buffer_put(&expect, payload, len);
        encode(&wire, mode, payload, len);
        if (mode == IOCP_FRAMING_LINE && test_rand(&rng) % 3 == 0) {
            /* A peer may end lines with "\r\n": same message. */
            wire.p[wire.len - 1] = '\r';
            buffer_put(&wire, "\n", 1);
        }
    }
    for (int round = 0; round < 40; round++) {
        size_t sizes[4096];
        size_t nsizes = 0, total = 0;
        size_t span = 1 + (size_t)(test_rand(&rng) % (round % 2 ? 16 : 2000));
        while (total < wire.len && nsizes < sizeof sizes / sizeof sizes[0]) {
            size_t n = (size_t)(test_rand(&rng) % (span + 1)); /* 0 sometimes */
            sizes[nsizes++] = n;
            total += n;
        }
        capture c;
        outcome o = run_sizes(mode, 0, wire.p, wire.len, sizes, nsizes, &c);
        CHECK(o.feed == IOCP_FRAME_OK && o.finish == IOCP_FRAME_OK);
        if (mode != IOCP_FRAMING_RAW) { /* raw: one message per chunk, only bytes compare */
            CHECK_EQ_U(c.count, count);
            for (size_t i = 0; i < count; i++)
                CHECK_EQ_U(c.lens[i], lens[i]);
        }
        CHECK(c.len == expect.len && memcmp(c.bytes, expect.p, c.len) == 0);
        capture_free(&c);
    }
    free(wire.p);
    free(expect.p);
}

static void round_trip(void)
{
    round_trip_mode(IOCP_FRAMING_LINE, 11);
    round_trip_mode(IOCP_FRAMING_LENGTH, 12);
    round_trip_mode(IOCP_FRAMING_RAW, 13);
}

/* Seeded random chunking of the table's streams and of a generated mixed stream. */
static void random_chunking(void)
{
    uint64_t rng = 0x5eed;
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        const stream *s = &streams[i];
        capture whole;
        outcome ow = run_sizes(s->mode, s->max, s->data, s->len, NULL, 0, &whole);
        for (int round = 0; round < 200; round++) {
            size_t sizes[64];
            size_t nsizes = 0, total = 0;
            while (total < s->len && nsizes < sizeof sizes / sizeof sizes[0]) {
                sizes[nsizes] = (size_t)(test_rand(&rng) % 5);
                total += sizes[nsizes++];
            }
            char what[64];
            snprintf(what, sizeof what, "stream %llu round %d", (unsigned long long)i, round);
            check_split(s, &whole, ow, sizes, nsizes, what);
        }
        capture_free(&whole);
    }
}

/* ---- delivery ---------------------------------------------------------------------------- */

static void many_messages_one_chunk(void)
{
    for (int m = IOCP_FRAMING_LINE; m <= IOCP_FRAMING_LENGTH; m++) {
        iocp_framing mode = (iocp_framing)m;
        buffer b = {0};
        char text[32];
        for (int i = 0; i < 5000; i++) {
            int n = snprintf(text, sizeof text, "message %d", i);
            encode(&b, mode, (const uint8_t *)text, (size_t)n);
        }
        iocp_decoder d;
        iocp_decoder_init(&d, mode, 0);
        capture c;
        capture_init(&c, &d);
        CHECK(feed_copy(&d, &c, b.p, b.len) == IOCP_FRAME_OK);
        CHECK(iocp_decoder_finish(&d) == IOCP_FRAME_OK);
        CHECK_EQ_U(c.count, 5000);
        CHECK_EQ_U(c.in_place, 5000);
        CHECK_EQ_U(c.assembled, 0);
        CHECK(d.buf == NULL); /* nothing spanned chunks: nothing allocated */
        size_t off = 0;
        for (int i = 0; i < 5000; i++) {
            int n = snprintf(text, sizeof text, "message %d", i);
            CHECK_EQ_U(c.lens[i], n);
            CHECK(memcmp(c.bytes + off, text, (size_t)n) == 0);
            off += (size_t)n;
        }
        capture_free(&c);
        iocp_decoder_fini(&d);
        free(b.p);
    }
}

static void zero_copy_inside_chunk(void)
{
    /* Three length frames; the cut falls inside the second payload. */
    static const uint8_t data[] = "\0\0\0\3one\0\0\0\5three\0\0\0\4four";
    size_t len = sizeof data - 1;
    iocp_decoder d;
    iocp_decoder_init(&d, IOCP_FRAMING_LENGTH, 0);
    capture c;
    capture_init(&c, &d);
    CHECK(feed_copy(&d, &c, data, 13) == IOCP_FRAME_OK); /* ends in "th" */
    CHECK_EQ_U(c.count, 1);
    CHECK_EQ_U(c.in_place, 1);
    CHECK(iocp_decoder_in_message(&d));
    CHECK(feed_copy(&d, &c, data + 13, len - 13) == IOCP_FRAME_OK);
    CHECK_EQ_U(c.count, 3);
    CHECK_EQ_U(c.in_place, 2);  /* "one" and "four" */
    CHECK_EQ_U(c.assembled, 1); /* "three" spanned the cut */
    CHECK(!iocp_decoder_in_message(&d));
    CHECK(memcmp(c.bytes, "onethreefour", 12) == 0);

    /* The header alone in one chunk, the payload whole in the next: still in place. */
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\0\0\0\6", 4) == IOCP_FRAME_OK);
    CHECK(iocp_decoder_in_message(&d));
    CHECK(feed_copy(&d, &c, (const uint8_t *)"sixsix", 6) == IOCP_FRAME_OK);
    CHECK_EQ_U(c.in_place, 3);
    CHECK_EQ_U(c.assembled, 1);
    capture_free(&c);
    iocp_decoder_fini(&d);

    /* Lines: in place when the line and its '\n' are in the chunk, assembled otherwise. */
    iocp_decoder_init(&d, IOCP_FRAMING_LINE, 0);
    capture_init(&c, &d);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"first\r\nsec", 10) == IOCP_FRAME_OK);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"ond\nthird\n", 10) == IOCP_FRAME_OK);
    CHECK_EQ_U(c.count, 3);
    CHECK_EQ_U(c.in_place, 2);
    CHECK_EQ_U(c.assembled, 1);
    CHECK(memcmp(c.bytes, "firstsecondthird", 16) == 0);
    capture_free(&c);
    iocp_decoder_fini(&d);

    /* Raw: each chunk is one message, the chunk itself, whatever the limit. */
    iocp_decoder_init(&d, IOCP_FRAMING_RAW, 4);
    capture_init(&c, &d);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"0123456789", 10) == IOCP_FRAME_OK);
    CHECK(feed_copy(&d, &c, NULL, 0) == IOCP_FRAME_OK); /* 0 bytes: no message */
    CHECK(feed_copy(&d, &c, (const uint8_t *)"x", 1) == IOCP_FRAME_OK);
    CHECK_EQ_U(c.count, 2);
    CHECK_EQ_U(c.lens[0], 10);
    CHECK_EQ_U(c.in_place, 2);
    CHECK(iocp_decoder_finish(&d) == IOCP_FRAME_OK);
    capture_free(&c);
    iocp_decoder_fini(&d);
}

static void callback_stops(void)
{
    static const uint8_t data[] = "a\nb\nc\nd\n";
    iocp_decoder d;
    iocp_decoder_init(&d, IOCP_FRAMING_LINE, 0);
    capture c;
    capture_init(&c, &d);
    c.stop_after = 2;
    CHECK(feed_copy(&d, &c, data, sizeof data - 1) == IOCP_FRAME_STOPPED);
    CHECK_EQ_U(c.count, 2);
    CHECK(strstr(d.error, "stop") != NULL);
    capture_free(&c);
    iocp_decoder_fini(&d);

    /* The same for an assembled length message and for raw. */
    iocp_decoder_init(&d, IOCP_FRAMING_LENGTH, 0);
    capture_init(&c, &d);
    c.stop_after = 1;
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\0\0\0\2a", 5) == IOCP_FRAME_OK);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"b\0\0\0\0", 5) == IOCP_FRAME_STOPPED);
    CHECK_EQ_U(c.count, 1);
    CHECK_EQ_U(c.assembled, 1);
    capture_free(&c);
    iocp_decoder_fini(&d);

    iocp_decoder_init(&d, IOCP_FRAMING_RAW, 0);
    capture_init(&c, &d);
    c.stop_after = 1;
    CHECK(feed_copy(&d, &c, (const uint8_t *)"xyz", 3) == IOCP_FRAME_STOPPED);
    capture_free(&c);
    iocp_decoder_fini(&d);
}

/* ---- end of stream ----------------------------------------------------------------------- */

static void eof_mid_message_truncated(void)
{
    iocp_decoder d;
    capture c;
    /* Length: every possible end inside "\0\0\0\5hello". */
    static const uint8_t frame[] = "\0\0\0\5hello";
    for (size_t cut = 0; cut <= 9; cut++) {
        iocp_decoder_init(&d, IOCP_FRAMING_LENGTH, 0);
        capture_init(&c, &d);
        CHECK(feed_copy(&d, &c, frame, cut) == IOCP_FRAME_OK);
        iocp_frame_status st = iocp_decoder_finish(&d);
        if (cut == 0 || cut == 9) {
            CHECK(st == IOCP_FRAME_OK);
            CHECK(!iocp_decoder_in_message(&d));
        } else {
            CHECK_MSG(st == IOCP_FRAME_TRUNCATED, "cut %llu: %s", (unsigned long long)cut,
                      iocp_frame_status_str(st));
            CHECK(iocp_decoder_in_message(&d));
        }
        if (cut == 2)
            CHECK_MSG(strcmp(d.error, "stream ended inside a length header (2 of 4 bytes)") == 0,
                      "%s", d.error);
        if (cut == 7)
            CHECK_MSG(strcmp(d.error, "stream ended inside a message (3 of 5 bytes)") == 0, "%s",
                      d.error);
        capture_free(&c);
        iocp_decoder_fini(&d);
    }
    /* Line: buffered bytes without '\n', including a lone held '\r'. */
    static const char *tails[] = {"x", "abc", "\r", "ab\r", "ok\nrest"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        iocp_decoder_init(&d, IOCP_FRAMING_LINE, 0);
        capture_init(&c, &d);
        CHECK(feed_copy(&d, &c, (const uint8_t *)tails[i], strlen(tails[i])) == IOCP_FRAME_OK);
        CHECK(iocp_decoder_in_message(&d));
        CHECK(iocp_decoder_finish(&d) == IOCP_FRAME_TRUNCATED);
        CHECK(strstr(d.error, "without a newline") != NULL);
        capture_free(&c);
        iocp_decoder_fini(&d);
    }
    /* Raw never is. */
    iocp_decoder_init(&d, IOCP_FRAMING_RAW, 0);
    capture_init(&c, &d);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"abc", 3) == IOCP_FRAME_OK);
    CHECK(iocp_decoder_finish(&d) == IOCP_FRAME_OK);
    capture_free(&c);
    iocp_decoder_fini(&d);
}

/* ---- limits ------------------------------------------------------------------------------ */

static void length_header_too_large(void)
{
    static const uint8_t huge[] = "\xff\xff\xff\xff"
                                  "payload";
    iocp_decoder d;
    capture c;
    /* Whole, then one byte at a time: refused with nothing allocated. */
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        iocp_decoder_init(&d, IOCP_FRAMING_LENGTH, 0);
        CHECK_EQ_U(d.max_message, IOCP_DEFAULT_MAX_MESSAGE);
        capture_init(&c, &d);
        iocp_frame_status st = IOCP_FRAME_OK;
        if (bytewise) {
            for (size_t i = 0; i < sizeof huge - 1 && st == IOCP_FRAME_OK; i++)
                st = feed_copy(&d, &c, huge + i, 1);
        } else {
            st = feed_copy(&d, &c, huge, sizeof huge - 1);
        }
        CHECK(st == IOCP_FRAME_TOO_LARGE);
        CHECK_MSG(
            strcmp(d.error, "length header announces 4294967295 bytes; the limit is 1048576") == 0,
            "%s", d.error);
        CHECK(d.buf == NULL);
        CHECK_EQ_U(d.buf_cap, 0);
        CHECK_EQ_U(c.count, 0);
        /* Fed again by mistake: refused again, still nothing allocated. */
        CHECK(feed_copy(&d, &c, huge + 4, 7) == IOCP_FRAME_TOO_LARGE);
        CHECK(d.buf == NULL);
        capture_free(&c);
        iocp_decoder_fini(&d);
    }
    /* One past the limit is refused, the limit itself is accepted. */
    iocp_decoder_init(&d, IOCP_FRAMING_LENGTH, 100);
    capture_init(&c, &d);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\0\0\0\x65", 4) == IOCP_FRAME_TOO_LARGE);
    CHECK(strcmp(d.error, "length header announces 101 bytes; the limit is 100") == 0);
    CHECK(d.buf == NULL);
    iocp_decoder_reset(&d);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\0\0\0\x64", 4) == IOCP_FRAME_OK);
    uint8_t body[100];
    memset(body, 'b', sizeof body);
    CHECK(feed_copy(&d, &c, body, sizeof body) == IOCP_FRAME_OK);
    CHECK_EQ_U(c.count, 1);
    CHECK_EQ_U(c.lens[0], 100);
    capture_free(&c);
    iocp_decoder_fini(&d);
}

/* A header announcing the maximum allocates only for the bytes that came. */
static void length_grows_with_received_bytes(void)
{
    iocp_decoder d;
    capture c;
    iocp_decoder_init(&d, IOCP_FRAMING_LENGTH, 0);
    capture_init(&c, &d);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\0\x10\0\0", 4) == IOCP_FRAME_OK); /* 1 MiB */
    CHECK(d.buf == NULL);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"0123456789", 10) == IOCP_FRAME_OK);
    CHECK(d.buf != NULL);
    CHECK_MSG(d.buf_cap >= 10 && d.buf_cap <= 4096, "buf_cap %llu after 10 bytes",
              (unsigned long long)d.buf_cap);
    uint8_t chunk[1000];
    memset(chunk, 'z', sizeof chunk);
    size_t got = 10;
    while (got + sizeof chunk <= IOCP_DEFAULT_MAX_MESSAGE) {
        CHECK(feed_copy(&d, &c, chunk, sizeof chunk) == IOCP_FRAME_OK);
        got += sizeof chunk;
        CHECK_MSG(d.buf_cap >= got && d.buf_cap <= 2 * got + 256, "buf_cap %llu after %llu",
                  (unsigned long long)d.buf_cap, (unsigned long long)got);
    }
    CHECK_EQ_U(c.count, 0);
    CHECK(feed_copy(&d, &c, chunk, IOCP_DEFAULT_MAX_MESSAGE - got) == IOCP_FRAME_OK);
    CHECK_EQ_U(c.count, 1);
    CHECK_EQ_U(c.lens[0], IOCP_DEFAULT_MAX_MESSAGE);
    CHECK_EQ_U(d.buf_cap, IOCP_DEFAULT_MAX_MESSAGE); /* capped at the message, not doubled */
    capture_free(&c);
    iocp_decoder_fini(&d);
}

static void line_too_long(void)
{
    iocp_decoder d;
    capture c;
    /* In one chunk, with or without its newline: refused before any allocation. */
    static const char *longs[] = {"12345678901234567", "12345678901234567\n",
                                  "12345678901234567\r\n", "1234567890123456\rx"};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        iocp_decoder_init(&d, IOCP_FRAMING_LINE, 16);
        capture_init(&c, &d);
        CHECK_MSG(feed_copy(&d, &c, (const uint8_t *)longs[i], strlen(longs[i])) ==
                      IOCP_FRAME_TOO_LARGE,
                  "line %llu", (unsigned long long)i);
        CHECK(d.buf == NULL);
        CHECK(strstr(d.error, "the limit is 16") != NULL);
        capture_free(&c);
        iocp_decoder_fini(&d);
    }
    /* One byte at a time: refused at the 17th payload byte; the buffer never passes 16. */
    iocp_decoder_init(&d, IOCP_FRAMING_LINE, 16);
    capture_init(&c, &d);
    const char *line = longs[0];
    for (size_t i = 0; i < 16; i++)
        CHECK(feed_copy(&d, &c, (const uint8_t *)line + i, 1) == IOCP_FRAME_OK);
    CHECK(feed_copy(&d, &c, (const uint8_t *)line + 16, 1) == IOCP_FRAME_TOO_LARGE);
    CHECK_MSG(strcmp(d.error, "line grew to 17 bytes without a newline; the limit is 16") == 0,
              "%s", d.error);
    CHECK(d.buf_cap <= 16);
    capture_free(&c);
    iocp_decoder_fini(&d);
    /* Exactly 16 payload bytes, "\r\n" split after the '\r': accepted, buffer still <= 16. */
    iocp_decoder_init(&d, IOCP_FRAMING_LINE, 16);
    capture_init(&c, &d);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"0123456789abcdef\r", 17) == IOCP_FRAME_OK);
    CHECK(iocp_decoder_in_message(&d));
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\n", 1) == IOCP_FRAME_OK);
    CHECK_EQ_U(c.count, 1);
    CHECK_EQ_U(c.lens[0], 16);
    CHECK(memcmp(c.bytes, "0123456789abcdef", 16) == 0);
    CHECK(d.buf_cap <= 16);
    /* ...but a '\r' that turns out to be payload makes it 17. */
    CHECK(feed_copy(&d, &c, (const uint8_t *)"0123456789abcdef\r", 17) == IOCP_FRAME_OK);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\r\n", 2) == IOCP_FRAME_TOO_LARGE);
    CHECK_MSG(strcmp(d.error, "line of 17 bytes; the limit is 16") == 0, "%s", d.error);
    capture_free(&c);
    iocp_decoder_fini(&d);
}

static void crlf_stripping(void)
{
    static const struct {
        const char *in;
        const char *out; /* messages joined with '|' */
    } cases[] = {
        {"a\r\n", "a|"},     {"a\r\r\n", "a\r|"},    {"\r\n", "|"},        {"\n", "|"},
        {"a\rb\n", "a\rb|"}, {"\r\r\n\r\n", "\r||"}, {"x\r\ny\n", "x|y|"}, {"\ra\r\n", "\ra|"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        for (size_t cut = 0; cut <= len; cut++) {
            size_t sizes[1] = {cut};
            capture c;
            outcome o =
                run_sizes(IOCP_FRAMING_LINE, 0, (const uint8_t *)cases[i].in, len, sizes, 1, &c);
            CHECK(o.feed == IOCP_FRAME_OK && o.finish == IOCP_FRAME_OK);
            char joined[64];
            size_t j = 0, off = 0;
            for (size_t m = 0; m < c.count; m++) {
                CHECK(j + c.lens[m] + 2 < sizeof joined);
                if (c.lens[m] > 0)
                    memcpy(joined + j, c.bytes + off, c.lens[m]);
                j += c.lens[m];
                off += c.lens[m];
                joined[j++] = '|';
            }
            joined[j] = '\0';
            CHECK_MSG(strcmp(joined, cases[i].out) == 0, "case %llu cut %llu",
                      (unsigned long long)i, (unsigned long long)cut);
            capture_free(&c);
        }
    }
}

/* ---- state ------------------------------------------------------------------------------- */

static void reset_and_trim(void)
{
    iocp_decoder d;
    capture c;
    iocp_decoder_init(&d, IOCP_FRAMING_LENGTH, 0);
    capture_init(&c, &d);
    CHECK(!iocp_decoder_in_message(&d));
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\0\0\x10\0abcdef", 10) == IOCP_FRAME_OK);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"ghij", 4) == IOCP_FRAME_OK);
    CHECK(iocp_decoder_in_message(&d));
    CHECK_EQ_U(d.buf_len, 10);
    uint8_t *kept = d.buf;
    CHECK(kept != NULL);
    /* Reset: the partial message is forgotten, the buffer kept for the next owner. */
    iocp_decoder_reset(&d);
    CHECK(!iocp_decoder_in_message(&d));
    CHECK(d.buf == kept && d.buf_cap > 0 && d.buf_len == 0);
    CHECK(iocp_decoder_finish(&d) == IOCP_FRAME_OK);
    /* Trim with a partial message held keeps its bytes. */
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\0\0\0\5ab", 6) == IOCP_FRAME_OK);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"c", 1) == IOCP_FRAME_OK);
    iocp_decoder_trim(&d, 0);
    CHECK(d.buf != NULL && d.buf_cap >= 3);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"de", 2) == IOCP_FRAME_OK);
    CHECK_EQ_U(c.count, 1);
    CHECK(memcmp(c.bytes, "abcde", 5) == 0);
    /* Trim with nothing held frees a buffer over the bound, keeps one within it. */
    size_t cap = d.buf_cap;
    iocp_decoder_trim(&d, cap);
    CHECK(d.buf != NULL);
    iocp_decoder_trim(&d, 0);
    CHECK(d.buf == NULL && d.buf_cap == 0);
    /* And the decoder still works after trimming. */
    CHECK(feed_copy(&d, &c, (const uint8_t *)"\0\0\0\2x", 5) == IOCP_FRAME_OK);
    CHECK(feed_copy(&d, &c, (const uint8_t *)"y", 1) == IOCP_FRAME_OK);
    CHECK_EQ_U(c.count, 2);
    capture_free(&c);
    iocp_decoder_fini(&d);
    CHECK(d.buf == NULL);
    iocp_decoder_fini(&d); /* twice is harmless */
}

/* ---- encoding ---------------------------------------------------------------------------- */

static void frame_check_rules(void)
{
    CHECK(iocp_frame_check(IOCP_FRAMING_LINE, "hello", 5, 0) == 0);
    CHECK(iocp_frame_check(IOCP_FRAMING_LINE, "", 0, 0) == 0);
    CHECK(iocp_frame_check(IOCP_FRAMING_LINE, "a\rb", 3, 0) == 0);
    CHECK(iocp_frame_check(IOCP_FRAMING_LINE, "hel\nlo", 6, 0) == -1);
    CHECK(iocp_frame_check(IOCP_FRAMING_LINE, "\n", 1, 0) == -1);
    CHECK(iocp_frame_check(IOCP_FRAMING_LINE, "hello\r", 6, 0) == -1); /* would lose the '\r' */
    CHECK(iocp_frame_check(IOCP_FRAMING_LINE, "hello", 5, 4) == -1);
    CHECK(iocp_frame_check(IOCP_FRAMING_LINE, "hello", 5, 5) == 0);
    CHECK(iocp_frame_check(IOCP_FRAMING_LENGTH, "\n\r", 2, 0) == 0);
    CHECK(iocp_frame_check(IOCP_FRAMING_LENGTH, "hello", 5, 4) == -1);
    CHECK(iocp_frame_check(IOCP_FRAMING_LENGTH, NULL, 0, 0) == 0);
    CHECK(iocp_frame_check(IOCP_FRAMING_RAW, "a\nb", 3, 1) == 0);
#if SIZE_MAX > UINT32_MAX
    /* The payload is not read in length mode: only its size matters. */
    CHECK(iocp_frame_check(IOCP_FRAMING_LENGTH, "", (size_t)UINT32_MAX, 0) == 0);
    CHECK(iocp_frame_check(IOCP_FRAMING_LENGTH, "", (size_t)UINT32_MAX + 1u, 0) == -1);
#endif
    CHECK(iocp_frame_check((iocp_framing)7, "x", 1, 0) == -1);
}

static void frame_encoding(void)
{
    uint8_t prefix[IOCP_LENGTH_HEADER_SIZE] = {9, 9, 9, 9};
    size_t n = 99;
    CHECK_EQ_U(iocp_frame_prefix(IOCP_FRAMING_LENGTH, 0x01020304u, prefix), 4);
    CHECK(prefix[0] == 1 && prefix[1] == 2 && prefix[2] == 3 && prefix[3] == 4);
    CHECK_EQ_U(iocp_frame_prefix(IOCP_FRAMING_LENGTH, 0, prefix), 4);
    CHECK(prefix[0] == 0 && prefix[3] == 0);
    CHECK_EQ_U(iocp_frame_prefix(IOCP_FRAMING_LINE, 5, prefix), 0);
    CHECK_EQ_U(iocp_frame_prefix(IOCP_FRAMING_RAW, 5, prefix), 0);
    const uint8_t *suffix = iocp_frame_suffix(IOCP_FRAMING_LINE, &n);
    CHECK(n == 1 && suffix[0] == '\n');
    iocp_frame_suffix(IOCP_FRAMING_LENGTH, &n);
    CHECK_EQ_U(n, 0);
    iocp_frame_suffix(IOCP_FRAMING_RAW, &n);
    CHECK_EQ_U(n, 0);

    int overflow = -1;
    CHECK_EQ_U(iocp_frame_size(IOCP_FRAMING_LENGTH, 10, &overflow), 14);
    CHECK(overflow == 0);
    CHECK_EQ_U(iocp_frame_size(IOCP_FRAMING_LINE, 10, &overflow), 11);
    CHECK_EQ_U(iocp_frame_size(IOCP_FRAMING_RAW, 10, &overflow), 10);
    CHECK_EQ_U(iocp_frame_size(IOCP_FRAMING_RAW, SIZE_MAX, &overflow), SIZE_MAX);
    CHECK(overflow == 0);
    CHECK_EQ_U(iocp_frame_size(IOCP_FRAMING_LINE, SIZE_MAX, &overflow), 0);
    CHECK(overflow == 1);
    overflow = 0;
    CHECK_EQ_U(iocp_frame_size(IOCP_FRAMING_LENGTH, SIZE_MAX - 3, &overflow), 0);
    CHECK(overflow == 1);
    CHECK_EQ_U(iocp_frame_size(IOCP_FRAMING_LENGTH, SIZE_MAX - 4, &overflow), SIZE_MAX);
    CHECK(overflow == 0);
}

static void names_and_status_text(void)
{
    iocp_framing m = IOCP_FRAMING_RAW;
    CHECK(strcmp(iocp_framing_name(IOCP_FRAMING_RAW), "raw") == 0);
    CHECK(strcmp(iocp_framing_name(IOCP_FRAMING_LINE), "line") == 0);
    CHECK(strcmp(iocp_framing_name(IOCP_FRAMING_LENGTH), "length") == 0);
    CHECK(iocp_framing_name((iocp_framing)3) == NULL);
    CHECK(iocp_framing_parse("line", &m) == 0 && m == IOCP_FRAMING_LINE);
    CHECK(iocp_framing_parse("length", &m) == 0 && m == IOCP_FRAMING_LENGTH);
    CHECK(iocp_framing_parse("raw", &m) == 0 && m == IOCP_FRAMING_RAW);
    CHECK(iocp_framing_parse("Line", &m) == -1 && m == IOCP_FRAMING_RAW);
    CHECK(iocp_framing_parse("", &m) == -1);
    CHECK(iocp_framing_parse("lengthy", &m) == -1);
    CHECK(iocp_framing_parse(NULL, &m) == -1);
    const char *seen[5];
    for (int s = IOCP_FRAME_OK; s <= IOCP_FRAME_STOPPED; s++) {
        seen[s] = iocp_frame_status_str((iocp_frame_status)s);
        CHECK(seen[s] != NULL && seen[s][0] != '\0');
        for (int t = 0; t < s; t++)
            CHECK(strcmp(seen[s], seen[t]) != 0);
    }
    CHECK(strcmp(iocp_frame_status_str((iocp_frame_status)99), "unknown framing status") == 0);
}

static const test_case cases[] = {
    {"line_every_split", line_every_split},
    {"length_every_split", length_every_split},
    {"raw_every_split", raw_every_split},
    {"random_chunking", random_chunking},
    {"round_trip", round_trip},
    {"many_messages_one_chunk", many_messages_one_chunk},
    {"zero_copy_inside_chunk", zero_copy_inside_chunk},
    {"callback_stops", callback_stops},
    {"eof_mid_message_truncated", eof_mid_message_truncated},
    {"length_header_too_large", length_header_too_large},
    {"length_grows_with_received_bytes", length_grows_with_received_bytes},
    {"line_too_long", line_too_long},
    {"crlf_stripping", crlf_stripping},
    {"reset_and_trim", reset_and_trim},
    {"frame_check_rules", frame_check_rules},
    {"frame_encoding", frame_encoding},
    {"names_and_status_text", names_and_status_text},
};

TEST_MAIN(cases)
