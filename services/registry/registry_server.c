#include "registry_server.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/transport/tcp/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "map.h"
#include "membership.h"
#include "metrics.h"
#include "proto.h"
#include "rpc.h"

#define REGISTRY_WORKERS 16
#define REGISTRY_MAX_MSG (1u << 20)
#define MAX_ID_LEN 255
/* A duplicate retries every heartbeat: say so in the log now and then, not every time. */
#define REFUSAL_LOG_MS 30000

/* One registered server. */
struct rec {
	struct tn_server_info info;
	int64_t registered_ms;
	int64_t last_seen_ms;
	int64_t refusal_logged_ms; /* when a duplicate of this id was last logged */
	bool told_closing;         /* has had an answer saying the registry is closing */
};

struct tn_registry {
	struct tn_server_info self;
	struct tn_loop *loop;
	struct tn_rpc_server *rpc;
	nng_socket pub;
	bool pub_open;
	int notice_port;
	int evict_after_ms;
	int sweep_ms;
	uint64_t inc;
	uint64_t epoch;
	uint64_t max_reported; /* the highest epoch a server said it holds */
	bool recovering;
	int64_t started_ms;
	int64_t quiet_until_ms;
	struct tn_map by_id; /* id -> struct rec */
	struct tn_buf scratch;
	_Atomic int64_t last_request_ms; /* for tn_registry_drain, on the main thread */
	atomic_bool draining;
	atomic_size_t n_members, n_told; /* registered, and told the registry is closing */
	/* Requests per second, for the registry's own line in listings. */
	uint64_t requests, rate_requests;
	int64_t rate_ms;
	uint64_t msgs_milli;
	struct tn_gauge *g_members[TN_SERVER_TYPE_COUNT_], *g_epoch, *g_recovering;
	struct tn_counter *req_register, *req_heartbeat, *req_leave, *req_snapshot, *req_bad;
	struct tn_counter *joins, *leaves, *evictions, *refused_dup, *refused_invalid;
	struct tn_counter *unknown_heartbeats, *withheld, *drainings;
};

/* ---- replies and notices ---- */

/* While draining, every answer to a registered server tells it the registry is closing;
 * tn_registry_drain waits until each has heard it. */
static void
mark_told(struct tn_registry *r, struct rec *x)
{
	if (x == NULL || x->told_closing || !atomic_load(&r->draining))
		return;
	x->told_closing = true;
	atomic_fetch_add(&r->n_told, 1);
}

static void
ack(struct tn_registry *r, struct tn_rpc_req *req, int code, const char *reason)
{
	struct tn_reg_ack a = {
		.code = code,
		.reason = tn_str_of(reason ? reason : ""),
		.epoch = r->epoch,
		.registry_inc = r->inc,
		.recovering = r->recovering,
		.notice_port = (uint32_t)r->notice_port,
		.evict_after_ms = (uint64_t)r->evict_after_ms,
		.closing = atomic_load(&r->draining),
	};
	tn_buf_reset(&r->scratch);
	tn_reg_ack_encode(&r->scratch, &a);
	tn_rpc_reply(req, r->scratch.data, r->scratch.len);
}

static void
publish(struct tn_registry *r, enum tn_reg_change change, const struct tn_server_info *s)
{
	struct tn_reg_notice n = {
		.epoch = r->epoch,
		.registry_inc = r->inc,
		.change = change,
		.id = tn_str_of(s ? s->id : ""),
		.type = s ? (uint64_t)s->type : 0,
		.recovering = r->recovering,
	};
	struct tn_buf b;
	nng_msg *m;
	tn_buf_init(&b);
	tn_reg_notice_encode(&b, &n);
	if (nng_msg_alloc(&m, b.len) != 0) {
		fprintf(stderr, "fatal: out of memory for an nng message\n");
		abort();
	}
	memcpy(nng_msg_body(m), b.data, b.len);
	tn_buf_fini(&b);
	/* PUB drops when nobody listens or a queue is full: notices are hints, the epoch in
	 * every ACK is what makes servers catch up. */
	if (nng_sendmsg(r->pub, m, NNG_FLAG_NONBLOCK) != 0)
		nng_msg_free(m);
}

