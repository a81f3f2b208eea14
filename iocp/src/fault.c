/*
 * fault.c: fault injection for the test build (compiled only with IOCP_FAULT_INJECTION).
 *
 * Environment, read at engine start:
 *   IOCP_FAULT_SHORT=1           every WSARecv and WSASend moves at most one byte
 *   IOCP_FAULT_FAIL_PERMILLE=N   N in 1000 calls fail: half at once (WSAECONNRESET), half as
 *                                a completion carrying one of the "connection gone" statuses
 *                                Windows and Wine report (reset and network name deleted:
 *                                64, cancelled: 995, invalid handle: 6, aborted: 1236)
 *   IOCP_FAULT_SEED=N            the pseudo-random sequence (default 1)
 *   IOCP_FAULT_LOSE_RECV=1       every WSARecv says "pending" and never completes, not even
 *                                when its socket is closed: what Wine was seen to do, rarely,
 *                                under load (the stop must not hang on it)
 *   IOCP_FAULT_OPEN_DELAY_MS=N   a connection being opened (accepted or dialled) waits N ms
 *                                before it looks whether the engine is stopping: a stop that
 *                                races an accept or a dial, made certain
 *   IOCP_FAULT_POST_FAILS=N      the first N PostQueuedCompletionStatus calls fail, as they do
 *                                when the system is out of memory for the packet
 *   IOCP_FAULT_REFUSING_FIRST=1  every dial's resolved addresses get 127.0.0.1 port 1 (where
 *                                nothing listens) in front: a name whose first address
 *                                refuses, which no hosts file here provides
 */
#include "iocpi.h"

#ifdef IOCP_FAULT_INJECTION

static int fault_short;
static int fault_lose_recv;
static unsigned fault_open_delay_ms;
static int fault_refusing_first;
static volatile LONG fault_post_fails;
static unsigned fault_permille;
static volatile LONG64 fault_counter;
static uint64_t fault_seed = 1;

static unsigned env_uint(const char *name, unsigned fallback)
{
    char value[32];
    DWORD n = GetEnvironmentVariableA(name, value, sizeof value);
    if (n == 0 || n >= sizeof value)
        return fallback;
    return (unsigned)strtoul(value, NULL, 10);
}

void iocpi_fault_init(void)
{
    fault_short = env_uint("IOCP_FAULT_SHORT", 0) != 0;
    fault_permille = env_uint("IOCP_FAULT_FAIL_PERMILLE", 0);
    fault_seed = env_uint("IOCP_FAULT_SEED", 1);
    fault_lose_recv = env_uint("IOCP_FAULT_LOSE_RECV", 0) != 0;
    fault_open_delay_ms = env_uint("IOCP_FAULT_OPEN_DELAY_MS", 0);
    fault_refusing_first = env_uint("IOCP_FAULT_REFUSING_FIRST", 0) != 0;
    fault_post_fails = (LONG)env_uint("IOCP_FAULT_POST_FAILS", 0);
}

BOOL iocpi_fault_post(HANDLE port, DWORD bytes, ULONG_PTR key, OVERLAPPED *ov)
{
    if (fault_post_fails > 0 && InterlockedDecrement(&fault_post_fails) >= 0) {
        SetLastError(ERROR_NO_SYSTEM_RESOURCES);
        return FALSE;
    }
    return PostQueuedCompletionStatus(port, bytes, key, ov);
}

ADDRINFOW *iocpi_fault_first_address(iocp_conn *c, ADDRINFOW *resolved)
{
    if (!fault_refusing_first)
        return resolved;
    memset(&c->dial->fault_addr, 0, sizeof c->dial->fault_addr);
    c->dial->fault_addr.sin_family = AF_INET;
    c->dial->fault_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->dial->fault_addr.sin_port = htons(1);
    memset(&c->dial->fault_first, 0, sizeof c->dial->fault_first);
    c->dial->fault_first.ai_family = AF_INET;
    c->dial->fault_first.ai_socktype = SOCK_STREAM;
    c->dial->fault_first.ai_protocol = IPPROTO_TCP;
    c->dial->fault_first.ai_addrlen = sizeof c->dial->fault_addr;
    c->dial->fault_first.ai_addr = (struct sockaddr *)&c->dial->fault_addr;
    c->dial->fault_first.ai_next = resolved;
    return &c->dial->fault_first;
}

