/*
 * iocp.h: the public API of the completion-port TCP engine.
 *
 * An engine owns one I/O completion port, its worker threads, a pool of preallocated
 * connection contexts and one buffer slab. It can listen (a server), dial (a client), or both;
 * every connection, accepted or dialled, runs through the same receive / send / framing code.
 *
 * Threading: callbacks run on the engine's worker threads. Callbacks for one connection never
 * run concurrently with each other. Inside a callback the iocp_conn pointer is valid; outside,
 * refer to a connection by its iocp_conn_id, which carries a generation: a stale id gives
 * IOCP_E_NOT_CONNECTED, never another connection's data.
 *
 * This header needs no <windows.h>.
 */
#ifndef IOCP_IOCP_H
#define IOCP_IOCP_H

#include <stddef.h>
#include <stdint.h>

#include "iocp/export.h"
#include "iocp/framing.h"
#include "iocp/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ---------------------------------------------------------------------------- */

typedef enum iocp_err {
    IOCP_OK = 0,
    IOCP_E_INVALID_ARG,   /* a parameter or configuration value is out of range */
    IOCP_E_NO_MEMORY,     /* an allocation failed */
    IOCP_E_RESOLVE,       /* the host name could not be resolved */
    IOCP_E_ADDR_IN_USE,   /* the address/port is already in use */
    IOCP_E_REFUSED,       /* the peer refused the connection */
    IOCP_E_TIMEOUT,       /* an operation did not finish in time */
    IOCP_E_RESET,         /* the connection was reset or lost */
    IOCP_E_NOT_CONNECTED, /* no such connection: closed, closing, or a stale id */
    IOCP_E_QUEUE_FULL,    /* the send would pass the connection's send-queue cap */
    IOCP_E_PROTOCOL,      /* the peer broke the framing protocol */
    IOCP_E_STOPPED,       /* the engine is stopping or stopped */
    IOCP_E_STATE,         /* call not allowed in the engine's current state */
    IOCP_E_NO_RESOURCES,  /* out of sockets, contexts or another system resource */
    IOCP_E_ACCESS,        /* access denied by the system */
    IOCP_E_SYSTEM,        /* any other Win32/WSA failure; the raw code says which */
    IOCP_E_TLS,           /* TLS: credentials, the start-up self-check, or a handshake */
    IOCP_E_ADDR_NOT_HERE, /* the address to bind is not one of this machine's (WSA 10049) */
    IOCP_E_COUNT_
} iocp_err;

/* Short English text for an error code ("connection refused"). Never NULL. */
IOCP_API const char *iocp_strerror(iocp_err err);

/* Maps a raw Win32 or WSA error code to the public enum (unknown codes map to IOCP_E_SYSTEM). */
IOCP_API iocp_err iocp_err_from_sys(unsigned long sys_code);

/* Writes "TEXT (WSA 10061)" or "TEXT (Win32 5)" or just "TEXT" when sys_code is 0.
 * Returns buf. The raw code is never lost in a log line. */
IOCP_API char *iocp_format_error(iocp_err err, unsigned long sys_code, char *buf, size_t size);

/* Filled by calls that can fail for several reasons: what failed, why, and the raw code. */
typedef struct iocp_error_info {
    iocp_err code;
    unsigned long sys_code; /* GetLastError()/WSAGetLastError() value, 0 if none */
    char message[256];      /* e.g. "cannot bind [::]:9000: port 9000 is in use by another program
                               (WSA 10048); find it with: netstat -ano | findstr :9000, ..." */
} iocp_error_info;

/* ---- logging --------------------------------------------------------------------------- */

typedef enum iocp_log_level {
    IOCP_LOG_ERROR = 0,
    IOCP_LOG_WARN = 1,
    IOCP_LOG_INFO = 2,
    IOCP_LOG_DEBUG = 3
} iocp_log_level;

typedef void (*iocp_log_fn)(void *user, iocp_log_level level, const char *message);

/* The default log function: "iocp: warn: message" on stderr. */
IOCP_API void iocp_log_stderr(void *user, iocp_log_level level, const char *message);

typedef struct iocp_engine iocp_engine;

/* A line (printf format) through the engine's log function, when level passes its
 * log_level: handlers log where the engine does. */
IOCP_API void iocp_engine_log(iocp_engine *engine, iocp_log_level level, const char *fmt, ...)
#if defined(__MINGW_PRINTF_FORMAT)
    __attribute__((format(__MINGW_PRINTF_FORMAT, 3, 4)))
#elif defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A datagram peer's address: a struct sockaddr_in or sockaddr_in6 as the system gave it
 * (IPv4 peers of a dual-stack endpoint arrive as ::ffff:a.b.c.d). */
typedef struct iocp_addr {
    union {
        uint8_t bytes[28];
        uint32_t align_;
    } sa;
    int len;
} iocp_addr;

/* "127.0.0.1:50123" or "[::1]:50123" into buf; returns buf. */
IOCP_API const char *iocp_addr_format(const iocp_addr *addr, char *buf, size_t size);

