#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "cli_loop.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "resolve.h"

#define LOG_MOD         "client"
#define EVENTS_PER_WAIT 256

/* A slot of the watch table. epoll carries (generation << 32 | index) so that an event
 * fetched before its watch was removed (and the slot possibly reused) is recognised as
 * stale instead of reaching freed memory. */
struct slot {
	struct tn_cli_watch *w; /* NULL when free */
	uint32_t gen;
	uint32_t next_free; /* index + 1 of the next free slot, 0 = none */
};

struct tn_cli_loop {
	int epfd;
	int evfd;
	struct tn_cli_watch wake_watch;
	atomic_bool stopping;
	struct tn_mailbox *mb;
	int64_t now;
	uint64_t rng;

	struct tn_cli_timer **heap; /* binary min-heap on (due, seq) */
	size_t n_timers, cap_timers;
	uint64_t seq;

	struct slot *slots;
	size_t n_slots, cap_slots;
	uint32_t free_head; /* index + 1 of the first free slot, 0 = none */
	size_t n_watches;

	struct tn_cli_resolver *resolver;
};

/* ---- clock and randomness ---- */

int64_t
tn_cli_loop_now(const struct tn_cli_loop *loop)
{
	return loop->now;
}

int64_t
tn_cli_loop_update_now(struct tn_cli_loop *loop)
{
	loop->now = tn_now_ms();
	return loop->now;
}

