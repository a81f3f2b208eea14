/*
 * framing.c: the incremental decoder and the frame encoders of framing.h (plain C11, no Win32).
 *
 * The decoder walks each fed chunk once. A message whose bytes all lie in the chunk being fed
 * is handed to the callback by pointer into that chunk; only a message that began in an
 * earlier chunk is assembled in d->buf. d->buf grows with the bytes that actually arrived
 * (doubling, never past the message's limit), so a header announcing a huge length costs
 * nothing until the bytes come, and a header announcing more than max_message is refused
 * before any allocation.
 *
 * Line mode holds back a '\r' that ends the buffered bytes (d->header_len is 1 while one is
 * held): if '\n' follows, it was the "\r\n" terminator and is dropped; otherwise it is payload
 * and joins the buffer. This keeps the assembly buffer within max_message even for a line of
 * exactly max_message payload bytes whose "\r\n" is split across chunks.
 *
 * After a non-OK status the stream must be dropped; feeding again stays memory-safe (the
 * decoder re-reports an oversized header, and never reads past what it was given).
 */
#include "iocp/framing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation of the assembly buffer (then doubling), unless the limit is lower. */
#define FRAMING_MIN_CAP 256u

const char *iocp_framing_name(iocp_framing mode)
{
    switch (mode) {
    case IOCP_FRAMING_RAW:
        return "raw";
    case IOCP_FRAMING_LINE:
        return "line";
    case IOCP_FRAMING_LENGTH:
        return "length";
    }
    return NULL;
}

int iocp_framing_parse(const char *name, iocp_framing *out)
{
    static const iocp_framing modes[] = {IOCP_FRAMING_RAW, IOCP_FRAMING_LINE, IOCP_FRAMING_LENGTH};
    if (name == NULL || out == NULL)
        return -1;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(name, iocp_framing_name(modes[i])) == 0) {
            *out = modes[i];
            return 0;
        }
    }
    return -1;
}

const char *iocp_frame_status_str(iocp_frame_status status)
{
    switch (status) {
    case IOCP_FRAME_OK:
        return "ok";
    case IOCP_FRAME_TOO_LARGE:
        return "message too large";
    case IOCP_FRAME_TRUNCATED:
        return "stream ended inside a message";
    case IOCP_FRAME_NO_MEMORY:
        return "out of memory assembling a message";
    case IOCP_FRAME_STOPPED:
        return "stopped by the message callback";
    }
    return "unknown framing status";
}

/* ---- decoder state ----------------------------------------------------------------------- */

void iocp_decoder_init(iocp_decoder *d, iocp_framing mode, uint32_t max_message)
{
    memset(d, 0, sizeof *d);
    d->mode = mode;
    d->max_message = max_message != 0 ? max_message : IOCP_DEFAULT_MAX_MESSAGE;
}

void iocp_decoder_fini(iocp_decoder *d)
{
    free(d->buf);
    d->buf = NULL;
    d->buf_len = 0;
    d->buf_cap = 0;
    iocp_decoder_reset(d);
}

void iocp_decoder_reset(iocp_decoder *d)
{
    d->buf_len = 0;
    memset(d->header, 0, sizeof d->header);
    d->header_len = 0;
    d->expected = 0;
    d->in_message = 0;
    d->error[0] = '\0';
}

void iocp_decoder_trim(iocp_decoder *d, size_t keep_bytes)
{
    if (d->buf == NULL || d->buf_cap <= keep_bytes)
        return;
    if (d->buf_len == 0) {
        free(d->buf);
        d->buf = NULL;
        d->buf_cap = 0;
        return;
    }
    /* A partial message is held: shrink no further than its bytes; on failure keep all. */
    size_t cap = d->buf_len > keep_bytes ? d->buf_len : keep_bytes;
    if (cap < d->buf_cap) {
        uint8_t *p = realloc(d->buf, cap);
        d->allocations++;
        if (p != NULL) {
            d->buf = p;
            d->buf_cap = cap;
        }
    }
}

