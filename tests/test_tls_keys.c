/* test_tls_keys.c: the private keys PFX imports persist. Credentials made while another import
 * of the same user runs beside them must hold their own file's key (Wine's imports all share
 * the user's default key container: docs/wine.md, "Concurrent PFX imports share one key
 * container"); the containers a crashed process leaves are deleted by the next one
 * (tls_key_record.c). */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "proc_util.h"
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
    HANDLE f = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    CHECK_MSG(f != INVALID_HANDLE_VALUE, "cannot open %s", path);
    BYTE *buf = malloc(65536);
    CHECK(buf != NULL);
    CHECK(ReadFile(f, buf, 65536, len, NULL));
    CloseHandle(f);
    CHECK(*len > 0 && *len < 65536);
    return buf;
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

/* ---- containers a crash leaves behind ------------------------------------------------------ */

#define CHILD_ENV L"IOCP_TEST_KEY_CHILD"

/* Whether the CryptoAPI container exists (the machine flag as recorded). */
static int container_exists(const wchar_t *name, const wchar_t *provider, DWORD type)
{
    HCRYPTPROV prov = 0;
    if (CryptAcquireContextW(&prov, name, provider, type, 0)) {
        CryptReleaseContext(prov, 0);
        return 1;
    }
    DWORD e = GetLastError();
    CHECK_MSG(e == (DWORD)NTE_BAD_KEYSET, "opening %ls: 0x%08lx, wanted NTE_BAD_KEYSET", name,
              (unsigned long)e);
    return 0;
}

static DWORD record_values(const wchar_t *subkey)
{
    HKEY key;
    DWORD values = 0;
    if (RegOpenKeyExW(HKEY_CURRENT_USER, subkey, 0, KEY_QUERY_VALUE, &key) != ERROR_SUCCESS)
        return 0;
    CHECK(RegQueryInfoKeyW(key, NULL, NULL, NULL, NULL, NULL, NULL, &values, NULL, NULL, NULL,
                           NULL) == ERROR_SUCCESS);
    RegCloseKey(key);
    return values;
}

static int recorded(const wchar_t *subkey, const wchar_t *name)
{
    HKEY key;
    int found = 0;
    if (RegOpenKeyExW(HKEY_CURRENT_USER, subkey, 0, KEY_QUERY_VALUE, &key) != ERROR_SUCCESS)
        return 0;
    found = RegQueryValueExW(key, name, NULL, NULL, NULL, NULL) == ERROR_SUCCESS;
    RegCloseKey(key);
    return found;
}

/* The record moved to a key of this case's own (one run of a case at a time per Wine prefix),
 * empty: what an earlier run that failed half-way left there is swept (its processes are
 * gone) and the key made anew. */
static void fresh_record(const wchar_t *name, wchar_t *subkey, size_t count)
{
    swprintf(subkey, count, L"%ls", name);
    iocpi_tls_key_record_location(subkey);
    iocpi_tls_key_record_sweep();
    LSTATUS s = RegDeleteKeyW(HKEY_CURRENT_USER, subkey);
    CHECK_MSG(s == ERROR_SUCCESS || s == ERROR_FILE_NOT_FOUND, "deleting %ls: %ld", subkey,
              (long)s);
    CHECK(record_values(subkey) == 0);
}

/* The rest of the child's line that starts with prefix, as UTF-16. */
static void child_said(const char *out, const char *prefix, wchar_t *value, int count)
{
    const char *line = tp_find_line(out, prefix);
    CHECK_MSG(line != NULL, "the child did not say '%s'", prefix);
    line += strlen(prefix);
    int len = (int)strcspn(line, "\r\n");
    int n = MultiByteToWideChar(CP_UTF8, 0, line, len, value, count - 1);
    CHECK(n > 0);
    value[n] = L'\0';
}

/* The child: client credentials from client.pfx (their containers recorded by the import) and
 * a container of its own made through the same recording function (so that a named container
 * exists wherever the import's would not be one), then the end without freeing anything. */
