/*
 * test_proxy_engine.c: the PROXY protocol through the engine (config.proxy_protocol_from):
 * the header's address becomes the connection's, per-address limits follow it, a bad or
 * missing header is refused and counted, an untrusted source's PROXY line is only data.
 */
#include "harness.h"
#include "net_util.h"

#include <stdio.h>
#include <string.h>

/* on_open records the connection's address as the application sees it; echo otherwise. */
typedef struct seen {
    SRWLOCK lock;
    char peer[8][64];
    volatile LONG opened, closed;
} seen;

static void seen_open(iocp_conn *c)
{
    seen *s = iocp_engine_user(iocp_conn_engine(c));
    AcquireSRWLockExclusive(&s->lock);
    LONG n = s->opened;
    if (n < 8)
        snprintf(s->peer[n], sizeof s->peer[n], "%s", iocp_conn_peer(c));
    InterlockedIncrement(&s->opened);
    ReleaseSRWLockExclusive(&s->lock);
}

static void seen_data(iocp_conn *c, const void *data, size_t len)
{
    iocp_conn_send(c, data, len);
}

static void seen_close(iocp_conn *c, iocp_close_reason reason, unsigned long sys)
{
    (void)reason;
    (void)sys;
    seen *s = iocp_engine_user(iocp_conn_engine(c));
    InterlockedIncrement(&s->closed);
}

static const iocp_handlers seen_handlers = {seen_open, seen_data, seen_close, NULL};

static iocp_engine *start_proxied(const char *from, seen *s, uint32_t per_address)
{
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.max_connections = 16;
    cfg.proxy_protocol_from = from;
    cfg.max_connections_per_address = per_address;
    memset(s, 0, sizeof *s);
    InitializeSRWLock(&s->lock);
    return tn_start(&cfg, &seen_handlers, s);
}

static void echo_exact(SOCKET s, const char *text)
{
    size_t len = strlen(text);
    char back[256];
    CHECK(len <= sizeof back);
    CHECK(tn_send_all(s, text, len) == 0);
    CHECK_EQ_U(tn_recv_exact(s, back, len), len);
    CHECK_MSG(memcmp(back, text, len) == 0, "echo of '%s' came back as '%.*s'", text, (int)len,
              back);
}

static int wait_opened(seen *s, LONG n)
{
    for (int i = 0; i < 500 && s->opened < n; i++)
        Sleep(10); /* a poll with a deadline: on_open runs on a worker */
    return s->opened >= n;
}

/* From a trusted source: the header goes, the bytes after it (in the same send) are echoed
 * exactly, and iocp_conn_peer names the client the header named. */
static void v1_header_names_the_client(void)
{
    seen s;
    iocp_engine *e = start_proxied("127.0.0.1/32", &s, 0);
    SOCKET c = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(c != INVALID_SOCKET);
    const char *msg = "PROXY TCP4 192.0.2.7 127.0.0.1 40001 9000\r\nhello after the header";
    CHECK(tn_send_all(c, msg, strlen(msg)) == 0);
    char back[64];
    size_t want = strlen("hello after the header");
    CHECK_EQ_U(tn_recv_exact(c, back, want), want);
    CHECK(memcmp(back, "hello after the header", want) == 0);
    CHECK(wait_opened(&s, 1));
    CHECK_MSG(strcmp(s.peer[0], "192.0.2.7:40001") == 0, "iocp_conn_peer: '%s'", s.peer[0]);
    echo_exact(c, "PROXY TCP4 1.1.1.1 1.1.1.1 1 1\r\n"); /* a second header is data */
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.proxy_headers, 1);
    CHECK_EQ_U(st.proxy_rejected, 0);
    closesocket(c);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    CHECK_EQ_U(s.closed, 1);
    tn_stop_clean(e);
}

/* The header arrives a byte at a time (v2, IPv6 client): nothing is announced or echoed
 * until it is whole. */
