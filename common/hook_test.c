/* tn_hook: calls thinned out, and a cleared hook never runs again. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "clock.h"
#include "hook.h"
#include "tn_test.h"

static atomic_int calls;

static void
count(void *arg)
{
	atomic_fetch_add(&calls, *(int *)arg);
}

TN_TEST(test_hook_thins_and_clears)
{
	struct tn_hook h;
	int one = 1;
	tn_hook_init(&h, 60000);
	TN_CHECK(!tn_hook_call(&h)); /* nothing set */
	tn_hook_set(&h, count, &one);
	TN_CHECK(tn_hook_call(&h));
	TN_CHECK(!tn_hook_call(&h)); /* within the interval */
	TN_CHECK_INT(atomic_load(&calls), ==, 1);
	tn_hook_fini(&h);

	tn_hook_init(&h, 0);
	tn_hook_set(&h, count, &one);
	for (int i = 0; i < 5; i++)
		TN_CHECK(tn_hook_call(&h));
	TN_CHECK_INT(atomic_load(&calls), ==, 6);
	tn_hook_set(&h, NULL, NULL);
	TN_CHECK(!tn_hook_call(&h));
	TN_CHECK_INT(atomic_load(&calls), ==, 6);
	tn_hook_fini(&h);
}

struct race {
	struct tn_hook h;
	atomic_int stop;
	int *target;
};

static void
touch(void *arg)
{
	int *p = arg;
	(*p)++; /* would be a use after free under ASan if a cleared hook still ran */
}

static void *
caller(void *arg)
{
	struct race *r = arg;
	while (!atomic_load(&r->stop))
		tn_hook_call(&r->h);
	return NULL;
}

TN_TEST(test_hook_cleared_from_another_thread)
{
	struct race r = {.stop = 0};
	tn_hook_init(&r.h, 0);
	int *target = malloc(sizeof(int));
	*target = 0;
	tn_hook_set(&r.h, touch, target);
	pthread_t t;
	pthread_create(&t, NULL, caller, &r);
	int64_t until = tn_now_ms() + 50;
	while (tn_now_ms() < until)
		;
	tn_hook_set(&r.h, NULL, NULL);
	int seen = *target;
	free(target); /* safe: the hook is cleared and no call is running */
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	TN_CHECK(seen > 0);
	tn_hook_fini(&r.h);
}

TN_TEST_MAIN(TN_CASE(test_hook_thins_and_clears), TN_CASE(test_hook_cleared_from_another_thread))
