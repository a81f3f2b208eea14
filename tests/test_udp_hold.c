/*
 * test_udp_hold.c: the UDP socket a supervisor holds for its workers, after a worker that
 * received on it was killed (iocp_held_udp_renew_if_stuck).
 *
 * Under Wine, a receive that a killed process had begun (found a datagram waiting, handed back
 * to the process to take it) is never ended, and every later receive on that socket, in any
 * process, waits behind it for ever (docs/wine.md). Windows ends a dead process's I/O. These
 * cases kill receiving children as the supervisor's workers die, then check that the socket,
 * renewed where it had to be, gives the next receiver its datagrams.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iocp/iocp.h>

#include "proc_util.h"

#define CHILD_ENV  L"IOCP_TEST_UDP_HOLD_CHILD"
#define MAX_ROUNDS 40
#define WANT_STUCK 2 /* rounds that needed a new socket before the case may end early */
#define RECEIVE_MS 3000u
#define BLOCKED_MS 2000u /* a receive that waits this long with datagrams flooding in */

static iocp_held_udp *hold(void)
{
    iocp_config config;
    iocp_config_init(&config);
    config.bind_address = "127.0.0.1";
    iocp_held_udp *u = NULL;
    iocp_error_info err;
    iocp_err rc = iocp_udp_hold(&config, 0, &u, &err);
    CHECK_MSG(rc == IOCP_OK, "iocp_udp_hold: %s", err.message);
    return u;
}

/* A socket of this process on the held one (the duplicate a worker would get). */
static SOCKET open_here(iocp_held_udp *u)
{
    iocp_udp_export x;
    iocp_error_info err;
    CHECK_MSG(iocp_held_udp_export(u, GetCurrentProcessId(), &x, &err) == IOCP_OK, "export: %s",
              err.message);
    WSAPROTOCOL_INFOW info;
    memcpy(&info, x.info, sizeof info);
    SOCKET s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                          WSA_FLAG_OVERLAPPED);
    CHECK(s != INVALID_SOCKET);
    return s;
}

static SOCKET sender(void)
{
    SOCKET s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    CHECK(s != INVALID_SOCKET);
    return s;
}

static void send_to(SOCKET s, uint16_t port, const char *text)
{
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(sendto(s, text, (int)strlen(text), 0, (struct sockaddr *)&to, sizeof to) ==
          (int)strlen(text));
}

/* One overlapped receive on s; the bytes (NUL-terminated) within timeout_ms, or -1. */
static int receive_within(SOCKET s, char *buf, int cap, uint32_t timeout_ms)
{
    WSAOVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    CHECK(ov.hEvent != NULL);
    WSABUF b = {(ULONG)(cap - 1), buf};
    DWORD got = 0, flags = 0;
    int rc = WSARecvFrom(s, &b, 1, &got, &flags, NULL, NULL, &ov, NULL);
    CHECK_MSG(rc == 0 || WSAGetLastError() == WSA_IO_PENDING, "WSARecvFrom: WSA %d",
              WSAGetLastError());
    int n = -1;
    if (WaitForSingleObject(ov.hEvent, timeout_ms) == WAIT_OBJECT_0 &&
        WSAGetOverlappedResult(s, &ov, &got, FALSE, &flags)) {
        n = (int)got;
        buf[n] = 0;
    } else {
        CancelIoEx((HANDLE)s, &ov);
        WaitForSingleObject(ov.hEvent, 5000);
    }
    CloseHandle(ov.hEvent);
    return n;
}

/* A socket that serves: the check leaves it (same port), takes back its own probe when it is
 * first in the buffer, and leaves a peer's datagram for the next receiver, exact. (Behind a
 * peer's datagram the probe stays; a worker refuses it as one from its own port.) */
