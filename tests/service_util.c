/*
 * service_util.c: the executable and the log files of the service tests (service_util.h).
 */
#include "service_util.h"

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "svc.h" /* windows.h, svc_widen, svc_narrow */
#include <shlobj.h>

#ifndef IOCP_SERVICE_EXE
#error "IOCP_SERVICE_EXE must name iocp-service.exe (set by tests/CMakeLists.txt)"
#endif

const char *service_exe(void)
{
    static char path[MAX_PATH * 2];
    DWORD n = GetEnvironmentVariableA("IOCP_SERVICE_EXE", path, sizeof path);
    if (n == 0 || n >= sizeof path)
        snprintf(path, sizeof path, "%s", IOCP_SERVICE_EXE);
    return path;
}

void log_path(char *out, size_t size, const char *name)
{
    wchar_t base[MAX_PATH], dir[MAX_PATH];
    if (SHGetFolderPathW(NULL, CSIDL_COMMON_APPDATA, NULL, SHGFP_TYPE_CURRENT, base) != S_OK)
        GetTempPathW(MAX_PATH, base);
    swprintf(dir, MAX_PATH, L"%ls\\iocp-service-tests", base);
    CreateDirectoryW(dir, NULL);
    char narrow[MAX_PATH * 3];
    svc_narrow(dir, narrow, sizeof narrow);
    snprintf(out, size, "%s\\%s.log", narrow, name);
    wchar_t wide[MAX_PATH];
    svc_widen(out, wide, MAX_PATH);
    DeleteFileW(wide);
}

void read_file(const char *path, char *out, size_t size)
{
    wchar_t wide[MAX_PATH];
    svc_widen(path, wide, MAX_PATH);
    out[0] = '\0';
    HANDLE f =
        CreateFileW(wide, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    NULL, OPEN_EXISTING, 0, NULL);
    if (f == INVALID_HANDLE_VALUE)
        return;
    DWORD n = 0;
    ReadFile(f, out, (DWORD)(size - 1), &n, NULL);
    out[n] = '\0';
    CloseHandle(f);
}

int log_has(const char *path, const char *text, uint32_t timeout_ms)
{
    static char buf[1 << 17];
    uint64_t deadline = test_now_ms() + timeout_ms;
    for (;;) {
        read_file(path, buf, sizeof buf);
        if (strstr(buf, text) != NULL)
            return 1;
        if (test_now_ms() >= deadline) {
            printf("the log %s lacks '%s'; it holds:\n%s\n", path, text, buf);
            return 0;
        }
        Sleep(20);
    }
}
