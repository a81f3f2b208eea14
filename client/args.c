/* args.c: the option table, the parser and the help text of iocp-client. */
#include "args.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit_codes.h"

/* The order of this enum is the order of the table below. */
enum opt_id {
    OPT_FRAMING,
    OPT_TIMEOUT,
    OPT_FILE,
    OPT_MAX_MESSAGE,
    OPT_RECONNECT,
    OPT_BACKOFF,
    OPT_BACKOFF_MAX,
    OPT_ATTEMPTS,
    OPT_TLS,
    OPT_TLS_CA,
    OPT_TLS_INSECURE,
    OPT_TLS_SERVER_NAME,
    OPT_TLS_MIN_VERSION,
    OPT_TLS_CLIENT_PFX,
    OPT_TLS_CLIENT_PASSWORD,
    OPT_TLS_REVOCATION,
    OPT_UDP,
    OPT_RETRIES,
    OPT_LOAD,
    OPT_CONNECTIONS,
    OPT_DEPTH,
    OPT_SIZE,
    OPT_DURATION,
    OPT_MESSAGES,
    OPT_CONNECT_RATE,
    OPT_CHURN,
    OPT_THREADS,
    OPT_JSON,
    OPT_QUIET,
    OPT_HELP,
    OPT_VERSION,
    OPT_COUNT_
};
_Static_assert(OPT_COUNT_ <= 32, "the parser keeps the options seen in a uint32_t");

const client_option client_options[] = {
    [OPT_FRAMING] = {"--framing", "MODE", "raw",
                     "message framing: raw (bytes as they are), line (a '\\n' ends each "
                     "message) or length (4-byte big-endian length first)"},
    [OPT_TIMEOUT] = {"--timeout", "MS", "10000",
                     "connect timeout per address, and the longest wait for an echo to make "
                     "progress"},
    [OPT_FILE] = {"--file", "PATH", "none",
                  "send the contents of PATH as one message ('-' = standard input); "
                  "repeatable, in order with MESSAGE arguments"},
    [OPT_MAX_MESSAGE] = {"--max-message", "BYTES", "1M",
                         "largest echo accepted in line and length modes (raised to fit the "
                         "largest message sent)"},
    [OPT_RECONNECT] = {"--reconnect", NULL, "off",
                       "when the server goes away or refuses, reconnect with exponential "
                       "backoff and jitter, then resend what was not echoed"},
    [OPT_BACKOFF] = {"--backoff", "MS", "100", "first reconnect delay (doubles each attempt)"},
    [OPT_BACKOFF_MAX] = {"--backoff-max", "MS", "5000", "longest reconnect delay"},
    [OPT_ATTEMPTS] = {"--attempts", "N", "10",
                      "failed reconnect attempts in a row before giving up; 0 = never"},
    [OPT_TLS] = {"--tls", NULL, "off",
                 "TLS (Schannel): the server's certificate is checked against the system's "
                 "roots and the server name"},
    [OPT_TLS_CA] =
        {"--tls-ca", "FILE", "none",
         "with --tls: trust only the CA certificates in FILE (PEM or DER), not the system's roots"},
    [OPT_TLS_INSECURE] = {"--tls-insecure", NULL, "off",
                          "with --tls: accept any certificate (tests only: no protection)"},
    [OPT_TLS_SERVER_NAME] = {"--tls-server-name", "NAME", "HOST",
                             "with --tls: the name sent (SNI) and checked in the certificate"},
    [OPT_TLS_MIN_VERSION] = {"--tls-min-version", "1.0|1.1|1.2", "1.2",
                             "with --tls: the oldest TLS the server may choose; below it, or "
                             "with a suite without forward secrecy (or CBC on TLS 1.2), the "
                             "handshake is refused (exit 8)"},
    [OPT_TLS_CLIENT_PFX] = {"--tls-client-pfx", "FILE", "none",
                            "with --tls: present the certificate and key in this PFX file when "
                            "the server asks for one (without it: none is sent)"},
    [OPT_TLS_CLIENT_PASSWORD] = {"--tls-client-password", "TEXT", "-",
                                 "the client PFX's password; '-' (the default): asked for "
                                 "with echo off on a console, else one line of standard "
                                 "input; TEXT on the command line is discouraged"},
    [OPT_TLS_REVOCATION] = {"--tls-revocation", "off|soft|hard", "soft",
                            "with --tls: revocation of the server's chain, from the system's "
                            "cache only (never a network wait); soft refuses a certificate "
                            "known revoked, hard also one whose status is unknown"},
    [OPT_UDP] = {"--udp", NULL, "off",
                 "UDP: one datagram per MESSAGE (or per load payload), each answer awaited "
                 "--timeout ms"},
    [OPT_RETRIES] = {"--retries", "N", "2",
                     "UDP: a datagram without an answer is sent again up to N times (loss), "
                     "then exit 9"},
    [OPT_LOAD] = {"--load", NULL, "off", "load mode: many connections echo generated payloads"},
    [OPT_CONNECTIONS] = {"--connections", "N", "10", "load: connections"},
    [OPT_DEPTH] = {"--depth", "D", "1", "load: messages in flight per connection"},
    [OPT_SIZE] = {"--size", "BYTES", "64",
                  "load: payload bytes per message (k, M, G suffixes: binary multiples)"},
    [OPT_DURATION] = {"--duration", "SECONDS", "10",
                      "load: how long to send (default only when --messages is not given)"},
    [OPT_MESSAGES] = {"--messages", "COUNT", "0",
                      "load: stop after COUNT echoes in all (0 = run for --duration)"},
    [OPT_CONNECT_RATE] = {"--connect-rate", "R", "0",
                          "load: new connections per second (0 = all at once)"},
    [OPT_CHURN] = {"--churn", NULL, "off",
                   "load: each connection connects, echoes one message, closes, repeats"},
    [OPT_THREADS] = {"--threads", "N", "0", "load: engine worker threads (0 = one per CPU)"},
    [OPT_JSON] = {"--json", NULL, "off", "load: print the summary as one JSON object"},
    [OPT_QUIET] = {"--quiet", NULL, "off", "load: no progress line every second"},
    [OPT_HELP] = {"--help", NULL, "", "show this help (also -h)"},
    [OPT_VERSION] = {"--version", NULL, "", "show the version"},
};

