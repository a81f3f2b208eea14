/* test_service_unit.c: the pieces of iocp-service that need no service and no engine run:
 * command-line options, the Parameters registry round trip (under HKCU), the status pipe
 * protocol, the instance mutex (threads stand in for processes), and the log file: what it
 * refuses to open, its DACL, its size cap and rotation (with a second process writing the
 * same file: this executable started again as a writer), and the rate limit. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "safe_text.h"
#include "secret_input.h"
#include "svc.h"

#include <aclapi.h>
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
    CHECK_EQ_U(o.server.log_max_mib, 16);
    CHECK_EQ_U(o.server.log_keep, 5);

    PARSE_OK(&o, "install", NULL, NULL, NULL, NULL);
    CHECK(o.start_type == SVC_START_DEMAND);
    /* The service's own virtual account, not the LocalService that every such service shares. */
    CHECK_MSG(strcmp(o.account, "NT SERVICE\\iocp-echo") == 0, "%s", o.account);
    CHECK(strstr(o.display_name, "iocp-echo") != NULL);
    PARSE_OK(&o, "install", "--name", "echo7", NULL, NULL);
    CHECK_MSG(strcmp(o.account, "NT SERVICE\\echo7") == 0, "%s", o.account);
    PARSE_OK(&o, "install", "--account", "NT AUTHORITY\\LocalService", NULL, NULL);
    CHECK_MSG(strcmp(o.account, "NT AUTHORITY\\LocalService") == 0, "%s", o.account);
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
    /* The receive buffer pool, in MiB; at least one buffer. */
    PARSE_OK(&o, "run", "--buffer-pool", "8", NULL, NULL);
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.buffer_pool_max, 8u * 1024 * 1024);
    PARSE_OK(&o, "run", "--buffer-pool", "1", "--buffer-size", "16777216");
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.buffer_pool_max, 16777216u);
    parse_fails("out of range", "run", "--buffer-pool", "0", NULL);
    PARSE_OK(&o, "run", NULL, NULL, NULL, NULL);
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.buffer_pool_max, 32u * 1024 * 1024); /* the engine's default */
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
    /* Receive buffers count once per connection only up to the pool: 11,024 connections x
     * (1 MiB queue) + the 32 MiB pool = 11,056 MiB fits 11,100 MiB (one 16 KiB buffer each
     * would be 11,196 MiB). */
    svc_options_init(&o);
    o.server.max_connections = 11024;
    o.server.memory_budget_mib = 11100;
    CHECK_MSG(svc_server_memory_check(&o.server, 0, err, sizeof err) == 0, "%s", err);
    o.server.memory_budget_mib = 11000;
    CHECK(svc_server_memory_check(&o.server, 0, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "(send queue 1.0 MiB + a share of the 32.0 MiB receive buffer pool)") !=
                  NULL,
              "%s", err);
    /* The per-IP limit does not change the worst case: many addresses are cheap to have. */
    o.server.max_connections_per_ip = 1;
    CHECK(svc_server_memory_check(&o.server, 0, err, sizeof err) != 0);
}

/* TLS options: the two sources exclude each other, each helper option needs its source, the
 * store's names, the thumbprint's form, the handshake timeout's range; into the engine. */
static void options_tls(void)
{
    svc_options o;
    iocp_config c;
    const char *thumb = "3a5F 0011 2233 4455 6677 8899 aabb ccdd eeff 0011"; /* 40 digits */
    PARSE_OK(&o, "run", "--tls-pfx", "C:\\certs\\server.pfx", "--tls-password", "pw");
    CHECK(strcmp(o.server.tls_pfx, "C:\\certs\\server.pfx") == 0);
    CHECK(strcmp(o.server.tls_password, "pw") == 0);
    CHECK_EQ_U(o.tls_password_given, 1);
    CHECK_EQ_U(o.server.tls_handshake_timeout_s, 10); /* the engine's default */
    svc_server_config(&o.server, &c);
    CHECK(c.tls.pfx_path == o.server.tls_pfx && strcmp(c.tls.pfx_password, "pw") == 0);
    CHECK(c.tls.cert_thumbprint == NULL && c.tls.handshake_timeout_ms == 10000);
    /* "-": read later from standard input (main.c); nothing set yet. */
    PARSE_OK(&o, "install", "--tls-pfx", "a.pfx", "--tls-password", "-");
    CHECK_EQ_U(o.tls_password_given, 2);
    CHECK(o.server.tls_password[0] == '\0');
    PARSE_OK(&o, "install", "--tls-pfx", "a.pfx", NULL, NULL);
    CHECK_EQ_U(o.tls_password_given, 0);

    PARSE_OK(&o, "run", "--tls-cert", thumb, NULL, NULL);
    CHECK(o.server.tls_store == SVC_TLS_STORE_DEFAULT);
    svc_server_config(&o.server, &c);
    CHECK(c.tls.cert_thumbprint == o.server.tls_cert && c.tls.pfx_path == NULL);
    CHECK(!c.tls.cert_store_machine); /* unsettled: CurrentUser (svc_host_start settles it) */
    PARSE_OK(&o, "install", "--tls-cert", thumb, "--tls-store", "localmachine");
    CHECK(o.server.tls_store == SVC_TLS_STORE_MACHINE);
    svc_server_config(&o.server, &c);
    CHECK(c.tls.cert_store_machine);
    PARSE_OK(&o, "run", "--tls-cert", thumb, "--tls-store", "CurrentUser");
    CHECK(o.server.tls_store == SVC_TLS_STORE_USER);
    PARSE_OK(&o, "run", "--tls-handshake-timeout", "1", "--tls-cert", thumb);
    CHECK_EQ_U(o.server.tls_handshake_timeout_s, 1);
    PARSE_OK(&o, "run", "--tls-handshake-timeout", "3600", NULL, NULL);
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.tls.handshake_timeout_ms, 3600000);

    parse_fails("--tls-pfx and --tls-cert exclude each other", "run", "--tls-pfx", "a.pfx",
                "--tls-cert=00112233445566778899aabbccddeeff00112233");
    {
        svc_options x;
        char err[400];
        CHECK(parse(&x, err, sizeof err, "install", "--tls-cert", thumb, "--tls-pfx", "a.pfx") !=
              0);
        CHECK_MSG(strstr(err, "exclude each other") != NULL, "%s", err);
    }
    parse_fails("--tls-password is the password of --tls-pfx", "run", "--tls-password", "x", NULL);
    parse_fails("--tls-password is the password of --tls-pfx", "install", "--tls-password", "-",
                NULL);
    parse_fails("--tls-store says where --tls-cert is", "run", "--tls-store", "LocalMachine", NULL);
    parse_fails("LocalMachine or CurrentUser, not 'My'", "run", "--tls-store", "My", NULL);
    parse_fails("40 hex digits", "run", "--tls-cert", "00112233445566778899aabbccddeeff0011223",
                NULL); /* 39 */
    parse_fails("40 hex digits", "run", "--tls-cert", "00112233445566778899aabbccddeeff00112233g",
                NULL);
    parse_fails("40 hex digits", "run", "--tls-cert", "0011:2233445566778899aabbccddeeff00112233",
                NULL);
    parse_fails("out of range 1..3600", "run", "--tls-handshake-timeout", "0", NULL);
    parse_fails("out of range 1..3600", "run", "--tls-handshake-timeout", "3601", NULL);
    parse_fails("control character", "run", "--tls-pfx", "a\tb", NULL);
    parse_fails("'stop' does not take --tls-pfx", "stop", "--tls-pfx", "a.pfx", NULL);
    parse_fails("'status' does not take --tls-password", "status", "--tls-password", "x", NULL);
}

/* --tls-min-version: 1.2 unless told, the engine's IOCP_TLS_1_x, anything else named. */
static void options_tls_min_version(void)
{
    svc_options o;
    iocp_config c;
    PARSE_OK(&o, "run", "--tls-pfx", "a.pfx", NULL, NULL);
    CHECK(strcmp(o.server.tls_min_version, "1.2") == 0);
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.tls.min_version, IOCP_TLS_1_2);
    PARSE_OK(&o, "install", "--tls-pfx", "a.pfx", "--tls-min-version", "1.0");
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.tls.min_version, IOCP_TLS_1_0);
    PARSE_OK(&o, "run", "--tls-min-version", "1.1", NULL, NULL);
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.tls.min_version, IOCP_TLS_1_1);
    parse_fails("--tls-min-version must be 1.0, 1.1 or 1.2 (the oldest TLS allowed), not '1.3'",
                "run", "--tls-min-version", "1.3", NULL);
    parse_fails("not 'TLS1.2'", "run", "--tls-min-version", "TLS1.2", NULL);
    parse_fails("not ''", "run", "--tls-min-version", "", NULL);
}

/* --tls-revocation: soft unless told, only with --tls-client-ca, anything else named. */
static void options_tls_revocation(void)
{
    svc_options o;
    iocp_config c;
    PARSE_OK(&o, "run", "--tls-pfx", "a.pfx", NULL, NULL);
    CHECK(strcmp(o.server.tls_revocation, "soft") == 0);
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.tls.revocation, IOCP_TLS_REVOCATION_SOFT);
    CHECK_EQ_U(svc_tls_revocation("off"), IOCP_TLS_REVOCATION_OFF);
    CHECK_EQ_U(svc_tls_revocation("hard"), IOCP_TLS_REVOCATION_HARD);
    CHECK(svc_tls_revocation("HARD") < 0 && svc_tls_revocation("") < 0);
    snprintf(o.server.tls_revocation, sizeof o.server.tls_revocation, "hard");
    snprintf(o.server.tls_client_ca, sizeof o.server.tls_client_ca, "ca.pem");
    char err[400];
    CHECK_MSG(svc_server_options_check(&o.server, err, sizeof err) == 0, "%s", err);
    svc_server_config(&o.server, &c);
    CHECK_EQ_U(c.tls.revocation, IOCP_TLS_REVOCATION_HARD);
    parse_fails("--tls-revocation must be off, soft or hard, not 'strict'", "run",
                "--tls-revocation", "strict", NULL);
    parse_fails("only --tls-client-ca asks for", "run", "--tls-revocation", "off", NULL);
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

