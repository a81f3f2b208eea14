/*
 * host.c: the server as console and service both run it. Start order: log file, instance
 * mutex, engine (the listener accepts from here on), status pipe. Stop order is the reverse:
 * drain the engine (the pipe still answers, saying "draining"), close the pipe, free the
 * engine, record the final statistics, release the mutex. The caller reports
 * SERVICE_STOPPED only after svc_host_stop returns, so every resource is gone by then.
 */
#include "svc.h"

#include <string.h>

#include "messages.h"

#define SUMMARY_INTERVAL_MS 60000u /* protocol-error summary: at most once a minute */

/* "PFX C:\certs\server.pfx", "certificate 3A...F0 in LocalMachine\My", or "" without TLS. */
static void tls_source(const svc_server_options *o, char *out, size_t size)
{
    if (o->tls_pfx[0] != '\0')
        snprintf(out, size, "PFX %s", o->tls_pfx);
    else if (o->tls_cert[0] != '\0')
        snprintf(out, size, "certificate %s in %s\\My", o->tls_cert,
                 svc_tls_store_name(o->tls_store));
    else
        out[0] = '\0';
}

const char *svc_host_address(const svc_host *h)
{
    const char *tcp = iocp_engine_address(h->engine);
    return tcp[0] != '\0' ? tcp : iocp_engine_udp_address(h->engine);
}

void svc_host_info(svc_host *h, svc_status_info *info)
{
    iocp_stats st;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", h->opt.name);
    snprintf(info->mode, sizeof info->mode, "%s", h->mode);
    snprintf(info->address, sizeof info->address, "%s", svc_host_address(h));
    info->pid = GetCurrentProcessId();
    info->draining = h->draining != 0;
    /* The engine outlives the pipe (svc_host_stop closes the pipe first). */
    iocp_engine_stats(h->engine, &st);
    info->uptime_ms = svc_now_ms() - h->started_ms;
    info->active = st.active;
    info->accepted = st.accepted;
    /* Refused at once, whichever limit: all slots taken, the address holds its share, or it
     * opens connections too fast. */
    info->rejected = st.rejected + st.rejected_per_address + st.rejected_rate;
    info->bytes_in = st.bytes_in;
    info->bytes_out = st.bytes_out;
    info->messages_in = st.messages_in;
    info->messages_out = st.messages_out;
    info->protocol_errors = st.protocol_errors;
    info->tls = h->opt.server.tls_pfx[0] != '\0' || h->opt.server.tls_cert[0] != '\0';
    tls_source(&h->opt.server, info->tls_source, sizeof info->tls_source);
    info->tls_handshakes = st.tls_handshakes;
    info->tls_failures = st.tls_handshake_failures;
    info->tls_below_floor = st.tls_below_floor;
    info->udp = iocp_engine_udp_port(h->engine) != 0;
    snprintf(info->udp_address, sizeof info->udp_address, "%s", iocp_engine_udp_address(h->engine));
    info->udp_datagrams_in = st.udp_datagrams_in;
    info->udp_datagrams_out = st.udp_datagrams_out;
    info->udp_bytes_in = st.udp_bytes_in;
    info->udp_bytes_out = st.udp_bytes_out;
    info->udp_dropped = st.udp_dropped;
    info->udp_truncated = st.udp_truncated;
    info->udp_errors = st.udp_errors;
    info->rejected_rate = st.rejected_rate;
    info->evicted = st.closed[IOCP_CLOSE_EVICTED];
    info->udp_refused_port = st.udp_refused_port;
    info->udp_refused_self = st.udp_refused_self;
    info->udp_refused_address = st.udp_refused_address;
    info->udp_rate_limited = st.udp_rate_limited;
    info->udp_capped = st.udp_capped;
    info->udp_refused_loop = st.udp_refused_loop;
}

static size_t pipe_handler(void *user, const char *req, size_t len, char *resp, size_t size,
                           int *close_after)
{
    svc_host *h = user;
    size_t taken = svc_takeover_answer(h, req, len, resp, size, close_after);
    if (taken != 0)
        return taken;
    svc_request r = svc_proto_parse_request(req, len);
    if (r == SVC_REQ_MALFORMED) {
        *close_after = 1;
        return svc_proto_format_error("malformed request", resp, size);
    }
    if (r == SVC_REQ_DRAIN) {
        /* The pipe's DACL admits only this instance's account, administrators and SYSTEM. */
        InterlockedExchange(&h->drain_requested, 1);
        InterlockedExchange(&h->draining, 1); /* /readyz says 503 from now on */
        svc_log(IOCP_LOG_INFO, "drain requested through the status pipe");
    }
    svc_status_info info;
    svc_host_info(h, &info);
    return svc_proto_format(r, &info, resp, size);
}

