/* The registry core over inproc: registration, heartbeats, leaving, snapshots, refusals,
 * eviction, notices and the quiet period after a start. Requests come from a plain REQ
 * socket, so the registry is tested on its own (the membership client has its own
 * test). */
#include "registry_server.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "chat.h"
#include "clock.h"
#include "err.h"
#include "membership.h"
#include "metrics.h"
#include "proto.h"
#include "registry.h"
#include "tn_test.h"

#define STR_EQ(a, lit) TN_CHECK_MEM((a).p, (a).len, lit, sizeof(lit) - 1)

struct fixture {
	struct tn_loop *loop;
	pthread_t thr;
	struct tn_registry *reg;
	nng_socket req, sub;
	char rpc_url[64], notice_url[64];
	struct tn_buf b;
	nng_msg *reply;
};

static void *
loop_main(void *arg)
{
	tn_loop_run(arg);
	return NULL;
}

static int
fixture_start(struct fixture *f, int evict_after_ms, int quiet_ms)
{
	static int n;
	memset(f, 0, sizeof(*f));
	n++;
	snprintf(f->rpc_url, sizeof(f->rpc_url), "inproc://registry-test-%d", n);
	snprintf(f->notice_url, sizeof(f->notice_url), "inproc://registry-notice-%d", n);
	struct tn_server_info self = {.id = "registry-1", .type = TN_SERVER_REGISTRY,
		.host = "10.0.0.1", .port = 3005, .pid = 1, .version = "test"};
	struct tn_registry_opts o = {&self, f->rpc_url, f->notice_url, evict_after_ms, quiet_ms};
	f->loop = tn_loop_new();
	int rv = tn_registry_new(&f->reg, &o, f->loop);
	if (rv != TN_OK)
		return rv;
	pthread_create(&f->thr, NULL, loop_main, f->loop);
	nng_req0_open(&f->req);
	nng_socket_set_ms(f->req, NNG_OPT_RECVTIMEO, 3000);
	nng_sub0_open(&f->sub);
	nng_socket_set(f->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_ms(f->sub, NNG_OPT_RECVTIMEO, 3000);
	tn_buf_init(&f->b);
	if (nng_dial(f->req, f->rpc_url, NULL, 0) != 0 || nng_dial(f->sub, f->notice_url, NULL, 0) != 0)
		return TN_EIO;
	return TN_OK;
}

static void
fixture_stop(struct fixture *f)
{
	nng_msg_free(f->reply);
	nng_close(f->req);
	nng_close(f->sub);
	tn_loop_stop(f->loop);
	pthread_join(f->thr, NULL);
	tn_loop_close(f->loop);
	tn_registry_free(f->reg);
	tn_loop_free(f->loop);
	tn_buf_fini(&f->b);
}

/* Sends f->b and keeps the reply in f->reply (NULL when none came). */
static void
ask(struct fixture *f)
{
	nng_msg_free(f->reply);
	f->reply = NULL;
	if (nng_send(f->req, f->b.data, f->b.len, 0) == 0)
		nng_recvmsg(f->req, &f->reply, 0);
	tn_buf_reset(&f->b);
}

static struct tn_reg_ack
reply_ack(struct fixture *f)
{
	struct tn_reg_ack a = {.code = -1};
	if (f->reply)
		tn_reg_ack_decode(&a, nng_msg_body(f->reply), nng_msg_len(f->reply), NULL);
	return a;
}

static struct tn_reg_server
server(const char *id, enum tn_server_type type, uint64_t inc)
{
	return (struct tn_reg_server){
		.id = tn_str_of(id),
		.type = (uint64_t)type,
		.host = TN_STR("127.0.0.2"),
		.port = 6000,
		.client_port = type == TN_SERVER_CHAT ? 0 : 3050,
		.pid = 77,
		.version = TN_STR("t"),
		.incarnation = inc,
	};
}

static struct tn_reg_ack
do_register(struct fixture *f, struct tn_reg_server s, uint64_t epoch, uint64_t reg_inc)
{
	struct tn_reg_register m = {s, epoch, reg_inc};
	tn_reg_register_encode(&f->b, &m);
	ask(f);
	return reply_ack(f);
}

static struct tn_reg_ack
heartbeat(struct fixture *f, const char *id, uint64_t inc, uint64_t connections, bool draining)
{
	struct tn_reg_heartbeat m = {tn_str_of(id), inc, 0, 0, {.connections = connections},
		draining};
	tn_reg_heartbeat_encode(&f->b, &m);
	ask(f);
	return reply_ack(f);
}

static struct tn_reg_ack
do_heartbeat(struct fixture *f, const char *id, uint64_t inc, uint64_t connections)
{
	return heartbeat(f, id, inc, connections, false);
}

/* Asks for the snapshot as a server holding (epoch, reg_inc); returns the topology, or
 * NULL with *ack filled when the registry answered with an ACK. */
static struct tn_topology *
do_snapshot(struct fixture *f, uint64_t epoch, uint64_t reg_inc, struct tn_reg_ack *ack,
	bool *recovering)
{
	struct tn_reg_snapshot_req m = {TN_STR("x"), epoch, reg_inc};
	struct tn_topology *t = NULL;
	tn_reg_snapshot_req_encode(&f->b, &m);
	ask(f);
	if (f->reply == NULL)
		return NULL;
	if (tn_membership_decode_snapshot(&t, recovering, nng_msg_body(f->reply),
		    nng_msg_len(f->reply)) == TN_OK)
		return t;
	*ack = reply_ack(f);
	return NULL;
}

/* The next notice (code -1 in change when none came in time). */
static struct tn_reg_notice
next_notice(struct fixture *f, char *id, size_t id_len)
{
	struct tn_reg_notice n = {.change = UINT64_MAX};
	nng_msg *m;
	if (nng_recvmsg(f->sub, &m, 0) != 0)
		return n;
	if (tn_reg_notice_decode(&n, nng_msg_body(m), nng_msg_len(m), NULL) == TN_OK)
		snprintf(id, id_len, "%.*s", (int)n.id.len, n.id.p);
	nng_msg_free(m);
	return n;
}

TN_TEST(test_register_heartbeat_snapshot_leave)
{
	struct fixture f;
	struct tn_reg_ack a;
	bool recovering = true;
	char id[64] = "";
	TN_CHECK_OK(fixture_start(&f, 5000, 0));
	uint64_t inc = tn_registry_incarnation(f.reg);
	a = do_register(&f, server("chat-1", TN_SERVER_CHAT, 11), 0, 0);
	TN_CHECK_INT(a.code, ==, TN_OK);
	TN_CHECK(a.epoch == 1 && a.registry_inc == inc && !a.recovering);
	TN_CHECK(a.evict_after_ms == 5000);
	struct tn_reg_notice n = next_notice(&f, id, sizeof(id));
	TN_CHECK(n.change == TN_REG_JOINED && n.epoch == 1 && n.type == TN_SERVER_CHAT);
	TN_CHECK_STR(id, "chat-1");
	a = do_register(&f, server("gate-1", TN_SERVER_GATE, 12), 0, 0);
	TN_CHECK(a.code == TN_OK && a.epoch == 2);
	TN_CHECK_INT(do_heartbeat(&f, "gate-1", 12, 42).code, ==, TN_OK);

	struct tn_topology *t = do_snapshot(&f, 0, 0, &a, &recovering);
	TN_CHECK(t != NULL);
	TN_CHECK(t->version == 2 && t->registry_inc == inc && !recovering);
	TN_CHECK_INT(t->n, ==, 3);
	/* By type, then id: gate, chat, registry. */
	TN_CHECK_STR(t->servers[0].id, "gate-1");
	TN_CHECK(t->servers[0].load.connections == 42);
	TN_CHECK_STR(t->servers[1].id, "chat-1");
	TN_CHECK_STR(t->servers[1].host, "127.0.0.2");
	TN_CHECK_INT(t->servers[1].port, ==, 6000);
	TN_CHECK_INT(t->servers[1].pid, ==, 77);
	TN_CHECK(t->servers[1].incarnation == 11);
	TN_CHECK_STR(t->servers[2].id, "registry-1");
	TN_CHECK(t->servers[2].load.connections == 2); /* servers registered */
	tn_topology_free(t);

	/* A heartbeat from an unknown server, or another incarnation: register again. */
	TN_CHECK_INT(do_heartbeat(&f, "nosuch", 1, 0).code, ==, TN_ENOENT);
	TN_CHECK_INT(do_heartbeat(&f, "gate-1", 13, 0).code, ==, TN_ENOENT);

	/* Leaving: only the registered incarnation can; twice is fine. */
	struct tn_reg_leave l = {TN_STR("chat-1"), 999};
	tn_reg_leave_encode(&f.b, &l);
	ask(&f);
	TN_CHECK_INT(reply_ack(&f).code, ==, TN_OK);
	TN_CHECK(reply_ack(&f).epoch == 2); /* nothing changed */
	l.incarnation = 11;
	tn_reg_leave_encode(&f.b, &l);
	ask(&f);
	TN_CHECK(reply_ack(&f).code == TN_OK && reply_ack(&f).epoch == 3);
	n = next_notice(&f, id, sizeof(id)); /* gate joined */
	TN_CHECK(n.change == TN_REG_JOINED && n.epoch == 2);
	/* A planned leave is not announced (registry_server.c says why): the epoch in the
	 * next ACK tells the others. */
	nng_socket_set_ms(f.sub, NNG_OPT_RECVTIMEO, 200);
	n = next_notice(&f, id, sizeof(id));
	TN_CHECK(n.change == UINT64_MAX);
	TN_CHECK(do_heartbeat(&f, "gate-1", 12, 0).epoch == 3);
	t = do_snapshot(&f, 0, 0, &a, &recovering);
	TN_CHECK(t != NULL && t->n == 2);
	tn_topology_free(t);
	fixture_stop(&f);
}

TN_TEST(test_duplicate_id_refused)
{
	struct fixture f;
	TN_CHECK_OK(fixture_start(&f, 5000, 0));
	TN_CHECK_INT(do_register(&f, server("chat-1", TN_SERVER_CHAT, 11), 0, 0).code, ==, TN_OK);
	struct tn_reg_server other = server("chat-1", TN_SERVER_CHAT, 12);
	other.host = TN_STR("127.0.0.3");
	struct tn_reg_ack a = do_register(&f, other, 0, 0);
	TN_CHECK_INT(a.code, ==, TN_EEXIST);
	char reason[512];
	snprintf(reason, sizeof(reason), "%.*s", (int)a.reason.len, a.reason.p);
	TN_CHECK(strstr(reason, "chat-1 is already registered by pid 77 at 127.0.0.2:6000") != NULL);
	TN_CHECK(a.epoch == 1);
	/* The registered process registering again (its ACK got lost) is welcome. */
	a = do_register(&f, server("chat-1", TN_SERVER_CHAT, 11), 0, 0);
	TN_CHECK(a.code == TN_OK && a.epoch == 1);
	/* ... and one that moved counts as a change. */
	struct tn_reg_server moved = server("chat-1", TN_SERVER_CHAT, 11);
	moved.port = 6001;
	a = do_register(&f, moved, 0, 0);
	TN_CHECK(a.code == TN_OK && a.epoch == 2);
	fixture_stop(&f);
}

TN_TEST(test_invalid_requests_refused)
{
	struct fixture f;
	TN_CHECK_OK(fixture_start(&f, 5000, 0));
	struct tn_reg_server s = server("reg-2", TN_SERVER_REGISTRY, 1);
	TN_CHECK_INT(do_register(&f, s, 0, 0).code, ==, TN_EINVAL);
	s = server("chat-1", TN_SERVER_CHAT, 1);
	s.host = TN_STR("");
	TN_CHECK_INT(do_register(&f, s, 0, 0).code, ==, TN_EINVAL);
	s = server("chat-1", TN_SERVER_CHAT, 1);
	s.port = 0;
	TN_CHECK_INT(do_register(&f, s, 0, 0).code, ==, TN_EINVAL);
	s = server("conn-1", TN_SERVER_CONNECTOR, 1);
	s.client_port = 0;
	TN_CHECK_INT(do_register(&f, s, 0, 0).code, ==, TN_EINVAL);
	s = server("a b", TN_SERVER_CHAT, 1);
	TN_CHECK_INT(do_register(&f, s, 0, 0).code, ==, TN_EINVAL);
	s = server("chat-1", TN_SERVER_CHAT, 0);
	TN_CHECK_INT(do_register(&f, s, 0, 0).code, ==, TN_EINVAL);
	s = server("chat-1", 9, 1);
	TN_CHECK_INT(do_register(&f, s, 0, 0).code, ==, TN_EINVAL);
	/* Garbage, a truncated message, and a kind the registry does not serve. */
	tn_buf_append(&f.b, "\x93\x01", 2);
	ask(&f);
	TN_CHECK_INT(reply_ack(&f).code, ==, TN_ETRUNC);
	struct tn_chat_req enter = {.connector_id = TN_STR("c"), .rid = TN_STR("r"),
		.name = TN_STR("n")};
	tn_chat_req_encode(&f.b, TN_KIND_CHAT_ENTER, &enter);
	ask(&f);
	TN_CHECK_INT(reply_ack(&f).code, ==, TN_EKIND);
	/* Nothing got in. */
	bool rec;
	struct tn_reg_ack a;
	struct tn_topology *t = do_snapshot(&f, 0, 0, &a, &rec);
	TN_CHECK(t != NULL && t->n == 1 && t->version == 0);
	tn_topology_free(t);
	fixture_stop(&f);
}

TN_TEST(test_silent_server_is_evicted)
{
	struct fixture f;
	char id[64] = "";
	TN_CHECK_OK(fixture_start(&f, 200, 0));
	TN_CHECK_INT(do_register(&f, server("chat-1", TN_SERVER_CHAT, 1), 0, 0).code, ==, TN_OK);
	TN_CHECK_INT(do_register(&f, server("chat-2", TN_SERVER_CHAT, 2), 0, 0).code, ==, TN_OK);
	int64_t t0 = tn_now_ms();
	/* chat-2 keeps heartbeating, chat-1 goes silent. */
	bool evicted = false;
	struct tn_reg_notice n;
	while (!evicted && tn_now_ms() - t0 < 3000) {
		TN_CHECK_INT(do_heartbeat(&f, "chat-2", 2, 0).code, ==, TN_OK);
		struct tn_reg_ack a;
		bool rec;
		struct tn_topology *t = do_snapshot(&f, 0, 0, &a, &rec);
		TN_CHECK(t != NULL);
		evicted = tn_topology_find(t, "chat-1") == NULL;
		TN_CHECK(tn_topology_find(t, "chat-2") != NULL);
		tn_topology_free(t);
		usleep(20000);
	}
	int64_t took = tn_now_ms() - t0;
	TN_CHECK(evicted);
	TN_CHECK(took >= 200);
	do {
		n = next_notice(&f, id, sizeof(id));
	} while (n.change == TN_REG_JOINED);
	TN_CHECK(n.change == TN_REG_EVICTED && n.epoch == 3);
	TN_CHECK_STR(id, "chat-1");
	/* Told it is unknown, it registers again with the same incarnation. */
	TN_CHECK_INT(do_heartbeat(&f, "chat-1", 1, 0).code, ==, TN_ENOENT);
	TN_CHECK_INT(do_register(&f, server("chat-1", TN_SERVER_CHAT, 1), 0, 0).code, ==, TN_OK);
	fixture_stop(&f);
}

TN_TEST(test_quiet_period_after_start)
{
	struct fixture f;
	char id[64];
	bool recovering = false;
	struct tn_reg_ack a = {0};
	TN_CHECK_OK(fixture_start(&f, 5000, 400));
	uint64_t inc = tn_registry_incarnation(f.reg);
	/* A server that held epoch 57 of an earlier registry re-registers. */
	a = do_register(&f, server("chat-1", TN_SERVER_CHAT, 1), 57, 123);
	TN_CHECK(a.code == TN_OK && a.recovering && a.epoch == 58);
	/* It keeps what it has: the snapshot is withheld from it... */
	TN_CHECK(do_snapshot(&f, 57, 123, &a, &recovering) == NULL);
	TN_CHECK_INT(a.code, ==, TN_ERECOVERING);
	/* ... and from a server started from a seed file ... */
	TN_CHECK(do_snapshot(&f, 1, 0, &a, &recovering) == NULL);
	/* ... but not from one that holds nothing, or already took this registry's. */
	struct tn_topology *t = do_snapshot(&f, 0, 0, &a, &recovering);
	TN_CHECK(t != NULL && recovering && t->version == 58);
	tn_topology_free(t);
	t = do_snapshot(&f, 58, inc, &a, &recovering);
	TN_CHECK(t != NULL);
	tn_topology_free(t);
	/* At the end, the epoch passes everything reported and everyone is told. */
	TN_CHECK_INT(do_register(&f, server("chat-2", TN_SERVER_CHAT, 2), 70, 123).code, ==, TN_OK);
	struct tn_reg_notice n;
	do {
		n = next_notice(&f, id, sizeof(id));
	} while (n.change == TN_REG_JOINED);
	TN_CHECK(n.change == TN_REG_RECOVERED && !n.recovering);
	TN_CHECK(n.epoch == 72); /* joins: 58, 71; the end: 72 */
	t = do_snapshot(&f, 57, 123, &a, &recovering);
	TN_CHECK(t != NULL && !recovering && t->version == 72 && t->n == 3);
	tn_topology_free(t);
	fixture_stop(&f);
}

TN_TEST(test_drain_asks_for_silence)
{
	struct fixture f;
	char id[64];
	TN_CHECK_OK(fixture_start(&f, 5000, 0));
	struct tn_reg_ack a = do_register(&f, server("chat-1", TN_SERVER_CHAT, 1), 0, 0);
	TN_CHECK(a.code == TN_OK && !a.closing);
	struct tn_reg_notice n = next_notice(&f, id, sizeof(id));
	TN_CHECK(n.change == TN_REG_JOINED);
	/* chat-1 has not been told yet: the drain waits for its bound. */
	int64_t t0 = tn_now_ms();
	tn_registry_drain(f.reg, 50, 400);
	TN_CHECK(tn_now_ms() - t0 >= 350);
	/* From now on every answer says the registry is closing, and nothing is announced. */
	a = do_heartbeat(&f, "chat-1", 1, 0);
	TN_CHECK(a.code == TN_OK && a.closing);
	/* Everyone told, nothing asked for 50 ms: done well before the bound. */
	t0 = tn_now_ms();
	tn_registry_drain(f.reg, 50, 2000);
	TN_CHECK(tn_now_ms() - t0 < 1500);
	bool rec;
	struct tn_topology *t = do_snapshot(&f, 0, 0, &a, &rec);
	TN_CHECK(t == NULL && a.code == TN_ECLOSED && a.closing);
	a = do_register(&f, server("chat-2", TN_SERVER_CHAT, 2), 0, 0);
	TN_CHECK(a.code == TN_OK && a.closing && a.epoch == 2);
	nng_socket_set_ms(f.sub, NNG_OPT_RECVTIMEO, 200);
	n = next_notice(&f, id, sizeof(id));
	TN_CHECK(n.change == UINT64_MAX);
	fixture_stop(&f);
}

/* The value of one sample line of /metrics (0 when absent). */
static uint64_t
metric(const char *line_start)
{
	struct tn_buf b;
	char needle[256];
	tn_buf_init(&b);
	tn_metrics_render(&b);
	tn_buf_append_byte(&b, '\0');
	snprintf(needle, sizeof(needle), "\n%s ", line_start);
	const char *p = strstr((const char *)b.data, needle);
	uint64_t v = p ? strtoull(p + strlen(needle), NULL, 10) : 0;
	tn_buf_fini(&b);
	return v;
}

/* Whether the snapshot lists id as draining (false too when it is not listed). */
static bool
listed_draining(struct fixture *f, const char *id, uint64_t *epoch)
{
	struct tn_reg_ack a;
	bool rec;
	struct tn_topology *t = do_snapshot(f, 0, 0, &a, &rec);
	if (t == NULL)
		return false;
	const struct tn_server_info *s = tn_topology_find(t, id);
	bool draining = s != NULL && s->draining;
	*epoch = t->version;
	tn_topology_free(t);
	return draining;
}

/* A server that says it is draining is marked so, once: a new epoch and the flag in
 * snapshots, but no notice (like a planned leave: the cluster may be going down, see
 * changed()). The mark stays for the registration and goes with it. */
TN_TEST(test_draining_is_marked_and_sticky)
{
	struct fixture f;
	char id[64] = "";
	uint64_t epoch = 0;
	const char *changes = "tern_registry_changes_total{change=\"draining\"}";
	TN_CHECK_OK(fixture_start(&f, 5000, 0));
	uint64_t marks = metric(changes);
	TN_CHECK_INT(do_register(&f, server("chat-1", TN_SERVER_CHAT, 11), 0, 0).code, ==, TN_OK);
	TN_CHECK_INT(do_register(&f, server("chat-2", TN_SERVER_CHAT, 12), 0, 0).code, ==, TN_OK);
	TN_CHECK(next_notice(&f, id, sizeof(id)).change == TN_REG_JOINED);
	TN_CHECK(next_notice(&f, id, sizeof(id)).change == TN_REG_JOINED);
	TN_CHECK(!listed_draining(&f, "chat-1", &epoch) && epoch == 2);

	/* The heartbeat's own answer carries the new epoch. */
	struct tn_reg_ack a = heartbeat(&f, "chat-1", 11, 0, true);
	TN_CHECK(a.code == TN_OK && a.epoch == 3);
	TN_CHECK(listed_draining(&f, "chat-1", &epoch) && epoch == 3);
	TN_CHECK(!listed_draining(&f, "chat-2", &epoch));
	TN_CHECK_INT(metric(changes), ==, marks + 1);

	/* Sticky: heartbeats without the flag, with it again, or a repeated registration
	 * change nothing. */
	TN_CHECK(heartbeat(&f, "chat-1", 11, 0, false).epoch == 3);
	TN_CHECK(heartbeat(&f, "chat-1", 11, 0, true).epoch == 3);
	TN_CHECK(do_register(&f, server("chat-1", TN_SERVER_CHAT, 11), 3, 0).epoch == 3);
	TN_CHECK(listed_draining(&f, "chat-1", &epoch) && epoch == 3);
	nng_socket_set_ms(f.sub, NNG_OPT_RECVTIMEO, 200);
	TN_CHECK(next_notice(&f, id, sizeof(id)).change == UINT64_MAX);
	nng_socket_set_ms(f.sub, NNG_OPT_RECVTIMEO, 3000);

	/* A registration may carry it too (the same process again, e.g. its ACK was lost). */
	struct tn_reg_server s2 = server("chat-2", TN_SERVER_CHAT, 12);
	s2.draining = true;
	a = do_register(&f, s2, 3, 0);
	TN_CHECK(a.code == TN_OK && a.epoch == 4);
	TN_CHECK(listed_draining(&f, "chat-2", &epoch) && epoch == 4);
	/* Neither mark was announced. */
	nng_socket_set_ms(f.sub, NNG_OPT_RECVTIMEO, 200);
	TN_CHECK(next_notice(&f, id, sizeof(id)).change == UINT64_MAX);
	nng_socket_set_ms(f.sub, NNG_OPT_RECVTIMEO, 3000);
	TN_CHECK_INT(metric(changes), ==, marks + 2);

	/* A new incarnation of chat-1, once the old one left, starts out serving. */
	struct tn_reg_leave l = {TN_STR("chat-1"), 11};
	tn_reg_leave_encode(&f.b, &l);
	ask(&f);
	TN_CHECK(reply_ack(&f).code == TN_OK && reply_ack(&f).epoch == 5);
	TN_CHECK(do_register(&f, server("chat-1", TN_SERVER_CHAT, 21), 5, 0).epoch == 6);
	TN_CHECK(!listed_draining(&f, "chat-1", &epoch) && epoch == 6);
	TN_CHECK(listed_draining(&f, "chat-2", &epoch));
	fixture_stop(&f);
}

TN_TEST_MAIN(TN_CASE(test_register_heartbeat_snapshot_leave), TN_CASE(test_duplicate_id_refused),
	TN_CASE(test_invalid_requests_refused), TN_CASE(test_silent_server_is_evicted),
	TN_CASE(test_quiet_period_after_start), TN_CASE(test_drain_asks_for_silence),
	TN_CASE(test_draining_is_marked_and_sticky))
