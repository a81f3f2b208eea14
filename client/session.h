/*
 * session.h: one client connection used synchronously, for message and interactive modes.
 *
 * The connection lives in a client-only engine (config.listen = 0): iocp_engine_connect dials,
 * the engine's handlers fill the session's echo buffer on a worker thread, and the main thread
 * sends one message and waits for its whole echo. With --reconnect, a lost connection is
 * dialled again (exponential backoff with jitter) and the message whose echo was incomplete is
 * sent again. Every failure is printed on stderr naming host, port and the raw code, and
 * returned as an exit code (exit_codes.h).
 */
#ifndef CLIENT_SESSION_H
#define CLIENT_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "args.h"

typedef struct session session;

/* Starts the engine and connects. largest_message sizes the engine's send queue and framing
 * limit. Returns an exit code; on CLIENT_EXIT_OK *out is the session. */
int session_open(const client_args *args, size_t largest_message, session **out);

/* Sends one message (framed with args->framing) and waits for its echo. On CLIENT_EXIT_OK
 * *echo / *echo_len hold the echo (owned by the session, valid until the next call). In raw
 * mode an empty message sends nothing and its echo is empty. */
int session_exchange(session *s, const uint8_t *msg, size_t len, const uint8_t **echo,
                     size_t *echo_len);

/* Compares an echo with what was sent; on a difference prints what and where and returns
 * CLIENT_EXIT_MISMATCH. index counts messages from 1. */
int session_check_echo(session *s, size_t index, const uint8_t *sent, size_t sent_len,
                       const uint8_t *echo, size_t echo_len);

/* Closes gracefully and frees everything. Returns CLIENT_EXIT_MISMATCH if bytes arrived that
 * no message asked for, else CLIENT_EXIT_OK. */
int session_close(session *s);

#endif
