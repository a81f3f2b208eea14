/* status_proto.c: the status pipe's requests and answers (see status_proto.h). */
#include "status_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

svc_request svc_proto_parse_request(const char *buf, size_t len)
{
    static const struct {
        const char *word;
        svc_request req;
    } words[] = {{"PING", SVC_REQ_PING},
                 {"INFO", SVC_REQ_INFO},
                 {"STATS", SVC_REQ_STATS},
                 {"DRAIN", SVC_REQ_DRAIN}};

    if (buf == NULL || len == 0 || len > SVC_PROTO_REQUEST_MAX)
        return SVC_REQ_MALFORMED;
    /* One optional line end, nothing else around the word. */
    if (buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i].word);
        if (len == n && memcmp(buf, words[i].word, n) == 0)
            return words[i].req;
    }
    return SVC_REQ_MALFORMED;
}

/* Appends with snprintf and keeps the running length inside the buffer. */
static void put(char *out, size_t size, size_t *len, const char *key, unsigned long long v)
{
    if (*len >= size)
        return;
    int n = snprintf(out + *len, size - *len, "%s=%llu\n", key, v);
    if (n > 0)
        *len += (size_t)n < size - *len ? (size_t)n : size - *len - 1;
}

static void put_text(char *out, size_t size, size_t *len, const char *key, const char *v)
{
    if (*len >= size)
        return;
    /* Values are single-line by construction; a stray line break would split a record. */
    char clean[128];
    size_t i = 0;
    for (; v[i] != '\0' && i + 1 < sizeof clean; i++)
        clean[i] = (v[i] == '\n' || v[i] == '\r') ? ' ' : v[i];
    clean[i] = '\0';
    int n = snprintf(out + *len, size - *len, "%s=%s\n", key, clean);
    if (n > 0)
        *len += (size_t)n < size - *len ? (size_t)n : size - *len - 1;
}

size_t svc_proto_format(svc_request req, const svc_status_info *info, char *out, size_t size)
{
    size_t len = 0;
    if (size == 0)
        return 0;
    if (size < 4) {
        out[0] = '\0';
        return 0;
    }
    memcpy(out, "OK\n", 4);
    len = 3;
    if (req == SVC_REQ_PING)
        return len;
    put_text(out, size, &len, "name", info->name);
    put_text(out, size, &len, "mode", info->mode);
    put_text(out, size, &len, "address", info->address);
    put(out, size, &len, "pid", info->pid);
    put(out, size, &len, "draining", (unsigned long long)info->draining);
    put(out, size, &len, "uptime_ms", info->uptime_ms);
    put(out, size, &len, "tls", (unsigned long long)info->tls);
    if (info->tls)
        put_text(out, size, &len, "tls_source", info->tls_source);
    /* Keys added later (udp...): an older client ignores them. */
    put(out, size, &len, "udp", (unsigned long long)info->udp);
    if (info->udp)
        put_text(out, size, &len, "udp_address", info->udp_address);
    if (req == SVC_REQ_STATS) {
        put(out, size, &len, "active", info->active);
        put(out, size, &len, "accepted", info->accepted);
        put(out, size, &len, "rejected", info->rejected);
        put(out, size, &len, "bytes_in", info->bytes_in);
        put(out, size, &len, "bytes_out", info->bytes_out);
        put(out, size, &len, "messages_in", info->messages_in);
        put(out, size, &len, "messages_out", info->messages_out);
        put(out, size, &len, "protocol_errors", info->protocol_errors);
        put(out, size, &len, "tls_handshakes", info->tls_handshakes);
        put(out, size, &len, "tls_failures", info->tls_failures);
        put(out, size, &len, "tls_below_floor", info->tls_below_floor);
        if (info->udp) {
            put(out, size, &len, "udp_datagrams_in", info->udp_datagrams_in);
            put(out, size, &len, "udp_datagrams_out", info->udp_datagrams_out);
            put(out, size, &len, "udp_bytes_in", info->udp_bytes_in);
            put(out, size, &len, "udp_bytes_out", info->udp_bytes_out);
            put(out, size, &len, "udp_dropped", info->udp_dropped);
            put(out, size, &len, "udp_truncated", info->udp_truncated);
            put(out, size, &len, "udp_errors", info->udp_errors);
        }
        put(out, size, &len, "rejected_rate", info->rejected_rate);
        put(out, size, &len, "evicted", info->evicted);
        if (info->udp) {
            put(out, size, &len, "udp_refused_port", info->udp_refused_port);
            put(out, size, &len, "udp_refused_self", info->udp_refused_self);
            put(out, size, &len, "udp_refused_address", info->udp_refused_address);
            put(out, size, &len, "udp_rate_limited", info->udp_rate_limited);
            put(out, size, &len, "udp_capped", info->udp_capped);
            put(out, size, &len, "udp_refused_loop", info->udp_refused_loop);
        }
    }
    return len;
}

