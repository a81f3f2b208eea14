/* crash_guard.c: a crash must never look like success (under Wine it can exit 0). */
#include "iocpi.h"

static LONG WINAPI crash_filter(EXCEPTION_POINTERS *info)
{
    DWORD code = info && info->ExceptionRecord ? info->ExceptionRecord->ExceptionCode : 0;
    void *where = info && info->ExceptionRecord ? info->ExceptionRecord->ExceptionAddress : NULL;
    fprintf(stderr, "fatal: unhandled exception 0x%08lx at %p; exiting with code %d\n",
            (unsigned long)code, where, IOCP_CRASH_EXIT_CODE);
    fflush(stderr);
    /* TerminateProcess, not exit(): no atexit handlers or CRT teardown in a broken process. */
    TerminateProcess(GetCurrentProcess(), IOCP_CRASH_EXIT_CODE);
    return EXCEPTION_EXECUTE_HANDLER;
}

void iocp_install_crash_guard(void)
{
    SetUnhandledExceptionFilter(crash_filter);
    /* No "program has stopped working" dialog box on a server or a CI machine. */
    SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
}
