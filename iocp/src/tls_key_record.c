/*
 * tls_key_record.c: the key containers PFX imports made, recorded so that a crash does not
 * leave a private key on disk for ever.
 *
 * Each import persists the key in a container of its own (Windows: a GUID name; Wine: the one
 * tls_key_move.c makes), deleted when the credentials are freed. A process that crashes or is
 * killed never frees them: the copy of the private key would stay in the user's profile. So
 * every container is recorded before it is used, the entry removed when the container is
 * deleted, and at the first import of a later process every entry whose process is gone has
 * its container deleted.
 *
 * Where: one registry key, HKCU\Software\iocp\TlsKeyContainers, of the account that made the
 * containers (the containers are that account's too). The same place for a program embedding
 * the engine and for iocp-service, since any later process of the account can clean up after
 * any earlier one; a service's own data folder would miss what a console run or another
 * program left. HKCU's DACL lets only the user, SYSTEM and Administrators in, who can read the
 * containers themselves anyway.
 *
 * An entry: the container's name as the value name; as REG_SZ "PID CREATED TYPE FLAGS
 * PROVIDER": the owning process's id and creation time (a FILETIME in hex: a reused id is
 * another process), the provider type (0: a CNG key storage provider), the machine-key flag
 * and the provider's name. A sweep deletes only recorded names, never the user's default
 * container, and never one whose process still runs (another engine of the same user uses it
 * right now).
 */
#include "tls.h"

#include <ncrypt.h>
#include <wchar.h>

#define RECORD_KEY_DEFAULT L"Software\\iocp\\TlsKeyContainers"

static wchar_t record_key[200] = RECORD_KEY_DEFAULT;

void iocpi_tls_key_record_location(const wchar_t *subkey)
{
    swprintf(record_key, sizeof record_key / sizeof record_key[0], L"%ls",
             subkey != NULL ? subkey : RECORD_KEY_DEFAULT);
}

static HKEY open_record(int create)
{
    HKEY key = NULL;
    LSTATUS s = create ? RegCreateKeyExW(HKEY_CURRENT_USER, record_key, 0, NULL, 0,
                                         KEY_QUERY_VALUE | KEY_SET_VALUE, NULL, &key, NULL)
                       : RegOpenKeyExW(HKEY_CURRENT_USER, record_key, 0,
                                       KEY_QUERY_VALUE | KEY_SET_VALUE, &key);
    return s == ERROR_SUCCESS ? key : NULL;
}

static unsigned long long process_created(HANDLE process)
{
    FILETIME created, exited, kernel, user;
    if (!GetProcessTimes(process, &created, &exited, &kernel, &user))
        return 0;
    return (unsigned long long)created.dwHighDateTime << 32 | created.dwLowDateTime;
}

void iocpi_tls_key_record_add(const CRYPT_KEY_PROV_INFO *info)
{
    if (info == NULL || iocpi_tls_default_container(info->pwszContainerName))
        return;
    HKEY key = open_record(1);
    if (key == NULL)
        return; /* no record: the container is still deleted at free, only not after a crash */
    wchar_t entry[400];
    int n =
        swprintf(entry, sizeof entry / sizeof entry[0], L"%lu %016llx %lu %lu %ls",
                 (unsigned long)GetCurrentProcessId(), process_created(GetCurrentProcess()),
                 (unsigned long)info->dwProvType,
                 (unsigned long)(info->dwFlags & (CRYPT_MACHINE_KEYSET | NCRYPT_MACHINE_KEY_FLAG)),
                 info->pwszProvName != NULL ? info->pwszProvName : L"");
    if (n > 0)
        RegSetValueExW(key, info->pwszContainerName, 0, REG_SZ, (const BYTE *)entry,
                       (DWORD)((size_t)(n + 1) * sizeof(wchar_t)));
    RegCloseKey(key);
}

static void record_remove(const wchar_t *container)
{
    HKEY key = open_record(0);
    if (key == NULL)
        return;
    RegDeleteValueW(key, container);
    RegCloseKey(key);
}

