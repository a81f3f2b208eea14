/* backoff.h: reconnect delays, exponential with jitter. Plain C11. */
#ifndef CLIENT_BACKOFF_H
#define CLIENT_BACKOFF_H

#include <stdint.h>

/* The delay before reconnect attempt `attempt` (0 = the first): d = min(max_ms,
 * base_ms * 2^attempt), then "equal jitter": d/2 plus a random part of up to d/2, so clients
 * that lost the same server do not all come back at the same moment. rnd is any random
 * 32-bit value. */
uint32_t client_backoff_ms(uint32_t attempt, uint32_t base_ms, uint32_t max_ms, uint32_t rnd);

/* A small PRNG (xorshift64*) for the jitter; any non-zero seed. */
uint32_t client_rand32(uint64_t *state);

#endif
