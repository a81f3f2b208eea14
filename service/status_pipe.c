/*
 * status_pipe.c: the local named pipe \\.\pipe\iocp-service-<name> through which `status`
 * reads a running instance's statistics.
 *
 * Server: one thread and PIPE_INSTANCES pipe instances, each a small state machine driven by
 * overlapped I/O and its own event (the Microsoft "named pipe server using overlapped I/O"
 * shape):
 *
 *   CONNECTING --client--> READING --request--> WRITING --sent--> READING (next request)
 *                                   \--malformed/oversized--> WRITING --sent--> LINGER
 *   LINGER: the error answer stays readable until the client closes or LINGER_MS passes,
 *   then the pipe is disconnected (DisconnectNamedPipe would drop an unread answer).
 *   Meanwhile whatever the client still sends is read and dropped, so that a client blocked
 *   writing an oversized request can finish and read the answer.
 *
 * Every connected state has a deadline, so a client that connects and goes quiet cannot
 * hold an instance; and every session ends SESSION_MS after its client connected, whatever
 * it sends, so a client that keeps asking cannot hold one for ever either (eight of them
 * would lock `status` out). `status` needs one request; a monitor that polls reconnects. Requests
 * are pipe messages of at most SVC_PROTO_REQUEST_MAX bytes; a longer one ends its read with
 * ERROR_MORE_DATA and is answered "ERR request too large".
 *
 * Security: local clients only (PIPE_REJECT_REMOTE_CLIENTS), and a DACL for local system,
 * administrators and the instance's own SID (svc_private_sd). The first instance is created
 * with FILE_FLAG_FIRST_PIPE_INSTANCE: when another process has taken the name first, the
 * server does not start (the host logs it and serves on without a status pipe), and clients
 * check who answers (svc_instance_ask).
 */
#include "svc.h"

#include <sddl.h>
#include <stdlib.h>
#include <string.h>

#define PIPE_INSTANCES 8
#define PIPE_BUFFER    4096
#define CLIENT_IDLE_MS 5000 /* connected, no request: disconnect */
#define LINGER_MS      2000 /* error answer sent: wait this long for the client to close */
/* SVC_PIPE_SESSION_MS (svc.h): a session's whole life, from the client's connect. */

#ifndef PIPE_REJECT_REMOTE_CLIENTS
#define PIPE_REJECT_REMOTE_CLIENTS 0x00000008
#endif

typedef enum inst_state {
    ST_CONNECTING,
    ST_READING,
    ST_WRITING,
    ST_LINGER,
    ST_BROKEN /* could not be re-armed; retried on the next pass */
} inst_state;

typedef struct pipe_inst {
    HANDLE pipe;
    OVERLAPPED ov; /* ov.hEvent: manual-reset, set when the pending operation finishes */
    int pending;   /* an operation was issued and its completion not yet collected */
    inst_state state;
    int close_after_write;
    uint64_t deadline;    /* the current state's; 0 = none */
    uint64_t session_end; /* the connected client's lifetime ends; 0 = no client */
    char req[SVC_PROTO_REQUEST_MAX];
    char resp[SVC_PROTO_ANSWER_MAX];
    DWORD resp_len;
} pipe_inst;

/* The client of the request being handled (svc_pipe_client_pid); 0 outside a handler. */
static DWORD pipe_client_pid;

DWORD svc_pipe_client_pid(void)
{
    return pipe_client_pid;
}

/* Allocated by svc_pipe_server_start, freed by svc_pipe_server_stop. */
struct svc_pipe_server {
    wchar_t name[SVC_NAME_MAX + 40];
    svc_pipe_handler fn;
    void *user;
    PSECURITY_DESCRIPTOR sd;
    HANDLE stop;
    HANDLE thread;
    pipe_inst inst[PIPE_INSTANCES];
};

void svc_pipe_name(const char *name, wchar_t *out, size_t count)
{
    wchar_t wname[SVC_NAME_MAX + 1];
    svc_widen(name, wname, sizeof wname / sizeof wname[0]);
    swprintf(out, count, L"\\\\.\\pipe\\iocp-service-%ls", wname);
    out[count - 1] = L'\0';
}

static HANDLE create_instance(svc_pipe_server *s, int first)
{
    SECURITY_ATTRIBUTES sa = {sizeof sa, s->sd, FALSE};
    DWORD open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;
    if (first)
        open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
    return CreateNamedPipeW(s->name, open_mode,
                            PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT |
                                PIPE_REJECT_REMOTE_CLIENTS,
                            PIPE_INSTANCES, PIPE_BUFFER, PIPE_BUFFER, 0, &sa);
}