static void
update_gauges(struct tn_registry *r)
{
	atomic_store(&r->n_members, r->by_id.count);
	size_t n[TN_SERVER_TYPE_COUNT_] = {0};
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&r->by_id, &it)) != NULL;)
		n[((struct rec *)e->val)->info.type]++;
	for (int t = 0; t < TN_SERVER_TYPE_COUNT_; t++)
		tn_gauge_set(r->g_members[t], (int64_t)n[t]);
	tn_gauge_set(r->g_epoch, (int64_t)r->epoch);
	tn_gauge_set(r->g_recovering, r->recovering);
}

/* A membership change: the epoch moves past anything a server holds, and is announced,
 * except for a planned leave or drain and while the registry itself is stopping. Those
 * are when the receivers are likely to be closing their notice sockets (a whole cluster
 * going down), and nng 1.5 can hang closing a socket while a message arrives on it (nng
 * issues 1543, 1813), and leaks a notice still queued to a pipe as it closes; everyone
 * learns of them from the epoch in its next heartbeat's ACK instead, within one
 * heartbeat interval (and a draining chat server's own answers carry its new epoch at
 * once). */
static void
changed(struct tn_registry *r, enum tn_reg_change change, const struct tn_server_info *s,
	bool planned)
{
	r->epoch = (r->epoch > r->max_reported ? r->epoch : r->max_reported) + 1;
	if (!planned && !atomic_load(&r->draining))
		publish(r, change, s);
	update_gauges(r);
}

/* ---- the member table ---- */

static void
rec_free(struct rec *x)
{
	tn_server_info_fini(&x->info);
	free(x);
}

/* Takes x out of the table and frees it, handing its server info to the caller. */
static struct tn_server_info
rec_take(struct tn_registry *r, struct rec *x)
{
	struct tn_server_info info = x->info;
	if (x->told_closing)
		atomic_fetch_sub(&r->n_told, 1);
	tn_map_del(&r->by_id, info.id, strlen(info.id));
	free(x);
	return info;
}

static struct rec *
rec_find(struct tn_registry *r, struct tn_str id)
{
	return tn_map_get(&r->by_id, id.p, id.len);
}

/* Why a registration cannot be accepted, or NULL. */
static const char *
invalid_reason(const struct tn_reg_server *s)
{
	if (s->id.len == 0 || s->id.len > MAX_ID_LEN)
		return "the server id must be 1 to 255 bytes";
	for (size_t i = 0; i < s->id.len; i++)
		if ((unsigned char)s->id.p[i] <= ' ' || s->id.p[i] == 0x7f)
			return "the server id must not contain spaces or control characters";
	if (s->type != TN_SERVER_GATE && s->type != TN_SERVER_CONNECTOR &&
		s->type != TN_SERVER_CHAT)
		return "only gate, connector and chat servers register";
	if (s->host.len == 0)
		return "the advertised host is empty";
	if (s->type != TN_SERVER_GATE && s->port == 0)
		return "the internal port is missing";
	if (s->type != TN_SERVER_CHAT && s->client_port == 0)
		return "the client port is missing";
	if (s->incarnation == 0)
		return "the incarnation is missing";
	return NULL;
}

static void
refuse_duplicate(struct tn_registry *r, struct tn_rpc_req *req, struct rec *x,
	const struct tn_reg_server *s)
{
	char reason[512];
	int64_t now = tn_now_ms();
	snprintf(reason, sizeof(reason),
		"server id %s is already registered by pid %d at %s:%d (incarnation %llu, last "
		"heartbeat %lld ms ago); stop that server or give this one another id",
		x->info.id, x->info.pid, x->info.host, x->info.port,
		(unsigned long long)x->info.incarnation, (long long)(now - x->last_seen_ms));
	tn_counter_inc(r->refused_dup);
	if (x->refusal_logged_ms == 0 || now - x->refusal_logged_ms >= REFUSAL_LOG_MS) {
		x->refusal_logged_ms = now;
		tn_warn("registry", "registration refused: id already registered id=%s holder_pid=%d "
				    "holder=%s:%d pid=%llu host=%.*s port=%u", x->info.id, x->info.pid,
			x->info.host, x->info.port, (unsigned long long)s->pid, (int)s->host.len,
			s->host.p, s->port);
	}
	ack(r, req, TN_EEXIST, reason);
}