const size_t client_option_count = OPT_COUNT_;

void client_args_init(client_args *args)
{
    memset(args, 0, sizeof *args);
    args->mode = CLIENT_MODE_INTERACTIVE;
    args->framing = IOCP_FRAMING_RAW;
    args->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
    args->backoff_ms = CLIENT_DEFAULT_BACKOFF_MS;
    args->backoff_max_ms = CLIENT_DEFAULT_BACKOFF_MAX_MS;
    args->attempts = CLIENT_DEFAULT_ATTEMPTS;
    args->max_message = IOCP_DEFAULT_MAX_MESSAGE;
    args->connections = CLIENT_DEFAULT_CONNECTIONS;
    args->depth = CLIENT_DEFAULT_DEPTH;
    args->size = CLIENT_DEFAULT_SIZE;
    args->retries = CLIENT_DEFAULT_RETRIES;
}

void client_args_free(client_args *args)
{
    free(args->messages);
    args->messages = NULL;
    args->message_count = 0;
}

static int set_err(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return -1;
}

int client_parse_size(const char *text, uint64_t *out)
{
    if (text == NULL || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        return -1;
    }
    if (*end != '\0') {
        end++;
        if (*end == 'i' || *end == 'I') /* "64KiB" reads as 64k too */
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end != '\0')
            return -1;
    }
    if (shift > 0 && v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    if (text == NULL || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *text, double min, double max, double *out)
{
    if (text == NULL || *text == '\0')
        return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

static int find_option(const char *name, size_t name_len)
{
    if (name_len == 2 && strncmp(name, "-h", 2) == 0)
        return OPT_HELP;
    for (int i = 0; i < OPT_COUNT_; i++) {
        const char *o = client_options[i].name;
        if (strlen(o) == name_len && strncmp(o, name, name_len) == 0)
            return i;
    }
    return -1;
}

/* Applies one option with its value (NULL for flags). */
/* How each option's value is read and where it goes. Numbers are range-checked; the error
 * says what was expected ("'x' is not <what>"). */
typedef enum value_kind {
    V_FLAG,   /* no value: the int field becomes 1 */
    V_U32,    /* a decimal count in [min, max] */
    V_U64,    /* the same, 64-bit */
    V_SIZE,   /* a size with k/M/G suffixes in [min, max], into a uint32_t */
    V_DOUBLE, /* a decimal number in [min, max] */
    V_SPECIAL /* apply_special */
} value_kind;

typedef struct value_rule {
    value_kind kind;
    size_t field; /* offsetof(client_args, ...) */
    double min, max;
    const char *what;
} value_rule;

#define FIELD(f) offsetof(client_args, f)
static const value_rule rules[OPT_COUNT_] = {
    [OPT_FRAMING] = {V_SPECIAL, 0, 0, 0, NULL},
    [OPT_TIMEOUT] = {V_U32, FIELD(timeout_ms), 1, UINT32_MAX - 1, "a number of milliseconds > 0"},
    [OPT_FILE] = {V_SPECIAL, 0, 0, 0, NULL},
    [OPT_MAX_MESSAGE] = {V_SIZE, FIELD(max_message), 1, 0x7fffffff, "a size from 1 to 2G-1"},
    [OPT_RECONNECT] = {V_FLAG, FIELD(reconnect), 0, 0, NULL},
    [OPT_BACKOFF] = {V_U32, FIELD(backoff_ms), 1, 3600000,
                     "a number of milliseconds from 1 to 3600000"},
    [OPT_BACKOFF_MAX] = {V_U32, FIELD(backoff_max_ms), 1, 3600000,
                         "a number of milliseconds from 1 to 3600000"},
    [OPT_ATTEMPTS] = {V_U32, FIELD(attempts), 0, UINT32_MAX, "a count"},
    [OPT_TLS] = {V_FLAG, FIELD(tls), 0, 0, NULL},
    [OPT_TLS_CA] = {V_SPECIAL, 0, 0, 0, NULL},
    [OPT_TLS_INSECURE] = {V_FLAG, FIELD(tls_insecure), 0, 0, NULL},
    [OPT_TLS_SERVER_NAME] = {V_SPECIAL, 0, 0, 0, NULL},
    [OPT_TLS_MIN_VERSION] = {V_SPECIAL, 0, 0, 0, NULL},
    [OPT_TLS_CLIENT_PFX] = {V_SPECIAL, 0, 0, 0, NULL},
    [OPT_TLS_CLIENT_PASSWORD] = {V_SPECIAL, 0, 0, 0, NULL},
    [OPT_TLS_REVOCATION] = {V_SPECIAL, 0, 0, 0, NULL},
    [OPT_UDP] = {V_FLAG, FIELD(udp), 0, 0, NULL},
    [OPT_RETRIES] = {V_U32, FIELD(retries), 0, 100, "a count from 0 to 100"},
    [OPT_LOAD] = {V_SPECIAL, 0, 0, 0, NULL},
    [OPT_CONNECTIONS] = {V_U32, FIELD(connections), 1, 1000000, "a count from 1 to 1000000"},
    [OPT_DEPTH] = {V_U32, FIELD(depth), 1, 65536, "a count from 1 to 65536"},
    [OPT_SIZE] = {V_SIZE, FIELD(size), 0, 1u << 30, "a size from 0 to 1G"},
    [OPT_DURATION] = {V_DOUBLE, FIELD(duration_s), 0.001, 1e7, "a number of seconds > 0"},
    [OPT_MESSAGES] = {V_U64, FIELD(messages_limit), 0, 0, "a count"},
    [OPT_CONNECT_RATE] = {V_DOUBLE, FIELD(connect_rate), 0, 1e9, "a rate >= 0"},
    [OPT_CHURN] = {V_FLAG, FIELD(churn), 0, 0, NULL},
    [OPT_THREADS] = {V_U32, FIELD(threads), 0, 256, "a count from 0 to 256"},
    [OPT_JSON] = {V_FLAG, FIELD(json), 0, 0, NULL},
    [OPT_QUIET] = {V_FLAG, FIELD(quiet), 0, 0, NULL},
    [OPT_HELP] = {V_FLAG, FIELD(help), 0, 0, NULL},
    [OPT_VERSION] = {V_FLAG, FIELD(version), 0, 0, NULL},
};
#undef FIELD

/* The options that are not a plain value in a field. */
static int apply_special(client_args *a, int id, const char *v, char *err, size_t es)
{
    const char *name = client_options[id].name;
    switch (id) {
    case OPT_FRAMING: {
        iocp_framing modes[] = {IOCP_FRAMING_RAW, IOCP_FRAMING_LINE, IOCP_FRAMING_LENGTH};
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
            if (strcmp(v, iocp_framing_name(modes[i])) == 0) {
                a->framing = modes[i];
                return 0;
            }
        }
        return set_err(err, es, "%s: '%s' is not raw, line or length", name, v);
    }
    case OPT_FILE: {
        client_payload *grown = realloc(a->messages, (a->message_count + 1) * sizeof *a->messages);
        if (grown == NULL)
            return set_err(err, es, "out of memory");
        a->messages = grown;
        a->messages[a->message_count].data = NULL;
        a->messages[a->message_count].len = 0;
        a->messages[a->message_count].file = v;
        a->message_count++;
        return 0;
    }
    case OPT_LOAD:
        a->mode = CLIENT_MODE_LOAD;
        return 0;
    case OPT_TLS_MIN_VERSION:
        a->tls_min_version = strcmp(v, "1.0") == 0   ? IOCP_TLS_1_0
                             : strcmp(v, "1.1") == 0 ? IOCP_TLS_1_1
                             : strcmp(v, "1.2") == 0 ? IOCP_TLS_1_2
                                                     : 0;
        if (a->tls_min_version == 0)
            return set_err(err, es, "%s: '%s' is not 1.0, 1.1 or 1.2", name, v);
        return 0;
    case OPT_TLS_REVOCATION:
        a->tls_revocation = strcmp(v, "soft") == 0   ? IOCP_TLS_REVOCATION_SOFT
                            : strcmp(v, "off") == 0  ? IOCP_TLS_REVOCATION_OFF
                            : strcmp(v, "hard") == 0 ? IOCP_TLS_REVOCATION_HARD
                                                     : -1;
        if (a->tls_revocation < 0)
            return set_err(err, es, "%s: '%s' is not off, soft or hard", name, v);
        return 0;
    case OPT_TLS_CA:
    case OPT_TLS_SERVER_NAME:
        if (v[0] == '\0')
            return set_err(err, es, "%s: the value is empty", name);
        if (id == OPT_TLS_CA)
            a->tls_ca = v;
        else
            a->tls_server_name = v;
        return 0;
    case OPT_TLS_CLIENT_PFX:
        if (v[0] == '\0')
            return set_err(err, es, "%s: the value is empty", name);
        a->tls_client_pfx = v;
        return 0;
    case OPT_TLS_CLIENT_PASSWORD:
        a->tls_client_password = v;
        return 0;
    default:
        return set_err(err, es, "internal error: option %d", id);
    }
}

static int apply(client_args *a, int id, const char *v, char *err, size_t es, uint32_t *seen)
{
    const value_rule *r = &rules[id];
    char *field = (char *)a + r->field;
    uint64_t n = 0;
    double d = 0;
    *seen |= 1u << id;
    switch (r->kind) {
    case V_FLAG:
        *(int *)field = 1;
        return 0;
    case V_U32:
        if (parse_u64(v, (uint64_t)r->max, &n) != 0 || n < (uint64_t)r->min)
            break;
        *(uint32_t *)field = (uint32_t)n;
        return 0;
    case V_U64:
        if (parse_u64(v, UINT64_MAX, &n) != 0)
            break;
        *(uint64_t *)field = n;
        return 0;
    case V_SIZE:
        if (client_parse_size(v, &n) != 0 || n < (uint64_t)r->min || n > (uint64_t)r->max)
            break;
        *(uint32_t *)field = (uint32_t)n;
        return 0;
    case V_DOUBLE:
        if (parse_double(v, r->min, r->max, &d) != 0)
            break;
        *(double *)field = d;
        return 0;
    case V_SPECIAL:
        return apply_special(a, id, v, err, es);
    }
    return set_err(err, es, "%s: '%s' is not %s", client_options[id].name, v, r->what);
}

static int add_message(client_args *a, const char *text, char *err, size_t es)
{
    client_payload *grown = realloc(a->messages, (a->message_count + 1) * sizeof *a->messages);
    if (grown == NULL)
        return set_err(err, es, "out of memory");
    a->messages = grown;
    a->messages[a->message_count].data = text;
    a->messages[a->message_count].len = strlen(text);
    a->messages[a->message_count].file = NULL;
    a->message_count++;
    return 0;
}

static int set_host(client_args *a, const char *text, char *err, size_t es)
{
    size_t len = strlen(text);
    if (len == 0)
        return set_err(err, es, "HOST is empty");
    /* "[::1]" as in a URL: the engine wants the bare literal. */
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']' && len - 2 < sizeof a->host_buf) {
        memcpy(a->host_buf, text + 1, len - 2);
        a->host_buf[len - 2] = '\0';
        text = a->host_buf;
    }
    a->host = text;
    return 0;
}

