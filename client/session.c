/*
 * session.c: one connection used synchronously (see session.h).
 *
 * The engine's worker calls the handlers below; the main thread waits on a condition variable
 * for the state they change. Everything in the "under lock" part of the struct is touched
 * only with the lock held; the main thread never calls the engine with the lock held.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stdlib.h>
#include <string.h>

#include "session.h"

#include "backoff.h"
#include "exit_codes.h"
#include "sys.h"
#include "tls_client.h"

#include "iocp/iocp.h"

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_OPEN, CONN_CLOSED };

/* Allocated by session_open, freed by session_close. */
struct session {
    const client_args *args;
    iocp_engine *engine;
    char where[300]; /* "host:port" for messages */
    int framed;      /* line or length: the engine delivers whole messages */
    uint64_t rng;
    client_tls_log tls_log;
    CRITICAL_SECTION lock;
    CONDITION_VARIABLE changed;

    /* under lock */
    enum conn_state state;
    iocp_conn_id id;
    int connect_failed;
    iocp_err fail_err;
    unsigned long fail_sys;
    iocp_close_reason close_reason;
    unsigned long close_sys;
    int expecting;     /* a message was sent and its echo is awaited */
    size_t expect_len; /* raw mode: bytes awaited */
    uint8_t *echo;     /* the echo so far (raw) or the echoed message (framed) */
    size_t echo_len, echo_cap;
    int echo_done;
    int no_memory;
    uint64_t unexpected; /* bytes that arrived when no echo was awaited */
    uint64_t last_progress_ms;
};

/* ---- handlers, on an engine worker ----------------------------------------------------- */

static session *session_of_conn(iocp_conn *conn)
{
    return iocp_engine_user(iocp_conn_engine(conn));
}

/* Entered from CONN_CONNECTING: the dial succeeded. */
static void on_open(iocp_conn *conn)
{
    session *s = session_of_conn(conn);
    EnterCriticalSection(&s->lock);
    s->state = CONN_OPEN;
    s->id = iocp_conn_get_id(conn);
    WakeAllConditionVariable(&s->changed);
    LeaveCriticalSection(&s->lock);
}

/* Entered from CONN_CONNECTING: every address failed. */
static void on_connect_failed(iocp_engine *engine, void *user, iocp_err err, unsigned long sys_code)
{
    (void)engine;
    session *s = user;
    EnterCriticalSection(&s->lock);
    s->state = CONN_CLOSED;
    s->connect_failed = 1;
    s->fail_err = err;
    s->fail_sys = sys_code;
    WakeAllConditionVariable(&s->changed);
    LeaveCriticalSection(&s->lock);
}

static int echo_append(session *s, const void *data, size_t len)
{
    if (s->echo_len + len > s->echo_cap) {
        size_t cap = s->echo_cap ? s->echo_cap : 4096;
        while (cap < s->echo_len + len)
            cap = cap <= SIZE_MAX / 2 ? cap * 2 : s->echo_len + len;
        uint8_t *grown = realloc(s->echo, cap);
        if (grown == NULL)
            return -1;
        s->echo = grown;
        s->echo_cap = cap;
    }
    if (len > 0)
        memcpy(s->echo + s->echo_len, data, len);
    s->echo_len += len;
    return 0;
}

/* Entered in CONN_OPEN: raw bytes, or one whole message in line and length modes. */
static void on_data(iocp_conn *conn, const void *data, size_t len)
{
    session *s = session_of_conn(conn);
    EnterCriticalSection(&s->lock);
    s->last_progress_ms = client_now_ms();
    if (!s->expecting || (s->framed && s->echo_done)) {
        s->unexpected += s->framed && len == 0 ? 1 : len;
    } else if (echo_append(s, data, len) != 0) {
        s->no_memory = 1;
        WakeAllConditionVariable(&s->changed);
    } else if (s->framed || s->echo_len >= s->expect_len) {
        s->echo_done = 1;
        WakeAllConditionVariable(&s->changed);
    }
    LeaveCriticalSection(&s->lock);
}

/* Entered from CONN_OPEN (any close), once per on_open. */
static void on_close(iocp_conn *conn, iocp_close_reason reason, unsigned long sys_code)
{
    session *s = session_of_conn(conn);
    EnterCriticalSection(&s->lock);
    if (iocp_conn_get_id(conn) == s->id) {
        s->state = CONN_CLOSED;
        s->close_reason = reason;
        s->close_sys = sys_code;
        WakeAllConditionVariable(&s->changed);
    }
    LeaveCriticalSection(&s->lock);
}

static const iocp_handlers session_handlers = {on_open, on_data, on_close, on_connect_failed};

