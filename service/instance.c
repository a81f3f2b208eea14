/*
 * instance.c: one server per name. The listener runs only while the process holds the mutex
 * Global\iocp-service-<name>, whether it runs in a console or as the service.
 *
 * A mutex does not say who holds it, and a killed holder's mutex is reported abandoned only
 * to a process that had it open at that moment: when nobody had, the object simply goes
 * away with the holder and the next one creates a fresh one. So the holder also leaves a
 * marker file, %ProgramData%\iocp-service\<name>.holder (pid, console or service, since when,
 * address), written once it holds the mutex and deleted just before it releases it. A refused
 * second instance reads the marker to name the holder; a new holder that finds a marker (or
 * gets WAIT_ABANDONED) knows the previous one ended without releasing, and says so. The mutex
 * is the lock; the marker only informs (anyone who may write the folder can fake one).
 */
#include "svc.h"

#include <sddl.h>
#include <shlobj.h>
#include <string.h>

#define HOLDER_MAGIC 0x494f4350u /* "IOCP" */

void svc_instance_mutex_name(const char *name, wchar_t *out, size_t count)
{
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    swprintf(out, count, L"Global\\iocp-service-%ls", wname);
    out[count - 1] = L'\0';
}

/* %ProgramData%\iocp-service\<name>.holder; the folder is made on first use: system,
 * administrators and the service accounts may change it, other users read and add. */
static void marker_path(const char *name, wchar_t *out, size_t count)
{
    wchar_t base[MAX_PATH], dir[MAX_PATH], wname[SVC_NAME_MAX + 1];
    out[0] = L'\0';
    /* The folder, not %ProgramData%: a service's environment need not have it (Wine's). */
    if (SHGetFolderPathW(NULL, CSIDL_COMMON_APPDATA, NULL, SHGFP_TYPE_CURRENT, base) != S_OK ||
        wcslen(base) >= MAX_PATH - SVC_NAME_MAX - 40)
        return;
    swprintf(dir, MAX_PATH, L"%ls\\iocp-service", base);
    dir[MAX_PATH - 1] = L'\0';
    PSECURITY_DESCRIPTOR sd = NULL;
    if (ConvertStringSecurityDescriptorToSecurityDescriptorW(
            L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;LS)(A;OICI;FA;;;NS)"
            L"(A;OICI;0x1301bf;;;AU)",
            SDDL_REVISION_1, &sd, NULL)) {
        SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
        CreateDirectoryW(dir, &sa); /* ERROR_ALREADY_EXISTS is the usual answer */
        LocalFree(sd);
    } else {
        CreateDirectoryW(dir, NULL);
    }
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    swprintf(out, count, L"%ls\\%ls.holder", dir, wname);
    out[count - 1] = L'\0';
}

