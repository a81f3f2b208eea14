/*
 * tls_creds.c: Schannel credentials for both roles.
 *
 * Protocols: the floor (TLS 1.2 unless min_version says lower) up to 1.3 where the system's
 * TLS 1.3 is sound (build 20348 and later: tls_windows_build.c). SCH_CREDENTIALS (Windows 10 1809
 * and later) is the structure that can enable 1.3 and carry the suite floor: its CRYPTO_SETTINGS
 * refuse RSA key exchange (no forward secrecy) and the CBC, 3DES, DES and RC4 ciphers, so that
 * Windows never offers those suites. An older system (or one that rejects the structure) gets
 * SCHANNEL_CRED up to 1.2. What a system does not honour, tls_floor.c holds after the handshake.
 *
 * A PFX import persists the private key in a key container (Schannel runs in LSASS and cannot
 * use an ephemeral key), so freeing credentials deletes the containers the import made, and
 * a record of them lets the next process delete what a crashed one left (tls_key_record.c):
 * nothing piles up across restarts. Under Wine the key is first moved out of the container
 * all imports share (tls_key_move.c).
 */
#include "tls.h"

#ifndef SP_PROT_TLS1_3_SERVER
#define SP_PROT_TLS1_3_SERVER 0x00001000
#define SP_PROT_TLS1_3_CLIENT 0x00002000
#endif

#define PFX_MAX (1024 * 1024) /* a PFX is a few KiB; refuse to read a huge file */

static void widen(const char *s, wchar_t *out, size_t count)
{
    if (MultiByteToWideChar(CP_UTF8, 0, s, -1, out, (int)count) == 0)
        out[0] = L'\0';
    out[count - 1] = L'\0';
}

static const char *win32_text(DWORD code, char *buf, size_t size)
{
    char text[200];
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code,
                             MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), text, sizeof text, NULL);
    while (n > 0 &&
           (text[n - 1] == '\r' || text[n - 1] == '\n' || text[n - 1] == '.' || text[n - 1] == ' '))
        text[--n] = '\0';
    snprintf(buf, size, "%s (0x%08lx)", n > 0 ? text : "error", (unsigned long)code);
    return buf;
}

/* Reads a whole small file. The caller frees *data. */
static int read_file(const char *path, BYTE **data, DWORD *len, char *err, size_t err_size)
{
    wchar_t wpath[MAX_PATH * 2];
    char text[260];
    widen(path, wpath, sizeof wpath / sizeof wpath[0]);
    HANDLE f = CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE) {
        snprintf(err, err_size, "cannot open %s: %s", path,
                 win32_text(GetLastError(), text, sizeof text));
        return -1;
    }
    LARGE_INTEGER size;
    int rc = -1;
    *data = NULL;
    if (!GetFileSizeEx(f, &size) || size.QuadPart <= 0 || size.QuadPart > PFX_MAX) {
        snprintf(err, err_size, "%s is empty or larger than %d bytes", path, PFX_MAX);
    } else if ((*data = malloc((size_t)size.QuadPart)) == NULL) {
        snprintf(err, err_size, "out of memory reading %s", path);
    } else if (!ReadFile(f, *data, (DWORD)size.QuadPart, len, NULL) ||
               *len != (DWORD)size.QuadPart) {
        snprintf(err, err_size, "cannot read %s: %s", path,
                 win32_text(GetLastError(), text, sizeof text));
    } else {
        rc = 0;
    }
    CloseHandle(f);
    if (rc != 0) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

static int has_private_key(PCCERT_CONTEXT cert)
{
    DWORD size = 0;
    return CertGetCertificateContextProperty(cert, CERT_KEY_PROV_INFO_PROP_ID, NULL, &size) &&
           size > 0;
}

/* Whether a certificate says it is a CA (basic constraints). */
static int is_ca(PCCERT_CONTEXT cert)
{
    PCERT_EXTENSION ext = CertFindExtension(szOID_BASIC_CONSTRAINTS2, cert->pCertInfo->cExtension,
                                            cert->pCertInfo->rgExtension);
    CERT_BASIC_CONSTRAINTS2_INFO info;
    DWORD size = sizeof info;
    return ext != NULL &&
           CryptDecodeObject(X509_ASN_ENCODING, X509_BASIC_CONSTRAINTS2, ext->Value.pbData,
                             ext->Value.cbData, 0, &info, &size) &&
           info.fCA;
}