/* ---- the state machine ------------------------------------------------------------------ */

static void arm_connect(pipe_inst *p)
{
    ResetEvent(p->ov.hEvent);
    p->ov.Internal = p->ov.InternalHigh = 0;
    p->state = ST_CONNECTING;
    p->deadline = 0;
    p->session_end = 0;
    p->close_after_write = 0;
    p->pending = 1;
    if (ConnectNamedPipe(p->pipe, &p->ov))
        return; /* overlapped: the event is set */
    switch (GetLastError()) {
    case ERROR_IO_PENDING:
        return;
    case ERROR_PIPE_CONNECTED: /* a client came between create/disconnect and connect */
        p->pending = 0;
        SetEvent(p->ov.hEvent);
        return;
    default:
        p->pending = 0;
        svc_log(IOCP_LOG_WARN, "status pipe: ConnectNamedPipe failed (Win32 %lu)",
                (unsigned long)GetLastError());
        p->state = ST_BROKEN;
        p->deadline = svc_now_ms() + 1000;
        return;
    }
}

/* Ends any client session of this instance and waits for a new client. */
static void recycle(pipe_inst *p)
{
    DWORD n;
    /* Only an operation that was really issued may be waited for: after a call that failed
     * at once, ov.Internal may still say STATUS_PENDING (Wine) and the event never comes. */
    if (p->pending) {
        CancelIoEx(p->pipe, &p->ov);
        GetOverlappedResult(p->pipe, &p->ov, &n, TRUE);
        p->pending = 0;
    }
    DisconnectNamedPipe(p->pipe);
    arm_connect(p);
}

/* Reads the next request; in LINGER, reads and discards whatever the client still sends (the
 * rest of an oversized request) into the answer buffer, whose answer has gone out. */
static void arm_read(pipe_inst *p, uint32_t timeout_ms)
{
    ResetEvent(p->ov.hEvent);
    p->ov.Internal = p->ov.InternalHigh = 0;
    p->deadline = svc_now_ms() + timeout_ms;
    p->pending = 1;
    void *buf = p->state == ST_LINGER ? (void *)p->resp : (void *)p->req;
    DWORD size = p->state == ST_LINGER ? (DWORD)sizeof p->resp : (DWORD)sizeof p->req;
    if (!ReadFile(p->pipe, buf, size, NULL, &p->ov)) {
        DWORD e = GetLastError();
        if (e != ERROR_IO_PENDING && e != ERROR_MORE_DATA) {
            p->pending = 0;
            recycle(p); /* the client went away */
            return;
        }
    }
}

static void arm_write(pipe_inst *p)
{
    ResetEvent(p->ov.hEvent);
    p->ov.Internal = p->ov.InternalHigh = 0;
    p->state = ST_WRITING;
    p->deadline = svc_now_ms() + CLIENT_IDLE_MS;
    p->pending = 1;
    if (!WriteFile(p->pipe, p->resp, p->resp_len, NULL, &p->ov) &&
        GetLastError() != ERROR_IO_PENDING) {
        p->pending = 0;
        recycle(p);
    }
}

static void answer_error(pipe_inst *p, const char *reason)
{
    p->resp_len = (DWORD)svc_proto_format_error(reason, p->resp, sizeof p->resp);
    p->close_after_write = 1;
    arm_write(p);
}

/* The pending operation of p has finished (its event is set). */
static void advance(svc_pipe_server *s, pipe_inst *p)
{
    DWORD n = 0;
    BOOL ok = GetOverlappedResult(p->pipe, &p->ov, &n, FALSE);
    DWORD err = ok ? NO_ERROR : GetLastError();
    p->pending = 0;
    switch (p->state) {
    case ST_CONNECTING:
        if (!ok && err != ERROR_PIPE_CONNECTED) {
            recycle(p);
            return;
        }
        p->state = ST_READING;
        p->session_end = svc_now_ms() + SVC_PIPE_SESSION_MS;
        arm_read(p, CLIENT_IDLE_MS);
        return;
    case ST_READING:
        if (!ok && err == ERROR_MORE_DATA) {
            answer_error(p, "request too large");
            return;
        }
        if (!ok) {
            recycle(p); /* broken pipe: the client closed */
            return;
        }
        if (n == 0) {
            answer_error(p, "malformed request");
            return;
        }
        {
            int close_after = 0;
            /* One thread serves every instance: the handler may ask who is asking. */
            if (!GetNamedPipeClientProcessId(p->pipe, &pipe_client_pid))
                pipe_client_pid = 0;
            size_t len = s->fn(s->user, p->req, n, p->resp, sizeof p->resp, &close_after);
            pipe_client_pid = 0;
            if (len == 0) {
                answer_error(p, "malformed request");
                return;
            }
            p->resp_len = (DWORD)len;
            p->close_after_write = close_after;
            arm_write(p);
        }
        return;
    case ST_WRITING:
        if (!ok) {
            recycle(p);
            return;
        }
        if (p->close_after_write) {
            p->state = ST_LINGER;
            arm_read(p, LINGER_MS);
        } else {
            p->state = ST_READING;
            arm_read(p, CLIENT_IDLE_MS);
        }
        return;
    case ST_LINGER:
        if (ok || err == ERROR_MORE_DATA) {
            /* More of what it was sending: drop it, keep the original deadline. */
            uint64_t deadline = p->deadline;
            uint64_t now = svc_now_ms();
            arm_read(p, deadline > now ? (uint32_t)(deadline - now) : 0);
            if (p->state == ST_LINGER)
                p->deadline = deadline;
            return;
        }
        recycle(p); /* the client closed: the session ends */
        return;
    case ST_BROKEN:
        return;
    }
}

