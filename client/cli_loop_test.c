#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli_loop.h"
#include "clock.h"
#include "err.h"
#include "resolve.h"
#include "tn_test.h"

/* ---- timers ---- */

struct fired {
	int order[64];
	int n;
};

struct tagged {
	struct tn_cli_timer t;
	struct fired *log;
	int tag;
};

static void
record(void *arg)
{
	struct tagged *x = arg;
	x->log->order[x->log->n++] = x->tag;
}

static void
run_for(struct tn_cli_loop *loop, int64_t ms)
{
	int64_t end = tn_now_ms() + ms;
	while (tn_now_ms() < end)
		tn_cli_loop_run_once(loop, end - tn_now_ms());
}

TN_TEST(timers_fire_in_order)
{
	struct tn_cli_loop *loop;
	TN_CHECK_OK(tn_cli_loop_new(&loop));
	struct fired log = {0};
	struct tagged t[5];
	static const int delays[5] = {30, 10, 20, 10, 40};
	for (int i = 0; i < 5; i++) {
		t[i].log = &log;
		t[i].tag = i;
		tn_cli_timer_init(&t[i].t, record, &t[i]);
		tn_cli_timer_start(loop, &t[i].t, delays[i]);
	}
	tn_cli_timer_stop(loop, &t[4].t);     /* cancelled: never fires */
	tn_cli_timer_start(loop, &t[0].t, 5); /* moved earlier */
	TN_CHECK(!tn_cli_timer_armed(&t[4].t));
	TN_CHECK_INT(tn_cli_loop_timer_count(loop), ==, 4);
	run_for(loop, 80);
	TN_CHECK_INT(log.n, ==, 4);
	/* Equal due times fire in arming order. */
	TN_CHECK(log.order[0] == 0 && log.order[1] == 1 && log.order[2] == 3 && log.order[3] == 2);
	TN_CHECK_INT(tn_cli_loop_timer_count(loop), ==, 0);
	tn_cli_loop_free(loop);
}

struct stress {
	struct tn_cli_timer t;
	int64_t due;
	bool cancelled;
	bool fired;
	int64_t *last_due;
	int *bad;
};

static void
stress_fire(void *arg)
{
	struct stress *s = arg;
	s->fired = true;
	if (s->cancelled || s->due < *s->last_due)
		(*s->bad)++;
	*s->last_due = s->due;
}

TN_TEST(timer_heap_stress)
{
	struct tn_cli_loop *loop;
	TN_CHECK_OK(tn_cli_loop_new(&loop));
	enum { N = 2000 };
	struct stress *s = calloc(N, sizeof(*s));
	int64_t last_due = 0;
	int bad = 0;
	int64_t base = tn_cli_loop_update_now(loop);
	for (int i = 0; i < N; i++) {
		s[i].last_due = &last_due;
		s[i].bad = &bad;
		tn_cli_timer_init(&s[i].t, stress_fire, &s[i]);
		s[i].due = base + (int64_t)(tn_cli_loop_random(loop) % 50);
		tn_cli_timer_start_at(loop, &s[i].t, s[i].due);
	}
	for (int i = 0; i < N; i += 3) {
		tn_cli_timer_stop(loop, &s[i].t);
		s[i].cancelled = true;
	}
	run_for(loop, 80);
	int fired = 0;
	for (int i = 0; i < N; i++)
		fired += s[i].fired;
	TN_CHECK_INT(bad, ==, 0);
	TN_CHECK_INT(fired, ==, N - (N + 2) / 3);
	free(s);
	tn_cli_loop_free(loop);
}

struct rearm {
	struct tn_cli_timer t;
	struct tn_cli_loop *loop;
	int count;
};

static void
rearm_fire(void *arg)
{
	struct rearm *r = arg;
	r->count++;
	tn_cli_timer_start(r->loop, &r->t, 0);
}

