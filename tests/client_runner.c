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

void tc_client_start(tc_run *r, const char *args, const wchar_t *stdin_path)
{
    tc_program_start(r, IOCP_CLIENT_EXE, args, stdin_path);
}

void tc_program_start(tc_run *r, const char *program, const char *args, const wchar_t *stdin_path)
{
    memset(r, 0, sizeof *r);
    HANDLE in = NULL;
    if (stdin_path != NULL) {
        SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
        in = CreateFileW(stdin_path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa,
                         OPEN_EXISTING, 0, NULL);
        CHECK_MSG(in != INVALID_HANDLE_VALUE, "cannot open %ls", stdin_path);
    }
    tp_start(&r->child, program, args, in, 0, 0);
    if (in != NULL)
        CloseHandle(in);
}

int tc_program_wait(tc_run *r, uint32_t timeout_ms)
{
    int ended = tp_wait(&r->child, timeout_ms);
    r->exit_code = r->child.exit_code;
    r->out = r->child.out;
    r->out_len = r->child.out_len;
    r->err = r->child.err;
    r->err_len = r->child.err_len;
    return ended;
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
    tp_free(&r->child);
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