/* A server says it is shutting down: from now on it is no room's owner. Sticky for this
 * registration; the caller answers, with the new epoch. */
static void
mark_draining(struct tn_registry *r, struct rec *x)
{
	x->info.draining = true;
	tn_counter_inc(r->drainings);
	changed(r, TN_REG_CHANGED, &x->info, true);
	tn_info("registry", "server draining id=%s type=%s epoch=%llu", x->info.id,
		tn_server_type_name(x->info.type), (unsigned long long)r->epoch);
}

/* The same process registering again (its ACK was lost, or it moved): takes what it says
 * now, but for the draining flag, which only the registry's mark sets on x. */
static void
rec_refresh(struct tn_registry *r, struct rec *x, struct tn_server_info *info)
{
	bool moved = !tn_server_info_same(&x->info, info);
	bool drains = info->draining && !x->info.draining;
	info->draining = x->info.draining;
	/* The table's key is the id string inside info: swap the entry with it. */
	tn_map_del(&r->by_id, x->info.id, strlen(x->info.id));
	tn_server_info_fini(&x->info);
	x->info = *info;
	tn_map_put(&r->by_id, x->info.id, strlen(x->info.id), x);
	x->last_seen_ms = tn_now_ms();
	if (drains)
		mark_draining(r, x); /* one change, whether it also moved or not */
	else if (moved)
		changed(r, TN_REG_CHANGED, &x->info, false);
}

static void
handle_register(struct tn_registry *r, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_reg_register m;
	int rv = tn_reg_register_decode(&m, data, len, NULL);
	if (rv != TN_OK) {
		tn_counter_inc(r->req_bad);
		ack(r, req, rv, "malformed register");
		return;
	}
	const char *bad = invalid_reason(&m.server);
	if (bad) {
		tn_counter_inc(r->refused_invalid);
		tn_info("registry", "registration refused: %s id=%.*s", bad, (int)m.server.id.len,
			m.server.id.p);
		ack(r, req, TN_EINVAL, bad);
		return;
	}
	if (m.epoch > r->max_reported)
		r->max_reported = m.epoch;
	struct rec *x = rec_find(r, m.server.id);
	if (x && x->info.incarnation != m.server.incarnation) {
		refuse_duplicate(r, req, x, &m.server);
		return;
	}
	struct tn_server_info info;
	tn_membership_server_from(&info, &m.server);
	if (x) {
		rec_refresh(r, x, &info);
	} else {
		/* A new registration starts draining only if the server says so (one that was
		 * draining when an earlier registry knew it). */
		x = tn_calloc(1, sizeof(*x));
		x->info = info;
		x->registered_ms = x->last_seen_ms = tn_now_ms();
		tn_map_put(&r->by_id, x->info.id, strlen(x->info.id), x);
		tn_counter_inc(r->joins);
		changed(r, TN_REG_JOINED, &x->info, false);
		tn_info("registry", "server joined id=%s type=%s host=%s port=%d client_port=%d pid=%d "
				    "draining=%d epoch=%llu", x->info.id,
			tn_server_type_name(x->info.type), x->info.host, x->info.port,
			x->info.client_port, x->info.pid, x->info.draining,
			(unsigned long long)r->epoch);
	}
	mark_told(r, x);
	ack(r, req, TN_OK, NULL);
}

static void
handle_heartbeat(struct tn_registry *r, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_reg_heartbeat m;
	int rv = tn_reg_heartbeat_decode(&m, data, len, NULL);
	if (rv != TN_OK) {
		tn_counter_inc(r->req_bad);
		ack(r, req, rv, "malformed heartbeat");
		return;
	}
	struct rec *x = rec_find(r, m.id);
	if (x == NULL || x->info.incarnation != m.incarnation) {
		tn_counter_inc(r->unknown_heartbeats);
		ack(r, req, TN_ENOENT, "unknown server: register again");
		return;
	}
	if (m.epoch > r->max_reported)
		r->max_reported = m.epoch;
	x->last_seen_ms = tn_now_ms();
	x->info.load = (struct tn_server_load){m.load.connections, m.load.sessions, m.load.rooms,
		m.load.members, m.load.msgs_milli, m.load.rss_bytes, m.load.uptime_ms};
	/* Before the answer, so that it carries the new epoch. */
	if (m.draining && !x->info.draining)
		mark_draining(r, x);
	mark_told(r, x);
	ack(r, req, TN_OK, NULL);
}

