/* test_service_unit.c: the pieces of iocp-service that need no service and no engine run:
 * command-line options, the Parameters registry round trip (under HKCU), the status pipe
 * protocol, and the instance mutex (threads stand in for processes). */
#include "harness.h"

#include <string.h>

#include "svc.h"

#include <sddl.h> /* after svc.h: it needs windows.h first */

/* ---- options ------------------------------------------------------------------------------ */

static int parse(svc_options *o, char *err, size_t err_size, const char *a1, const char *a2,
                 const char *a3, const char *a4, const char *a5)
{
    char *argv[7] = {"iocp-service", (char *)a1, (char *)a2, (char *)a3,
                     (char *)a4,     (char *)a5, NULL};
    int argc = 1;
    while (argc < 6 && argv[argc] != NULL)
        argc++;
    return svc_options_parse(argc, argv, o, err, err_size);
}

#define PARSE_OK(o, ...)                                                                           \
    do {                                                                                           \
        char err_[400];                                                                            \
        CHECK_MSG(parse(o, err_, sizeof err_, __VA_ARGS__) == 0, "%s", err_);                      \
    } while (0)

/* Fails unless parsing fails with an error containing `want`. */
static void parse_fails(const char *want, const char *a1, const char *a2, const char *a3,
                        const char *a4)
{
    svc_options o;
    char err[400];
    CHECK_MSG(parse(&o, err, sizeof err, a1, a2, a3, a4, NULL) != 0, "accepted %s %s %s %s", a1,
              a2 ? a2 : "", a3 ? a3 : "", a4 ? a4 : "");
    CHECK_MSG(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

static void options_defaults(void)
{
    svc_options o;
    PARSE_OK(&o, "run", NULL, NULL, NULL, NULL);
    CHECK(o.command == SVC_CMD_RUN);
    CHECK(strcmp(o.name, "iocp-echo") == 0);
    CHECK_EQ_U(o.server.port, 9000);
    CHECK(o.server.bind[0] == '\0');
    CHECK_EQ_U(o.server.max_connections, 1024);
    CHECK_EQ_U(o.server.buffer_size, 16384);
    CHECK(o.server.framing == IOCP_FRAMING_RAW);
    CHECK_EQ_U(o.server.max_message, IOCP_DEFAULT_MAX_MESSAGE);
    /* A public server's timeouts by default (the engine's own default is "never" for the
     * first two). */
    CHECK_EQ_U(o.server.idle_timeout_s, 300);
    CHECK_EQ_U(o.server.message_timeout_s, 60);
    CHECK_EQ_U(o.server.send_timeout_s, 60);
    iocp_config dc;
    svc_server_config(&o.server, &dc);
    CHECK_EQ_U(dc.idle_timeout_ms, 300000);
    CHECK_EQ_U(dc.message_timeout_ms, 60000);
    CHECK_EQ_U(dc.send_timeout_ms, 60000);
    CHECK_EQ_U(o.server.workers, 0);
    CHECK_EQ_U(o.server.drain_timeout_s, 10);
    /* A public server's limits: one address holds a quarter of the slots at most, 1 MiB of
     * echo is queued per peer at most, and the budget follows the machine. */
    CHECK_EQ_U(o.server.max_connections_per_ip, 256);
    CHECK_EQ_U(o.server.send_queue_cap, 1024 * 1024);
    CHECK_EQ_U(o.server.memory_budget_mib, 0);
    CHECK_EQ_U(dc.max_connections_per_address, 256);
    CHECK_EQ_U(dc.send_queue_cap, 1024 * 1024);
    CHECK(o.server.log_file[0] == '\0');

    PARSE_OK(&o, "install", NULL, NULL, NULL, NULL);
    CHECK(o.start_type == SVC_START_DEMAND);
    CHECK(strcmp(o.account, "NT AUTHORITY\\LocalService") == 0);
    CHECK(strstr(o.display_name, "iocp-echo") != NULL);
    CHECK(strstr(o.description, "Parameters") != NULL);

    PARSE_OK(&o, NULL, NULL, NULL, NULL, NULL);
    CHECK(o.command == SVC_CMD_NONE);
    PARSE_OK(&o, "--help", NULL, NULL, NULL, NULL);
    CHECK(o.command == SVC_CMD_HELP);
    PARSE_OK(&o, "status", "--help", NULL, NULL, NULL);
    CHECK(o.command == SVC_CMD_HELP);
}

static void options_every_server_option(void)
{
    char *argv[] = {"iocp-service",
                    "run",
                    "--port",
                    "0",
                    "--bind",
                    "127.0.0.1",
                    "--max-connections",
                    "10",
                    "--buffer-size=512",
                    "--framing",
                    "length",
                    "--max-message",
                    "65536",
                    "--idle-timeout",
                    "30",
                    "--message-timeout",
                    "7",
                    "--send-timeout=0",
                    "--workers",
                    "3",
                    "--drain-timeout=2",
                    "--max-connections-per-ip",
                    "0",
                    "--send-queue-cap",
                    "300000",
                    "--memory-budget=4096",
                    "--log-file",
                    "C:\\x y\\z.log",
                    "--name",
                    "a.b_c-1"};
    svc_options o;
    char err[400];
    CHECK_MSG(svc_options_parse((int)(sizeof argv / sizeof argv[0]), argv, &o, err, sizeof err) ==
                  0,
              "%s", err);
    CHECK_EQ_U(o.server.port, 0);
    CHECK(strcmp(o.server.bind, "127.0.0.1") == 0);
    CHECK_EQ_U(o.server.max_connections, 10);
    CHECK_EQ_U(o.server.buffer_size, 512);
    CHECK(o.server.framing == IOCP_FRAMING_LENGTH);
    CHECK_EQ_U(o.server.max_message, 65536);
    CHECK_EQ_U(o.server.idle_timeout_s, 30);
    CHECK_EQ_U(o.server.message_timeout_s, 7);
    CHECK_EQ_U(o.server.send_timeout_s, 0);
    CHECK_EQ_U(o.server.workers, 3);
    CHECK_EQ_U(o.server.drain_timeout_s, 2);
    CHECK_EQ_U(o.server.max_connections_per_ip, 0);
    CHECK_EQ_U(o.server.send_queue_cap, 300000);
    CHECK_EQ_U(o.server.memory_budget_mib, 4096);
    CHECK(strcmp(o.server.log_file, "C:\\x y\\z.log") == 0);
    CHECK(strcmp(o.name, "a.b_c-1") == 0);

    /* The engine configuration follows, with a send cap large enough for the messages. */
    iocp_config c;
    svc_server_config(&o.server, &c);
    CHECK(c.port == 0 && strcmp(c.bind_address, "127.0.0.1") == 0);
    CHECK_EQ_U(c.idle_timeout_ms, 30000);
    CHECK_EQ_U(c.message_timeout_ms, 7000);
    CHECK_EQ_U(c.send_timeout_ms, 0);
    CHECK(c.framing == IOCP_FRAMING_LENGTH);
    CHECK(c.send_queue_cap >= 2u * (512u + 65536u + 4u));
    CHECK_EQ_U(c.send_queue_cap, 300000); /* already large enough: kept */
    CHECK_EQ_U(c.max_connections_per_address, 0);
}

/* The new limits' ranges: the edges pass, one past them fails naming the option. */
static void options_limits_ranges(void)
{
    svc_options o;
    PARSE_OK(&o, "run", "--max-connections-per-ip", "1000000", NULL, NULL);
    CHECK_EQ_U(o.server.max_connections_per_ip, 1000000);
    PARSE_OK(&o, "install", "--send-queue-cap", "1024", "--memory-budget", "0");
    CHECK_EQ_U(o.server.send_queue_cap, 1024);
    CHECK_EQ_U(o.server.memory_budget_mib, 0);
    PARSE_OK(&o, "run", "--send-queue-cap", "1073741824", "--memory-budget", "16777216");
    CHECK_EQ_U(o.server.send_queue_cap, 1073741824u);
    CHECK_EQ_U(o.server.memory_budget_mib, 16777216u);
    parse_fails("--max-connections-per-ip needs a whole number 0..1000000", "run",
                "--max-connections-per-ip", "-1", NULL);
    parse_fails("out of range", "run", "--max-connections-per-ip", "1000001", NULL);
    parse_fails("out of range", "run", "--send-queue-cap", "1023", NULL);
    parse_fails("out of range", "run", "--send-queue-cap", "1073741825", NULL);
    parse_fails("needs a whole number", "run", "--send-queue-cap", "4M", NULL);
    parse_fails("out of range", "run", "--memory-budget", "16777217", NULL);
    parse_fails("needs a whole number", "run", "--memory-budget", "1.5", NULL);
    parse_fails("'stop' does not take --memory-budget", "stop", "--memory-budget", "1", NULL);
    /* A small cap is raised to what one read's echo needs, as before. */
    PARSE_OK(&o, "run", "--send-queue-cap", "1024", NULL, NULL);
    iocp_config c;
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.send_queue_cap, 2 * 16384);
}

#define GIB (1024ull * 1024ull * 1024ull)

/* The worst case against the budget, with the arithmetic written out. */
static void memory_budget_check(void)
{
    svc_options o;
    char err[600];
    /* The defaults start on a 4 GiB machine: 1,024 x (1 MiB + 16 KiB) = 1,040 MiB <= 2 GiB;
     * on a 2,080 MiB one (budget 1,040 MiB: an exact fit), but not on a 2 GiB one. */
    PARSE_OK(&o, "run", NULL, NULL, NULL, NULL);
    CHECK_MSG(svc_server_memory_check(&o.server, 4 * GIB, err, sizeof err) == 0, "%s", err);
    CHECK_MSG(svc_server_memory_check(&o.server, 2080ull * 1024 * 1024, err, sizeof err) == 0, "%s",
              err);
    CHECK(svc_server_memory_check(&o.server, 2 * GIB, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "worst case 1024 connections x 1.0 MiB (send queue 1.0 MiB + buffer "
                          "16.0 KiB) = 1.0 GiB is over the memory budget of 1.0 GiB (half of the "
                          "2.0 GiB of physical memory)") != NULL,
              "%s", err);
    /* Unknown memory and no budget given: nothing to check against. */
    CHECK(svc_server_memory_check(&o.server, 0, err, sizeof err) == 0);

    /* The engine's 4 MiB cap with line framing: 1,024 x (4 MiB + 1 MiB + 16 KiB) > 4 GiB. */
    PARSE_OK(&o, "run", "--send-queue-cap", "4194304", "--framing", "line");
    o.server.memory_budget_mib = 4096;
    CHECK(svc_server_memory_check(&o.server, 64 * GIB, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "worst case 1024 connections x 5.0 MiB (send queue 4.0 MiB + message "
                          "1.0 MiB + buffer 16.0 KiB) = 5.0 GiB is over the memory budget of "
                          "4.0 GiB: lower --max-connections, --send-queue-cap, --max-message or "
                          "--buffer-size, or raise --memory-budget") != NULL,
              "%s", err);
    o.server.memory_budget_mib = 5136; /* 1,024 x 5.016 MiB exactly */
    CHECK_MSG(svc_server_memory_check(&o.server, 0, err, sizeof err) == 0, "%s", err);
    o.server.memory_budget_mib = 5135;
    CHECK(svc_server_memory_check(&o.server, 0, err, sizeof err) != 0);
    /* The per-IP limit does not change the worst case: many addresses are cheap to have. */
    o.server.max_connections_per_ip = 1;
    CHECK(svc_server_memory_check(&o.server, 0, err, sizeof err) != 0);
}

static void options_install_only(void)
{
    svc_options o;
    PARSE_OK(&o, "install", "--start", "delayed", "--restart-delay", "5");
    CHECK(o.start_type == SVC_START_DELAYED);
    CHECK_EQ_U(o.restart_delay_s, 5);
    PARSE_OK(&o, "install", "--account", "NT AUTHORITY\\NetworkService", "--display-name", "X");
    CHECK(strcmp(o.account, "NT AUTHORITY\\NetworkService") == 0);
    CHECK(strcmp(o.display_name, "X") == 0);
    PARSE_OK(&o, "install", "--start=auto", NULL, NULL, NULL);
    CHECK(o.start_type == SVC_START_AUTO);
    PARSE_OK(&o, "stop", "--timeout", "7", "--name", "n1");
    CHECK_EQ_U(o.timeout_s, 7);
    CHECK(strcmp(o.name, "n1") == 0);
}

static void options_rejected(void)
{
    parse_fails("unknown command", "frobnicate", NULL, NULL, NULL);
    parse_fails("needs a whole number", "run", "--port", "abc", NULL);
    parse_fails("out of range", "run", "--port", "65536", NULL);
    parse_fails("needs a whole number", "run", "--port", "-1", NULL);
    parse_fails("needs a whole number", "run", "--port", "", NULL);
    parse_fails("needs a whole number", "run", "--workers", "99999999999", NULL);
    parse_fails("out of range", "run", "--buffer-size", "511", NULL);
    parse_fails("out of range", "run", "--max-connections", "0", NULL);
    parse_fails("out of range", "run", "--drain-timeout", "3601", NULL);
    parse_fails("raw, line or length", "run", "--framing", "xml", NULL);
    parse_fails("needs a value", "run", "--port", NULL, NULL);
    parse_fails("unknown option", "run", "--prot", "1", NULL);
    parse_fails("unexpected argument", "run", "9000", NULL, NULL);
    parse_fails("'stop' does not take --port", "stop", "--port", "1", NULL);
    parse_fails("'run' does not take --start", "run", "--start", "auto", NULL);
    parse_fails("'status' does not take --timeout", "status", "--timeout", "3", NULL);
    parse_fails("demand, auto or delayed", "install", "--start", "sometimes", NULL);
    parse_fails("not valid", "run", "--name", "a/b", NULL);
    parse_fails("not valid", "run", "--name", "", NULL);
    parse_fails("not valid", "run", "--name", "has space", NULL);
    parse_fails("seconds 1..3600", "start", "--timeout", "0", NULL);
    parse_fails("control character", "run", "--bind", "a\tb", NULL);
    CHECK(svc_name_valid("iocp-echo"));
    CHECK(!svc_name_valid("0123456789012345678901234567890123456789012345678901234567890123x"));
}

/* ---- registry parameters ------------------------------------------------------------------ */

static void params_path_for(wchar_t *path, size_t count)
{
    swprintf(path, count, L"Software\\iocp-service-test-%lu\\Parameters",
             (unsigned long)GetCurrentProcessId());
    path[count - 1] = L'\0';
}

static void params_round_trip(void)
{
    wchar_t path[200];
    char err[400];
    params_path_for(path, sizeof path / sizeof path[0]);
    svc_server_options in, out;
    svc_server_options_init(&in);
    in.port = 4321;
    snprintf(in.bind, sizeof in.bind, "::1");
    in.max_connections = 77;
    in.buffer_size = 1024;
    in.framing = IOCP_FRAMING_LINE;
    in.max_message = 999;
    in.idle_timeout_s = 12;
    in.workers = 2;
    in.drain_timeout_s = 4;
    /* "ete" with both e acute, in UTF-8 */
    snprintf(in.log_file, sizeof in.log_file, "C:\\logs\\\xc3\xa9t\xc3\xa9.log");
    CHECK_EQ_U(svc_params_write(HKEY_CURRENT_USER, path, &in), 0);
    svc_server_options_init(&out);
    CHECK_MSG(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(&in, &out, sizeof in) == 0);

    /* A value the service cannot use is named in the error. */
    HKEY key;
    CHECK(RegOpenKeyExW(HKEY_CURRENT_USER, path, 0, KEY_SET_VALUE, &key) == ERROR_SUCCESS);
    const wchar_t bad[] = L"xml";
    CHECK(RegSetValueExW(key, L"Framing", 0, REG_SZ, (const BYTE *)bad, sizeof bad) == 0);
    svc_server_options_init(&out);
    CHECK_EQ_U(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err),
               ERROR_INVALID_PARAMETER);
    CHECK_MSG(strstr(err, "Framing") != NULL && strstr(err, "xml") != NULL, "%s", err);

    CHECK(RegSetValueExW(key, L"Framing", 0, REG_SZ, (const BYTE *)L"raw", 8) == 0);
    DWORD big = 70000;
    CHECK(RegSetValueExW(key, L"Port", 0, REG_DWORD, (const BYTE *)&big, sizeof big) == 0);
    CHECK_EQ_U(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err),
               ERROR_INVALID_PARAMETER);
    CHECK_MSG(strstr(err, "Port") != NULL && strstr(err, "70000") != NULL, "%s", err);

    CHECK(RegSetValueExW(key, L"Port", 0, REG_SZ, (const BYTE *)L"80", 6) == 0);
    CHECK_EQ_U(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err),
               ERROR_INVALID_PARAMETER);
    CHECK_MSG(strstr(err, "REG_DWORD") != NULL, "%s", err);

    /* Missing values keep their defaults. */
    CHECK(RegDeleteValueW(key, L"Port") == 0);
    svc_server_options_init(&out);
    CHECK_EQ_U(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err), 0);
    CHECK_EQ_U(out.port, 9000);
    CHECK_EQ_U(out.max_connections, 77);
    RegCloseKey(key);

    wchar_t parent[200];
    swprintf(parent, 200, L"Software\\iocp-service-test-%lu", (unsigned long)GetCurrentProcessId());
    CHECK_EQ_U(svc_params_delete(HKEY_CURRENT_USER, parent), 0);
    CHECK_EQ_U(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err),
               ERROR_FILE_NOT_FOUND);
    CHECK_EQ_U(svc_params_delete(HKEY_CURRENT_USER, parent), 0); /* already gone: fine */
}

