/*
 * net_util.h: a plain blocking Winsock client for tests, and engine helpers: start an engine
 * on port 0, wait for its counters with a deadline, assert nothing is left in use.
 */
#ifndef TESTS_NET_UTIL_H
#define TESTS_NET_UTIL_H

#include <stddef.h>
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include "iocp/iocp.h"

/* Connects to host:port ("127.0.0.1", "::1") with receive/send timeouts of timeout_ms.
 * Returns INVALID_SOCKET on failure. */
SOCKET tn_connect(const char *host, uint16_t port, uint32_t timeout_ms);
/* The same from a given local address (bound before the connect, port 0): "127.0.0.2"
 * makes a second client address on loopback (the whole 127/8 is loopback on Linux, so under
 * Wine too). Only addresses of the source's family are tried. */
SOCKET tn_connect_from(const char *source, const char *host, uint16_t port, uint32_t timeout_ms);
/* Sends everything; 0 on success. */
int tn_send_all(SOCKET s, const void *data, size_t len);
/* Receives exactly len bytes; returns the count received before EOF/error/timeout. */
size_t tn_recv_exact(SOCKET s, void *data, size_t len);
/* Reads until EOF/error; returns 1 if the peer closed (EOF or reset) within timeout_ms. */
int tn_wait_closed(SOCKET s, uint32_t timeout_ms);
/* Closes with a reset (linger 0). */
void tn_reset(SOCKET s);
/* Sends data[0..len) in blocking sends of `chunk` bytes until all is sent, a send makes no
 * progress for stall_ms (the peer stopped reading: SO_SNDTIMEO), or max_ms pass. Returns the
 * bytes sent; *stalled (may be NULL) says whether a send timed out. Blocking, not
 * non-blocking: under Wine 10 a short non-blocking write goes on in the background and keeps
 * the socket alive past a reset's closesocket, so no reset would reach the server
 * (docs/wine.md). After a stall the socket is only good for closing. */
size_t tn_send_until_stalled(SOCKET s, const void *data, size_t len, size_t chunk,
                             uint32_t stall_ms, uint32_t max_ms, int *stalled);

/* Sends data on s from a thread of its own in pseudo-random splits (1-byte writes among
 * them) while this thread reads the echo; returns the number of echoed bytes that matched
 * before the first difference, EOF or error (len when the whole echo was exact). */
size_t tn_echo_split(SOCKET s, const void *data, size_t len, uint64_t seed);

/* Frames text with mode, sends it on s and checks the echo comes back byte for byte. */
void tn_echo_message(SOCKET s, iocp_framing mode, const char *text);

/* Starts an engine on 127.0.0.1/[::] port 0 with the given config (NULL = defaults). */
iocp_engine *tn_start(iocp_config *cfg, const iocp_handlers *handlers, void *user);
/* The byte offset of an iocp_stats field, for tn_wait_stat: ST(contexts_in_use). */
#define ST(field) offsetof(iocp_stats, field)

/* Waits until stats field at byte offset `offset` (ST(field)) == value. */
int tn_wait_stat(iocp_engine *e, size_t offset, uint64_t value, uint32_t timeout_ms);
/* The same for value or more: a counter a running load keeps moving past any one value. */
int tn_wait_stat_at_least(iocp_engine *e, size_t offset, uint64_t value, uint32_t timeout_ms);
/* Stops (drain 5 s), checks every context, operation, queued byte, heap chunk and receive
 * buffer came back and no zero-byte receive is left, then destroys. */
void tn_stop_clean(iocp_engine *e);
/* The same, but returns the contexts still in use after the stop (for the reliability table)
 * before checking anything. */
uint64_t tn_stop_counting_leaks(iocp_engine *e);

/* ---- the reliability table (scripts/reliability-table.py) ------------------------------ */

/* Bytes a scenario's clients sent to be echoed, and how many of them came back equal. */
typedef struct tn_ledger {
    uint64_t sent, back;
} tn_ledger;

/* As tn_echo_message, but the result goes into the ledger instead of failing the case: the
 * caller prints it (tn_metric), then checks it. */
void tn_echo_counted(SOCKET s, iocp_framing mode, const char *text, tn_ledger *ledger);

/* A figure a scenario does not measure: "-" in the table. */
#define TN_NOT_MEASURED (-1)

/* The scenario's line: connections it held, faults it injected, bad inputs it tried, bytes
 * its clients sent that did not come back, contexts in use after its stop. Each one what was
 * measured, or TN_NOT_MEASURED. intended_leaks: contexts the scenario keeps on purpose. */
void tn_metric(const char *scenario, int64_t connections, int64_t faults, int64_t bad_inputs,
               int64_t bytes_lost, int64_t leaked, int64_t intended_leaks);

#endif
