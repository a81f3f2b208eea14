/* test_tls_keys.c: the private keys PFX imports persist. Credentials made while another import
 * of the same user runs beside them must hold their own file's key (Wine's imports all share
 * the user's default key container: docs/wine.md, "Concurrent PFX imports share one key
 * container"). */
#include "harness.h"

#include <string.h>

#include "tls.h"

#ifndef IOCP_TLS_DIR
#error "IOCP_TLS_DIR must name tests/tls (set by tests/CMakeLists.txt)"
#endif

#define PASSWORD  "iocp-test"
#define WPASSWORD L"iocp-test"

static const char *cert_path(const char *file)
{
    static char path[4][MAX_PATH * 2];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, MAX_PATH * 2, "%s/%s", IOCP_TLS_DIR, file);
    return p;
}

static BYTE *read_whole(const char *path, DWORD *len)
{
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    static BYTE buf[65536];
    *len = (DWORD)fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(*len > 0 && *len < sizeof buf);
    BYTE *copy = malloc(*len);
    CHECK(copy != NULL);
    memcpy(copy, buf, *len);
    return copy;
}

/* Whether the key the certificate's properties lead to is the certificate's own: checked
 * through the documented calls a Schannel implementation uses (CryptAcquireCertificatePrivateKey),
 * not through the engine's code. */
static int key_is_certificates(PCCERT_CONTEXT cert)
{
    HCRYPTPROV_OR_NCRYPT_KEY_HANDLE key = 0;
    DWORD spec = 0, size = 0;
    BOOL must_free = FALSE;
    int match = 0;
    if (!CryptAcquireCertificatePrivateKey(cert, CRYPT_ACQUIRE_ALLOW_NCRYPT_KEY_FLAG, NULL, &key,
                                           &spec, &must_free) &&
        !CryptAcquireCertificatePrivateKey(cert, 0, NULL, &key, &spec, &must_free))
        return 0;
    if (CryptExportPublicKeyInfo(key, spec, X509_ASN_ENCODING, NULL, &size)) {
        CERT_PUBLIC_KEY_INFO *info = malloc(size);
        if (info != NULL && CryptExportPublicKeyInfo(key, spec, X509_ASN_ENCODING, info, &size))
            match = CertComparePublicKeyInfo(X509_ASN_ENCODING, info,
                                             &cert->pCertInfo->SubjectPublicKeyInfo) != 0;
        free(info);
    }
    if (must_free) {
        if (spec == CERT_NCRYPT_KEY_SPEC)
            NCryptFreeObject(key);
        else
            CryptReleaseContext(key, 0);
    }
    return match;
}

/* ---- another import beside ours ------------------------------------------------------------ */

typedef struct other_import {
    volatile LONG stop;
    volatile LONG imports;
    CRYPT_DATA_BLOB pfx;
} other_import;

/* server.pfx imported as any program would (flags 0), as fast as it goes, until told to stop.
 * Where the import made a container of its own (Windows), it is deleted again. */
static DWORD WINAPI import_loop(void *arg)
{
    other_import *o = arg;
    while (InterlockedCompareExchange(&o->stop, 0, 0) == 0) {
        HCERTSTORE store = PFXImportCertStore(&o->pfx, WPASSWORD, 0);
        if (store == NULL)
            continue;
        PCCERT_CONTEXT cert = NULL;
        while ((cert = CertEnumCertificatesInStore(store, cert)) != NULL) {
            CRYPT_KEY_PROV_INFO *info = iocpi_tls_key_prov_info(cert);
            if (info != NULL && info->dwProvType != 0 &&
                !iocpi_tls_default_container(info->pwszContainerName)) {
                HCRYPTPROV prov = 0;
                CryptAcquireContextW(&prov, info->pwszContainerName, info->pwszProvName,
                                     info->dwProvType, CRYPT_DELETEKEYSET);
            }
            free(info);
        }
        CertCloseStore(store, 0);
        InterlockedIncrement(&o->imports);
    }
    return 0;
}