static void options_install_security(void)
{
    svc_options o;
    PARSE_OK(&o, "install", NULL, NULL, NULL, NULL);
    CHECK(!o.allow_unsafe_location && !o.password_given);
    PARSE_OK(&o, "install", "--allow-unsafe-location", "--port", "1", NULL);
    CHECK(o.allow_unsafe_location);
    CHECK_EQ_U(o.server.port, 1);
    /* An empty password is still one given on the command line (no prompt then). */
    PARSE_OK(&o, "install", "--account", ".\\svc-user", "--password", "");
    CHECK(o.password_given && o.password[0] == '\0');
    parse_fails("'run' does not take --allow-unsafe-location", "run", "--allow-unsafe-location",
                NULL, NULL);
    parse_fails("unknown option", "install", "--allow-unsafe-location=1", NULL, NULL);
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
    parse_fails("out of range", "run", "--log-max-size", "0", NULL);
    parse_fails("out of range", "run", "--log-max-size", "4097", NULL);
    parse_fails("out of range", "run", "--log-keep", "100", NULL);
    svc_options o;
    PARSE_OK(&o, "install", "--log-max-size", "1", "--log-keep", "0");
    CHECK_EQ_U(o.server.log_max_mib, 1);
    CHECK_EQ_U(o.server.log_keep, 0);
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
    in.log_max_mib = 3;
    in.log_keep = 9;
    in.udp_flow_rate = 777; /* UdpFlowRate */
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

/* The PFX password in the registry: a REG_BINARY DPAPI blob that holds no trace of the text,
 * decrypted on read; gone when there is no PFX; a damaged blob or a value of the wrong type is
 * named; the sources' rule holds for the registry too. */
static void params_tls_password_protected(void)
{
    wchar_t path[200], parent[200];
    char err[400];
    const char *secret = "Pfx-Secret-7731";
    params_path_for(path, sizeof path / sizeof path[0]);
    swprintf(parent, 200, L"Software\\iocp-service-test-%lu", (unsigned long)GetCurrentProcessId());
    svc_server_options in, out;
    svc_server_options_init(&in);
    snprintf(in.tls_pfx, sizeof in.tls_pfx, "C:\\certs\\server.pfx");
    snprintf(in.tls_password, sizeof in.tls_password, "%s", secret);
    in.tls_handshake_timeout_s = 7;
    CHECK_EQ_U(svc_params_write(HKEY_CURRENT_USER, path, &in), 0);

    /* The raw value: binary, and neither the UTF-8 nor the UTF-16 text of the password. */
    BYTE raw[4096];
    DWORD type = 0, size = sizeof raw;
    HKEY key;
    CHECK(RegOpenKeyExW(HKEY_CURRENT_USER, path, 0, KEY_QUERY_VALUE | KEY_SET_VALUE, &key) ==
          ERROR_SUCCESS);
    CHECK(RegQueryValueExW(key, L"TlsPasswordProtected", NULL, &type, raw, &size) == ERROR_SUCCESS);
    CHECK_EQ_U(type, REG_BINARY);
    CHECK_MSG(size > strlen(secret), "a blob of %lu bytes", (unsigned long)size);
    wchar_t wsecret[64];
    svc_widen(secret, wsecret, 64);
    size_t n = strlen(secret);
    for (DWORD i = 0; i + n <= size; i++) {
        CHECK_MSG(memcmp(raw + i, secret, n) != 0, "the password is in the blob at %lu",
                  (unsigned long)i);
        CHECK_MSG(i + 2 * n > size || memcmp(raw + i, wsecret, 2 * n) != 0,
                  "the UTF-16 password is in the blob at %lu", (unsigned long)i);
    }
    CHECK(RegQueryValueExW(key, L"TlsPassword", NULL, NULL, NULL, NULL) == ERROR_FILE_NOT_FOUND);
    /* And it comes back. */
    svc_server_options_init(&out);
    CHECK_MSG(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(out.tls_password, secret) == 0);
    CHECK(memcmp(&in, &out, sizeof in) == 0);
    /* DPAPI itself: the same text, another blob (random salt); both decrypt. */
    BYTE *blob = NULL;
    DWORD blob_size = 0;
    char back[SVC_TEXT_MAX];
    CHECK_EQ_U(svc_secret_protect(secret, &blob, &blob_size), 0);
    CHECK(blob_size != size || memcmp(blob, raw, size) != 0);
    CHECK_EQ_U(svc_secret_unprotect(blob, blob_size, back, sizeof back), 0);
    CHECK(strcmp(back, secret) == 0);
    LocalFree(blob);

    /* A damaged blob is named and leaves no password behind. */
    for (DWORD i = size / 2; i < size; i++)
        raw[i] ^= 0x5a;
    CHECK(RegSetValueExW(key, L"TlsPasswordProtected", 0, REG_BINARY, raw, size) == 0);
    svc_server_options_init(&out);
    CHECK(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "cannot decrypt parameter TlsPasswordProtected") != NULL, "%s", err);
    CHECK(out.tls_password[0] == '\0');
    /* Text where the blob belongs: refused, not used as the password. */
    const wchar_t plain[] = L"plain";
    CHECK(RegSetValueExW(key, L"TlsPasswordProtected", 0, REG_SZ, (const BYTE *)plain,
                         sizeof plain) == 0);
    CHECK(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "expected REG_BINARY") != NULL, "%s", err);
    /* Both sources in the registry: the same rule as the command line. */
    CHECK_EQ_U(svc_params_write(HKEY_CURRENT_USER, path, &in), 0);
    const wchar_t thumb[] = L"00112233445566778899aabbccddeeff00112233";
    CHECK(RegSetValueExW(key, L"TlsCert", 0, REG_SZ, (const BYTE *)thumb, sizeof thumb) == 0);
    CHECK_EQ_U(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err),
               ERROR_INVALID_PARAMETER);
    CHECK_MSG(strstr(err, "exclude each other") != NULL, "%s", err);
    const wchar_t store[] = L"Elsewhere";
    CHECK(RegSetValueExW(key, L"TlsStore", 0, REG_SZ, (const BYTE *)store, sizeof store) == 0);
    CHECK(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "TlsStore") != NULL, "%s", err);

    /* No PFX any more: the blob goes with it. */
    svc_server_options_init(&in);
    CHECK_EQ_U(svc_params_write(HKEY_CURRENT_USER, path, &in), 0);
    CHECK(RegQueryValueExW(key, L"TlsPasswordProtected", NULL, NULL, NULL, NULL) ==
          ERROR_FILE_NOT_FOUND);
    svc_server_options_init(&out);
    CHECK_MSG(svc_params_read(HKEY_CURRENT_USER, path, &out, err, sizeof err) == 0, "%s", err);
    CHECK(out.tls_pfx[0] == '\0' && out.tls_cert[0] == '\0' &&
          out.tls_store == SVC_TLS_STORE_DEFAULT);
    RegCloseKey(key);
    CHECK_EQ_U(svc_params_delete(HKEY_CURRENT_USER, parent), 0);
}

/* The Parameters key's DACL: protected (nothing inherited), full control for SYSTEM and
 * Administrators, read for NT SERVICE\<name>, no entry for anyone else. */
static void params_key_private(void)
{
    wchar_t path[200], parent[200];
    params_path_for(path, sizeof path / sizeof path[0]);
    swprintf(parent, 200, L"Software\\iocp-service-test-%lu", (unsigned long)GetCurrentProcessId());
    /* Twice: the second time on an existing key, which gets the same DACL. */
    for (int round = 0; round < 2; round++)
        CHECK_EQ_U(svc_params_create_private(HKEY_CURRENT_USER, path, "iocpt-private"), 0);
    svc_server_options o;
    svc_server_options_init(&o);
    CHECK_EQ_U(svc_params_write(HKEY_CURRENT_USER, path, &o), 0); /* the installer can write */

    HKEY key;
    CHECK(RegOpenKeyExW(HKEY_CURRENT_USER, path, 0, READ_CONTROL, &key) == ERROR_SUCCESS);
    PSECURITY_DESCRIPTOR sd = NULL;
    PACL dacl = NULL;
    CHECK_EQ_U(GetSecurityInfo(key, SE_REGISTRY_KEY, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl,
                               NULL, &sd),
               0);
    RegCloseKey(key);
    SECURITY_DESCRIPTOR_CONTROL control = 0;
    DWORD revision = 0;
    CHECK(GetSecurityDescriptorControl(sd, &control, &revision));
    /* Wine keeps no inheritance flags on registry keys (nor inherits): it reports the DACL
     * without SE_DACL_PROTECTED. Windows must have it. */
    if (!(test_wine_major() != 0))
        CHECK_MSG(control & SE_DACL_PROTECTED, "control 0x%x", (unsigned)control);
    else if (!(control & SE_DACL_PROTECTED))
        printf("Wine: the key's DACL has no SE_DACL_PROTECTED (control 0x%x); its entries are "
               "checked\n",
               (unsigned)control);
    CHECK(dacl != NULL);
    BYTE sy[SECURITY_MAX_SID_SIZE], ba[SECURITY_MAX_SID_SIZE], svc[SECURITY_MAX_SID_SIZE];
    DWORD n = sizeof sy;
    CHECK(CreateWellKnownSid(WinLocalSystemSid, NULL, sy, &n));
    n = sizeof ba;
    CHECK(CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, ba, &n));
    CHECK(svc_service_sid("iocpt-private", svc, sizeof svc) == 0);
    int seen_sy = 0, seen_ba = 0, seen_svc = 0;
    for (DWORD i = 0; i < dacl->AceCount; i++) {
        ACCESS_ALLOWED_ACE *ace = NULL;
        CHECK(GetAce(dacl, i, (void **)&ace));
        CHECK_EQ_U(ace->Header.AceType, ACCESS_ALLOWED_ACE_TYPE);
        PSID who = (PSID)&ace->SidStart;
        if (EqualSid(who, sy) && ace->Mask == KEY_ALL_ACCESS) {
            seen_sy++;
        } else if (EqualSid(who, ba) && ace->Mask == KEY_ALL_ACCESS) {
            seen_ba++;
        } else if (EqualSid(who, svc) && ace->Mask == KEY_READ) {
            seen_svc++;
        } else {
            char name[200];
            svc_sid_name((const BYTE *)who, name, sizeof name);
            FAIL_MSG("an entry for %s (mask 0x%lx) in the Parameters key's DACL", name,
                     (unsigned long)ace->Mask);
        }
    }
    CHECK(seen_sy == 1 && seen_ba == 1 && seen_svc == 1);
    LocalFree(sd);
    CHECK_EQ_U(svc_params_delete(HKEY_CURRENT_USER, parent), 0);
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

