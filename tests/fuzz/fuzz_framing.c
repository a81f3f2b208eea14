/*
 * fuzz_framing.c: libFuzzer target for the framing decoder (native build, see scripts/fuzz.sh).
 *
 * Input layout: 5 configuration bytes, then the byte stream to decode.
 *   [0] bits 0-1: mode (0 raw, 1 line, 2 length, 3 length); bits 2-7: trim bound / 8
 *   [1..2] max_message, big-endian: 0 is the default; 0xFF00 and up is UINT32_MAX - (0xFFFF - v)
 *   [3] chunking: bit 7 feeds one byte at a time; else chunk sizes 0 .. (bits 0-6) + 1, from a
 *       PRNG seeded by this byte and the length
 *   [4] bit 7 set: the callback stops after ((bits 0-3) + 1) messages; bit 6 set: the chunked
 *       run trims the decoder's buffer (to the bound of byte 0) after every feed
 *
 * The stream is decoded twice on one decoder as a whole chunk (reset and trim in between) and
 * once on a fresh decoder in the chunks of the plan; every chunk is a heap copy of exactly its
 * size, freed after the feed, so a read past a chunk or a pointer kept into it is caught by
 * ASan. Invariants checked (abort on failure):
 *   - split independence: same messages, same feed status, same finish status for every run
 *     (raw mode: the same bytes, and one message per non-empty chunk, that chunk itself);
 *   - exact re-encoding: the messages, framed with iocp_frame_prefix / iocp_frame_suffix,
 *     reproduce the consumed input byte for byte. Line mode reads "\r\n" too, so each message
 *     m is followed in the input by "\r\n", or by "\n" only when m does not end in '\r'
 *     (otherwise that '\r' would have been taken for the terminator); m holds no '\n';
 *   - the unconsumed tail agrees with the status: empty after OK/OK; an incomplete frame within
 *     the limit after TRUNCATED; a frame over the limit after TOO_LARGE; the callback's count
 *     after STOPPED;
 *   - delivery: a message is either in place, at exactly its offset in the fed chunk, or in
 *     d->buf, and it is in place exactly when its bytes (a line with its '\n') lie in one
 *     chunk; the total delivered never exceeds the bytes fed;
 *   - memory: d->buf_cap never passes max_message nor max(256, 2 * bytes fed); no leaks (LSan).
 */
#include "iocp/framing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CONFIG_BYTES 5u
#define NOT_IN_PLACE SIZE_MAX

/* What one decoding run delivered. */
typedef struct run {
    const iocp_decoder *d;
    size_t stop_after;
    /* the chunk being fed and its offset in the stream */
    const uint8_t *chunk;
    size_t chunk_len, chunk_off;
    size_t fed;      /* bytes fed before the current chunk */
    size_t base_cap; /* d->buf_cap when the run began (a reused decoder keeps its buffer) */
    int refeed;      /* fed again after an error: buffered bytes may predate the run */
    size_t trim;     /* SIZE_MAX, or iocp_decoder_trim(d, trim) after every feed */
    /* the messages: payloads concatenated; per message its length and its stream offset
     * when delivered in place (NOT_IN_PLACE when assembled in d->buf) */
    uint8_t *bytes;
    size_t len, cap;
    size_t *lens, *where;
    size_t count, slots;
    iocp_frame_status feed, finish;
} run;

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size != 0 ? size : 1);
    REQUIRE(p != NULL);
    return p;
}

static void run_free(run *r)
{
    free(r->bytes);
    free(r->lens);
    free(r->where);
}

static int within(const uint8_t *p, size_t len, const uint8_t *base, size_t base_len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return base != NULL && a >= b && a - b <= base_len && len <= base_len - (a - b);
}

static int on_message(void *user, const uint8_t *msg, size_t len)
{
    run *r = user;
    REQUIRE(msg != NULL);
    REQUIRE(r->refeed || r->len + len <= r->fed + r->chunk_len); /* never more than fed */
    size_t where = NOT_IN_PLACE;
    if (len > 0) {
        if (within(msg, len, r->chunk, r->chunk_len)) {
            where = r->chunk_off + (size_t)((uintptr_t)msg - (uintptr_t)r->chunk);
        } else {
            REQUIRE(r->d->mode != IOCP_FRAMING_RAW);
            REQUIRE(msg == r->d->buf);
            REQUIRE(len <= r->d->buf_cap);
        }
    }
    if (r->len + len > r->cap) {
        r->cap = (r->len + len) * 2;
        r->bytes = xrealloc(r->bytes, r->cap);
    }
    if (r->count == r->slots) {
        r->slots = r->slots ? r->slots * 2 : 16;
        r->lens = xrealloc(r->lens, r->slots * sizeof *r->lens);
        r->where = xrealloc(r->where, r->slots * sizeof *r->where);
    }
    if (len > 0)
        memcpy(r->bytes + r->len, msg, len);
    r->len += len;
    r->lens[r->count] = len;
    r->where[r->count] = where;
    r->count++;
    return r->stop_after != 0 && r->count == r->stop_after;
}

