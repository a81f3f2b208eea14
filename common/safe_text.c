/* safe_text.c: control characters out of foreign text before a console sees it. */
#include "safe_text.h"

#include <string.h>

size_t safe_text(const char *in, size_t len, char *out, size_t out_size, int flags)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < len && o < out_size; i++) {
        unsigned char c = p[i];
        char put = (char)c;
        if (c == 0xC2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F) {
            put = SAFE_TEXT_REPLACEMENT; /* a C1 control in UTF-8: both bytes go */
            i++;
        } else if (c == '\n') {
            if (!(flags & SAFE_TEXT_KEEP_LINES))
                put = SAFE_TEXT_REPLACEMENT;
        } else if (c == '\r') {
            /* Only as half of "\r\n": a lone CR returns to the line's start and overwrites. */
            if (!(flags & SAFE_TEXT_KEEP_LINES) || i + 1 >= len || p[i + 1] != '\n')
                put = SAFE_TEXT_REPLACEMENT;
        } else if ((c < 0x20 && c != '\t') || c == 0x7F) {
            put = SAFE_TEXT_REPLACEMENT;
        }
        out[o++] = put;
    }
    return o;
}

char *safe_text_str(char *s, int flags)
{
    size_t len = strlen(s);
    size_t n = safe_text(s, len, s, len, flags);
    s[n] = '\0';
    return s;
}
