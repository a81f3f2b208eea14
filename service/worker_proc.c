/*
 * worker_proc.c: the hidden `worker` verb, the server in a supervised service's worker process
 * (supervisor.c starts it: "iocp-service.exe worker --name N --channel IN,OUT").
 *
 * Over its private channel (worker_link.c) the supervisor sends the server options ("OPT
 * <flag> <hex value>", read and checked here by this executable, which may be newer or older
 * than the supervisor's), the sockets duplicated for this process ("LISTENER ...", with
 * --udp or --udp-only "UDP ...", with --admin-port "ADMIN ...") and "GO". The worker starts
 * the engine on them (their ops complete by events: the supervisor's sockets never join a
 * port), then the admin endpoint, which is its self-check (TLS credentials; the memory budget
 * came before), and answers "READY <version>" or "FAILED <win32> <hex why>".
 * Then it reports its statistics ("STATS <hex>") twice a second, so the supervisor knows the
 * connections it holds even when it dies, and obeys "DRAIN" (stop accepting, receiving
 * datagrams and answering health checks: the new worker does; let open
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
    HANDLE stats_event;                 /* "STATS": the supervisor's `status` wants a report now */
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
        else if (strcmp(line, "STATS") == 0)
            SetEvent(w.stats_event); /* the main thread reports: it owns the engine */
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

/* The sockets the supervisor holds for its workers. */
typedef struct worker_sockets {
    iocp_listener_export listener, admin;
    iocp_udp_export udp;
    int have_listener, have_udp, have_admin;
} worker_sockets;

/* "<port> <family> <by events> <hex protocol info>" after a LISTENER, UDP or ADMIN. */
static int parse_socket(const char *text, uint16_t *port, uint16_t *family, uint32_t *by_events,
                        unsigned char *info)
{
    char port_text[16], family_text[16], events_text[16];
    const char *rest = svc_link_word(text, port_text, sizeof port_text);
    rest = svc_link_word(rest, family_text, sizeof family_text);
    rest = svc_link_word(rest, events_text, sizeof events_text);
    if (svc_link_unhex(rest, info, IOCP_LISTENER_INFO_BYTES) <= 0)
        return -1;
    *port = (uint16_t)strtoul(port_text, NULL, 10);
    *family = (uint16_t)strtoul(family_text, NULL, 10);
    *by_events = (uint32_t)strtoul(events_text, NULL, 10);
    return 0;
}

/* The options, the sockets and "GO" from the supervisor. 0, or -1 with why set. */
static int receive_setup(svc_options *opt, worker_sockets *got, char *why, size_t why_size)
{
    static char line[2 * (IOCP_LISTENER_INFO_BYTES + SVC_PATH_MAX) + 256];
    char value[SVC_PATH_MAX + 1], err[400];
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
        } else if (strncmp(line, "LISTENER ", 9) == 0 || strncmp(line, "ADMIN ", 6) == 0) {
            int admin = line[0] == 'A';
            iocp_listener_export *x = admin ? &got->admin : &got->listener;
            if (parse_socket(line + (admin ? 6 : 9), &x->port, &x->family, &x->accept_by_events,
                             x->tcp) != 0) {
                snprintf(why, why_size, "a garbled %s from the supervisor",
                         admin ? "admin listener" : "listener");
                return -1;
            }
            x->target_pid = GetCurrentProcessId();
            *(admin ? &got->have_admin : &got->have_listener) = 1;
        } else if (strncmp(line, "UDP ", 4) == 0) {
            iocp_udp_export *x = &got->udp;
            if (parse_socket(line + 4, &x->port, &x->family, &x->by_events, x->info) != 0) {
                snprintf(why, why_size, "a garbled UDP socket from the supervisor");
                return -1;
            }
            x->target_pid = GetCurrentProcessId();
            got->have_udp = 1;
        }
    }
    SecureZeroMemory(line, sizeof line);
    /* A socket the options need and the supervisor does not hold would be bound here, beside
     * the supervisor's: refused, so that every worker serves on the same ones. */
    const svc_server_options *o = &opt->server;
    const char *missing = !o->udp_only && !got->have_listener         ? "listener"
                          : (o->udp || o->udp_only) && !got->have_udp ? "UDP socket (--udp)"
                          : o->admin_port != 0 && !got->have_admin ? "admin listener (--admin-port)"
                                                                   : NULL;
    if (missing != NULL) {
        snprintf(why, why_size,
                 "the supervisor sent no %s: it holds what the service started with; restart "
                 "the service to apply the changed options",
                 missing);
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
    static worker_sockets sockets;
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
    w.stats_event = CreateEventW(NULL, FALSE, FALSE, NULL);
    svc_log_init(opt.name, 0);

    char why[800];
    DWORD win32 = NO_ERROR;
    if (w.drain_event == NULL || w.reconfigure_event == NULL || w.stats_event == NULL) {
        send_failed(GetLastError(), "cannot create the worker's events");
        return SVC_EXIT_SYSTEM;
    }
    if (receive_setup(&opt, &sockets, why, sizeof why) != 0) {
        send_failed(ERROR_INVALID_PARAMETER, why);
        svc_log(IOCP_LOG_ERROR, "worker: %s", why);
        return SVC_EXIT_CANNOT_START;
    }
    opt.inherit = sockets.have_listener ? &sockets.listener : NULL;
    opt.inherit_udp = sockets.have_udp ? &sockets.udp : NULL;
    opt.inherit_admin = sockets.have_admin ? &sockets.admin : NULL;
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

    HANDLE wake[3] = {w.drain_event, w.reconfigure_event, w.stats_event};
    DWORD woke;
    int failed = 0;
    while ((woke = WaitForMultipleObjects(3, wake, FALSE, REPORT_MS)) != WAIT_OBJECT_0) {
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
    if (w.serve_while_draining) {
        /* The new worker receives the datagrams and answers the health checks (a datagram
         * or check this one holds already is answered). After a STOP the admin endpoint
         * answers on (/readyz 503) until the engine stops. */
        if (opt.server.udp || opt.server.udp_only)
            iocp_engine_stop_udp_receiving(w.host.engine);
        if (w.host.admin != NULL)
            iocp_engine_stop_accepting(svc_admin_engine(w.host.admin));
        InterlockedExchange(&w.host.handed_over, 1);
    }
    send_stats(NULL);
    svc_host_stop(&w.host, send_stats, NULL); /* the ticker reports while it drains */
    send_line("STOPPED\n");
    svc_log_close();
    return failed ? SVC_EXIT_SYSTEM : SVC_EXIT_OK;
}