/* Deletes the container (CryptoAPI or CNG). 1 when it is gone (deleted now, or already). */
static int delete_container(const CRYPT_KEY_PROV_INFO *info)
{
    if (info->dwProvType == 0) {
        NCRYPT_PROV_HANDLE prov = 0;
        NCRYPT_KEY_HANDLE key = 0;
        SECURITY_STATUS s = NCryptOpenStorageProvider(&prov, info->pwszProvName, 0);
        if (s != ERROR_SUCCESS)
            return 0;
        s = NCryptOpenKey(prov, &key, info->pwszContainerName, 0,
                          info->dwFlags & NCRYPT_MACHINE_KEY_FLAG);
        if (s == ERROR_SUCCESS)
            s = NCryptDeleteKey(key, 0); /* frees key as well */
        NCryptFreeObject(prov);
        return s == ERROR_SUCCESS || s == NTE_BAD_KEYSET;
    }
    HCRYPTPROV prov = 0;
    if (CryptAcquireContextW(&prov, info->pwszContainerName, info->pwszProvName, info->dwProvType,
                             CRYPT_DELETEKEYSET | (info->dwFlags & CRYPT_MACHINE_KEYSET)))
        return 1;
    return GetLastError() == (DWORD)NTE_BAD_KEYSET;
}

void iocpi_tls_key_forget(const CRYPT_KEY_PROV_INFO *info)
{
    if (info == NULL || iocpi_tls_default_container(info->pwszContainerName))
        return;
    delete_container(info);
    record_remove(info->pwszContainerName);
}

/* Whether the process that recorded an entry still runs (the same id and creation time). An
 * id this process may not open is someone's running process: kept. */
static int owner_alive(unsigned long pid, unsigned long long created)
{
    HANDLE p = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
    if (p == NULL)
        return GetLastError() == ERROR_ACCESS_DENIED;
    DWORD code = 0;
    int alive =
        GetExitCodeProcess(p, &code) && code == STILL_ACTIVE && process_created(p) == created;
    CloseHandle(p);
    return alive;
}

/* "PID CREATED TYPE FLAGS PROVIDER" into its fields; the provider's name (the rest), or NULL
 * when the entry is not one of ours. */
static const wchar_t *parse_entry(const wchar_t *entry, unsigned long *pid,
                                  unsigned long long *created, unsigned long *prov_type,
                                  unsigned long *flags)
{
    wchar_t *end;
    const wchar_t *p = entry;
    *pid = wcstoul(p, &end, 10);
    if (end == p || *end != L' ')
        return NULL;
    p = end + 1;
    *created = wcstoull(p, &end, 16);
    if (end == p || *end != L' ')
        return NULL;
    p = end + 1;
    *prov_type = wcstoul(p, &end, 10);
    if (end == p || *end != L' ')
        return NULL;
    p = end + 1;
    *flags = wcstoul(p, &end, 10);
    if (end == p || *end != L' ')
        return NULL;
    return end + 1;
}

unsigned iocpi_tls_key_record_sweep(void)
{
    HKEY key = open_record(0);
    unsigned deleted = 0;
    if (key == NULL)
        return 0;
    /* Deleting values while enumerating renumbers them: collect first, one pass at a time. */
    for (DWORD index = 0;;) {
        wchar_t name[256], entry[400];
        DWORD name_len = sizeof name / sizeof name[0], type = 0,
              size = sizeof entry - sizeof(wchar_t);
        LSTATUS s = RegEnumValueW(key, index, name, &name_len, NULL, &type, (BYTE *)entry, &size);
        if (s == ERROR_NO_MORE_ITEMS)
            break;
        index++;
        if (s != ERROR_SUCCESS || type != REG_SZ)
            continue;
        entry[size / sizeof(wchar_t)] = L'\0';
        unsigned long pid, prov_type, flags;
        unsigned long long created;
        const wchar_t *provider = parse_entry(entry, &pid, &created, &prov_type, &flags);
        if (provider == NULL)
            continue;
        if (iocpi_tls_default_container(name) || owner_alive(pid, created))
            continue;
        CRYPT_KEY_PROV_INFO info;
        memset(&info, 0, sizeof info);
        info.pwszContainerName = name;
        info.pwszProvName = (wchar_t *)provider;
        info.dwProvType = prov_type;
        info.dwFlags = flags;
        if (delete_container(&info)) {
            RegDeleteValueW(key, name);
            index--; /* the next value moved into this index */
            deleted++;
        }
    }
    RegCloseKey(key);
    return deleted;
}

static INIT_ONCE swept = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK sweep_once(PINIT_ONCE once, void *param, void **context)
{
    (void)once;
    (void)param;
    (void)context;
    iocpi_tls_key_record_sweep();
    return TRUE;
}

void iocpi_tls_key_record_sweep_once(void)
{
    InitOnceExecuteOnce(&swept, sweep_once, NULL, NULL);
}