/* The CNG names CRYPTO_SETTINGS takes (bcrypt.h); defined here when a header lacks them. */
#ifndef BCRYPT_RSA_ALGORITHM
#define BCRYPT_RSA_ALGORITHM L"RSA"
#endif
#ifndef BCRYPT_AES_ALGORITHM
#define BCRYPT_AES_ALGORITHM L"AES"
#endif
#ifndef BCRYPT_3DES_ALGORITHM
#define BCRYPT_3DES_ALGORITHM L"3DES"
#endif
#ifndef BCRYPT_DES_ALGORITHM
#define BCRYPT_DES_ALGORITHM L"DES"
#endif
#ifndef BCRYPT_RC4_ALGORITHM
#define BCRYPT_RC4_ALGORITHM L"RC4"
#endif
#ifndef BCRYPT_CHAIN_MODE_CBC
#define BCRYPT_CHAIN_MODE_CBC L"ChainingModeCBC"
#endif

/* The SP_PROT_* bits of the protocols from the floor up, for one role (TLS 1.3 only when
 * up_to_13: SCHANNEL_CRED cannot carry it). */
static DWORD enabled_protocols(const iocpi_tls_creds *c, int up_to_13)
{
    unsigned floor = c->min_version != 0 ? c->min_version : IOCPI_TLS_V1_2;
    DWORD p = 0;
    if (floor <= IOCPI_TLS_V1_0)
        p |= c->server ? SP_PROT_TLS1_0_SERVER : SP_PROT_TLS1_0_CLIENT;
    if (floor <= IOCPI_TLS_V1_1)
        p |= c->server ? SP_PROT_TLS1_1_SERVER : SP_PROT_TLS1_1_CLIENT;
    if (floor <= IOCPI_TLS_V1_2)
        p |= c->server ? SP_PROT_TLS1_2_SERVER : SP_PROT_TLS1_2_CLIENT;
    if (up_to_13)
        p |= c->server ? SP_PROT_TLS1_3_SERVER : SP_PROT_TLS1_3_CLIENT;
    return p;
}

static UNICODE_STRING unicode(const wchar_t *text)
{
    UNICODE_STRING u;
    u.Length = (USHORT)(wcslen(text) * sizeof(wchar_t));
    u.MaximumLength = (USHORT)(u.Length + sizeof(wchar_t));
    u.Buffer = (PWSTR)text;
    return u;
}

/* The suite floor as CRYPTO_SETTINGS (learn.microsoft.com, "CRYPTO_SETTINGS structure"): each
 * entry disables an algorithm for one use; with chaining modes, only those modes of it. RSA
 * as a key exchange is RSA key transport (TLS_RSA_WITH_*); ECDHE_RSA suites use RSA only to
 * sign, and stay. AES-CBC is disabled only when the floor is TLS 1.2 or higher: TLS 1.0 and
 * 1.1 have no other AES suites. Returns the number of entries (at most 5). */
static DWORD disabled_crypto(const iocpi_tls_creds *c, CRYPTO_SETTINGS *cs, UNICODE_STRING *cbc)
{
    DWORD n = 0;
    if (c->legacy_suites)
        return 0;
    memset(cs, 0, 5 * sizeof *cs);
    cs[n].eAlgorithmUsage = TlsParametersCngAlgUsageKeyExchange;
    cs[n++].strCngAlgId = unicode(BCRYPT_RSA_ALGORITHM);
    cs[n].eAlgorithmUsage = TlsParametersCngAlgUsageCipher;
    cs[n++].strCngAlgId = unicode(BCRYPT_3DES_ALGORITHM);
    cs[n].eAlgorithmUsage = TlsParametersCngAlgUsageCipher;
    cs[n++].strCngAlgId = unicode(BCRYPT_DES_ALGORITHM);
    cs[n].eAlgorithmUsage = TlsParametersCngAlgUsageCipher;
    cs[n++].strCngAlgId = unicode(BCRYPT_RC4_ALGORITHM);
    if (c->min_version == 0 || c->min_version >= IOCPI_TLS_V1_2) {
        *cbc = unicode(BCRYPT_CHAIN_MODE_CBC);
        cs[n].eAlgorithmUsage = TlsParametersCngAlgUsageCipher;
        cs[n].strCngAlgId = unicode(BCRYPT_AES_ALGORITHM);
        cs[n].cChainingModes = 1;
        cs[n++].rgstrChainingModes = cbc;
    }
    return n;
}

