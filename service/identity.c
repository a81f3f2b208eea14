/*
 * identity.c: who may touch the instance's objects, and who made an object.
 *
 * The instance mutex and the status pipe are the service's named objects; any local user can
 * see their names. Their DACL names local system, administrators and one more account:
 *   - as a service: the per-service SID NT SERVICE\<name> (install sets
 *     SERVICE_SID_TYPE_UNRESTRICTED, so the SCM puts that SID in the service's token). Naming
 *     the shared LocalService account instead would let every LocalService service on the
 *     machine use this one's mutex and pipe.
 *   - in a console, or as a service whose token lacks its SID (installed before the SID type
 *     was set, or a system that does not add it: Wine): the process's own user.
 * The service SID is computed, not looked up: S-1-5-80 followed by the SHA-1 of the upper-case
 * UTF-16LE service name as five little-endian 32-bit numbers (what LookupAccountNameW answers
 * for "NT SERVICE\<name>" on Windows, which Wine cannot answer).
 */
#include "svc.h"

#include <aclapi.h>
#include <bcrypt.h>
#include <sddl.h>
#include <string.h>

static char service_name[SVC_NAME_MAX + 1]; /* set once, before any object is made */

void svc_identity_set_service(const char *name)
{
    snprintf(service_name, sizeof service_name, "%s", name);
}

int svc_service_sid(const char *name, BYTE *sid, DWORD size)
{
    wchar_t upper[SVC_NAME_MAX + 1];
    size_t len = strlen(name);
    BYTE digest[20];
    int ok = 0;
    if (len == 0 || len > SVC_NAME_MAX || size < SECURITY_MAX_SID_SIZE)
        return -1;
    /* Service names here are ASCII (svc_name_valid): upper-casing is per character. */
    for (size_t i = 0; i < len; i++)
        upper[i] = (wchar_t)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
    BCRYPT_ALG_HANDLE alg = NULL;
    BCRYPT_HASH_HANDLE hash = NULL;
    if (BCryptOpenAlgorithmProvider(&alg, BCRYPT_SHA1_ALGORITHM, NULL, 0) == 0 &&
        BCryptCreateHash(alg, &hash, NULL, 0, NULL, 0, 0) == 0 &&
        BCryptHashData(hash, (PUCHAR)upper, (ULONG)(len * sizeof(wchar_t)), 0) == 0 &&
        BCryptFinishHash(hash, digest, sizeof digest, 0) == 0)
        ok = 1;
    if (hash != NULL)
        BCryptDestroyHash(hash);
    if (alg != NULL)
        BCryptCloseAlgorithmProvider(alg, 0);
    if (!ok)
        return -1;
    DWORD sub[5];
    for (int i = 0; i < 5; i++)
        sub[i] = (DWORD)digest[4 * i] | (DWORD)digest[4 * i + 1] << 8 |
                 (DWORD)digest[4 * i + 2] << 16 | (DWORD)digest[4 * i + 3] << 24;
    SID_IDENTIFIER_AUTHORITY nt = {SECURITY_NT_AUTHORITY};
    if (!InitializeSid((PSID)sid, &nt, 6))
        return -1;
    *GetSidSubAuthority((PSID)sid, 0) = SECURITY_SERVICE_ID_BASE_RID; /* 80 */
    for (int i = 0; i < 5; i++)
        *GetSidSubAuthority((PSID)sid, (DWORD)i + 1) = sub[i];
    return 0;
}

int svc_identity_sids(wchar_t *user, size_t user_count, wchar_t *service, size_t service_count)
{
    BYTE sid[SECURITY_MAX_SID_SIZE];
    BOOL member = FALSE;
    wchar_t *text = NULL;
    user[0] = L'\0';
    service[0] = L'\0';
    if (service_name[0] != '\0' && svc_service_sid(service_name, sid, sizeof sid) == 0 &&
        CheckTokenMembership(NULL, (PSID)sid, &member) && member &&
        ConvertSidToStringSidW((PSID)sid, &text)) {
        swprintf(service, service_count, L"%ls", text);
        service[service_count - 1] = L'\0';
        LocalFree(text);
        text = NULL;
    }
    HANDLE token = NULL;
    union {
        TOKEN_USER user;
        BYTE raw[256];
    } info;
    DWORD len = 0;
    if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) {
        if (GetTokenInformation(token, TokenUser, &info, sizeof info, &len) &&
            ConvertSidToStringSidW(info.user.User.Sid, &text)) {
            swprintf(user, user_count, L"%ls", text);
            user[user_count - 1] = L'\0';
            LocalFree(text);
        }
        CloseHandle(token);
    }
    return service_name[0] != '\0';
}

/* The SID the private DACL names besides system and administrators, as SDDL text. */
static int own_sid_text(wchar_t **text)
{
    BYTE sid[SECURITY_MAX_SID_SIZE];
    BOOL member = FALSE;
    if (service_name[0] != '\0' && svc_service_sid(service_name, sid, sizeof sid) == 0 &&
        CheckTokenMembership(NULL, (PSID)sid, &member) && member)
        return ConvertSidToStringSidW((PSID)sid, text) ? 0 : -1;
    if (service_name[0] != '\0')
        svc_log(IOCP_LOG_DEBUG,
                "the token lacks NT SERVICE\\%s (installed by an older version, "
                "or a system without per-service SIDs): the service account is named instead",
                service_name);
    HANDLE token = NULL;
    union {
        TOKEN_USER user;
        BYTE raw[256];
    } info;
    DWORD len = 0;
    int rc = -1;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
        return -1;
    if (GetTokenInformation(token, TokenUser, &info, sizeof info, &len) &&
        ConvertSidToStringSidW(info.user.User.Sid, text))
        rc = 0;
    CloseHandle(token);
    return rc;
}

PSECURITY_DESCRIPTOR svc_private_sd(void)
{
    PSECURITY_DESCRIPTOR sd = NULL;
    wchar_t *sid_text = NULL;
    if (own_sid_text(&sid_text) != 0)
        return NULL;
    wchar_t sddl[300];
    swprintf(sddl, sizeof sddl / sizeof sddl[0], L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;%ls)",
             sid_text);
    sddl[sizeof sddl / sizeof sddl[0] - 1] = L'\0';
    LocalFree(sid_text);
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL))
        return NULL;
    return sd;
}

int svc_object_owner(HANDLE h, BYTE *sid, DWORD size)
{
    PSID owner = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    if (GetSecurityInfo(h, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION, &owner, NULL, NULL, NULL,
                        &sd) != ERROR_SUCCESS)
        return -1;
    int rc = owner != NULL && IsValidSid(owner) && CopySid(size, (PSID)sid, owner) ? 0 : -1;
    LocalFree(sd);
    return rc;
}

void svc_sid_name(const BYTE *sid, char *out, size_t size)
{
    wchar_t user[128], domain[128], *text = NULL;
    DWORD ulen = 128, dlen = 128;
    SID_NAME_USE use;
    char u[256], d[256];
    if (LookupAccountSidW(NULL, (PSID)sid, user, &ulen, domain, &dlen, &use)) {
        svc_narrow(user, u, sizeof u);
        svc_narrow(domain, d, sizeof d);
        snprintf(out, size, "%s%s%s", d, d[0] ? "\\" : "", u);
    } else if (ConvertSidToStringSidW((PSID)sid, &text)) {
        svc_narrow(text, out, size);
        LocalFree(text);
    } else {
        snprintf(out, size, "an unknown account");
    }
}
