/* The membership client against a scripted registry over inproc: registration with the
 * server's own details, heartbeats with its load, memberships handed to the owner thread
 * when notices or ACKs show a newer epoch, re-registration when the registry forgets the
 * server, refusal, the quiet period (a seed is kept), loads followed at every heartbeat,
 * draining, refreshing on request, leaving on stop, and stopping with no registry. */
#include "membership.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "metrics.h"
#include "rpc.h"
#include "tn_test.h"

/* ---- a scripted registry ---- */

struct fake {
	struct tn_loop *loop;
	pthread_t thr;
	struct tn_rpc_server *rpc;
	nng_socket pub;
	char url[64], notice_url[64];
	pthread_mutex_t mu;
	/* What it answers (under mu). */
	uint64_t epoch, inc;
	bool recovering;
	int register_code;  /* TN_OK, or a refusal */
	bool closing;       /* answer as a registry that is shutting down */
	bool forget;        /* answer the next heartbeat with ENOENT */
	struct tn_topology *members;
	/* What it saw (under mu). */
	int registers, heartbeats, leaves, snapshots;
	char reg_id[64];
	int reg_type, reg_port, reg_client_port, reg_pid;
	uint64_t reg_inc, reg_epoch, leave_inc, hb_connections, hb_sessions;
	bool reg_draining, hb_draining;
	struct tn_buf b;
};

static void
fake_ack(struct fake *f, struct tn_rpc_req *req, int code, const char *reason)
{
	struct tn_reg_ack a = {.code = code, .reason = tn_str_of(reason), .epoch = f->epoch,
		.registry_inc = f->inc, .recovering = f->recovering, .evict_after_ms = 5000,
		.closing = f->closing};
	tn_buf_reset(&f->b);
	tn_reg_ack_encode(&f->b, &a);
	tn_rpc_reply(req, f->b.data, f->b.len);
}

static void
fake_snapshot(struct fake *f, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_reg_snapshot_req q;
	f->snapshots++;
	if (tn_reg_snapshot_req_decode(&q, data, len, NULL) != TN_OK) {
		fake_ack(f, req, TN_EPROTO, "bad");
		return;
	}
	if (f->recovering && q.registry_inc != f->inc && q.epoch != 0) {
		fake_ack(f, req, TN_ERECOVERING, "quiet");
		return;
	}
	struct tn_reg_server views[16];
	size_t n = f->members->n < 16 ? f->members->n : 16;
	for (size_t i = 0; i < n; i++)
		tn_membership_server_view(&views[i], &f->members->servers[i]);
	struct tn_reg_snapshot_hdr h = {f->epoch, f->inc, f->recovering};
	tn_buf_reset(&f->b);
	tn_reg_snapshot_encode(&f->b, &h, views, n);
	tn_rpc_reply(req, f->b.data, f->b.len);
}

/* As the registry does: the first draining heartbeat of a server lists it as draining, at
 * a new epoch the ACK carries. */
static void
fake_mark_draining(struct fake *f, struct tn_str id)
{
	for (size_t i = 0; i < f->members->n; i++) {
		struct tn_server_info *s = &f->members->servers[i];
		if (strlen(s->id) == id.len && memcmp(s->id, id.p, id.len) == 0 && !s->draining) {
			s->draining = true;
			f->epoch++;
		}
	}
}