static void v2_header_byte_by_byte(void)
{
    seen s;
    iocp_engine *e = start_proxied("::1/128,127.0.0.0/8", &s, 0);
    SOCKET c = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(c != INVALID_SOCKET);
    uint8_t h[16 + 36] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                          0x55, 0x49, 0x54, 0x0A, 0x21, 0x21, 0x00, 36};
    static const uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
    memcpy(h + 16, src, 16);
    h[48] = 0x12; /* source port 4660 */
    h[49] = 0x34;
    for (size_t i = 0; i < sizeof h; i++) {
        CHECK(tn_send_all(c, h + i, 1) == 0);
        if (i == 20) {
            Sleep(50); /* let the first bytes arrive alone: a read ends inside the header */
            CHECK_EQ_U(s.opened, 0);
        }
    }
    echo_exact(c, "after v2");
    CHECK(wait_opened(&s, 1));
    CHECK_MSG(strcmp(s.peer[0], "[2001:db8::9]:4660") == 0, "iocp_conn_peer: '%s'", s.peer[0]);
    closesocket(c);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    tn_stop_clean(e);
}

/* v2 LOCAL (a balancer's health check): served with the connection's own address. */
static void v2_local_keeps_own_address(void)
{
    seen s;
    iocp_engine *e = start_proxied("127.0.0.1", &s, 0);
    SOCKET c = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(c != INVALID_SOCKET);
    const uint8_t h[16] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                           0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00};
    CHECK(tn_send_all(c, h, sizeof h) == 0);
    echo_exact(c, "health");
    CHECK(wait_opened(&s, 1));
    CHECK_MSG(strstr(s.peer[0], "127.0.0.1") != NULL, "iocp_conn_peer: '%s'", s.peer[0]);
    closesocket(c);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    tn_stop_clean(e);
}

/* From an untrusted source a PROXY line is the application's data, echoed back whole. */
static void untrusted_line_is_data(void)
{
    seen s;
    iocp_engine *e = start_proxied("10.9.9.9/32", &s, 0);
    SOCKET c = tn_connect("127.0.0.1", iocp_engine_port(e), 5000);
    CHECK(c != INVALID_SOCKET);
    echo_exact(c, "PROXY TCP4 192.0.2.7 127.0.0.1 40001 9000\r\n");
    CHECK(wait_opened(&s, 1));
    CHECK_MSG(strstr(s.peer[0], "127.0.0.1") != NULL, "iocp_conn_peer: '%s'", s.peer[0]);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.proxy_headers, 0);
    closesocket(c);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    tn_stop_clean(e);
}

/* A trusted source that sends no valid header: reset, counted, never announced. Garbage is
 * refused at its first byte; silence at the timeout; a FIN before the header ends it too. */
static void bad_or_missing_header_is_refused(void)
{
    seen s;
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.proxy_protocol_from = "127.0.0.1/32";
    cfg.proxy_header_timeout_ms = 400;
    memset(&s, 0, sizeof s);
    InitializeSRWLock(&s.lock);
    iocp_engine *e = tn_start(&cfg, &seen_handlers, &s);
    uint16_t port = iocp_engine_port(e);

    SOCKET c = tn_connect("127.0.0.1", port, 5000);
    CHECK(c != INVALID_SOCKET);
    CHECK(tn_send_all(c, "GET / HTTP/1.1\r\n\r\n", 18) == 0);
    CHECK(tn_wait_closed(c, 5000));
    CHECK(tn_wait_stat(e, ST(proxy_rejected), 1, 5000));
    closesocket(c);

    uint64_t t0 = GetTickCount64();
    c = tn_connect("127.0.0.1", port, 5000);
    CHECK(c != INVALID_SOCKET);
    CHECK(tn_send_all(c, "PROXY TCP4 1.2.3.4", 18) == 0); /* and then nothing */
    CHECK(tn_wait_closed(c, 5000));
    uint64_t took = GetTickCount64() - t0;
    CHECK_MSG(took >= 350 && took < 3000, "closed after %llu ms, timeout 400",
              (unsigned long long)took);
    CHECK(tn_wait_stat(e, ST(proxy_rejected), 2, 5000));
    closesocket(c);

    c = tn_connect("127.0.0.1", port, 5000);
    CHECK(c != INVALID_SOCKET);
    CHECK(tn_send_all(c, "PROXY ", 6) == 0);
    shutdown(c, SD_SEND);
    CHECK(tn_wait_closed(c, 5000));
    CHECK(tn_wait_stat(e, ST(proxy_rejected), 3, 5000));
    closesocket(c);

    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.proxy_headers, 0);
    CHECK_EQ_U(s.opened, 0);
    CHECK_EQ_U(s.closed, 0);
    tn_stop_clean(e);
}