static void serving_socket_kept(void)
{
    iocp_held_udp *u = hold();
    uint16_t port = iocp_held_udp_port(u);
    int renewed = 1;
    iocp_error_info err;
    CHECK(iocp_held_udp_renew_if_stuck(u, &renewed, &err) == IOCP_OK);
    CHECK_EQ_U(renewed, 0);
    SOCKET s = open_here(u);
    u_long waiting = 99;
    CHECK(ioctlsocket(s, FIONREAD, &waiting) == 0);
    CHECK_MSG(waiting == 0, "%lu bytes left behind by the check", (unsigned long)waiting);

    SOCKET peer = sender();
    send_to(peer, port, "from a peer");
    uint64_t until = test_now_ms() + 5000;
    while (ioctlsocket(s, FIONREAD, &waiting) == 0 && waiting == 0 && test_now_ms() < until)
        Sleep(5);
    CHECK(iocp_held_udp_renew_if_stuck(u, &renewed, &err) == IOCP_OK);
    CHECK_EQ_U(renewed, 0);
    CHECK_EQ_U(iocp_held_udp_port(u), port);
    char buf[64];
    CHECK_EQ_U(receive_within(s, buf, sizeof buf, RECEIVE_MS), 11);
    CHECK(strcmp(buf, "from a peer") == 0);
    closesocket(peer);
    closesocket(s);
    iocp_held_udp_close(u);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The child: the held socket's protocol info on its standard input (hex), then receives on it
 * (or, `sending`, sends to it, to itself) for ever, four at a time, as a worker does, until it
 * is killed. */
static void busy_child(int sending)
{
    char hex[2 * sizeof(WSAPROTOCOL_INFOW) + 8];
    CHECK(fgets(hex, sizeof hex, stdin) != NULL);
    WSAPROTOCOL_INFOW info;
    uint8_t *p = (uint8_t *)&info;
    for (size_t i = 0; i < sizeof info; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        CHECK(hi >= 0 && lo >= 0);
        p[i] = (uint8_t)(hi * 16 + lo);
    }
    SOCKET s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                          WSA_FLAG_OVERLAPPED);
    CHECK(s != INVALID_SOCKET);
    struct sockaddr_storage self;
    int self_len = (int)sizeof self;
    CHECK(getsockname(s, (struct sockaddr *)&self, &self_len) == 0);
    printf("busy\n");
    fflush(stdout);
    enum { N = 4 };
    static WSAOVERLAPPED ov[N];
    static char bufs[N][64];
    HANDLE events[N];
    for (int i = 0; i < N; i++)
        CHECK((events[i] = CreateEventW(NULL, TRUE, FALSE, NULL)) != NULL);
    for (;;) {
        for (int i = 0; i < N; i++) {
            memset(&ov[i], 0, sizeof ov[i]);
            ResetEvent(events[i]);
            ov[i].hEvent = events[i];
            WSABUF b = {sizeof bufs[i], bufs[i]};
            DWORD got = 0, flags = 0;
            if (sending) {
                b.len = 5;
                memcpy(bufs[i], "child", 5);
                WSASendTo(s, &b, 1, &got, 0, (struct sockaddr *)&self, self_len, &ov[i], NULL);
            } else {
                WSARecvFrom(s, &b, 1, &got, &flags, NULL, NULL, &ov[i], NULL);
            }
        }
        WaitForMultipleObjects(N, events, TRUE, 1000);
    }
}

typedef struct flood {
    uint16_t port;
    volatile LONG stop;
    HANDLE thread;
} flood;

static DWORD WINAPI flood_run(void *arg)
{
    flood *f = arg;
    SOCKET s = sender();
    while (!f->stop) {
        send_to(s, f->port, "flood");
        Sleep(0);
    }
    closesocket(s);
    return 0;
}

/* One overlapped send of "probe" from s to its own address: 1 when it completed within
 * timeout_ms. */
static int send_within(SOCKET s, uint32_t timeout_ms)
{
    struct sockaddr_storage self;
    int self_len = (int)sizeof self;
    CHECK(getsockname(s, (struct sockaddr *)&self, &self_len) == 0);
    WSAOVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    CHECK(ov.hEvent != NULL);
    WSABUF b = {5, "probe"};
    DWORD sent = 0, flags = 0;
    int rc = WSASendTo(s, &b, 1, &sent, 0, (struct sockaddr *)&self, self_len, &ov, NULL);
    CHECK_MSG(rc == 0 || WSAGetLastError() == WSA_IO_PENDING, "WSASendTo: WSA %d",
              WSAGetLastError());
    int done = WaitForSingleObject(ov.hEvent, timeout_ms) == WAIT_OBJECT_0 &&
               WSAGetOverlappedResult(s, &ov, &sent, FALSE, &flags);
    if (!done) {
        CancelIoEx((HANDLE)s, &ov);
        WaitForSingleObject(ov.hEvent, 5000);
    }
    CloseHandle(ov.hEvent);
    return done;
}

/* Children that receive (or send) on the held socket killed while datagrams keep coming,
 * until WANT_STUCK kills left it blocked or MAX_ROUNDS. After each kill the socket is first
 * tried from here (a receive, or a send, that gets nothing done for 2 s: blocked), then
 * checked. A blocked receive: the check binds a new socket and a receiver gets datagrams on
 * it within 3 s. A blocked send: under Wine it keeps the old socket and its port, so the check
 * closes the socket and fails, saying so; it is then the last round. A socket not blocked:
 * the check keeps it and a receiver gets datagrams within 3 s. */
