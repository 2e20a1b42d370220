/* Process-wide metrics: counters, gauges and histograms that any module registers, rendered
 * in the Prometheus text exposition format 0.0.4 for the admin port's /metrics.
 *
 * Registration, label-child lookup, collector changes and rendering take one registry
 * mutex, so they may be called from any thread; they are meant for start-up and other cold
 * paths. Updates (tn_counter_inc, tn_gauge_set, tn_histogram_observe, ...) take no lock:
 * relaxed C11 atomics, safe from any thread. Keep the pointer a registration returns and
 * update through it; metrics live until the process exits (or tn_metrics_reset_for_tests).
 *
 * Typical use:
 *   static struct tn_counter *msgs_in;
 *   static struct tn_metric_family *kicks;
 *   tn_metrics_counter(&msgs_in, "tern_messages_in_total", "Messages from clients");
 *   tn_metrics_family_new(&kicks, TN_METRIC_COUNTER, "tern_kicks_total",
 *                         "Sessions kicked, by reason", "reason", NULL, 0);
 *   tn_counter_inc(msgs_in);
 *   tn_counter_inc(tn_metrics_counter_labels(kicks, "package too large"));
 */
#ifndef TN_METRICS_H
#define TN_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum tn_metric_type {
	TN_METRIC_COUNTER = 0,   /* monotonically increasing uint64 */
	TN_METRIC_GAUGE = 1,     /* int64 that goes up and down */
	TN_METRIC_HISTOGRAM = 2, /* observations counted in fixed buckets, plus their sum */
};

/* Most label names a family may have. */
#define TN_METRICS_MAX_LABELS 8

/* A metric family: name, help, type, label names, and its children (one per tuple of
 * label values). Opaque; owned by the registry. */
struct tn_metric_family;

/* One counter, gauge or histogram sample set. Owned by the registry; never freed while
 * the process runs. The fields are internal: use the functions below. */
struct tn_counter {
	_Atomic uint64_t value;
};

struct tn_gauge {
	_Atomic int64_t value;
};

struct tn_histogram;

/* Called at scrape time, before anything is rendered, to refresh gauges (memory, queue
 * depths, ...). Runs on the thread that renders (an nng HTTP thread for /metrics), with no
 * registry lock held, so it may register metrics or look up children; it must not render,
 * nor add or remove collectors. */
typedef void (*tn_metrics_collect_fn)(void *arg);

/* Registers a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]*; help may be NULL (empty)
 * and is copied. labels is NULL or "" for none, else comma-separated label names, each
 * [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", no duplicates, at most
 * TN_METRICS_MAX_LABELS, and not "le" for histograms. bounds[0..nbounds) are a histogram's
 * bucket upper bounds (finite, strictly increasing; +Inf is implicit); they must be NULL/0
 * for other types. All arguments are copied.
 * Registering the same name again with the same type, labels and bounds returns the
 * existing family (help is not compared); anything else under that name is TN_EEXIST.
 * Writes *out only on success. Returns TN_OK, TN_EINVAL or TN_EEXIST. Any thread. */
int tn_metrics_family_new(struct tn_metric_family **out, enum tn_metric_type type,
	const char *name, const char *help, const char *labels, const double *bounds,
	size_t nbounds);

/* Register an unlabelled counter, gauge or histogram (a family with no labels and its one
 * child, which is rendered even while zero). Same rules and results as
 * tn_metrics_family_new; *out is written only on success. Any thread. */
int tn_metrics_counter(struct tn_counter **out, const char *name, const char *help);
int tn_metrics_gauge(struct tn_gauge **out, const char *name, const char *help);
int tn_metrics_histogram(struct tn_histogram **out, const char *name, const char *help,
	const double *bounds, size_t nbounds);

/* The child of a labelled family for one tuple of label values, given in the family's
 * label order (non-NULL strings, copied; any bytes, escaped on output). The same values
 * always return the same child; a new tuple creates it (it then renders, even at zero).
 * Takes the registry lock: cache the result on hot paths. Label values must come from a
 * bounded set (never raw client input), since children are never freed.
 * A wrong number of values or a family of another type is a programmer error: it logs and
 * aborts. Never returns NULL. Any thread. */