static void
fake_handle(void *arg, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct fake *f = arg;
	enum tn_kind kind = TN_KIND_REPLY;
	struct tn_reg_register r;
	struct tn_reg_heartbeat h;
	struct tn_reg_leave l;
	pthread_mutex_lock(&f->mu);
	tn_proto_peek(&kind, data, len);
	if (kind == TN_KIND_REG_REGISTER && tn_reg_register_decode(&r, data, len, NULL) == TN_OK) {
		f->registers++;
		snprintf(f->reg_id, sizeof(f->reg_id), "%.*s", (int)r.server.id.len, r.server.id.p);
		f->reg_type = (int)r.server.type;
		f->reg_port = (int)r.server.port;
		f->reg_client_port = (int)r.server.client_port;
		f->reg_pid = (int)r.server.pid;
		f->reg_inc = r.server.incarnation;
		f->reg_epoch = r.epoch;
		f->reg_draining = r.server.draining;
		fake_ack(f, req, f->register_code, f->register_code ? "server id taken by pid 1" : "");
	} else if (kind == TN_KIND_REG_HEARTBEAT &&
		tn_reg_heartbeat_decode(&h, data, len, NULL) == TN_OK) {
		f->heartbeats++;
		f->hb_connections = h.load.connections;
		f->hb_sessions = h.load.sessions;
		f->hb_draining = h.draining;
		if (h.draining)
			fake_mark_draining(f, h.id);
		fake_ack(f, req, f->forget ? TN_ENOENT : TN_OK, "");
		f->forget = false;
	} else if (kind == TN_KIND_REG_LEAVE && tn_reg_leave_decode(&l, data, len, NULL) == TN_OK) {
		f->leaves++;
		f->leave_inc = l.incarnation;
		fake_ack(f, req, TN_OK, "");
	} else if (kind == TN_KIND_REG_SNAPSHOT_REQ) {
		fake_snapshot(f, req, data, len);
	} else {
		fake_ack(f, req, TN_EKIND, "what");
	}
	pthread_mutex_unlock(&f->mu);
}

static void *
loop_main(void *arg)
{
	tn_loop_run(arg);
	return NULL;
}

static void
add_member(struct tn_topology *t, const char *id, enum tn_server_type type, int port)
{
	struct tn_server_info s = {.id = (char *)id, .type = type, .host = "127.0.0.1",
		.port = port, .client_port = type == TN_SERVER_CHAT ? 0 : port + 1, .incarnation = 9};
	tn_topology_add(t, &s);
}

static void
fake_start(struct fake *f, uint64_t epoch)
{
	static int n;
	memset(f, 0, sizeof(*f));
	n++;
	snprintf(f->url, sizeof(f->url), "inproc://fake-registry-%d", n);
	snprintf(f->notice_url, sizeof(f->notice_url), "inproc://fake-notices-%d", n);
	pthread_mutex_init(&f->mu, NULL);
	f->epoch = epoch;
	f->inc = 1000 + (uint64_t)n;
	f->members = tn_topology_new_empty();
	add_member(f->members, "chat-1", TN_SERVER_CHAT, 6000);
	add_member(f->members, "connector-1", TN_SERVER_CONNECTOR, 4000);
	tn_buf_init(&f->b);
	f->loop = tn_loop_new();
	nng_pub0_open(&f->pub);
	nng_listen(f->pub, f->notice_url, NULL, 0);
	tn_rpc_server_start(&f->rpc, f->url, 4, 1u << 20, tn_loop_exec(f->loop), fake_handle, f);
	pthread_create(&f->thr, NULL, loop_main, f->loop);
}

static void
fake_notice(struct fake *f, enum tn_reg_change change, const char *id)
{
	struct tn_reg_notice n = {.change = change, .id = tn_str_of(id)};
	struct tn_buf b;
	pthread_mutex_lock(&f->mu);
	n.epoch = f->epoch;
	n.registry_inc = f->inc;
	n.recovering = f->recovering;
	pthread_mutex_unlock(&f->mu);
	tn_buf_init(&b);
	tn_reg_notice_encode(&b, &n);
	nng_send(f->pub, b.data, b.len, 0);
	tn_buf_fini(&b);
}

static void
fake_stop(struct fake *f)
{
	tn_loop_stop(f->loop);
	pthread_join(f->thr, NULL);
	tn_loop_close(f->loop);
	tn_rpc_server_stop(f->rpc);
	nng_close(f->pub);
	tn_loop_free(f->loop);
	tn_topology_free(f->members);
	tn_buf_fini(&f->b);
	pthread_mutex_destroy(&f->mu);
}

/* ---- the server side: an owner loop that records what it is given ---- */

