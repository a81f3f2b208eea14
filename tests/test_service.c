/*
 * test_service.c: iocp-service end to end: install / start / status / stop / uninstall
 * through the real executable and the real Service Control Manager, the console `run`, the
 * instance mutex between console and service, a start that fails, a stop under load, and the
 * status pipe under abuse.
 *
 * Every case uses its own names (with this process's id), so cases run in parallel, and
 * removes its service at exit even when a CHECK fails (atexit). Under Wine, CTest runs these
 * cases in a prefix of their own with a persistent wineserver (service/wine-services.sh):
 * see service/README.md.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include <ws2tcpip.h>

#include "net_util.h"
#include "churn.h"
#include "iocp/version.h"
#include "proc_util.h"
#include "service_util.h"
#include "svc.h"
#include <sddl.h> /* after svc.h: it needs windows.h first */

/* ---- running iocp-service (tests/proc_util.h) ---------------------------------------------- */

typedef struct child {
    tp_child p;
    const char *text; /* what it printed, stdout and stderr together; updated by each call */
    DWORD pid;
    HANDLE process;
} child;

#define MAX_CHILDREN 16
static void cleanup(void);
static child *children[MAX_CHILDREN]; /* killed at exit if still running */
static char cleanup_names[4][64];     /* services uninstalled at exit */

static void child_sync(child *c)
{
    c->text = c->p.out;
    c->pid = c->p.pid;
    c->process = c->p.process;
}

/* Starts iocp-service with args; its standard input is in (NULL: empty). c is static (zeroed
 * at first use): the output of its previous run is freed here. */
static void child_start_in(child *c, const char *args, HANDLE in)
{
    tp_free(&c->p);
    tp_start(&c->p, service_exe(), args, in, 1, CREATE_NEW_PROCESS_GROUP);
    child_sync(c);
    static int registered;
    if (!registered) {
        registered = 1;
        atexit(cleanup);
    }
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] == NULL) {
            children[i] = c;
            break;
        }
    }
}

static void child_start(child *c, const char *args)
{
    child_start_in(c, args, NULL);
}

static void child_forget(child *c)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == c)
            children[i] = NULL;
}

/* Waits until a line starting with prefix appears (e.g. "listening on", which `run` prints on
 * stdout once the listener and the status pipe are ready). */
static int child_wait_line(child *c, const char *prefix, uint32_t timeout_ms)
{
    int found = tp_wait_line(&c->p, prefix, timeout_ms);
    child_sync(c);
    return found;
}

/* Waits for the exit (bounded), collects the output, returns the exit code. */
static DWORD child_finish(child *c, uint32_t timeout_ms)
{
    int ended = tp_wait(&c->p, timeout_ms);
    child_forget(c);
    child_sync(c);
    CHECK_MSG(ended, "iocp-service did not finish in %lu ms; it printed:\n%s",
              (unsigned long)timeout_ms, c->text);
    return (DWORD)c->p.exit_code;
}

static void child_kill(child *c)
{
    tp_kill(&c->p);
    child_forget(c);
    child_sync(c);
}

/* Runs one command to its end. The output stays in *c for the checks. */
static DWORD run(child *c, const char *fmt, ...)
{
    char args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    child_start(c, args);
    DWORD code = child_finish(c, 90000);
    if (tp_never_started(&c->p)) {
        printf("$ iocp-service %s  -> 0x%08lX before any output: Wine did not start it; once "
               "more\n",
               args, (unsigned long)code);
        child_start(c, args);
        code = child_finish(c, 90000);
    }
    printf("$ iocp-service %s  -> %lu\n%s", args, (unsigned long)code, c->text);
    return code;
}

#define CHECK_OUT(c, want)                                                                         \
    CHECK_MSG(strstr((c)->text, want) != NULL, "no '%s' in:\n%s", want, (c)->text)
#define CHECK_RUN(c, want, ...)                                                                    \
    do {                                                                                           \
        DWORD code_ = run(c, __VA_ARGS__);                                                         \
        CHECK_MSG(code_ == (DWORD)(want), "exit code %lu, wanted %d", (unsigned long)code_,        \
                  (int)(want));                                                                    \
    } while (0)

/* ---- names, files, cleanup -------------------------------------------------------------- */

/* Uninstalls a service left behind by a failed case (quietly, bounded). */
static void uninstall_quietly(const char *name)
{
    static child c;
    char args[200];
    snprintf(args, sizeof args, "uninstall --timeout 20 --name %s", name);
    child_start(&c, args);
    tp_wait(&c.p, 60000);
    child_forget(&c);
}

static void cleanup(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] != NULL) {
            tp_kill(&children[i]->p);
            children[i] = NULL;
        }
    }
    for (int i = 0; i < 4; i++) {
        if (cleanup_names[i][0] != '\0') {
            uninstall_quietly(cleanup_names[i]);
            cleanup_names[i][0] = '\0';
        }
    }
}

/* A service name for this case, removed at exit whatever happens. */
static void service_name(char *out, size_t size, const char *tag)
{
    snprintf(out, size, "iocpt-%s-%lu", tag, (unsigned long)GetCurrentProcessId());
    for (int i = 0; i < 4; i++) {
        if (cleanup_names[i][0] == '\0') {
            snprintf(cleanup_names[i], sizeof cleanup_names[i], "%s", out);
            break;
        }
    }
}

/* The port of "listening on [::]:50123" in the output. */
static uint16_t port_of(const child *c)
{
    const char *p = tp_find_line(c->text, "listening on ");
    CHECK_MSG(p != NULL, "no line 'listening on' in:\n%s", c->text);
    const char *end = strchr(p, '\n');
    if (end == NULL)
        end = p + strlen(p);
    const char *colon = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q;
    CHECK(colon != NULL);
    long port = strtol(colon + 1, NULL, 10);
    CHECK_MSG(port > 0 && port < 65536, "port %ld", port);
    return (uint16_t)port;
}

/* A number printed after `label` (e.g. "connections: " then "3 open"). */
static unsigned long long number_after(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    CHECK_MSG(p != NULL, "no '%s' in:\n%s", label, text);
    return strtoull(p + strlen(label), NULL, 10);
}

/* ---- a plain Winsock echo client (net_util.h) --------------------------------------------- */

static SOCKET connect_local(uint16_t port)
{
    SOCKET s = tn_connect("127.0.0.1", port, 20000);
    CHECK(s != INVALID_SOCKET);
    return s;
}

static void send_all(SOCKET s, const char *data, size_t len)
{
    CHECK(tn_send_all(s, data, len) == 0);
}

static void echo_once(SOCKET s, const char *msg)
{
    char back[256];
    size_t len = strlen(msg);
    send_all(s, msg, len);
    CHECK_EQ_U(tn_recv_exact(s, back, len), len);
    CHECK(memcmp(back, msg, len) == 0);
}

/* ---- TLS: the engine as an in-process TLS client ------------------------------------------ */

#ifndef IOCP_TLS_DIR
#error "IOCP_TLS_DIR must name tests/tls (set by tests/CMakeLists.txt)"
#endif

typedef struct tls_client {
    const char *msg;
    char echo[256];
    volatile LONG got, opened, failed;
    unsigned long fail_sys;
    char tls[80];
    HANDLE done;
} tls_client;

static void tc_open(iocp_conn *conn)
{
    tls_client *tc = iocp_engine_user(iocp_conn_engine(conn));
    const char *tls = iocp_conn_tls(conn);
    snprintf(tc->tls, sizeof tc->tls, "%s", tls ? tls : "(none)");
    InterlockedExchange(&tc->opened, 1);
    CHECK_OK(iocp_conn_send(conn, tc->msg, strlen(tc->msg)));
}

static void tc_data(iocp_conn *conn, const void *data, size_t len)
{
    tls_client *tc = iocp_engine_user(iocp_conn_engine(conn));
    size_t at = (size_t)tc->got;
    if (at + len < sizeof tc->echo)
        memcpy(tc->echo + at, data, len);
    InterlockedExchangeAdd(&tc->got, (LONG)len);
    if ((size_t)tc->got >= strlen(tc->msg))
        iocp_conn_close(conn, IOCP_GRACEFUL); /* close_notify, then FIN */
}

static void tc_close(iocp_conn *conn, iocp_close_reason reason, unsigned long sys)
{
    (void)reason;
    (void)sys;
    tls_client *tc = iocp_engine_user(iocp_conn_engine(conn));
    SetEvent(tc->done);
}

static void tc_failed(iocp_engine *e, void *user, iocp_err err, unsigned long sys)
{
    (void)user;
    (void)err;
    tls_client *tc = iocp_engine_user(e);
    tc->fail_sys = sys;
    InterlockedExchange(&tc->failed, 1);
    SetEvent(tc->done);
}

/* Dials 127.0.0.1:port with TLS (trusting tests/tls/ca.pem, expecting "localhost"), sends one
 * line and checks that it comes back through TLS. */
static void tls_echo_once(uint16_t port, const char *msg)
{
    static const iocp_handlers handlers = {tc_open, tc_data, tc_close, tc_failed};
    char ca[MAX_PATH * 2];
    snprintf(ca, sizeof ca, "%s/ca.pem", IOCP_TLS_DIR);
    tls_client tc;
    memset(&tc, 0, sizeof tc);
    tc.msg = msg;
    tc.done = CreateEventW(NULL, TRUE, FALSE, NULL);
    CHECK(tc.done != NULL);
    iocp_config cfg;
    iocp_config_init(&cfg);
    cfg.listen = 0;
    cfg.tls.client = 1;
    cfg.tls.ca_file = ca;
    cfg.tls.server_name = "localhost";
    iocp_engine *e = NULL;
    iocp_error_info err;
    CHECK_MSG(iocp_engine_start(&cfg, &handlers, &tc, &e, &err) == IOCP_OK, "%s", err.message);
    CHECK_OK(iocp_engine_connect(e, "127.0.0.1", port, 10000, NULL));
    CHECK_MSG(WaitForSingleObject(tc.done, 30000) == WAIT_OBJECT_0, "no end after 30 s");
    tn_stop_clean(e);
    CloseHandle(tc.done);
    CHECK_MSG(tc.opened && !tc.failed, "the TLS connection failed (%lu)", tc.fail_sys);
    CHECK_EQ_U((size_t)tc.got, strlen(msg));
    CHECK(memcmp(tc.echo, msg, strlen(msg)) == 0);
    CHECK_MSG(strncmp(tc.tls, "TLS 1.", 6) == 0, "%s", tc.tls);
    printf("TLS echo through iocp-service (%s)\n", tc.tls);
}

/* Every value under the service's Parameters key, raw: none holds the text, in UTF-8 or
 * UTF-16; TlsPasswordProtected is REG_BINARY. */
static void registry_lacks(const char *name, const char *text)
{
    wchar_t key[200], wtext[128], value[128];
    BYTE data[8192];
    HKEY h;
    svc_params_path(name, key, 200);
    svc_widen(text, wtext, 128);
    size_t n = strlen(text);
    CHECK(RegOpenKeyExW(HKEY_LOCAL_MACHINE, key, 0, KEY_QUERY_VALUE, &h) == ERROR_SUCCESS);
    int blob = 0;
    for (DWORD i = 0;; i++) {
        DWORD vlen = 128, dlen = sizeof data, type = 0;
        LONG rc = RegEnumValueW(h, i, value, &vlen, NULL, &type, data, &dlen);
        if (rc == ERROR_NO_MORE_ITEMS)
            break;
        CHECK_EQ_U(rc, ERROR_SUCCESS);
        if (wcscmp(value, L"TlsPasswordProtected") == 0) {
            CHECK_EQ_U(type, REG_BINARY);
            blob = 1;
        }
        for (DWORD at = 0; at + n <= dlen; at++) {
            CHECK_MSG(memcmp(data + at, text, n) != 0, "%ls holds the password", value);
            CHECK_MSG(at + 2 * n > dlen || memcmp(data + at, wtext, 2 * n) != 0,
                      "%ls holds the password (UTF-16)", value);
        }
    }
    RegCloseKey(h);
    CHECK_MSG(blob, "no TlsPasswordProtected value");
}

/* ---- cases -------------------------------------------------------------------------------- */

