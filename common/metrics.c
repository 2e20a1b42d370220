#include "metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

struct tn_histogram {
	const double *bounds; /* the family's; it outlives the child */
	size_t nbounds;
	/* The double sum's bits, so that a compare-and-swap can add to it lock-free. */
	_Atomic uint64_t sum_bits;
	/* nbounds + 1 per-bucket (not cumulative) counts, the last one for +Inf. Rendering
	 * accumulates them, so _count always equals the +Inf bucket. */
	_Atomic uint64_t *buckets;
};

struct metric_child {
	struct metric_child *next;
	char **values; /* the family's nlabels label values */
	union {
		struct tn_counter counter;
		struct tn_gauge gauge;
		struct tn_histogram hist;
	} u;
};

struct tn_metric_family {
	struct tn_metric_family *next;
	enum tn_metric_type type;
	char *name;
	char *help;
	size_t nlabels;
	char *labels[TN_METRICS_MAX_LABELS];
	double *bounds;
	size_t nbounds;
	struct metric_child *children; /* creation order */
	struct metric_child **children_tail;
};

struct collector {
	struct collector *next;
	tn_metrics_collect_fn fn;
	void *arg;
};

/* Lock order: collect_mu, then mu. collect_mu is held while collectors run, so renders are
 * serialised and tn_metrics_remove_collector waits for a running collector. */
static struct {
	pthread_mutex_t mu;         /* families and their children */
	pthread_mutex_t collect_mu; /* collectors */
	struct tn_metric_family *families;
	struct collector *collectors;
	bool process;
} reg = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.collect_mu = PTHREAD_MUTEX_INITIALIZER,
	.process = true,
};

static const char *const process_names[] = {
	"process_resident_memory_bytes", "process_open_fds", "process_max_fds",
	"process_start_time_seconds", "process_cpu_seconds_total",
};

static const char *const type_names[] = {"counter", "gauge", "histogram"};

/* ---- names and definitions ---- */

