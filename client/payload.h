/*
 * payload.h: the load generator's payloads, which carry their own proof of integrity.
 *
 * A payload is a function of (stream, seq, len): a header with the sequence number and the
 * stream (connection) number, then a pattern seeded by all three. Any byte of it can be
 * recomputed from its offset alone, so an echo that arrives in pieces (raw mode) is checked
 * piece by piece without keeping a copy of what was sent, and a lost, duplicated, reordered
 * or corrupted byte, or one from another message or connection, shows as a mismatch.
 *
 * Binary payloads: seq (8 bytes LE), stream (4 bytes LE), len (4 bytes LE), pattern.
 * Text payloads (line framing, no '\n' or '\r'): "#" seq (16 hex) "/" stream (8 hex) ":" then a
 * pattern of letters, digits, '+' and '-'. A payload shorter than its header carries the
 * header's first bytes only. Plain C11, no Win32.
 */
#ifndef CLIENT_PAYLOAD_H
#define CLIENT_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#define PAYLOAD_BINARY_HEADER 16u
#define PAYLOAD_TEXT_HEADER   27u

typedef struct payload_kind {
    int text; /* 1: printable bytes only (line framing) */
} payload_kind;

/* Byte i of payload (stream, seq, len). */
uint8_t payload_byte(payload_kind kind, uint32_t stream, uint64_t seq, size_t len, size_t i);

/* Writes the whole payload (len bytes). */
void payload_fill(payload_kind kind, uint32_t stream, uint64_t seq, uint8_t *buf, size_t len);

/* Checks n received bytes against bytes [offset, offset + n) of payload (stream, seq, len).
 * Returns n when all match, else the index in data of the first byte that differs. */
size_t payload_check(payload_kind kind, uint32_t stream, uint64_t seq, size_t len, size_t offset,
                     const uint8_t *data, size_t n);

/* Reads the header of a received payload, to say what arrived instead ("message 12 of
 * connection 3"). Returns 0 when a whole header was there, -1 otherwise. */
int payload_parse_header(payload_kind kind, const uint8_t *data, size_t n, uint32_t *stream,
                         uint64_t *seq);

#endif