/* The admin endpoint's view (admin_http.c), on its engine's worker: the main engine outlives
 * the admin one (svc_host_stop stops the admin endpoint first). */
static void admin_view(void *user, iocp_stats *st, svc_metrics_state *s)
{
    svc_host *h = user;
    iocp_engine_stats(h->engine, st);
    s->draining = h->draining != 0;
    s->ready = !s->draining && iocp_engine_wait(h->engine, 0) != IOCP_OK &&
               (st->contexts_in_use < st->contexts_total || h->opt.server.udp_only);
    /* Handed over with this admin port: a health check this instance accepted just before
     * asks about the port, which the successor serves now, not about this drain. */
    if (h->handed_over && (h->exported & SVC_TAKEOVER_ADMIN))
        s->ready = 1;
}

/* Takes the instance mutex: SVC_EXIT_OK, or an exit code with why and *win32_exit set. */
static int take_lock(svc_host *h, const svc_options *opt, const char *mode, char *why,
                     size_t why_size, DWORD *win32_exit)
{
    char text[600];
    char holder[700];
    DWORD sys = 0;
    char mutex_name[SVC_NAME_MAX + 240];
    if (strcmp(mode, "service") != 0) {
        /* A console's mutex is its user's own, not the service's: while the SCM runs the
         * service of this name, a console of that name would only fight it for the pipe. */
        DWORD service = svc_instance_service_pid(opt->name);
        if (service != 0) {
            svc_instance_describe_holder(opt->name, holder, sizeof holder);
            snprintf(why, why_size,
                     "another instance named '%s' is already running: the service, %s; stop "
                     "it first (iocp-service stop --name %s) or use another --name",
                     opt->name, holder, opt->name);
            *win32_exit = ERROR_SERVICE_ALREADY_RUNNING;
            return SVC_EXIT_ALREADY_RUNNING;
        }
    }
    svc_lock_result locked = svc_instance_lock(&h->instance, opt->name, &sys);
    svc_narrow(h->instance.name, mutex_name, sizeof mutex_name);
    if (h->instance.note[0] != '\0')
        svc_log(strcmp(mode, "service") == 0 ? IOCP_LOG_WARN : IOCP_LOG_INFO, "%s",
                h->instance.note);
    switch (locked) {
    case SVC_LOCK_OK:
        break;
    case SVC_LOCK_ABANDONED:
        snprintf(why, why_size,
                 "took over the abandoned instance mutex %s: its previous holder ended without "
                 "releasing it (killed?)",
                 mutex_name);
        svc_event(IOCP_LOG_WARN, MSG_MUTEX_ABANDONED, why);
        break;
    case SVC_LOCK_HELD:
        svc_instance_describe_holder(opt->name, holder, sizeof holder);
        snprintf(why, why_size, "another instance named '%s' is already running: %s (holds %s)",
                 opt->name, holder, mutex_name);
        *win32_exit = ERROR_SERVICE_ALREADY_RUNNING;
        return SVC_EXIT_ALREADY_RUNNING;
    default:
        snprintf(why, why_size, "cannot create the instance mutex %s: %s", mutex_name,
                 svc_win32_text(sys, text, sizeof text));
        *win32_exit = sys;
        return SVC_EXIT_SYSTEM;
    }
    h->locked = 1;
    if (h->instance.in_namespace)
        svc_log(IOCP_LOG_INFO,
                "instance mutex %s: in a private namespace that only this account can create",
                mutex_name);
    return SVC_EXIT_OK;
}

/* The admin endpoint: on the predecessor's admin listener after a take-over that got it. */
static int start_admin(svc_host *h, char *why, size_t why_size, DWORD *win32_exit)
{
    char aerr[600];
    const svc_server_options *o = &h->opt.server;
    /* Taken over, or a supervised worker's (held by the supervisor), or our own. */
    const iocp_listener_export *inherit =
        h->has_inherited_admin ? &h->inherited_admin : h->opt.inherit_admin;
    if (svc_admin_start_inherited(o->admin_bind, (uint16_t)o->admin_port, inherit, admin_view, h,
                                  &h->admin, aerr, sizeof aerr) != 0) {
        snprintf(why, why_size, "%s", aerr);
        *win32_exit = ERROR_INVALID_PARAMETER;
        return -1;
    }
    svc_log(IOCP_LOG_INFO, "admin endpoint (GET /metrics, /healthz, /readyz) on %s%s",
            svc_admin_address(h->admin),
            h->has_inherited_admin ? " (taken over)"
            : inherit != NULL      ? " (held by the supervisor)"
                                   : "");
    return 0;
}

