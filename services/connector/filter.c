#include "filter.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

void
tn_filters_add(struct tn_filters *fs, const struct tn_filter *f)
{
	if (fs->n >= TN_FILTERS_MAX) {
		fprintf(stderr, "fatal: more than %d filters\n", TN_FILTERS_MAX);
		abort();
	}
	fs->list[fs->n++] = *f;
}

int
tn_filters_before(struct tn_filters *fs, struct tn_filter_ctx *fc)
{
	for (int i = 0; i < fs->n; i++) {
		if (fs->list[i].before == NULL)
			continue;
		int code = fs->list[i].before(fs->list[i].arg, fc);
		if (code)
			return code;
	}
	return 0;
}

void
tn_filters_after(struct tn_filters *fs, const struct tn_filter_ctx *fc, int code)
{
	for (int i = fs->n - 1; i >= 0; i--)
		if (fs->list[i].after)
			fs->list[i].after(fs->list[i].arg, fc, code);
}

/* ---- abuse filter ---- */

struct tn_abuse_filter {
	char **words;
	size_t *lens;
	int n;
	struct tn_counter *replaced;
};

struct tn_abuse_filter *
tn_abuse_filter_new(const char *words)
{
	struct tn_abuse_filter *af = tn_calloc(1, sizeof(*af));
	for (const char *p = words; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len && isspace((unsigned char)p[len - 1]))
			len--;
		if (len) {
			af->words = tn_realloc(af->words, (size_t)(af->n + 1) * sizeof(*af->words));
			af->lens = tn_realloc(af->lens, (size_t)(af->n + 1) * sizeof(*af->lens));
			af->words[af->n] = tn_strndup(p, len);
			af->lens[af->n++] = len;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	if (af->n == 0) {
		tn_abuse_filter_free(af);
		return NULL;
	}
	tn_metrics_counter(&af->replaced, "tern_connector_abuse_words_total",
		"words replaced by the abuse filter");
	return af;
}

void
tn_abuse_filter_free(struct tn_abuse_filter *af)
{
	if (af == NULL)
		return;
	for (int i = 0; i < af->n; i++)
		free(af->words[i]);
	free(af->words);
	free(af->lens);
	free(af);
}

int
tn_abuse_filter_apply(const struct tn_abuse_filter *af, char *text, size_t len)
{
	int replaced = 0;
	for (int w = 0; w < af->n; w++) {
		size_t wl = af->lens[w];
		for (size_t i = 0; i + wl <= len;) {
			if (strncasecmp(text + i, af->words[w], wl) == 0) {
				memset(text + i, '*', wl);
				replaced++;
				i += wl;
			} else {
				i++;
			}
		}
	}
	return replaced;
}

static int
abuse_before(void *arg, struct tn_filter_ctx *fc)
{
	struct tn_abuse_filter *af = arg;
	json_object *content;
	if (strcmp(fc->route, "chat.chatHandler.send") != 0 ||
		!json_object_object_get_ex(fc->body, "content", &content) ||
		!json_object_is_type(content, json_type_string))
		return 0;
	size_t len = (size_t)json_object_get_string_len(content);
	char *copy = tn_memdup(json_object_get_string(content), len + 1);
	int n = tn_abuse_filter_apply(af, copy, len);
	if (n > 0) {
		json_object_set_string_len(content, copy, (int)len);
		tn_counter_add(af->replaced, (uint64_t)n);
	}
	free(copy);
	return 0;
}

struct tn_filter
tn_abuse_filter(struct tn_abuse_filter *af)
{
	return (struct tn_filter){.name = "abuse", .before = abuse_before, .arg = af};
}

/* ---- slow-request logger ---- */

static struct tn_counter *slow_count;

static void
slow_after(void *arg, const struct tn_filter_ctx *fc, int code)
{
	const int *threshold_ms = arg;
	int64_t ms = (tn_now_us() - fc->start_us) / 1000;
	if (ms < *threshold_ms)
		return;
	tn_counter_inc(slow_count);
	tn_warn("filter", "slow request route=%s sid=%llu id=%u ms=%lld code=%d", fc->route,
		(unsigned long long)fc->sid, fc->id, (long long)ms, code);
}

struct tn_filter
tn_slow_request_filter(const int *threshold_ms)
{
	if (slow_count == NULL)
		tn_metrics_counter(&slow_count, "tern_connector_slow_requests_total",
			"requests slower than slowRequest");
	return (struct tn_filter){.name = "slow-request", .after = slow_after,
		.arg = (void *)threshold_ms};
}
