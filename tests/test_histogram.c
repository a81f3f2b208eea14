/* test_histogram.c: percentiles of known distributions stay within the documented error
 * (1/IOCP_HIST_SUB of the value), and the edges (empty, one value, UINT64_MAX, merge) hold.
 * Plain C11: builds and runs natively as well as under Wine. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "histogram.h"

/* The histogram is ~15 KiB: keep it off the stack of the test thread. */
static iocp_histogram h1, h2, h3;

/* A reported percentile is the top of the bucket holding the true value, capped at max: never
 * below the true value, and above it by less than 1/IOCP_HIST_SUB of it. */
static void check_close(uint64_t got, uint64_t exact, double pct)
{
    CHECK_MSG(got >= exact && got - exact <= exact / IOCP_HIST_SUB,
              "p%g: got %llu, exact %llu (allowed +%llu)", pct, (unsigned long long)got,
              (unsigned long long)exact, (unsigned long long)(exact / IOCP_HIST_SUB));
}

/* The exact percentile of a sorted array, by the header's definition, for pct = k/10. */
static uint64_t exact_permille(const uint64_t *sorted, uint64_t n, unsigned k)
{
    uint64_t rank = (k * n + 999u) / 1000u; /* ceil(k/1000 * n) */
    if (rank == 0)
        rank = 1;
    return sorted[rank - 1];
}

static void uniform_1_to_100000(void)
{
    const uint64_t n = 100000;
    iocp_histogram_init(&h1);
    for (uint64_t v = 1; v <= n; v++)
        iocp_histogram_record(&h1, v);
    CHECK_EQ_U(h1.total, n);
    CHECK_EQ_U(h1.min, 1);
    CHECK_EQ_U(h1.max, n);
    CHECK(iocp_histogram_mean(&h1) == 50000.5);
    /* Every tenth of a percent: the exact answer is ceil(k/1000 * n) itself. */
    for (unsigned k = 1; k <= 1000; k++) {
        uint64_t exact = (k * n + 999u) / 1000u;
        check_close(iocp_histogram_percentile(&h1, k / 10.0), exact, k / 10.0);
    }
    CHECK_EQ_U(iocp_histogram_percentile(&h1, 0.0), 1);
    CHECK_EQ_U(iocp_histogram_percentile(&h1, 100.0), n);
    /* The usual report points, spelled as the tools spell them. */
    check_close(iocp_histogram_percentile(&h1, 50.0), 50000, 50.0);
    check_close(iocp_histogram_percentile(&h1, 90.0), 90000, 90.0);
    check_close(iocp_histogram_percentile(&h1, 99.0), 99000, 99.0);
    check_close(iocp_histogram_percentile(&h1, 99.9), 99900, 99.9);
    check_close(iocp_histogram_percentile(&h1, 99.99), 99990, 99.99);
}

static void small_values_exact(void)
{
    /* Below 2 * IOCP_HIST_SUB every value has its own bucket. */
    iocp_histogram_init(&h1);
    for (uint64_t v = 0; v < 2 * IOCP_HIST_SUB; v++)
        iocp_histogram_record(&h1, v);
    for (uint64_t v = 0; v < 2 * IOCP_HIST_SUB; v++) {
        double pct = (double)(v + 1) * 100.0 / (double)(2 * IOCP_HIST_SUB);
        CHECK_EQ_U(iocp_histogram_percentile(&h1, pct), v);
    }
}

static void constant(void)
{
    iocp_histogram_init(&h1);
    for (int i = 0; i < 1000; i++)
        iocp_histogram_record(&h1, 12345);
    CHECK_EQ_U(h1.total, 1000);
    CHECK(iocp_histogram_mean(&h1) == 12345.0);
    /* Capped at max: a constant comes back exact at every percentile. */
    for (unsigned k = 0; k <= 1000; k++)
        CHECK_EQ_U(iocp_histogram_percentile(&h1, k / 10.0), 12345);
}

static void single_value(void)
{
    static const uint64_t values[] = {0, 1, 31, 32, 33, 1000, 1u << 20, 123456789012345ull};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        iocp_histogram_init(&h1);
        iocp_histogram_record(&h1, values[i]);
        CHECK_EQ_U(h1.total, 1);
        CHECK_EQ_U(h1.min, values[i]);
        CHECK_EQ_U(h1.max, values[i]);
        CHECK_EQ_U(iocp_histogram_percentile(&h1, 0.0), values[i]);
        CHECK_EQ_U(iocp_histogram_percentile(&h1, 50.0), values[i]);
        CHECK_EQ_U(iocp_histogram_percentile(&h1, 99.9), values[i]);
        CHECK_EQ_U(iocp_histogram_percentile(&h1, 100.0), values[i]);
        CHECK(iocp_histogram_mean(&h1) == (double)values[i]);
    }
}

static void empty(void)
{
    iocp_histogram_init(&h1);
    CHECK_EQ_U(h1.total, 0);
    CHECK_EQ_U(iocp_histogram_percentile(&h1, 0.0), 0);
    CHECK_EQ_U(iocp_histogram_percentile(&h1, 50.0), 0);
    CHECK_EQ_U(iocp_histogram_percentile(&h1, 100.0), 0);
    CHECK(iocp_histogram_mean(&h1) == 0.0);
    /* Merging an empty one changes nothing, min included. */
    iocp_histogram_init(&h2);
    iocp_histogram_record(&h2, 7);
    iocp_histogram_merge(&h2, &h1);
    CHECK_EQ_U(h2.total, 1);
    CHECK_EQ_U(h2.min, 7);
    CHECK_EQ_U(h2.max, 7);
    /* And merging into an empty one gives the other. */
    iocp_histogram_merge(&h1, &h2);
    CHECK_EQ_U(h1.total, 1);
    CHECK_EQ_U(h1.min, 7);
    CHECK_EQ_U(iocp_histogram_percentile(&h1, 50.0), 7);
}

