/*
 * admin_http.c: the admin HTTP endpoint (--admin-port): GET /metrics (metrics.c), /healthz
 * and /readyz, for a load balancer's health checks and a monitoring system's scrapes.
 *
 * Built on the engine itself: a second, small iocp engine (raw framing, one worker) on its
 * own port, loopback unless --admin-bind says otherwise. HTTP/1.1 is taken only as far as
 * a health check needs: one request per connection, its head read whole (at most
 * SVC_ADMIN_REQUEST_MAX bytes, within SVC_ADMIN_REQUEST_MS of the connect), GET or HEAD of a
 * known path; the answer carries Content-Length and "Connection: close" and the connection
 * is closed after it. Anything else gets its 4xx (400, 404, 405, 408, 431) or 505 and the
 * same close, and nothing of a request body is read. A peer that sends nothing is closed by
 * the engine's idle timeout. So a hostile client holds one small context and at most 8 KiB
 * for at most about twice the request time; the engine's 32 contexts bound them all.
 */
#include "svc.h"

#include <stdlib.h>
#include <string.h>

#define ADMIN_CONNECTIONS 32
#define BODY_MAX          32768

struct svc_admin {
    iocp_engine *engine;
    svc_admin_view view;
    void *user;
    char address[80];
};

/* One connection's request head so far; made at open, freed at close. */
typedef struct admin_conn {
    uint64_t opened_ms;
    size_t len;
    int answered;
    char buf[SVC_ADMIN_REQUEST_MAX];
} admin_conn;

/* ---- the request head ------------------------------------------------------------------ */

