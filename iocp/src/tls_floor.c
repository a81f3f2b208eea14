/*
 * tls_floor.c: the engine holds its TLS floor itself.
 *
 * The credentials ask Schannel for the floor (tls_creds.c: the protocols below the minimum
 * disabled, CBC ciphers and RSA key exchange refused through CRYPTO_SETTINGS), but a system
 * may not honour the request: Wine's Schannel (GnuTLS underneath) negotiates TLS 1.0 and
 * static-RSA CBC suites whatever the credentials say (docs/wine.md). So the floor is held here
 * twice, whatever Schannel does:
 *
 *   - before the handshake (server): the ClientHello is read (tls_hello.c) and one whose
 *     highest offered version is below the minimum is answered with a fatal protocol_version
 *     alert, one that offers no suite the floor accepts with insufficient_security; Schannel
 *     never sees it, so a scanner finds those protocols and suites "not offered";
 *   - after the handshake (both roles): the negotiated protocol and cipher suite are read back
 *     (SECPKG_ATTR_CONNECTION_INFO, SECPKG_ATTR_CIPHER_INFO) and a session below the floor
 *     fails before any application byte crosses it: the server replaces its last flight (its
 *     ChangeCipherSpec and Finished) with a fatal alert, so the client's handshake never
 *     completes; the client sends nothing more and closes.
 *
 * The suite floor: forward secrecy (ECDHE or DHE key exchange) always, and an AEAD cipher (GCM,
 * CCM, ChaCha20-Poly1305) on TLS 1.2 and later. TLS 1.0 and 1.1 have no AEAD suite, so an
 * engine allowed to speak them (min_version below 1.2) accepts their CBC suites.
 */
#include "tls.h"

#ifndef SP_PROT_TLS1_3_SERVER
#define SP_PROT_TLS1_3_SERVER 0x00001000
#define SP_PROT_TLS1_3_CLIENT 0x00002000
#endif

#define ALERT_DECODE_ERROR          50u
#define ALERT_PROTOCOL_VERSION      70u
#define ALERT_INSUFFICIENT_SECURITY 71u

static unsigned min_version(const iocpi_tls *t)
{
    return t->creds->min_version != 0 ? t->creds->min_version : IOCPI_TLS_V1_2;
}

unsigned iocpi_tls_wire_version(DWORD p)
{
    return (p & (SP_PROT_TLS1_3_SERVER | SP_PROT_TLS1_3_CLIENT)) ? IOCPI_TLS_V1_3
           : (p & SP_PROT_TLS1_2)                                ? IOCPI_TLS_V1_2
           : (p & SP_PROT_TLS1_1)                                ? IOCPI_TLS_V1_1
           : (p & SP_PROT_TLS1_0)                                ? IOCPI_TLS_V1_0
           : (p & SP_PROT_SSL3)                                  ? 0x0300u
                                                                 : 0u;
}

/* The record version of an alert sent before the handshake settled one: the client's own,
 * within 3.1 .. 3.3 (what a TLS 1.0 client expects, and what TLS 1.3 uses on the wire). */
static unsigned alert_version(unsigned v)
{
    return v < IOCPI_TLS_V1_0 ? IOCPI_TLS_V1_0 : v > IOCPI_TLS_V1_2 ? IOCPI_TLS_V1_2 : v;
}

static int append_alert(iocpi_tls *t, unsigned version, unsigned description)
{
    uint8_t alert[IOCPI_TLS_ALERT_LEN];
    size_t n = iocpi_tls_alert(alert, alert_version(version), description);
    if (t->out_cap - t->out_len < n) {
        size_t cap = t->out_len + 64;
        char *p = realloc(t->out, cap);
        if (p == NULL)
            return -1;
        t->out = p;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, alert, n);
    t->out_len += n;
    return 0;
}

/* The suites a certificate can serve, by its key (IOCPI_TLS_AUTH_*): an RSA key signs for
 * ..._RSA_WITH_... suites, an EC key for ..._ECDSA_WITH_...; another key, both (the check
 * after the handshake still holds the floor). */
static unsigned certificate_auth(PCCERT_CONTEXT cert)
{
    const char *oid =
        cert != NULL ? cert->pCertInfo->SubjectPublicKeyInfo.Algorithm.pszObjId : NULL;
    if (oid != NULL && strcmp(oid, szOID_RSA_RSA) == 0)
        return IOCPI_TLS_AUTH_RSA;
    if (oid != NULL && strcmp(oid, szOID_ECC_PUBLIC_KEY) == 0)
        return IOCPI_TLS_AUTH_ECDSA;
    return IOCPI_TLS_AUTH_RSA | IOCPI_TLS_AUTH_ECDSA;
}