/* Every install below passes --allow-unsafe-location: under Wine every file is owned by the
 * user and writable by them (Wine derives the DACL from the Unix owner and mode and keeps
 * no other), so the location check refuses any folder. install_refuses_unsafe_location
 * checks the refusal; test_service_unit.location_permissions checks the decision on the
 * descriptors Windows really has. */

static void usage_and_exit_codes(void)
{
    static child c; /* static: zeroed, as child_start_in expects (it frees the last output) */
    CHECK_RUN(&c, 1, "");
    CHECK_OUT(&c, "usage: iocp-service");
    CHECK_RUN(&c, 0, "--help");
    CHECK_OUT(&c, "exit codes:");
    CHECK_RUN(&c, 1, "run --port 70000");
    CHECK_OUT(&c, "out of range");
    CHECK_RUN(&c, 1, "stop --framing line");
    CHECK_RUN(&c, 1, "service");
    CHECK_OUT(&c, "use 'run'");
    CHECK_RUN(&c, 5, "status --name iocpt-nothing-%lu", (unsigned long)GetCurrentProcessId());
    /* Without --name: the default name, and how to give another (a first try, typically). */
    if (run(&c, "status") == 5)
        CHECK_OUT(&c, "(the default name: give yours with --name NAME; every instance: "
                      "iocp-service list)");
    CHECK_RUN(&c, 5, "start --name iocpt-nothing-%lu", (unsigned long)GetCurrentProcessId());
    CHECK_RUN(&c, 5, "stop --name iocpt-nothing-%lu", (unsigned long)GetCurrentProcessId());
    CHECK_RUN(&c, 5, "uninstall --name iocpt-nothing-%lu", (unsigned long)GetCurrentProcessId());
}

/* install, start, echo, status with live counters, stop, uninstall, gone: twice. */
static void lifecycle(void)
{
    char name[64], log[MAX_PATH * 3];
    static child c;
    service_name(name, sizeof name, "life");
    log_path(log, sizeof log, name);
    for (int round = 0; round < 2; round++) {
        CHECK_RUN(
            &c, 0,
            "install --allow-unsafe-location --name %s --port 0 --framing line --drain-timeout 5 "
            "--log-file \"%s\"",
            name, log);
        CHECK_OUT(&c, "installed service");
        CHECK_RUN(&c, 7, "status --name %s", name);
        CHECK_OUT(&c, "STOPPED");
        /* How it is configured: what the SCM holds and what the service will read. */
        char account[128];
        snprintf(account, sizeof account, "start: demand (manual), account: NT SERVICE\\%s", name);
        CHECK_OUT(&c, account);
        CHECK_OUT(&c, "iocp-service.exe\" service --name ");
        CHECK_OUT(&c, "    version: " IOCP_VERSION_STRING " (the executable's VERSIONINFO)");
        char want[MAX_PATH * 3 + 20];
        snprintf(want, sizeof want, "log file: %s", log);
        CHECK_OUT(&c, want);
        CHECK_OUT(&c, "options: Port=0 Framing=line DrainTimeout=5 LogFile=");
        CHECK(strstr(c.text, "has no Parameters key") == NULL); /* install wrote one */

        CHECK_RUN(&c, 0, "start --name %s", name);
        CHECK_OUT(&c, "is running (pid");
        uint16_t port = port_of(&c);

        SOCKET s = connect_local(port);
        echo_once(s, "hello\n");
        echo_once(s, "second line\n");
        echo_once(s, "x\n");
        CHECK_RUN(&c, 0, "status --name %s", name);
        CHECK_OUT(&c, "RUNNING (pid");
        CHECK_EQ_U(number_after(c.text, "connections: "), 1); /* open */
        CHECK_EQ_U(number_after(c.text, "open, "), 1);        /* accepted */
        CHECK_EQ_U(number_after(c.text, "bytes: "), 20);      /* in */
        CHECK_EQ_U(number_after(c.text, "in, "), 20);         /* out */
        CHECK_EQ_U(number_after(c.text, "messages: "), 3);
        CHECK_OUT(&c, "uptime: ");
        closesocket(s);
        /* Starting it again is no error, and says where it listens. */
        CHECK_RUN(&c, 0, "start --name %s", name);
        CHECK_OUT(&c, "already running");
        CHECK(port_of(&c) == port);

        if (round == 0) {
            CHECK_RUN(&c, 0, "stop --name %s", name);
            CHECK_OUT(&c, "stopped");
            CHECK_RUN(&c, 7, "status --name %s", name);
            CHECK_RUN(&c, 0, "uninstall --name %s", name);
            CHECK_OUT(&c, "is not running");
        } else {
            /* uninstall stops a running service first. */
            CHECK_RUN(&c, 0, "uninstall --name %s", name);
            CHECK_OUT(&c, "stopped");
        }
        CHECK_OUT(&c, "removed");
        CHECK(log_has(log, "final statistics: accepted=1", 1000));
        CHECK(log_has(log, "messages_in=3 messages_out=3", 1000));
        CHECK_RUN(&c, 5, "status --name %s", name);
        CHECK_OUT(&c, "no service named");
        /* The parameters and the Event Log source went with it. */
        wchar_t key[200], wname[64];
        svc_widen(name, wname, 64);
        svc_params_path(name, key, 200);
        HKEY h;
        CHECK(RegOpenKeyExW(HKEY_LOCAL_MACHINE, key, 0, KEY_READ, &h) == ERROR_FILE_NOT_FOUND);
        swprintf(key, 200, L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\%ls",
                 wname);
        CHECK(RegOpenKeyExW(HKEY_LOCAL_MACHINE, key, 0, KEY_READ, &h) == ERROR_FILE_NOT_FOUND);
    }
}

/* What Wine cannot show (failure-action restarts, delayed start, the Event Log's contents)
 * is checked as "the configuration calls succeed, or say the system lacks them". */
static void install_configuration(void)
{
    char name[64];
    static child c;
    service_name(name, sizeof name, "cfg");
    CHECK_RUN(
        &c, 0,
        "install --allow-unsafe-location --name %s --port 0 --start delayed --restart-delay 3 "
        "--max-connections 50 --framing length --description \"test service\"",
        name);
    CHECK_OUT(&c, "description: set");
    CHECK_OUT(&c, "failure actions (restart after 3 s, 5 s, 30 s, 60 s, then 60 s after every "
                  "later failure; the count restarts after 60 min without one): set");
    /* FailureActionsOnNonCrashFailures: set, or (Wine) reported as not supported. */
    CHECK_MSG(strstr(c.text, "also when it stops with an error (not only a crash): set") != NULL ||
                  strstr(c.text, "also when it stops with an error (not only a crash): not "
                                 "supported by this system") != NULL,
              "%s", c.text);
    CHECK_OUT(&c, "preshutdown timeout: set");
    CHECK_MSG(strstr(c.text, "delayed auto-start: set") != NULL ||
                  strstr(c.text, "delayed auto-start: not supported by this system") != NULL,
              "%s", c.text);
    {
        /* Its own virtual account by default (Wine's SCM takes it with no password). */
        char want[120];
        snprintf(want, sizeof want, "start: delayed, account: NT SERVICE\\%s", name);
        CHECK_OUT(&c, want);
    }
    CHECK_OUT(&c, "event log source: Application\\");

    /* The Parameters key holds what the service will read. */
    wchar_t key[200];
    char err[300];
    svc_params_path(name, key, 200);
    svc_server_options o;
    svc_server_options_init(&o);
    CHECK_MSG(svc_params_read(HKEY_LOCAL_MACHINE, key, &o, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_U(o.port, 0);
    CHECK_EQ_U(o.max_connections, 50);
    CHECK(o.framing == IOCP_FRAMING_LENGTH);
    /* The Event Log source points at the executable with the message table. */
    wchar_t wname[64], src[200], file[MAX_PATH];
    DWORD size = sizeof file;
    svc_widen(name, wname, 64);
    swprintf(src, 200, L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\%ls", wname);
    CHECK(RegGetValueW(HKEY_LOCAL_MACHINE, src, L"EventMessageFile",
                       RRF_RT_REG_EXPAND_SZ | RRF_NOEXPAND, NULL, file, &size) == ERROR_SUCCESS);
    CHECK(wcsstr(file, L"iocp-service.exe") != NULL);
    /* The message table is really in it. */
    HMODULE m = LoadLibraryExW(file, NULL, LOAD_LIBRARY_AS_DATAFILE);
    CHECK(m != NULL);
    CHECK(FindResourceW(m, MAKEINTRESOURCEW(1), MAKEINTRESOURCEW(11) /* RT_MESSAGETABLE */) !=
          NULL);
    FreeLibrary(m);

    CHECK_RUN(&c, 5, "install --allow-unsafe-location --name %s", name);
    char fix[200];
    snprintf(fix, sizeof fix,
             "already exists: remove it first (iocp-service uninstall --name %s) or choose "
             "another --name",
             name);
    CHECK_OUT(&c, fix);
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
    CHECK_RUN(&c, 5, "uninstall --name %s", name);
}

/* A second console instance with the same name is refused and told who holds it; once the
 * holder is killed, the name is free for the next one. */
static void second_instance_console(void)
{
    char name[64], log[MAX_PATH * 3], want[80];
    static child a, b, c;
    snprintf(name, sizeof name, "iocpt-con-%lu", (unsigned long)GetCurrentProcessId());
    log_path(log, sizeof log, name);
    char args[600];
    snprintf(args, sizeof args, "run --port 0 --name %s --log-file \"%s\"", name, log);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    /* A console's mutex is its user's: in the user's namespace, or a per-user plain name. */
    CHECK_MSG(strstr(a.text, "in a private namespace that only this account can create") != NULL ||
                  strstr(a.text, "the instance mutex is the plain name Local\\iocp-service-") !=
                      NULL,
              "%s", a.text);
    CHECK_RUN(&b, 3, "run --port 0 --name %s", name);
    CHECK_OUT(&b, "already running");
    snprintf(want, sizeof want, "process %lu (console", (unsigned long)a.pid);
    CHECK_OUT(&b, want);

    CHECK_OUT(&b, "listening on [::]:");

    child_kill(&a);
    child_start(&c, args);
    CHECK_MSG(child_wait_line(&c, "listening on", 20000), "%s", c.text);
    child_kill(&c);
}

/* Console against service, both ways. The service runs: a console of its name is refused,
 * naming it. A console of that name runs first: the service starts all the same (a user's
 * process cannot keep the service from starting: the console's mutex is its user's own), and
 * `status` believes only the process the SCM runs, not the console that holds the pipe. */
static void second_instance_service(void)
{
    char name[64], log[MAX_PATH * 3], args[600];
    static child a, c;
    service_name(name, sizeof name, "mix");
    log_path(log, sizeof log, name);
    CHECK_RUN(
        &c, 0,
        "install --allow-unsafe-location --name %s --port 0 --drain-timeout 2 --log-file \"%s\"",
        name, log);
    CHECK_RUN(&c, 0, "start --name %s", name);
    /* Where its mutex is, said in its log: in its private namespace (Windows), or the plain
     * name and why (Wine: no service SID in the token, no private namespaces). */
    CHECK_MSG(log_has(log, "in a private namespace that only this account can create", 500) ||
                  log_has(log, "the instance mutex is the plain name Global\\iocp-service-", 10),
              "the service's log does not say where its mutex is");
    CHECK_RUN(&c, 3, "run --port 0 --name %s", name);
    CHECK_OUT(&c, "already running: the service, process");
    CHECK_OUT(&c, "(service");
    CHECK_OUT(&c, "iocp-service stop --name");
    CHECK_RUN(&c, 0, "stop --name %s", name);

    snprintf(args, sizeof args, "run --port 0 --name %s", name);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    CHECK_RUN(&c, 0, "start --name %s", name);
    CHECK_OUT(&c, "is running (pid");
    CHECK_MSG(log_has(log, "serving without a status pipe", 2000), "the service's log");
    CHECK_RUN(&c, 0, "status --name %s", name);
    CHECK_OUT(&c, "RUNNING (pid");
    CHECK_OUT(&c, "answer ignored");
    CHECK_OUT(&c, "but the Service Control Manager runs the service as process");
    CHECK_MSG(strstr(c.text, "(console") == NULL && strstr(c.text, "connections:") == NULL,
              "status printed the console's answer as the service's:\n%s", c.text);
    child_kill(&a);
    CHECK_RUN(&c, 0, "stop --name %s", name);
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

/* The port is taken: start fails with the reason, status shows the exit code. */
static void port_in_use(void)
{
    char name[64], log[MAX_PATH * 3];
    static child c;
    service_name(name, sizeof name, "port");
    log_path(log, sizeof log, name);

    SOCKET l = socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP);
    CHECK(l != INVALID_SOCKET);
    DWORD off = 0;
    CHECK(setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&off, sizeof off) == 0);
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 8) == 0);
    int alen = sizeof a;
    CHECK(getsockname(l, (struct sockaddr *)&a, &alen) == 0);
    unsigned port = ntohs(a.sin6_port);

    CHECK_RUN(&c, 0, "install --allow-unsafe-location --name %s --port %u --log-file \"%s\"", name,
              port, log);
    CHECK_RUN(&c, 2, "start --name %s", name);
    CHECK_OUT(&c, "failed to start");
    CHECK_OUT(&c, "10048"); /* WSAEADDRINUSE */
    /* The port, the cause, how to find the holder, the fix and where the details are. */
    char want[300];
    snprintf(want, sizeof want, "TCP port %u is in use by another program", port);
    CHECK_OUT(&c, want);
    snprintf(want, sizeof want,
             "find it with: netstat -ano | findstr :%u, or "
             "Get-NetTCPConnection -LocalPort %u",
             port, port);
    CHECK_OUT(&c, want);
    CHECK_OUT(&c, "/v Port /t REG_DWORD /d PORT /f");
    snprintf(want, sizeof want, "details: the log file %s", log);
    CHECK_OUT(&c, want);
    CHECK(log_has(log, "cannot start the server", 2000));
    CHECK_RUN(&c, 7, "status --name %s", name);
    CHECK_OUT(&c, "10048");
    closesocket(l);

    /* The console says the same, with exit code 2. */
    l = socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP);
    CHECK(setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&off, sizeof off) == 0);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 8) == 0);
    CHECK_RUN(&c, 2, "run --name %s-c --port %u", name, port);
    CHECK_OUT(&c, "cannot start the server");
    snprintf(want, sizeof want, "port %u is in use by another program", port);
    CHECK_OUT(&c, want);
    closesocket(l);

    /* Held by another instance (SO_EXCLUSIVEADDRUSE): 10013 on Windows and Wine, which could
     * also mean "this account may not use it"; the text says both. */
    static child holder;
    char args[300];
    snprintf(args, sizeof args, "run --name %s-h --port %u", name, port);
    child_start(&holder, args);
    CHECK_MSG(child_wait_line(&holder, "listening on", 20000), "%s", holder.text);
    DWORD code = run(&c, "start --name %s", name);
    CHECK_EQ_U(code, 2);
    snprintf(want, sizeof want, "TCP port %u is in use by another program%s", port,
             strstr(c.text, "(WSA 10013)") != NULL ? ", or this account may not use it" : "");
    CHECK_OUT(&c, want);
    CHECK(strstr(c.text, "(WSA 10013)") != NULL || strstr(c.text, "(WSA 10048)") != NULL);
    child_kill(&holder);
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