/* ---- main thread ----------------------------------------------------------------------- */

/* Waits with the lock held until the state is not `state` or timeout_ms passes. */
static void wait_while_state(session *s, enum conn_state state, uint32_t timeout_ms)
{
    uint64_t deadline = client_now_ms() + timeout_ms;
    while (s->state == state) {
        uint64_t now = client_now_ms();
        if (now >= deadline)
            break;
        SleepConditionVariableCS(&s->changed, &s->lock, (DWORD)(deadline - now));
    }
}

/* Dials until connected or the reconnect policy gives up. `attempt` counts failures so far
 * (losses included), so the backoff goes on growing across a loss and the redial. */
static int dial(session *s, uint32_t attempt, int reconnecting)
{
    const client_args *a = s->args;
    for (;;) {
        EnterCriticalSection(&s->lock);
        s->state = CONN_CONNECTING;
        s->connect_failed = 0;
        s->id = 0;
        LeaveCriticalSection(&s->lock);

        iocp_err err = iocp_engine_connect(s->engine, a->host, a->port, a->timeout_ms, s);
        unsigned long sys = 0;
        EnterCriticalSection(&s->lock);
        if (err == IOCP_OK) {
            /* The engine always answers; the bound only guards against waiting forever
             * if it did not (each address may take the whole timeout). */
            uint64_t bound = (uint64_t)a->timeout_ms * 8u + 5000u;
            wait_while_state(s, CONN_CONNECTING,
                             bound > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)bound);
            if (s->state == CONN_OPEN) {
                LeaveCriticalSection(&s->lock);
                if (reconnecting)
                    client_errorf("reconnected to %s", s->where);
                return CLIENT_EXIT_OK;
            }
            if (s->state == CONN_CONNECTING) {
                err = IOCP_E_TIMEOUT;
            } else {
                err = s->fail_err;
                sys = s->fail_sys;
            }
        }
        s->state = CONN_IDLE;
        LeaveCriticalSection(&s->lock);

        char why[400];
        if (err == IOCP_E_TLS)
            client_tls_failure(&s->tls_log, sys, why, sizeof why);
        else
            iocp_format_error(err, sys, why, sizeof why);
        /* A name that does not resolve will not resolve on the next try either, nor will a
         * certificate become valid. */
        int retry = a->reconnect && err != IOCP_E_RESOLVE && err != IOCP_E_INVALID_ARG &&
                    err != IOCP_E_TLS && (a->attempts == 0 || attempt < a->attempts);
        if (!retry) {
            if (a->reconnect && attempt > 0)
                client_errorf("cannot connect to %s: %s; giving up after %lu attempts", s->where,
                              why, (unsigned long)attempt + 1);
            else
                client_errorf("cannot connect to %s: %s", s->where, why);
            return client_exit_for_err(err);
        }
        uint32_t delay =
            client_backoff_ms(attempt, a->backoff_ms, a->backoff_max_ms, client_rand32(&s->rng));
        client_errorf("cannot connect to %s: %s; retrying in %lu ms", s->where, why,
                      (unsigned long)delay);
        client_sleep_ms(delay);
        attempt++;
    }
}

int session_open(const client_args *args, size_t largest_message, session **out)
{
    *out = NULL;
    session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        client_errorf("out of memory");
        return CLIENT_EXIT_OTHER;
    }
    s->args = args;
    s->framed = args->framing != IOCP_FRAMING_RAW;
    s->rng = client_random_seed();
    client_format_where(s->where, sizeof s->where, args->host, args->port);
    InitializeCriticalSection(&s->lock);
    InitializeConditionVariable(&s->changed);

    iocp_config config;
    iocp_config_init(&config);
    config.listen = 0;
    config.workers = 1;
    config.max_connections = 4; /* one open, a closing one still draining, spare */
    config.framing = args->framing;
    config.max_message = args->max_message;
    if (s->framed && largest_message > config.max_message)
        config.max_message = largest_message > UINT32_MAX ? UINT32_MAX : (uint32_t)largest_message;
    /* One message is queued whole. The engine pauses reading while a connection's queue is
     * over half the cap (backpressure for echo servers): the largest message must stay below
     * that, or a big echo could stall both sides. The engine also wants room for two reads. */
    size_t per_read = config.buffer_size;
    if (s->framed)
        per_read += (size_t)config.max_message + IOCP_LENGTH_HEADER_SIZE;
    size_t cap = 2 * (largest_message + 64);
    if (cap < 2 * per_read)
        cap = 2 * per_read;
    if (config.send_queue_cap < cap)
        config.send_queue_cap = cap;
    config.log_level = IOCP_LOG_ERROR;
    client_tls_configure(args, &config, &s->tls_log);

    iocp_error_info info;
    memset(&info, 0, sizeof info);
    iocp_err err = iocp_engine_start(&config, &session_handlers, s, &s->engine, &info);
    if (err != IOCP_OK) {
        int rc = client_engine_start_failed(args, err, &info);
        DeleteCriticalSection(&s->lock);
        free(s);
        return rc;
    }
    int rc = dial(s, 0, 0);
    if (rc != CLIENT_EXIT_OK) {
        iocp_engine_destroy(s->engine);
        DeleteCriticalSection(&s->lock);
        free(s->echo);
        free(s);
        return rc;
    }
    *out = s;
    return CLIENT_EXIT_OK;
}