/* UDP (config.udp): one whole datagram (0 bytes is a datagram too) and its sender. Runs on a
 * worker; several run at once on different workers (one per posted receive). The data and the
 * address are valid only during the call; reply with iocp_send_to. */
typedef void (*iocp_datagram_fn)(iocp_engine *engine, const iocp_addr *from, const void *data,
                                 size_t len);

/* ---- configuration --------------------------------------------------------------------- */

/* TLS through Schannel. Server role (accepted connections) when pfx_path or cert_thumbprint
 * is set; client role (dialled connections) when client is 1. Plaintext otherwise. */
typedef struct iocp_tls_config {
    /* Server: a PFX file and its password, or a certificate with its private key in the
     * Windows store by SHA-1 thumbprint (hex; spaces allowed). Before listening the engine
     * proves the credentials with an in-memory handshake against itself: a wrong password, a
     * certificate without its key or a system without server-side TLS fail iocp_engine_start
     * with IOCP_E_TLS and a message naming the cause. */
    const char *pfx_path;
    const char *pfx_password;
    const char *cert_thumbprint;
    int cert_store_machine; /* 1: LocalMachine\My (a service); 0: CurrentUser\My */
    /* Client: SNI and certificate validation by the Windows chain engine and its SSL policy
     * against the system's roots; with ca_file (PEM, one or many, or DER), against its roots
     * only (the system's are then not trusted, as curl's --cacert), intermediates coming from
     * what the server sends and from the file. */
    int client;
    const char *server_name; /* NULL = the host given to iocp_engine_connect */
    const char *ca_file;     /* NULL = the system's roots; else this file's roots only */
    int insecure;            /* 1 = accept any certificate (tests, never production) */
    /* A connection whose handshake is not done this long after it opened is reset (a peer that
     * connects and never speaks TLS); default 10000. */
    uint32_t handshake_timeout_ms;
    /* The floor, both roles. min_version: the lowest protocol (IOCP_TLS_1_0 .. IOCP_TLS_1_3;
     * 0 = IOCP_TLS_1_2). Suites: forward secrecy (ECDHE, DHE) always and an AEAD cipher (GCM,
     * ChaCha20) from TLS 1.2 up, unless legacy_suites is 1. The credentials ask Schannel for
     * it; the engine holds it too, whatever the system negotiates: a ClientHello offering less
     * than min_version gets a protocol_version alert, and a finished handshake below the floor
     * is failed before any application byte (counted in tls_below_floor and logged). */
    uint16_t min_version;
    int legacy_suites;
    /* Mutual TLS. Server: client_ca_file (PEM or DER) makes every client present a
     * certificate chaining to one of its roots (others fail the handshake). Client:
     * client_pfx_path (+ password) is the certificate presented when a server asks; without
     * it a request is answered with none (never one the system picks by itself). */
    const char *client_ca_file;
    const char *client_pfx_path;
    const char *client_pfx_password;
    /* Revocation of the peer's chain (the client's check of the server; the server's of a
     * client under client_ca_file), root excluded, from the cache only: validation runs under
     * the connection's lock and never waits on the network. IOCP_TLS_REVOCATION_SOFT (0, the
     * default, as .NET and browsers do): a certificate known revoked is refused, an unknown or
     * offline status accepted. _HARD: unknown or offline refused too (so a CRL or OCSP answer
     * for every certificate must already be in the system's URL cache). _OFF: not checked. */
    int revocation;
} iocp_tls_config;
#define IOCP_TLS_REVOCATION_SOFT 0
#define IOCP_TLS_REVOCATION_OFF  1
#define IOCP_TLS_REVOCATION_HARD 2
#define IOCP_TLS_1_0             0x0301
#define IOCP_TLS_1_1             0x0302
#define IOCP_TLS_1_2             0x0303
#define IOCP_TLS_1_3             0x0304

