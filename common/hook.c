#include "hook.h"

#include "clock.h"

void
tn_hook_init(struct tn_hook *h, int64_t min_interval_ms)
{
	pthread_mutex_init(&h->mu, NULL);
	h->fn = NULL;
	h->arg = NULL;
	h->min_interval_ms = min_interval_ms;
	h->last_ms = INT64_MIN / 2;
}

void
tn_hook_fini(struct tn_hook *h)
{
	pthread_mutex_destroy(&h->mu);
}

void
tn_hook_set(struct tn_hook *h, tn_hook_fn fn, void *arg)
{
	pthread_mutex_lock(&h->mu);
	h->fn = fn;
	h->arg = arg;
	pthread_mutex_unlock(&h->mu);
}

bool
tn_hook_call(struct tn_hook *h)
{
	int64_t now = tn_now_ms();
	if (now - h->last_ms < h->min_interval_ms)
		return false;
	pthread_mutex_lock(&h->mu);
	bool called = h->fn != NULL;
	if (called) {
		h->last_ms = now;
		h->fn(h->arg);
	}
	pthread_mutex_unlock(&h->mu);
	return called;
}
