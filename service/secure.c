/*
 * secure.c: what `install` checks before it registers anything.
 *
 * The executable's location. The SCM runs the ImagePath as the service account (its
 * virtual account NT SERVICE\<name> by default, another if asked), at every start. If
 * anyone else may replace that file, or add a file to its folder (a DLL the loader finds
 * there first), they get their code run with the service's rights. So the file's and its folder's
 * permissions must leave writing to SYSTEM, Administrators and TrustedInstaller, and their owner
 * must be one of those (an owner may always rewrite the permissions). The same holds for every
 * folder above, up to the root, for the rights that let one replace what is below: whoever may
 * delete or rename a child (or change the folder's permissions, or owns it) can move the
 * executable's folder away and put another in its place. Adding a folder is not such a right
 * (C:\ lets every user add folders). No step of the path may be a reparse point (a junction
 * or symbolic link): the check would be of the link, and what runs is wherever it leads. The check
 * reads the DACL and owner; it does not evaluate deny entries (an allow entry refused by a deny
 * entry before it is still reported: the strict answer, and --allow-unsafe-location exists for the
 * rare case).
 *
 * The account's password. A password on the command line is visible to every process that
 * can read command lines, kept by process-creation auditing (event 4688 with command lines)
 * and in shell history. So it is asked for: on a console with echo off, or read as one line
 * from standard input when that is not a console (a pipe or a file: scripts); the reader is
 * common/secret_input.c, which iocp-client uses for its PFX password too.
 */
#include "svc.h"

#include "secret_input.h"

#include <aclapi.h>
#include <sddl.h>
#include <stdlib.h>
#include <string.h>

/* ---- the executable's location ---------------------------------------------------------- */

/* Rights that let a principal change what runs: rewrite or extend the file, replace or
 * rename it, change its permissions or owner. On a folder the first two are "add a file" and
 * "add a subfolder", and deleting a child (the executable) joins them. */
#define WRITE_RIGHTS                                                                               \
    (FILE_WRITE_DATA | FILE_APPEND_DATA | WRITE_DAC | WRITE_OWNER | DELETE | GENERIC_WRITE |       \
     GENERIC_ALL | MAXIMUM_ALLOWED)
#define FOLDER_WRITE_RIGHTS (WRITE_RIGHTS | FILE_DELETE_CHILD)
/* A folder further up: replacing a child (delete or rename it), or itself, or its rights. */
#define ANCESTOR_WRITE_RIGHTS                                                                      \
    (FILE_DELETE_CHILD | DELETE | WRITE_DAC | WRITE_OWNER | GENERIC_ALL | MAXIMUM_ALLOWED)

/* NT SERVICE\TrustedInstaller: owns and writes the system's own files. */
#define TRUSTED_INSTALLER_SID L"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"

static int is_trusted(PSID sid)
{
    if (IsWellKnownSid(sid, WinLocalSystemSid) ||
        IsWellKnownSid(sid, WinBuiltinAdministratorsSid) || IsWellKnownSid(sid, WinCreatorOwnerSid))
        return 1;
    PSID ti = NULL;
    int same = 0;
    if (ConvertStringSidToSidW(TRUSTED_INSTALLER_SID, &ti)) {
        same = EqualSid(sid, ti) != 0;
        LocalFree(ti);
    }
    return same;
}

/* "BUILTIN\Users", or the SID as text when it has no name here. */
static void sid_name(PSID sid, char *out, size_t size)
{
    wchar_t name[256], domain[256];
    DWORD nn = 256, dn = 256;
    SID_NAME_USE use;
    if (LookupAccountSidW(NULL, sid, name, &nn, domain, &dn, &use)) {
        char n8[256 * 3], d8[256 * 3];
        svc_narrow(name, n8, sizeof n8);
        svc_narrow(domain, d8, sizeof d8);
        snprintf(out, size, "%s%s%s", d8, d8[0] ? "\\" : "", n8);
        return;
    }
    wchar_t *text = NULL;
    if (ConvertSidToStringSidW(sid, &text)) {
        svc_narrow(text, out, size);
        LocalFree(text);
    } else {
        snprintf(out, size, "an unknown account");
    }
}

