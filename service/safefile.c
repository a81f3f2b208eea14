/*
 * safefile.c: opening a file the service writes (the log and its rotated copies) so that a
 * local user cannot choose what it writes to, read it, or forge it.
 *
 * The service runs with rights its users lack, and the paths it writes are often in folders
 * those users may add to (C:\ProgramData lets every user create files). A user who creates
 * the path first owns it, can read and rewrite every line, or can make the path a symbolic
 * link, a junction or a hard link to another file, which the service would then append to,
 * rename or delete with its own rights. So every open here:
 *   - is made with FILE_FLAG_OPEN_REPARSE_POINT, so a link is opened as itself, never
 *     followed, and refused;
 *   - refuses a file with more than one hard link (its other name can be anywhere on the
 *     volume, a file the service must not touch);
 *   - refuses an existing file or folder whose owner is not trusted: LocalSystem,
 *     Administrators, TrustedInstaller (it owns system folders) or this process's own account.
 *     A file created by anyone else was planted;
 *   - gives a file it creates an explicit protected DACL (system, administrators, and the
 *     service's own SID NT SERVICE\<name>, or in a console or a token without that SID this
 *     process's account; nobody else), not what the folder would pass on. Naming the account
 *     instead would let every service that runs as LocalService read and forge the log.
 * The checks run on the opened handle, so what is checked is what is written.
 */
#include "svc.h"

#include <aclapi.h>
#include <sddl.h>
#include <string.h>

#ifndef ERROR_REPARSE_POINT_ENCOUNTERED
#define ERROR_REPARSE_POINT_ENCOUNTERED 4395L /* winerror.h of the Windows SDK; not MinGW's */
#endif

/* NT SERVICE\TrustedInstaller owns C:\ and the system's folders on current Windows. */
#define TRUSTED_INSTALLER_SID L"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"

static int owner_trusted(PSID owner, PSID self)
{
    if (owner == NULL || !IsValidSid(owner))
        return 0;
    if (self != NULL && IsValidSid(self) && EqualSid(owner, self))
        return 1;
    if (IsWellKnownSid(owner, WinLocalSystemSid) ||
        IsWellKnownSid(owner, WinBuiltinAdministratorsSid))
        return 1;
    PSID ti = NULL;
    int trusted = 0;
    if (ConvertStringSidToSidW(TRUSTED_INSTALLER_SID, &ti)) {
        trusted = EqualSid(owner, ti) != 0;
        LocalFree(ti);
    }
    return trusted;
}

const char *svc_file_refusal(DWORD attributes, DWORD links, PSID owner, PSID self, int want_dir,
                             DWORD *code)
{
    if (attributes & FILE_ATTRIBUTE_REPARSE_POINT) {
        *code = ERROR_REPARSE_POINT_ENCOUNTERED;
        return "it is a reparse point (a symbolic link or junction could send the writes to "
               "another file)";
    }
    if (want_dir && !(attributes & FILE_ATTRIBUTE_DIRECTORY)) {
        *code = ERROR_DIRECTORY;
        return "it is not a folder";
    }
    if (!want_dir && (attributes & FILE_ATTRIBUTE_DIRECTORY)) {
        *code = ERROR_DIRECTORY;
        return "it is a folder";
    }
    if (!want_dir && links > 1) {
        *code = ERROR_TOO_MANY_LINKS;
        return "it has more than one hard link (another of its names may be a file the "
               "service must not write)";
    }
    if (!owner_trusted(owner, self)) {
        *code = ERROR_INVALID_OWNER;
        return "its owner is not LocalSystem, Administrators or this process's account (a "
               "file another user created first could be read, forged or redirected by them)";
    }
    *code = NO_ERROR;
    return NULL;
}

/* The token's user SID into buf; NULL if it cannot be read. */
static PSID self_sid(BYTE *buf, DWORD size)
{
    HANDLE token = NULL;
    DWORD len = 0;
    PSID sid = NULL;
    if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) {
        if (GetTokenInformation(token, TokenUser, buf, size, &len))
            sid = ((TOKEN_USER *)(void *)buf)->User.Sid;
        CloseHandle(token);
    }
    return sid;
}

void svc_private_file_sddl(int folder, const wchar_t *user_sid, const wchar_t *service_sid,
                           wchar_t *out, size_t count)
{
    const wchar_t *own = service_sid != NULL && service_sid[0] != L'\0' ? service_sid : user_sid;
    if (folder) /* system and administrators: full; the service: modify; inherited */
        swprintf(out, count, L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;%ls)", own);
    else /* full control for system, administrators and the service; P: nothing inherited */
        swprintf(out, count, L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;%ls)", own);
    out[count - 1] = L'\0';
}

/* The private descriptor of a new file or folder: it names the service's own SID
 * (NT SERVICE\<name>) when the token holds it, else this process's account. LocalFree it. */
static PSECURITY_DESCRIPTOR private_sd(int folder)
{
    wchar_t user[SVC_SID_TEXT_MAX], service[SVC_SID_TEXT_MAX], sddl[SVC_SID_TEXT_MAX + 100];
    PSECURITY_DESCRIPTOR sd = NULL;
    svc_identity_sids(user, SVC_SID_TEXT_MAX, service, SVC_SID_TEXT_MAX);
    if (user[0] == L'\0' && service[0] == L'\0')
        return NULL;
    svc_private_file_sddl(folder, user, service, sddl, sizeof sddl / sizeof sddl[0]);
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL))
        sd = NULL;
    return sd;
}

