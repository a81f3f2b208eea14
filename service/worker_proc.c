/*
 * worker_proc.c: the hidden `worker` verb, the server in a supervised service's worker process
 * (supervisor.c starts it: "iocp-service.exe worker --name N --channel IN,OUT").
 *
 * Over its private channel (worker_link.c) the supervisor sends the server options ("OPT
 * <flag> <hex value>", read and checked here by this executable, which may be newer or older
 * than the supervisor's), the listener duplicated for this process ("LISTENER ...") and "GO".
 * The worker starts the engine on that listener (its accepts complete by events: the
 * supervisor's socket never joins a port), which is its self-check (TLS credentials; the
 * memory budget came before), and answers "READY <version>" or "FAILED <win32> <hex why>".
 * Then it reports its statistics ("STATS <hex>") twice a second, so the supervisor knows the
 * connections it holds even when it dies, and obeys "DRAIN" (stop accepting, let open
 * connections finish for up to the drain timeout, FIN the rest, exit 0) and "RECONFIGURE"
 * (SERVICE_CONTROL_PARAMCHANGE relayed: configure.c). The channel's end (the supervisor has
 * gone) drains too.
 */
#include "svc.h"

#include <stdlib.h>
#include <string.h>

#define REPORT_MS 500

typedef struct worker_state {
    svc_host host;
    HANDLE to_supervisor;
    svc_link_reader from_supervisor;
    HANDLE drain_event;
    HANDLE reconfigure_event;
    volatile LONG serve_while_draining; /* DRAIN (an upgrade), not STOP */
    SRWLOCK write_lock;                 /* the report (ticker thread) and the main thread */
} worker_state;

static worker_state w;

static void send_line(const char *line)
{
    AcquireSRWLockExclusive(&w.write_lock);
    svc_link_write(w.to_supervisor, line);
    ReleaseSRWLockExclusive(&w.write_lock);
}

static void send_failed(DWORD win32, const char *why)
{
    char line[2 * 800 + 64];
    char hex[2 * 700 + 1];
    size_t n = strlen(why);
    if (n > 700)
        n = 700;
    svc_link_hex(why, n, hex);
    snprintf(line, sizeof line, "FAILED %lu %s\n", (unsigned long)win32, hex);
    send_line(line);
}

/* The statistics as the status pipe's STATS answer, hex-encoded. */
static void send_stats(void *user)
{
    (void)user;
    if (w.host.engine == NULL)
        return;
    svc_status_info info;
    char text[SVC_PROTO_ANSWER_MAX], line[2 * SVC_PROTO_ANSWER_MAX + 16];
    svc_host_info(&w.host, &info);
    size_t n = svc_proto_format(SVC_REQ_STATS, &info, text, sizeof text);
    memcpy(line, "STATS ", 6);
    svc_link_hex(text, n, line + 6);
    memcpy(line + 6 + 2 * n, "\n", 2);
    send_line(line);
}

static DWORD WINAPI command_main(void *arg)
{
    (void)arg;
    char line[256];
    while (svc_link_read_line(&w.from_supervisor, line, sizeof line) == 0) {
        if (strcmp(line, "DRAIN") == 0) {
            InterlockedExchange(&w.serve_while_draining, 1);
            SetEvent(w.drain_event);
        } else if (strcmp(line, "STOP") == 0) {
            SetEvent(w.drain_event);
        } else if (strcmp(line, "RECONFIGURE") == 0)
            SetEvent(w.reconfigure_event);
    }
    SetEvent(w.drain_event); /* the supervisor has gone: nobody would restart us */
    return 0;
}

static HANDLE handle_from_text(const char *text, const char **end)
{
    char *e = NULL;
    unsigned long long v = strtoull(text, &e, 10);
    *end = e;
    return e == text ? NULL : (HANDLE)(uintptr_t)v;
}

/* The options, the listener and "GO" from the supervisor. 0, or -1 with why set. */
static int receive_setup(svc_options *opt, iocp_listener_export *x, char *why, size_t why_size)
{
    static char line[2 * (IOCP_LISTENER_INFO_BYTES + SVC_PATH_MAX) + 256];
    char value[SVC_PATH_MAX + 1], err[400];
    int have_listener = 0;
    for (;;) {
        if (svc_link_read_line(&w.from_supervisor, line, sizeof line) != 0) {
            snprintf(why, why_size, "the supervisor's channel ended before GO");
            return -1;
        }
        if (strcmp(line, "GO") == 0)
            break;
        if (strncmp(line, "OPT ", 4) == 0) {
            char *flag = line + 4, *hex = strchr(flag, ' ');
            if (hex == NULL)
                continue;
            *hex++ = '\0';
            long n = svc_link_unhex(hex, value, sizeof value - 1);
            if (n < 0)
                continue;
            value[n] = '\0';
            const svc_server_opt *def = NULL;
            for (size_t k = 0; k < svc_server_opt_count && def == NULL; k++)
                if (strcmp(flag, svc_server_opts[k].flag) == 0)
                    def = &svc_server_opts[k];
            if (def == NULL) {
                /* A newer supervisor's option this executable does not know. */
                svc_log(IOCP_LOG_WARN, "worker: ignoring the unknown option %s", flag);
                continue;
            }
            if (svc_server_opt_set(&opt->server, def, value, err, sizeof err) != 0) {
                snprintf(why, why_size, "bad option from the supervisor: %s", err);
                SecureZeroMemory(value, sizeof value);
                return -1;
            }
            SecureZeroMemory(value, sizeof value);
        } else if (strncmp(line, "LISTENER ", 9) == 0) {
            char port[16], family[16], by_events[16];
            const char *rest = svc_link_word(line + 9, port, sizeof port);
            rest = svc_link_word(rest, family, sizeof family);
            rest = svc_link_word(rest, by_events, sizeof by_events);
            if (svc_link_unhex(rest, x->tcp, sizeof x->tcp) <= 0) {
                snprintf(why, why_size, "a garbled listener from the supervisor");
                return -1;
            }
            x->target_pid = GetCurrentProcessId();
            x->port = (uint16_t)strtoul(port, NULL, 10);
            x->family = (uint16_t)strtoul(family, NULL, 10);
            x->accept_by_events = (uint32_t)strtoul(by_events, NULL, 10);
            have_listener = 1;
        }
    }
    SecureZeroMemory(line, sizeof line);
    if (!have_listener) {
        snprintf(why, why_size, "the supervisor sent no listener");
        return -1;
    }
    if (svc_server_options_check(&opt->server, err, sizeof err) != 0) {
        snprintf(why, why_size, "bad configuration: %s", err);
        return -1;
    }
    return 0;
}

