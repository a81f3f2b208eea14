/*
 * udp_mode.c: iocp-client --udp. Plain Winsock datagram sockets, no engine: a UDP client has
 * no connection to manage, and a blocking socket per thread is the simplest honest peer.
 *
 * Message mode: one datagram per MESSAGE (or --file), on a socket connected to HOST:PORT (so
 * only the server's answers are read, and an ICMP port-unreachable shows as a refusal); each
 * answer is awaited --timeout ms, the datagram is sent again up to --retries times, then exit
 * 9 (CLIENT_EXIT_NO_REPLY).
 *
 * Load mode: --connections sockets, one thread each, each keeping --depth datagrams of --size
 * bytes in flight. A datagram carries a 16-byte header (magic, socket, sequence) and the
 * payload generator's bytes for its sequence, so every answer is checked whole. One not
 * answered within the loss window (--timeout, at most 1 s) is counted lost and replaced.
 * The summary: datagrams/s, loss, latency percentiles, mismatches.
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit_codes.h"
#include "histogram.h"
#include "modes.h"
#include "payload.h"
#include "sys.h"

#define UDP_MAGIC   0x55445031u /* "UDP1" */
#define HEADER      16
#define MAX_LOSS_MS 1000u

/* A socket connected to host:port (the first address that takes one). */
static int udp_connect(const client_args *a, SOCKET *out, uint32_t timeout_ms)
{
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)a->port);
    ADDRINFOA hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_protocol = IPPROTO_UDP;
    int rc = getaddrinfo(a->host, port, &hints, &ai);
    if (rc != 0) {
        client_errorf("cannot resolve %s (WSA %d)", a->host, rc);
        return CLIENT_EXIT_RESOLVE;
    }
    int result = CLIENT_EXIT_OTHER;
    int last = 0;
    for (ADDRINFOA *p = ai; p != NULL; p = p->ai_next) {
        SOCKET s = socket(p->ai_family, SOCK_DGRAM, IPPROTO_UDP);
        if (s == INVALID_SOCKET) {
            last = WSAGetLastError();
            continue;
        }
        if (connect(s, p->ai_addr, (int)p->ai_addrlen) != 0) {
            last = WSAGetLastError();
            closesocket(s);
            continue;
        }
        DWORD t = timeout_ms;
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&t, sizeof t);
        int big = 1 << 20;
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, (const char *)&big, sizeof big);
        setsockopt(s, SOL_SOCKET, SO_SNDBUF, (const char *)&big, sizeof big);
        *out = s;
        result = CLIENT_EXIT_OK;
        break;
    }
    freeaddrinfo(ai);
    if (result != CLIENT_EXIT_OK)
        client_errorf("cannot open a UDP socket to %s:%u (WSA %d)", a->host, (unsigned)a->port,
                      last);
    return result;
}

/* WSAECONNRESET on a connected UDP socket: the peer's port is unreachable (ICMP). */
static int is_refusal(int wsa)
{
    return wsa == WSAECONNRESET || wsa == WSAECONNREFUSED;
}

/* ---- message mode ---------------------------------------------------------------------- */

static int one_datagram(SOCKET s, const client_args *a, const uint8_t *data, size_t len,
                        uint8_t *back, int console)
{
    for (uint32_t attempt = 0; attempt <= a->retries; attempt++) {
        if (send(s, (const char *)data, (int)len, 0) != (int)len) {
            int wsa = WSAGetLastError();
            if (is_refusal(wsa))
                continue; /* an earlier datagram's ICMP error, reported on this call */
            client_errorf("send: WSA %d", wsa);
            return CLIENT_EXIT_OTHER;
        }
        uint64_t deadline = client_now_ms() + a->timeout_ms;
        for (;;) {
            int n = recv(s, (char *)back, IOCP_UDP_MAX_DATAGRAM + 1, 0);
            if (n >= 0) {
                if ((size_t)n == len && memcmp(back, data, len) == 0) {
                    client_write_echo(stdout, back, len, console);
                    fputc('\n', stdout);
                    return CLIENT_EXIT_OK;
                }
                client_errorf("the answer differs from the datagram sent (%d bytes back, %u "
                              "sent)",
                              n, (unsigned)len);
                return CLIENT_EXIT_MISMATCH;
            }
            int wsa = WSAGetLastError();
            if (wsa == WSAETIMEDOUT || client_now_ms() >= deadline)
                break;
            if (is_refusal(wsa)) {
                client_errorf("%s:%u refused the datagram (ICMP port unreachable)", a->host,
                              (unsigned)a->port);
                return CLIENT_EXIT_REFUSED;
            }
            client_errorf("recv: WSA %d", wsa);
            return CLIENT_EXIT_OTHER;
        }
        if (attempt < a->retries)
            fprintf(stderr, "iocp-client: no answer in %lu ms: sending again (%lu of %lu)\n",
                    (unsigned long)a->timeout_ms, (unsigned long)attempt + 1,
                    (unsigned long)a->retries);
    }
    client_errorf("no answer from %s:%u to a datagram of %u bytes after %lu tries of %lu ms",
                  a->host, (unsigned)a->port, (unsigned)len, (unsigned long)a->retries + 1,
                  (unsigned long)a->timeout_ms);
    return CLIENT_EXIT_NO_REPLY;
}