int client_args_parse(int argc, char **argv, client_args *a, char *err, size_t es)
{
    uint32_t seen = 0;
    int positional = 0;
    int options_done = 0;
    if (err != NULL && es > 0)
        err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (!options_done && arg[0] == '-' && arg[1] != '\0') {
            const char *eq = strchr(arg, '=');
            size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
            int id = find_option(arg, name_len);
            if (id < 0)
                return set_err(err, es, "unknown option '%.*s' (see --help)", (int)name_len, arg);
            const char *value = NULL;
            if (client_options[id].value != NULL) {
                if (eq != NULL)
                    value = eq + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else
                    return set_err(err, es, "%s needs a value (%s)", client_options[id].name,
                                   client_options[id].value);
            } else if (eq != NULL) {
                return set_err(err, es, "%s takes no value", client_options[id].name);
            }
            if (apply(a, id, value, err, es, &seen) != 0)
                return -1;
            continue;
        }
        /* Positional: HOST, PORT, then messages. */
        if (positional == 0) {
            if (set_host(a, arg, err, es) != 0)
                return -1;
        } else if (positional == 1) {
            uint64_t port = 0;
            if (parse_u64(arg, 65535, &port) != 0 || port == 0)
                return set_err(err, es, "PORT '%s' is not a number from 1 to 65535", arg);
            a->port = (uint16_t)port;
        } else if (add_message(a, arg, err, es) != 0) {
            return -1;
        }
        positional++;
    }
    if (a->help || a->version)
        return 0;
    if (positional < 2)
        return set_err(err, es, "%s",
                       positional == 0 ? "missing HOST and PORT (see --help)"
                                       : "missing PORT (see --help)");

    const uint32_t load_only = (1u << OPT_CONNECTIONS) | (1u << OPT_DEPTH) | (1u << OPT_SIZE) |
                               (1u << OPT_DURATION) | (1u << OPT_MESSAGES) |
                               (1u << OPT_CONNECT_RATE) | (1u << OPT_CHURN) | (1u << OPT_THREADS) |
                               (1u << OPT_JSON) | (1u << OPT_QUIET);
    if (a->mode == CLIENT_MODE_LOAD) {
        if (a->message_count > 0)
            return set_err(err, es, "--load generates its own payloads: no MESSAGE or --file");
        if (a->size == 0 && a->framing == IOCP_FRAMING_RAW)
            return set_err(err, es,
                           "--size 0 needs --framing line or length (raw has no "
                           "empty message)");
        if ((seen & (1u << OPT_DURATION)) == 0 && a->messages_limit == 0)
            a->duration_s = CLIENT_DEFAULT_DURATION_S;
        if (a->churn)
            a->depth = 1; /* one echo per connection */
    } else {
        for (int id = 0; id < OPT_COUNT_; id++) {
            if ((load_only & seen & (1u << id)) != 0)
                return set_err(err, es, "%s only applies with --load", client_options[id].name);
        }
        a->mode = a->message_count > 0 ? CLIENT_MODE_MESSAGE : CLIENT_MODE_INTERACTIVE;
    }
    const uint32_t tls_only = (1u << OPT_TLS_CA) | (1u << OPT_TLS_INSECURE) |
                              (1u << OPT_TLS_SERVER_NAME) | (1u << OPT_TLS_MIN_VERSION) |
                              (1u << OPT_TLS_CLIENT_PFX) | (1u << OPT_TLS_CLIENT_PASSWORD) |
                              (1u << OPT_TLS_REVOCATION);
    for (int id = 0; !a->tls && id < OPT_COUNT_; id++) {
        if ((tls_only & seen & (1u << id)) != 0)
            return set_err(err, es, "%s only applies with --tls", client_options[id].name);
    }
    if ((seen & (1u << OPT_TLS_CLIENT_PASSWORD)) && a->tls_client_pfx == NULL)
        return set_err(err, es,
                       "--tls-client-password is the password of --tls-client-pfx, which is "
                       "missing");
    if (a->tls_insecure && a->tls_ca != NULL)
        return set_err(err, es,
                       "--tls-insecure checks no certificate: --tls-ca would mean "
                       "nothing with it");
    if ((seen & (1u << OPT_RETRIES)) && !a->udp)
        return set_err(err, es, "--retries only applies with --udp");
    if (a->udp) {
        if (a->tls)
            return set_err(err, es, "--udp and --tls exclude each other (no DTLS)");
        if (a->framing != IOCP_FRAMING_RAW)
            return set_err(err, es, "--udp: a datagram is its own frame (no --framing)");
        if (a->reconnect || a->churn || a->connect_rate > 0)
            return set_err(err, es, "--udp has no connections to re-open or churn");
        if (a->mode == CLIENT_MODE_INTERACTIVE)
            return set_err(err, es, "--udp needs MESSAGE... or --load");
        if (a->mode == CLIENT_MODE_LOAD && (a->size < 16 || a->size > IOCP_UDP_MAX_DATAGRAM))
            return set_err(err, es, "--udp --load: --size must be 16..65507 (a header of 16)");
    }
    if (a->backoff_max_ms < a->backoff_ms)
        a->backoff_max_ms = a->backoff_ms;
    return 0;
}

