/* test_tls.c: the Schannel layer with no socket: credentials and their refusals, the
 * start-up self-check, records split and joined every way, close_notify, and the client's
 * certificate validation, with two sessions talking in memory. Certificates: tests/tls
 * (made by tests/tls/make-certs.sh). The server role needs server-side Schannel: Windows or
 * Wine 10; under Wine 8 the cases check that its absence is named instead. */
#include "harness.h"

#include <string.h>

#include "tls.h"

#ifndef IOCP_TLS_DIR
#error "IOCP_TLS_DIR must name tests/tls (set by tests/CMakeLists.txt)"
#endif

#define PASSWORD "iocp-test"

static const char *cert_path(const char *file)
{
    static char path[4][MAX_PATH * 2];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, MAX_PATH * 2, "%s/%s", IOCP_TLS_DIR, file);
    return p;
}

static void expect_refusal(int rc, const char *err, const char *want)
{
    CHECK_MSG(rc != 0, "accepted; wanted a refusal naming '%s'", want);
    CHECK_MSG(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    printf("refused: %s\n", err);
}

static void pfx_refusals(void)
{
    iocpi_tls_creds c;
    char err[400];
    expect_refusal(
        iocpi_tls_creds_from_pfx(&c, cert_path("server.pfx"), "not-the-password", err, sizeof err),
        err, "wrong password");
    /* A PFX of a certificate without its key: Windows imports it and the key is missing;
     * Wine cannot import such a PFX at all (docs/wine.md). The store case below reaches the
     * missing-key check under Wine too. */
    expect_refusal(iocpi_tls_creds_from_pfx(&c, cert_path("nokey.pfx"), PASSWORD, err, sizeof err),
                   err,
                   test_wine_major() != 0 ? "cannot open" : "no certificate with its private key");
    expect_refusal(iocpi_tls_creds_from_pfx(&c, cert_path("ca.pem"), PASSWORD, err, sizeof err),
                   err, "is not a PFX");
    expect_refusal(
        iocpi_tls_creds_from_pfx(&c, cert_path("missing.pfx"), PASSWORD, err, sizeof err), err,
        "cannot open");
    expect_refusal(iocpi_tls_creds_from_store(&c, "12 34 zz", 0, err, sizeof err), err,
                   "is not a certificate thumbprint");
    expect_refusal(iocpi_tls_creds_from_store(&c, "0123456789abcdef0123456789abcdef01234567", 0,
                                              err, sizeof err),
                   err, "no certificate with thumbprint");
}

/* The self-check passes where the server role exists, and names its absence elsewhere. */
static void self_check(void)
{
    iocpi_tls_creds c;
    char err[400] = "";
    int rc = iocpi_tls_creds_from_pfx(&c, cert_path("server.pfx"), PASSWORD, err, sizeof err);
    if (rc == 0) {
        rc = iocpi_tls_self_check(&c, err, sizeof err);
        iocpi_tls_creds_free(&c);
    }
    if (test_tls_server_role()) {
        CHECK_MSG(rc == 0, "self-check failed: %s", err);
    } else {
        CHECK_MSG(rc != 0, "the self-check passed on a system said to lack server-side TLS");
        CHECK_MSG(strstr(err, "SEC_E_UNSUPPORTED_FUNCTION") != NULL, "%s", err);
        printf("without server-side Schannel: %s\n", err);
    }
}

/* ---- two sessions in memory --------------------------------------------------------------- */

typedef struct wire {
    char *buf;
    size_t len, cap;
} wire;

static void wire_put(wire *w, iocpi_tls *from)
{
    if (w->len + from->out_len > w->cap) {
        w->cap = (w->len + from->out_len) * 2 + 65536;
        w->buf = realloc(w->buf, w->cap);
        CHECK(w->buf != NULL);
    }
    memcpy(w->buf + w->len, from->out, from->out_len);
    w->len += from->out_len;
    iocpi_tls_output_taken(from);
}

static uint32_t rng = 12345;
static uint32_t next_random(void)
{
    rng = rng * 1103515245u + 12345u;
    return rng >> 8;
}

/* Gives t the wire's bytes in random slices (1 byte to 3 records), as reads would; the
 * plaintext is appended to plain. Returns the last status. */
static iocpi_tls_status deliver(iocpi_tls *t, wire *w, wire *plain, int random_splits)
{
    static char pending[1 << 17];
    static size_t pending_len;
    iocpi_tls_status last = IOCPI_TLS_NEED_MORE;
    size_t pos = 0;
    while (pos < w->len) {
        size_t slice = w->len - pos;
        if (random_splits) {
            size_t r = next_random() % 50000 + 1;
            if (r < slice)
                slice = r;
        }
        if (slice > sizeof pending - pending_len)
            slice = sizeof pending - pending_len;
        memcpy(pending + pending_len, w->buf + pos, slice);
        pending_len += slice;
        pos += slice;
        for (;;) {
            size_t used;
            char *p;
            size_t n;
            last = iocpi_tls_input(t, pending, pending_len, &used, &p, &n);
            if (last == IOCPI_TLS_FAILED || last == IOCPI_TLS_CLOSED) {
                memmove(pending, pending + used, pending_len - used);
                pending_len -= used;
                w->len = 0;
                return last;
            }
            if (last == IOCPI_TLS_DATA) {
                if (plain->len + n > plain->cap) {
                    plain->cap = (plain->len + n) * 2;
                    plain->buf = realloc(plain->buf, plain->cap);
                    CHECK(plain->buf != NULL);
                }
                memcpy(plain->buf + plain->len, p, n);
                plain->len += n;
            }
            memmove(pending, pending + used, pending_len - used);
            pending_len -= used;
            if (last == IOCPI_TLS_NEED_MORE || pending_len == 0)
                break;
        }
    }
    w->len = 0;
    return last;
}

typedef struct pair {
    iocpi_tls_creds server_creds, client_creds;
    iocpi_tls server, client;
    wire to_server, to_client;
    wire got_server, got_client;
} pair;

/* The client's tls.revocation in handshake() (0: soft, the default). */
static int handshake_revocation;

/* Runs the handshake; returns the client's last status (FAILED when it refused the server). */
static iocpi_tls_status handshake(pair *p, const char *server_pfx, const char *ca, int insecure,
                                  const char *server_name)
{
    char err[400];
    memset(p, 0, sizeof *p);
    CHECK_MSG(iocpi_tls_creds_from_pfx(&p->server_creds, cert_path(server_pfx), PASSWORD, err,
                                       sizeof err) == 0,
              "%s", err);
    CHECK_MSG(iocpi_tls_creds_client(&p->client_creds, ca ? cert_path(ca) : NULL, insecure, err,
                                     sizeof err) == 0,
              "%s", err);
    p->client_creds.revocation = handshake_revocation;
    CHECK(iocpi_tls_init(&p->server, &p->server_creds, NULL) == 0);
    CHECK(iocpi_tls_init(&p->client, &p->client_creds, server_name) == 0);
    iocpi_tls_status c = iocpi_tls_begin(&p->client);
    for (int round = 0; round < 10 && c != IOCPI_TLS_FAILED; round++) {
        if (p->client.established && p->server.established)
            break;
        wire_put(&p->to_server, &p->client);
        iocpi_tls_status s = deliver(&p->server, &p->to_server, &p->got_server, 0);
        CHECK_MSG(s != IOCPI_TLS_FAILED, "server: %s", p->server.err);
        wire_put(&p->to_client, &p->server);
        c = deliver(&p->client, &p->to_client, &p->got_client, 0);
    }
    return c;
}

static void pair_free(pair *p)
{
    iocpi_tls_fini(&p->server);
    iocpi_tls_fini(&p->client);
    iocpi_tls_creds_free(&p->server_creds);
    iocpi_tls_creds_free(&p->client_creds);
    free(p->to_server.buf);
    free(p->to_client.buf);
    free(p->got_server.buf);
    free(p->got_client.buf);
}

/* Sends len bytes from one side as records of random sizes. */
static void send_records(iocpi_tls *from, wire *w, const char *data, size_t len)
{
    size_t max = iocpi_tls_max_record(from);
    char *record = malloc(max + iocpi_tls_overhead(from));
    CHECK(record != NULL);
    for (size_t pos = 0; pos < len;) {
        size_t n = next_random() % max + 1;
        if (n > len - pos)
            n = len - pos;
        size_t out = 0;
        CHECK_MSG(iocpi_tls_encrypt(from, data + pos, n, record, &out) == 0, "%s", from->err);
        if (w->len + out > w->cap) {
            w->cap = (w->len + out) * 2 + 65536;
            w->buf = realloc(w->buf, w->cap);
            CHECK(w->buf != NULL);
        }
        memcpy(w->buf + w->len, record, out);
        w->len += out;
        pos += n;
    }
    free(record);
}

/* Where the system has no server-side Schannel (Wine 8): a real ClientHello given to a server
 * session fails cleanly, naming SEC_E_UNSUPPORTED_FUNCTION, instead of hanging or crashing. */
static void server_role_refuses_cleanly(void)
{
    iocpi_tls_creds server, client;
    iocpi_tls s, c;
    char err[400];
    CHECK_MSG(
        iocpi_tls_creds_from_pfx(&server, cert_path("server.pfx"), PASSWORD, err, sizeof err) == 0,
        "%s", err);
    CHECK_MSG(iocpi_tls_creds_client(&client, NULL, 1, err, sizeof err) == 0, "%s", err);
    CHECK(iocpi_tls_init(&s, &server, NULL) == 0 && iocpi_tls_init(&c, &client, "localhost") == 0);
    CHECK(iocpi_tls_begin(&c) != IOCPI_TLS_FAILED && c.out_len > 0);
    size_t used, n;
    char *p;
    CHECK(iocpi_tls_input(&s, c.out, c.out_len, &used, &p, &n) == IOCPI_TLS_FAILED);
    CHECK_MSG(s.status == SEC_E_UNSUPPORTED_FUNCTION, "%s", s.err);
    printf("no server-side Schannel here, refused cleanly: %s\n", s.err);
    iocpi_tls_fini(&s);
    iocpi_tls_fini(&c);
    iocpi_tls_creds_free(&server);
    iocpi_tls_creds_free(&client);
}

/* 1 MiB each way in records of random sizes, delivered in random slices: partial records,
 * several records in one read, one record over many reads. Then close_notify both ways. */
static void records_every_split(void)
{
    if (!test_tls_server_role()) {
        server_role_refuses_cleanly();
        return;
    }
    pair p;
    CHECK_MSG(handshake(&p, "server.pfx", "ca.pem", 0, "localhost") != IOCPI_TLS_FAILED, "%s",
              p.client.err);
    CHECK(p.client.established && p.server.established);
    char described[100];
    iocpi_tls_describe(&p.server, described, sizeof described);
    printf("negotiated: %s\n", described);
    CHECK(strncmp(described, "TLS 1.", 6) == 0);

    size_t size = 1 << 20;
    char *data = malloc(size);
    CHECK(data != NULL);
    for (size_t i = 0; i < size; i++)
        data[i] = (char)next_random();
    send_records(&p.client, &p.to_server, data, size);
    CHECK_MSG(deliver(&p.server, &p.to_server, &p.got_server, 1) != IOCPI_TLS_FAILED, "%s",
              p.server.err);
    CHECK_MSG(p.got_server.len == size, "server got %zu of %zu", p.got_server.len, size);
    CHECK(memcmp(p.got_server.buf, data, size) == 0);
    send_records(&p.server, &p.to_client, data, size);
    CHECK_MSG(deliver(&p.client, &p.to_client, &p.got_client, 1) != IOCPI_TLS_FAILED, "%s",
              p.client.err);
    CHECK_MSG(p.got_client.len == size, "client got %zu of %zu", p.got_client.len, size);
    CHECK(memcmp(p.got_client.buf, data, size) == 0);

    /* The client closes: the server sees close_notify, and answers with its own. */
    CHECK_MSG(iocpi_tls_shutdown(&p.client) == 0, "%s", p.client.err);
    CHECK(p.client.out_len > 0);
    wire_put(&p.to_server, &p.client);
    CHECK(deliver(&p.server, &p.to_server, &p.got_server, 0) == IOCPI_TLS_CLOSED);
    CHECK_MSG(iocpi_tls_shutdown(&p.server) == 0, "%s", p.server.err);
    wire_put(&p.to_client, &p.server);
    CHECK(deliver(&p.client, &p.to_client, &p.got_client, 0) == IOCPI_TLS_CLOSED);
    free(data);
    pair_free(&p);
}

/* The client refuses what the chain engine refuses, naming why, unless told otherwise. */
static void client_validation(void)
{
    if (!test_tls_server_role()) {
        server_role_refuses_cleanly();
        return;
    }
    static const struct {
        const char *pfx, *ca, *name;
        int insecure;
        const char *want; /* NULL: accepted */
    } cases[] = {
        {"server.pfx", "ca.pem", "localhost", 0, NULL},
        {"server.pfx", NULL, "localhost", 0, "trusted root"},
        {"server.pfx", "ca.pem", "other.example", 0, "does not match"},
        {"wronghost.pfx", "ca.pem", "localhost", 0, "does not match"},
        {"expired.pfx", "ca.pem", "localhost", 0, "expired"},
        {"selfsigned.pfx", "ca.pem", "localhost", 0, "trusted root"},
        {"selfsigned.pfx", NULL, "localhost", 1, NULL},
        {"expired.pfx", NULL, "wrong.example", 1, NULL},
        /* The three-level chain. Which certificates a Schannel server sends is its own
         * affair (Wine 10 sends the leaf only, docs/wine.md; tls_real_peers.sh has a server
         * that sends the intermediate): here the CA file supplies the intermediate. */
        {"chain-leaf.pfx", "chain-cas.pem", "localhost", 0, NULL},
        {"chain-leaf.pfx", "ca.pem", "localhost", 0, "no chain to a trusted root"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pair p;
        iocpi_tls_status c =
            handshake(&p, cases[i].pfx, cases[i].ca, cases[i].insecure, cases[i].name);
        printf("%s, ca %s, name %s%s: %s\n", cases[i].pfx, cases[i].ca ? cases[i].ca : "-",
               cases[i].name, cases[i].insecure ? ", insecure" : "",
               c == IOCPI_TLS_FAILED ? p.client.err : "accepted");
        if (cases[i].want == NULL) {
            CHECK_MSG(c != IOCPI_TLS_FAILED && p.client.established, "refused: %s", p.client.err);
        } else {
            CHECK_MSG(c == IOCPI_TLS_FAILED, "accepted %s for %s", cases[i].pfx, cases[i].name);
            CHECK_MSG(strstr(p.client.err, cases[i].want) != NULL, "'%s' lacks '%s'", p.client.err,
                      cases[i].want);
            CHECK(p.client.chain_error != 0);
        }
        pair_free(&p);
    }
}

/* A CA file makes a chain engine that trusts its roots only (hExclusiveRoot), as Windows 7
 * and later document; where a system refuses one, the default engine with the root check
 * stands in (client_validation and tls_real_peers.sh check the result either way). */
static void ca_file_engine(void)
{
    iocpi_tls_creds c;
    char err[400];
    CHECK_MSG(iocpi_tls_creds_client(&c, cert_path("chain-root.pem"), 0, err, sizeof err) == 0,
              "%s", err);
    printf("exclusive-root chain engine: %s\n", c.chain_engine != NULL ? "made" : "refused");
    if (test_wine_major() == 0)
        CHECK_MSG(c.chain_engine != NULL, "Windows refused hExclusiveRoot");
    iocpi_tls_creds_free(&c);
    CHECK(iocpi_tls_creds_client(&c, NULL, 0, err, sizeof err) == 0);
    CHECK(c.chain_engine == NULL);
    iocpi_tls_creds_free(&c);
}

/* Plaintext where a ClientHello belongs: the server fails the handshake, naming it. */
static void plaintext_is_refused(void)
{
    iocpi_tls_creds c;
    iocpi_tls s;
    char err[400];
    CHECK_MSG(iocpi_tls_creds_from_pfx(&c, cert_path("server.pfx"), PASSWORD, err, sizeof err) == 0,
              "%s", err);
    CHECK(iocpi_tls_init(&s, &c, NULL) == 0);
    char hello[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    size_t used;
    char *p;
    size_t n;
    iocpi_tls_status r = iocpi_tls_input(&s, hello, sizeof hello - 1, &used, &p, &n);
    printf("plaintext: status %d, %s\n", (int)r, s.err);
    CHECK(r == IOCPI_TLS_FAILED);
    CHECK(s.err[0] != '\0');
    iocpi_tls_fini(&s);
    iocpi_tls_creds_free(&c);
}

/* The client's side of the same: a plaintext server that echoes the ClientHello back, or
 * answers with text, is named as "did not answer TLS" before Schannel sees it (Schannel's
 * own status for it ranges from SEC_E_ILLEGAL_MESSAGE to Wine's SEC_E_INTERNAL_ERROR).
 * Needs no server role, so it runs on every Wine. */
static void client_names_a_plaintext_server(void)
{
    iocpi_tls_creds c;
    char err[400];
    CHECK_MSG(iocpi_tls_creds_client(&c, NULL, 1, err, sizeof err) == 0, "%s", err);
    for (int round = 0; round < 2; round++) {
        iocpi_tls t;
        CHECK(iocpi_tls_init(&t, &c, "localhost") == 0);
        CHECK(iocpi_tls_begin(&t) == IOCPI_TLS_PROGRESS);
        CHECK(t.out_len > 6 && (unsigned char)t.out[0] == 22 && t.out[5] == 1);
        static char reply[65536];
        size_t len = t.out_len < sizeof reply ? t.out_len : sizeof reply;
        const char *want = "the server did not answer TLS (it sent our ClientHello back";
        if (round == 0) {
            memcpy(reply, t.out, len); /* an echo server */
        } else {
            len = (size_t)snprintf(reply, sizeof reply, "HTTP/1.1 400 Bad Request\r\n\r\n");
            want = "the server did not answer TLS (first byte 0x48";
        }
        t.out_len = 0;
        size_t used;
        char *p;
        size_t n;
        /* Five bytes cannot tell a ServerHello from our ClientHello yet: wait for more. */
        iocpi_tls_status r =
            round == 0 ? iocpi_tls_input(&t, reply, 5, &used, &p, &n) : IOCPI_TLS_NEED_MORE;
        CHECK(r == IOCPI_TLS_NEED_MORE);
        r = iocpi_tls_input(&t, reply, len, &used, &p, &n);
        printf("reply %d: status %d, %s\n", round, (int)r, t.err);
        CHECK(r == IOCPI_TLS_FAILED);
        CHECK_MSG(strstr(t.err, want) != NULL, "'%s' lacks '%s'", t.err, want);
        iocpi_tls_fini(&t);
    }
    iocpi_tls_creds_free(&c);
}

/* Reads a whole file into a fresh buffer. */
static BYTE *slurp(const char *path, DWORD *len)
{
    HANDLE f = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    CHECK_MSG(f != INVALID_HANDLE_VALUE, "cannot open %s", path);
    static BYTE buf[65536];
    CHECK(ReadFile(f, buf, sizeof buf, len, NULL));
    CloseHandle(f);
    return buf;
}

/* out: room for 41 characters (40 hex digits and the terminator). */
static void thumbprint_of(PCCERT_CONTEXT cert, char *out)
{
    BYTE hash[20];
    DWORD n = sizeof hash;
    CHECK(CertGetCertificateContextProperty(cert, CERT_HASH_PROP_ID, hash, &n) && n == 20);
    for (int i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02X", hash[i]);
}

/* Credentials by thumbprint from CurrentUser\My, the console's store: a certificate with
 * its key works (the self-check passes where the server role exists), one without is refused
 * naming the missing key. */
static void store_certificates(void)
{
    HCERTSTORE my =
        CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, CERT_SYSTEM_STORE_CURRENT_USER, L"MY");
    CHECK(my != NULL);
    char err[400], thumb[64];
    iocpi_tls_creds c;

    /* Without its key: the PEM certificate alone. */
    DWORD len;
    BYTE *pem = slurp(cert_path("wronghost-cert.pem"), &len);
    BYTE der[8192];
    DWORD der_len = sizeof der;
    CHECK(CryptStringToBinaryA((const char *)pem, len, CRYPT_STRING_BASE64HEADER, der, &der_len,
                               NULL, NULL));
    PCCERT_CONTEXT bare = NULL;
    CHECK(CertAddEncodedCertificateToStore(my, X509_ASN_ENCODING, der, der_len,
                                           CERT_STORE_ADD_REPLACE_EXISTING, &bare));
    thumbprint_of(bare, thumb);
    /* Written through now (Wine's registry store writes at close otherwise). */
    CertControlStore(my, 0, CERT_STORE_CTRL_COMMIT, NULL);
    expect_refusal(iocpi_tls_creds_from_store(&c, thumb, 0, err, sizeof err), err,
                   "has no private key");
    CertDeleteCertificateFromStore(bare);

    /* With its key, from the PFX; the thumbprint as the certificate dialog shows it. */
    BYTE *pfx = slurp(cert_path("server.pfx"), &len);
    CRYPT_DATA_BLOB blob = {len, pfx};
    HCERTSTORE imported = PFXImportCertStore(&blob, L"" PASSWORD, 0);
    CHECK(imported != NULL);
    PCCERT_CONTEXT cert = NULL, added = NULL;
    while ((cert = CertEnumCertificatesInStore(imported, cert)) != NULL) {
        DWORD size = 0;
        if (CertGetCertificateContextProperty(cert, CERT_KEY_PROV_INFO_PROP_ID, NULL, &size)) {
            CHECK(CertAddCertificateContextToStore(my, cert, CERT_STORE_ADD_REPLACE_EXISTING,
                                                   &added));
            CertFreeCertificateContext(cert);
            break;
        }
    }
    CHECK(added != NULL);
    CertControlStore(my, 0, CERT_STORE_CTRL_COMMIT, NULL);
    char spaced[80];
    thumbprint_of(added, thumb);
    for (int i = 0, o = 0; i < 40; i += 2) {
        spaced[o++] = thumb[i];
        spaced[o++] = (char)(thumb[i + 1] | 0x20); /* lower case too */
        spaced[o++] = i < 38 ? ' ' : '\0';
    }
    int rc = iocpi_tls_creds_from_store(&c, spaced, 0, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    rc = iocpi_tls_self_check(&c, err, sizeof err);
    CHECK_MSG(rc == 0 || !test_tls_server_role(), "self-check: %s", err);
    iocpi_tls_creds_free(&c);
    CertDeleteCertificateFromStore(added);
    CertCloseStore(imported, 0);
    CertCloseStore(my, 0);
}

/* tls.revocation: every mode builds from the cache only (never a wait on the network under
 * the connection's lock); soft refuses only a certificate known revoked, hard an unknown or
 * offline status too, off nothing. */
static void revocation_modes(void)
{
    const DWORD cache_only = CERT_CHAIN_CACHE_ONLY_URL_RETRIEVAL;
    const DWORD check = CERT_CHAIN_REVOCATION_CHECK_CHAIN_EXCLUDE_ROOT | 0x80000000u;
    iocpi_tls_revocation_plan off = iocpi_tls_revocation(IOCP_TLS_REVOCATION_OFF);
    iocpi_tls_revocation_plan soft = iocpi_tls_revocation(IOCP_TLS_REVOCATION_SOFT);
    iocpi_tls_revocation_plan hard = iocpi_tls_revocation(IOCP_TLS_REVOCATION_HARD);
    CHECK_EQ_U(off.chain_flags, cache_only); /* the policy's chain never has revocation */
    CHECK_EQ_U(soft.chain_flags, cache_only);
    CHECK_EQ_U(hard.chain_flags, cache_only);
    CHECK_EQ_U(off.revocation_flags, 0);
    CHECK_EQ_U(soft.revocation_flags, cache_only | check);
    CHECK_EQ_U(hard.revocation_flags, cache_only | check);
    CHECK_EQ_U(IOCP_TLS_REVOCATION_SOFT, 0); /* a zeroed config is soft-fail */

#define unknown CERT_TRUST_REVOCATION_STATUS_UNKNOWN
#define offline (CERT_TRUST_IS_OFFLINE_REVOCATION | CERT_TRUST_REVOCATION_STATUS_UNKNOWN)
#define revoked CERT_TRUST_IS_REVOKED
    static const struct {
        int mode;
        DWORD status;
        DWORD refusal;
    } rows[] = {
        {IOCP_TLS_REVOCATION_OFF, 0, 0},
        {IOCP_TLS_REVOCATION_OFF, unknown, 0},
        {IOCP_TLS_REVOCATION_OFF, revoked, 0},
        {IOCP_TLS_REVOCATION_SOFT, 0, 0},
        {IOCP_TLS_REVOCATION_SOFT, unknown, 0},
        {IOCP_TLS_REVOCATION_SOFT, offline, 0},
        {IOCP_TLS_REVOCATION_SOFT, revoked, (DWORD)CERT_E_REVOKED},
        {IOCP_TLS_REVOCATION_SOFT, revoked | unknown, (DWORD)CERT_E_REVOKED},
        {IOCP_TLS_REVOCATION_HARD, 0, 0},
        {IOCP_TLS_REVOCATION_HARD, unknown, (DWORD)CRYPT_E_NO_REVOCATION_CHECK},
        {IOCP_TLS_REVOCATION_HARD, offline, (DWORD)CRYPT_E_REVOCATION_OFFLINE},
        {IOCP_TLS_REVOCATION_HARD, revoked | offline, (DWORD)CERT_E_REVOKED},
        {IOCP_TLS_REVOCATION_HARD, CERT_TRUST_IS_NOT_TIME_VALID, 0}, /* not revocation's */
    };
#undef unknown
#undef offline
#undef revoked
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        DWORD got = iocpi_tls_revocation_error(rows[i].mode, rows[i].status);
        CHECK_MSG(got == rows[i].refusal, "row %u: mode %d status 0x%lx gave 0x%08lx, not 0x%08lx",
                  (unsigned)i, rows[i].mode, (unsigned long)rows[i].status, (unsigned long)got,
                  (unsigned long)rows[i].refusal);
    }
}

/* The test certificates name no CRL or OCSP responder, so their revocation status is unknown:
 * soft (the default) and off accept the server, hard refuses it, naming why. */
static void revocation_unknown_status(void)
{
    if (!test_tls_server_role())
        return; /* Wine 8: no server role to hand-shake with (client_validation says so) */
    static const struct {
        int mode;
        const char *want; /* NULL: accepted */
    } cases[] = {
        {IOCP_TLS_REVOCATION_SOFT, NULL},
        {IOCP_TLS_REVOCATION_OFF, NULL},
        {IOCP_TLS_REVOCATION_HARD, "revocation status unknown"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pair p;
        handshake_revocation = cases[i].mode;
        iocpi_tls_status c = handshake(&p, "server.pfx", "ca.pem", 0, "localhost");
        handshake_revocation = 0;
        printf("revocation %d: %s\n", cases[i].mode,
               c == IOCPI_TLS_FAILED ? p.client.err : "accepted");
        if (cases[i].want == NULL) {
            CHECK_MSG(c != IOCPI_TLS_FAILED && p.client.established, "refused: %s", p.client.err);
        } else {
            CHECK_MSG(c == IOCPI_TLS_FAILED, "mode %d accepted a certificate with no CRL",
                      cases[i].mode);
            CHECK_MSG(strstr(p.client.err, cases[i].want) != NULL, "'%s' lacks '%s'", p.client.err,
                      cases[i].want);
        }
        pair_free(&p);
    }
}

/* TLS 1.3 offered from build 20348 (as curl does), not before; and the build is read. */
static void tls13_by_build(void)
{
    CHECK(!iocpi_tls13_sound(0));
    CHECK(!iocpi_tls13_sound(17763)); /* 1809: SCH_CREDENTIALS, unsound 1.3 */
    CHECK(!iocpi_tls13_sound(19045)); /* Windows 10 22H2, what Wine reports */
    CHECK(!iocpi_tls13_sound(20347));
    CHECK(iocpi_tls13_sound(20348)); /* Windows Server 2022 */
    CHECK(iocpi_tls13_sound(22000)); /* Windows 11 */
    unsigned long build = iocpi_windows_build();
    printf("this system reports build %lu: TLS 1.3 %s\n", build,
           iocpi_tls13_sound(build) ? "offered" : "not offered");
    CHECK_MSG(build >= 2600, "RtlGetVersion gave build %lu", build);
}

static const test_case cases[] = {
    {"pfx_refusals", pfx_refusals},
    {"self_check", self_check},
    {"store_certificates", store_certificates},
    {"records_every_split", records_every_split},
    {"client_validation", client_validation},
    {"plaintext_is_refused", plaintext_is_refused},
    {"client_names_a_plaintext_server", client_names_a_plaintext_server},
    {"ca_file_engine", ca_file_engine},
    {"revocation_modes", revocation_modes},
    {"revocation_unknown_status", revocation_unknown_status},
    {"tls13_by_build", tls13_by_build},
};

TEST_MAIN(cases)
