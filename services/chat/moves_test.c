/* Room moves between real chat servers (moves.c): each case starts tn_chat instances in
 * this process, each on its own loop thread, on 127.0.0.1 with ports of their own, and a
 * connector stand-in per connector: a SUB socket listening where the topology says the
 * connector's push listener is, so that the chat servers' push streams come up and their
 * pushes can be read. Requests go through tn_rpc_client as a connector's or a peer's
 * would; membership changes are applied on the chat server's loop, as the membership
 * client does. Every case asserts on replies, pushes and metrics. */
#include "chat_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "chat.h"
#include "chat_internal.h" /* only to wait for connections before a case starts */
#include "clock.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "moves.h"
#include "push.h"
#include "reply.h"
#include "rpc.h"
#include "tn_test.h"

/* How long anything that should happen may take before the case fails. */
#define DEADLINE_MS    5000
#define RPC_TIMEOUT_MS 2000

/* A connector stand-in: its push listener. */
struct sink {
	char id[32];
	int port;
	nng_socket sub;
};

struct srv {
	char id[32];
	int port;
	struct tn_config cfg;
	struct tn_loop *loop;
	pthread_t thr;
	struct tn_chat *chat;
	struct tn_rpc_client *cli; /* the test's client to it (on the driver loop) */
	bool running;
	/* The membership a refresh hands it (see on_refresh); NULL: none. */
	struct tn_topology *on_refresh;
};

/* Everything one case runs: the driver loop (the test's RPC clients deliver there), the
 * chat servers and the connector stand-ins. */
struct world {
	struct tn_loop *drv;
	pthread_t drv_thr;
	struct srv s[3];
	int n_srv;
	struct sink k[3];
	int n_sink;
};

/* ---- threads and loops ---- */

static void *
loop_main(void *arg)
{
	tn_loop_run(arg);
	return NULL;
}