static void step(svc_progress_fn progress, void *user)
{
    if (progress != NULL)
        progress(user);
}

int svc_host_start(svc_host *h, const svc_options *opt, const char *mode, svc_progress_fn progress,
                   void *user, DWORD *win32_exit)
{
    char why[2048];
    char text[600];
    int rc = SVC_EXIT_CANNOT_START;
    memset(h, 0, sizeof *h);
    h->opt = *opt;
    h->mode = mode;
    *win32_exit = NO_ERROR;

    /* A supervised service's worker (worker_proc.c): the supervisor holds the mutex and the
     * status pipe, and gave it the listener. */
    int worker = strcmp(mode, "worker") == 0;
    /* Before the log file is made: its DACL names NT SERVICE\<name> (safefile.c). */
    if (strcmp(mode, "service") == 0 || worker)
        svc_identity_set_service(opt->name);
    svc_log_set_limits((uint64_t)opt->server.log_max_mib << 20, opt->server.log_keep);
    if (opt->server.log_file[0] != '\0') {
        char reason[600];
        DWORD e = svc_log_open_file_ex(opt->server.log_file, reason, sizeof reason);
        if (e != NO_ERROR) {
            /* The reason (what was refused and why), then the code's text unless the reason
             * has said it already; a missing folder gets the fix. */
            svc_win32_text(e, text, sizeof text);
            snprintf(why, sizeof why, "cannot open the log file %s: %s%s%s%s", opt->server.log_file,
                     reason, reason[0] && strstr(reason, text) == NULL ? " -- " : "",
                     reason[0] && strstr(reason, text) != NULL ? "" : text,
                     e == ERROR_PATH_NOT_FOUND
                         ? "; create the folder first (only the last folder of the path is "
                           "made)"
                         : "");
            *win32_exit = e;
            goto fail;
        }
    }
    step(progress, user);

    /* Before the mutex and the listener: a configuration that hostile peers could push past
     * the memory budget never serves anyone. */
    if (svc_server_memory_check(&opt->server, svc_physical_memory(), text, sizeof text) != 0) {
        snprintf(why, sizeof why, "refusing to start: %s", text);
        *win32_exit = ERROR_INVALID_PARAMETER;
        goto fail;
    }

    if (opt->take_over) {
        /* The running instance keeps the mutex and the pipe until it has handed over. */
        if (svc_takeover_begin(h, opt, why, sizeof why) != 0) {
            *win32_exit = ERROR_INVALID_PARAMETER;
            goto fail;
        }
    } else if (!worker &&
               (rc = take_lock(h, opt, mode, why, sizeof why, win32_exit)) != SVC_EXIT_OK) {
        goto fail;
    }
    rc = SVC_EXIT_CANNOT_START;
    step(progress, user);

    iocp_config config;
    iocp_error_info err;
    memset(&err, 0, sizeof err);
    /* A certificate by thumbprint: the service's store is the machine's, a console's the
     * user's, unless --tls-store / TlsStore said which. */
    if (h->opt.server.tls_store == SVC_TLS_STORE_DEFAULT && h->opt.server.tls_cert[0] != '\0')
        h->opt.server.tls_store =
            strcmp(mode, "console") != 0 ? SVC_TLS_STORE_MACHINE : SVC_TLS_STORE_USER;
    svc_server_config(&h->opt.server, &config);
    config.log = svc_log_engine;
    if (opt->take_over && h->has_inherited)
        config.inherit_listener = &h->inherited;
    if (opt->take_over && h->has_inherited_udp)
        config.inherit_udp = &h->inherited_udp;
    if (opt->inherit != NULL)
        config.inherit_listener = opt->inherit;
    if (opt->inherit_udp != NULL)
        config.inherit_udp = opt->inherit_udp;
    iocp_err e = iocp_engine_start(&config, NULL, h, &h->engine, &err);
    /* The engine has loaded the PFX (or failed to): the password is not needed again. */
    SecureZeroMemory(h->opt.server.tls_password, sizeof h->opt.server.tls_password);
    if (e != IOCP_OK) {
        snprintf(why, sizeof why, "cannot start the server on %s port %u: %s",
                 opt->server.bind[0] ? opt->server.bind : "[::]", (unsigned)opt->server.port,
                 err.message[0] ? err.message : iocp_strerror(e));
        *win32_exit = svc_win32_from_iocp(&err);
        h->engine = NULL;
        goto fail;
    }
    h->started_ms = svc_now_ms();
    h->summary_ms = h->started_ms;
    step(progress, user);
    if (opt->take_over) {
        /* The admin endpoint before the handover: health checks are answered by both, then
         * by this one, never by nobody. */
        if (opt->server.admin_port != 0 && start_admin(h, why, sizeof why, win32_exit) != 0)
            goto fail;
        /* Serving now, self-check passed: the old instance stops accepting, drains, exits;
         * then its mutex and pipe are ours. */
        if (svc_takeover_finish(h, why, sizeof why) != 0) {
            *win32_exit = ERROR_SERVICE_ALREADY_RUNNING;
            goto fail;
        }
        if ((rc = take_lock(h, opt, mode, why, sizeof why, win32_exit)) != SVC_EXIT_OK)
            goto fail;
        rc = SVC_EXIT_CANNOT_START;
        step(progress, user);
    }

    DWORD pe = worker ? NO_ERROR : svc_pipe_server_start(opt->name, pipe_handler, h, &h->pipe);
    if (pe != NO_ERROR) {
        /* ACCESS_DENIED / PIPE_BUSY: another process made the pipe name first. That must not
         * keep the server down; `status` checks who answers and ignores a stranger. */
        char warn[600];
        snprintf(warn, sizeof warn,
                 "serving without a status pipe: cannot create \\\\.\\pipe\\iocp-service-%s "
                 "(%s)%s; `status` cannot report statistics until the instance is restarted "
                 "with the name free",
                 opt->name, svc_win32_text(pe, text, sizeof text),
                 pe == ERROR_ACCESS_DENIED || pe == ERROR_PIPE_BUSY
                     ? ": another program has taken the name"
                     : "");
        svc_event(IOCP_LOG_WARN, MSG_WARNING, warn);
        h->pipe = NULL;
    }
    step(progress, user);

    if (opt->server.admin_port != 0 && h->admin == NULL &&
        start_admin(h, why, sizeof why, win32_exit) != 0)
        goto fail;

    char src[SVC_PATH_MAX + 100], tls[SVC_PATH_MAX + 200] = "", udp[120] = "";
    if (opt->server.udp_only)
        snprintf(udp, sizeof udp, "; UDP echo alone");
    else if (opt->server.udp)
        snprintf(udp, sizeof udp, "; UDP echo on %s too", iocp_engine_udp_address(h->engine));
    tls_source(&h->opt.server, src, sizeof src);
    if (src[0] != '\0')
        snprintf(tls, sizeof tls, "; TLS with %s, handshake timeout %lu s, minimum TLS %s", src,
                 (unsigned long)opt->server.tls_handshake_timeout_s, opt->server.tls_min_version);
    snprintf(why, sizeof why,
             "listening on %s (%s, process %lu%s%s; %s framing, up to %lu connections, drain "
             "timeout %lu s)",
             svc_host_address(h), mode, (unsigned long)GetCurrentProcessId(), tls, udp,
             iocp_framing_name(opt->server.framing), (unsigned long)opt->server.max_connections,
             (unsigned long)opt->server.drain_timeout_s);
    svc_event(IOCP_LOG_INFO, MSG_STARTED, why);
    return SVC_EXIT_OK;

fail:
    snprintf(h->failure, sizeof h->failure, "%s", why);
    svc_event(IOCP_LOG_ERROR, MSG_START_FAILED, why);
    svc_admin_stop(h->admin);
    h->admin = NULL;
    if (h->pipe != NULL)
        svc_pipe_server_stop(h->pipe);
    h->pipe = NULL;
    if (h->engine != NULL)
        iocp_engine_destroy(h->engine);
    h->engine = NULL;
    if (h->locked)
        svc_instance_unlock(&h->instance);
    h->locked = 0;
    return rc;
}

