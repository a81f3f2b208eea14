/*
 * takeover.c: `iocp-service run --name N --take-over`: a new instance takes the listening
 * socket of the running instance N and the old one leaves without refusing a connection
 * (nginx's binary upgrade, HAProxy's seamless reload).
 *
 * Through N's status pipe (its DACL admits only N's account, administrators and SYSTEM; the
 * answer counts only from N itself, svc_instance_ask):
 *   1. the successor asks "EXPORT <its pid>" for the TCP listener, and with --udp or
 *      --udp-only "EXPORT-UDP <pid>", with --admin-port "EXPORT-ADMIN <pid>"; N duplicates
 *      each socket for that process, and only for the process that asks (the pipe's client
 *      pid), so nobody can have a socket planted in a third process. A socket N does not
 *      have (no UDP, no admin endpoint) is answered without a blob: the successor binds its
 *      own. One N has and the successor does not ask for closes when N exits;
 *   2. the successor starts its engine on them (a changed --port, UDP port or --admin-port
 *      is refused naming both), then its admin endpoint: the engine's start is its self-check
 *      (TLS credentials; the memory budget came before). Both serve on the sockets now: a
 *      connect or a health check is accepted by either, a datagram received by either. If
 *      the start fails, the successor exits and N serves on;
 *   3. the successor asks "HANDOVER" (only the process N exported to may): N stops accepting
 *      on the listeners and receiving on the UDP socket it exported (a datagram or health
 *      check it holds already is answered), lets its open connections run for up to its
 *      drain timeout, closes the rest with a FIN and exits; the successor waits for that,
 *      then takes the instance mutex and the pipe.
 */
#include "svc.h"

#include <string.h>

#define INFO_BYTES    ((size_t)sizeof(WSAPROTOCOL_INFOW))
#define ASK_MS        10000
#define EXIT_GRACE_MS 60000 /* beyond the old instance's two drain periods */

static const char hex_digits[] = "0123456789abcdef";

/* The request without its line end, if it is one of ours. */
static int is_request(const char *req, size_t len, const char *word, const char **arg)
{
    while (len > 0 && (req[len - 1] == '\n' || req[len - 1] == '\r'))
        len--;
    size_t n = strlen(word);
    if (len < n || memcmp(req, word, n) != 0)
        return 0;
    if (len == n) {
        *arg = "";
        return 1;
    }
    if (req[n] != ' ')
        return 0;
    *arg = req + n + 1;
    return 1;
}

