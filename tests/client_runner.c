/* client_runner.c: a JSON reader and a child-process runner for the client tests. */
#include "client_runner.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#endif

#include "harness.h"

/* ---- JSON: a strict recursive-descent reader (RFC 8259), enough to check a summary ---- */

typedef struct jr {
    const char *p;
    /* lookup: the path still to match ("b.c"), and where the value found starts */
    const char *want;
    const char *found;
} jr;

static void ws(jr *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static int value(jr *j, const char *path);

static int string(jr *j)
{
    if (*j->p != '"')
        return -1;
    j->p++;
    for (;;) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return 0;
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            char e = *j->p++;
            if (e == 'u') {
                for (int i = 0; i < 4; i++) {
                    if (!isxdigit((unsigned char)*j->p++))
                        return -1;
                }
            } else if (strchr("\"\\/bfnrt", e) == NULL || e == '\0') {
                return -1;
            }
        }
    }
}

static int number(jr *j)
{
    const char *p = j->p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (isdigit((unsigned char)*p))
            p++;
    else
        return -1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    j->p = p;
    return 0;
}

/* Does the key just read (between k0 and k1, quotes included) match the first part of path? */
static const char *match_key(const char *path, const char *k0, const char *k1)
{
    if (path == NULL)
        return NULL;
    size_t klen = (size_t)(k1 - k0) - 2;
    const char *dot = strchr(path, '.');
    size_t plen = dot ? (size_t)(dot - path) : strlen(path);
    if (plen != klen || strncmp(path, k0 + 1, klen) != 0)
        return NULL;
    return dot ? dot + 1 : "";
}

static int object(jr *j, const char *path)
{
    j->p++; /* '{' */
    ws(j);
    if (*j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        ws(j);
        const char *k0 = j->p;
        if (string(j) != 0)
            return -1;
        const char *rest = match_key(path, k0, j->p);
        ws(j);
        if (*j->p++ != ':')
            return -1;
        ws(j);
        if (rest != NULL && *rest == '\0' && j->found == NULL)
            j->found = j->p;
        if (value(j, rest != NULL && *rest != '\0' ? rest : NULL) != 0)
            return -1;
        ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == '}') {
            j->p++;
            return 0;
        }
        return -1;
    }
}

static int array(jr *j)
{
    j->p++; /* '[' */
    ws(j);
    if (*j->p == ']') {
        j->p++;
        return 0;
    }
    for (;;) {
        ws(j);
        if (value(j, NULL) != 0)
            return -1;
        ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == ']') {
            j->p++;
            return 0;
        }
        return -1;
    }
}

static int value(jr *j, const char *path)
{
    ws(j);
    switch (*j->p) {
    case '{':
        return object(j, path);
    case '[':
        return array(j);
    case '"':
        return string(j);
    case 't':
        return strncmp(j->p, "true", 4) == 0 ? (j->p += 4, 0) : -1;
    case 'f':
        return strncmp(j->p, "false", 5) == 0 ? (j->p += 5, 0) : -1;
    case 'n':
        return strncmp(j->p, "null", 4) == 0 ? (j->p += 4, 0) : -1;
    default:
        return number(j);
    }
}

static const char *lookup(const char *text, const char *path)
{
    jr j = {text, path, NULL};
    if (value(&j, path) != 0)
        return NULL;
    ws(&j);
    return *j.p == '\0' ? j.found : NULL;
}

int tj_valid(const char *text)
{
    jr j = {text, NULL, NULL};
    if (value(&j, NULL) != 0)
        return -1;
    ws(&j);
    return *j.p == '\0' ? 0 : -1;
}

int tj_number(const char *text, const char *path, double *out)
{
    const char *at = lookup(text, path);
    if (at == NULL)
        return -1;
    jr j = {at, NULL, NULL};
    if (number(&j) != 0)
        return -1;
    *out = strtod(at, NULL);
    return 0;
}