/* Schannel credentials for one role; tries SCH_CREDENTIALS (up to 1.3, the suite floor)
 * first. */
static int acquire(iocpi_tls_creds *c, char *err, size_t err_size)
{
    TimeStamp expiry;
    SECURITY_STATUS s;
    DWORD flags = c->server ? 0
                            : SCH_CRED_MANUAL_CRED_VALIDATION | SCH_CRED_NO_DEFAULT_CREDS |
                                  SCH_CRED_NO_SERVERNAME_CHECK;
    ULONG use = c->server ? SECPKG_CRED_INBOUND : SECPKG_CRED_OUTBOUND;

    TLS_PARAMETERS params;
    CRYPTO_SETTINGS crypto[5];
    UNICODE_STRING cbc;
    memset(&params, 0, sizeof params);
    /* Everything below the floor is disabled (the field lists what is NOT allowed). */
    int offer_13 = iocpi_tls13_sound(iocpi_windows_build());
    params.grbitDisabledProtocols = ~enabled_protocols(c, offer_13);
    params.cDisabledCrypto = disabled_crypto(c, crypto, &cbc);
    params.pDisabledCrypto = params.cDisabledCrypto > 0 ? crypto : NULL;
    SCH_CREDENTIALS sch;
    memset(&sch, 0, sizeof sch);
    sch.dwVersion = SCH_CREDENTIALS_VERSION;
    sch.dwFlags = flags | SCH_USE_STRONG_CRYPTO;
    sch.cTlsParameters = 1;
    sch.pTlsParameters = &params;
    if (c->cert != NULL) {
        sch.cCreds = 1;
        sch.paCred = &c->cert;
    }
    s = AcquireCredentialsHandleW(NULL, (SEC_WCHAR *)UNISP_NAME_W, use, NULL, &sch, NULL, NULL,
                                  &c->handle, &expiry);
    if (s == SEC_E_OK) {
        c->tls13 = offer_13;
        c->has_handle = 1;
        return 0;
    }
    SCHANNEL_CRED old;
    memset(&old, 0, sizeof old);
    old.dwVersion = SCHANNEL_CRED_VERSION;
    old.dwFlags = flags | SCH_USE_STRONG_CRYPTO;
    old.grbitEnabledProtocols = enabled_protocols(c, 0);
    if (c->cert != NULL) {
        old.cCreds = 1;
        old.paCred = &c->cert;
    }
    s = AcquireCredentialsHandleW(NULL, (SEC_WCHAR *)UNISP_NAME_W, use, NULL, &old, NULL, NULL,
                                  &c->handle, &expiry);
    if (s != SEC_E_OK) {
        char name[80];
        c->error = (DWORD)s;
        /* The file whose certificate was refused, so that the user knows which option. */
        if (c->pfx_path[0] != '\0')
            snprintf(err, err_size,
                     "Schannel refused the %s credentials with the certificate of "
                     "%s: %s",
                     c->server ? "server" : "client", c->pfx_path,
                     iocpi_tls_status_name(s, name, sizeof name));
        else
            snprintf(err, err_size, "Schannel refused the %s credentials: %s",
                     c->server ? "server" : "client", iocpi_tls_status_name(s, name, sizeof name));
        return -1;
    }
    c->has_handle = 1;
    return 0;
}

/* Imports a PFX into c->pfx_store and picks its certificate with the key into c->cert. The
 * file's bytes and the password are kept (and wiped after) until the key is known to be the
 * certificate's own, in a container no other import writes (tls_key_move.c). */
