/*
 * iocpi.h: the engine's private header, and the only place the Win32 headers are included
 * (in this order: winsock2 before windows, then the extensions).
 */
#ifndef IOCP_IOCPI_H
#define IOCP_IOCPI_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
/* _WIN32_WINNT and WINVER come from CMakeLists.txt, the same for every file. */
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0601
/* Windows 7: GetQueuedCompletionStatusEx, CancelIoEx */
#error "_WIN32_WINNT 0x0601 (Windows 7) or later is needed"
#endif

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp/iocp.h"

/* Wine completes a receive pending at closesocket with this; older MinGW headers lack it. */
#ifndef ERROR_HANDLES_CLOSED
#define ERROR_HANDLES_CLOSED 676L
#endif

/* ---- operations and the worker loop -----------------------------------------------------
 *
 * Every overlapped call, and every packet the engine posts to itself, is an iocpi_op with its
 * OVERLAPPED embedded and the function that finishes it, bound once when the context is made
 * (iocpi_op_init). The worker loop recovers the op with CONTAINING_RECORD and calls
 * done(op, bytes, error); it knows nothing about protocols. An op that finished at once (no
 * packet comes with FILE_SKIP_COMPLETION_PORT_ON_SUCCESS) can be deferred to the worker's
 * lists instead (iocpi_defer_turn, iocpi_defer_after_round): its done then runs exactly as
 * if a packet had come. */
typedef struct iocpi_op iocpi_op;
typedef void (*iocpi_done_fn)(iocpi_op *op, DWORD bytes, DWORD error);
struct iocpi_op {
    OVERLAPPED ov;
    iocpi_done_fn done;
    iocpi_op *deferred_next; /* a worker's list (engine.c); in one list at most */
    DWORD deferred_bytes;
};

/* Checks of the states the code relies on (the entry state of a done handler, a release).
 * On in every build, release included (IOCP_ASSERTIONS; docs/design.md, "Failure policy");
 * a failed one prints what and where and aborts, which the crash guard reports and the
 * service's failure actions restart. */
#ifdef IOCP_ASSERTIONS
void iocpi_assert_failed(const char *expr, const char *file, int line);
#define IOCPI_ASSERT(expr) ((expr) ? (void)0 : iocpi_assert_failed(#expr, __FILE__, __LINE__))
#else
#define IOCPI_ASSERT(expr) ((void)0)
#endif

/* A piece of the send queue. Every connection owns a small one inside its context (a short
 * echo touches no other memory); more come from the engine's chunk cache (buffer_size each,
 * heap, recycled) while the queue is longer. */
typedef enum iocpi_chunk_kind { CHUNK_SMALL, CHUNK_CACHE } iocpi_chunk_kind;

typedef struct iocpi_chunk {
    struct iocpi_chunk *next;
    uint8_t *data;
    size_t off; /* first byte not yet sent */
    size_t len; /* bytes written */
    size_t cap;
    iocpi_chunk_kind kind;
} iocpi_chunk;

#define IOCPI_SMALL_CHUNK 512

/* A cached heap chunk: the SLIST entry heads the allocation (16-byte aligned). */
typedef struct iocpi_cached_chunk {
    SLIST_ENTRY entry;
    iocpi_chunk chunk; /* data follows the struct */
} iocpi_cached_chunk;

typedef enum iocpi_conn_state {
    CONN_FREE = 0, /* in the pool */
    CONN_DIALING,  /* resolving or ConnectEx pending (outgoing only) */
    CONN_OPEN,     /* established: receiving and sending */
    CONN_CLOSING,  /* close requested: flushing the send queue, socket still open */
    CONN_CLOSED    /* socket closed: waiting for the last operation to complete */
} iocpi_conn_state;

#define IOCPI_SEND_BUFS 8

/* One connection context. Allocated once at engine start in one array (never freed until
 * destroy); handed out from the pool and returned to it exactly once per use, when the last
 * reference (the open connection itself, and each posted operation) is dropped. */
struct iocp_conn {
    SLIST_ENTRY pool_entry; /* first: SLIST entries need 16-byte alignment */
    iocp_engine *engine;
    SRWLOCK lock; /* state, socket, send queue, flags */
    SOCKET sock;
    uint32_t index;
    volatile LONG generation; /* bumped at every release: stale ids miss */
    volatile LONG state;      /* iocpi_conn_state */
    volatile LONG refs;
    int outgoing;
    int announced; /* on_open ran (or would have, with no on_open): on_close is owed */
    void *user;

