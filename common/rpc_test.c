#include "rpc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "tn_test.h"

/* Each side's owner thread is a tn_loop on its own pthread. */
struct side {
	struct tn_loop *loop;
	pthread_t thr;
};

static void *
side_main(void *arg)
{
	tn_loop_run(((struct side *)arg)->loop);
	return NULL;
}

static void
side_start(struct side *s)
{
	s->loop = tn_loop_new();
	pthread_create(&s->thr, NULL, side_main, s);
}

static void
side_stop(struct side *s)
{
	tn_loop_stop(s->loop);
	pthread_join(s->thr, NULL);
	tn_loop_close(s->loop);
}

/* The server echoes the request, or when it starts with "slow", answers after 300 ms. */
struct server_state {
	struct tn_loop *loop;
	atomic_int handled;
};

struct delayed {
	struct tn_rpc_req *req;
};

static void
reply_later(void *arg)
{
	struct tn_rpc_req *req = arg;
	tn_rpc_reply(req, "late", 4);
}

static void
handler(void *arg, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct server_state *st = arg;
	atomic_fetch_add(&st->handled, 1);
	if (len >= 4 && memcmp(data, "slow", 4) == 0) {
		tn_loop_timer_add(st->loop, 300, reply_later, req);
		return;
	}
	tn_rpc_reply(req, data, len);
}

struct result {
	atomic_int done;
	atomic_int ok, timedout, busy, closed, mismatched;
	int64_t last_ms;
};

struct call_ctx {
	struct result *r;
	char expect[32];
};

static void
on_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct call_ctx *c = arg;
	struct result *r = c->r;
	if (err == TN_OK) {
		if (len != strlen(c->expect) || memcmp(data, c->expect, len) != 0) {
			fprintf(stderr, "reply \"%.*s\" to \"%s\"\n", (int)len, (const char *)data,
				c->expect);
			atomic_fetch_add(&r->mismatched, 1);
		}
		atomic_fetch_add(&r->ok, 1);
	} else if (err == TN_ETIMEDOUT) {
		atomic_fetch_add(&r->timedout, 1);
	} else if (err == TN_EBUSY) {
		atomic_fetch_add(&r->busy, 1);
	} else if (err == TN_ECLOSED) {
		atomic_fetch_add(&r->closed, 1);
	}
	r->last_ms = tn_now_ms();
	free(c);
	atomic_fetch_add(&r->done, 1);
}

/* Issues calls from the client's owner thread. */
struct batch {
	struct tn_rpc_client *cli;
	struct result *r;
	int count;
	int timeout_ms;
	const char *prefix;
};

static void
issue_batch(void *arg, bool cancelled)
{
	struct batch *b = arg;
	for (int i = 0; !cancelled && i < b->count; i++) {
		struct call_ctx *c = calloc(1, sizeof(*c));
		c->r = b->r;
		snprintf(c->expect, sizeof(c->expect), "%s%d", b->prefix, i);
		tn_rpc_call(b->cli, c->expect, strlen(c->expect), b->timeout_ms, on_done, c);
	}
}

static bool
wait_done(struct result *r, int n, int ms)
{
	int64_t end = tn_now_ms() + ms;
	while (atomic_load(&r->done) < n && tn_now_ms() < end)
		usleep(1000);
	return atomic_load(&r->done) >= n;
}

static const struct tn_rpc_client_opts opts8 = {.max_inflight = 8, .max_queued = 2000,
	.max_msg = 1 << 16};

TN_TEST(many_calls_in_flight)
{
	struct side srv_side, cli_side;
	side_start(&srv_side);
	side_start(&cli_side);
	struct server_state st = {.loop = srv_side.loop};
	struct tn_rpc_server *srv;
	TN_CHECK_OK(tn_rpc_server_start(&srv, "inproc://rpc1", 4, 1 << 16,
		tn_loop_exec(srv_side.loop), handler, &st));
	struct tn_rpc_client *cli;
	TN_CHECK_OK(tn_rpc_client_new(&cli, "inproc://rpc1", &opts8, tn_loop_exec(cli_side.loop)));
	struct result r = {0};
	struct batch b = {.cli = cli, .r = &r, .count = 1000, .timeout_ms = 10000, .prefix = "m"};
	tn_loop_post(cli_side.loop, issue_batch, &b);
	TN_CHECK(wait_done(&r, 1000, 20000));
	TN_CHECK_INT(atomic_load(&r.ok), ==, 1000);
	TN_CHECK_INT(atomic_load(&r.mismatched), ==, 0);
	TN_CHECK_INT(atomic_load(&st.handled), ==, 1000);
	TN_CHECK(tn_rpc_client_connected(cli));
	side_stop(&cli_side);
	side_stop(&srv_side);
	tn_rpc_client_free(cli);
	tn_rpc_server_stop(srv);
	tn_loop_free(cli_side.loop);
	tn_loop_free(srv_side.loop);
}

