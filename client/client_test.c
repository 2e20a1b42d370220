/* The client library against the scripted server of fake_server.c: connect through the
 * gate, requests and deadlines, pushes, heartbeats, kicks, reconnects, backoff, closing
 * and freeing from callbacks, and a few hundred clients on one loop. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "fake_server.h"
#include "json.h"
#include "log.h"
#include "tn_client.h"
#include "tn_test.h"

#define RUN_UNTIL(loop, cond, ms)                                                                  \
	do {                                                                                       \
		int64_t end_ = tn_now_ms() + (ms);                                                 \
		while (!(cond) && tn_now_ms() < end_)                                              \
			tn_cli_loop_run_once((loop), 20);                                          \
	} while (0)

/* ---- recording events and responses ---- */

struct ev_rec {
	enum tn_cli_event_type type;
	int err;
	int64_t retry_in;
	bool reconnected;
	int port;
	char detail[160];
};

struct ev_log {
	struct ev_rec ev[64];
	int n;
};

static void
on_event(void *arg, struct tn_cli_client *c, const struct tn_cli_event *ev)
{
	struct ev_log *log = arg;
	if (log->n == 64)
		return;
	struct ev_rec *r = &log->ev[log->n++];
	r->type = ev->type;
	r->err = ev->err;
	r->retry_in = ev->retry_in_ms;
	r->reconnected = ev->reconnected;
	r->port = ev->port;
	snprintf(r->detail, sizeof(r->detail), "%s", ev->detail ? ev->detail : "");
}

static int
count(const struct ev_log *log, enum tn_cli_event_type type)
{
	int n = 0;
	for (int i = 0; i < log->n; i++)
		n += log->ev[i].type == type;
	return n;
}

static const struct ev_rec *
last(const struct ev_log *log, enum tn_cli_event_type type)
{
	for (int i = log->n - 1; i >= 0; i--) {
		if (log->ev[i].type == type)
			return &log->ev[i];
	}
	return NULL;
}

struct resp {
	int calls;
	int err;
	int64_t a;     /* the body's "a", -1 when absent */
	int64_t at_ms; /* when the callback ran */
};

static void
on_resp(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct resp *r = arg;
	r->calls++;
	r->err = err;
	r->at_ms = tn_now_ms();
	if (body == NULL || !tn_json_get_int(body, "a", &r->a))
		r->a = -1;
}

struct pushes {
	int n;
	char last_msg[64];
	char last_route[32];
};

static void
on_push(void *arg, struct tn_cli_client *c, const char *route, json_object *body)
{
	struct pushes *p = arg;
	const char *msg = tn_json_get_str(body, "msg", NULL);
	p->n++;
	snprintf(p->last_msg, sizeof(p->last_msg), "%s", msg ? msg : "");
	snprintf(p->last_route, sizeof(p->last_route), "%s", route);
}

/* ---- setup ---- */

struct env {
	struct tn_cli_loop *loop;
	struct fake_server *fs;
	struct tn_cli_client *c;
	struct ev_log log;
};

static void
opts_for(struct tn_cli_opts *o, struct env *e, const char *uid)
{
	tn_cli_opts_init(o);
	o->host = "127.0.0.1";
	o->port = fake_gate_port(e->fs);
	o->uid = uid;
	o->backoff_initial_ms = 50;
	o->backoff_max_ms = 200;
	o->connect_timeout_ms = 3000;
	o->on_event = on_event;
	o->event_arg = &e->log;
}

/* Starts a fake server and one client connected through its gate. */
static int
env_start(struct env *e, const struct fake_opts *fo, void (*tweak)(struct tn_cli_opts *))
{
	memset(e, 0, sizeof(*e));
	if (tn_cli_loop_new(&e->loop) != TN_OK)
		return 0;
	e->fs = fake_start(fo);
	struct tn_cli_opts o;
	opts_for(&o, e, "alice");
	if (tweak)
		tweak(&o);
	if (tn_cli_client_new(&e->c, e->loop, &o) != TN_OK || tn_cli_client_connect(e->c) != TN_OK)
		return 0;
	RUN_UNTIL(e->loop, e->log.n > 0, 5000);
	return e->log.n > 0 && e->log.ev[0].type == TN_CLI_EV_CONNECTED;
}