/* A bad value in the registry: the service stops with ERROR_INVALID_PARAMETER and says which. */
static void bad_parameter(void)
{
    char name[64], log[MAX_PATH * 3];
    static child c;
    service_name(name, sizeof name, "param");
    log_path(log, sizeof log, name);
    CHECK_RUN(&c, 0, "install --allow-unsafe-location --name %s --port 0 --log-file \"%s\"", name,
              log);
    wchar_t key[200];
    HKEY h;
    svc_params_path(name, key, 200);
    CHECK(RegOpenKeyExW(HKEY_LOCAL_MACHINE, key, 0, KEY_SET_VALUE, &h) == ERROR_SUCCESS);
    CHECK(RegSetValueExW(h, L"Framing", 0, REG_SZ, (const BYTE *)L"lines", 12) == ERROR_SUCCESS);
    RegCloseKey(h);
    CHECK_RUN(&c, 2, "start --name %s", name);
    CHECK_OUT(&c, "(Win32 87)");
    /* `start` reads the Parameters itself: the value, what it should be, the command that
     * fixes it, and the log file (the Event Log keeps nothing under Wine). */
    CHECK_OUT(&c, "its configuration is wrong: parameter Framing: --framing must be raw, line or "
                  "length, not 'lines'");
    char want[400];
    snprintf(want, sizeof want,
             "fix: reg add \"HKLM\\SYSTEM\\CurrentControlSet\\Services\\%s\\Parameters\" /v "
             "Framing /t REG_SZ /d \"raw\" /f",
             name);
    CHECK_OUT(&c, want);
    snprintf(want, sizeof want, "details: the log file %s", log);
    CHECK_OUT(&c, want);
    CHECK(log_has(log, "parameter Framing", 2000));
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

/* ---- the limits a public server needs -------------------------------------------------- */

/* A configuration hostile peers could push past the memory budget is refused by `run`,
 * `install` and the service, with the numbers and what to change; the defaults start. */
static void memory_budget_refused(void)
{
    char name[64], log[MAX_PATH * 3];
    static child c, a;
    service_name(name, sizeof name, "mem");
    log_path(log, sizeof log, name);
    /* 100 x (10 MiB + 16 KiB) = 1,001.6 MiB over 512 MiB. */
    CHECK_RUN(&c, 2,
              "run --port 0 --name %s --max-connections 100 --send-queue-cap 10485760 "
              "--memory-budget 512",
              name);
    CHECK_OUT(&c, "refusing to start: worst case 100 connections x 10.0 MiB (send queue 10.0 MiB "
                  "+ buffer 16.0 KiB) = 1001.6 MiB is over the memory budget of 512.0 MiB: lower "
                  "--max-connections, --send-queue-cap or --buffer-size, or raise --memory-budget");
    CHECK_MSG(tp_find_line(c.text, "listening on") == NULL, "%s", c.text);
    /* Line framing counts the message the decoder may assemble: 2,000 x (2.0 MiB of queue,
     * raised for 1 MiB messages, + 1 MiB + 16 KiB) = 6.0 GiB over 1 GiB. */
    CHECK_RUN(&c, 2,
              "run --port 0 --name %s --max-connections 2000 --framing line "
              "--memory-budget 1024",
              name);
    CHECK_OUT(&c, "worst case 2000 connections x 3.0 MiB (send queue 2.0 MiB + message 1.0 MiB "
                  "+ buffer 16.0 KiB) = 6.0 GiB is over the memory budget of 1.0 GiB: lower "
                  "--max-connections, --send-queue-cap, --max-message or --buffer-size");
    /* install refuses it too, and installs nothing. */
    CHECK_RUN(&c, 2,
              "install --name %s --port 0 --max-connections 100 --send-queue-cap 10485760 "
              "--memory-budget 512",
              name);
    CHECK_OUT(&c, "not installed: worst case 100 connections x 10.0 MiB");
    CHECK_RUN(&c, 5, "status --name %s", name);
    /* The service reads the same check's input from the registry. */
    CHECK_RUN(&c, 0, "install --allow-unsafe-location --name %s --port 0 --log-file \"%s\"", name,
              log);
    wchar_t key[200];
    HKEY h;
    svc_params_path(name, key, 200);
    CHECK(RegOpenKeyExW(HKEY_LOCAL_MACHINE, key, 0, KEY_SET_VALUE, &h) == ERROR_SUCCESS);
    DWORD one = 1;
    CHECK(RegSetValueExW(h, L"MemoryBudget", 0, REG_DWORD, (const BYTE *)&one, sizeof one) ==
          ERROR_SUCCESS);
    RegCloseKey(h);
    CHECK_RUN(&c, 2, "start --name %s", name);
    CHECK(log_has(log, "is over the memory budget of 1.0 MiB", 2000));
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
    /* The defaults fit (1,024 x (1 MiB + 16 KiB) = 1,040 MiB: within half of any machine of
     * 2,080 MiB or more), and so does line framing with smaller messages. */
    char args[300];
    snprintf(args, sizeof args, "run --port 0 --name %s", name);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    child_kill(&a);
}

/* One address gets --max-connections-per-ip connections; another is still served. */
static void per_ip_limit(void)
{
    char name[64], args[300];
    static child a, c;
    snprintf(name, sizeof name, "iocpt-perip-%lu", (unsigned long)GetCurrentProcessId());
    snprintf(args, sizeof args, "run --port 0 --name %s --max-connections-per-ip 2", name);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    uint16_t port = port_of(&a);
    SOCKET one = tn_connect_from("127.0.0.1", "127.0.0.1", port, 20000);
    SOCKET two = tn_connect_from("127.0.0.1", "127.0.0.1", port, 20000);
    CHECK(one != INVALID_SOCKET && two != INVALID_SOCKET);
    echo_once(one, "first");
    echo_once(two, "second");
    SOCKET three = tn_connect_from("127.0.0.1", "127.0.0.1", port, 20000);
    CHECK(three != INVALID_SOCKET);
    CHECK_MSG(tn_wait_closed(three, 10000), "a third connection from 127.0.0.1 was served");
    SOCKET other = tn_connect_from("127.0.0.2", "127.0.0.1", port, 20000);
    CHECK(other != INVALID_SOCKET);
    echo_once(other, "another address");
    CHECK_RUN(&c, 0, "status --name %s", name);
    CHECK_EQ_U(number_after(c.text, "connections: "), 3); /* open */
    CHECK_EQ_U(number_after(c.text, "accepted, "), 1);    /* rejected */
    closesocket(three);
    closesocket(one);
    closesocket(two);
    closesocket(other);
    child_kill(&a);
}

#define SILENT_CLIENTS 1100

/* The default 1,024 slots, all taken by connections that never send (one address: no
 * per-IP limit here): a newcomer is refused while they hold them; the idle timeout frees
 * them and the server serves again. 2 x 1,100 sockets in the prefix: far from Wine's 20,000. */
static void silent_connections_expire(void)
{
    char name[64], args[300];
    static child a, c;
    static SOCKET held[SILENT_CLIENTS];
    const unsigned idle_s = 3;
    snprintf(name, sizeof name, "iocpt-silent-%lu", (unsigned long)GetCurrentProcessId());
    snprintf(args, sizeof args,
             "run --port 0 --name %s --idle-timeout %u --max-connections-per-ip 0 "
             "--buffer-size 1024",
             name, idle_s);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    uint16_t port = port_of(&a);
    uint64_t t0 = test_now_ms();
    for (int i = 0; i < SILENT_CLIENTS; i++) {
        held[i] = tn_connect_from("127.0.0.1", "127.0.0.1", port, 20000);
        CHECK_MSG(held[i] != INVALID_SOCKET, "connection %d (WSA %d)", i, WSAGetLastError());
    }
    /* The newcomer queues behind them: by the time it is refused, all 1,100 were handled. */
    SOCKET probe = tn_connect_from("127.0.0.1", "127.0.0.1", port, 20000);
    CHECK(probe != INVALID_SOCKET);
    CHECK_MSG(tn_wait_closed(probe, 10000), "the newcomer was not refused");
    uint64_t refused_ms = test_now_ms() - t0;
    closesocket(probe);
    CHECK_RUN(&c, 0, "status --name %s", name);
    unsigned long long open = number_after(c.text, "connections: ");
    unsigned long long rejected = number_after(c.text, "accepted, ");
    printf("%d silent connections: %llu held, %llu refused (the newcomer after %llu ms)\n",
           SILENT_CLIENTS, open, rejected, (unsigned long long)refused_ms);
    CHECK_MSG(open == 1024 && rejected == SILENT_CLIENTS - 1024 + 1,
              "%llu open and %llu refused (wanted 1024 and %d): did the idle timeout (%u s) "
              "pass while they were opened (%llu ms)?",
              open, rejected, SILENT_CLIENTS - 1024 + 1, idle_s, (unsigned long long)refused_ms);
    /* The idle timeout ends every held connection: each client sees its end. */
    for (int i = 0; i < SILENT_CLIENTS; i++)
        CHECK_MSG(tn_wait_closed(held[i], idle_s * 1000u + 15000), "connection %d still open", i);
    SOCKET fresh = tn_connect_from("127.0.0.1", "127.0.0.1", port, 20000);
    CHECK(fresh != INVALID_SOCKET);
    echo_once(fresh, "served again after the idle timeout");
    echo_once(fresh, "and byte for byte");
    CHECK_RUN(&c, 0, "status --name %s", name);
    CHECK_EQ_U(number_after(c.text, "connections: "), 1);
    CHECK_EQ_U(number_after(c.text, "open, "), 1025); /* accepted */
    closesocket(fresh);
    for (int i = 0; i < SILENT_CLIENTS; i++)
        closesocket(held[i]);
    child_kill(&a);
}

/* ---- stop under load ------------------------------------------------------------------- */

#define LOAD_CLIENTS 100

typedef struct load_client {
    uint16_t port;
    int id;
    volatile LONG echoed; /* whole lines that came back, all checked */
    int eof;              /* the connection ended with a clean FIN */
    int reset;            /* ... or with a reset while no echo was due in part */
    int error;            /* why it failed, 0 if it did not */
    char what[160];
} load_client;

static volatile LONG load_started;

/* Ping-pong of numbered lines until the server closes. Every line that comes back must be the
 * one sent, whole; the connection must end cleanly, not in the middle of a line. */
static DWORD WINAPI load_main(void *arg)
{
    load_client *lc = arg;
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(lc->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s == INVALID_SOCKET || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        lc->error = 1;
        snprintf(lc->what, sizeof lc->what, "connect failed (WSA %d)", WSAGetLastError());
        return 0;
    }
    DWORD ms = 30000;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&ms, sizeof ms);
    InterlockedIncrement(&load_started);
    for (unsigned seq = 0;; seq++) {
        char line[64], back[64];
        int len = snprintf(line, sizeof line, "client-%03d-line-%07u\n", lc->id, seq);
        if (send(s, line, len, 0) != len)
            break; /* the server is gone: what came back so far is checked */
        int got = 0;
        while (got < len) {
            int n = recv(s, back + got, len - got, 0);
            if (n == 0) {
                lc->eof = 1;
                if (got != 0) {
                    lc->error = 1;
                    snprintf(lc->what, sizeof lc->what, "EOF inside line %u after %d bytes", seq,
                             got);
                }
                goto done;
            }
            if (n < 0) {
                int e = WSAGetLastError();
                /* A reset before any byte of this line's echo: the server closed without
                 * reading the line (it never received it), which is allowed; whether any
                 * received line went missing is checked against its counters. */
                if ((e == WSAECONNRESET || e == WSAECONNABORTED) && got == 0) {
                    lc->reset = 1;
                } else {
                    lc->error = 1;
                    snprintf(lc->what, sizeof lc->what,
                             "recv failed (WSA %d) in line %u after "
                             "%d bytes",
                             e, seq, got);
                }
                goto done;
            }
            got += n;
        }
        if (memcmp(line, back, (size_t)len) != 0) {
            lc->error = 1;
            snprintf(lc->what, sizeof lc->what, "line %u came back as '%.*s'", seq, len, back);
            goto done;
        }
        InterlockedIncrement(&lc->echoed);
    }
    /* send failed: read what is left; no partial line may follow. */
    {
        char rest[64];
        int n = recv(s, rest, sizeof rest, 0);
        if (n > 0) {
            lc->error = 1;
            snprintf(lc->what, sizeof lc->what, "%d stray bytes after a failed send", n);
        } else if (n == 0) {
            lc->eof = 1;
        } else {
            lc->reset = 1;
        }
    }
done:
    closesocket(s);
    return 0;
}