TN_TEST(zero_delay_rearm_does_not_starve)
{
	struct tn_cli_loop *loop;
	TN_CHECK_OK(tn_cli_loop_new(&loop));
	struct rearm r = {.loop = loop};
	tn_cli_timer_init(&r.t, rearm_fire, &r);
	tn_cli_timer_start(loop, &r.t, 0);
	for (int i = 1; i <= 5; i++) {
		TN_CHECK_OK(tn_cli_loop_run_once(loop, 1000));
		TN_CHECK_INT(r.count, ==, i);
	}
	tn_cli_timer_stop(loop, &r.t);
	tn_cli_loop_free(loop);
}

/* ---- tasks from other threads ---- */

struct posted {
	struct tn_cli_loop *loop;
	atomic_int ran;
	atomic_int cancelled;
};

static void
task(void *arg, bool cancelled)
{
	struct posted *p = arg;
	if (cancelled) {
		atomic_fetch_add(&p->cancelled, 1);
		return;
	}
	if (atomic_fetch_add(&p->ran, 1) + 1 == 100)
		tn_cli_loop_stop(p->loop);
}

static void *
poster(void *arg)
{
	struct posted *p = arg;
	for (int i = 0; i < 50; i++)
		tn_cli_loop_post(p->loop, task, p);
	return NULL;
}

TN_TEST(posts_from_threads_wake_the_loop)
{
	struct tn_cli_loop *loop;
	TN_CHECK_OK(tn_cli_loop_new(&loop));
	struct posted p = {.loop = loop};
	pthread_t a, b;
	pthread_create(&a, NULL, poster, &p);
	pthread_create(&b, NULL, poster, &p);
	int64_t start = tn_now_ms();
	TN_CHECK_OK(tn_cli_loop_run(loop));
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	TN_CHECK_INT(atomic_load(&p.ran), ==, 100);
	TN_CHECK_INT(tn_now_ms() - start, <, 5000);
	/* Tasks left when the loop is freed run cancelled. */
	tn_cli_loop_post(loop, task, &p);
	tn_cli_loop_free(loop);
	TN_CHECK_INT(atomic_load(&p.cancelled), ==, 1);
}

/* ---- watches ---- */

struct pair_watch {
	struct tn_cli_loop *loop;
	struct tn_cli_watch w[2];
	int fds[2][2];
	int calls;
};

static void
kill_other(struct pair_watch *pw, int me)
{
	int other = 1 - me;
	pw->calls++;
	/* Removing the other watch must suppress its event even if it was already fetched. */
	tn_cli_watch_stop(pw->loop, &pw->w[other]);
	tn_cli_watch_stop(pw->loop, &pw->w[me]);
}

static void
on_first(void *arg, unsigned events)
{
	kill_other(arg, 0);
}

static void
on_second(void *arg, unsigned events)
{
	kill_other(arg, 1);
}

TN_TEST(removed_watch_gets_no_stale_event)
{
	struct tn_cli_loop *loop;
	TN_CHECK_OK(tn_cli_loop_new(&loop));
	struct pair_watch pw = {.loop = loop};
	for (int i = 0; i < 2; i++) {
		TN_CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, pw.fds[i]));
		TN_CHECK_INT(write(pw.fds[i][1], "x", 1), ==, 1);
	}
	TN_CHECK_OK(tn_cli_watch_start(loop, &pw.w[0], pw.fds[0][0], TN_CLI_IO_IN, on_first, &pw));
	TN_CHECK_OK(tn_cli_watch_start(loop, &pw.w[1], pw.fds[1][0], TN_CLI_IO_IN, on_second, &pw));
	TN_CHECK_INT(tn_cli_loop_watch_count(loop), ==, 3);
	TN_CHECK_OK(tn_cli_loop_run_once(loop, 1000));
	TN_CHECK_OK(tn_cli_loop_run_once(loop, 20));
	TN_CHECK_INT(pw.calls, ==, 1);
	TN_CHECK_INT(tn_cli_loop_watch_count(loop), ==, 1);
	for (int i = 0; i < 2; i++) {
		close(pw.fds[i][0]);
		close(pw.fds[i][1]);
	}
	tn_cli_loop_free(loop);
}

struct io_seen {
	unsigned events;
	int calls;
};

