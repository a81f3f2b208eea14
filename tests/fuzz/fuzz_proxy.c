/*
 * fuzz_proxy.c: libFuzzer target for the PROXY protocol header parser (iocp/src/proxy_proto.c;
 * native build, see scripts/fuzz.sh).
 *
 * Input layout: 1 chunking byte (bit 7: one byte at a time; else chunk sizes 1 .. (bits 0-6)
 * + 1 from a PRNG seeded by it), then the connection's first bytes. The stream is parsed
 * whole and in the chunks of the plan, each chunk a heap copy of exactly its size, so a read
 * past a chunk or a pointer kept into one is caught by ASan. The first 12 bytes of the input
 * after the chunking byte may also be replaced by the v2 signature (bit 6), so that the v2
 * paths are reached without the fuzzer having to find 12 exact bytes. Invariants (abort):
 *   - split independence: the same status, the same header length and the same result
 *     (address, family, port) whatever the chunking;
 *   - bounds: NEED_MORE takes every byte fed; DONE's header is at most 107 bytes for v1
 *     (ending in CRLF) and at most 16 + 1024 for v2, and no more than the bytes fed; after
 *     DONE or ERROR a further feed takes nothing and says the same;
 *   - a v1 header's line begins "PROXY "; a v2 one begins with the signature.
 */
#include "proxy_proto.h"

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

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

typedef struct outcome {
    iocpi_proxy_status status;
    size_t header_len;
    iocpi_proxy_parser p;
} outcome;

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void run(const uint8_t *d, size_t len, unsigned plan, outcome *o)
{
    iocpi_proxy_init(&o->p);
    o->status = IOCPI_PROXY_NEED_MORE;
    o->header_len = 0;
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (plan * 0x100000001B3ull) ^ len;
    size_t pos = 0;
    while (pos < len) {
        size_t n = len - pos;
        if (plan == 0x100) {
            /* whole */
        } else if (plan & 0x80)
            n = 1;
        else {
            size_t max = (plan & 0x7F) + 1;
            size_t pick = (size_t)(next_rand(&rng) % max) + 1;
            n = pick < n ? pick : n;
        }
        uint8_t *chunk = malloc(n ? n : 1);
        REQUIRE(chunk != NULL);
        memcpy(chunk, d + pos, n);
        size_t used = (size_t)-1;
        iocpi_proxy_status st = iocpi_proxy_feed(&o->p, chunk, n, &used);
        free(chunk);
        if (st == IOCPI_PROXY_ERROR) {
            o->status = st;
            return;
        }
        REQUIRE(used <= n);
        if (st == IOCPI_PROXY_DONE) {
            o->status = st;
            o->header_len = pos + used;
            size_t again = 1;
            REQUIRE(iocpi_proxy_feed(&o->p, d, len, &again) == IOCPI_PROXY_DONE && again == 0);
            return;
        }
        REQUIRE(used == n);
        pos += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned plan = data[0];
    size_t len = size - 1;
    uint8_t *stream = malloc(len ? len : 1);
    REQUIRE(stream != NULL);
    memcpy(stream, data + 1, len);
    if ((plan & 0x40) && len >= 12)
        memcpy(stream, sig, 12);
    static outcome whole, split;
    run(stream, len, 0x100, &whole);
    run(stream, len, plan, &split);
    REQUIRE(whole.status == split.status);
    REQUIRE(whole.header_len == split.header_len);
    if (whole.status == IOCPI_PROXY_DONE) {
        REQUIRE(whole.p.has_address == split.p.has_address);
        if (whole.p.has_address) {
            REQUIRE(whole.p.family == split.p.family && whole.p.port == split.p.port);
            REQUIRE(memcmp(whole.p.addr, split.p.addr, 16) == 0);
            REQUIRE(whole.p.family == 4 || whole.p.family == 6);
        }
        REQUIRE(whole.header_len <= len);
        if (whole.p.version == 1) {
            REQUIRE(whole.header_len <= IOCPI_PROXY_V1_MAX && whole.header_len >= 8);
            REQUIRE(memcmp(stream, "PROXY ", 6) == 0);
            REQUIRE(stream[whole.header_len - 2] == '\r' && stream[whole.header_len - 1] == '\n');
        } else {
            REQUIRE(whole.p.version == 2);
            REQUIRE(whole.header_len >= 16 && whole.header_len <= 16 + IOCPI_PROXY_V2_MAX_PAYLOAD);
            REQUIRE(memcmp(stream, sig, 12) == 0);
            REQUIRE(whole.header_len == 16 + ((size_t)stream[14] << 8 | stream[15]));
        }
    } else if (whole.status == IOCPI_PROXY_NEED_MORE) {
        /* Bounded: a v1 line never needs more past 106 bytes, a v2 header past 1040. */
        REQUIRE(len < IOCPI_PROXY_V1_MAX || whole.p.version == 2);
        REQUIRE(len < 16 + IOCPI_PROXY_V2_MAX_PAYLOAD);
    } else {
        REQUIRE(whole.p.error != NULL && whole.p.error[0] != '\0');
    }
    free(stream);
    return 0;
}
