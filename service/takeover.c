/*
 * takeover.c: `iocp-service run --name N --take-over`: a new instance takes the listening
 * socket of the running instance N and the old one leaves without refusing a connection
 * (nginx's binary upgrade, HAProxy's seamless reload).
 *
 * Through N's status pipe (its DACL admits only N's account, administrators and SYSTEM; the
 * answer counts only from N itself, svc_instance_ask):
 *   1. the successor asks "EXPORT <its pid>"; N duplicates its listener for that process,
 *      and only for the process that asks (the pipe's client pid), so nobody can have the
 *      socket planted in a third process;
 *   2. the successor starts its engine on it (a changed --port is refused naming both): the
 *      engine's start is its self-check (TLS credentials; the memory budget came before).
 *      Both accept on the socket now. If the start fails, the successor exits and N serves on;
 *   3. the successor asks "HANDOVER" (only the process N exported to may): N stops accepting,
 *      lets its open connections run for up to its drain timeout, closes the rest with a FIN
 *      and exits; the successor waits for that, then takes the instance mutex and the pipe.
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

static size_t answer_export(svc_host *h, const char *arg, char *resp, size_t size)
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
    iocp_listener_export x;
    iocp_error_info err;
    if (iocp_engine_export_listener(h->engine, (uint32_t)pid, &x, &err) != IOCP_OK)
        return svc_proto_format_error(err.message, resp, size);
    size_t n = answer_head(h, resp, size);
    int m = snprintf(resp + n, size - n, "port=%u\nfamily=%u\nlistener=", (unsigned)x.port,
                     (unsigned)x.family);
    if (n == 0 || m < 0 || n + (size_t)m + 2 * INFO_BYTES + 2 > size)
        return svc_proto_format_error("the answer does not fit", resp, size);
    n += (size_t)m;
    for (size_t i = 0; i < INFO_BYTES; i++) {
        resp[n++] = hex_digits[x.tcp[i] >> 4];
        resp[n++] = hex_digits[x.tcp[i] & 15];
    }
    resp[n++] = '\n';
    resp[n] = '\0';
    InterlockedExchange((volatile LONG *)&h->successor_pid, (LONG)pid);
    svc_log(IOCP_LOG_INFO, "listener exported to process %lu for a take-over", pid);
    return n;
}

static size_t answer_handover(svc_host *h, char *resp, size_t size)
{
    DWORD client = svc_pipe_client_pid();
    if (h->successor_pid == 0 || client != h->successor_pid)
        return svc_proto_format_error("HANDOVER only from the process the listener went to", resp,
                                      size);
    if (InterlockedExchange(&h->handed_over, 1) == 0) {
        iocp_engine_stop_accepting(h->engine);
        InterlockedExchange(&h->draining, 1);
        InterlockedExchange(&h->drain_requested, 1); /* the run loop stops: svc_host_stop */
        svc_log(IOCP_LOG_INFO,
                "handed over to process %lu: accepting no more connections; open ones get up "
                "to %lu s to finish",
                (unsigned long)client, (unsigned long)h->opt.server.drain_timeout_s);
    }
    size_t n = answer_head(h, resp, size);
    return n != 0 ? n : svc_proto_format_error("the answer does not fit", resp, size);
}

size_t svc_takeover_answer(svc_host *h, const char *req, size_t len, char *resp, size_t size,
                           int *close_after)
{
    const char *arg = NULL;
    size_t n = 0;
    if (is_request(req, len, "EXPORT", &arg)) {
        char copy[SVC_PROTO_REQUEST_MAX + 1];
        size_t k = (size_t)(arg - req);
        snprintf(copy, sizeof copy, "%.*s", (int)(len - k), arg);
        n = answer_export(h, copy, resp, size);
    } else if (is_request(req, len, "HANDOVER", &arg) && arg[0] == '\0') {
        n = answer_handover(h, resp, size);
    } else {
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

int svc_takeover_begin(svc_host *h, const svc_options *opt, char *why, size_t why_size)
{
    if (opt->server.udp || opt->server.udp_only) {
        snprintf(why, why_size,
                 "--take-over hands over the TCP listener only: leave out --udp "
                 "and --udp-only (not handed over yet)");
        return -1;
    }
    if (opt->server.admin_port != 0) {
        snprintf(why, why_size,
                 "--take-over cannot use --admin-port yet: the old instance holds "
                 "the admin port until it exits");
        return -1;
    }
    char req[SVC_PROTO_REQUEST_MAX], answer[SVC_PROTO_ANSWER_MAX], err[400];
    snprintf(req, sizeof req, "EXPORT %lu", (unsigned long)GetCurrentProcessId());
    svc_status_info info;
    if (svc_instance_ask_raw(opt->name, req, ASK_MS, &info, answer, sizeof answer, err,
                             sizeof err) != 0) {
        snprintf(why, why_size, "cannot take over instance '%s': %s", opt->name, err);
        return -1;
    }
    size_t port_len = 0, family_len = 0, hex_len = 0;
    const char *port = find_key(answer, "port", &port_len);
    const char *family = find_key(answer, "family", &family_len);
    const char *hex = find_key(answer, "listener", &hex_len);
    if (port == NULL || family == NULL || hex == NULL || hex_len != 2 * INFO_BYTES) {
        snprintf(why, why_size,
                 "cannot take over instance '%s': its answer has no listener (an older version?)",
                 opt->name);
        return -1;
    }
    iocp_listener_export *x = &h->inherited;
    memset(x, 0, sizeof *x);
    x->target_pid = GetCurrentProcessId();
    x->port = (uint16_t)strtoul(port, NULL, 10);
    x->family = (uint16_t)strtoul(family, NULL, 10);
    for (size_t i = 0; i < INFO_BYTES; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(why, why_size, "cannot take over instance '%s': a garbled listener",
                     opt->name);
            return -1;
        }
        x->tcp[i] = (unsigned char)(hi << 4 | lo);
    }
    h->predecessor_pid = info.pid;
    svc_log(IOCP_LOG_INFO, "taking over from instance '%s' (process %lu, %s)", opt->name,
            (unsigned long)info.pid, info.address);
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