void iocpi_fault_open_delay(void)
{
    if (fault_open_delay_ms > 0)
        Sleep(fault_open_delay_ms);
}

/* splitmix64 of a shared counter: thread-safe, and the same sequence for the same seed. */
static uint64_t fault_rand(void)
{
    uint64_t z =
        (uint64_t)InterlockedIncrement64(&fault_counter) + fault_seed * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Returns 1 when this call is to fail; then the caller returns what *rc says. */
static int maybe_fail(SOCKET s, LPWSAOVERLAPPED ov, int *rc)
{
    static const LONG gone[] = {
        (LONG)0xC000020DL, /* STATUS_CONNECTION_RESET */
        (LONG)0xC0000120L, /* STATUS_CANCELLED: 995 */
        (LONG)0xC0000008L, /* STATUS_INVALID_HANDLE: 6 */
        (LONG)0xC00000C9L, /* STATUS_NETWORK_NAME_DELETED: 64 */
        (LONG)0xC0000241L, /* STATUS_CONNECTION_ABORTED: 1236 */
    };
    if (fault_permille == 0)
        return 0;
    uint64_t r = fault_rand();
    if (r % 1000 >= fault_permille)
        return 0;
    if ((r >> 20) & 1) {
        WSASetLastError(WSAECONNRESET);
        *rc = SOCKET_ERROR;
        return 1;
    }
    /* Pending, then a completion with an error status: the way a reset reaches an operation
     * that was already posted. */
    LONG status = gone[(r >> 24) % (sizeof gone / sizeof gone[0])];
    (void)s;
    memset(ov, 0, sizeof *ov);
    ov->Internal = (ULONG_PTR)status;
    WSASetLastError(WSA_IO_PENDING);
    *rc = SOCKET_ERROR;
    return 2;
}

/* Applies the configured faults to one call. Returns 1 when the call is not to be made (then
 * *rc is its result); otherwise it may have cut the buffers down to one byte. */
static int inject(iocp_engine *e, SOCKET s, LPWSABUF *bufs, DWORD *n, WSABUF *one,
                  LPWSAOVERLAPPED ov, int *rc)
{
    switch (maybe_fail(s, ov, rc)) {
    case 1:
        return 1;
    case 2:
        PostQueuedCompletionStatus(e->port, 0, 0, ov);
        return 1;
    default:
        break;
    }
    if (fault_short && (*bufs)[0].len > 1) {
        *one = (*bufs)[0];
        one->len = 1;
        *bufs = one;
        *n = 1;
    }
    return 0;
}

int iocpi_fault_wsarecv(iocp_engine *e, SOCKET s, LPWSABUF bufs, DWORD n, LPDWORD got,
                        LPDWORD flags, LPWSAOVERLAPPED ov)
{
    int rc = 0;
    WSABUF one;
    if (fault_lose_recv) {
        WSASetLastError(WSA_IO_PENDING);
        return SOCKET_ERROR;
    }
    if (inject(e, s, &bufs, &n, &one, ov, &rc))
        return rc;
    return WSARecv(s, bufs, n, got, flags, ov, NULL);
}

int iocpi_fault_wsasend(iocp_engine *e, SOCKET s, LPWSABUF bufs, DWORD n, LPDWORD sent, DWORD flags,
                        LPWSAOVERLAPPED ov)
{
    int rc = 0;
    WSABUF one;
    if (inject(e, s, &bufs, &n, &one, ov, &rc))
        return rc;
    return WSASend(s, bufs, n, sent, flags, ov, NULL);
}

#else

typedef int iocpi_fault_injection_not_built;

#endif