int client_run_udp_message(const client_args *a)
{
    SOCKET s = INVALID_SOCKET;
    int rc = udp_connect(a, &s, a->timeout_ms);
    if (rc != CLIENT_EXIT_OK)
        return rc;
    uint8_t *back = malloc(IOCP_UDP_MAX_DATAGRAM + 1);
    if (back == NULL) {
        closesocket(s);
        return CLIENT_EXIT_OTHER;
    }
    int console = client_stdout_is_console();
    for (size_t i = 0; i < a->message_count && rc == CLIENT_EXIT_OK; i++) {
        const client_payload *p = &a->messages[i];
        uint8_t *owned = NULL;
        const uint8_t *data = (const uint8_t *)p->data;
        size_t len = p->len;
        if (p->file != NULL) {
            char err[300];
            if (client_read_file(p->file, &owned, &len, err, sizeof err) != 0) {
                client_errorf("%s", err);
                rc = CLIENT_EXIT_OTHER;
                break;
            }
            data = owned;
        }
        if (len > IOCP_UDP_MAX_DATAGRAM) {
            client_errorf("message %u is %u bytes: a datagram holds 65507 at most", (unsigned)i + 1,
                          (unsigned)len);
            rc = CLIENT_EXIT_USAGE;
        } else {
            rc = one_datagram(s, a, data, len, back, console);
        }
        free(owned);
    }
    fflush(stdout);
    free(back);
    closesocket(s);
    return rc;
}

/* ---- load mode ------------------------------------------------------------------------- */

typedef struct slot {
    uint64_t seq;
    uint64_t sent_us;
    int busy;
} slot;

typedef struct udp_worker {
    const client_args *a;
    uint32_t id;
    SOCKET sock;
    volatile LONG *stop;
    uint64_t sent, answered, lost, mismatched, late, bytes;
    iocp_histogram latency; /* microseconds */
    int error;              /* a client exit code, 0 = none */
} udp_worker;

static void fill(uint8_t *buf, uint32_t id, uint64_t seq, size_t size)
{
    payload_kind binary = {0};
    payload_fill(binary, id, seq, buf, size);
    uint32_t magic = UDP_MAGIC;
    memcpy(buf, &magic, 4);
    memcpy(buf + 4, &id, 4);
    memcpy(buf + 8, &seq, 8);
}

static int send_slot(udp_worker *w, slot *sl, uint64_t seq, uint8_t *buf)
{
    size_t size = w->a->size;
    fill(buf, w->id, seq, size);
    sl->seq = seq;
    sl->busy = 1;
    sl->sent_us = client_now_us();
    w->sent++;
    if (send(w->sock, (const char *)buf, (int)size, 0) != (int)size) {
        int wsa = WSAGetLastError();
        if (!is_refusal(wsa) && wsa != WSAEWOULDBLOCK && wsa != WSAENOBUFS) {
            client_errorf("udp socket %u: send: WSA %d", (unsigned)w->id, wsa);
            return -1;
        }
        /* counted lost when its window passes */
    }
    return 0;
}

