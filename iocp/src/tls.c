/*
 * tls.c: one TLS session over Schannel, and the self-check.
 *
 * The session never touches a socket. iocpi_tls_input takes what the peer sent, from the
 * front: during the handshake it hands the bytes to AcceptSecurityContext (server) or
 * InitializeSecurityContextW (client) and appends their answer to t->out; afterwards it
 * decrypts one record in place (DecryptMessage), so the plaintext is a slice of the caller's
 * own buffer and nothing is copied. SECBUFFER_EXTRA tells where the next record starts: the
 * caller calls again with the rest, and keeps an incomplete tail for the next read.
 *
 * After the handshake the peer may still send handshake messages: DecryptMessage answers
 * SEC_I_RENEGOTIATE. The policy, on both roles:
 *   - TLS 1.3 (session tickets, KeyUpdate; Windows delivers them this way right after every
 *     handshake): the bytes go to the handshake call as Schannel documents, the session stays
 *     established (sends go on, no second on_open, the peer's certificate, unchanged, is not
 *     validated again), and at most IOCPI_TLS_POST_HANDSHAKE_MAX of them per session.
 *   - TLS 1.2 and older: a renegotiation (a client's new ClientHello, a server's
 *     HelloRequest) is refused: the peer gets a no_renegotiation warning alert where the
 *     system can make one, then close_notify, and the session fails at once. .NET refuses a
 *     client's renegotiation since .NET 7 (it was the way to a renegotiation attack and a
 *     cheap CPU drain); going on after the warning is what RFC 5246 allows, but the peer's
 *     request is then left unanswered inside Schannel's state, and OpenSSL ends the
 *     connection on that warning anyway. Closing now is the one outcome that cannot hang.
 */
#include "tls.h"

#define CTX_REQ_SERVER                                                                             \
    (ASC_REQ_SEQUENCE_DETECT | ASC_REQ_REPLAY_DETECT | ASC_REQ_CONFIDENTIALITY |                   \
     ASC_REQ_EXTENDED_ERROR | ASC_REQ_ALLOCATE_MEMORY | ASC_REQ_STREAM)
#define CTX_REQ_CLIENT                                                                             \
    (ISC_REQ_SEQUENCE_DETECT | ISC_REQ_REPLAY_DETECT | ISC_REQ_CONFIDENTIALITY |                   \
     ISC_REQ_EXTENDED_ERROR | ISC_REQ_ALLOCATE_MEMORY | ISC_REQ_STREAM |                           \
     ISC_REQ_MANUAL_CRED_VALIDATION | ISC_REQ_USE_SUPPLIED_CREDS)

#ifndef SEC_I_RENEGOTIATE
#define SEC_I_RENEGOTIATE ((HRESULT)0x00090321L)
#endif