/* Appends to buf like snprintf, tracking the length it would need. */
static void put(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*len < size ? buf + *len : NULL, *len < size ? size - *len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
}

#define HELP_WIDTH 80

/* Puts text from column `indent` on, breaking lines at spaces before column `width`. */
static void put_wrapped(char *buf, size_t size, size_t *len, const char *text, int indent,
                        int width)
{
    int column = indent;
    while (*text != '\0') {
        const char *end = strchr(text, ' ');
        int word = end ? (int)(end - text) : (int)strlen(text);
        if (column > indent && column + 1 + word > width) {
            put(buf, size, len, "\n%*s", indent - 1, "");
            column = indent;
        }
        put(buf, size, len, " %.*s", word, text);
        column += 1 + word;
        text += word;
        while (*text == ' ')
            text++;
    }
    put(buf, size, len, "\n");
}

size_t client_args_help(char *buf, size_t size)
{
    size_t len = 0;
    if (buf != NULL && size > 0)
        buf[0] = '\0';
    else
        size = 0;
    put(buf, size, &len,
        "usage: iocp-client HOST PORT [options] MESSAGE...  send each message, print its echo\n"
        "       iocp-client HOST PORT [options]             interactive: echo lines from "
        "standard input\n"
        "       iocp-client HOST PORT --load [options]      load generator\n"
        "\n"
        "HOST is a name or an address (localhost, 127.0.0.1, ::1); \"--\" ends the options.\n"
        "\n"
        "options [default]:\n");
    for (int i = 0; i < OPT_COUNT_; i++) {
        const client_option *o = &client_options[i];
        char left[40], text[400];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->value ? " " : "",
                 o->value ? o->value : "");
        if (o->deflt[0] != '\0')
            snprintf(text, sizeof text, "%s [%s]", o->help, o->deflt);
        else
            snprintf(text, sizeof text, "%s", o->help);
        put(buf, size, &len, "  %-22s", left);
        put_wrapped(buf, size, &len, text, 25, HELP_WIDTH);
    }
    put(buf, size, &len,
        "\n"
        "exit codes:\n"
        "  %d ok: every echo matched          %d usage error\n"
        "  %d cannot resolve the host         %d connection refused\n"
        "  %d timed out                       %d connection reset or closed by the server\n"
        "  %d echo mismatch                   %d other error (file, system; the message "
        "says)\n"
        "  %d TLS: the server's certificate failed validation (the message names the chain "
        "error),\n"
        "    or the TLS handshake failed\n"
        "  %d UDP: no answer to a datagram after --retries more tries (or, with --load, to "
        "any)\n"
        "  %d crashed (a bug: please report it with the command line)\n",
        CLIENT_EXIT_OK, CLIENT_EXIT_USAGE, CLIENT_EXIT_RESOLVE, CLIENT_EXIT_REFUSED,
        CLIENT_EXIT_TIMEOUT, CLIENT_EXIT_RESET, CLIENT_EXIT_MISMATCH, CLIENT_EXIT_OTHER,
        CLIENT_EXIT_TLS, CLIENT_EXIT_NO_REPLY, IOCP_CRASH_EXIT_CODE);
    return len;
}