static bool
metric_name_valid(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool
label_name_valid(const char *s, size_t len, enum tn_metric_type type)
{
	if (len == 0 || (len >= 2 && s[0] == '_' && s[1] == '_'))
		return false; /* "__" names are reserved for Prometheus itself */
	if (type == TN_METRIC_HISTOGRAM && len == 2 && memcmp(s, "le", 2) == 0)
		return false; /* the bucket label */
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool
bounds_valid(enum tn_metric_type type, const double *bounds, size_t nbounds)
{
	if (type != TN_METRIC_HISTOGRAM)
		return bounds == NULL && nbounds == 0;
	if (nbounds > 0 && bounds == NULL)
		return false;
	for (size_t i = 0; i < nbounds; i++) {
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
			return false;
	}
	return true;
}

static void
family_free(struct tn_metric_family *fam)
{
	struct metric_child *c = fam->children;
	while (c) {
		struct metric_child *next = c->next;
		for (size_t i = 0; i < fam->nlabels; i++)
			free(c->values[i]);
		free(c->values);
		if (fam->type == TN_METRIC_HISTOGRAM)
			free(c->u.hist.buckets);
		free(c);
		c = next;
	}
	for (size_t i = 0; i < fam->nlabels; i++)
		free(fam->labels[i]);
	free(fam->bounds);
	free(fam->help);
	free(fam->name);
	free(fam);
}

/* Splits "a,b,c" into fam->labels; false on any invalid or repeated name. */
static bool
family_parse_labels(struct tn_metric_family *fam, const char *labels)
{
	const char *p = labels;
	while (p != NULL && *p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (fam->nlabels == TN_METRICS_MAX_LABELS || !label_name_valid(p, len, fam->type))
			return false;
		for (size_t i = 0; i < fam->nlabels; i++) {
			if (strlen(fam->labels[i]) == len && memcmp(fam->labels[i], p, len) == 0)
				return false;
		}
		fam->labels[fam->nlabels++] = tn_strndup(p, len);
		if (comma && comma[1] == '\0')
			return false; /* trailing comma */
		p = comma ? comma + 1 : NULL;
	}
	return true;
}

static bool
family_same_shape(const struct tn_metric_family *a, const struct tn_metric_family *b)
{
	if (a->type != b->type || a->nlabels != b->nlabels || a->nbounds != b->nbounds)
		return false;
	for (size_t i = 0; i < a->nlabels; i++) {
		if (strcmp(a->labels[i], b->labels[i]) != 0)
			return false;
	}
	for (size_t i = 0; i < a->nbounds; i++) {
		if (a->bounds[i] != b->bounds[i])
			return false;
	}
	return true;
}

static bool
name_is_process_metric(const char *name)
{
	for (size_t i = 0; i < sizeof(process_names) / sizeof(process_names[0]); i++) {
		if (strcmp(name, process_names[i]) == 0)
			return true;
	}
	return false;
}

/* ---- children ---- */

/* Creates a child of fam holding a copy of values. Called with reg.mu held. */
static struct metric_child *
child_new_locked(struct tn_metric_family *fam, const char *const *values)
{
	struct metric_child *c = tn_calloc(1, sizeof(*c));
	c->values = tn_calloc(fam->nlabels ? fam->nlabels : 1, sizeof(char *));
	for (size_t i = 0; i < fam->nlabels; i++)
		c->values[i] = tn_strdup(values[i]);
	switch (fam->type) {
	case TN_METRIC_COUNTER:
		atomic_init(&c->u.counter.value, 0);
		break;
	case TN_METRIC_GAUGE:
		atomic_init(&c->u.gauge.value, 0);
		break;
	case TN_METRIC_HISTOGRAM:
		c->u.hist.bounds = fam->bounds;
		c->u.hist.nbounds = fam->nbounds;
		atomic_init(&c->u.hist.sum_bits, 0); /* the bits of +0.0 */
		c->u.hist.buckets = tn_calloc(fam->nbounds + 1, sizeof(c->u.hist.buckets[0]));
		for (size_t i = 0; i <= fam->nbounds; i++)
			atomic_init(&c->u.hist.buckets[i], 0);
		break;
	}
	*fam->children_tail = c;
	fam->children_tail = &c->next;
	return c;
}

static struct metric_child *
child_find_locked(struct tn_metric_family *fam, const char *const *values)
{
	for (struct metric_child *c = fam->children; c; c = c->next) {
		size_t i = 0;
		while (i < fam->nlabels && strcmp(c->values[i], values[i]) == 0)
			i++;
		if (i == fam->nlabels)
			return c;
	}
	return NULL;
}

/* Collects the NULL-terminated label values in ap and returns fam's child for them,
 * creating it on first use. A mismatch with the family is a programmer error. */
static struct metric_child *
family_child(struct tn_metric_family *fam, enum tn_metric_type type, va_list ap)
{
	const char *values[TN_METRICS_MAX_LABELS];
	size_t n = 0;
	const char *v;
	while ((v = va_arg(ap, const char *)) != NULL) {
		if (n == fam->nlabels) {
			n++; /* one too many is enough to know */
			break;
		}
		values[n++] = v;
	}
	if (fam->type != type || n != fam->nlabels || n == 0) {
		/* Written whatever the log level: the process is about to abort. */
		tn_log_write(TN_LOG_ERROR, "metrics",
			"label values do not fit the family name=%s type=%s wanted=%s labels=%zu given=%zu%s",
			fam->name, type_names[fam->type], type_names[type], fam->nlabels, n,
			n > fam->nlabels ? "+" : "");
		abort();
	}
	pthread_mutex_lock(&reg.mu);
	struct metric_child *c = child_find_locked(fam, values);
	if (c == NULL)
		c = child_new_locked(fam, values);
	pthread_mutex_unlock(&reg.mu);
	return c;
}

struct tn_counter *
tn_metrics_counter_labels_(struct tn_metric_family *fam, ...)
{
	va_list ap;
	va_start(ap, fam);
	struct metric_child *c = family_child(fam, TN_METRIC_COUNTER, ap);
	va_end(ap);
	return &c->u.counter;
}

struct tn_gauge *
tn_metrics_gauge_labels_(struct tn_metric_family *fam, ...)
{
	va_list ap;
	va_start(ap, fam);
	struct metric_child *c = family_child(fam, TN_METRIC_GAUGE, ap);
	va_end(ap);
	return &c->u.gauge;
}

struct tn_histogram *
tn_metrics_histogram_labels_(struct tn_metric_family *fam, ...)
{
	va_list ap;
	va_start(ap, fam);
	struct metric_child *c = family_child(fam, TN_METRIC_HISTOGRAM, ap);
	va_end(ap);
	return &c->u.hist;
}

/* ---- registration ---- */

/* Builds an unregistered family from validated arguments, or returns NULL when the label
 * list is invalid. */
static struct tn_metric_family *
family_build(enum tn_metric_type type, const char *name, const char *help, const char *labels,
	const double *bounds, size_t nbounds)
{
	struct tn_metric_family *fam = tn_calloc(1, sizeof(*fam));
	fam->type = type;
	fam->children_tail = &fam->children;
	if (!family_parse_labels(fam, labels)) {
		family_free(fam);
		return NULL;
	}
	fam->name = tn_strdup(name);
	fam->help = tn_strdup(help ? help : "");
	if (nbounds > 0)
		fam->bounds = tn_memdup(bounds, nbounds * sizeof(double));
	fam->nbounds = nbounds;
	return fam;
}

int
tn_metrics_family_new(struct tn_metric_family **out, enum tn_metric_type type,
	const char *name, const char *help, const char *labels, const double *bounds,
	size_t nbounds)
{
	if ((unsigned)type > TN_METRIC_HISTOGRAM || !metric_name_valid(name) ||
		!bounds_valid(type, bounds, nbounds))
		return TN_EINVAL;
	struct tn_metric_family *fam = family_build(type, name, help, labels, bounds, nbounds);
	if (fam == NULL)
		return TN_EINVAL;

	int rv = TN_OK;
	pthread_mutex_lock(&reg.mu);
	struct tn_metric_family **pp = &reg.families;
	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->next;
	if (*pp != NULL) {
		/* Re-registration (a second instance of a module in one process) shares. */
		if (family_same_shape(*pp, fam))
			*out = *pp;
		else
			rv = TN_EEXIST;
		family_free(fam);
	} else if (reg.process && name_is_process_metric(name)) {
		rv = TN_EEXIST;
		family_free(fam);
	} else {
		*pp = fam;
		if (fam->nlabels == 0)
			child_new_locked(fam, NULL); /* the one sample, shown even at zero */
		*out = fam;
	}
	pthread_mutex_unlock(&reg.mu);
	return rv;
}

/* Registers an unlabelled family and returns its only child. */
static int
metrics_single(struct metric_child **out, enum tn_metric_type type, const char *name,
	const char *help, const double *bounds, size_t nbounds)
{
	struct tn_metric_family *fam;
	int rv = tn_metrics_family_new(&fam, type, name, help, NULL, bounds, nbounds);
	if (rv != TN_OK)
		return rv;
	/* Created under reg.mu before the family was published; never changes after. */
	*out = fam->children;
	return TN_OK;
}

int
tn_metrics_counter(struct tn_counter **out, const char *name, const char *help)
{
	struct metric_child *c;
	int rv = metrics_single(&c, TN_METRIC_COUNTER, name, help, NULL, 0);
	if (rv == TN_OK)
		*out = &c->u.counter;
	return rv;
}

int
tn_metrics_gauge(struct tn_gauge **out, const char *name, const char *help)
{
	struct metric_child *c;
	int rv = metrics_single(&c, TN_METRIC_GAUGE, name, help, NULL, 0);
	if (rv == TN_OK)
		*out = &c->u.gauge;
	return rv;
}

int
tn_metrics_histogram(struct tn_histogram **out, const char *name, const char *help,
	const double *bounds, size_t nbounds)
{
	struct metric_child *c;
	int rv = metrics_single(&c, TN_METRIC_HISTOGRAM, name, help, bounds, nbounds);
	if (rv == TN_OK)
		*out = &c->u.hist;
	return rv;
}

/* ---- histograms ---- */

static double
bits_to_double(uint64_t bits)
{
	double d;
	memcpy(&d, &bits, sizeof(d));
	return d;
}

static uint64_t
double_to_bits(double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof(bits));
	return bits;
}

void
tn_histogram_observe(struct tn_histogram *h, double v)
{
	if (isnan(v))
		return;
	/* The first bound >= v ("le"); nbounds is the +Inf bucket. */
	size_t lo = 0, hi = h->nbounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (h->bounds[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
	uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
		double_to_bits(bits_to_double(old) + v), memory_order_relaxed,
		memory_order_relaxed)) {
	}
}

uint64_t
tn_histogram_count(const struct tn_histogram *h)
{
	uint64_t n = 0;
	for (size_t i = 0; i <= h->nbounds; i++)
		n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
	return n;
}

double
tn_histogram_sum(const struct tn_histogram *h)
{
	return bits_to_double(
		atomic_load_explicit((_Atomic uint64_t *)&h->sum_bits, memory_order_relaxed));
}

/* ---- collectors ---- */

void
tn_metrics_add_collector(tn_metrics_collect_fn fn, void *arg)
{
	struct collector *c = tn_calloc(1, sizeof(*c));
	c->fn = fn;
	c->arg = arg;
	pthread_mutex_lock(&reg.collect_mu);
	struct collector **pp = &reg.collectors;
	while (*pp)
		pp = &(*pp)->next;
	*pp = c;
	pthread_mutex_unlock(&reg.collect_mu);
}

bool
tn_metrics_remove_collector(tn_metrics_collect_fn fn, void *arg)
{
	struct collector *found = NULL;
	pthread_mutex_lock(&reg.collect_mu);
	for (struct collector **pp = &reg.collectors; *pp; pp = &(*pp)->next) {
		if ((*pp)->fn == fn && (*pp)->arg == arg) {
			found = *pp;
			*pp = found->next;
			break;
		}
	}
	pthread_mutex_unlock(&reg.collect_mu);
	free(found);
	return found != NULL;
}

/* ---- rendering ---- */

/* Shortest text that reads back as the same double; integers without an exponent, so
 * that bucket bounds such as 1000000 (microseconds) stay readable. */
static void
put_double(struct tn_buf *b, double v)
{
	char tmp[40];
	if (isnan(v)) {
		tn_buf_append_str(b, "NaN");
	} else if (isinf(v)) {
		tn_buf_append_str(b, v > 0 ? "+Inf" : "-Inf");
	} else if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v) {
		tn_buf_printf(b, "%.0f", v); /* keeps -0 */
	} else {
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
			if (strtod(tmp, NULL) == v)
				break;
		}
		tn_buf_append_str(b, tmp);
	}
}

