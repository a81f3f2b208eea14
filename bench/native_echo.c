/*
 * native_echo.c: a small native Linux echo server (epoll, one event loop per thread) for the
 * benchmark's calibration row: loadgen against the fastest peer this machine has, to show
 * that the load generator is not what limits the Wine numbers.
 *
 *   native_echo [--port P] [--threads N] [--buffer-size BYTES] [--tls-cert PEM --tls-key PEM]
 *   native_echo --udp [--port P] [--threads N]
 *
 * Prints "native-echo: listening on 127.0.0.1:PORT" once ready; SIGINT/SIGTERM stop it.
 * Each thread waits on the shared listener (EPOLLEXCLUSIVE), accepts, and serves its own
 * connections: read what is there, write it back; a short write keeps the rest and stops
 * reading that connection until it drains (one buffer of at most BYTES per connection).
 *
 * With --tls-cert/--tls-key every connection is TLS (OpenSSL, non-blocking SSL_accept,
 * SSL_read, SSL_write on the same loop), limited to TLS 1.2, the version Wine's Schannel
 * negotiates, so that the calibration row costs the load generator the same work as the
 * servers under test. No session resumption. The bench's, not the product's.
 *
 * With --udp it is a UDP echo server instead (the udp workload's calibration row): one socket
 * on 127.0.0.1:PORT, N threads each waiting for it in poll() and then echoing in batches with
 * recvmmsg/sendmmsg (up to 64 datagrams a call), every datagram back whole to its sender.
 * Prints "native-echo: listening on 127.0.0.1:PORT (udp ...)".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

typedef struct conn {
    int fd;
    SSL *ssl;        /* --tls-cert: the connection's TLS, else NULL */
    int handshaken;  /* SSL_accept has finished */
    uint32_t events; /* registered epoll mask (TLS connections) */
    size_t off, len; /* unsent echo bytes: buf[off, len) */
    unsigned char buf[];
} conn;

static int g_listener;
static size_t g_bufsize = 16384;
static volatile sig_atomic_t g_stop;
static SSL_CTX *g_tls;
static int g_udp; /* --udp: g_listener is the UDP socket */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void conn_free(int ep, conn *c)
{
    if (c->ssl) {
        if (c->handshaken && SSL_shutdown(c->ssl) < 0)
            ERR_clear_error();
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Writes the pending bytes; 1 = all written, 0 = would block, -1 = gone. */
static int conn_drain(conn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n > 0)
            c->off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    c->off = c->len = 0;
    return 1;
}

static void conn_wait(int ep, conn *c, uint32_t ev)
{
    if (c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

/* The TLS connection's next step: the handshake, then write what is pending, read, and so
 * on until OpenSSL needs the socket (an SSL object can hold decrypted bytes that epoll does
 * not see, so reading stops only at WANT_READ). */
static void tls_step(int ep, conn *c)
{
    int r, e;
    if (!c->handshaken) {
        r = SSL_accept(c->ssl);
        if (r != 1)
            goto wait;
        c->handshaken = 1;
    }
    for (;;) {
        while (c->off < c->len) {
            r = SSL_write(c->ssl, c->buf + c->off, (int)(c->len - c->off));
            if (r <= 0)
                goto wait;
            c->off += (size_t)r;
        }
        c->off = c->len = 0;
        r = SSL_read(c->ssl, c->buf, (int)g_bufsize);
        if (r <= 0)
            goto wait;
        c->len = (size_t)r;
    }
wait:
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        conn_wait(ep, c, EPOLLIN);
    else if (e == SSL_ERROR_WANT_WRITE)
        conn_wait(ep, c, EPOLLOUT);
    else /* close_notify, a close, or an error */
        conn_free(ep, c);
}

static void *loop(void *arg)
{
    (void)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("native-echo: epoll_create1");
        exit(1);
    }
    struct epoll_event le = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, g_listener, &le) != 0) {
        perror("native-echo: epoll_ctl listener");
        exit(1);
    }
    struct epoll_event evs[128];
    while (!g_stop) {
        int n = epoll_wait(ep, evs, 128, 100);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                for (int k = 0; k < 64; k++) {
                    int fd = accept4(g_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *nc = malloc(sizeof *nc + g_bufsize);
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->off = nc->len = 0;
                    nc->handshaken = 0;
                    nc->events = EPOLLIN;
                    nc->ssl = NULL;
                    if (g_tls && (!(nc->ssl = SSL_new(g_tls)) || !SSL_set_fd(nc->ssl, fd))) {
                        SSL_free(nc->ssl);
                        ERR_clear_error();
                        close(fd);
                        free(nc);
                        continue;
                    }
                    if (nc->ssl)
                        SSL_set_accept_state(nc->ssl);
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
                        SSL_free(nc->ssl);
                        close(fd);
                        free(nc);
                    }
                }
                continue;
            }
            if (c->ssl) {
                tls_step(ep, c);
                continue;
            }
            if (c->len > 0) { /* waiting to drain */
                int r = conn_drain(c);
                if (r < 0) {
                    conn_free(ep, c);
                } else if (r > 0) {
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                }
                continue;
            }
            ssize_t got = recv(c->fd, c->buf, g_bufsize, 0);
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (got <= 0) {
                conn_free(ep, c);
                continue;
            }
            c->off = 0;
            c->len = (size_t)got;
            int r = conn_drain(c);
            if (r < 0) {
                conn_free(ep, c);
            } else if (r == 0) {
                struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
            }
        }
    }
    close(ep); /* connections are closed by the process exit */
    return NULL;
}