TN_TEST(deadline_expires_and_late_reply_is_dropped)
{
	struct side srv_side, cli_side;
	side_start(&srv_side);
	side_start(&cli_side);
	struct server_state st = {.loop = srv_side.loop};
	struct tn_rpc_server *srv;
	TN_CHECK_OK(tn_rpc_server_start(&srv, "inproc://rpc2", 4, 1 << 16,
		tn_loop_exec(srv_side.loop), handler, &st));
	struct tn_rpc_client *cli;
	TN_CHECK_OK(tn_rpc_client_new(&cli, "inproc://rpc2", &opts8, tn_loop_exec(cli_side.loop)));
	struct result r = {0};
	struct batch b = {.cli = cli, .r = &r, .count = 3, .timeout_ms = 100, .prefix = "slow"};
	int64_t t0 = tn_now_ms();
	tn_loop_post(cli_side.loop, issue_batch, &b);
	TN_CHECK(wait_done(&r, 3, 5000));
	TN_CHECK_INT(atomic_load(&r.timedout), ==, 3);
	/* Bounded by the deadline, not by the 300 ms the server takes. The upper bound is
	 * loose: only "does not hang" is asserted, never a speed. */
	TN_CHECK_INT(r.last_ms - t0, >=, 100);
	/* The context works again after the late reply arrives. */
	usleep(400 * 1000);
	struct result r2 = {0};
	struct batch b2 = {.cli = cli, .r = &r2, .count = 8, .timeout_ms = 5000, .prefix = "again"};
	tn_loop_post(cli_side.loop, issue_batch, &b2);
	TN_CHECK(wait_done(&r2, 8, 10000));
	TN_CHECK_INT(atomic_load(&r2.ok), ==, 8);
	TN_CHECK_INT(atomic_load(&r2.mismatched), ==, 0);
	side_stop(&cli_side);
	side_stop(&srv_side);
	tn_rpc_client_free(cli);
	tn_rpc_server_stop(srv);
	tn_loop_free(cli_side.loop);
	tn_loop_free(srv_side.loop);
}

TN_TEST(no_server_times_out_and_queue_is_bounded)
{
	struct side cli_side;
	side_start(&cli_side);
	struct tn_rpc_client *cli;
	const struct tn_rpc_client_opts small = {.max_inflight = 2, .max_queued = 3,
		.max_msg = 1024};
	TN_CHECK_OK(tn_rpc_client_new(&cli, "inproc://nobody", &small, tn_loop_exec(cli_side.loop)));
	TN_CHECK(!tn_rpc_client_connected(cli));
	struct result r = {0};
	struct batch b = {.cli = cli, .r = &r, .count = 10, .timeout_ms = 150, .prefix = "x"};
	tn_loop_post(cli_side.loop, issue_batch, &b);
	TN_CHECK(wait_done(&r, 10, 5000));
	/* 2 on the wire + 3 queued time out; the other 5 are refused at once. */
	TN_CHECK_INT(atomic_load(&r.busy), ==, 5);
	TN_CHECK_INT(atomic_load(&r.timedout), ==, 5);
	side_stop(&cli_side);
	tn_rpc_client_free(cli);
	tn_loop_free(cli_side.loop);
}

TN_TEST(free_with_calls_outstanding)
{
	struct side cli_side;
	side_start(&cli_side);
	struct tn_rpc_client *cli;
	TN_CHECK_OK(tn_rpc_client_new(&cli, "inproc://nobody2", &opts8, tn_loop_exec(cli_side.loop)));
	struct result r = {0};
	struct batch b = {.cli = cli, .r = &r, .count = 20, .timeout_ms = 60000, .prefix = "y"};
	tn_loop_post(cli_side.loop, issue_batch, &b);
	while (tn_rpc_client_pending(cli) < 20)
		usleep(1000);
	side_stop(&cli_side); /* owner gone: completions run cancelled */
	tn_rpc_client_free(cli);
	TN_CHECK(wait_done(&r, 20, 5000));
	TN_CHECK_INT(atomic_load(&r.closed), ==, 20);
	tn_loop_free(cli_side.loop);
}

TN_TEST(listen_conflict_is_reported)
{
	struct side s;
	side_start(&s);
	struct server_state st = {.loop = s.loop};
	struct tn_rpc_server *a, *b = NULL;
	TN_CHECK_OK(tn_rpc_server_start(&a, "inproc://dup", 2, 1024, tn_loop_exec(s.loop), handler, &st));
	TN_CHECK_INT(tn_rpc_server_start(&b, "inproc://dup", 2, 1024, tn_loop_exec(s.loop), handler, &st),
		==, TN_EADDR);
	TN_CHECK(b == NULL);
	side_stop(&s);
	tn_rpc_server_stop(a);
	tn_loop_free(s.loop);
}

TN_TEST_MAIN(TN_CASE(many_calls_in_flight), TN_CASE(deadline_expires_and_late_reply_is_dropped),
	TN_CASE(no_server_times_out_and_queue_is_bounded), TN_CASE(free_with_calls_outstanding),
	TN_CASE(listen_conflict_is_reported))