/* ---- text from another process, for a console ----------------------------------------- */

/* TLS in the answers: on/off and its source in INFO, the handshake counts in STATS; an old
 * client's answer (no tls keys) reads as TLS off. */
static void proto_tls_keys(void)
{
    svc_status_info in, out;
    char text[SVC_PROTO_ANSWER_MAX], err[200];
    memset(&in, 0, sizeof in);
    snprintf(in.address, sizeof in.address, "[::]:9443");
    in.tls = 1;
    snprintf(in.tls_source, sizeof in.tls_source, "PFX C:\\certs\\server.pfx");
    in.tls_handshakes = 12;
    in.tls_failures = 3;
    size_t len = svc_proto_format(SVC_REQ_STATS, &in, text, sizeof text);
    CHECK_MSG(strstr(text, "tls=1\n") != NULL && strstr(text, "tls_handshakes=12\n") != NULL &&
                  strstr(text, "tls_failures=3\n") != NULL,
              "%s", text);
    CHECK_MSG(svc_proto_parse_answer(text, len, &out, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(&in, &out, sizeof in) == 0);
    len = svc_proto_format(SVC_REQ_INFO, &in, text, sizeof text);
    CHECK(strstr(text, "tls=1\n") != NULL && strstr(text, "tls_source=PFX C:") != NULL);
    CHECK(strstr(text, "tls_handshakes") == NULL);
    in.tls = 0;
    len = svc_proto_format(SVC_REQ_INFO, &in, text, sizeof text);
    CHECK(strstr(text, "tls=0\n") != NULL && strstr(text, "tls_source") == NULL);
    const char old[] = "OK\nname=x\nactive=1\n";
    CHECK(svc_proto_parse_answer(old, sizeof old - 1, &out, err, sizeof err) == 0);
    CHECK(out.tls == 0 && out.tls_handshakes == 0);
    CHECK(svc_proto_parse_answer("OK\ntls=yes\n", 11, &out, err, sizeof err) != 0);
}

static void filtered(const char *in, size_t len, int flags, const char *want)
{
    char out[256];
    size_t n = safe_text(in, len, out, sizeof out, flags);
    out[n] = '\0';
    CHECK_MSG(n == strlen(want) && memcmp(out, want, n) == 0, "got '%s', wanted '%s'", out, want);
}

static void safe_text_filters_controls(void)
{
    /* Printable ASCII, tab and UTF-8 letters pass. */
    filtered("[::]:9000\tok \xc3\xa9\xe2\x82\xac", 18, SAFE_TEXT_ONE_LINE,
             "[::]:9000\tok \xc3\xa9\xe2\x82\xac");
    /* ESC (a VT sequence: clear the screen), BEL, BS, NUL, DEL: each one replaced. */
    filtered("a\x1b[2Jb\x07\x08\x7f", 9, SAFE_TEXT_ONE_LINE, "a?[2Jb???");
    filtered("x\0y", 3, SAFE_TEXT_ONE_LINE, "x?y");
    /* C1 controls as UTF-8 (U+009B CSI, U+0085 NEL, U+0080): two bytes, one '?'. U+00A0
     * (0xC2 0xA0) is a letter, not a control. */
    filtered("\xc2\x9b"
             "31m\xc2\x85\xc2\x80\xc2\xa0",
             11, SAFE_TEXT_ONE_LINE, "?31m??\xc2\xa0");
    /* A lone 0xC2 at the end, or before a non-C1 byte, is left to the console's decoder. */
    filtered("a\xc2", 2, SAFE_TEXT_ONE_LINE, "a\xc2");
    /* Line ends: replaced in a value, kept in an echo; a lone CR never (it overwrites). */
    filtered("a\r\nb\nc\rd", 8, SAFE_TEXT_ONE_LINE, "a??b?c?d");
    filtered("a\r\nb\nc\rd\r", 9, SAFE_TEXT_KEEP_LINES, "a\r\nb\nc?d?");
    /* In place, on a string. */
    char s[] = "mode=\x1b]0;owned\x07"
               "console";
    CHECK(strcmp(safe_text_str(s, SAFE_TEXT_ONE_LINE), "mode=?]0;owned?console") == 0);
    /* Never past out_size. */
    char small[4] = {'z', 'z', 'z', 'z'};
    CHECK_EQ_U(safe_text("abcdef", 6, small, 3, 0), 3);
    CHECK(small[3] == 'z');
}

/* ---- install's checks ------------------------------------------------------------------ */

/* svc_sd_writable_by_others on a descriptor built from SDDL; who must contain want. */
static int writable(const wchar_t *sddl, int folder, const char *want)
{
    PSECURITY_DESCRIPTOR sd = NULL;
    char who[400];
    CHECK_MSG(
        ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL),
        "SDDL %ls", sddl);
    int rc = svc_sd_writable_by_others(sd, folder, who, sizeof who);
    LocalFree(sd);
    CHECK_MSG(rc >= 0, "%ls: unreadable", sddl);
    if (want != NULL)
        CHECK_MSG(rc == 1 && strstr(who, want) != NULL, "%ls: '%s' lacks '%s'", sddl, who, want);
    else
        CHECK_MSG(rc == 0, "%ls: reported '%s'", sddl, who);
    return rc;
}

#define TI L"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"

static void location_permissions(void)
{
    /* C:\Program Files as Windows ships it: TrustedInstaller owns it; SYSTEM and
     * Administrators modify; Users read and run; CREATOR OWNER's entry is for new files. */
    const wchar_t *program_files = L"O:" TI L"D:P(A;;FA;;;" TI L")(A;;0x1301bf;;;SY)"
                                   L"(A;;0x1301bf;;;BA)(A;;0x1200a9;;;BU)(A;OICIIO;GA;;;CO)"
                                   L"(A;OICIIO;GA;;;SY)(A;OICIIO;GA;;;BA)(A;OICIIO;GXGR;;;BU)";
    writable(program_files, 1, NULL);
    writable(L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1200a9;;;BU)", 0, NULL);
    writable(L"O:SYD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;FRFX;;;WD)", 0, NULL);

    /* Users may add a file to the folder: a DLL beside the executable. */
    writable(L"O:BAD:(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1200ab;;;BU)", 1, "add files");
    writable(L"O:BAD:(A;;FA;;;SY)(A;;0x1200ab;;;BU)", 1, "Users");
    /* Authenticated Users may modify the file (the usual grant on C:\ subfolders). */
    writable(L"O:BAD:(A;;FA;;;BA)(A;;0x1301bf;;;AU)", 0, "write data");
    /* Any single right that lets one swap the file counts. */
    writable(L"O:BAD:(A;;FA;;;BA)(A;;WD;;;WD)", 0, "change permissions");
    writable(L"O:BAD:(A;;FA;;;BA)(A;;WO;;;BU)", 0, "take ownership");
    writable(L"O:BAD:(A;;FA;;;BA)(A;;SD;;;BU)", 0, "delete");
    writable(L"O:BAD:(A;;FA;;;BA)(A;;GW;;;BU)", 0, "write");
    writable(L"O:BAD:(A;;FA;;;BA)(A;;GA;;;BU)", 0, "full control");
    writable(L"O:BAD:(A;;FA;;;BA)(A;;0x4;;;BU)", 1, "add folders");
    /* Deleting a file in the folder matters on the folder; 0x40 means nothing on a file. */
    writable(L"O:BAD:(A;;FA;;;BA)(A;;0x1200e9;;;BU)", 1, "delete files in it");
    writable(L"O:BAD:(A;;FA;;;BA)(A;;0x1200e9;;;BU)", 0, NULL);
    /* An inherit-only grant applies to what will be created inside, not to the folder. */
    writable(L"O:BAD:(A;;FA;;;BA)(A;OICIIO;GA;;;BU)", 1, NULL);
    /* A deny entry does not count for anything, and a read grant is no write grant. */
    writable(L"O:BAD:(D;;FA;;;BU)(A;;FA;;;BA)(A;;FR;;;BU)", 0, NULL);
    /* An owner other than the trusted ones may rewrite the permissions at any time. */
    writable(L"O:BUD:(A;;FA;;;SY)(A;;FA;;;BA)", 0, "owned by");
    writable(L"O:S-1-5-21-1-2-3-1000D:(A;;FA;;;BA)", 1, "owned by");
    /* No DACL: anyone may do anything. (Built by hand: Wine 8 reads SDDL's
     * NO_ACCESS_CONTROL as an empty DACL, which is the opposite.) */
    SECURITY_DESCRIPTOR open_sd;
    char who[400];
    CHECK(InitializeSecurityDescriptor(&open_sd, SECURITY_DESCRIPTOR_REVISION));
    CHECK(SetSecurityDescriptorDacl(&open_sd, TRUE, NULL, FALSE));
    CHECK(svc_sd_writable_by_others(&open_sd, 0, who, sizeof who) == 1);
    CHECK_MSG(strstr(who, "no permissions") != NULL, "%s", who);
}

/* A path of four steps built from SDDL (executable, its folder, a folder above, the root):
 * the verdict names the first step others may change, or a reparse point anywhere. */
static int chain(const wchar_t *folder_above, DWORD above_attributes, char *msg, size_t size)
{
    /* C:\ as Windows ships it: every authenticated user may add a folder to it (this is no
     * way to replace what is below), and gets modify only on what is inside (inherit-only). */
    const wchar_t *root = L"O:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;BU)"
                          L"(A;CI;0x4;;;AU)(A;OICIIO;SDGXGWGR;;;AU)";
    const wchar_t *safe = L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1200a9;;;BU)";
    const wchar_t *sddl[4] = {safe, safe, folder_above, root};
    const wchar_t *paths[4] = {L"C:\\apps\\iocp\\iocp-service.exe", L"C:\\apps\\iocp", L"C:\\apps",
                               L"C:\\"};
    svc_location_entry e[4];
    for (int i = 0; i < 4; i++) {
        e[i].path = paths[i];
        e[i].kind = i == 0   ? SVC_LOCATION_FILE
                    : i == 1 ? SVC_LOCATION_FOLDER
                             : SVC_LOCATION_ANCESTOR;
        e[i].attributes = i == 0 ? FILE_ATTRIBUTE_ARCHIVE : FILE_ATTRIBUTE_DIRECTORY;
        e[i].sd = NULL;
        CHECK(ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl[i], SDDL_REVISION_1,
                                                                   &e[i].sd, NULL));
    }
    e[2].attributes = above_attributes;
    int rc = svc_location_verdict(e, 4, msg, size);
    for (int i = 0; i < 4; i++)
        LocalFree(e[i].sd);
    return rc;
}