/* When p must be served even without a completion: its state's deadline or the end of its
 * session, whichever comes first; 0 = none. */
static uint64_t due(const pipe_inst *p)
{
    if (p->session_end != 0 && (p->deadline == 0 || p->session_end < p->deadline))
        return p->session_end;
    return p->deadline;
}

static DWORD WINAPI pipe_thread(void *arg)
{
    svc_pipe_server *s = arg;
    HANDLE events[PIPE_INSTANCES + 1];
    events[0] = s->stop;
    for (int i = 0; i < PIPE_INSTANCES; i++)
        events[i + 1] = s->inst[i].ov.hEvent;

    for (;;) {
        uint64_t now = svc_now_ms();
        DWORD timeout = INFINITE;
        for (int i = 0; i < PIPE_INSTANCES; i++) {
            uint64_t when = due(&s->inst[i]);
            if (when == 0)
                continue;
            DWORD left = when > now ? (DWORD)(when - now) : 0;
            if (left < timeout)
                timeout = left;
        }
        DWORD w = WaitForMultipleObjects(PIPE_INSTANCES + 1, events, FALSE, timeout);
        if (w == WAIT_OBJECT_0)
            break;
        if (w == WAIT_FAILED) {
            svc_log(IOCP_LOG_ERROR, "status pipe: wait failed (Win32 %lu)",
                    (unsigned long)GetLastError());
            break;
        }
        /* Serve every instance whose operation finished, not only the lowest index the wait
         * reported: no instance starves under load. Then the deadlines. */
        now = svc_now_ms();
        for (int i = 0; i < PIPE_INSTANCES; i++) {
            pipe_inst *p = &s->inst[i];
            if (p->state != ST_BROKEN && WaitForSingleObject(p->ov.hEvent, 0) == WAIT_OBJECT_0) {
                advance(s, p);
            } else if (due(p) != 0 && now >= due(p)) {
                if (p->state == ST_BROKEN) {
                    DisconnectNamedPipe(p->pipe);
                    arm_connect(p);
                } else {
                    /* A client that went quiet, a finished linger, or a session at the end
                     * of its life. */
                    recycle(p);
                }
            }
        }
    }
    return 0;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void destroy(svc_pipe_server *s)
{
    for (int i = 0; i < PIPE_INSTANCES; i++) {
        pipe_inst *p = &s->inst[i];
        if (p->pipe != NULL && p->pipe != INVALID_HANDLE_VALUE) {
            DWORD n;
            if (p->pending) {
                CancelIoEx(p->pipe, NULL);
                GetOverlappedResult(p->pipe, &p->ov, &n, TRUE);
            }
            DisconnectNamedPipe(p->pipe);
            CloseHandle(p->pipe);
        }
        if (p->ov.hEvent != NULL)
            CloseHandle(p->ov.hEvent);
    }
    if (s->stop != NULL)
        CloseHandle(s->stop);
    if (s->sd != NULL)
        LocalFree(s->sd);
    free(s);
}

DWORD svc_pipe_server_start(const char *name, svc_pipe_handler fn, void *user,
                            svc_pipe_server **out)
{
    DWORD err = NO_ERROR;
    svc_pipe_server *s = calloc(1, sizeof *s);
    *out = NULL;
    if (s == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    svc_pipe_name(name, s->name, sizeof s->name / sizeof s->name[0]);
    s->fn = fn;
    s->user = user;
    s->sd = svc_private_sd();
    if (s->sd == NULL) {
        err = GetLastError() ? GetLastError() : ERROR_INVALID_SECURITY_DESCR;
        goto fail;
    }
    s->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (s->stop == NULL) {
        err = GetLastError();
        goto fail;
    }
    for (int i = 0; i < PIPE_INSTANCES; i++) {
        pipe_inst *p = &s->inst[i];
        p->ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
        if (p->ov.hEvent == NULL) {
            err = GetLastError();
            goto fail;
        }
        p->pipe = create_instance(s, i == 0);
        if (p->pipe == INVALID_HANDLE_VALUE) {
            err = GetLastError();
            p->pipe = NULL;
            goto fail;
        }
        arm_connect(p);
    }
    s->thread = CreateThread(NULL, 0, pipe_thread, s, 0, NULL);
    if (s->thread == NULL) {
        err = GetLastError();
        goto fail;
    }
    *out = s;
    return NO_ERROR;

fail:
    destroy(s);
    return err;
}

void svc_pipe_server_stop(svc_pipe_server *s)
{
    if (s == NULL)
        return;
    SetEvent(s->stop);
    WaitForSingleObject(s->thread, INFINITE);
    CloseHandle(s->thread);
    destroy(s);
}

/* ---- client ----------------------------------------------------------------------------- */

/* One overlapped operation on h, bounded by deadline; cancelled when it passes. */
static DWORD wait_io(HANDLE h, OVERLAPPED *ov, BOOL started, DWORD *n, uint64_t deadline)
{
    if (!started) {
        DWORD e = GetLastError();
        if (e != ERROR_IO_PENDING && e != ERROR_MORE_DATA)
            return e;
    }
    uint64_t now = svc_now_ms();
    DWORD left = deadline > now ? (DWORD)(deadline - now) : 0;
    if (WaitForSingleObject(ov->hEvent, left) != WAIT_OBJECT_0) {
        CancelIoEx(h, ov);
        GetOverlappedResult(h, ov, n, TRUE);
        return WAIT_TIMEOUT;
    }
    return GetOverlappedResult(h, ov, n, FALSE) ? NO_ERROR : GetLastError();
}

DWORD svc_pipe_request(const char *name, const char *req, size_t len, char *resp, size_t resp_size,
                       size_t *resp_len, uint32_t timeout_ms, svc_pipe_peer *peer)
{
    wchar_t wname[SVC_NAME_MAX + 40];
    uint64_t deadline = svc_now_ms() + timeout_ms;
    HANDLE h;
    *resp_len = 0;
    if (resp_size < 2)
        return ERROR_INSUFFICIENT_BUFFER;
    resp[0] = '\0';
    svc_pipe_name(name, wname, sizeof wname / sizeof wname[0]);
    for (;;) {
        /* SECURITY_IDENTIFICATION: the server may learn who we are, not act as us. */
        h = CreateFileW(wname, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                        FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                        NULL);
        if (h != INVALID_HANDLE_VALUE)
            break;
        DWORD e = GetLastError();
        uint64_t now = svc_now_ms();
        if (e != ERROR_PIPE_BUSY || now >= deadline)
            return e == ERROR_PIPE_BUSY ? WAIT_TIMEOUT : e;
        /* All instances busy: wait for one (bounded), then race for it again. */
        DWORD left = (DWORD)(deadline - now);
        WaitNamedPipeW(wname, left < 250 ? left : 250);
    }
    if (peer != NULL) {
        /* Anyone may have created this name: the caller decides whether to believe it. */
        memset(peer, 0, sizeof *peer);
        ULONG pid = 0;
        if (GetNamedPipeServerProcessId(h, &pid))
            peer->pid = pid;
        peer->has_owner = svc_object_owner(h, peer->owner, sizeof peer->owner) == 0;
    }
    DWORD mode = PIPE_READMODE_MESSAGE;
    DWORD err = NO_ERROR;
    DWORD n = 0;
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (ov.hEvent == NULL) {
        err = GetLastError();
    } else if (!SetNamedPipeHandleState(h, &mode, NULL, NULL)) {
        err = GetLastError();
    } else {
        BOOL started = WriteFile(h, req, (DWORD)len, NULL, &ov);
        err = wait_io(h, &ov, started, &n, deadline);
        if (err == NO_ERROR) {
            ResetEvent(ov.hEvent);
            started = ReadFile(h, resp, (DWORD)(resp_size - 1), NULL, &ov);
            /* ERROR_MORE_DATA: an answer larger than resp_size; the part read is kept. */
            err = wait_io(h, &ov, started, &n, deadline);
            if (err == NO_ERROR || err == ERROR_MORE_DATA) {
                resp[n] = '\0';
                *resp_len = n;
            }
        }
    }
    if (ov.hEvent != NULL)
        CloseHandle(ov.hEvent);
    CloseHandle(h);
    return err;
}