static void
env_stop(struct env *e)
{
	tn_cli_client_free(e->c);
	fake_stop(e->fs);
	tn_cli_loop_free(e->loop);
}

/* ---- tests ---- */

TN_TEST(connect_request_push_notify)
{
	struct env e;
	struct fake_opts fo = {.heartbeat_s = 0, .fragment = true, .use_dict = true};
	TN_CHECK(env_start(&e, &fo, NULL));
	TN_CHECK_INT(e.log.ev[0].port, ==, fake_connector_port(e.fs, 0));
	TN_CHECK(!e.log.ev[0].reconnected);
	TN_CHECK(tn_cli_client_is_connected(e.c));
	TN_CHECK_INT(tn_cli_client_port(e.c), ==, fake_connector_port(e.fs, 0));

	struct resp r = {0};
	TN_CHECK_OK(tn_cli_request(e.c, "connector.echo", "{\"a\":42}", 8, 0, on_resp, &r));
	TN_CHECK_INT(tn_cli_client_pending(e.c), ==, 1);
	RUN_UNTIL(e.loop, r.calls, 3000);
	TN_CHECK(r.calls == 1 && r.err == TN_OK && r.a == 42);

	struct pushes p = {0};
	struct resp r2 = {0};
	tn_cli_on(e.c, "onChat", on_push, &p);
	TN_CHECK_OK(tn_cli_request(e.c, "connector.push", NULL, 0, 0, on_resp, &r2));
	RUN_UNTIL(e.loop, r2.calls && p.n, 3000);
	TN_CHECK_INT(p.n, ==, 1);
	TN_CHECK_STR(p.last_msg, "hi");
	TN_CHECK_STR(p.last_route, "onChat");

	/* Without a handler for the route, the fallback gets it; then nobody. */
	struct pushes any = {0};
	tn_cli_on(e.c, "onChat", NULL, NULL);
	tn_cli_on(e.c, NULL, on_push, &any);
	r2.calls = 0;
	TN_CHECK_OK(tn_cli_request(e.c, "connector.push", NULL, 0, 0, on_resp, &r2));
	RUN_UNTIL(e.loop, r2.calls, 3000);
	TN_CHECK(p.n == 1 && any.n == 1);

	TN_CHECK_OK(tn_cli_notify(e.c, "connector.echo", "{}", 2));
	struct fake_stats st;
	for (int i = 0; i < 100; i++) {
		tn_cli_loop_run_once(e.loop, 10);
		fake_get_stats(e.fs, &st);
		if (st.notifies == 1)
			break;
	}
	TN_CHECK_INT(st.notifies, ==, 1);
	/* Ids count per client from 1, the gate's query included (as the browser). */
	TN_CHECK_INT(st.n_ids, ==, 4);
	for (int i = 0; i < 4; i++)
		TN_CHECK_INT(st.ids[i], ==, i + 1);
	/* The dictionary from the handshake compressed the connector routes. */
	TN_CHECK_INT(st.compressed, ==, 3);
	/* Every fragmented message came with a ping, and each was answered. */
	TN_CHECK_INT(st.pongs, >=, 4);
	struct tn_cli_stats cs;
	tn_cli_client_stats(&cs, e.c);
	TN_CHECK(cs.requests == 3 && cs.responses == 3 && cs.pushes == 2 && cs.notifies == 1);
	env_stop(&e);
}

TN_TEST(deadlines)
{
	struct env e;
	struct fake_opts fo = {0};
	TN_CHECK(env_start(&e, &fo, NULL));
	struct resp r = {0};
	int64_t start = tn_now_ms();
	TN_CHECK_OK(tn_cli_request(e.c, "connector.silent", NULL, 0, 200, on_resp, &r));
	RUN_UNTIL(e.loop, r.calls, 3000);
	TN_CHECK(r.calls == 1 && r.err == TN_ETIMEDOUT);
	TN_CHECK_INT(r.at_ms - start, >=, 195);
	TN_CHECK_INT(r.at_ms - start, <, 1500);
	TN_CHECK_INT(tn_cli_client_pending(e.c), ==, 0);

	/* A response after the deadline is dropped: the callback ran once, with the timeout. */
	struct resp s = {0};
	TN_CHECK_OK(tn_cli_request(e.c, "connector.slow", NULL, 0, 100, on_resp, &s));
	RUN_UNTIL(e.loop, s.calls, 3000);
	TN_CHECK(s.calls == 1 && s.err == TN_ETIMEDOUT);
	struct tn_cli_stats cs;
	tn_cli_client_stats(&cs, e.c);
	for (int i = 0; i < 100 && cs.late_responses == 0; i++) {
		tn_cli_loop_run_once(e.loop, 10);
		tn_cli_client_stats(&cs, e.c);
	}
	TN_CHECK_INT(cs.late_responses, ==, 1);
	TN_CHECK_INT(s.calls, ==, 1);
	TN_CHECK_INT(cs.timeouts, ==, 2);
	/* The session is still fine. */
	TN_CHECK(tn_cli_client_is_connected(e.c));
	env_stop(&e);
}

