/* payload.c: generated payloads and their piecewise check (see payload.h). */
#include "payload.h"

#include <string.h>

/* Sized by their strings (an array one short of the NUL is C4295 for MSVC and an error for
 * GCC 15 -Wextra); the masks below index 64 and 16 of them. */
static const char text_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789+-";
static const char hex_digits[] = "0123456789abcdef";
_Static_assert(sizeof text_alphabet == 64 + 1, "text_alphabet: 64 symbols");
_Static_assert(sizeof hex_digits == 16 + 1, "hex_digits: 16 symbols");

/* splitmix64: a seed that changes in every bit when stream, seq or len changes. */
static uint64_t mix(uint32_t stream, uint64_t seq, size_t len)
{
    uint64_t z = seq * 0x9E3779B97F4A7C15ull ^ ((uint64_t)stream << 32 | (uint32_t)len);
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The pattern byte at offset i: one of the seed's eight bytes plus a term that changes every
 * eight bytes, so a shift by any distance shows. */
static uint8_t pattern(uint64_t seed, size_t i)
{
    return (uint8_t)((uint8_t)(seed >> ((i & 7u) * 8u)) + (uint8_t)((i >> 3) * 0x9Du));
}

static uint8_t header_byte_binary(uint32_t stream, uint64_t seq, size_t len, size_t i)
{
    if (i < 8)
        return (uint8_t)(seq >> (i * 8));
    if (i < 12)
        return (uint8_t)(stream >> ((i - 8) * 8));
    return (uint8_t)((uint32_t)len >> ((i - 12) * 8));
}

static uint8_t header_byte_text(uint32_t stream, uint64_t seq, size_t i)
{
    if (i == 0)
        return '#';
    if (i <= 16)
        return (uint8_t)hex_digits[(seq >> ((16 - i) * 4)) & 15u];
    if (i == 17)
        return '/';
    if (i <= 25)
        return (uint8_t)hex_digits[(stream >> ((25 - i) * 4)) & 15u];
    return ':';
}

uint8_t payload_byte(payload_kind kind, uint32_t stream, uint64_t seq, size_t len, size_t i)
{
    if (kind.text) {
        if (i < PAYLOAD_TEXT_HEADER)
            return header_byte_text(stream, seq, i);
        return (uint8_t)text_alphabet[pattern(mix(stream, seq, len), i) & 63u];
    }
    if (i < PAYLOAD_BINARY_HEADER)
        return header_byte_binary(stream, seq, len, i);
    return pattern(mix(stream, seq, len), i);
}

void payload_fill(payload_kind kind, uint32_t stream, uint64_t seq, uint8_t *buf, size_t len)
{
    size_t header = kind.text ? PAYLOAD_TEXT_HEADER : PAYLOAD_BINARY_HEADER;
    size_t i = 0;
    for (; i < len && i < header; i++)
        buf[i] = payload_byte(kind, stream, seq, len, i);
    uint64_t seed = mix(stream, seq, len);
    if (kind.text) {
        for (; i < len; i++)
            buf[i] = (uint8_t)text_alphabet[pattern(seed, i) & 63u];
    } else {
        for (; i < len; i++)
            buf[i] = pattern(seed, i);
    }
}

size_t payload_check(payload_kind kind, uint32_t stream, uint64_t seq, size_t len, size_t offset,
                     const uint8_t *data, size_t n)
{
    size_t header = kind.text ? PAYLOAD_TEXT_HEADER : PAYLOAD_BINARY_HEADER;
    uint64_t seed = mix(stream, seq, len);
    for (size_t k = 0; k < n; k++) {
        size_t i = offset + k;
        uint8_t want;
        if (i >= len)
            return k; /* more bytes than the payload has */
        if (i < header)
            want = payload_byte(kind, stream, seq, len, i);
        else if (kind.text)
            want = (uint8_t)text_alphabet[pattern(seed, i) & 63u];
        else
            want = pattern(seed, i);
        if (data[k] != want)
            return k;
    }
    return n;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int payload_parse_header(payload_kind kind, const uint8_t *data, size_t n, uint32_t *stream,
                         uint64_t *seq)
{
    uint64_t s = 0;
    uint32_t c = 0;
    if (kind.text) {
        if (n < PAYLOAD_TEXT_HEADER || data[0] != '#' || data[17] != '/' || data[26] != ':')
            return -1;
        for (size_t i = 1; i <= 16; i++) {
            int h = hex_value(data[i]);
            if (h < 0)
                return -1;
            s = s << 4 | (uint64_t)h;
        }
        for (size_t i = 18; i <= 25; i++) {
            int h = hex_value(data[i]);
            if (h < 0)
                return -1;
            c = c << 4 | (uint32_t)h;
        }
    } else {
        if (n < PAYLOAD_BINARY_HEADER)
            return -1;
        for (size_t i = 0; i < 8; i++)
            s |= (uint64_t)data[i] << (i * 8);
        for (size_t i = 0; i < 4; i++)
            c |= (uint32_t)data[8 + i] << (i * 8);
    }
    *seq = s;
    *stream = c;
    return 0;
}
