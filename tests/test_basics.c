/* test_basics.c: the library links, Winsock starts, errors read as they should. */
#include "harness.h"

#include <string.h>
#include <winsock2.h>
#include <windows.h>

#include "iocp/iocp.h"

static void winsock_starts(void)
{
    WSADATA data;
    CHECK(WSAStartup(MAKEWORD(2, 2), &data) == 0);
    CHECK(LOBYTE(data.wVersion) == 2 && HIBYTE(data.wVersion) == 2);
    SOCKET s = socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP);
    CHECK(s != INVALID_SOCKET);
    CHECK(closesocket(s) == 0);
    WSACleanup();
}

static void error_codes_map(void)
{
    CHECK(iocp_err_from_sys(WSAECONNREFUSED) == IOCP_E_REFUSED);
    CHECK(iocp_err_from_sys(WSAEADDRINUSE) == IOCP_E_ADDR_IN_USE);
    /* 10049 is an address this machine does not have, not one in use. */
    CHECK(iocp_err_from_sys(WSAEADDRNOTAVAIL) == IOCP_E_ADDR_NOT_HERE);
    CHECK(strcmp(iocp_strerror(IOCP_E_ADDR_NOT_HERE), "address not on this machine") == 0);
    CHECK(iocp_err_from_sys(WSAHOST_NOT_FOUND) == IOCP_E_RESOLVE);
    /* Every variant of "connection gone" that Windows and Wine report is a reset. */
    CHECK(iocp_err_from_sys(WSAECONNRESET) == IOCP_E_RESET);
    CHECK(iocp_err_from_sys(ERROR_NETNAME_DELETED) == IOCP_E_RESET);
    CHECK(iocp_err_from_sys(ERROR_OPERATION_ABORTED) == IOCP_E_RESET);
    CHECK(iocp_err_from_sys(676 /* ERROR_HANDLES_CLOSED */) == IOCP_E_RESET);
    CHECK(iocp_err_from_sys(ERROR_CONNECTION_ABORTED) == IOCP_E_RESET);
    CHECK(iocp_err_from_sys(12345678) == IOCP_E_SYSTEM);
    CHECK(iocp_err_from_sys(0) == IOCP_OK);
}

static void error_text_keeps_raw_code(void)
{
    char buf[128];
    CHECK(strcmp(iocp_format_error(IOCP_E_REFUSED, WSAECONNREFUSED, buf, sizeof buf),
                 "connection refused (WSA 10061)") == 0);
    CHECK(strcmp(iocp_format_error(IOCP_E_ACCESS, ERROR_ACCESS_DENIED, buf, sizeof buf),
                 "access denied (Win32 5)") == 0);
    CHECK(strcmp(iocp_format_error(IOCP_E_TIMEOUT, 0, buf, sizeof buf), "timed out") == 0);
    for (int e = 0; e < IOCP_E_COUNT_; e++)
        CHECK(strcmp(iocp_strerror((iocp_err)e), "unknown error") != 0);
    CHECK(strcmp(iocp_strerror((iocp_err)999), "unknown error") == 0);
    for (int r = 0; r < IOCP_CLOSE_REASON_COUNT_; r++)
        CHECK(strcmp(iocp_close_reason_str((iocp_close_reason)r), "unknown reason") != 0);
    CHECK(strcmp(iocp_close_reason_str(IOCP_CLOSE_IDLE_TIMEOUT), "idle timeout") == 0);
}

/* The guard must turn a crash into a non-zero exit every time: under Wine an unguarded crash
 * exits 0 in about one run of four, so one run proves nothing. Runs this program as a child
 * that crashes, eight times. */
static void crash_guard_exit_code(void)
{
    wchar_t self[MAX_PATH];
    CHECK(GetModuleFileNameW(NULL, self, MAX_PATH) > 0);
    for (int i = 0; i < 8; i++) {
        wchar_t cmd[MAX_PATH + 32];
        swprintf(cmd, MAX_PATH + 32, L"\"%ls\" child:crash", self);
        STARTUPINFOW si = {.cb = sizeof si};
        PROCESS_INFORMATION pi;
        CHECK(test_create_process(NULL, cmd, 0, 0, &si, &pi));
        CHECK(WaitForSingleObject(pi.hProcess, 30000) == WAIT_OBJECT_0);
        DWORD code = 0;
        CHECK(GetExitCodeProcess(pi.hProcess, &code));
        CloseHandle(pi.hThread);
        CloseHandle(pi.hProcess);
        CHECK_EQ_U(code, IOCP_CRASH_EXIT_CODE);
    }
}

/* Run by crash_guard_exit_code only (and by hand): writes through a null pointer. */
static void crash_child(void)
{
    volatile int *volatile nowhere = NULL;
    *nowhere = 1;
}

static const test_case cases[] = {
    {"winsock_starts", winsock_starts},
    {"error_codes_map", error_codes_map},
    {"error_text_keeps_raw_code", error_text_keeps_raw_code},
    {"crash_guard_exit_code", crash_guard_exit_code},
    {"child:crash", crash_child},
};

TEST_MAIN(cases)