int svc_worker_main(int argc, char **argv)
{
    static svc_options opt; /* large: not on the stack */
    static iocp_listener_export listener;
    svc_options_init(&opt);
    opt.command = SVC_CMD_SERVICE;
    HANDLE in = NULL, out = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--name") == 0 && svc_name_valid(argv[i + 1])) {
            snprintf(opt.name, sizeof opt.name, "%s", argv[i + 1]);
        } else if (strcmp(argv[i], "--channel") == 0) {
            const char *end = NULL;
            in = handle_from_text(argv[i + 1], &end);
            if (*end == ',')
                out = handle_from_text(end + 1, &end);
        }
    }
    if (in == NULL || out == NULL) {
        fprintf(stderr, "iocp-service: 'worker' is started by a supervised service, not by "
                        "people (see iocp-service --help: install --supervised, upgrade)\n");
        return SVC_EXIT_USAGE;
    }
    InitializeSRWLock(&w.write_lock);
    w.to_supervisor = out;
    w.from_supervisor.pipe = in;
    w.drain_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    w.reconfigure_event = CreateEventW(NULL, FALSE, FALSE, NULL);
    svc_log_init(opt.name, 0);

    char why[800];
    DWORD win32 = NO_ERROR;
    if (w.drain_event == NULL || w.reconfigure_event == NULL) {
        send_failed(GetLastError(), "cannot create the worker's events");
        return SVC_EXIT_SYSTEM;
    }
    if (receive_setup(&opt, &listener, why, sizeof why) != 0) {
        send_failed(ERROR_INVALID_PARAMETER, why);
        svc_log(IOCP_LOG_ERROR, "worker: %s", why);
        return SVC_EXIT_CANNOT_START;
    }
    opt.inherit = &listener;
    int rc = svc_host_start(&w.host, &opt, "worker", NULL, NULL, &win32);
    SecureZeroMemory(opt.server.tls_password, sizeof opt.server.tls_password);
    if (rc != SVC_EXIT_OK) {
        send_failed(win32 != NO_ERROR ? win32 : ERROR_SERVICE_SPECIFIC_ERROR, w.host.failure);
        svc_log_close();
        return rc;
    }
    char line[120];
    snprintf(line, sizeof line, "READY %s\n", iocp_version());
    send_line(line);
    send_stats(NULL);
    HANDLE reader = CreateThread(NULL, 0, command_main, NULL, 0, NULL);
    if (reader == NULL)
        SetEvent(w.drain_event);

    HANDLE wake[2] = {w.drain_event, w.reconfigure_event};
    DWORD woke;
    int failed = 0;
    while ((woke = WaitForMultipleObjects(2, wake, FALSE, REPORT_MS)) != WAIT_OBJECT_0) {
        if (woke == WAIT_OBJECT_0 + 1)
            svc_configure_apply(&w.host);
        if (svc_host_tick(&w.host) != 0) {
            svc_log(IOCP_LOG_ERROR, "worker: the server stopped on its own");
            failed = 1;
            break;
        }
        send_stats(NULL);
    }
    /* Stop accepting first: the listener stays open in the supervisor and any other worker,
     * so connects go on to them (or wait in the backlog). After DRAIN (an upgrade: the new
     * worker serves) our connections are served on until they end or the drain timeout
     * passes, as after a take-over (takeover.c); after STOP (the service stops) the drain is
     * a stop's. */
    iocp_engine_stop_accepting(w.host.engine);
    InterlockedExchange(&w.host.draining, 1);
    if (w.serve_while_draining)
        InterlockedExchange(&w.host.handed_over, 1);
    send_stats(NULL);
    svc_host_stop(&w.host, send_stats, NULL); /* the ticker reports while it drains */
    send_line("STOPPED\n");
    svc_log_close();
    return failed ? SVC_EXIT_SYSTEM : SVC_EXIT_OK;
}