TN_TEST(heartbeats_keep_the_session)
{
	struct env e;
	struct fake_opts fo = {.heartbeat_s = 1};
	TN_CHECK(env_start(&e, &fo, NULL));
	TN_CHECK_INT(tn_cli_client_heartbeat_ms(e.c), ==, 1000);
	/* The server closes sessions silent for 2 s; the client closes after 2 s without
	 * anything from the server. Idle well past that. */
	int64_t end = tn_now_ms() + 2800;
	while (tn_now_ms() < end)
		tn_cli_loop_run_once(e.loop, 50);
	TN_CHECK_INT(e.log.n, ==, 1);
	TN_CHECK(tn_cli_client_is_connected(e.c));
	struct tn_cli_stats cs;
	tn_cli_client_stats(&cs, e.c);
	TN_CHECK_INT(cs.heartbeats_sent, >=, 2);
	TN_CHECK_INT(cs.heartbeats_received, >=, 2);
	struct resp r = {0};
	TN_CHECK_OK(tn_cli_request(e.c, "connector.echo", "{\"a\":1}", 7, 0, on_resp, &r));
	RUN_UNTIL(e.loop, r.calls, 3000);
	TN_CHECK(r.err == TN_OK && r.a == 1);
	env_stop(&e);
}

TN_TEST(heartbeat_timeout_then_reconnect)
{
	struct env e;
	struct fake_opts fo = {.heartbeat_s = 1};
	TN_CHECK(env_start(&e, &fo, NULL));
	struct resp r = {0};
	int64_t start = tn_now_ms();
	TN_CHECK_OK(tn_cli_request(e.c, "connector.mute", NULL, 0, -1, on_resp, &r));
	RUN_UNTIL(e.loop, count(&e.log, TN_CLI_EV_DISCONNECTED) > 0, 6000);
	const struct ev_rec *d = last(&e.log, TN_CLI_EV_DISCONNECTED);
	TN_CHECK(d != NULL);
	TN_CHECK_INT(d->err, ==, TN_ETIMEDOUT);
	TN_CHECK(strstr(d->detail, "heartbeat") != NULL);
	/* Detected within the 2 s timeout after our last heartbeat (which follows the last
	 * server heartbeat by the 1 s interval). */
	TN_CHECK_INT(tn_now_ms() - start, <, 4500);
	TN_CHECK(d->retry_in >= 25 && d->retry_in <= 50);
	/* The request with no deadline still got exactly one callback. */
	TN_CHECK(r.calls == 1 && r.err == TN_ECLOSED);
	RUN_UNTIL(e.loop, count(&e.log, TN_CLI_EV_CONNECTED) == 2, 5000);
	const struct ev_rec *c = last(&e.log, TN_CLI_EV_CONNECTED);
	TN_CHECK(c != NULL && c->reconnected);
	env_stop(&e);
}

TN_TEST(kick_then_reconnect)
{
	struct env e;
	struct fake_opts fo = {.heartbeat_s = 3};
	TN_CHECK(env_start(&e, &fo, NULL));
	struct resp r = {0};
	TN_CHECK_OK(tn_cli_request(e.c, "connector.kick", NULL, 0, 0, on_resp, &r));
	RUN_UNTIL(e.loop, count(&e.log, TN_CLI_EV_CONNECTED) == 2, 5000);
	TN_CHECK_INT(e.log.n, ==, 4);
	TN_CHECK(e.log.ev[1].type == TN_CLI_EV_KICKED);
	TN_CHECK_STR(e.log.ev[1].detail, "go away");
	TN_CHECK(e.log.ev[2].type == TN_CLI_EV_DISCONNECTED && e.log.ev[2].err == TN_ECLOSED);
	TN_CHECK(strstr(e.log.ev[2].detail, "go away") != NULL);
	TN_CHECK(e.log.ev[3].type == TN_CLI_EV_CONNECTED && e.log.ev[3].reconnected);
	TN_CHECK(r.calls == 1 && r.err == TN_ECLOSED);
	struct tn_cli_stats cs;
	tn_cli_client_stats(&cs, e.c);
	TN_CHECK(cs.kicks == 1 && cs.connects == 2);
	env_stop(&e);
}