typedef struct iocp_config {
    /* Listening. listen = 0 makes a client-only engine (no listener, no port). */
    int listen;                   /* default 1 */
    const char *bind_address;     /* NULL or "" = "::" dual-stack; literal or host name */
    uint16_t port;                /* 0 = pick a free port; read back with iocp_engine_port */
    int backlog;                  /* listen backlog; default 0 = SOMAXCONN */
    uint32_t accepts_outstanding; /* AcceptEx calls kept posted; default 16, 1..1024 */

    /* Capacity. */
    uint32_t max_connections; /* contexts preallocated; default 1024, 1..1000000 */
    uint32_t buffer_size;     /* one receive buffer (from the pool below); default 16384 */
    uint32_t workers;         /* worker threads; default 0 = number of processors */
    size_t send_queue_cap;    /* bytes queued for sending per connection; default 4 MiB */
    /* Accepted connections one peer address may hold at once (IPv4-mapped IPv6 counts as
     * the IPv4 address; the port is ignored; dialled connections are not counted). One more
     * is reset at once, without on_open, and counted in rejected_per_address, so that one
     * host cannot take every context. Default 0 = no limit. */
    uint32_t max_connections_per_address;
    /* Receive buffers come from a pool shared by the connections: one is held only while a
     * connection is active (a receive is posted into it, or a TLS record is incomplete). A
     * connection quiet for idle_receive_ms gives its buffer back and waits with a zero-byte
     * receive instead; when that completes it takes a buffer again and reads. The pool holds
     * at most buffer_pool_max bytes of buffers (default 32 MiB; at least one buffer; never
     * more than one per connection): at the cap a connection with data waiting waits for a
     * buffer (nothing is lost: the bytes stay in the socket). idle_receive_ms default 1000;
     * 0 = a connection keeps its buffer while it is open (then only closes free buffers). */
    size_t buffer_pool_max;
    uint32_t idle_receive_ms;

    /* Timeouts, in milliseconds; 0 = none. */
    uint32_t idle_timeout_ms;    /* no traffic in either direction for this long: close */
    uint32_t message_timeout_ms; /* a framed message not complete this long after its
                                    first byte: reset it (slowloris guard) */
    uint32_t send_timeout_ms;    /* bytes are queued for the peer and it took none of them
                                    for this long: reset it (it stopped reading, or is gone
                                    without a word); default 60000 */

    /* Framing, shared by every connection of the engine. */
    iocp_framing framing; /* default IOCP_FRAMING_RAW */
    uint32_t max_message; /* default 1 MiB; line and length modes */

    /* Logging; NULL log = iocp_log_stderr. The log function runs on the thread that logs (a
     * worker, a timer's thread, the caller of start or stop) and may call any engine function:
     * the engine never logs while it holds one of its locks. */
    iocp_log_fn log;
    void *log_user;
    iocp_log_level log_level; /* default IOCP_LOG_INFO */

    /* TLS (see iocp_tls_config); all zero = plaintext. With TLS the receive buffer is at
     * least IOCP_TLS_MIN_BUFFER (a whole record must fit): a smaller buffer_size is raised. */
    iocp_tls_config tls;

    /* UDP (udp.c): one datagram endpoint on the same completion port and workers; see
     * on_datagram, iocp_send_to and the udp_ statistics. */
    int udp;                      /* 1 = open it; default 0 */
    uint16_t udp_port;            /* 0 = the TCP listener's port number when listening, else any
                                     free port; read back with iocp_engine_udp_port */
    uint32_t udp_receives;        /* WSARecvFrom calls kept posted; default 0 = 4 per worker */
    uint32_t udp_buffer_size;     /* the longest datagram passed on, 512..65536; default 65536,
                                     so a 65,507-byte one is never cut. A longer one is dropped
                                     and counted in udp_truncated, never delivered in part (each
                                     receive's buffer is 64 KiB whatever this says) */
    uint32_t udp_send_queue;      /* datagrams accepted by iocp_send_to and not yet sent, at most;
                                     default 1024, 1..65536. Full: dropped and counted */
    iocp_datagram_fn on_datagram; /* NULL = echo each datagram to its sender */

    /* Hostile peers. Every per-address limit (max_connections_per_address, conn_rate, the UDP
     * per-source buckets) counts an IPv6 address by its first ipv6_prefix_len bits (default
     * 64, 1..128: one host is given a whole /64), an IPv4-mapped one as the IPv4 address. */
    uint32_t ipv6_prefix_len;
    /* Every context taken: a new connection closes the accepted connection idle longest
     * (IOCP_CLOSE_EVICTED), if it has had no traffic for evict_idle_ms, and takes its context
     * once it is back (a second at most; otherwise, or with no such connection, it is reset
     * and counted rejected, as before). Default 10000; 0 = off. */
    uint32_t evict_idle_ms;
    /* New connections one address may open: conn_burst at once, conn_rate a second after that;
     * one more is reset before it takes a context (counted in rejected_rate). Bounds what one
     * address spends on TLS handshakes. Default 0 = off; conn_burst 0 = conn_rate. */
    uint32_t conn_rate, conn_burst;
    /* UDP: a datagram is never answered (nor passed to on_datagram) when it comes from a port
     * below 1024, from the endpoint's own port number (itself, or another echo server on the
     * same port: a loop), or from an unspecified, multicast or broadcast address (counted in
     * udp_refused_*). Without on_datagram (the echo), when 8 datagrams in a row come back from
     * a source exactly as they were just echoed to it (each within 250 ms), that is an echo
     * loop with another server and they are refused (udp_refused_loop). Each source address (as
     * above, whatever its ports) has a token bucket: udp_rate datagrams a second after a burst of
     * udp_burst, and udp_byte_rate bytes a second after udp_byte_burst (0 = no byte limit); each
     * flow (address and port) udp_flow_rate datagrams a second after half a second's worth (what
     * shrinks a loop of more datagrams than the memory above until the memory sees it); each in
     * a table of udp_sources entries (the one seen longest ago gives its entry up); all sources
     * together at most udp_total_rate a second (a one-second burst). Over a bucket: dropped,
     * counted in udp_rate_limited (address or flow) / udp_capped. A rate of 0 turns that bucket
     * off. Defaults: 32000 / 4000 and 32 MiB / 4 MiB per address (twice what the UDP benchmark
     * sends from its one address, bench/README.md), 2000 per flow (twice what one of its sockets
     * sends), 4096 sources, 100000 total; see docs/reliability.md "Hostile peers". */
    uint32_t udp_rate, udp_burst;
    uint32_t udp_byte_rate, udp_byte_burst;
    uint32_t udp_sources;
    uint32_t udp_total_rate;
    uint32_t udp_flow_rate;
    /* PROXY protocol v1 and v2 (HAProxy's; proxy_proto.c), for an engine behind a load
     * balancer. NULL or "" = off. Otherwise the sources it is believed from, as a list of
     * CIDR ranges ("127.0.0.1/32,::1/128,10.0.0.0/8"; a bad list fails iocp_engine_start
     * with IOCP_E_INVALID_ARG naming the entry). An accepted connection from one of them must
     * begin with a valid header, complete within proxy_header_timeout_ms (default 5000), or
     * it is reset and counted in proxy_rejected, never announced; the header's source address
     * then is the connection's address everywhere (max_connections_per_address, the log,
     * iocp_conn_peer), and TLS and framing start after it. A v2 LOCAL header (a balancer's
     * health check) or v1 UNKNOWN keeps the connection's own address. A connection from any
     * other source is served as without this: a PROXY line it sends is data. */
    const char *proxy_protocol_from;
    uint32_t proxy_header_timeout_ms;

    /* Start from another engine's listener instead of binding (iocp_engine_export_listener,
     * made for this process's pid); NULL = bind as configured. port must be 0 or the
     * listener's port (a different one fails with IOCP_E_INVALID_ARG naming both). */
    const struct iocp_listener_export *inherit_listener;
    /* Start the UDP endpoint (udp must be set) on another engine's UDP socket instead of
     * binding (iocp_engine_export_udp, made for this process's pid); NULL = bind as configured.
     * udp_port must be 0 or the socket's port (a different one fails with IOCP_E_INVALID_ARG
     * naming both). */
    const struct iocp_udp_export *inherit_udp;
} iocp_config;