static void rights_text(ACCESS_MASK m, int folder, char *out, size_t size)
{
    static const struct {
        ACCESS_MASK bit;
        const char *file, *dir;
    } names[] = {
        {GENERIC_ALL, "full control", "full control"},
        {GENERIC_WRITE, "write", "write"},
        {MAXIMUM_ALLOWED, "maximum allowed", "maximum allowed"},
        {FILE_WRITE_DATA, "write data", "add files"},
        {FILE_APPEND_DATA, "append data", "add folders"},
        {FILE_DELETE_CHILD, "", "delete files in it"},
        {DELETE, "delete", "delete"},
        {WRITE_DAC, "change permissions", "change permissions"},
        {WRITE_OWNER, "take ownership", "take ownership"},
    };
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *n = folder ? names[i].dir : names[i].file;
        if (!(m & names[i].bit) || n[0] == '\0' || len >= size)
            continue;
        int k = snprintf(out + len, size - len, "%s%s", len ? ", " : "", n);
        if (k > 0)
            len += (size_t)k;
    }
}

int svc_sd_writable_by_others(PSECURITY_DESCRIPTOR sd, int folder, char *who, size_t who_size)
{
    BOOL present = FALSE, defaulted = FALSE;
    PACL dacl = NULL;
    PSID owner = NULL;
    char name[300], rights[200];
    who[0] = '\0';
    if (sd == NULL || !GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted))
        return -1;
    if (!present || dacl == NULL) {
        /* No DACL: no access check at all (a FAT volume, or a NULL DACL). */
        snprintf(who, who_size, "Everyone may write it (it has no permissions at all)");
        return 1;
    }
    ACL_SIZE_INFORMATION info;
    if (!GetAclInformation(dacl, &info, sizeof info, AclSizeInformation))
        return -1;
    ACCESS_MASK dangerous = folder == SVC_LOCATION_ANCESTOR ? ANCESTOR_WRITE_RIGHTS
                            : folder                        ? FOLDER_WRITE_RIGHTS
                                                            : WRITE_RIGHTS;
    for (DWORD i = 0; i < info.AceCount; i++) {
        ACE_HEADER *ace;
        if (!GetAce(dacl, i, (void **)&ace))
            return -1;
        /* An inherit-only entry applies to what will be created inside, not to this object
         * (the executable's own entries are checked on the executable). */
        if (ace->AceType != ACCESS_ALLOWED_ACE_TYPE || (ace->AceFlags & INHERIT_ONLY_ACE))
            continue;
        ACCESS_ALLOWED_ACE *allow = (ACCESS_ALLOWED_ACE *)ace;
        PSID sid = (PSID)&allow->SidStart;
        ACCESS_MASK m = allow->Mask & dangerous;
        if (m == 0 || is_trusted(sid))
            continue;
        sid_name(sid, name, sizeof name);
        rights_text(m, folder, rights, sizeof rights);
        snprintf(who, who_size, "%s may change it (%s)", name, rights);
        return 1;
    }
    if (GetSecurityDescriptorOwner(sd, &owner, &defaulted) && owner != NULL && !is_trusted(owner)) {
        sid_name(owner, name, sizeof name);
        snprintf(who, who_size, "it is owned by %s (an owner may always change its permissions)",
                 name);
        return 1;
    }
    return 0;
}

int svc_location_verdict(const svc_location_entry *entries, size_t count, char *msg,
                         size_t msg_size)
{
    static const char *const what[] = {"the executable", "the folder", "the folder above it"};
    char who[400], p8[SVC_PATH_MAX * 3];
    msg[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const svc_location_entry *e = &entries[i];
        svc_narrow(e->path, p8, sizeof p8);
        if (e->attributes != INVALID_FILE_ATTRIBUTES &&
            (e->attributes & FILE_ATTRIBUTE_REPARSE_POINT)) {
            snprintf(msg, msg_size,
                     "%s %s is a reparse point (a junction or symbolic link: what runs is "
                     "wherever it leads, which whoever may change the link decides); install "
                     "from the real path",
                     what[e->kind], p8);
            return 1;
        }
        int rc = svc_sd_writable_by_others(e->sd, (int)e->kind, who, sizeof who);
        if (rc < 0) {
            snprintf(msg, msg_size, "cannot read the permissions of %s", p8);
            return -1;
        }
        if (rc > 0) {
            snprintf(msg, msg_size, "%s %s: %s", what[e->kind], p8, who);
            return 1;
        }
    }
    return 0;
}

/* One step of the path, read from the file system: its attributes (a link's own, not its
 * target's) and its owner and DACL. 0, or -1 with msg set. */
