/*
 * exit_codes.h: the exit codes of iocp-client, for scripts. The README carries the same table.
 *
 *   0  success: every echo arrived and matched what was sent
 *   1  usage: bad option or argument (the message says which; --help lists them)
 *   2  cannot resolve the host name
 *   3  connection refused
 *   4  timed out: connecting, or waiting for an echo (no progress for --timeout ms)
 *   5  connection reset or closed by the server before the echo was complete
 *   6  echo mismatch: the bytes that came back differ from the bytes sent
 *   7  any other failure: a file that cannot be read, the engine cannot start, another
 *      Winsock error (the message carries the raw code)
 *   8  TLS: the server's certificate failed validation (expired, wrong name, untrusted root:
 *      the message names the chain error and its code), or the TLS handshake failed
 *   9  UDP: a datagram got no answer within --timeout ms, after --retries more tries (load
 *      mode: no datagram was answered at all)
 *  70  crash (the crash guard's IOCP_CRASH_EXIT_CODE)
 *
 * When several failures happen in one run, the first one decides the exit code.
 */
#ifndef CLIENT_EXIT_CODES_H
#define CLIENT_EXIT_CODES_H

#include "iocp/iocp.h"

enum client_exit {
    CLIENT_EXIT_OK = 0,
    CLIENT_EXIT_USAGE = 1,
    CLIENT_EXIT_RESOLVE = 2,
    CLIENT_EXIT_REFUSED = 3,
    CLIENT_EXIT_TIMEOUT = 4,
    CLIENT_EXIT_RESET = 5,
    CLIENT_EXIT_MISMATCH = 6,
    CLIENT_EXIT_OTHER = 7,
    CLIENT_EXIT_TLS = 8,
    CLIENT_EXIT_NO_REPLY = 9
};

/* The exit code for an engine error (connect failures, send failures). */
static inline int client_exit_for_err(iocp_err err)
{
    switch (err) {
    case IOCP_OK:
        return CLIENT_EXIT_OK;
    case IOCP_E_RESOLVE:
        return CLIENT_EXIT_RESOLVE;
    case IOCP_E_REFUSED:
        return CLIENT_EXIT_REFUSED;
    case IOCP_E_TIMEOUT:
        return CLIENT_EXIT_TIMEOUT;
    case IOCP_E_RESET:
    case IOCP_E_NOT_CONNECTED:
        return CLIENT_EXIT_RESET;
    case IOCP_E_TLS:
        return CLIENT_EXIT_TLS;
    default:
        return CLIENT_EXIT_OTHER;
    }
}

/* A short name for an exit code, for the JSON summary ("ok", "refused", ...). */
static inline const char *client_exit_name(int code)
{
    switch (code) {
    case CLIENT_EXIT_OK:
        return "ok";
    case CLIENT_EXIT_USAGE:
        return "usage";
    case CLIENT_EXIT_RESOLVE:
        return "resolve";
    case CLIENT_EXIT_REFUSED:
        return "refused";
    case CLIENT_EXIT_TIMEOUT:
        return "timeout";
    case CLIENT_EXIT_RESET:
        return "reset";
    case CLIENT_EXIT_MISMATCH:
        return "mismatch";
    case CLIENT_EXIT_TLS:
        return "tls";
    case IOCP_CRASH_EXIT_CODE:
        return "crash";
    default:
        return "error";
    }
}

#endif