/* ---- status protocol ------------------------------------------------------------------ */

static void proto_requests(void)
{
    CHECK(svc_proto_parse_request("STATS", 5) == SVC_REQ_STATS);
    CHECK(svc_proto_parse_request("STATS\n", 6) == SVC_REQ_STATS);
    CHECK(svc_proto_parse_request("INFO\r\n", 6) == SVC_REQ_INFO);
    CHECK(svc_proto_parse_request("PING", 4) == SVC_REQ_PING);
    CHECK(svc_proto_parse_request("stats", 5) == SVC_REQ_MALFORMED);
    CHECK(svc_proto_parse_request("STATS ", 6) == SVC_REQ_MALFORMED);
    CHECK(svc_proto_parse_request("STATSX", 6) == SVC_REQ_MALFORMED);
    CHECK(svc_proto_parse_request("STAT", 4) == SVC_REQ_MALFORMED);
    CHECK(svc_proto_parse_request("\n", 1) == SVC_REQ_MALFORMED);
    CHECK(svc_proto_parse_request("", 0) == SVC_REQ_MALFORMED);
    CHECK(svc_proto_parse_request(NULL, 3) == SVC_REQ_MALFORMED);
    CHECK(svc_proto_parse_request("STATS\0\0\0", 8) == SVC_REQ_MALFORMED);
    char big[SVC_PROTO_REQUEST_MAX + 1];
    memset(big, ' ', sizeof big);
    memcpy(big, "STATS", 5);
    CHECK(svc_proto_parse_request(big, sizeof big) == SVC_REQ_MALFORMED);
}

