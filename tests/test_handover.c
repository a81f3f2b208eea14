/*
 * test_handover.c: one engine hands its listener to another (handover.c) while clients keep
 * connecting: no connect is refused, every echo is exact, and the old engine's open
 * connections go on until its drain closes them with a FIN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "churn.h"
#include "harness.h"
#include "net_util.h"
#include "proc_util.h"
#include "service_probes.h"
#include "churn.h"
#include "svc.h"

#define LONG_LIVED 20

static uint64_t accepted(iocp_engine *e)
{
    iocp_stats st;
    iocp_engine_stats(e, &st);
    return st.accepted;
}

/* Waits until e has accepted at least `count` connections. */
static int wait_accepted(iocp_engine *e, uint64_t count, uint32_t timeout_ms)
{
    return tn_wait_stat_at_least(e, ST(accepted), count, timeout_ms);
}

static void echo_line(SOCKET s, const char *what, int i)
{
    char msg[64], back[64];
    int len = snprintf(msg, sizeof msg, "%s %d\n", what, i);
    CHECK(tn_send_all(s, msg, (size_t)len) == 0);
    CHECK_MSG(tn_recv_exact(s, back, (size_t)len) == (size_t)len && !memcmp(msg, back, (size_t)len),
              "long-lived connection %d: the echo of \"%s %d\" differs", i, what, i);
}

typedef struct stopper {
    iocp_engine *e;
    iocp_err rc;
} stopper;

static DWORD WINAPI stop_main(LPVOID arg)
{
    stopper *s = arg;
    s->rc = iocp_engine_stop(s->e, 10000);
    return 0;
}

/* LONG_LIVED connections to port on loopback, each echoed once ("before"). */
static void open_held(SOCKET held[LONG_LIVED], uint16_t port, uint32_t timeout_ms)
{
    for (int i = 0; i < LONG_LIVED; i++) {
        held[i] = tn_connect("127.0.0.1", port, timeout_ms);
        CHECK(held[i] != INVALID_SOCKET);
        echo_line(held[i], "before", i);
    }
}

/* Each long-lived connection gets its server's FIN (the drain's end) and nothing before it;
 * then it is closed. */
static void expect_fins(SOCKET held[LONG_LIVED])
{
    for (int i = 0; i < LONG_LIVED; i++) {
        char c;
        int got = recv(held[i], &c, 1, 0);
        CHECK_MSG(got == 0, "long-lived connection %d: recv gave %d (WSA %d), not the FIN", i, got,
                  got < 0 ? WSAGetLastError() : 0);
        closesocket(held[i]);
    }
}

/* Engine A, no longer accepting, still echoes on its long-lived connections; then it stops
 * (on a thread of its own: the stop waits for the drain) and the drain closes each with a
 * FIN. */
static void a_drains(iocp_engine *a, SOCKET held[LONG_LIVED])
{
    for (int i = 0; i < LONG_LIVED; i++)
        echo_line(held[i], "after", i);
    stopper st = {a, IOCP_OK};
    HANDLE t = CreateThread(NULL, 0, stop_main, &st, 0, NULL);
    CHECK(t != NULL);
    expect_fins(held);
    CHECK(WaitForSingleObject(t, 30000) == WAIT_OBJECT_0);
    CloseHandle(t);
    CHECK_OK(st.rc);
}

/* A new connection to port is echoed exactly: the successor serves on after A is gone. */
static void serves_on(uint16_t port)
{
    SOCKET s = tn_connect("127.0.0.1", port, 10000);
    CHECK(s != INVALID_SOCKET);
    echo_line(s, "after A", 0);
    closesocket(s);
}

/* Engine A on loopback holding LONG_LIVED connections that have echoed once, and a client
 * connecting to it in a loop (the load both handover cases run through). */
static iocp_engine *start_a_under_load(SOCKET held[LONG_LIVED], churn *load, uint16_t *port)
{
    iocp_config ca;
    iocp_config_init(&ca);
    ca.bind_address = "127.0.0.1";
    iocp_engine *a = tn_start(&ca, NULL, NULL);
    *port = iocp_engine_port(a);
    open_held(held, *port, 10000);
    churn_start(load, *port);
    return a;
}

/* Engine A listens and holds LONG_LIVED connections; B starts on A's listener (the duplicate
 * for this process), A stops accepting while a client connects in a loop; A's connections
 * keep echoing, then A's drain closes each with a FIN; B goes on serving. */