int tj_string(const char *text, const char *path, char *out, size_t size)
{
    const char *at = lookup(text, path);
    if (at == NULL || *at != '"' || size == 0)
        return -1;
    size_t n = 0;
    for (const char *p = at + 1; *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'u':
                c = (char)strtol((char[]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
                p += 4;
                break;
            default:
                c = *p;
                break;
            }
        }
        if (n + 1 < size)
            out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

/* ---- child processes ---------------------------------------------------------------- */

#ifdef _WIN32

void tc_temp_file(wchar_t path[260])
{
    wchar_t dir[MAX_PATH];
    CHECK(GetTempPathW(MAX_PATH, dir) > 0);
    CHECK(GetTempFileNameW(dir, L"icl", 0, path) != 0);
}

void tc_write_temp(const void *data, size_t len, wchar_t path[260], char utf8[520])
{
    tc_temp_file(path);
    HANDLE h = CreateFileW(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    CHECK(h != INVALID_HANDLE_VALUE);
    const char *p = data;
    while (len > 0) {
        DWORD chunk = len > (1u << 20) ? (1u << 20) : (DWORD)len, wrote = 0;
        CHECK(WriteFile(h, p, chunk, &wrote, NULL) && wrote == chunk);
        p += chunk;
        len -= chunk;
    }
    CloseHandle(h);
    if (utf8 != NULL)
        CHECK(WideCharToMultiByte(CP_UTF8, 0, path, -1, utf8, 520, NULL, NULL) > 0);
}

/* A program built next to the tests (IOCP_CLIENT_EXE and the like, from CMake). A Unix path
 * (a Linux cross-build run under Wine) is reached through Wine's Z: drive. */
static void program_path(const char *exe, wchar_t *out, size_t size)
{
    char buf[MAX_PATH * 2];
    snprintf(buf, sizeof buf, "%s%s", exe[0] == '/' ? "Z:" : "", exe);
    for (char *c = buf; *c; c++) {
        if (*c == '/')
            *c = '\\';
    }
    CHECK(MultiByteToWideChar(CP_UTF8, 0, buf, -1, out, (int)size) > 0);
    CHECK_MSG(GetFileAttributesW(out) != INVALID_FILE_ATTRIBUTES, "no client at %s", buf);
}

static HANDLE open_inheritable(const wchar_t *path, int write)
{
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE h =
        CreateFileW(path, write ? GENERIC_WRITE : GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
                    &sa, write ? CREATE_ALWAYS : OPEN_EXISTING, 0, NULL);
    CHECK_MSG(h != INVALID_HANDLE_VALUE, "cannot open %ls", path);
    return h;
}

void tc_client_start(tc_run *r, const char *args, const wchar_t *stdin_path)
{
    tc_program_start(r, IOCP_CLIENT_EXE, args, stdin_path);
}

void tc_program_start(tc_run *r, const char *program, const char *args, const wchar_t *stdin_path)
{
    memset(r, 0, sizeof *r);
    wchar_t exe[MAX_PATH];
    program_path(program, exe, MAX_PATH);
    size_t wargs_len = strlen(args) + 1;
    wchar_t *wargs = malloc(wargs_len * sizeof *wargs);
    CHECK(wargs != NULL);
    CHECK(MultiByteToWideChar(CP_UTF8, 0, args, -1, wargs, (int)wargs_len) > 0);
    size_t cmd_len = wcslen(exe) + wcslen(wargs) + 8;
    wchar_t *cmd = malloc(cmd_len * sizeof *cmd);
    CHECK(cmd != NULL);
    swprintf(cmd, cmd_len, L"\"%ls\" %ls", exe, wargs);
    cmd[cmd_len - 1] = L'\0';

    tc_temp_file(r->out_path);
    tc_temp_file(r->err_path);
    wchar_t empty[260];
    if (stdin_path == NULL) {
        tc_write_temp("", 0, empty, NULL);
        stdin_path = empty;
    }
    HANDLE in = open_inheritable(stdin_path, 0);
    HANDLE out = open_inheritable(r->out_path, 1);
    HANDLE err = open_inheritable(r->err_path, 1);
    STARTUPINFOW si;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in;
    si.hStdOutput = out;
    si.hStdError = err;
    PROCESS_INFORMATION pi;
    CHECK_MSG(test_create_process(NULL, cmd, 1, 0, &si, &pi), "cannot start %ls", cmd);
    CloseHandle(pi.hThread);
    CloseHandle(in);
    CloseHandle(out);
    CloseHandle(err);
    if (stdin_path == empty)
        DeleteFileW(empty);
    r->process = pi.hProcess;
    free(cmd);
    free(wargs);
}

static char *slurp(const wchar_t *path, size_t *len)
{
    HANDLE h = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                           OPEN_EXISTING, 0, NULL);
    CHECK(h != INVALID_HANDLE_VALUE);
    LARGE_INTEGER size;
    CHECK(GetFileSizeEx(h, &size));
    char *buf = malloc((size_t)size.QuadPart + 1);
    CHECK(buf != NULL);
    size_t got = 0;
    while (got < (size_t)size.QuadPart) {
        DWORD n = 0;
        CHECK(ReadFile(h, buf + got, (DWORD)((size_t)size.QuadPart - got), &n, NULL) && n > 0);
        got += n;
    }
    buf[got] = '\0';
    CloseHandle(h);
    *len = got;
    return buf;
}

int tc_program_wait(tc_run *r, uint32_t timeout_ms)
{
    DWORD w = WaitForSingleObject(r->process, timeout_ms);
    if (w != WAIT_OBJECT_0) {
        TerminateProcess(r->process, 99);
        WaitForSingleObject(r->process, 5000);
    }
    DWORD code = 0;
    GetExitCodeProcess(r->process, &code);
    CloseHandle(r->process);
    r->process = NULL;
    r->exit_code = code;
    r->out = slurp(r->out_path, &r->out_len);
    r->err = slurp(r->err_path, &r->err_len);
    DeleteFileW(r->out_path);
    DeleteFileW(r->err_path);
    return w == WAIT_OBJECT_0;
}

void tc_client_finish(tc_run *r, uint32_t timeout_ms)
{
    int exited = tc_program_wait(r, timeout_ms);
    /* What the client said, for the test log. */
    printf("  iocp-client exit %lu; stderr:\n%s", r->exit_code, r->err);
    if (r->out_len < 2000)
        printf("  stdout:\n%s\n", r->out);
    CHECK_MSG(exited, "iocp-client still running after %lu ms", (unsigned long)timeout_ms);
}

void tc_client(tc_run *r, const char *args, const wchar_t *stdin_path, uint32_t timeout_ms)
{
    printf("  iocp-client %s\n", args);
    tc_client_start(r, args, stdin_path);
    tc_client_finish(r, timeout_ms);
}

void tc_run_free(tc_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

uint16_t tc_free_port(void)
{
    /* Below every ephemeral range (Linux from 32768, Windows from 49152): a client's own
     * socket never gets this port, so a dial to it cannot connect the client to itself
     * (TCP simultaneous open on loopback). */
    uint64_t rng = test_now_ms() ^ ((uint64_t)GetCurrentProcessId() << 20);
    for (int tries = 0; tries < 1000; tries++) {
        uint16_t port = (uint16_t)(20000 + test_rand(&rng) % 10000);
        SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
        CHECK(s != INVALID_SOCKET);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        int ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
        closesocket(s);
        if (ok)
            return port;
    }
    FAIL_MSG("no free port in 20000..29999");
    return 0;
}

#endif