struct owner {
	struct tn_loop *loop;
	pthread_t thr;
	pthread_mutex_t mu;
	int topologies;
	uint64_t last_version, last_connections;
	size_t last_n;
	bool me_draining; /* "me-1" is listed, as draining */
	int loads;
};

static void
on_topology(void *arg, struct tn_topology *t)
{
	struct owner *o = arg;
	pthread_mutex_lock(&o->mu);
	o->topologies++;
	o->last_version = t->version;
	o->last_n = t->n;
	const struct tn_server_info *c = tn_topology_find(t, "connector-1");
	o->last_connections = c ? c->load.connections : 0;
	const struct tn_server_info *me = tn_topology_find(t, "me-1");
	o->me_draining = me != NULL && me->draining;
	pthread_mutex_unlock(&o->mu);
	tn_topology_free(t);
}

static void
load(void *arg, struct tn_server_load *out, uint64_t *messages)
{
	struct owner *o = arg;
	pthread_mutex_lock(&o->mu);
	o->loads++;
	pthread_mutex_unlock(&o->mu);
	out->connections = 7;
	out->sessions = 5;
	*messages = 100;
}

static void
owner_start(struct owner *o)
{
	memset(o, 0, sizeof(*o));
	pthread_mutex_init(&o->mu, NULL);
	o->loop = tn_loop_new();
	pthread_create(&o->thr, NULL, loop_main, o->loop);
}

static void
owner_stop(struct owner *o)
{
	tn_loop_stop(o->loop);
	pthread_join(o->thr, NULL);
	tn_loop_close(o->loop);
	tn_loop_free(o->loop);
	pthread_mutex_destroy(&o->mu);
}

static struct tn_config
config(enum tn_server_type type, int interval_ms)
{
	return (struct tn_config){
		.type = type,
		.id = "me-1",
		.host = "0.0.0.0",
		.advertise_host = "127.0.0.9",
		.port = type == TN_SERVER_GATE ? 0 : 6100,
		.admin_host = "127.0.0.9",
		.registry = "127.0.0.1:3005",
		.heartbeat_interval_ms = interval_ms,
		.rpc_timeout_ms = 1000,
		.client_host = "0.0.0.0",
		.public_host = "",
	};
}

static struct tn_membership *
start(const struct tn_config *cfg, struct fake *f, struct owner *o, const struct tn_topology *seed,
	bool notices, bool follow_load)
{
	struct tn_membership_opts mo = {
		.cfg = cfg,
		.client_port = cfg->type == TN_SERVER_CHAT ? 0 : 3099,
		.seed = seed,
		.owner = tn_loop_exec(o->loop),
		.on_topology = on_topology,
		.load = load,
		.arg = o,
		.follow_load = follow_load,
		.registry_url = f ? f->url : "inproc://no-registry-here",
		.notice_url = f && notices ? f->notice_url : NULL,
	};
	struct tn_membership *m = NULL;
	return tn_membership_start(&m, &mo) == TN_OK ? m : NULL;
}

/* Polls cond (reading fields under mu) for up to ms. */
#define WAIT_FOR(mu, cond, ms)                                                        \
	({                                                                                \
		int64_t until_ = tn_now_ms() + (ms);                                          \
		bool ok_ = false;                                                             \
		for (;;) {                                                                    \
			pthread_mutex_lock(mu);                                                   \
			ok_ = (cond);                                                             \
			pthread_mutex_unlock(mu);                                                 \
			if (ok_ || tn_now_ms() > until_)                                          \
				break;                                                                \
			usleep(2000);                                                             \
		}                                                                             \
		ok_;                                                                          \
	})

static uint64_t
metric(const char *line_start)
{
	struct tn_buf b;
	tn_buf_init(&b);
	tn_metrics_render(&b);
	tn_buf_append_byte(&b, '\0');
	/* A sample line, not the # HELP line that names it too. */
	char needle[256];
	snprintf(needle, sizeof(needle), "\n%s", line_start);
	const char *p = strstr((const char *)b.data, needle);
	uint64_t v = p ? strtoull(p + strlen(needle), NULL, 10) : 0;
	tn_buf_fini(&b);
	return v;
}