struct sync_call {
	void (*fn)(void *arg);
	void *arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void
sync_task(void *arg, bool cancelled)
{
	struct sync_call *s = arg;
	if (!cancelled)
		s->fn(s->arg);
	pthread_mutex_lock(&s->mu);
	s->done = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Runs fn(arg) on loop's thread and waits for it. */
static void
run_on(struct tn_loop *loop, void (*fn)(void *), void *arg)
{
	struct sync_call s = {.fn = fn, .arg = arg};
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	tn_loop_post(loop, sync_task, &s);
	pthread_mutex_lock(&s.mu);
	while (!s.done)
		pthread_cond_wait(&s.cv, &s.mu);
	pthread_mutex_unlock(&s.mu);
	pthread_mutex_destroy(&s.mu);
	pthread_cond_destroy(&s.cv);
}

static void
sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* ---- ports, connector stand-ins, topologies ---- */

/* A port nobody listens on just now: the kernel's choice for port 0. */
static int
free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int
sink_open(struct sink *k, const char *id)
{
	snprintf(k->id, sizeof(k->id), "%s", id);
	if (nng_sub0_open(&k->sub) != 0)
		return TN_EIO;
	nng_socket_set(k->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_ms(k->sub, NNG_OPT_RECVTIMEO, 50);
	for (int tries = 0; tries < 5; tries++) {
		char url[64];
		k->port = free_port();
		snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", k->port);
		if (k->port > 0 && nng_listen(k->sub, url, NULL, 0) == 0)
			return TN_OK;
	}
	nng_close(k->sub);
	return TN_EADDR;
}

/* An empty membership of epoch `epoch`. */
static struct tn_topology *
topo_new(uint64_t epoch)
{
	struct tn_topology *t = tn_topology_new_empty();
	t->version = epoch;
	return t;
}

static void
topo_add(struct tn_topology *t, const char *id, enum tn_server_type type, int port, bool draining)
{
	struct tn_server_info s = {.id = (char *)id,
	        .type = type,
	        .host = "127.0.0.1",
	        .port = port,
	        .draining = draining};
	tn_topology_add(t, &s);
	tn_topology_sort(t);
}

static void
topo_chat(struct tn_topology *t, const struct srv *s)
{
	topo_add(t, s->id, TN_SERVER_CHAT, s->port, false);
}

static void
topo_conn(struct tn_topology *t, const struct sink *k)
{
	topo_add(t, k->id, TN_SERVER_CONNECTOR, k->port, false);
}

/* Writes into out the nth (from 0) room named prefix-<i> that `owner` owns in t. */
static void
room_of(char *out, size_t cap, const struct tn_topology *t, const char *owner, const char *prefix,
        int nth)
{
	for (int i = 0;; i++) {
		snprintf(out, cap, "%s-%d", prefix, i);
		const struct tn_server_info *o =
		        tn_topology_room_owner(t, out, strlen(out), TN_ROOM_HASH_RENDEZVOUS);
		if (o && strcmp(o->id, owner) == 0 && nth-- == 0)
			return;
	}
}

/* ---- chat servers ---- */

static int
srv_config(struct srv *s, const char *id)
{
	char port[16], err[256];
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->port = free_port();
	snprintf(port, sizeof(port), "%d", s->port);
	char *argv[] = {"tern-chat", "--config", "none", "--id", s->id, "--host", "127.0.0.1",
	        "--port", port, "--rpc-timeout", "2000", "--push-tick", "50", "--log-level", "info",
	        NULL};
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	int rv = tn_config_load(&s->cfg, TN_SERVER_CHAT, argc, argv, err, sizeof(err));
	if (rv)
		fprintf(stderr, "config: %s\n", err);
	/* Recoveries end by confirmation in these cases, never by time. */
	s->cfg.evict_after_ms = 10000;
	return rv;
}

struct set_topo {
	struct tn_chat *chat;
	struct tn_topology *t;
};

static void
set_topo_task(void *arg)
{
	struct set_topo *st = arg;
	tn_chat_set_topology(st->chat, st->t);
}

/* Gives s a copy of t as its membership, on its loop. */
static void
srv_set_topology(struct srv *s, const struct tn_topology *t)
{
	struct set_topo st = {s->chat, tn_topology_copy(t)};
	run_on(s->loop, set_topo_task, &st);
}

static void
apply_refresh_task(void *arg, bool cancelled)
{
	struct srv *s = arg;
	if (!cancelled && s->on_refresh) {
		tn_chat_set_topology(s->chat, s->on_refresh);
		s->on_refresh = NULL;
	}
}

/* The refresh hook: the "registry" answers with the membership the case prepared, on
 * the server's loop, as the membership client would. */
static void
on_refresh(void *arg)
{
	struct srv *s = arg;
	tn_loop_post(s->loop, apply_refresh_task, s);
}

/* Starts chat server s (configured by srv_config) with membership t (copied). */
static int
srv_start(struct world *w, struct srv *s, const struct tn_topology *t)
{
	s->loop = tn_loop_new();
	int rv = tn_chat_new(&s->chat, &s->cfg, tn_topology_copy(t), s->loop);
	if (rv) {
		tn_loop_free(s->loop);
		return rv;
	}
	pthread_create(&s->thr, NULL, loop_main, s->loop);
	s->running = true;
	/* What main.c does once the registry answers: peers come from the membership. */
	srv_set_topology(s, t);
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", s->port);
	struct tn_rpc_client_opts o = {.max_inflight = 8, .max_queued = 64, .max_msg = 1u << 20};
	return tn_rpc_client_new(&s->cli, url, &o, tn_loop_exec(w->drv));
}

static void
client_free_task(void *arg)
{
	tn_rpc_client_free(arg);
}

static void
srv_stop(struct world *w, struct srv *s)
{
	if (s->cli)
		run_on(w->drv, client_free_task, s->cli);
	s->cli = NULL;
	if (s->running) {
		tn_chat_set_refresh(s->chat, NULL, NULL);
		tn_loop_stop(s->loop);
		pthread_join(s->thr, NULL);
		tn_loop_close(s->loop);
		tn_chat_free(s->chat);
		tn_loop_free(s->loop);
		s->running = false;
	}
	tn_topology_free(s->on_refresh);
	s->on_refresh = NULL;
	tn_config_fini(&s->cfg);
}

struct ready_check {
	struct tn_chat *c;
	bool ready;
};

/* Whether every open push stream and every peer client of a chat server is connected. */
static void
ready_task(void *arg)
{
	struct ready_check *r = arg;
	struct tn_chat *c = r->c;
	r->ready = true;
	for (int i = 0; i < c->n_streams; i++)
		if (!c->stream_closed[i] && !tn_stream_up(&c->streams[i]))
			r->ready = false;
	for (int i = 0; i < c->n_peers; i++)
		if (c->peers[i].live && c->peers[i].rpc &&
		        !tn_rpc_client_connected(c->peers[i].rpc))
			r->ready = false;
}

/* Waits until s is connected to every connector and chat server it knows (a case's
 * precondition, not an assertion). */
static bool
srv_wait_ready(struct srv *s)
{
	int64_t until = tn_now_ms() + DEADLINE_MS;
	struct ready_check r = {s->chat, false};
	while (run_on(s->loop, ready_task, &r), !r.ready && tn_now_ms() < until)
		sleep_ms(10);
	return r.ready;
}

/* ---- the world ---- */

static int
world_start(struct world *w)
{
	static bool logging;
	if (!logging) {
		tn_log_init("moves-test", TN_LOG_INFO);
		logging = true;
	}
	memset(w, 0, sizeof(*w));
	w->drv = tn_loop_new();
	pthread_create(&w->drv_thr, NULL, loop_main, w->drv);
	return TN_OK;
}

static void
world_stop(struct world *w)
{
	for (int i = 0; i < w->n_srv; i++)
		srv_stop(w, &w->s[i]);
	for (int i = 0; i < w->n_sink; i++)
		nng_close(w->k[i].sub);
	tn_loop_stop(w->drv);
	pthread_join(w->drv_thr, NULL);
	tn_loop_close(w->drv);
	tn_loop_free(w->drv);
}

/* Adds a chat server (configured, not started) to w. */
static struct srv *
world_srv(struct world *w, const char *id)
{
	struct srv *s = &w->s[w->n_srv++];
	return srv_config(s, id) == TN_OK ? s : NULL;
}

static struct sink *
world_sink(struct world *w, const char *id)
{
	struct sink *k = &w->k[w->n_sink];
	if (sink_open(k, id) != TN_OK)
		return NULL;
	w->n_sink++;
	return k;
}

/* ---- calls ---- */

/* A reply as the test keeps it. */
struct answer {
	int err;  /* the call's transport result */
	int code; /* the reply's code (-1 when there was none) */
	uint64_t epoch;
	bool has_users;
	char users[256]; /* the users list joined by ',' */
	char reason[128];
};

struct call {
	struct tn_rpc_client *cli;
	const uint8_t *data;
	size_t len;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	struct answer a;
};

static void
answer_fill(struct answer *a, const uint8_t *data, size_t len)
{
	struct tn_reply rep;
	if (tn_reply_decode(&rep, data, len, NULL) != TN_OK)
		return;
	a->code = rep.code;
	a->epoch = rep.epoch;
	a->has_users = rep.has_users;
	snprintf(a->reason, sizeof(a->reason), "%.*s", (int)rep.reason.len, rep.reason.p);
	struct tn_str u;
	size_t off = 0;
	while (tn_str_iter_next(&rep.users, &u) && off + u.len + 2 < sizeof(a->users))
		off += (size_t)snprintf(a->users + off, sizeof(a->users) - off, "%s%.*s",
		        off ? "," : "", (int)u.len, u.p);
}

static void
call_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct call *c = arg;
	c->a.err = err;
	if (err == TN_OK)
		answer_fill(&c->a, data, len);
	pthread_mutex_lock(&c->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void
call_start(void *arg, bool cancelled)
{
	struct call *c = arg;
	if (cancelled)
		call_done(c, TN_ECLOSED, NULL, 0);
	else
		tn_rpc_call(c->cli, c->data, c->len, RPC_TIMEOUT_MS + 1000, call_done, c);
}

/* Sends the request in b to s and returns its answer (b is reset). */
static struct answer
ask(struct world *w, struct srv *s, struct tn_buf *b)
{
	struct call c = {.cli = s->cli, .data = b->data, .len = b->len, .a = {.code = -1}};
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cv, NULL);
	tn_loop_post(w->drv, call_start, &c);
	pthread_mutex_lock(&c.mu);
	while (!c.done)
		pthread_cond_wait(&c.cv, &c.mu);
	pthread_mutex_unlock(&c.mu);
	pthread_mutex_destroy(&c.mu);
	pthread_cond_destroy(&c.cv);
	tn_buf_reset(b);
	return c.a;
}

/* A connector's request about one member of a room. */
struct who {
	const char *conn;
	uint64_t sid;
	const char *name;
	uint64_t conn_inc;
};

static struct answer
chat_req(struct world *w, struct srv *s, enum tn_kind kind, uint64_t epoch, const char *rid,
        struct who m)
{
	struct tn_chat_req r = {.epoch = epoch,
	        .connector_id = tn_str_of(m.conn),
	        .sid = m.sid,
	        .rid = tn_str_of(rid),
	        .name = tn_str_of(m.name),
	        .target = TN_STR("*"),
	        .content = TN_STR("hello"),
	        .conn_inc = m.conn_inc};
	struct tn_buf b;
	tn_buf_init(&b);
	tn_chat_req_encode(&b, kind, &r);
	struct answer a = ask(w, s, &b);
	tn_buf_fini(&b);
	return a;
}

static struct answer
enter(struct world *w, struct srv *s, uint64_t epoch, const char *rid, struct who m)
{
	return chat_req(w, s, TN_KIND_CHAT_ENTER, epoch, rid, m);
}

/* An enter as a connector makes it: asked again while the answer is TN_ERECOVERING. */
static struct answer
enter_retry(struct world *w, struct srv *s, uint64_t epoch, const char *rid, struct who m)
{
	int64_t until = tn_now_ms() + DEADLINE_MS;
	struct answer a;
	while (a = enter(w, s, epoch, rid, m),
	        a.err == TN_OK && a.code == TN_ERECOVERING && tn_now_ms() < until)
		sleep_ms(20);
	return a;
}

/* Asks s for rid at epoch until the answer is `want` (other retryable codes may come
 * first; anything else ends the wait). Returns the last answer. */
static struct answer
enter_until(struct world *w, struct srv *s, uint64_t epoch, const char *rid, struct who m, int want)
{
	int64_t until = tn_now_ms() + DEADLINE_MS;
	struct answer a;
	while (a = enter(w, s, epoch, rid, m),
	        a.err == TN_OK && a.code != want &&
	                (a.code == TN_ERECOVERING || a.code == TN_EMOVED) && tn_now_ms() < until)
		sleep_ms(20);
	return a;
}

static struct answer
claim(struct world *w, struct srv *s, uint64_t epoch, const char *from, const char *rid)
{
	struct tn_room_claim cl = {.epoch = epoch, .from = tn_str_of(from), .rid = tn_str_of(rid)};
	struct tn_buf b;
	tn_buf_init(&b);
	tn_room_claim_encode(&b, &cl);
	struct answer a = ask(w, s, &b);
	tn_buf_fini(&b);
	return a;
}

/* A rejoin batch of connector conn for lost: n members of rooms rids[i], names[i],
 * sids[i]. */
static struct answer
rejoin(struct world *w, struct srv *s, uint64_t epoch, const char *conn, uint64_t conn_inc,
        const char *lost, bool final, const char *const *rids, const char *const *names,
        const uint64_t *sids, uint32_t n)
{
	struct tn_str r[4], m[4];
	for (uint32_t i = 0; i < n && i < 4; i++) {
		r[i] = tn_str_of(rids[i]);
		m[i] = tn_str_of(names[i]);
	}
	struct tn_room_rejoin rj = {.epoch = epoch,
	        .connector_id = tn_str_of(conn),
	        .conn_inc = conn_inc,
	        .lost = tn_str_of(lost),
	        .final = final};
	tn_str_iter_init(&rj.rids, r, n);
	tn_str_iter_init(&rj.names, m, n);
	tn_u64_iter_init(&rj.sids, sids, n);
	struct tn_buf b;
	tn_buf_init(&b);
	tn_room_rejoin_encode(&b, &rj);
	struct answer a = ask(w, s, &b);
	tn_buf_fini(&b);
	return a;
}

/* ---- observations ---- */

/* The value of counter name{label=value} (shared by every chat server in the process:
 * cases compare differences while one server acts). */
static uint64_t
metric(const char *name, const char *label, const char *value)
{
	struct tn_metric_family *fam;
	struct tn_counter *c;
	if (label == NULL) {
		if (tn_metrics_counter(&c, name, NULL) != TN_OK)
			return UINT64_MAX;
		return tn_counter_get(c);
	}
	if (tn_metrics_family_new(&fam, TN_METRIC_COUNTER, name, NULL, label, NULL, 0) != TN_OK)
		return UINT64_MAX;
	return tn_counter_get(tn_metrics_counter_labels(fam, value));
}

static bool
sids_have(struct tn_u64_iter sids, uint64_t sid)
{
	uint64_t x;
	while (tn_u64_iter_next(&sids, &x))
		if (x == sid)
			return true;
	return false;
}

/* Reads k's pushes until one from chat server `chat` for room rid with this route reaches
 * session sid. Earlier pushes are skipped. */
static bool
wait_push(struct sink *k, const char *chat, const char *rid, const char *route, uint64_t sid)
{
	int64_t until = tn_now_ms() + DEADLINE_MS;
	while (tn_now_ms() < until) {
		nng_msg *msg;
		if (nng_recvmsg(k->sub, &msg, 0) != 0)
			continue;
		struct tn_push_reader rd;
		struct tn_push_item it;
		bool found = false;
		if (tn_push_reader_init(&rd, nng_msg_body(msg), nng_msg_len(msg), NULL) == TN_OK &&
		        tn_str_eq(rd.hdr.chat_id, tn_str_of(chat)))
			while (!found && tn_push_reader_next(&rd, &it))
				found = tn_str_eq(it.rid, tn_str_of(rid)) &&
				        tn_str_eq(it.route, tn_str_of(route)) &&
				        sids_have(it.sids, sid);
		nng_msg_free(msg);
		if (found)
			return true;
	}
	return false;
}

#define MOVES_IN()  metric("tern_chat_room_moves_total", "direction", "in")
#define MOVES_OUT() metric("tern_chat_room_moves_total", "direction", "out")
#define MOVED()     metric("tern_chat_retry_answers_total", "code", "moved")
#define CLAIMS()    metric("tern_chat_room_claims_total", NULL, NULL)

/* ---- cases ---- */

/* Runs body(w) between a fresh world's start and stop, so a failed check still stops
 * every server. */
static void
with_world(void (*body)(struct world *w))
{
	struct world w;
	if (world_start(&w) != TN_OK) {
		tn_test_failures_++;
		return;
	}
	body(&w);
	world_stop(&w);
}

/* a. Ownership by epoch: a room another server owns, or a caller with a newer
 * membership, gets TN_EMOVED with the replier's epoch; a room held active is served
 * whatever the caller's epoch. */
static void
moved_body(struct world *w)
{
	struct sink *k = world_sink(w, "connector-1");
	struct srv *a = world_srv(w, "chat-a"), *b = world_srv(w, "chat-b");
	TN_CHECK(k && a && b);
	struct tn_topology *t = topo_new(5);
	topo_chat(t, a);
	topo_chat(t, b);
	topo_conn(t, k);
	char ra[32], rb[32];
	room_of(ra, sizeof(ra), t, "chat-a", "epoch-room", 0);
	room_of(rb, sizeof(rb), t, "chat-b", "epoch-room", 0);
	int rv = srv_start(w, a, t);
	if (rv == TN_OK)
		rv = srv_start(w, b, t);
	tn_topology_free(t);
	TN_CHECK_OK(rv);
	TN_CHECK(srv_wait_ready(a) && srv_wait_ready(b));

	uint64_t moved0 = MOVED();
	struct answer x = enter(w, a, 5, rb, (struct who){"connector-1", 1, "alice", 0});
	TN_CHECK_OK(x.err);
	TN_CHECK_INT(x.code, ==, TN_EMOVED);
	TN_CHECK_INT(x.epoch, ==, 5);
	/* Newer than the server's: not held, so not served. */
	x = enter(w, a, 6, ra, (struct who){"connector-1", 1, "alice", 0});
	TN_CHECK_INT(x.code, ==, TN_EMOVED);
	TN_CHECK_INT(x.epoch, ==, 5);
	TN_CHECK_INT(MOVED() - moved0, ==, 2);

	x = enter_retry(w, a, 5, ra, (struct who){"connector-1", 1, "alice", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "alice");
	/* Held active: an older epoch is served too. */
	x = enter(w, a, 3, ra, (struct who){"connector-1", 2, "bob", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "alice,bob");
	/* And the other server still refuses the room at the current epoch. */
	x = enter(w, b, 5, ra, (struct who){"connector-1", 3, "carol", 0});
	TN_CHECK_INT(x.code, ==, TN_EMOVED);
	TN_CHECK(wait_push(k, "chat-a", ra, "onAdd", 1));
}

TN_TEST(test_moved_by_epoch)
{
	with_world(moved_body);
}

/* b. A claim: A holds the room from when it was the only chat server; B, owner in a
 * newer membership, is asked for it, claims it from A (whose refresh then brings it the
 * same membership), and serves it with its members; A answers TN_EMOVED afterwards. */
static void
claim_body(struct world *w)
{
	struct sink *k = world_sink(w, "connector-1");
	struct srv *a = world_srv(w, "chat-a"), *b = world_srv(w, "chat-b");
	TN_CHECK(k && a && b);
	struct tn_topology *t1 = topo_new(1), *t2 = topo_new(2);
	topo_chat(t1, a);
	topo_conn(t1, k);
	topo_chat(t2, a);
	topo_chat(t2, b);
	topo_conn(t2, k);
	char r[32];
	room_of(r, sizeof(r), t2, "chat-b", "claim-room", 0);
	int rv = srv_start(w, a, t1);
	if (rv == TN_OK)
		rv = srv_start(w, b, t2);
	tn_topology_free(t1);
	if (rv == TN_OK) {
		a->on_refresh = t2; /* what the registry tells A when it asks */
		tn_chat_set_refresh(a->chat, on_refresh, a);
	} else {
		tn_topology_free(t2);
	}
	TN_CHECK_OK(rv);
	TN_CHECK(srv_wait_ready(a) && srv_wait_ready(b));

	struct answer x = enter(w, a, 1, r, (struct who){"connector-1", 1, "alice", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "alice");

	uint64_t claims0 = CLAIMS(), in0 = MOVES_IN(), out0 = MOVES_OUT();
	x = enter_retry(w, b, 2, r, (struct who){"connector-1", 2, "bob", 0});
	TN_CHECK_OK(x.err);
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "alice,bob");
	TN_CHECK_INT(CLAIMS() - claims0, >=, 1);
	TN_CHECK_INT(MOVES_OUT() - out0, ==, 1);
	TN_CHECK_INT(MOVES_IN() - in0, ==, 1);
	/* alice is B's member now: B tells her about bob. */
	TN_CHECK(wait_push(k, "chat-b", r, "onAdd", 1));

	x = enter_until(w, a, 2, r, (struct who){"connector-1", 3, "carol", 0}, TN_EMOVED);
	TN_CHECK_INT(x.code, ==, TN_EMOVED);
	TN_CHECK_INT(x.epoch, ==, 2); /* A took the membership its refresh brought */
}

TN_TEST(test_claim_from_holder)
{
	with_world(claim_body);
}

/* A hand-off of room rid from a server "chat-x" at epoch: xfer, members u1, u2 on conn. */
static struct answer
send_state(struct world *w, struct srv *s, uint64_t epoch, const char *rid, uint64_t xfer,
        const char *conn1, const char *conn2)
{
	static const struct tn_str names[] = {TN_STR("u1"), TN_STR("u2")};
	static const uint64_t sids[] = {11, 12}, incs[] = {0, 0};
	struct tn_str conns[] = {tn_str_of(conn1), tn_str_of(conn2)};
	struct tn_room_state st = {.epoch = epoch,
	        .from = TN_STR("chat-x"),
	        .rid = tn_str_of(rid),
	        .next_seq = 9,
	        .xfer = xfer};
	tn_str_iter_init(&st.names, names, 2);
	tn_str_iter_init(&st.connectors, conns, 2);
	tn_u64_iter_init(&st.sids, sids, 2);
	tn_u64_iter_init(&st.conn_incs, incs, 2);
	struct tn_buf b;
	tn_buf_init(&b);
	tn_room_state_encode(&b, &st);
	struct answer a = ask(w, s, &b);
	tn_buf_fini(&b);
	return a;
}

/* c. The same hand-off twice (a resend after a lost acknowledgement) is acknowledged
 * twice and taken once; one naming a connector whose push stream is not up is refused
 * as retryable. */
static void
resend_body(struct world *w)
{
	struct sink *k = world_sink(w, "connector-1");
	struct srv *b = world_srv(w, "chat-b");
	TN_CHECK(k && b);
	/* connector-2 is in the membership, but nothing listens where it says. */
	struct tn_topology *t = topo_new(4);
	topo_chat(t, b);
	topo_conn(t, k);
	topo_add(t, "connector-2", TN_SERVER_CONNECTOR, free_port(), false);
	int rv = srv_start(w, b, t);
	tn_topology_free(t);
	TN_CHECK_OK(rv);
	int64_t until = tn_now_ms() + DEADLINE_MS;
	struct answer x;
	/* Wait for connector-1's stream only (connector-2's never comes up). */
	while (x = enter(w, b, 4, "warm-up", (struct who){"connector-1", 99, "w", 0}),
	        x.code != TN_OK && tn_now_ms() < until)
		sleep_ms(20);
	TN_CHECK_INT(x.code, ==, TN_OK);

	uint64_t in0 = MOVES_IN();
	x = send_state(w, b, 4, "resend-room", 4242, "connector-1", "connector-2");
	TN_CHECK_INT(x.code, ==, TN_ERECOVERING);
	TN_CHECK_INT(MOVES_IN() - in0, ==, 0);

	x = send_state(w, b, 4, "resend-room", 4243, "connector-1", "connector-1");
	TN_CHECK_INT(x.code, ==, TN_OK);
	x = send_state(w, b, 4, "resend-room", 4243, "connector-1", "connector-1");
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_INT(MOVES_IN() - in0, ==, 1);

	x = enter(w, b, 4, "resend-room", (struct who){"connector-1", 13, "u3", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "u1,u2,u3");
	TN_CHECK(wait_push(k, "chat-b", "resend-room", "onAdd", 11));
	x = enter(w, b, 4, "resend-room", (struct who){"connector-1", 14, "u1", 0});
	TN_CHECK_INT(x.code, ==, TN_EEXIST);
	/* A resend after the room has moved on changes nothing. */
	x = send_state(w, b, 4, "resend-room", 4243, "connector-1", "connector-1");
	TN_CHECK_INT(x.code, ==, TN_OK);
	x = enter(w, b, 4, "resend-room", (struct who){"connector-1", 15, "u4", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "u1,u2,u3,u4");
	TN_CHECK_INT(MOVES_IN() - in0, ==, 1);
}

TN_TEST(test_handoff_resend)
{
	with_world(resend_body);
}

/* d. A claim is refused by a holder that owns the room at the claimer's epoch, and
 * honoured at a newer one: the room goes to the claimer with its members. */
static void
refusal_body(struct world *w)
{
	struct sink *k = world_sink(w, "connector-1");
	struct srv *a = world_srv(w, "chat-a"), *b = world_srv(w, "chat-b");
	TN_CHECK(k && a && b);
	struct tn_topology *t3 = topo_new(3), *t4 = topo_new(4);
	topo_chat(t3, a);
	topo_chat(t3, b);
	topo_conn(t3, k);
	/* Epoch 4: A drains (the registry says so), so B owns every room. */
	topo_add(t4, a->id, TN_SERVER_CHAT, a->port, true);
	topo_chat(t4, b);
	topo_conn(t4, k);
	char r[32];
	room_of(r, sizeof(r), t3, "chat-a", "refusal-room", 0);
	int rv = srv_start(w, a, t3);
	if (rv == TN_OK)
		rv = srv_start(w, b, t3);
	tn_topology_free(t3);
	TN_CHECK_OK(rv);
	TN_CHECK(srv_wait_ready(a) && srv_wait_ready(b));

	struct answer x = enter_retry(w, a, 3, r, (struct who){"connector-1", 1, "alice", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "alice");
	x = claim(w, a, 3, "chat-b", r);
	TN_CHECK_INT(x.code, ==, TN_EMOVED);
	TN_CHECK_INT(x.epoch, ==, 3);
	x = enter(w, a, 3, r, (struct who){"connector-1", 2, "bob", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "alice,bob");

	srv_set_topology(b, t4);
	tn_topology_free(t4);
	uint64_t in0 = MOVES_IN();
	x = claim(w, a, 4, "chat-b", r);
	TN_CHECK_INT(x.code, ==, TN_OK);
	/* Given up: a caller at epoch 4 (newer than A's) is sent away at once. */
	x = enter(w, a, 4, r, (struct who){"connector-1", 3, "carol", 0});
	TN_CHECK_INT(x.code, ==, TN_EMOVED);
	TN_CHECK_INT(x.epoch, ==, 3);
	x = enter_retry(w, b, 4, r, (struct who){"connector-1", 3, "carol", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "alice,bob,carol");
	TN_CHECK_INT(MOVES_IN() - in0, ==, 1);
	TN_CHECK(wait_push(k, "chat-b", r, "onAdd", 1));
	/* At A's stale epoch A asks for the room back, and B (at 4) refuses: retryable,
	 * never served by A. */
	x = enter(w, a, 3, r, (struct who){"connector-1", 4, "dave", 0});
	TN_CHECK(x.code == TN_EMOVED || x.code == TN_ERECOVERING);
	x = enter(w, b, 4, r, (struct who){"connector-1", 4, "dave", 0});
	TN_CHECK_STR(x.users, "alice,bob,carol,dave");
}

TN_TEST(test_claim_refused_then_honoured)
{
	with_world(refusal_body);
}

/* e. A crash: A leaves B's membership; A's rooms answer TN_ERECOVERING until every
 * connector of B's membership has sent its final rejoin at B's epoch; the rebuilt room
 * holds exactly the rejoined members. */
static void
rebuild_body(struct world *w)
{
	struct sink *k1 = world_sink(w, "connector-1"), *k2 = world_sink(w, "connector-2");
	struct srv *b = world_srv(w, "chat-b");
	TN_CHECK(k1 && k2 && b);
	/* chat-a is only an entry: it has "crashed" before the case starts. */
	struct tn_topology *t10 = topo_new(10), *t11 = topo_new(11);
	topo_add(t10, "chat-a", TN_SERVER_CHAT, free_port(), false);
	topo_chat(t10, b);
	topo_conn(t10, k1);
	topo_conn(t10, k2);
	topo_chat(t11, b);
	topo_conn(t11, k1);
	topo_conn(t11, k2);
	char ra[32], rb[32];
	room_of(ra, sizeof(ra), t10, "chat-a", "lost-room", 0);
	room_of(rb, sizeof(rb), t10, "chat-b", "lost-room", 0);
	int rv = srv_start(w, b, t10);
	tn_topology_free(t10);
	if (rv == TN_OK)
		srv_set_topology(b, t11);
	tn_topology_free(t11);
	TN_CHECK_OK(rv);
	TN_CHECK(srv_wait_ready(b));
	uint64_t rec0 = metric("tern_chat_recoveries_total", "end", "confirmed");
	uint64_t rebuilt0 = metric("tern_chat_rooms_rebuilt_total", NULL, NULL);

	const struct who u3 = {"connector-1", 23, "u3", 501};
	struct answer x = enter(w, b, 11, ra, u3);
	TN_CHECK_INT(x.code, ==, TN_ERECOVERING);
	x = enter(w, b, 11, rb, (struct who){"connector-1", 24, "v", 501});
	TN_CHECK_INT(x.code, ==, TN_OK); /* B's own rooms are not held up */
	TN_CHECK_STR(x.users, "v");

	const char *rids[] = {ra}, *n1[] = {"u1"}, *n2[] = {"u2"};
	const uint64_t s1[] = {21}, s2[] = {22};
	x = rejoin(w, b, 10, "connector-1", 501, "chat-a", true, rids, n1, s1, 1);
	TN_CHECK_INT(x.code, ==, TN_EMOVED);
	TN_CHECK_INT(x.epoch, ==, 11);
	x = rejoin(w, b, 12, "connector-1", 501, "chat-a", true, rids, n1, s1, 1);
	TN_CHECK_INT(x.code, ==, TN_EMOVED);
	x = rejoin(w, b, 11, "connector-1", 501, "chat-a", false, rids, n1, s1, 1);
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_INT(enter(w, b, 11, ra, u3).code, ==, TN_ERECOVERING);
	x = rejoin(w, b, 11, "connector-1", 501, "chat-a", true, NULL, NULL, NULL, 0);
	TN_CHECK_INT(x.code, ==, TN_OK);
	/* connector-2 has not confirmed yet. */
	TN_CHECK_INT(enter(w, b, 11, ra, u3).code, ==, TN_ERECOVERING);
	TN_CHECK_INT(metric("tern_chat_recoveries_total", "end", "confirmed") - rec0, ==, 0);
	x = rejoin(w, b, 11, "connector-2", 502, "chat-a", true, rids, n2, s2, 1);
	TN_CHECK_INT(x.code, ==, TN_OK);

	x = enter(w, b, 11, ra, u3);
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "u1,u2,u3");
	TN_CHECK_INT(metric("tern_chat_recoveries_total", "end", "confirmed") - rec0, ==, 1);
	TN_CHECK_INT(metric("tern_chat_rooms_rebuilt_total", NULL, NULL) - rebuilt0, ==, 1);
	TN_CHECK(wait_push(k1, "chat-b", ra, "onAdd", 21));
	TN_CHECK(wait_push(k2, "chat-b", ra, "onAdd", 22));
}

TN_TEST(test_crash_rebuild)
{
	with_world(rebuild_body);
}

/* f. Draining: A hands every room to B and tn_chat_drain returns 0; B serves them with
 * their members, A answers TN_EMOVED. */
static void
drain_body(struct world *w)
{
	struct sink *k = world_sink(w, "connector-1");
	struct srv *a = world_srv(w, "chat-a"), *b = world_srv(w, "chat-b");
	TN_CHECK(k && a && b);
	struct tn_topology *t = topo_new(20);
	topo_chat(t, a);
	topo_chat(t, b);
	topo_conn(t, k);
	char r1[32], r2[32];
	room_of(r1, sizeof(r1), t, "chat-a", "drain-room", 0);
	room_of(r2, sizeof(r2), t, "chat-a", "drain-room", 1);
	int rv = srv_start(w, a, t);
	if (rv == TN_OK)
		rv = srv_start(w, b, t);
	tn_topology_free(t);
	TN_CHECK_OK(rv);
	TN_CHECK(srv_wait_ready(a) && srv_wait_ready(b));

	struct answer x = enter_retry(w, a, 20, r1, (struct who){"connector-1", 1, "alice", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	x = enter(w, a, 20, r1, (struct who){"connector-1", 2, "bob", 0});
	TN_CHECK_STR(x.users, "alice,bob");
	x = enter_retry(w, a, 20, r2, (struct who){"connector-1", 3, "carol", 0});
	TN_CHECK_STR(x.users, "carol");

	uint64_t out0 = MOVES_OUT(), in0 = MOVES_IN();
	TN_CHECK_INT(tn_chat_drain(a->chat, tn_now_ms() + DEADLINE_MS), ==, 0);
	TN_CHECK_INT(MOVES_OUT() - out0, ==, 2);
	TN_CHECK_INT(MOVES_IN() - in0, ==, 2);

	x = enter(w, b, 20, r1, (struct who){"connector-1", 4, "dave", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "alice,bob,dave");
	x = enter(w, b, 20, r2, (struct who){"connector-1", 5, "erin", 0});
	TN_CHECK_STR(x.users, "carol,erin");
	TN_CHECK(wait_push(k, "chat-b", r1, "onAdd", 2));
	x = enter(w, a, 20, r1, (struct who){"connector-1", 6, "frank", 0});
	TN_CHECK_INT(x.code, ==, TN_EMOVED);
}

TN_TEST(test_drain)
{
	with_world(drain_body);
}

/* g. A hand-off naming a member whose connector has left the membership, to a server
 * that never knew that connector: the room should arrive without that member (install()
 * leaves out members it cannot push to, and streams_ready() says such members "do not
 * count"), so the new owner serves it. */
static void
gone_connector_body(struct world *w)
{
	struct sink *k1 = world_sink(w, "connector-1"), *k2 = world_sink(w, "connector-2");
	struct srv *a = world_srv(w, "chat-a"), *b = world_srv(w, "chat-b");
	TN_CHECK(k1 && k2 && a && b);
	struct tn_topology *t1 = topo_new(1), *t2 = topo_new(2), *t3 = topo_new(3);
	topo_chat(t1, a);
	topo_conn(t1, k1);
	topo_conn(t1, k2);
	topo_chat(t2, a); /* connector-2 leaves (drains: its pipe stays up a while) */
	topo_conn(t2, k1);
	topo_chat(t3, a); /* then chat-b joins; it never hears of connector-2 */
	topo_chat(t3, b);
	topo_conn(t3, k1);
	char r[32];
	room_of(r, sizeof(r), t3, "chat-b", "gone-room", 0);
	int rv = srv_start(w, a, t1);
	if (rv == TN_OK)
		rv = srv_start(w, b, t3);
	tn_topology_free(t1);
	if (rv == TN_OK && srv_wait_ready(a) && srv_wait_ready(b)) {
		struct answer x = enter(w, a, 1, r, (struct who){"connector-1", 1, "alice", 0});
		rv = strcmp(x.users, "alice") == 0 ? TN_OK : TN_EINVAL;
		x = enter(w, a, 1, r, (struct who){"connector-2", 2, "bob", 0});
		rv = rv || strcmp(x.users, "alice,bob") != 0 ? TN_EINVAL : TN_OK;
		srv_set_topology(a, t2);
		srv_set_topology(a, t3);
	} else {
		rv = TN_EINVAL;
	}
	tn_topology_free(t2);
	tn_topology_free(t3);
	TN_CHECK_OK(rv);

	struct answer x = enter_retry(w, b, 3, r, (struct who){"connector-1", 3, "carol", 0});
	TN_CHECK_INT(x.code, ==, TN_OK);
	TN_CHECK_STR(x.users, "alice,carol");
}

/* A hand-off naming a member of a connector that left before this server's membership
 * (it never had a stream to it) is taken without that member, not refused for ever. */
TN_TEST(test_handoff_gone_connector)
{
	with_world(gone_connector_body);
}

TN_TEST_MAIN(TN_CASE(test_moved_by_epoch), TN_CASE(test_claim_from_holder),
        TN_CASE(test_handoff_resend), TN_CASE(test_claim_refused_then_honoured),
        TN_CASE(test_crash_rebuild), TN_CASE(test_drain), TN_CASE(test_handoff_gone_connector))
