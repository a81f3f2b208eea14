/*
 * safe_text.h: text that came from another process or the network, made safe to print on a
 * console. Shared by iocp-client (echoes) and iocp-service (what `status` and `start` read
 * from an instance's pipe). Plain C11, no Win32, so it is unit-tested on its own.
 *
 * Why: a console interprets control characters. ESC starts a VT sequence (Windows 10's
 * console runs them when virtual terminal processing is on: recolour, move the cursor, set
 * the window title, on some terminals answer back into the input), a lone CR or BS writes
 * over what was printed, and the C1 controls U+0080..U+009F (CSI is U+009B) act like ESC
 * sequences on terminals that honour them. Printed from another process, any of these lets it
 * forge or hide what an administrator reads.
 */
#ifndef IOCP_SAFE_TEXT_H
#define IOCP_SAFE_TEXT_H

#include <stddef.h>

/* What safe_text keeps besides printable text and tab. */
enum {
    SAFE_TEXT_ONE_LINE = 0,  /* a value printed inside a line: every line break is replaced */
    SAFE_TEXT_KEEP_LINES = 1 /* '\n' and a "\r\n" pair are kept (an echo of typed lines) */
};

/* The character a control is replaced with: visible, one byte, never a control itself. */
#define SAFE_TEXT_REPLACEMENT '?'

/* Copies in[0..len) to out, replacing C0 controls (0x00-0x1F) except '\t' (and line ends
 * when flags say so), DEL (0x7F), and the C1 controls as UTF-8 encodes them (0xC2 0x80-0x9F,
 * two bytes, one replacement) with SAFE_TEXT_REPLACEMENT. Other bytes, UTF-8 letters
 * included, pass unchanged. out may be in (the result is never longer). Returns the output
 * length; out_size must be at least len (nothing is written past out_size). */
size_t safe_text(const char *in, size_t len, char *out, size_t out_size, int flags);

/* The same on a NUL-terminated string, in place. Returns s. */
char *safe_text_str(char *s, int flags);

#endif
