/*
 * tls.h: TLS through Schannel (SSPI), with no socket in it. A session consumes the bytes the
 * peer sent and produces the bytes to send back; the connection moves them. The same code runs
 * the start-up self-check, where two sessions talk to each other in memory.
 *
 *   tls_creds.c   credentials: a server certificate (PFX file or certificate store), the
 *                 client role, and freeing what the PFX import persisted
 *   tls.c         a session: handshake, records in and out, close_notify, the peer's
 *                 certificate checked by the Windows chain engine, and the self-check
 *   tls_floor.c   the engine's own floor: a ClientHello below the minimum version answered
 *                 with an alert before Schannel sees it (tls_hello.c reads it), and every
 *                 finished handshake checked for its protocol and suite
 */
#ifndef IOCP_TLS_H
#define IOCP_TLS_H

#include "iocpi.h"
#include "tls_hello.h"

#define SECURITY_WIN32
/* SCH_CREDENTIALS (the structure that can enable TLS 1.3) needs this and UNICODE_STRING. */
#define SCHANNEL_USE_BLACKLISTS
#include <subauth.h>
#include <wincrypt.h>
#include <schannel.h>
#include <security.h>

/* ---- credentials ---------------------------------------------------------------------------- */

typedef struct iocpi_tls_creds {
    CredHandle handle;
    int has_handle;
    int server;
    PCCERT_CONTEXT cert;  /* the certificate with its key (server; a client's own, or NULL) */
    HCERTSTORE pfx_store; /* server from a PFX: the imported store (its keys deleted at free) */
    HCERTSTORE extra_ca;  /* client: the --tls-ca certificates; server: the client CA file's
                             (client certificates required), or NULL */
    /* with extra_ca: a chain engine whose only trusted roots are extra_ca's
     * (hExclusiveRoot), or NULL where the system refuses one (the default engine is used and
     * the chain's root must still be one of extra_ca's) */
    HCERTCHAINENGINE chain_engine;
    int insecure; /* client: accept any certificate */
    int tls13;    /* 1 when the credentials offer TLS 1.3 (SCH_CREDENTIALS, build 20348+) */
    DWORD error;  /* after a failure (here or in the self-check): its Win32/SSPI code */
    /* The floor (tls_floor.c): the lowest wire version allowed (IOCPI_TLS_V1_x; 0 = TLS 1.2),
     * and 1 to accept CBC and non-forward-secret suites as well. Zero after the creds_ calls;
     * iocpi_tls_creds_set_floor changes them. */
    unsigned min_version;
    int legacy_suites;
    int revocation;     /* IOCPI_TLS_REVOCATION_* (tls_revocation.c); 0 = soft-fail */
    char pfx_path[260]; /* the PFX the certificate came from, for messages ("" = none) */
} iocpi_tls_creds;

/* Server credentials from a PFX file and its password. 0, or -1 with err naming the cause
 * (file, password, no certificate with a private key, Schannel). */
int iocpi_tls_creds_from_pfx(iocpi_tls_creds *c, const char *path, const char *password, char *err,
                             size_t err_size);
/* Server credentials from the certificate with this SHA-1 thumbprint (hex, spaces allowed)
 * in LocalMachine\My (machine = 1) or CurrentUser\My. */
int iocpi_tls_creds_from_store(iocpi_tls_creds *c, const char *thumbprint, int machine, char *err,
                               size_t err_size);
/* Client credentials; ca_file (NULL = none): extra trusted certificates (PEM or DER, one or
 * more); insecure: no validation at all. */
int iocpi_tls_creds_client(iocpi_tls_creds *c, const char *ca_file, int insecure, char *err,
                           size_t err_size);
/* The same with a client certificate from a PFX (pfx_path NULL = none). */
int iocpi_tls_creds_client_cert(iocpi_tls_creds *c, const char *ca_file, int insecure,
                                const char *pfx_path, const char *pfx_password, char *err,
                                size_t err_size);
void iocpi_tls_creds_free(iocpi_tls_creds *c);
/* Another floor for credentials made above (their handle is acquired again with it).
 * min_version: IOCPI_TLS_V1_0 .. IOCPI_TLS_V1_3 or 0 (TLS 1.2). 0 or -1 with err. */
int iocpi_tls_creds_set_floor(iocpi_tls_creds *c, unsigned min_version, int legacy_suites,
                              char *err, size_t err_size);