static void handover_in_process(void)
{
    SOCKET held[LONG_LIVED];
    churn load;
    uint16_t port;
    iocp_engine *a = start_a_under_load(held, &load, &port);
    CHECK(wait_accepted(a, LONG_LIVED + 20, 20000)); /* the loop is running against A */

    iocp_listener_export x;
    iocp_error_info err;
    CHECK_MSG(iocp_engine_export_listener(a, GetCurrentProcessId(), &x, &err) == IOCP_OK, "%s",
              err.message);
    CHECK_EQ_U(x.port, port);
    iocp_config cb;
    iocp_config_init(&cb);
    cb.inherit_listener = &x;
    iocp_engine *b = NULL;
    CHECK_MSG(iocp_engine_start(&cb, NULL, NULL, &b, &err) == IOCP_OK, "%s", err.message);
    CHECK_EQ_U(iocp_engine_port(b), port);
    CHECK(wait_accepted(b, 10, 20000)); /* both accept on one socket now */

    CHECK_OK(iocp_engine_stop_accepting(a));
    uint64_t b_at_stop = accepted(b);
    CHECK(wait_accepted(b, b_at_stop + 50, 30000)); /* B alone takes the new ones */
    /* A's accepts are done: nothing more arrives there. */
    uint64_t a_after = accepted(a);
    CHECK(wait_accepted(b, accepted(b) + 20, 30000));
    CHECK_EQ_U(accepted(a), a_after);
    churn_stop(&load);
    printf("handover in process: %ld connects, %ld refused, %ld wrong echoes, %ld resets; "
           "A accepted %llu, B %llu\n",
           load.connects, load.refused, load.wrong_echo, load.resets, (unsigned long long)a_after,
           (unsigned long long)accepted(b));
    CHECK_EQ_U(load.refused, 0);
    CHECK_EQ_U(load.wrong_echo, 0);
    CHECK_EQ_U(load.resets, 0);

    /* A no longer accepts, but its connections still work until it drains. */
    a_drains(a, held);
    iocp_stats sa;
    iocp_engine_stats(a, &sa);
    CHECK_EQ_U(sa.closed[IOCP_CLOSE_STOP], LONG_LIVED);
    CHECK_EQ_U(sa.closed[IOCP_CLOSE_RESET], 0);
    tn_stop_clean(a);

    /* B serves on after A is gone: the socket stayed open through B's duplicate. */
    serves_on(port);
    tn_stop_clean(b);
}

/* What goes wrong names itself: a changed port, a blob for another process, an export from
 * an engine that has stopped accepting or does not listen. */
static void handover_refusals(void)
{
    iocp_config ca;
    iocp_config_init(&ca);
    ca.bind_address = "127.0.0.1";
    iocp_engine *a = tn_start(&ca, NULL, NULL);
    uint16_t port = iocp_engine_port(a);
    iocp_listener_export x;
    iocp_error_info err;
    CHECK_OK(iocp_engine_export_listener(a, GetCurrentProcessId(), &x, &err));

    iocp_config cb;
    iocp_config_init(&cb);
    cb.inherit_listener = &x;
    cb.port = (uint16_t)(port == 65535 ? 65534 : port + 1);
    iocp_engine *b = NULL;
    CHECK(iocp_engine_start(&cb, NULL, NULL, &b, &err) == IOCP_E_INVALID_ARG && b == NULL);
    char want[32];
    snprintf(want, sizeof want, "port %u", (unsigned)port);
    CHECK_MSG(strstr(err.message, want) != NULL, "the error names the listener's port: %s",
              err.message);

    iocp_listener_export other = x;
    other.target_pid = x.target_pid + 4;
    cb.port = 0;
    cb.inherit_listener = &other;
    CHECK(iocp_engine_start(&cb, NULL, NULL, &b, &err) == IOCP_E_INVALID_ARG);
    CHECK_MSG(strstr(err.message, "exported for process") != NULL, "%s", err.message);

    CHECK_OK(iocp_engine_stop_accepting(a));
    CHECK_OK(iocp_engine_stop_accepting(a)); /* twice is harmless */
    CHECK(iocp_engine_export_listener(a, GetCurrentProcessId(), &x, &err) == IOCP_E_STATE);
    CHECK_MSG(strstr(err.message, "handed over") != NULL, "%s", err.message);
    /* No successor took the socket: once the cancelled accepts are back and our handle is
     * closed, the port refuses (a connect before that waits in the backlog). */
    DWORD until = GetTickCount() + 10000;
    SOCKET probe;
    while ((probe = tn_connect("127.0.0.1", port, 2000)) != INVALID_SOCKET) {
        closesocket(probe);
        CHECK_MSG((LONG)(GetTickCount() - until) < 0,
                  "port %u still accepts 10 s after stop_accepting with no successor", port);
        Sleep(20);
    }
    tn_stop_clean(a);

    iocp_config cc;
    iocp_config_init(&cc);
    cc.listen = 0;
    iocp_engine *client = NULL;
    CHECK_OK(iocp_engine_start(&cc, NULL, NULL, &client, &err));
    CHECK(iocp_engine_stop_accepting(client) == IOCP_E_INVALID_ARG);
    CHECK(iocp_engine_export_listener(client, GetCurrentProcessId(), &x, &err) ==
          IOCP_E_INVALID_ARG);
    iocp_engine_destroy(client);
}