iocpi_tls_status iocpi_tls_floor_hello(iocpi_tls *t, const char *in, size_t len)
{
    iocpi_hello h;
    char offered[32], floor[32];
    if (t->hello_checked)
        return IOCPI_TLS_PROGRESS;
    /* Read again only once the record it waits for is whole: a ClientHello dribbled a byte
     * per read costs one parse per record (at most IOCPI_HELLO_MAX_RECORDS), not per read. */
    if (len < t->hello_need)
        return IOCPI_TLS_NEED_MORE;
    iocpi_hello_result r = iocpi_hello_parse((const uint8_t *)in, len, &h);
    if (r == IOCPI_HELLO_NEED_MORE) {
        t->hello_need = h.need; /* bounded: IOCPI_HELLO_WIRE_MAX < the receive buffer */
        return IOCPI_TLS_NEED_MORE;
    }
    /* The suite floor, as the negotiated version will need it: from TLS 1.2 on (the server
     * takes the highest version both speak) forward secrecy with an AEAD cipher, below it
     * forward secrecy; among the suites this certificate can serve. A client offering none
     * gets insufficient_security here rather than a handshake the check after it would fail:
     * a scanner asking for CBC-only or static-RSA suites then finds them not offered. */
    unsigned usable = IOCPI_TLS_AUTH_ANY | certificate_auth(t->creds->cert);
    int suites_ok = t->creds->legacy_suites ||
                    ((h.highest >= IOCPI_TLS_V1_2 ? h.offers_fs_aead : h.offers_fs) & usable) != 0;
    if (r == IOCPI_HELLO_OK && h.highest >= min_version(t) && suites_ok) {
        t->hello_checked = 1;
        return IOCPI_TLS_PROGRESS;
    }
    t->status = SEC_E_ILLEGAL_MESSAGE;
    unsigned alert = ALERT_DECODE_ERROR;
    if (r == IOCPI_HELLO_OK && h.highest >= min_version(t)) {
        t->status = SEC_E_ALGORITHM_MISMATCH;
        t->below_floor = 1;
        alert = ALERT_INSUFFICIENT_SECURITY;
        snprintf(t->err, sizeof t->err,
                 "the client offered no cipher suite %s (insufficient_security alert sent)",
                 h.highest >= IOCPI_TLS_V1_2 ? "with forward secrecy and an AEAD cipher"
                                             : "with forward secrecy");
    } else if (r == IOCPI_HELLO_OK) {
        alert = ALERT_PROTOCOL_VERSION;
        t->status = SEC_E_ALGORITHM_MISMATCH;
        t->below_floor = 1;
        snprintf(t->err, sizeof t->err,
                 "the client offered at most %s, below the minimum %s (protocol_version alert "
                 "sent)",
                 iocpi_tls_version_name(h.highest, offered, sizeof offered),
                 iocpi_tls_version_name(min_version(t), floor, sizeof floor));
    } else if (r == IOCPI_HELLO_TOO_LARGE) {
        snprintf(t->err, sizeof t->err, "a ClientHello not whole within %u bytes",
                 (unsigned)IOCPI_HELLO_WIRE_MAX);
    } else {
        snprintf(t->err, sizeof t->err, "a malformed ClientHello: %s", h.error);
    }
    if (append_alert(t, h.record_version, alert) != 0)
        t->status = SEC_E_INSUFFICIENT_MEMORY;
    return IOCPI_TLS_FAILED;
}

/* A suite not in the table, by the IANA name Schannel reports ("TLS_ECDHE_RSA_WITH_..."):
 * forward secret when its key exchange is ECDHE or DHE, AEAD when its cipher is GCM, CCM or
 * ChaCha20-Poly1305. Without a name nothing is known: both are 0 (refused). */
static void judge_by_name(const char *name, iocpi_tls_suite *s)
{
    s->forward_secret =
        (unsigned char)(strncmp(name, "TLS_ECDHE_", 10) == 0 || strncmp(name, "TLS_DHE_", 8) == 0);
    s->aead = (unsigned char)(strstr(name, "_GCM") != NULL || strstr(name, "_CCM") != NULL ||
                              strstr(name, "POLY1305") != NULL);
}