static void crashing_child(const wchar_t *subkey)
{
    iocpi_tls_key_record_location(subkey);
    iocpi_tls_creds c;
    char err[400];
    CHECK_MSG(iocpi_tls_creds_client_cert(&c, NULL, 1, cert_path("client.pfx"), PASSWORD, err,
                                          sizeof err) == 0,
              "%s", err);
    CRYPT_KEY_PROV_INFO *imported = iocpi_tls_key_prov_info(c.cert);
    CHECK(imported != NULL);
    printf("imported: %ls\n", imported->pwszContainerName);
    wchar_t name[80];
    swprintf(name, 80, L"iocp-tls-test-%lu", (unsigned long)GetCurrentProcessId());
    CRYPT_KEY_PROV_INFO own;
    memset(&own, 0, sizeof own);
    own.pwszContainerName = name;
    own.pwszProvName = (wchar_t *)MS_ENHANCED_PROV_W;
    own.dwProvType = PROV_RSA_FULL;
    own.dwKeySpec = AT_KEYEXCHANGE;
    iocpi_tls_key_record_add(&own);
    HCRYPTPROV prov = 0;
    HCRYPTKEY key = 0;
    CHECK(CryptAcquireContextW(&prov, name, MS_ENHANCED_PROV_W, PROV_RSA_FULL, CRYPT_NEWKEYSET));
    CHECK(CryptGenKey(prov, AT_KEYEXCHANGE, 0, &key));
    CryptDestroyKey(key);
    CryptReleaseContext(prov, 0);
    printf("made: %ls\n", name);
    fflush(stdout);
    TerminateProcess(GetCurrentProcess(), 9); /* a crash: nothing freed, nothing deleted */
}

/* A process that dies without freeing its credentials leaves its containers and their record
 * entries; the next sweep deletes both, and touches neither a live process's container nor
 * the user's default container. */
static void crash_leaves_no_container(void)
{
    wchar_t subkey[120];
    if (GetEnvironmentVariableW(CHILD_ENV, subkey, 120) > 0) {
        crashing_child(subkey);
        return;
    }
    fresh_record(L"Software\\iocp\\TlsKeyContainers-test-crash", subkey, 120);

    char self[MAX_PATH * 2];
    CHECK(GetModuleFileNameA(NULL, self, sizeof self) > 0);
    CHECK(SetEnvironmentVariableW(CHILD_ENV, subkey));
    tp_child child;
    tp_start(&child, self, "crash_leaves_no_container", NULL, 1, 0);
    CHECK(SetEnvironmentVariableW(CHILD_ENV, NULL));
    CHECK(tp_wait(&child, 60000));
    printf("the child ended with %lu:\n%s", child.exit_code, child.out);
    CHECK_EQ_U(child.exit_code, 9);
    wchar_t imported[80], made[80];
    child_said(child.out, "imported: ", imported, 80);
    child_said(child.out, "made: ", made, 80);
    tp_free(&child);

    /* What the crash left: both containers, both recorded. The import's container is a named
     * one on Windows and under Wine alike (Wine's default container is left for a container
     * of its own: tls_key_move.c). */
    CHECK_MSG(!iocpi_tls_default_container(imported), "the import's key is in %ls", imported);
    CHECK(recorded(subkey, imported) && recorded(subkey, made));
    CHECK(container_exists(made, MS_ENHANCED_PROV_W, PROV_RSA_FULL));
    if (test_wine_major() != 0) /* Windows may have put it in a CNG provider */
        CHECK(container_exists(imported, MS_ENHANCED_PROV_W, PROV_RSA_FULL));

    /* A live owner's container (this process's) and an entry naming the default container
     * (written by hand: the recording function refuses it) stay. */
    wchar_t live[80];
    swprintf(live, 80, L"iocp-tls-test-live-%lu", (unsigned long)GetCurrentProcessId());
    CRYPT_KEY_PROV_INFO mine;
    memset(&mine, 0, sizeof mine);
    mine.pwszContainerName = live;
    mine.pwszProvName = (wchar_t *)MS_ENHANCED_PROV_W;
    mine.dwProvType = PROV_RSA_FULL;
    iocpi_tls_key_record_add(&mine);
    HCRYPTPROV prov = 0;
    CHECK(CryptAcquireContextW(&prov, live, MS_ENHANCED_PROV_W, PROV_RSA_FULL, CRYPT_NEWKEYSET));
    CryptReleaseContext(prov, 0);
    wchar_t user[257];
    DWORD user_len = 257;
    CHECK(GetUserNameW(user, &user_len));
    HKEY key;
    CHECK(RegOpenKeyExW(HKEY_CURRENT_USER, subkey, 0, KEY_SET_VALUE, &key) == ERROR_SUCCESS);
    static const wchar_t planted[] = L"4 0000000000000001 1 0 " MS_ENHANCED_PROV_W;
    CHECK(RegSetValueExW(key, user, 0, REG_SZ, (const BYTE *)planted, sizeof planted) ==
          ERROR_SUCCESS);
    RegCloseKey(key);
    int default_existed = container_exists(NULL, MS_ENHANCED_PROV_W, PROV_RSA_FULL);

    unsigned deleted = iocpi_tls_key_record_sweep();
    printf("the sweep deleted %u containers\n", deleted);
    CHECK_EQ_U(deleted, 2);
    CHECK(!container_exists(made, MS_ENHANCED_PROV_W, PROV_RSA_FULL));
    if (test_wine_major() != 0)
        CHECK(!container_exists(imported, MS_ENHANCED_PROV_W, PROV_RSA_FULL));
    CHECK(!recorded(subkey, imported) && !recorded(subkey, made));
    CHECK(container_exists(live, MS_ENHANCED_PROV_W, PROV_RSA_FULL) && recorded(subkey, live));
    CHECK(recorded(subkey, user));
    CHECK_EQ_U(container_exists(NULL, MS_ENHANCED_PROV_W, PROV_RSA_FULL), default_existed);

    /* Freed normally: the container and its entry go; then the record is empty. */
    iocpi_tls_key_forget(&mine);
    CHECK(!container_exists(live, MS_ENHANCED_PROV_W, PROV_RSA_FULL) && !recorded(subkey, live));
    CHECK(RegOpenKeyExW(HKEY_CURRENT_USER, subkey, 0, KEY_SET_VALUE, &key) == ERROR_SUCCESS);
    CHECK(RegDeleteValueW(key, user) == ERROR_SUCCESS);
    RegCloseKey(key);
    CHECK_EQ_U(record_values(subkey), 0);
    CHECK(RegDeleteKeyW(HKEY_CURRENT_USER, subkey) == ERROR_SUCCESS);
    iocpi_tls_key_record_location(NULL);
}