TN_TEST(reconnect_through_the_gate)
{
	struct env e;
	struct fake_opts fo = {.heartbeat_s = 3};
	TN_CHECK(env_start(&e, &fo, NULL));
	TN_CHECK_INT(e.log.ev[0].port, ==, fake_connector_port(e.fs, 0));
	fake_kill_connector(e.fs, 0);
	RUN_UNTIL(e.loop, count(&e.log, TN_CLI_EV_CONNECTED) == 2, 5000);
	const struct ev_rec *d = last(&e.log, TN_CLI_EV_DISCONNECTED);
	TN_CHECK(d != NULL && d->err == TN_ECLOSED);
	const struct ev_rec *c = last(&e.log, TN_CLI_EV_CONNECTED);
	TN_CHECK(c != NULL && c->reconnected);
	TN_CHECK_INT(c->port, ==, fake_connector_port(e.fs, 1));
	struct fake_stats st;
	fake_get_stats(e.fs, &st);
	TN_CHECK_INT(st.accepted[0], ==, 2); /* the gate was asked again */
	struct resp r = {0};
	TN_CHECK_OK(tn_cli_request(e.c, "connector.echo", "{\"a\":7}", 7, 0, on_resp, &r));
	RUN_UNTIL(e.loop, r.calls, 3000);
	TN_CHECK(r.err == TN_OK && r.a == 7);
	env_stop(&e);
}

static void
three_attempts(struct tn_cli_opts *o)
{
	o->max_attempts = 3;
	o->backoff_initial_ms = 40;
	o->backoff_max_ms = 80;
}

TN_TEST(backoff_then_give_up_then_connect_again)
{
	struct env e;
	struct fake_opts fo = {0};
	TN_CHECK(env_start(&e, &fo, three_attempts));
	fake_kill_connector(e.fs, 0);
	fake_kill_connector(e.fs, 1);
	RUN_UNTIL(e.loop, count(&e.log, TN_CLI_EV_CLOSED) == 1, 5000);
	/* connected, disconnected, three failed attempts (the gate has no connector), closed */
	TN_CHECK_INT(e.log.n, ==, 6);
	TN_CHECK(e.log.ev[1].type == TN_CLI_EV_DISCONNECTED);
	TN_CHECK(e.log.ev[1].retry_in >= 20 && e.log.ev[1].retry_in <= 40);
	for (int i = 2; i <= 4; i++) {
		TN_CHECK(e.log.ev[i].type == TN_CLI_EV_CONNECT_FAILED);
		TN_CHECK_INT(e.log.ev[i].err, ==, TN_ENOENT);
		TN_CHECK(strstr(e.log.ev[i].detail, "code 500") != NULL);
	}
	/* attempt 1 -> retry 2 (40..80 capped at 80), attempt 2 -> retry 3, attempt 3: stop */
	TN_CHECK(e.log.ev[2].retry_in >= 40 && e.log.ev[2].retry_in <= 80);
	TN_CHECK(e.log.ev[3].retry_in >= 40 && e.log.ev[3].retry_in <= 80);
	TN_CHECK_INT(e.log.ev[4].retry_in, ==, -1);
	TN_CHECK(e.log.ev[5].type == TN_CLI_EV_CLOSED && e.log.ev[5].err == TN_ENOENT);
	TN_CHECK(!tn_cli_client_is_connected(e.c));
	struct resp r = {0};
	TN_CHECK_INT(
	        tn_cli_request(e.c, "connector.echo", NULL, 0, 0, on_resp, &r), ==, TN_ECLOSED);

	fake_revive_connector(e.fs, 0);
	TN_CHECK_OK(tn_cli_client_connect(e.c));
	TN_CHECK_INT(tn_cli_client_connect(e.c), ==, TN_EBUSY);
	RUN_UNTIL(e.loop, count(&e.log, TN_CLI_EV_CONNECTED) == 2, 5000);
	TN_CHECK(last(&e.log, TN_CLI_EV_CONNECTED)->reconnected);
	env_stop(&e);
}

