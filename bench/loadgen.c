/*
 * loadgen.c: the benchmark's load generator. Native Linux (epoll), outside Wine, so that the
 * servers under test and the load share no wineserver and no fd budget.
 *
 *   loadgen --host 127.0.0.1 --port P --connections N --depth D --size BYTES
 *           (--duration SECONDS | --messages COUNT) [--churn] [--json] [--threads T]
 *           [--tls [--tls-ca PEM] [--tls-server-name NAME]] [--proxy v1|v2]
 *   loadgen --host 127.0.0.1 --port P --idle-connections N [--hold SECONDS] [--json]
 *           [--proxy v1|v2]
 *   loadgen --udp --host 127.0.0.1 --port P --connections N --depth D --size BYTES
 *           (--duration SECONDS | --messages COUNT) [--udp-timeout SECONDS] [--json]
 *           [--threads T]
 *
 * Echo mode: every connection keeps D messages of SIZE bytes in flight. A message carries its
 * sequence number and connection id, and a pattern that differs per connection and per
 * message; every echoed byte is compared with what was sent (a mismatch is reported with its
 * place and ends the run with exit code 2). Per-message latency (send to full echo, in
 * microseconds) goes into the project's histogram (client/histogram.h). Timing starts only after
 * every connection is established and has echoed one message (the warm-up echo).
 *
 * Churn mode (--churn): each of the N connection slots repeats connect, one echo, close; the
 * rate is connections per second and the latency is connect + echo.
 *
 * Scale mode (--idle-connections N): opens N connections (all established first), then every
 * one echoes one message at once; reports both times. With --hold S it then keeps them open
 * (printing "loadgen: ready" on stderr) for up to S seconds, until SIGTERM/SIGINT, or until the
 * server has closed all of them (counted: a graceful server stop closes them). With
 * --idle-first S the connections stay silent for S seconds between the connects and the echo
 * ("loadgen: idle" on stderr when that starts): memory of connections that never spoke.
 *
 * TLS (--tls): every connection is TLS over the same non-blocking sockets and epoll loop
 * (OpenSSL: SSL_connect, SSL_read, SSL_write, each continued on WANT_READ/WANT_WRITE), with
 * SNI "localhost" (--tls-server-name), no certificate check unless --tls-ca names a CA (then
 * the chain and the name are verified), no session resumption: every connection is a full
 * handshake. A connection counts as established once its handshake is done, so the warm-up
 * includes the handshakes and the timed phase of echo mode measures the record layer only; in
 * churn a cycle is connect, handshake, one echo, close_notify, close, so connections/s are
 * handshakes/s. The handshake time (connect start to handshake done) has its own histogram.
 * OpenSSL is the benchmark's, not the product's: the servers under test use Schannel.
 *
 * PROXY protocol (--proxy v1|v2): every connection begins with the header a load balancer
 * sends (HAProxy's send-proxy: the v1 text line; send-proxy-v2: the v2 binary header, PROXY
 * command, TCP over IPv4 or IPv6, no TLVs), before TLS and before any message. The client it
 * names differs per connection, as many clients behind one balancer do: connection `id`'s
 * cycle `k` is client number n = k * N + id + 1, 10.(n >> 16).(n >> 8).n port 1024 + n % 64512
 * (fd00::n for an IPv6 server); the destination is the server's address. Without TLS the
 * header goes out in one write with the first message (HAProxy sends it with MSG_MORE when
 * the client's data is waiting, so both leave in one segment); with TLS it is written alone
 * before the ClientHello.
 *
 * UDP (--udp): N connected UDP sockets, each keeping D datagrams of SIZE bytes (at least 12:
 * the header) in flight. A datagram is a message as above (sequence number, socket id,
 * pattern); every echo is checked whole against the datagram of its sequence number (a wrong
 * length, id or byte is a mismatch). An echo may come back in any order. A datagram not
 * answered within --udp-timeout (0.5 s) counts as lost and is replaced by a new one, so the
 * window does not shrink; an echo that comes after its timeout (or twice) is counted as late
 * and not timed. Warm-up: every socket has one datagram echoed. Loss is counted, not an error;
 * a refused send or receive (ICMP port unreachable: no server) is an error.
 *
 * Exit code: 0 when there was no error of any kind, 2 on a data mismatch, 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "histogram.h"

/* ---- options ---------------------------------------------------------------------------- */

enum mode { MODE_ECHO, MODE_CHURN, MODE_IDLE, MODE_UDP };

static struct {
    const char *host;
    int port;
    unsigned connections;
    unsigned depth;
    size_t size;
    double duration;   /* seconds, 0 = use messages */
    uint64_t messages; /* total, echo mode: messages; churn: connections */
    enum mode mode;
    int json;
    int warmup;
    unsigned threads;
    double hold;          /* idle mode */
    double idle_first;    /* idle mode: hold the connections this long before the echo */
    double stall_timeout; /* seconds without progress => error */
    unsigned connect_window;
    int tls;
    const char *tls_ca;          /* verify the server against this CA (PEM); else no check */
    const char *tls_server_name; /* SNI (and the name checked with --tls-ca) */
    double udp_timeout;          /* --udp: seconds before a datagram counts as lost */
    int proxy;                   /* --proxy: 0 (none), 1 (v1 text) or 2 (v2 binary) */
} opt = {
    .host = "127.0.0.1",
    .port = 0,
    .connections = 1,
    .depth = 1,
    .size = 64,
    .mode = MODE_ECHO,
    .warmup = 1,
    .threads = 1,
    .stall_timeout = 15.0,
    .connect_window = 256,
    .tls_server_name = "localhost",
    .udp_timeout = 0.5,
};

static struct sockaddr_storage server_addr;
static socklen_t server_addr_len;

static void usage(const char *why)
{
    fprintf(stderr,
            "loadgen: %s\n"
            "usage: loadgen --host H --port P [--connections N] [--depth D] [--size BYTES]\n"
            "               (--duration SECONDS | --messages COUNT) [--churn] [--json]\n"
            "               [--threads T] [--warmup-echo | --no-warmup-echo]\n"
            "               [--stall-timeout SECONDS] [--connect-window N]\n"
            "               [--tls [--tls-ca PEM] [--tls-server-name NAME]] [--proxy v1|v2]\n"
            "       loadgen --host H --port P --idle-connections N [--hold SECONDS]\n"
            "               [--idle-first SECONDS] [--json] [--proxy v1|v2]\n"
            "       loadgen --udp --host H --port P [--connections N] [--depth D] [--size BYTES]\n"
            "               (--duration SECONDS | --messages COUNT) [--udp-timeout SECONDS]\n"
            "               [--threads T] [--json]\n",
            why);
    exit(1);
}

/* ---- time, errors --------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static volatile sig_atomic_t g_signal;
static atomic_int g_abort; /* a fatal error: every thread winds down */
/* Set by the main thread between two barrier rounds (the barrier orders the accesses). */
static uint64_t g_t0;   /* start of the timed phase (ns) */
static uint64_t g_tend; /* end of the timed phase (duration mode) or of the hold (ns) */
static pthread_barrier_t g_barrier;
static pthread_mutex_t g_print_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint g_reports; /* mismatch/error lines printed, capped */

static void on_signal(int sig)
{
    g_signal = sig;
}

/* Error lines go to stderr, at most 20 of them: the counts tell the rest. */
static void report(const char *fmt, ...)
{
    if (atomic_fetch_add(&g_reports, 1) >= 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&g_print_lock);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&g_print_lock);
    va_end(ap);
}

/* ---- message contents ------------------------------------------------------------------ */

/* Random bytes, long enough for any connection's window into it. */
static unsigned char *g_pattern;
#define PATTERN_SLACK 4096u

/* Message `seq` of connection `id`: the pattern at a per-connection offset, XORed with a
 * per-message byte, then the header: seq (8 bytes LE) and id (4 bytes LE), as far as SIZE
 * allows. Consecutive messages differ in every byte; so do connections. */