TN_TEST(test_register_follow_and_leave)
{
	struct fake f;
	struct owner o;
	fake_start(&f, 5);
	owner_start(&o);
	struct tn_config cfg = config(TN_SERVER_CHAT, 2000);
	struct tn_membership *m = start(&cfg, &f, &o, NULL, true, false);
	TN_CHECK(m != NULL);
	TN_CHECK(tn_membership_wait_registered(m, 2000));
	pthread_mutex_lock(&f.mu);
	TN_CHECK_STR(f.reg_id, "me-1");
	TN_CHECK_INT(f.reg_type, ==, TN_SERVER_CHAT);
	TN_CHECK_INT(f.reg_port, ==, 6100);
	TN_CHECK_INT(f.reg_pid, ==, getpid());
	TN_CHECK(f.reg_inc == tn_membership_incarnation(m) && f.reg_inc != 0);
	TN_CHECK(f.reg_epoch == 0); /* it held nothing */
	pthread_mutex_unlock(&f.mu);
	/* The ACK's epoch is newer than nothing: the membership reaches the owner. */
	TN_CHECK(WAIT_FOR(&o.mu, o.topologies == 1 && o.last_version == 5 && o.last_n == 2, 2000));
	TN_CHECK(metric("tern_membership_epoch ") == 5);
	TN_CHECK(metric("tern_membership_registered ") == 1);
	TN_CHECK(metric("tern_membership_servers{type=\"chat\"} ") == 1);

	/* A change, announced by a notice, arrives long before the next heartbeat (2 s). */
	pthread_mutex_lock(&f.mu);
	f.epoch = 6;
	add_member(f.members, "chat-2", TN_SERVER_CHAT, 6001);
	pthread_mutex_unlock(&f.mu);
	int64_t t0 = tn_now_ms();
	/* The SUB may still be connecting: announce until it is heard. */
	bool got = false;
	for (int i = 0; i < 50 && !got; i++) {
		fake_notice(&f, TN_REG_JOINED, "chat-2");
		got = WAIT_FOR(&o.mu, o.last_version == 6, 20);
	}
	TN_CHECK(got && tn_now_ms() - t0 < 1500);
	pthread_mutex_lock(&o.mu);
	TN_CHECK(o.last_n == 3 && o.topologies == 2);
	pthread_mutex_unlock(&o.mu);
	TN_CHECK(metric("tern_membership_changes_total{change=\"joined\"} ") >= 3);

	/* Old notices change nothing. */
	pthread_mutex_lock(&f.mu);
	int snaps = f.snapshots;
	pthread_mutex_unlock(&f.mu);
	fake_notice(&f, TN_REG_JOINED, "chat-2");
	usleep(100000);
	pthread_mutex_lock(&f.mu);
	TN_CHECK_INT(f.snapshots, ==, snaps);
	pthread_mutex_unlock(&f.mu);

	uint64_t inc = tn_membership_incarnation(m);
	tn_membership_stop(m);
	pthread_mutex_lock(&f.mu);
	TN_CHECK(f.leaves == 1 && f.leave_inc == inc);
	pthread_mutex_unlock(&f.mu);
	owner_stop(&o);
	fake_stop(&f);
}

