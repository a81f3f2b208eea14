/* proc_util.c: see proc_util.h. */
#include "proc_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

void tp_program_path(const char *program, wchar_t *out, size_t count)
{
    char buf[MAX_PATH * 2];
    snprintf(buf, sizeof buf, "%s%s", program[0] == '/' ? "Z:" : "", program);
    for (char *p = buf; *p; p++)
        if (*p == '/')
            *p = '\\';
    CHECK(MultiByteToWideChar(CP_UTF8, 0, buf, -1, out, (int)count) > 0);
    wchar_t full[MAX_PATH * 2];
    DWORD n = GetFullPathNameW(out, MAX_PATH * 2, full, NULL);
    if (n > 0 && n < count)
        swprintf(out, count, L"%ls", full);
    CHECK_MSG(GetFileAttributesW(out) != INVALID_FILE_ATTRIBUTES, "no program at %ls", out);
}

/* CreateProcessW inheriting only these handles (PROC_THREAD_ATTRIBUTE_HANDLE_LIST), or,
 * where the system does not take the list, every inheritable one. */
static int create_with_handles(wchar_t *cmd, DWORD flags, STARTUPINFOW *si, HANDLE *handles,
                               DWORD count, PROCESS_INFORMATION *pi)
{
    SIZE_T size = 0;
    InitializeProcThreadAttributeList(NULL, 1, 0, &size);
    LPPROC_THREAD_ATTRIBUTE_LIST list = size ? malloc(size) : NULL;
    int with_list = list != NULL && InitializeProcThreadAttributeList(list, 1, 0, &size) &&
                    UpdateProcThreadAttribute(list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles,
                                              count * sizeof(HANDLE), NULL, NULL);
    int ok = 0;
    if (with_list) {
        STARTUPINFOEXW ex;
        memset(&ex, 0, sizeof ex);
        ex.StartupInfo = *si;
        ex.StartupInfo.cb = sizeof ex;
        ex.lpAttributeList = list;
        ok = test_create_process(NULL, cmd, 1, flags | EXTENDED_STARTUPINFO_PRESENT,
                                 &ex.StartupInfo, pi);
        DeleteProcThreadAttributeList(list);
    }
    free(list);
    if (!ok)
        ok = test_create_process(NULL, cmd, 1, flags, si, pi);
    return ok;
}

static HANDLE pipe_for_child(HANDLE *child_end)
{
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE ours;
    CHECK(CreatePipe(&ours, child_end, &sa, 1 << 16));
    CHECK(SetHandleInformation(ours, HANDLE_FLAG_INHERIT, 0));
    return ours;
}

void tp_start(tp_child *c, const char *program, const char *args, HANDLE stdin_handle,
              int merge_stderr, DWORD flags)
{
    memset(c, 0, sizeof *c);
    wchar_t exe[MAX_PATH * 2];
    tp_program_path(program, exe, MAX_PATH * 2);
    int wlen = MultiByteToWideChar(CP_UTF8, 0, args, -1, NULL, 0);
    CHECK(wlen > 0);
    size_t cmd_len = wcslen(exe) + (size_t)wlen + 4;
    wchar_t *cmd = malloc(cmd_len * sizeof *cmd);
    CHECK(cmd != NULL);
    swprintf(cmd, cmd_len, L"\"%ls\" ", exe);
    size_t used = wcslen(cmd);
    CHECK(MultiByteToWideChar(CP_UTF8, 0, args, -1, cmd + used, (int)(cmd_len - used)) > 0);

    HANDLE out_w, err_w = NULL, in_r = stdin_handle, in_w = NULL;
    c->out_pipe = pipe_for_child(&out_w);
    if (!merge_stderr)
        c->err_pipe = pipe_for_child(&err_w);
    if (in_r == NULL) {
        /* An empty standard input: a pipe whose writing end is closed at once. */
        SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
        CHECK(CreatePipe(&in_r, &in_w, &sa, 0));
        CloseHandle(in_w);
    }
    STARTUPINFOW si;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in_r;
    si.hStdOutput = out_w;
    si.hStdError = merge_stderr ? out_w : err_w;
    HANDLE handles[3] = {in_r, out_w, err_w};
    PROCESS_INFORMATION pi;
    int ok = create_with_handles(cmd, flags, &si, handles, merge_stderr ? 2 : 3, &pi);
    CloseHandle(out_w);
    if (err_w != NULL)
        CloseHandle(err_w);
    if (stdin_handle == NULL)
        CloseHandle(in_r);
    CHECK_MSG(ok, "cannot start %ls (Win32 %lu)", cmd, (unsigned long)GetLastError());
    free(cmd);
    CloseHandle(pi.hThread);
    c->process = pi.hProcess;
    c->pid = pi.dwProcessId;
    c->out_cap = c->err_cap = 4096;
    c->out = calloc(1, c->out_cap);
    c->err = calloc(1, c->err_cap);
    CHECK(c->out != NULL && c->err != NULL);
}