static int import_pfx(iocpi_tls_creds *c, const char *path, const char *password, char *err,
                      size_t err_size)
{
    BYTE *data = NULL;
    DWORD len = 0;
    char text[260];
    int rc = -1;
    snprintf(c->pfx_path, sizeof c->pfx_path, "%s", path);
    if (read_file(path, &data, &len, err, err_size) != 0) {
        c->error = GetLastError();
        return -1;
    }
    CRYPT_DATA_BLOB blob = {len, data};
    wchar_t wpass[512];
    widen(password != NULL ? password : "", wpass, sizeof wpass / sizeof wpass[0]);
    /* Containers a crashed run of this account left behind: deleted before we make ours. */
    iocpi_tls_key_record_sweep_once();
    if (!PFXIsPFXBlob(&blob)) {
        c->error = (DWORD)CRYPT_E_BAD_ENCODE;
        snprintf(err, err_size, "%s is not a PFX (PKCS #12) file", path);
        goto out;
    }
    /* The key into a CNG key storage provider where the system allows it: a legacy CryptoAPI
     * provider cannot make the RSA-PSS signatures TLS 1.3 needs. A system that refuses the
     * flag (or a PFX it cannot put there) gets the plain import. */
    c->pfx_store = PFXImportCertStore(&blob, wpass, PKCS12_PREFER_CNG_KSP);
    if (c->pfx_store == NULL)
        c->pfx_store = PFXImportCertStore(&blob, wpass, 0);
    DWORD import_error = GetLastError();
    /* Each container the import made, recorded before anything uses it (a crash from here on
     * leaves nothing for good; one between the import and this line cannot be helped). */
    if (c->pfx_store != NULL) {
        PCCERT_CONTEXT each = NULL;
        while ((each = CertEnumCertificatesInStore(c->pfx_store, each)) != NULL) {
            CRYPT_KEY_PROV_INFO *info = iocpi_tls_key_prov_info(each);
            iocpi_tls_key_record_add(info);
            free(info);
        }
    }
    if (c->pfx_store == NULL) {
        c->error = import_error ? import_error : (DWORD)ERROR_INVALID_PASSWORD;
        if (import_error == ERROR_INVALID_PASSWORD || import_error == (DWORD)NTE_BAD_DATA)
            snprintf(err, err_size, "cannot open %s: wrong password (%s)", path,
                     win32_text(import_error, text, sizeof text));
        else if (import_error == 0) /* Wine says nothing more */
            snprintf(err, err_size,
                     "cannot open %s: wrong password, or a PFX this system cannot decrypt", path);
        else
            snprintf(err, err_size, "cannot import %s: %s", path,
                     win32_text(import_error, text, sizeof text));
        goto out;
    }
    /* The certificate with the key, not a CA certificate that came along (a PFX with its
     * chain: Wine 10 marks every certificate of the file with the key, docs/wine.md). */
    PCCERT_CONTEXT cert = NULL;
    while ((cert = CertEnumCertificatesInStore(c->pfx_store, cert)) != NULL) {
        if (has_private_key(cert) && (c->cert == NULL || !is_ca(cert))) {
            if (c->cert != NULL)
                CertFreeCertificateContext(c->cert);
            c->cert = CertDuplicateCertificateContext(cert);
            if (!is_ca(cert)) {
                CertFreeCertificateContext(cert);
                break;
            }
        }
    }
    if (c->cert == NULL) {
        c->error = (DWORD)NTE_NO_KEY;
        snprintf(err, err_size,
                 "%s holds no certificate with its private key (export it with the key)", path);
        goto out;
    }
    /* Wine's import shares one container among all of the user's imports (docs/wine.md): the
     * key moves to a container of its own before anything reads it. Never so on Windows. */
    if (iocpi_tls_key_in_shared_container(c->cert) &&
        iocpi_tls_key_move(c, &blob, wpass, path, err, err_size) != 0)
        goto out;
    rc = 0;
out:
    SecureZeroMemory(wpass, sizeof wpass);
    SecureZeroMemory(data, len);
    free(data);
    return rc;
}

