#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "tn_test.h"

/* Renders the registry into a NUL-terminated string (caller frees). */
static char *
render(void)
{
	struct tn_buf b;
	tn_buf_init(&b);
	tn_metrics_render(&b);
	return (char *)tn_buf_release(&b, NULL);
}

/* Checks the whole exposition text against want, byte for byte. */
#define CHECK_RENDER(want)                                                  \
	do {                                                                    \
		char *got_ = render();                                              \
		bool same_ = strcmp(got_, (want)) == 0;                             \
		if (!same_)                                                         \
			fprintf(stderr, "got:\n%s\nwant:\n%s\n", got_, (want));         \
		free(got_);                                                         \
		TN_CHECK(same_);                                                    \
	} while (0)

TN_TEST(test_counter_text)
{
	tn_metrics_reset_for_tests(false);
	struct tn_counter *c;
	TN_CHECK_OK(tn_metrics_counter(&c, "tern_messages_in_total", "Messages from clients."));
	CHECK_RENDER("# HELP tern_messages_in_total Messages from clients.\n"
		     "# TYPE tern_messages_in_total counter\n"
		     "tern_messages_in_total 0\n");
	tn_counter_inc(c);
	tn_counter_add(c, 41);
	TN_CHECK_INT(tn_counter_get(c), ==, 42);
	CHECK_RENDER("# HELP tern_messages_in_total Messages from clients.\n"
		     "# TYPE tern_messages_in_total counter\n"
		     "tern_messages_in_total 42\n");
}

TN_TEST(test_labelled_counter_escaping)
{
	tn_metrics_reset_for_tests(false);
	struct tn_metric_family *fam;
	TN_CHECK_OK(tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_kicks_total",
		"Kicks by reason.\nSecond line with a \\ backslash.", "reason", NULL, 0));
	/* Before any child exists the family is left out. */
	CHECK_RENDER("");
	struct tn_counter *big = tn_metrics_counter_labels(fam, "package too large");
	struct tn_counter *odd = tn_metrics_counter_labels(fam, "a\\b \"q\"\nz");
	TN_CHECK(big != odd);
	TN_CHECK(tn_metrics_counter_labels(fam, "package too large") == big);
	tn_counter_add(big, 3);
	tn_counter_inc(odd);
	CHECK_RENDER("# HELP tern_kicks_total Kicks by reason.\\nSecond line with a \\\\ backslash.\n"
		     "# TYPE tern_kicks_total counter\n"
		     "tern_kicks_total{reason=\"package too large\"} 3\n"
		     "tern_kicks_total{reason=\"a\\\\b \\\"q\\\"\\nz\"} 1\n");
}

TN_TEST(test_two_labels_and_reregistration)
{
	tn_metrics_reset_for_tests(false);
	struct tn_metric_family *fam, *again;
	TN_CHECK_OK(tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_rpc_calls_total", "RPC calls.",
		"target,kind", NULL, 0));
	TN_CHECK_OK(tn_metrics_family_new(&again, TN_METRIC_COUNTER, "tern_rpc_calls_total", "other help",
		"target,kind", NULL, 0));
	TN_CHECK(again == fam);
	struct tn_metric_family *other;
	TN_CHECK_INT(tn_metrics_family_new(&other, TN_METRIC_GAUGE, "tern_rpc_calls_total", "x",
		"target,kind", NULL, 0), ==, TN_EEXIST);
	TN_CHECK_INT(tn_metrics_family_new(&other, TN_METRIC_COUNTER, "tern_rpc_calls_total", "x",
		"target", NULL, 0), ==, TN_EEXIST);
	struct tn_counter *c;
	TN_CHECK_INT(tn_metrics_counter(&c, "tern_rpc_calls_total", "x"), ==, TN_EEXIST);

	tn_counter_add(tn_metrics_counter_labels(fam, "chat-server-1", "join"), 2);
	tn_counter_add(tn_metrics_counter_labels(fam, "chat-server-1", "send"), 5);
	tn_counter_inc(tn_metrics_counter_labels(fam, "chat-server-1", "join"));
	CHECK_RENDER("# HELP tern_rpc_calls_total RPC calls.\n"
		     "# TYPE tern_rpc_calls_total counter\n"
		     "tern_rpc_calls_total{target=\"chat-server-1\",kind=\"join\"} 3\n"
		     "tern_rpc_calls_total{target=\"chat-server-1\",kind=\"send\"} 5\n");

	struct tn_counter *c1, *c2;
	TN_CHECK_OK(tn_metrics_counter(&c1, "tern_same_total", NULL));
	TN_CHECK_OK(tn_metrics_counter(&c2, "tern_same_total", NULL));
	TN_CHECK(c1 == c2);
}

