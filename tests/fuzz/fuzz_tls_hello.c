/*
 * fuzz_tls_hello.c: libFuzzer target for the ClientHello reader (iocp/src/tls_hello.c; native
 * build, see scripts/fuzz.sh). The input is the client's first bytes, as they come off the
 * socket.
 *
 * Every parse is of a heap copy of exactly its length, so a read past the input is caught by
 * ASan. Invariants checked (abort on failure):
 *   - cuts: a prefix of the input never gives an answer the whole input contradicts. When the
 *     whole is OK with wire_len W, every prefix shorter than W asks for more and every prefix
 *     from W on is OK with the same versions; when the whole asks for more, so does every
 *     prefix; when the whole is MALFORMED or TOO_LARGE, a prefix asks for more or gives that
 *     same answer (the same reason for MALFORMED);
 *   - need: a prefix that asks for more names a length past itself, within the bound, and
 *     every longer prefix short of that length asks for more too (the engine does not parse
 *     again below it);
 *   - bounds: NEED_MORE only below IOCPI_HELLO_WIRE_MAX bytes; OK's wire_len lies within the
 *     input and the bound; without supported_versions the highest version is legacy_version;
 *     a forward-secret AEAD suite offered implies a forward-secret one;
 *     MALFORMED always carries a reason.
 * Prefixes checked: all of them for inputs up to 600 bytes, else 200 spread over the input
 * and each record boundary's neighbourhood is covered by the spread.
 */
#include "tls_hello.h"

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

static iocpi_hello_result parse_copy(const uint8_t *data, size_t len, iocpi_hello *h)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    REQUIRE(copy != NULL);
    memcpy(copy, data, len);
    iocpi_hello_result r = iocpi_hello_parse(copy, len, h);
    free(copy);
    return r;
}

static void check_alone(iocpi_hello_result r, const iocpi_hello *h, size_t len)
{
    if (r == IOCPI_HELLO_NEED_MORE)
        REQUIRE(len < IOCPI_HELLO_WIRE_MAX && h->need > len && h->need <= IOCPI_HELLO_WIRE_MAX);
    if (r == IOCPI_HELLO_OK) {
        REQUIRE(h->wire_len <= len && h->wire_len <= IOCPI_HELLO_WIRE_MAX);
        REQUIRE(h->wire_len >= 5 + 4 + 2 + 32 + 1 + 2 + 2 + 1 + 1);
        if (!h->has_supported_versions)
            REQUIRE(h->highest == h->legacy_version);
        REQUIRE((h->offers_fs_aead & ~h->offers_fs) == 0);
    }
    if (r == IOCPI_HELLO_MALFORMED)
        REQUIRE(h->error != NULL && h->error[0] != '\0');
}

/* need of the last prefix that asked for more: the engine skips parsing below it. */
static size_t skip_below;

static void check_prefix(const uint8_t *data, size_t cut, iocpi_hello_result whole,
                         const iocpi_hello *w)
{
    iocpi_hello h;
    iocpi_hello_result r = parse_copy(data, cut, &h);
    check_alone(r, &h, cut);
    if (cut < skip_below)
        REQUIRE(r == IOCPI_HELLO_NEED_MORE);
    if (r == IOCPI_HELLO_NEED_MORE)
        skip_below = h.need;
    switch (whole) {
    case IOCPI_HELLO_OK:
        if (cut < w->wire_len) {
            REQUIRE(r == IOCPI_HELLO_NEED_MORE);
        } else {
            REQUIRE(r == IOCPI_HELLO_OK);
            REQUIRE(h.highest == w->highest && h.legacy_version == w->legacy_version &&
                    h.wire_len == w->wire_len && h.record_version == w->record_version &&
                    h.has_supported_versions == w->has_supported_versions &&
                    h.offers_fs == w->offers_fs && h.offers_fs_aead == w->offers_fs_aead);
        }
        break;
    case IOCPI_HELLO_NEED_MORE:
        REQUIRE(r == IOCPI_HELLO_NEED_MORE);
        break;
    case IOCPI_HELLO_MALFORMED:
        REQUIRE(r == IOCPI_HELLO_NEED_MORE ||
                (r == IOCPI_HELLO_MALFORMED && strcmp(h.error, w->error) == 0));
        break;
    case IOCPI_HELLO_TOO_LARGE:
        REQUIRE(r == IOCPI_HELLO_NEED_MORE || r == IOCPI_HELLO_TOO_LARGE);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    iocpi_hello w;
    iocpi_hello_result whole = parse_copy(data, len, &w);
    check_alone(whole, &w, len);
    skip_below = 0;
    if (len <= 600) {
        for (size_t cut = 0; cut < len; cut++)
            check_prefix(data, cut, whole, &w);
    } else {
        for (size_t i = 0; i < 200; i++)
            check_prefix(data, (size_t)((unsigned long long)len * i / 200), whole, &w);
        if (whole == IOCPI_HELLO_OK && w.wire_len > 0) {
            check_prefix(data, w.wire_len - 1, whole, &w);
            check_prefix(data, w.wire_len, whole, &w);
        }
    }
    return 0;
}