    /* receive: one WSARecv at a time, into recv_buf (a pool buffer held while the
     * connection is active; NULL while it waits with a zero-byte receive, see conn.c) */
    iocpi_op recv_op;
    uint8_t *recv_buf;
    int recv_paused;      /* backpressure: queue above the high mark */
    int recv_zero;        /* the receive posted is a zero-byte one (the receive chain's) */
    int recv_ready;       /* a zero-byte receive completed: read for real next (the chain's) */
    int recv_idle;        /* quiet: wait with zero-byte receives (the chain's) */
    int recv_pending;     /* a receive into recv_buf went pending (under the lock) */
    int recv_cancel;      /* the sweep cancelled it to give the buffer back (under the lock) */
    int pool_waiting;     /* on the pool's wait list (under the pool's lock) */
    iocp_conn *pool_next; /* the wait list */
    iocp_decoder decoder;
    volatile LONG64 message_started_ms; /* 0 = no message half-received */

    /* send: one WSASend at a time over the chunk list */
    iocpi_op send_op;
    iocpi_chunk small_chunk;
    int small_busy; /* in the queue now */
    uint8_t small_data[IOCPI_SMALL_CHUNK];
    iocpi_chunk *send_head, *send_tail;
    size_t queued;
    volatile LONG64 send_stalled_ms; /* queued bytes and none taken since; 0 = queue empty */
    int send_pending;
    WSABUF send_bufs[IOCPI_SEND_BUFS];

    /* posted to ourselves: resume reading after backpressure, finish the release */
    iocpi_op resume_op;
    iocpi_op final_op;

    /* closing */
    iocp_close_reason close_reason;
    DWORD close_sys;
    int close_graceful;
    int lingering;   /* graceful: our FIN is sent, reading (and discarding) until the peer's */
    int peer_closed; /* a receive saw the peer's FIN (or an error): nothing more will come */
    volatile LONG64 closing_since_ms;

    volatile LONG64 last_activity_ms;
    volatile LONG64 last_recv_ms; /* 0: nothing received yet */
    char peer[64];
    /* max_connections_per_address (peers.c): the peer's key, and whether it is counted (an
     * accepted connection under a limit), so that the release uncounts it exactly once */
    uint8_t peer_key[16];
    int peer_counted;

    /* eviction (evict.c): evicted for the newcomer waiting in parked[evict_slot] under
     * evict_ticket, which takes this context when it comes back; ticket 0 = none */
    uint32_t evict_slot, evict_ticket;

    /* TLS (tls.h): the session while one runs, NULL for plaintext; the bytes of an incomplete
     * record kept at the front of recv_buf for the next read; when the connection opened
     * (the handshake deadline) */
    struct iocpi_tls *tls;
    size_t tls_kept;
    volatile LONG64 opened_ms;

    /* PROXY protocol (proxy_conn.c): this connection's first bytes must be a header (it came
     * from a trusted source); its per-address count waits for the header's address */
    int proxy_pending;

    /* dialling (outgoing connections): the ops live here, the dial's state in `dial` */
    iocpi_op connect_op;
    iocpi_op dial_failed_op; /* reports a dial that failed, on a worker */
    struct iocpi_dial *dial; /* while DIALING (dialer.c) */
};

/* A dial in progress: made by iocp_engine_connect, freed when the dial ends (dialer.c), so
 * that a context does not carry it while it serves an accepted connection. */
typedef struct iocpi_dial {
    ADDRINFOW *addrs, *next; /* what GetAddrInfoW gave (freed with it); the next to try */
    char host[128];
    uint16_t port;
    uint32_t timeout_ms;
    volatile LONG64 deadline_ms; /* of the ConnectEx in progress; 0 = none */
    int timed_out;
    DWORD last_error;
    void *user;
#ifdef IOCP_FAULT_INJECTION
    ADDRINFOW fault_first; /* fault.c: an address put before the resolved ones */
    SOCKADDR_IN fault_addr;
#endif
} iocpi_dial;

/* An operation on a socket inherited from another process's engine (handover.c): the
 * original is on its owner's completion port and a socket goes on one port only, so the op
 * completes by its own event (the low bit of hEvent set: no port packet) and a thread-pool
 * wait posts the same OVERLAPPED to our port, where its done runs as for any packet
 * (libuv's UV_HANDLE_EMULATE_IOCP). event NULL = not emulated. */
typedef struct iocpi_emulated {
    iocp_engine *engine;
    iocpi_op *op;
    HANDLE event, wait;
} iocpi_emulated;

