/*
 * supervisor.c: a supervised service (--supervised). The process the SCM runs holds what must
 * outlive a worker (the instance mutex, the listening socket, the status pipe) and runs the
 * server as worker processes (worker_proc.c), so that the SCM sees RUNNING throughout and the
 * listener never closes:
 *
 *   - the listener is bound once here (iocp_listener_hold: never accepted on, never on a
 *     completion port) and duplicated for each worker (WSADuplicateSocketW for its pid) over a
 *     private channel: two anonymous pipes whose ends only that worker inherits
 *     (PROC_THREAD_ATTRIBUTE_HANDLE_LIST); nothing with a name another user could open. The
 *     UDP socket (--udp, --udp-only: iocp_udp_hold, never received on) and the admin
 *     endpoint's listener (--admin-port) are held and handed on the same way, so datagrams
 *     and health checks wait in their buffers and backlogs while no worker serves;
 *   - the first worker reports ready before the service reports RUNNING; if it fails its
 *     start, the service stops with the worker's error;
 *   - a worker that ends unasked is replaced at once (then after 1, 2, 4 ... 30 s while
 *     workers keep dying before they have served 60 s); meanwhile connects wait in the
 *     backlog; the death, its exit code and the connections it held are logged and counted;
 *   - `upgrade` (through the status pipe, upgrade.c): a new worker from the installed
 *     executable or --exe PATH (checked as install checks its own), its ready within the
 *     timeout, then the old one stops accepting (and receiving datagrams, and accepting health
 *     checks) and drains; a new worker that fails is stopped and the old one serves on;
 *   - a stop drains every worker (the drain timeout), then closes the listener.
 */
#include "svc.h"

#include <stdlib.h>
#include <string.h>

#include "messages.h"

#define MAX_WORKERS      4
#define READY_MS         30000u /* a worker's start, unless upgrade --timeout says otherwise */
#define BACKOFF_MAX_S    30u
#define HEALTHY_MS       60000u /* served this long: the next death restarts at once again */
#define EXIT_GRACE_MS    10000u /* past two drain timeouts (served on, then a stop's): ended */
#define LOOP_MS          250u
#define ANSWER_EXE_CHARS 300

typedef enum worker_state { WORKER_STARTING = 0, WORKER_SERVING, WORKER_DRAINING } worker_state;

static const char *const state_names[] = {"starting", "serving", "draining"};

typedef struct sup_worker {
    int used;
    DWORD pid;
    HANDLE process;
    HANDLE to;            /* our end of its command pipe */
    svc_link_reader from; /* our end of its report pipe, read by `reader` */
    HANDLE reader;
    HANDLE answered; /* READY or FAILED came, or the channel ended */
    worker_state state;
    int ready, failed, asked_to_stop;
    DWORD fail_code;
    char failure[700];
    char exe[SVC_PATH_MAX];
    char version[32];
    char started_text[32]; /* UTC, for status */
    uint64_t ready_ms;
    uint64_t drain_deadline_ms;
    int have_stats;
    uint32_t stats_seq; /* STATS reports so far */
    svc_status_info last;
} sup_worker;

static struct {
    svc_options *opt;
    const svc_supervisor_scm *scm;
    iocp_held_listener *listener; /* NULL with --udp-only */
    iocp_held_udp *udp;           /* --udp, --udp-only */
    iocp_held_listener *admin;    /* --admin-port */
    svc_instance instance;
    int locked;
    int running; /* RUNNING reported: no more START_PENDING checkpoints */
    svc_pipe_server *pipe;
    SRWLOCK lock;       /* workers[], counters and the upgrade fields: main thread vs pipe thread */
    SRWLOCK write_lock; /* a worker's command pipe (its `to`): main thread vs pipe thread */
    sup_worker workers[MAX_WORKERS];
    uint64_t started_ms;
    volatile LONG stopping;
    volatile LONG drain_requested;
    uint32_t restarts, deaths, failing_in_row;
    uint64_t restart_at_ms; /* 0: no restart due */
    int udp_check_due;      /* a worker that held the UDP socket ended unasked */
    int udp_down;           /* the UDP socket was blocked and no new one could be bound */
    char last_death[700];
    wchar_t current_exe[SVC_PATH_MAX]; /* what restarts run: the installed one, or upgraded */
    /* The options a worker being started gets: the stored Parameters for an upgrade (NULL:
     * opt->server, those of the serving worker) */
    const svc_server_options *sending;
    /* upgrade: queued by the pipe thread, done by the main thread */
    HANDLE upgrade_event;
    uint32_t upgrade_id;
    char upgrade_state[16]; /* "", queued, running, done, failed */
    char upgrade_error[800];
    char upgrade_exe[SVC_PATH_MAX];
    int upgrade_allow_unsafe;
    uint32_t upgrade_timeout_s;
    DWORD upgrade_new_pid;
} S;

int svc_supervised(const svc_server_options *o, char *why, size_t why_size)
{
    if (why_size > 0)
        why[0] = '\0';
    return o->supervised != 0;
}

/* What the service serves on, for status and the log: the TCP listener, or the UDP socket
 * alone (--udp-only). */
static const char *served_address(void)
{
    return S.listener != NULL ? iocp_held_listener_address(S.listener)
                              : iocp_held_udp_address(S.udp);
}

/* What a worker says (its error, its version) is shown by `status` and `upgrade`: one line,
 * no control characters (a terminal's escape sequences), whatever the worker sent. */
