/* test_service_unit.c: the pieces of iocp-service that need no service and no engine run:
 * command-line options, the Parameters registry round trip (under HKCU), the status pipe
 * protocol, and the instance mutex (threads stand in for processes). */
#include "harness.h"

#include <string.h>

#include "safe_text.h"
#include "svc.h"

#include <sddl.h> /* after windows.h (svc.h) */

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

/* ---- text from another process, for a console ----------------------------------------- */

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
    CHECK_EQ_U(svc_read_password_line(r, pw, sizeof pw), NO_ERROR);
    CHECK(strcmp(pw, "s3cr\xc3\xa9t pass") == 0);
    /* Only the first line was taken: the rest is still there. */
    CHECK_EQ_U(svc_read_password_line(r, pw, sizeof pw), NO_ERROR);
    CHECK(strcmp(pw, "second") == 0);
    CHECK_EQ_U(svc_read_password_line(r, pw, sizeof pw), NO_ERROR);
    CHECK(strcmp(pw, "last") == 0);
    CHECK_EQ_U(svc_read_password_line(r, pw, sizeof pw), ERROR_HANDLE_EOF);
    CloseHandle(r);

    /* An empty line is an empty password; a line too long is refused, not cut. */
    CHECK(CreatePipe(&r, &w, NULL, 4096));
    CHECK(WriteFile(w, "\n", 1, &n, NULL));
    static char longer[SVC_TEXT_MAX + 10];
    memset(longer, 'p', sizeof longer);
    CHECK(WriteFile(w, longer, sizeof longer, &n, NULL));
    CloseHandle(w);
    CHECK_EQ_U(svc_read_password_line(r, pw, sizeof pw), NO_ERROR);
    CHECK(pw[0] == '\0');
    CHECK_EQ_U(svc_read_password_line(r, pw, sizeof pw), ERROR_INSUFFICIENT_BUFFER);
    CHECK(pw[0] == '\0');
    CloseHandle(r);
}

/* ---- instance mutex ----------------------------------------------------------------------- */

typedef struct lock_job {
    char name[64];
    svc_lock_result result;
    char holder[200];
    int release; /* release before the thread ends (else: abandon it) */
} lock_job;

static DWORD WINAPI lock_thread(void *arg)
{
    lock_job *j = arg;
    svc_instance inst;
    DWORD sys;
    j->result = svc_instance_lock(&inst, j->name, "console", j->holder, sizeof j->holder, &sys);
    if (j->release && (j->result == SVC_LOCK_OK || j->result == SVC_LOCK_ABANDONED))
        svc_instance_unlock(&inst);
    /* Not released: the thread ends owning the mutex, which abandons it. The handle stays
     * open (leaked on purpose) so the mutex object survives for the next one. */
    return 0;
}

static svc_lock_result run_lock(const char *name, int release, char *holder, size_t size)
{
    lock_job j;
    memset(&j, 0, sizeof j);
    snprintf(j.name, sizeof j.name, "%s", name);
    j.release = release;
    HANDLE t = CreateThread(NULL, 0, lock_thread, &j, 0, NULL);
    CHECK(t != NULL);
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0);
    CloseHandle(t);
    if (holder != NULL)
        snprintf(holder, size, "%s", j.holder);
    return j.result;
}

static void mutex_one_holder(void)
{
    char name[64], holder[200];
    svc_instance inst;
    DWORD sys;
    snprintf(name, sizeof name, "unit-%lu", (unsigned long)GetCurrentProcessId());
    CHECK(svc_instance_lock(&inst, name, "console", holder, sizeof holder, &sys) == SVC_LOCK_OK);
    svc_instance_set_address(&inst, "[::]:1234");
    /* Another thread is refused, and told who holds it. */
    CHECK(run_lock(name, 1, holder, sizeof holder) == SVC_LOCK_HELD);
    char want[64];
    snprintf(want, sizeof want, "process %lu (console", (unsigned long)GetCurrentProcessId());
    CHECK_MSG(strstr(holder, want) != NULL, "holder: %s", holder);
    CHECK_MSG(strstr(holder, "listening on [::]:1234") != NULL, "holder: %s", holder);
    svc_instance_unlock(&inst);
    /* Released: the next one gets it cleanly. */
    CHECK(run_lock(name, 1, NULL, 0) == SVC_LOCK_OK);
}

static void mutex_abandoned_is_taken_over(void)
{
    char name[64];
    snprintf(name, sizeof name, "unit-ab-%lu", (unsigned long)GetCurrentProcessId());
    CHECK(run_lock(name, 0, NULL, 0) == SVC_LOCK_OK); /* its thread ends holding it */
    CHECK(run_lock(name, 1, NULL, 0) == SVC_LOCK_ABANDONED);
    CHECK(run_lock(name, 1, NULL, 0) == SVC_LOCK_OK);
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
    {"options_install_security", options_install_security},
    {"params_round_trip", params_round_trip},
    {"proto_requests", proto_requests},
    {"proto_answers", proto_answers},
    {"mutex_one_holder", mutex_one_holder},
    {"mutex_abandoned_is_taken_over", mutex_abandoned_is_taken_over},
    {"win32_text_keeps_code", win32_text_keeps_code},
    {"safe_text_filters_controls", safe_text_filters_controls},
    {"location_permissions", location_permissions},
    {"accounts_without_password", accounts_without_password},
    {"password_line_from_pipe", password_line_from_pipe},
};

TEST_MAIN(cases)