/* HELP text escapes backslash and newline; label values also escape the double quote. */
static void
put_escaped(struct tn_buf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			tn_buf_append_str(b, "\\\\");
		else if (*s == '\n')
			tn_buf_append_str(b, "\\n");
		else if (*s == '"' && quote)
			tn_buf_append_str(b, "\\\"");
		else
			tn_buf_append_byte(b, (uint8_t)*s);
	}
}

static void
put_header(struct tn_buf *b, const char *name, const char *help, const char *type)
{
	tn_buf_printf(b, "# HELP %s ", name);
	put_escaped(b, help, false);
	tn_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* Writes name+suffix and the label set, with le last when given. */
static void
put_series(struct tn_buf *b, const struct tn_metric_family *fam, const struct metric_child *c,
	const char *suffix, const double *le)
{
	tn_buf_append_str(b, fam->name);
	tn_buf_append_str(b, suffix);
	if (fam->nlabels == 0 && le == NULL)
		return;
	tn_buf_append_byte(b, '{');
	for (size_t i = 0; i < fam->nlabels; i++) {
		tn_buf_printf(b, "%s%s=\"", i ? "," : "", fam->labels[i]);
		put_escaped(b, c->values[i], true);
		tn_buf_append_byte(b, '"');
	}
	if (le != NULL) {
		tn_buf_append_str(b, fam->nlabels ? ",le=\"" : "le=\"");
		put_double(b, *le);
		tn_buf_append_byte(b, '"');
	}
	tn_buf_append_byte(b, '}');
}

static void
render_histogram(struct tn_buf *b, const struct tn_metric_family *fam,
	const struct metric_child *c)
{
	const struct tn_histogram *h = &c->u.hist;
	uint64_t cumulative = 0;
	for (size_t i = 0; i <= h->nbounds; i++) {
		double le = i < h->nbounds ? h->bounds[i] : INFINITY;
		cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		put_series(b, fam, c, "_bucket", &le);
		tn_buf_printf(b, " %" PRIu64 "\n", cumulative);
	}
	put_series(b, fam, c, "_sum", NULL);
	tn_buf_append_byte(b, ' ');
	put_double(b, tn_histogram_sum(h));
	tn_buf_append_byte(b, '\n');
	put_series(b, fam, c, "_count", NULL);
	tn_buf_printf(b, " %" PRIu64 "\n", cumulative);
}

static void
render_family(struct tn_buf *b, const struct tn_metric_family *fam)
{
	if (fam->children == NULL)
		return; /* a labelled family before its first child */
	put_header(b, fam->name, fam->help, type_names[fam->type]);
	for (const struct metric_child *c = fam->children; c; c = c->next) {
		switch (fam->type) {
		case TN_METRIC_COUNTER:
			put_series(b, fam, c, "", NULL);
			tn_buf_printf(b, " %" PRIu64 "\n", tn_counter_get(&c->u.counter));
			break;
		case TN_METRIC_GAUGE:
			put_series(b, fam, c, "", NULL);
			tn_buf_printf(b, " %" PRId64 "\n", tn_gauge_get(&c->u.gauge));
			break;
		case TN_METRIC_HISTOGRAM:
			render_histogram(b, fam, c);
			break;
		}
	}
}

/* ---- process metrics ---- */

static void
put_process_metric(struct tn_buf *b, const char *name, const char *help, const char *type,
	double v)
{
	put_header(b, name, help, type);
	tn_buf_append_str(b, name);
	tn_buf_append_byte(b, ' ');
	put_double(b, v);
	tn_buf_append_byte(b, '\n');
}

static bool
process_rss_bytes(double *out)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size, resident;
	if (f == NULL)
		return false;
	int n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	if (n != 2)
		return false;
	*out = (double)resident * (double)sysconf(_SC_PAGESIZE);
	return true;
}