const char *iocpi_tls_status_name(SECURITY_STATUS s, char *buf, size_t size)
{
    static const struct {
        SECURITY_STATUS code;
        const char *name;
    } names[] = {
        {SEC_E_OK, "SEC_E_OK"},
        {SEC_E_UNSUPPORTED_FUNCTION, "SEC_E_UNSUPPORTED_FUNCTION (no server-side TLS here)"},
        {SEC_E_INTERNAL_ERROR, "SEC_E_INTERNAL_ERROR"},
        {SEC_E_NO_CREDENTIALS, "SEC_E_NO_CREDENTIALS"},
        {SEC_E_UNKNOWN_CREDENTIALS, "SEC_E_UNKNOWN_CREDENTIALS"},
        {SEC_E_ILLEGAL_MESSAGE, "SEC_E_ILLEGAL_MESSAGE (not TLS, or a broken record)"},
        {SEC_E_ALGORITHM_MISMATCH, "SEC_E_ALGORITHM_MISMATCH (no protocol or cipher in common)"},
        {SEC_E_DECRYPT_FAILURE, "SEC_E_DECRYPT_FAILURE"},
        {SEC_E_MESSAGE_ALTERED, "SEC_E_MESSAGE_ALTERED"},
        {SEC_E_INCOMPLETE_MESSAGE, "SEC_E_INCOMPLETE_MESSAGE"},
        {SEC_E_CONTEXT_EXPIRED, "SEC_E_CONTEXT_EXPIRED"},
        {SEC_E_INVALID_TOKEN, "SEC_E_INVALID_TOKEN"},
        {SEC_E_CERT_EXPIRED, "SEC_E_CERT_EXPIRED"},
        {SEC_E_UNTRUSTED_ROOT, "SEC_E_UNTRUSTED_ROOT"},
        {SEC_E_WRONG_PRINCIPAL, "SEC_E_WRONG_PRINCIPAL"},
        {SEC_E_INSUFFICIENT_MEMORY, "SEC_E_INSUFFICIENT_MEMORY"},
        {SEC_I_CONTEXT_EXPIRED, "SEC_I_CONTEXT_EXPIRED (close_notify)"},
        {SEC_I_RENEGOTIATE, "SEC_I_RENEGOTIATE"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == s) {
            snprintf(buf, size, "%s", names[i].name);
            return buf;
        }
    snprintf(buf, size, "SECURITY_STATUS 0x%08lx", (unsigned long)(DWORD)s);
    return buf;
}

static iocpi_tls_status fail(iocpi_tls *t, SECURITY_STATUS s, const char *what)
{
    char name[100];
    t->status = s;
    snprintf(t->err, sizeof t->err, "%s: %s", what, iocpi_tls_status_name(s, name, sizeof name));
    return IOCPI_TLS_FAILED;
}

static int out_append(iocpi_tls *t, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (t->out_len + len > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 4096;
        while (cap < t->out_len + len)
            cap *= 2;
        char *p = realloc(t->out, cap);
        if (p == NULL)
            return -1;
        t->out = p;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, data, len);
    t->out_len += len;
    return 0;
}

void iocpi_tls_output_taken(iocpi_tls *t)
{
    t->out_len = 0;
}

int iocpi_tls_init(iocpi_tls *t, iocpi_tls_creds *creds, const char *server_name)
{
    memset(t, 0, sizeof *t);
    t->creds = creds;
    if (server_name == NULL || server_name[0] == '\0')
        return 0;
    int n = MultiByteToWideChar(CP_UTF8, 0, server_name, -1, NULL, 0);
    if (n <= 0 || (t->server_name = malloc((size_t)n * sizeof(wchar_t))) == NULL ||
        MultiByteToWideChar(CP_UTF8, 0, server_name, -1, t->server_name, n) == 0)
        return -1;
    return 0;
}

void iocpi_tls_fini(iocpi_tls *t)
{
    if (t->has_ctx)
        DeleteSecurityContext(&t->ctx);
    t->has_ctx = 0;
    free(t->out);
    free(t->server_name);
    t->out = NULL;
    t->server_name = NULL;
    t->out_len = t->out_cap = 0;
}

static int finish_handshake(iocpi_tls *t);

/* After ApplyControlToken: the handshake call with no input makes the token's message (an
 * alert, close_notify); it is appended to the output. The final call may answer
 * SEC_I_CONTEXT_EXPIRED with the message made (curl counts that as success too). */
static SECURITY_STATUS control_message(iocpi_tls *t, void *token, unsigned long size)
{
    SecBuffer b = {size, SECBUFFER_TOKEN, token};
    SecBufferDesc desc = {SECBUFFER_VERSION, 1, &b};
    SECURITY_STATUS s = ApplyControlToken(&t->ctx, &desc);
    if (s != SEC_E_OK)
        return s;
    SecBuffer outb = {0, SECBUFFER_TOKEN, NULL};
    SecBufferDesc out_desc = {SECBUFFER_VERSION, 1, &outb};
    ULONG attrs = 0;
    TimeStamp expiry;
    if (t->creds->server)
        s = AcceptSecurityContext(&t->creds->handle, &t->ctx, NULL, CTX_REQ_SERVER, 0, NULL,
                                  &out_desc, &attrs, &expiry);
    else
        s = InitializeSecurityContextW(&t->creds->handle, &t->ctx, NULL, CTX_REQ_CLIENT, 0, 0, NULL,
                                       0, NULL, &out_desc, &attrs, &expiry);
    if (outb.pvBuffer != NULL) {
        if (outb.cbBuffer > 0 && out_append(t, outb.pvBuffer, outb.cbBuffer) != 0)
            s = SEC_E_INSUFFICIENT_MEMORY;
        FreeContextBuffer(outb.pvBuffer);
    }
    return s == SEC_I_CONTINUE_NEEDED || s == SEC_I_CONTEXT_EXPIRED ? SEC_E_OK : s;
}

/* An alert for the peer (best effort: a system that cannot make one sends nothing). */
static void send_alert(iocpi_tls *t, DWORD type, DWORD number)
{
    if (!t->has_ctx)
        return;
    SCHANNEL_ALERT_TOKEN token = {SCHANNEL_ALERT, type, number};
    control_message(t, &token, sizeof token);
}

/* One handshake call with in[0..len) as its input token (NULL for the ClientHello). */
static iocpi_tls_status handshake(iocpi_tls *t, char *in, size_t len, size_t *consumed)
{
    SecBuffer inb[2], outb[2];
    SecBufferDesc in_desc = {SECBUFFER_VERSION, 2, inb}, out_desc = {SECBUFFER_VERSION, 2, outb};
    inb[0].BufferType = SECBUFFER_TOKEN;
    inb[0].pvBuffer = in;
    inb[0].cbBuffer = (unsigned long)len;
    inb[1].BufferType = SECBUFFER_EMPTY;
    inb[1].pvBuffer = NULL;
    inb[1].cbBuffer = 0;
    outb[0].BufferType = SECBUFFER_TOKEN;
    outb[0].pvBuffer = NULL;
    outb[0].cbBuffer = 0;
    outb[1].BufferType = SECBUFFER_ALERT;
    outb[1].pvBuffer = NULL;
    outb[1].cbBuffer = 0;
    ULONG attrs = 0;
    TimeStamp expiry;
    SECURITY_STATUS s;
    *consumed = 0;
    if (t->creds->server) {
        s = AcceptSecurityContext(&t->creds->handle, t->has_ctx ? &t->ctx : NULL, &in_desc,
                                  CTX_REQ_SERVER |
                                      (t->creds->extra_ca != NULL ? ASC_REQ_MUTUAL_AUTH : 0),
                                  0, &t->ctx, &out_desc, &attrs, &expiry);
    } else {
        s = InitializeSecurityContextW(
            &t->creds->handle, t->has_ctx ? &t->ctx : NULL, t->server_name, CTX_REQ_CLIENT, 0, 0,
            in != NULL ? &in_desc : NULL, 0, &t->ctx, &out_desc, &attrs, &expiry);
        if (s == SEC_I_INCOMPLETE_CREDENTIALS) {
            /* The server asked for a certificate and these credentials hold none that fits
             * (or none at all): the same call again goes on without one, as curl and .NET
             * do; the server decides whether that is enough. */
            t->has_ctx = 1;
            for (int i = 0; i < 2; i++) {
                if (outb[i].pvBuffer != NULL)
                    FreeContextBuffer(outb[i].pvBuffer);
                outb[i].pvBuffer = NULL;
                outb[i].cbBuffer = 0;
            }
            outb[0].BufferType = SECBUFFER_TOKEN;
            outb[1].BufferType = SECBUFFER_ALERT;
            inb[0].BufferType = SECBUFFER_TOKEN;
            inb[0].pvBuffer = in;
            inb[0].cbBuffer = (unsigned long)len;
            inb[1].BufferType = SECBUFFER_EMPTY;
            inb[1].pvBuffer = NULL;
            inb[1].cbBuffer = 0;
            s = InitializeSecurityContextW(&t->creds->handle, &t->ctx, t->server_name,
                                           CTX_REQ_CLIENT, 0, 0, in != NULL ? &in_desc : NULL, 0,
                                           &t->ctx, &out_desc, &attrs, &expiry);
        }
    }
    if (s == SEC_E_OK || s == SEC_I_CONTINUE_NEEDED || (FAILED(s) && s != SEC_E_INCOMPLETE_MESSAGE))
        t->has_ctx = t->has_ctx || s == SEC_E_OK || s == SEC_I_CONTINUE_NEEDED;
    /* Whatever it produced goes to the peer, an alert on failure included. */
    int oom = 0;
    for (int i = 0; i < 2; i++) {
        if (outb[i].pvBuffer != NULL) {
            if (outb[i].cbBuffer > 0 && out_append(t, outb[i].pvBuffer, outb[i].cbBuffer) != 0)
                oom = 1;
            FreeContextBuffer(outb[i].pvBuffer);
        }
    }
    if (oom)
        return fail(t, SEC_E_INSUFFICIENT_MEMORY, "TLS handshake");
    if (s == SEC_E_INCOMPLETE_MESSAGE) {
        t->in_post_handshake = t->established;
        return IOCPI_TLS_NEED_MORE;
    }
    t->in_post_handshake = t->established && s == SEC_I_CONTINUE_NEEDED;
    if (s != SEC_E_OK && s != SEC_I_CONTINUE_NEEDED)
        return fail(t, s,
                    t->creds->server ? "TLS handshake (AcceptSecurityContext)"
                                     : "TLS handshake (InitializeSecurityContext)");
    /* SECBUFFER_EXTRA: bytes after the message group that belong to the next one. */
    size_t extra = inb[1].BufferType == SECBUFFER_EXTRA ? inb[1].cbBuffer : 0;
    *consumed = in != NULL ? len - extra : 0;
    if (s == SEC_E_OK && !t->established) {
        if (finish_handshake(t) != 0)
            return IOCPI_TLS_FAILED;
    }
    return IOCPI_TLS_PROGRESS;
}

/* The subject of the chain's first certificate whose own status has any of flags (the leaf
 * first, then up towards the root), or of the last one: named in the refusal. */
static void chain_culprit(PCCERT_CHAIN_CONTEXT chain, DWORD flags, char *out, size_t size)
{
    PCERT_SIMPLE_CHAIN simple = chain->rgpChain[0];
    PCCERT_CONTEXT who = simple->rgpElement[simple->cElement - 1]->pCertContext;
    for (DWORD i = 0; i < simple->cElement; i++)
        if (simple->rgpElement[i]->TrustStatus.dwErrorStatus & flags) {
            who = simple->rgpElement[i]->pCertContext;
            break;
        }
    wchar_t name[128];
    if (CertGetNameStringW(who, CERT_NAME_SIMPLE_DISPLAY_TYPE, 0, NULL, name, 128) <= 1 ||
        WideCharToMultiByte(CP_UTF8, 0, name, -1, out, (int)size, NULL, NULL) == 0)
        snprintf(out, size, "?");
}

/* Whether the chain ends in one of the CA file's certificates. */
static int root_in_ca_file(iocpi_tls *t, PCCERT_CHAIN_CONTEXT chain)
{
    if (t->creds->extra_ca == NULL)
        return 0;
    PCERT_SIMPLE_CHAIN simple = chain->rgpChain[0];
    PCCERT_CONTEXT root = simple->rgpElement[simple->cElement - 1]->pCertContext;
    PCCERT_CONTEXT found = CertFindCertificateInStore(t->creds->extra_ca, X509_ASN_ENCODING, 0,
                                                      CERT_FIND_EXISTING, root, NULL);
    if (found == NULL)
        return 0;
    CertFreeCertificateContext(found);
    return 1;
}

/* The peer certificate's subject ("CN=iocp test client"), kept for iocp_conn_tls_peer_subject
 * and the log line. */
static void note_subject(iocpi_tls *t, PCCERT_CONTEXT cert)
{
    wchar_t name[sizeof t->peer_subject];
    if (CertNameToStrW(X509_ASN_ENCODING, &cert->pCertInfo->Subject, CERT_X500_NAME_STR, name,
                       (DWORD)(sizeof name / sizeof name[0])) <= 1 ||
        WideCharToMultiByte(CP_UTF8, 0, name, -1, t->peer_subject, (int)sizeof t->peer_subject,
                            NULL, NULL) == 0)
        t->peer_subject[0] = '\0';
}

/* The peer's certificate through the Windows chain engine and the SSL policy: a client checks
 * the server's (name included), a server with a client CA file the client's. Intermediates
 * come from what the peer sent (the certificate's own store) and from the CA file; with a CA
 * file, trust comes from it alone (creds->chain_engine, and the root check below where the
 * system could not make that engine). */
static int verify_peer(iocpi_tls *t)
{
    int server = t->creds->server;
    const char *peer = server ? "client" : "server";
    PCCERT_CONTEXT cert = NULL;
    SECURITY_STATUS s =
        QueryContextAttributesW(&t->ctx, SECPKG_ATTR_REMOTE_CERT_CONTEXT, (void *)&cert);
    if (s == SEC_E_OK && cert != NULL)
        note_subject(t, cert);
    if (t->creds->insecure || (server && t->creds->extra_ca == NULL)) {
        if (s == SEC_E_OK && cert != NULL)
            CertFreeCertificateContext(cert);
        return 0;
    }
    if (s != SEC_E_OK || cert == NULL) {
        char what[80];
        snprintf(what, sizeof what, "the %s sent no certificate%s", peer,
                 server ? " (the client CA file requires one)" : "");
        if (server)
            send_alert(t, TLS1_ALERT_FATAL, TLS1_ALERT_HANDSHAKE_FAILURE);
        fail(t, s != SEC_E_OK ? s : SEC_E_NO_CREDENTIALS, what);
        return -1;
    }
    HCERTSTORE more = cert->hCertStore, both = NULL;
    if (t->creds->extra_ca != NULL &&
        (both = CertOpenStore(CERT_STORE_PROV_COLLECTION, 0, 0, 0, NULL)) != NULL &&
        CertAddStoreToCollection(both, cert->hCertStore, 0, 0) &&
        CertAddStoreToCollection(both, t->creds->extra_ca, 0, 1))
        more = both;
    CERT_CHAIN_PARA para;
    memset(&para, 0, sizeof para);
    para.cbSize = sizeof para;
    static LPSTR server_auth[] = {(LPSTR)szOID_PKIX_KP_SERVER_AUTH};
    static LPSTR client_auth[] = {(LPSTR)szOID_PKIX_KP_CLIENT_AUTH};
    para.RequestedUsage.dwType = USAGE_MATCH_TYPE_OR;
    para.RequestedUsage.Usage.cUsageIdentifier = 1;
    para.RequestedUsage.Usage.rgpszUsageIdentifier = server ? client_auth : server_auth;
    PCCERT_CHAIN_CONTEXT chain = NULL;
    int rc = -1;
    iocpi_tls_revocation_plan revocation = iocpi_tls_revocation(t->creds->revocation);
    BOOL built = CertGetCertificateChain(t->creds->chain_engine, cert, NULL, more, &para,
                                         revocation.chain_flags, NULL, &chain);
    DWORD build_error = GetLastError();
    /* Revocation from a chain of its own (tls_revocation.c says why); a failed build leaves
     * the status unknown, which only hard-fail refuses. */
    DWORD revocation_bits = 0;
    if (built && revocation.revocation_flags != 0) {
        PCCERT_CHAIN_CONTEXT rchain = NULL;
        if (CertGetCertificateChain(t->creds->chain_engine, cert, NULL, more, &para,
                                    revocation.revocation_flags, NULL, &rchain)) {
            revocation_bits = rchain->TrustStatus.dwErrorStatus;
            CertFreeCertificateChain(rchain);
        } else {
            revocation_bits = CERT_TRUST_REVOCATION_STATUS_UNKNOWN;
        }
    }
    if (both != NULL)
        CertCloseStore(both, 0);
    if (!built) {
        t->chain_error = build_error;
        snprintf(t->err, sizeof t->err, "cannot build the certificate chain (0x%08lx)",
                 (unsigned long)t->chain_error);
        CertFreeCertificateContext(cert);
        return -1;
    }
    int file_root = root_in_ca_file(t, chain);
    /* The chain's own status first: the SSL policy should report all of these, and one
     * implementation (Wine) passes a partial chain. Revocation from the cache only, as
     * tls.revocation says (tls_revocation.c): validation runs on a worker under the
     * connection's lock and never waits on the network. */
    DWORD status_bits = chain->TrustStatus.dwErrorStatus;
    DWORD revocation_error = iocpi_tls_revocation_error(t->creds->revocation, revocation_bits);
    DWORD trust = status_bits & ~(DWORD)(CERT_TRUST_REVOCATION_STATUS_UNKNOWN |
                                         CERT_TRUST_IS_OFFLINE_REVOCATION | CERT_TRUST_IS_REVOKED);
    if (file_root)
        trust &= ~(DWORD)CERT_TRUST_IS_UNTRUSTED_ROOT; /* the default engine's view of it */
    DWORD trust_error = (trust & CERT_TRUST_IS_NOT_TIME_VALID) ? (DWORD)CERT_E_EXPIRED
                        : revocation_error != 0                ? revocation_error
                        : (trust & CERT_TRUST_IS_NOT_SIGNATURE_VALID)
                            ? (DWORD)TRUST_E_CERT_SIGNATURE
                        : (trust & CERT_TRUST_IS_NOT_VALID_FOR_USAGE) ? (DWORD)CERT_E_WRONG_USAGE
                        : (trust & CERT_TRUST_IS_PARTIAL_CHAIN)       ? (DWORD)CERT_E_CHAINING
                        : (trust & CERT_TRUST_IS_UNTRUSTED_ROOT)      ? (DWORD)CERT_E_UNTRUSTEDROOT
                        : trust != 0                                  ? (DWORD)CERT_E_CHAINING
                                                                      : 0;
    HTTPSPolicyCallbackData https;
    memset(&https, 0, sizeof https);
    https.cbStruct = sizeof https;
    https.dwAuthType = server ? AUTHTYPE_CLIENT : AUTHTYPE_SERVER;
    https.pwszServerName = server ? NULL : t->server_name;
    /* A root from the CA file is trusted whichever engine built the chain; the policy still
     * checks the rest (name, expiry, usage). */
    if (file_root)
        https.fdwChecks = 0x00000100; /* SECURITY_FLAG_IGNORE_UNKNOWN_CA */
    CERT_CHAIN_POLICY_PARA policy = {sizeof policy, 0, &https};
    CERT_CHAIN_POLICY_STATUS status;
    memset(&status, 0, sizeof status);
    status.cbSize = sizeof status;
    if (!CertVerifyCertificateChainPolicy(CERT_CHAIN_POLICY_SSL, chain, &policy, &status))
        t->chain_error = GetLastError();
    else
        t->chain_error = status.dwError;
    if (t->chain_error == 0 && trust_error != 0)
        t->chain_error = trust_error;
    /* With a CA file, a chain to any other root (a system one) is not trusted. */
    if (t->chain_error == 0 && t->creds->extra_ca != NULL && !file_root)
        t->chain_error = (DWORD)CERT_E_UNTRUSTEDROOT;
    if (t->chain_error == 0) {
        rc = 0;
    } else {
        DWORD e = t->chain_error;
        const char *why =
            e == (DWORD)CERT_E_EXPIRED         ? "expired or not yet valid"
            : e == (DWORD)CERT_E_UNTRUSTEDROOT ? "untrusted root"
            : e == (DWORD)CERT_E_CN_NO_MATCH   ? "the name does not match the server name"
            : e == (DWORD)CERT_E_WRONG_USAGE
                ? (server ? "not for client authentication" : "not for server authentication")
            : e == (DWORD)CERT_E_REVOKED ? "revoked"
            : e == (DWORD)CRYPT_E_REVOCATION_OFFLINE || e == (DWORD)CRYPT_E_NO_REVOCATION_CHECK
                ? "revocation status unknown (tls.revocation is hard-fail and no CRL or OCSP "
                  "answer is cached)"
            : e == (DWORD)CERT_E_CHAINING ? "no chain to a trusted root"
                                          : "rejected by the chain policy";
        /* Which certificate: the one with that status (the expired intermediate), or for
         * a chain that stops short, the last one found (its issuer is missing). */
        DWORD which =
            e == (DWORD)CERT_E_EXPIRED                ? (DWORD)CERT_TRUST_IS_NOT_TIME_VALID
            : e == (DWORD)CERT_E_REVOKED              ? (DWORD)CERT_TRUST_IS_REVOKED
            : e == (DWORD)CRYPT_E_REVOCATION_OFFLINE  ? (DWORD)CERT_TRUST_IS_OFFLINE_REVOCATION
            : e == (DWORD)CRYPT_E_NO_REVOCATION_CHECK ? (DWORD)CERT_TRUST_REVOCATION_STATUS_UNKNOWN
            : e == (DWORD)CERT_E_WRONG_USAGE          ? (DWORD)CERT_TRUST_IS_NOT_VALID_FOR_USAGE
                                                      : 0;
        char who[128];
        chain_culprit(chain, which, who, sizeof who);
        if (e == (DWORD)CERT_E_CN_NO_MATCH)
            who[0] = '\0';
        snprintf(
            t->err, sizeof t->err, "the %s's certificate failed validation: %s (0x%08lx)%s%s%s%s",
            peer, why, (unsigned long)e, who[0] ? ": '" : "", who, who[0] ? "'" : "",
            e == (DWORD)CERT_E_CHAINING ? " has no issuer in what the peer sent or the CA file"
            : e == (DWORD)CERT_E_UNTRUSTEDROOT
                ? (t->creds->extra_ca != NULL ? " is not in the CA file" : " is not a trusted root")
                : "");
        t->status = SEC_E_CERT_UNKNOWN;
        /* The peer is told why, as OpenSSL and browsers tell it (a fatal alert). */
        send_alert(t, TLS1_ALERT_FATAL,
                   e == (DWORD)CERT_E_EXPIRED   ? TLS1_ALERT_CERTIFICATE_EXPIRED
                   : e == (DWORD)CERT_E_REVOKED ? TLS1_ALERT_CERTIFICATE_REVOKED
                   : e == (DWORD)CERT_E_UNTRUSTEDROOT || e == (DWORD)CERT_E_CHAINING
                       ? TLS1_ALERT_UNKNOWN_CA
                       : TLS1_ALERT_BAD_CERTIFICATE);
    }
    CertFreeCertificateChain(chain);
    CertFreeCertificateContext(cert);
    return rc;
}

static int finish_handshake(iocpi_tls *t)
{
    SECURITY_STATUS s = QueryContextAttributesW(&t->ctx, SECPKG_ATTR_STREAM_SIZES, &t->sizes);
    if (s != SEC_E_OK) {
        fail(t, s, "TLS stream sizes");
        return -1;
    }
    if (iocpi_tls_floor_check(t) != 0) /* tls_floor.c: protocol and suite */
        return -1;
    if (verify_peer(t) != 0)
        return -1;
    t->established = 1;
    return 0;
}

iocpi_tls_status iocpi_tls_begin(iocpi_tls *t)
{
    size_t consumed;
    return handshake(t, NULL, 0, &consumed);
}

/* A client's first bytes from the server must be a handshake record (22) that is not our own
 * ClientHello (handshake type 1 at offset 5), or an alert (21). A plaintext echo server sends
 * the ClientHello back, and Schannel's answer to that ranges from SEC_E_ILLEGAL_MESSAGE to
 * SEC_E_INTERNAL_ERROR (Wine): the user needs "this server does not speak TLS". 1: decided
 * (fine), 0: need more bytes, -1: failed (t->err says why). */
static int tls_reply_check(iocpi_tls *t, const char *in, size_t len)
{
    BYTE first = (BYTE)in[0];
    char what[120];
    if (first == 21)
        return 1;
    if (first != 22) {
        snprintf(what, sizeof what,
                 "the server did not answer TLS (first byte 0x%02x: a plaintext server?)",
                 (unsigned)first);
        fail(t, SEC_E_ILLEGAL_MESSAGE, what);
        return -1;
    }
    if (len < 6)
        return 0;
    if ((BYTE)in[5] == 1) {
        fail(t, SEC_E_ILLEGAL_MESSAGE,
             "the server did not answer TLS (it sent our ClientHello back: a plaintext echo "
             "server?)");
        return -1;
    }
    return 1;
}

/* SEC_I_RENEGOTIATE: handshake bytes after the handshake (the policy is at the top). in[0..len)
 * is what followed the record; *consumed grows by what the handshake call took. */
static iocpi_tls_status post_handshake(iocpi_tls *t, char *in, size_t len, size_t *consumed)
{
    if (t->post_handshake == 0) {
        SecPkgContext_ConnectionInfo info;
        memset(&info, 0, sizeof info);
        t->tls13 =
            QueryContextAttributesW(&t->ctx, SECPKG_ATTR_CONNECTION_INFO, &info) == SEC_E_OK &&
            (info.dwProtocol & (SP_PROT_TLS1_3_SERVER | SP_PROT_TLS1_3_CLIENT)) != 0;
    }
    if (!t->tls13) {
        send_alert(t, TLS1_ALERT_WARNING, TLS1_ALERT_NO_RENEGOTIATION);
        iocpi_tls_shutdown(t);
        t->status = SEC_I_RENEGOTIATE;
        snprintf(t->err, sizeof t->err,
                 "the peer asked for a TLS renegotiation, which is refused (no_renegotiation "
                 "and close_notify sent)");
        return IOCPI_TLS_FAILED;
    }
    if (++t->post_handshake > IOCPI_TLS_POST_HANDSHAKE_MAX) {
        send_alert(t, TLS1_ALERT_FATAL, TLS1_ALERT_UNEXPECTED_MESSAGE);
        t->status = SEC_I_RENEGOTIATE;
        snprintf(t->err, sizeof t->err,
                 "more than %d TLS post-handshake messages on one connection",
                 IOCPI_TLS_POST_HANDSHAKE_MAX);
        return IOCPI_TLS_FAILED;
    }
    size_t used = 0;
    iocpi_tls_status r = handshake(t, in, len, &used);
    if (r == IOCPI_TLS_FAILED)
        return r;
    /* NEED_MORE: the message continues in the next read; the bytes are kept and go to the
     * handshake call then (in_post_handshake). CONTINUE_NEEDED likewise. */
    *consumed += used;
    return IOCPI_TLS_PROGRESS;
}

iocpi_tls_status iocpi_tls_input(iocpi_tls *t, char *in, size_t len, size_t *consumed, char **plain,
                                 size_t *plain_len)
{
    *consumed = 0;
    *plain = NULL;
    *plain_len = 0;
    if (len == 0)
        return IOCPI_TLS_NEED_MORE;
    /* A client's first record is a handshake record (22); plaintext (an HTTP request, an
     * echo line) is refused at once instead of waiting for a "record" of its length. */
    if (t->creds->server && !t->has_ctx && (BYTE)in[0] != 22) {
        char what[80];
        snprintf(what, sizeof what, "not a TLS ClientHello (first byte 0x%02x: plaintext?)",
                 (unsigned)(BYTE)in[0]);
        return fail(t, SEC_E_ILLEGAL_MESSAGE, what);
    }
    if (!t->creds->server && !t->reply_seen) {
        int r = tls_reply_check(t, in, len);
        if (r < 0)
            return IOCPI_TLS_FAILED;
        if (r == 0)
            return IOCPI_TLS_NEED_MORE;
        t->reply_seen = 1;
    }
    if (t->creds->server && !t->has_ctx) {
        iocpi_tls_status floor = iocpi_tls_floor_hello(t, in, len); /* tls_floor.c */
        if (floor != IOCPI_TLS_PROGRESS)
            return floor;
    }
    if (!t->established)
        return handshake(t, in, len, consumed);
    if (t->in_post_handshake)
        return handshake(t, in, len, consumed);

    SecBuffer b[4];
    SecBufferDesc desc = {SECBUFFER_VERSION, 4, b};
    b[0].BufferType = SECBUFFER_DATA;
    b[0].pvBuffer = in;
    b[0].cbBuffer = (unsigned long)len;
    for (int i = 1; i < 4; i++) {
        b[i].BufferType = SECBUFFER_EMPTY;
        b[i].pvBuffer = NULL;
        b[i].cbBuffer = 0;
    }
    SECURITY_STATUS s = DecryptMessage(&t->ctx, &desc, 0, NULL);
    if (s == SEC_E_INCOMPLETE_MESSAGE)
        return IOCPI_TLS_NEED_MORE;
    if (s != SEC_E_OK && s != SEC_I_RENEGOTIATE && s != SEC_I_CONTEXT_EXPIRED)
        return fail(t, s, "TLS record (DecryptMessage)");
    /* SECBUFFER_EXTRA: the bytes after this record, always the input's tail (only its length
     * is needed; some implementations give no pointer). */
    size_t extra_len = 0;
    for (int i = 0; i < 4; i++) {
        if (b[i].BufferType == SECBUFFER_DATA && s == SEC_E_OK) {
            *plain = b[i].pvBuffer;
            *plain_len = b[i].cbBuffer;
        } else if (b[i].BufferType == SECBUFFER_EXTRA) {
            extra_len = b[i].cbBuffer;
        }
    }
    *consumed = len - extra_len;
    /* close_notify: SEC_I_CONTEXT_EXPIRED. Wine 10 answers SEC_E_OK with no data instead;
     * in TLS 1.2 the record's own type says it was an alert (21), and an alert that decrypts
     * without an error is the warning-level close_notify (docs/wine.md). */
    if (s == SEC_I_CONTEXT_EXPIRED || (s == SEC_E_OK && *plain_len == 0 && (BYTE)in[0] == 21))
        return IOCPI_TLS_CLOSED;
    if (s == SEC_I_RENEGOTIATE)
        return post_handshake(t, in + *consumed, extra_len, consumed);
    return *plain_len > 0 ? IOCPI_TLS_DATA : IOCPI_TLS_PROGRESS;
}

size_t iocpi_tls_max_record(const iocpi_tls *t)
{
    return t->sizes.cbMaximumMessage;
}

size_t iocpi_tls_overhead(const iocpi_tls *t)
{
    return (size_t)t->sizes.cbHeader + t->sizes.cbTrailer;
}

int iocpi_tls_encrypt(iocpi_tls *t, const void *plain, size_t len, char *out, size_t *out_len)
{
    if (!t->established || len > t->sizes.cbMaximumMessage)
        return -1;
    SecBuffer b[4];
    SecBufferDesc desc = {SECBUFFER_VERSION, 4, b};
    memmove(out + t->sizes.cbHeader, plain, len); /* plain may already be there */
    b[0].BufferType = SECBUFFER_STREAM_HEADER;
    b[0].pvBuffer = out;
    b[0].cbBuffer = t->sizes.cbHeader;
    b[1].BufferType = SECBUFFER_DATA;
    b[1].pvBuffer = out + t->sizes.cbHeader;
    b[1].cbBuffer = (unsigned long)len;
    b[2].BufferType = SECBUFFER_STREAM_TRAILER;
    b[2].pvBuffer = out + t->sizes.cbHeader + len;
    b[2].cbBuffer = t->sizes.cbTrailer;
    b[3].BufferType = SECBUFFER_EMPTY;
    b[3].pvBuffer = NULL;
    b[3].cbBuffer = 0;
    SECURITY_STATUS s = EncryptMessage(&t->ctx, 0, &desc, 0);
    if (s != SEC_E_OK) {
        fail(t, s, "TLS record (EncryptMessage)");
        return -1;
    }
    *out_len = b[0].cbBuffer + b[1].cbBuffer + b[2].cbBuffer;
    return 0;
}

int iocpi_tls_shutdown(iocpi_tls *t)
{
    if (!t->has_ctx || t->shut_down)
        return 0;
    t->shut_down = 1;
    DWORD type = SCHANNEL_SHUTDOWN;
    SECURITY_STATUS s = control_message(t, &type, sizeof type);
    if (s != SEC_E_OK) {
        fail(t, s, "TLS shutdown");
        return -1;
    }
    return 0;
}

void iocpi_tls_describe(iocpi_tls *t, char *out, size_t size)
{
    SecPkgContext_ConnectionInfo info;
    memset(&info, 0, sizeof info);
    if (!t->has_ctx ||
        QueryContextAttributesW(&t->ctx, SECPKG_ATTR_CONNECTION_INFO, &info) != SEC_E_OK) {
        snprintf(out, size, "TLS (unknown)");
        return;
    }
    const char *proto = (info.dwProtocol & (SP_PROT_TLS1_3_SERVER | SP_PROT_TLS1_3_CLIENT))
                            ? "TLS 1.3"
                        : (info.dwProtocol & SP_PROT_TLS1_2) ? "TLS 1.2"
                        : (info.dwProtocol & SP_PROT_TLS1_1) ? "TLS 1.1"
                                                             : "TLS";
    const char *cipher = (info.aiCipher == CALG_AES_256 || info.aiCipher == CALG_AES_128 ||
                          info.aiCipher == CALG_AES)
                             ? "AES"
                             : "cipher";
    snprintf(out, size, "%s, %s-%lu", proto, cipher, (unsigned long)info.dwCipherStrength);
}

/* ---- the self-check ---------------------------------------------------------------------- */

/* Moves one side's output into the other's input buffer. */
static int pass(iocpi_tls *from, char *to_buf, size_t *to_len, size_t cap)
{
    if (*to_len + from->out_len > cap)
        return -1;
    memcpy(to_buf + *to_len, from->out, from->out_len);
    *to_len += from->out_len;
    iocpi_tls_output_taken(from);
    return 0;
}

/* Feeds buf to t until it wants more; keeps the unconsumed tail. */
static iocpi_tls_status feed(iocpi_tls *t, char *buf, size_t *len, char *plain_out,
                             size_t *plain_len)
{
    iocpi_tls_status r = IOCPI_TLS_NEED_MORE;
    while (*len > 0) {
        size_t used;
        char *plain;
        size_t n;
        r = iocpi_tls_input(t, buf, *len, &used, &plain, &n);
        if (r == IOCPI_TLS_FAILED || r == IOCPI_TLS_CLOSED)
            return r;
        if (r == IOCPI_TLS_DATA && plain_out != NULL) {
            memcpy(plain_out + *plain_len, plain, n);
            *plain_len += n;
        }
        memmove(buf, buf + used, *len - used);
        *len -= used;
        if (r == IOCPI_TLS_NEED_MORE || used == 0)
            break;
    }
    return r;
}

int iocpi_tls_self_check(iocpi_tls_creds *server, char *err, size_t err_size)
{
    iocpi_tls_creds client_creds;
    iocpi_tls c, s;
    static char to_server[32768], to_client[32768];
    size_t ts = 0, tc = 0;
    int rc = -1;
    if (iocpi_tls_creds_client(&client_creds, NULL, 1, err, err_size) != 0)
        return -1;
    iocpi_tls_init(&c, &client_creds, "localhost");
    iocpi_tls_init(&s, server, NULL);
    if (iocpi_tls_begin(&c) == IOCPI_TLS_FAILED) {
        snprintf(err, err_size, "TLS self-check, client side: %s", c.err);
        goto out;
    }
    for (int round = 0; round < 10 && !(c.established && s.established); round++) {
        if (pass(&c, to_server, &ts, sizeof to_server) != 0)
            break;
        if (feed(&s, to_server, &ts, NULL, NULL) == IOCPI_TLS_FAILED) {
            snprintf(err, err_size, "%s", s.err);
            goto out;
        }
        if (pass(&s, to_client, &tc, sizeof to_client) != 0)
            break;
        if (feed(&c, to_client, &tc, NULL, NULL) == IOCPI_TLS_FAILED) {
            snprintf(err, err_size, "TLS self-check, client side: %s", c.err);
            goto out;
        }
    }
    if (!(c.established && s.established)) {
        snprintf(err, err_size, "TLS self-check: the handshake did not finish");
        goto out;
    }
    /* A record each way, after whatever the handshake still had in flight (a 1.3 ticket). */
    pass(&s, to_client, &tc, sizeof to_client);
    const char hello[] = "iocp tls self-check";
    char plain[64];
    size_t plain_len = 0, n = 0;
    if (iocpi_tls_encrypt(&c, hello, sizeof hello, to_server + ts, &n) != 0) {
        snprintf(err, err_size, "TLS self-check, client side: %s", c.err);
        goto out;
    }
    ts += n;
    if (feed(&s, to_server, &ts, plain, &plain_len) == IOCPI_TLS_FAILED ||
        plain_len != sizeof hello || memcmp(plain, hello, sizeof hello) != 0) {
        snprintf(err, err_size, "TLS self-check: a record did not come through (%s)",
                 s.err[0] ? s.err : "wrong bytes");
        goto out;
    }
    plain_len = 0;
    if (iocpi_tls_encrypt(&s, hello, sizeof hello, to_client + tc, &n) != 0) {
        snprintf(err, err_size, "%s", s.err);
        goto out;
    }
    tc += n;
    if (feed(&c, to_client, &tc, plain, &plain_len) == IOCPI_TLS_FAILED ||
        plain_len != sizeof hello || memcmp(plain, hello, sizeof hello) != 0) {
        snprintf(err, err_size, "TLS self-check: a record did not come back (%s)",
                 c.err[0] ? c.err : "wrong bytes");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        server->error = (DWORD)(s.status != 0 ? s.status : c.status);
    iocpi_tls_fini(&c);
    iocpi_tls_fini(&s);
    iocpi_tls_creds_free(&client_creds);
    return rc;
}