TN_TEST(test_heartbeats_carry_load_and_epoch)
{
	struct fake f;
	struct owner o;
	fake_start(&f, 3);
	owner_start(&o);
	struct tn_config cfg = config(TN_SERVER_CONNECTOR, 30);
	struct tn_membership *m = start(&cfg, &f, &o, NULL, false, false);
	TN_CHECK(m != NULL);
	TN_CHECK(tn_membership_wait_registered(m, 2000));
	TN_CHECK(WAIT_FOR(&f.mu, f.heartbeats >= 3 && f.hb_connections == 7 && f.hb_sessions == 5,
		3000));
	pthread_mutex_lock(&f.mu);
	TN_CHECK_INT(f.reg_client_port, ==, 3099);
	pthread_mutex_unlock(&f.mu);
	TN_CHECK(WAIT_FOR(&o.mu, o.last_version == 3, 2000));
	/* No notices here: the epoch in a heartbeat's ACK is enough. */
	pthread_mutex_lock(&f.mu);
	f.epoch = 4;
	pthread_mutex_unlock(&f.mu);
	TN_CHECK(WAIT_FOR(&o.mu, o.last_version == 4, 2000));
	/* Forgotten (evicted, or a restarted registry): it registers again at once, saying
	 * which membership it holds. */
	pthread_mutex_lock(&f.mu);
	f.forget = true;
	pthread_mutex_unlock(&f.mu);
	TN_CHECK(WAIT_FOR(&f.mu, f.registers == 2, 2000));
	pthread_mutex_lock(&f.mu);
	TN_CHECK(f.reg_epoch == 4);
	pthread_mutex_unlock(&f.mu);
	TN_CHECK(metric("tern_membership_lost_total ") >= 1);
	tn_membership_stop(m);
	owner_stop(&o);
	fake_stop(&f);
}

TN_TEST(test_refused_registration)
{
	struct fake f;
	struct owner o;
	fake_start(&f, 3);
	f.register_code = TN_EEXIST;
	owner_start(&o);
	uint64_t before = metric("tern_membership_refused_total ");
	struct tn_config cfg = config(TN_SERVER_CHAT, 30);
	struct tn_membership *m = start(&cfg, &f, &o, NULL, false, false);
	TN_CHECK(m != NULL);
	TN_CHECK(!tn_membership_wait_registered(m, 2000));
	/* It keeps trying (the holder may go), but neither heartbeats nor takes a membership. */
	TN_CHECK(WAIT_FOR(&f.mu, f.registers >= 3, 2000));
	TN_CHECK(metric("tern_membership_refused_total ") >= before + 3);
	pthread_mutex_lock(&f.mu);
	TN_CHECK(f.heartbeats == 0 && f.snapshots == 0);
	f.register_code = TN_OK; /* the holder went away */
	pthread_mutex_unlock(&f.mu);
	TN_CHECK(WAIT_FOR(&f.mu, f.heartbeats >= 1, 2000));
	TN_CHECK(WAIT_FOR(&o.mu, o.last_version == 3, 2000));
	tn_membership_stop(m);
	owner_stop(&o);
	fake_stop(&f);
}

TN_TEST(test_quiet_registry_keeps_the_seed)
{
	struct fake f;
	struct owner o;
	fake_start(&f, 40);
	f.recovering = true;
	owner_start(&o);
	struct tn_topology *seed = tn_topology_new_empty();
	seed->version = 1;
	add_member(seed, "chat-1", TN_SERVER_CHAT, 6000);
	struct tn_config cfg = config(TN_SERVER_CONNECTOR, 30);
	struct tn_membership *m = start(&cfg, &f, &o, seed, true, false);
	tn_topology_free(seed);
	TN_CHECK(m != NULL);
	TN_CHECK(tn_membership_wait_registered(m, 2000));
	pthread_mutex_lock(&f.mu);
	TN_CHECK(f.reg_epoch == 1); /* the seed's */
	pthread_mutex_unlock(&f.mu);
	TN_CHECK(WAIT_FOR(&f.mu, f.heartbeats >= 5, 2000));
	fake_notice(&f, TN_REG_JOINED, "x");
	usleep(50000);
	pthread_mutex_lock(&o.mu);
	TN_CHECK_INT(o.topologies, ==, 0);
	pthread_mutex_unlock(&o.mu);
	pthread_mutex_lock(&f.mu);
	TN_CHECK_INT(f.snapshots, ==, 0); /* it did not even ask */
	f.recovering = false;
	f.epoch = 41;
	pthread_mutex_unlock(&f.mu);
	TN_CHECK(WAIT_FOR(&o.mu, o.last_version == 41, 2000));
	tn_membership_stop(m);
	owner_stop(&o);
	fake_stop(&f);
}