/* The negotiated suite: its number and name from SECPKG_ATTR_CIPHER_INFO. 0, or -1 when the
 * system does not say (then the connection info's key exchange is all there is). */
static int negotiated_suite(iocpi_tls *t, iocpi_tls_suite *out, char *name, size_t name_size)
{
    SecPkgContext_CipherInfo ci;
    memset(&ci, 0, sizeof ci);
    memset(out, 0, sizeof *out);
    name[0] = '\0';
    if (QueryContextAttributesW(&t->ctx, SECPKG_ATTR_CIPHER_INFO, &ci) != SEC_E_OK)
        return -1;
    out->id = (unsigned short)ci.dwCipherSuite;
    const iocpi_tls_suite *known = iocpi_tls_suite_find(out->id);
    if (known != NULL) {
        *out = *known;
        snprintf(name, name_size, "%s (0x%04x)", known->name, (unsigned)out->id);
        return 0;
    }
    /* Not a suite the table knows (or no number: Wine 10 gives 0 for some): by its name. */
    char text[SZ_ALG_MAX_SIZE * 3];
    ci.szCipherSuite[SZ_ALG_MAX_SIZE - 1] = L'\0';
    if (WideCharToMultiByte(CP_UTF8, 0, ci.szCipherSuite, -1, text, (int)sizeof text, NULL, NULL) ==
        0)
        text[0] = '\0';
    snprintf(name, name_size, "%s (0x%04x)", text[0] != '\0' ? text : "a suite", (unsigned)out->id);
    judge_by_name(text, out);
    return 0;
}

int iocpi_tls_floor_check(iocpi_tls *t)
{
    SecPkgContext_ConnectionInfo info;
    char version[32], floor[32], suite_name[200], why[120] = "";
    memset(&info, 0, sizeof info);
    SECURITY_STATUS s = QueryContextAttributesW(&t->ctx, SECPKG_ATTR_CONNECTION_INFO, &info);
    unsigned v = s == SEC_E_OK ? iocpi_tls_wire_version(info.dwProtocol) : 0;
    const char *peer = t->creds->server ? "the client" : "the server";
    unsigned alert = ALERT_PROTOCOL_VERSION;
    iocpi_tls_version_name(v, version, sizeof version);
    iocpi_tls_version_name(min_version(t), floor, sizeof floor);
    if (v < min_version(t)) {
        snprintf(t->err, sizeof t->err,
                 "%s negotiated %s, below the minimum %s (--tls-min-version)", peer,
                 v != 0 ? version : "an unknown protocol", floor);
    } else if (!t->creds->legacy_suites && v < IOCPI_TLS_V1_3) {
        iocpi_tls_suite suite;
        if (negotiated_suite(t, &suite, suite_name, sizeof suite_name) != 0) {
            /* No cipher info: the connection info still tells the key exchange. */
            snprintf(suite_name, sizeof suite_name, "key exchange 0x%04x", (unsigned)info.aiExch);
            suite.forward_secret =
                (unsigned char)(info.aiExch == CALG_ECDH_EPHEM || info.aiExch == CALG_DH_EPHEM);
            suite.aead = 1; /* not knowable here: only forward secrecy is held */
        }
        /* CBC only counts from TLS 1.2 on: below it there is nothing else to choose. */
        int cbc = !suite.aead && v >= IOCPI_TLS_V1_2, static_kx = !suite.forward_secret;
        if (cbc || static_kx)
            snprintf(why, sizeof why, "%s%s%s", cbc ? "no AEAD cipher (CBC)" : "",
                     cbc && static_kx ? " and " : "",
                     static_kx ? "no forward secrecy (static RSA key exchange)" : "");
        if (why[0] != '\0') {
            alert = ALERT_INSUFFICIENT_SECURITY;
            snprintf(t->err, sizeof t->err, "%s negotiated %s with %s: %s, below the suite floor",
                     peer, version, suite_name, why);
        }
    }
    if (v >= min_version(t) && why[0] == '\0')
        return 0;
    t->below_floor = 1;
    t->status = SEC_E_ALGORITHM_MISMATCH;
    /* Nothing of the last flight goes out: the peer's handshake never completes. */
    t->out_len = 0;
    if (t->creds->server)
        append_alert(t, v != 0 ? v : IOCPI_TLS_V1_2, alert);
    return -1;
}
