/*
 * churn.h: the load that every handover test runs through (test_handover.c,
 * test_supervisor.c): a client that opens a new connection every few milliseconds until told
 * to stop; each sends its own line and checks the echo, then closes and waits for the
 * server's FIN. A connect that fails counts as refused; a close that is not a FIN as a reset.
 */
#ifndef TESTS_CHURN_H
#define TESTS_CHURN_H

#include <stdint.h>
#include <winsock2.h>
#include <windows.h>

typedef struct churn {
    uint16_t port;
    volatile LONG stop;
    volatile LONG connects, refused, wrong_echo, resets;
    HANDLE thread;
} churn;

void churn_start(churn *c, uint16_t port);
/* Stops the loop and waits for its thread (CHECKs that it ends). */
void churn_stop(churn *c);

#endif
