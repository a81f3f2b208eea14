/* net_util.c: test-side sockets and engine helpers (see net_util.h). */
#include "net_util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

SOCKET tn_connect(const char *host, uint16_t port, uint32_t timeout_ms)
{
    return tn_connect_from(NULL, host, port, timeout_ms);
}

SOCKET tn_connect_from(const char *source, const char *host, uint16_t port, uint32_t timeout_ms)
{
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo hints, *list = NULL, *src = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, service, &hints, &list) != 0)
        return INVALID_SOCKET;
    if (source != NULL) {
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
        if (getaddrinfo(source, "0", &hints, &src) != 0) {
            freeaddrinfo(list);
            return INVALID_SOCKET;
        }
    }
    SOCKET s = INVALID_SOCKET;
    for (struct addrinfo *ai = list; ai != NULL && s == INVALID_SOCKET; ai = ai->ai_next) {
        if (src != NULL && src->ai_family != ai->ai_family)
            continue;
        s = socket(ai->ai_family, SOCK_STREAM, IPPROTO_TCP);
        if (s == INVALID_SOCKET)
            continue;
        DWORD tmo = timeout_ms;
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&tmo, sizeof tmo);
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, (const char *)&tmo, sizeof tmo);
        if ((src != NULL && bind(s, src->ai_addr, (int)src->ai_addrlen) != 0) ||
            connect(s, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
            closesocket(s);
            s = INVALID_SOCKET;
        }
    }
    if (src != NULL)
        freeaddrinfo(src);
    freeaddrinfo(list);
    return s;
}

size_t tn_send_until_stalled(SOCKET s, const void *data, size_t len, size_t chunk,
                             uint32_t stall_ms, uint32_t max_ms, int *stalled)
{
    DWORD tmo = stall_ms;
    CHECK(setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, (const char *)&tmo, sizeof tmo) == 0);
    const char *p = data;
    size_t sent = 0;
    int timed_out = 0;
    uint64_t deadline = test_now_ms() + max_ms;
    while (sent < len && test_now_ms() < deadline) {
        size_t want = len - sent < chunk ? len - sent : chunk;
        int n = send(s, p + sent, (int)want, 0);
        if (n <= 0) {
            timed_out = WSAGetLastError() == WSAETIMEDOUT;
            break;
        }
        sent += (size_t)n;
    }
    if (stalled != NULL)
        *stalled = timed_out;
    return sent;
}

