/*
 * service_probes.h: the UDP sender and the admin endpoint's health check of the no-refusal
 * tests (test_handover.c's take-over, test_supervisor.c's upgrade and killed worker).
 */
#ifndef IOCP_TEST_SERVICE_PROBES_H
#define IOCP_TEST_SERVICE_PROBES_H

#include <winsock2.h>
#include <windows.h>
#include <stdint.h>

#define UDP_MAX_SEQ 200000

/* Sends "udp <n>" about once a millisecond from one socket and counts the echoes that come
 * back to it: each number once, exact. lost = sent - echoed once the echoes have settled. */
typedef struct udp_load {
    SOCKET s;
    struct sockaddr_in to;
    volatile LONG stop_sending, stop_receiving;
    volatile LONG sent, echoed, duplicates, wrong;
    unsigned char *seen; /* UDP_MAX_SEQ flags */
    HANDLE sender, receiver;
} udp_load;

/* Starts the sender and the receiver against 127.0.0.1:port. */
void udp_load_start(udp_load *u, uint16_t port);
/* Waits until `count` echoes have come back; 0 at the timeout. */
int udp_wait_echoed(udp_load *u, LONG count, uint32_t timeout_ms);
/* Stops sending, waits up to 5 s for the last echoes, stops; how many were lost. */
LONG udp_load_stop(udp_load *u);

/* A port free on loopback now (bound, read back, closed). */
uint16_t free_port(void);
/* GET path on 127.0.0.1:port: the status code, or -1 when refused or unanswered. */
int http_status(uint16_t port, const char *path);

#endif