/* One outstanding AcceptEx. */
typedef struct iocpi_accept {
    iocpi_op op;
    iocp_engine *engine;
    SOCKET sock;
    int posted;
    int probe; /* posted during a shortage: its success shows accepting works again */
    /* an inherited listener on another engine's port (handover.c): the AcceptEx's event and
     * the thread-pool wait that posts its completion to our port */
    iocpi_emulated emulated;
    /* local and remote address, each sizeof(SOCKADDR_STORAGE) + 16 as AcceptEx requires */
    char addrs[2 * (sizeof(SOCKADDR_STORAGE) + 16)];
} iocpi_accept;

#define IOCPI_EVICT_CANDIDATES 16

/* A newcomer that evicted a connection and waits for its context (evict.c): the accepted
 * socket is kept until the evicted connection's context comes back to the pool, which hands
 * it over by posting op. sock INVALID_SOCKET = a free slot; reserved: taken by a newcomer
 * still choosing whom to evict; ticket: which reservation of the slot this is (the evicted
 * context carries it, so a context comes back to its own newcomer only). */
typedef struct iocpi_parked {
    iocpi_op op;
    iocp_engine *engine;
    SOCKET sock;
    iocp_conn *conn; /* handed over; NULL while waiting */
    int reserved;
    uint32_t ticket;
    uint64_t since_ms;
    char peer[64];
    SOCKADDR_STORAGE remote;
} iocpi_parked;

/* One slot of the per-address table (peers.c); count 0 = empty. */
typedef struct iocpi_peer_slot {
    uint8_t addr[16]; /* IPv6; IPv4 as ::ffff:a.b.c.d */
    uint32_t count;   /* accepted connections from it that hold a context */
} iocpi_peer_slot;

typedef struct iocpi_counters {
    volatile LONG64 accepted, connected, rejected, accept_errors, connect_failures;
    volatile LONG64 rejected_per_address;
    volatile LONG64 closed[IOCP_CLOSE_REASON_COUNT_];
    volatile LONG64 bytes_in, bytes_out, messages_in, messages_out, protocol_errors;
    volatile LONG64 active, contexts_in_use, ops_in_flight, bytes_queued, heap_chunks;
    volatile LONG64 allocations;  /* see iocp_stats */
    volatile LONG64 post_retries; /* see iocp_stats */
    volatile LONG64 tls_handshakes, tls_handshake_failures, tls_below_floor;
    volatile LONG64 buffer_waits, idle_receives;
    volatile LONG64 udp_datagrams_in, udp_bytes_in, udp_datagrams_out, udp_bytes_out;
    volatile LONG64 udp_dropped, udp_truncated, udp_errors;
    volatile LONG64 rejected_rate; /* hostile peers: see iocp_stats */
    volatile LONG64 udp_refused_port, udp_refused_self, udp_refused_address;
    volatile LONG64 udp_rate_limited, udp_capped;
    volatile LONG64 udp_refused_loop;
    volatile LONG64 evict_served;
    volatile LONG64 proxy_headers, proxy_rejected;
} iocpi_counters;

/* rate.c: token buckets per source in a fixed table (or one bucket for all: sources 0). */
typedef struct iocpi_rate_limits {
    uint32_t rate, burst;           /* events a second, and at once; rate 0 = no event limit */
    uint64_t byte_rate, byte_burst; /* the same in bytes; byte_rate 0 = no byte limit */
} iocpi_rate_limits;

typedef struct iocpi_bucket {
    uint64_t tokens, bytes; /* thousandths of an event, of a byte */
    uint64_t at_ms;         /* last refilled */
} iocpi_bucket;

#define IOCPI_ANSWERED 8

typedef struct iocpi_rate_entry {
    uint8_t key[16]; /* iocpi_peer_key */
    uint16_t port;   /* 0 when keyed by address alone */
    uint16_t used;
    iocpi_bucket bucket;
    /* the UDP guard's memory of the source: hashes of the last datagrams echoed to it, when
     * it last was answered, and how many datagrams in a row came back as they were sent */
    uint64_t answered[IOCPI_ANSWERED];
    uint64_t answered_ms;
    uint32_t returns, answered_next;
} iocpi_rate_entry;

typedef struct iocpi_rate {
    SRWLOCK lock;
    iocpi_rate_limits limits;
    iocpi_rate_entry *entries; /* NULL: one bucket, total */
    uint32_t set_mask;
    uint64_t seed;
    iocpi_bucket total;
} iocpi_rate;

/* The receive buffer pool (pool.c): `slots` buffers of `stride` bytes in one reserved region,
 * committed when first taken. Free ones are kept committed (warm, reused first) up to a few;
 * beyond that a returned buffer is decommitted (cold), so the memory follows what is in use,
 * not the peak. A connection with data waiting and no buffer joins the wait list and is
 * handed the next buffer returned. One lock: a busy connection keeps its buffer, so take and
 * return happen at open, close and the idle switch, not per read. */