static unsigned long long log_number(const char *text, const char *key)
{
    const char *p = strstr(text, "final statistics:");
    CHECK_MSG(p != NULL, "no final statistics in the log:\n%s", text);
    p = strstr(p, key);
    CHECK_MSG(p != NULL, "no %s in the final statistics", key);
    return strtoull(p + strlen(key), NULL, 10);
}

static void stop_under_load(void)
{
    char name[64], log[MAX_PATH * 3];
    static child c;
    static load_client lc[LOAD_CLIENTS];
    HANDLE threads[LOAD_CLIENTS];
    const unsigned drain_s = 10;
    service_name(name, sizeof name, "drain");
    log_path(log, sizeof log, name);
    CHECK_RUN(
        &c, 0,
        "install --allow-unsafe-location --name %s --port 0 --framing line --drain-timeout %u "
        "--log-file \"%s\"",
        name, drain_s, log);
    CHECK_RUN(&c, 0, "start --name %s", name);
    uint16_t port = port_of(&c);

    for (int i = 0; i < LOAD_CLIENTS; i++) {
        lc[i].port = port;
        lc[i].id = i;
        threads[i] = CreateThread(NULL, 64 * 1024, load_main, &lc[i], 0, NULL);
        CHECK(threads[i] != NULL);
    }
    /* All connected and echoing for a moment. */
    uint64_t deadline = test_now_ms() + 20000;
    while (load_started < LOAD_CLIENTS && test_now_ms() < deadline)
        Sleep(10);
    CHECK_EQ_U(load_started, LOAD_CLIENTS);
    Sleep(1000);

    uint64_t t0 = test_now_ms();
    CHECK_RUN(&c, 0, "stop --name %s", name);
    uint64_t stop_ms = test_now_ms() - t0;
    CHECK_MSG(stop_ms < (drain_s + 5) * 1000u, "stop took %llu ms (drain timeout %u s)",
              (unsigned long long)stop_ms, drain_s);

    for (int i = 0; i < LOAD_CLIENTS; i++) {
        CHECK(WaitForSingleObject(threads[i], 30000) == WAIT_OBJECT_0);
        CloseHandle(threads[i]);
    }
    unsigned long long echoed = 0;
    int clean = 0, resets = 0;
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        echoed += (unsigned long long)lc[i].echoed;
        clean += lc[i].eof;
        resets += lc[i].reset;
    }
    static char text[1 << 17];
    CHECK(log_has(log, "final statistics", 5000));
    read_file(log, text, sizeof text);
    unsigned long long in = log_number(text, "messages_in=");
    unsigned long long out = log_number(text, "messages_out=");
    printf("%d clients, %llu lines echoed, server in %llu out %llu, %d clean closes, %d "
           "resets, stop %llu ms\n",
           LOAD_CLIENTS, echoed, in, out, clean, resets, (unsigned long long)stop_ms);
    for (int i = 0; i < LOAD_CLIENTS; i++)
        CHECK_MSG(!lc[i].error, "client %d: %s", i, lc[i].what);
    /* Every message the server received went back, and the clients got every one of them. */
    CHECK_EQ_U(in, out);
    CHECK_EQ_U(echoed, out);
    CHECK_EQ_U(clean + resets, LOAD_CLIENTS);
    CHECK_EQ_U(log_number(text, "accepted="), LOAD_CLIENTS);
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

/* A peer that stops reading cannot hold a stop: after the drain timeout its connection is
 * closed anyway, and the stop finishes. */
typedef struct stuck_client {
    uint16_t port;
    volatile LONG sending;
} stuck_client;

static DWORD WINAPI stuck_main(void *arg)
{
    stuck_client *sc = arg;
    SOCKET s = connect_local(sc->port);
    static char chunk[1 << 20];
    memset(chunk, 'z', sizeof chunk);
    InterlockedExchange(&sc->sending, 1);
    /* Send without ever reading: the echo backs up until the server stops reading too. */
    for (int i = 0; i < 256; i++)
        if (send(s, chunk, (int)sizeof chunk, 0) <= 0)
            break;
    closesocket(s);
    return 0;
}

