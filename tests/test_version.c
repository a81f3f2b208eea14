/*
 * test_version.c: one version everywhere. CMake passes its project version in
 * (IOCP_PROJECT_VERSION); the library (iocp_version(), IOCP_VERSION_*), both programs'
 * --version and the service's status, and the VERSIONINFO resource of each program (and of
 * iocp.dll when the build makes one) must all say the same.
 */
#include "harness.h"
#include "proc_util.h"

#include <stdio.h>
#include <string.h>
#include <winver.h>

#include "iocp/iocp.h"

/* Runs program with args; its whole standard output (and error) in c->out, exit code kept. */
static void run(tp_child *c, const char *program, const char *args)
{
    tp_start(c, program, args, NULL, 1, 0);
    CHECK_MSG(tp_wait(c, 30000), "%s %s did not end within 30 s", program, args);
}

static void library_macros_and_function(void)
{
    CHECK_MSG(strcmp(iocp_version(), IOCP_PROJECT_VERSION) == 0, "iocp_version() = %s, CMake %s",
              iocp_version(), IOCP_PROJECT_VERSION);
    CHECK_MSG(strcmp(IOCP_VERSION_STRING, IOCP_PROJECT_VERSION) == 0, "IOCP_VERSION_STRING = %s",
              IOCP_VERSION_STRING);
    char joined[64];
    snprintf(joined, sizeof joined, "%d.%d.%d", IOCP_VERSION_MAJOR, IOCP_VERSION_MINOR,
             IOCP_VERSION_PATCH);
    CHECK_MSG(strcmp(joined, IOCP_PROJECT_VERSION) == 0, "IOCP_VERSION_MAJOR.MINOR.PATCH = %s",
              joined);
    CHECK_EQ_U(IOCP_VERSION_NUMBER,
               IOCP_VERSION_MAJOR * 10000 + IOCP_VERSION_MINOR * 100 + IOCP_VERSION_PATCH);
}

static void program_says(const char *program, const char *args, const char *want_line,
                         unsigned long want_exit)
{
    static tp_child c;
    run(&c, program, args);
    CHECK_MSG(c.exit_code == want_exit, "%s %s exited %lu, not %lu; it wrote: %s", program, args,
              c.exit_code, want_exit, c.out);
    const char *line = tp_find_line(c.out, want_line);
    size_t n = strlen(want_line);
    CHECK_MSG(line != NULL && (line[n] == '\r' || line[n] == '\n'),
              "%s %s wrote no line '%s'; it wrote: %s", program, args, want_line, c.out);
    tp_free(&c);
}

/* Both programs' --version, and the service's status whatever the service's state: here there
 * is no such service (exit code 5). One case for the three: each is a process start under Wine,
 * the slow part of this file. */
static void programs_print_version(void)
{
    program_says(IOCP_CLIENT_EXE, "--version", "iocp-client " IOCP_PROJECT_VERSION, 0);
    program_says(IOCP_SERVICE_EXE, "--version", "iocp-service " IOCP_PROJECT_VERSION, 0);
    char args[80];
    snprintf(args, sizeof args, "status --name iocpt-version-%lu",
             (unsigned long)GetCurrentProcessId());
    program_says(IOCP_SERVICE_EXE, args, "version: " IOCP_PROJECT_VERSION, 5);
}

/* The FileVersion and ProductVersion strings and the binary FILEVERSION of a file's VERSIONINFO
 * resource (what Explorer's Details tab and (Get-Item X).VersionInfo show). */
static void check_version_resource(const char *file)
{
    wchar_t path[MAX_PATH * 2];
    tp_program_path(file, path, sizeof path / sizeof path[0]);
    DWORD ignored = 0;
    DWORD size = GetFileVersionInfoSizeW(path, &ignored);
    CHECK_MSG(size > 0, "%s has no VERSIONINFO resource (Win32 %lu)", file,
              (unsigned long)GetLastError());
    static char info[16384];
    CHECK(size <= sizeof info);
    CHECK(GetFileVersionInfoW(path, 0, size, info));
    VS_FIXEDFILEINFO *fixed = NULL;
    UINT len = 0;
    CHECK(VerQueryValueW(info, L"\\", (void **)&fixed, &len) && len >= sizeof *fixed);
    char binary[64];
    snprintf(binary, sizeof binary, "%lu.%lu.%lu", (unsigned long)HIWORD(fixed->dwFileVersionMS),
             (unsigned long)LOWORD(fixed->dwFileVersionMS),
             (unsigned long)HIWORD(fixed->dwFileVersionLS));
    CHECK_MSG(strcmp(binary, IOCP_PROJECT_VERSION) == 0, "%s FILEVERSION %s", file, binary);
    static const wchar_t *const keys[] = {L"\\StringFileInfo\\040904B0\\FileVersion",
                                          L"\\StringFileInfo\\040904B0\\ProductVersion"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        wchar_t *value = NULL;
        CHECK_MSG(VerQueryValueW(info, keys[k], (void **)&value, &len) && value != NULL,
                  "%s: no %ls", file, keys[k]);
        char text[64];
        WideCharToMultiByte(CP_UTF8, 0, value, -1, text, sizeof text, NULL, NULL);
        CHECK_MSG(strcmp(text, IOCP_PROJECT_VERSION) == 0, "%s: %ls = %s", file, keys[k], text);
    }
}

/* The library in this process (iocp_version(), the IOCP_VERSION_* macros), and the VERSIONINFO
 * of both programs and of iocp.dll when the build makes one. */
static void library_and_version_resources(void)
{
    library_macros_and_function();
    check_version_resource(IOCP_CLIENT_EXE);
    check_version_resource(IOCP_SERVICE_EXE);
    if (IOCP_DLL[0] != '\0')
        check_version_resource(IOCP_DLL);
}

static const test_case cases[] = {
    {"library_and_version_resources", library_and_version_resources},
    {"programs_print_version", programs_print_version},
};

TEST_MAIN(cases)
