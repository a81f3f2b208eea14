/*
 * worker_link.c: the private channel between the supervisor and a worker process: two
 * anonymous pipes whose worker ends only that worker inherits (supervisor.c:
 * PROC_THREAD_ATTRIBUTE_HANDLE_LIST), so no other process can open, squat or read it. Text
 * lines; values that may hold spaces or line ends travel as hex.
 */
#include "svc.h"

#include <string.h>

int svc_link_read_line(svc_link_reader *r, char *out, size_t size)
{
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - r->buf);
            if (n >= size)
                return -1;
            memcpy(out, r->buf, n);
            out[n] = '\0';
            r->len -= n + 1;
            memmove(r->buf, nl + 1, r->len);
            return 0;
        }
        if (r->len == sizeof r->buf)
            return -1; /* a line longer than any we send */
        DWORD got = 0;
        if (!ReadFile(r->pipe, r->buf + r->len, (DWORD)(sizeof r->buf - r->len), &got, NULL) ||
            got == 0)
            return -1; /* the other side has gone */
        r->len += got;
    }
}

int svc_link_write(HANDLE pipe, const char *line)
{
    size_t len = strlen(line), done = 0;
    while (done < len) {
        DWORD n = 0;
        if (!WriteFile(pipe, line + done, (DWORD)(len - done), &n, NULL) || n == 0)
            return -1;
        done += n;
    }
    return 0;
}

void svc_link_hex(const void *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

long svc_link_unhex(const char *hex, void *out, size_t size)
{
    size_t n = strlen(hex);
    unsigned char *p = out;
    if (n % 2 != 0 || n / 2 > size)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        p[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

const char *svc_link_word(const char *text, char *out, size_t size)
{
    while (*text == ' ')
        text++;
    size_t n = 0;
    while (text[n] != '\0' && text[n] != ' ')
        n++;
    snprintf(out, size, "%.*s", (int)n, text);
    text += n;
    while (*text == ' ')
        text++;
    return text;
}
