/*
 * minimal_echo.c: the floor for bench/: the least an IOCP echo server can do, and nothing else.
 *
 * The issue that set the benchmark's targets measured such a loop; this one is kept in the
 * bench so that every run shows, beside ours and asio, what the machine and Wine allow a
 * completion-port server at all. It is not a product: no framing, no timeouts, no limits, no
 * backpressure, no fairness between connections, no graceful stop (Ctrl+C ends the process).
 *
 *   - N threads in GetQueuedCompletionStatusEx (batches of 64) on one port;
 *   - FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: an operation that completes at once is continued
 *     on the spot, with no packet;
 *   - per connection: WSARecv into its buffer, WSASend of exactly what was read, again;
 *   - 16 AcceptEx outstanding, a fresh socket each; TCP_NODELAY like the other servers.
 *
 * Build (bench/run.sh): x86_64-w64-mingw32-gcc -O2 minimal_echo.c -lws2_32 -lmswsock
 * Run: minimal_echo.exe [--port P] [--threads N] [--buffer-size B]
 * Prints "minimal-echo: listening on 127.0.0.1:PORT" once ready (stdout, flushed).
 */
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <mswsock.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCEPTS    16
#define BATCH      64
#define ADDR_SIZE  (sizeof(SOCKADDR_STORAGE) + 16)
#define KEY_ACCEPT ((ULONG_PTR)1)
#define KEY_CONN   ((ULONG_PTR)2)

typedef struct op {
    OVERLAPPED ov;
    int is_send;
} op;

typedef struct conn {
    op recv_op, send_op;
    SOCKET sock;
    DWORD length; /* bytes being sent */
    char data[];  /* buffer_size bytes */
} conn;

typedef struct accept_slot {
    OVERLAPPED ov;
    SOCKET sock;
    char addresses[2 * ADDR_SIZE];
} accept_slot;

static HANDLE port;
static SOCKET listener;
static LPFN_ACCEPTEX accept_ex;
static DWORD buffer_size = 16384;
static accept_slot accepts[ACCEPTS];

static _Noreturn void fail(const char *what)
{
    fprintf(stderr, "minimal-echo: %s failed (WSA %d, Win32 %lu)\n", what, WSAGetLastError(),
            (unsigned long)GetLastError());
    exit(1);
}

static void post_accept(accept_slot *a)
{
    memset(&a->ov, 0, sizeof a->ov);
    a->sock = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (a->sock == INVALID_SOCKET)
        fail("WSASocketW");
    DWORD got = 0;
    if (!accept_ex(listener, a->sock, a->addresses, 0, ADDR_SIZE, ADDR_SIZE, &got, &a->ov) &&
        WSAGetLastError() != ERROR_IO_PENDING)
        fail("AcceptEx");
}

static void conn_close(conn *c)
{
    closesocket(c->sock);
    free(c);
}

/* Posts the receive; while receives and sends complete at once, keeps echoing right here.
 * Returns when an operation is pending (its packet continues the connection) or it closed. */
static void echo_from_recv(conn *c)
{
    for (;;) {
        WSABUF buf = {buffer_size, c->data};
        DWORD got = 0, flags = 0;
        memset(&c->recv_op.ov, 0, sizeof c->recv_op.ov);
        if (WSARecv(c->sock, &buf, 1, &got, &flags, &c->recv_op.ov, NULL) != 0) {
            if (WSAGetLastError() != WSA_IO_PENDING)
                conn_close(c);
            return;
        }
        if (got == 0) {
            conn_close(c);
            return;
        }
        buf.len = c->length = got;
        memset(&c->send_op.ov, 0, sizeof c->send_op.ov);
        if (WSASend(c->sock, &buf, 1, &got, 0, &c->send_op.ov, NULL) != 0) {
            if (WSAGetLastError() != WSA_IO_PENDING)
                conn_close(c);
            return;
        }
    }
}

static void on_recv(conn *c, DWORD bytes, ULONG_PTR status)
{
    if (status != 0 || bytes == 0) {
        conn_close(c);
        return;
    }
    WSABUF buf = {bytes, c->data};
    DWORD sent = 0;
    c->length = bytes;
    memset(&c->send_op.ov, 0, sizeof c->send_op.ov);
    if (WSASend(c->sock, &buf, 1, &sent, 0, &c->send_op.ov, NULL) != 0) {
        if (WSAGetLastError() != WSA_IO_PENDING)
            conn_close(c);
        return;
    }
    echo_from_recv(c);
}

