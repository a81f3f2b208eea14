/*
 * histogram.h: a log-bucketed latency histogram (plain C11, no Win32), shared by the client's
 * load mode and the native benchmark load generator.
 *
 * Values are unsigned integers in any unit (the tools record microseconds). Buckets are
 * powers of two split into IOCP_HIST_SUB linear sub-buckets, so a percentile is exact to
 * within 1/IOCP_HIST_SUB of its value; recording is O(1) and allocates nothing.
 */
#ifndef IOCP_HISTOGRAM_H
#define IOCP_HISTOGRAM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOCP_HIST_SUB_BITS 5
#define IOCP_HIST_SUB      (1u << IOCP_HIST_SUB_BITS)
#define IOCP_HIST_BUCKETS  ((64u - IOCP_HIST_SUB_BITS + 1u) * IOCP_HIST_SUB)

typedef struct iocp_histogram {
    uint64_t counts[IOCP_HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max;
    double sum;
} iocp_histogram;

void iocp_histogram_init(iocp_histogram *h);
void iocp_histogram_record(iocp_histogram *h, uint64_t value);
/* dst += src. */
void iocp_histogram_merge(iocp_histogram *dst, const iocp_histogram *src);
/* The smallest value v such that at least pct percent of the recorded values are <= v (to
 * the bucket's resolution; never above max). pct in [0, 100]. 0 when empty. */
uint64_t iocp_histogram_percentile(const iocp_histogram *h, double pct);
double iocp_histogram_mean(const iocp_histogram *h);

#ifdef __cplusplus
}
#endif

#endif
