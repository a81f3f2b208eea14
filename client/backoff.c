/* backoff.c: reconnect delays (see backoff.h). */
#include "backoff.h"

uint32_t client_backoff_ms(uint32_t attempt, uint32_t base_ms, uint32_t max_ms, uint32_t rnd)
{
    if (base_ms == 0)
        base_ms = 1;
    if (max_ms < base_ms)
        max_ms = base_ms;
    uint64_t d = base_ms;
    for (uint32_t i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    uint64_t half = d / 2;
    uint64_t span = d - half; /* the random part: 0 .. span */
    return (uint32_t)(half + (span > 0 ? (uint64_t)rnd % (span + 1) : 0));
}

uint32_t client_rand32(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}