int iocpi_tls_creds_from_pfx(iocpi_tls_creds *c, const char *path, const char *password, char *err,
                             size_t err_size)
{
    memset(c, 0, sizeof *c);
    c->server = 1;
    if (import_pfx(c, path, password, err, err_size) != 0 || acquire(c, err, err_size) != 0) {
        iocpi_tls_creds_free(c);
        return -1;
    }
    return 0;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int iocpi_tls_creds_from_store(iocpi_tls_creds *c, const char *thumbprint, int machine, char *err,
                               size_t err_size)
{
    BYTE hash[20];
    size_t n = 0;
    int half = -1;
    char text[260];
    memset(c, 0, sizeof *c);
    c->server = 1;
    /* Copied from the certificate dialog: hex pairs, perhaps with spaces (and the invisible
     * left-to-right mark that dialog puts first, which is not ASCII and skipped). */
    for (const char *p = thumbprint; *p != '\0'; p++) {
        if (*p == ' ' || *p == ':' || (unsigned char)*p >= 0x80)
            continue;
        int d = hex_digit(*p);
        if (d < 0 || n == sizeof hash) {
            n = sizeof hash + 1;
            break;
        }
        if (half < 0) {
            half = d;
        } else {
            hash[n++] = (BYTE)(half << 4 | d);
            half = -1;
        }
    }
    if (n != sizeof hash || half >= 0) {
        c->error = ERROR_INVALID_PARAMETER;
        snprintf(err, err_size, "'%s' is not a certificate thumbprint (40 hex digits)", thumbprint);
        return -1;
    }
    const char *where = machine ? "LocalMachine\\My" : "CurrentUser\\My";
    HCERTSTORE store =
        CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                      (machine ? CERT_SYSTEM_STORE_LOCAL_MACHINE : CERT_SYSTEM_STORE_CURRENT_USER) |
                          CERT_STORE_READONLY_FLAG,
                      L"MY");
    if (store == NULL) {
        c->error = GetLastError();
        snprintf(err, err_size, "cannot open the certificate store %s: %s", where,
                 win32_text(GetLastError(), text, sizeof text));
        return -1;
    }
    CRYPT_HASH_BLOB blob = {sizeof hash, hash};
    PCCERT_CONTEXT cert = CertFindCertificateInStore(store, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING,
                                                     0, CERT_FIND_SHA1_HASH, &blob, NULL);
    CertCloseStore(store, 0);
    if (cert == NULL) {
        c->error = (DWORD)CRYPT_E_NOT_FOUND;
        snprintf(err, err_size, "no certificate with thumbprint %s in %s", thumbprint, where);
        return -1;
    }
    if (!has_private_key(cert)) {
        c->error = (DWORD)NTE_NO_KEY;
        snprintf(err, err_size, "the certificate %s in %s has no private key", thumbprint, where);
        CertFreeCertificateContext(cert);
        return -1;
    }
    c->cert = cert;
    if (acquire(c, err, err_size) != 0) {
        iocpi_tls_creds_free(c);
        return -1;
    }
    return 0;
}

/* A chain engine whose only trusted roots are the CA file's, as curl builds for --cacert:
 * hExclusiveRoot (Windows 7 and later) with cbSize covering it; the system's roots and its
 * stores of intermediates are not consulted for trust. No URL retrieval beyond the cache: a
 * handshake never waits on the network for a missing issuer (the server sends its
 * intermediates; one it does not send makes a partial chain, named as such). NULL when the
 * system refuses the structure (an older one, or an implementation without it): the caller
 * then uses the default engine and requires the chain's root to be in the file itself. */
static HCERTCHAINENGINE exclusive_engine(HCERTSTORE roots)
{
    CERT_CHAIN_ENGINE_CONFIG cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.cbSize = sizeof cfg; /* the Windows 7 size: includes hExclusiveRoot */
    cfg.hExclusiveRoot = roots;
    cfg.dwFlags = CERT_CHAIN_CACHE_ONLY_URL_RETRIEVAL;
    HCERTCHAINENGINE engine = NULL;
    if (!CertCreateCertificateChainEngine(&cfg, &engine))
        return NULL;
    return engine;
}