static void proto_answers(void)
{
    svc_status_info in, out;
    char text[SVC_PROTO_ANSWER_MAX], err[200];
    memset(&in, 0, sizeof in);
    snprintf(in.name, sizeof in.name, "iocp-echo");
    snprintf(in.mode, sizeof in.mode, "service");
    snprintf(in.address, sizeof in.address, "[::]:9000");
    in.pid = 1234;
    in.draining = 1;
    in.uptime_ms = 5;
    in.active = 1;
    in.accepted = 2;
    in.rejected = 3;
    in.bytes_in = UINT64_MAX;
    in.bytes_out = 5;
    in.messages_in = 6;
    in.messages_out = 7;
    in.protocol_errors = 8;
    size_t len = svc_proto_format(SVC_REQ_STATS, &in, text, sizeof text);
    CHECK(len > 0 && len == strlen(text));
    CHECK_MSG(svc_proto_parse_answer(text, len, &out, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(&in, &out, sizeof in) == 0);

    len = svc_proto_format(SVC_REQ_PING, &in, text, sizeof text);
    CHECK(strcmp(text, "OK\n") == 0 && len == 3);
    len = svc_proto_format(SVC_REQ_INFO, &in, text, sizeof text);
    CHECK(strstr(text, "address=[::]:9000\n") != NULL && strstr(text, "bytes_in") == NULL);

    len = svc_proto_format_error("malformed request", text, sizeof text);
    CHECK(svc_proto_parse_answer(text, len, &out, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "malformed request") != NULL, "%s", err);
    CHECK(svc_proto_parse_answer("garbage", 7, &out, err, sizeof err) != 0);
    CHECK(svc_proto_parse_answer("OK\nactive=12x\n", 14, &out, err, sizeof err) != 0);
    CHECK(svc_proto_parse_answer("OK\nactive=1", 11, &out, err, sizeof err) != 0);
    CHECK(svc_proto_parse_answer("OK\nnoequals\n", 12, &out, err, sizeof err) != 0);
    CHECK(svc_proto_parse_answer("OK\nactive=99999999999999999999999\n", 34, &out, err,
                                 sizeof err) != 0);
    /* Unknown keys are for newer servers: ignored. */
    CHECK(svc_proto_parse_answer("OK\nfuture=1\nactive=4\n", 21, &out, err, sizeof err) == 0);
    CHECK_EQ_U(out.active, 4);
    /* A tiny buffer truncates but stays terminated. */
    len = svc_proto_format(SVC_REQ_STATS, &in, text, 16);
    CHECK(len < 16 && text[len] == '\0');
}

/* ---- instance mutex and who holds it ---------------------------------------------------- */

typedef struct lock_job {
    char name[64];
    svc_lock_result result;
    DWORD sys;
    int release; /* release before the thread ends (else: abandon it) */
} lock_job;

static DWORD WINAPI lock_thread(void *arg)
{
    lock_job *j = arg;
    svc_instance inst;
    j->result = svc_instance_lock(&inst, j->name, &j->sys);
    if (j->release && (j->result == SVC_LOCK_OK || j->result == SVC_LOCK_ABANDONED))
        svc_instance_unlock(&inst);
    /* Not released: the thread ends owning the mutex, which abandons it. The handle stays
     * open (leaked on purpose) so the mutex object survives for the next one. */
    return 0;
}

static svc_lock_result run_lock(const char *name, int release, DWORD *sys)
{
    lock_job j;
    memset(&j, 0, sizeof j);
    snprintf(j.name, sizeof j.name, "%s", name);
    j.release = release;
    HANDLE t = CreateThread(NULL, 0, lock_thread, &j, 0, NULL);
    CHECK(t != NULL);
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0);
    CloseHandle(t);
    if (sys != NULL)
        *sys = j.sys;
    return j.result;
}