static void location_walks_every_folder(void)
{
    char msg[800];
    const wchar_t *safe = L"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1200a9;;;BU)";
    /* Safe all the way, with C:\ as shipped at the top. */
    CHECK_MSG(chain(safe, FILE_ATTRIBUTE_DIRECTORY, msg, sizeof msg) == 0, "%s", msg);
    /* Authenticated users may modify C:\apps: they can rename C:\apps\iocp away and put
     * their own folder with their own iocp-service.exe in its place. */
    CHECK(chain(L"O:BAD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1301bf;;;AU)", FILE_ATTRIBUTE_DIRECTORY, msg,
                sizeof msg) == 1);
    CHECK_MSG(strstr(msg, "the folder above it C:\\apps: ") != NULL, "%s", msg);
    CHECK_MSG(strstr(msg, "delete") != NULL, "%s", msg);
    /* Deleting a child is enough on its own. */
    CHECK(chain(L"O:BAD:(A;;FA;;;BA)(A;;0x1200e9;;;BU)", FILE_ATTRIBUTE_DIRECTORY, msg,
                sizeof msg) == 1);
    CHECK_MSG(strstr(msg, "delete files in it") != NULL, "%s", msg);
    /* Owned by a user: they may rewrite its permissions whenever they like. */
    CHECK(chain(L"O:S-1-5-21-1-2-3-1000D:(A;;FA;;;BA)", FILE_ATTRIBUTE_DIRECTORY, msg,
                sizeof msg) == 1);
    CHECK_MSG(strstr(msg, "C:\\apps: it is owned by") != NULL, "%s", msg);
    /* Adding files or folders to a folder above is no way in (it is, beside the executable). */
    CHECK_MSG(chain(L"O:BAD:(A;;FA;;;BA)(A;;0x1200af;;;BU)", FILE_ATTRIBUTE_DIRECTORY, msg,
                    sizeof msg) == 0,
              "%s", msg);
    /* A junction on the way, however well protected: refused, named. */
    CHECK(chain(safe, FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT, msg, sizeof msg) ==
          1);
    CHECK_MSG(strstr(msg, "C:\\apps is a reparse point") != NULL, "%s", msg);
}

/* The log file and its folder name the service's own SID, not the account it runs as (which
 * every LocalService service shares); a console, or a token without that SID, its user. */
static void private_file_names_service_sid(void)
{
    wchar_t sddl[400];
    const wchar_t *ls = L"S-1-5-19", *svc = L"S-1-5-80-1-2-3-4-5";
    svc_private_file_sddl(0, ls, svc, sddl, 400);
    CHECK_MSG(wcscmp(sddl, L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;S-1-5-80-1-2-3-4-5)") == 0, "%ls",
              sddl);
    svc_private_file_sddl(1, ls, svc, sddl, 400);
    CHECK_MSG(wcscmp(sddl,
                     L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;S-1-5-80-1-2-3-4-"
                     L"5)") == 0,
              "%ls", sddl);
    CHECK(wcsstr(sddl, ls) == NULL);
    svc_private_file_sddl(0, ls, NULL, sddl, 400);
    CHECK_MSG(wcscmp(sddl, L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;S-1-5-19)") == 0, "%ls", sddl);
    svc_private_file_sddl(1, ls, L"", sddl, 400);
    CHECK_MSG(wcsstr(sddl, L";;;S-1-5-19)") != NULL, "%ls", sddl);
}

static void accounts_without_password(void)
{
    static const char *const builtin[] = {"NT AUTHORITY\\LocalService",
                                          "nt authority\\networkservice",
                                          "LocalSystem",
                                          ".\\LocalSystem",
                                          "NT AUTHORITY\\SYSTEM",
                                          "NT SERVICE\\iocp-echo",
                                          "CORP\\web01$",
                                          ""};
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        CHECK_MSG(svc_account_is_builtin(builtin[i]), "%s", builtin[i]);
    static const char *const users[] = {".\\svc-echo", "CORP\\svc-echo", "svc-echo",
                                        "NT AUTHORITY\\LocalServiceX", "me@corp.example"};
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++)
        CHECK_MSG(!svc_account_is_builtin(users[i]), "%s", users[i]);
    /* CreateServiceW wants NULL, not "", as the password of a virtual or managed account. */
    CHECK(svc_account_password_null("NT SERVICE\\iocp-echo"));
    CHECK(svc_account_password_null("nt service\\iocp-echo"));
    CHECK(svc_account_password_null("CORP\\web01$"));
    CHECK(!svc_account_password_null("NT AUTHORITY\\LocalService"));
    CHECK(!svc_account_password_null("LocalSystem"));
    CHECK(!svc_account_password_null(".\\svc-echo"));
}

static void password_line_from_pipe(void)
{
    HANDLE r, w;
    DWORD n;
    char pw[SVC_TEXT_MAX];
    /* Two lines (a CRLF one with UTF-8 in it), then the end of the input. */
    static const char text[] = "s3cr\xc3\xa9t pass\r\nsecond\nlast";
    CHECK(CreatePipe(&r, &w, NULL, 4096));
    CHECK(WriteFile(w, text, sizeof text - 1, &n, NULL) && n == sizeof text - 1);
    CloseHandle(w);
    CHECK_EQ_U(secret_read_line(r, pw, sizeof pw), NO_ERROR);
    CHECK(strcmp(pw, "s3cr\xc3\xa9t pass") == 0);
    /* Only the first line was taken: the rest is still there. */
    CHECK_EQ_U(secret_read_line(r, pw, sizeof pw), NO_ERROR);
    CHECK(strcmp(pw, "second") == 0);
    CHECK_EQ_U(secret_read_line(r, pw, sizeof pw), NO_ERROR);
    CHECK(strcmp(pw, "last") == 0);
    CHECK_EQ_U(secret_read_line(r, pw, sizeof pw), ERROR_HANDLE_EOF);
    CloseHandle(r);

    /* An empty line is an empty password; a line too long is refused, not cut. */
    CHECK(CreatePipe(&r, &w, NULL, 4096));
    CHECK(WriteFile(w, "\n", 1, &n, NULL));
    static char longer[SVC_TEXT_MAX + 10];
    memset(longer, 'p', sizeof longer);
    CHECK(WriteFile(w, longer, sizeof longer, &n, NULL));
    CloseHandle(w);
    CHECK_EQ_U(secret_read_line(r, pw, sizeof pw), NO_ERROR);
    CHECK(pw[0] == '\0');
    CHECK_EQ_U(secret_read_line(r, pw, sizeof pw), ERROR_INSUFFICIENT_BUFFER);
    CHECK(pw[0] == '\0');
    CloseHandle(r);
}

/* Where both programs take a password from (common/secret_input.c): none without standard
 * input, one line from a pipe or a file, the echo-off prompt only on a console. */
