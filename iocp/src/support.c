/*
 * support.c: what the other files of the engine share: the clock, logging, posting an op to
 * the completion port and reading a finished op's error, thread-pool timers, assertions.
 */
#include "iocpi.h"

uint64_t iocpi_now_ms(void)
{
    return GetTickCount64();
}

/* ---- logging --------------------------------------------------------------------------- */

void iocp_log_stderr(void *user, iocp_log_level level, const char *message)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    (void)user;
    fprintf(stderr, "iocp: %s: %s\n", names[(unsigned)level < 4 ? level : 3], message);
}

static void log_line(iocp_engine *e, iocp_log_level level, const char *fmt, va_list ap)
{
    if (level > e->config.log_level)
        return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    e->config.log(e->config.log_user, level, line);
}

void iocpi_log(iocp_engine *e, iocp_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(e, level, fmt, ap);
    va_end(ap);
}

/* Lines written under an engine lock wait here, per thread, for iocpi_log_flush: the log
 * function is the user's, and may call back into the engine (iocp_close takes the
 * connection's lock, iocp_engine_stop the listener's). */
#define LATER_LINES 4
typedef struct later_line {
    iocp_engine *engine;
    iocp_log_level level;
    char text[256];
} later_line;
static _Thread_local later_line later[LATER_LINES];
static _Thread_local unsigned later_count;

void iocpi_log_later(iocp_engine *e, iocp_log_level level, const char *fmt, ...)
{
    if (level > e->config.log_level || later_count >= LATER_LINES)
        return; /* more than a few lines under one lock: the rest are dropped, not blocked */
    later_line *l = &later[later_count++];
    l->engine = e;
    l->level = level;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text, sizeof l->text, fmt, ap);
    va_end(ap);
}

void iocpi_log_flush(void)
{
    for (unsigned i = 0; i < later_count; i++)
        later[i].engine->config.log(later[i].engine->config.log_user, later[i].level,
                                    later[i].text);
    later_count = 0;
}

void iocp_engine_log(iocp_engine *engine, iocp_log_level level, const char *fmt, ...)
{
    if (engine == NULL || fmt == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line(engine, level, fmt, ap);
    va_end(ap);
}

/* ---- operations ------------------------------------------------------------------------ */

typedef LONG(NTAPI *nt_to_dos_fn)(LONG status);
static nt_to_dos_fn nt_to_dos;
static INIT_ONCE nt_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK nt_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    if (ntdll != NULL)
        nt_to_dos = (nt_to_dos_fn)(void (*)(void))GetProcAddress(ntdll, "RtlNtStatusToDosError");
    return TRUE;
}

/* The Win32 error of a completed operation. The port hands back the NTSTATUS in
 * OVERLAPPED.Internal; the socket may already be closed, so WSAGetOverlappedResult is no
 * option here. */
DWORD iocpi_op_error(const OVERLAPPED *ov)
{
    LONG status = (LONG)ov->Internal;
    if (status == 0)
        return 0;
    InitOnceExecuteOnce(&nt_once, nt_init, NULL, NULL);
    DWORD code = nt_to_dos ? (DWORD)nt_to_dos(status) : ERROR_GEN_FAILURE;
    return code ? code : ERROR_GEN_FAILURE;
}

void iocpi_op_init(iocpi_op *op, iocpi_done_fn done)
{
    memset(op, 0, sizeof *op);
    op->done = done;
}

#ifdef IOCP_ASSERTIONS
void iocpi_assert_failed(const char *expr, const char *file, int line)
{
    fprintf(stderr, "iocp: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}
#endif

/* PostQueuedCompletionStatus fails only when the system cannot allocate the packet. Dropping
 * it would leak what it carries (an op holds its connection's reference; an exit packet is
 * a worker's only way out), and abort() would end every other connection: try again, a
 * little later each time. Counted in post_retries, which the sweep logs: this may run under
 * a connection's lock, where nothing is logged. */
void iocpi_post_packet(iocp_engine *e, DWORD bytes, ULONG_PTR key, OVERLAPPED *ov)
{
    DWORD wait_ms = 1;
    while (!IOCPI_POST(e->port, bytes, key, ov)) {
        InterlockedIncrement64(&e->counters.post_retries);
        Sleep(wait_ms);
        if (wait_ms < 64)
            wait_ms *= 2;
    }
}

void iocpi_post(iocp_engine *e, iocpi_op *op)
{
    memset(&op->ov, 0, sizeof op->ov);
    InterlockedIncrement64(&e->counters.ops_in_flight);
    iocpi_post_packet(e, 0, 0, &op->ov);
}

/* ---- timers ---------------------------------------------------------------------------- */

void iocpi_timer_set(PTP_TIMER timer, uint32_t due_ms, uint32_t period_ms)
{
    ULARGE_INTEGER due;
    due.QuadPart = (ULONGLONG)(-(LONGLONG)due_ms * 10000); /* relative, 100 ns units */
    FILETIME ft;
    ft.dwLowDateTime = due.LowPart;
    ft.dwHighDateTime = due.HighPart;
    SetThreadpoolTimer(timer, &ft, period_ms, period_ms / 4);
}

void iocpi_timer_close(PTP_TIMER *timer)
{
    if (*timer == NULL)
        return;
    SetThreadpoolTimer(*timer, NULL, 0, 0);
    WaitForThreadpoolTimerCallbacks(*timer, TRUE);
    CloseThreadpoolTimer(*timer);
    *timer = NULL;
}