#define tn_metrics_counter_labels(fam, ...) \
	tn_metrics_counter_labels_((fam), __VA_ARGS__, (const char *)NULL)
#define tn_metrics_gauge_labels(fam, ...) \
	tn_metrics_gauge_labels_((fam), __VA_ARGS__, (const char *)NULL)
#define tn_metrics_histogram_labels(fam, ...) \
	tn_metrics_histogram_labels_((fam), __VA_ARGS__, (const char *)NULL)
struct tn_counter *tn_metrics_counter_labels_(struct tn_metric_family *fam, ...);
struct tn_gauge *tn_metrics_gauge_labels_(struct tn_metric_family *fam, ...);
struct tn_histogram *tn_metrics_histogram_labels_(struct tn_metric_family *fam, ...);

/* Adds fn(arg) to the collectors run at each render, in the order added. arg is borrowed
 * until tn_metrics_remove_collector. Any thread except from inside a collector. */
void tn_metrics_add_collector(tn_metrics_collect_fn fn, void *arg);

/* Removes the first collector equal to (fn, arg); returns false when there was none. It
 * waits for a render in progress to finish its collectors, so arg may be freed once this
 * returns. Any thread except from inside a collector. */
bool tn_metrics_remove_collector(tn_metrics_collect_fn fn, void *arg);

/* Runs the collectors, then appends the exposition text to out: the built-in process
 * metrics (process_resident_memory_bytes, process_open_fds, process_max_fds,
 * process_start_time_seconds, process_cpu_seconds_total), then every family in
 * registration order, each as # HELP, # TYPE and its samples (children in creation
 * order). Labelled families with no child yet are left out. Any thread except from inside
 * a collector; renders are serialised. */
void tn_metrics_render(struct tn_buf *out);

/* Frees every family, child and collector and starts an empty registry, with or without
 * the built-in process metrics. Pointers handed out before become invalid: for tests only,
 * when no other thread touches metrics. */
void tn_metrics_reset_for_tests(bool process_metrics);

/* Adds n to / increments a counter. Lock-free; any thread. */
static inline void
tn_counter_add(struct tn_counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

static inline void
tn_counter_inc(struct tn_counter *c)
{
	tn_counter_add(c, 1);
}

/* The counter's current value. Any thread. */
static inline uint64_t
tn_counter_get(const struct tn_counter *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)&c->value, memory_order_relaxed);
}

/* Sets / adds to / subtracts from a gauge. Lock-free; any thread. */
static inline void
tn_gauge_set(struct tn_gauge *g, int64_t v)
{
	atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

static inline void
tn_gauge_add(struct tn_gauge *g, int64_t n)
{
	atomic_fetch_add_explicit(&g->value, n, memory_order_relaxed);
}

static inline void
tn_gauge_sub(struct tn_gauge *g, int64_t n)
{
	atomic_fetch_sub_explicit(&g->value, n, memory_order_relaxed);
}

static inline void
tn_gauge_inc(struct tn_gauge *g)
{
	tn_gauge_add(g, 1);
}

static inline void
tn_gauge_dec(struct tn_gauge *g)
{
	tn_gauge_sub(g, 1);
}

/* The gauge's current value. Any thread. */
static inline int64_t
tn_gauge_get(const struct tn_gauge *g)
{
	return atomic_load_explicit((_Atomic int64_t *)&g->value, memory_order_relaxed);
}

/* Records one observation: counts it in the first bucket whose bound is >= v (else +Inf)
 * and adds v to the sum. NaN is ignored (it would poison the sum for good). Lock-free
 * (the sum is a compare-and-swap loop on the double's bits); any thread. */
void tn_histogram_observe(struct tn_histogram *h, double v);

/* Number of observations so far (the +Inf bucket). Any thread. */
uint64_t tn_histogram_count(const struct tn_histogram *h);

/* Sum of the observations so far. Any thread. */
double tn_histogram_sum(const struct tn_histogram *h);

#endif