int iocp_decoder_in_message(const iocp_decoder *d)
{
    return d->in_message;
}

static iocp_frame_status fail(iocp_decoder *d, iocp_frame_status status, const char *text)
{
    snprintf(d->error, sizeof d->error, "%s", text);
    return status;
}

static iocp_frame_status stopped(iocp_decoder *d)
{
    return fail(d, IOCP_FRAME_STOPPED, "the message callback asked to stop");
}

/* Makes room for need bytes in d->buf (need <= limit): doubles from FRAMING_MIN_CAP, capped at
 * limit, so the capacity tracks the bytes received rather than any announced length. */
static iocp_frame_status reserve(iocp_decoder *d, size_t need, size_t limit)
{
    if (need <= d->buf_cap)
        return IOCP_FRAME_OK;
    size_t cap = d->buf_cap != 0 ? d->buf_cap : FRAMING_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > limit)
        cap = limit; /* >= need */
    uint8_t *p = realloc(d->buf, cap);
    d->allocations++;
    if (p == NULL) {
        snprintf(d->error, sizeof d->error,
                 "cannot grow the message buffer from %llu to %llu bytes",
                 (unsigned long long)d->buf_cap, (unsigned long long)cap);
        return IOCP_FRAME_NO_MEMORY;
    }
    d->buf = p;
    d->buf_cap = cap;
    return IOCP_FRAME_OK;
}

/* ---- raw --------------------------------------------------------------------------------- */

static iocp_frame_status feed_raw(iocp_decoder *d, const uint8_t *data, size_t len,
                                  iocp_message_fn cb, void *user)
{
    if (len > 0 && cb(user, data, len) != 0)
        return stopped(d);
    return IOCP_FRAME_OK;
}

/* ---- line -------------------------------------------------------------------------------- */

static iocp_frame_status line_too_large(iocp_decoder *d, size_t payload, int complete)
{
    snprintf(d->error, sizeof d->error,
             complete ? "line of %llu bytes; the limit is %lu"
                      : "line grew to %llu bytes without a newline; the limit is %lu",
             (unsigned long long)payload, (unsigned long)d->max_message);
    return IOCP_FRAME_TOO_LARGE;
}

/* Appends seg[0, n) to the partial line, holding back a final '\r'. complete says whether a
 * '\n' follows seg (only for the error text). Fails, before buffering anything, when the
 * payload the line must at least have is over max_message. */
static iocp_frame_status line_append(iocp_decoder *d, const uint8_t *seg, size_t n, int complete)
{
    size_t held = d->header_len; /* 0 or 1: a '\r' held back from the previous chunk */
    int ends_cr = n > 0 && seg[n - 1] == '\r';
    /* Bytes the buffer will hold: buf_len + (held if n > 0) + n - ends_cr, checked for
     * overflow; the held '\r' stays held when n is 0. */
    size_t add = n > 0 ? held + n - (size_t)ends_cr : 0;
    if (add > (size_t)d->max_message || d->buf_len > (size_t)d->max_message - add) {
        size_t total = d->buf_len > SIZE_MAX - add ? SIZE_MAX : d->buf_len + add;
        return line_too_large(d, total, complete);
    }
    if (add > 0) {
        iocp_frame_status st = reserve(d, d->buf_len + add, d->max_message);
        if (st != IOCP_FRAME_OK)
            return st;
        if (held)
            d->buf[d->buf_len++] = '\r';
        memcpy(d->buf + d->buf_len, seg, n - (size_t)ends_cr);
        d->buf_len += n - (size_t)ends_cr;
    }
    if (n > 0)
        d->header_len = (uint32_t)ends_cr;
    d->in_message = d->buf_len > 0 || d->header_len > 0;
    return IOCP_FRAME_OK;
}