size_t svc_proto_format_error(const char *reason, char *out, size_t size)
{
    int n = snprintf(out, size, "ERR %s\n", reason);
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static void copy_text(char *dst, size_t size, const char *s, size_t len)
{
    if (len >= size)
        len = size - 1;
    memcpy(dst, s, len);
    dst[len] = '\0';
}

int svc_proto_parse_answer(const char *text, size_t len, svc_status_info *out, char *err,
                           size_t err_size)
{
    static const struct {
        const char *key;
        size_t offset;
    } numbers[] = {
        {"uptime_ms", offsetof(svc_status_info, uptime_ms)},
        {"active", offsetof(svc_status_info, active)},
        {"accepted", offsetof(svc_status_info, accepted)},
        {"rejected", offsetof(svc_status_info, rejected)},
        {"bytes_in", offsetof(svc_status_info, bytes_in)},
        {"bytes_out", offsetof(svc_status_info, bytes_out)},
        {"messages_in", offsetof(svc_status_info, messages_in)},
        {"messages_out", offsetof(svc_status_info, messages_out)},
        {"protocol_errors", offsetof(svc_status_info, protocol_errors)},
        {"tls_handshakes", offsetof(svc_status_info, tls_handshakes)},
        {"tls_failures", offsetof(svc_status_info, tls_failures)},
        {"tls_below_floor", offsetof(svc_status_info, tls_below_floor)},
        {"udp_datagrams_in", offsetof(svc_status_info, udp_datagrams_in)},
        {"udp_datagrams_out", offsetof(svc_status_info, udp_datagrams_out)},
        {"udp_bytes_in", offsetof(svc_status_info, udp_bytes_in)},
        {"udp_bytes_out", offsetof(svc_status_info, udp_bytes_out)},
        {"udp_dropped", offsetof(svc_status_info, udp_dropped)},
        {"udp_truncated", offsetof(svc_status_info, udp_truncated)},
        {"udp_errors", offsetof(svc_status_info, udp_errors)},
        {"rejected_rate", offsetof(svc_status_info, rejected_rate)},
        {"evicted", offsetof(svc_status_info, evicted)},
        {"udp_refused_port", offsetof(svc_status_info, udp_refused_port)},
        {"udp_refused_self", offsetof(svc_status_info, udp_refused_self)},
        {"udp_refused_address", offsetof(svc_status_info, udp_refused_address)},
        {"udp_rate_limited", offsetof(svc_status_info, udp_rate_limited)},
        {"udp_capped", offsetof(svc_status_info, udp_capped)},
        {"udp_refused_loop", offsetof(svc_status_info, udp_refused_loop)},
    };

    memset(out, 0, sizeof *out);
    if (len >= 4 && memcmp(text, "ERR ", 4) == 0) {
        size_t n = 4;
        while (n < len && text[n] != '\n')
            n++;
        snprintf(err, err_size, "the instance answered: %.*s", (int)(n - 4), text + 4);
        return -1;
    }
    if (len < 3 || memcmp(text, "OK\n", 3) != 0) {
        snprintf(err, err_size, "garbled answer (%zu bytes)", len);
        return -1;
    }
    size_t pos = 3;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        if (end == len) {
            snprintf(err, err_size, "garbled answer: a line without its end");
            return -1;
        }
        const char *line = text + pos;
        size_t line_len = end - pos;
        const char *eq = memchr(line, '=', line_len);
        if (eq == NULL) {
            snprintf(err, err_size, "garbled answer: a line without '='");
            return -1;
        }
        size_t key_len = (size_t)(eq - line);
        const char *value = eq + 1;
        size_t value_len = line_len - key_len - 1;
        uint64_t v = 0;
#define KEY_IS(k) (key_len == strlen(k) && memcmp(line, k, key_len) == 0)
        if (KEY_IS("name")) {
            copy_text(out->name, sizeof out->name, value, value_len);
        } else if (KEY_IS("mode")) {
            copy_text(out->mode, sizeof out->mode, value, value_len);
        } else if (KEY_IS("address")) {
            copy_text(out->address, sizeof out->address, value, value_len);
        } else if (KEY_IS("pid")) {
            if (parse_u64(value, value_len, &v) != 0 || v > UINT32_MAX)
                goto bad_number;
            out->pid = (uint32_t)v;
        } else if (KEY_IS("draining")) {
            if (parse_u64(value, value_len, &v) != 0)
                goto bad_number;
            out->draining = v != 0;
        } else if (KEY_IS("tls")) {
            if (parse_u64(value, value_len, &v) != 0)
                goto bad_number;
            out->tls = v != 0;
        } else if (KEY_IS("tls_source")) {
            copy_text(out->tls_source, sizeof out->tls_source, value, value_len);
        } else if (KEY_IS("udp")) {
            if (parse_u64(value, value_len, &v) != 0)
                goto bad_number;
            out->udp = v != 0;
        } else if (KEY_IS("udp_address")) {
            copy_text(out->udp_address, sizeof out->udp_address, value, value_len);
        } else {
            for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
                if (KEY_IS(numbers[i].key)) {
                    if (parse_u64(value, value_len, &v) != 0)
                        goto bad_number;
                    memcpy((char *)out + numbers[i].offset, &v, sizeof v);
                    break;
                }
            }
        }
#undef KEY_IS
        pos = end + 1;
        continue;
    bad_number:
        snprintf(err, err_size, "garbled answer: '%.*s' is not a number", (int)line_len, line);
        return -1;
    }
    return 0;
}