static void password_source_decision(void)
{
    CHECK(secret_source_of(NULL, NULL) == SECRET_SOURCE_NONE);
    CHECK(secret_source_of(INVALID_HANDLE_VALUE, NULL) == SECRET_SOURCE_NONE);
    HANDLE r, w;
    CHECK(CreatePipe(&r, &w, NULL, 4096));
    CHECK(secret_source_of(r, NULL) == SECRET_SOURCE_STREAM);
    CloseHandle(r);
    CloseHandle(w);
    wchar_t dir[MAX_PATH], path[MAX_PATH];
    CHECK(GetTempPathW(MAX_PATH, dir) > 0 && GetTempFileNameW(dir, L"pw", 0, path) != 0);
    HANDLE f = CreateFileW(path, GENERIC_READ, 0, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK(secret_source_of(f, NULL) == SECRET_SOURCE_STREAM);
    CloseHandle(f);
    DeleteFileW(path);
    /* A console input handle, where this process can open one (CTest may run it without). */
    HANDLE con = CreateFileW(L"CONIN$", GENERIC_READ | GENERIC_WRITE,
                             FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING, 0, NULL);
    DWORD mode = 0;
    if (con != INVALID_HANDLE_VALUE && GetConsoleMode(con, &mode)) {
        DWORD seen = 0;
        CHECK(secret_source_of(con, &seen) == SECRET_SOURCE_CONSOLE);
        CHECK_EQ_U(seen, mode);
        printf("CONIN$: a console, asked for with echo off\n");
    } else {
        printf("no console to open here (CONIN$): that branch not checked\n");
    }
    if (con != INVALID_HANDLE_VALUE)
        CloseHandle(con);
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
    wchar_t wname[SVC_NAME_MAX + 240];
    DWORD sys;
    snprintf(name, sizeof name, "unit-sq-%lu", (unsigned long)GetCurrentProcessId());
    svc_instance_mutex_name(name, wname, SVC_NAME_MAX + 240);
    HANDLE squat = CreateMutexW(NULL, TRUE, wname);
    CHECK(squat != NULL);
    if (svc_instance_private_namespaces()) {
        /* Windows: the instance is in its own namespace; the plain name is nobody's lever. */
        CHECK(run_lock(name, 1, &sys) == SVC_LOCK_OK);
        CloseHandle(squat);
        return;
    }
    CHECK(run_lock(name, 1, &sys) == SVC_LOCK_HELD);
    svc_instance_describe_holder(name, holder, sizeof holder);
    CHECK_MSG(strstr(holder, "another program has taken the name") != NULL, "holder: %s", holder);
    CHECK_MSG(strstr(holder, "handle.exe -a iocp-service-unit-sq-") != NULL, "holder: %s", holder);
    CloseHandle(squat);

    /* A mutex whose DACL admits nobody. */
    snprintf(name, sizeof name, "unit-sq2-%lu", (unsigned long)GetCurrentProcessId());
    svc_instance_mutex_name(name, wname, SVC_NAME_MAX + 240);
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
    /* The SCM runs the service as another process: the pipe's owner being the mutex's owner
     * (a console of the service's account, or a squatter of the same account) is not enough. */
    CHECK(svc_instance_trust(&peer, a, 200, 100, why, sizeof why) == 0);
    CHECK_MSG(strstr(why, "served by process 100, but the Service Control Manager runs the service "
                          "as process 200") != NULL,
              "%s", why);
}

/* Where the instance mutex lives, decided from what the process found out (namespace.c). */
static void instance_names_plan(void)
{
    const wchar_t *user = L"S-1-5-21-1-2-3-1001";
    const wchar_t *service = L"S-1-5-80-1-2-3-4-5";
    svc_instance_names p;
    char note[600];

    /* The service with its SID: a namespace bounded by that SID alone; administrators and
     * system are in its DACL, not its boundary (a token must hold every boundary SID). */
    svc_instance_plan("echo1", 1, user, service, SVC_NS_NOT_TRIED, 0, &p);
    CHECK(p.use_namespace);
    CHECK_MSG(wcscmp(p.boundary_sid, service) == 0, "%ls", p.boundary_sid);
    CHECK_MSG(
        wcscmp(p.namespace_sddl, L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;S-1-5-80-1-2-3-4-5)") == 0,
        "%ls", p.namespace_sddl);
    CHECK_MSG(wcscmp(p.alias, L"iocp-service-echo1") == 0, "%ls", p.alias);
    svc_instance_plan("echo1", 1, user, service, SVC_NS_READY, 0, &p);
    CHECK(p.in_namespace);
    CHECK_MSG(wcscmp(p.mutex, L"iocp-service-echo1\\instance") == 0, "%ls", p.mutex);
    CHECK(p.note[0] == '\0');

    /* No boundary (Wine): the plain global name, and a note that says so and what it costs. */
    svc_instance_plan("echo1", 1, user, service, SVC_NS_UNAVAILABLE, 0, &p);
    CHECK(!p.in_namespace);
    CHECK_MSG(wcscmp(p.mutex, L"Global\\iocp-service-echo1") == 0, "%ls", p.mutex);
    CHECK_MSG(strstr(p.note, "private namespaces are not available") != NULL, "%s", p.note);
    CHECK_MSG(strstr(p.note, "Global\\iocp-service-echo1") != NULL, "%s", p.note);
    CHECK_MSG(strstr(p.note, "keeps the service from starting") != NULL, "%s", p.note);
    /* It failed on a system that has them: the code is named. */
    svc_instance_plan("echo1", 1, user, service, SVC_NS_FAILED, ERROR_ACCESS_DENIED, &p);
    CHECK_MSG(wcscmp(p.mutex, L"Global\\iocp-service-echo1") == 0, "%ls", p.mutex);
    CHECK_MSG(strstr(p.note, "Win32 5") != NULL, "%s", p.note);

    /* A service token without its SID: no namespace to try (a boundary of LocalService would
     * admit every LocalService service), the plain name and why. */
    svc_instance_plan("echo1", 1, user, NULL, SVC_NS_NOT_TRIED, 0, &p);
    CHECK(!p.use_namespace);
    svc_instance_plan("echo1", 1, user, NULL, SVC_NS_UNAVAILABLE, 0, &p);
    CHECK_MSG(wcscmp(p.mutex, L"Global\\iocp-service-echo1") == 0, "%ls", p.mutex);
    CHECK_MSG(strstr(p.note, "lacks NT SERVICE\\echo1") != NULL, "%s", p.note);

    /* A console: the user's own namespace, or a per-user, per-session plain name. Never the
     * service's name: a console cannot take the service's place, nor a user another's. */
    svc_instance_plan("echo1", 0, user, NULL, SVC_NS_NOT_TRIED, 0, &p);
    CHECK(p.use_namespace);
    CHECK_MSG(wcscmp(p.boundary_sid, user) == 0, "%ls", p.boundary_sid);
    svc_instance_plan("echo1", 0, user, NULL, SVC_NS_READY, 0, &p);
    CHECK_MSG(wcscmp(p.mutex, L"iocp-service-echo1\\instance") == 0, "%ls", p.mutex);
    svc_instance_plan("echo1", 0, user, NULL, SVC_NS_UNAVAILABLE, 0, &p);
    CHECK_MSG(wcscmp(p.mutex, L"Local\\iocp-service-echo1-S-1-5-21-1-2-3-1001") == 0, "%ls",
              p.mutex);
    svc_narrow(p.mutex, note, sizeof note);
    CHECK_MSG(strstr(p.note, note) != NULL, "%s", p.note);
    CHECK_MSG(strstr(p.note, "this user's instance") != NULL, "%s", p.note);
    svc_instance_plan("echo1", 0, NULL, NULL, SVC_NS_NOT_TRIED, 0, &p);
    CHECK(!p.use_namespace);
    CHECK_MSG(strstr(p.note, "cannot read this process's user SID") != NULL, "%s", p.note);

    /* This system: Wine has no private namespaces; then the console's lock uses the plain
     * name and says so. */
    svc_instance inst;
    DWORD sys;
    char name[64];
    snprintf(name, sizeof name, "unit-ns-%lu", (unsigned long)GetCurrentProcessId());
    CHECK(svc_instance_lock(&inst, name, &sys) == SVC_LOCK_OK);
    printf("private namespaces here: %d; mutex %ls; %s\n", svc_instance_private_namespaces(),
           inst.name, inst.note);
    CHECK(inst.in_namespace == svc_instance_private_namespaces());
    if (!inst.in_namespace) {
        CHECK(wcsncmp(inst.name, L"Local\\iocp-service-unit-ns-", 27) == 0);
        CHECK_MSG(strstr(inst.note, "private namespaces are not available") != NULL, "%s",
                  inst.note);
    }
    svc_instance_unlock(&inst);
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

/* ---- the log file -------------------------------------------------------------------------- */

/* A fresh folder under %TEMP% for one case: <temp>\iocp-log-<pid>-<tag> (removed first). */
static void temp_dir(const char *tag, char *out, size_t size)
{
    wchar_t base[MAX_PATH];
    char narrow[MAX_PATH * 3];
    GetTempPathW(MAX_PATH, base);
    svc_narrow(base, narrow, sizeof narrow);
    snprintf(out, size, "%siocp-log-%lu-%s", narrow, (unsigned long)GetCurrentProcessId(), tag);
    wchar_t wide[MAX_PATH], pattern[MAX_PATH], file[MAX_PATH];
    svc_widen(out, wide, MAX_PATH);
    swprintf(pattern, MAX_PATH, L"%ls\\*", wide);
    WIN32_FIND_DATAW fd;
    HANDLE f = FindFirstFileW(pattern, &fd);
    if (f != INVALID_HANDLE_VALUE) {
        do {
            swprintf(file, MAX_PATH, L"%ls\\%ls", wide, fd.cFileName);
            if (!DeleteFileW(file))
                RemoveDirectoryW(file); /* a folder a case made (an empty one) */
        } while (FindNextFileW(f, &fd));
        FindClose(f);
    }
    RemoveDirectoryW(wide);
}

/* The file's bytes (NUL-terminated, malloc'd); NULL if it does not exist. */
static char *slurp(const char *path, size_t *len)
{
    wchar_t wide[MAX_PATH];
    svc_widen(path, wide, MAX_PATH);
    HANDLE f =
        CreateFileW(wide, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    NULL, OPEN_EXISTING, 0, NULL);
    if (f == INVALID_HANDLE_VALUE)
        return NULL;
    LARGE_INTEGER size;
    CHECK(GetFileSizeEx(f, &size));
    char *buf = malloc((size_t)size.QuadPart + 1);
    CHECK(buf != NULL);
    DWORD n = 0;
    CHECK(ReadFile(f, buf, (DWORD)size.QuadPart, &n, NULL));
    buf[n] = '\0';
    *len = n;
    CloseHandle(f);
    return buf;
}

static PSID sid_of(const wchar_t *text)
{
    PSID sid = NULL;
    CHECK(ConvertStringSidToSidW(text, &sid));
    return sid;
}

/* The checks on what a file is, without a real attack: Wine 8 models neither reparse points
 * (FSCTL_SET_REPARSE_POINT fails with 50, CreateSymbolicLinkW creates nothing) nor owners
 * other than the process's own (SetNamedSecurityInfoW of another owner is ignored). */
static void log_file_refusal_reasons(void)
{
    PSID self = sid_of(L"S-1-5-21-1-2-3-1001");
    PSID system = sid_of(L"S-1-5-18"), admins = sid_of(L"S-1-5-32-544");
    PSID ti = sid_of(L"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464");
    PSID users = sid_of(L"S-1-5-32-545"), everyone = sid_of(L"S-1-1-0");
    PSID other = sid_of(L"S-1-5-21-1-2-3-1002"), local_service = sid_of(L"S-1-5-19");
    DWORD code;
    const char *why;
    /* Trusted owners of a plain file with one link: accepted. */
    PSID trusted[] = {self, system, admins, ti};
    for (size_t i = 0; i < sizeof trusted / sizeof trusted[0]; i++) {
        CHECK(svc_file_refusal(FILE_ATTRIBUTE_ARCHIVE, 1, trusted[i], self, 0, &code) == NULL);
        CHECK_EQ_U(code, NO_ERROR);
    }
    /* Anyone else: a planted file. LocalService is trusted only when it is us. */
    PSID foreign[] = {users, everyone, other, local_service, NULL};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        why = svc_file_refusal(FILE_ATTRIBUTE_NORMAL, 1, foreign[i], self, 0, &code);
        CHECK_MSG(why != NULL && strstr(why, "owner") != NULL, "%s", why ? why : "accepted");
        CHECK_EQ_U(code, ERROR_INVALID_OWNER);
    }
    CHECK(svc_file_refusal(FILE_ATTRIBUTE_NORMAL, 1, local_service, local_service, 0, &code) ==
          NULL);
    /* A link, a hard-linked file, a folder where a file belongs: refused even when ours. */
    why = svc_file_refusal(FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_ARCHIVE, 1, self, self, 0,
                           &code);
    CHECK(why != NULL && strstr(why, "reparse point") != NULL);
    CHECK_EQ_U(code, 4395); /* ERROR_REPARSE_POINT_ENCOUNTERED */
    why = svc_file_refusal(FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY, 1, system, self,
                           1, &code);
    CHECK(why != NULL && strstr(why, "reparse point") != NULL); /* a junction as the folder */
    why = svc_file_refusal(FILE_ATTRIBUTE_NORMAL, 2, self, self, 0, &code);
    CHECK(why != NULL && strstr(why, "hard link") != NULL);
    CHECK_EQ_U(code, ERROR_TOO_MANY_LINKS);
    CHECK(svc_file_refusal(FILE_ATTRIBUTE_DIRECTORY, 1, self, self, 0, &code) != NULL);
    CHECK(svc_file_refusal(FILE_ATTRIBUTE_NORMAL, 1, self, self, 1, &code) != NULL);
    /* Folders: links do not matter (a folder's count is its subfolders on some systems). */
    CHECK(svc_file_refusal(FILE_ATTRIBUTE_DIRECTORY, 3, admins, self, 1, &code) == NULL);
    why = svc_file_refusal(FILE_ATTRIBUTE_DIRECTORY, 1, users, self, 1, &code);
    CHECK(why != NULL && code == ERROR_INVALID_OWNER);
    PSID all[] = {self, system, admins, ti, users, everyone, other, local_service};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        LocalFree(all[i]);
}

/* Whether the DACL gives anything to a SID other than system, administrators and owner. */
static int dacl_only_private(HANDLE h, char *text, size_t size)
{
    PSID owner = NULL;
    PACL dacl = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    CHECK_EQ_U(GetSecurityInfo(h, SE_FILE_OBJECT,
                               OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &owner, NULL,
                               &dacl, NULL, &sd),
               0);
    wchar_t *sddl = NULL;
    if (ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd, SDDL_REVISION_1, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &sddl,
            NULL)) {
        svc_narrow(sddl, text, size);
        LocalFree(sddl);
    }
    int ok = dacl != NULL;
    for (DWORD i = 0; ok && i < dacl->AceCount; i++) {
        ACCESS_ALLOWED_ACE *ace;
        CHECK(GetAce(dacl, i, (void **)&ace));
        if (ace->Header.AceType != ACCESS_ALLOWED_ACE_TYPE)
            continue;
        PSID sid = (PSID)&ace->SidStart;
        if (!IsWellKnownSid(sid, WinLocalSystemSid) &&
            !IsWellKnownSid(sid, WinBuiltinAdministratorsSid) && !EqualSid(sid, owner))
            ok = 0;
    }
    LocalFree(sd);
    return ok;
}

