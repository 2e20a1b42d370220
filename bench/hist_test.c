/* The load generator's latency histogram: bucket layout, percentiles, merge, dump. */
#include <stdlib.h>

#include "hist.h"
#include "tn_test.h"

static struct bench_hist h1, h2;

TN_TEST(buckets_are_contiguous_and_tight)
{
	/* Every bucket starts one past the previous one's end, and is at most 1/128 of
	 * its lower bound wide. */
	for (int i = 1; i < BENCH_HIST_BUCKETS; i++) {
		TN_CHECK_INT(bench_hist_lower(i), ==, bench_hist_upper(i - 1) + 1);
		int64_t width = bench_hist_upper(i) - bench_hist_lower(i) + 1;
		TN_CHECK(width == 1 || width * BENCH_HIST_SUB <= bench_hist_lower(i));
	}
	TN_CHECK_INT(bench_hist_upper(BENCH_HIST_BUCKETS - 1), ==,
	        (INT64_C(1) << BENCH_HIST_MAX_BITS) - 1);
}

TN_TEST(values_land_in_their_bucket)
{
	int64_t probes[] = {0, 1, 127, 128, 255, 256, 257, 1000, 4095, 4096, 123456789,
	        (INT64_C(1) << 39) + 12345};
	for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++) {
		int i = bench_hist_index(probes[k]);
		TN_CHECK(bench_hist_lower(i) <= probes[k] && probes[k] <= bench_hist_upper(i));
	}
	TN_CHECK_INT(bench_hist_index(-5), ==, 0);
	TN_CHECK_INT(bench_hist_index(INT64_MAX), ==, BENCH_HIST_BUCKETS - 1);
}

TN_TEST(percentiles_of_a_uniform_run)
{
	bench_hist_init(&h1);
	for (int64_t v = 1; v <= 10000; v++)
		bench_hist_record(&h1, v);
	TN_CHECK_INT(h1.total, ==, 10000);
	TN_CHECK_INT(h1.min, ==, 1);
	TN_CHECK_INT(h1.max, ==, 10000);
	int64_t p50 = bench_hist_percentile(&h1, 50);
	int64_t p99 = bench_hist_percentile(&h1, 99);
	TN_CHECK(p50 >= 5000 && p50 <= 5000 + 5000 / 128);
	TN_CHECK(p99 >= 9900 && p99 <= 9900 + 9900 / 128);
	TN_CHECK_INT(bench_hist_percentile(&h1, 100), ==, 10000);
	TN_CHECK(bench_hist_mean(&h1) > 5000.49 && bench_hist_mean(&h1) < 5000.51);
}

TN_TEST(small_values_are_exact)
{
	bench_hist_init(&h1);
	bench_hist_record(&h1, 7);
	bench_hist_record(&h1, 7);
	bench_hist_record(&h1, 9);
	TN_CHECK_INT(bench_hist_percentile(&h1, 50), ==, 7);
	TN_CHECK_INT(bench_hist_percentile(&h1, 66), ==, 7);
	TN_CHECK_INT(bench_hist_percentile(&h1, 67), ==, 9);
	TN_CHECK_INT(bench_hist_percentile(&h1, 0.001), ==, 7);
}

TN_TEST(empty_reports_zero)
{
	bench_hist_init(&h1);
	TN_CHECK_INT(bench_hist_percentile(&h1, 50), ==, 0);
	TN_CHECK(bench_hist_mean(&h1) == 0.0);
	struct tn_buf b;
	tn_buf_init(&b);
	bench_hist_dump(&h1, &b);
	TN_CHECK_INT(b.len, ==, 0);
	tn_buf_fini(&b);
}

TN_TEST(percentile_never_exceeds_the_max)
{
	bench_hist_init(&h1);
	bench_hist_record(&h1, 1000); /* bucket 1000..1003 */
	TN_CHECK_INT(bench_hist_percentile(&h1, 50), ==, 1000);
}

TN_TEST(merge_adds_counts_and_extremes)
{
	bench_hist_init(&h1);
	bench_hist_init(&h2);
	bench_hist_record(&h1, 10);
	bench_hist_record(&h2, 3);
	bench_hist_record(&h2, 5000);
	bench_hist_merge(&h1, &h2);
	TN_CHECK_INT(h1.total, ==, 3);
	TN_CHECK_INT(h1.min, ==, 3);
	TN_CHECK_INT(h1.max, ==, 5000);
	TN_CHECK_INT(bench_hist_percentile(&h1, 50), ==, 10);
	bench_hist_init(&h2);
	bench_hist_merge(&h2, &h1); /* into an empty one */
	TN_CHECK_INT(h2.min, ==, 3);
	TN_CHECK_INT(h2.total, ==, 3);
}

TN_TEST(dump_lists_lower_bounds_and_counts)
{
	bench_hist_init(&h1);
	bench_hist_record(&h1, 2);
	bench_hist_record(&h1, 2);
	bench_hist_record(&h1, 1001);
	struct tn_buf b;
	tn_buf_init(&b);
	bench_hist_dump(&h1, &b);
	tn_buf_append_byte(&b, 0);
	TN_CHECK_STR((const char *)b.data, "2:2,1000:1");
	tn_buf_fini(&b);
}

TN_TEST_MAIN(TN_CASE(buckets_are_contiguous_and_tight), TN_CASE(values_land_in_their_bucket),
        TN_CASE(percentiles_of_a_uniform_run), TN_CASE(small_values_are_exact),
        TN_CASE(empty_reports_zero), TN_CASE(percentile_never_exceeds_the_max),
        TN_CASE(merge_adds_counts_and_extremes), TN_CASE(dump_lists_lower_bounds_and_counts))