#define IOCP_TLS_MIN_BUFFER 18432

/* Fills every field with its default. Always call it before setting fields. */
IOCP_API void iocp_config_init(iocp_config *config);

/* ---- connections and handlers ---------------------------------------------------------- */

typedef struct iocp_conn iocp_conn;
typedef uint64_t iocp_conn_id; /* never 0 for a real connection */

typedef enum iocp_close_reason {
    IOCP_CLOSE_PEER = 0,        /* the peer closed its side and we flushed ours */
    IOCP_CLOSE_RESET,           /* the connection was reset or lost */
    IOCP_CLOSE_LOCAL,           /* a handler or caller closed it */
    IOCP_CLOSE_IDLE_TIMEOUT,    /* no traffic for idle_timeout_ms */
    IOCP_CLOSE_MESSAGE_TIMEOUT, /* a message stayed incomplete for message_timeout_ms */
    IOCP_CLOSE_SEND_TIMEOUT,    /* the peer took none of our queued bytes for send_timeout_ms */
    IOCP_CLOSE_PROTOCOL,        /* framing violated (oversized frame, line too long) */
    IOCP_CLOSE_SEND_OVERFLOW,   /* the echo could not be queued: peer not reading */
    IOCP_CLOSE_STOP,            /* the engine is stopping */
    IOCP_CLOSE_ERROR,           /* another I/O error; the raw code says which */
    IOCP_CLOSE_HANDSHAKE,       /* TLS: the handshake failed or took too long (never announced:
                                   counted in the statistics, no on_open or on_close) */
    IOCP_CLOSE_EVICTED,         /* every context was taken and this accepted connection had been
                                   idle longest, at least evict_idle_ms: reset for a newcomer */
    IOCP_CLOSE_REASON_COUNT_
} iocp_close_reason;

/* "peer closed", "idle timeout", ... Never NULL. */
IOCP_API const char *iocp_close_reason_str(iocp_close_reason reason);

typedef struct iocp_handlers {
    /* A connection is established (accepted or dialled; with TLS, once its handshake is
       done). May set user data, send, close. One accepted or dialled while the engine stops
       is closed at once instead, and neither on_open nor on_close runs for it (a dial then
       ends in on_connect_failed: IOCP_E_STOPPED, or IOCP_E_TLS for a failed handshake). */
    void (*on_open)(iocp_conn *conn);
    /* Raw mode: bytes as they arrive. Line and length modes: one whole message, unframed.
       The data is valid only during the call. NULL handler set = echo. */
    void (*on_data)(iocp_conn *conn, const void *data, size_t len);
    /* The connection is gone; called exactly once per on_open, after all its I/O finished.
       sys_code is the raw Win32/WSA code behind the reason, 0 if none. */
    void (*on_close)(iocp_conn *conn, iocp_close_reason reason, unsigned long sys_code);
    /* A dial started with iocp_engine_connect failed before a connection existed (or the
       engine stopped while it connected: IOCP_E_STOPPED). Each dial ends in exactly one of
       on_open and on_connect_failed. */
    void (*on_connect_failed)(iocp_engine *engine, void *user, iocp_err err,
                              unsigned long sys_code);
} iocp_handlers;

