/*
 * histogram.c: the log-bucketed latency histogram of histogram.h (plain C11, no Win32).
 *
 * Layout of the IOCP_HIST_BUCKETS counters (S = IOCP_HIST_SUB, B = IOCP_HIST_SUB_BITS):
 *   - group 0, indices [0, S): the values 0 .. S-1, one value per bucket (exact);
 *   - group g >= 1, indices [g*S, (g+1)*S): the values with their highest set bit at
 *     m = g + B - 1, i.e. [2^m, 2^(m+1)), split into S equal sub-buckets of width 2^(m-B).
 * A bucket is never wider than 1/S of the smallest value in it, which is where the documented
 * error bound comes from. The last group has m = 63 and ends at UINT64_MAX, so every uint64_t
 * value has a bucket and no index computation overflows.
 */
#include "histogram.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
static unsigned highest_bit(uint64_t v) /* v != 0 */
{
    return 63u - (unsigned)__builtin_clzll(v);
}
#else
static unsigned highest_bit(uint64_t v) /* v != 0 */
{
    unsigned m = 0;
    for (unsigned step = 32; step > 0; step /= 2) {
        if (v >> step) {
            v >>= step;
            m += step;
        }
    }
    return m;
}
#endif

static unsigned bucket_of(uint64_t value)
{
    if (value < IOCP_HIST_SUB)
        return (unsigned)value;
    unsigned m = highest_bit(value); /* >= IOCP_HIST_SUB_BITS */
    unsigned shift = m - IOCP_HIST_SUB_BITS;
    unsigned sub = (unsigned)(value >> shift) & (IOCP_HIST_SUB - 1u);
    return (m - IOCP_HIST_SUB_BITS + 1u) * IOCP_HIST_SUB + sub;
}

/* The largest value that falls into bucket i. */
static uint64_t bucket_high(unsigned i)
{
    if (i < IOCP_HIST_SUB)
        return i;
    unsigned group = i / IOCP_HIST_SUB;
    unsigned sub = i % IOCP_HIST_SUB;
    unsigned m = group + IOCP_HIST_SUB_BITS - 1u;
    unsigned shift = m - IOCP_HIST_SUB_BITS;
    uint64_t low = ((uint64_t)1 << m) + ((uint64_t)sub << shift);
    return low + (((uint64_t)1 << shift) - 1u); /* the last bucket ends at UINT64_MAX */
}

void iocp_histogram_init(iocp_histogram *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
    h->max = 0;
}

void iocp_histogram_record(iocp_histogram *h, uint64_t value)
{
    h->counts[bucket_of(value)]++;
    h->total++;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
    h->sum += (double)value;
}

void iocp_histogram_merge(iocp_histogram *dst, const iocp_histogram *src)
{
    if (src->total == 0)
        return;
    for (unsigned i = 0; i < IOCP_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->sum += src->sum;
}

uint64_t iocp_histogram_percentile(const iocp_histogram *h, double pct)
{
    if (h->total == 0)
        return 0;
    if (!(pct > 0.0)) /* also NaN */
        return h->min;
    if (pct >= 100.0)
        return h->max;

    /* The rank (1-based) of the value asked for: ceil(pct% of total). pct/100 is rarely exact
     * in binary (99.9 of 100000 computes as 99900.00000000001), so shave a relative 1e-12 off
     * before rounding up: far above that rounding noise, far below one count. */
    double x = pct / 100.0 * (double)h->total;
    double r = ceil(x - x * 1e-12);
    uint64_t rank = r < 1.0 ? 1u : (r >= (double)h->total ? h->total : (uint64_t)r);

    uint64_t seen = 0;
    for (unsigned i = 0; i < IOCP_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t high = bucket_high(i);
            if (high > h->max)
                high = h->max;
            if (high < h->min)
                high = h->min;
            return high;
        }
    }
    return h->max; /* unreachable while counts and total agree */
}

double iocp_histogram_mean(const iocp_histogram *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}
