/*
 * interactive.c: iocp-client HOST PORT: each line of standard input is one message; its echo is
 * printed as it comes back. Raw mode sends the line as read (with its '\n'); line and length
 * modes send it without the line end (a '\r' before the '\n' is dropped too) and print the
 * echo followed by '\n'. Ends cleanly at the end of input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modes.h"

#include "exit_codes.h"
#include "session.h"
#include "sys.h"

/* Reads one line, '\n' included when present (NUL bytes are data like any other). Returns 1
 * with a line, 0 at the end of input, -1 when the line grew past max bytes or memory ran out. */
static int read_line(FILE *in, char **buf, size_t *cap, size_t *len, size_t max)
{
    *len = 0;
    for (;;) {
        int c = getc(in);
        if (c == EOF)
            return *len > 0 ? 1 : 0;
        if (*len == *cap) {
            size_t grown_cap = *cap ? *cap * 2 : 4096;
            char *grown = *len < max ? realloc(*buf, grown_cap) : NULL;
            if (grown == NULL)
                return -1;
            *buf = grown;
            *cap = grown_cap;
        }
        (*buf)[(*len)++] = (char)c;
        if (c == '\n')
            return 1;
    }
}

int client_run_interactive(const client_args *a)
{
    size_t max = a->max_message;
    /* Echoes reach a console filtered, a file or a pipe exact (client_write_echo). */
    int console = client_stdout_is_console();
    session *s = NULL;
    int rc = session_open(a, max + 2, &s);
    if (rc != CLIENT_EXIT_OK)
        return rc;

    char *line = NULL;
    size_t cap = 0, len = 0, count = 0;
    for (;;) {
        int got = read_line(stdin, &line, &cap, &len, max + 2);
        if (got == 0)
            break;
        count++;
        if (got < 0) {
            client_errorf("line %zu is longer than --max-message (%zu bytes)", count, max);
            rc = CLIENT_EXIT_USAGE;
            break;
        }
        size_t send_len = len;
        if (a->framing != IOCP_FRAMING_RAW) {
            if (send_len > 0 && line[send_len - 1] == '\n')
                send_len--;
            if (send_len > 0 && line[send_len - 1] == '\r')
                send_len--;
        }
        if (send_len > max) {
            client_errorf("line %zu is longer than --max-message (%zu bytes)", count, max);
            rc = CLIENT_EXIT_USAGE;
            break;
        }
        const uint8_t *echo = NULL;
        size_t echo_len = 0;
        int step = session_exchange(s, (const uint8_t *)line, send_len, &echo, &echo_len);
        if (step != CLIENT_EXIT_OK) {
            rc = step;
            break;
        }
        if (echo_len > 0)
            client_write_echo(stdout, echo, echo_len, console);
        if (a->framing != IOCP_FRAMING_RAW)
            fputc('\n', stdout);
        fflush(stdout);
        step = session_check_echo(s, count, (const uint8_t *)line, send_len, echo, echo_len);
        if (step != CLIENT_EXIT_OK && rc == CLIENT_EXIT_OK)
            rc = step;
    }
    free(line);
    int closed = session_close(s);
    if (rc == CLIENT_EXIT_OK)
        rc = closed;
    return rc;
}