TN_TEST(close_fails_pending_then_closed)
{
	struct env e;
	struct fake_opts fo = {0};
	TN_CHECK(env_start(&e, &fo, NULL));
	struct resp r = {0};
	TN_CHECK_OK(tn_cli_request(e.c, "connector.silent", NULL, 0, -1, on_resp, &r));
	tn_cli_client_close(e.c);
	TN_CHECK_INT(r.calls, ==, 0); /* nothing inside the call */
	RUN_UNTIL(e.loop, count(&e.log, TN_CLI_EV_CLOSED) == 1, 3000);
	TN_CHECK(r.calls == 1 && r.err == TN_ECLOSED);
	const struct ev_rec *c = last(&e.log, TN_CLI_EV_CLOSED);
	TN_CHECK(c && c->err == TN_OK);
	TN_CHECK_INT(count(&e.log, TN_CLI_EV_DISCONNECTED), ==, 0);
	/* The server saw the session go. */
	struct fake_stats st;
	for (int i = 0; i < 100; i++) {
		fake_get_stats(e.fs, &st);
		if (st.open_sessions == 0)
			break;
		tn_cli_loop_run_once(e.loop, 10);
	}
	TN_CHECK_INT(st.open_sessions, ==, 0);
	env_stop(&e);
}

struct freer {
	struct tn_cli_client **c;
	int calls;
};

static void
free_in_callback(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct freer *f = arg;
	f->calls++;
	tn_cli_client_free(c);
	*f->c = NULL;
}

TN_TEST(free_from_inside_a_callback)
{
	struct env e;
	struct fake_opts fo = {0};
	TN_CHECK(env_start(&e, &fo, NULL));
	struct freer f = {.c = &e.c};
	struct resp other = {0};
	TN_CHECK_OK(tn_cli_request(e.c, "connector.silent", NULL, 0, -1, on_resp, &other));
	TN_CHECK_OK(tn_cli_request(e.c, "connector.echo", NULL, 0, 0, free_in_callback, &f));
	RUN_UNTIL(e.loop, f.calls, 3000);
	TN_CHECK_INT(f.calls, ==, 1);
	TN_CHECK(e.c == NULL);
	TN_CHECK(other.calls == 1 && other.err == TN_ECLOSED);
	/* The loop is left with nothing of the client's. */
	for (int i = 0; i < 5; i++)
		tn_cli_loop_run_once(e.loop, 10);
	TN_CHECK_INT(tn_cli_loop_timer_count(e.loop), ==, 0);
	env_stop(&e);
}

static void
no_retry(struct tn_cli_opts *o)
{
	o->reconnect = false;
}

TN_TEST(refused_handshake)
{
	struct env e;
	struct fake_opts fo = {.refuse = true};
	TN_CHECK(!env_start(&e, &fo, no_retry));
	RUN_UNTIL(e.loop, count(&e.log, TN_CLI_EV_CLOSED) == 1, 3000);
	TN_CHECK_INT(e.log.n, ==, 2);
	TN_CHECK(e.log.ev[0].type == TN_CLI_EV_CONNECT_FAILED);
	TN_CHECK_INT(e.log.ev[0].err, ==, TN_EVERSION);
	TN_CHECK_INT(e.log.ev[0].retry_in, ==, -1);
	TN_CHECK(strstr(e.log.ev[0].detail, "501") != NULL);
	TN_CHECK(e.log.ev[1].type == TN_CLI_EV_CLOSED && e.log.ev[1].err == TN_EVERSION);
	env_stop(&e);
}

/* A port nothing listens on: bound, then closed. */
static int
dead_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

