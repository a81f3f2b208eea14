/*
 * args.h: iocp-client's command line: one table of options (the help text is printed from it,
 * so every option shows its default), the parser, and the parsed result.
 *
 * Plain C11: no Win32, so the parser is unit-tested without the engine.
 */
#ifndef CLIENT_ARGS_H
#define CLIENT_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "iocp/framing.h"

typedef enum client_mode {
    CLIENT_MODE_MESSAGE = 0, /* HOST PORT MESSAGE... or --file */
    CLIENT_MODE_INTERACTIVE, /* HOST PORT: lines from standard input */
    CLIENT_MODE_LOAD         /* HOST PORT --load */
} client_mode;

/* One message of message mode, in command-line order: literal text or a file's contents. */
typedef struct client_payload {
    const char *data; /* points into argv; NULL for a file */
    size_t len;
    const char *file; /* --file PATH ("-" = standard input); NULL for literal text */
} client_payload;

typedef struct client_args {
    const char *host; /* as given, or host_buf: "[::1]" without its brackets */
    char host_buf[256];
    uint16_t port;
    client_mode mode;

    iocp_framing framing;
    uint32_t timeout_ms;
    int reconnect;
    uint32_t backoff_ms, backoff_max_ms;
    uint32_t attempts; /* failed reconnects in a row before giving up; 0 = never */
    uint32_t max_message;

    /* TLS (every mode): the engine's config.tls client role */
    int tls;
    const char *tls_ca;          /* --tls-ca FILE (argv), NULL = the system's roots only */
    int tls_insecure;            /* accept any certificate */
    const char *tls_server_name; /* SNI and the name checked; NULL = HOST */
    uint16_t tls_min_version;    /* --tls-min-version: IOCP_TLS_1_x; 0 = the engine's (1.2) */
    const char *tls_client_pfx;  /* --tls-client-pfx FILE (argv), NULL = no client certificate */
    const char *tls_client_password; /* --tls-client-password TEXT, NULL or "-" = from stdin */
    int tls_revocation;              /* --tls-revocation: IOCP_TLS_REVOCATION_* (0 = soft) */

    /* UDP (message and load modes): datagrams instead of a connection */
    int udp;
    uint32_t retries; /* sends again of an unanswered datagram */

    /* message mode; the array is owned (client_args_free) */
    client_payload *messages;
    size_t message_count;

    /* load mode */
    uint32_t connections;
    uint32_t depth;
    uint32_t size;
    double duration_s;       /* 0 when only --messages bounds the run */
    uint64_t messages_limit; /* 0 = bounded by duration only */
    double connect_rate;     /* connections per second; 0 = all at once */
    int churn;
    uint32_t threads;
    int json;
    int quiet;

    int help;
    int version;
} client_args;

/* Defaults, as the help text shows them. */
#define CLIENT_DEFAULT_TIMEOUT_MS     10000u
#define CLIENT_DEFAULT_BACKOFF_MS     100u
#define CLIENT_DEFAULT_BACKOFF_MAX_MS 5000u
#define CLIENT_DEFAULT_ATTEMPTS       10u
#define CLIENT_DEFAULT_CONNECTIONS    10u
#define CLIENT_DEFAULT_DEPTH          1u
#define CLIENT_DEFAULT_SIZE           64u
#define CLIENT_DEFAULT_DURATION_S     10.0
#define CLIENT_DEFAULT_RETRIES        2u

typedef struct client_option {
    const char *name;  /* "--framing" */
    const char *value; /* "MODE", or NULL for a flag */
    const char *deflt; /* shown in the help as [default] */
    const char *help;
} client_option;

extern const client_option client_options[];
extern const size_t client_option_count;

void client_args_init(client_args *args);
/* Parses argv[1..argc-1]. Returns 0, or -1 with a one-line reason in err (usage error). */
int client_args_parse(int argc, char **argv, client_args *args, char *err, size_t err_size);
void client_args_free(client_args *args);

/* The help text (usage, every option with its default, the exit codes). Returns the length it
 * needs, like snprintf. */
size_t client_args_help(char *buf, size_t size);

/* "123", "64k", "10M", "1g" (binary multiples). Returns 0 or -1. Exposed for the tests. */
int client_parse_size(const char *text, uint64_t *out);

#endif