/* The echo handler set: on_data sends back what arrived (re-framed in line/length modes). */
IOCP_API const iocp_handlers *iocp_echo_handlers(void);

/* ---- engine lifecycle ------------------------------------------------------------------ */

/* Validates the configuration, allocates every context and the buffer slab, creates the port,
 * binds and listens (if config->listen), starts the workers and posts the accepts.
 * handlers NULL = echo. user is returned by iocp_engine_user(). On failure *out is NULL and
 * err (if not NULL) says what was wrong. */
IOCP_API iocp_err iocp_engine_start(const iocp_config *config, const iocp_handlers *handlers,
                                    void *user, iocp_engine **out, iocp_error_info *err);

/* Stops accepting, closes every connection gracefully (as iocp_close does), aborts the ones still
 * open after drain_timeout_ms, and waits until every operation has completed and every context is
 * back in the pool. Safe from any thread. From inside a callback it only begins the stop and
 * returns IOCP_OK; the stop then finishes on its own and iocp_engine_destroy (from a non-worker
 * thread) waits for it. Calling it twice is harmless. IOCP_E_TIMEOUT: after the abort, some
 * operation on a closed socket never completed (never on Windows; seen under Wine): the stop
 * finished without it, logged an error, and the engine's contexts and buffers stay allocated after
 * iocp_engine_destroy. */
IOCP_API iocp_err iocp_engine_stop(iocp_engine *engine, uint32_t drain_timeout_ms);

/* Blocks until the engine has stopped (someone called iocp_engine_stop) or timeout_ms passes
 * (UINT32_MAX = forever). Returns IOCP_OK when stopped, IOCP_E_TIMEOUT otherwise. */
IOCP_API iocp_err iocp_engine_wait(iocp_engine *engine, uint32_t timeout_ms);

/* Stops (if needed, with the default drain of 5 s), joins the workers and frees everything.
 * Not from a worker thread. */
IOCP_API void iocp_engine_destroy(iocp_engine *engine);

/* The port the listener is bound to (useful with config.port = 0); 0 if not listening. */
IOCP_API uint16_t iocp_engine_port(const iocp_engine *engine);

/* "[::]:9000" or "127.0.0.1:9000": the bound listener address. */
IOCP_API const char *iocp_engine_address(const iocp_engine *engine);

IOCP_API void *iocp_engine_user(const iocp_engine *engine);

/* ---- client connections ---------------------------------------------------------------- */

/* Resolves host (GetAddrInfoW), then tries each address in turn with ConnectEx, each within
 * timeout_ms (0 = 10 s). Returns at once; on success on_open runs on a worker, with
 * iocp_conn_user() == user; on failure on_connect_failed runs with the last error. */
IOCP_API iocp_err iocp_engine_connect(iocp_engine *engine, const char *host, uint16_t port,
                                      uint32_t timeout_ms, void *user);

/* ---- sending and closing by id (any thread) -------------------------------------------- */

/* Queues bytes as they are (no framing). IOCP_E_QUEUE_FULL when the queue would pass the cap
 * (nothing is queued then). IOCP_E_NOT_CONNECTED for a stale id or a closing connection. */
IOCP_API iocp_err iocp_send(iocp_engine *engine, iocp_conn_id id, const void *data, size_t len);

/* Queues one message framed with the engine's framing mode (raw mode: as iocp_send). */
IOCP_API iocp_err iocp_send_message(iocp_engine *engine, iocp_conn_id id, const void *data,
                                    size_t len);

/* Sends one framed message to every open connection. Returns how many accepted it. */
IOCP_API size_t iocp_broadcast(iocp_engine *engine, const void *data, size_t len);

/* How a connection is closed. */
typedef enum iocp_close_mode {
    IOCP_ABORT = 0,   /* reset now: what is queued is dropped */
    IOCP_GRACEFUL = 1 /* send what is queued first (see iocp_close) */
} iocp_close_mode;

/* Closes a connection: IOCP_GRACEFUL = send what is queued (for as long as the idle timeout, 30 s
 * without one), then close; if the peer sent anything in the last second, shut down our side
 * first and read and discard until the peer shuts down its own (about 5 s at most: the
 * timeout sweep checks once a second), so that its late bytes cannot make the system reset
 * the connection under our reply. Otherwise reset. Nothing is delivered after it returns,
 * except data a worker was already handing to on_data at that moment (a call from another
 * thread); on_close follows once the connection is gone. */
IOCP_API iocp_err iocp_close(iocp_engine *engine, iocp_conn_id id, iocp_close_mode how);