TN_TEST(direct_connect_and_refused_port)
{
	struct env e;
	memset(&e, 0, sizeof(e));
	TN_CHECK_OK(tn_cli_loop_new(&e.loop));
	struct fake_opts fo = {0};
	e.fs = fake_start(&fo);
	struct tn_cli_opts o;
	opts_for(&o, &e, NULL);
	o.direct = true;
	o.port = fake_connector_port(e.fs, 1);
	TN_CHECK_OK(tn_cli_client_new(&e.c, e.loop, &o));
	TN_CHECK_OK(tn_cli_client_connect(e.c));
	RUN_UNTIL(e.loop, e.log.n, 3000);
	TN_CHECK(e.log.n == 1 && e.log.ev[0].type == TN_CLI_EV_CONNECTED);
	TN_CHECK_INT(e.log.ev[0].port, ==, fake_connector_port(e.fs, 1));
	struct fake_stats st;
	fake_get_stats(e.fs, &st);
	TN_CHECK_INT(st.accepted[0], ==, 0);
	tn_cli_client_free(e.c);

	struct ev_log log2 = {0};
	o.event_arg = &log2;
	o.direct = false;
	o.uid = "bob";
	o.port = dead_port();
	o.reconnect = false;
	TN_CHECK_OK(tn_cli_client_new(&e.c, e.loop, &o));
	TN_CHECK_OK(tn_cli_client_connect(e.c));
	RUN_UNTIL(e.loop, log2.n == 2, 3000);
	TN_CHECK(log2.ev[0].type == TN_CLI_EV_CONNECT_FAILED && log2.ev[0].err == TN_EIO);
	TN_CHECK(strstr(log2.ev[0].detail, "refused") != NULL);
	TN_CHECK(log2.ev[1].type == TN_CLI_EV_CLOSED);
	env_stop(&e);
}

TN_TEST(invalid_options_and_requests)
{
	struct tn_cli_loop *loop;
	TN_CHECK_OK(tn_cli_loop_new(&loop));
	struct tn_cli_opts o;
	struct tn_cli_client *c = NULL;
	tn_cli_opts_init(&o);
	o.host = "127.0.0.1";
	TN_CHECK_INT(tn_cli_client_new(&c, loop, &o), ==, TN_EINVAL); /* no uid */
	o.uid = "x";
	o.port = 0;
	TN_CHECK_INT(tn_cli_client_new(&c, loop, &o), ==, TN_EINVAL);
	o.port = 3014;
	o.backoff_max_ms = 10;
	TN_CHECK_INT(tn_cli_client_new(&c, loop, &o), ==, TN_EINVAL);
	o.backoff_max_ms = 1000;
	o.host = "bad host";
	TN_CHECK_OK(tn_cli_client_new(&c, loop, &o));
	struct resp r = {0};
	TN_CHECK_INT(tn_cli_request(c, "a.b.c", NULL, 0, 0, on_resp, &r), ==, TN_ECLOSED);
	TN_CHECK_INT(tn_cli_notify(c, "a.b.c", NULL, 0), ==, TN_ECLOSED);
	/* The invalid host is reported as a failed attempt, outside the call. */
	struct ev_log log = {0};
	tn_cli_client_free(c);
	o.on_event = on_event;
	o.event_arg = &log;
	o.reconnect = false;
	TN_CHECK_OK(tn_cli_client_new(&c, loop, &o));
	TN_CHECK_OK(tn_cli_client_connect(c));
	TN_CHECK_INT(log.n, ==, 0);
	RUN_UNTIL(loop, log.n == 2, 1000);
	TN_CHECK(log.ev[0].type == TN_CLI_EV_CONNECT_FAILED && log.ev[0].err == TN_EINVAL);
	tn_cli_client_free(c);
	tn_cli_loop_free(loop);
}

TN_TEST(bad_routes)
{
	struct env e;
	struct fake_opts fo = {0};
	TN_CHECK(env_start(&e, &fo, NULL));
	struct resp r = {0};
	char long_route[300];
	memset(long_route, 'r', sizeof(long_route) - 1);
	long_route[sizeof(long_route) - 1] = '\0';
	TN_CHECK_INT(tn_cli_request(e.c, long_route, NULL, 0, 0, on_resp, &r), ==, TN_EINVAL);
	TN_CHECK_INT(tn_cli_request(e.c, "", NULL, 0, 0, on_resp, &r), ==, TN_EINVAL);
	TN_CHECK_INT(tn_cli_client_pending(e.c), ==, 0);
	/* An unknown route is the server's to answer. */
	TN_CHECK_OK(tn_cli_request(e.c, "connector.nothing", NULL, 0, 0, on_resp, &r));
	RUN_UNTIL(e.loop, r.calls, 3000);
	TN_CHECK(r.calls == 1 && r.err == TN_OK);
	TN_CHECK_INT(r.calls, ==, 1);
	env_stop(&e);
}