/* The status pipe of a pretend instance: INFO answered with the pid it is told to claim. */
static uint32_t claimed_pid;

static size_t info_handler(void *user, const char *req, size_t len, char *resp, size_t size,
                           int *close_after)
{
    (void)user;
    (void)close_after;
    svc_status_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.mode, sizeof info.mode, "console");
    snprintf(info.address, sizeof info.address, "[::]:1234");
    info.pid = claimed_pid;
    return svc_proto_format(svc_proto_parse_request(req, len), &info, resp, size);
}

/* A second instance is refused and told who holds the name, from the holder's own pipe. */
static void mutex_one_holder(void)
{
    char name[64], holder[800], want[64];
    svc_instance inst;
    svc_pipe_server *pipe = NULL;
    DWORD sys;
    snprintf(name, sizeof name, "unit-%lu", (unsigned long)GetCurrentProcessId());
    CHECK(svc_instance_lock(&inst, name, &sys) == SVC_LOCK_OK);
    claimed_pid = GetCurrentProcessId();
    CHECK(svc_pipe_server_start(name, info_handler, NULL, &pipe) == NO_ERROR);
    CHECK(run_lock(name, 1, &sys) == SVC_LOCK_HELD);
    CHECK(sys == ERROR_SERVICE_ALREADY_RUNNING);
    svc_instance_describe_holder(name, holder, sizeof holder);
    snprintf(want, sizeof want, "process %lu (console", (unsigned long)GetCurrentProcessId());
    CHECK_MSG(strstr(holder, want) != NULL, "holder: %s", holder);
    CHECK_MSG(strstr(holder, "listening on [::]:1234") != NULL, "holder: %s", holder);

    /* A pipe that claims to be another process is not believed. */
    claimed_pid = GetCurrentProcessId() + 4;
    svc_status_info info;
    char err[500];
    CHECK(svc_instance_ask(name, "INFO", 5000, &info, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "answer ignored") != NULL, "err: %s", err);
    svc_pipe_server_stop(pipe);
    svc_instance_unlock(&inst);
    /* Released: the next one gets it cleanly. */
    CHECK(run_lock(name, 1, NULL) == SVC_LOCK_OK);
}

