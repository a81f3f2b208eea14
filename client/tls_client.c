/* tls_client.c: --tls options into the engine's configuration, and failed handshakes in words
 * (see tls_client.h). */
#include "tls_client.h"

#include <stdio.h>
#include <string.h>

#include "exit_codes.h"
#include "secret_input.h"
#include "sys.h"

/* The engine's log function with --tls; runs on whichever thread logs. */
static void tls_log(void *user, iocp_log_level level, const char *message)
{
    client_tls_log *log = user;
    if (level == IOCP_LOG_ERROR) {
        iocp_log_stderr(NULL, level, message); /* what the client printed without --tls */
        return;
    }
    if (level == IOCP_LOG_DEBUG)
        return;
    if (strstr(message, "TLS") == NULL && strstr(message, "certificate") == NULL)
        return;
    /* "127.0.0.1:443: why; closing it" or "[::1]:443: why": the peer ends at the first ": ". */
    const char *why = strstr(message, ": ");
    why = why != NULL ? why + 2 : message;
    size_t len = strlen(why);
    static const char tail[] = "; closing it";
    if (len >= sizeof tail - 1 && strcmp(why + len - (sizeof tail - 1), tail) == 0)
        len -= sizeof tail - 1;
    AcquireSRWLockExclusive(&log->lock);
    snprintf(log->last, sizeof log->last, "%.*s", (int)len, why);
    ReleaseSRWLockExclusive(&log->lock);
}

void client_tls_configure(const client_args *a, iocp_config *config, client_tls_log *log)
{
    InitializeSRWLock(&log->lock);
    log->last[0] = '\0';
    if (!a->tls)
        return;
    config->tls.client = 1;
    config->tls.ca_file = a->tls_ca;
    config->tls.insecure = a->tls_insecure;
    config->tls.server_name = a->tls_server_name; /* NULL: the engine uses HOST */
    config->tls.min_version = a->tls_min_version;
    config->tls.revocation = a->tls_revocation;
    if (a->tls_client_pfx != NULL) {
        /* The password as iocp-service takes its PFX's (common/secret_input.c): asked for
         * with echo off on a console, one line from a pipe or a file, unless given (with a
         * warning: other programs and the shell history can read argv). Nothing on standard
         * input is an empty password, for a PFX that has none. */
        log->pfx_password[0] = '\0';
        if (a->tls_client_password != NULL && strcmp(a->tls_client_password, "-") != 0) {
            fprintf(stderr, "iocp-client: warning: a password on the command line can be read by "
                            "other programs and shell history; use --tls-client-password - "
                            "(or leave it out) to be asked for it\n");
            snprintf(log->pfx_password, sizeof log->pfx_password, "%s", a->tls_client_password);
        } else {
            char who[300], why[400];
            snprintf(who, sizeof who, "the PFX file %s", a->tls_client_pfx);
            DWORD e = secret_get(who, log->pfx_password, sizeof log->pfx_password, why, sizeof why);
            if (e != NO_ERROR && e != ERROR_HANDLE_EOF && e != ERROR_INVALID_HANDLE)
                client_errorf("%s", why); /* the import then names the password as wrong */
        }
        config->tls.client_pfx_path = a->tls_client_pfx;
        config->tls.client_pfx_password = log->pfx_password;
    }
    config->log = tls_log;
    config->log_user = log;
    config->log_level = IOCP_LOG_INFO; /* the handshake failures are info lines */
}

/* Names for the SSPI statuses a client handshake ends with, when no log line said more. */
static const char *status_name(unsigned long code)
{
    switch (code) {
    case 0x80090327ul:
        return "SEC_E_CERT_UNKNOWN: the server's certificate was not accepted";
    case 0x80090325ul:
        return "SEC_E_UNTRUSTED_ROOT: the certificate chain ends in an untrusted root";
    case 0x80090328ul:
        return "SEC_E_CERT_EXPIRED: the server's certificate has expired";
    case 0x80090322ul:
        return "SEC_E_WRONG_PRINCIPAL: the certificate is for another name";
    case 0x80090326ul:
        return "SEC_E_ILLEGAL_MESSAGE: not a TLS reply (is the server speaking TLS?)";
    case 0x80090331ul:
        return "SEC_E_ALGORITHM_MISMATCH: no protocol or cipher in common";
    case 0x80090304ul:
        return "SEC_E_INTERNAL_ERROR";
    default:
        return NULL;
    }
}

char *client_tls_failure(client_tls_log *log, unsigned long sys_code, char *buf, size_t size)
{
    char kept[sizeof log->last];
    AcquireSRWLockShared(&log->lock);
    memcpy(kept, log->last, sizeof kept);
    ReleaseSRWLockShared(&log->lock);
    const char *name = status_name(sys_code);
    if (kept[0] != '\0')
        snprintf(buf, size, "TLS handshake failed: %s", kept);
    else if (name != NULL)
        snprintf(buf, size, "TLS handshake failed (0x%08lx %s)", sys_code, name);
    else
        snprintf(buf, size, "TLS handshake failed (0x%08lx)", sys_code);
    return buf;
}

int client_engine_start_failed(const client_args *a, iocp_err err, const iocp_error_info *info)
{
    const char *why = info->message[0] ? info->message : iocp_strerror(err);
    /* The option at fault is the one whose file the engine's message names (it names the
     * file wherever one is the cause): the client certificate's PFX before the CA file, as
     * the engine loads it first. */
    if (err == IOCP_E_TLS && a->tls_client_pfx != NULL && strstr(why, a->tls_client_pfx) != NULL)
        client_errorf("cannot use --tls-client-pfx %s: %s", a->tls_client_pfx, why);
    else if (err == IOCP_E_TLS && a->tls_ca != NULL && strstr(why, a->tls_ca) != NULL)
        client_errorf("cannot use --tls-ca %s: %s", a->tls_ca, why);
    else if (err == IOCP_E_TLS)
        client_errorf("cannot set up TLS: %s", why);
    else
        client_errorf("cannot start the engine: %s", why);
    return CLIENT_EXIT_OTHER;
}