int svc_host_tick(svc_host *h)
{
    uint64_t now = svc_now_ms();
    svc_log_flush(); /* what the rate limit held back, within a second or two */
    if (now - h->summary_ms >= SUMMARY_INTERVAL_MS) {
        iocp_stats st;
        iocp_engine_stats(h->engine, &st);
        if (st.protocol_errors > h->summary_errors) {
            char text[200];
            snprintf(text, sizeof text, "%llu in the last %llu s (%llu since start)",
                     (unsigned long long)(st.protocol_errors - h->summary_errors),
                     (unsigned long long)((now - h->summary_ms) / 1000),
                     (unsigned long long)st.protocol_errors);
            svc_event(IOCP_LOG_WARN, MSG_PROTOCOL_ERRORS, text);
        }
        h->summary_errors = st.protocol_errors;
        h->summary_ms = now;
    }
    /* The engine stops only when told to: if it has, something went wrong. */
    return iocp_engine_wait(h->engine, 0) == IOCP_OK ? -1 : 0;
}

/* Reports progress about every 500 ms while the host thread is busy draining. */
typedef struct ticker {
    HANDLE done;
    svc_progress_fn fn;
    void *user;
} ticker;

static DWORD WINAPI ticker_main(void *arg)
{
    ticker *t = arg;
    while (WaitForSingleObject(t->done, 500) == WAIT_TIMEOUT)
        t->fn(t->user);
    return 0;
}