TN_TEST(test_gauge_text)
{
	tn_metrics_reset_for_tests(false);
	struct tn_gauge *g;
	struct tn_metric_family *fam;
	TN_CHECK_OK(tn_metrics_gauge(&g, "tern_sessions", "Sessions open."));
	TN_CHECK_OK(tn_metrics_family_new(&fam, TN_METRIC_GAUGE, "tern_queue_depth", "Queued items.",
		"queue", NULL, 0));
	tn_gauge_set(g, 10);
	tn_gauge_add(g, 5);
	tn_gauge_sub(g, 20);
	tn_gauge_inc(g);
	tn_gauge_dec(g);
	TN_CHECK_INT(tn_gauge_get(g), ==, -5);
	tn_gauge_set(tn_metrics_gauge_labels(fam, "push"), 7);
	CHECK_RENDER("# HELP tern_sessions Sessions open.\n"
		     "# TYPE tern_sessions gauge\n"
		     "tern_sessions -5\n"
		     "# HELP tern_queue_depth Queued items.\n"
		     "# TYPE tern_queue_depth gauge\n"
		     "tern_queue_depth{queue=\"push\"} 7\n");
}

TN_TEST(test_histogram_text)
{
	tn_metrics_reset_for_tests(false);
	static const double bounds[] = {0.005, 0.1, 1, 2.5};
	struct tn_histogram *h;
	TN_CHECK_OK(tn_metrics_histogram(&h, "tern_rpc_seconds", "RPC latency.", bounds, 4));
	CHECK_RENDER("# HELP tern_rpc_seconds RPC latency.\n"
		     "# TYPE tern_rpc_seconds histogram\n"
		     "tern_rpc_seconds_bucket{le=\"0.005\"} 0\n"
		     "tern_rpc_seconds_bucket{le=\"0.1\"} 0\n"
		     "tern_rpc_seconds_bucket{le=\"1\"} 0\n"
		     "tern_rpc_seconds_bucket{le=\"2.5\"} 0\n"
		     "tern_rpc_seconds_bucket{le=\"+Inf\"} 0\n"
		     "tern_rpc_seconds_sum 0\n"
		     "tern_rpc_seconds_count 0\n");
	tn_histogram_observe(h, 0.001); /* first bucket */
	tn_histogram_observe(h, 0.1);   /* on a bound: counted in le="0.1" */
	tn_histogram_observe(h, 0.5);
	tn_histogram_observe(h, 0.5);
	tn_histogram_observe(h, 7);     /* only +Inf */
	tn_histogram_observe(h, NAN);   /* ignored */
	TN_CHECK_INT(tn_histogram_count(h), ==, 5);
	TN_CHECK(tn_histogram_sum(h) == 0.001 + 0.1 + 0.5 + 0.5 + 7);
	CHECK_RENDER("# HELP tern_rpc_seconds RPC latency.\n"
		     "# TYPE tern_rpc_seconds histogram\n"
		     "tern_rpc_seconds_bucket{le=\"0.005\"} 1\n"
		     "tern_rpc_seconds_bucket{le=\"0.1\"} 2\n"
		     "tern_rpc_seconds_bucket{le=\"1\"} 4\n"
		     "tern_rpc_seconds_bucket{le=\"2.5\"} 4\n"
		     "tern_rpc_seconds_bucket{le=\"+Inf\"} 5\n"
		     "tern_rpc_seconds_sum 8.100999999999999\n"
		     "tern_rpc_seconds_count 5\n");
}

TN_TEST(test_labelled_histogram_text)
{
	tn_metrics_reset_for_tests(false);
	static const double us[] = {1000, 1000000};
	struct tn_metric_family *fam;
	TN_CHECK_OK(tn_metrics_family_new(&fam, TN_METRIC_HISTOGRAM, "tern_push_gap_us",
		"Push gaps.", "room", us, 2));
	struct tn_histogram *h = tn_metrics_histogram_labels(fam, "lobby");
	TN_CHECK(tn_metrics_histogram_labels(fam, "lobby") == h);
	tn_histogram_observe(h, 0.1);
	tn_histogram_observe(h, 0.2);
	tn_histogram_observe(h, 2500000);
	CHECK_RENDER("# HELP tern_push_gap_us Push gaps.\n"
		     "# TYPE tern_push_gap_us histogram\n"
		     "tern_push_gap_us_bucket{room=\"lobby\",le=\"1000\"} 2\n"
		     "tern_push_gap_us_bucket{room=\"lobby\",le=\"1000000\"} 2\n"
		     "tern_push_gap_us_bucket{room=\"lobby\",le=\"+Inf\"} 3\n"
		     "tern_push_gap_us_sum{room=\"lobby\"} 2500000.3\n"
		     "tern_push_gap_us_count{room=\"lobby\"} 3\n");
}