svc_http_result svc_http_parse(const char *buf, size_t len, size_t max, svc_http_request *out)
{
    memset(out, 0, sizeof *out);
    /* The request line: judged as soon as it is whole, so a bad one is answered at once. */
    const char *eol = memchr(buf, '\n', len);
    if (eol == NULL)
        return len >= max ? SVC_HTTP_TOO_LARGE : SVC_HTTP_INCOMPLETE;
    size_t line = (size_t)(eol - buf);
    if (line > 0 && buf[line - 1] == '\r')
        line--;
    for (size_t i = 0; i < line; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
            return SVC_HTTP_BAD;
    const char *sp1 = memchr(buf, ' ', line);
    if (sp1 == NULL || sp1 == buf)
        return SVC_HTTP_BAD;
    size_t mlen = (size_t)(sp1 - buf);
    for (size_t i = 0; i < mlen; i++)
        if (buf[i] < 'A' || buf[i] > 'Z')
            return SVC_HTTP_BAD;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', line - mlen - 1);
    if (sp2 == NULL || sp2 == target || target[0] != '/')
        return SVC_HTTP_BAD;
    const char *version = sp2 + 1;
    size_t vlen = line - (size_t)(version - buf);
    if (vlen < 5 || memcmp(version, "HTTP/", 5) != 0)
        return SVC_HTTP_BAD;
    if (vlen != 8 || (memcmp(version, "HTTP/1.1", 8) != 0 && memcmp(version, "HTTP/1.0", 8) != 0))
        return SVC_HTTP_VERSION;
    if (mlen == 4 && memcmp(buf, "HEAD", 4) == 0)
        out->head = 1;
    else if (!(mlen == 3 && memcmp(buf, "GET", 3) == 0))
        return SVC_HTTP_METHOD;
    size_t tlen = (size_t)(sp2 - target);
    const char *q = memchr(target, '?', tlen);
    if (q != NULL)
        tlen = (size_t)(q - target);
    if (tlen >= sizeof out->target)
        tlen = sizeof out->target - 1; /* no such path: 404 */
    memcpy(out->target, target, tlen);
    out->target[tlen] = '\0';
    /* The head ends at an empty line ("\r\n\r\n", or "\n\n" from a lax client). */
    for (size_t i = line; i + 1 < len; i++) {
        if (buf[i] == '\n' &&
            (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')))
            return SVC_HTTP_OK;
    }
    return len >= max ? SVC_HTTP_TOO_LARGE : SVC_HTTP_INCOMPLETE;
}

/* ---- answers ----------------------------------------------------------------------------- */

static void answer(iocp_conn *conn, int status, const char *reason, const char *type,
                   const char *extra, const char *body, size_t body_len, int head)
{
    char hdr[400];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %llu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                     status, reason, type, (unsigned long long)body_len, extra ? extra : "");
    if (n > 0 && (size_t)n < sizeof hdr)
        iocp_conn_send(conn, hdr, (size_t)n);
    if (!head && body_len > 0)
        iocp_conn_send(conn, body, body_len);
    iocp_conn_close(conn, IOCP_GRACEFUL);
}

static void answer_text(iocp_conn *conn, int status, const char *reason, const char *text,
                        const char *extra, int head)
{
    answer(conn, status, reason, "text/plain; charset=utf-8", extra, text, strlen(text), head);
}

static void serve(iocp_conn *conn, svc_admin *a, const svc_http_request *r)
{
    iocp_stats st;
    svc_metrics_state s;
    memset(&st, 0, sizeof st);
    memset(&s, 0, sizeof s);
    a->view(a->user, &st, &s);
    if (strcmp(r->target, "/healthz") == 0) {
        answer_text(conn, 200, "OK", "alive\n", NULL, r->head);
    } else if (strcmp(r->target, "/readyz") == 0) {
        if (s.ready)
            answer_text(conn, 200, "OK", "ready\n", NULL, r->head);
        else
            answer_text(conn, 503, "Service Unavailable",
                        s.draining ? "draining\n" : "no free connection slot\n", NULL, r->head);
    } else if (strcmp(r->target, "/metrics") == 0) {
        char *body = malloc(BODY_MAX);
        if (body == NULL) {
            answer_text(conn, 503, "Service Unavailable", "out of memory\n", NULL, r->head);
            return;
        }
        size_t n = svc_metrics_format(&st, &s, body, BODY_MAX);
        answer(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, body, n, r->head);
        free(body);
    } else {
        answer_text(conn, 404, "Not Found", "not found: try /metrics, /healthz or /readyz\n", NULL,
                    r->head);
    }
}

/* ---- the admin engine's handlers --------------------------------------------------------- */

static void admin_open(iocp_conn *conn)
{
    admin_conn *ac = malloc(sizeof *ac);
    if (ac == NULL) {
        iocp_conn_close(conn, IOCP_ABORT);
        return;
    }
    ac->opened_ms = svc_now_ms();
    ac->len = 0;
    ac->answered = 0;
    iocp_conn_set_user(conn, ac);
}

static void admin_data(iocp_conn *conn, const void *data, size_t len)
{
    admin_conn *ac = iocp_conn_user(conn);
    svc_admin *a = iocp_engine_user(iocp_conn_engine(conn));
    if (ac == NULL || ac->answered)
        return; /* a body, or a second request: not read */
    if (svc_now_ms() - ac->opened_ms >= SVC_ADMIN_REQUEST_MS) {
        ac->answered = 1;
        answer_text(conn, 408, "Request Timeout", "request timeout\n", NULL, 0);
        return;
    }
    size_t room = sizeof ac->buf - ac->len, take = len < room ? len : room;
    memcpy(ac->buf + ac->len, data, take);
    ac->len += take;
    svc_http_request r;
    svc_http_result res = svc_http_parse(ac->buf, ac->len, sizeof ac->buf, &r);
    if (res == SVC_HTTP_INCOMPLETE)
        return;
    ac->answered = 1;
    switch (res) {
    case SVC_HTTP_OK:
        serve(conn, a, &r);
        break;
    case SVC_HTTP_METHOD:
        answer_text(conn, 405, "Method Not Allowed", "only GET and HEAD\n", "Allow: GET, HEAD\r\n",
                    0);
        break;
    case SVC_HTTP_TOO_LARGE:
        answer_text(conn, 431, "Request Header Fields Too Large", "request head too large\n", NULL,
                    0);
        break;
    case SVC_HTTP_VERSION:
        answer_text(conn, 505, "HTTP Version Not Supported", "HTTP/1.0 or 1.1 only\n", NULL, 0);
        break;
    default:
        answer_text(conn, 400, "Bad Request", "bad request\n", NULL, 0);
        break;
    }
}

static void admin_close(iocp_conn *conn, iocp_close_reason reason, unsigned long sys)
{
    (void)reason;
    (void)sys;
    free(iocp_conn_user(conn));
    iocp_conn_set_user(conn, NULL);
}

static const iocp_handlers admin_handlers = {admin_open, admin_data, admin_close, NULL};

int svc_admin_start(const char *bind, uint16_t port, svc_admin_view view, void *user,
                    svc_admin **out, char *err, size_t err_size)
{
    return svc_admin_start_inherited(bind, port, NULL, view, user, out, err, err_size);
}

int svc_admin_start_inherited(const char *bind, uint16_t port, const iocp_listener_export *inherit,
                              svc_admin_view view, void *user, svc_admin **out, char *err,
                              size_t err_size)
{
    *out = NULL;
    svc_admin *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, err_size, "admin endpoint: out of memory");
        return -1;
    }
    a->view = view;
    a->user = user;
    iocp_config c;
    iocp_config_init(&c);
    c.bind_address = bind != NULL && bind[0] != '\0' ? bind : "127.0.0.1";
    c.port = port;
    c.max_connections = ADMIN_CONNECTIONS;
    c.accepts_outstanding = 4;
    c.workers = 1;
    c.buffer_size = 4096;
    c.buffer_pool_max = (size_t)ADMIN_CONNECTIONS * 4096;
    c.send_queue_cap = 4 * BODY_MAX;
    c.idle_timeout_ms = SVC_ADMIN_REQUEST_MS; /* a silent client */
    c.send_timeout_ms = SVC_ADMIN_REQUEST_MS; /* one that reads nothing of the answer */
    c.log = svc_log_engine;
    c.log_level = IOCP_LOG_WARN;
    c.inherit_listener = inherit; /* a changed port is refused naming both */
    iocp_error_info e;
    memset(&e, 0, sizeof e);
    if (iocp_engine_start(&c, &admin_handlers, a, &a->engine, &e) != IOCP_OK) {
        snprintf(err, err_size, "cannot start the admin endpoint on %s port %u: %s", c.bind_address,
                 (unsigned)port, e.message);
        free(a);
        return -1;
    }
    snprintf(a->address, sizeof a->address, "%s", iocp_engine_address(a->engine));
    *out = a;
    return 0;
}

iocp_engine *svc_admin_engine(svc_admin *a)
{
    return a != NULL ? a->engine : NULL;
}

const char *svc_admin_address(const svc_admin *a)
{
    return a != NULL ? a->address : "";
}

void svc_admin_stop(svc_admin *a)
{
    if (a == NULL)
        return;
    iocp_engine_destroy(a->engine); /* stops it: every connection's state is freed on close */
    free(a);
}