static void huge_values(void)
{
    iocp_histogram_init(&h1);
    iocp_histogram_record(&h1, UINT64_MAX);
    CHECK_EQ_U(iocp_histogram_percentile(&h1, 50.0), UINT64_MAX);
    CHECK_EQ_U(h1.counts[IOCP_HIST_BUCKETS - 1], 1); /* the very last bucket */

    /* 1000 values spread over the top group [2^63, 2^64). */
    static uint64_t v[1000];
    iocp_histogram_init(&h1);
    for (unsigned i = 0; i < 1000; i++) {
        v[i] = UINT64_MAX - (uint64_t)(999 - i) * (UINT64_MAX / 2000u); /* ascending */
        iocp_histogram_record(&h1, v[i]);
    }
    CHECK_EQ_U(h1.max, UINT64_MAX);
    CHECK_EQ_U(h1.min, v[0]);
    CHECK(v[0] >= (1ull << 63));
    for (unsigned k = 1; k <= 1000; k++)
        check_close(iocp_histogram_percentile(&h1, k / 10.0), exact_permille(v, 1000, k), k / 10.0);
    CHECK_EQ_U(iocp_histogram_percentile(&h1, 100.0), UINT64_MAX);
    CHECK(iocp_histogram_mean(&h1) > 9.2e18 && iocp_histogram_mean(&h1) <= 1.8447e19);

    /* Every power of two and its neighbours lands in a bucket whose top is within bound. */
    for (unsigned bit = 0; bit < 64; bit++) {
        uint64_t p = 1ull << bit;
        uint64_t around[3] = {p - 1, p, p + 1};
        for (int j = 0; j < 3; j++) {
            iocp_histogram_init(&h2);
            iocp_histogram_record(&h2, around[j]);
            iocp_histogram_record(&h2, UINT64_MAX); /* so the cap at max does not hide it */
            check_close(iocp_histogram_percentile(&h2, 50.0), around[j], 50.0);
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void random_magnitudes(void)
{
    /* Log-uniform values from 0 to 2^64: every group of buckets gets used. */
    enum { N = 50000 };
    static uint64_t v[N];
    uint64_t seed = 0x5eed1234abcdull;
    iocp_histogram_init(&h1);
    for (unsigned i = 0; i < N; i++) {
        unsigned bits = (unsigned)(test_rand(&seed) % 65u);
        uint64_t r = test_rand(&seed);
        v[i] = bits == 0 ? 0 : (bits == 64 ? r : r >> (64 - bits));
        iocp_histogram_record(&h1, v[i]);
    }
    qsort(v, N, sizeof v[0], cmp_u64);
    CHECK_EQ_U(h1.min, v[0]);
    CHECK_EQ_U(h1.max, v[N - 1]);
    for (unsigned k = 0; k <= 1000; k++)
        check_close(iocp_histogram_percentile(&h1, k / 10.0), exact_permille(v, N, k), k / 10.0);
}

static void merge(void)
{
    /* Two halves merged equal the whole recorded at once, bucket by bucket. */
    iocp_histogram_init(&h1);
    iocp_histogram_init(&h2);
    iocp_histogram_init(&h3);
    for (uint64_t v = 1; v <= 100000; v++) {
        iocp_histogram_record(v % 3 ? &h1 : &h2, v * 7);
        iocp_histogram_record(&h3, v * 7);
    }
    iocp_histogram_merge(&h1, &h2);
    CHECK_EQ_U(h1.total, h3.total);
    CHECK_EQ_U(h1.min, 7);
    CHECK_EQ_U(h1.max, 700000);
    CHECK(memcmp(h1.counts, h3.counts, sizeof h1.counts) == 0);
    CHECK(iocp_histogram_mean(&h1) == iocp_histogram_mean(&h3));
    for (unsigned k = 0; k <= 1000; k++) {
        CHECK_EQ_U(iocp_histogram_percentile(&h1, k / 10.0),
                   iocp_histogram_percentile(&h3, k / 10.0));
        uint64_t exact = k == 0 ? 7 : 7 * ((k * 100000u + 999u) / 1000u);
        check_close(iocp_histogram_percentile(&h1, k / 10.0), exact, k / 10.0);
    }

    /* Disjoint ranges: the low one's min and the high one's max survive. */
    iocp_histogram_init(&h1);
    iocp_histogram_init(&h2);
    for (uint64_t v = 0; v < 1000; v++) {
        iocp_histogram_record(&h1, 1000000 + v);
        iocp_histogram_record(&h2, 10 + v);
    }
    iocp_histogram_merge(&h1, &h2);
    CHECK_EQ_U(h1.total, 2000);
    CHECK_EQ_U(h1.min, 10);
    CHECK_EQ_U(h1.max, 1000999);
    check_close(iocp_histogram_percentile(&h1, 50.0), 1009, 50.0);
    check_close(iocp_histogram_percentile(&h1, 50.1), 1000001, 50.1);
}

static const test_case cases[] = {
    {"uniform_1_to_100000", uniform_1_to_100000},
    {"small_values_exact", small_values_exact},
    {"constant", constant},
    {"single_value", single_value},
    {"empty", empty},
    {"huge_values", huge_values},
    {"random_magnitudes", random_magnitudes},
    {"merge", merge},
};

TEST_MAIN(cases)
