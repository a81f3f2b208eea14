/*
 * tls_key_move.c: a PFX's private key out of the user's shared default key container into a
 * container of this import's own.
 *
 * Why: PFXImportCertStore persists the key (Schannel needs a persisted key) and names the
 * container in the certificate's CERT_KEY_PROV_INFO. Windows makes a container per import (a
 * GUID name). Wine puts every import into the user's default container (CryptAcquireContextW
 * with a NULL name, i.e. named after the user: dlls/crypt32/pfx.c, import_key(), Wine 8 and
 * 10 alike), and its Schannel reads the key from that container when the credentials are
 * acquired. So two imports of one user at about the same moment, in two processes or two
 * engines of one process, overwrite each other's key: the credentials then pair one file's
 * certificate with the other file's key ("The certificate and the given key do not match",
 * SEC_E_INTERNAL_ERROR), or a check made before acquiring passes and the key changes after.
 *
 * A retry of the acquisition would only narrow that window. Instead, when the certificate's
 * key sits in the default container, the key is copied into a container nobody else uses and
 * the certificate is pointed there: the PFX is imported again with the key exportable, the key
 * exported from the default container, imported into the new container, and the new
 * container's public key compared with the certificate's. A mismatch (another import replaced
 * the default container's key between our import and our export) throws the copy away and
 * tries again, a bounded number of times. After a match nothing another process does can change
 * what the credentials read, however often they are acquired again. The default container is
 * never deleted (others use it); the new one is recorded before it is made and deleted with the
 * credentials, as Windows' own per-import containers are (tls_key_record.c).
 *
 * On Windows this path is not taken: an import never lands in the default container. Code to
 * the documented calls only; nothing here reads Wine's registry layout.
 */
#include "tls.h"

#define KEY_MOVE_TRIES 16

int iocpi_tls_default_container(const wchar_t *name)
{
    wchar_t user[257];
    DWORD n = sizeof user / sizeof user[0];
    if (name == NULL || name[0] == L'\0')
        return 1;
    return GetUserNameW(user, &n) && CompareStringOrdinal(name, -1, user, -1, TRUE) == CSTR_EQUAL;
}

CRYPT_KEY_PROV_INFO *iocpi_tls_key_prov_info(PCCERT_CONTEXT cert)
{
    DWORD size = 0;
    if (!CertGetCertificateContextProperty(cert, CERT_KEY_PROV_INFO_PROP_ID, NULL, &size) ||
        size == 0)
        return NULL;
    CRYPT_KEY_PROV_INFO *info = malloc(size);
    if (info != NULL &&
        !CertGetCertificateContextProperty(cert, CERT_KEY_PROV_INFO_PROP_ID, info, &size)) {
        free(info);
        info = NULL;
    }
    return info;
}

int iocpi_tls_key_in_shared_container(PCCERT_CONTEXT cert)
{
    CRYPT_KEY_PROV_INFO *info = iocpi_tls_key_prov_info(cert);
    /* A CNG key (dwProvType 0) has no default container. */
    int shared = info != NULL && info->dwProvType != 0 &&
                 iocpi_tls_default_container(info->pwszContainerName);
    free(info);
    return shared;
}

/* A container name nobody else will pick: "iocp-tls-" and 128 random bits in hex. */
static int new_container_name(wchar_t *out, size_t count)
{
    HCRYPTPROV rng = 0;
    BYTE bits[16];
    if (!CryptAcquireContextW(&rng, NULL, NULL, PROV_RSA_FULL, CRYPT_VERIFYCONTEXT))
        return -1;
    BOOL ok = CryptGenRandom(rng, sizeof bits, bits);
    CryptReleaseContext(rng, 0);
    if (!ok)
        return -1;
    int n = swprintf(out, count, L"iocp-tls-");
    for (size_t i = 0; i < sizeof bits && n > 0; i++)
        n += swprintf(out + n, count - (size_t)n, L"%02x", bits[i]);
    return n > 0 ? 0 : -1;
}