TN_TEST(test_follow_load)
{
	struct fake f;
	struct owner o;
	fake_start(&f, 8);
	owner_start(&o);
	struct tn_config cfg = config(TN_SERVER_GATE, 20);
	struct tn_membership *m = start(&cfg, &f, &o, NULL, false, true);
	TN_CHECK(m != NULL);
	TN_CHECK(WAIT_FOR(&o.mu, o.topologies >= 1, 2000));
	pthread_mutex_lock(&f.mu);
	TN_CHECK_INT(f.reg_port, ==, 0);
	f.members->servers[1].load.connections = 55;
	pthread_mutex_unlock(&f.mu);
	/* Same epoch, fresh loads. */
	TN_CHECK(WAIT_FOR(&o.mu, o.last_connections == 55 && o.last_version == 8, 2000));
	TN_CHECK(WAIT_FOR(&o.mu, o.loads >= 2, 2000));
	tn_membership_stop(m);
	owner_stop(&o);
	fake_stop(&f);
}

TN_TEST(test_closing_registry_gets_silence)
{
	struct fake f;
	struct owner o;
	fake_start(&f, 3);
	owner_start(&o);
	struct tn_config cfg = config(TN_SERVER_CHAT, 20);
	struct tn_membership *m = start(&cfg, &f, &o, NULL, false, false);
	TN_CHECK(m != NULL);
	TN_CHECK(WAIT_FOR(&f.mu, f.heartbeats >= 3, 2000));
	pthread_mutex_lock(&f.mu);
	f.closing = true;
	int seen = f.heartbeats;
	pthread_mutex_unlock(&f.mu);
	/* One more answer carries the request; then nothing for (at least) three seconds. */
	TN_CHECK(WAIT_FOR(&f.mu, f.heartbeats > seen, 2000));
	usleep(300000);
	pthread_mutex_lock(&f.mu);
	int held = f.heartbeats;
	pthread_mutex_unlock(&f.mu);
	usleep(300000);
	pthread_mutex_lock(&f.mu);
	TN_CHECK_INT(f.heartbeats, ==, held);
	pthread_mutex_unlock(&f.mu);
	/* Nor does it leave a registry that is going away. */
	tn_membership_stop(m);
	pthread_mutex_lock(&f.mu);
	TN_CHECK_INT(f.leaves, ==, 0);
	pthread_mutex_unlock(&f.mu);
	owner_stop(&o);
	fake_stop(&f);
}

TN_TEST(test_set_draining)
{
	struct fake f;
	struct owner o;
	fake_start(&f, 5);
	owner_start(&o);
	add_member(f.members, "me-1", TN_SERVER_CHAT, 6100);
	struct tn_config cfg = config(TN_SERVER_CHAT, 2000);
	struct tn_membership *m = start(&cfg, &f, &o, NULL, false, false);
	TN_CHECK(m != NULL);
	TN_CHECK(tn_membership_wait_registered(m, 2000));
	TN_CHECK(WAIT_FOR(&o.mu, o.last_version == 5 && !o.me_draining, 2000));
	pthread_mutex_lock(&f.mu);
	TN_CHECK(!f.reg_draining && f.heartbeats == 0);
	pthread_mutex_unlock(&f.mu);
	/* One heartbeat goes at once (the next tick is 2 s away), saying so; asking again
	 * changes nothing. */
	int64_t t0 = tn_now_ms();
	tn_membership_set_draining(m);
	tn_membership_set_draining(m);
	TN_CHECK(WAIT_FOR(&f.mu, f.heartbeats == 1 && f.hb_draining, 1500));
	TN_CHECK(tn_now_ms() - t0 < 1500);
	tn_membership_set_draining(m);
	/* The registry's answer shows a newer epoch: the membership with this server draining
	 * reaches the owner. */
	TN_CHECK(WAIT_FOR(&o.mu, o.last_version == 6 && o.me_draining, 1500));
	TN_CHECK(tn_now_ms() - t0 < 1500);
	usleep(100000);
	pthread_mutex_lock(&f.mu);
	TN_CHECK_INT(f.heartbeats, ==, 1);
	f.forget = true; /* the registry restarts: the registration says it too */
	pthread_mutex_unlock(&f.mu);
	TN_CHECK(WAIT_FOR(&f.mu, f.registers == 2, 4000));
	pthread_mutex_lock(&f.mu);
	TN_CHECK(f.reg_draining && f.hb_draining);
	pthread_mutex_unlock(&f.mu);
	tn_membership_stop(m);
	owner_stop(&o);
	fake_stop(&f);
}