/* A file and a folder the log code creates give nobody but system, administrators and this
 * account any access (the folder's inherited DACL would: Wine's default lets everyone read,
 * so this fails on a plain CreateFileW), and the owner read back is this account. */
static void log_file_created_private(void)
{
    char dir[MAX_PATH * 3], path[MAX_PATH * 3], why[700], sddl[600] = "";
    temp_dir("dacl", dir, sizeof dir);
    snprintf(path, sizeof path, "%s\\new.log", dir);
    CHECK_MSG(svc_log_open_file_ex(path, why, sizeof why) == 0, "%s", why);
    svc_log(IOCP_LOG_INFO, "first line");
    svc_log_close();
    wchar_t wide[MAX_PATH];
    svc_widen(path, wide, MAX_PATH);
    HANDLE f = CreateFileW(wide, READ_CONTROL, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                           OPEN_EXISTING, 0, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK_MSG(dacl_only_private(f, sddl, sizeof sddl), "file: %s", sddl);
    printf("log file: %s\n", sddl);
    char check[300];
    CHECK_MSG(svc_file_check(f, 0, check, sizeof check) == 0, "%s", check);
    CloseHandle(f);
    svc_widen(dir, wide, MAX_PATH);
    f = CreateFileW(wide, READ_CONTROL, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING,
                    FILE_FLAG_BACKUP_SEMANTICS, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    CHECK_MSG(dacl_only_private(f, sddl, sizeof sddl), "folder: %s", sddl);
    printf("log folder: %s\n", sddl);
    CloseHandle(f);
    /* The folder was made once; a second open finds and accepts it. */
    CHECK_MSG(svc_log_open_file_ex(path, why, sizeof why) == 0, "%s", why);
    svc_log_close();
    /* Only one level is made: a missing parent is an error, not a tree of new folders. */
    snprintf(path, sizeof path, "%s\\no\\such\\x.log", dir);
    CHECK(svc_log_open_file_ex(path, why, sizeof why) == ERROR_PATH_NOT_FOUND);
    CHECK_MSG(strstr(why, "its folder") != NULL, "%s", why);
}

/* A hard link to the log file (Wine 8 models these: CreateHardLinkW works and the count is
 * 2) makes the open fail with the reason, and nothing is written to it. */
static void log_file_hard_link_refused(void)
{
    char dir[MAX_PATH * 3], path[MAX_PATH * 3], other[MAX_PATH * 3], why[700];
    temp_dir("link", dir, sizeof dir);
    snprintf(path, sizeof path, "%s\\x.log", dir);
    snprintf(other, sizeof other, "%s\\somebody-elses-file", dir);
    CHECK_MSG(svc_log_open_file_ex(path, why, sizeof why) == 0, "%s", why);
    svc_log(IOCP_LOG_INFO, "before the link");
    svc_log_close();
    wchar_t wpath[MAX_PATH], wother[MAX_PATH];
    svc_widen(path, wpath, MAX_PATH);
    svc_widen(other, wother, MAX_PATH);
    CHECK(CreateHardLinkW(wother, wpath, NULL));
    size_t before = 0, after = 0;
    free(slurp(path, &before));
    DWORD e = svc_log_open_file_ex(path, why, sizeof why);
    CHECK_EQ_U(e, ERROR_TOO_MANY_LINKS);
    CHECK_MSG(strstr(why, "hard link") != NULL && strstr(why, "2 links") != NULL, "%s", why);
    printf("refused: %s\n", why);
    svc_log(IOCP_LOG_INFO, "must go nowhere");
    free(slurp(path, &after));
    CHECK_EQ_U(after, before);
    /* The other name gone, the file is accepted again. */
    CHECK(DeleteFileW(wother));
    CHECK_MSG(svc_log_open_file_ex(path, why, sizeof why) == 0, "%s", why);
    svc_log_close();
    /* A folder where the file should be. */
    snprintf(path, sizeof path, "%s\\sub.log", dir);
    svc_widen(path, wpath, MAX_PATH);
    CHECK(CreateDirectoryW(wpath, NULL));
    e = svc_log_open_file_ex(path, why, sizeof why);
    CHECK_MSG(e != 0, "a folder was opened as the log");
}

/* Every line of a log text: whole (date first, CRLF last); returns the count, and checks the
 * sequence numbers "seq=N" of lines from `writer` ascend by one from *next. */
static int check_lines(const char *text, const char *writer, long *next)
{
    int lines = 0;
    char tag[40];
    snprintf(tag, sizeof tag, "%s seq=", writer);
    for (const char *p = text; *p != '\0';) {
        const char *end = strstr(p, "\r\n");
        CHECK_MSG(end != NULL, "a line without its end: '%.80s'", p);
        CHECK_MSG(p[0] == '2' && p[4] == '-' && p[10] == ' ', "a line cut at its start: '%.80s'",
                  p);
        const char *s = strstr(p, tag);
        if (s != NULL && s < end) {
            long seq = strtol(s + strlen(tag), NULL, 10);
            CHECK_MSG(seq == *next, "%s: line %ld where %ld was due", writer, seq, *next);
            (*next)++;
        }
        lines++;
        p = end + 2;
    }
    return lines;
}

#define ROTATE_CAP 16384u

/* Writes n numbered lines (the writer process, and the case itself). */
static void write_numbered(const char *writer, long n)
{
    for (long i = 0; i < n; i++)
        svc_log(IOCP_LOG_INFO, "%s seq=%ld padding to make the line about a hundred bytes long",
                writer, i);
}

/* The cap and rotation: file, file.1 .. file.3 kept, none past the cap, file.4 never made;
 * read oldest to newest, the lines follow each other with none missing or cut. Then a
 * second process writes the same file at the same time: its lines and ours are all there,
 * each whole and once, in order, in files none of which passed the cap. */
static void log_rotation_keeps_cap(void)
{
    char dir[MAX_PATH * 3], path[MAX_PATH * 3], name[MAX_PATH * 3 + 8], why[700];
    temp_dir("rot", dir, sizeof dir);
    snprintf(path, sizeof path, "%s\\r.log", dir);
    svc_log_set_limits(ROTATE_CAP, 3);
    CHECK_MSG(svc_log_open_file_ex(path, why, sizeof why) == 0, "%s", why);
    write_numbered("main", 1000); /* ~100 KB: six rotations */
    svc_log_close();

    long next = -1; /* the first line kept is not 0: the oldest files were deleted */
    int total = 0;
    for (int i = 3; i >= 0; i--) {
        snprintf(name, sizeof name, i ? "%s.%d" : "%s", path, i);
        size_t len = 0;
        char *text = slurp(name, &len);
        CHECK_MSG(text != NULL, "%s is missing", name);
        printf("%s: %zu bytes\n", name, len);
        CHECK_MSG(len <= ROTATE_CAP, "%s has %zu bytes, past the cap", name, len);
        CHECK_MSG(i == 0 || len > ROTATE_CAP - 200, "%s rotated early at %zu bytes", name, len);
        if (next < 0) {
            const char *s = strstr(text, "main seq=");
            CHECK(s != NULL);
            next = strtol(s + 9, NULL, 10);
        }
        total += check_lines(text, "main", &next);
        free(text);
    }
    CHECK_EQ_U(next, 1000); /* the newest line is the last one written */
    snprintf(name, sizeof name, "%s.4", path);
    size_t len;
    CHECK_MSG(slurp(name, &len) == NULL, "%s exists: more than 3 kept", name);
    printf("%d lines kept in 4 files\n", total);

    /* Two processes at once; 99 kept so that every line stays. */
    temp_dir("rot2", dir, sizeof dir);
    snprintf(path, sizeof path, "%s\\r.log", dir);
    svc_log_set_limits(ROTATE_CAP, 99);
    CHECK_MSG(svc_log_open_file_ex(path, why, sizeof why) == 0, "%s", why);
    wchar_t exe[MAX_PATH], cmd[MAX_PATH * 4], wpath[MAX_PATH * 3];
    GetModuleFileNameW(NULL, exe, MAX_PATH);
    svc_widen(path, wpath, MAX_PATH * 3);
    swprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" --log-writer \"%ls\"", exe, wpath);
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    CHECK(test_create_process(exe, cmd, 0, 0, &si, &pi));
    CloseHandle(pi.hThread);
    write_numbered("main", 1500);
    CHECK(WaitForSingleObject(pi.hProcess, 60000) == WAIT_OBJECT_0);
    DWORD code = 1;
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hProcess);
    CHECK_EQ_U(code, 0);
    svc_log_close();
    long next_main = 0, next_child = 0;
    int files = 0;
    for (int i = 99; i >= 0; i--) {
        snprintf(name, sizeof name, i ? "%s.%d" : "%s", path, i);
        char *text = slurp(name, &len);
        if (text == NULL)
            continue;
        files++;
        CHECK_MSG(len <= ROTATE_CAP, "%s has %zu bytes, past the cap", name, len);
        check_lines(text, "main", &next_main);
        check_lines(text, "child", &next_child);
        free(text);
    }
    printf("two writers: %d files, %ld + %ld lines\n", files, next_main, next_child);
    CHECK_EQ_U(next_main, 1500);
    CHECK_EQ_U(next_child, 1500);
    svc_log_set_limits((uint64_t)SVC_DEFAULT_LOG_MIB << 20, SVC_DEFAULT_LOG_KEEP);
}