static HANDLE start_other_import(other_import *o, const char *file)
{
    memset(o, 0, sizeof *o);
    o->pfx.pbData = read_whole(cert_path(file), &o->pfx.cbData);
    HANDLE t = CreateThread(NULL, 0, import_loop, o, 0, NULL);
    CHECK(t != NULL);
    /* Running before the first of ours: its first import has finished. */
    uint64_t deadline = test_now_ms() + 30000;
    while (InterlockedCompareExchange(&o->imports, 0, 0) == 0 && test_now_ms() < deadline)
        SwitchToThread();
    CHECK_MSG(o->imports > 0, "the other import never finished one import of %s", file);
    return t;
}

static void stop_other_import(other_import *o, HANDLE t)
{
    InterlockedExchange(&o->stop, 1);
    CHECK(WaitForSingleObject(t, 60000) == WAIT_OBJECT_0);
    CloseHandle(t);
    free(o->pfx.pbData);
    printf("the other import ran %ld times\n", (long)o->imports);
}

#define ROUNDS 20

/* The CI failure of test_tls_engine.real_peers (docs/wine.md): a client importing client.pfx
 * while server.pfx is imported beside it got Schannel's "certificate and key do not match"
 * (SEC_E_INTERNAL_ERROR), or credentials with the other file's key. Every round must acquire,
 * and the key the certificate names must be client.pfx's own, still after the credentials
 * are acquired (the other import goes on writing). */
static void concurrent_imports_keep_their_keys(void)
{
    other_import o;
    HANDLE t = start_other_import(&o, "server.pfx");
    int failed = 0, wrong_key = 0;
    char first_err[400] = "";
    for (int i = 0; i < ROUNDS; i++) {
        iocpi_tls_creds c;
        char err[400];
        if (iocpi_tls_creds_client_cert(&c, NULL, 1, cert_path("client.pfx"), PASSWORD, err,
                                        sizeof err) != 0) {
            if (failed++ == 0)
                snprintf(first_err, sizeof first_err, "%s", err);
            continue;
        }
        /* Acquired again, as a floor change does (tls_creds.c): the key must still hold. */
        if (iocpi_tls_creds_set_floor(&c, IOCPI_TLS_V1_2, 1, err, sizeof err) != 0) {
            if (failed++ == 0)
                snprintf(first_err, sizeof first_err, "%s", err);
        } else if (!key_is_certificates(c.cert)) {
            wrong_key++;
        }
        iocpi_tls_creds_free(&c);
    }
    stop_other_import(&o, t);
    printf("%d rounds: %d refused (%s), %d with another file's key\n", ROUNDS, failed,
           first_err[0] ? first_err : "-", wrong_key);
    CHECK_MSG(failed == 0, "%d of %d acquisitions failed: %s", failed, ROUNDS, first_err);
    CHECK_MSG(wrong_key == 0, "%d of %d credentials named a container holding another key",
              wrong_key, ROUNDS);
}

/* The server role the same way (where it exists): the self-check's handshake proves the key. */
static void concurrent_imports_server_role(void)
{
    if (!test_tls_server_role()) {
        printf("no server-side Schannel here (Wine 8): nothing to check\n");
        return;
    }
    other_import o;
    HANDLE t = start_other_import(&o, "client.pfx");
    for (int i = 0; i < ROUNDS / 2; i++) {
        iocpi_tls_creds c;
        char err[400];
        CHECK_MSG(
            iocpi_tls_creds_from_pfx(&c, cert_path("server.pfx"), PASSWORD, err, sizeof err) == 0,
            "round %d: %s", i, err);
        CHECK_MSG(key_is_certificates(c.cert),
                  "round %d: server.pfx's certificate names "
                  "another key",
                  i);
        CHECK_MSG(iocpi_tls_self_check(&c, err, sizeof err) == 0, "round %d: %s", i, err);
        iocpi_tls_creds_free(&c);
    }
    stop_other_import(&o, t);
}

static const test_case cases[] = {
    {"concurrent_imports_keep_their_keys", concurrent_imports_keep_their_keys},
    {"concurrent_imports_server_role", concurrent_imports_server_role},
};

TEST_MAIN(cases)