static void on_send(conn *c, DWORD bytes, ULONG_PTR status)
{
    /* An overlapped send completes whole or fails. */
    if (status != 0 || bytes != c->length) {
        conn_close(c);
        return;
    }
    echo_from_recv(c);
}

static void on_accept(accept_slot *a, ULONG_PTR status)
{
    SOCKET s = a->sock;
    post_accept(a);
    if (status != 0) {
        closesocket(s);
        return;
    }
    BOOL one = TRUE;
    conn *c = malloc(sizeof *c + buffer_size);
    if (c == NULL ||
        setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&listener, sizeof listener) ||
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (char *)&one, sizeof one) ||
        CreateIoCompletionPort((HANDLE)s, port, KEY_CONN, 0) == NULL ||
        !SetFileCompletionNotificationModes((HANDLE)s, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS |
                                                           FILE_SKIP_SET_EVENT_ON_HANDLE)) {
        free(c);
        closesocket(s);
        return;
    }
    memset(c, 0, sizeof *c);
    c->sock = s;
    c->send_op.is_send = 1;
    echo_from_recv(c);
}

static DWORD WINAPI worker(LPVOID arg)
{
    (void)arg;
    OVERLAPPED_ENTRY entries[BATCH];
    for (;;) {
        ULONG n = 0;
        if (!GetQueuedCompletionStatusEx(port, entries, BATCH, &n, INFINITE, FALSE))
            fail("GetQueuedCompletionStatusEx");
        for (ULONG i = 0; i < n; i++) {
            OVERLAPPED *ov = entries[i].lpOverlapped;
            ULONG_PTR status = ov->Internal;
            if (entries[i].lpCompletionKey == KEY_ACCEPT) {
                on_accept(CONTAINING_RECORD(ov, accept_slot, ov), status);
                continue;
            }
            op *o = CONTAINING_RECORD(ov, op, ov);
            DWORD bytes = entries[i].dwNumberOfBytesTransferred;
            if (o->is_send)
                on_send(CONTAINING_RECORD(o, conn, send_op), bytes, status);
            else
                on_recv(CONTAINING_RECORD(o, conn, recv_op), bytes, status);
        }
    }
}

int main(int argc, char **argv)
{
    unsigned port_number = 0, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        unsigned long v = strtoul(argv[i + 1], NULL, 10);
        if (strcmp(argv[i], "--port") == 0 && v <= 65535)
            port_number = (unsigned)v;
        else if (strcmp(argv[i], "--threads") == 0 && v >= 1 && v <= 256)
            threads = (unsigned)v;
        else if (strcmp(argv[i], "--buffer-size") == 0 && v >= 512 && v <= (1u << 24))
            buffer_size = (DWORD)v;
        else {
            fprintf(stderr, "minimal-echo: bad option %s %s\n", argv[i], argv[i + 1]);
            return 2;
        }
    }
    WSADATA wsa;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        fail("WSAStartup");
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    listener = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (port == NULL || listener == INVALID_SOCKET)
        fail("socket setup");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((u_short)port_number);
    int addr_len = sizeof addr;
    GUID guid = WSAID_ACCEPTEX;
    DWORD got = 0;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, SOMAXCONN) ||
        getsockname(listener, (struct sockaddr *)&addr, &addr_len) ||
        WSAIoctl(listener, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &accept_ex,
                 sizeof accept_ex, &got, NULL, NULL) ||
        CreateIoCompletionPort((HANDLE)listener, port, KEY_ACCEPT, 0) == NULL)
        fail("listener setup");
    for (int i = 0; i < ACCEPTS; i++)
        post_accept(&accepts[i]);
    for (unsigned i = 0; i < threads; i++) {
        HANDLE t = CreateThread(NULL, 0, worker, NULL, 0, NULL);
        if (t == NULL)
            fail("CreateThread");
        CloseHandle(t);
    }
    printf("minimal-echo: listening on 127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);
    Sleep(INFINITE);
    return 0;
}