/* The second process of log_rotation_keeps_cap. */
static int log_writer(const char *path)
{
    char why[700];
    svc_log_set_limits(ROTATE_CAP, 99);
    if (svc_log_open_file_ex(path, why, sizeof why) != 0) {
        fprintf(stderr, "writer: %s\n", why);
        return 2;
    }
    write_numbered("child", 1500);
    svc_log_close();
    return 0;
}

static int flushed;
static char flushed_text[400];

static void count_summary(void *user, iocp_log_level level, const char *text)
{
    (void)user;
    (void)level;
    flushed++;
    snprintf(flushed_text, sizeof flushed_text, "%s", text);
}

/* A word without digits, different for each i: "bcd", "bce", ... */
static const char *word_for(int i, char *out, size_t size)
{
    snprintf(out, size, "%c%c%c", 'a' + i % 26, 'a' + (i / 26) % 26, 'a' + (i / 676) % 26);
    return out;
}

/* The rate limit, on a clock of its own. */
static void log_rate_limit_per_kind(void)
{
    static svc_ratelimit rl;
    char summary[400], msg[200];
    memset(&rl, 0, sizeof rl);
    /* The kind: the words without digits. Peers and numbers do not make a new kind. */
    CHECK(svc_log_kind_key(IOCP_LOG_WARN,
                           "protocol error from 10.0.0.7:4411: line longer than 16 bytes") ==
          svc_log_kind_key(IOCP_LOG_WARN,
                           "protocol error from [::1]:60000: line longer than 1024 bytes"));
    CHECK(svc_log_kind_key(IOCP_LOG_WARN, "[::1]:5 does not read its echoes: closing it") ==
          svc_log_kind_key(IOCP_LOG_WARN, "192.168.1.1:7 does not read its echoes: closing it"));
    CHECK(svc_log_kind_key(IOCP_LOG_WARN, "protocol error from 1.2.3.4:5: bad header") !=
          svc_log_kind_key(IOCP_LOG_WARN, "1.2.3.4:5 does not read its echoes: closing it"));
    CHECK(svc_log_kind_key(IOCP_LOG_WARN, "x") != svc_log_kind_key(IOCP_LOG_INFO, "x"));

    /* 1000 of one kind in a second: 10 written; another kind meanwhile is not held back. */
    uint64_t t = 5000;
    int written = 0, other = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(msg, sizeof msg, "protocol error from 10.0.%d.%d:%d: too long", i / 256, i % 256,
                 1000 + i);
        written += svc_ratelimit_pass(&rl, IOCP_LOG_WARN, msg, t + (uint64_t)i / 2, summary,
                                      sizeof summary);
        CHECK(summary[0] == '\0');
        if (i % 100 == 0)
            other += svc_ratelimit_pass(&rl, IOCP_LOG_WARN, "10.1.1.1:1 does not read", t, summary,
                                        sizeof summary);
    }
    CHECK_EQ_U(written, SVC_LOG_BURST);
    CHECK_EQ_U(other, SVC_LOG_BURST);
    /* The next second: the summary comes first, then the line. */
    CHECK(svc_ratelimit_pass(&rl, IOCP_LOG_WARN, "protocol error from 9.9.9.9:9: too long",
                             t + 1000, summary, sizeof summary) == 1);
    CHECK_MSG(strstr(summary, "990 similar messages suppressed in the last 1 s") != NULL, "%s",
              summary);
    CHECK_MSG(strstr(summary, "10.0.3.231:1999") != NULL, "the last one is named: %s", summary);
    /* A flush says what is pending once its second has passed, not before. */
    for (int i = 0; i < 15; i++)
        svc_ratelimit_pass(&rl, IOCP_LOG_WARN, "protocol error from 9.9.9.9:9: too long", t + 1100,
                           summary, sizeof summary);
    flushed = 0;
    svc_ratelimit_flush(&rl, t + 1500, 0, count_summary, NULL);
    CHECK_EQ_U(flushed, 0); /* its second (from t + 1000) is not over */
    svc_ratelimit_flush(&rl, t + 2000, 0, count_summary, NULL);
    CHECK_EQ_U(flushed, 1);
    CHECK_MSG(strstr(flushed_text, "6 similar messages suppressed") != NULL, "%s", flushed_text);
    svc_ratelimit_flush(&rl, t + 2001, 1, count_summary, NULL);
    CHECK_EQ_U(flushed, 1); /* nothing left */

    /* More kinds than slots: memory stays fixed; the extra kinds share the last slot. */
    int passed = 0;
    for (int i = 0; i < 200; i++) {
        char word[40];
        snprintf(msg, sizeof msg, "kind %s", word_for(i, word, sizeof word));
        passed += svc_ratelimit_pass(&rl, IOCP_LOG_WARN, msg, t + 3000, summary, sizeof summary);
    }
    CHECK_MSG(passed <= SVC_LOG_KINDS * SVC_LOG_BURST, "%d of 200 kinds passed", passed);
    CHECK(passed >= SVC_LOG_KINDS - 1);
}

/* ---- behind a load balancer: options, the admin endpoint's request parser, /metrics -------- */

static void options_load_balancer(void)
{
    svc_options o;
    PARSE_OK(&o, "run", "--proxy-protocol", "127.0.0.1/32, ::1/128,10.0.0.0/8", "--admin-port",
             "9100");
    CHECK(strcmp(o.server.proxy_protocol, "127.0.0.1/32, ::1/128,10.0.0.0/8") == 0);
    CHECK_EQ_U(o.server.admin_port, 9100);
    CHECK_EQ_U(o.server.proxy_timeout_s, 5);
    iocp_config c;
    svc_server_config(&o.server, &c);
    CHECK(c.proxy_protocol_from != NULL &&
          strcmp(c.proxy_protocol_from, o.server.proxy_protocol) == 0);
    CHECK_EQ_U(c.proxy_header_timeout_ms, 5000);
    PARSE_OK(&o, "run", "--admin-port", "9100", "--admin-bind", "::1");
    PARSE_OK(&o, "drain", "--name", "edge-1", NULL, NULL);
    CHECK(o.command == SVC_CMD_DRAIN && strcmp(o.name, "edge-1") == 0);
    parse_fails("'10.0.0.0/33': the prefix length must be 0..32 for IPv4", "run",
                "--proxy-protocol", "10.0.0.0/33", NULL);
    parse_fails("--proxy-protocol: 'balancer': not an IPv4 or IPv6 address", "run",
                "--proxy-protocol", "balancer", NULL);
    parse_fails("--admin-bind is the address of --admin-port", "run", "--admin-bind", "::1", NULL);
    parse_fails("out of range", "run", "--proxy-timeout", "0", NULL);
    parse_fails("'drain' does not take --port", "drain", "--port", "1", NULL);
}