/* Whether owner is the service's own SID (a file it made under a token whose owner is that
 * SID, or whose account is its virtual account). */
static int owner_is_service(PSID owner)
{
    wchar_t user[SVC_SID_TEXT_MAX], service[SVC_SID_TEXT_MAX];
    PSID sid = NULL;
    int same = 0;
    svc_identity_sids(user, SVC_SID_TEXT_MAX, service, SVC_SID_TEXT_MAX);
    if (owner != NULL && service[0] != L'\0' && ConvertStringSidToSidW(service, &sid)) {
        same = IsValidSid(owner) && EqualSid(owner, sid);
        LocalFree(sid);
    }
    return same;
}

DWORD svc_file_check(HANDLE h, int want_dir, char *why, size_t why_size)
{
    BY_HANDLE_FILE_INFORMATION bi;
    union {
        TOKEN_USER user;
        BYTE raw[256];
    } info;
    PSID owner = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    DWORD code;
    if (!GetFileInformationByHandle(h, &bi)) {
        code = GetLastError();
        snprintf(why, why_size, "cannot read its attributes (Win32 %lu)", (unsigned long)code);
        return code;
    }
    code = GetSecurityInfo(h, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner, NULL, NULL, NULL,
                           &sd);
    if (code != ERROR_SUCCESS) {
        snprintf(why, why_size, "cannot read its owner (Win32 %lu)", (unsigned long)code);
        return code;
    }
    /* "This process's account" is the service's SID too, when it runs as the service. */
    PSID self = owner_is_service(owner) ? owner : self_sid(info.raw, sizeof info.raw);
    const char *reason =
        svc_file_refusal(bi.dwFileAttributes, bi.nNumberOfLinks, owner, self, want_dir, &code);
    if (reason != NULL) {
        wchar_t *text = NULL;
        char owner_text[200] = "?";
        if (owner != NULL && ConvertSidToStringSidW(owner, &text)) {
            svc_narrow(text, owner_text, sizeof owner_text);
            LocalFree(text);
        }
        if (code == ERROR_INVALID_OWNER)
            snprintf(why, why_size, "%s (owner %s)", reason, owner_text);
        else if (code == ERROR_TOO_MANY_LINKS)
            snprintf(why, why_size, "%s (%lu links)", reason, (unsigned long)bi.nNumberOfLinks);
        else
            snprintf(why, why_size, "%s", reason);
    }
    LocalFree(sd);
    return code;
}

HANDLE svc_file_open_checked(const wchar_t *path, DWORD access, DWORD disposition, DWORD *code,
                             char *why, size_t why_size)
{
    PSECURITY_DESCRIPTOR sd = private_sd(0);
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    why[0] = '\0';
    if (sd == NULL && disposition != OPEN_EXISTING) {
        *code = ERROR_INVALID_SECURITY_DESCR;
        snprintf(why, why_size, "cannot build its security descriptor");
        return INVALID_HANDLE_VALUE;
    }
    /* Others may read, rename (rotation by another process) and delete it while it is open. */
    HANDLE h =
        CreateFileW(path, access | FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE,
                    FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, sd != NULL ? &sa : NULL,
                    disposition, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    *code = h == INVALID_HANDLE_VALUE ? GetLastError() : NO_ERROR;
    if (sd != NULL)
        LocalFree(sd);
    if (h == INVALID_HANDLE_VALUE)
        return h;
    *code = svc_file_check(h, 0, why, why_size);
    if (*code != NO_ERROR) {
        CloseHandle(h);
        return INVALID_HANDLE_VALUE;
    }
    return h;
}

HANDLE svc_dir_open_checked(const wchar_t *dir, int *created, DWORD *code, char *why,
                            size_t why_size)
{
    why[0] = '\0';
    *created = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        /* No FILE_SHARE_DELETE: while it is held, nobody can rename the folder away and put
         * another (or a junction) in its place. */
        HANDLE h = CreateFileW(dir, FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE,
                               FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING,
                               FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
        if (h != INVALID_HANDLE_VALUE) {
            *code = svc_file_check(h, 1, why, why_size);
            if (*code == NO_ERROR)
                return h;
            CloseHandle(h);
            return INVALID_HANDLE_VALUE;
        }
        *code = GetLastError();
        if (attempt > 0 || *code != ERROR_FILE_NOT_FOUND)
            break;
        /* Missing: made here, one level only (a missing parent is an operator's mistake).
         * System and administrators: full; this account: modify; nobody else: the lines name
         * the peers and nobody else needs them. */
        PSECURITY_DESCRIPTOR sd = private_sd(1);
        SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
        if (sd == NULL) {
            *code = ERROR_INVALID_SECURITY_DESCR;
            snprintf(why, why_size, "cannot build the folder's security descriptor");
            return INVALID_HANDLE_VALUE;
        }
        BOOL ok = CreateDirectoryW(dir, &sa);
        *code = ok ? NO_ERROR : GetLastError();
        LocalFree(sd);
        if (ok)
            *created = 1;
        else if (*code != ERROR_ALREADY_EXISTS) /* made by someone else meanwhile: check it */
            break;
    }
    char text[300];
    snprintf(why, why_size, "%s", svc_win32_text(*code, text, sizeof text));
    return INVALID_HANDLE_VALUE;
}