static void check_memory(const iocp_decoder *d, size_t fed, size_t base_cap)
{
    if (d->mode == IOCP_FRAMING_RAW) {
        REQUIRE(d->buf == NULL);
        return;
    }
    REQUIRE(d->buf_cap <= d->max_message);
    REQUIRE(d->buf_cap <= 256 || d->buf_cap <= 2 * fed || d->buf_cap <= base_cap);
    REQUIRE(d->buf_len <= d->buf_cap);
    REQUIRE((d->buf == NULL) == (d->buf_cap == 0));
}

/* Feeds data[0, n) in the chunks sizes[0, nsizes) (their sum is n) on decoder d, which the
 * caller has initialised or reset, then finishes if every feed was OK. */
static void decode(iocp_decoder *d, run *r, size_t stop_after, int refeed, size_t trim,
                   const uint8_t *data, size_t n, const size_t *sizes, size_t nsizes)
{
    memset(r, 0, sizeof *r);
    r->d = d;
    r->stop_after = stop_after;
    r->refeed = refeed;
    r->trim = trim;
    r->base_cap = d->buf_cap;
    r->feed = IOCP_FRAME_OK;
    r->finish = IOCP_FRAME_OK;
    size_t pos = 0;
    for (size_t i = 0; i < nsizes; i++) {
        size_t len = sizes[i];
        uint8_t *copy = len > 0 ? xrealloc(NULL, len) : NULL;
        if (len > 0)
            memcpy(copy, data + pos, len);
        r->chunk = copy;
        r->chunk_len = len;
        r->chunk_off = pos;
        r->feed = iocp_decoder_feed(d, copy, len, on_message, r);
        free(copy);
        r->chunk = NULL;
        r->chunk_len = 0;
        pos += len;
        r->fed = pos;
        check_memory(d, pos, r->base_cap);
        if (r->trim != SIZE_MAX && r->feed == IOCP_FRAME_OK) {
            size_t held = d->buf_len;
            iocp_decoder_trim(d, r->trim);
            REQUIRE(d->buf_len == held && d->buf_cap >= held);
            REQUIRE(d->buf_cap <= r->trim || d->buf_cap == held || d->buf_cap <= r->base_cap ||
                    d->buf_cap <= 256 || d->buf_cap <= 2 * pos);
        }
        if (r->feed != IOCP_FRAME_OK) {
            REQUIRE(d->error[0] != '\0' && strlen(d->error) < sizeof d->error);
            return;
        }
    }
    REQUIRE(pos == n);
    r->finish = iocp_decoder_finish(d);
    REQUIRE(r->finish == IOCP_FRAME_OK || r->finish == IOCP_FRAME_TRUNCATED);
    REQUIRE((r->finish == IOCP_FRAME_TRUNCATED) == (iocp_decoder_in_message(d) != 0));
    if (r->finish != IOCP_FRAME_OK)
        REQUIRE(d->error[0] != '\0' && strlen(d->error) < sizeof d->error);
}