static void make_message(unsigned char *out, uint32_t id, uint64_t seq)
{
    size_t size = opt.size;
    const unsigned char *pat = g_pattern + (id * 2654435761u) % PATTERN_SLACK;
    uint64_t k = (uint8_t)(seq * 167u + 89u) * 0x0101010101010101ull;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        uint64_t w;
        memcpy(&w, pat + i, 8);
        w ^= k;
        memcpy(out + i, &w, 8);
    }
    for (; i < size; i++)
        out[i] = pat[i] ^ (unsigned char)k;
    unsigned char hdr[12];
    for (int b = 0; b < 8; b++)
        hdr[b] = (unsigned char)(seq >> (8 * b));
    for (int b = 0; b < 4; b++)
        hdr[8 + b] = (unsigned char)(id >> (8 * b));
    memcpy(out, hdr, size < sizeof hdr ? size : sizeof hdr);
}

/* ---- PROXY protocol header (--proxy) --------------------------------------------------- */

#define PROXY_HEADER_MAX 108 /* a v1 line is at most 107 bytes (the spec); v2 over IPv6, 52 */

static const unsigned char proxy_v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* The header of cycle `cycle` of connection `id` (see the top: its own client address and
 * port) into out, PROXY_HEADER_MAX bytes; returns its length. */
static size_t proxy_header(unsigned char *out, uint32_t id, uint64_t cycle)
{
    uint64_t n = cycle * opt.connections + id + 1; /* 10.0.0.1 first */
    unsigned sport = 1024u + (unsigned)(n % 64512u), dport = (unsigned)opt.port;
    int v6 = server_addr.ss_family == AF_INET6;
    size_t alen = v6 ? 16 : 4;
    unsigned char src[16] = {0}, dst[16] = {0};
    if (v6) {
        src[0] = 0xfd; /* fd00::n, a unique local address */
        for (int b = 0; b < 4; b++)
            src[12 + b] = (unsigned char)(n >> (24 - 8 * b));
        memcpy(dst, &((const struct sockaddr_in6 *)&server_addr)->sin6_addr, 16);
    } else {
        src[0] = 10;
        src[1] = (unsigned char)(n >> 16);
        src[2] = (unsigned char)(n >> 8);
        src[3] = (unsigned char)n;
        memcpy(dst, &((const struct sockaddr_in *)&server_addr)->sin_addr, 4);
    }
    if (opt.proxy == 1) {
        char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
        inet_ntop(v6 ? AF_INET6 : AF_INET, src, s, sizeof s);
        inet_ntop(v6 ? AF_INET6 : AF_INET, dst, d, sizeof d);
        int len = snprintf((char *)out, PROXY_HEADER_MAX, "PROXY %s %s %s %u %u\r\n",
                           v6 ? "TCP6" : "TCP4", s, d, sport, dport);
        return (size_t)len;
    }
    size_t payload = 2 * alen + 4; /* the addresses and the ports, no TLVs */
    memcpy(out, proxy_v2_signature, 12);
    out[12] = 0x21;             /* version 2, command PROXY */
    out[13] = v6 ? 0x21 : 0x11; /* TCP over IPv6 or IPv4 */
    out[14] = 0;                /* the length, big-endian */
    out[15] = (unsigned char)payload;
    memcpy(out + 16, src, alen);
    memcpy(out + 16 + alen, dst, alen);
    unsigned char *ports = out + 16 + 2 * alen;
    ports[0] = (unsigned char)(sport >> 8);
    ports[1] = (unsigned char)sport;
    ports[2] = (unsigned char)(dport >> 8);
    ports[3] = (unsigned char)dport;
    return 16 + payload;
}

/* ---- per-connection and per-thread state ----------------------------------------------- */

enum cstate { C_NEW, C_CONNECTING, C_OPEN, C_CLOSED };

typedef struct conn {
    int fd;
    uint32_t id;
    enum cstate state;
    uint32_t events; /* registered epoll mask */
    uint64_t sent;   /* messages queued so far (= the next message's seq) */
    uint64_t recvd;  /* messages fully echoed */
    uint64_t limit;  /* queue no message with seq >= limit */
    size_t rpos;     /* bytes of the incoming message assembled in rmsg */
    unsigned char *rmsg;
    unsigned char *sbuf; /* queued, unsent bytes: [soff, slen); room for depth messages
                            and a PROXY header */
    size_t soff, slen;
    uint64_t *stamp;        /* send time of message seq at [seq % depth] */
    uint64_t cycles;        /* churn: completed connect-echo-close cycles */
    uint64_t cstart;        /* when the current connect began */
    SSL *ssl;               /* --tls: from the TCP connect to the close; C_CONNECTING until the
                               handshake is done */
    uint64_t *slot_seq;     /* --udp: the datagram in each of the depth slots */
    unsigned char *slot_st; /* --udp: SLOT_FREE, SLOT_FLIGHT, SLOT_UNSENT */
} conn;

enum phase { P_WARMUP, P_TIMED, P_HOLD };

typedef struct worker {
    pthread_t thread;
    int ep;
    conn *conns;
    unsigned nconns;
    unsigned next_connect; /* conns[next_connect..] have not been started */
    unsigned connecting;
    unsigned char *scratch;
    size_t scratch_len;
    unsigned char *expect; /* one message, for the comparison */
    iocp_histogram hist;
    enum phase phase;
    int recording;   /* record latency, count messages (the timed phase, scale echo) */
    int sending;     /* echo: top up to depth; churn: start the next cycle */
    uint64_t done;   /* messages (echo) or cycles (churn) counted */
    uint64_t quota;  /* --messages: what this thread owes (churn) */
    uint64_t t_last; /* when the last counted message completed */
    uint64_t last_progress;
    uint64_t t_last_close; /* hold: when the server closed the last connection */
    uint64_t mismatches, connect_errors, io_errors, unexpected_eof, extra_bytes;
    uint64_t closed_by_server, reset_by_server;
    uint64_t established;
    uint64_t tls_errors;    /* handshakes that failed */
    uint64_t handshakes;    /* completed */
    iocp_histogram hs_hist; /* connect start to handshake done, us (churn: timed phase) */
    uint64_t udp_sent, udp_lost, udp_late, udp_warm_lost; /* --udp; the first three timed */
} worker;

static uint64_t worker_errors(const worker *w)
{
    return w->mismatches + w->connect_errors + w->io_errors + w->unexpected_eof + w->extra_bytes +
           w->tls_errors;
}

/* ---- TLS (--tls) ----------------------------------------------------------------------- */

static SSL_CTX *g_tls;
static atomic_int g_tls_noted; /* the first handshake's protocol and cipher are kept */
static char g_tls_protocol[32], g_tls_cipher[80];