static void
handle_leave(struct tn_registry *r, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_reg_leave m;
	int rv = tn_reg_leave_decode(&m, data, len, NULL);
	if (rv != TN_OK) {
		tn_counter_inc(r->req_bad);
		ack(r, req, rv, "malformed leave");
		return;
	}
	struct rec *x = rec_find(r, m.id);
	/* Only the registered process can take its id out; leaving twice is fine. */
	if (x && x->info.incarnation == m.incarnation) {
		tn_info("registry", "server left id=%s type=%s", x->info.id,
			tn_server_type_name(x->info.type));
		struct tn_server_info gone = rec_take(r, x);
		tn_counter_inc(r->leaves);
		changed(r, TN_REG_LEFT, &gone, true);
		tn_server_info_fini(&gone);
	}
	ack(r, req, TN_OK, NULL);
}

/* ---- snapshots ---- */

static uint64_t
own_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long size = 0, resident = 0;
	if (f == NULL)
		return 0;
	int n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	return n == 2 ? resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* The membership as a topology, the registry first, in the order every server uses. */
static struct tn_topology *
membership(struct tn_registry *r)
{
	struct tn_topology *t = tn_topology_new_empty();
	t->version = r->epoch;
	t->registry_inc = r->inc;
	r->self.load.uptime_ms = (uint64_t)(tn_now_ms() - r->started_ms);
	r->self.load.rss_bytes = own_rss();
	r->self.load.msgs_milli = r->msgs_milli;
	r->self.load.connections = r->by_id.count;
	tn_topology_add(t, &r->self);
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&r->by_id, &it)) != NULL;)
		tn_topology_add(t, &((struct rec *)e->val)->info);
	tn_topology_sort(t);
	return t;
}

static void
handle_snapshot(struct tn_registry *r, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_reg_snapshot_req m;
	int rv = tn_reg_snapshot_req_decode(&m, data, len, NULL);
	if (rv != TN_OK) {
		tn_counter_inc(r->req_bad);
		ack(r, req, rv, "malformed snapshot request");
		return;
	}
	if (atomic_load(&r->draining)) {
		mark_told(r, rec_find(r, m.id));
		ack(r, req, TN_ECLOSED, "the registry is shutting down");
		return;
	}
	/* See registry_server.h: whoever holds a membership from elsewhere keeps it until the
	 * servers have had time to re-register. */
	if (r->recovering && m.registry_inc != r->inc && m.epoch != 0) {
		tn_counter_inc(r->withheld);
		ack(r, req, TN_ERECOVERING,
			"the registry has just started and is waiting for servers to re-register");
		return;
	}
	struct tn_topology *t = membership(r);
	struct tn_reg_server *views = tn_calloc(t->n, sizeof(*views));
	for (size_t i = 0; i < t->n; i++)
		tn_membership_server_view(&views[i], &t->servers[i]);
	struct tn_reg_snapshot_hdr hdr = {r->epoch, r->inc, r->recovering};
	tn_buf_reset(&r->scratch);
	tn_reg_snapshot_encode(&r->scratch, &hdr, views, t->n);
	free(views);
	tn_topology_free(t);
	tn_rpc_reply(req, r->scratch.data, r->scratch.len);
}

static void
on_request(void *arg, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_registry *r = arg;
	enum tn_kind kind;
	int rv = tn_proto_peek(&kind, data, len);
	r->requests++;
	atomic_store(&r->last_request_ms, tn_now_ms());
	if (rv) {
		tn_counter_inc(r->req_bad);
		ack(r, req, rv, "unreadable request");
		return;
	}
	switch (kind) {
	case TN_KIND_REG_REGISTER:
		tn_counter_inc(r->req_register);
		handle_register(r, req, data, len);
		break;
	case TN_KIND_REG_HEARTBEAT:
		tn_counter_inc(r->req_heartbeat);
		handle_heartbeat(r, req, data, len);
		break;
	case TN_KIND_REG_LEAVE:
		tn_counter_inc(r->req_leave);
		handle_leave(r, req, data, len);
		break;
	case TN_KIND_REG_SNAPSHOT_REQ:
		tn_counter_inc(r->req_snapshot);
		handle_snapshot(r, req, data, len);
		break;
	default:
		tn_counter_inc(r->req_bad);
		tn_info("registry", "request of a kind the registry does not serve kind=%s",
			tn_kind_name(kind));
		ack(r, req, TN_EKIND, "the registry does not serve this kind");
		break;
	}
}