/* --udp: one thread of the UDP echo. Every thread waits on the same socket; whoever wakes
 * takes up to 64 datagrams and sends each back to its sender. */
#define UDP_BATCH 64
static void *udp_loop(void *arg)
{
    (void)arg;
    unsigned char(*bufs)[65536] = malloc(UDP_BATCH * sizeof *bufs);
    if (!bufs) {
        perror("native-echo: malloc");
        exit(1);
    }
    struct mmsghdr msgs[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    struct sockaddr_storage from[UDP_BATCH];
    while (!g_stop) {
        struct pollfd p = {.fd = g_listener, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        for (int i = 0; i < UDP_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int n = recvmmsg(g_listener, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            continue; /* another thread took them, or an ICMP error: nothing to echo */
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len;
        int sent = 0;
        while (sent < n) {
            int k = sendmmsg(g_listener, msgs + sent, (unsigned)(n - sent), 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                sent++; /* this one is refused (its sender has gone): skip it */
            else
                sent += k;
        }
    }
    free(bufs);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--port"))
            port = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads"))
            threads = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--buffer-size"))
            g_bufsize = (size_t)atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--tls-cert"))
            cert = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--tls-key"))
            key = argv[++i];
        else if (!strcmp(argv[i], "--udp"))
            g_udp = 1;
        else {
            fprintf(stderr, "usage: native_echo [--port P] [--threads N] [--buffer-size B] "
                            "[--tls-cert PEM --tls-key PEM] [--udp]\n");
            return 2;
        }
    }
    if (g_udp && cert) {
        fprintf(stderr, "native-echo: --udp has no TLS\n");
        return 2;
    }
    if (!cert != !key) {
        fprintf(stderr, "native-echo: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (cert) {
        g_tls = SSL_CTX_new(TLS_server_method());
        if (!g_tls || SSL_CTX_use_certificate_chain_file(g_tls, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(g_tls, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(g_tls) != 1) {
            fprintf(stderr, "native-echo: cannot load %s / %s:\n", cert, key);
            ERR_print_errors_fp(stderr);
            return 1;
        }
        SSL_CTX_set_min_proto_version(g_tls, TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(g_tls, TLS1_2_VERSION);
        SSL_CTX_set_session_cache_mode(g_tls, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(g_tls, SSL_OP_NO_TICKET);
        SSL_CTX_set_mode(g_tls,
                         SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    if (threads < 1)
        threads = 1;
    if (g_bufsize < 1)
        g_bufsize = 16384;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (g_udp) {
        g_listener = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (g_listener < 0 || bind(g_listener, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(g_listener, (struct sockaddr *)&a, &alen)) {
            perror("native-echo: udp bind");
            return 1;
        }
        int rcvbuf = 4 << 20;
        setsockopt(g_listener, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        printf("native-echo: listening on 127.0.0.1:%u (udp, threads %ld, recvmmsg batches of "
               "%d)\n",
               ntohs(a.sin_port), threads, UDP_BATCH);
        fflush(stdout);
        pthread_t *ut = calloc((size_t)threads, sizeof *ut);
        for (long i = 0; i < threads; i++)
            pthread_create(&ut[i], NULL, udp_loop, NULL);
        for (long i = 0; i < threads; i++)
            pthread_join(ut[i], NULL);
        printf("native-echo: stopped\n");
        return 0;
    }
    g_listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (g_listener < 0 || bind(g_listener, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(g_listener, 4096) != 0 || getsockname(g_listener, (struct sockaddr *)&a, &alen)) {
        perror("native-echo: listen");
        return 1;
    }
    printf("native-echo: listening on 127.0.0.1:%u (threads %ld, buffer %zu%s)\n",
           ntohs(a.sin_port), threads, g_bufsize, g_tls ? ", TLS 1.2" : "");
    fflush(stdout);

    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, loop, NULL);
    for (long i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("native-echo: stopped\n");
    return 0;
}