static void tls_init(void)
{
    g_tls = SSL_CTX_new(TLS_client_method());
    if (!g_tls) {
        fprintf(stderr, "loadgen: SSL_CTX_new failed\n");
        exit(1);
    }
    SSL_CTX_set_min_proto_version(g_tls, TLS1_2_VERSION);
    /* Every connection a full handshake: no session is offered again. */
    SSL_CTX_set_session_cache_mode(g_tls, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(g_tls, SSL_OP_NO_TICKET);
    /* SSL_write may be retried with more bytes queued behind, and after a memmove. */
    SSL_CTX_set_mode(g_tls, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Whole socket reads rather than a header and a body per record. */
    SSL_CTX_set_read_ahead(g_tls, 1);
    if (opt.tls_ca) {
        if (SSL_CTX_load_verify_locations(g_tls, opt.tls_ca, NULL) != 1) {
            fprintf(stderr, "loadgen: cannot load the CA %s\n", opt.tls_ca);
            exit(1);
        }
        SSL_CTX_set_verify(g_tls, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(g_tls, SSL_VERIFY_NONE, NULL);
    }
}

/* The reason of a failed SSL call, from the SSL error and the thread's OpenSSL error queue
 * (which it empties). */
static const char *tls_why(SSL *ssl, int e, char *buf, size_t len)
{
    unsigned long code = ERR_get_error();
    if (code) {
        ERR_error_string_n(code, buf, len);
        long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        if (v != X509_V_OK) {
            size_t n = strlen(buf);
            snprintf(buf + n, len - n, " (%s)", X509_verify_cert_error_string(v));
        }
    } else if (e == SSL_ERROR_SYSCALL) {
        snprintf(buf, len, "%s", errno ? strerror(errno) : "connection closed by the peer");
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(buf, len, "close_notify from the peer");
    } else {
        snprintf(buf, len, "SSL error %d", e);
    }
    ERR_clear_error();
    return buf;
}

static void set_events(worker *w, conn *c, uint32_t ev)
{
    if (c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &e) != 0) {
        report("epoll_ctl: %s", strerror(errno));
        atomic_store(&g_abort, 1);
    }
    c->events = ev;
}

static void conn_close(worker *w, conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    if (c->state == C_CONNECTING && w->connecting > 0)
        w->connecting--;
    c->state = C_CLOSED;
}

static void conn_start(worker *w, conn *c)
{
    int fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        report("socket: %s", strerror(errno));
        w->connect_errors++;
        c->state = C_CLOSED;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->rpos = 0;
    c->soff = c->slen = 0;
    c->cstart = now_ns();
    if (connect(fd, (const struct sockaddr *)&server_addr, server_addr_len) != 0 &&
        errno != EINPROGRESS) {
        report("connect (connection %u): %s", c->id, strerror(errno));
        w->connect_errors++;
        close(fd);
        c->fd = -1;
        c->state = C_CLOSED;
        return;
    }
    c->state = C_CONNECTING;
    w->connecting++;
    c->events = EPOLLOUT;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        report("epoll_ctl add: %s", strerror(errno));
        atomic_store(&g_abort, 1);
    }
}

/* Starts connects while fewer than this thread's share of the window are in progress (a
 * burst of 10,000 SYNs would overflow the server's accept queue and cost 1 s retries). */
static void start_connects(worker *w)
{
    unsigned window = opt.connect_window / opt.threads;
    if (window == 0)
        window = 1;
    while (w->next_connect < w->nconns && w->connecting < window && !atomic_load(&g_abort))
        conn_start(w, &w->conns[w->next_connect++]);
}

/* The end of a churn cycle: close_notify first over TLS (one non-blocking try, as a client
 * that is done would), then the close. */
static void conn_finish(worker *w, conn *c)
{
    if (c->ssl && SSL_shutdown(c->ssl) < 0)
        ERR_clear_error();
    conn_close(w, c);
}

/* --tls: one step of the handshake. 0 when it is done, 1 while it waits for the socket, -1
 * when it failed (the connection is closed). */
static int conn_handshake(worker *w, conn *c)
{
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        w->handshakes++;
        if (opt.mode != MODE_CHURN || w->recording)
            iocp_histogram_record(&w->hs_hist, (now_ns() - c->cstart + 500) / 1000);
        if (atomic_exchange(&g_tls_noted, 1) == 0) {
            snprintf(g_tls_protocol, sizeof g_tls_protocol, "%s", SSL_get_version(c->ssl));
            snprintf(g_tls_cipher, sizeof g_tls_cipher, "%s", SSL_get_cipher_name(c->ssl));
        }
        return 0;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        set_events(w, c, EPOLLIN);
        return 1;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        set_events(w, c, EPOLLOUT);
        return 1;
    }
    char why[256];
    report("TLS handshake (connection %u): %s", c->id, tls_why(c->ssl, e, why, sizeof why));
    w->tls_errors++;
    conn_close(w, c);
    return -1;
}

/* A non-blocking connect finished (EPOLLOUT), or (--tls) the handshake made progress: 0 when
 * established (and handshaken), 1 while the handshake goes on, -1 when it failed. */
static int conn_connected(worker *w, conn *c)
{
    if (c->ssl) {
        int r = conn_handshake(w, c);
        if (r != 0)
            return r;
        goto established;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        report("connect (connection %u): %s", c->id, strerror(err));
        w->connect_errors++;
        conn_close(w, c);
        return -1;
    }
    if (opt.proxy) {
        /* Queued first: without TLS the first message joins it (conn_started); with TLS it
         * goes alone now, which a fresh socket's send buffer takes whole. */
        c->slen = proxy_header(c->sbuf, c->id, c->cycles);
        if (opt.tls) {
            ssize_t n = send(c->fd, c->sbuf, c->slen, MSG_NOSIGNAL);
            if (n != (ssize_t)c->slen) {
                report("send of the PROXY header (connection %u): %s", c->id,
                       n < 0 ? strerror(errno) : "not taken in one send");
                w->io_errors++;
                conn_close(w, c);
                return -1;
            }
            c->slen = 0;
        }
    }
    if (opt.tls) {
        c->ssl = SSL_new(g_tls);
        if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) ||
            !SSL_set_tlsext_host_name(c->ssl, opt.tls_server_name) ||
            (opt.tls_ca && !SSL_set1_host(c->ssl, opt.tls_server_name))) {
            char why[256];
            report("TLS setup (connection %u): %s", c->id, tls_why(c->ssl, 0, why, sizeof why));
            w->tls_errors++;
            conn_close(w, c);
            return -1;
        }
        SSL_set_connect_state(c->ssl);
        int r = conn_handshake(w, c);
        if (r != 0)
            return r;
    }
established:
    w->connecting--;
    c->state = C_OPEN;
    w->established++;
    set_events(w, c, EPOLLIN);
    return 0;
}

/* --tls: conn_flush over SSL_write. A write that waits for a read (a renegotiation: TLS 1.2
 * servers here do not ask for one) waits with EPOLLIN armed, which is always armed. */
static int conn_flush_tls(worker *w, conn *c)
{
    while (c->soff < c->slen) {
        int n = SSL_write(c->ssl, c->sbuf + c->soff, (int)(c->slen - c->soff));
        if (n > 0) {
            c->soff += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            set_events(w, c, e == SSL_ERROR_WANT_WRITE ? EPOLLIN | EPOLLOUT : EPOLLIN);
            return 0;
        }
        char why[256];
        report("SSL_write (connection %u): %s", c->id, tls_why(c->ssl, e, why, sizeof why));
        w->io_errors++;
        conn_close(w, c);
        return -1;
    }
    c->soff = c->slen = 0;
    set_events(w, c, EPOLLIN);
    return 0;
}

/* Sends what is queued; arms EPOLLOUT while something is left. 0, or -1 when it failed. */
static int conn_flush(worker *w, conn *c)
{
    if (c->ssl)
        return conn_flush_tls(w, c);
    while (c->soff < c->slen) {
        ssize_t n = send(c->fd, c->sbuf + c->soff, c->slen - c->soff, MSG_NOSIGNAL);
        if (n > 0) {
            c->soff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(w, c, EPOLLIN | EPOLLOUT);
            return 0;
        }
        report("send (connection %u): %s", c->id, n < 0 ? strerror(errno) : "0 bytes");
        w->io_errors++;
        conn_close(w, c);
        return -1;
    }
    c->soff = c->slen = 0;
    set_events(w, c, EPOLLIN);
    return 0;
}

/* Queues messages while fewer than `want` are in flight and the limit allows. Unsent plus
 * in-flight never exceeds depth messages, so sbuf never overflows. */
static void conn_queue(conn *c, unsigned want, uint64_t now)
{
    while (c->sent - c->recvd < want && c->sent < c->limit) {
        if (c->slen + opt.size > (size_t)opt.depth * opt.size) {
            memmove(c->sbuf, c->sbuf + c->soff, c->slen - c->soff);
            c->slen -= c->soff;
            c->soff = 0;
        }
        make_message(c->sbuf + c->slen, c->id, c->sent);
        c->slen += opt.size;
        c->stamp[c->sent % opt.depth] = now;
        c->sent++;
    }
}

/* ---- receive path ---------------------------------------------------------------------- */