static void same_messages(const run *a, const run *b)
{
    REQUIRE(a->feed == b->feed);
    REQUIRE(a->finish == b->finish);
    REQUIRE(a->count == b->count);
    REQUIRE(a->len == b->len);
    for (size_t i = 0; i < a->count; i++)
        REQUIRE(a->lens[i] == b->lens[i]);
    REQUIRE(a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The payload a line starting at s must at least have: its bytes up to '\n' (or the end),
 * less one '\r' just before the '\n' or at the end. Sets *nl to the '\n' offset or n. */
static size_t line_payload(const uint8_t *s, size_t n, size_t *nl)
{
    const uint8_t *p = memchr(s, '\n', n);
    size_t raw = p != NULL ? (size_t)(p - s) : n;
    *nl = raw;
    return raw > 0 && s[raw - 1] == '\r' ? raw - 1 : raw;
}

/* Exact re-encoding of the messages against the input, then the tail against the status.
 * chunk_of maps a stream offset to its chunk index (NULL: one chunk). */
static void check_encoding(const run *r, iocp_framing mode, uint32_t max, const uint8_t *in,
                           size_t n, const size_t *chunk_of)
{
    size_t e = 0, off = 0; /* consumed input, offset in r->bytes */
    for (size_t i = 0; i < r->count; i++) {
        const uint8_t *m = r->bytes != NULL ? r->bytes + off : (const uint8_t *)"";
        size_t len = r->lens[i];
        size_t first, last; /* the bytes that must share a chunk for in-place delivery */
        REQUIRE(len <= max);
        uint8_t prefix[IOCP_LENGTH_HEADER_SIZE];
        size_t prefix_len = iocp_frame_prefix(mode, len, prefix), suffix_len;
        const uint8_t *suffix = iocp_frame_suffix(mode, &suffix_len);
        int overflow = 1;
        REQUIRE(iocp_frame_size(mode, len, &overflow) == prefix_len + len + suffix_len);
        REQUIRE(overflow == 0);
        if (mode == IOCP_FRAMING_LENGTH) {
            REQUIRE(iocp_frame_check(mode, m, len, max) == 0);
            REQUIRE(prefix_len == IOCP_LENGTH_HEADER_SIZE && suffix_len == 0);
            REQUIRE(n - e >= prefix_len + len);
            REQUIRE(memcmp(in + e, prefix, prefix_len) == 0);
            REQUIRE(len == 0 || memcmp(in + e + prefix_len, m, len) == 0);
            first = e + prefix_len;
            last = first + len - 1;
            e += prefix_len + len;
        } else {
            REQUIRE(prefix_len == 0 && suffix_len == 1 && suffix[0] == '\n');
            REQUIRE(len == 0 || memchr(m, '\n', len) == NULL);
            REQUIRE(n - e > len);
            REQUIRE(len == 0 || memcmp(in + e, m, len) == 0);
            first = e;
            if (in[e + len] == '\r') { /* the peer's "\r\n" */
                REQUIRE(n - e > len + 1 && in[e + len + 1] == '\n');
                e += len + 2;
            } else { /* our own "\n": only when m can be framed as it is */
                REQUIRE(memcmp(in + e + len, suffix, suffix_len) == 0);
                REQUIRE(iocp_frame_check(mode, m, len, max) == 0);
                e += len + 1;
            }
            last = e - 1;
        }
        if (len > 0) {
            int one_chunk = chunk_of == NULL || chunk_of[first] == chunk_of[last];
            REQUIRE((r->where[i] != NOT_IN_PLACE) == one_chunk);
            REQUIRE(r->where[i] == NOT_IN_PLACE || r->where[i] == first);
        }
        off += len;
    }
    REQUIRE(off == r->len);

    const uint8_t *tail = in + e;
    size_t rest = n - e;
    switch (r->feed) {
    case IOCP_FRAME_STOPPED:
        REQUIRE(r->stop_after != 0 && r->count == r->stop_after);
        return;
    case IOCP_FRAME_TOO_LARGE:
        if (mode == IOCP_FRAMING_LENGTH) {
            REQUIRE(rest >= IOCP_LENGTH_HEADER_SIZE && be32(tail) > max);
        } else {
            size_t nl;
            REQUIRE(line_payload(tail, rest, &nl) > max);
        }
        return;
    case IOCP_FRAME_OK:
        break;
    default:
        REQUIRE(0 && "unexpected feed status");
    }
    REQUIRE(r->stop_after == 0 || r->count < r->stop_after);
    if (r->finish == IOCP_FRAME_OK) {
        REQUIRE(rest == 0);
    } else if (mode == IOCP_FRAMING_LENGTH) {
        REQUIRE(rest > 0);
        REQUIRE(
            rest < IOCP_LENGTH_HEADER_SIZE ||
            (be32(tail) <= max && (uint64_t)rest < IOCP_LENGTH_HEADER_SIZE + (uint64_t)be32(tail)));
    } else {
        size_t nl;
        REQUIRE(rest > 0);
        REQUIRE(line_payload(tail, rest, &nl) <= max && nl == rest);
    }
}

/* Raw: one message per non-empty chunk, the chunk itself, in place; never an error. */
static void check_raw(const run *r, const uint8_t *in, size_t n, const size_t *sizes, size_t nsizes)
{
    size_t pos = 0, k = 0;
    for (size_t i = 0; i < nsizes && k < r->count; i++) {
        if (sizes[i] == 0)
            continue;
        REQUIRE(r->lens[k] == sizes[i] && r->where[k] == pos);
        pos += sizes[i];
        k++;
    }
    REQUIRE(k == r->count && r->len == pos);
    REQUIRE(pos == 0 || memcmp(r->bytes, in, pos) == 0);
    REQUIRE(r->finish == IOCP_FRAME_OK);
    if (r->stop_after != 0 && r->count == r->stop_after) {
        REQUIRE(r->feed == IOCP_FRAME_STOPPED);
    } else {
        REQUIRE(r->feed == IOCP_FRAME_OK && pos == n);
    }
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < CONFIG_BYTES)
        return 0;
    static const iocp_framing modes[4] = {IOCP_FRAMING_RAW, IOCP_FRAMING_LINE, IOCP_FRAMING_LENGTH,
                                          IOCP_FRAMING_LENGTH};
    iocp_framing mode = modes[data[0] & 3u];
    size_t keep = (size_t)(data[0] >> 2) * 8u;
    uint32_t v = (uint32_t)data[1] << 8 | data[2];
    uint32_t max = v >= 0xFF00u ? UINT32_MAX - (0xFFFFu - v) : v;
    uint8_t chunking = data[3];
    size_t stop_after = data[4] & 0x80u ? (size_t)(data[4] & 0x0Fu) + 1u : 0;
    const uint8_t *in = data + CONFIG_BYTES;
    size_t n = size - CONFIG_BYTES;

    /* The chunk plan, and which chunk each stream offset falls in. */
    size_t *sizes = xrealloc(NULL, (2 * n + 2) * sizeof *sizes);
    size_t *chunk_of = xrealloc(NULL, (n + 1) * sizeof *chunk_of);
    size_t nsizes = 0, pos = 0;
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)chunking << 32) ^ n;
    while (pos < n) {
        size_t len;
        if (chunking & 0x80u)
            len = 1;
        else if (nsizes + 1 >= 2 * n + 2)
            len = n - pos;
        else
            len = (size_t)(next_rand(&rng) % ((chunking & 0x7Fu) + 2u)); /* 0 .. span + 1 */
        if (len > n - pos)
            len = n - pos;
        for (size_t k = 0; k < len; k++)
            chunk_of[pos + k] = nsizes;
        sizes[nsizes++] = len;
        pos += len;
    }

    iocp_decoder d;
    iocp_decoder_init(&d, mode, max);
    REQUIRE(d.max_message == (max != 0 ? max : IOCP_DEFAULT_MAX_MESSAGE));
    uint32_t limit = d.max_message;

    /* Whole, twice on one decoder (reset and trimmed in between), then in chunks. */
    run whole, again, split;
    size_t one[1] = {n};
    decode(&d, &whole, stop_after, 0, SIZE_MAX, in, n, one, n > 0 ? 1 : 0);
    iocp_decoder_reset(&d);
    REQUIRE(!iocp_decoder_in_message(&d) && d.buf_len == 0);
    iocp_decoder_trim(&d, keep);
    REQUIRE(d.buf_cap <= keep || d.buf == NULL || d.buf_cap == 0);
    decode(&d, &again, stop_after, 0, SIZE_MAX, in, n, one, n > 0 ? 1 : 0);
    if (whole.feed != IOCP_FRAME_OK) {
        /* Fed again after an error by mistake: must stay memory-safe and bounded. */
        run after;
        decode(&d, &after, 0, 1, SIZE_MAX, in, n, one, n > 0 ? 1 : 0);
        run_free(&after);
    }
    iocp_decoder_fini(&d);
    REQUIRE(d.buf == NULL);

    iocp_decoder_init(&d, mode, max);
    decode(&d, &split, stop_after, 0, data[4] & 0x40u ? keep : SIZE_MAX, in, n, sizes, nsizes);
    iocp_decoder_fini(&d);

    same_messages(&whole, &again);
    REQUIRE(iocp_frame_status_str(whole.feed) != NULL);
    iocp_framing parsed;
    REQUIRE(iocp_framing_parse(iocp_framing_name(mode), &parsed) == 0 && parsed == mode);
    /* The encoder's rules on the stream taken as one payload. */
    int ok = iocp_frame_check(mode, in, n, limit) == 0;
    if (mode == IOCP_FRAMING_LINE)
        REQUIRE(ok ==
                (n <= limit && (n == 0 || (memchr(in, '\n', n) == NULL && in[n - 1] != '\r'))));
    else if (mode == IOCP_FRAMING_LENGTH)
        REQUIRE(ok == (n <= limit));
    else
        REQUIRE(ok);
    if (mode == IOCP_FRAMING_RAW) {
        check_raw(&whole, in, n, one, n > 0 ? 1 : 0);
        check_raw(&split, in, n, sizes, nsizes);
    } else {
        same_messages(&whole, &split);
        check_encoding(&whole, mode, limit, in, n, NULL);
        check_encoding(&split, mode, limit, in, n, chunk_of);
    }

    run_free(&whole);
    run_free(&again);
    run_free(&split);
    free(sizes);
    free(chunk_of);
    return 0;
}