uint64_t
tn_cli_loop_random(struct tn_cli_loop *loop)
{
	/* splitmix64: fast, and good enough for masking keys and jitter. */
	uint64_t z = (loop->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- timers ---- */

static bool
timer_less(const struct tn_cli_timer *a, const struct tn_cli_timer *b)
{
	return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void
heap_place(struct tn_cli_loop *loop, size_t i, struct tn_cli_timer *t)
{
	loop->heap[i] = t;
	t->pos = i + 1;
}

static void
heap_up(struct tn_cli_loop *loop, size_t i)
{
	struct tn_cli_timer *t = loop->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_less(t, loop->heap[parent]))
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

static void
heap_down(struct tn_cli_loop *loop, size_t i)
{
	struct tn_cli_timer *t = loop->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= loop->n_timers)
			break;
		if (c + 1 < loop->n_timers && timer_less(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!timer_less(loop->heap[c], t))
			break;
		heap_place(loop, i, loop->heap[c]);
		i = c;
	}
	heap_place(loop, i, t);
}

void
tn_cli_timer_init(struct tn_cli_timer *t, tn_cli_timer_fn fn, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->arg = arg;
}

bool
tn_cli_timer_armed(const struct tn_cli_timer *t)
{
	return t->pos != 0;
}

void
tn_cli_timer_stop(struct tn_cli_loop *loop, struct tn_cli_timer *t)
{
	if (t->pos == 0)
		return;
	size_t i = t->pos - 1;
	t->pos = 0;
	struct tn_cli_timer *last = loop->heap[--loop->n_timers];
	if (last == t)
		return;
	heap_place(loop, i, last);
	heap_up(loop, i);
	heap_down(loop, last->pos - 1);
}

void
tn_cli_timer_start_at(struct tn_cli_loop *loop, struct tn_cli_timer *t, int64_t due_ms)
{
	tn_cli_timer_stop(loop, t);
	if (loop->n_timers == loop->cap_timers) {
		loop->cap_timers = loop->cap_timers ? 2 * loop->cap_timers : 64;
		loop->heap = tn_realloc(loop->heap, loop->cap_timers * sizeof(*loop->heap));
	}
	t->due = due_ms;
	t->seq = loop->seq++;
	heap_place(loop, loop->n_timers++, t);
	heap_up(loop, t->pos - 1);
}

void
tn_cli_timer_start(struct tn_cli_loop *loop, struct tn_cli_timer *t, int64_t delay_ms)
{
	tn_cli_timer_start_at(loop, t, loop->now + (delay_ms > 0 ? delay_ms : 0));
}

size_t
tn_cli_loop_timer_count(const struct tn_cli_loop *loop)
{
	return loop->n_timers;
}

/* Runs the timers due now that were armed before this phase began: one re-arming itself
 * with no delay waits for the next iteration instead of starving I/O. */
static void
run_timers(struct tn_cli_loop *loop)
{
	uint64_t limit = loop->seq;
	while (loop->n_timers > 0 && !atomic_load(&loop->stopping)) {
		struct tn_cli_timer *t = loop->heap[0];
		if (t->due > loop->now || t->seq >= limit)
			break;
		tn_cli_timer_stop(loop, t);
		t->fn(t->arg);
	}
}

/* ---- watches ---- */

static uint32_t
epoll_bits(unsigned events)
{
	uint32_t bits = 0;
	if (events & TN_CLI_IO_IN)
		bits |= EPOLLIN | EPOLLRDHUP;
	if (events & TN_CLI_IO_OUT)
		bits |= EPOLLOUT;
	return bits;
}

static uint32_t
slot_alloc(struct tn_cli_loop *loop)
{
	if (loop->free_head) {
		uint32_t idx = loop->free_head - 1;
		loop->free_head = loop->slots[idx].next_free;
		return idx;
	}
	if (loop->n_slots == loop->cap_slots) {
		loop->cap_slots = loop->cap_slots ? 2 * loop->cap_slots : 64;
		loop->slots = tn_realloc(loop->slots, loop->cap_slots * sizeof(*loop->slots));
	}
	loop->slots[loop->n_slots] = (struct slot){0};
	return (uint32_t)loop->n_slots++;
}

static void
slot_free(struct tn_cli_loop *loop, uint32_t idx)
{
	struct slot *s = &loop->slots[idx];
	s->w = NULL;
	s->gen++;
	s->next_free = loop->free_head;
	loop->free_head = idx + 1;
}

static int
watch_ctl(struct tn_cli_loop *loop, int op, struct tn_cli_watch *w)
{
	uint32_t idx = w->slot - 1;
	struct epoll_event ev = {.events = epoll_bits(w->events)};
	ev.data.u64 = (uint64_t)loop->slots[idx].gen << 32 | idx;
	if (epoll_ctl(loop->epfd, op, w->fd, &ev) != 0) {
		int e = errno;
		tn_debug(LOG_MOD, "epoll_ctl failed fd=%d err=\"%s\"", w->fd, strerror(e));
		return tn_err_from_errno(e);
	}
	return TN_OK;
}

int
tn_cli_watch_start(struct tn_cli_loop *loop, struct tn_cli_watch *w, int fd, unsigned events,
        tn_cli_io_fn fn, void *arg)
{
	uint32_t idx = slot_alloc(loop);
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->arg = arg;
	w->slot = idx + 1;
	loop->slots[idx].w = w;
	int rv = watch_ctl(loop, EPOLL_CTL_ADD, w);
	if (rv != TN_OK) {
		slot_free(loop, idx);
		w->slot = 0;
		return TN_EIO;
	}
	loop->n_watches++;
	return TN_OK;
}

int
tn_cli_watch_set(struct tn_cli_loop *loop, struct tn_cli_watch *w, unsigned events)
{
	if (w->slot == 0)
		return TN_EINVAL;
	if (w->events == events)
		return TN_OK;
	w->events = events;
	return watch_ctl(loop, EPOLL_CTL_MOD, w) == TN_OK ? TN_OK : TN_EIO;
}

void
tn_cli_watch_stop(struct tn_cli_loop *loop, struct tn_cli_watch *w)
{
	if (w->slot == 0)
		return;
	/* Failure means the descriptor was closed already, which removed it from epoll. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	slot_free(loop, w->slot - 1);
	w->slot = 0;
	loop->n_watches--;
}

size_t
tn_cli_loop_watch_count(const struct tn_cli_loop *loop)
{
	return loop->n_watches;
}

static void
dispatch(struct tn_cli_loop *loop, const struct epoll_event *ev)
{
	uint32_t idx = (uint32_t)ev->data.u64;
	uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
	if (idx >= loop->n_slots || loop->slots[idx].gen != gen || loop->slots[idx].w == NULL)
		return;
	struct tn_cli_watch *w = loop->slots[idx].w;
	unsigned bits = 0;
	if (ev->events & (EPOLLIN | EPOLLRDHUP))
		bits |= TN_CLI_IO_IN;
	if (ev->events & EPOLLOUT)
		bits |= TN_CLI_IO_OUT;
	if (ev->events & (EPOLLERR | EPOLLHUP))
		bits |= TN_CLI_IO_ERR;
	w->fn(w->arg, bits);
}

/* ---- wake-ups and tasks ---- */

static void
loop_wake(void *arg)
{
	struct tn_cli_loop *loop = arg;
	uint64_t one = 1;
	/* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
	ssize_t n = write(loop->evfd, &one, sizeof(one));
	(void)n;
}

static void
on_wake(void *arg, unsigned events)
{
	struct tn_cli_loop *loop = arg;
	uint64_t count;
	ssize_t n = read(loop->evfd, &count, sizeof(count));
	(void)n;
	tn_mailbox_drain(loop->mb);
}

void
tn_cli_loop_post(struct tn_cli_loop *loop, tn_task_fn fn, void *arg)
{
	tn_mailbox_post(loop->mb, fn, arg);
}

static void
exec_post(void *ctx, tn_task_fn fn, void *arg)
{
	tn_cli_loop_post(ctx, fn, arg);
}

struct tn_exec
tn_cli_loop_exec(struct tn_cli_loop *loop)
{
	return (struct tn_exec){.post = exec_post, .ctx = loop};
}

void
tn_cli_loop_stop(struct tn_cli_loop *loop)
{
	atomic_store(&loop->stopping, true);
	loop_wake(loop);
}

/* ---- life cycle and running ---- */

int
tn_cli_loop_new(struct tn_cli_loop **out)
{
	struct tn_cli_loop *loop = tn_calloc(1, sizeof(*loop));
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->epfd < 0 || loop->evfd < 0) {
		tn_error(LOG_MOD, "cannot create the event loop err=\"%s\"", strerror(errno));
		goto fail;
	}
	loop->mb = tn_mailbox_new(loop_wake, loop);
	loop->now = tn_now_ms();
	arc4random_buf(&loop->rng, sizeof(loop->rng));
	atomic_init(&loop->stopping, false);
	if (tn_cli_watch_start(loop, &loop->wake_watch, loop->evfd, TN_CLI_IO_IN, on_wake, loop) !=
	        TN_OK)
		goto fail;
	loop->resolver = tn_cli_resolver_new(loop);
	*out = loop;
	return TN_OK;
fail:
	if (loop->mb)
		tn_mailbox_free(loop->mb);
	if (loop->evfd >= 0)
		close(loop->evfd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop->slots);
	free(loop);
	return TN_EIO;
}

struct tn_cli_resolver *
tn_cli_loop_resolver(struct tn_cli_loop *loop)
{
	return loop->resolver;
}

void
tn_cli_loop_free(struct tn_cli_loop *loop)
{
	if (loop == NULL)
		return;
	/* The resolver first: its thread posts into the mailbox. */
	tn_cli_resolver_free(loop->resolver);
	tn_mailbox_free(loop->mb);
	tn_cli_watch_stop(loop, &loop->wake_watch);
	if (loop->n_timers || loop->n_watches)
		tn_warn(LOG_MOD, "loop freed with live timers=%zu watches=%zu", loop->n_timers,
		        loop->n_watches);
	close(loop->evfd);
	close(loop->epfd);
	free(loop->heap);
	free(loop->slots);
	free(loop);
}

static int
wait_timeout(const struct tn_cli_loop *loop, int64_t max_wait_ms)
{
	int64_t t = max_wait_ms;
	if (loop->n_timers > 0) {
		int64_t until = loop->heap[0]->due - tn_now_ms();
		if (until < 0)
			until = 0;
		if (t < 0 || until < t)
			t = until;
	}
	if (t > 60000)
		t = 60000;
	return (int)t;
}

int
tn_cli_loop_run_once(struct tn_cli_loop *loop, int64_t max_wait_ms)
{
	struct epoll_event evs[EVENTS_PER_WAIT];
	int n = epoll_wait(loop->epfd, evs, EVENTS_PER_WAIT, wait_timeout(loop, max_wait_ms));
	if (n < 0 && errno != EINTR) {
		tn_error(LOG_MOD, "epoll_wait failed err=\"%s\"", strerror(errno));
		return TN_EIO;
	}
	loop->now = tn_now_ms();
	for (int i = 0; i < n && !atomic_load(&loop->stopping); i++)
		dispatch(loop, &evs[i]);
	run_timers(loop);
	return TN_OK;
}

int
tn_cli_loop_run(struct tn_cli_loop *loop)
{
	int rv = TN_OK;
	loop->now = tn_now_ms();
	while (rv == TN_OK && !atomic_load(&loop->stopping))
		rv = tn_cli_loop_run_once(loop, -1);
	atomic_store(&loop->stopping, false);
	return rv;
}