/* A complete echoed message at p: compare every byte, record. 0, or -1 on a mismatch. */
static int message_done(worker *w, conn *c, const unsigned char *p, uint64_t now)
{
    uint64_t seq = c->recvd;
    make_message(w->expect, c->id, seq);
    if (memcmp(p, w->expect, opt.size) != 0) {
        size_t at = 0;
        while (p[at] == w->expect[at])
            at++;
        report("MISMATCH connection %u message %llu byte %zu (stream offset %llu): expected "
               "0x%02x, got 0x%02x",
               c->id, (unsigned long long)seq, at, (unsigned long long)(seq * opt.size + at),
               w->expect[at], p[at]);
        w->mismatches++;
        return -1;
    }
    c->recvd++;
    w->last_progress = now;
    if (w->recording && !(w->phase == P_TIMED && opt.duration > 0 && now > g_tend)) {
        uint64_t start = opt.mode == MODE_CHURN ? c->cstart : c->stamp[seq % opt.depth];
        iocp_histogram_record(&w->hist, (now - start + 500) / 1000);
        if (opt.mode != MODE_CHURN)
            w->done++;
        w->t_last = now;
    }
    return 0;
}

/* The server closed the connection (eof) or it failed (why): counted, and closed here. */
static void conn_lost(worker *w, conn *c, int eof, const char *why, uint64_t now)
{
    if (w->phase == P_HOLD && c->recvd == c->sent && c->rpos == 0) {
        /* A graceful server stop closes every connection it holds. */
        if (eof)
            w->closed_by_server++;
        else
            w->reset_by_server++;
        w->t_last_close = now;
        w->last_progress = now;
    } else if (eof) {
        report("connection %u: closed by the server with %llu message(s) unanswered", c->id,
               (unsigned long long)(c->sent - c->recvd));
        w->unexpected_eof++;
    } else {
        report("%s (connection %u): %s", c->ssl ? "SSL_read" : "recv", c->id, why);
        w->io_errors++;
    }
    conn_close(w, c);
}

/* N received bytes at p: assembled into messages, each compared. Returns the number of
 * messages completed, or -1 when the connection is gone. */
static int conn_consume(worker *w, conn *c, const unsigned char *p, size_t left, uint64_t now)
{
    int completed = 0;
    while (left > 0) {
        if (c->recvd >= c->sent) {
            report("connection %u: %zu byte(s) more than were sent", c->id, left);
            w->extra_bytes++;
            conn_close(w, c);
            return -1;
        }
        if (c->rpos == 0 && left >= opt.size) { /* whole message in place: no copy */
            if (message_done(w, c, p, now) != 0) {
                conn_close(w, c);
                return -1;
            }
            p += opt.size;
            left -= opt.size;
            completed++;
            continue;
        }
        size_t take = opt.size - c->rpos;
        if (take > left)
            take = left;
        memcpy(c->rmsg + c->rpos, p, take);
        c->rpos += take;
        p += take;
        left -= take;
        if (c->rpos == opt.size) {
            c->rpos = 0;
            if (message_done(w, c, c->rmsg, now) != 0) {
                conn_close(w, c);
                return -1;
            }
            completed++;
        }
    }
    return completed;
}

/* --tls: reads until OpenSSL needs the socket again. Unlike a socket, an SSL object can hold
 * decrypted bytes that epoll does not know about, so one SSL_read per event could leave a
 * record behind for good. */
static int conn_read_tls(worker *w, conn *c, uint64_t *now_out)
{
    int completed = 0;
    for (;;) {
        int n = SSL_read(c->ssl, w->scratch, (int)w->scratch_len);
        uint64_t now = now_ns();
        *now_out = now;
        if (n > 0) {
            int k = conn_consume(w, c, w->scratch, (size_t)n, now);
            if (k < 0)
                return -1;
            completed += k;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return completed;
        char why[256];
        int err = errno;
        tls_why(c->ssl, e, why, sizeof why);
        /* close_notify, or a FIN without one: the server closed (as a plain recv of 0). */
        int eof = e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && err == 0);
        conn_lost(w, c, eof, why, now);
        return -1;
    }
}

/* Reads once. Returns the number of messages completed, or -1 when the connection is gone. */
static int conn_read(worker *w, conn *c, uint64_t *now_out)
{
    if (c->ssl)
        return conn_read_tls(w, c, now_out);
    ssize_t n;
    do
        n = recv(c->fd, w->scratch, w->scratch_len, 0);
    while (n < 0 && errno == EINTR);
    uint64_t now = now_ns();
    *now_out = now;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n <= 0) {
        conn_lost(w, c, n == 0, n < 0 ? strerror(errno) : "", now);
        return -1;
    }
    return conn_consume(w, c, w->scratch, (size_t)n, now);
}

/* ---- event handling -------------------------------------------------------------------- */

/* Churn: the next cycle of a slot (connect, [handshake,] one message, close). */
static void churn_next(worker *w, conn *c)
{
    c->sent = c->recvd = c->cycles;
    c->limit = c->cycles + 1;
    conn_start(w, c);
}

/* A connect finished: the first `want` messages go out at once. */
static void conn_started(worker *w, conn *c, unsigned want)
{
    if (conn_connected(w, c) != 0)
        return;
    uint64_t now = now_ns();
    w->last_progress = now;
    if (want > 0)
        conn_queue(c, want, now);
    if (c->soff < c->slen) /* the messages, a PROXY header, or both */
        conn_flush(w, c);
}

static void churn_event(worker *w, conn *c, uint32_t ev)
{
    uint64_t now;
    if (c->state == C_CONNECTING) {
        conn_started(w, c, 1);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        int k = conn_read(w, c, &now);
        if (k < 0)
            return;
        if (k > 0) {
            c->cycles++;
            if (w->recording && !(opt.duration > 0 && now > g_tend))
                w->done++;
            conn_finish(w, c);
            if (w->sending && !(opt.duration <= 0 && w->done >= w->quota))
                churn_next(w, c);
            return;
        }
    }
    if ((ev & EPOLLOUT) && c->state == C_OPEN && c->soff < c->slen)
        conn_flush(w, c);
}

/* Echo and scale: read, then top up to `want` messages in flight. */
static void echo_event(worker *w, conn *c, uint32_t ev, unsigned want)
{
    uint64_t now;
    if (c->state == C_CONNECTING) {
        conn_started(w, c, want);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        int k = conn_read(w, c, &now);
        if (k < 0)
            return;
        if (k > 0 && w->sending) {
            conn_queue(c, want, now);
            if (conn_flush(w, c) != 0)
                return;
        }
    }
    if ((ev & EPOLLOUT) && c->state == C_OPEN && c->soff < c->slen)
        conn_flush(w, c);
}

typedef int (*phase_done_fn)(worker *w, uint64_t now);

static int stalled(worker *w, uint64_t now, const char *what)
{
    if (opt.stall_timeout <= 0 || now - w->last_progress < (uint64_t)(opt.stall_timeout * 1e9))
        return 0;
    unsigned waiting = 0;
    for (unsigned i = 0; i < w->nconns; i++)
        if (w->conns[i].state == C_OPEN || w->conns[i].state == C_CONNECTING)
            waiting++;
    report("no progress for %.0f s during %s (%u connection(s) waiting): giving up",
           opt.stall_timeout, what, waiting);
    w->io_errors++;
    atomic_store(&g_abort, 1);
    return 1;
}

/* The event loop, until done() says so, a signal, an abort or a stall. */
static void run_loop(worker *w, unsigned want, phase_done_fn done, const char *what)
{
    struct epoll_event evs[256];
    w->last_progress = now_ns();
    if (opt.mode != MODE_CHURN)
        start_connects(w);
    for (;;) {
        uint64_t now = now_ns();
        if (atomic_load(&g_abort) || g_signal || done(w, now))
            return;
        /* During the hold silence is the normal state: no stall check there. */
        if (w->phase != P_HOLD && stalled(w, now, what))
            return;
        int n = epoll_wait(w->ep, evs, 256, 20);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            report("epoll_wait: %s", strerror(errno));
            atomic_store(&g_abort, 1);
            return;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->state == C_CLOSED || c->state == C_NEW)
                continue;
            if (opt.mode == MODE_CHURN)
                churn_event(w, c, evs[i].events);
            else
                echo_event(w, c, evs[i].events, want);
        }
        if (opt.mode != MODE_CHURN)
            start_connects(w);
    }
}

