#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "loop.h"

struct timer {
	int64_t due_ms;
	uint64_t id;
	tn_timer_fn fn;
	void *arg;
};

struct tn_loop {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	bool woken;
	struct tn_mailbox *mb;
	/* A binary min-heap on (due_ms, id), touched only by the loop thread. */
	struct timer *heap;
	size_t n, cap;
	uint64_t next_id;
};

static void
loop_wake(void *arg)
{
	struct tn_loop *loop = arg;
	pthread_mutex_lock(&loop->mu);
	loop->woken = true;
	pthread_cond_signal(&loop->cv);
	pthread_mutex_unlock(&loop->mu);
}

struct tn_loop *
tn_loop_new(void)
{
	struct tn_loop *loop = tn_calloc(1, sizeof(*loop));
	pthread_mutex_init(&loop->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&loop->cv, &ca);
	pthread_condattr_destroy(&ca);
	loop->mb = tn_mailbox_new(loop_wake, loop);
	return loop;
}

static bool
timer_less(const struct timer *a, const struct timer *b)
{
	return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->id < b->id);
}

static void
heap_swap(struct timer *h, size_t a, size_t b)
{
	struct timer t = h[a];
	h[a] = h[b];
	h[b] = t;
}

static void
heap_up(struct timer *h, size_t i)
{
	while (i > 0 && timer_less(&h[i], &h[(i - 1) / 2])) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct timer *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && timer_less(&h[l], &h[m]))
			m = l;
		if (r < n && timer_less(&h[r], &h[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

static void
heap_remove(struct tn_loop *loop, size_t i)
{
	loop->heap[i] = loop->heap[--loop->n];
	if (i < loop->n) {
		heap_down(loop->heap, loop->n, i);
		heap_up(loop->heap, i);
	}
}

uint64_t
tn_loop_timer_add(struct tn_loop *loop, int64_t delay_ms, tn_timer_fn fn, void *arg)
{
	if (loop->n == loop->cap) {
		loop->cap = loop->cap ? loop->cap * 2 : 16;
		loop->heap = tn_realloc(loop->heap, loop->cap * sizeof(*loop->heap));
	}
	struct timer *t = &loop->heap[loop->n];
	t->due_ms = tn_now_ms() + (delay_ms > 0 ? delay_ms : 0);
	t->id = ++loop->next_id;
	t->fn = fn;
	t->arg = arg;
	heap_up(loop->heap, loop->n++);
	return t->id;
}

void
tn_loop_timer_cancel(struct tn_loop *loop, uint64_t id)
{
	/* Linear: cancellations are rare next to expiries, and heaps here stay small. */
	for (size_t i = 0; i < loop->n; i++) {
		if (loop->heap[i].id == id) {
			heap_remove(loop, i);
			return;
		}
	}
}

/* Runs due timers; returns the ms until the next one, or -1 when there is none. */
static int64_t
run_timers(struct tn_loop *loop)
{
	int64_t now = tn_now_ms();
	while (loop->n > 0 && loop->heap[0].due_ms <= now) {
		struct timer t = loop->heap[0];
		heap_remove(loop, 0);
		t.fn(t.arg);
	}
	return loop->n ? loop->heap[0].due_ms - now : -1;
}

static void
wait_for_work(struct tn_loop *loop, int64_t wait_ms)
{
	pthread_mutex_lock(&loop->mu);
	if (!loop->woken && !loop->stopping) {
		if (wait_ms < 0) {
			pthread_cond_wait(&loop->cv, &loop->mu);
		} else {
			struct timespec ts;
			tn_timespec_after(&ts, CLOCK_MONOTONIC, wait_ms);
			pthread_cond_timedwait(&loop->cv, &loop->mu, &ts);
		}
	}
	loop->woken = false;
	pthread_mutex_unlock(&loop->mu);
}

void
tn_loop_run(struct tn_loop *loop)
{
	for (;;) {
		pthread_mutex_lock(&loop->mu);
		bool stop = loop->stopping;
		loop->woken = false;
		pthread_mutex_unlock(&loop->mu);
		if (stop)
			return;
		tn_mailbox_drain(loop->mb);
		int64_t wait_ms = run_timers(loop);
		wait_for_work(loop, wait_ms);
	}
}

void
tn_loop_stop(struct tn_loop *loop)
{
	pthread_mutex_lock(&loop->mu);
	loop->stopping = true;
	pthread_cond_signal(&loop->cv);
	pthread_mutex_unlock(&loop->mu);
}

void
tn_loop_close(struct tn_loop *loop)
{
	tn_mailbox_close(loop->mb);
}

void
tn_loop_free(struct tn_loop *loop)
{
	if (loop == NULL)
		return;
	tn_mailbox_free(loop->mb);
	free(loop->heap);
	pthread_cond_destroy(&loop->cv);
	pthread_mutex_destroy(&loop->mu);
	free(loop);
}

void
tn_loop_post(struct tn_loop *loop, tn_task_fn fn, void *arg)
{
	tn_mailbox_post(loop->mb, fn, arg);
}

struct tn_exec
tn_loop_exec(struct tn_loop *loop)
{
	return tn_mailbox_exec(loop->mb);
}

void
tn_signals_block(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int
tn_signals_wait(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	int sig = 0;
	while (sigwait(&set, &sig) != 0)
		;
	return sig;
}
