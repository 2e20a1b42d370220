#include <string.h>

#include "hist.h"

#define CAP ((INT64_C(1) << BENCH_HIST_MAX_BITS) - 1)

void
bench_hist_init(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

int
bench_hist_index(int64_t v)
{
	if (v < 0)
		v = 0;
	if (v > CAP)
		v = CAP;
	if (v < BENCH_HIST_SUB)
		return (int)v;
	/* msb >= SUB_BITS: keep the top SUB_BITS + 1 bits (m in [SUB, 2 * SUB)). */
	int shift = 63 - __builtin_clzll((unsigned long long)v) - BENCH_HIST_SUB_BITS;
	int64_t m = v >> shift;
	return (shift << BENCH_HIST_SUB_BITS) + (int)m;
}

static int
index_shift(int index)
{
	return index < BENCH_HIST_SUB ? 0 : (index >> BENCH_HIST_SUB_BITS) - 1;
}

int64_t
bench_hist_lower(int index)
{
	int shift = index_shift(index);
	int64_t m = index - (shift << BENCH_HIST_SUB_BITS);
	return m << shift;
}

int64_t
bench_hist_upper(int index)
{
	return bench_hist_lower(index) + (INT64_C(1) << index_shift(index)) - 1;
}

void
bench_hist_record(struct bench_hist *h, int64_t v)
{
	if (v < 0)
		v = 0;
	if (v > CAP)
		v = CAP;
	h->counts[bench_hist_index(v)]++;
	if (h->total == 0 || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->total++;
	h->sum += (double)v;
}

void
bench_hist_merge(struct bench_hist *into, const struct bench_hist *from)
{
	if (from->total == 0)
		return;
	for (int i = 0; i < BENCH_HIST_BUCKETS; i++)
		into->counts[i] += from->counts[i];
	if (into->total == 0 || from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
	into->total += from->total;
	into->sum += from->sum;
}

int64_t
bench_hist_percentile(const struct bench_hist *h, double pct)
{
	if (h->total == 0)
		return 0;
	if (pct >= 100.0)
		return h->max;
	/* The rank of the value that pct percent of the values are at or below. */
	uint64_t rank = (uint64_t)(pct / 100.0 * (double)h->total + 0.999999);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (int i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			int64_t v = bench_hist_upper(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

double
bench_hist_mean(const struct bench_hist *h)
{
	return h->total ? h->sum / (double)h->total : 0.0;
}

void
bench_hist_dump(const struct bench_hist *h, struct tn_buf *out)
{
	const char *sep = "";
	for (int i = 0; i < BENCH_HIST_BUCKETS; i++) {
		if (h->counts[i] == 0)
			continue;
		tn_buf_printf(out, "%s%lld:%llu", sep, (long long)bench_hist_lower(i),
		        (unsigned long long)h->counts[i]);
		sep = ",";
	}
}