/* ---- UDP: a sender at a steady rate through the switch (service_probes.c) ---------- */

static uint64_t udp_in(iocp_engine *e)
{
    iocp_stats st;
    iocp_engine_stats(e, &st);
    return st.udp_datagrams_in;
}

static int wait_udp_in(iocp_engine *e, uint64_t count, uint32_t timeout_ms)
{
    return tn_wait_stat_at_least(e, ST(udp_datagrams_in), count, timeout_ms);
}

/* Engine A echoes UDP; B starts on A's socket (the duplicate for this process), both
 * receive, A stops receiving, then stops; a sender at a steady rate through all of it gets
 * every datagram echoed once, exactly: before, while both receive, after A stopped
 * receiving and after A is gone. */
static void udp_handover_in_process(void)
{
    iocp_config ca;
    iocp_config_init(&ca);
    ca.bind_address = "127.0.0.1";
    ca.udp = 1;
    iocp_engine *a = tn_start(&ca, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(a);
    CHECK(port != 0);
    udp_load load;
    udp_load_start(&load, port);
    CHECK_MSG(udp_wait_echoed(&load, 300, 30000), "only %ld echoes before the switch",
              (long)load.echoed);
    LONG before = load.echoed;

    iocp_udp_export x;
    iocp_error_info err;
    CHECK_MSG(iocp_engine_export_udp(a, GetCurrentProcessId(), &x, &err) == IOCP_OK, "%s",
              err.message);
    CHECK_EQ_U(x.port, port);
    iocp_config cb;
    iocp_config_init(&cb);
    cb.listen = 0;
    cb.udp = 1;
    cb.inherit_udp = &x;
    iocp_engine *b = NULL;
    CHECK_MSG(iocp_engine_start(&cb, NULL, NULL, &b, &err) == IOCP_OK, "%s", err.message);
    CHECK_EQ_U(iocp_engine_udp_port(b), port);
    CHECK(wait_udp_in(b, 50, 30000)); /* both receive on one socket now */
    LONG both = load.echoed;

    CHECK_OK(iocp_engine_stop_udp_receiving(a));
    CHECK_OK(iocp_engine_stop_udp_receiving(a)); /* twice is harmless */
    CHECK(iocp_engine_export_udp(a, GetCurrentProcessId(), &x, &err) == IOCP_E_STATE);
    CHECK_MSG(strstr(err.message, "handed over") != NULL, "%s", err.message);
    uint64_t b_at_stop = udp_in(b);
    CHECK(wait_udp_in(b, b_at_stop + 300, 30000)); /* B alone takes them */
    uint64_t a_after = udp_in(a);
    CHECK(wait_udp_in(b, udp_in(b) + 100, 30000));
    CHECK_EQ_U(udp_in(a), a_after); /* A's receives are done: nothing more arrives there */
    LONG after_stop = load.echoed;

    tn_stop_clean(a); /* A's handle closes; B's duplicate keeps the socket */
    LONG a_gone = load.echoed;
    CHECK(wait_udp_in(b, udp_in(b) + 300, 30000));
    LONG lost = udp_load_stop(&load);
    printf("udp handover in process: %ld sent, %ld echoed (%ld before the export, %ld while "
           "both received, %ld after A stopped receiving, %ld while A stopped, %ld after A was "
           "gone), %ld lost, %ld duplicates, %ld wrong; A received %llu, B %llu\n",
           (long)load.sent, (long)load.echoed, (long)before, (long)(both - before),
           (long)(after_stop - both), (long)(a_gone - after_stop), (long)(load.echoed - a_gone),
           (long)lost, (long)load.duplicates, (long)load.wrong, (unsigned long long)a_after,
           (unsigned long long)udp_in(b));
    CHECK_EQ_U(load.duplicates, 0);
    CHECK_EQ_U(load.wrong, 0);
    CHECK_MSG(lost == 0, "%ld of %ld datagrams were not echoed", (long)lost, (long)load.sent);
    CHECK_EQ_U(a_after + udp_in(b), (uint64_t)load.sent);
    tn_stop_clean(b);
}

/* What goes wrong names itself: a changed udp port, a blob for another process, an engine
 * without UDP. */
static void udp_handover_refusals(void)
{
    iocp_config ca;
    iocp_config_init(&ca);
    ca.bind_address = "127.0.0.1";
    ca.udp = 1;
    iocp_engine *a = tn_start(&ca, NULL, NULL);
    uint16_t port = iocp_engine_udp_port(a);
    iocp_udp_export x;
    iocp_error_info err;
    CHECK_OK(iocp_engine_export_udp(a, GetCurrentProcessId(), &x, &err));
    iocp_config cb;
    iocp_config_init(&cb);
    cb.listen = 0;
    cb.udp = 1;
    cb.udp_port = (uint16_t)(port == 65535 ? 65534 : port + 1);
    cb.inherit_udp = &x;
    iocp_engine *b = NULL;
    CHECK(iocp_engine_start(&cb, NULL, NULL, &b, &err) == IOCP_E_INVALID_ARG && b == NULL);
    char want[40];
    snprintf(want, sizeof want, "is on port %u", (unsigned)port);
    CHECK_MSG(strstr(err.message, want) != NULL, "the error names the socket's port: %s",
              err.message);
    iocp_udp_export other = x;
    other.target_pid = x.target_pid + 4;
    cb.udp_port = 0;
    cb.inherit_udp = &other;
    CHECK(iocp_engine_start(&cb, NULL, NULL, &b, &err) == IOCP_E_INVALID_ARG);
    CHECK_MSG(strstr(err.message, "exported for process") != NULL, "%s", err.message);
    tn_stop_clean(a);

    iocp_config cc;
    iocp_config_init(&cc);
    cc.bind_address = "127.0.0.1";
    iocp_engine *tcp_only = tn_start(&cc, NULL, NULL);
    CHECK(iocp_engine_export_udp(tcp_only, GetCurrentProcessId(), &x, &err) == IOCP_E_INVALID_ARG);
    CHECK(iocp_engine_stop_udp_receiving(tcp_only) == IOCP_E_INVALID_ARG);
    tn_stop_clean(tcp_only);
}

/* ---- across processes: this executable run as the successor ---------------------------- */

#define CHILD_FLAG "--successor"

static int read_all(HANDLE h, void *buf, DWORD len)
{
    DWORD got = 0, n = 0;
    while (got < len && ReadFile(h, (char *)buf + got, len - got, &n, NULL) && n > 0)
        got += n;
    return got == len;
}

/* The successor: reads the export from stdin, serves on it, says "serving <port>", and at
 * stdin's end (the parent is done) stops cleanly and says how many it accepted. */
static int successor_main(void)
{
    HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
    iocp_listener_export x;
    if (!read_all(in, &x, sizeof x)) {
        printf("no export on stdin\n");
        return 2;
    }
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.inherit_listener = &x;
    iocp_engine *e = NULL;
    iocp_error_info err;
    if (iocp_engine_start(&cfg, NULL, NULL, &e, &err) != IOCP_OK) {
        printf("cannot start: %s\n", err.message);
        return 3;
    }
    printf("serving %u\n", (unsigned)iocp_engine_port(e));
    fflush(stdout);
    char c;
    while (read_all(in, &c, 1)) {
    }
    iocp_stats st;
    iocp_engine_stats(e, &st);
    printf("accepted %llu\n", (unsigned long long)st.accepted);
    tn_stop_clean(e); /* every context and operation back, or exit 1 */
    printf("clean\n");
    fflush(stdout);
    return 0;
}

/* The same handover with the successor in another process: the export is made for its pid
 * and passed through its stdin. */
static void handover_across_processes(void)
{
    SOCKET held[LONG_LIVED];
    churn load;
    uint16_t port;
    iocp_engine *a = start_a_under_load(held, &load, &port);
    CHECK(wait_accepted(a, LONG_LIVED + 20, 20000));

    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE child_in = NULL, to_child = NULL;
    CHECK(CreatePipe(&child_in, &to_child, &sa, 0));
    SetHandleInformation(to_child, HANDLE_FLAG_INHERIT, 0);
    char self[MAX_PATH];
    CHECK(GetModuleFileNameA(NULL, self, sizeof self) > 0);
    tp_child child;
    tp_start(&child, self, CHILD_FLAG, child_in, 1, 0);
    CloseHandle(child_in);

    iocp_listener_export x;
    iocp_error_info err;
    CHECK_MSG(iocp_engine_export_listener(a, child.pid, &x, &err) == IOCP_OK, "%s", err.message);
    DWORD wrote = 0;
    CHECK(WriteFile(to_child, &x, sizeof x, &wrote, NULL) && wrote == sizeof x);
    char want[32];
    snprintf(want, sizeof want, "serving %u", (unsigned)port);
    CHECK_MSG(tp_wait_line(&child, want, 30000), "the successor did not serve port %u: %s", port,
              child.out ? child.out : "");
    DWORD t0 = GetTickCount();
    CHECK_OK(iocp_engine_stop_accepting(a));
    /* The successor alone takes the new ones: A's count stops, the client goes on. */
    LONG connects_at_stop = load.connects;
    uint64_t a_after = accepted(a);
    DWORD until = GetTickCount() + 30000;
    while (load.connects < connects_at_stop + 100) {
        CHECK_MSG((LONG)(GetTickCount() - until) < 0, "the client stalled after the handover");
        Sleep(10);
    }
    uint64_t a_end = accepted(a);
    churn_stop(&load);
    CHECK_EQ_U(load.refused, 0);
    CHECK_EQ_U(load.wrong_echo, 0);
    CHECK_EQ_U(load.resets, 0);
    a_drains(a, held);
    DWORD drained_ms = GetTickCount() - t0;
    tn_stop_clean(a);

    /* The successor serves on alone. */
    serves_on(port);
    CloseHandle(to_child);
    CHECK(tp_wait(&child, 60000));
    CHECK_MSG(child.exit_code == 0 && tp_find_line(child.out, "clean") != NULL,
              "the successor exited %lu: %s", child.exit_code, child.out);
    printf("the successor said:\n%s", child.out);
    const char *acc = tp_find_line(child.out, "accepted ");
    unsigned long long b_accepted = acc ? strtoull(acc + 9, NULL, 10) : 0;
    printf("handover across processes: %ld connects, %ld refused, %ld wrong echoes, %ld resets; "
           "A accepted %llu (%llu after its stop_accepting returned), the successor %llu; "
           "stop_accepting to A drained: %lu ms\n",
           load.connects, load.refused, load.wrong_echo, load.resets, (unsigned long long)a_end,
           (unsigned long long)(a_end - a_after), b_accepted, (unsigned long)drained_ms);
    CHECK(b_accepted >= 100);
    tp_free(&child);
}

/* ---- iocp-service run --take-over ------------------------------------------------------ */

/* Waits until text appears anywhere in the child's output (a log line has a prefix). */
static int wait_text(tp_child *c, const char *text, uint32_t timeout_ms)
{
    DWORD until = GetTickCount() + timeout_ms;
    for (;;) {
        tp_drain(c);
        if (c->out != NULL && strstr(c->out, text) != NULL)
            return 1;
        if ((LONG)(GetTickCount() - until) >= 0)
            return 0;
        Sleep(20);
    }
}

static uint16_t listening_port(tp_child *c)
{
    const char *p = tp_find_line(c->out, "listening on ");
    CHECK_MSG(p != NULL, "no 'listening on' line in:\n%s", c->out);
    const char *colon = strrchr(p, ':');
    CHECK(colon != NULL);
    return (uint16_t)strtoul(colon + 1, NULL, 10);
}

static void run_service(tp_child *c, const char *args)
{
    tp_start(c, IOCP_SERVICE_EXE, args, NULL, 1, CREATE_NEW_PROCESS_GROUP);
}

/* The instance to be taken over: `run` with args until it listens; its port. */
static uint16_t run_listening(tp_child *old, const char *args)
{
    run_service(old, args);
    CHECK_MSG(tp_wait_line(old, "listening on", 30000), "%s", old->out);
    return listening_port(old);
}

/* The old instance, once it has handed over, drains and exits 0. */
static void old_exits(tp_child *old)
{
    CHECK(tp_wait(old, 60000));
    CHECK_MSG(old->exit_code == 0, "the old instance exited %lu: %s", old->exit_code, old->out);
}

/* The successor listens, on the old instance's port. */
static void successor_listens(tp_child *next, uint16_t port)
{
    CHECK_MSG(tp_wait_line(next, "listening on", 60000), "%s", next->out);
    CHECK_EQ_U(listening_port(next), port);
}

/* The successor answers on the pipe as the instance now: `drain` succeeds and it exits 0. */
static void drain_successor(const char *name, tp_child *next)
{
    char args[120];
    tp_child drain;
    snprintf(args, sizeof args, "drain --name %s", name);
    run_service(&drain, args);
    CHECK(tp_wait(&drain, 30000));
    CHECK_MSG(drain.exit_code == 0, "drain exited %lu: %s", drain.exit_code, drain.out);
    CHECK(tp_wait(next, 30000));
    CHECK_MSG(next->exit_code == 0, "the successor exited %lu: %s", next->exit_code, next->out);
    tp_free(&drain);
}

/* A console instance is taken over by another: a client connecting every few ms and 20
 * long-lived connections through it see 0 refused, 0 resets, every echo exact; the old one's
 * connections echo after the handover and get a FIN at its drain's end (--drain-timeout 3),
 * then it exits 0; a successor with another port, or for a name nobody runs, is refused with
 * the reason and the old one serves on. */
static void takeover_console(void)
{
    char name[40], args[300];
    snprintf(name, sizeof name, "takeover-%lu", (unsigned long)GetCurrentProcessId());
    snprintf(args, sizeof args, "run --name %s --bind 127.0.0.1 --port 0 --drain-timeout 3", name);
    tp_child old;
    uint16_t port = run_listening(&old, args);
    SOCKET held[LONG_LIVED];
    open_held(held, port, 15000);
    churn load;
    churn_start(&load, port);

    /* Refused: nobody runs that name; another port (named, and the old one serves on). */
    tp_child bad;
    snprintf(args, sizeof args, "run --name nobody-%s --bind 127.0.0.1 --port %u --take-over", name,
             (unsigned)port);
    run_service(&bad, args);
    CHECK(tp_wait(&bad, 60000));
    CHECK_MSG(bad.exit_code != 0 && strstr(bad.out, "cannot take over instance") != NULL,
              "exit %lu: %s", bad.exit_code, bad.out);
    tp_free(&bad);
    snprintf(args, sizeof args, "run --name %s --bind 127.0.0.1 --port %u --take-over", name,
             (unsigned)(port == 65535 ? 65534 : port + 1));
    run_service(&bad, args);
    CHECK(tp_wait(&bad, 60000));
    char want[40];
    snprintf(want, sizeof want, "is on port %u", (unsigned)port);
    CHECK_MSG(bad.exit_code != 0 && strstr(bad.out, want) != NULL, "exit %lu: %s", bad.exit_code,
              bad.out);
    tp_free(&bad);

    /* A local client of the pipe cannot have the listener planted in another process, nor
     * make the instance hand over to nobody. */
    char answer[SVC_PROTO_ANSWER_MAX], req[SVC_PROTO_REQUEST_MAX];
    size_t alen = 0;
    snprintf(req, sizeof req, "EXPORT %lu", (unsigned long)old.pid);
    CHECK(svc_pipe_request(name, req, strlen(req), answer, sizeof answer, &alen, 10000, NULL) ==
          NO_ERROR);
    CHECK_MSG(strstr(answer, "ERR the listener goes only to the process that asks") == answer, "%s",
              answer);
    CHECK(svc_pipe_request(name, "HANDOVER", 8, answer, sizeof answer, &alen, 10000, NULL) ==
          NO_ERROR);
    CHECK_MSG(strstr(answer, "ERR HANDOVER only from the process") == answer, "%s", answer);
    snprintf(req, sizeof req, "EXPORT 12x");
    CHECK(svc_pipe_request(name, req, strlen(req), answer, sizeof answer, &alen, 10000, NULL) ==
          NO_ERROR);
    CHECK_MSG(strstr(answer, "ERR EXPORT needs a process id") == answer, "%s", answer);

    LONG before = load.connects;
    DWORD t0 = GetTickCount();
    tp_child next;
    snprintf(args, sizeof args,
             "run --name %s --bind 127.0.0.1 --port %u --drain-timeout 3 --take-over", name,
             (unsigned)port);
    run_service(&next, args);
    CHECK_MSG(wait_text(&old, "handed over to process", 60000), "old: %s\nnew: %s", old.out,
              next.out);
    DWORD handed_ms = GetTickCount() - t0;
    for (int i = 0; i < LONG_LIVED; i++)
        echo_line(held[i], "after", i); /* the old one still serves its own */
    expect_fins(held);
    old_exits(&old);
    DWORD old_gone_ms = GetTickCount() - t0;
    successor_listens(&next, port);
    LONG at = load.connects;
    DWORD until = GetTickCount() + 30000;
    while (load.connects < at + 50) {
        CHECK_MSG((LONG)(GetTickCount() - until) < 0, "the client stalled after the take-over");
        Sleep(10);
    }
    churn_stop(&load);
    printf("take-over: %ld connects (%ld during it), %ld refused, %ld wrong echoes, %ld resets; "
           "handed over %lu ms after the successor started, old instance gone after %lu ms\n",
           load.connects, at - before, load.refused, load.wrong_echo, load.resets,
           (unsigned long)handed_ms, (unsigned long)old_gone_ms);
    CHECK_EQ_U(load.refused, 0);
    CHECK_EQ_U(load.wrong_echo, 0);
    CHECK_EQ_U(load.resets, 0);

    /* The successor answers on the pipe as the instance now, and drains on request. */
    drain_successor(name, &next);
    tp_free(&next);
    tp_free(&old);
}

/* A load balancer's health check: GET /readyz every few milliseconds; counts what was not
 * 200 (refused, no answer, 503). */
typedef struct health_check {
    uint16_t port;
    volatile LONG stop, checks, refused, not_ready;
    HANDLE thread;
} health_check;

static DWORD WINAPI health_main(LPVOID arg)
{
    health_check *h = arg;
    while (!h->stop) {
        int status = http_status(h->port, "/readyz");
        InterlockedIncrement(&h->checks);
        if (status < 0)
            InterlockedIncrement(&h->refused);
        else if (status != 200)
            InterlockedIncrement(&h->not_ready);
        Sleep(5);
    }
    return 0;
}

/* A console instance with TCP, UDP and the admin endpoint is taken over: through it a
 * client connecting every few ms, 20 long-lived connections, a UDP sender at a steady rate
 * and a health check of /readyz every few ms: 0 connects refused, 0 resets, every echo
 * exact, every datagram echoed (the loss is counted and must be 0 on loopback), every
 * health check answered 200; the successor's /readyz answers on the same admin port after
 * the old one exited, and once the successor has drained too nothing listens there. */
static void takeover_udp_admin_console(void)
{
    char name[48], args[400];
    snprintf(name, sizeof name, "takeover-udp-%lu", (unsigned long)GetCurrentProcessId());
    uint16_t admin = free_port();
    snprintf(args, sizeof args,
             "run --name %s --bind 127.0.0.1 --port 0 --udp --admin-port %u --drain-timeout 3",
             name, (unsigned)admin);
    tp_child old;
    uint16_t port = run_listening(&old, args);
    CHECK_MSG(wait_text(&old, "admin endpoint", 30000), "%s", old.out);
    CHECK_EQ_U(http_status(admin, "/readyz"), 200);
    SOCKET held[LONG_LIVED];
    open_held(held, port, 15000);
    churn load;
    churn_start(&load, port);
    udp_load datagrams;
    udp_load_start(&datagrams, port); /* --udp: on the TCP port's number */
    CHECK_MSG(udp_wait_echoed(&datagrams, 200, 30000), "only %ld udp echoes before",
              (long)datagrams.echoed);
    health_check hc;
    memset(&hc, 0, sizeof hc);
    hc.port = admin;
    hc.thread = CreateThread(NULL, 0, health_main, &hc, 0, NULL);
    CHECK(hc.thread != NULL);

    /* Another admin port: refused naming both before the successor serves anything; the old
     * one serves on and the load notices nothing (checked with the rest below). */
    tp_child bad;
    uint16_t other = (uint16_t)(admin == 65535 ? 65534 : admin + 1);
    snprintf(args, sizeof args,
             "run --name %s --bind 127.0.0.1 --port %u --udp --admin-port %u --take-over", name,
             (unsigned)port, (unsigned)other);
    run_service(&bad, args);
    CHECK(tp_wait(&bad, 60000));
    char want[80];
    snprintf(want, sizeof want, "admin listener is on port %u, not on --admin-port %u",
             (unsigned)admin, (unsigned)other);
    CHECK_MSG(bad.exit_code != 0 && strstr(bad.out, want) != NULL, "exit %lu: %s", bad.exit_code,
              bad.out);
    tp_free(&bad);

    LONG before = load.connects, udp_before = datagrams.echoed, checks_before = hc.checks;
    DWORD t0 = GetTickCount();
    tp_child next;
    snprintf(args, sizeof args,
             "run --name %s --bind 127.0.0.1 --port %u --udp --admin-port %u --drain-timeout 3 "
             "--take-over",
             name, (unsigned)port, (unsigned)admin);
    run_service(&next, args);
    CHECK_MSG(wait_text(&old, "handed over to process", 60000), "old: %s\nnew: %s", old.out,
              next.out);
    CHECK_MSG(strstr(old.out, "listener, udp, admin listener") != NULL, "old: %s", old.out);
    DWORD handed_ms = GetTickCount() - t0;
    for (int i = 0; i < LONG_LIVED; i++)
        echo_line(held[i], "after", i); /* the old one still serves its own */
    expect_fins(held);
    old_exits(&old);
    DWORD old_gone_ms = GetTickCount() - t0;
    successor_listens(&next, port);
    CHECK_MSG(strstr(next.out, "(taken over)") != NULL, "%s", next.out);
    /* The old process is gone: only the successor answers on these ports now. */
    LONG at = load.connects, udp_at = datagrams.echoed, checks_at = hc.checks;
    DWORD until = GetTickCount() + 30000;
    while (load.connects < at + 50 || datagrams.echoed < udp_at + 200 ||
           hc.checks < checks_at + 20) {
        CHECK_MSG((LONG)(GetTickCount() - until) < 0,
                  "stalled after the take-over: %ld connects, %ld udp echoes, %ld checks",
                  (long)(load.connects - at), (long)(datagrams.echoed - udp_at),
                  (long)(hc.checks - checks_at));
        Sleep(10);
    }
    CHECK_EQ_U(http_status(admin, "/readyz"), 200);
    InterlockedExchange(&hc.stop, 1);
    CHECK(WaitForSingleObject(hc.thread, 30000) == WAIT_OBJECT_0);
    CloseHandle(hc.thread);
    churn_stop(&load);
    LONG lost = udp_load_stop(&datagrams);
    printf("take-over with udp and admin: %ld connects (%ld during it), %ld refused, %ld wrong "
           "echoes, %ld resets; udp %ld sent, %ld echoed (%ld during it), %ld lost, %ld "
           "duplicates; /readyz %ld checks (%ld during it), %ld refused, %ld not 200; handed "
           "over %lu ms after the successor started, old instance gone after %lu ms\n",
           load.connects, at - before, load.refused, load.wrong_echo, load.resets,
           (long)datagrams.sent, (long)datagrams.echoed, (long)(udp_at - udp_before), (long)lost,
           (long)datagrams.duplicates, (long)hc.checks, (long)(checks_at - checks_before),
           (long)hc.refused, (long)hc.not_ready, (unsigned long)handed_ms,
           (unsigned long)old_gone_ms);
    CHECK_EQ_U(load.refused, 0);
    CHECK_EQ_U(load.wrong_echo, 0);
    CHECK_EQ_U(load.resets, 0);
    CHECK_EQ_U(datagrams.duplicates, 0);
    CHECK_EQ_U(datagrams.wrong, 0);
    CHECK_MSG(lost == 0, "%ld of %ld datagrams were not echoed", (long)lost, (long)datagrams.sent);
    CHECK_EQ_U(hc.refused, 0);
    CHECK_EQ_U(hc.not_ready, 0);

    drain_successor(name, &next);
    /* Both are gone: no duplicate of the admin listener was left open anywhere. */
    CHECK_MSG(http_status(admin, "/readyz") == -1, "admin port %u still answers", admin);
    tp_free(&next);
    tp_free(&old);
}

/* --udp-only taken over: a UDP sender at a steady rate through it loses nothing; a successor
 * on another UDP port is refused naming both and the old one serves on. */
static void takeover_udp_only_console(void)
{
    char name[48], args[400];
    snprintf(name, sizeof name, "takeover-udponly-%lu", (unsigned long)GetCurrentProcessId());
    snprintf(args, sizeof args,
             "run --name %s --bind 127.0.0.1 --port 0 --udp-only --drain-timeout 3", name);
    tp_child old;
    uint16_t port = run_listening(&old, args);
    udp_load datagrams;
    udp_load_start(&datagrams, port);
    CHECK_MSG(udp_wait_echoed(&datagrams, 200, 30000), "only %ld udp echoes before",
              (long)datagrams.echoed);

    tp_child bad;
    snprintf(args, sizeof args, "run --name %s --bind 127.0.0.1 --port %u --udp-only --take-over",
             name, (unsigned)(port == 65535 ? 65534 : port + 1));
    run_service(&bad, args);
    CHECK(tp_wait(&bad, 60000));
    char want[40];
    snprintf(want, sizeof want, "is on port %u", (unsigned)port);
    CHECK_MSG(bad.exit_code != 0 && strstr(bad.out, want) != NULL, "exit %lu: %s", bad.exit_code,
              bad.out);
    tp_free(&bad);

    LONG udp_before = datagrams.echoed;
    tp_child next;
    snprintf(args, sizeof args,
             "run --name %s --bind 127.0.0.1 --port %u --udp-only --drain-timeout 3 --take-over",
             name, (unsigned)port);
    run_service(&next, args);
    CHECK_MSG(wait_text(&old, "handed over to process", 60000), "old: %s\nnew: %s", old.out,
              next.out);
    old_exits(&old);
    successor_listens(&next, port);
    LONG udp_at = datagrams.echoed;
    CHECK_MSG(udp_wait_echoed(&datagrams, udp_at + 200, 30000), "stalled after the take-over");
    LONG lost = udp_load_stop(&datagrams);
    printf("take-over with --udp-only: udp %ld sent, %ld echoed (%ld during it), %ld lost, %ld "
           "duplicates\n",
           (long)datagrams.sent, (long)datagrams.echoed, (long)(udp_at - udp_before), (long)lost,
           (long)datagrams.duplicates);
    CHECK_EQ_U(datagrams.duplicates, 0);
    CHECK_EQ_U(datagrams.wrong, 0);
    CHECK_MSG(lost == 0, "%ld of %ld datagrams were not echoed", (long)lost, (long)datagrams.sent);

    tp_child drain;
    snprintf(args, sizeof args, "drain --name %s", name);
    run_service(&drain, args);
    CHECK(tp_wait(&drain, 30000));
    CHECK(tp_wait(&next, 30000));
    CHECK_MSG(next.exit_code == 0, "the successor exited %lu: %s", next.exit_code, next.out);
    tp_free(&drain);
    tp_free(&next);
    tp_free(&old);
}

static const test_case cases[] = {
    {"handover_in_process", handover_in_process},
    {"handover_refusals", handover_refusals},
    {"handover_across_processes", handover_across_processes},
    {"takeover_console", takeover_console},
    {"udp_handover_in_process", udp_handover_in_process},
    {"udp_handover_refusals", udp_handover_refusals},
    {"takeover_udp_admin_console", takeover_udp_admin_console},
    {"takeover_udp_only_console", takeover_udp_only_console},
};

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], CHILD_FLAG) == 0)
        return successor_main();
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