static DWORD WINAPI udp_worker_main(LPVOID arg)
{
    udp_worker *w = arg;
    const client_args *a = w->a;
    uint32_t depth = a->depth;
    uint32_t loss_ms = a->timeout_ms < MAX_LOSS_MS ? a->timeout_ms : MAX_LOSS_MS;
    slot *slots = calloc(depth, sizeof *slots);
    uint8_t *out = malloc(a->size), *in = malloc(IOCP_UDP_MAX_DATAGRAM + 1),
            *want = malloc(a->size);
    if (slots == NULL || out == NULL || in == NULL || want == NULL) {
        w->error = CLIENT_EXIT_OTHER;
        goto done;
    }
    uint64_t next_seq = 0;
    for (uint32_t i = 0; i < depth && !*w->stop; i++)
        if (send_slot(w, &slots[i], next_seq++, out) != 0) {
            w->error = CLIENT_EXIT_OTHER;
            goto done;
        }
    while (!*w->stop) {
        int n = recv(w->sock, (char *)in, IOCP_UDP_MAX_DATAGRAM + 1, 0);
        uint64_t now = client_now_us();
        if (n >= 0) {
            uint32_t magic = 0, id = 0;
            uint64_t seq = 0;
            if (n >= HEADER) {
                memcpy(&magic, in, 4);
                memcpy(&id, in + 4, 4);
                memcpy(&seq, in + 8, 8);
            }
            slot *hit = NULL;
            for (uint32_t i = 0; i < depth && magic == UDP_MAGIC && id == w->id; i++)
                if (slots[i].busy && slots[i].seq == seq)
                    hit = &slots[i];
            if (hit == NULL) {
                if (magic == UDP_MAGIC && id == w->id && seq < next_seq)
                    w->late++; /* answered after it was counted lost */
                else
                    w->mismatched++;
                continue;
            }
            fill(want, w->id, seq, a->size);
            if ((size_t)n != a->size || memcmp(in, want, a->size) != 0) {
                w->mismatched++;
            } else {
                w->answered++;
                w->bytes += (uint64_t)n;
                iocp_histogram_record(&w->latency, now - hit->sent_us);
            }
            hit->busy = 0;
            if (send_slot(w, hit, next_seq++, out) != 0) {
                w->error = CLIENT_EXIT_OTHER;
                break;
            }
            continue;
        }
        int wsa = WSAGetLastError();
        if (wsa != WSAETIMEDOUT && !is_refusal(wsa)) {
            client_errorf("udp socket %u: recv: WSA %d", (unsigned)w->id, wsa);
            w->error = CLIENT_EXIT_OTHER;
            break;
        }
        /* Every slot older than the loss window: lost, and replaced. */
        for (uint32_t i = 0; i < depth; i++) {
            if (slots[i].busy && now - slots[i].sent_us >= (uint64_t)loss_ms * 1000u) {
                w->lost++;
                slots[i].busy = 0;
                if (send_slot(w, &slots[i], next_seq++, out) != 0) {
                    w->error = CLIENT_EXIT_OTHER;
                    goto done;
                }
            }
        }
    }
    /* Those still in flight at the end are neither answered nor lost: not counted sent. */
    for (uint32_t i = 0; i < depth && slots != NULL; i++)
        if (slots[i].busy)
            w->sent--;
done:
    free(slots);
    free(out);
    free(in);
    free(want);
    return 0;
}