/* ---- timers ---- */

static void
evict_silent(struct tn_registry *r, int64_t now)
{
	size_t it = 0;
	struct rec *stale[64];
	size_t n = 0;
	for (struct tn_map_entry *e; n < 64 && (e = tn_map_next(&r->by_id, &it)) != NULL;) {
		struct rec *x = e->val;
		if (now - x->last_seen_ms > r->evict_after_ms)
			stale[n++] = x;
	}
	/* The map changes as they go, so they were collected first (the rest, if more than
	 * 64 went silent at once, go at the next sweep). */
	for (size_t i = 0; i < n; i++) {
		struct rec *x = stale[i];
		tn_warn("registry", "server evicted id=%s type=%s silent_ms=%lld", x->info.id,
			tn_server_type_name(x->info.type), (long long)(now - x->last_seen_ms));
		struct tn_server_info gone = rec_take(r, x);
		tn_counter_inc(r->evictions);
		changed(r, TN_REG_EVICTED, &gone, false);
		tn_server_info_fini(&gone);
	}
}

static void
sweep(void *arg)
{
	struct tn_registry *r = arg;
	int64_t now = tn_now_ms();
	evict_silent(r, now);
	if (now - r->rate_ms >= 1000) {
		r->msgs_milli = (r->requests - r->rate_requests) * 1000000 / (uint64_t)(now - r->rate_ms);
		r->rate_requests = r->requests;
		r->rate_ms = now;
	}
	tn_loop_timer_add(r->loop, r->sweep_ms, sweep, r);
}

static void
quiet_end(void *arg)
{
	struct tn_registry *r = arg;
	r->recovering = false;
	/* changed() takes the epoch past every epoch a server reported. */
	changed(r, TN_REG_RECOVERED, NULL, false);
	tn_info("registry", "quiet period over: serving the membership servers=%zu epoch=%llu",
		r->by_id.count, (unsigned long long)r->epoch);
}

static void
start_timers(void *arg, bool cancelled)
{
	struct tn_registry *r = arg;
	if (cancelled)
		return;
	int64_t now = tn_now_ms();
	r->rate_ms = now;
	tn_loop_timer_add(r->loop, r->sweep_ms, sweep, r);
	if (r->recovering)
		tn_loop_timer_add(r->loop, r->quiet_until_ms - now, quiet_end, r);
}

/* ---- life cycle ---- */

static void
register_metrics(struct tn_registry *r)
{
	struct tn_metric_family *fam;
	tn_metrics_family_new(&fam, TN_METRIC_GAUGE, "tern_registry_members",
		"registered servers, by type", "type", NULL, 0);
	for (int t = 0; t < TN_SERVER_TYPE_COUNT_; t++)
		r->g_members[t] = tn_metrics_gauge_labels(fam, tn_server_type_name(t));
	tn_metrics_gauge(&r->g_epoch, "tern_registry_epoch", "membership epoch (version)");
	tn_metrics_gauge(&r->g_recovering, "tern_registry_recovering",
		"1 during the quiet period after a start, while servers re-register");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_registry_requests_total",
		"requests received, by kind", "kind", NULL, 0);
	r->req_register = tn_metrics_counter_labels(fam, "register");
	r->req_heartbeat = tn_metrics_counter_labels(fam, "heartbeat");
	r->req_leave = tn_metrics_counter_labels(fam, "leave");
	r->req_snapshot = tn_metrics_counter_labels(fam, "snapshot");
	r->req_bad = tn_metrics_counter_labels(fam, "invalid");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_registry_changes_total",
		"membership changes, by kind", "change", NULL, 0);
	r->joins = tn_metrics_counter_labels(fam, "joined");
	r->leaves = tn_metrics_counter_labels(fam, "left");
	r->evictions = tn_metrics_counter_labels(fam, "evicted");
	r->drainings = tn_metrics_counter_labels(fam, "draining");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_registry_refused_total",
		"registrations refused, by reason", "reason", NULL, 0);
	r->refused_dup = tn_metrics_counter_labels(fam, "duplicate id");
	r->refused_invalid = tn_metrics_counter_labels(fam, "invalid");
	tn_metrics_counter(&r->unknown_heartbeats, "tern_registry_unknown_heartbeats_total",
		"heartbeats from servers not registered (told to register again)");
	tn_metrics_counter(&r->withheld, "tern_registry_snapshots_withheld_total",
		"snapshots withheld during the quiet period");
}