static void mutex_abandoned_is_taken_over(void)
{
    char name[64];
    snprintf(name, sizeof name, "unit-ab-%lu", (unsigned long)GetCurrentProcessId());
    CHECK(run_lock(name, 0, NULL) == SVC_LOCK_OK); /* its thread ends holding it */
    CHECK(run_lock(name, 1, NULL) == SVC_LOCK_ABANDONED);
    CHECK(run_lock(name, 1, NULL) == SVC_LOCK_OK);
}

/* Another program made the mutex first: refused, and the message says the name is taken and
 * how to free it, whether the squatter's mutex admits us or not. */
static void mutex_squatted_is_named(void)
{
    char name[64], holder[800];
    wchar_t wname[128];
    DWORD sys;
    snprintf(name, sizeof name, "unit-sq-%lu", (unsigned long)GetCurrentProcessId());
    svc_instance_mutex_name(name, wname, 128);
    HANDLE squat = CreateMutexW(NULL, TRUE, wname);
    CHECK(squat != NULL);
    CHECK(run_lock(name, 1, &sys) == SVC_LOCK_HELD);
    svc_instance_describe_holder(name, holder, sizeof holder);
    CHECK_MSG(strstr(holder, "another program has taken the name") != NULL, "holder: %s", holder);
    CHECK_MSG(strstr(holder, "handle.exe -a iocp-service-unit-sq-") != NULL, "holder: %s", holder);
    CloseHandle(squat);

    /* A mutex whose DACL admits nobody. */
    snprintf(name, sizeof name, "unit-sq2-%lu", (unsigned long)GetCurrentProcessId());
    svc_instance_mutex_name(name, wname, 128);
    PSECURITY_DESCRIPTOR sd = NULL;
    CHECK(ConvertStringSecurityDescriptorToSecurityDescriptorW(L"D:P", SDDL_REVISION_1, &sd, NULL));
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    squat = CreateMutexW(&sa, TRUE, wname);
    CHECK(squat != NULL);
    LocalFree(sd);
    svc_lock_result r = run_lock(name, 1, &sys);
    CHECK_MSG(r == SVC_LOCK_HELD, "result %d, Win32 %lu", (int)r, (unsigned long)sys);
    svc_instance_describe_holder(name, holder, sizeof holder);
    CHECK_MSG(strstr(holder, "another program has taken the name") != NULL, "holder: %s", holder);
    printf("the locked-out case: Win32 %lu; %s\n", (unsigned long)sys, holder);
    CloseHandle(squat);
}

