/* A log-linear histogram of non-negative integers (the load generator records
 * microseconds), in the manner of HdrHistogram: values below 128 have a bucket each;
 * above, every power of two is cut into 128 equal buckets, so a reported value is within
 * 1/128 (0.8%) of the recorded one. Fixed size (no allocation), mergeable, and printable
 * as "lower:count" pairs that bench/run.py merges across processes.
 *
 * Single-threaded: the owner's thread only. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#include "buf.h"

#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB      (1 << BENCH_HIST_SUB_BITS)
/* Values are capped at 2^40 - 1 (12 days in microseconds). */
#define BENCH_HIST_MAX_BITS 40
#define BENCH_HIST_BUCKETS  (BENCH_HIST_SUB * (BENCH_HIST_MAX_BITS - BENCH_HIST_SUB_BITS + 1))

struct bench_hist {
	uint64_t counts[BENCH_HIST_BUCKETS];
	uint64_t total;
	int64_t min; /* exact; meaningful when total > 0 */
	int64_t max; /* exact */
	double sum;  /* for the mean */
};

/* Empties h (caller's storage). */
void bench_hist_init(struct bench_hist *h);

/* Records one value; negative values count as 0, values past the cap as the cap. */
void bench_hist_record(struct bench_hist *h, int64_t v);

/* Adds every count of from into into. */
void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from);

/* The value at percentile pct (0..100]: the highest value of the bucket holding that
 * rank, but never above the exact maximum; 100 gives the exact maximum. 0 when empty. */
int64_t bench_hist_percentile(const struct bench_hist *h, double pct);

/* The mean of the recorded values (exact, from their sum); 0 when empty. */
double bench_hist_mean(const struct bench_hist *h);

/* The bucket index of v and a bucket's lower and upper bounds (inclusive). Pure; exposed
 * for the unit test. */
int bench_hist_index(int64_t v);
int64_t bench_hist_lower(int index);
int64_t bench_hist_upper(int index);

/* Appends the non-empty buckets as "lower:count" pairs separated by commas ("" when
 * empty), for merging elsewhere (bench/run.py uses the same bucket layout). */
void bench_hist_dump(const struct bench_hist *h, struct tn_buf *out);

#endif