/* Listens for notices; a tcp port of 0 takes a free one, kept in r->notice_port. */
static int
notice_listen(struct tn_registry *r, const char *url)
{
	nng_listener l;
	int rv = nng_pub0_open(&r->pub);
	if (rv != 0)
		return tn_err_from_nng(rv);
	r->pub_open = true;
	rv = nng_listen(r->pub, url, &l, 0);
	if (rv != 0) {
		tn_error("registry", "cannot listen for notices url=%s err=\"%s\"", url,
			nng_strerror(rv));
		return tn_err_from_nng(rv);
	}
	int port = 0;
	if (strncmp(url, "tcp", 3) == 0 &&
		nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0)
		port = 0;
	r->notice_port = port;
	return TN_OK;
}

int
tn_registry_new(struct tn_registry **out, const struct tn_registry_opts *o, struct tn_loop *loop)
{
	struct tn_registry *r = tn_calloc(1, sizeof(*r));
	tn_server_info_copy(&r->self, o->self);
	r->loop = loop;
	r->evict_after_ms = o->evict_after_ms;
	/* Evictions land within a tenth of evict_after of being due. */
	r->sweep_ms = o->evict_after_ms / 10;
	if (r->sweep_ms < 10)
		r->sweep_ms = 10;
	if (r->sweep_ms > 500)
		r->sweep_ms = 500;
	r->started_ms = tn_now_ms();
	r->recovering = o->quiet_ms > 0;
	r->quiet_until_ms = r->started_ms + o->quiet_ms;
	r->inc = (uint64_t)tn_wall_ms() * 1000 + (uint64_t)(tn_now_us() % 1000);
	r->self.incarnation = r->inc;
	tn_map_init(&r->by_id);
	tn_buf_init(&r->scratch);
	register_metrics(r);
	update_gauges(r);
	int rv = notice_listen(r, o->notice_url);
	if (rv == TN_OK)
		rv = tn_rpc_server_start(&r->rpc, o->rpc_url, REGISTRY_WORKERS, REGISTRY_MAX_MSG,
			tn_loop_exec(loop), on_request, r);
	if (rv) {
		tn_registry_free(r);
		return rv;
	}
	tn_loop_post(loop, start_timers, r);
	tn_info("registry", "serving rpc=%s notices=%s notice_port=%d evict_after_ms=%d "
			    "quiet_ms=%d incarnation=%llu", o->rpc_url, o->notice_url, r->notice_port,
		r->evict_after_ms, o->quiet_ms, (unsigned long long)r->inc);
	*out = r;
	return TN_OK;
}

void
tn_registry_drain(struct tn_registry *r, int quiet_ms, int max_ms)
{
	int64_t start = tn_now_ms();
	atomic_store(&r->draining, true);
	while (tn_now_ms() - start < max_ms &&
		(atomic_load(&r->n_told) < atomic_load(&r->n_members) ||
			tn_now_ms() - atomic_load(&r->last_request_ms) < quiet_ms))
		usleep(10000);
	tn_info("registry", "drained servers_told=%zu servers=%zu ms=%lld",
		atomic_load(&r->n_told), atomic_load(&r->n_members),
		(long long)(tn_now_ms() - start));
}

int
tn_registry_notice_port(const struct tn_registry *r)
{
	return r->notice_port;
}

uint64_t
tn_registry_incarnation(const struct tn_registry *r)
{
	return r->inc;
}

void
tn_registry_free(struct tn_registry *r)
{
	if (r == NULL)
		return;
	tn_rpc_server_stop(r->rpc);
	if (r->pub_open)
		nng_close(r->pub);
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&r->by_id, &it)) != NULL;)
		rec_free(e->val);
	tn_map_fini(&r->by_id);
	tn_server_info_fini(&r->self);
	tn_buf_fini(&r->scratch);
	free(r);
}