/* Every connection started, established (or failed) and with nothing in flight. */
static int all_settled(worker *w, uint64_t now)
{
    (void)now;
    if (w->next_connect < w->nconns || w->connecting > 0)
        return 0;
    for (unsigned i = 0; i < w->nconns; i++) {
        const conn *c = &w->conns[i];
        if (c->state == C_OPEN && (c->recvd < c->sent || c->soff < c->slen))
            return 0;
    }
    return 1;
}

static int all_closed(worker *w, uint64_t now)
{
    (void)now;
    for (unsigned i = 0; i < w->nconns; i++)
        if (w->conns[i].state != C_CLOSED)
            return 0;
    return 1;
}

static int timed_done(worker *w, uint64_t now)
{
    if (opt.duration > 0)
        return now >= g_tend;
    if (opt.mode == MODE_CHURN)
        return w->done >= w->quota || all_closed(w, now);
    /* --messages: every connection stops at its limit (or has failed). */
    for (unsigned i = 0; i < w->nconns; i++) {
        const conn *c = &w->conns[i];
        if (c->state != C_CLOSED && c->recvd < c->limit)
            return 0;
    }
    return 1;
}

static int hold_done(worker *w, uint64_t now)
{
    return now >= g_tend || all_closed(w, now);
}

static void sync_all(void)
{
    pthread_barrier_wait(&g_barrier);
}

/* ---- UDP (--udp) ---------------------------------------------------------------------- */

enum { SLOT_FREE, SLOT_FLIGHT, SLOT_UNSENT };

static int udp_open(worker *w, conn *c)
{
    int fd = socket(server_addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        report("udp socket: %s", strerror(errno));
        w->connect_errors++;
        return -1;
    }
    int rcvbuf = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, (const struct sockaddr *)&server_addr, server_addr_len) != 0) {
        report("udp connect (socket %u): %s", c->id, strerror(errno));
        w->connect_errors++;
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->events = EPOLLIN;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        report("epoll_ctl add: %s", strerror(errno));
        atomic_store(&g_abort, 1);
        return -1;
    }
    c->state = C_OPEN;
    w->established++;
    return 0;
}

/* Sends the datagram of slot k (its seq set). A full socket buffer leaves it SLOT_UNSENT, to
 * be tried again; a refusal (ICMP: nothing listens) is an error. */
static void udp_send_slot(worker *w, conn *c, unsigned k, uint64_t now)
{
    make_message(w->scratch, c->id, c->slot_seq[k]);
    ssize_t n;
    do
        n = send(c->fd, w->scratch, opt.size, 0);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)opt.size) {
        c->slot_st[k] = SLOT_FLIGHT;
        c->stamp[k] = now;
        if (w->recording)
            w->udp_sent++;
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
        c->slot_st[k] = SLOT_UNSENT;
        return;
    }
    report("udp send (socket %u): %s", c->id, n < 0 ? strerror(errno) : "short send");
    w->io_errors++;
    c->slot_st[k] = SLOT_UNSENT;
}

/* Fills free slots with new datagrams while fewer than `want` are out; retries unsent ones. */
static void udp_top_up(worker *w, conn *c, unsigned want, uint64_t now)
{
    unsigned out = 0;
    for (unsigned k = 0; k < opt.depth; k++)
        out += c->slot_st[k] != SLOT_FREE;
    for (unsigned k = 0; k < opt.depth; k++) {
        if (c->slot_st[k] == SLOT_UNSENT) {
            udp_send_slot(w, c, k, now);
        } else if (c->slot_st[k] == SLOT_FREE && out < want) {
            c->slot_seq[k] = c->sent++;
            out++;
            udp_send_slot(w, c, k, now);
        }
    }
}

/* Datagrams in flight longer than the timeout: lost, their slots freed (then refilled). */
static void udp_expire(worker *w, conn *c, uint64_t now)
{
    uint64_t limit = (uint64_t)(opt.udp_timeout * 1e9);
    for (unsigned k = 0; k < opt.depth; k++) {
        if (c->slot_st[k] == SLOT_FLIGHT && now - c->stamp[k] >= limit) {
            c->slot_st[k] = SLOT_FREE;
            if (w->recording)
                w->udp_lost++;
            else
                w->udp_warm_lost++;
        }
    }
}

/* One echoed datagram of n bytes at p: matched to its slot by sequence number, checked whole. */
static void udp_datagram(worker *w, conn *c, const unsigned char *p, size_t n, uint64_t now)
{
    if (n != opt.size) {
        report("MISMATCH socket %u: a datagram of %zu bytes, sent %zu", c->id, n, opt.size);
        w->mismatches++;
        return;
    }
    uint64_t seq = 0;
    uint32_t id = 0;
    for (int b = 0; b < 8; b++)
        seq |= (uint64_t)p[b] << (8 * b);
    for (int b = 0; b < 4; b++)
        id |= (uint32_t)p[8 + b] << (8 * b);
    if (id != c->id || seq >= c->sent) {
        report("MISMATCH socket %u: a datagram with id %u seq %llu (sent %llu so far)", c->id, id,
               (unsigned long long)seq, (unsigned long long)c->sent);
        w->mismatches++;
        return;
    }
    make_message(w->expect, c->id, seq);
    if (memcmp(p, w->expect, opt.size) != 0) {
        size_t at = 0;
        while (p[at] == w->expect[at])
            at++;
        report("MISMATCH socket %u datagram %llu byte %zu: expected 0x%02x, got 0x%02x", c->id,
               (unsigned long long)seq, at, w->expect[at], p[at]);
        w->mismatches++;
        return;
    }
    for (unsigned k = 0; k < opt.depth; k++) {
        if (c->slot_st[k] == SLOT_FLIGHT && c->slot_seq[k] == seq) {
            c->slot_st[k] = SLOT_FREE;
            c->recvd++;
            w->last_progress = now;
            if (w->recording && !(opt.duration > 0 && now > g_tend)) {
                iocp_histogram_record(&w->hist, (now - c->stamp[k] + 500) / 1000);
                w->done++;
                w->t_last = now;
            }
            return;
        }
    }
    if (w->recording) /* after its timeout, or a second copy */
        w->udp_late++;
}

/* Reads what the socket holds (up to 64 datagrams a turn). */
static void udp_read(worker *w, conn *c)
{
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(c->fd, w->scratch, w->scratch_len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            report("udp recv (socket %u): %s", c->id, strerror(errno));
            w->io_errors++;
            return;
        }
        udp_datagram(w, c, w->scratch, (size_t)n, now_ns());
    }
}

/* The UDP loop, until done() says so: read, expire, top up to `want` in flight. */
static void udp_loop(worker *w, unsigned want, phase_done_fn done, const char *what)
{
    struct epoll_event evs[256];
    uint64_t next_scan = 0;
    w->last_progress = now_ns();
    for (;;) {
        uint64_t now = now_ns();
        if (atomic_load(&g_abort) || g_signal || done(w, now))
            return;
        if (stalled(w, now, what))
            return;
        if (now >= next_scan) {
            next_scan = now + 2 * 1000 * 1000; /* every 2 ms */
            for (unsigned i = 0; i < w->nconns; i++) {
                conn *c = &w->conns[i];
                if (c->state != C_OPEN)
                    continue;
                udp_expire(w, c, now);
                udp_top_up(w, c, want, now);
            }
        }
        int n = epoll_wait(w->ep, evs, 256, 2);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            report("epoll_wait: %s", strerror(errno));
            atomic_store(&g_abort, 1);
            return;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            udp_read(w, c);
            if (w->sending || want == 1)
                udp_top_up(w, c, want, now_ns());
        }
    }
}

/* Warm-up: every socket has had one echo. */
static int udp_warm(worker *w, uint64_t now)
{
    (void)now;
    for (unsigned i = 0; i < w->nconns; i++)
        if (w->conns[i].state == C_OPEN && w->conns[i].recvd == 0)
            return 0;
    return 1;
}