/* The CA file's certificates into c->extra_ca, and the chain engine that trusts only them.
 * 0, or -1 with err naming the file and the cause (the caller frees c). */
static int load_ca_file(iocpi_tls_creds *c, const char *ca_file, char *err, size_t err_size)
{
    wchar_t wpath[MAX_PATH * 2];
    char text[260];
    widen(ca_file, wpath, sizeof wpath / sizeof wpath[0]);
    /* CryptQueryObject reads PEM (one certificate) or DER; a PEM bundle goes through
     * the loop below. */
    c->extra_ca = CertOpenStore(CERT_STORE_PROV_MEMORY, 0, 0, 0, NULL);
    BYTE *data = NULL;
    DWORD len = 0;
    if (c->extra_ca == NULL || read_file(ca_file, &data, &len, err, err_size) != 0)
        return -1;
    int added = 0;
    const char *begin = "-----BEGIN CERTIFICATE-----";
    const char *end = "-----END CERTIFICATE-----";
    char *text_data = (char *)data;
    size_t pos = 0;
    while (pos < len) {
        char *b = NULL;
        for (size_t i = pos; i + strlen(begin) <= len; i++)
            if (memcmp(text_data + i, begin, strlen(begin)) == 0) {
                b = text_data + i;
                break;
            }
        if (b == NULL)
            break;
        char *e = NULL;
        for (size_t i = (size_t)(b - text_data); i + strlen(end) <= len; i++)
            if (memcmp(text_data + i, end, strlen(end)) == 0) {
                e = text_data + i + strlen(end);
                break;
            }
        if (e == NULL)
            break;
        BYTE der[16384];
        DWORD der_len = sizeof der;
        if (CryptStringToBinaryA(b, (DWORD)(e - b), CRYPT_STRING_BASE64HEADER, der, &der_len, NULL,
                                 NULL) &&
            CertAddEncodedCertificateToStore(c->extra_ca, X509_ASN_ENCODING, der, der_len,
                                             CERT_STORE_ADD_REPLACE_EXISTING, NULL))
            added++;
        pos = (size_t)(e - text_data);
    }
    if (added == 0 && CertAddEncodedCertificateToStore(c->extra_ca, X509_ASN_ENCODING, data, len,
                                                       CERT_STORE_ADD_REPLACE_EXISTING, NULL))
        added++;
    free(data);
    if (added == 0) {
        snprintf(err, err_size, "%s holds no certificate (PEM or DER): %s", ca_file,
                 win32_text(GetLastError(), text, sizeof text));
        return -1;
    }
    c->chain_engine = exclusive_engine(c->extra_ca);
    return 0;
}

int iocpi_tls_creds_client(iocpi_tls_creds *c, const char *ca_file, int insecure, char *err,
                           size_t err_size)
{
    return iocpi_tls_creds_client_cert(c, ca_file, insecure, NULL, NULL, err, err_size);
}

int iocpi_tls_creds_client_cert(iocpi_tls_creds *c, const char *ca_file, int insecure,
                                const char *pfx_path, const char *pfx_password, char *err,
                                size_t err_size)
{
    memset(c, 0, sizeof *c);
    c->insecure = insecure;
    /* A client certificate, for a server that asks for one (mutual TLS). Without it the
     * client answers a request with no certificate (ISC_REQ_USE_SUPPLIED_CREDS: never one
     * the system picks from the user's store by itself). */
    if (pfx_path != NULL && pfx_path[0] != '\0' &&
        import_pfx(c, pfx_path, pfx_password, err, err_size) != 0) {
        iocpi_tls_creds_free(c);
        return -1;
    }
    if (ca_file != NULL && ca_file[0] != '\0' && load_ca_file(c, ca_file, err, err_size) != 0) {
        iocpi_tls_creds_free(c);
        return -1;
    }
    if (acquire(c, err, err_size) != 0) {
        iocpi_tls_creds_free(c);
        return -1;
    }
    return 0;
}

