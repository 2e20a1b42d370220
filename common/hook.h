/* A callback that one thread calls and another may replace or clear at any time: the
 * call happens under a lock, so once tn_hook_set(h, NULL, NULL) returns, the old callback
 * is not running and will not run again, and what it pointed at may be freed. Calls are
 * also thinned out: at most one per min_interval_ms (for callbacks that ask another
 * component for fresh data, which one request is enough to get). */
#ifndef TN_HOOK_H
#define TN_HOOK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef void (*tn_hook_fn)(void *arg);

struct tn_hook {
	pthread_mutex_t mu;
	tn_hook_fn fn;
	void *arg;
	int64_t min_interval_ms;
	int64_t last_ms; /* of the last call; read and written by the calling thread only */
};

/* Sets h up with no callback. */
void tn_hook_init(struct tn_hook *h, int64_t min_interval_ms);

void tn_hook_fini(struct tn_hook *h);

/* Replaces the callback (fn NULL: none). Waits for a call in progress. Any thread. */
void tn_hook_set(struct tn_hook *h, tn_hook_fn fn, void *arg);

/* Calls the callback unless there is none or the last call was less than min_interval_ms
 * ago. Returns true when it was called. One calling thread per hook. */
bool tn_hook_call(struct tn_hook *h);

#endif