typedef struct iocpi_buffers {
    SRWLOCK lock;
    uint8_t *base;
    size_t stride;
    uint32_t slots;
    uint32_t *warm, *cold; /* stacks of free slot numbers */
    uint32_t warm_n, cold_n, warm_keep;
    volatile LONG in_use, peak, waiters;
    iocp_conn *wait_head, *wait_tail;
} iocpi_buffers;

/* The engine. The public iocp_engine is this struct, opaque outside the library, as iocp_conn
 * is. */
struct iocp_engine {
    iocp_config config;
    iocp_handlers handlers;
    void *user;
    HANDLE port;
    int skip_on_success; /* FILE_SKIP_COMPLETION_PORT_ON_SUCCESS usable (IFS providers only) */
    uint64_t started_ms;

    /* contexts, and the receive buffer pool (pool.c) */
    iocp_conn *conns;
    SLIST_HEADER free_conns;
    iocpi_buffers buffers;
    SLIST_HEADER chunk_cache;
    volatile LONG cached_chunks;
    size_t high_mark, low_mark;

    /* listener */
    SOCKET listen_sock;
    int family;
    uint16_t bound_port;
    char address[80];
    LPFN_ACCEPTEX accept_ex;
    LPFN_GETACCEPTEXSOCKADDRS get_accept_addrs;
    LPFN_CONNECTEX connect_ex;
    iocpi_accept *accepts;
    volatile LONG accepts_posted;
    SRWLOCK accept_lock;
    PTP_TIMER accept_retry_timer;
    uint32_t accept_backoff_ms;
    int accept_starved;           /* a shortage: the accept slots wait for the timer */
    int accept_ok_while_starved;  /* a probe's accept succeeded during this shortage */
    uint64_t accept_warned_ms;    /* when a shortage was last logged as a warning */
    int accept_shortage_warned;   /* this shortage was: its end is logged too */
    uint32_t accept_error_streak; /* failed accepts in a row */
    int accept_emulated;          /* accepts complete by events (an inherited listener) */
    volatile LONG accept_stopped; /* iocp_engine_stop_accepting: the successor accepts now */

    /* max_connections_per_address (peers.c); peers is NULL without a limit */
    iocpi_peer_slot *peers;
    uint32_t peer_mask; /* slots - 1 (a power of two, at least 2 x max_connections) */
    uint64_t peer_seed;
    SRWLOCK peer_lock;
    volatile LONG64 peer_warned_ms; /* when a per-address rejection was last a warning */

    /* hostile peers: conn_rate's buckets (rate.c); eviction's candidates (evict.c) */
    iocpi_rate conn_rate;
    volatile LONG64 rate_warned_ms;
    SRWLOCK evict_lock;
    iocp_conn_id evict_candidates[IOCPI_EVICT_CANDIDATES]; /* idlest first; 0 = none */
    uint32_t evict_count, evict_next;
    iocpi_parked *parked; /* accepts_outstanding slots (evict.c); under evict_lock */
    uint32_t parked_slots;
    volatile LONG parked_waiting; /* parked without a context yet */
    uint32_t park_tickets;        /* the last ticket given (under evict_lock) */

    /* timers */
    PTP_TIMER sweep_timer;
    volatile LONG64 post_retries_logged; /* the sweep's last report of post_retries */

    /* workers and stopping */
    HANDLE *workers;
    uint32_t worker_count;
    volatile LONG idle_workers; /* blocked in the port's wait: a busy one shares its work */
    volatile LONG stopping;
    int lost_ops; /* the stop gave up on operations the system never completed */
    volatile LONG stop_started;
    volatile LONG dials_resolving;
    uint32_t drain_ms;
    HANDLE stopped_event;
    HANDLE stopper_thread;

    /* TLS (tls_creds.c): the credentials of each role (NULL = that role is plaintext) and
     * one session per context, used while it serves a TLS connection */
    struct iocpi_tls_creds *tls_server, *tls_client;
    struct iocpi_tls *tls_sessions;

    /* UDP (udp.c): the endpoint, NULL without config.udp */
    struct iocpi_udp *udp;

    /* PROXY protocol (proxy_conn.c): the trusted sources (NULL = off) and one header state
     * per context */
    struct iocpi_cidr *proxy_from;
    size_t proxy_from_n;
    struct iocpi_proxy_conn *proxy_states;

    iocpi_counters counters;
};