/* --messages: this thread's share of the datagrams has been echoed. */
static int udp_quota_done(worker *w, uint64_t now)
{
    (void)now;
    return w->done >= w->quota;
}

static void *udp_worker_main(worker *w)
{
    w->phase = P_WARMUP;
    for (unsigned i = 0; i < w->nconns && !atomic_load(&g_abort); i++)
        if (udp_open(w, &w->conns[i]) != 0)
            atomic_store(&g_abort, 1);
    udp_loop(w, 1, udp_warm, "the warm-up");
    sync_all(); /* the main thread stamps t0 */
    sync_all();
    w->phase = P_TIMED;
    w->recording = 1;
    w->sending = 1;
    uint64_t now = now_ns();
    for (unsigned i = 0; i < w->nconns; i++) {
        conn *c = &w->conns[i];
        /* A warm-up datagram still out stays in its slot, timed from its send (as the TCP
         * path times a message sent before t0). */
        if (c->state == C_OPEN)
            udp_top_up(w, c, opt.depth, now);
    }
    udp_loop(w, opt.depth, opt.duration > 0 ? timed_done : udp_quota_done, "the timed run");
    w->recording = 0;
    w->sending = 0;
    return NULL;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    if (opt.mode == MODE_UDP)
        return udp_worker_main(w);
    w->phase = P_WARMUP;

    if (opt.mode == MODE_IDLE) {
        /* A: connect all. B: all echo one message at once. C: hold. */
        run_loop(w, 0, all_settled, "connect");
        sync_all(); /* the main thread stamps the end of A */
        sync_all();
        w->recording = 1;
        uint64_t now = now_ns();
        for (unsigned i = 0; i < w->nconns; i++) {
            conn *c = &w->conns[i];
            if (c->state != C_OPEN)
                continue;
            c->limit = 1;
            conn_queue(c, 1, now);
            conn_flush(w, c);
        }
        run_loop(w, 1, all_settled, "the echo");
        w->recording = 0;
        sync_all(); /* the main thread stamps the end of B, says "ready" */
        sync_all();
        w->phase = P_HOLD;
        if (opt.hold > 0)
            run_loop(w, 0, hold_done, "the hold");
        return NULL;
    }

    if (opt.mode == MODE_CHURN) {
        /* Warm-up: every slot completes one cycle (connect, echo, close). */
        for (unsigned i = 0; i < w->nconns; i++)
            churn_next(w, &w->conns[i]);
        run_loop(w, 1, all_closed, "the warm-up");
    } else {
        run_loop(w, opt.warmup ? 1 : 0, all_settled, "connect and warm-up");
    }
    sync_all(); /* the main thread stamps t0 */
    sync_all();
    w->phase = P_TIMED;
    w->recording = 1;
    w->sending = 1;
    w->last_progress = now_ns();
    uint64_t now = now_ns();
    for (unsigned i = 0; i < w->nconns; i++) {
        conn *c = &w->conns[i];
        if (opt.mode == MODE_CHURN) {
            if (c->cycles > 0 && !atomic_load(&g_abort))
                churn_next(w, c);
            continue;
        }
        if (c->state != C_OPEN)
            continue;
        c->limit = opt.duration > 0 ? UINT64_MAX : c->sent + c->limit;
        conn_queue(c, opt.depth, now);
        conn_flush(w, c);
    }
    run_loop(w, opt.depth, timed_done, "the timed run");
    w->recording = 0;
    w->sending = 0;
    return NULL;
}

/* ---- main ------------------------------------------------------------------------------ */

static double parse_double(const char *name, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi)) {
        char why[160];
        snprintf(why, sizeof why, "bad value for %s: %s", name, s);
        usage(why);
    }
    return v;
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-' || v < lo || v > hi) {
        char why[160];
        snprintf(why, sizeof why, "bad value for %s: %s", name, s);
        usage(why);
    }
    return v;
}

static void parse_args(int argc, char **argv)
{
    int have_duration = 0, have_messages = 0, have_idle = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define VALUE() (i + 1 < argc ? argv[++i] : (usage("missing value"), ""))
        if (!strcmp(a, "--host"))
            opt.host = VALUE();
        else if (!strcmp(a, "--port"))
            opt.port = (int)parse_u64(a, VALUE(), 1, 65535);
        else if (!strcmp(a, "--connections"))
            opt.connections = (unsigned)parse_u64(a, VALUE(), 1, 1000000);
        else if (!strcmp(a, "--depth"))
            opt.depth = (unsigned)parse_u64(a, VALUE(), 1, 65536);
        else if (!strcmp(a, "--size"))
            opt.size = (size_t)parse_u64(a, VALUE(), 1, 64u << 20);
        else if (!strcmp(a, "--duration")) {
            opt.duration = parse_double(a, VALUE(), 0.001, 86400);
            have_duration = 1;
        } else if (!strcmp(a, "--messages")) {
            opt.messages = parse_u64(a, VALUE(), 1, UINT64_MAX / 2);
            have_messages = 1;
        } else if (!strcmp(a, "--churn"))
            opt.mode = MODE_CHURN;
        else if (!strcmp(a, "--json"))
            opt.json = 1;
        else if (!strcmp(a, "--warmup-echo"))
            opt.warmup = 1;
        else if (!strcmp(a, "--no-warmup-echo"))
            opt.warmup = 0;
        else if (!strcmp(a, "--threads"))
            opt.threads = (unsigned)parse_u64(a, VALUE(), 1, 256);
        else if (!strcmp(a, "--idle-connections")) {
            opt.connections = (unsigned)parse_u64(a, VALUE(), 1, 1000000);
            have_idle = 1;
        } else if (!strcmp(a, "--hold"))
            opt.hold = parse_double(a, VALUE(), 0, 86400);
        else if (!strcmp(a, "--idle-first"))
            opt.idle_first = parse_double(a, VALUE(), 0, 86400);
        else if (!strcmp(a, "--stall-timeout"))
            opt.stall_timeout = parse_double(a, VALUE(), 0, 86400);
        else if (!strcmp(a, "--connect-window"))
            opt.connect_window = (unsigned)parse_u64(a, VALUE(), 1, 1000000);
        else if (!strcmp(a, "--tls"))
            opt.tls = 1;
        else if (!strcmp(a, "--udp"))
            opt.mode = MODE_UDP;
        else if (!strcmp(a, "--udp-timeout"))
            opt.udp_timeout = parse_double(a, VALUE(), 0.001, 3600);
        else if (!strcmp(a, "--tls-ca"))
            opt.tls_ca = VALUE();
        else if (!strcmp(a, "--tls-server-name"))
            opt.tls_server_name = VALUE();
        else if (!strcmp(a, "--proxy")) {
            const char *v = VALUE();
            opt.proxy = !strcmp(v, "v1") ? 1 : !strcmp(v, "v2") ? 2 : 0;
            if (!opt.proxy) {
                char why[200];
                snprintf(why, sizeof why,
                         "bad value for --proxy: %.40s (v1: the text line of HAProxy's "
                         "send-proxy, v2: the binary header of send-proxy-v2)",
                         v);
                usage(why);
            }
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            usage("help");
        else {
            char why[160];
            snprintf(why, sizeof why, "unknown option %s", a);
            usage(why);
        }
#undef VALUE
    }
    if (opt.port == 0)
        usage("--port is required");
    if (opt.mode == MODE_UDP) {
        if (have_idle || opt.tls || opt.proxy)
            usage("--udp goes with no --idle-connections, --tls or --proxy");
        if (opt.size < 12 || opt.size > 65507)
            usage("--udp: --size is 12 (the header) to 65,507 bytes");
    }
    if (have_idle) {
        if (opt.mode == MODE_CHURN || opt.mode == MODE_UDP || have_duration || have_messages)
            usage("--idle-connections goes with no --churn, --duration or --messages");
        opt.mode = MODE_IDLE;
        opt.depth = 1;
    } else if (have_duration == have_messages) {
        usage("give exactly one of --duration and --messages");
    }
    if (opt.mode == MODE_CHURN)
        opt.depth = 1;
    if (opt.threads > opt.connections)
        opt.threads = opt.connections;
    if ((opt.tls_ca || strcmp(opt.tls_server_name, "localhost")) && !opt.tls)
        usage("--tls-ca and --tls-server-name go with --tls");
}

