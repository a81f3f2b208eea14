/*
 * udp_stuck.c: whether a datagram socket that a dead process used still serves.
 *
 * Under Wine (8 and 10 alike, server/sock.c and async.c), a receive or send that finds data or
 * room at once is queued on the socket and handed back to the calling process to do itself
 * ("alerted"); the process then reports the result. A process killed between the two never
 * reports it, and Wine's clean-up of a dead process's I/O (cancel_process_asyncs) skips an
 * operation already handed back. It stays at the head of the socket's queue: every later
 * receive (or send) on that socket, by any process holding it, waits behind it for ever,
 * while datagrams pile up in the buffer. Windows ends a dead process's I/O, so there the
 * socket always serves. docs/wine.md records it, with the program that shows it.
 *
 * The check needs no other process: with the socket non-blocking for a moment, it sends a
 * datagram to its own address and reads the head of its buffer without taking it (MSG_PEEK).
 * On a socket that serves, the read returns at once (our datagram, which is then taken, or a
 * peer's, which stays for the next worker). On a blocked one the send or the read says
 * WSAEWOULDBLOCK although FIONREAD counts bytes waiting. Run only while no worker holds the
 * socket: a worker's own pending receives would also make a non-blocking read wait.
 */
#include "udpi.h"

#define PROBE_MS      300u /* a datagram over loopback arrives in microseconds */
#define PROBE_POLL_MS 5u

/* Where a datagram to ourselves goes: our own address, or loopback for a wildcard bind. */
static int self_address(SOCKET s, struct sockaddr_storage *to, int *len)
{
    *len = (int)sizeof *to;
    if (getsockname(s, (struct sockaddr *)to, len) != 0)
        return 0;
    if (to->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)to;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (to->ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)to;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
    } else {
        return 0;
    }
    return 1;
}

static int same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

iocpi_udp_state iocpi_udp_probe(SOCKET s, unsigned long *waiting_bytes)
{
    *waiting_bytes = 0;
    struct sockaddr_storage self;
    int self_len;
    if (!self_address(s, &self, &self_len))
        return IOCPI_UDP_UNKNOWN;
    u_long on = 1;
    if (ioctlsocket(s, FIONBIO, &on) != 0)
        return IOCPI_UDP_UNKNOWN;
    /* The probe's bytes: the pid and the time, so that a peer's datagram is not taken for it
     * (a spoofed copy is refused by the worker anyway: it comes from our own port). */
    uint8_t probe[24] = "iocp-probe";
    DWORD pid = GetCurrentProcessId();
    uint64_t ticks = GetTickCount64();
    memcpy(probe + 12, &pid, sizeof pid);
    memcpy(probe + 16, &ticks, sizeof ticks);
    int sent = 0, send_blocked = 0, readable = 0, mine = 0;
    unsigned long waiting = 0;
    uint64_t until = GetTickCount64() + PROBE_MS;
    for (;;) {
        if (!sent) {
            int r = sendto(s, (const char *)probe, (int)sizeof probe, 0,
                           (const struct sockaddr *)&self, self_len);
            int e = r < 0 ? WSAGetLastError() : 0;
            sent = r == (int)sizeof probe;
            send_blocked = e == WSAEWOULDBLOCK;
            if (!sent && !send_blocked)
                sent = -1; /* failed otherwise: no verdict from the send side */
        }
        u_long n = 0;
        if (ioctlsocket(s, FIONREAD, &n) == 0)
            waiting = n;
        if (!readable) {
            char head[sizeof probe];
            struct sockaddr_storage from;
            int from_len = (int)sizeof from;
            int r =
                recvfrom(s, head, (int)sizeof head, MSG_PEEK, (struct sockaddr *)&from, &from_len);
            int e = r < 0 ? WSAGetLastError() : 0;
            if (r >= 0 || e == WSAEMSGSIZE || e == WSAECONNRESET) {
                readable = 1;
                mine = r == (int)sizeof probe && memcmp(head, probe, sizeof probe) == 0 &&
                       same_endpoint(&from, &self);
            } else if (e != WSAEWOULDBLOCK) {
                readable = -1; /* failed otherwise: no verdict from the read side */
            }
        }
        if ((readable != 0 && sent != 0) || GetTickCount64() >= until)
            break;
        Sleep(PROBE_POLL_MS);
    }
    if (mine) { /* take our own datagram back: the next worker would count it as refused */
        char drop[sizeof probe];
        recvfrom(s, drop, (int)sizeof drop, 0, NULL, NULL);
    }
    on = 0;
    ioctlsocket(s, FIONBIO, &on);
    *waiting_bytes = waiting;
    if (sent == 0 && send_blocked)
        return IOCPI_UDP_SENDS_BLOCKED; /* nothing else sends on it now: the queue is held */
    if (readable == 0 && waiting > 0)
        return IOCPI_UDP_RECEIVES_BLOCKED;
    return readable == 1 ? IOCPI_UDP_SERVES : IOCPI_UDP_UNKNOWN;
}