static int read_entry(const wchar_t *path, svc_location_entry *e, char *msg, size_t msg_size)
{
    char p8[SVC_PATH_MAX * 3], text[300];
    e->path = path;
    e->sd = NULL;
    e->attributes = GetFileAttributesW(path);
    DWORD err = GetNamedSecurityInfoW(path, SE_FILE_OBJECT,
                                      OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, NULL,
                                      NULL, NULL, NULL, &e->sd);
    if (err != ERROR_SUCCESS) {
        svc_narrow(path, p8, sizeof p8);
        snprintf(msg, msg_size, "cannot read the permissions of %s: %s", p8,
                 svc_win32_text(err, text, sizeof text));
        e->sd = NULL;
        return -1;
    }
    return 0;
}

/* "C:\a\b" -> "C:\a"; "C:\a" -> "C:\"; 0 when path is a root (or has no folder above). */
static int cut_to_parent(wchar_t *path)
{
    wchar_t *slash = wcsrchr(path, L'\\');
    if (slash == NULL || slash[1] == L'\0')
        return 0; /* "C:\" or no backslash: the top */
    /* "\\server\share": a share's root has no folder above it here. */
    if (path[0] == L'\\' && path[1] == L'\\') {
        int n = 0;
        for (const wchar_t *p = path + 2; p < slash; p++)
            n += *p == L'\\';
        if (n < 1)
            return 0;
    }
    /* "C:\x": the folder above is "C:\", whose own path keeps the backslash. */
    slash[slash > path && slash[-1] == L':' ? 1 : 0] = L'\0';
    return 1;
}

int svc_check_exe_location(const wchar_t *exe, char *msg, size_t msg_size)
{
    /* The executable, then each folder up to the root: at most one step per backslash. */
    size_t cap = 2;
    for (const wchar_t *p = exe; *p; p++)
        cap += *p == L'\\';
    svc_location_entry *entries = calloc(cap, sizeof *entries);
    wchar_t(*paths)[SVC_PATH_MAX] = calloc(cap, sizeof *paths);
    size_t n = 0;
    int rc = -1;
    msg[0] = '\0';
    if (entries == NULL || paths == NULL) {
        snprintf(msg, msg_size, "out of memory checking the executable's location");
        goto out;
    }
    swprintf(paths[0], SVC_PATH_MAX, L"%ls", exe);
    paths[0][SVC_PATH_MAX - 1] = L'\0';
    for (;;) {
        entries[n].kind = n == 0   ? SVC_LOCATION_FILE
                          : n == 1 ? SVC_LOCATION_FOLDER
                                   : SVC_LOCATION_ANCESTOR;
        if (read_entry(paths[n], &entries[n], msg, msg_size) != 0)
            goto out;
        n++;
        if (n >= cap)
            break;
        memcpy(paths[n], paths[n - 1], sizeof paths[n]);
        if (!cut_to_parent(paths[n]))
            break;
    }
    rc = svc_location_verdict(entries, n, msg, msg_size);
out:
    if (entries != NULL)
        for (size_t i = 0; i < n; i++)
            LocalFree(entries[i].sd);
    free(entries);
    free(paths);
    return rc;
}

/* ---- the account and its password -------------------------------------------------------- */

int svc_account_is_builtin(const char *account)
{
    static const char *const builtin[] = {"LocalSystem", "LocalService", "NetworkService",
                                          "SYSTEM"};
    const char *name = account;
    size_t len = strlen(account);
    if (len == 0)
        return 1; /* CreateService's NULL/"": LocalSystem */
    /* A group managed service account (DOMAIN\name$): Windows keeps its password. */
    if (account[len - 1] == '$')
        return 1;
    /* A virtual account NT SERVICE\<service>: no password either. */
    if (_strnicmp(account, "NT SERVICE\\", 11) == 0)
        return 1;
    if (_strnicmp(account, "NT AUTHORITY\\", 13) == 0)
        name = account + 13;
    else if (_strnicmp(account, ".\\", 2) == 0)
        name = account + 2;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (_stricmp(name, builtin[i]) == 0)
            return 1;
    return 0;
}

int svc_account_password_null(const char *account)
{
    size_t len = strlen(account);
    /* CreateServiceW: "If the account name ... is the name of a managed service account or
     * virtual account name, the lpPassword parameter must be NULL"; the three built-in
     * accounts take an empty string. */
    return (len > 0 && account[len - 1] == '$') || _strnicmp(account, "NT SERVICE\\", 11) == 0;
}

int svc_get_password(const char *account, char *out, size_t size, char *err, size_t err_size)
{
    char who[SVC_TEXT_MAX + 20];
    snprintf(who, sizeof who, "the account %s", account);
    return secret_get(who, out, size, err, err_size) == NO_ERROR ? 0 : -1;
}