/* The rules for believing the pipe, with made-up SIDs and pids. */
static void pipe_trust_rules(void)
{
    BYTE a[SECURITY_MAX_SID_SIZE], b[SECURITY_MAX_SID_SIZE];
    DWORD n = sizeof a;
    CHECK(CreateWellKnownSid(WinLocalServiceSid, NULL, (PSID)a, &n));
    n = sizeof b;
    CHECK(CreateWellKnownSid(WinWorldSid, NULL, (PSID)b, &n));
    svc_pipe_peer peer;
    memset(&peer, 0, sizeof peer);
    peer.pid = 100;
    peer.has_owner = 1;
    CopySid(sizeof peer.owner, (PSID)peer.owner, (PSID)a);
    char why[400];
    CHECK(svc_instance_trust(&peer, a, 0, 100, why, sizeof why) == 1);   /* same owner */
    CHECK(svc_instance_trust(&peer, b, 100, 100, why, sizeof why) == 1); /* the service */
    CHECK(svc_instance_trust(&peer, a, 0, 101, why, sizeof why) == 0);   /* claims another pid */
    CHECK_MSG(strstr(why, "answered for process 101") != NULL, "%s", why);
    CHECK(svc_instance_trust(&peer, b, 0, 100, why, sizeof why) == 0); /* another account */
    CHECK_MSG(strstr(why, "not by the account that holds the instance mutex") != NULL, "%s", why);
    CHECK(svc_instance_trust(&peer, NULL, 0, 100, why, sizeof why) == 0); /* no instance */
    CHECK_MSG(strstr(why, "not known to hold the instance mutex") != NULL, "%s", why);
}