void svc_host_stop(svc_host *h, svc_progress_fn progress, void *user)
{
    uint64_t t0 = svc_now_ms();
    InterlockedExchange(&h->draining, 1);
    if (h->handed_over) {
        svc_takeover_drain(h, progress, user); /* the successor accepts: no unready delay */
    } else if (h->opt.server.unready_delay_s > 0 && h->admin != NULL) {
        /* /readyz answers 503 now; the listener still accepts while a load balancer's health
         * check notices and takes this instance out of rotation, so no client meets a closed
         * port. */
        svc_log(IOCP_LOG_INFO, "stopping: not ready (/readyz 503); accepting for %lu s more",
                (unsigned long)h->opt.server.unready_delay_s);
        uint64_t until = t0 + (uint64_t)h->opt.server.unready_delay_s * 1000u;
        while (svc_now_ms() < until) {
            Sleep(200);
            step(progress, user);
        }
    }
    svc_log(IOCP_LOG_INFO,
            "stopping: accepting no more connections; open ones get up to %lu s to finish",
            (unsigned long)h->opt.server.drain_timeout_s);
    /* The drain runs here, on the thread that started the engine and will destroy it; a
     * helper thread keeps the service's STOP_PENDING checkpoints coming meanwhile. */
    ticker t = {NULL, progress, user};
    HANDLE thread = NULL;
    if (progress != NULL && (t.done = CreateEventW(NULL, TRUE, FALSE, NULL)) != NULL)
        thread = CreateThread(NULL, 0, ticker_main, &t, 0, NULL);
    iocp_engine_stop(h->engine, h->opt.server.drain_timeout_s * 1000u);
    if (thread != NULL) {
        SetEvent(t.done);
        WaitForSingleObject(thread, INFINITE);
        CloseHandle(thread);
    }
    if (t.done != NULL)
        CloseHandle(t.done);
    step(progress, user);
    svc_admin_stop(h->admin); /* before the engine it reports on is freed */
    h->admin = NULL;
    svc_pipe_server_stop(h->pipe);
    h->pipe = NULL;

    iocp_stats st;
    iocp_engine_stats(h->engine, &st);
    iocp_engine_destroy(h->engine);
    h->engine = NULL;
    step(progress, user);

    svc_log(IOCP_LOG_INFO,
            "final statistics: accepted=%llu rejected=%llu rejected_per_ip=%llu "
            "accept_errors=%llu bytes_in=%llu "
            "bytes_out=%llu messages_in=%llu messages_out=%llu protocol_errors=%llu "
            "closed_by_stop=%llu tls_handshakes=%llu tls_failures=%llu tls_below_floor=%llu "
            "drain_ms=%llu",
            (unsigned long long)st.accepted, (unsigned long long)st.rejected,
            (unsigned long long)st.rejected_per_address, (unsigned long long)st.accept_errors,
            (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
            (unsigned long long)st.messages_in, (unsigned long long)st.messages_out,
            (unsigned long long)st.protocol_errors, (unsigned long long)st.closed[IOCP_CLOSE_STOP],
            (unsigned long long)st.tls_handshakes, (unsigned long long)st.tls_handshake_failures,
            (unsigned long long)st.tls_below_floor, (unsigned long long)(svc_now_ms() - t0));
    char text[400];
    snprintf(text, sizeof text,
             "served %llu connections (%llu rejected), %llu bytes in and %llu out, %llu "
             "protocol errors; up %llu s",
             (unsigned long long)st.accepted, (unsigned long long)st.rejected,
             (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
             (unsigned long long)st.protocol_errors,
             (unsigned long long)((svc_now_ms() - h->started_ms) / 1000));
    svc_event(IOCP_LOG_INFO, MSG_STOPPED, text);
    if (h->locked)
        svc_instance_unlock(&h->instance);
    h->locked = 0;
}