/* ---- keys imported from a PFX (tls_key_move.c) ------------------------------------------ */

/* Whether a key container name is the user's default container (NULL, empty, or the user's
 * name), which every import of the user may share under Wine: never deleted. */
int iocpi_tls_default_container(const wchar_t *name);
/* The certificate's CERT_KEY_PROV_INFO (malloc'd; the caller frees it), or NULL. */
CRYPT_KEY_PROV_INFO *iocpi_tls_key_prov_info(PCCERT_CONTEXT cert);
/* 1 when the certificate's key is in a CryptoAPI default container (shared with the user's
 * other imports). */
int iocpi_tls_key_in_shared_container(PCCERT_CONTEXT cert);
/* 1 when the CryptoAPI container the certificate names holds the certificate's key. */
int iocpi_tls_key_matches(PCCERT_CONTEXT cert);
/* c->cert's key, now in the shared default container, copied into a container of its own from
 * a fresh import of pfx (kept by the caller until this returns) and checked against the
 * certificate; c->cert then names that container. 0, or -1 with err naming path. */
int iocpi_tls_key_move(iocpi_tls_creds *c, CRYPT_DATA_BLOB *pfx, const wchar_t *password,
                       const char *path, char *err, size_t err_size);

/* ---- the record of imported key containers (tls_key_record.c) --------------------------- */

/* Records a container an import made (not the default container), before it is used. */
void iocpi_tls_key_record_add(const CRYPT_KEY_PROV_INFO *info);
/* Deletes a container an import made (never the default one) and its record entry. */
void iocpi_tls_key_forget(const CRYPT_KEY_PROV_INFO *info);
/* Deletes every recorded container whose process is gone (crashed, killed), with its entry.
 * Returns how many. */
unsigned iocpi_tls_key_record_sweep(void);
/* The same, once per process (at its first PFX import). */
void iocpi_tls_key_record_sweep_once(void);
/* The registry key under HKCU the record lives in (tests); NULL: the default,
 * Software\iocp\TlsKeyContainers. */
void iocpi_tls_key_record_location(const wchar_t *subkey);

/* ---- sessions ------------------------------------------------------------------------------- */

typedef enum iocpi_tls_status {
    IOCPI_TLS_NEED_MORE, /* the input ends inside a record: keep it, read more */
    IOCPI_TLS_PROGRESS,  /* handshake bytes consumed; output may be waiting */
    IOCPI_TLS_DATA,      /* application bytes, decrypted in place inside the input */
    IOCPI_TLS_CLOSED,    /* the peer sent close_notify */
    IOCPI_TLS_FAILED     /* err and status say why; send the output (an alert), then close */
} iocpi_tls_status;

typedef struct iocpi_tls {
    iocpi_tls_creds *creds;
    CtxtHandle ctx;
    int has_ctx;
    int established;
    int shut_down; /* our close_notify is made */
    int tls13;     /* the session negotiated TLS 1.3 (known once established) */
    /* Post-handshake messages (TLS 1.3 tickets and key updates) handled on this session, and
     * whether one is still going on (its next bytes go to the handshake call). */
    unsigned post_handshake;
    int in_post_handshake;
    int reply_seen; /* client: the server's first bytes looked like TLS (tls_reply_check) */
    SecPkgContext_StreamSizes sizes;
    wchar_t *server_name; /* client: SNI and the name the certificate must carry (heap) */
    /* Bytes to send (handshake tokens, alerts, close_notify): the caller takes them. */
    char *out;
    size_t out_len, out_cap;
    SECURITY_STATUS status; /* the last failure */
    DWORD chain_error;      /* the peer certificate's chain policy error, or 0 */
    char peer_subject[256]; /* the peer certificate's subject, or "" (none, or not yet) */
    char err[200];
    int hello_checked; /* server: the ClientHello passed the floor (tls_floor.c) */
    size_t hello_need; /* server: the input length the next look at the ClientHello needs */
    int below_floor;   /* the failure was the floor's: counted in tls_below_floor */
} iocpi_tls;

/* Post-handshake messages one session takes (TLS 1.3 session tickets and key updates; a
 * server sends a ticket or two, a key update comes after many gigabytes): more is a peer
 * costing us handshake calls for nothing, and the session fails. */
#define IOCPI_TLS_POST_HANDSHAKE_MAX 64