/* NT SERVICE\<name> is computed as Windows does (sc showsid TrustedInstaller). */
static void service_sid_is_windows_one(void)
{
    BYTE sid[SECURITY_MAX_SID_SIZE];
    wchar_t *text = NULL;
    CHECK(svc_service_sid("TrustedInstaller", sid, sizeof sid) == 0);
    CHECK(ConvertSidToStringSidW((PSID)sid, &text));
    CHECK_MSG(wcscmp(text, L"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464") == 0,
              "%ls", text);
    LocalFree(text);
    BYTE lower[SECURITY_MAX_SID_SIZE];
    CHECK(svc_service_sid("trustedinstaller", lower, sizeof lower) == 0);
    CHECK(EqualSid((PSID)sid, (PSID)lower));
    /* The private DACL of a service whose token has its SID would name it; a console's names
     * its user and never LocalService. */
    PSECURITY_DESCRIPTOR sd = svc_private_sd();
    CHECK(sd != NULL);
    CHECK(ConvertSecurityDescriptorToStringSecurityDescriptorW(
        sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &text, NULL));
    CHECK_MSG(wcsstr(text, L";;;LS)") == NULL && wcsstr(text, L"S-1-5-19") == NULL, "%ls", text);
    printf("console DACL: %ls\n", text);
    LocalFree(text);
    LocalFree(sd);
}

