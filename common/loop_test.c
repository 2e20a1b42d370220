#include "loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "clock.h"
#include "tn_test.h"

struct rec {
	struct tn_loop *loop;
	int order[8];
	int n;
	uint64_t cancel_id;
};

static void
fire(void *arg)
{
	struct rec *r = arg;
	(void)r;
}

static void
t1(void *arg)
{
	struct rec *r = arg;
	r->order[r->n++] = 1;
}

static void
t2(void *arg)
{
	struct rec *r = arg;
	r->order[r->n++] = 2;
}

static void
t3(void *arg)
{
	struct rec *r = arg;
	r->order[r->n++] = 3;
	tn_loop_stop(r->loop);
}

static void
setup_timers(void *arg, bool cancelled)
{
	struct rec *r = arg;
	if (cancelled)
		return;
	tn_loop_timer_add(r->loop, 60, t3, r);
	tn_loop_timer_add(r->loop, 20, t2, r);
	r->cancel_id = tn_loop_timer_add(r->loop, 30, fire, r);
	tn_loop_timer_add(r->loop, 0, t1, r);
	tn_loop_timer_cancel(r->loop, r->cancel_id);
	tn_loop_timer_cancel(r->loop, 999999); /* unknown id: no effect */
}

TN_TEST(timers_fire_in_due_order)
{
	struct rec r = {0};
	r.loop = tn_loop_new();
	tn_loop_post(r.loop, setup_timers, &r);
	int64_t t0 = tn_now_ms();
	tn_loop_run(r.loop);
	TN_CHECK_INT(r.n, ==, 3);
	TN_CHECK_INT(r.order[0], ==, 1);
	TN_CHECK_INT(r.order[1], ==, 2);
	TN_CHECK_INT(r.order[2], ==, 3);
	TN_CHECK_INT(tn_now_ms() - t0, >=, 60);
	tn_loop_free(r.loop);
}

struct counter {
	atomic_int ran, cancelled;
};

static void
count_task(void *arg, bool cancelled)
{
	struct counter *c = arg;
	atomic_fetch_add(cancelled ? &c->cancelled : &c->ran, 1);
}

struct poster {
	struct tn_loop *loop;
	struct counter *c;
};

static void *
post_many(void *arg)
{
	struct poster *p = arg;
	for (int i = 0; i < 10000; i++)
		tn_loop_post(p->loop, count_task, p->c);
	return NULL;
}

static void *
run_loop(void *arg)
{
	tn_loop_run(arg);
	return NULL;
}

TN_TEST(posts_from_threads_all_run_once)
{
	struct tn_loop *loop = tn_loop_new();
	struct counter c = {0};
	pthread_t lt, pt[4];
	pthread_create(&lt, NULL, run_loop, loop);
	struct poster p = {loop, &c};
	for (int i = 0; i < 4; i++)
		pthread_create(&pt[i], NULL, post_many, &p);
	for (int i = 0; i < 4; i++)
		pthread_join(pt[i], NULL);
	int64_t end = tn_now_ms() + 10000;
	while (atomic_load(&c.ran) < 40000 && tn_now_ms() < end)
		usleep(1000);
	tn_loop_stop(loop);
	pthread_join(lt, NULL);
	TN_CHECK_INT(atomic_load(&c.ran), ==, 40000);
	/* After close, posts run cancelled at once. */
	tn_loop_close(loop);
	tn_loop_post(loop, count_task, &c);
	TN_CHECK_INT(atomic_load(&c.cancelled), ==, 1);
	tn_loop_free(loop);
}

TN_TEST(queued_tasks_run_cancelled_on_free)
{
	struct tn_loop *loop = tn_loop_new();
	struct counter c = {0};
	for (int i = 0; i < 5; i++)
		tn_loop_post(loop, count_task, &c);
	tn_loop_free(loop);
	TN_CHECK_INT(atomic_load(&c.cancelled), ==, 5);
	TN_CHECK_INT(atomic_load(&c.ran), ==, 0);
}

TN_TEST_MAIN(TN_CASE(timers_fire_in_due_order), TN_CASE(posts_from_threads_all_run_once),
	TN_CASE(queued_tasks_run_cancelled_on_free))