/* ---- UDP (config.udp) -------------------------------------------------------------------- */

/* Sends one datagram from the engine's UDP endpoint, from any thread, never blocking: the data
 * is copied into one of udp_send_queue slots (from a worker the send starts at once; from
 * another thread a worker starts it). IOCP_E_QUEUE_FULL: every slot is taken; the datagram is
 * dropped and counted in udp_dropped. IOCP_E_STOPPED, IOCP_E_STATE (no endpoint),
 * IOCP_E_INVALID_ARG (over 65,507 bytes or a bad address). */
IOCP_API iocp_err iocp_send_to(iocp_engine *engine, const iocp_addr *to, const void *data,
                               size_t len);

/* The UDP endpoint's port (0 without one) and bound address ("[::]:9000"; "" without one). */
IOCP_API uint16_t iocp_engine_udp_port(const iocp_engine *engine);
IOCP_API const char *iocp_engine_udp_address(const iocp_engine *engine);

#define IOCP_UDP_MAX_DATAGRAM 65507

/* ---- inside callbacks ------------------------------------------------------------------ */

IOCP_API iocp_conn_id iocp_conn_get_id(const iocp_conn *conn);
IOCP_API iocp_engine *iocp_conn_engine(const iocp_conn *conn);
IOCP_API void *iocp_conn_user(const iocp_conn *conn);
IOCP_API void iocp_conn_set_user(iocp_conn *conn, void *user);
/* 1 for a connection made by iocp_engine_connect, 0 for an accepted one. */
IOCP_API int iocp_conn_is_outgoing(const iocp_conn *conn);
/* "127.0.0.1:50123" or "[::1]:50123"; behind a trusted balancer (proxy_protocol_from), the
 * client its PROXY header named. */
IOCP_API const char *iocp_conn_peer(const iocp_conn *conn);
IOCP_API iocp_err iocp_conn_send(iocp_conn *conn, const void *data, size_t len);
IOCP_API iocp_err iocp_conn_send_message(iocp_conn *conn, const void *data, size_t len);
IOCP_API iocp_err iocp_conn_close(iocp_conn *conn, iocp_close_mode how);
/* Resets the connection now, as IOCP_ABORT does, and reports `reason` (on_close, the
 * statistics) instead of IOCP_CLOSE_LOCAL: a handler that ends a misbehaving peer says why. */
IOCP_API iocp_err iocp_conn_abort(iocp_conn *conn, iocp_close_reason reason);
/* Bytes queued for sending and not yet completed. */
IOCP_API size_t iocp_conn_queued(const iocp_conn *conn);
/* The connection's SOCKET (as uintptr_t, so this header needs no winsock2.h), for
 * setsockopt, getsockname, getpeername or shutdown(SD_SEND) inside a callback. Never close it
 * or start I/O on it: the engine owns both. INVALID_SOCKET once the connection is closing. */
IOCP_API uintptr_t iocp_conn_socket(const iocp_conn *conn);
/* "TLS 1.3, AES-256" for a TLS connection (its handshake is done before on_open), NULL for
 * plaintext. */
IOCP_API const char *iocp_conn_tls(const iocp_conn *conn);
/* The subject of the peer's certificate ("CN=iocp test client"): the client's when the server
 * requires client certificates (tls.client_ca_file), the server's on a dialled connection;
 * NULL for plaintext or a peer without one. Valid until the handler returns (per thread). */
IOCP_API const char *iocp_conn_tls_peer_subject(const iocp_conn *conn);

/* ---- statistics ------------------------------------------------------------------------ */