#define pub ((iocp_engine *)(pub))
#define eng ((iocp_engine *)(eng))

/* support.c */
/* Logging: never while holding an engine lock (the log function may call the engine). Under
 * a lock, iocpi_log_later keeps the line and iocpi_log_flush, after the unlock, writes it. */
void iocpi_log(iocp_engine *e, iocp_log_level level, const char *fmt, ...);
void iocpi_log_later(iocp_engine *e, iocp_log_level level, const char *fmt, ...);
void iocpi_log_flush(void);
uint64_t iocpi_now_ms(void);
/* Starts a thread-pool timer: first after due_ms, then every period_ms (0 = once). */
void iocpi_timer_set(PTP_TIMER timer, uint32_t due_ms, uint32_t period_ms);
/* Cancels a thread-pool timer, waits for a callback that is running, closes it; NULL after. */
void iocpi_timer_close(PTP_TIMER *timer);
DWORD iocpi_op_error(const OVERLAPPED *ov);
void iocpi_op_init(iocpi_op *op, iocpi_done_fn done);
void iocpi_post(iocp_engine *e, iocpi_op *op);
/* PostQueuedCompletionStatus that never gives up (see support.c). */
void iocpi_post_packet(iocp_engine *e, DWORD bytes, ULONG_PTR key, OVERLAPPED *ov);

/* worker.c */
#define IOCPI_EXIT_KEY ((ULONG_PTR)1) /* a packet with this key and no op ends a worker */
void iocpi_workers_prepare(void);
DWORD WINAPI iocpi_worker_main(LPVOID engine);
int iocpi_on_worker(void);
/* Workers only. op finished at once with bytes: its done runs in one of this worker's next
 * turns, round-robin with the other such ops (or on another worker, through the port). */
void iocpi_defer_turn(iocp_engine *e, iocpi_op *op, DWORD bytes);
/* The same for independent work (the UDP endpoint's receives, which share one socket): once
 * this worker has a turn waiting, a further one goes to a sleeping worker at once, so both
 * workers read the socket instead of one alternating with the wineserver. */
void iocpi_defer_turn_spread(iocp_engine *e, iocpi_op *op, DWORD bytes);
/* Workers only. op's done (bytes 0, error 0) runs once this worker's batch or round is over. */
void iocpi_defer_after_round(iocpi_op *op);

/* pool.c */
iocp_err iocpi_pool_init(iocp_engine *e, iocp_error_info *err);
void iocpi_pool_fini(iocp_engine *e);
iocp_conn *iocpi_pool_take(iocp_engine *e);
void iocpi_pool_return(iocp_engine *e, iocp_conn *c);
iocpi_chunk *iocpi_chunk_take(iocp_engine *e);
/* A receive buffer, or NULL when the pool is at its cap; with `waiter`, NULL also puts it on
 * the wait list: the next buffer returned becomes waiter->recv_buf and its resume_op is
 * posted (the receive chain's reference goes with it). Under waiter's lock. */
uint8_t *iocpi_buffer_take(iocp_engine *e, iocp_conn *waiter);
void iocpi_buffer_return(iocp_engine *e, uint8_t *buf);
/* Takes c off the wait list (a closed connection stops waiting). Returns 1 when it was on
 * it: the caller posts its resume_op. Under c's lock. */
int iocpi_buffer_unwait(iocp_engine *e, iocp_conn *c);
void iocpi_chunk_return(iocp_engine *e, iocpi_chunk *chunk);

/* conn.c */
void iocpi_conn_open(iocp_conn *c, SOCKET sock, int outgoing);
void iocpi_conn_close(iocp_conn *c, iocp_close_reason reason, DWORD sys, iocp_close_mode how);
void iocpi_conn_ref(iocp_conn *c);
void iocpi_conn_unref(iocp_conn *c);
iocp_conn *iocpi_conn_lookup(iocp_engine *e, iocp_conn_id id); /* locked on success */
/* Makes context `index` once, at start. */
void iocpi_conn_init(iocp_conn *c, iocp_engine *e, uint32_t index);
void iocpi_conn_fini(iocp_conn *c);
void iocpi_conn_sweep(iocp_conn *c, uint64_t now);
/* Resets an open accepted connection as IOCP_CLOSE_EVICTED if it is still quiet for
 * min_idle_ms, its context promised to the newcomer in park slot `slot` under `ticket`; 1
 * when it did. */
int iocpi_conn_evict(iocp_engine *e, iocp_conn_id id, uint64_t now, uint64_t min_idle_ms,
                     uint32_t slot, uint32_t ticket);