static bool
process_open_fds(double *out)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return false;
	long count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			count++;
	}
	closedir(d);
	*out = (double)(count - 1); /* not the descriptor opendir itself used */
	return true;
}

/* Seconds since the epoch at which the process started, from the kernel's start time in
 * clock ticks after boot (field 22 of /proc/self/stat) and the boot time (/proc/stat). */
static double
process_start_time_read(void)
{
	char line[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	if (f == NULL)
		return 0;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	char *p = strrchr(line, ')'); /* the command name may contain spaces */
	unsigned long long ticks = 0;
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d "
				"%*d %*d %*d %*d %*d %llu", &ticks) != 1)
		return 0;
	unsigned long long btime = 0;
	bool found = false;
	if ((f = fopen("/proc/stat", "r")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = sscanf(line, "btime %llu", &btime) == 1;
	fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	if (!found || hz <= 0)
		return 0;
	return (double)btime + (double)ticks / (double)hz;
}

static pthread_once_t start_time_once = PTHREAD_ONCE_INIT;
static double start_time_seconds;

static void
process_start_time_init(void)
{
	start_time_seconds = process_start_time_read();
}

/* A value that cannot be read is left out rather than shown as a false zero. */
static void
render_process(struct tn_buf *b)
{
	double v;
	struct rlimit rl;
	struct rusage ru;
	if (process_rss_bytes(&v))
		put_process_metric(b, "process_resident_memory_bytes", "Resident set size in bytes.",
			"gauge", v);
	if (process_open_fds(&v))
		put_process_metric(b, "process_open_fds", "Open file descriptors.", "gauge", v);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		put_process_metric(b, "process_max_fds", "Soft limit on open file descriptors.",
			"gauge", rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
	pthread_once(&start_time_once, process_start_time_init);
	if (start_time_seconds > 0)
		put_process_metric(b, "process_start_time_seconds",
			"When the process started, in seconds since the Unix epoch.", "gauge",
			start_time_seconds);
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		v = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
		put_process_metric(b, "process_cpu_seconds_total",
			"User and system CPU time used, in seconds.", "counter", v);
	}
}

void
tn_metrics_render(struct tn_buf *out)
{
	pthread_mutex_lock(&reg.collect_mu);
	for (struct collector *c = reg.collectors; c; c = c->next)
		c->fn(c->arg);
	pthread_mutex_lock(&reg.mu);
	if (reg.process)
		render_process(out);
	for (const struct tn_metric_family *fam = reg.families; fam; fam = fam->next)
		render_family(out, fam);
	pthread_mutex_unlock(&reg.mu);
	pthread_mutex_unlock(&reg.collect_mu);
}

void
tn_metrics_reset_for_tests(bool process_metrics)
{
	pthread_mutex_lock(&reg.collect_mu);
	pthread_mutex_lock(&reg.mu);
	while (reg.families) {
		struct tn_metric_family *next = reg.families->next;
		family_free(reg.families);
		reg.families = next;
	}
	while (reg.collectors) {
		struct collector *next = reg.collectors->next;
		free(reg.collectors);
		reg.collectors = next;
	}
	reg.process = process_metrics;
	pthread_mutex_unlock(&reg.mu);
	pthread_mutex_unlock(&reg.collect_mu);
}
