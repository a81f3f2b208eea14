/*
 * framing.h: message boundaries on a TCP byte stream, shared by server and client.
 *
 * Plain C11, no Win32: it also compiles natively on Linux for fuzzing.
 *
 *   raw     no boundaries: every chunk of bytes is delivered as it arrives (RFC 862 echo).
 *   line    a message ends with '\n'; a '\r' just before it is stripped.
 *   length  a 4-byte big-endian length, then that many bytes (0 allowed).
 *
 * The decoder is incremental: any split of the input gives the same messages. A message that
 * lies wholly inside one fed chunk is delivered by pointer into that chunk (no copy); only a
 * message that spans chunks is assembled in a buffer owned by the decoder, which grows with
 * the bytes that actually arrived (never to an announced length up front) and never past
 * max_message.
 */
#ifndef IOCP_FRAMING_H
#define IOCP_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include "iocp/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum iocp_framing {
    IOCP_FRAMING_RAW = 0,
    IOCP_FRAMING_LINE = 1,
    IOCP_FRAMING_LENGTH = 2
} iocp_framing;

#define IOCP_DEFAULT_MAX_MESSAGE (1024u * 1024u)
#define IOCP_LENGTH_HEADER_SIZE  4u

/* "raw", "line", "length"; NULL for an unknown value. */
IOCP_API const char *iocp_framing_name(iocp_framing mode);
/* Parses "raw" / "line" / "length". Returns 0 on success, -1 for anything else. */
IOCP_API int iocp_framing_parse(const char *name, iocp_framing *out);

typedef enum iocp_frame_status {
    IOCP_FRAME_OK = 0,
    IOCP_FRAME_TOO_LARGE, /* a header announced, or a line grew, past max_message */
    IOCP_FRAME_TRUNCATED, /* end of stream inside a message (from iocp_decoder_finish) */
    IOCP_FRAME_NO_MEMORY, /* the assembly buffer could not grow */
    IOCP_FRAME_STOPPED    /* the message callback asked to stop */
} iocp_frame_status;

/* Called once per message, in order; msg is never NULL, even when len is 0. Return 0 to go on,
 * non-zero to stop feeding (the decoder then returns IOCP_FRAME_STOPPED and must not be fed
 * again). */
typedef int (*iocp_message_fn)(void *user, const uint8_t *msg, size_t len);

typedef struct iocp_decoder {
    iocp_framing mode;
    uint32_t max_message;
    /* assembly of a message that spans chunks (owned; freed by iocp_decoder_fini) */
    uint8_t *buf;
    size_t buf_len, buf_cap;
    /* length mode: header bytes seen so far and the announced length; line mode: header_len
     * is 1 while a '\r' that ended the buffered bytes is held back (dropped if '\n' follows) */
    uint8_t header[IOCP_LENGTH_HEADER_SIZE];
    uint32_t header_len;
    uint32_t expected;
    int in_message;       /* 1 while a message has begun and not ended */
    uint64_t allocations; /* calls to the allocator for buf so far (for statistics) */
    char error[160];      /* what was wrong, for the log line, after a non-OK status */
} iocp_decoder;

/* max_message 0 means IOCP_DEFAULT_MAX_MESSAGE. */
IOCP_API void iocp_decoder_init(iocp_decoder *d, iocp_framing mode, uint32_t max_message);
/* Frees the assembly buffer; the decoder can be re-initialised afterwards. */
IOCP_API void iocp_decoder_fini(iocp_decoder *d);
/* Forgets any partial message, keeps the buffer for reuse (a pooled context's next owner). */
IOCP_API void iocp_decoder_reset(iocp_decoder *d);
/* Releases the assembly buffer if it is larger than keep_bytes (bounds pooled memory). */
IOCP_API void iocp_decoder_trim(iocp_decoder *d, size_t keep_bytes);

/* Feeds one chunk. Delivers every complete message to cb. On IOCP_FRAME_OK all len bytes were
 * consumed. On an error, d->error says what was wrong and the stream must be dropped. */
IOCP_API iocp_frame_status iocp_decoder_feed(iocp_decoder *d, const uint8_t *data, size_t len,
                                             iocp_message_fn cb, void *user);

/* End of stream: IOCP_FRAME_OK if no message was partly received, else IOCP_FRAME_TRUNCATED. */
IOCP_API iocp_frame_status iocp_decoder_finish(iocp_decoder *d);

/* 1 while a message has started (some bytes of it seen) and not completed. */
IOCP_API int iocp_decoder_in_message(const iocp_decoder *d);

/* Encoding. The frame of a message is prefix + payload + suffix:
 *   raw: nothing around it; line: suffix "\n"; length: 4-byte big-endian prefix.
 * iocp_frame_check returns 0 if the payload can be framed: length mode needs
 * len <= UINT32_MAX, line mode needs no '\n' in the payload and no '\r' at its end (the
 * decoder would take it for "\r\n"); both need len <= max_message when it is non-zero. */
IOCP_API int iocp_frame_check(iocp_framing mode, const void *payload, size_t len,
                              uint32_t max_message);
/* Writes the prefix into out (room for IOCP_LENGTH_HEADER_SIZE bytes); returns its length. */
IOCP_API size_t iocp_frame_prefix(iocp_framing mode, size_t len,
                                  uint8_t out[IOCP_LENGTH_HEADER_SIZE]);
/* Returns the suffix bytes and sets *suffix_len ("\n" for line mode, "" otherwise). */
IOCP_API const uint8_t *iocp_frame_suffix(iocp_framing mode, size_t *suffix_len);
/* Total framed size, or 0 with *overflow = 1 when it does not fit in size_t. */
IOCP_API size_t iocp_frame_size(iocp_framing mode, size_t len, int *overflow);

IOCP_API const char *iocp_frame_status_str(iocp_frame_status status);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_FRAMING_H */