static void resolve(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = opt.mode == MODE_UDP ? SOCK_DGRAM : SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    char port[16];
    snprintf(port, sizeof port, "%d", opt.port);
    int r = getaddrinfo(opt.host, port, &hints, &res);
    if (r != 0) {
        fprintf(stderr, "loadgen: %s: %s\n", opt.host, gai_strerror(r));
        exit(1);
    }
    memcpy(&server_addr, res->ai_addr, res->ai_addrlen);
    server_addr_len = res->ai_addrlen;
    freeaddrinfo(res);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }
    return p;
}

static const char *mode_name(void)
{
    return opt.mode == MODE_CHURN  ? "churn"
           : opt.mode == MODE_IDLE ? "scale"
           : opt.mode == MODE_UDP  ? "udp"
                                   : "echo";
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    resolve();
    if (opt.tls)
        tls_init();

    /* Enough descriptors for every connection (the hard limit allowing). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.connections + 64) {
        fprintf(stderr, "loadgen: %u connections need more descriptors than the limit %llu\n",
                opt.connections, (unsigned long long)rl.rlim_cur);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    g_pattern = xcalloc(opt.size + PATTERN_SLACK, 1);
    uint64_t x = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < opt.size + PATTERN_SLACK; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        g_pattern[i] = (unsigned char)(x >> 24);
    }

    /* Connections round-robin over the threads; in --messages mode each owes its share. */
    worker *workers = xcalloc(opt.threads, sizeof *workers);
    conn *conns = xcalloc(opt.connections, sizeof *conns);
    unsigned per = opt.connections / opt.threads, extra = opt.connections % opt.threads;
    unsigned next = 0;
    for (unsigned t = 0; t < opt.threads; t++) {
        worker *w = &workers[t];
        w->nconns = per + (t < extra);
        w->conns = conns + next;
        next += w->nconns;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0) {
            perror("loadgen: epoll_create1");
            return 1;
        }
        w->scratch_len = 256 * 1024;
        w->scratch = xcalloc(w->scratch_len, 1);
        w->expect = xcalloc(opt.size, 1);
        iocp_histogram_init(&w->hist);
        iocp_histogram_init(&w->hs_hist);
    }
    for (unsigned i = 0; i < opt.connections; i++) {
        conn *c = &conns[i];
        c->fd = -1;
        c->id = i;
        c->state = C_NEW;
        c->limit = 1;
        /* --messages: an even share of the total per connection (the first ones get the
         * remainder), stored in limit until the timed phase turns it into a seq limit. */
        if (opt.mode == MODE_ECHO && opt.duration <= 0)
            c->limit = opt.messages / opt.connections + (i < opt.messages % opt.connections);
        c->rmsg = xcalloc(opt.size, 1);
        c->sbuf = xcalloc((size_t)opt.depth * opt.size + PROXY_HEADER_MAX, 1);
        c->stamp = xcalloc(opt.depth, sizeof *c->stamp);
        if (opt.mode == MODE_UDP) {
            c->slot_seq = xcalloc(opt.depth, sizeof *c->slot_seq);
            c->slot_st = xcalloc(opt.depth, 1);
        }
    }
    for (unsigned t = 0; t < opt.threads; t++)
        workers[t].quota = opt.messages / opt.threads + (t < opt.messages % opt.threads);

    pthread_barrier_init(&g_barrier, NULL, opt.threads + 1);
    uint64_t t_start = now_ns();
    for (unsigned t = 0; t < opt.threads; t++) {
        if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0) {
            perror("loadgen: pthread_create");
            return 1;
        }
    }

    double connect_ms = 0, echo_ms = 0, warm_ms = 0, elapsed = 0, held_s = 0;
    uint64_t t_hold = 0;
    if (opt.mode == MODE_IDLE) {
        sync_all();
        uint64_t t_a = now_ns();
        connect_ms = (double)(t_a - t_start) / 1e6;
        if (opt.idle_first > 0 && !atomic_load(&g_abort) && !g_signal) {
            /* The connections stay silent (the workers wait at the barrier) before the echo. */
            pthread_mutex_lock(&g_print_lock);
            fprintf(stderr,
                    "loadgen: idle: connections established in %.1f ms; silent for %.0f s\n",
                    connect_ms, opt.idle_first);
            fflush(stderr);
            pthread_mutex_unlock(&g_print_lock);
            uint64_t until = now_ns() + (uint64_t)(opt.idle_first * 1e9);
            while (now_ns() < until && !g_signal) {
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
            t_a = now_ns(); /* the echo is timed from here */
        }
        sync_all();
        sync_all();
        uint64_t t_b = now_ns();
        echo_ms = (double)(t_b - t_a) / 1e6;
        uint64_t est = 0;
        for (unsigned t = 0; t < opt.threads; t++)
            est += workers[t].established;
        t_hold = now_ns();
        g_tend = t_hold + (uint64_t)(opt.hold * 1e9);
        if (opt.hold > 0 && !atomic_load(&g_abort) && !g_signal) {
            pthread_mutex_lock(&g_print_lock);
            fprintf(stderr,
                    "loadgen: ready: %llu of %u connections established in %.1f ms, all "
                    "echoed once in %.1f ms; holding them for up to %.0f s\n",
                    (unsigned long long)est, opt.connections, connect_ms, echo_ms, opt.hold);
            fflush(stderr);
            pthread_mutex_unlock(&g_print_lock);
        }
        sync_all();
    } else {
        sync_all();
        g_t0 = now_ns();
        warm_ms = (double)(g_t0 - t_start) / 1e6;
        g_tend = g_t0 + (uint64_t)(opt.duration * 1e9);
        sync_all();
    }
    for (unsigned t = 0; t < opt.threads; t++)
        pthread_join(workers[t].thread, NULL);
    uint64_t t_end = now_ns();
    if (opt.mode == MODE_IDLE)
        held_s = (double)(t_end - t_hold) / 1e9;

    /* Totals. */
    iocp_histogram hist, hs_hist;
    iocp_histogram_init(&hist);
    iocp_histogram_init(&hs_hist);
    uint64_t done = 0, errors = 0, mismatches = 0, connect_errors = 0, io_errors = 0,
             early_close = 0, extra_bytes = 0, closed_by_server = 0, reset_by_server = 0,
             established = 0, t_last = 0, t_last_close = 0, tls_errors = 0, handshakes = 0,
             udp_sent = 0, udp_lost = 0, udp_late = 0, udp_warm_lost = 0;
    for (unsigned t = 0; t < opt.threads; t++) {
        worker *w = &workers[t];
        iocp_histogram_merge(&hist, &w->hist);
        iocp_histogram_merge(&hs_hist, &w->hs_hist);
        tls_errors += w->tls_errors;
        handshakes += w->handshakes;
        udp_sent += w->udp_sent;
        udp_lost += w->udp_lost;
        udp_late += w->udp_late;
        udp_warm_lost += w->udp_warm_lost;
        done += w->done;
        errors += worker_errors(w);
        mismatches += w->mismatches;
        connect_errors += w->connect_errors;
        io_errors += w->io_errors;
        early_close += w->unexpected_eof;
        extra_bytes += w->extra_bytes;
        closed_by_server += w->closed_by_server;
        reset_by_server += w->reset_by_server;
        established += w->established;
        if (w->t_last > t_last)
            t_last = w->t_last;
        if (w->t_last_close > t_last_close)
            t_last_close = w->t_last_close;
        for (unsigned i = 0; i < w->nconns; i++)
            if (w->conns[i].fd >= 0)
                close(w->conns[i].fd);
    }
    int interrupted = g_signal != 0 && opt.mode != MODE_IDLE;
    if (interrupted)
        errors++;
    if (opt.mode != MODE_IDLE) {
        if (opt.duration > 0 && !interrupted && !atomic_load(&g_abort))
            elapsed = opt.duration;
        else
            elapsed = (double)((t_last > g_t0 ? t_last : t_end) - g_t0) / 1e9;
    }
    if (opt.mode == MODE_IDLE) {
        done = hist.total;
        /* Every connection must have been established and have echoed. */
        if (hist.total < opt.connections && !errors)
            errors++;
    }
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double mbps = elapsed > 0 ? (double)done * (double)opt.size / elapsed / 1e6 : 0;
    unsigned long long p50 = iocp_histogram_percentile(&hist, 50),
                       p90 = iocp_histogram_percentile(&hist, 90),
                       p99 = iocp_histogram_percentile(&hist, 99),
                       p999 = iocp_histogram_percentile(&hist, 99.9),
                       pmax = hist.total ? hist.max : 0;
    double mean = iocp_histogram_mean(&hist);

    FILE *out = opt.json ? stderr : stdout;
    if (opt.mode == MODE_IDLE) {
        fprintf(out,
                "loadgen: scale %s:%d  %u connections: %llu established in %.1f ms, %llu "
                "echoed once in %.1f ms\n",
                opt.host, opt.port, opt.connections, (unsigned long long)established, connect_ms,
                (unsigned long long)hist.total, echo_ms);
        if (opt.hold > 0)
            fprintf(out,
                    "  held %.2f s; closed by the server: %llu (FIN) + %llu (reset), last %.1f "
                    "ms into the hold\n",
                    held_s, (unsigned long long)closed_by_server,
                    (unsigned long long)reset_by_server,
                    t_last_close ? (double)(t_last_close - t_hold) / 1e6 : 0.0);
    } else {
        fprintf(out, "loadgen: %s %s:%d  connections %u  depth %u  size %zu  threads %u%s\n",
                mode_name(), opt.host, opt.port, opt.connections, opt.depth, opt.size, opt.threads,
                opt.proxy == 1   ? "  PROXY v1"
                : opt.proxy == 2 ? "  PROXY v2"
                                 : "");
        if (opt.mode == MODE_CHURN)
            fprintf(out, "  %llu connections (connect, echo, close) in %.2f s: %.1f conn/s\n",
                    (unsigned long long)done, elapsed, rate);
        else if (opt.mode == MODE_UDP)
            fprintf(out,
                    "  %llu datagrams echoed and verified in %.2f s: %.1f datagrams/s, %.2f MB/s; "
                    "sent %llu, lost %llu (%.4f%%, timeout %.3f s), late %llu; warm-up lost "
                    "%llu\n",
                    (unsigned long long)done, elapsed, rate, mbps, (unsigned long long)udp_sent,
                    (unsigned long long)udp_lost,
                    udp_sent ? 100.0 * (double)udp_lost / (double)udp_sent : 0.0, opt.udp_timeout,
                    (unsigned long long)udp_late, (unsigned long long)udp_warm_lost);
        else
            fprintf(out, "  %llu messages, %llu bytes in %.2f s: %.1f msg/s, %.2f MB/s\n",
                    (unsigned long long)done, (unsigned long long)(done * opt.size), elapsed, rate,
                    mbps);
        fprintf(out, "  warm-up (all connected, each echoed once): %.1f ms\n", warm_ms);
    }
    fprintf(out, "  latency us: p50 %llu  p90 %llu  p99 %llu  p99.9 %llu  max %llu  mean %.1f\n",
            p50, p90, p99, p999, pmax, mean);
    fprintf(out,
            "  errors %llu (mismatches %llu, connect %llu, io %llu, early close %llu, extra "
            "bytes %llu%s)\n",
            (unsigned long long)errors, (unsigned long long)mismatches,
            (unsigned long long)connect_errors, (unsigned long long)io_errors,
            (unsigned long long)early_close, (unsigned long long)extra_bytes,
            interrupted ? ", interrupted" : "");
    if (opt.tls)
        fprintf(out,
                "  TLS %s %s, %llu handshake(s), %llu failed; handshake us%s: p50 %llu  p99 "
                "%llu  max %llu\n",
                g_tls_protocol[0] ? g_tls_protocol : "-", g_tls_cipher[0] ? g_tls_cipher : "-",
                (unsigned long long)handshakes, (unsigned long long)tls_errors,
                opt.mode == MODE_CHURN ? " (timed phase)" : "",
                (unsigned long long)iocp_histogram_percentile(&hs_hist, 50),
                (unsigned long long)iocp_histogram_percentile(&hs_hist, 99),
                (unsigned long long)(hs_hist.total ? hs_hist.max : 0));
    fflush(out);

    if (opt.json) {
        printf("{\"mode\":\"%s\",\"host\":\"%s\",\"port\":%d,\"connections\":%u,\"depth\":%u,"
               "\"size\":%zu,\"threads\":%u,\"seconds\":%.6f,\"count\":%llu,\"bytes\":%llu,"
               "\"rate\":%.3f,\"mb_per_s\":%.3f,\"warmup_ms\":%.3f,"
               "\"lat_us\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu,"
               "\"mean\":%.3f},\"errors\":%llu,\"mismatches\":%llu,\"connect_errors\":%llu,"
               "\"io_errors\":%llu,\"early_close\":%llu,\"extra_bytes\":%llu,"
               "\"interrupted\":%s",
               mode_name(), opt.host, opt.port, opt.connections, opt.depth, opt.size, opt.threads,
               elapsed, (unsigned long long)done, (unsigned long long)(done * opt.size), rate, mbps,
               warm_ms, p50, p90, p99, p999, pmax, mean, (unsigned long long)errors,
               (unsigned long long)mismatches, (unsigned long long)connect_errors,
               (unsigned long long)io_errors, (unsigned long long)early_close,
               (unsigned long long)extra_bytes, interrupted ? "true" : "false");
        if (opt.proxy)
            printf(",\"proxy\":\"v%d\"", opt.proxy);
        if (opt.mode == MODE_IDLE)
            printf(",\"established\":%llu,\"connect_ms\":%.3f,\"echo_ms\":%.3f,\"hold_s\":%.3f,"
                   "\"closed_by_server\":%llu,\"reset_by_server\":%llu,\"last_close_ms\":%.3f",
                   (unsigned long long)established, connect_ms, echo_ms, held_s,
                   (unsigned long long)closed_by_server, (unsigned long long)reset_by_server,
                   t_last_close ? (double)(t_last_close - t_hold) / 1e6 : -1.0);
        if (opt.mode == MODE_UDP)
            printf(",\"udp\":{\"sent\":%llu,\"lost\":%llu,\"late\":%llu,\"warmup_lost\":%llu,"
                   "\"loss_ratio\":%.6f,\"timeout_s\":%.3f}",
                   (unsigned long long)udp_sent, (unsigned long long)udp_lost,
                   (unsigned long long)udp_late, (unsigned long long)udp_warm_lost,
                   udp_sent ? (double)udp_lost / (double)udp_sent : 0.0, opt.udp_timeout);
        if (opt.tls)
            printf(",\"tls\":{\"protocol\":\"%s\",\"cipher\":\"%s\",\"verified\":%s,"
                   "\"handshakes\":%llu,\"handshake_errors\":%llu,\"handshake_us\":{\"p50\":%llu,"
                   "\"p90\":%llu,\"p99\":%llu,\"max\":%llu,\"mean\":%.3f}}",
                   g_tls_protocol, g_tls_cipher, opt.tls_ca ? "true" : "false",
                   (unsigned long long)handshakes, (unsigned long long)tls_errors,
                   (unsigned long long)iocp_histogram_percentile(&hs_hist, 50),
                   (unsigned long long)iocp_histogram_percentile(&hs_hist, 90),
                   (unsigned long long)iocp_histogram_percentile(&hs_hist, 99),
                   (unsigned long long)(hs_hist.total ? hs_hist.max : 0),
                   iocp_histogram_mean(&hs_hist));
        printf("}\n");
        fflush(stdout);
    }
    return mismatches ? 2 : errors ? 1 : 0;
}
