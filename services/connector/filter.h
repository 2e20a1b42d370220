/* Handler filters, like pomelo's app.filter: before-hooks run in order before a request
 * reaches its handler (they may rewrite the body or refuse the request), after-hooks run
 * in reverse order once the response has gone out. Two are shipped: the chat tutorial's
 * abuse filter and a slow-request logger. Owner thread (the edge's) only. */
#ifndef TN_FILTER_H
#define TN_FILTER_H

#include <json-c/json.h>
#include <stdint.h>

/* What the hooks see of one request. */
struct tn_filter_ctx {
	const char *route;  /* the full route, e.g. "chat.chatHandler.send" */
	uint64_t sid;       /* the session */
	uint32_t id;        /* the request id (0 for a notify) */
	json_object *body;  /* the parsed body; before-hooks may change it */
	int64_t start_us;   /* when the request arrived (monotonic) */
};

struct tn_filter {
	const char *name;
	/* Returns 0 to go on, or a code (e.g. 403) to refuse the request; then the request is
	 * answered {"code":code,"error":true,"message":...} and later filters are skipped. */
	int (*before)(void *arg, struct tn_filter_ctx *fc);
	/* code: 0 when the handler succeeded, otherwise the error code the client got. */
	void (*after)(void *arg, const struct tn_filter_ctx *fc, int code);
	void *arg;
};

#define TN_FILTERS_MAX 8

struct tn_filters {
	struct tn_filter list[TN_FILTERS_MAX];
	int n;
};

/* Adds a filter at the end of the chain (a programmer error past TN_FILTERS_MAX). */
void tn_filters_add(struct tn_filters *fs, const struct tn_filter *f);

/* Runs the before-hooks; returns 0 or the first refusal's code. */
int tn_filters_before(struct tn_filters *fs, struct tn_filter_ctx *fc);

/* Runs the after-hooks, last filter first. */
void tn_filters_after(struct tn_filters *fs, const struct tn_filter_ctx *fc, int code);

/* The abuse filter: in chat.chatHandler.send bodies, every occurrence of one of the words
 * (comma-separated, ASCII letters matched without regard to case) in "content" is
 * replaced by as many '*' as it has bytes. Returns NULL when words is empty. The filter's
 * state is freed with tn_abuse_filter_free. */
struct tn_abuse_filter;
struct tn_abuse_filter *tn_abuse_filter_new(const char *words);
void tn_abuse_filter_free(struct tn_abuse_filter *af);
struct tn_filter tn_abuse_filter(struct tn_abuse_filter *af);

/* Replaces the words in text (len bytes, modified in place). Returns how many it replaced. */
int tn_abuse_filter_apply(const struct tn_abuse_filter *af, char *text, size_t len);

/* The slow-request logger: logs a warning with the route, session and time taken for a
 * request that took longer than threshold_ms, and counts it. *threshold_ms is read at
 * every request. */
struct tn_filter tn_slow_request_filter(const int *threshold_ms);

#endif