/* A dialled connection of a TLS client engine: its session, before iocpi_conn_open. */
void iocpi_conn_tls_client(iocp_conn *c, const char *server_name);

/* peers.c: the per-address counts. admit counts c's peer and returns 1, or returns 0 when
 * the address already holds max_connections_per_address (nothing counted); release uncounts
 * it (once; a no-op for a connection that was not counted). */
iocp_err iocpi_peers_init(iocp_engine *e, iocp_error_info *err);
void iocpi_peers_fini(iocp_engine *e);
int iocpi_peers_admit(iocp_engine *e, const struct sockaddr *remote, iocp_conn *c);
/* conn_rate: 1 when the address may open one more connection now (and it is counted). */
int iocpi_peers_rate_admit(iocp_engine *e, const struct sockaddr *remote);
void iocpi_peers_release(iocp_engine *e, iocp_conn *c);
/* The key every per-address limit counts by: IPv6 cut to its first ipv6_prefix_len bits,
 * IPv4 and IPv4-mapped IPv6 as ::ffff:a.b.c.d whole. 0 for another family. (A PROXY protocol
 * header's source can be keyed the same way.) */
int iocpi_peer_key(const struct sockaddr *sa, uint32_t ipv6_prefix_len, uint8_t key[16]);

/* rate.c: sources = how many per-source buckets (0 = one bucket for all). take: 1 when the
 * event (and its bytes) passes (and is taken from the bucket), 0 when over. */
iocp_err iocpi_rate_init(iocpi_rate *r, uint32_t sources, const iocpi_rate_limits *limits);
void iocpi_rate_fini(iocpi_rate *r);
/* A table's entry for (key, port), with the table locked until iocpi_rate_unlock (a table
 * of sources only; it exists whatever the rate, which may be 0 = off). */
iocpi_rate_entry *iocpi_rate_lock(iocpi_rate *r, const uint8_t key[16], uint16_t port,
                                  uint64_t now);
int iocpi_rate_take_locked(iocpi_rate *r, iocpi_rate_entry *entry, uint64_t bytes, uint64_t now);
void iocpi_rate_unlock(iocpi_rate *r);
int iocpi_rate_take(iocpi_rate *r, const uint8_t key[16], uint16_t port, uint64_t bytes,
                    uint64_t now);

/* udp_guard.c: which datagrams the UDP endpoint may answer (see iocp_config). */
struct iocpi_udp_guard;
struct iocpi_udp_guard *iocpi_udp_guard_new(iocp_engine *e, iocp_error_info *err);
void iocpi_udp_guard_free(struct iocpi_udp_guard *g);
/* 1 for an address no reply may go to (unspecified, multicast, broadcast), in the 16-byte
 * form of iocpi_peer_key with every bit (IPv4 as ::ffff:a.b.c.d). */
int iocpi_udp_no_reply_address(const uint8_t a[16]);
/* 1: pass it on; 0: refused or over a rate (counted, logged at most once a second). */
int iocpi_udp_guard_admit(struct iocpi_udp_guard *g, uint16_t own_port, const struct sockaddr *from,
                          const void *data, size_t bytes);

/* evict.c: each sweep offers every connection (consider, into its own zeroed pick) and then
 * publishes the idlest; when the pool is empty, iocpi_evict_for takes a place for the
 * newcomer to wait first, then closes the idlest still idle evict_idle_ms for it. */
typedef struct iocpi_evict_pick {
    iocp_conn_id id[IOCPI_EVICT_CANDIDATES]; /* idlest first */
    uint64_t idle[IOCPI_EVICT_CANDIDATES];
    uint32_t n;
} iocpi_evict_pick;
void iocpi_evict_consider(iocp_engine *e, iocpi_evict_pick *p, const iocp_conn *c, uint64_t now);
void iocpi_evict_publish(iocp_engine *e, const iocpi_evict_pick *p);
/* The pool is empty: 1 when a connection was evicted for this newcomer, whose socket is kept
 * until a context is free (then iocpi_listener_admit); 0 when there is no place for it to
 * wait or no connection to evict (nothing was evicted: the caller resets it). */
int iocpi_evict_for(iocp_engine *e, SOCKET s, const char *peer, const SOCKADDR_STORAGE *remote);
/* pool.c, after a context came back: hands free contexts to waiting newcomers. */
void iocpi_evict_handoff(iocp_engine *e);
/* pool.c, before a context goes back: 1 when it was evicted for a newcomer still waiting,
 * and it went to it (the caller pushes nothing). */