static void admin_http_requests(void)
{
    static const struct {
        const char *req;
        svc_http_result want;
        const char *target;
        int head;
    } cases[] = {
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", SVC_HTTP_OK, "/metrics", 0},
        {"HEAD /readyz?x=1 HTTP/1.0\r\n\r\n", SVC_HTTP_OK, "/readyz", 1},
        {"GET /healthz HTTP/1.1\n\n", SVC_HTTP_OK, "/healthz", 0},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n", SVC_HTTP_INCOMPLETE, "", 0},
        {"GET /metr", SVC_HTTP_INCOMPLETE, "", 0},
        {"POST /metrics HTTP/1.1\r\n", SVC_HTTP_METHOD, "", 0},
        {"DELETE / HTTP/1.1\r\n\r\n", SVC_HTTP_METHOD, "", 0},
        {"get /metrics HTTP/1.1\r\n", SVC_HTTP_BAD, "", 0},
        {"GET metrics HTTP/1.1\r\n", SVC_HTTP_BAD, "", 0},
        {"GET  /metrics HTTP/1.1\r\n", SVC_HTTP_BAD, "", 0},
        {"GET /metrics\r\n", SVC_HTTP_BAD, "", 0},
        {"\x16\x03\x01\x02\x01\n", SVC_HTTP_BAD, "", 0},
        {"GET /a\x01b HTTP/1.1\r\n", SVC_HTTP_BAD, "", 0},
        {"GET /metrics HTTP/2.0\r\n\r\n", SVC_HTTP_VERSION, "", 0},
        {"GET /metrics FTP/1.1\r\n", SVC_HTTP_BAD, "", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        svc_http_request r;
        svc_http_result got = svc_http_parse(cases[i].req, strlen(cases[i].req), 8192, &r);
        CHECK_MSG(got == cases[i].want, "'%s': %d, want %d", cases[i].req, (int)got,
                  (int)cases[i].want);
        if (got == SVC_HTTP_OK)
            CHECK(strcmp(r.target, cases[i].target) == 0 && r.head == cases[i].head);
    }
    /* 8 KiB without the end of the head: too large, whether or not a line ended. */
    char big[8192];
    memset(big, 'a', sizeof big);
    svc_http_request r;
    CHECK(svc_http_parse(big, sizeof big, sizeof big, &r) == SVC_HTTP_TOO_LARGE);
    memcpy(big, "GET / HTTP/1.1\r\n", 16);
    CHECK(svc_http_parse(big, sizeof big, sizeof big, &r) == SVC_HTTP_TOO_LARGE);
    CHECK(svc_http_parse(big, 100, sizeof big, &r) == SVC_HTTP_INCOMPLETE);
}

static void metrics_text(void)
{
    iocp_stats st;
    memset(&st, 0, sizeof st);
    st.accepted = 12;
    st.rejected = 1;
    st.rejected_per_address = 2;
    st.proxy_rejected = 3;
    st.rejected_rate = 6;
    st.udp_refused_loop = 7;
    st.closed[IOCP_CLOSE_IDLE_TIMEOUT] = 4;
    st.closed[IOCP_CLOSE_EVICTED] = 8;
    st.bytes_in = 5000000000ull;
    st.uptime_ms = 1500;
    svc_metrics_state ms = {1, 0};
    char out[32768];
    size_t n = svc_metrics_format(&st, &ms, out, sizeof out);
    CHECK(n > 0 && n < sizeof out && out[n] == '\0' && out[n - 1] == '\n');
    static const char *const lines[] = {
        "\niocp_connections_accepted_total 12\n",
        "\niocp_connections_rejected_total{reason=\"slots\"} 1\n",
        "\niocp_connections_rejected_total{reason=\"per_address\"} 2\n",
        "\niocp_connections_rejected_total{reason=\"proxy_header\"} 3\n",
        "\niocp_connections_rejected_total{reason=\"rate\"} 6\n",
        "\niocp_udp_refused_datagrams_total{reason=\"loop\"} 7\n",
        "\niocp_connections_closed_total{reason=\"idle_timeout\"} 4\n",
        "\niocp_connections_closed_total{reason=\"evicted\"} 8\n",
        "\niocp_received_bytes_total 5000000000\n",
        "\niocp_uptime_seconds 1.500\n",
        "\niocp_ready 1\n",
        "\n# TYPE iocp_connections_accepted counter\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        CHECK_MSG(strstr(out, lines[i]) != NULL, "no '%s' in:\n%s", lines[i], out);
    /* every close reason has its line */
    size_t reasons = 0;
    for (const char *p = out; (p = strstr(p, "iocp_connections_closed_total{")) != NULL; p++)
        reasons++;
    CHECK_EQ_U(reasons, IOCP_CLOSE_REASON_COUNT_);
    /* a buffer too small is cut, never overrun */
    char small[100];
    memset(small, 'x', sizeof small);
    n = svc_metrics_format(&st, &ms, small, 64);
    CHECK(n < 64 && small[n] == '\0' && small[64] == 'x');
}

/* ---- failure actions (recovery.c) ------------------------------------------------------ */

/* Restart on every failure: 1 s, 5 s, 30 s, then 60 s (repeated by the SCM for every later
 * failure), the count forgotten after an hour; a longer first delay raises the shorter ones;
 * what install prints says all of it. */
static void failure_schedule(void)
{
    SC_ACTION a[SVC_FAILURE_STEPS];
    SERVICE_FAILURE_ACTIONSW fa;
    char text[300];
    svc_options o;
    svc_options_init(&o);
    CHECK_EQ_U(o.restart_delay_s, 1);
    svc_failure_schedule(o.restart_delay_s, a, &fa);
    CHECK_EQ_U(fa.cActions, 4);
    CHECK(fa.lpsaActions == a);
    CHECK_EQ_U(fa.dwResetPeriod, 3600);
    static const DWORD want[4] = {1000, 5000, 30000, 60000};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_U(a[i].Type, SC_ACTION_RESTART); /* never SC_ACTION_NONE: no day's outage */
        CHECK_EQ_U(a[i].Delay, want[i]);
    }
    svc_failure_text(&fa, text, sizeof text);
    CHECK_MSG(strcmp(text,
                     "failure actions (restart after 1 s, 5 s, 30 s, 60 s, then 60 s after "
                     "every later failure; the count restarts after 60 min without one)") == 0,
              "%s", text);
    svc_failure_schedule(45, a, &fa);
    CHECK_EQ_U(a[0].Delay, 45000);
    CHECK_EQ_U(a[1].Delay, 45000);
    CHECK_EQ_U(a[2].Delay, 45000);
    CHECK_EQ_U(a[3].Delay, 60000);
    svc_failure_schedule(0, a, &fa);
    CHECK_EQ_U(a[0].Delay, 0);
    CHECK_EQ_U(a[1].Delay, 5000);
}

/* configure: only the options given replace the stored ones; each change is named live or
 * restart, the per-IP limit live only between two limits; the password never printed. */
/* A supervised service's restarts (supervisor.c): at once after a death, then doubling from
 * 1 s while workers keep dying young, never past 30 s. */
static void restart_backoff(void)
{
    static const uint32_t want[] = {0, 1, 2, 4, 8, 16, 30, 30, 30};
    for (uint32_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK_EQ_U(svc_restart_delay_s(i), want[i]);
    CHECK_EQ_U(svc_restart_delay_s(1000), 30);
    CHECK_EQ_U(svc_restart_delay_s(UINT32_MAX), 30);
}

static void configure_overlay(void)
{
    svc_options o;
    svc_server_options stored, after;
    char live[1024], restart[1024];
    PARSE_OK(&o, "configure", "--name", "x", "--idle-timeout", "1");
    CHECK(o.command == SVC_CMD_CONFIGURE);
    svc_server_options_init(&stored);
    stored.port = 0;
    stored.idle_timeout_s = 300;
    snprintf(stored.log_file, sizeof stored.log_file, "C:\\logs\\a.log");
    after = stored;
    svc_configure_overlay(&after, &o.server, o.server_given);
    CHECK_EQ_U(after.idle_timeout_s, 1);
    CHECK_EQ_U(after.port, 0); /* not given: the stored 0, not the parser's default 9000 */
    CHECK(strcmp(after.log_file, "C:\\logs\\a.log") == 0);
    CHECK_EQ_U(svc_configure_changes(&stored, &after, live, sizeof live, restart, sizeof restart),
               1);
    CHECK_MSG(strcmp(live, "--idle-timeout 1 (was 300)") == 0, "live: %s", live);
    CHECK_MSG(restart[0] == '\0', "restart: %s", restart);

    PARSE_OK(&o, "configure", "--port", "1234", "--max-connections-per-ip", "0");
    after = stored;
    svc_configure_overlay(&after, &o.server, o.server_given);
    CHECK_EQ_U(svc_configure_changes(&stored, &after, live, sizeof live, restart, sizeof restart),
               2);
    CHECK_MSG(live[0] == '\0', "live: %s", live);
    CHECK_MSG(strstr(restart, "--port 1234 (was 0)") != NULL &&
                  strstr(restart, "--max-connections-per-ip 0 (was 256)") != NULL,
              "restart: %s", restart);

    PARSE_OK(&o, "configure", "--max-connections-per-ip", "5", "--log-keep", "2");
    after = stored;
    svc_configure_overlay(&after, &o.server, o.server_given);
    svc_configure_changes(&stored, &after, live, sizeof live, restart, sizeof restart);
    CHECK_MSG(strstr(live, "--max-connections-per-ip 5") && strstr(live, "--log-keep 2"), "%s",
              live);
    /* A password given alone is kept for the stored PFX; it is never printed. */
    PARSE_OK(&o, "configure", "--tls-password", "hunter2", NULL, NULL);
    CHECK_EQ_U(o.tls_password_given, 1);
    after = stored;
    snprintf(after.tls_password, sizeof after.tls_password, "hunter2");
    svc_configure_changes(&stored, &after, live, sizeof live, restart, sizeof restart);
    CHECK(strstr(restart, "--tls-password") != NULL && strstr(restart, "hunter2") == NULL);
    parse_fails("--idle-timeout needs a whole number", "configure", "--idle-timeout", "abc", NULL);
    parse_fails("does not take --take-over", "configure", "--take-over", NULL, NULL);
}

static const test_case cases[] = {
    {"options_defaults", options_defaults},
    {"options_every_server_option", options_every_server_option},
    {"options_install_only", options_install_only},
    {"options_tls", options_tls},
    {"options_tls_min_version", options_tls_min_version},
    {"options_tls_revocation", options_tls_revocation},
    {"options_rejected", options_rejected},
    {"options_limits_ranges", options_limits_ranges},
    {"memory_budget_check", memory_budget_check},
    {"options_install_security", options_install_security},
    {"params_round_trip", params_round_trip},
    {"params_tls_password_protected", params_tls_password_protected},
    {"params_key_private", params_key_private},
    {"proto_requests", proto_requests},
    {"proto_answers", proto_answers},
    {"proto_tls_keys", proto_tls_keys},
    {"mutex_one_holder", mutex_one_holder},
    {"mutex_abandoned_is_taken_over", mutex_abandoned_is_taken_over},
    {"mutex_squatted_is_named", mutex_squatted_is_named},
    {"pipe_trust_rules", pipe_trust_rules},
    {"instance_names_plan", instance_names_plan},
    {"service_sid_is_windows_one", service_sid_is_windows_one},
    {"win32_text_keeps_code", win32_text_keeps_code},
    {"log_file_refusal_reasons", log_file_refusal_reasons},
    {"log_file_created_private", log_file_created_private},
    {"log_file_hard_link_refused", log_file_hard_link_refused},
    {"log_rotation_keeps_cap", log_rotation_keeps_cap},
    {"log_rate_limit_per_kind", log_rate_limit_per_kind},
    {"safe_text_filters_controls", safe_text_filters_controls},
    {"location_permissions", location_permissions},
    {"location_walks_every_folder", location_walks_every_folder},
    {"private_file_names_service_sid", private_file_names_service_sid},
    {"accounts_without_password", accounts_without_password},
    {"password_line_from_pipe", password_line_from_pipe},
    {"password_source_decision", password_source_decision},
    {"options_load_balancer", options_load_balancer},
    {"admin_http_requests", admin_http_requests},
    {"metrics_text", metrics_text},
    {"failure_schedule", failure_schedule},
    {"configure_overlay", configure_overlay},
    {"restart_backoff", restart_backoff},
};

int main(int argc, char **argv)
{
    /* log_rotation_keeps_cap starts this executable again as its second writer. */
    if (argc == 3 && strcmp(argv[1], "--log-writer") == 0)
        return log_writer(argv[2]);
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