typedef struct iocp_stats {
    uint64_t accepted;                         /* connections accepted and opened */
    uint64_t connected;                        /* outgoing connections opened */
    uint64_t rejected;                         /* accepted then closed at once: connection limit */
    uint64_t rejected_per_address;             /* the same: max_connections_per_address */
    uint64_t accept_errors;                    /* AcceptEx calls that failed and were re-armed */
    uint64_t connect_failures;                 /* outgoing dials that failed */
    uint64_t closed[IOCP_CLOSE_REASON_COUNT_]; /* by reason */
    uint64_t bytes_in, bytes_out;
    uint64_t messages_in, messages_out; /* framed messages (raw: on_data calls / sends) */
    uint64_t protocol_errors;
    uint64_t active;          /* connections open now */
    uint64_t contexts_in_use; /* contexts out of the pool (open + closing) */
    uint64_t contexts_total;  /* max_connections */
    uint64_t ops_in_flight;   /* overlapped operations posted and not completed */
    uint64_t bytes_queued;    /* send bytes queued on all connections */
    uint64_t heap_chunks; /* send chunks from the heap now (beyond the 512 bytes in each context) */
    uint64_t allocations; /* heap allocations since start: send chunks the cache did not
                             have, growing (or trimming) a message assembly buffer, two
                             per dial (its state, the resolver's address list); 0 for
                             small echoes once warm */
    uint64_t post_retries;           /* packets the completion port refused (the system was out of
                                        memory) and the engine posted again */
    uint64_t tls_handshakes;         /* TLS handshakes completed */
    uint64_t tls_handshake_failures; /* failed, timed out, or plaintext on a TLS port */
    uint64_t tls_below_floor;        /* of those: refused by the floor (tls.min_version, suites) */
    uint64_t buffers_in_use;         /* receive buffers held by connections now (the pool) */
    uint64_t buffers_peak;           /* the most held at once since start */
    uint64_t buffers_max;            /* the pool's cap: buffer_pool_max / buffer_size */
    uint64_t buffer_waits;           /* times a connection with data waiting found the pool empty */
    uint64_t idle_receives;          /* connections waiting on a zero-byte receive now */
    /* UDP: datagrams and payload bytes received and sent; dropped: iocp_send_to found the
     * queue full; truncated: longer than udp_buffer_size, dropped; errors: receives or sends
     * that failed (an ICMP error, a send the system refused) */
    uint64_t udp_datagrams_in, udp_bytes_in, udp_datagrams_out, udp_bytes_out;
    uint64_t udp_dropped, udp_truncated, udp_errors;
    /* Hostile peers: connections reset for conn_rate; datagrams not answered: from a port
     * below 1024, from the endpoint's own port, from an unspecified/multicast/broadcast
     * address, over their source's bucket, over the total cap */
    uint64_t rejected_rate;
    uint64_t udp_refused_port, udp_refused_self, udp_refused_address;
    uint64_t udp_rate_limited, udp_capped;
    uint64_t udp_refused_loop; /* echo: the datagram we just answered came back, again */
    uint64_t evict_served;     /* newcomers given a context through an eviction: equal to
                                  closed[IOCP_CLOSE_EVICTED] but for one that waited more than
                                  a second (reset) or came during the stop */
    uint64_t uptime_ms;
    /* PROXY protocol: headers accepted; connections from a trusted source closed without one
     * (invalid, too slow, or closed before it was complete) */
    uint64_t proxy_headers, proxy_rejected;
} iocp_stats;

IOCP_API void iocp_engine_stats(const iocp_engine *engine, iocp_stats *out);

/* ---- handing the listener to a successor (handover.c) ---------------------------------- */

/* What a successor needs to accept on this engine's listening socket: the socket duplicated
 * for its process (a WSAPROTOCOL_INFOW from WSADuplicateSocketW, opaque here), and the port,
 * for its check. Plain bytes: it may travel over a pipe to another process. */
#define IOCP_LISTENER_INFO_BYTES 1024
typedef struct iocp_listener_export {
    uint32_t target_pid;
    uint16_t port;
    uint16_t family; /* AF_INET or AF_INET6 */
    unsigned char tcp[IOCP_LISTENER_INFO_BYTES];
    /* 1: the successor never puts the listener on its completion port; its accepts complete by
     * events (handover.c), so every worker of a supervisor's listener behaves alike, the first
     * as the later ones (a socket joins one port for its whole life). Set by
     * iocp_held_listener_export. */
    uint32_t accept_by_events;
} iocp_listener_export;

/* Duplicates the listener for process target_pid (this process's own pid works too: a second
 * engine here). Both engines then accept on one socket until this one stops accepting. */
IOCP_API iocp_err iocp_engine_export_listener(iocp_engine *engine, uint32_t target_pid,
                                              iocp_listener_export *out, iocp_error_info *err);

/* Stops accepting: the posted AcceptEx calls are cancelled (one that had already accepted a
 * connection is served as usual), then this engine's handle to the listener is closed; a
 * successor's duplicate keeps the socket, and the connections waiting in its backlog, open.
 * Open connections go on until iocp_engine_stop drains them. IOCP_E_INVALID_ARG for an
 * engine that does not listen. */
IOCP_API iocp_err iocp_engine_stop_accepting(iocp_engine *engine);

/* ---- handing the UDP endpoint to a successor (udp_handover.c) -------------------------- */

/* The UDP socket duplicated for a successor's process, as iocp_listener_export is for the
 * listener: plain bytes, the port for its check. */
typedef struct iocp_udp_export {
    uint32_t target_pid;
    uint16_t port;
    uint16_t family; /* AF_INET or AF_INET6 */
    unsigned char info[IOCP_LISTENER_INFO_BYTES];
    /* 1: the successor never puts the socket on its completion port; its receives and sends
     * complete by events (udp_handover.c), so every worker of a supervisor's socket behaves
     * alike, the first as the later ones. Set by iocp_held_udp_export. */
    uint32_t by_events;
} iocp_udp_export;

/* Duplicates the UDP endpoint's socket for process target_pid (this process's pid works
 * too). The successor starts with config.inherit_udp; both receive on one socket (each
 * datagram goes to one of them) until this one calls iocp_engine_stop_udp_receiving.
 * IOCP_E_INVALID_ARG for an engine without UDP, IOCP_E_STATE once it stopped receiving. */
IOCP_API iocp_err iocp_engine_export_udp(iocp_engine *engine, uint32_t target_pid,
                                         iocp_udp_export *out, iocp_error_info *err);