/* Deletes the key container a PFX import made for this certificate (Windows: one per import;
 * Wine: the one tls_key_move.c made) and its record entry. The user's default container is
 * never deleted: under Wine every import of the user shares it, and deleting it broke another
 * process's handshakes at the same moment (docs/wine.md). */
static void delete_imported_key(PCCERT_CONTEXT cert)
{
    CRYPT_KEY_PROV_INFO *info = iocpi_tls_key_prov_info(cert);
    iocpi_tls_key_forget(info);
    free(info);
}

int iocpi_tls_creds_set_floor(iocpi_tls_creds *c, unsigned min_version, int legacy_suites,
                              char *err, size_t err_size)
{
    if (c->min_version == min_version && c->legacy_suites == legacy_suites)
        return 0;
    c->min_version = min_version;
    c->legacy_suites = legacy_suites;
    if (c->has_handle)
        FreeCredentialsHandle(&c->handle);
    c->has_handle = 0;
    return acquire(c, err, err_size);
}

void iocpi_tls_creds_free(iocpi_tls_creds *c)
{
    if (c->has_handle)
        FreeCredentialsHandle(&c->handle);
    c->has_handle = 0;
    if (c->pfx_store != NULL) {
        PCCERT_CONTEXT cert = NULL;
        while ((cert = CertEnumCertificatesInStore(c->pfx_store, cert)) != NULL)
            delete_imported_key(cert);
        CertCloseStore(c->pfx_store, 0);
    }
    c->pfx_store = NULL;
    if (c->cert != NULL)
        CertFreeCertificateContext(c->cert);
    c->cert = NULL;
    if (c->chain_engine != NULL)
        CertFreeCertificateChainEngine(c->chain_engine);
    c->chain_engine = NULL;
    if (c->extra_ca != NULL)
        CertCloseStore(c->extra_ca, 0);
    c->extra_ca = NULL;
}

/* ---- the engine's TLS -------------------------------------------------------------------- */