/* The private key of the container `info` names, as a PRIVATEKEYBLOB (the caller wipes and
 * frees it), and the key spec it was under. NULL when it cannot be exported (not exportable:
 * another import without the flag replaced it). */
static BYTE *export_private_key(const CRYPT_KEY_PROV_INFO *info, DWORD *len, DWORD *spec)
{
    HCRYPTPROV prov = 0;
    HCRYPTKEY key = 0;
    BYTE *blob = NULL;
    if (!CryptAcquireContextW(&prov, info->pwszContainerName, info->pwszProvName, info->dwProvType,
                              info->dwFlags & CRYPT_MACHINE_KEYSET))
        return NULL;
    /* The spec the import used: CERT_KEY_PROV_INFO's, else either (a provider may report
     * both bits in PP_KEYSPEC). */
    static const DWORD specs[] = {AT_KEYEXCHANGE, AT_SIGNATURE};
    for (size_t i = 0; i < 2 && key == 0; i++)
        if ((info->dwKeySpec == 0 || (info->dwKeySpec & specs[i]) != 0) &&
            CryptGetUserKey(prov, specs[i], &key))
            *spec = specs[i];
    *len = 0;
    if (key != 0 && CryptExportKey(key, 0, PRIVATEKEYBLOB, 0, NULL, len) &&
        (blob = malloc(*len)) != NULL && !CryptExportKey(key, 0, PRIVATEKEYBLOB, 0, blob, len)) {
        SecureZeroMemory(blob, *len);
        free(blob);
        blob = NULL;
    }
    if (key != 0)
        CryptDestroyKey(key);
    CryptReleaseContext(prov, 0);
    return blob;
}

/* Whether the container's key is the certificate's (their public keys compared). */
static int container_matches(PCCERT_CONTEXT cert, const CRYPT_KEY_PROV_INFO *info)
{
    HCRYPTPROV prov = 0;
    DWORD size = 0;
    int match = 0;
    if (!CryptAcquireContextW(&prov, info->pwszContainerName, info->pwszProvName, info->dwProvType,
                              info->dwFlags & CRYPT_MACHINE_KEYSET))
        return 0;
    if (CryptExportPublicKeyInfo(prov, info->dwKeySpec, X509_ASN_ENCODING, NULL, &size)) {
        CERT_PUBLIC_KEY_INFO *spki = malloc(size);
        if (spki != NULL &&
            CryptExportPublicKeyInfo(prov, info->dwKeySpec, X509_ASN_ENCODING, spki, &size))
            match = CertComparePublicKeyInfo(X509_ASN_ENCODING, spki,
                                             &cert->pCertInfo->SubjectPublicKeyInfo) != 0;
        free(spki);
    }
    CryptReleaseContext(prov, 0);
    return match;
}

int iocpi_tls_key_matches(PCCERT_CONTEXT cert)
{
    CRYPT_KEY_PROV_INFO *info = iocpi_tls_key_prov_info(cert);
    int match = info != NULL && info->dwProvType != 0 && container_matches(cert, info);
    free(info);
    return match;
}

/* One try: a fresh exportable import, its key into a new container. 1 when the new
 * container holds the certificate's key and the certificate names it; 0 to try again; -1
 * when the system cannot do it at all (err set). */
