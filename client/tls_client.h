/*
 * tls_client.h: --tls in every mode: the engine's config.tls from the options, and the cause
 * of a failed handshake in words.
 *
 * The engine names a certificate's chain error only in its log, at info level ("PEER: the
 * server's certificate failed validation: the name does not match the server name
 * (0x800b010f); closing it"); on_connect_failed carries IOCP_E_TLS and the SSPI status
 * (SEC_E_CERT_UNKNOWN for every chain error). So with --tls the engine's log goes through
 * client_tls_log: errors are printed as before, the latest TLS failure line is kept for the
 * message of the dial that failed.
 */
#ifndef CLIENT_TLS_CLIENT_H
#define CLIENT_TLS_CLIENT_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stddef.h>

#include "args.h"

#include "iocp/iocp.h"

/* Embedded in the session or the load run; client_tls_configure initialises it. */
typedef struct client_tls_log {
    SRWLOCK lock;
    char last[256];         /* the latest TLS failure without its peer prefix, "" if none */
    char pfx_password[256]; /* --tls-client-pfx's password (asked, read from stdin, or argv's) */
} client_tls_log;

/* Sets config->tls from the options (client = 1, ca_file, insecure, server_name) and routes
 * the engine's log through `log`. Without --tls it does nothing. */
void client_tls_configure(const client_args *args, iocp_config *config, client_tls_log *log);

/* Why a dial ended in IOCP_E_TLS: "TLS handshake failed: " and the engine's latest TLS line,
 * else the status code. The engine logs before it ends the dial, so the line is there; in load
 * mode it may be another connection's to the same server (the same certificate: the same
 * cause). Returns buf. */
char *client_tls_failure(client_tls_log *log, unsigned long sys_code, char *buf, size_t size);

/* The engine did not start: with --tls the message says which option (a --tls-client-pfx or
 * a --tls-ca that cannot be used: the one whose file the engine's message names). Prints it;
 * returns the exit code. */
int client_engine_start_failed(const client_args *args, iocp_err err, const iocp_error_info *info);

#endif