iocp_err iocpi_tls_engine_start(iocp_engine *e, iocp_error_info *err)
{
    iocp_tls_config *cfg = &e->config.tls;
    char why[400];
    int server = (cfg->pfx_path != NULL && cfg->pfx_path[0] != '\0') ||
                 (cfg->cert_thumbprint != NULL && cfg->cert_thumbprint[0] != '\0');
    if (!server && !cfg->client)
        return IOCP_OK;
    if (cfg->pfx_path != NULL && cfg->pfx_path[0] != '\0' && cfg->cert_thumbprint != NULL &&
        cfg->cert_thumbprint[0] != '\0') {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "TLS: give a PFX file or a certificate thumbprint, not both");
        return IOCP_E_INVALID_ARG;
    }
    unsigned floor = cfg->min_version;
    if (floor != 0 && (floor < IOCP_TLS_1_0 || floor > IOCP_TLS_1_3)) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "TLS: min_version 0x%04x is not a TLS version (IOCP_TLS_1_0 .. "
                        "IOCP_TLS_1_3, or 0 for TLS 1.2)",
                        floor);
        return IOCP_E_INVALID_ARG;
    }
    if (cfg->revocation != IOCP_TLS_REVOCATION_SOFT && cfg->revocation != IOCP_TLS_REVOCATION_OFF &&
        cfg->revocation != IOCP_TLS_REVOCATION_HARD) {
        iocpi_error_set(err, IOCP_E_INVALID_ARG, 0,
                        "TLS: revocation %d is not IOCP_TLS_REVOCATION_SOFT (0), _OFF (1) or "
                        "_HARD (2)",
                        cfg->revocation);
        return IOCP_E_INVALID_ARG;
    }
    if (e->config.buffer_size < IOCP_TLS_MIN_BUFFER) {
        iocpi_log(e, IOCP_LOG_DEBUG,
                  "TLS: receive buffer raised from %lu to %lu bytes (a whole "
                  "record must fit)",
                  (unsigned long)e->config.buffer_size, (unsigned long)IOCP_TLS_MIN_BUFFER);
        e->config.buffer_size = IOCP_TLS_MIN_BUFFER;
        if (e->config.send_queue_cap < 4u * IOCP_TLS_MIN_BUFFER)
            e->config.send_queue_cap = 4u * IOCP_TLS_MIN_BUFFER;
    }
    if (server) {
        e->tls_server = calloc(1, sizeof *e->tls_server);
        if (e->tls_server == NULL) {
            iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "TLS credentials");
            return IOCP_E_NO_MEMORY;
        }
        int rc = cfg->pfx_path != NULL && cfg->pfx_path[0] != '\0'
                     ? iocpi_tls_creds_from_pfx(e->tls_server, cfg->pfx_path, cfg->pfx_password,
                                                why, sizeof why)
                     : iocpi_tls_creds_from_store(e->tls_server, cfg->cert_thumbprint,
                                                  cfg->cert_store_machine, why, sizeof why);
        if (rc == 0 && iocpi_tls_creds_set_floor(e->tls_server, floor, cfg->legacy_suites, why,
                                                 sizeof why) != 0) {
            iocpi_tls_creds_free(e->tls_server);
            rc = -1;
        }
        if (rc == 0 && iocpi_tls_self_check(e->tls_server, why, sizeof why) != 0) {
            iocpi_tls_creds_free(e->tls_server);
            rc = -1;
        }
        if (rc != 0) {
            DWORD code = e->tls_server->error;
            free(e->tls_server);
            e->tls_server = NULL;
            iocpi_error_set(err, IOCP_E_TLS, code, "%s", why);
            return IOCP_E_TLS;
        }
        e->tls_server->revocation = cfg->revocation;
        /* Client certificates required: loaded after the self-check (whose client has none). */
        if (cfg->client_ca_file != NULL && cfg->client_ca_file[0] != '\0' &&
            load_ca_file(e->tls_server, cfg->client_ca_file, why, sizeof why) != 0) {
            iocpi_tls_creds_free(e->tls_server);
            free(e->tls_server);
            e->tls_server = NULL;
            iocpi_error_set(err, IOCP_E_TLS, 0, "the client CA file: %s", why);
            return IOCP_E_TLS;
        }
        iocpi_log(e, IOCP_LOG_DEBUG, "TLS: server credentials proven by the self-check (%s)",
                  e->tls_server->tls13 ? "TLS 1.2 and 1.3 offered" : "TLS 1.2 offered");
    }
    if (cfg->client) {
        e->tls_client = calloc(1, sizeof *e->tls_client);
        if (e->tls_client == NULL ||
            iocpi_tls_creds_client_cert(e->tls_client, cfg->ca_file, cfg->insecure,
                                        cfg->client_pfx_path, cfg->client_pfx_password, why,
                                        sizeof why) != 0 ||
            iocpi_tls_creds_set_floor(e->tls_client, floor, cfg->legacy_suites, why, sizeof why) !=
                0) {
            DWORD code = e->tls_client != NULL ? e->tls_client->error : ERROR_NOT_ENOUGH_MEMORY;
            if (e->tls_client == NULL)
                snprintf(why, sizeof why, "out of memory");
            free(e->tls_client);
            e->tls_client = NULL;
            iocpi_error_set(err, IOCP_E_TLS, code, "%s", why);
            return IOCP_E_TLS;
        }
    }
    if (e->tls_client != NULL)
        e->tls_client->revocation = cfg->revocation;
    e->tls_sessions = calloc(e->config.max_connections, sizeof *e->tls_sessions);
    if (e->tls_sessions == NULL) {
        iocpi_error_set(err, IOCP_E_NO_MEMORY, 0, "TLS sessions");
        return IOCP_E_NO_MEMORY;
    }
    return IOCP_OK;
}

void iocpi_tls_engine_stop(iocp_engine *e)
{
    if (e->tls_server != NULL)
        iocpi_tls_creds_free(e->tls_server);
    if (e->tls_client != NULL)
        iocpi_tls_creds_free(e->tls_client);
    free(e->tls_server);
    free(e->tls_client);
    free(e->tls_sessions);
    e->tls_server = e->tls_client = NULL;
    e->tls_sessions = NULL;
}