static int move_once(iocpi_tls_creds *c, const CRYPT_KEY_PROV_INFO *shared, CRYPT_DATA_BLOB *pfx,
                     const wchar_t *password, const char *path, char *err, size_t err_size)
{
    /* Only to put the key back in the default container, exportable this time: the store
     * itself is not used. */
    HCERTSTORE again = PFXImportCertStore(pfx, password, CRYPT_EXPORTABLE);
    if (again == NULL)
        return 0;
    /* (A system that gave this import a container of its own gets it deleted.) */
    PCCERT_CONTEXT each = NULL;
    while ((each = CertEnumCertificatesInStore(again, each)) != NULL) {
        CRYPT_KEY_PROV_INFO *info = iocpi_tls_key_prov_info(each);
        iocpi_tls_key_forget(info);
        free(info);
    }
    CertCloseStore(again, 0);
    DWORD len = 0, spec = 0;
    BYTE *blob = export_private_key(shared, &len, &spec);
    if (blob == NULL)
        return 0;
    wchar_t name[64];
    CRYPT_KEY_PROV_INFO own;
    memset(&own, 0, sizeof own);
    own.pwszContainerName = name;
    own.pwszProvName = shared->pwszProvName;
    own.dwProvType = shared->dwProvType;
    own.dwFlags = shared->dwFlags & CRYPT_MACHINE_KEYSET;
    own.dwKeySpec = spec;
    int rc = -1;
    HCRYPTPROV prov = 0;
    HCRYPTKEY key = 0;
    if (new_container_name(name, sizeof name / sizeof name[0]) != 0) {
        c->error = GetLastError();
        snprintf(err, err_size, "cannot name a key container for the key of %s (0x%08lx)", path,
                 (unsigned long)c->error);
        goto out;
    }
    /* Recorded before it exists: a crash from here on leaves nothing for good. */
    iocpi_tls_key_record_add(&own);
    if (!CryptAcquireContextW(&prov, name, own.pwszProvName, own.dwProvType,
                              CRYPT_NEWKEYSET | own.dwFlags)) {
        DWORD e = GetLastError();
        iocpi_tls_key_forget(&own);
        snprintf(err, err_size, "cannot make a key container for the key of %s (error 0x%08lx)",
                 path, (unsigned long)e);
        c->error = e;
        goto out;
    }
    /* Not exportable in its new home: nothing needs it out again. */
    if (!CryptImportKey(prov, blob, len, 0, 0, &key)) {
        DWORD e = GetLastError();
        CryptReleaseContext(prov, 0);
        iocpi_tls_key_forget(&own);
        snprintf(err, err_size, "cannot store the key of %s in a container of its own (0x%08lx)",
                 path, (unsigned long)e);
        c->error = e;
        goto out;
    }
    CryptDestroyKey(key);
    CryptReleaseContext(prov, 0); /* persisted: what the check below reads back */
    if (!container_matches(c->cert, &own)) {
        iocpi_tls_key_forget(&own); /* another import's key: try again */
        rc = 0;
        goto out;
    }
    /* The certificate now names the new container (the context is shared with the store's
     * copy, so freeing the credentials deletes it). A key handle cached on the context from
     * the default container would still be used first: dropped. */
    CertSetCertificateContextProperty(c->cert, CERT_KEY_CONTEXT_PROP_ID, 0, NULL);
    if (!CertSetCertificateContextProperty(c->cert, CERT_KEY_PROV_INFO_PROP_ID, 0, &own)) {
        DWORD e = GetLastError();
        iocpi_tls_key_forget(&own);
        snprintf(err, err_size, "cannot point the certificate of %s at its key (0x%08lx)", path,
                 (unsigned long)e);
        c->error = e;
        goto out;
    }
    rc = 1;
out:
    SecureZeroMemory(blob, len);
    free(blob);
    return rc;
}

int iocpi_tls_key_move(iocpi_tls_creds *c, CRYPT_DATA_BLOB *pfx, const wchar_t *password,
                       const char *path, char *err, size_t err_size)
{
    CRYPT_KEY_PROV_INFO *shared = iocpi_tls_key_prov_info(c->cert);
    int rc = 0;
    if (shared == NULL)
        return 0; /* no key named: the caller's checks say so */
    for (int i = 0; i < KEY_MOVE_TRIES && rc == 0; i++) {
        rc = move_once(c, shared, pfx, password, path, err, err_size);
        if (rc == 0)
            Sleep((DWORD)i); /* the other import is mid-way: let it finish */
    }
    free(shared);
    if (rc == 0) {
        c->error = (DWORD)NTE_BAD_KEY;
        snprintf(err, err_size,
                 "the key of %s did not stay in the shared default key container long enough "
                 "to be taken out (%d tries: other imports of this user kept replacing it)",
                 path, KEY_MOVE_TRIES);
    }
    return rc == 1 ? 0 : -1;
}