int iocpi_evict_claim(iocp_engine *e, iocp_conn *c);
/* The sweep: a newcomer still waiting after a second is reset (counted rejected); the stop:
 * every waiting one is. */
void iocpi_evict_expire(iocp_engine *e, uint64_t now, int all);
iocp_err iocpi_evict_init(iocp_engine *e, iocp_error_info *err);
void iocpi_evict_fini(iocp_engine *e);

/* proxy_conn.c: the PROXY protocol on accepted connections. start parses
 * config.proxy_protocol_from; begin (the accept path) returns 1 when the source is trusted:
 * the connection then waits for a header (proxy_pending) and its per-address count with it;
 * header feeds it the connection's first bytes: 1 = the header is complete (*used bytes of it,
 * the connection's address and count are the header's), 0 = more to come, -1 = the connection
 * was closed (a bad header, or the per-address limit). closed_early counts and logs a
 * connection that ends (the timeout, the peer's FIN) before its header was complete. */
iocp_err iocpi_proxy_engine_start(iocp_engine *e, iocp_error_info *err);
void iocpi_proxy_engine_stop(iocp_engine *e);
/* 1 when remote is one of proxy_protocol_from's sources (its connections are counted and rated
 * by the header's client, not by this address). */
int iocpi_proxy_trusted(iocp_engine *e, const struct sockaddr *remote);
int iocpi_proxy_begin(iocp_engine *e, iocp_conn *c, const struct sockaddr *remote);
int iocpi_proxy_header(iocp_conn *c, const uint8_t *data, size_t len, size_t *used);
void iocpi_proxy_closed_early(iocp_conn *c, const char *why);

/* tls_creds.c: the engine's TLS, made before the pool (it may raise buffer_size) and freed
 * after the last connection. */
iocp_err iocpi_tls_engine_start(iocp_engine *e, iocp_error_info *err);
void iocpi_tls_engine_stop(iocp_engine *e);

/* listener.c */
iocp_err iocpi_listener_start(iocp_engine *e, iocp_error_info *err);
void iocpi_listener_stop(iocp_engine *e);
/* An accepted socket with its context: counted per address, associated, opened (or reset). */
void iocpi_listener_admit(iocp_engine *e, iocp_conn *c, SOCKET s, const char *peer,
                          const SOCKADDR_STORAGE *remote);
/* Resets an accepted socket for want of a context (counted rejected). */
void iocpi_listener_reject(iocp_engine *e, SOCKET s, const char *peer);

/* engine.c, for reconfigure.c: the configuration's checks; the sweep's period for it. */
iocp_err iocpi_config_check(iocp_config *c, iocp_error_info *err);
uint32_t iocpi_sweep_period_ms(const iocp_config *c);

/* handover.c: a listener inherited from another engine (config.inherit_listener): the
 * socket made from its protocol info; the per-slot events and waits when it cannot join our
 * port (waits_start after the slots exist, waits_stop once no accept is posted). */
iocp_err iocpi_handover_inherit(iocp_engine *e, SOCKET *out, iocp_error_info *err);
iocp_err iocpi_handover_waits_start(iocp_engine *e, iocp_error_info *err);
void iocpi_handover_waits_stop(iocp_engine *e);
/* One op's event and wait (made once; the op is then posted with iocpi_emulated_event as its
 * hEvent); stop waits for a callback that runs and closes both (a no-op when never made). */
iocp_err iocpi_emulated_start(iocpi_emulated *em, iocp_engine *e, iocpi_op *op, DWORD *sys);
void iocpi_emulated_stop(iocpi_emulated *em);
HANDLE iocpi_emulated_event(const iocpi_emulated *em);
/* listener.c: a listening socket on config's bind_address, port and backlog (the engine's own,
 * and a supervisor's held one, listener_hold.c). */
iocp_err iocpi_bind_listener(const iocp_config *config, int *family, SOCKET *out,
                             iocp_error_info *err);
/* listener_hold.c: a socket a supervisor holds for its worker processes (the TCP listener
 * there, the UDP socket in udp_hold.c): made with Winsock started (iocpi_held_new, which the
 * caller binds), named from getsockname, duplicated for a worker, closed. */
typedef struct iocpi_held {
    SOCKET sock;
    int family;
    uint16_t port;
    char address[80];
} iocpi_held;
/* WSAStartup, then a zeroed object of `size` bytes that begins with an iocpi_held. */
iocp_err iocpi_held_new(size_t size, const char *what, void **out, iocp_error_info *err);
/* After the bind: address and port from the socket. */
void iocpi_held_name(iocpi_held *h);
iocp_err iocpi_held_duplicate(const iocpi_held *h, uint32_t target_pid, const char *what,
                              WSAPROTOCOL_INFOW *info, iocp_error_info *err);