static void kill_rounds(const char *case_name, int sending)
{
    if (GetEnvironmentVariableW(CHILD_ENV, NULL, 0) > 0) {
        busy_child(sending);
        return;
    }
    char self[MAX_PATH * 2];
    CHECK(GetModuleFileNameA(NULL, self, sizeof self) > 0);
    iocp_held_udp *u = hold();
    flood f = {iocp_held_udp_port(u), 0, NULL};
    f.thread = CreateThread(NULL, 0, flood_run, &f, 0, NULL);
    CHECK(f.thread != NULL);
    int rounds = 0, stuck = 0, port_kept = 0;
    while (rounds < MAX_ROUNDS && stuck < WANT_STUCK && !port_kept) {
        rounds++;
        HANDLE in_read, in_write;
        SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
        CHECK(CreatePipe(&in_read, &in_write, &sa, 0));
        CHECK(SetHandleInformation(in_write, HANDLE_FLAG_INHERIT, 0));
        CHECK(SetEnvironmentVariableW(CHILD_ENV, L"1"));
        tp_child child;
        tp_start(&child, self, case_name, in_read, 1, 0);
        CHECK(SetEnvironmentVariableW(CHILD_ENV, NULL));
        CloseHandle(in_read);
        iocp_udp_export x;
        iocp_error_info err;
        CHECK_MSG(iocp_held_udp_export(u, child.pid, &x, &err) == IOCP_OK, "export: %s",
                  err.message);
        char hex[2 * sizeof(WSAPROTOCOL_INFOW) + 2];
        for (size_t i = 0; i < sizeof(WSAPROTOCOL_INFOW); i++)
            snprintf(hex + 2 * i, 3, "%02x", (unsigned)(uint8_t)x.info[i]);
        strcat_s(hex, sizeof hex, "\n");
        DWORD wrote = 0;
        CHECK(WriteFile(in_write, hex, (DWORD)strlen(hex), &wrote, NULL));
        CloseHandle(in_write);
        CHECK_MSG(tp_wait_line(&child, "busy", 30000), "the child said:\n%s", child.out);
        Sleep((DWORD)(10 + (rounds * 13) % 50)); /* the kill lands anywhere in its loop */
        tp_kill(&child);
        tp_free(&child);

        /* Whether the old socket still receives (or sends), seen from here first. */
        char buf[64];
        SOCKET old = open_here(u);
        int blocked = sending ? !send_within(old, BLOCKED_MS)
                              : receive_within(old, buf, sizeof buf, BLOCKED_MS) < 0;
        closesocket(old);
        int renewed = 0;
        iocp_err rc = iocp_held_udp_renew_if_stuck(u, &renewed, &err);
        if (rc != IOCP_OK) { /* Wine: the blocked send holds the old socket and its port */
            CHECK_MSG(sending && blocked, "round %d: %s", rounds, err.message);
            CHECK_MSG(strstr(err.message, "its sends were blocked") != NULL &&
                          strstr(err.message, "cannot be bound again") != NULL,
                      "round %d: %s", rounds, err.message);
            printf("round %d: %s\n", rounds, err.message);
            port_kept = 1;
            break;
        }
        CHECK_MSG(renewed == blocked, "round %d: the socket %s, but the check %s", rounds,
                  blocked ? "did nothing for 2 s" : "served", renewed ? "renewed it" : "kept it");
        CHECK_EQ_U(iocp_held_udp_port(u), f.port);
        if (renewed) {
            stuck++;
            printf("round %d: %s\n", rounds, err.message);
        }
        SOCKET s = open_here(u);
        int n = receive_within(s, buf, sizeof buf, RECEIVE_MS);
        CHECK_MSG(n == 5, "round %d: no datagram within %u ms after the kill%s", rounds, RECEIVE_MS,
                  renewed ? " (on the new socket)" : " (the check found the socket serving)");
        closesocket(s);
    }
    f.stop = 1;
    WaitForSingleObject(f.thread, 10000);
    CloseHandle(f.thread);
    printf("%d %s killed: %d left the socket blocked and a new one served%s\n", rounds,
           sending ? "senders" : "receivers", stuck,
           port_kept ? "; the last left a blocked send, which keeps the old socket's port" : "");
    iocp_held_udp_close(u);
}

/* Under Wine a kill sometimes lands inside a receive that found a datagram, and then only a
 * new socket serves. */
static void killed_receiver_then_serves(void)
{
    kill_rounds("killed_receiver_then_serves", 0);
}

/* Under Wine a kill sometimes lands inside a send, which then holds the socket and its port
 * for as long as the Wine server runs: the check says so (a supervisor then serves TCP without
 * UDP). */
static void killed_sender_said(void)
{
    kill_rounds("killed_sender_said", 1);
}

static const test_case cases[] = {
    {"serving_socket_kept", serving_socket_kept},
    {"killed_receiver_then_serves", killed_receiver_then_serves},
    {"killed_sender_said", killed_sender_said},
};

TEST_MAIN(cases)