/* Moves what one pipe holds into its buffer. */
static void drain_pipe(HANDLE pipe, char **buf, size_t *len, size_t *cap)
{
    DWORD avail = 0;
    while (pipe != NULL && PeekNamedPipe(pipe, NULL, 0, NULL, &avail, NULL) && avail > 0) {
        if (*len + avail + 1 > *cap) {
            size_t want = (*len + avail + 1) * 2;
            char *p = realloc(*buf, want);
            CHECK(p != NULL);
            *buf = p;
            *cap = want;
        }
        DWORD n = 0;
        if (!ReadFile(pipe, *buf + *len, avail, &n, NULL) || n == 0)
            break;
        *len += n;
        (*buf)[*len] = '\0';
    }
}

void tp_drain(tp_child *c)
{
    drain_pipe(c->out_pipe, &c->out, &c->out_len, &c->out_cap);
    drain_pipe(c->err_pipe, &c->err, &c->err_len, &c->err_cap);
}

const char *tp_find_line(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, n) == 0)
            return p;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

int tp_wait_line(tp_child *c, const char *prefix, uint32_t timeout_ms)
{
    uint64_t deadline = test_now_ms() + timeout_ms;
    for (;;) {
        tp_drain(c);
        if (tp_find_line(c->out, prefix) != NULL)
            return 1;
        if (test_now_ms() >= deadline || WaitForSingleObject(c->process, 0) == WAIT_OBJECT_0) {
            tp_drain(c);
            return tp_find_line(c->out, prefix) != NULL;
        }
        Sleep(10); /* polling the pipe: there is nothing to wait on for "a line arrived" */
    }
}

static void close_handles(tp_child *c)
{
    tp_drain(c);
    DWORD code = 0;
    GetExitCodeProcess(c->process, &code);
    c->exit_code = code;
    CloseHandle(c->process);
    CloseHandle(c->out_pipe);
    if (c->err_pipe != NULL)
        CloseHandle(c->err_pipe);
    c->process = c->out_pipe = c->err_pipe = NULL;
}

int tp_wait(tp_child *c, uint32_t timeout_ms)
{
    uint64_t deadline = test_now_ms() + timeout_ms;
    int ended = 1;
    /* Reading while waiting: a child that fills a pipe would otherwise block for ever. */
    while (WaitForSingleObject(c->process, 10) == WAIT_TIMEOUT) {
        tp_drain(c);
        if (test_now_ms() >= deadline) {
            TerminateProcess(c->process, 99);
            WaitForSingleObject(c->process, 5000);
            ended = 0;
            break;
        }
    }
    close_handles(c);
    return ended;
}

int tp_never_started(const tp_child *c)
{
    return c->exit_code == 0xC0000142ul && c->out_len == 0 && c->err_len == 0;
}

void tp_kill(tp_child *c)
{
    if (c->process == NULL)
        return;
    TerminateProcess(c->process, 1);
    WaitForSingleObject(c->process, 10000);
    close_handles(c);
}

void tp_free(tp_child *c)
{
    free(c->out);
    free(c->err);
    c->out = c->err = NULL;
    c->out_len = c->err_len = c->out_cap = c->err_cap = 0;
}