/* Closes the socket (if any), frees the object, WSACleanup. */
void iocpi_held_free(iocpi_held *h);

/* udp.c: the UDP endpoint. start after the listener (its port may be the listener's); stop
 * closes the socket (every receive and send completes, udp_busy falls to 0); fini frees it
 * (kept when the stop lost operations). */
iocp_err iocpi_udp_start(iocp_engine *e, iocp_error_info *err);
void iocpi_udp_stop(iocp_engine *e);
void iocpi_udp_fini(iocp_engine *e);
uint64_t iocpi_udp_busy(const iocp_engine *e); /* receives posted + send slots taken */
/* udp_handover.c: a UDP socket inherited from another engine (config.inherit_udp): the
 * socket made from its protocol info, refused (and closed) when udp_port differs. */
iocp_err iocpi_udp_inherit(iocp_engine *e, SOCKET *out, int *family, iocp_error_info *err);

/* dialer.c */
void iocpi_dialer_init(iocp_conn *c);
void iocpi_dialer_fail(iocp_conn *c, DWORD error);
void iocpi_dialer_cancel(iocp_conn *c);
void iocpi_dialer_sweep(iocp_conn *c, uint64_t now);

/* sockets.c */
SOCKET iocpi_socket(int family);
int iocpi_utf8_to_wide(const char *in, wchar_t *out, int out_len);
iocp_err iocpi_load_extensions(iocp_engine *e, SOCKET s, DWORD *sys);
iocp_err iocpi_associate(iocp_engine *e, SOCKET s, DWORD *sys);
void iocpi_format_addr(const struct sockaddr *sa, char *buf, size_t size);
void iocpi_close_socket(SOCKET s, int abortive);
/* The bind address (NULL, "", "::" or "[::]": dual-stack "::"; "[::1]" = "::1") of a passive
 * socket of this type on port. */
iocp_err iocpi_resolve_bind(const char *host, uint16_t port, int socktype, int protocol,
                            ADDRINFOW **out, iocp_error_info *err);
/* Skipping the completion packet on immediate success is only safe when every installed
 * provider of that socket type is an IFS one (a non-IFS layered provider would lose
 * completions). */
int iocpi_providers_are_ifs(int socktype, int protocol);

/* fault.c: the test build's fault injection (IOCP_FAULT_INJECTION); see fault.c. */
#ifdef IOCP_FAULT_INJECTION
void iocpi_fault_init(void);
void iocpi_fault_open_delay(void);
ADDRINFOW *iocpi_fault_first_address(iocp_conn *c, ADDRINFOW *resolved);
int iocpi_fault_wsarecv(iocp_engine *e, SOCKET s, LPWSABUF bufs, DWORD n, LPDWORD got,
                        LPDWORD flags, LPWSAOVERLAPPED ov);
int iocpi_fault_wsasend(iocp_engine *e, SOCKET s, LPWSABUF bufs, DWORD n, LPDWORD sent, DWORD flags,
                        LPWSAOVERLAPPED ov);
#define IOCPI_POST(port, bytes, key, ov) iocpi_fault_post(port, bytes, key, ov)
BOOL iocpi_fault_post(HANDLE port, DWORD bytes, ULONG_PTR key, OVERLAPPED *ov);
#define IOCPI_WSARECV(e, s, b, n, got, fl, ov)  iocpi_fault_wsarecv(e, s, b, n, got, fl, ov)
#define IOCPI_WSASEND(e, s, b, n, sent, fl, ov) iocpi_fault_wsasend(e, s, b, n, sent, fl, ov)
#else
#define IOCPI_POST(port, bytes, key, ov)        PostQueuedCompletionStatus(port, bytes, key, ov)
#define IOCPI_WSARECV(e, s, b, n, got, fl, ov)  WSARecv(s, b, n, got, fl, ov, NULL)
#define IOCPI_WSASEND(e, s, b, n, sent, fl, ov) WSASend(s, b, n, sent, fl, ov, NULL)
#endif

/* Fills an iocp_error_info: "what failed: text (WSA n)". info may be NULL. */
void iocpi_error_set(iocp_error_info *info, iocp_err code, unsigned long sys_code, const char *fmt,
                     ...);
/* A failed bind of want (the address as text) in words: the port in use and how to find its
 * holder, or an address not on this machine (bind_error.c). Fills err; returns its code. */
iocp_err iocpi_bind_failed(iocp_error_info *err, unsigned long sys, int udp, const char *want,
                           uint16_t port);

#endif
