/* message_mode.c: iocp-client HOST PORT MESSAGE... (and --file): one echo per message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modes.h"

#include "exit_codes.h"
#include "session.h"
#include "sys.h"

typedef struct message {
    const uint8_t *data;
    size_t len;
    uint8_t *owned; /* file contents, freed at the end */
} message;

static void free_messages(message *m, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(m[i].owned);
    free(m);
}

/* Loads --file payloads and checks that each message can be framed. */
static int load_messages(const client_args *a, message **out, size_t *largest)
{
    message *m = calloc(a->message_count, sizeof *m);
    if (m == NULL) {
        client_errorf("out of memory");
        return CLIENT_EXIT_OTHER;
    }
    *largest = 0;
    for (size_t i = 0; i < a->message_count; i++) {
        const client_payload *p = &a->messages[i];
        if (p->file != NULL) {
            char err[512];
            if (client_read_file(p->file, &m[i].owned, &m[i].len, err, sizeof err) != 0) {
                client_errorf("%s", err);
                free_messages(m, a->message_count);
                return CLIENT_EXIT_OTHER;
            }
            m[i].data = m[i].owned;
        } else {
            m[i].data = (const uint8_t *)p->data;
            m[i].len = p->len;
        }
        if (a->framing == IOCP_FRAMING_LINE && memchr(m[i].data, '\n', m[i].len) != NULL) {
            client_errorf("message %zu contains a newline, which line framing cannot carry "
                          "(use --framing raw or length)",
                          i + 1);
            free_messages(m, a->message_count);
            return CLIENT_EXIT_USAGE;
        }
        if (a->framing != IOCP_FRAMING_RAW && (uint64_t)m[i].len > 0x7fffffffu) {
            client_errorf("message %zu is %zu bytes; %s framing carries at most 2 GiB - 1", i + 1,
                          m[i].len, iocp_framing_name(a->framing));
            free_messages(m, a->message_count);
            return CLIENT_EXIT_USAGE;
        }
        if (m[i].len > *largest)
            *largest = m[i].len;
    }
    *out = m;
    return CLIENT_EXIT_OK;
}

int client_run_message(const client_args *a)
{
    message *msgs = NULL;
    size_t largest = 0;
    int rc = load_messages(a, &msgs, &largest);
    if (rc != CLIENT_EXIT_OK)
        return rc;

    /* Echoes reach a console filtered, a file or a pipe exact (client_write_echo). */
    int console = client_stdout_is_console();
    session *s = NULL;
    rc = session_open(a, largest, &s);
    if (rc != CLIENT_EXIT_OK) {
        free_messages(msgs, a->message_count);
        return rc;
    }
    for (size_t i = 0; i < a->message_count; i++) {
        const uint8_t *echo = NULL;
        size_t echo_len = 0;
        int step = session_exchange(s, msgs[i].data, msgs[i].len, &echo, &echo_len);
        if (step != CLIENT_EXIT_OK) {
            if (rc == CLIENT_EXIT_OK)
                rc = step;
            break; /* the connection is gone: the rest cannot be sent */
        }
        if (echo_len > 0)
            client_write_echo(stdout, echo, echo_len, console);
        fputc('\n', stdout);
        fflush(stdout);
        step = session_check_echo(s, i + 1, msgs[i].data, msgs[i].len, echo, echo_len);
        if (step != CLIENT_EXIT_OK && rc == CLIENT_EXIT_OK)
            rc = step;
    }
    int closed = session_close(s);
    if (rc == CLIENT_EXIT_OK)
        rc = closed;
    free_messages(msgs, a->message_count);
    return rc;
}