/* The instance's own lines, so that svc_instance_ask's trust checks apply to the answer. */
static size_t answer_head(svc_host *h, char *resp, size_t size)
{
    int n = snprintf(resp, size, "OK\nname=%s\nmode=%s\npid=%lu\naddress=%s\n", h->opt.name,
                     h->mode, (unsigned long)GetCurrentProcessId(), iocp_engine_address(h->engine));
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* key=<the blob in hex>\n after n bytes of resp; the new length, or 0 when it does not fit. */
static size_t put_blob(char *resp, size_t n, size_t size, const char *key,
                       const unsigned char *blob)
{
    size_t k = strlen(key);
    if (n == 0 || n + k + 1 + 2 * INFO_BYTES + 2 > size)
        return 0;
    memcpy(resp + n, key, k);
    n += k;
    resp[n++] = '=';
    for (size_t i = 0; i < INFO_BYTES; i++) {
        resp[n++] = hex_digits[blob[i] >> 4];
        resp[n++] = hex_digits[blob[i] & 15];
    }
    resp[n++] = '\n';
    resp[n] = '\0';
    return n;
}

/* EXPORT (the TCP listener), EXPORT-UDP, EXPORT-ADMIN: what = SVC_TAKEOVER_*. An instance
 * without that socket answers with its head alone: the successor binds its own. */
static size_t answer_export(svc_host *h, int what, const char *arg, char *resp, size_t size)
{
    char *end = NULL;
    unsigned long pid = strtoul(arg, &end, 10);
    DWORD client = svc_pipe_client_pid();
    if (end == arg || (*end != '\0' && *end != '\r' && *end != '\n') || pid == 0)
        return svc_proto_format_error("EXPORT needs a process id", resp, size);
    if (client == 0 || client != pid)
        return svc_proto_format_error("the listener goes only to the process that asks", resp,
                                      size);
    if (h->draining)
        return svc_proto_format_error("draining: nothing to take over", resp, size);
    /* The latest process to ask is the successor (one that failed its start and exited
     * must not block the next); what went to an earlier one no longer counts. */
    if ((DWORD)InterlockedExchange((volatile LONG *)&h->successor_pid, (LONG)pid) != pid)
        InterlockedExchange(&h->exported, 0);
    iocp_error_info err;
    size_t n = answer_head(h, resp, size);
    int m = 0;
    const char *what_name = "listener";
    if (what == SVC_TAKEOVER_TCP && !h->opt.server.udp_only) {
        iocp_listener_export x;
        if (iocp_engine_export_listener(h->engine, (uint32_t)pid, &x, &err) != IOCP_OK)
            return svc_proto_format_error(err.message, resp, size);
        m = snprintf(resp + n, size - n, "port=%u\nfamily=%u\n", (unsigned)x.port,
                     (unsigned)x.family);
        n = m > 0 && n + (size_t)m < size ? put_blob(resp, n + (size_t)m, size, "listener", x.tcp)
                                          : 0;
    } else if (what == SVC_TAKEOVER_UDP && iocp_engine_udp_port(h->engine) != 0) {
        iocp_udp_export x;
        what_name = "udp socket";
        if (iocp_engine_export_udp(h->engine, (uint32_t)pid, &x, &err) != IOCP_OK)
            return svc_proto_format_error(err.message, resp, size);
        m = snprintf(resp + n, size - n, "udp_port=%u\n", (unsigned)x.port);
        n = m > 0 && n + (size_t)m < size
                ? put_blob(resp, n + (size_t)m, size, "udp_socket", x.info)
                : 0;
    } else if (what == SVC_TAKEOVER_ADMIN && h->admin != NULL) {
        iocp_listener_export x;
        what_name = "admin listener";
        if (iocp_engine_export_listener(svc_admin_engine(h->admin), (uint32_t)pid, &x, &err) !=
            IOCP_OK)
            return svc_proto_format_error(err.message, resp, size);
        m = snprintf(resp + n, size - n, "admin_port=%u\n", (unsigned)x.port);
        n = m > 0 && n + (size_t)m < size
                ? put_blob(resp, n + (size_t)m, size, "admin_listener", x.tcp)
                : 0;
    } else {
        /* Not served here: the answer's head alone. */
        return n != 0 ? n : svc_proto_format_error("the answer does not fit", resp, size);
    }
    if (n == 0)
        return svc_proto_format_error("the answer does not fit", resp, size);
    InterlockedOr(&h->exported, what);
    svc_log(IOCP_LOG_INFO, "%s exported to process %lu for a take-over", what_name, pid);
    return n;
}

static size_t answer_handover(svc_host *h, char *resp, size_t size)
{
    DWORD client = svc_pipe_client_pid();
    if (h->successor_pid == 0 || client != h->successor_pid)
        return svc_proto_format_error("HANDOVER only from the process the listener went to", resp,
                                      size);
    if (InterlockedExchange(&h->handed_over, 1) == 0) {
        /* The successor serves what it took: this one stops taking new work there. */
        LONG took = h->exported;
        if (took & SVC_TAKEOVER_TCP)
            iocp_engine_stop_accepting(h->engine);
        if (took & SVC_TAKEOVER_UDP)
            iocp_engine_stop_udp_receiving(h->engine);
        if ((took & SVC_TAKEOVER_ADMIN) && h->admin != NULL)
            iocp_engine_stop_accepting(svc_admin_engine(h->admin));
        InterlockedExchange(&h->draining, 1);
        InterlockedExchange(&h->drain_requested, 1); /* the run loop stops: svc_host_stop */
        svc_log(IOCP_LOG_INFO,
                "handed over to process %lu (%s%s%s): accepting no more connections; open ones "
                "get up to %lu s to finish",
                (unsigned long)client, took & SVC_TAKEOVER_TCP ? "listener" : "",
                took & SVC_TAKEOVER_UDP ? (took & SVC_TAKEOVER_TCP ? ", udp" : "udp") : "",
                took & SVC_TAKEOVER_ADMIN ? ", admin listener" : "",
                (unsigned long)h->opt.server.drain_timeout_s);
    }
    size_t n = answer_head(h, resp, size);
    return n != 0 ? n : svc_proto_format_error("the answer does not fit", resp, size);
}

size_t svc_takeover_answer(svc_host *h, const char *req, size_t len, char *resp, size_t size,
                           int *close_after)
{
    static const struct {
        const char *word;
        int what;
    } exports[] = {{"EXPORT", SVC_TAKEOVER_TCP},
                   {"EXPORT-UDP", SVC_TAKEOVER_UDP},
                   {"EXPORT-ADMIN", SVC_TAKEOVER_ADMIN}};
    const char *arg = NULL;
    size_t n = 0;
    int matched = 0;
    for (size_t i = 0; i < sizeof exports / sizeof exports[0] && !matched; i++) {
        if (is_request(req, len, exports[i].word, &arg)) {
            char copy[SVC_PROTO_REQUEST_MAX + 1];
            size_t k = (size_t)(arg - req);
            snprintf(copy, sizeof copy, "%.*s", (int)(len - k), arg);
            n = answer_export(h, exports[i].what, copy, resp, size);
            matched = 1;
        }
    }
    if (!matched) {
        if (is_request(req, len, "HANDOVER", &arg) && arg[0] == '\0')
            n = answer_handover(h, resp, size);
        else
            return 0;
    }
    if (n >= 4 && memcmp(resp, "ERR ", 4) == 0)
        *close_after = 1;
    return n;
}

/* A value of the answer's key=value lines; 0 if missing. */
static const char *find_key(const char *answer, const char *key, size_t *len)
{
    size_t k = strlen(key);
    for (const char *line = answer; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, key, k) == 0 && line[k] == '=') {
            *len = (end ? (size_t)(end - line) : strlen(line)) - k - 1;
            return line + k + 1;
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The blob of key in the answer into out (INFO_BYTES); 1 when there, 0 when the answer has
 * none (the instance does not serve that socket), -1 when garbled. */
static int get_blob(const char *answer, const char *key, unsigned char *out)
{
    size_t len = 0;
    const char *hex = find_key(answer, key, &len);
    if (hex == NULL)
        return 0;
    if (len != 2 * INFO_BYTES)
        return -1;
    for (size_t i = 0; i < INFO_BYTES; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 1;
}

/* Asks for one socket: 1 = its blob is in out (with *port), 0 = the instance has none,
 * -1 = failed (why set). want_port (0 = any) is checked here, before this process serves
 * anything: a successor refused after its engine started would cut what it had accepted. */
static int ask_export(svc_host *h, const svc_options *opt, const char *word, const char *key,
                      const char *port_key, const char *option, uint16_t want_port,
                      unsigned char *out, uint16_t *port, char *why, size_t why_size)
{
    char req[SVC_PROTO_REQUEST_MAX], answer[SVC_PROTO_ANSWER_MAX], err[400];
    snprintf(req, sizeof req, "%s %lu", word, (unsigned long)GetCurrentProcessId());
    svc_status_info info;
    if (svc_instance_ask_raw(opt->name, req, ASK_MS, &info, answer, sizeof answer, err,
                             sizeof err) != 0) {
        snprintf(why, why_size, "cannot take over instance '%s': %s", opt->name, err);
        return -1;
    }
    if (h->predecessor_pid != 0 && info.pid != h->predecessor_pid) {
        snprintf(why, why_size, "cannot take over instance '%s': another process answered",
                 opt->name);
        return -1;
    }
    h->predecessor_pid = info.pid;
    int got = get_blob(answer, key, out);
    size_t port_len = 0;
    const char *p = find_key(answer, port_key, &port_len);
    if (got < 0 || (got == 1 && p == NULL)) {
        snprintf(why, why_size, "cannot take over instance '%s': a garbled %s", opt->name, key);
        return -1;
    }
    if (got == 1)
        *port = (uint16_t)strtoul(p, NULL, 10);
    if (got == 1 && want_port != 0 && *port != want_port) {
        snprintf(why, why_size,
                 "cannot take over instance '%s': its %s is on port %u, not on %s %u: a "
                 "take-over keeps the port (leave %s as it was, or restart to change it)",
                 opt->name,
                 strcmp(key, "udp_socket") == 0       ? "UDP socket"
                 : strcmp(key, "admin_listener") == 0 ? "admin listener"
                                                      : "listener",
                 (unsigned)*port, option, (unsigned)want_port, option);
        return -1;
    }
    return got;
}

int svc_takeover_begin(svc_host *h, const svc_options *opt, char *why, size_t why_size)
{
    h->has_inherited = h->has_inherited_udp = h->has_inherited_admin = 0;
    h->predecessor_pid = 0;
    if (!opt->server.udp_only) {
        iocp_listener_export *x = &h->inherited;
        memset(x, 0, sizeof *x);
        int got = ask_export(h, opt, "EXPORT", "listener", "port", "--port",
                             (uint16_t)opt->server.port, x->tcp, &x->port, why, why_size);
        if (got < 0)
            return -1;
        x->target_pid = GetCurrentProcessId(); /* the family is the blob's own */
        h->has_inherited = got;
    }
    if (opt->server.udp || opt->server.udp_only) {
        iocp_udp_export *x = &h->inherited_udp;
        memset(x, 0, sizeof *x);
        int got = ask_export(h, opt, "EXPORT-UDP", "udp_socket", "udp_port", "--port",
                             opt->server.udp_only ? (uint16_t)opt->server.port : 0, x->info,
                             &x->port, why, why_size);
        if (got < 0)
            return -1;
        x->target_pid = GetCurrentProcessId();
        h->has_inherited_udp = got;
    }
    if (opt->server.admin_port != 0) {
        iocp_listener_export *x = &h->inherited_admin;
        memset(x, 0, sizeof *x);
        int got = ask_export(h, opt, "EXPORT-ADMIN", "admin_listener", "admin_port", "--admin-port",
                             (uint16_t)opt->server.admin_port, x->tcp, &x->port, why, why_size);
        if (got < 0)
            return -1;
        x->target_pid = GetCurrentProcessId();
        h->has_inherited_admin = got;
    }
    if (h->predecessor_pid == 0) {
        /* Nothing asked (cannot happen: a server serves TCP or UDP); keep the check honest. */
        snprintf(why, why_size, "cannot take over instance '%s': nothing to take", opt->name);
        return -1;
    }
    svc_log(IOCP_LOG_INFO, "taking over from instance '%s' (process %lu): %s%s%s", opt->name,
            (unsigned long)h->predecessor_pid, h->has_inherited ? "its listener" : "a new listener",
            opt->server.udp || opt->server.udp_only
                ? (h->has_inherited_udp ? ", its udp socket" : ", a new udp socket")
                : "",
            opt->server.admin_port != 0
                ? (h->has_inherited_admin ? ", its admin listener" : ", a new admin listener")
                : "");
    return 0;
}

int svc_takeover_finish(svc_host *h, char *why, size_t why_size)
{
    char err[400];
    svc_status_info info;
    /* The old one's process, opened before it may exit, so that its pid cannot be reused. */
    HANDLE old = OpenProcess(SYNCHRONIZE, FALSE, h->predecessor_pid);
    if (svc_instance_ask(h->opt.name, "HANDOVER", ASK_MS, &info, err, sizeof err) != 0 ||
        info.pid != h->predecessor_pid) {
        snprintf(why, why_size, "instance '%s' (process %lu) did not hand over: %s", h->opt.name,
                 (unsigned long)h->predecessor_pid, err);
        if (old != NULL)
            CloseHandle(old);
        return -1;
    }
    svc_log(IOCP_LOG_INFO, "serving on %s; process %lu drains its connections and exits",
            iocp_engine_address(h->engine), (unsigned long)h->predecessor_pid);
    if (old == NULL)
        return 0; /* gone already (or not ours to wait for): the mutex says */
    DWORD wait_ms = 2 * h->opt.server.drain_timeout_s * 1000u + EXIT_GRACE_MS;
    DWORD w = WaitForSingleObject(old, wait_ms);
    CloseHandle(old);
    if (w != WAIT_OBJECT_0) {
        snprintf(why, why_size,
                 "process %lu, which handed over, has not exited in %lu s: it keeps the instance "
                 "mutex and status pipe",
                 (unsigned long)h->predecessor_pid, (unsigned long)(wait_ms / 1000));
        return -1;
    }
    return 0;
}

void svc_takeover_drain(svc_host *h, svc_progress_fn progress, void *user)
{
    uint64_t until = svc_now_ms() + (uint64_t)h->opt.server.drain_timeout_s * 1000u;
    iocp_stats st;
    for (;;) {
        iocp_engine_stats(h->engine, &st);
        if (st.active == 0 || svc_now_ms() >= until)
            break;
        Sleep(100); /* a poll with a deadline: connections end one by one, on their own */
        if (progress != NULL)
            progress(user);
    }
    if (st.active != 0)
        svc_log(IOCP_LOG_INFO, "drain timeout after the handover: closing %llu connections",
                (unsigned long long)st.active);
}