/* Describes why the connection went away with an echo outstanding; returns the exit code. */
static int describe_loss(session *s, size_t got, size_t want, int log)
{
    char why[160];
    iocp_close_reason reason = s->close_reason;
    unsigned long sys = s->close_sys;
    iocp_err err = sys != 0 ? iocp_err_from_sys(sys) : IOCP_E_RESET;
    iocp_format_error(err, sys, why, sizeof why);
    char progress[200];
    if (s->framed)
        snprintf(progress, sizeof progress, "before the echo of a %zu-byte message", want);
    else if (got == 0) /* a framed server closes on bytes that break its framing */
        snprintf(progress, sizeof progress,
                 "after 0 of %zu echo bytes (a server that frames its messages closes on raw "
                 "bytes: match it with --framing line or length)",
                 want);
    else
        snprintf(progress, sizeof progress, "after %zu of %zu echo bytes", got, want);
    int code = CLIENT_EXIT_RESET;
    switch (reason) {
    case IOCP_CLOSE_PEER:
        if (log)
            client_errorf("connection to %s closed by the server %s", s->where, progress);
        break;
    case IOCP_CLOSE_IDLE_TIMEOUT:
    case IOCP_CLOSE_MESSAGE_TIMEOUT:
    case IOCP_CLOSE_SEND_TIMEOUT:
        code = CLIENT_EXIT_TIMEOUT;
        if (log)
            client_errorf("connection to %s timed out %s (%s)", s->where, progress,
                          iocp_close_reason_str(reason));
        break;
    case IOCP_CLOSE_PROTOCOL:
        code = CLIENT_EXIT_MISMATCH;
        if (log)
            client_errorf("echo from %s broke the %s framing %s: %s", s->where,
                          iocp_framing_name(s->args->framing), progress,
                          iocp_close_reason_str(reason));
        break;
    default:
        if (reason == IOCP_CLOSE_SEND_OVERFLOW)
            code = CLIENT_EXIT_OTHER;
        if (log)
            client_errorf(
                "connection to %s lost %s: %s%s%s", s->where, progress,
                sys != 0 || reason == IOCP_CLOSE_RESET ? why : iocp_close_reason_str(reason),
                sys != 0 && reason != IOCP_CLOSE_RESET ? ", " : "",
                sys != 0 && reason != IOCP_CLOSE_RESET ? iocp_close_reason_str(reason) : "");
        break;
    }
    return code;
}