TN_TEST(test_refresh)
{
	struct fake f;
	struct owner o;
	fake_start(&f, 5);
	owner_start(&o);
	/* No notices, and the first heartbeat (whose ACK would show the epoch) is 2 s away. */
	struct tn_config cfg = config(TN_SERVER_CONNECTOR, 2000);
	struct tn_membership *m = start(&cfg, &f, &o, NULL, false, false);
	TN_CHECK(m != NULL);
	TN_CHECK(tn_membership_wait_registered(m, 2000));
	TN_CHECK(WAIT_FOR(&o.mu, o.last_version == 5, 2000));
	pthread_mutex_lock(&f.mu);
	int snaps = f.snapshots;
	f.epoch = 6;
	add_member(f.members, "chat-2", TN_SERVER_CHAT, 6001);
	pthread_mutex_unlock(&f.mu);
	/* Told by a peer, many times over: a few reads at most. */
	int64_t t0 = tn_now_ms();
	for (int i = 0; i < 1000; i++)
		tn_membership_refresh(m);
	TN_CHECK(WAIT_FOR(&o.mu, o.last_version == 6 && o.last_n == 3, 1500));
	TN_CHECK(tn_now_ms() - t0 < 1500);
	usleep(50000);
	pthread_mutex_lock(&f.mu);
	TN_CHECK_INT(f.heartbeats, ==, 0);
	TN_CHECK(f.snapshots > snaps && f.snapshots - snaps <= 20);
	snaps = f.snapshots;
	pthread_mutex_unlock(&f.mu);
	/* Nothing new: a read, but no membership for the owner. */
	tn_membership_refresh(m);
	TN_CHECK(WAIT_FOR(&f.mu, f.snapshots == snaps + 1, 1500));
	usleep(50000);
	pthread_mutex_lock(&o.mu);
	TN_CHECK_INT(o.topologies, ==, 2);
	pthread_mutex_unlock(&o.mu);
	tn_membership_stop(m);
	owner_stop(&o);
	fake_stop(&f);
}

TN_TEST(test_no_registry)
{
	struct owner o;
	owner_start(&o);
	struct tn_config cfg = config(TN_SERVER_CHAT, 50);
	struct tn_membership *m = start(&cfg, NULL, &o, NULL, false, false);
	TN_CHECK(m != NULL);
	int64_t t0 = tn_now_ms();
	TN_CHECK(!tn_membership_wait_registered(m, 3000));
	tn_membership_stop(m);
	TN_CHECK(tn_now_ms() - t0 < 2500);
	pthread_mutex_lock(&o.mu);
	TN_CHECK_INT(o.topologies, ==, 0);
	pthread_mutex_unlock(&o.mu);
	/* A registry address that makes no URL is refused at start. */
	cfg.registry = "nohost";
	struct tn_membership_opts mo = {.cfg = &cfg, .owner = tn_loop_exec(o.loop),
		.on_topology = on_topology, .arg = &o};
	TN_CHECK_INT(tn_membership_start(&m, &mo), ==, TN_EINVAL);
	owner_stop(&o);
}

TN_TEST_MAIN(TN_CASE(test_register_follow_and_leave), TN_CASE(test_heartbeats_carry_load_and_epoch),
	TN_CASE(test_refused_registration), TN_CASE(test_quiet_registry_keeps_the_seed),
	TN_CASE(test_follow_load), TN_CASE(test_closing_registry_gets_silence),
	TN_CASE(test_set_draining), TN_CASE(test_refresh), TN_CASE(test_no_registry))