TN_TEST(test_invalid_names_refused)
{
	tn_metrics_reset_for_tests(true);
	static const char *const bad[] = {"", "9lives", "a-b", "a b", "caf\xc3\xa9", "a{b}", "a\"b"};
	struct tn_counter *c = NULL;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TN_CHECK_INT(tn_metrics_counter(&c, bad[i], "x"), ==, TN_EINVAL);
	TN_CHECK_INT(tn_metrics_counter(&c, NULL, "x"), ==, TN_EINVAL);
	TN_CHECK(c == NULL); /* out-parameter untouched on failure */
	TN_CHECK_OK(tn_metrics_counter(&c, ":colon_ok", "x"));
	TN_CHECK_OK(tn_metrics_counter(&c, "_under:score9", "x"));
	/* Built-in process metrics own their names. */
	struct tn_gauge *g;
	TN_CHECK_INT(tn_metrics_gauge(&g, "process_open_fds", "x"), ==, TN_EEXIST);

	struct tn_metric_family *f;
	static const char *const bad_labels[] = {"__reserved", "a-b", "a,a", "a,", ",a", "a,,b",
		"9x", "a b", "a,b,c,d,e,f,g,h,i"};
	for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++)
		TN_CHECK_INT(tn_metrics_family_new(&f, TN_METRIC_COUNTER, "tern_l_total", "x",
			bad_labels[i], NULL, 0), ==, TN_EINVAL);
	TN_CHECK_OK(tn_metrics_family_new(&f, TN_METRIC_COUNTER, "tern_l_total", "x",
		"a,b,c,d,e,f,g,h", NULL, 0));
	TN_CHECK_OK(tn_metrics_family_new(&f, TN_METRIC_COUNTER, "tern_le_total", "x", "le", NULL, 0));

	static const double down[] = {1, 0.5};
	static const double same[] = {1, 1};
	static const double inf[] = {1, INFINITY};
	static const double not_a_number[] = {NAN};
	static const double ok[] = {1};
	static const double other[] = {2};
	struct tn_histogram *h;
	TN_CHECK_INT(tn_metrics_histogram(&h, "tern_h1", "x", down, 2), ==, TN_EINVAL);
	TN_CHECK_INT(tn_metrics_histogram(&h, "tern_h1", "x", same, 2), ==, TN_EINVAL);
	TN_CHECK_INT(tn_metrics_histogram(&h, "tern_h1", "x", inf, 2), ==, TN_EINVAL);
	TN_CHECK_INT(tn_metrics_histogram(&h, "tern_h1", "x", not_a_number, 1), ==, TN_EINVAL);
	TN_CHECK_INT(tn_metrics_histogram(&h, "tern_h1", "x", NULL, 1), ==, TN_EINVAL);
	TN_CHECK_INT(tn_metrics_family_new(&f, TN_METRIC_HISTOGRAM, "tern_h2", "x", "le", ok, 1),
		==, TN_EINVAL);
	TN_CHECK_INT(tn_metrics_family_new(&f, TN_METRIC_COUNTER, "tern_c3", "x", NULL, ok, 1),
		==, TN_EINVAL);
	TN_CHECK_INT(tn_metrics_family_new(&f, (enum tn_metric_type)7, "tern_c4", "x", NULL, NULL, 0),
		==, TN_EINVAL);
	/* Different bounds under the same name are a different metric. */
	TN_CHECK_OK(tn_metrics_histogram(&h, "tern_h1", "x", ok, 1));
	TN_CHECK_INT(tn_metrics_histogram(&h, "tern_h1", "x", same, 1), ==, TN_OK);
	TN_CHECK_INT(tn_metrics_histogram(&h, "tern_h1", "x", down, 1), ==, TN_OK);
	TN_CHECK_INT(tn_metrics_histogram(&h, "tern_h1", "x", other, 1), ==, TN_EEXIST);
	TN_CHECK_INT(tn_metrics_histogram(&h, "tern_h1", "x", NULL, 0), ==, TN_EEXIST);
	/* A histogram with only the +Inf bucket is legal. */
	TN_CHECK_OK(tn_metrics_histogram(&h, "tern_h5", "x", NULL, 0));
	tn_histogram_observe(h, -3);
	TN_CHECK_INT(tn_histogram_count(h), ==, 1);
}