/* Credentials freed normally leave no entry and no container. */
static void free_removes_container_and_entry(void)
{
    wchar_t subkey[120];
    fresh_record(L"Software\\iocp\\TlsKeyContainers-test-free", subkey, 120);
    iocpi_tls_creds c;
    char err[400];
    CHECK_MSG(iocpi_tls_creds_client_cert(&c, NULL, 1, cert_path("client.pfx"), PASSWORD, err,
                                          sizeof err) == 0,
              "%s", err);
    CRYPT_KEY_PROV_INFO *info = iocpi_tls_key_prov_info(c.cert);
    CHECK(info != NULL);
    wchar_t name[256];
    swprintf(name, 256, L"%ls", info->pwszContainerName);
    printf("the import's container: %ls\n", name);
    CHECK(!iocpi_tls_default_container(name));
    CHECK(recorded(subkey, name));
    if (info->dwProvType != 0)
        CHECK(container_exists(name, info->pwszProvName, info->dwProvType));
    iocpi_tls_creds_free(&c);
    CHECK(!recorded(subkey, name));
    if (info->dwProvType != 0)
        CHECK(!container_exists(name, info->pwszProvName, info->dwProvType));
    free(info);
    CHECK_EQ_U(record_values(subkey), 0);
    RegDeleteKeyW(HKEY_CURRENT_USER, subkey);
    iocpi_tls_key_record_location(NULL);
}

static const test_case cases[] = {
    {"concurrent_imports_keep_their_keys", concurrent_imports_keep_their_keys},
    {"concurrent_imports_server_role", concurrent_imports_server_role},
    {"crash_leaves_no_container", crash_leaves_no_container},
    {"free_removes_container_and_entry", free_removes_container_and_entry},
};

TEST_MAIN(cases)