static SOCKET proxied_client(uint16_t port, const char *client_ip, int client_port)
{
    SOCKET c = tn_connect("127.0.0.1", port, 5000);
    CHECK(c != INVALID_SOCKET);
    char line[128];
    snprintf(line, sizeof line, "PROXY TCP4 %s 127.0.0.1 %d 9000\r\n", client_ip, client_port);
    CHECK(tn_send_all(c, line, strlen(line)) == 0);
    return c;
}

/* Behind a balancer (every connection from 127.0.0.1) the per-address limit counts the
 * header's client: one client is limited while another is served, and its count comes back
 * when its connection closes (the release after a header-time count). */
static void per_address_limit_follows_the_header(void)
{
    seen s;
    iocp_engine *e = start_proxied("127.0.0.1/32", &s, 1);
    uint16_t port = iocp_engine_port(e);
    SOCKET a = proxied_client(port, "192.0.2.7", 1000);
    echo_exact(a, "a1");
    SOCKET a2 = proxied_client(port, "192.0.2.7", 1001);
    CHECK(tn_wait_closed(a2, 5000));
    CHECK(tn_wait_stat(e, ST(rejected_per_address), 1, 5000));
    SOCKET b = proxied_client(port, "192.0.2.8", 1000);
    echo_exact(b, "b1");
    closesocket(a2);
    closesocket(a);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 1, 5000));
    a = proxied_client(port, "192.0.2.7", 1002);
    echo_exact(a, "a again");
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.proxy_headers, 4);
    CHECK_EQ_U(st.rejected_per_address, 1);
    CHECK_EQ_U(s.opened, 3);
    closesocket(a);
    closesocket(b);
    CHECK(tn_wait_stat(e, ST(contexts_in_use), 0, 5000));
    CHECK_EQ_U(s.closed, 3);
    tn_stop_clean(e);
}

/* A bad list fails the start and names the entry. */
static void bad_list_is_refused(void)
{
    static const char *bad[] = {"10.0.0.0/33", "10.0.0.0/8;::1", "localhost", ""};
    static const char *says[] = {"'10.0.0.0/33'", "prefix length", "'localhost'", "empty"};
    for (int i = 0; i < 4; i++) {
        iocp_config cfg;
        iocp_config_init(&cfg);
        cfg.port = 0;
        cfg.proxy_protocol_from = bad[i];
        iocp_engine *e = NULL;
        iocp_error_info err;
        iocp_err rc = iocp_engine_start(&cfg, NULL, NULL, &e, &err);
        if (bad[i][0] == '\0') {
            CHECK(rc == IOCP_OK); /* "" is off, as NULL is */
            iocp_engine_destroy(e);
            continue;
        }
        CHECK(rc == IOCP_E_INVALID_ARG && e == NULL);
        CHECK_MSG(strstr(err.message, "proxy_protocol_from") && strstr(err.message, says[i]),
                  "message: %s", err.message);
    }
}

static const test_case cases[] = {
    {"v1_header_names_the_client", v1_header_names_the_client},
    {"v2_header_byte_by_byte", v2_header_byte_by_byte},
    {"v2_local_keeps_own_address", v2_local_keeps_own_address},
    {"untrusted_line_is_data", untrusted_line_is_data},
    {"bad_or_missing_header_is_refused", bad_or_missing_header_is_refused},
    {"per_address_limit_follows_the_header", per_address_limit_follows_the_header},
    {"bad_list_is_refused", bad_list_is_refused},
};

TEST_MAIN(cases)