int tn_send_all(SOCKET s, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        int chunk = len > 1u << 20 ? 1 << 20 : (int)len;
        int n = send(s, p, chunk, 0);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

size_t tn_recv_exact(SOCKET s, void *data, size_t len)
{
    char *p = data;
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        int n = recv(s, p + got, want > 1u << 20 ? 1 << 20 : (int)want, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

int tn_wait_closed(SOCKET s, uint32_t timeout_ms)
{
    DWORD tmo = timeout_ms;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&tmo, sizeof tmo);
    char buf[4096];
    for (;;) {
        int n = recv(s, buf, sizeof buf, 0);
        if (n == 0)
            return 1;
        if (n < 0)
            return WSAGetLastError() != WSAETIMEDOUT;
    }
}

void tn_reset(SOCKET s)
{
    struct linger lg = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
    closesocket(s);
}

typedef struct split_sender {
    SOCKET s;
    const uint8_t *data;
    size_t len;
    uint64_t seed;
} split_sender;

static DWORD WINAPI split_sender_main(LPVOID arg)
{
    split_sender *sd = arg;
    size_t off = 0;
    while (off < sd->len) {
        uint64_t r = test_rand(&sd->seed);
        size_t n;
        switch (r % 4) {
        case 0:
            n = 1;
            break;
        case 1:
            n = 1 + (size_t)(r >> 8) % 100;
            break;
        case 2:
            n = 1 + (size_t)(r >> 8) % 20000;
            break;
        default:
            n = 1 + (size_t)(r >> 8) % 300000;
            break;
        }
        if (n > sd->len - off)
            n = sd->len - off;
        if (tn_send_all(sd->s, sd->data + off, n) != 0)
            return 1;
        off += n;
    }
    return 0;
}

size_t tn_echo_split(SOCKET s, const void *data, size_t len, uint64_t seed)
{
    split_sender sd = {s, data, len, seed};
    HANDLE t = CreateThread(NULL, 0, split_sender_main, &sd, 0, NULL);
    CHECK(t != NULL);
    uint8_t buf[65536];
    size_t matched = 0;
    while (matched < len) {
        size_t want = len - matched < sizeof buf ? len - matched : sizeof buf;
        int n = recv(s, (char *)buf, (int)want, 0);
        if (n <= 0)
            break;
        if (memcmp(buf, (const uint8_t *)data + matched, (size_t)n) != 0) {
            for (int i = 0; i < n && buf[i] == ((const uint8_t *)data)[matched]; i++)
                matched++;
            break;
        }
        matched += (size_t)n;
    }
    if (matched < len)
        shutdown(s, SD_BOTH); /* unblock the sender */
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
    return matched;
}

void tn_echo_message(SOCKET s, iocp_framing mode, const char *text)
{
    tn_ledger ledger = {0, 0};
    tn_echo_counted(s, mode, text, &ledger);
    CHECK_MSG(ledger.back == ledger.sent, "echo of '%s': %llu of %llu bytes came back equal", text,
              (unsigned long long)ledger.back, (unsigned long long)ledger.sent);
}

iocp_engine *tn_start(iocp_config *cfg, const iocp_handlers *handlers, void *user)
{
    iocp_config local;
    if (cfg == NULL) {
        iocp_config_init(&local);
        cfg = &local;
    }
    cfg->port = 0;
    iocp_engine *e = NULL;
    iocp_error_info err;
    iocp_err rc = iocp_engine_start(cfg, handlers, user, &e, &err);
    CHECK_MSG(rc == IOCP_OK, "iocp_engine_start: %s", err.message);
    CHECK(iocp_engine_port(e) != 0);
    return e;
}

typedef struct stat_wait {
    iocp_engine *e;
    size_t offset;
    uint64_t value;
    int at_least; /* 0: the value itself; 1: it or more (a counter a load keeps moving) */
} stat_wait;

static int stat_reached(void *arg)
{
    stat_wait *w = arg;
    iocp_stats st;
    iocp_engine_stats(w->e, &st);
    uint64_t v;
    memcpy(&v, (const char *)&st + w->offset, sizeof v);
    return w->at_least ? v >= w->value : v == w->value;
}

int tn_wait_stat(iocp_engine *e, size_t offset, uint64_t value, uint32_t timeout_ms)
{
    stat_wait w = {e, offset, value, 0};
    return test_wait_until(stat_reached, &w, timeout_ms);
}

int tn_wait_stat_at_least(iocp_engine *e, size_t offset, uint64_t value, uint32_t timeout_ms)
{
    stat_wait w = {e, offset, value, 1};
    return test_wait_until(stat_reached, &w, timeout_ms);
}

uint64_t tn_stop_counting_leaks(iocp_engine *e)
{
    iocp_err rc = iocp_engine_stop(e, 5000);
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_MSG(rc == IOCP_OK || st.contexts_in_use > 0, "stop: %s", iocp_strerror(rc));
    return st.contexts_in_use;
}

void tn_echo_counted(SOCKET s, iocp_framing mode, const char *text, tn_ledger *ledger)
{
    uint8_t frame[128], back[128];
    size_t len = strlen(text), suffix_len;
    CHECK(len + IOCP_LENGTH_HEADER_SIZE + 1 <= sizeof frame);
    size_t n = iocp_frame_prefix(mode, len, frame);
    memcpy(frame + n, text, len);
    n += len;
    const uint8_t *suffix = iocp_frame_suffix(mode, &suffix_len);
    memcpy(frame + n, suffix, suffix_len);
    n += suffix_len;
    ledger->sent += n;
    if (tn_send_all(s, frame, n) != 0)
        return;
    size_t got = tn_recv_exact(s, back, n), same = 0;
    while (same < got && back[same] == frame[same])
        same++;
    ledger->back += same;
}

static void put_figure(const char *name, int64_t value)
{
    if (value == TN_NOT_MEASURED)
        printf(" %s=-", name);
    else
        printf(" %s=%lld", name, (long long)value);
}

void tn_metric(const char *scenario, int64_t connections, int64_t faults, int64_t bad_inputs,
               int64_t bytes_lost, int64_t leaked, int64_t intended_leaks)
{
    printf("METRIC scenario=%s", scenario);
    put_figure("connections", connections);
    put_figure("faults", faults);
    put_figure("bad_inputs", bad_inputs);
    put_figure("bytes_lost", bytes_lost);
    put_figure("contexts_leaked", leaked);
    if (intended_leaks > 0)
        put_figure("intended_leaks", intended_leaks);
    printf("\n");
    fflush(stdout);
}

void tn_stop_clean(iocp_engine *e)
{
    CHECK_OK(iocp_engine_stop(e, 5000));
    CHECK_OK(iocp_engine_wait(e, 0));
    iocp_stats st;
    iocp_engine_stats(e, &st);
    CHECK_EQ_U(st.contexts_in_use, 0);
    CHECK_EQ_U(st.active, 0);
    CHECK_EQ_U(st.ops_in_flight, 0);
    CHECK_EQ_U(st.bytes_queued, 0);
    CHECK_EQ_U(st.heap_chunks, 0);
    CHECK_EQ_U(st.buffers_in_use, 0);
    CHECK_EQ_U(st.idle_receives, 0);
    iocp_engine_destroy(e);
}