TN_TEST(backoff_delays)
{
	struct tn_cli_opts o;
	tn_cli_opts_init(&o);
	TN_CHECK_INT(tn_cli_backoff_delay(&o, 1, 0), ==, 250);
	TN_CHECK_INT(tn_cli_backoff_delay(&o, 1, 250), ==, 500);
	TN_CHECK_INT(tn_cli_backoff_delay(&o, 3, 0), ==, 1000);
	TN_CHECK_INT(tn_cli_backoff_delay(&o, 3, 1000), ==, 2000);
	for (unsigned a = 1; a < 100; a++) {
		for (uint64_t rnd = 0; rnd < 5; rnd++) {
			int64_t d = tn_cli_backoff_delay(&o, a, rnd * 0x9e3779b97f4a7c15ull);
			TN_CHECK(d >= 250 && d <= 30000);
		}
	}
	TN_CHECK_INT(tn_cli_backoff_delay(&o, 1000000, 0), ==, 15000);
	TN_CHECK_STR(tn_cli_event_name(TN_CLI_EV_KICKED), "kicked");
}

/* ---- many clients on one loop ---- */

struct crowd {
	int connected;
	int answered;
};

static void
crowd_event(void *arg, struct tn_cli_client *c, const struct tn_cli_event *ev)
{
	struct crowd *cr = arg;
	cr->connected += ev->type == TN_CLI_EV_CONNECTED;
}

static void
crowd_resp(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct crowd *cr = arg;
	cr->answered += err == TN_OK;
}

TN_TEST(hundreds_of_clients_on_one_loop)
{
	enum { N = 300 };
	struct tn_cli_loop *loop;
	TN_CHECK_OK(tn_cli_loop_new(&loop));
	struct fake_opts fo = {.heartbeat_s = 1};
	struct fake_server *fs = fake_start(&fo);
	struct tn_cli_client *cs[N];
	struct crowd cr = {0};
	for (int i = 0; i < N; i++) {
		struct tn_cli_opts o;
		char uid[16];
		snprintf(uid, sizeof(uid), "u%d", i);
		tn_cli_opts_init(&o);
		o.host = "127.0.0.1";
		o.port = fake_gate_port(fs);
		o.uid = uid;
		o.on_event = crowd_event;
		o.event_arg = &cr;
		TN_CHECK_OK(tn_cli_client_new(&cs[i], loop, &o));
		TN_CHECK_OK(tn_cli_client_connect(cs[i]));
	}
	RUN_UNTIL(loop, cr.connected == N, 20000);
	TN_CHECK_INT(cr.connected, ==, N);
	for (int i = 0; i < N; i++)
		TN_CHECK_OK(tn_cli_request(cs[i], "connector.echo", "{}", 2, 0, crowd_resp, &cr));
	RUN_UNTIL(loop, cr.answered == N, 20000);
	TN_CHECK_INT(cr.answered, ==, N);
	struct fake_stats st;
	fake_get_stats(fs, &st);
	TN_CHECK_INT(st.open_sessions, ==, N);
	for (int i = 0; i < N; i++)
		tn_cli_client_free(cs[i]);
	TN_CHECK_INT(tn_cli_loop_timer_count(loop), ==, 0);
	TN_CHECK_INT(tn_cli_loop_watch_count(loop), ==, 1);
	fake_stop(fs);
	tn_cli_loop_free(loop);
}

TN_TEST_MAIN(TN_CASE(connect_request_push_notify), TN_CASE(deadlines),
        TN_CASE(heartbeats_keep_the_session), TN_CASE(heartbeat_timeout_then_reconnect),
        TN_CASE(kick_then_reconnect), TN_CASE(reconnect_through_the_gate),
        TN_CASE(backoff_then_give_up_then_connect_again), TN_CASE(close_fails_pending_then_closed),
        TN_CASE(free_from_inside_a_callback), TN_CASE(refused_handshake),
        TN_CASE(direct_connect_and_refused_port), TN_CASE(invalid_options_and_requests),
        TN_CASE(bad_routes), TN_CASE(backoff_delays), TN_CASE(hundreds_of_clients_on_one_loop))