/* Runs fn in a child process and reports whether it died of SIGABRT. */
static bool
aborts(void (*fn)(struct tn_metric_family *), struct tn_metric_family *fam)
{
	pid_t pid = fork();
	if (pid == 0) {
		fclose(stderr); /* the expected log line is noise here */
		fn(fam);
		_exit(0);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return false;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void
too_many_values(struct tn_metric_family *fam)
{
	tn_metrics_counter_labels(fam, "a", "b");
}

static void
too_few_values(struct tn_metric_family *fam)
{
	tn_metrics_counter_labels(fam, "a");
}

static void
wrong_type(struct tn_metric_family *fam)
{
	tn_metrics_gauge_labels(fam, "a", "b");
}

static void
right_values(struct tn_metric_family *fam)
{
	tn_metrics_counter_labels(fam, "a", "");
}

TN_TEST(test_label_mismatch_aborts)
{
	tn_metrics_reset_for_tests(false);
	struct tn_metric_family *fam;
	TN_CHECK_OK(tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_two_total", "x", "a,b",
		NULL, 0));
	TN_CHECK(!aborts(right_values, fam));
	TN_CHECK(aborts(too_few_values, fam));
	TN_CHECK(aborts(wrong_type, fam));
	TN_CHECK_OK(tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_one_total", "x", "a",
		NULL, 0));
	TN_CHECK(aborts(too_many_values, fam));
}

enum { THREADS = 4, PER_THREAD = 100000 };

struct hammer {
	struct tn_counter *counter;
	struct tn_gauge *gauge;
	struct tn_histogram *hist;
	struct tn_metric_family *fam;
	struct tn_counter *child;
};

static void *
hammer_main(void *arg)
{
	struct hammer *hm = arg;
	/* Every thread asks for the same child concurrently: there must be only one. */
	hm->child = tn_metrics_counter_labels(hm->fam, "shared");
	for (int i = 0; i < PER_THREAD; i++) {
		tn_counter_inc(hm->counter);
		tn_gauge_add(hm->gauge, 2);
		tn_gauge_dec(hm->gauge);
		tn_histogram_observe(hm->hist, (double)(i % 3)); /* 0, 1, 2: sums stay exact */
		tn_counter_inc(hm->child);
	}
	return NULL;
}

static void *
render_main(void *arg)
{
	/* Scrapes while the others update, to let sanitizers see the two paths race. */
	for (int i = 0; i < 50; i++) {
		char *text = render();
		free(text);
	}
	return arg;
}

TN_TEST(test_concurrent_updates_sum_exactly)
{
	tn_metrics_reset_for_tests(true);
	static const double bounds[] = {0.5, 1.5};
	struct hammer base = {0};
	TN_CHECK_OK(tn_metrics_counter(&base.counter, "tern_hammer_total", "x"));
	TN_CHECK_OK(tn_metrics_gauge(&base.gauge, "tern_hammer_gauge", "x"));
	TN_CHECK_OK(tn_metrics_histogram(&base.hist, "tern_hammer_hist", "x", bounds, 2));
	TN_CHECK_OK(tn_metrics_family_new(&base.fam, TN_METRIC_COUNTER, "tern_hammer_child_total",
		"x", "k", NULL, 0));
	pthread_t tids[THREADS + 1];
	struct hammer hm[THREADS];
	for (int t = 0; t < THREADS; t++) {
		hm[t] = base;
		TN_CHECK_OK(pthread_create(&tids[t], NULL, hammer_main, &hm[t]));
	}
	TN_CHECK_OK(pthread_create(&tids[THREADS], NULL, render_main, NULL));
	for (int t = 0; t <= THREADS; t++)
		pthread_join(tids[t], NULL);

	const uint64_t total = (uint64_t)THREADS * PER_THREAD;
	TN_CHECK_INT(tn_counter_get(base.counter), ==, total);
	TN_CHECK_INT(tn_gauge_get(base.gauge), ==, total);
	TN_CHECK_INT(tn_histogram_count(base.hist), ==, total);
	/* Per thread: 33334 zeros, 33333 ones, 33333 twos. */
	TN_CHECK(tn_histogram_sum(base.hist) == (double)THREADS * (33333 + 2 * 33333));
	for (int t = 1; t < THREADS; t++)
		TN_CHECK(hm[t].child == hm[0].child);
	TN_CHECK_INT(tn_counter_get(hm[0].child), ==, total);

	char *text = render();
	bool found = strstr(text, "tern_hammer_hist_bucket{le=\"0.5\"} 133336\n") != NULL &&
		strstr(text, "tern_hammer_hist_bucket{le=\"1.5\"} 266668\n") != NULL &&
		strstr(text, "tern_hammer_hist_bucket{le=\"+Inf\"} 400000\n") != NULL &&
		strstr(text, "tern_hammer_child_total{k=\"shared\"} 400000\n") != NULL;
	free(text);
	TN_CHECK(found);
}