static int read_marker(const wchar_t *path, svc_holder *r)
{
    if (path[0] == L'\0')
        return -1;
    HANDLE f =
        CreateFileW(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE)
        return -1;
    DWORD n = 0;
    BOOL ok = ReadFile(f, r, sizeof *r, &n, NULL);
    CloseHandle(f);
    if (!ok || n != sizeof *r || r->magic != HOLDER_MAGIC)
        return -1;
    /* Anyone who may write the folder wrote this: terminate and clean the texts. */
    r->mode[sizeof r->mode - 1] = '\0';
    r->address[sizeof r->address - 1] = '\0';
    for (char *p = r->mode; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    for (char *p = r->address; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    return 0;
}

static void write_marker(const svc_instance *inst)
{
    if (inst->marker[0] == L'\0')
        return;
    HANDLE f = CreateFileW(inst->marker, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE, NULL,
                           CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE) {
        svc_log(IOCP_LOG_DEBUG, "holder marker not written (Win32 %lu)",
                (unsigned long)GetLastError());
        return;
    }
    DWORD n;
    WriteFile(f, &inst->me, sizeof inst->me, &n, NULL);
    CloseHandle(f);
}

static void describe(const svc_holder *r, char *out, size_t size)
{
    SYSTEMTIME utc, local;
    char when[40] = "";
    if (FileTimeToSystemTime(&r->since, &utc) &&
        SystemTimeToTzSpecificLocalTime(NULL, &utc, &local))
        snprintf(when, sizeof when, ", since %04u-%02u-%02u %02u:%02u:%02u", local.wYear,
                 local.wMonth, local.wDay, local.wHour, local.wMinute, local.wSecond);
    snprintf(out, size, "process %lu (%s%s%s%s)", (unsigned long)r->pid, r->mode, when,
             r->address[0] ? ", listening on " : "", r->address);
}

svc_lock_result svc_instance_lock(svc_instance *inst, const char *name, const char *mode,
                                  char *holder, size_t holder_size, DWORD *sys_code)
{
    wchar_t wname[SVC_NAME_MAX + 40];
    svc_holder prev;
    memset(inst, 0, sizeof *inst);
    *sys_code = 0;
    holder[0] = '\0';
    svc_instance_mutex_name(name, wname, sizeof wname / sizeof wname[0]);
    marker_path(name, inst->marker, sizeof inst->marker / sizeof inst->marker[0]);

    PSECURITY_DESCRIPTOR sd = svc_private_sd();
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    /* Not owned at creation: the wait below tells "free", "held" and "abandoned" apart the
     * same way whether this call created the mutex or opened it. */
    inst->mutex = CreateMutexW(sd ? &sa : NULL, FALSE, wname);
    DWORD create_err = GetLastError();
    if (sd != NULL)
        LocalFree(sd);
    DWORD w = WAIT_FAILED;
    if (inst->mutex != NULL) {
        w = WaitForSingleObject(inst->mutex, 0);
        if (w == WAIT_FAILED)
            create_err = GetLastError();
    } else if (create_err == ERROR_ACCESS_DENIED) {
        /* It exists and its security keeps us out: a holder of another account. */
        w = WAIT_TIMEOUT;
    }

    switch (w) {
    case WAIT_OBJECT_0:
    case WAIT_ABANDONED: {
        int had_marker = read_marker(inst->marker, &prev) == 0;
        if (had_marker)
            describe(&prev, holder, holder_size);
        else if (w == WAIT_ABANDONED)
            snprintf(holder, holder_size, "a process that did not say who it was");
        inst->me.magic = HOLDER_MAGIC;
        inst->me.pid = GetCurrentProcessId();
        snprintf(inst->me.mode, sizeof inst->me.mode, "%s", mode);
        GetSystemTimeAsFileTime(&inst->me.since);
        write_marker(inst);
        return (w == WAIT_ABANDONED || had_marker) ? SVC_LOCK_ABANDONED : SVC_LOCK_OK;
    }
    case WAIT_TIMEOUT:
        /* The holder writes its marker a moment after taking the mutex: retry a little. */
        for (int attempt = 0; attempt < 20; attempt++) {
            if (read_marker(inst->marker, &prev) == 0) {
                describe(&prev, holder, holder_size);
                break;
            }
            Sleep(50);
        }
        if (holder[0] == '\0')
            snprintf(holder, holder_size, "a process that did not say who it is");
        if (inst->mutex != NULL)
            CloseHandle(inst->mutex);
        inst->mutex = NULL;
        *sys_code = ERROR_SERVICE_ALREADY_RUNNING;
        return SVC_LOCK_HELD;
    default:
        if (inst->mutex != NULL)
            CloseHandle(inst->mutex);
        inst->mutex = NULL;
        *sys_code = create_err;
        return SVC_LOCK_ERROR;
    }
}

void svc_instance_set_address(svc_instance *inst, const char *address)
{
    snprintf(inst->me.address, sizeof inst->me.address, "%s", address);
    write_marker(inst);
}

void svc_instance_unlock(svc_instance *inst)
{
    /* The marker goes first: a marker without a live holder means "ended without releasing". */
    if (inst->marker[0] != L'\0' && inst->me.magic == HOLDER_MAGIC)
        DeleteFileW(inst->marker);
    if (inst->mutex != NULL) {
        ReleaseMutex(inst->mutex);
        CloseHandle(inst->mutex);
        inst->mutex = NULL;
    }
    memset(&inst->me, 0, sizeof inst->me);
}