static void
on_io_seen(void *arg, unsigned events)
{
	struct io_seen *s = arg;
	s->events |= events;
	s->calls++;
}

TN_TEST(watch_reports_in_out_and_hangup)
{
	struct tn_cli_loop *loop;
	TN_CHECK_OK(tn_cli_loop_new(&loop));
	int fds[2];
	TN_CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
	struct io_seen seen = {0};
	struct tn_cli_watch w;
	TN_CHECK_OK(tn_cli_watch_start(loop, &w, fds[0], TN_CLI_IO_OUT, on_io_seen, &seen));
	TN_CHECK_OK(tn_cli_loop_run_once(loop, 1000));
	TN_CHECK(seen.events == TN_CLI_IO_OUT);
	TN_CHECK_OK(tn_cli_watch_set(loop, &w, TN_CLI_IO_IN));
	seen = (struct io_seen){0};
	TN_CHECK_OK(tn_cli_loop_run_once(loop, 20));
	TN_CHECK_INT(seen.calls, ==, 0);
	close(fds[1]);
	TN_CHECK_OK(tn_cli_loop_run_once(loop, 1000));
	TN_CHECK(seen.events & TN_CLI_IO_IN);
	tn_cli_watch_stop(loop, &w);
	close(fds[0]);
	/* A regular file cannot be watched. */
	FILE *f = tmpfile();
	TN_CHECK_INT(tn_cli_watch_start(loop, &w, fileno(f), TN_CLI_IO_IN, on_io_seen, &seen), ==,
	        TN_EIO);
	fclose(f);
	tn_cli_loop_free(loop);
}

/* ---- name resolution ---- */

struct lookup {
	int calls;
	int err;
	int family;
};

static void
on_lookup(void *arg, int err, struct addrinfo *ai)
{
	struct lookup *l = arg;
	l->calls++;
	l->err = err;
	l->family = ai ? ai->ai_family : -1;
	if (ai)
		freeaddrinfo(ai);
}

static void
wait_calls(struct tn_cli_loop *loop, const int *calls, int want, int64_t ms)
{
	int64_t end = tn_now_ms() + ms;
	while (*calls < want && tn_now_ms() < end)
		tn_cli_loop_run_once(loop, 50);
}

TN_TEST(resolve_numeric_and_names)
{
	struct tn_cli_loop *loop;
	TN_CHECK_OK(tn_cli_loop_new(&loop));
	struct lookup a = {0}, b = {0}, c = {0}, d = {0};
	tn_cli_resolve_start(loop, "127.0.0.1", 80, on_lookup, &a);
	TN_CHECK_INT(a.calls, ==, 0); /* never inside the call */
	wait_calls(loop, &a.calls, 1, 1000);
	TN_CHECK(a.calls == 1 && a.err == TN_OK && a.family == AF_INET);
	tn_cli_resolve_start(loop, "::1", 80, on_lookup, &b);
	wait_calls(loop, &b.calls, 1, 1000);
	TN_CHECK(b.calls == 1 && b.err == TN_OK && b.family == AF_INET6);
	/* localhost is in /etc/hosts: the resolver thread answers without the network. */
	tn_cli_resolve_start(loop, "localhost", 80, on_lookup, &c);
	wait_calls(loop, &c.calls, 1, 10000);
	TN_CHECK(c.calls == 1 && c.err == TN_OK);
	/* A cancelled lookup never calls back; its memory is released with the loop. */
	struct tn_cli_resolve *r = tn_cli_resolve_start(loop, "localhost", 80, on_lookup, &d);
	tn_cli_resolve_cancel(r);
	run_for(loop, 100);
	TN_CHECK_INT(d.calls, ==, 0);
	tn_cli_loop_free(loop);
}

TN_TEST_MAIN(TN_CASE(timers_fire_in_order), TN_CASE(timer_heap_stress),
        TN_CASE(zero_delay_rearm_does_not_starve), TN_CASE(posts_from_threads_wake_the_loop),
        TN_CASE(removed_watch_gets_no_stale_event), TN_CASE(watch_reports_in_out_and_hangup),
        TN_CASE(resolve_numeric_and_names))
