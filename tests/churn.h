/*
 * churn.h: a client that opens a new connection every few milliseconds until told to stop:
 * each sends its own line and checks the echo, then closes and waits for the server's FIN
 * (a reset instead is counted). The load the take-over, handover and configure tests run
 * through: they assert 0 refused, 0 wrong echoes, 0 resets.
 */
#ifndef IOCP_TEST_CHURN_H
#define IOCP_TEST_CHURN_H

#include <winsock2.h>
#include <windows.h>
#include <stdint.h>

typedef struct churn {
    uint16_t port;
    volatile LONG stop;
    volatile LONG connects, refused, wrong_echo, resets;
    HANDLE thread;
} churn;

/* Starts the client's thread against 127.0.0.1:port. */
void churn_start(churn *c, uint16_t port);
/* Stops it and waits for its last connection to finish. */
void churn_stop(churn *c);

#endif