static void win32_text_keeps_code(void)
{
    char buf[300];
    svc_win32_text(ERROR_ACCESS_DENIED, buf, sizeof buf);
    CHECK_MSG(strstr(buf, "(Win32 5)") != NULL, "%s", buf);
    svc_win32_text(WSAEADDRINUSE, buf, sizeof buf);
    CHECK_MSG(strstr(buf, "(WSA 10048)") != NULL, "%s", buf);
    CHECK(svc_exit_from_win32(ERROR_SERVICE_ALREADY_RUNNING) == SVC_EXIT_ALREADY_RUNNING);
    CHECK(svc_exit_from_win32(WSAEADDRINUSE) == SVC_EXIT_CANNOT_START);
    CHECK(svc_exit_from_win32(ERROR_INVALID_PARAMETER) == SVC_EXIT_CANNOT_START);
    CHECK(svc_exit_from_win32(ERROR_ACCESS_DENIED) == SVC_EXIT_ACCESS_DENIED);
}

static const test_case cases[] = {
    {"options_defaults", options_defaults},
    {"options_every_server_option", options_every_server_option},
    {"options_install_only", options_install_only},
    {"options_rejected", options_rejected},
    {"options_limits_ranges", options_limits_ranges},
    {"memory_budget_check", memory_budget_check},
    {"params_round_trip", params_round_trip},
    {"proto_requests", proto_requests},
    {"proto_answers", proto_answers},
    {"mutex_one_holder", mutex_one_holder},
    {"mutex_abandoned_is_taken_over", mutex_abandoned_is_taken_over},
    {"mutex_squatted_is_named", mutex_squatted_is_named},
    {"pipe_trust_rules", pipe_trust_rules},
    {"service_sid_is_windows_one", service_sid_is_windows_one},
    {"win32_text_keeps_code", win32_text_keeps_code},
};

TEST_MAIN(cases)