struct collect_state {
	struct tn_gauge *gauge;
	int calls;
};

static void
collect_depth(void *arg)
{
	struct collect_state *st = arg;
	st->calls++;
	tn_gauge_set(st->gauge, 100 + st->calls);
}

TN_TEST(test_collectors)
{
	tn_metrics_reset_for_tests(false);
	struct collect_state st = {0};
	TN_CHECK_OK(tn_metrics_gauge(&st.gauge, "tern_depth", "Depth."));
	tn_metrics_add_collector(collect_depth, &st);
	CHECK_RENDER("# HELP tern_depth Depth.\n# TYPE tern_depth gauge\ntern_depth 101\n");
	CHECK_RENDER("# HELP tern_depth Depth.\n# TYPE tern_depth gauge\ntern_depth 102\n");
	TN_CHECK(tn_metrics_remove_collector(collect_depth, &st));
	TN_CHECK(!tn_metrics_remove_collector(collect_depth, &st));
	CHECK_RENDER("# HELP tern_depth Depth.\n# TYPE tern_depth gauge\ntern_depth 102\n");
	TN_CHECK_INT(st.calls, ==, 2);
}

/* Finds "name value\n" in text and parses the value. */
static bool
sample_value(const char *text, const char *name, double *out)
{
	char key[128];
	snprintf(key, sizeof(key), "\n%s ", name);
	const char *p = strstr(text, key);
	if (p == NULL)
		return false;
	char *end;
	*out = strtod(p + strlen(key), &end);
	return end != p + strlen(key) && *end == '\n';
}

TN_TEST(test_process_metrics)
{
	tn_metrics_reset_for_tests(true);
	struct tn_counter *c;
	TN_CHECK_OK(tn_metrics_counter(&c, "tern_after_process_total", "x"));
	char *text = render();
	double rss = 0, fds = 0, maxfds = 0, start = 0, cpu = -1;
	static const char first[] = "# HELP process_resident_memory_bytes ";
	bool ok = strncmp(text, first, strlen(first)) == 0 &&
		strstr(text, "# TYPE process_resident_memory_bytes gauge\n") != NULL &&
		strstr(text, "# TYPE process_cpu_seconds_total counter\n") != NULL &&
		sample_value(text, "process_resident_memory_bytes", &rss) &&
		sample_value(text, "process_open_fds", &fds) &&
		sample_value(text, "process_max_fds", &maxfds) &&
		sample_value(text, "process_start_time_seconds", &start) &&
		sample_value(text, "process_cpu_seconds_total", &cpu);
	/* Application families come after the process ones. */
	const char *proc = strstr(text, "process_cpu_seconds_total ");
	const char *app = strstr(text, "tern_after_process_total 0\n");
	bool ordered = proc != NULL && app != NULL && proc < app;
	if (!ok)
		fprintf(stderr, "%s", text);
	free(text);
	TN_CHECK(ok);
	TN_CHECK(ordered);
	TN_CHECK(rss > 1024 * 1024 && rss < 1e12);
	TN_CHECK(fds >= 3 && fds <= maxfds);
	double now = (double)time(NULL);
	TN_CHECK(start > 1.6e9 && start <= now + 1 && start > now - 86400);
	TN_CHECK(cpu >= 0 && cpu < 3600);

	tn_metrics_reset_for_tests(false);
	text = render();
	bool empty = strcmp(text, "") == 0;
	free(text);
	TN_CHECK(empty);
}

TN_TEST_MAIN(TN_CASE(test_counter_text), TN_CASE(test_labelled_counter_escaping),
	TN_CASE(test_two_labels_and_reregistration), TN_CASE(test_gauge_text),
	TN_CASE(test_histogram_text), TN_CASE(test_labelled_histogram_text),
	TN_CASE(test_invalid_names_refused), TN_CASE(test_concurrent_updates_sum_exactly),
	TN_CASE(test_label_mismatch_aborts), TN_CASE(test_collectors),
	TN_CASE(test_process_metrics))