int session_exchange(session *s, const uint8_t *msg, size_t len, const uint8_t **echo,
                     size_t *echo_len)
{
    static const uint8_t nothing[1] = {0};
    const client_args *a = s->args;
    uint32_t losses = 0;
    *echo = nothing;
    *echo_len = 0;
    if (!s->framed && len == 0)
        return CLIENT_EXIT_OK; /* raw mode: no bytes to send, so the echo is empty */

    for (;;) {
        EnterCriticalSection(&s->lock);
        int open = s->state == CONN_OPEN;
        iocp_conn_id id = s->id;
        iocp_close_reason last_reason = s->close_reason;
        if (open) {
            s->expecting = 1;
            s->expect_len = len;
            s->echo_len = 0;
            s->echo_done = 0;
            s->last_progress_ms = client_now_ms();
        }
        LeaveCriticalSection(&s->lock);

        int rc = CLIENT_EXIT_OK;
        if (open) {
            iocp_err err = s->framed ? iocp_send_message(s->engine, id, msg, len)
                                     : iocp_send(s->engine, id, msg, len);
            if (err != IOCP_OK && err != IOCP_E_NOT_CONNECTED) {
                char why[160];
                client_errorf("cannot send %zu bytes to %s: %s", len, s->where,
                              iocp_format_error(err, 0, why, sizeof why));
                EnterCriticalSection(&s->lock);
                s->expecting = 0;
                LeaveCriticalSection(&s->lock);
                return CLIENT_EXIT_OTHER;
            }
            EnterCriticalSection(&s->lock);
            if (err == IOCP_E_NOT_CONNECTED) /* closing: on_close is on its way */
                wait_while_state(s, CONN_OPEN, 5000);
            for (;;) {
                if (s->echo_done || s->no_memory || s->state != CONN_OPEN)
                    break;
                uint64_t idle = client_now_ms() - s->last_progress_ms;
                if (idle >= a->timeout_ms)
                    break;
                SleepConditionVariableCS(&s->changed, &s->lock, (DWORD)(a->timeout_ms - idle));
            }
            s->expecting = 0;
            if (s->echo_done) {
                *echo = s->echo;
                *echo_len = s->echo_len;
                LeaveCriticalSection(&s->lock);
                return CLIENT_EXIT_OK;
            }
            size_t got = s->echo_len;
            int state = s->state;
            int no_memory = s->no_memory;
            LeaveCriticalSection(&s->lock);
            if (no_memory) {
                client_errorf("out of memory holding the echo from %s (%zu bytes)", s->where, got);
                return CLIENT_EXIT_OTHER;
            }
            if (state == CONN_OPEN && s->framed) {
                /* Framed, only whole messages count: a server that frames otherwise (or not
                 * at all) never completes one, which looks exactly like a slow server. */
                client_errorf("timed out waiting for the echo from %s: no whole %s-framed "
                              "message came back in %lu ms for the %zu-byte message sent; the "
                              "server's framing may differ: match it with --framing raw, line "
                              "or length",
                              s->where, iocp_framing_name(a->framing), (unsigned long)a->timeout_ms,
                              len);
                return CLIENT_EXIT_TIMEOUT;
            }
            if (state == CONN_OPEN) {
                client_errorf("timed out waiting for the echo from %s: received %zu of %zu "
                              "bytes, nothing more for %lu ms",
                              s->where, got, len, (unsigned long)a->timeout_ms);
                return CLIENT_EXIT_TIMEOUT;
            }
            rc = describe_loss(s, got, len, 1);
        } else {
            client_errorf("connection to %s was closed by the server before the message was "
                          "sent (%s)",
                          s->where, iocp_close_reason_str(last_reason));
            rc = CLIENT_EXIT_RESET;
        }
        if (!a->reconnect || rc == CLIENT_EXIT_MISMATCH ||
            (a->attempts != 0 && losses >= a->attempts))
            return rc;
        /* Reconnect and send the message again: its echo was incomplete. */
        uint32_t delay =
            client_backoff_ms(losses, a->backoff_ms, a->backoff_max_ms, client_rand32(&s->rng));
        client_errorf("reconnecting to %s in %lu ms", s->where, (unsigned long)delay);
        client_sleep_ms(delay);
        losses++;
        rc = dial(s, losses, 1);
        if (rc != CLIENT_EXIT_OK)
            return rc;
    }
}

int session_check_echo(session *s, size_t index, const uint8_t *sent, size_t sent_len,
                       const uint8_t *echo, size_t echo_len)
{
    size_t n = sent_len < echo_len ? sent_len : echo_len;
    size_t i = 0;
    while (i < n && sent[i] == echo[i])
        i++;
    if (i == n && sent_len == echo_len)
        return CLIENT_EXIT_OK;
    if (i < n)
        client_errorf("echo mismatch from %s: message %zu (%zu bytes) differs at byte %zu: sent "
                      "0x%02x, got 0x%02x",
                      s->where, index, sent_len, i, sent[i], echo[i]);
    else
        client_errorf("echo mismatch from %s: message %zu: sent %zu bytes, echo has %zu", s->where,
                      index, sent_len, echo_len);
    return CLIENT_EXIT_MISMATCH;
}

int session_close(session *s)
{
    if (s == NULL)
        return CLIENT_EXIT_OK;
    EnterCriticalSection(&s->lock);
    iocp_conn_id id = s->state == CONN_OPEN ? s->id : 0;
    LeaveCriticalSection(&s->lock);
    if (id != 0 && iocp_close(s->engine, id, IOCP_GRACEFUL) == IOCP_OK) {
        EnterCriticalSection(&s->lock);
        wait_while_state(s, CONN_OPEN, 2000);
        LeaveCriticalSection(&s->lock);
    }
    iocp_engine_destroy(s->engine);
    int rc = CLIENT_EXIT_OK;
    if (s->unexpected > 0) {
        client_errorf("echo mismatch from %s: %llu unexpected bytes arrived that no message "
                      "asked for",
                      s->where, (unsigned long long)s->unexpected);
        rc = CLIENT_EXIT_MISMATCH;
    }
    DeleteCriticalSection(&s->lock);
    free(s->echo);
    free(s);
    return rc;
}