int client_run_udp_load(const client_args *a)
{
    uint32_t n = a->connections;
    if (n > 256) {
        client_errorf("--udp --load: at most 256 sockets (one thread each), not %lu",
                      (unsigned long)n);
        return CLIENT_EXIT_USAGE;
    }
    udp_worker *w = calloc(n, sizeof *w);
    HANDLE *threads = calloc(n, sizeof *threads);
    volatile LONG stop = 0;
    int rc = CLIENT_EXIT_OK;
    if (w == NULL || threads == NULL) {
        free(w);
        free(threads);
        return CLIENT_EXIT_OTHER;
    }
    uint32_t loss_ms = a->timeout_ms < MAX_LOSS_MS ? a->timeout_ms : MAX_LOSS_MS;
    uint32_t started = 0;
    for (uint32_t i = 0; i < n && rc == CLIENT_EXIT_OK; i++) {
        w[i].a = a;
        w[i].id = i;
        w[i].stop = &stop;
        iocp_histogram_init(&w[i].latency);
        /* A short receive timeout: the loss window is checked between receives. */
        rc = udp_connect(a, &w[i].sock, loss_ms / 4 ? loss_ms / 4 : 1);
    }
    client_catch_interrupt();
    uint64_t t0 = client_now_us();
    for (uint32_t i = 0; i < n && rc == CLIENT_EXIT_OK; i++) {
        threads[i] = CreateThread(NULL, 0, udp_worker_main, &w[i], 0, NULL);
        if (threads[i] == NULL)
            rc = CLIENT_EXIT_OTHER;
        else
            started++;
    }
    uint64_t last_print = client_now_ms();
    uint64_t prev = 0;
    while (rc == CLIENT_EXIT_OK && !client_interrupted()) {
        Sleep(50);
        uint64_t answered = 0, lost = 0;
        int failed = 0;
        for (uint32_t i = 0; i < n; i++) {
            answered += w[i].answered;
            lost += w[i].lost;
            failed |= w[i].error != 0;
        }
        double elapsed = (double)(client_now_us() - t0) / 1e6;
        if (failed || (a->duration_s > 0 && elapsed >= a->duration_s) ||
            (a->messages_limit > 0 && answered + lost >= a->messages_limit))
            break;
        if (!a->quiet && !a->json && client_now_ms() - last_print >= 1000) {
            last_print = client_now_ms();
            fprintf(stderr, "%6.1f s  %llu datagrams/s  %llu answered  %llu lost\n", elapsed,
                    (unsigned long long)(answered - prev), (unsigned long long)answered,
                    (unsigned long long)lost);
            prev = answered;
        }
    }
    InterlockedExchange(&stop, 1);
    for (uint32_t i = 0; i < started; i++) {
        WaitForSingleObject(threads[i], INFINITE);
        CloseHandle(threads[i]);
    }
    double elapsed = (double)(client_now_us() - t0) / 1e6;
    iocp_histogram all;
    iocp_histogram_init(&all);
    uint64_t sent = 0, answered = 0, lost = 0, mismatched = 0, late = 0, bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (w[i].sock != INVALID_SOCKET && w[i].sock != 0)
            closesocket(w[i].sock);
        sent += w[i].sent;
        answered += w[i].answered;
        lost += w[i].lost;
        mismatched += w[i].mismatched;
        late += w[i].late;
        bytes += w[i].bytes;
        iocp_histogram_merge(&all, &w[i].latency);
        if (rc == CLIENT_EXIT_OK && w[i].error != 0)
            rc = w[i].error;
    }
    double rate = elapsed > 0 ? (double)answered / elapsed : 0;
    double loss = sent > 0 ? 100.0 * (double)lost / (double)sent : 0;
    double p50 = (double)iocp_histogram_percentile(&all, 50) / 1000.0;
    double p99 = (double)iocp_histogram_percentile(&all, 99) / 1000.0;
    double p999 = (double)iocp_histogram_percentile(&all, 99.9) / 1000.0;
    double pmax = (double)iocp_histogram_percentile(&all, 100) / 1000.0;
    if (a->json)
        printf("{\"mode\":\"udp\",\"sockets\":%u,\"depth\":%u,\"size\":%u,\"seconds\":%.3f,"
               "\"sent\":%llu,\"answered\":%llu,\"lost\":%llu,\"late\":%llu,"
               "\"mismatched\":%llu,\"datagrams_per_s\":%.1f,\"loss_pct\":%.4f,"
               "\"mb_per_s\":%.3f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
               "\"max_ms\":%.3f}\n",
               (unsigned)n, (unsigned)a->depth, (unsigned)a->size, elapsed,
               (unsigned long long)sent, (unsigned long long)answered, (unsigned long long)lost,
               (unsigned long long)late, (unsigned long long)mismatched, rate, loss,
               (double)bytes / elapsed / 1e6, p50, p99, p999, pmax);
    else
        printf("udp load: %u sockets x depth %u, %u-byte datagrams, %.2f s\n"
               "  datagrams: %llu sent, %llu answered exact, %llu lost (%.3f%%; window %lu ms), "
               "%llu late, %llu mismatched\n"
               "  rate: %.0f datagrams/s, %.2f MB/s each way\n"
               "  latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
               (unsigned)n, (unsigned)a->depth, (unsigned)a->size, elapsed,
               (unsigned long long)sent, (unsigned long long)answered, (unsigned long long)lost,
               loss, (unsigned long)loss_ms, (unsigned long long)late,
               (unsigned long long)mismatched, rate, (double)bytes / elapsed / 1e6, p50, p99, p999,
               pmax);
    fflush(stdout);
    if (rc == CLIENT_EXIT_OK && mismatched > 0)
        rc = CLIENT_EXIT_MISMATCH;
    if (rc == CLIENT_EXIT_OK && answered == 0)
        rc = CLIENT_EXIT_NO_REPLY;
    free(w);
    free(threads);
    return rc;
}