/* Stops receiving datagrams: the posted receives are cancelled (one that had already taken a
 * datagram is served as usual, its echo sent), none is posted again. The socket stays open
 * for the replies until iocp_engine_stop; a successor's duplicate keeps it open after that.
 * Call it once the successor receives: a datagram that arrives meanwhile waits in the
 * socket's buffer for the successor's next receive. It returns once every receive has
 * finished (so a datagram one held has been answered: an iocp_engine_stop right after
 * refuses no echo), or after 2 s; not from this engine's callbacks, which would hold up the
 * receives it waits for. IOCP_E_INVALID_ARG without UDP. */
IOCP_API iocp_err iocp_engine_stop_udp_receiving(iocp_engine *engine);
/* A listening socket held for worker processes (listener_hold.c): a supervisor binds it once
 * (config's bind_address, port and backlog, as an engine would), never accepts on it and never
 * puts it on a completion port, and exports it to each worker it starts; it stays open while
 * workers come and go, so connects wait in its backlog instead of being refused. */
typedef struct iocp_held_listener iocp_held_listener;
IOCP_API iocp_err iocp_listener_hold(const iocp_config *config, iocp_held_listener **out,
                                     iocp_error_info *err);
IOCP_API const char *iocp_held_listener_address(const iocp_held_listener *l);
IOCP_API uint16_t iocp_held_listener_port(const iocp_held_listener *l);
/* Duplicates it for process target_pid, accept_by_events set. */
IOCP_API iocp_err iocp_held_listener_export(iocp_held_listener *l, uint32_t target_pid,
                                            iocp_listener_export *out, iocp_error_info *err);
IOCP_API void iocp_held_listener_close(iocp_held_listener *l);
/* A UDP socket held for worker processes (udp_hold.c), as iocp_held_listener is for the TCP
 * listener: bound once on config's bind_address and port (made as the engine's UDP endpoint
 * makes its own), never received on, never put on a completion port, exported to each worker
 * (by_events set; the worker starts with config.inherit_udp). Datagrams that arrive while no
 * worker receives wait in its buffer. */
typedef struct iocp_held_udp iocp_held_udp;
IOCP_API iocp_err iocp_udp_hold(const iocp_config *config, uint16_t port, iocp_held_udp **out,
                                iocp_error_info *err);
IOCP_API const char *iocp_held_udp_address(const iocp_held_udp *u);
IOCP_API uint16_t iocp_held_udp_port(const iocp_held_udp *u);
IOCP_API iocp_err iocp_held_udp_export(iocp_held_udp *u, uint32_t target_pid, iocp_udp_export *out,
                                       iocp_error_info *err);
/* Before a worker gets the socket after one that used it ended unasked (killed, crashed), with
 * no worker holding it: checks that it still serves (a datagram it sends to itself is read
 * back at once) and when it does not, closes it and binds a new one on the same address and
 * port (*renewed = 1, err->message says what was blocked; the datagrams waiting in the old
 * one are dropped). Under Wine a receive or send a killed process had begun is never ended
 * and blocks every later one on the socket, in every process (docs/wine.md); Windows ends a
 * dead process's I/O, so there the check finds it serving. After a failed bind the socket is
 * gone and the next call binds again. */
IOCP_API iocp_err iocp_held_udp_renew_if_stuck(iocp_held_udp *u, int *renewed,
                                               iocp_error_info *err);
IOCP_API void iocp_held_udp_close(iocp_held_udp *u);

/* ---- changing a running engine's configuration (reconfigure.c) ------------------------ */

/* Applies what can change while the engine runs: idle_timeout_ms, message_timeout_ms,
 * send_timeout_ms, tls.handshake_timeout_ms, proxy_header_timeout_ms, log_level, and
 * max_connections_per_address between two non-zero values; they apply to open connections
 * from the next sweep. next is a whole configuration (start from the one the engine was
 * started with): an invalid one is refused with IOCP_E_INVALID_ARG and nothing changes. The
 * fields that differ and cannot change live are named in not_live ("port, framing"; "" =
 * none; may be NULL), and left as they are. */
IOCP_API iocp_err iocp_engine_reconfigure(iocp_engine *engine, const iocp_config *next,
                                          char *not_live, size_t not_live_size,
                                          iocp_error_info *err);

/* ---- process helpers ------------------------------------------------------------------- */

/* Installs an unhandled-exception filter that prints the exception code and ends the process
 * with IOCP_CRASH_EXIT_CODE (under Wine a crash can otherwise exit 0). Call first in main. */
#define IOCP_CRASH_EXIT_CODE 70
IOCP_API void iocp_install_crash_guard(void);

/* ---- version --------------------------------------------------------------------------- */

/* The library's version, "MAJOR.MINOR.PATCH" (CMake's project version): of the code running,
 * which for iocp.dll may differ from the IOCP_VERSION_STRING a program was compiled with. */
IOCP_API const char *iocp_version(void);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_IOCP_H */