static void stop_with_stuck_client(void)
{
    char name[64], log[MAX_PATH * 3];
    static child c;
    static stuck_client sc;
    const unsigned drain_s = 2;
    service_name(name, sizeof name, "stuck");
    log_path(log, sizeof log, name);
    CHECK_RUN(
        &c, 0,
        "install --allow-unsafe-location --name %s --port 0 --drain-timeout %u --log-file \"%s\"",
        name, drain_s, log);
    CHECK_RUN(&c, 0, "start --name %s", name);
    sc.port = port_of(&c);
    HANDLE t = CreateThread(NULL, 0, stuck_main, &sc, 0, NULL);
    CHECK(t != NULL);
    while (!sc.sending)
        Sleep(10);
    Sleep(1500); /* let the buffers fill */

    uint64_t t0 = test_now_ms();
    CHECK_RUN(&c, 0, "stop --name %s", name);
    uint64_t stop_ms = test_now_ms() - t0;
    printf("stop took %llu ms with a peer that does not read (drain timeout %u s)\n",
           (unsigned long long)stop_ms, drain_s);
    CHECK_MSG(stop_ms >= (drain_s - 1) * 1000u, "stop did not wait for the drain: %llu ms",
              (unsigned long long)stop_ms);
    CHECK_MSG(stop_ms < (drain_s + 8) * 1000u, "stop took %llu ms", (unsigned long long)stop_ms);
    CHECK(WaitForSingleObject(t, 60000) == WAIT_OBJECT_0);
    CloseHandle(t);
    CHECK(log_has(log, "final statistics: accepted=1", 2000));
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

/* A peer that breaks the framing is closed and counted; the count shows in status and in
 * the "stopped" event. */
static void protocol_errors_counted(void)
{
    char name[64], log[MAX_PATH * 3];
    static child c;
    service_name(name, sizeof name, "proto");
    log_path(log, sizeof log, name);
    CHECK_RUN(&c, 0,
              "install --allow-unsafe-location --name %s --port 0 --framing line --max-message 16 "
              "--log-file \"%s\"",
              name, log);
    CHECK_RUN(&c, 0, "start --name %s", name);
    uint16_t port = port_of(&c);
    SOCKET s = connect_local(port);
    echo_once(s, "short\n");
    send_all(s, "this line is far longer than sixteen bytes\n", 44);
    char buf[64];
    int n;
    while ((n = recv(s, buf, sizeof buf, 0)) > 0)
        ;
    CHECK(n == 0 || WSAGetLastError() == WSAECONNRESET); /* closed by the server */
    closesocket(s);
    CHECK_RUN(&c, 0, "status --name %s", name);
    CHECK_EQ_U(number_after(c.text, "protocol errors: "), 1);
    CHECK_RUN(&c, 0, "stop --name %s", name);
    CHECK(log_has(log, "1 protocol errors", 2000));
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

/* ---- the log file: rate limit, refusals ---------------------------------------------------- */

typedef struct log_count {
    unsigned long long shown;      /* "protocol error from" lines written */
    unsigned long long suppressed; /* the sum of "N similar messages suppressed" */
    unsigned long long summaries;
} log_count;

static void count_protocol_lines(const char *text, log_count *n)
{
    memset(n, 0, sizeof *n);
    for (const char *p = text; *p != '\0';) {
        const char *end = strchr(p, '\n');
        if (end == NULL)
            end = p + strlen(p);
        const char *sup = strstr(p, " similar messages suppressed");
        if (sup != NULL && sup < end) {
            const char *num = sup;
            while (num > p && num[-1] >= '0' && num[-1] <= '9')
                num--;
            n->suppressed += strtoull(num, NULL, 10);
            n->summaries++;
        } else {
            const char *pe = strstr(p, "protocol error from");
            if (pe != NULL && pe < end)
                n->shown++;
        }
        p = *end ? end + 1 : end;
    }
}

/* A thousand peers that break the framing cannot write a thousand lines: at most
 * SVC_LOG_BURST a second of that kind, and every one held back is counted in a summary line
 * (written within a second or two by the tick, without a stop). */
static void log_rate_limited(void)
{
    char name[64], log[MAX_PATH * 3], args[800];
    static child a;
    static char text[1 << 20];
    enum { PEERS = 1000 };
    snprintf(name, sizeof name, "iocpt-rate-%lu", (unsigned long)GetCurrentProcessId());
    log_path(log, sizeof log, name);
    snprintf(args, sizeof args,
             "run --port 0 --name %s --framing line --max-message 16 --log-file \"%s\"", name, log);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    uint16_t port = port_of(&a);
    uint64_t t0 = test_now_ms();
    for (int i = 0; i < PEERS; i++) {
        SOCKET s = connect_local(port);
        send_all(s, "this line is far longer than sixteen bytes\n", 44);
        char buf[64];
        while (recv(s, buf, sizeof buf, 0) > 0)
            ;
        closesocket(s);
    }
    /* Every error is accounted for: shown or counted as suppressed. */
    log_count n;
    uint64_t deadline = test_now_ms() + 20000;
    do {
        read_file(log, text, sizeof text);
        count_protocol_lines(text, &n);
        if (n.shown + n.suppressed >= PEERS)
            break;
        Sleep(50);
    } while (test_now_ms() < deadline);
    uint64_t elapsed_s = (test_now_ms() - t0 + 999) / 1000;
    printf("%d bad peers in %llu s: %llu lines written, %llu suppressed in %llu summaries\n", PEERS,
           (unsigned long long)elapsed_s, n.shown, n.suppressed, n.summaries);
    CHECK_EQ_U(n.shown + n.suppressed, PEERS);
    CHECK_MSG(n.shown <= SVC_LOG_BURST * (elapsed_s + 1), "%llu lines in %llu s", n.shown,
              (unsigned long long)elapsed_s);
    CHECK(n.summaries >= 1 && n.summaries <= elapsed_s + 1);
    CHECK(strstr(text, "similar messages suppressed in the last ") != NULL);
    /* The server is still well. */
    SOCKET s = connect_local(port);
    echo_once(s, "fine\n");
    closesocket(s);
    child_kill(&a);
}

/* A log file with a second name (a hard link, which Wine models) is refused at start: exit
 * code 2, the path and the reason said, nothing written to it. The checks Wine cannot stage
 * (reparse points, a foreign owner) are unit-tested on the checking function
 * (test_service_unit.log_file_refusal_reasons). */
static void log_file_refused(void)
{
    char name[64], log[MAX_PATH * 3], other[MAX_PATH * 3 + 8];
    static child c;
    snprintf(name, sizeof name, "iocpt-logref-%lu", (unsigned long)GetCurrentProcessId());
    log_path(log, sizeof log, name);
    wchar_t wlog[MAX_PATH], wother[MAX_PATH];
    svc_widen(log, wlog, MAX_PATH);
    HANDLE f = CreateFileW(wlog, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    DWORD n;
    CHECK(WriteFile(f, "mine\n", 5, &n, NULL));
    CloseHandle(f);
    snprintf(other, sizeof other, "%s.other", log);
    svc_widen(other, wother, MAX_PATH);
    DeleteFileW(wother);
    CHECK(CreateHardLinkW(wother, wlog, NULL));
    CHECK_RUN(&c, 2, "run --port 0 --name %s --log-file \"%s\"", name, log);
    CHECK_OUT(&c, "cannot open the log file");
    CHECK_OUT(&c, log);
    CHECK_OUT(&c, "more than one hard link");
    CHECK(strstr(c.text, "listening on") == NULL);
    static char text[4096];
    read_file(other, text, sizeof text);
    CHECK_MSG(strcmp(text, "mine\n") == 0, "the linked file was written: %s", text);
    DeleteFileW(wother);
    DeleteFileW(wlog);
}

/* A log file in a folder whose parent is missing: one reason, said once, and the fix. */
static void log_folder_missing(void)
{
    char name[64], log[MAX_PATH * 3], path[MAX_PATH * 3 + 40];
    static child c;
    snprintf(name, sizeof name, "iocpt-logdir-%lu", (unsigned long)GetCurrentProcessId());
    log_path(log, sizeof log, name);
    snprintf(path, sizeof path, "%s-missing\\deeper\\x.log", log);
    CHECK_RUN(&c, 2, "run --port 0 --name %s --log-file \"%s\"", name, path);
    CHECK_OUT(&c, "cannot open the log file");
    CHECK_OUT(&c, path);
    CHECK_OUT(&c, "create the folder first");
    const char *first = strstr(c.text, "(Win32 3)");
    CHECK_MSG(first != NULL && strstr(first + 1, "(Win32 3)") == NULL,
              "the reason is not said exactly once:\n%s", c.text);
    CHECK(strstr(c.text, "listening on") == NULL);
}

/* ---- the status pipe under abuse ---------------------------------------------------------- */

static HANDLE pipe_open(const char *name)
{
    wchar_t path[200];
    svc_pipe_name(name, path, 200);
    HANDLE h = INVALID_HANDLE_VALUE;
    for (int i = 0; i < 200 && h == INVALID_HANDLE_VALUE; i++) {
        h = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                        FILE_FLAG_OVERLAPPED, NULL);
        if (h == INVALID_HANDLE_VALUE) {
            CHECK_MSG(GetLastError() == ERROR_PIPE_BUSY, "open %ls: Win32 %lu", path,
                      (unsigned long)GetLastError());
            WaitNamedPipeW(path, 100);
        }
    }
    CHECK(h != INVALID_HANDLE_VALUE);
    DWORD mode = PIPE_READMODE_MESSAGE;
    CHECK(SetNamedPipeHandleState(h, &mode, NULL, NULL));
    return h;
}

/* One overlapped operation, bounded. Returns the Win32 result; *n the bytes. */
static DWORD pipe_io(HANDLE h, int write, void *buf, DWORD len, DWORD *n, uint32_t timeout_ms)
{
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    BOOL ok = write ? WriteFile(h, buf, len, NULL, &ov) : ReadFile(h, buf, len, NULL, &ov);
    DWORD err = ok ? NO_ERROR : GetLastError();
    *n = 0;
    if (ok || err == ERROR_IO_PENDING || err == ERROR_MORE_DATA) {
        if (WaitForSingleObject(ov.hEvent, timeout_ms) != WAIT_OBJECT_0) {
            CancelIoEx(h, &ov);
            GetOverlappedResult(h, &ov, n, TRUE);
            CloseHandle(ov.hEvent);
            return WAIT_TIMEOUT;
        }
        err = GetOverlappedResult(h, &ov, n, FALSE) ? NO_ERROR : GetLastError();
    }
    CloseHandle(ov.hEvent);
    return err;
}

/* Sends a request on a fresh connection, expects `answer`, then a closed pipe. */
static void abuse_once(const char *name, const void *req, DWORD len, const char *answer)
{
    char buf[SVC_PROTO_ANSWER_MAX + 1];
    DWORD n;
    printf("request of %lu bytes, expecting %s", (unsigned long)len, answer);
    HANDLE h = pipe_open(name);
    CHECK_EQ_U(pipe_io(h, 1, (void *)req, len, &n, 5000), 0);
    DWORD e = pipe_io(h, 0, buf, sizeof buf - 1, &n, 5000);
    CHECK_MSG(e == 0, "read: Win32 %lu", (unsigned long)e);
    buf[n] = '\0';
    CHECK_MSG(strcmp(buf, answer) == 0, "answer '%s', wanted '%s'", buf, answer);
    /* Then the server closes the pipe (within its linger time). */
    e = pipe_io(h, 0, buf, sizeof buf - 1, &n, 10000);
    CHECK_MSG(e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED || e == ERROR_NO_DATA,
              "after the error the pipe is still open (Win32 %lu)", (unsigned long)e);
    CloseHandle(h);
}

typedef struct pipe_worker {
    const char *name;
    int ok, failed;
    char what[200];
} pipe_worker;

static DWORD WINAPI pipe_worker_main(void *arg)
{
    pipe_worker *w = arg;
    for (int i = 0; i < 25; i++) {
        char answer[SVC_PROTO_ANSWER_MAX];
        size_t len;
        svc_status_info info;
        DWORD e = svc_pipe_request(w->name, "STATS", 5, answer, sizeof answer, &len, 20000, NULL);
        if (e == NO_ERROR &&
            svc_proto_parse_answer(answer, len, &info, w->what, sizeof w->what) == 0 &&
            info.pid != 0) {
            w->ok++;
        } else {
            w->failed++;
            if (e != NO_ERROR)
                snprintf(w->what, sizeof w->what, "request failed: Win32 %lu", (unsigned long)e);
        }
    }
    return 0;
}

static void status_pipe_abuse(void)
{
    char name[64], args[200];
    static child a, c;
    snprintf(name, sizeof name, "iocpt-pipe-%lu", (unsigned long)GetCurrentProcessId());
    snprintf(args, sizeof args, "run --port 0 --name %s", name);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);

    /* Malformed: unknown word, lower case, binary, trailing junk, empty. */
    abuse_once(name, "HELLO", 5, "ERR malformed request\n");
    abuse_once(name, "stats", 5, "ERR malformed request\n");
    abuse_once(name, "\0\xff\x01STATS", 8, "ERR malformed request\n");
    abuse_once(name, "STATS\nSTATS\n", 12, "ERR malformed request\n");
    /* Oversized: one byte past the limit, and far past it. */
    static char big[100000];
    memset(big, 'A', sizeof big);
    abuse_once(name, big, SVC_PROTO_REQUEST_MAX + 1, "ERR request too large\n");
    abuse_once(name, big, (DWORD)sizeof big, "ERR request too large\n");

    /* Valid requests keep the connection; a bad one after them still closes it. */
    HANDLE h = pipe_open(name);
    char buf[SVC_PROTO_ANSWER_MAX + 1];
    DWORD n;
    CHECK_EQ_U(pipe_io(h, 1, "PING", 4, &n, 5000), 0);
    CHECK_EQ_U(pipe_io(h, 0, buf, sizeof buf - 1, &n, 5000), 0);
    CHECK(n == 3 && memcmp(buf, "OK\n", 3) == 0);
    CHECK_EQ_U(pipe_io(h, 1, "INFO\n", 5, &n, 5000), 0);
    CHECK_EQ_U(pipe_io(h, 0, buf, sizeof buf - 1, &n, 5000), 0);
    buf[n] = '\0';
    CHECK_MSG(strstr(buf, "mode=console\n") != NULL, "%s", buf);
    CHECK_EQ_U(pipe_io(h, 1, "BYE", 3, &n, 5000), 0);
    CHECK_EQ_U(pipe_io(h, 0, buf, sizeof buf - 1, &n, 5000), 0);
    CloseHandle(h);

    /* A client that connects and says nothing is let go after the idle time. */
    h = pipe_open(name);
    DWORD e = pipe_io(h, 0, buf, sizeof buf - 1, &n, 15000);
    CHECK_MSG(e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED,
              "idle client still connected (Win32 %lu)", (unsigned long)e);
    CloseHandle(h);

    /* Many at once: more clients than pipe instances; every request is answered. */
    enum { WORKERS = 24 };
    static pipe_worker w[WORKERS];
    HANDLE t[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        w[i].name = name;
        t[i] = CreateThread(NULL, 0, pipe_worker_main, &w[i], 0, NULL);
        CHECK(t[i] != NULL);
    }
    for (int i = 0; i < WORKERS; i++) {
        CHECK(WaitForSingleObject(t[i], 120000) == WAIT_OBJECT_0);
        CloseHandle(t[i]);
        CHECK_MSG(w[i].failed == 0, "worker %d: %d failed: %s", i, w[i].failed, w[i].what);
        CHECK_EQ_U(w[i].ok, 25);
    }

    /* And the instance is alive and well. */
    CHECK(WaitForSingleObject(a.process, 0) == WAIT_TIMEOUT);
    CHECK_RUN(&c, 0, "status --name %s", name);
    CHECK_OUT(&c, "a console instance is running");
    child_kill(&a);
}

/* A pretend status pipe made first by another program: it answers every request claiming to
 * be process `claim`. */
typedef struct squatter {
    HANDLE pipe, thread;
    volatile LONG stop;
    DWORD claim;
    wchar_t name[128];
} squatter;

static DWORD WINAPI squatter_main(void *arg)
{
    squatter *q = arg;
    while (!q->stop) {
        if (!ConnectNamedPipe(q->pipe, NULL) && GetLastError() != ERROR_PIPE_CONNECTED)
            break;
        char req[64], answer[200];
        DWORD n = 0;
        if (!q->stop && ReadFile(q->pipe, req, sizeof req, &n, NULL)) {
            int len = snprintf(answer, sizeof answer,
                               "OK\nname=x\nmode=console\naddress=SQUATTED\npid=%lu\n",
                               (unsigned long)q->claim);
            WriteFile(q->pipe, answer, (DWORD)len, &n, NULL);
            FlushFileBuffers(q->pipe);
        }
        DisconnectNamedPipe(q->pipe);
    }
    return 0;
}

static void squatter_start(squatter *q, const char *name)
{
    memset(q, 0, sizeof *q);
    swprintf(q->name, 128, L"\\\\.\\pipe\\iocp-service-%hs", name);
    q->pipe = CreateNamedPipeW(q->name, PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
                               PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT, 1, 4096, 4096,
                               0, NULL);
    CHECK(q->pipe != INVALID_HANDLE_VALUE);
    q->thread = CreateThread(NULL, 0, squatter_main, q, 0, NULL);
    CHECK(q->thread != NULL);
}

static void squatter_stop(squatter *q)
{
    InterlockedExchange(&q->stop, 1);
    /* Wake its ConnectNamedPipe with a client of our own. */
    HANDLE h = CreateFileW(q->name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    CHECK(WaitForSingleObject(q->thread, 10000) == WAIT_OBJECT_0);
    if (h != INVALID_HANDLE_VALUE)
        CloseHandle(h);
    CloseHandle(q->thread);
    CloseHandle(q->pipe);
}

/* Another program made the status pipe's name first: the server starts anyway and says so,
 * and `status` does not believe what the squatter answers. Another program made the mutex
 * first: the refusal says the name is taken and how to free it. */
static void squatted_names(void)
{
    char name[64], args[300];
    static child a, c;
    static squatter q;
    snprintf(name, sizeof name, "iocpt-sq-%lu", (unsigned long)GetCurrentProcessId());
    squatter_start(&q, name);
    snprintf(args, sizeof args, "run --port 0 --name %s", name);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    CHECK_OUT(&a, "serving without a status pipe");
    CHECK_OUT(&a, "another program has taken the name");
    q.claim = a.pid; /* it pretends to be the instance */
    CHECK_RUN(&c, 5, "status --name %s", name);
    CHECK_OUT(&c, "answer ignored");
    CHECK_MSG(strstr(c.text, "SQUATTED") == NULL, "printed the squatter's answer:\n%s", c.text);
    child_kill(&a);
    squatter_stop(&q);

    wchar_t wmutex[SVC_NAME_MAX + 240];
    svc_instance_mutex_name(name, wmutex, SVC_NAME_MAX + 240);
    HANDLE m = CreateMutexW(NULL, TRUE, wmutex);
    CHECK(m != NULL);
    CHECK_RUN(&c, 3, "run --port 0 --name %s", name);
    CHECK_OUT(&c, "another program has taken the name");
    CHECK_OUT(&c, "handle.exe");
    CloseHandle(m);

    /* The machine-wide name any user could take, locked so that nobody else may open it:
     * a console's instance is its user's own, so it starts all the same. */
    PSECURITY_DESCRIPTOR sd = NULL;
    CHECK(ConvertStringSecurityDescriptorToSecurityDescriptorW(L"D:P", SDDL_REVISION_1, &sd, NULL));
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    swprintf(wmutex, SVC_NAME_MAX + 240, L"Global\\iocp-service-%hs", name);
    m = CreateMutexW(&sa, TRUE, wmutex);
    LocalFree(sd);
    CHECK(m != NULL);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    child_kill(&a);
    CloseHandle(m);
}

/* ---- install's checks ------------------------------------------------------------------ */

/* An executable others may change is refused, naming it, who may change it and the way out;
 * nothing is registered. The override installs with a warning. */
static void install_refuses_unsafe_location(void)
{
    char name[64];
    static child c;
    service_name(name, sizeof name, "unsafe");
    CHECK_RUN(&c, SVC_EXIT_UNSAFE, "install --name %s --port 0", name);
    CHECK_OUT(&c, "the executable ");
    CHECK_OUT(&c, "iocp-service.exe: ");
    CHECK_OUT(&c, " may change it (");
    CHECK_OUT(&c, "not installed");
    CHECK_OUT(&c, "C:\\Program Files\\iocp-service");
    CHECK_OUT(&c, "--allow-unsafe-location");
    CHECK_RUN(&c, 5, "status --name %s", name);
    CHECK_OUT(&c, "no service named");

    CHECK_RUN(&c, 0, "install --allow-unsafe-location --name %s --port 0", name);
    CHECK_OUT(&c, "iocp-service: warning: the executable ");
    CHECK_OUT(&c, "installed service");
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

/* Runs install with standard input from a pipe holding `input` (NULL: an empty input). */
static DWORD install_with_input(child *c, const char *input, const char *fmt, const char *name)
{
    char args[1024];
    HANDLE r, w;
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    DWORD n;
    snprintf(args, sizeof args, fmt, name);
    CHECK(CreatePipe(&r, &w, &sa, 4096));
    CHECK(SetHandleInformation(w, HANDLE_FLAG_INHERIT, 0));
    if (input != NULL)
        CHECK(WriteFile(w, input, (DWORD)strlen(input), &n, NULL));
    CloseHandle(w); /* the input ends here */
    child_start_in(c, args, r);
    CloseHandle(r);
    DWORD code = child_finish(c, 90000);
    printf("$ iocp-service %s < %s  -> %lu\n%s", args, input ? "(a line)" : "(nothing)",
           (unsigned long)code, c->text);
    return code;
}

/* An account with a password: the password comes from standard input, never needs the
 * command line; no input, no install. The built-in accounts are never asked. */
static void install_password_from_stdin(void)
{
    char name[64];
    static child c;
    service_name(name, sizeof name, "pw");
    const char *user = "install --allow-unsafe-location --name %s --port 0 --account "
                       ".\\iocpt-user";
    CHECK_EQ_U(install_with_input(&c, NULL, user, name), SVC_EXIT_USAGE);
    CHECK_OUT(&c, "needs a password");
    CHECK_OUT(&c, "standard input");
    CHECK_RUN(&c, 5, "status --name %s", name);

    DWORD code = install_with_input(&c, "Secret-123\r\n", user, name);
    CHECK_MSG(strstr(c.text, "Secret-123") == NULL, "the password was printed:\n%s", c.text);
    CHECK_MSG(strstr(c.text, "needs a password") == NULL, "%s", c.text);
    CHECK_EQ_U(code, 0);
    CHECK_OUT(&c, "account: .\\iocpt-user");
    CHECK_RUN(&c, 0, "uninstall --name %s", name);

    /* --password still works, with a warning; a built-in account reads nothing. */
    CHECK_RUN(&c, 0,
              "install --allow-unsafe-location --name %s --port 0 --account .\\iocpt-user "
              "--password Secret-456",
              name);
    CHECK_OUT(&c, "warning: a password on the command line");
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
    CHECK_EQ_U(install_with_input(&c, NULL,
                                  "install --allow-unsafe-location --name %s --port 0 "
                                  "--account \"NT AUTHORITY\\NetworkService\"",
                                  name),
               0);
    CHECK_MSG(strstr(c.text, "password") == NULL, "%s", c.text);
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

/* ---- what status prints from the pipe ------------------------------------------------------ */

/* A pipe server that answers like an instance would, with escape sequences in its text. */
static size_t hostile_answer(void *user, const char *req, size_t len, char *resp, size_t size,
                             int *close_after)
{
    /* It is the instance (it holds the mutex, and claims its own pid): status believes it. */
    char text[300];
    int n = snprintf(text, sizeof text,
                     "OK\nname=x\nmode=co\x1b[1mn\x07"
                     "sole\naddress=[::]:1\xc2\x9b"
                     "31m\x1b[2J\r\npid=%lu\ndraining=0\nuptime_ms=1\n",
                     (unsigned long)GetCurrentProcessId());
    (void)user;
    (void)req;
    (void)len;
    *close_after = 0;
    CHECK(n > 0 && size >= (size_t)n);
    memcpy(resp, text, (size_t)n);
    return (size_t)n;
}

static void status_filters_control_characters(void)
{
    char name[64];
    static child c;
    svc_pipe_server *server;
    svc_instance inst;
    DWORD sys;
    char want[80];
    snprintf(name, sizeof name, "iocpt-esc-%lu", (unsigned long)GetCurrentProcessId());
    CHECK(svc_instance_lock(&inst, name, &sys) == SVC_LOCK_OK);
    CHECK_EQ_U(svc_pipe_server_start(name, hostile_answer, NULL, &server), 0);
    CHECK_RUN(&c, 0, "status --name %s", name);
    svc_pipe_server_stop(server);
    svc_instance_unlock(&inst);
    CHECK_MSG(strchr(c.text, 0x1b) == NULL, "an ESC reached the console:\n%s", c.text);
    CHECK_MSG(strchr(c.text, 0x07) == NULL && strstr(c.text, "\xc2\x9b") == NULL, "%s", c.text);
    snprintf(want, sizeof want, "a co?[1mn?sole instance is running (pid %lu)",
             (unsigned long)GetCurrentProcessId());
    CHECK_OUT(&c, want);
    /* The CR before the answer's line end is one '?'; then the console's own line end. */
    const char *addr = strstr(c.text, "listening on [::]:1?31m?[2J?");
    CHECK_MSG(addr != NULL, "%s", c.text);
    addr += strlen("listening on [::]:1?31m?[2J?");
    CHECK_MSG(*addr == '\r' || *addr == '\n', "%s", c.text);
}

/* ---- the status pipe's sessions end -------------------------------------------------------- */

typedef struct keeper {
    const char *name;
    volatile LONG answered; /* requests answered so far */
    uint64_t connected_ms, cut_ms;
    DWORD err; /* what ended it; 0 = it was never cut */
} keeper;

/* A client the pipe allows that asks every second and never lets go by itself. */
static DWORD WINAPI keeper_main(void *arg)
{
    keeper *k = arg;
    HANDLE h = pipe_open(k->name);
    k->connected_ms = test_now_ms();
    for (;;) {
        char buf[SVC_PROTO_ANSWER_MAX + 1];
        DWORD n;
        DWORD e = pipe_io(h, 1, "PING", 4, &n, 5000);
        if (e == NO_ERROR)
            e = pipe_io(h, 0, buf, sizeof buf - 1, &n, 5000);
        if (e != NO_ERROR) {
            k->err = e;
            break;
        }
        InterlockedIncrement(&k->answered);
        if (test_now_ms() - k->connected_ms > 3 * SVC_PIPE_SESSION_MS)
            break;   /* never cut: the case fails on err == 0 */
        Sleep(1000); /* the client's pace, a request a second: not a synchronisation */
    }
    k->cut_ms = test_now_ms();
    CloseHandle(h);
    return 0;
}

static void status_pipe_session_lifetime(void)
{
    char name[64], args[200];
    static child a, c;
    enum { KEEPERS = 8 }; /* as many as the pipe has instances */
    static keeper k[KEEPERS];
    HANDLE t[KEEPERS];
    snprintf(name, sizeof name, "iocpt-life-%lu", (unsigned long)GetCurrentProcessId());
    snprintf(args, sizeof args, "run --port 0 --name %s", name);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    for (int i = 0; i < KEEPERS; i++) {
        k[i].name = name;
        t[i] = CreateThread(NULL, 0, keeper_main, &k[i], 0, NULL);
        CHECK(t[i] != NULL);
    }
    /* Every instance is held by a client that keeps asking. */
    uint64_t deadline = test_now_ms() + 20000;
    for (int i = 0; i < KEEPERS; i++)
        while (k[i].answered == 0 && test_now_ms() < deadline)
            test_pause();
    for (int i = 0; i < KEEPERS; i++)
        CHECK_MSG(k[i].answered > 0, "keeper %d never got an answer", i);

    /* status still gets through: the sessions end, and it waits longer than one lives. */
    uint64_t t0 = test_now_ms();
    CHECK_RUN(&c, 0, "status --name %s", name);
    CHECK_OUT(&c, "a console instance is running");
    printf("status took %llu ms with %d clients holding every instance\n",
           (unsigned long long)(test_now_ms() - t0), KEEPERS);

    for (int i = 0; i < KEEPERS; i++) {
        CHECK(WaitForSingleObject(t[i], 60000) == WAIT_OBJECT_0);
        CloseHandle(t[i]);
        uint64_t lived = k[i].cut_ms - k[i].connected_ms;
        printf("keeper %d: %ld answers, cut after %llu ms (Win32 %lu)\n", i, k[i].answered,
               (unsigned long long)lived, (unsigned long)k[i].err);
        CHECK_MSG(k[i].err == ERROR_BROKEN_PIPE || k[i].err == ERROR_PIPE_NOT_CONNECTED,
                  "keeper %d was not cut (Win32 %lu)", i, (unsigned long)k[i].err);
        /* Its requests kept it past the idle time; the lifetime ended it. */
        CHECK_MSG(lived >= SVC_PIPE_SESSION_MS - 1000 && lived < SVC_PIPE_SESSION_MS + 4000,
                  "keeper %d lived %llu ms", i, (unsigned long long)lived);
        CHECK(k[i].answered >= 6);
    }
    /* And after them, status answers at once. */
    CHECK_RUN(&c, 0, "status --name %s", name);
    CHECK_OUT(&c, "a console instance is running");
    child_kill(&a);
}

/* `run` with a PFX: under Wine 8 (no server-side Schannel) the engine's self-check refuses
 * it, exit 2 naming SEC_E_UNSUPPORTED_FUNCTION; where the server role exists it listens, a TLS
 * client echoes, and `status` counts the handshake. The password also comes from standard
 * input ("-" or left out); a wrong one is refused at start, naming it, on every system. */
static void tls_console(void)
{
    char name[64], args[MAX_PATH * 3 + 200], pfx[MAX_PATH * 2];
    static child a, c;
    snprintf(name, sizeof name, "iocpt-tls-%lu", (unsigned long)GetCurrentProcessId());
    snprintf(pfx, sizeof pfx, "%s/server.pfx", IOCP_TLS_DIR);

    CHECK_RUN(&c, 2, "run --name %s --port 0 --tls-pfx \"%s\" --tls-password wrong", name, pfx);
    CHECK_OUT(&c, "cannot start the server");
    CHECK_OUT(&c, "wrong password");

    snprintf(args, sizeof args, "run --name %s --port 0 --bind 127.0.0.1 --tls-pfx \"%s\" %s", name,
             pfx, "--tls-password iocp-test");
    if (!test_tls_server_role()) {
        CHECK_RUN(&c, 2, "%s", args);
        CHECK_OUT(&c, "cannot start the server");
        CHECK_OUT(&c, "SEC_E_UNSUPPORTED_FUNCTION");
        CHECK_RUN(&c, 5, "status --name %s", name); /* no service, no console instance */
    } else {
        child_start(&a, args);
        CHECK_MSG(child_wait_line(&a, "listening on", 30000), "%s", a.text);
        uint16_t port = port_of(&a);
        tls_echo_once(port, "hello over TLS\n");
        CHECK_RUN(&c, 0, "status --name %s", name);
        CHECK_OUT(&c, "tls: on (PFX ");
        CHECK_OUT(&c, "handshakes: 1 completed, 0 failed");
        child_kill(&a);
    }
    /* The password as one line of standard input: "-", or no --tls-password at all. */
    static const char *const forms[] = {"--tls-password -", ""};
    for (size_t i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "run --name %s --port 0 --tls-pfx \"%s\" %s", name, pfx,
                 forms[i]);
        CHECK_EQ_U(install_with_input(&c, "wrong\r\n", "%s", args), SVC_EXIT_CANNOT_START);
        CHECK_OUT(&c, "wrong password");
        CHECK_MSG(strstr(c.text, "warning: a password on the command line") == NULL, "%s", c.text);
        CHECK_EQ_U(install_with_input(&c, NULL, "%s", args), SVC_EXIT_USAGE);
        CHECK_OUT(&c, "the PFX file");
        CHECK_OUT(&c, "needs a password");
    }
}

/* install with a PFX: the password is in the registry only as a DPAPI blob; the service
 * decrypts it at start (a wrong one stored is named in the log; under Wine 8 the right one
 * gets as far as the missing server-side Schannel); where TLS serves, it echoes and `status`
 * counts the handshake. */
static void tls_service(void)
{
    char name[64], log[MAX_PATH * 3], pfx[MAX_PATH * 2];
    static child c;
    service_name(name, sizeof name, "tls");
    log_path(log, sizeof log, name);
    snprintf(pfx, sizeof pfx, "%s/server.pfx", IOCP_TLS_DIR);

    /* A wrong password, stored: the service names it. */
    CHECK_RUN(&c, 0,
              "install --allow-unsafe-location --name %s --port 0 --bind 127.0.0.1 --log-file "
              "\"%s\" --tls-pfx \"%s\" --tls-password not-it",
              name, log, pfx);
    CHECK_OUT(&c, "TlsPasswordProtected = (set, not shown)");
    CHECK_MSG(strstr(c.text, "not-it") == NULL, "the password was printed:\n%s", c.text);
    registry_lacks(name, "not-it");
    CHECK_RUN(&c, 2, "start --name %s", name);
    CHECK_OUT(&c, "failed to start");
    CHECK(log_has(log, "wrong password", 5000));
    CHECK_RUN(&c, 0, "uninstall --name %s", name);

    /* The right one, read from standard input. */
    char args[MAX_PATH * 6];
    snprintf(args, sizeof args,
             "install --allow-unsafe-location --name %%s --port 0 --bind 127.0.0.1 --log-file "
             "\"%s\" --tls-pfx \"%s\" --tls-password -",
             log, pfx);
    CHECK_EQ_U(install_with_input(&c, "iocp-test\n", args, name), 0);
    CHECK_MSG(strstr(c.text, "iocp-test") == NULL, "the password was printed:\n%s", c.text);
    registry_lacks(name, "iocp-test");
    if (!test_tls_server_role()) {
        CHECK_RUN(&c, 2, "start --name %s", name);
        CHECK_OUT(&c, "failed to start");
        CHECK(log_has(log, "SEC_E_UNSUPPORTED_FUNCTION", 5000));
        CHECK(log_has(log, "cannot start the server", 1000));
    } else {
        CHECK_RUN(&c, 0, "start --name %s", name);
        uint16_t port = port_of(&c);
        CHECK(log_has(log, "TLS with PFX ", 5000));
        tls_echo_once(port, "service TLS\n");
        CHECK_RUN(&c, 0, "status --name %s", name);
        CHECK_OUT(&c, "tls: on (PFX ");
        CHECK_OUT(&c, "handshakes: 1 completed, 0 failed");
        /* Plaintext on the TLS port: a failed handshake, counted. */
        SOCKET s = connect_local(port);
        send_all(s, "plain\n", 6);
        CHECK(tn_wait_closed(s, 15000));
        closesocket(s);
        CHECK_RUN(&c, 0, "status --name %s", name);
        CHECK_OUT(&c, "handshakes: 1 completed, 1 failed");
    }
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
    if (test_tls_server_role())
        CHECK(log_has(log, "tls_handshakes=1 tls_failures=1", 5000));
}

/* `list`: a running service and a console, each with its kind, process and address; a
 * stopped service with the port it will take. */
static void list_instances(void)
{
    char name[64], stopped[64], console[64], args[300], want[200];
    static child c, a;
    service_name(name, sizeof name, "lsrv");
    service_name(stopped, sizeof stopped, "lstop");
    snprintf(console, sizeof console, "iocpt-lcon-%lu", (unsigned long)GetCurrentProcessId());
    CHECK_RUN(&c, 0, "install --allow-unsafe-location --name %s --port 0", name);
    CHECK_RUN(&c, 0, "install --allow-unsafe-location --name %s --port 0", stopped);
    CHECK_RUN(&c, 0, "start --name %s", name);
    uint16_t service_port = port_of(&c);
    snprintf(args, sizeof args, "run --port 0 --name %s", console);
    child_start(&a, args);
    CHECK_MSG(child_wait_line(&a, "listening on", 20000), "%s", a.text);
    uint16_t console_port = port_of(&a);

    CHECK_RUN(&c, 0, "list");
    CHECK_OUT(&c, "NAME ");
    CHECK_OUT(&c, "LISTENING");
    const char *row = strstr(c.text, name);
    CHECK_MSG(row != NULL, "no row for %s", name);
    snprintf(want, sizeof want, "service  RUNNING ");
    CHECK(strncmp(row + 25, want, strlen(want)) == 0);
    snprintf(want, sizeof want, "]:%u", (unsigned)service_port);
    const char *at = strstr(row, want);
    CHECK_MSG(at != NULL && (at[strlen(want)] == '\r' || at[strlen(want)] == '\n'),
              "no '%s' at the end of its row", want);
    row = strstr(c.text, stopped);
    CHECK_MSG(row != NULL, "no row for %s", stopped);
    CHECK(strncmp(row + 25, "service  STOPPED   -       (port 0 when started)", 48) == 0);
    row = strstr(c.text, console);
    CHECK_MSG(row != NULL, "no row for %s", console);
    snprintf(want, sizeof want, "console  RUNNING   %-7lu [::]:%u", (unsigned long)a.pid,
             (unsigned)console_port);
    CHECK_MSG(strncmp(row + 25, want, strlen(want)) == 0, "row: %.80s, wanted %s", row + 25, want);

    child_kill(&a);
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
    CHECK_RUN(&c, 0, "uninstall --name %s", stopped);
    CHECK_RUN(&c, 0, "list");
    CHECK(strstr(c.text, name) == NULL && strstr(c.text, console) == NULL);
}

/* ---- a service made by sc.exe -------------------------------------------------------------- */

/* Runs Windows' (Wine's) sc.exe to its end; its output stays in *c. */
static DWORD run_sc(tp_child *c, const char *fmt, ...)
{
    char args[2048], sc[MAX_PATH * 3];
    wchar_t sys[MAX_PATH];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    CHECK(GetSystemDirectoryW(sys, MAX_PATH) > 0);
    char dir[MAX_PATH * 3];
    svc_narrow(sys, dir, sizeof dir);
    snprintf(sc, sizeof sc, "%s\\sc.exe", dir);
    tp_free(c);
    tp_start(c, sc, args, NULL, 1, 0);
    CHECK_MSG(tp_wait(c, 60000), "sc %s did not finish", args);
    printf("$ sc %s  -> %lu\n%s", args, (unsigned long)c->exit_code, c->out);
    return (DWORD)c->exit_code;
}

/* `status` until it exits with want (0 running, 7 stopped), within 30 s. */
static void wait_status(child *c, const char *name, DWORD want)
{
    uint64_t deadline = test_now_ms() + 30000;
    while (run(c, "status --name %s", name) != want) {
        CHECK_MSG(test_now_ms() < deadline, "service '%s' did not reach status %lu", name,
                  (unsigned long)want);
        Sleep(200);
    }
}

/* service/README.md's recipe with sc.exe alone (its virtual account too): no Parameters key
 * and no Event Log source. The service starts on the defaults (status says so, and how to add
 * the source); start parameters give it port 0 here, as tests take no fixed port, and it
 * starts on demand, not at boot. Then echo, stop, delete. */
static void sc_create_recipe(void)
{
    char name[64], exe[MAX_PATH * 3];
    wchar_t wexe[MAX_PATH];
    static child c;
    static tp_child sc;
    service_name(name, sizeof name, "sc");
    tp_program_path(service_exe(), wexe, MAX_PATH);
    svc_narrow(wexe, exe, sizeof exe);
    CHECK_EQ_U(run_sc(&sc,
                      "create %s binPath= \"\\\"%s\\\" service --name %s\" start= demand "
                      "obj= \"NT SERVICE\\%s\"",
                      name, exe, name, name),
               0);
    CHECK_RUN(&c, 7, "status --name %s", name);
    CHECK_OUT(&c, "options: the defaults (no Parameters key)");
    CHECK_OUT(&c, "has no Parameters key (made with sc create?): it runs on the defaults");
    CHECK_OUT(&c, "has no Event Log source");
    CHECK_OUT(&c, "/v EventMessageFile /t REG_EXPAND_SZ /d");
    CHECK_OUT(&c, "start: demand (manual)");
    char account[100];
    snprintf(account, sizeof account, "account: NT SERVICE\\%s", name);
    CHECK_OUT(&c, account);
    CHECK_OUT(&c, "service --name ");

    CHECK_EQ_U(run_sc(&sc, "start %s --port 0", name), 0);
    wait_status(&c, name, 0);
    const char *at = strstr(c.text, "listening on ");
    CHECK_MSG(at != NULL, "%s", c.text);
    const char *colon = strchr(at, ']');
    CHECK(colon != NULL && colon[1] == ':');
    unsigned port = (unsigned)strtoul(colon + 2, NULL, 10);
    CHECK(port > 0 && port < 65536);
    SOCKET s = connect_local((uint16_t)port);
    echo_once(s, "made by sc.exe");
    closesocket(s);

    CHECK_EQ_U(run_sc(&sc, "stop %s", name), 0);
    wait_status(&c, name, 7);
    CHECK_EQ_U(run_sc(&sc, "delete %s", name), 0);
    CHECK_RUN(&c, 5, "status --name %s", name);
    tp_free(&sc);
}

/* ---- live reconfiguration (configure.c) -------------------------------------------------- */

typedef struct talker {
    SOCKET s;
    volatile LONG stop;
    volatile LONG echoed; /* exact echoes */
    volatile LONG failed; /* an echo that did not come back whole */
} talker;

/* Echoes a numbered line every 200 ms until told to stop: under a 1 s idle timeout. */
static DWORD WINAPI talker_main(void *arg)
{
    talker *t = arg;
    while (!t->stop) {
        char msg[64], back[64];
        int len = snprintf(msg, sizeof msg, "talk %ld\n", (long)t->echoed);
        if (tn_send_all(t->s, msg, (size_t)len) != 0 ||
            tn_recv_exact(t->s, back, (size_t)len) != (size_t)len ||
            memcmp(back, msg, (size_t)len) != 0) {
            InterlockedExchange(&t->failed, 1);
            return 0;
        }
        InterlockedIncrement(&t->echoed);
        Sleep(200); /* the pace of a talking client, not a wait for an event */
    }
    return 0;
}

static DWORD stored_dword(const char *name, const wchar_t *value)
{
    wchar_t key[200];
    DWORD v = 0, size = sizeof v;
    svc_params_path(name, key, 200);
    CHECK(RegGetValueW(HKEY_LOCAL_MACHINE, key, value, RRF_RT_REG_DWORD, NULL, &v, &size) ==
          ERROR_SUCCESS);
    return v;
}

/* Installed with a 300 s idle timeout, a silent client stays; `configure --idle-timeout 1`
 * says it applied live, closes the silent client within seconds and not the talking one;
 * --port says it needs a restart (the service keeps its port); a bad value changes nothing;
 * `sc control N paramchange` after a registry edit applies it as well. */
static void configure_live(void)
{
    char name[64], log[MAX_PATH * 3];
    static child c;
    static talker t;
    service_name(name, sizeof name, "conf");
    log_path(log, sizeof log, name);
    CHECK_RUN(&c, 0,
              "install --allow-unsafe-location --name %s --port 0 --idle-timeout 300 --log-file "
              "\"%s\"",
              name, log);
    CHECK_RUN(&c, 0, "start --name %s", name);
    uint16_t port = port_of(&c);
    SOCKET silent = connect_local(port);
    echo_once(silent, "then silence\n");
    memset(&t, 0, sizeof t);
    t.s = connect_local(port);
    HANDLE thread = CreateThread(NULL, 0, talker_main, &t, 0, NULL);
    CHECK(thread != NULL);

    CHECK_RUN(&c, 0, "configure --name %s --idle-timeout 1", name);
    CHECK_OUT(&c, "applied live: --idle-timeout 1 (was 300)");
    CHECK(strstr(c.text, "needs a restart") == NULL);
    uint64_t t0 = test_now_ms();
    CHECK_MSG(tn_wait_closed(silent, 10000), "the silent client is still open 10 s later");
    printf("the silent client was closed %llu ms after configure returned\n",
           (unsigned long long)(test_now_ms() - t0));
    closesocket(silent);
    CHECK(log_has(log, "parameter change: applied live: --idle-timeout 1 (was 300)", 5000));
    LONG before = t.echoed;
    uint64_t deadline = test_now_ms() + 10000;
    while (t.echoed < before + 5 && !t.failed && test_now_ms() < deadline)
        Sleep(50); /* polls the talker's count against a deadline */
    CHECK_MSG(!t.failed && t.echoed >= before + 5, "the talking client stopped after %ld echoes",
              (long)t.echoed);
    InterlockedExchange(&t.stop, 1);
    WaitForSingleObject(thread, INFINITE);
    CloseHandle(thread);
    CHECK(!t.failed);
    closesocket(t.s);

    CHECK_RUN(&c, 0, "configure --name %s --port 1234", name);
    CHECK_OUT(&c, "needs a restart");
    CHECK_OUT(&c, "--port 1234 (was 0)");
    CHECK(strstr(c.text, "applied live") == NULL);
    CHECK_EQ_U(stored_dword(name, L"Port"), 1234);
    CHECK_RUN(&c, 0, "status --name %s", name);
    CHECK_OUT(&c, "Port=1234");
    CHECK_OUT(&c, "any other changed since the start applies at the next start");
    SOCKET again = connect_local(port); /* the port in force is still the one it started on */
    echo_once(again, "same port\n");
    closesocket(again);

    CHECK_RUN(&c, 1, "configure --name %s --idle-timeout abc", name);
    CHECK_OUT(&c, "--idle-timeout needs a whole number");
    CHECK_EQ_U(stored_dword(name, L"IdleTimeout"), 1);

    /* A registry edit, then the SCM's control: the service reads it (its log says so). */
    wchar_t key[200];
    DWORD v = 300;
    svc_params_path(name, key, 200);
    CHECK(RegSetKeyValueW(HKEY_LOCAL_MACHINE, key, L"IdleTimeout", REG_DWORD, &v, sizeof v) ==
          ERROR_SUCCESS);
    static tp_child sc;
    DWORD code = run_sc(&sc, "control %s paramchange", name);
    if (code != 0) {
        /* Wine's sc.exe may not know `control`: send the same control directly. */
        SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
        wchar_t wname[64];
        svc_widen(name, wname, 64);
        SC_HANDLE svc = OpenServiceW(scm, wname, SERVICE_PAUSE_CONTINUE);
        SERVICE_STATUS st;
        CHECK(svc != NULL && ControlService(svc, SERVICE_CONTROL_PARAMCHANGE, &st));
        CloseServiceHandle(svc);
        CloseServiceHandle(scm);
    }
    CHECK(log_has(log, "applied live: --idle-timeout 300 (was 1)", 5000));
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

/* configure while a client connects every few milliseconds and 20 long-lived connections
 * echo (the take-over tests' load): the changes apply live and nobody notices: 0 connects
 * refused, 0 resets, every echo exact, the long-lived connections echo after it. */
static void configure_under_load(void)
{
    char name[64], log[MAX_PATH * 3];
    static child c;
    service_name(name, sizeof name, "confload");
    log_path(log, sizeof log, name);
    CHECK_RUN(&c, 0,
              "install --allow-unsafe-location --name %s --bind 127.0.0.1 --port 0 --idle-timeout "
              "300 --max-connections-per-ip 500 --log-file \"%s\"",
              name, log);
    CHECK_RUN(&c, 0, "start --name %s", name);
    uint16_t port = port_of(&c);
    SOCKET held[20];
    char msg[64];
    for (int i = 0; i < 20; i++) {
        held[i] = connect_local(port);
        snprintf(msg, sizeof msg, "long-lived %d before\n", i);
        echo_once(held[i], msg);
    }
    churn load;
    churn_start(&load, port);
    uint64_t deadline = test_now_ms() + 30000;
    while (load.connects < 20 && test_now_ms() < deadline)
        Sleep(10); /* polls the client's count against a deadline */
    CHECK_MSG(load.connects >= 20, "the connecting client made %ld connections in 30 s",
              (long)load.connects);

    LONG before = load.connects;
    CHECK_RUN(&c, 0,
              "configure --name %s --idle-timeout 120 --max-connections-per-ip 400 "
              "--drain-timeout 7",
              name);
    CHECK_OUT(&c, "applied live: ");
    CHECK_OUT(&c, "--idle-timeout 120 (was 300)");
    CHECK_OUT(&c, "--max-connections-per-ip 400 (was 500)");
    CHECK(strstr(c.text, "needs a restart") == NULL);
    CHECK(log_has(log, "parameter change: applied live: ", 10000));
    LONG at = load.connects;
    deadline = test_now_ms() + 30000;
    while (load.connects < at + 50 && test_now_ms() < deadline)
        Sleep(10);
    CHECK_MSG(load.connects >= at + 50, "the client stalled after configure");
    for (int i = 0; i < 20; i++) {
        snprintf(msg, sizeof msg, "long-lived %d after\n", i);
        echo_once(held[i], msg);
        closesocket(held[i]);
    }
    churn_stop(&load);
    printf("configure under load: %ld connects (%ld while configure ran), %ld refused, %ld wrong "
           "echoes, %ld resets\n",
           (long)load.connects, (long)(at - before), (long)load.refused, (long)load.wrong_echo,
           (long)load.resets);
    CHECK_EQ_U(load.refused, 0);
    CHECK_EQ_U(load.wrong_echo, 0);
    CHECK_EQ_U(load.resets, 0);
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

static void stored_blob(const char *name, BYTE *out, DWORD *size)
{
    wchar_t key[200];
    svc_params_path(name, key, 200);
    CHECK(RegGetValueW(HKEY_LOCAL_MACHINE, key, L"TlsPasswordProtected", RRF_RT_REG_BINARY, NULL,
                       out, size) == ERROR_SUCCESS);
}

/* configure leaves the DPAPI-protected TLS password as it is unless --tls-password is given
 * (a re-encryption would differ: DPAPI salts each blob), never prints it, and on a stopped
 * service says the change applies at the next start. */
static void configure_keeps_tls_password(void)
{
    char name[64], pfx[MAX_PATH * 2];
    static child c;
    static BYTE first[4096], second[4096];
    DWORD first_size = sizeof first, second_size = sizeof second;
    service_name(name, sizeof name, "conftls");
    snprintf(pfx, sizeof pfx, "%s/server.pfx", IOCP_TLS_DIR);
    CHECK_RUN(&c, 0,
              "install --allow-unsafe-location --name %s --port 0 --tls-pfx \"%s\" --tls-password "
              "first-secret",
              name, pfx);
    stored_blob(name, first, &first_size);
    CHECK_RUN(&c, 0, "configure --name %s --idle-timeout 5", name);
    CHECK_OUT(&c, "not running: everything applies at its next start");
    CHECK_OUT(&c, "--idle-timeout 5 (was 300)");
    stored_blob(name, second, &second_size);
    CHECK(first_size == second_size && memcmp(first, second, first_size) == 0);
    CHECK_EQ_U(stored_dword(name, L"IdleTimeout"), 5);

    CHECK_RUN(&c, 0, "configure --name %s --tls-password other-secret", name);
    CHECK_OUT(&c, "--tls-password");
    CHECK_MSG(strstr(c.text, "other-secret") == NULL, "the password was printed:\n%s", c.text);
    registry_lacks(name, "other-secret");
    second_size = sizeof second;
    stored_blob(name, second, &second_size);
    CHECK(first_size != second_size || memcmp(first, second, first_size) != 0);
    CHECK_RUN(&c, 0, "uninstall --name %s", name);
}

static const test_case cases[] = {
    {"usage_and_exit_codes", usage_and_exit_codes},
    {"lifecycle", lifecycle},
    {"install_configuration", install_configuration},
    {"second_instance_console", second_instance_console},
    {"second_instance_service", second_instance_service},
    {"port_in_use", port_in_use},
    {"bad_parameter", bad_parameter},
    {"memory_budget_refused", memory_budget_refused},
    {"per_ip_limit", per_ip_limit},
    {"silent_connections_expire", silent_connections_expire},
    {"stop_under_load", stop_under_load},
    {"stop_with_stuck_client", stop_with_stuck_client},
    {"protocol_errors_counted", protocol_errors_counted},
    {"status_pipe_abuse", status_pipe_abuse},
    {"squatted_names", squatted_names},
    {"log_rate_limited", log_rate_limited},
    {"log_file_refused", log_file_refused},
    {"install_refuses_unsafe_location", install_refuses_unsafe_location},
    {"install_password_from_stdin", install_password_from_stdin},
    {"status_filters_control_characters", status_filters_control_characters},
    {"status_pipe_session_lifetime", status_pipe_session_lifetime},
    {"tls_console", tls_console},
    {"tls_service", tls_service},
    {"log_folder_missing", log_folder_missing},
    {"sc_create_recipe", sc_create_recipe},
    {"list_instances", list_instances},
    {"configure_live", configure_live},
    {"configure_under_load", configure_under_load},
    {"configure_keeps_tls_password", configure_keeps_tls_password},
};

TEST_MAIN(cases)