static void one_line(char *text)
{
    for (char *p = text; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* ---- a worker's reports (its reader thread) ----------------------------------------------- */

static DWORD WINAPI reader_main(void *arg)
{
    sup_worker *w = arg;
    enum { LINE_MAX = 2 * SVC_PROTO_ANSWER_MAX + 64 };
    char *line = malloc(LINE_MAX);
    char text[SVC_PROTO_ANSWER_MAX + 1], err[200];
    if (line == NULL) {
        SetEvent(w->answered);
        return 0;
    }
    while (svc_link_read_line(&w->from, line, LINE_MAX) == 0) {
        if (strncmp(line, "READY ", 6) == 0) {
            AcquireSRWLockExclusive(&S.lock);
            snprintf(w->version, sizeof w->version, "%s", line + 6);
            one_line(w->version);
            for (char *p = w->version; *p != '\0'; p++)
                if (*p == ' ')
                    *p = '_'; /* one word in the WORKERS answer */
            w->ready = 1;
            ReleaseSRWLockExclusive(&S.lock);
            SetEvent(w->answered);
        } else if (strncmp(line, "FAILED ", 7) == 0) {
            char *hex = strchr(line + 7, ' ');
            long n = hex != NULL ? svc_link_unhex(hex + 1, text, sizeof text - 1) : -1;
            AcquireSRWLockExclusive(&S.lock);
            w->fail_code = (DWORD)strtoul(line + 7, NULL, 10);
            snprintf(w->failure, sizeof w->failure, "%.*s", n > 0 ? (int)n : 0, text);
            one_line(w->failure);
            w->failed = 1;
            ReleaseSRWLockExclusive(&S.lock);
            SetEvent(w->answered);
        } else if (strncmp(line, "STATS ", 6) == 0) {
            long n = svc_link_unhex(line + 6, text, sizeof text - 1);
            svc_status_info info;
            if (n > 0 && svc_proto_parse_answer(text, (size_t)n, &info, err, sizeof err) == 0) {
                AcquireSRWLockExclusive(&S.lock);
                w->last = info;
                w->have_stats = 1;
                w->stats_seq++;
                ReleaseSRWLockExclusive(&S.lock);
            }
        }
    }
    free(line);
    SetEvent(w->answered); /* the channel ended: the worker has gone (or is going) */
    return 0;
}

/* ---- starting and ending workers ---------------------------------------------------------- */

static void utc_now_text(char *out, size_t size)
{
    SYSTEMTIME t;
    GetSystemTime(&t);
    snprintf(out, size, "%04u-%02u-%02uT%02u:%02u:%02uZ", t.wYear, t.wMonth, t.wDay, t.wHour,
             t.wMinute, t.wSecond);
}

/* Ends the process if it still runs, then frees the slot (the main thread only). */
static void worker_release(sup_worker *w)
{
    if (w->process != NULL) {
        if (WaitForSingleObject(w->process, 0) == WAIT_TIMEOUT)
            TerminateProcess(w->process, ERROR_PROCESS_ABORTED);
        WaitForSingleObject(w->process, 5000);
    }
    AcquireSRWLockExclusive(&S.write_lock);
    if (w->to != NULL)
        CloseHandle(w->to); /* the worker's command pipe ends */
    w->to = NULL;
    ReleaseSRWLockExclusive(&S.write_lock);
    if (w->reader != NULL) {
        WaitForSingleObject(w->reader, 5000); /* its report pipe ended with its process */
        CloseHandle(w->reader);
    }
    if (w->from.pipe != NULL)
        CloseHandle(w->from.pipe);
    if (w->answered != NULL)
        CloseHandle(w->answered);
    if (w->process != NULL)
        CloseHandle(w->process);
    AcquireSRWLockExclusive(&S.lock);
    memset(w, 0, sizeof *w);
    ReleaseSRWLockExclusive(&S.lock);
}

/* "<WORD> <port> <family> <by events> <hex protocol info>\n" into line. */
static void socket_line(char *line, const char *word, uint16_t port, uint16_t family,
                        uint32_t by_events, const unsigned char *info)
{
    int n = snprintf(line, 64, "%s %u %u %lu ", word, (unsigned)port, (unsigned)family,
                     (unsigned long)by_events);
    svc_link_hex(info, IOCP_LISTENER_INFO_BYTES, line + n);
    memcpy(line + n + 2 * IOCP_LISTENER_INFO_BYTES, "\n", 2);
}

static int send_setup(sup_worker *w, char *why, size_t why_size)
{
    static char line[2 * (IOCP_LISTENER_INFO_BYTES + SVC_PATH_MAX) + 256];
    static iocp_listener_export x, admin;
    static iocp_udp_export udp_x;
    char value[SVC_PATH_MAX + 1];
    iocp_error_info err;
    const char *what = "listener";
    iocp_err e = IOCP_OK;
    if (S.listener != NULL)
        e = iocp_held_listener_export(S.listener, w->pid, &x, &err);
    int udp = S.udp != NULL && !S.udp_down;
    if (e == IOCP_OK && udp) {
        what = "UDP socket";
        e = iocp_held_udp_export(S.udp, w->pid, &udp_x, &err);
    }
    if (e == IOCP_OK && S.admin != NULL) {
        what = "admin listener";
        e = iocp_held_listener_export(S.admin, w->pid, &admin, &err);
    }
    if (e != IOCP_OK) {
        snprintf(why, why_size, "cannot hand the %s to worker process %lu: %s", what,
                 (unsigned long)w->pid, err.message);
        return -1;
    }
    int rc = 0;
    const svc_server_options *o = S.sending != NULL ? S.sending : &S.opt->server;
    static svc_server_options without_udp;
    if (S.udp != NULL && !udp) { /* serve TCP while UDP is down (renew_udp_if_stuck) */
        without_udp = *o;
        without_udp.udp = 0;
        o = &without_udp;
    }
    for (size_t k = 0; k < svc_server_opt_count && rc == 0; k++) {
        const svc_server_opt *def = &svc_server_opts[k];
        if (def->kind == SVC_OPT_SECRET)
            snprintf(value, sizeof value, "%s", o->tls_password);
        else
            svc_server_opt_get(o, def, value, sizeof value);
        int n = snprintf(line, sizeof line, "OPT %s ", def->flag);
        size_t end = (size_t)n + 2 * strlen(value);
        svc_link_hex(value, strlen(value), line + n);
        memcpy(line + end, "\n", 2);
        rc = svc_link_write(w->to, line);
    }
    if (rc == 0 && S.listener != NULL) {
        socket_line(line, "LISTENER", x.port, x.family, x.accept_by_events, x.tcp);
        rc = svc_link_write(w->to, line);
    }
    if (rc == 0 && udp) {
        socket_line(line, "UDP", udp_x.port, udp_x.family, udp_x.by_events, udp_x.info);
        rc = svc_link_write(w->to, line);
    }
    if (rc == 0 && S.admin != NULL) {
        socket_line(line, "ADMIN", admin.port, admin.family, admin.accept_by_events, admin.tcp);
        rc = svc_link_write(w->to, line);
    }
    if (rc == 0)
        rc = svc_link_write(w->to, "GO\n");
    SecureZeroMemory(line, sizeof line);
    SecureZeroMemory(value, sizeof value);
    SecureZeroMemory(without_udp.tls_password, sizeof without_udp.tls_password);
    if (rc != 0)
        snprintf(why, why_size, "worker process %lu closed its channel at once",
                 (unsigned long)w->pid);
    return rc;
}

/* Starts a worker from exe and hands it the listener. The slot, or NULL with why set. */
static sup_worker *worker_start(const wchar_t *exe, char *why, size_t why_size)
{
    char text[300], exe_text[SVC_PATH_MAX];
    svc_narrow(exe, exe_text, sizeof exe_text);
    sup_worker *w = NULL;
    AcquireSRWLockExclusive(&S.lock);
    for (int i = 0; i < MAX_WORKERS && w == NULL; i++)
        if (!S.workers[i].used) {
            w = &S.workers[i];
            memset(w, 0, sizeof *w);
            w->used = 1;
            w->state = WORKER_STARTING;
        }
    ReleaseSRWLockExclusive(&S.lock);
    if (w == NULL) {
        snprintf(why, why_size, "%d workers run already", MAX_WORKERS);
        return NULL;
    }
    snprintf(w->exe, sizeof w->exe, "%s", exe_text);
    utc_now_text(w->started_text, sizeof w->started_text);

    HANDLE child_in = NULL, child_out = NULL;
    LPPROC_THREAD_ATTRIBUTE_LIST attrs = NULL;
    PROCESS_INFORMATION pi;
    memset(&pi, 0, sizeof pi);
    DWORD e = NO_ERROR;
    w->answered = CreateEventW(NULL, TRUE, FALSE, NULL);
    /* The command pipe holds the whole setup (options and listener, about 6 KB) unread: a
     * program that never reads it (no worker) must not block this thread. */
    if (w->answered == NULL || !CreatePipe(&child_in, &w->to, NULL, 65536) ||
        !CreatePipe(&w->from.pipe, &child_out, NULL, 0) ||
        !SetHandleInformation(child_in, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT) ||
        !SetHandleInformation(child_out, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) {
        e = GetLastError();
        snprintf(why, why_size, "cannot make the worker's channel: %s",
                 svc_win32_text(e, text, sizeof text));
        goto fail;
    }
    /* Only these two handles reach the worker, whatever else is inheritable meanwhile. */
    SIZE_T attrs_size = 0;
    InitializeProcThreadAttributeList(NULL, 1, 0, &attrs_size);
    attrs = HeapAlloc(GetProcessHeap(), 0, attrs_size);
    HANDLE inherit[2] = {child_in, child_out};
    if (attrs == NULL || !InitializeProcThreadAttributeList(attrs, 1, 0, &attrs_size) ||
        !UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherit,
                                   sizeof inherit, NULL, NULL)) {
        e = GetLastError();
        snprintf(why, why_size, "cannot limit the worker's inherited handles: %s",
                 svc_win32_text(e, text, sizeof text));
        if (attrs != NULL)
            HeapFree(GetProcessHeap(), 0, attrs);
        attrs = NULL;
        goto fail;
    }
    wchar_t cmd[SVC_PATH_MAX + 200], wname[SVC_NAME_MAX + 1];
    svc_widen(S.opt->name, wname, sizeof wname / sizeof wname[0]);
    swprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" worker --name %ls --channel %llu,%llu", exe,
             wname, (unsigned long long)(uintptr_t)child_in,
             (unsigned long long)(uintptr_t)child_out);
    STARTUPINFOEXW si;
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si;
    si.lpAttributeList = attrs;
    if (!CreateProcessW(exe, cmd, NULL, NULL, TRUE, EXTENDED_STARTUPINFO_PRESENT | CREATE_NO_WINDOW,
                        NULL, NULL, &si.StartupInfo, &pi)) {
        e = GetLastError();
        snprintf(why, why_size, "cannot start %s: %s", exe_text,
                 svc_win32_text(e, text, sizeof text));
        DeleteProcThreadAttributeList(attrs);
        HeapFree(GetProcessHeap(), 0, attrs);
        goto fail;
    }
    DeleteProcThreadAttributeList(attrs);
    HeapFree(GetProcessHeap(), 0, attrs);
    CloseHandle(pi.hThread);
    CloseHandle(child_in);
    CloseHandle(child_out);
    child_in = child_out = NULL;
    w->process = pi.hProcess;
    w->pid = pi.dwProcessId;
    w->reader = CreateThread(NULL, 0, reader_main, w, 0, NULL);
    if (w->reader == NULL) {
        snprintf(why, why_size, "cannot start the worker's reader thread");
        goto fail;
    }
    if (send_setup(w, why, why_size) != 0) {
        /* A program that exits at once (not a worker) says more by its exit: wait_ready. */
        if (WaitForSingleObject(w->process, 0) == WAIT_TIMEOUT)
            goto fail;
    }
    svc_log(IOCP_LOG_INFO, "worker process %lu started from %s", (unsigned long)w->pid, exe_text);
    return w;

fail:
    if (child_in != NULL)
        CloseHandle(child_in);
    if (child_out != NULL)
        CloseHandle(child_out);
    worker_release(w);
    return NULL;
}

/* Waits for the worker's READY (or FAILED, its exit, the timeout, or a stop). 0, or -1 with
 * why set and *code the Win32 code to report. */
static int wait_ready(sup_worker *w, uint32_t timeout_ms, char *why, size_t why_size, DWORD *code)
{
    uint64_t until = svc_now_ms() + timeout_ms;
    HANDLE wake[3] = {w->answered, w->process, S.scm->stop_event};
    for (;;) {
        uint64_t now = svc_now_ms();
        DWORD slice = now >= until ? 0 : (DWORD)(until - now < 500 ? until - now : 500);
        DWORD r = WaitForMultipleObjects(3, wake, FALSE, slice);
        if (r == WAIT_OBJECT_0 + 1)
            WaitForSingleObject(w->answered, 2000); /* its last words, if it said any */
        AcquireSRWLockShared(&S.lock);
        int ready = w->ready, failed = w->failed;
        ReleaseSRWLockShared(&S.lock);
        if (ready && !failed) {
            w->ready_ms = svc_now_ms();
            return 0;
        }
        if (failed) {
            snprintf(why, why_size, "worker process %lu (%s) failed its start: %s",
                     (unsigned long)w->pid, w->exe, w->failure);
            *code = w->fail_code != NO_ERROR ? w->fail_code : ERROR_SERVICE_SPECIFIC_ERROR;
            return -1;
        }
        if (r == WAIT_OBJECT_0 || r == WAIT_OBJECT_0 + 1) {
            DWORD exit_code = 0;
            WaitForSingleObject(w->process, 2000);
            GetExitCodeProcess(w->process, &exit_code);
            snprintf(why, why_size,
                     "worker process %lu (%s) exited with code %lu before it reported ready "
                     "(not an iocp-service that has the worker command?)",
                     (unsigned long)w->pid, w->exe, (unsigned long)exit_code);
            *code = ERROR_SERVICE_SPECIFIC_ERROR;
            return -1;
        }
        if (r == WAIT_OBJECT_0 + 2) {
            snprintf(why, why_size, "stopping: worker process %lu not waited for",
                     (unsigned long)w->pid);
            *code = NO_ERROR;
            return -1;
        }
        if (svc_now_ms() >= until) {
            snprintf(why, why_size, "worker process %lu (%s) did not report ready within %lu s",
                     (unsigned long)w->pid, w->exe, (unsigned long)(timeout_ms / 1000));
            *code = ERROR_SERVICE_REQUEST_TIMEOUT;
            return -1;
        }
        if (S.scm->progress != NULL && !S.running)
            S.scm->progress(S.scm->progress_user);
    }
}

static void worker_serving(sup_worker *w)
{
    AcquireSRWLockExclusive(&S.lock);
    w->state = WORKER_SERVING;
    ReleaseSRWLockExclusive(&S.lock);
    svc_log(IOCP_LOG_INFO, "worker process %lu (%s, iocp-service %s) serves on %s",
            (unsigned long)w->pid, w->exe, w->version, served_address());
}

/* One command line to a running worker (the main thread and the pipe thread both send). */
static void worker_command(sup_worker *w, const char *line)
{
    AcquireSRWLockExclusive(&S.write_lock);
    if (w->to != NULL)
        svc_link_write(w->to, line);
    ReleaseSRWLockExclusive(&S.write_lock);
}

/* Asks each serving worker for its statistics now and waits up to a second for them, so
 * that `status` counts what happened before it asked (the periodic report is up to half a
 * second old). A worker that does not answer in time is shown by its last report. */
static void refresh_stats(void)
{
    uint32_t seq[MAX_WORKERS];
    int asked[MAX_WORKERS] = {0}, any = 0;
    AcquireSRWLockShared(&S.lock);
    for (int i = 0; i < MAX_WORKERS; i++)
        if (S.workers[i].used && S.workers[i].state == WORKER_SERVING) {
            seq[i] = S.workers[i].stats_seq;
            asked[i] = any = 1;
        }
    ReleaseSRWLockShared(&S.lock);
    for (int i = 0; i < MAX_WORKERS; i++)
        if (asked[i])
            worker_command(&S.workers[i], "STATS\n");
    uint64_t until = svc_now_ms() + 1000;
    while (any && svc_now_ms() < until) {
        Sleep(5); /* a poll with a deadline: the reader thread counts the reports */
        any = 0;
        AcquireSRWLockShared(&S.lock);
        for (int i = 0; i < MAX_WORKERS; i++)
            if (asked[i] && S.workers[i].used && S.workers[i].stats_seq == seq[i])
                any = 1;
        ReleaseSRWLockShared(&S.lock);
    }
}

/* Tells it to stop accepting and drain ("DRAIN": serving its connections on, for an upgrade;
 * "STOP": a stop's drain); it exits by itself within the drain timeout. */
static void worker_drain(sup_worker *w, const char *command)
{
    AcquireSRWLockExclusive(&S.lock);
    w->state = WORKER_DRAINING;
    w->asked_to_stop = 1;
    w->drain_deadline_ms =
        svc_now_ms() + 2u * (uint64_t)S.opt->server.drain_timeout_s * 1000u + EXIT_GRACE_MS;
    ReleaseSRWLockExclusive(&S.lock);
    worker_command(w, command);
    svc_log(IOCP_LOG_INFO,
            "worker process %lu: stop accepting; its open connections get up to "
            "%lu s to finish",
            (unsigned long)w->pid, (unsigned long)S.opt->server.drain_timeout_s);
}

static int serving_count(void)
{
    int n = 0;
    for (int i = 0; i < MAX_WORKERS; i++)
        n += S.workers[i].used && S.workers[i].state == WORKER_SERVING;
    return n;
}

/* Starts a worker from the current executable and waits for its ready. 0, or -1. */
static int start_serving_worker(char *why, size_t why_size, DWORD *code)
{
    sup_worker *w = worker_start(S.current_exe, why, why_size);
    if (w == NULL) {
        *code = ERROR_SERVICE_SPECIFIC_ERROR;
        return -1;
    }
    if (wait_ready(w, READY_MS, why, why_size, code) != 0) {
        worker_release(w);
        return -1;
    }
    worker_serving(w);
    return 0;
}

/* ---- deaths and restarts ------------------------------------------------------------------- */

uint32_t svc_restart_delay_s(uint32_t failing_in_row)
{
    if (failing_in_row == 0)
        return 0;
    uint32_t delay_s = 1u << (failing_in_row - 1 < 5 ? failing_in_row - 1 : 5);
    return delay_s < BACKOFF_MAX_S ? delay_s : BACKOFF_MAX_S;
}

static void schedule_restart(void)
{
    uint32_t delay_s = svc_restart_delay_s(S.failing_in_row);
    S.failing_in_row++;
    S.restart_at_ms = svc_now_ms() + (uint64_t)delay_s * 1000u;
    if (S.restart_at_ms == 0)
        S.restart_at_ms = 1;
    if (delay_s > 0)
        svc_log(IOCP_LOG_WARN,
                "workers keep ending within %lu s of their start: the next starts in %lu s "
                "(connects wait in the backlog meanwhile)",
                (unsigned long)(HEALTHY_MS / 1000), (unsigned long)delay_s);
}

static void on_worker_exit(sup_worker *w)
{
    DWORD exit_code = 0;
    GetExitCodeProcess(w->process, &exit_code);
    WaitForSingleObject(w->reader, 2000); /* its last report */
    char text[900];
    if (w->asked_to_stop) {
        svc_log(IOCP_LOG_INFO, "worker process %lu drained and exited (code %lu)",
                (unsigned long)w->pid, (unsigned long)exit_code);
        worker_release(w);
        return;
    }
    uint64_t served_ms = w->ready_ms != 0 ? svc_now_ms() - w->ready_ms : 0;
    unsigned long long held = w->have_stats ? (unsigned long long)w->last.active : 0;
    snprintf(text, sizeof text,
             "worker process %lu (%s) ended unasked with exit code %lu (0x%08lX) after %.1f s "
             "of serving, holding %llu connections (lost)%s",
             (unsigned long)w->pid, w->exe, (unsigned long)exit_code, (unsigned long)exit_code,
             (double)served_ms / 1000.0, held,
             exit_code == 70 ? "; 70: its crash guard caught a fault (see the log above)" : "");
    AcquireSRWLockExclusive(&S.lock);
    S.deaths++;
    snprintf(S.last_death, sizeof S.last_death, "%s", text);
    ReleaseSRWLockExclusive(&S.lock);
    svc_event(IOCP_LOG_ERROR, MSG_ERROR, text);
    S.udp_check_due = S.udp != NULL;
    int was_serving = w->state == WORKER_SERVING;
    if (served_ms >= HEALTHY_MS)
        S.failing_in_row = 0;
    worker_release(w);
    if (was_serving && serving_count() == 0)
        schedule_restart();
}

/* Before the next worker gets the UDP socket a dead one used: under Wine a receive or send
 * the dead process had begun can block the socket for every process (udp_stuck.c); then it is
 * made anew. No worker holds it now (a restart comes only when none serves). */
static int renew_udp_if_stuck(void)
{
    int renewed = 0;
    iocp_error_info err;
    if (iocp_held_udp_renew_if_stuck(S.udp, &renewed, &err) != IOCP_OK) {
        /* Under Wine a blocked send keeps the old socket, and so its port, for as long as the
         * Wine server runs: TCP serves on without UDP, and every later restart or upgrade
         * tries the bind again. */
        char text[sizeof err.message + 200];
        snprintf(text, sizeof text, "%s; %s", err.message,
                 S.listener != NULL ? "the next worker serves TCP without UDP"
                                    : "nothing to serve without it (--udp-only)");
        svc_event(IOCP_LOG_ERROR, MSG_ERROR, text);
        AcquireSRWLockExclusive(&S.lock);
        S.deaths++;
        snprintf(S.last_death, sizeof S.last_death, "%s", text);
        ReleaseSRWLockExclusive(&S.lock);
        S.udp_down = 1;
        return -1;
    }
    S.udp_check_due = 0;
    S.udp_down = 0;
    if (renewed)
        svc_log(IOCP_LOG_WARN, "%s", err.message);
    return 0;
}

static void restart_if_due(void)
{
    if (S.restart_at_ms == 0 || svc_now_ms() < S.restart_at_ms || S.stopping)
        return;
    S.restart_at_ms = 0;
    char why[1200];
    DWORD code = 0;
    AcquireSRWLockExclusive(&S.lock);
    S.restarts++;
    ReleaseSRWLockExclusive(&S.lock);
    if (S.udp_check_due && renew_udp_if_stuck() != 0 && S.listener == NULL) {
        schedule_restart(); /* --udp-only: the next try binds again */
        return;
    }
    if (start_serving_worker(why, sizeof why, &code) != 0) {
        if (S.stopping)
            return;
        svc_event(IOCP_LOG_ERROR, MSG_ERROR, why);
        AcquireSRWLockExclusive(&S.lock);
        S.deaths++;
        snprintf(S.last_death, sizeof S.last_death, "%s", why);
        ReleaseSRWLockExclusive(&S.lock);
        schedule_restart();
    }
}

/* ---- upgrade -------------------------------------------------------------------------------- */

static void upgrade_result(const char *state, const char *error)
{
    AcquireSRWLockExclusive(&S.lock);
    snprintf(S.upgrade_state, sizeof S.upgrade_state, "%s", state);
    snprintf(S.upgrade_error, sizeof S.upgrade_error, "%s", error);
    one_line(S.upgrade_error);
    ReleaseSRWLockExclusive(&S.lock);
    if (error[0] != '\0')
        svc_event(IOCP_LOG_ERROR, MSG_ERROR, error);
}

/* The stored Parameters for an upgrade's worker, checked against what a worker cannot change:
 * the listener the supervisor holds, and what supervision needs. 0, or -1 with why set. */
static int read_stored_options(svc_server_options *o, char *why, size_t why_size)
{
    wchar_t path[200];
    char err[600], note[400];
    svc_params_path(S.opt->name, path, sizeof path / sizeof path[0]);
    svc_server_options_init(o);
    DWORD pe = svc_params_read(HKEY_LOCAL_MACHINE, path, o, err, sizeof err);
    if (pe == ERROR_FILE_NOT_FOUND) {
        *o = S.opt->server; /* made by `sc create` alone: the options in force */
        return 0;
    }
    if (pe != NO_ERROR) {
        snprintf(why, why_size,
                 "the stored Parameters are refused (%s): fix them (iocp-service configure) and "
                 "upgrade again",
                 err);
        return -1;
    }
    const svc_server_options *now = &S.opt->server;
    if (o->port != now->port || strcmp(o->bind, now->bind) != 0) {
        snprintf(why, why_size,
                 "the stored --port %u --bind '%s' differ from the listener this service holds "
                 "(--port %u --bind '%s'): they change with a restart of the service (stop, "
                 "start), not an upgrade; configure them back to upgrade",
                 (unsigned)o->port, o->bind, (unsigned)now->port, now->bind);
        SecureZeroMemory(o->tls_password, sizeof o->tls_password);
        return -1;
    }
    if (o->udp != now->udp || o->udp_only != now->udp_only || o->admin_port != now->admin_port ||
        strcmp(o->admin_bind, now->admin_bind) != 0) {
        snprintf(why, why_size,
                 "the stored --udp %s, --udp-only %s, --admin-port %u --admin-bind '%s' differ "
                 "from the sockets this service holds (--udp %s, --udp-only %s, --admin-port %u "
                 "--admin-bind '%s'): they change with a restart of the service (stop, start), "
                 "not an upgrade; configure them back to upgrade",
                 o->udp ? "on" : "off", o->udp_only ? "on" : "off", (unsigned)o->admin_port,
                 o->admin_bind, now->udp ? "on" : "off", now->udp_only ? "on" : "off",
                 (unsigned)now->admin_port, now->admin_bind);
        SecureZeroMemory(o->tls_password, sizeof o->tls_password);
        return -1;
    }
    if (!svc_supervised(o, note, sizeof note)) {
        snprintf(why, why_size,
                 "the stored Parameters end the supervision (%s): restart the "
                 "service to apply them",
                 note[0] ? note : "--supervised is off");
        SecureZeroMemory(o->tls_password, sizeof o->tls_password);
        return -1;
    }
    return 0;
}

static void do_upgrade(void)
{
    char path[SVC_PATH_MAX], why[1400], msg[1000];
    AcquireSRWLockExclusive(&S.lock);
    if (strcmp(S.upgrade_state, "queued") != 0) {
        ReleaseSRWLockExclusive(&S.lock);
        return;
    }
    snprintf(S.upgrade_state, sizeof S.upgrade_state, "running");
    snprintf(path, sizeof path, "%s", S.upgrade_exe);
    int allow_unsafe = S.upgrade_allow_unsafe;
    uint32_t timeout_ms = S.upgrade_timeout_s * 1000u;
    ReleaseSRWLockExclusive(&S.lock);

    wchar_t given[SVC_PATH_MAX], exe[SVC_PATH_MAX];
    if (path[0] == '\0') {
        GetModuleFileNameW(NULL, exe, SVC_PATH_MAX);
    } else {
        svc_widen(path, given, SVC_PATH_MAX);
        if (GetFullPathNameW(given, SVC_PATH_MAX, exe, NULL) == 0)
            swprintf(exe, SVC_PATH_MAX, L"%ls", given);
    }
    char exe_text[SVC_PATH_MAX];
    svc_narrow(exe, exe_text, sizeof exe_text);
    svc_log(IOCP_LOG_INFO, "upgrade asked: a new worker from %s", exe_text);
    DWORD attrs = GetFileAttributesW(exe);
    if (attrs == INVALID_FILE_ATTRIBUTES || (attrs & FILE_ATTRIBUTE_DIRECTORY)) {
        DWORD e = GetLastError();
        snprintf(why, sizeof why, "cannot use %s: %s", exe_text,
                 attrs == INVALID_FILE_ATTRIBUTES ? svc_win32_text(e, msg, sizeof msg)
                                                  : "it is a folder");
        upgrade_result("failed", why);
        return;
    }
    /* The worker runs with the service's rights, which its users lack: a file they could
     * replace, or plant a DLL beside, must not become it (secure.c, as install checks). */
    int verdict = svc_check_exe_location(exe, msg, sizeof msg);
    if (verdict != 0 && !allow_unsafe) {
        snprintf(why, sizeof why,
                 "refusing %s: %s; copy it to a folder only administrators can change (as "
                 "install does), or pass --allow-unsafe-location",
                 exe_text, msg);
        upgrade_result("failed", why);
        return;
    }
    if (verdict != 0)
        svc_log(IOCP_LOG_WARN, "upgrade to %s although %s (--allow-unsafe-location)", exe_text,
                msg);
    /* A config-only upgrade: the new worker runs on the stored Parameters (`configure`). */
    static svc_server_options fresh;
    if (read_stored_options(&fresh, why, sizeof why) != 0) {
        upgrade_result("failed", why);
        return;
    }
    if (S.udp_down) /* no worker holds it now: bind it again for the new one */
        renew_udp_if_stuck();
    S.sending = &fresh;
    sup_worker *w = worker_start(exe, why, sizeof why);
    S.sending = NULL;
    if (w == NULL) {
        SecureZeroMemory(fresh.tls_password, sizeof fresh.tls_password);
        upgrade_result("failed", why);
        return;
    }
    DWORD code = 0;
    AcquireSRWLockExclusive(&S.lock);
    S.upgrade_new_pid = w->pid;
    ReleaseSRWLockExclusive(&S.lock);
    if (wait_ready(w, timeout_ms, why, sizeof why, &code) != 0) {
        worker_release(w); /* stopped; the old one never stopped accepting */
        SecureZeroMemory(fresh.tls_password, sizeof fresh.tls_password);
        char text[1500];
        snprintf(text, sizeof text, "upgrade failed, the old worker serves on: %s", why);
        upgrade_result("failed", text);
        return;
    }
    /* Serving beside the old one now: it stops accepting and drains. */
    for (int i = 0; i < MAX_WORKERS; i++) {
        sup_worker *old = &S.workers[i];
        if (old != w && old->used && old->state != WORKER_DRAINING)
            worker_drain(old, "DRAIN\n");
    }
    worker_serving(w);
    S.opt->server = fresh; /* what later restarts run on */
    SecureZeroMemory(fresh.tls_password, sizeof fresh.tls_password);
    swprintf(S.current_exe, SVC_PATH_MAX, L"%ls", exe);
    S.restart_at_ms = 0;
    S.failing_in_row = 0;
    upgrade_result("done", "");
}

/* ---- the status pipe ---------------------------------------------------------------------- */

static size_t answer_head(char *resp, size_t size)
{
    int n = snprintf(resp, size, "OK\nname=%s\nmode=service\npid=%lu\naddress=%s\n", S.opt->name,
                     (unsigned long)GetCurrentProcessId(), served_address());
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static size_t answer_workers(char *resp, size_t size)
{
    size_t n = answer_head(resp, size);
    char exe[SVC_PATH_MAX];
    GetModuleFileNameA(NULL, exe, sizeof exe);
    AcquireSRWLockShared(&S.lock);
    int m = snprintf(resp + n, size - n,
                     "supervisor=%lu %s %.*s\nrestarts=%lu\ndeaths=%lu\nlast_death=%.*s\n"
                     "upgrade=%lu %s %lu\nupgrade_error=%.*s\n",
                     (unsigned long)GetCurrentProcessId(), iocp_version(), ANSWER_EXE_CHARS, exe,
                     (unsigned long)S.restarts, (unsigned long)S.deaths, 500, S.last_death,
                     (unsigned long)S.upgrade_id, S.upgrade_state[0] ? S.upgrade_state : "none",
                     (unsigned long)S.upgrade_new_pid, 500, S.upgrade_error);
    if (m > 0 && n + (size_t)m < size)
        n += (size_t)m;
    for (int i = 0; i < MAX_WORKERS; i++) {
        const sup_worker *w = &S.workers[i];
        if (!w->used || w->pid == 0)
            continue;
        m = snprintf(resp + n, size - n, "worker=%lu %s %llu %s %s %.*s\n", (unsigned long)w->pid,
                     state_names[w->state],
                     (unsigned long long)(w->have_stats ? w->last.active : 0), w->started_text,
                     w->version[0] ? w->version : "?", ANSWER_EXE_CHARS, w->exe);
        if (m > 0 && n + (size_t)m < size)
            n += (size_t)m;
    }
    ReleaseSRWLockShared(&S.lock);
    return n;
}

static size_t answer_upgrade(const char *arg, char *resp, size_t size)
{
    /* "<allow-unsafe 0|1> <timeout s> <path, or - for the installed executable>" */
    char *end = NULL;
    unsigned long allow = strtoul(arg, &end, 10);
    const char *p = end;
    unsigned long timeout_s = *p == ' ' ? strtoul(p + 1, &end, 10) : 0;
    if (end == arg || *p != ' ' || end == p + 1 || *end != ' ' || end[1] == '\0' || allow > 1 ||
        timeout_s == 0 || timeout_s > 3600)
        return svc_proto_format_error("UPGRADE needs <0|1> <seconds> <path|->", resp, size);
    const char *path = end + 1;
    AcquireSRWLockExclusive(&S.lock);
    if (strcmp(S.upgrade_state, "queued") == 0 || strcmp(S.upgrade_state, "running") == 0) {
        ReleaseSRWLockExclusive(&S.lock);
        return svc_proto_format_error("an upgrade is under way already", resp, size);
    }
    if (S.stopping) {
        ReleaseSRWLockExclusive(&S.lock);
        return svc_proto_format_error("the service is stopping", resp, size);
    }
    S.upgrade_id++;
    snprintf(S.upgrade_state, sizeof S.upgrade_state, "queued");
    S.upgrade_error[0] = '\0';
    S.upgrade_new_pid = 0;
    snprintf(S.upgrade_exe, sizeof S.upgrade_exe, "%s", strcmp(path, "-") == 0 ? "" : path);
    S.upgrade_allow_unsafe = (int)allow;
    S.upgrade_timeout_s = (uint32_t)timeout_s;
    uint32_t id = S.upgrade_id;
    ReleaseSRWLockExclusive(&S.lock);
    SetEvent(S.upgrade_event);
    size_t n = answer_head(resp, size);
    int m = snprintf(resp + n, size - n, "upgrade_id=%lu\n", (unsigned long)id);
    return m > 0 && n + (size_t)m < size ? n + (size_t)m : n;
}

static size_t pipe_handler(void *user, const char *req, size_t len, char *resp, size_t size,
                           int *close_after)
{
    (void)user;
    char line[SVC_PROTO_REQUEST_MAX + 1];
    while (len > 0 && (req[len - 1] == '\n' || req[len - 1] == '\r'))
        len--;
    snprintf(line, sizeof line, "%.*s", (int)len, req);
    if (strncmp(line, "UPGRADE ", 8) == 0)
        return answer_upgrade(line + 8, resp, size);
    if (strcmp(line, "WORKERS") == 0)
        return answer_workers(resp, size);
    if (strncmp(line, "EXPORT", 6) == 0 || strcmp(line, "HANDOVER") == 0) {
        *close_after = 1;
        return svc_proto_format_error("a supervised service is upgraded with `iocp-service "
                                      "upgrade`, not taken over",
                                      resp, size);
    }
    svc_request r = svc_proto_parse_request(req, len);
    if (r == SVC_REQ_MALFORMED) {
        *close_after = 1;
        return svc_proto_format_error("malformed request", resp, size);
    }
    if (r == SVC_REQ_DRAIN) {
        InterlockedExchange(&S.drain_requested, 1);
        svc_log(IOCP_LOG_INFO, "drain requested through the status pipe");
    }
    /* The serving worker's statistics (fresh), the connections of all. */
    refresh_stats();
    svc_status_info info;
    memset(&info, 0, sizeof info);
    AcquireSRWLockShared(&S.lock);
    uint64_t active = 0;
    for (int i = 0; i < MAX_WORKERS; i++) {
        const sup_worker *w = &S.workers[i];
        if (!w->used || !w->have_stats)
            continue;
        if (w->state == WORKER_SERVING)
            info = w->last;
        active += w->last.active;
    }
    ReleaseSRWLockShared(&S.lock);
    info.active = active;
    snprintf(info.name, sizeof info.name, "%s", S.opt->name);
    snprintf(info.mode, sizeof info.mode, "service");
    snprintf(info.address, sizeof info.address, "%s", served_address());
    info.pid = GetCurrentProcessId();
    info.draining = S.stopping || S.drain_requested;
    info.uptime_ms = svc_now_ms() - S.started_ms;
    return svc_proto_format(r, &info, resp, size);
}

/* ---- the supervisor's life ------------------------------------------------------------------- */

static void stop_all(void)
{
    InterlockedExchange(&S.stopping, 1);
    if (S.scm->stopping != NULL)
        S.scm->stopping();
    for (int i = 0; i < MAX_WORKERS; i++)
        if (S.workers[i].used && S.workers[i].state != WORKER_DRAINING)
            worker_drain(&S.workers[i], "STOP\n");
    for (int i = 0; i < MAX_WORKERS; i++) {
        sup_worker *w = &S.workers[i];
        if (!w->used)
            continue;
        while (WaitForSingleObject(w->process, 500) == WAIT_TIMEOUT) {
            if (S.scm->progress != NULL)
                S.scm->progress(S.scm->progress_user);
            if (svc_now_ms() >= w->drain_deadline_ms) {
                svc_log(IOCP_LOG_WARN, "worker process %lu did not finish its drain: ended",
                        (unsigned long)w->pid);
                break;
            }
        }
        on_worker_exit(w);
    }
}

/* Binds what every worker serves on, once: the TCP listener (unless --udp-only), the UDP
 * socket (--udp: on the listener's port number, as the engine puts it; --udp-only: on
 * --port), the admin listener (--admin-port, on --admin-bind or 127.0.0.1, as
 * svc_admin_start_inherited binds its own). NO_ERROR, or the code with why set. */
static DWORD hold_sockets(char *why, size_t why_size)
{
    const svc_server_options *o = &S.opt->server;
    iocp_config config;
    iocp_error_info err;
    svc_server_config(o, &config);
    if (!o->udp_only && iocp_listener_hold(&config, &S.listener, &err) != IOCP_OK) {
        snprintf(why, why_size, "cannot start the server on %s port %u: %s",
                 o->bind[0] ? o->bind : "[::]", (unsigned)o->port, err.message);
        return svc_win32_from_iocp(&err);
    }
    if (o->udp || o->udp_only) {
        uint16_t port = o->udp_only ? (uint16_t)o->port : iocp_held_listener_port(S.listener);
        if (iocp_udp_hold(&config, port, &S.udp, &err) != IOCP_OK) {
            snprintf(why, why_size, "cannot start the server's UDP echo on %s port %u: %s",
                     o->bind[0] ? o->bind : "[::]", (unsigned)port, err.message);
            return svc_win32_from_iocp(&err);
        }
    }
    if (o->admin_port != 0) {
        iocp_config admin;
        iocp_config_init(&admin);
        admin.bind_address = o->admin_bind[0] != '\0' ? o->admin_bind : "127.0.0.1";
        admin.port = (uint16_t)o->admin_port;
        if (iocp_listener_hold(&admin, &S.admin, &err) != IOCP_OK) {
            snprintf(why, why_size, "cannot start the admin endpoint on %s port %u: %s",
                     admin.bind_address, (unsigned)o->admin_port, err.message);
            return svc_win32_from_iocp(&err);
        }
    }
    return NO_ERROR;
}

static void close_sockets(void)
{
    iocp_held_listener_close(S.listener);
    S.listener = NULL;
    iocp_held_udp_close(S.udp);
    S.udp = NULL;
    iocp_held_listener_close(S.admin);
    S.admin = NULL;
}

static DWORD lock_instance(char *why, size_t why_size)
{
    DWORD sys = 0;
    char holder[700], text[300];
    svc_lock_result r = svc_instance_lock(&S.instance, S.opt->name, &sys);
    if (S.instance.note[0] != '\0')
        svc_log(IOCP_LOG_WARN, "%s", S.instance.note);
    if (r == SVC_LOCK_HELD) {
        svc_instance_describe_holder(S.opt->name, holder, sizeof holder);
        snprintf(why, why_size, "another instance named '%s' is already running: %s", S.opt->name,
                 holder);
        return ERROR_SERVICE_ALREADY_RUNNING;
    }
    if (r == SVC_LOCK_ERROR) {
        snprintf(why, why_size, "cannot create the instance mutex: %s",
                 svc_win32_text(sys, text, sizeof text));
        return sys;
    }
    S.locked = 1;
    return NO_ERROR;
}

DWORD svc_supervisor_run(svc_options *opt, const svc_supervisor_scm *scm)
{
    char why[1400], text[600];
    DWORD code = NO_ERROR;
    memset(&S, 0, sizeof S);
    InitializeSRWLock(&S.lock);
    InitializeSRWLock(&S.write_lock);
    S.opt = opt;
    S.scm = scm;
    S.started_ms = svc_now_ms();
    GetModuleFileNameW(NULL, S.current_exe, SVC_PATH_MAX);
    svc_log_set_limits((uint64_t)opt->server.log_max_mib << 20, opt->server.log_keep);
    if (opt->server.log_file[0] != '\0') {
        char reason[600];
        DWORD e = svc_log_open_file_ex(opt->server.log_file, reason, sizeof reason);
        if (e != NO_ERROR) {
            snprintf(why, sizeof why, "cannot open the log file %s: %s", opt->server.log_file,
                     reason[0] ? reason : svc_win32_text(e, text, sizeof text));
            code = e;
            goto fail;
        }
    }
    if (svc_server_memory_check(&opt->server, svc_physical_memory(), text, sizeof text) != 0) {
        snprintf(why, sizeof why, "refusing to start: %s", text);
        code = ERROR_INVALID_PARAMETER;
        goto fail;
    }
    if ((code = lock_instance(why, sizeof why)) != NO_ERROR)
        goto fail;
    if ((code = hold_sockets(why, sizeof why)) != NO_ERROR)
        goto fail;
    S.upgrade_event = CreateEventW(NULL, FALSE, FALSE, NULL);
    DWORD pe = svc_pipe_server_start(opt->name, pipe_handler, NULL, &S.pipe);
    if (pe != NO_ERROR) {
        snprintf(text, sizeof text,
                 "serving without a status pipe (%s): `status` and `upgrade` cannot reach "
                 "this instance until it is restarted with the name free",
                 svc_win32_text(pe, why, sizeof why));
        svc_event(IOCP_LOG_WARN, MSG_WARNING, text);
        S.pipe = NULL;
    }
    if (scm->progress != NULL)
        scm->progress(scm->progress_user);
    /* The TLS password stays in memory (opt) until the stop: every later worker needs it. */
    if (start_serving_worker(why, sizeof why, &code) != 0)
        goto fail;
    char held[200] = "";
    if (S.listener != NULL && S.udp != NULL)
        snprintf(held, sizeof held, ", UDP %s", iocp_held_udp_address(S.udp));
    if (S.admin != NULL)
        snprintf(held + strlen(held), sizeof held - strlen(held), ", admin %s",
                 iocp_held_listener_address(S.admin));
    snprintf(text, sizeof text,
             "supervisor (process %lu) holds %s%s; the server runs as worker processes (%s "
             "framing, up to %lu connections, drain timeout %lu s)",
             (unsigned long)GetCurrentProcessId(), served_address(), held,
             iocp_framing_name(opt->server.framing), (unsigned long)opt->server.max_connections,
             (unsigned long)opt->server.drain_timeout_s);
    svc_event(IOCP_LOG_INFO, MSG_STARTED, text);
    scm->running();
    S.running = 1;

    for (;;) {
        HANDLE wake[3 + MAX_WORKERS];
        sup_worker *who[MAX_WORKERS];
        DWORD n = 0;
        wake[n++] = scm->stop_event;
        wake[n++] = scm->paramchange_event;
        wake[n++] = S.upgrade_event;
        int k = 0;
        for (int i = 0; i < MAX_WORKERS; i++)
            if (S.workers[i].used) {
                who[k++] = &S.workers[i];
                wake[n++] = S.workers[i].process;
            }
        DWORD r = WaitForMultipleObjects(n, wake, FALSE, LOOP_MS);
        if (r == WAIT_OBJECT_0)
            break;
        if (r == WAIT_OBJECT_0 + 1) {
            for (int i = 0; i < MAX_WORKERS; i++)
                if (S.workers[i].used && S.workers[i].state == WORKER_SERVING)
                    worker_command(&S.workers[i], "RECONFIGURE\n");
            svc_log(IOCP_LOG_INFO, "parameters changed: the serving worker re-reads them");
        } else if (r == WAIT_OBJECT_0 + 2) {
            do_upgrade();
        } else if (r >= WAIT_OBJECT_0 + 3 && r < WAIT_OBJECT_0 + n) {
            on_worker_exit(who[r - WAIT_OBJECT_0 - 3]);
        }
        restart_if_due();
        for (int i = 0; i < MAX_WORKERS; i++) {
            sup_worker *w = &S.workers[i];
            if (w->used && w->state == WORKER_DRAINING && svc_now_ms() >= w->drain_deadline_ms &&
                WaitForSingleObject(w->process, 0) == WAIT_TIMEOUT) {
                svc_log(IOCP_LOG_WARN, "worker process %lu did not finish its drain: ended",
                        (unsigned long)w->pid);
                TerminateProcess(w->process, ERROR_PROCESS_ABORTED);
            }
        }
        svc_log_flush();
        if (S.drain_requested)
            break;
    }
    stop_all();
    svc_pipe_server_stop(S.pipe);
    S.pipe = NULL;
    close_sockets();
    snprintf(text, sizeof text, "supervisor stopped: %lu worker restarts, %lu deaths; up %llu s",
             (unsigned long)S.restarts, (unsigned long)S.deaths,
             (unsigned long long)((svc_now_ms() - S.started_ms) / 1000));
    svc_event(IOCP_LOG_INFO, MSG_STOPPED, text);
    SecureZeroMemory(opt->server.tls_password, sizeof opt->server.tls_password);
    if (S.locked)
        svc_instance_unlock(&S.instance);
    S.locked = 0;
    CloseHandle(S.upgrade_event);
    return NO_ERROR;

fail:
    SecureZeroMemory(opt->server.tls_password, sizeof opt->server.tls_password);
    svc_event(IOCP_LOG_ERROR, MSG_START_FAILED, why);
    svc_pipe_server_stop(S.pipe);
    S.pipe = NULL;
    close_sockets();
    if (S.locked)
        svc_instance_unlock(&S.instance);
    S.locked = 0;
    if (S.upgrade_event != NULL)
        CloseHandle(S.upgrade_event);
    return code != NO_ERROR ? code : ERROR_SERVICE_SPECIFIC_ERROR;
}