static iocp_frame_status feed_line(iocp_decoder *d, const uint8_t *data, size_t len,
                                   iocp_message_fn cb, void *user)
{
    size_t pos = 0;
    while (pos < len) {
        const uint8_t *start = data + pos;
        size_t avail = len - pos;
        const uint8_t *nl = memchr(start, '\n', avail);
        if (nl == NULL) /* the line goes on in a later chunk */
            return line_append(d, start, avail, 0);
        size_t n = (size_t)(nl - start);
        pos += n + 1;
        if (!d->in_message) {
            /* The whole line is in this chunk: deliver it in place. */
            size_t payload = n > 0 && start[n - 1] == '\r' ? n - 1 : n;
            if (payload > (size_t)d->max_message)
                return line_too_large(d, payload, 1);
            if (cb(user, start, payload) != 0)
                return stopped(d);
            continue;
        }
        iocp_frame_status st = line_append(d, start, n, 1);
        if (st != IOCP_FRAME_OK)
            return st;
        /* A '\r' still held is the one just before '\n': the terminator, dropped. */
        size_t msg_len = d->buf_len;
        d->buf_len = 0;
        d->header_len = 0;
        d->in_message = 0;
        /* An empty line whose "\r" was held allocated nothing: point into the chunk. */
        if (cb(user, d->buf != NULL ? d->buf : start, msg_len) != 0)
            return stopped(d);
    }
    return IOCP_FRAME_OK;
}

/* ---- length-prefixed --------------------------------------------------------------------- */

static iocp_frame_status feed_length(iocp_decoder *d, const uint8_t *data, size_t len,
                                     iocp_message_fn cb, void *user)
{
    size_t pos = 0;
    while (pos < len) {
        if (d->header_len < IOCP_LENGTH_HEADER_SIZE) {
            size_t take = IOCP_LENGTH_HEADER_SIZE - d->header_len;
            if (take > len - pos)
                take = len - pos;
            memcpy(d->header + d->header_len, data + pos, take);
            d->header_len += (uint32_t)take;
            pos += take;
            d->in_message = 1;
            if (d->header_len < IOCP_LENGTH_HEADER_SIZE)
                return IOCP_FRAME_OK;
            d->expected = (uint32_t)d->header[0] << 24 | (uint32_t)d->header[1] << 16 |
                          (uint32_t)d->header[2] << 8 | (uint32_t)d->header[3];
            d->buf_len = 0;
        }
        /* Checked here rather than once after the header so a decoder fed again after
         * TOO_LARGE reports it again instead of assembling the oversized message. */
        if (d->expected > d->max_message) {
            snprintf(d->error, sizeof d->error,
                     "length header announces %lu bytes; the limit is %lu",
                     (unsigned long)d->expected, (unsigned long)d->max_message);
            return IOCP_FRAME_TOO_LARGE;
        }
        size_t want = (size_t)d->expected - d->buf_len;
        size_t avail = len - pos;
        const uint8_t *msg;
        size_t msg_len = d->expected;
        if (d->buf_len == 0 && avail >= want) {
            msg = data + pos; /* the whole payload is in this chunk: in place */
            pos += want;
        } else {
            size_t take = avail < want ? avail : want;
            if (take == 0)
                return IOCP_FRAME_OK; /* the chunk ended with the header */
            iocp_frame_status st = reserve(d, d->buf_len + take, d->expected);
            if (st != IOCP_FRAME_OK)
                return st;
            memcpy(d->buf + d->buf_len, data + pos, take);
            d->buf_len += take;
            pos += take;
            if (d->buf_len < d->expected)
                return IOCP_FRAME_OK;
            msg = d->buf;
        }
        d->buf_len = 0;
        d->header_len = 0;
        d->in_message = 0;
        if (cb(user, msg, msg_len) != 0)
            return stopped(d);
    }
    return IOCP_FRAME_OK;
}