/* A session for these credentials; server_name only for the client role. 0 or -1. */
int iocpi_tls_init(iocpi_tls *t, iocpi_tls_creds *creds, const char *server_name);
void iocpi_tls_fini(iocpi_tls *t);
/* Client: makes the ClientHello (in out). */
iocpi_tls_status iocpi_tls_begin(iocpi_tls *t);
/* Consumes the front of in[0..len): one handshake message group or one record. *consumed says
 * how much; for IOCPI_TLS_DATA, *plain and *plain_len point into in. Call again with the rest
 * while it returns PROGRESS or DATA. */
iocpi_tls_status iocpi_tls_input(iocpi_tls *t, char *in, size_t len, size_t *consumed, char **plain,
                                 size_t *plain_len);
/* The largest plaintext one record carries, and the bytes a record adds around it. */
size_t iocpi_tls_max_record(const iocpi_tls *t);
size_t iocpi_tls_overhead(const iocpi_tls *t);
/* Encrypts len (<= iocpi_tls_max_record) bytes into out (room for len + overhead); 0 with
 * *out_len set, or -1. */
int iocpi_tls_encrypt(iocpi_tls *t, const void *plain, size_t len, char *out, size_t *out_len);
/* Appends close_notify to the output. 0 or -1. */
int iocpi_tls_shutdown(iocpi_tls *t);
/* "TLS 1.2, AES-256-GCM" (after the handshake). */
void iocpi_tls_describe(iocpi_tls *t, char *out, size_t size);
/* Takes the output: the caller sends out[0..out_len) and then calls this. */
void iocpi_tls_output_taken(iocpi_tls *t);

/* ---- the floor (tls_floor.c) ------------------------------------------------------------ */

/* Server, before the first handshake call: reads the ClientHello at the front of in[0..len).
 * IOCPI_TLS_PROGRESS: at or above the floor, hand it to Schannel; IOCPI_TLS_NEED_MORE: it is
 * not whole yet; IOCPI_TLS_FAILED: below the floor or malformed, a fatal alert is in t->out
 * and t->err says what the client offered. */
iocpi_tls_status iocpi_tls_floor_hello(iocpi_tls *t, const char *in, size_t len);
/* After the handshake: the negotiated protocol and suite against the floor. 0, or -1 with
 * t->err naming what was negotiated, t->below_floor set and the output replaced by a fatal
 * alert (server) or dropped (client). */
int iocpi_tls_floor_check(iocpi_tls *t);
/* "TLS 1.2" for a context's SP_PROT_* bits, as a wire version (0 when unknown). */
unsigned iocpi_tls_wire_version(DWORD sp_protocol);

/* In memory, before listening: a client session against a session of these server
 * credentials, a record each way. 0, or -1 with err naming the cause. */
int iocpi_tls_self_check(iocpi_tls_creds *server, char *err, size_t err_size);

/* Revocation (tls_revocation.c): the same values as IOCP_TLS_REVOCATION_*. */
#define IOCPI_TLS_REVOCATION_SOFT 0
#define IOCPI_TLS_REVOCATION_OFF  1
#define IOCPI_TLS_REVOCATION_HARD 2
typedef struct iocpi_tls_revocation_plan {
    DWORD chain_flags;      /* the chain the SSL policy judges: cache only, no revocation */
    DWORD revocation_flags; /* a second build that reads revocation only; 0 = none (off) */
} iocpi_tls_revocation_plan;
iocpi_tls_revocation_plan iocpi_tls_revocation(int mode);
/* The refusal a chain's TrustStatus.dwErrorStatus earns under mode: CERT_E_REVOKED,
 * CRYPT_E_REVOCATION_OFFLINE, CRYPT_E_NO_REVOCATION_CHECK, or 0 when revocation does not
 * stand in the way. */
DWORD iocpi_tls_revocation_error(int mode, DWORD chain_status);

/* TLS 1.3 offered only on builds whose TLS 1.3 is sound (tls_windows_build.c): from 20348. */
int iocpi_tls13_sound(unsigned long build);
/* This Windows' build number by RtlGetVersion (not GetVersionEx), or 0 when unknown. */
unsigned long iocpi_windows_build(void);

/* "SEC_E_UNSUPPORTED_FUNCTION (0x80090302)": the names of the codes this layer meets. */
const char *iocpi_tls_status_name(SECURITY_STATUS s, char *buf, size_t size);

#endif
