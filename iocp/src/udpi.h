/*
 * udpi.h: the UDP endpoint's private types, shared by udp.c (the endpoint) and
 * udp_handover.c (giving it to a successor engine).
 */
#ifndef IOCP_UDPI_H
#define IOCP_UDPI_H

#include "iocpi.h"

#define SMALL_SEND 1536 /* a send slot's own buffer: any datagram of an Ethernet MTU */

typedef struct udp_recv {
    iocpi_op op;
    struct iocpi_udp *udp;
    uint8_t *buf;
    SOCKADDR_STORAGE from;
    INT from_len;
    DWORD flags;
    uint32_t error_streak;
    iocpi_emulated emulated; /* an inherited socket on another engine's port (handover.c) */
} udp_recv;

typedef enum send_phase {
    SEND_FREE = 0,
    SEND_ISSUE,  /* posted by a non-worker: a worker calls WSASendTo */
    SEND_PENDING /* WSASendTo posted */
} send_phase;

typedef struct udp_send {
    SLIST_ENTRY entry; /* first: SLIST entries need 16-byte alignment */
    iocpi_op op;
    struct iocpi_udp *udp;
    volatile LONG phase; /* send_phase */
    SOCKADDR_STORAGE to;
    int to_len;
    uint8_t *data; /* small, or a heap buffer for a longer datagram */
    size_t len;
    uint8_t small[SMALL_SEND];
} udp_send;

/* Made by iocpi_udp_start, freed by iocpi_udp_fini (the slots from VirtualAlloc). */
typedef struct iocpi_udp {
    iocp_engine *e;
    SRWLOCK lock; /* shared: a call on sock; exclusive: closing it */
    SOCKET sock;
    int family;
    int skip; /* FILE_SKIP_COMPLETION_PORT_ON_SUCCESS set on sock */
    uint16_t port;
    char address[80];
    uint32_t buffer_size;  /* each receive's buffer: always 64 KiB (see iocpi_udp_start) */
    uint32_t max_datagram; /* udp_buffer_size: longer ones are counted truncated, dropped */
    udp_recv *recvs;
    uint32_t recv_count;
    uint8_t *recv_slab;
    udp_send *sends;
    uint32_t send_count;
    SLIST_HEADER free_sends;
    volatile LONG64 busy;          /* receives posted + send slots taken */
    volatile LONG recvs_live;      /* receive slots still in the ring (not retired) */
    struct iocpi_udp_guard *guard; /* which sources are answered (udp_guard.c) */
    /* handing over (udp_handover.c): the socket came from another engine and stays on its
     * completion port, so every op completes by an event (receives: iocpi_emulated; sends:
     * an event from send_events, waited for on the worker); receiving_stopped: the
     * successor receives now, no receive is posted again */
    int emulated;
    volatile LONG receiving_stopped;
    SLIST_HEADER send_events;
} iocpi_udp;

/* A send's event in emulated mode: taken for one WSASendTo, returned after it; as many are
 * made as sends run at once (one per worker at most). _aligned_malloc'd, freed with the
 * endpoint. */
typedef struct udp_event {
    SLIST_ENTRY entry; /* first: SLIST entries need 16-byte alignment */
    HANDLE event;
} udp_event;

udp_event *iocpi_udp_event_take(iocpi_udp *u);
void iocpi_udp_event_return(iocpi_udp *u, udp_event *ev);
void iocpi_udp_events_free(iocpi_udp *u);
/* Each receive's event and wait, once the slots exist; 0 or fills err. */
iocp_err iocpi_udp_emulate(iocpi_udp *u, iocp_error_info *err);
void iocpi_udp_unemulate(iocpi_udp *u);
/* Makes and binds a datagram socket as the endpoint's own is made (udp.c); also for a
 * supervisor's held socket (udp_hold.c). *connreset_error: the WSA error when
 * SIO_UDP_CONNRESET stays on, else 0. */
iocp_err iocpi_udp_bind(const char *bind_address, uint16_t port, SOCKET *out, int *family,
                        int *connreset_error, iocp_error_info *err);
/* udp_stuck.c: whether a socket no process receives on now still serves (a datagram to
 * itself is sent and read back at once), or a dead process's unfinished receive or send
 * blocks it (Wine). *waiting_bytes: FIONREAD's count. Leaves the socket blocking. */
typedef enum iocpi_udp_state {
    IOCPI_UDP_SERVES,
    IOCPI_UDP_RECEIVES_BLOCKED,
    IOCPI_UDP_SENDS_BLOCKED,
    IOCPI_UDP_UNKNOWN /* neither side could tell (an error other than would-block) */
} iocpi_udp_state;
iocpi_udp_state iocpi_udp_probe(SOCKET s, unsigned long *waiting_bytes);

#endif