iocp_frame_status iocp_decoder_feed(iocp_decoder *d, const uint8_t *data, size_t len,
                                    iocp_message_fn cb, void *user)
{
    d->error[0] = '\0';
    if (len == 0)
        return IOCP_FRAME_OK; /* data may be NULL */
    switch (d->mode) {
    case IOCP_FRAMING_RAW:
        return feed_raw(d, data, len, cb, user);
    case IOCP_FRAMING_LINE:
        return feed_line(d, data, len, cb, user);
    case IOCP_FRAMING_LENGTH:
        return feed_length(d, data, len, cb, user);
    }
    return feed_raw(d, data, len, cb, user);
}

iocp_frame_status iocp_decoder_finish(iocp_decoder *d)
{
    if (!d->in_message)
        return IOCP_FRAME_OK;
    if (d->mode == IOCP_FRAMING_LINE) {
        snprintf(d->error, sizeof d->error,
                 "stream ended inside a line (%llu bytes without a newline)",
                 (unsigned long long)(d->buf_len + d->header_len));
    } else if (d->header_len < IOCP_LENGTH_HEADER_SIZE) {
        snprintf(d->error, sizeof d->error, "stream ended inside a length header (%lu of %u bytes)",
                 (unsigned long)d->header_len, IOCP_LENGTH_HEADER_SIZE);
    } else {
        snprintf(d->error, sizeof d->error, "stream ended inside a message (%llu of %lu bytes)",
                 (unsigned long long)d->buf_len, (unsigned long)d->expected);
    }
    return IOCP_FRAME_TRUNCATED;
}

/* ---- encoding ---------------------------------------------------------------------------- */

int iocp_frame_check(iocp_framing mode, const void *payload, size_t len, uint32_t max_message)
{
    switch (mode) {
    case IOCP_FRAMING_RAW:
        return 0; /* the raw decoder has no limit: any chunk is a message */
    case IOCP_FRAMING_LINE:
        if (max_message != 0 && len > (size_t)max_message)
            return -1;
        if (len == 0)
            return 0;
        if (payload == NULL)
            return -1;
        /* A '\n' would end the line early; a final '\r' would be taken for "\r\n" and lost. */
        if (memchr(payload, '\n', len) != NULL || ((const uint8_t *)payload)[len - 1] == '\r')
            return -1;
        return 0;
    case IOCP_FRAMING_LENGTH:
        if (max_message != 0 && len > (size_t)max_message)
            return -1;
        return (uint64_t)len <= UINT32_MAX ? 0 : -1;
    }
    return -1;
}

size_t iocp_frame_prefix(iocp_framing mode, size_t len, uint8_t out[IOCP_LENGTH_HEADER_SIZE])
{
    /* Precondition: iocp_frame_check accepted len; a length past UINT32_MAX writes nothing. */
    if (mode != IOCP_FRAMING_LENGTH || (uint64_t)len > UINT32_MAX)
        return 0;
    uint32_t v = (uint32_t)len;
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
    return IOCP_LENGTH_HEADER_SIZE;
}

const uint8_t *iocp_frame_suffix(iocp_framing mode, size_t *suffix_len)
{
    static const uint8_t newline[] = {'\n', 0};
    if (mode == IOCP_FRAMING_LINE) {
        if (suffix_len != NULL)
            *suffix_len = 1;
        return newline;
    }
    if (suffix_len != NULL)
        *suffix_len = 0;
    return newline + 1;
}

size_t iocp_frame_size(iocp_framing mode, size_t len, int *overflow)
{
    size_t extra = mode == IOCP_FRAMING_LINE     ? 1
                   : mode == IOCP_FRAMING_LENGTH ? IOCP_LENGTH_HEADER_SIZE
                                                 : 0;
    if (len > SIZE_MAX - extra) {
        if (overflow != NULL)
            *overflow = 1;
        return 0;
    }
    if (overflow != NULL)
        *overflow = 0;
    return len + extra;
}
