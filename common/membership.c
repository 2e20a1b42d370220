#include "membership.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "metrics.h"
#include "rpc.h"

#ifndef TN_VERSION
#define TN_VERSION "unknown"
#endif

/* A snapshot lists every server with its load: allow large clusters. */
#define SNAPSHOT_MAX_MSG (16u << 20)
#define NOTICE_MAX_MSG (64u << 10)
/* Log a failing registry at most this often after the first failure. */
#define REPEAT_LOG_MS 30000

struct metrics {
	struct tn_gauge *registered, *epoch;
	struct tn_gauge *servers[TN_SERVER_TYPE_COUNT_];
	struct tn_counter *joined, *left, *evictions, *refused, *registrations, *lost;
	struct tn_counter *snap_applied, *snap_withheld, *snap_failed;
	struct tn_counter *err_timeout, *err_unreachable, *err_reply;
};

struct tn_membership {
	/* Set at start, read-only afterwards. */
	const struct tn_config *cfg;
	struct tn_server_info self;
	char registry_url[320];
	char registry_host[300];
	char notice_url_fixed[320];
	int interval_ms, call_ms;
	bool follow_load;
	struct tn_exec owner;
	tn_membership_topology_fn on_topology;
	tn_membership_load_fn load_fn;
	void *arg;
	struct tn_admin *admin;
	int64_t started_ms;
	struct metrics mt;

	struct tn_loop *loop;
	pthread_t thr;
	nng_socket req;       /* to the registry; used by the client thread only */
	atomic_int req_pipes; /* its connected pipes (nng threads update it) */
	nng_socket sub;
	nng_aio *sub_aio;
	bool sub_open;
	atomic_int sub_pipes; /* connected pipes of sub (nng threads update it) */
	char sub_url[320];

	/* The client thread's own state. */
	bool registered, refused, stopping, leave_sent;
	int64_t hold_until_ms;    /* the registry said it is closing: no requests until then */
	bool call_busy, snap_busy, snap_wanted;
	bool refresh_wanted;      /* tn_membership_refresh asked: read a snapshot, newer or not */
	struct tn_topology *view; /* the membership in use: seed, empty or the last snapshot */
	uint64_t evictions_seen_epoch;
	bool warned_interval;
	int64_t last_error_log_ms;
	int64_t last_refusal_log_ms;
	char last_refusal[256];

	/* Set by any thread; each is followed by one task on the client thread. */
	atomic_bool draining;       /* tn_membership_set_draining was called */
	atomic_bool refresh_posted; /* a refresh task is queued and has not started */

	/* Shared with the owner thread and main, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct tn_server_load load;
	uint64_t last_messages;
	int64_t last_sample_ms;
	bool sample_posted;
	bool first_outcome, ready_registered, serving, leaving, left;
	char not_ready[TN_ADMIN_REASON_MAX + 1];
	atomic_int refs;
};

static void tick(void *arg);
static void send_register(struct tn_membership *m);
static void ack_closing(struct tn_membership *m, const struct tn_reg_ack *ack);
static void leave_when_idle(struct tn_membership *m);

/* ---- conversions ---- */

void
tn_membership_server_view(struct tn_reg_server *out, const struct tn_server_info *s)
{
	*out = (struct tn_reg_server){
		.id = tn_str_of(s->id),
		.type = (uint64_t)s->type,
		.host = tn_str_of(s->host),
		.port = (uint32_t)s->port,
		.bind_host = tn_str_of(s->bind_host),
		.client_host = tn_str_of(s->client_host),
		.client_port = (uint32_t)s->client_port,
		.client_bind_host = tn_str_of(s->client_bind_host),
		.admin_host = tn_str_of(s->admin_host),
		.admin_port = (uint32_t)s->admin_port,
		.pid = (uint64_t)s->pid,
		.version = tn_str_of(s->version),
		.incarnation = s->incarnation,
		.load = {s->load.connections, s->load.sessions, s->load.rooms, s->load.members,
			s->load.msgs_milli, s->load.rss_bytes, s->load.uptime_ms},
		.draining = s->draining,
	};
}

bool
tn_membership_server_from(struct tn_server_info *out, const struct tn_reg_server *in)
{
	if (in->type >= TN_SERVER_TYPE_COUNT_)
		return false;
	memset(out, 0, sizeof(*out));
	out->id = tn_strndup(in->id.p, in->id.len);
	out->type = (enum tn_server_type)in->type;
	out->host = tn_strndup(in->host.p, in->host.len);
	out->port = (int)in->port;
	out->client_host = tn_strndup(in->client_host.p, in->client_host.len);
	out->client_port = (int)in->client_port;
	out->admin_port = (int)in->admin_port;
	out->bind_host = tn_strndup(in->bind_host.p, in->bind_host.len);
	out->client_bind_host = tn_strndup(in->client_bind_host.p, in->client_bind_host.len);
	out->admin_host = tn_strndup(in->admin_host.p, in->admin_host.len);
	out->pid = in->pid > INT32_MAX ? 0 : (int)in->pid;
	out->version = tn_strndup(in->version.p, in->version.len);
	out->incarnation = in->incarnation;
	out->seed = tn_hash_server_seed(out->id);
	out->load = (struct tn_server_load){in->load.connections, in->load.sessions,
		in->load.rooms, in->load.members, in->load.msgs_milli, in->load.rss_bytes,
		in->load.uptime_ms};
	out->draining = in->draining;
	return true;
}

int
tn_membership_decode_snapshot(struct tn_topology **out, bool *recovering, const void *data,
	size_t len)
{
	struct tn_reg_snapshot_reader rd;
	int rv = tn_reg_snapshot_reader_init(&rd, data, len, NULL);
	if (rv != TN_OK)
		return rv;
	struct tn_topology *t = tn_topology_new_empty();
	t->version = rd.hdr.epoch;
	t->registry_inc = rd.hdr.registry_inc;
	t->servers = tn_calloc(rd.n_servers ? rd.n_servers : 1, sizeof(*t->servers));
	struct tn_reg_server s;
	while (tn_reg_snapshot_next(&rd, &s)) {
		if (tn_membership_server_from(&t->servers[t->n], &s))
			t->n++;
	}
	*out = t;
	*recovering = rd.hdr.recovering;
	return TN_OK;
}

/* ---- metrics ---- */

static void
metrics_register(struct metrics *mt)
{
	struct tn_metric_family *fam;
	tn_metrics_gauge(&mt->registered, "tern_membership_registered",
		"1 while this server is registered with the registry");
	tn_metrics_gauge(&mt->epoch, "tern_membership_epoch",
		"membership epoch (version) of the membership this server uses");
	tn_metrics_family_new(&fam, TN_METRIC_GAUGE, "tern_membership_servers",
		"servers in the membership this server uses, by type", "type", NULL, 0);
	for (int t = 0; t < TN_SERVER_TYPE_COUNT_; t++)
		mt->servers[t] = tn_metrics_gauge_labels(fam, tn_server_type_name(t));
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_membership_changes_total",
		"servers (gate, connector, chat) that joined or left the membership this server uses",
		"change", NULL, 0);
	mt->joined = tn_metrics_counter_labels(fam, "joined");
	mt->left = tn_metrics_counter_labels(fam, "left");
	tn_metrics_counter(&mt->evictions, "tern_membership_evictions_total",
		"evictions the registry announced (notices are hints: a missed one is not counted)");
	tn_metrics_counter(&mt->refused, "tern_membership_refused_total",
		"registrations of this server the registry refused (id already registered)");
	tn_metrics_counter(&mt->registrations, "tern_membership_registrations_total",
		"successful registrations of this server (the first, then re-registrations)");
	tn_metrics_counter(&mt->lost, "tern_membership_lost_total",
		"times the registry no longer knew this server (evicted, or the registry restarted)");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_membership_snapshots_total",
		"full membership reads, by outcome", "outcome", NULL, 0);
	mt->snap_applied = tn_metrics_counter_labels(fam, "applied");
	mt->snap_withheld = tn_metrics_counter_labels(fam, "withheld");
	mt->snap_failed = tn_metrics_counter_labels(fam, "failed");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_membership_registry_errors_total",
		"calls to the registry that failed, by reason", "reason", NULL, 0);
	mt->err_timeout = tn_metrics_counter_labels(fam, "timeout");
	mt->err_unreachable = tn_metrics_counter_labels(fam, "unreachable");
	mt->err_reply = tn_metrics_counter_labels(fam, "bad reply");
}

static void
metrics_view(struct tn_membership *m)
{
	tn_gauge_set(m->mt.epoch, (int64_t)m->view->version);
	for (int t = 0; t < TN_SERVER_TYPE_COUNT_; t++)
		tn_gauge_set(m->mt.servers[t],
			(int64_t)tn_topology_of_type(m->view, (enum tn_server_type)t, NULL, 0));
}

/* ---- references: the owner may still hold a load-sample task after stop ---- */

static void
membership_unref(struct tn_membership *m)
{
	if (atomic_fetch_sub(&m->refs, 1) != 1)
		return;
	tn_topology_free(m->view);
	tn_server_info_fini(&m->self);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* ---- readiness (under mu) ---- */

static void
readiness_apply(struct tn_membership *m)
{
	/* Until the service serves, /readyz keeps the service's own "starting". */
	if (m->admin == NULL || !m->serving)
		return;
	if (m->leaving)
		tn_admin_set_ready(m->admin, false, "stopping");
	else if (m->ready_registered)
		tn_admin_set_ready(m->admin, true, NULL);
	else
		tn_admin_set_ready(m->admin, false, m->not_ready);
}

/* Records a registration outcome for readiness and for tn_membership_wait_registered. */
static void
outcome(struct tn_membership *m, bool registered, const char *why)
{
	pthread_mutex_lock(&m->mu);
	m->first_outcome = true;
	m->ready_registered = registered;
	if (why)
		snprintf(m->not_ready, sizeof(m->not_ready), "%s", why);
	readiness_apply(m);
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	tn_gauge_set(m->mt.registered, registered);
}

/* ---- load ---- */

static uint64_t
read_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long size = 0, resident = 0;
	if (f == NULL)
		return 0;
	int n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	return n == 2 ? resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* Owner thread: takes a sample of the server's numbers. */
static void
sample_task(void *arg, bool cancelled)
{
	struct tn_membership *m = arg;
	struct tn_server_load l = {0};
	uint64_t messages = 0;
	if (!cancelled)
		m->load_fn(m->arg, &l, &messages);
	int64_t now = tn_now_ms();
	pthread_mutex_lock(&m->mu);
	if (!cancelled) {
		uint64_t rate = m->load.msgs_milli;
		if (m->last_sample_ms > 0 && now > m->last_sample_ms && messages >= m->last_messages)
			rate = (messages - m->last_messages) * 1000000 /
				(uint64_t)(now - m->last_sample_ms);
		m->load = l;
		m->load.msgs_milli = rate;
		m->last_messages = messages;
		m->last_sample_ms = now;
	}
	m->sample_posted = false;
	pthread_mutex_unlock(&m->mu);
	membership_unref(m);
}

static void
sample_request(struct tn_membership *m)
{
	if (m->load_fn == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	bool post = !m->sample_posted;
	m->sample_posted = true;
	pthread_mutex_unlock(&m->mu);
	if (!post)
		return; /* the owner has not taken the last one yet: it is busy, keep the old */
	atomic_fetch_add(&m->refs, 1);
	tn_exec_post(&m->owner, sample_task, m);
}

/* The load to report now: the owner's last sample, plus what this thread measures. */
static struct tn_server_load
load_now(struct tn_membership *m)
{
	pthread_mutex_lock(&m->mu);
	struct tn_server_load l = m->load;
	pthread_mutex_unlock(&m->mu);
	l.rss_bytes = read_rss();
	l.uptime_ms = (uint64_t)(tn_now_ms() - m->started_ms);
	return l;
}

static struct tn_reg_load
reg_load(const struct tn_server_load *l)
{
	return (struct tn_reg_load){l->connections, l->sessions, l->rooms, l->members,
		l->msgs_milli, l->rss_bytes, l->uptime_ms};
}

/* ---- calls ---- */

/* The registry said it is closing, and asked for silence until hold_until_ms. */
static bool
holding(const struct tn_membership *m)
{
	return m->hold_until_ms != 0 && tn_now_ms() < m->hold_until_ms;
}

static void
call_failed(struct tn_membership *m, const char *what, int err)
{
	if (err == TN_ETIMEDOUT)
		tn_counter_inc(m->mt.err_timeout);
	else if (err == TN_EPROTO)
		tn_counter_inc(m->mt.err_reply);
	else
		tn_counter_inc(m->mt.err_unreachable);
	/* The first failure is worth a line; a registry that stays down is not worth one a
	 * second. */
	int64_t now = tn_now_ms();
	if (m->last_error_log_ms == 0 || now - m->last_error_log_ms >= REPEAT_LOG_MS) {
		tn_warn("membership", "registry call failed call=%s registry=%s err=\"%s\"", what,
			m->registry_url, tn_strerror(err));
		m->last_error_log_ms = now;
	}
}

static void
call_succeeded(struct tn_membership *m)
{
	if (m->last_error_log_ms != 0)
		tn_info("membership", "registry answering again registry=%s", m->registry_url);
	m->last_error_log_ms = 0;
}

/* Decodes a reply as an ACK; a failed call or a reply that is not one fails. */
static int
ack_of(struct tn_reg_ack *ack, int err, const uint8_t *data, size_t len)
{
	if (err != TN_OK)
		return err;
	return tn_reg_ack_decode(ack, data, len, NULL) == TN_OK ? TN_OK : TN_EPROTO;
}

/* One request and its reply, within call_ms. Synchronous on purpose: the client thread
 * does nothing else meanwhile, so no nng operation is ever in flight on another thread
 * when the socket closes (nng 1.5 can crash closing a socket under a running
 * callback). */
static int
registry_call(struct tn_membership *m, const struct tn_buf *b, nng_msg **reply)
{
	nng_msg *msg;
	int64_t deadline = tn_now_ms() + m->call_ms;
	if (nng_msg_alloc(&msg, b->len) != 0) {
		fprintf(stderr, "fatal: out of memory for an nng message\n");
		abort();
	}
	memcpy(nng_msg_body(msg), b->data, b->len);
	nng_socket_set_ms(m->req, NNG_OPT_SENDTIMEO, m->call_ms);
	int rv = nng_sendmsg(m->req, msg, 0);
	if (rv != 0) {
		nng_msg_free(msg);
		return tn_err_from_nng(rv);
	}
	int64_t left = deadline - tn_now_ms();
	nng_socket_set_ms(m->req, NNG_OPT_RECVTIMEO, left > 1 ? (nng_duration)left : 1);
	return tn_err_from_nng(nng_recvmsg(m->req, reply, 0));
}

/* Makes a call and hands the outcome to done(m, err, reply bytes). */
static void
call(struct tn_membership *m, struct tn_buf *b, tn_rpc_done_fn done)
{
	nng_msg *reply = NULL;
	int err = registry_call(m, b, &reply);
	tn_buf_fini(b);
	done(m, err, reply ? nng_msg_body(reply) : NULL, reply ? nng_msg_len(reply) : 0);
	nng_msg_free(reply);
}

/* ---- notices ---- */

static void notice_task(void *arg, bool cancelled);

static void
sub_cb(void *arg)
{
	struct tn_membership *m = arg;
	int rv = nng_aio_result(m->sub_aio);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0) {
		nng_msg *msg = nng_aio_get_msg(m->sub_aio);
		/* The header carries m, so the task needs no allocation of its own. */
		nng_msg_header_clear(msg);
		nng_msg_header_append(msg, &m, sizeof(m));
		tn_loop_post(m->loop, notice_task, msg);
	}
	nng_recv_aio(m->sub, m->sub_aio);
}

/* Counts the connected pipes of a socket (arg: its counter). nng threads. */
static void
pipe_count(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	atomic_int *pipes = arg;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(pipes, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(pipes, 1);
}

/* nng 1.5 leaks a connection closed in the middle of its handshake: give one that is
 * under way a moment to finish first (with the registry down there is none, and no
 * wait beyond this bound). */
static void
wait_connected(const atomic_int *pipes)
{
	int64_t until = tn_now_ms() + 250;
	while (atomic_load(pipes) == 0 && tn_now_ms() < until)
		usleep(5000);
}

static void
notice_close(struct tn_membership *m)
{
	if (!m->sub_open)
		return;
	wait_connected(&m->sub_pipes);
	/* The receive first, so that no callback is inside nng when the socket closes; a
	 * stopped aio cannot be started again, so each socket gets its own. */
	nng_aio_stop(m->sub_aio);
	nng_close(m->sub);
	nng_aio_free(m->sub_aio);
	m->sub_aio = NULL;
	m->sub_open = false;
}

/* Listens to the notices at url; a restarted registry may publish on another port. */
static void
notice_follow(struct tn_membership *m, const char *url)
{
	if (m->sub_open && strcmp(m->sub_url, url) == 0)
		return;
	notice_close(m);
	if (nng_aio_alloc(&m->sub_aio, sub_cb, m) != 0) {
		fprintf(stderr, "fatal: nng aio allocation failed\n");
		abort();
	}
	int rv = tn_err_from_nng(nng_sub0_open(&m->sub));
	atomic_store(&m->sub_pipes, 0);
	if (rv == TN_OK)
		rv = tn_err_from_nng(nng_socket_set(m->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0));
	if (rv == TN_OK)
		rv = tn_err_from_nng(nng_pipe_notify(m->sub, NNG_PIPE_EV_ADD_POST, pipe_count,
			&m->sub_pipes));
	if (rv == TN_OK)
		rv = tn_err_from_nng(nng_pipe_notify(m->sub, NNG_PIPE_EV_REM_POST, pipe_count,
			&m->sub_pipes));
	if (rv == TN_OK)
		rv = tn_nng_dial(m->sub, url, NOTICE_MAX_MSG);
	if (rv != TN_OK) {
		/* Heartbeat replies carry the epoch too: notices only make changes arrive
		 * sooner. */
		tn_warn("membership", "cannot follow notices url=%s err=\"%s\"", url, tn_strerror(rv));
		nng_close(m->sub);
		nng_aio_free(m->sub_aio);
		m->sub_aio = NULL;
		return;
	}
	snprintf(m->sub_url, sizeof(m->sub_url), "%s", url);
	m->sub_open = true;
	nng_recv_aio(m->sub, m->sub_aio);
	tn_debug("membership", "following notices url=%s", url);
}

static void
notice_follow_ack(struct tn_membership *m, const struct tn_reg_ack *ack)
{
	char url[320];
	if (*m->notice_url_fixed)
		snprintf(url, sizeof(url), "%s", m->notice_url_fixed);
	else if (ack->notice_port == 0 ||
		tn_nng_url(url, sizeof(url), m->registry_host, (int)ack->notice_port) != TN_OK)
		return;
	notice_follow(m, url);
}

/* ---- snapshots ---- */

static void snapshot_done(void *arg, int err, const uint8_t *data, size_t len);
static void snapshot_outcome(struct tn_membership *m, int err, const uint8_t *data, size_t len);

static void
snapshot_fetch(struct tn_membership *m)
{
	if (m->snap_busy || m->stopping || !m->registered || holding(m))
		return;
	struct tn_reg_snapshot_req q = {tn_str_of(m->self.id), m->view->version,
		m->view->registry_inc};
	struct tn_buf b;
	tn_buf_init(&b);
	tn_reg_snapshot_req_encode(&b, &q);
	/* Any snapshot read from now on answers the refreshes asked for so far. */
	m->refresh_wanted = false;
	m->snap_busy = true;
	call(m, &b, snapshot_done);
}

/* The registry's membership is (epoch, registry_inc): fetch it when it is newer than
 * ours, unless a restarted registry is still gathering servers and ours did not come from
 * it (it would withhold it anyway: the point of its quiet period is that nobody drops
 * servers that have not re-registered yet). */
static void
maybe_fetch(struct tn_membership *m, uint64_t epoch, uint64_t registry_inc, bool recovering)
{
	const struct tn_topology *v = m->view;
	if (registry_inc == v->registry_inc && epoch <= v->version)
		return;
	if (recovering && v->registry_inc != registry_inc && v->version != 0)
		return;
	m->snap_wanted = true;
	snapshot_fetch(m);
}

/* A membership on its way to the owner thread. */
struct topo_task {
	tn_membership_topology_fn fn;
	void *arg;
	struct tn_topology *topo;
};

static void
topo_task_run(void *arg, bool cancelled)
{
	struct topo_task *k = arg;
	if (cancelled)
		tn_topology_free(k->topo);
	else
		k->fn(k->arg, k->topo);
	free(k);
}

/* Servers of a missing from b, the registry's own entry aside: a restarted registry is
 * a new process, but no member came or went. */
static size_t
members_missing(const struct tn_topology *a, const struct tn_topology *b)
{
	size_t n = tn_topology_missing(a, b);
	for (size_t i = 0; i < a->n; i++) {
		const struct tn_server_info *s = &a->servers[i];
		const struct tn_server_info *o = tn_topology_find(b, s->id);
		if (s->type == TN_SERVER_REGISTRY && (o == NULL || !tn_server_info_same(s, o)))
			n--;
	}
	return n;
}

static void
view_adopt(struct tn_membership *m, struct tn_topology *t)
{
	bool change = t->registry_inc != m->view->registry_inc || t->version != m->view->version;
	if (change) {
		size_t joined = members_missing(t, m->view);
		size_t left = members_missing(m->view, t);
		tn_counter_add(m->mt.joined, joined);
		tn_counter_add(m->mt.left, left);
		tn_info("membership", "membership epoch=%llu registry_incarnation=%llu servers=%zu "
				      "joined=%zu left=%zu", (unsigned long long)t->version,
			(unsigned long long)t->registry_inc, t->n, joined, left);
	}
	tn_topology_free(m->view);
	m->view = t;
	metrics_view(m);
	tn_counter_inc(m->mt.snap_applied);
	/* The owner gets its own copy: this one stays here to compare the next with. */
	struct topo_task *k = tn_malloc(sizeof(*k));
	*k = (struct topo_task){m->on_topology, m->arg, tn_topology_copy(t)};
	tn_exec_post(&m->owner, topo_task_run, k);
}

/* A snapshot that is neither newer nor, for a load follower, the same epoch with fresher
 * loads, is a late answer: dropped. */
static void
snapshot_apply(struct tn_membership *m, const uint8_t *data, size_t len)
{
	struct tn_topology *t;
	bool recovering;
	if (tn_membership_decode_snapshot(&t, &recovering, data, len) != TN_OK) {
		tn_counter_inc(m->mt.snap_failed);
		call_failed(m, "snapshot", TN_EPROTO);
		return;
	}
	const struct tn_topology *v = m->view;
	bool newer = t->registry_inc != v->registry_inc || t->version > v->version;
	bool same = t->registry_inc == v->registry_inc && t->version == v->version;
	if (!newer && !(same && m->follow_load)) {
		tn_topology_free(t);
		return;
	}
	m->snap_wanted = false;
	view_adopt(m, t);
}

static void
snapshot_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct tn_membership *m = arg;
	m->snap_busy = false;
	if (m->stopping) {
		leave_when_idle(m);
		return;
	}
	snapshot_outcome(m, err, data, len);
	/* A refresh asked for while this one was on the wire gets a read of its own. */
	if (m->refresh_wanted && !m->refused)
		snapshot_fetch(m);
}

static void
snapshot_outcome(struct tn_membership *m, int err, const uint8_t *data, size_t len)
{
	enum tn_kind kind;
	struct tn_reg_ack ack;
	if (err == TN_OK && tn_proto_peek(&kind, data, len) == TN_OK && kind == TN_KIND_REG_SNAPSHOT) {
		call_succeeded(m);
		snapshot_apply(m, data, len);
	} else if (ack_of(&ack, err, data, len) == TN_OK) {
		call_succeeded(m);
		ack_closing(m, &ack);
		/* A restarted registry withholds its membership from servers that hold an older
		 * one during its quiet period: keep ours; its next ACKs say when to ask again. */
		tn_counter_inc(ack.code == TN_ERECOVERING ? m->mt.snap_withheld : m->mt.snap_failed);
		m->snap_wanted = false;
	} else {
		/* snap_wanted stays set: the next tick asks again. */
		tn_counter_inc(m->mt.snap_failed);
		call_failed(m, "snapshot", err ? err : TN_EPROTO);
	}
}

static void
notice_task(void *arg, bool cancelled)
{
	nng_msg *msg = arg;
	struct tn_membership *m = *(struct tn_membership **)nng_msg_header(msg);
	struct tn_reg_notice n;
	if (!cancelled && tn_reg_notice_decode(&n, nng_msg_body(msg), nng_msg_len(msg), NULL) ==
			TN_OK && !m->stopping) {
		tn_debug("membership", "notice change=%s server=%.*s epoch=%llu",
			tn_reg_change_name(n.change), (int)n.id.len, n.id.p,
			(unsigned long long)n.epoch);
		if (n.change == TN_REG_EVICTED && n.epoch > m->evictions_seen_epoch) {
			m->evictions_seen_epoch = n.epoch;
			tn_counter_inc(m->mt.evictions);
		}
		if (!m->refused)
			maybe_fetch(m, n.epoch, n.registry_inc, n.recovering);
	}
	nng_msg_free(msg);
}

/* ---- register, heartbeat, leave ---- */

/* A registry that is shutting down asks for silence, so that it can close its sockets
 * with nothing arriving on them; a restarted one is found again after the hold. */
static void
ack_closing(struct tn_membership *m, const struct tn_reg_ack *ack)
{
	if (!ack->closing)
		return;
	int hold = 3 * m->interval_ms > 3000 ? 3 * m->interval_ms : 3000;
	if (!holding(m))
		tn_info("membership", "the registry is closing: holding requests hold_ms=%d", hold);
	m->hold_until_ms = tn_now_ms() + hold;
}

static void
ack_note(struct tn_membership *m, const struct tn_reg_ack *ack)
{
	if (!m->warned_interval && ack->evict_after_ms > 0 &&
		(uint64_t)m->interval_ms * 3 > ack->evict_after_ms) {
		m->warned_interval = true;
		tn_warn("membership", "heartbeat interval is too long for the registry's eviction "
				      "time: this server risks eviction interval_ms=%d evict_after_ms=%llu",
			m->interval_ms, (unsigned long long)ack->evict_after_ms);
	}
	notice_follow_ack(m, ack);
	maybe_fetch(m, ack->epoch, ack->registry_inc, ack->recovering);
}

/* A registration that failed before any succeeded still ends the start-up wait. */
static void
first_failure(struct tn_membership *m, const char *why)
{
	pthread_mutex_lock(&m->mu);
	bool first = !m->first_outcome;
	pthread_mutex_unlock(&m->mu);
	if (first)
		outcome(m, false, why);
}

static void
register_refused(struct tn_membership *m, const struct tn_reg_ack *ack)
{
	char reason[256];
	snprintf(reason, sizeof(reason), "%.*s", (int)ack->reason.len, ack->reason.p);
	tn_counter_inc(m->mt.refused);
	m->registered = false;
	m->refused = true;
	/* Refused again and again until the other holder of the id goes: one line per new
	 * reason, then one now and then. */
	int64_t now = tn_now_ms();
	if (strcmp(reason, m->last_refusal) != 0 || now - m->last_refusal_log_ms >= REPEAT_LOG_MS) {
		tn_error("membership", "registration refused: %s id=%s", reason, m->self.id);
		snprintf(m->last_refusal, sizeof(m->last_refusal), "%s", reason);
		m->last_refusal_log_ms = now;
	}
	/* /readyz shows as much of it as fits. */
	char why[TN_ADMIN_REASON_MAX + 1];
	int n = snprintf(why, sizeof(why), "registration refused: ");
	snprintf(why + n, sizeof(why) - (size_t)n, "%.*s", (int)(sizeof(why) - (size_t)n - 1),
		reason);
	outcome(m, false, why);
}

static void
register_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct tn_membership *m = arg;
	m->call_busy = false;
	struct tn_reg_ack ack;
	if (m->stopping) {
		/* Registered after all: the leave below takes us out again. */
		m->registered = ack_of(&ack, err, data, len) == TN_OK && ack.code == TN_OK;
		leave_when_idle(m);
		return;
	}
	if ((err = ack_of(&ack, err, data, len)) != TN_OK) {
		call_failed(m, "register", err);
		first_failure(m, "not registered: the registry does not answer");
		return;
	}
	call_succeeded(m);
	ack_closing(m, &ack);
	if (ack.code == TN_EEXIST) {
		register_refused(m, &ack);
		return;
	}
	if (ack.code != TN_OK) {
		call_failed(m, "register", ack.code);
		first_failure(m, "not registered: the registry refused the registration");
		return;
	}
	tn_counter_inc(m->mt.registrations);
	tn_info("membership", "registered registry=%s registry_incarnation=%llu epoch=%llu "
			      "recovering=%d incarnation=%llu", m->registry_url,
		(unsigned long long)ack.registry_inc, (unsigned long long)ack.epoch, ack.recovering,
		(unsigned long long)m->self.incarnation);
	m->registered = true;
	m->refused = false;
	m->last_refusal[0] = '\0';
	outcome(m, true, NULL);
	ack_note(m, &ack);
}

static void
send_register(struct tn_membership *m)
{
	struct tn_reg_register r = {.epoch = m->view->version, .registry_inc = m->view->registry_inc};
	m->self.load = load_now(m);
	tn_membership_server_view(&r.server, &m->self);
	struct tn_buf b;
	tn_buf_init(&b);
	tn_reg_register_encode(&b, &r);
	m->call_busy = true;
	call(m, &b, register_done);
}

static void
heartbeat_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct tn_membership *m = arg;
	m->call_busy = false;
	struct tn_reg_ack ack;
	if (m->stopping) {
		leave_when_idle(m);
		return;
	}
	if ((err = ack_of(&ack, err, data, len)) != TN_OK) {
		/* Keep the membership we have and keep trying: the registry may be restarting. */
		call_failed(m, "heartbeat", err);
		return;
	}
	call_succeeded(m);
	ack_closing(m, &ack);
	if (ack.code == TN_ENOENT) {
		/* Evicted, or the registry restarted: announce everything again at once. */
		tn_counter_inc(m->mt.lost);
		tn_warn("membership", "the registry no longer knows this server: registering again "
				      "reason=\"%.*s\"", (int)ack.reason.len, ack.reason.p);
		m->registered = false;
		if (!m->stopping)
			send_register(m);
		return;
	}
	if (ack.code != TN_OK) {
		call_failed(m, "heartbeat", ack.code);
		return;
	}
	ack_note(m, &ack);
}

static void
send_heartbeat(struct tn_membership *m)
{
	struct tn_server_load l = load_now(m);
	struct tn_reg_heartbeat h = {tn_str_of(m->self.id), m->self.incarnation, m->view->version,
		m->view->registry_inc, reg_load(&l), m->self.draining};
	struct tn_buf b;
	tn_buf_init(&b);
	tn_reg_heartbeat_encode(&b, &h);
	m->call_busy = true;
	call(m, &b, heartbeat_done);
}

static void
tick(void *arg)
{
	struct tn_membership *m = arg;
	if (m->stopping)
		return;
	sample_request(m);
	if (!holding(m) && !m->call_busy) {
		if (m->registered)
			send_heartbeat(m);
		else
			send_register(m);
	}
	/* After the heartbeat, whose answer may have asked to hold. */
	if (m->registered && !m->refused && (m->snap_wanted || m->refresh_wanted || m->follow_load))
		snapshot_fetch(m);
	tn_loop_timer_add(m->loop, m->interval_ms, tick, m);
}

/* ---- draining and refreshing, asked for by other threads ---- */

static void beat_soon(struct tn_membership *m);

static void
beat_timer(void *arg)
{
	beat_soon(arg);
}

/* Sends a heartbeat (or the registration) now rather than at the next tick. One request
 * at a time goes on the REQ socket: with one on the wire, this one follows it. While the
 * registry asks for silence, the tick sends it when the hold ends. */
static void
beat_soon(struct tn_membership *m)
{
	if (m->stopping || holding(m))
		return;
	if (m->call_busy || m->snap_busy) {
		tn_loop_timer_add(m->loop, 5, beat_timer, m);
		return;
	}
	if (m->registered)
		send_heartbeat(m);
	else
		send_register(m);
}

static void
draining_task(void *arg, bool cancelled)
{
	struct tn_membership *m = arg;
	if (cancelled || m->self.draining)
		return;
	/* Every heartbeat and registration from now on says so. */
	m->self.draining = true;
	tn_info("membership", "draining: telling the registry id=%s", m->self.id);
	beat_soon(m);
}

static void
refresh_task(void *arg, bool cancelled)
{
	struct tn_membership *m = arg;
	if (cancelled)
		return;
	/* Calls from now on post a task of their own: they may know of a newer epoch than
	 * the read below gets. */
	atomic_store(&m->refresh_posted, false);
	if (m->stopping || m->refused)
		return;
	m->refresh_wanted = true;
	/* Unregistered, or asked to hold: the tick reads it once it can. */
	snapshot_fetch(m);
}

static void
left(struct tn_membership *m)
{
	pthread_mutex_lock(&m->mu);
	m->left = true;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

static void
leave_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct tn_membership *m = arg;
	struct tn_reg_ack ack;
	if (ack_of(&ack, err, data, len) == TN_OK && ack.code == TN_OK)
		tn_info("membership", "left the registry");
	else
		tn_warn("membership", "leaving the registry failed err=\"%s\"",
			tn_strerror(err ? err : ack.code));
	left(m);
}

/* Sends the leave once no other call is on the wire: nothing may still be arriving on the
 * connection when it is closed (nng 1.5 can hang closing a socket while a message
 * arrives on it). */
static void
leave_when_idle(struct tn_membership *m)
{
	if (m->leave_sent || m->call_busy || m->snap_busy)
		return;
	m->leave_sent = true;
	/* With no connection the request would only wait for its deadline; a registry that
	 * is closing needs no leave, and asked for silence. */
	if (!m->registered || atomic_load(&m->req_pipes) == 0 || holding(m)) {
		left(m);
		return;
	}
	struct tn_reg_leave l = {tn_str_of(m->self.id), m->self.incarnation};
	struct tn_buf b;
	tn_buf_init(&b);
	tn_reg_leave_encode(&b, &l);
	call(m, &b, leave_done);
}

static void
leave_task(void *arg, bool cancelled)
{
	struct tn_membership *m = arg;
	if (cancelled)
		return;
	m->stopping = true;
	/* Stop listening first, for the same reason: the registry announces leaves (ours and
	 * those of servers stopping with us) on the notice socket. */
	notice_close(m);
	leave_when_idle(m);
}

static void
start_task(void *arg, bool cancelled)
{
	if (!cancelled)
		tick(arg);
}

/* ---- life cycle ---- */

static void *
thread_main(void *arg)
{
	tn_loop_run(arg);
	return NULL;
}

/* What this server registers, from its configuration. */
static void
self_init(struct tn_membership *m, const struct tn_membership_opts *o)
{
	const struct tn_config *cfg = o->cfg;
	bool frontend = cfg->type == TN_SERVER_GATE || cfg->type == TN_SERVER_CONNECTOR;
	struct tn_server_info s = {
		.id = cfg->id,
		.type = cfg->type,
		.host = cfg->advertise_host,
		.port = cfg->type == TN_SERVER_GATE ? 0 : cfg->port,
		.client_host = frontend ? cfg->public_host : "",
		.client_port = frontend ? o->client_port : 0,
		.admin_port = cfg->admin_port,
		.bind_host = cfg->host,
		.client_bind_host = frontend ? cfg->client_host : "",
		.admin_host = cfg->admin_host,
		.pid = (int)getpid(),
		.version = TN_VERSION,
		.incarnation = (uint64_t)tn_wall_ms() * 1000 + (uint64_t)(tn_now_us() % 1000),
	};
	tn_server_info_copy(&m->self, &s);
}

/* The registry's URL and host from cfg->registry (host:port, an IPv6 host in brackets). */
static int
registry_address(struct tn_membership *m, const struct tn_membership_opts *o)
{
	const char *r = o->cfg->registry;
	const char *colon = strrchr(r, ':');
	if (colon == NULL || colon == r || (size_t)(colon - r) >= sizeof(m->registry_host))
		return TN_EINVAL;
	snprintf(m->registry_host, sizeof(m->registry_host), "%.*s", (int)(colon - r), r);
	if (o->registry_url)
		snprintf(m->registry_url, sizeof(m->registry_url), "%s", o->registry_url);
	else if (tn_nng_url(m->registry_url, sizeof(m->registry_url), m->registry_host,
			 atoi(colon + 1)) != TN_OK)
		return TN_EINVAL;
	if (o->notice_url)
		snprintf(m->notice_url_fixed, sizeof(m->notice_url_fixed), "%s", o->notice_url);
	return TN_OK;
}

/* The registry socket: REQ without automatic resends (a late answer is dropped, and
 * the next tick asks again), dialing in the background. */
static int
req_open(struct tn_membership *m)
{
	int rv = tn_err_from_nng(nng_req0_open(&m->req));
	if (rv != TN_OK)
		return rv;
	nng_socket_set_ms(m->req, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_pipe_notify(m->req, NNG_PIPE_EV_ADD_POST, pipe_count, &m->req_pipes);
	nng_pipe_notify(m->req, NNG_PIPE_EV_REM_POST, pipe_count, &m->req_pipes);
	rv = tn_nng_dial(m->req, m->registry_url, SNAPSHOT_MAX_MSG);
	if (rv != TN_OK)
		nng_close(m->req);
	return rv;
}

int
tn_membership_start(struct tn_membership **out, const struct tn_membership_opts *o)
{
	struct tn_membership *m = tn_calloc(1, sizeof(*m));
	m->cfg = o->cfg;
	if (registry_address(m, o) != TN_OK) {
		free(m);
		return TN_EINVAL;
	}
	m->interval_ms = o->cfg->heartbeat_interval_ms;
	/* Long enough to ride out a slow moment, short enough that a lost call is retried
	 * well before the registry would evict this server. */
	int cap = m->interval_ms * 2 > 500 ? m->interval_ms * 2 : 500;
	m->call_ms = o->cfg->rpc_timeout_ms < cap ? o->cfg->rpc_timeout_ms : cap;
	m->follow_load = o->follow_load;
	m->owner = o->owner;
	m->on_topology = o->on_topology;
	m->load_fn = o->load;
	m->arg = o->arg;
	m->admin = o->admin;
	m->started_ms = tn_now_ms();
	atomic_init(&m->refs, 1);
	atomic_init(&m->draining, false);
	atomic_init(&m->refresh_posted, false);
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	snprintf(m->not_ready, sizeof(m->not_ready), "not registered yet");
	self_init(m, o);
	m->view = o->seed ? tn_topology_copy(o->seed) : tn_topology_new_empty();
	metrics_register(&m->mt);
	metrics_view(m);
	int rv = req_open(m);
	if (rv != TN_OK) {
		membership_unref(m);
		return rv;
	}
	m->loop = tn_loop_new();
	tn_info("membership", "registering registry=%s incarnation=%llu heartbeat_ms=%d",
		m->registry_url, (unsigned long long)m->self.incarnation, m->interval_ms);
	tn_loop_post(m->loop, start_task, m);
	pthread_create(&m->thr, NULL, thread_main, m->loop);
	*out = m;
	return TN_OK;
}

bool
tn_membership_wait_registered(struct tn_membership *m, int timeout_ms)
{
	struct timespec ts;
	tn_timespec_after(&ts, CLOCK_REALTIME, timeout_ms);
	pthread_mutex_lock(&m->mu);
	while (!m->first_outcome && pthread_cond_timedwait(&m->cv, &m->mu, &ts) == 0)
		;
	bool registered = m->ready_registered;
	pthread_mutex_unlock(&m->mu);
	return registered;
}

void
tn_membership_serving(struct tn_membership *m)
{
	pthread_mutex_lock(&m->mu);
	m->serving = true;
	readiness_apply(m);
	pthread_mutex_unlock(&m->mu);
}

void
tn_membership_set_draining(struct tn_membership *m)
{
	if (!atomic_exchange(&m->draining, true))
		tn_loop_post(m->loop, draining_task, m);
}

void
tn_membership_refresh(struct tn_membership *m)
{
	if (!atomic_exchange(&m->refresh_posted, true))
		tn_loop_post(m->loop, refresh_task, m);
}

uint64_t
tn_membership_incarnation(const struct tn_membership *m)
{
	return m->self.incarnation;
}

void
tn_membership_stop(struct tn_membership *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	m->leaving = true;
	readiness_apply(m);
	pthread_mutex_unlock(&m->mu);
	tn_loop_post(m->loop, leave_task, m);
	/* Bounded: a registry that does not answer delays shutdown by a call in flight and
	 * the leave, each at most one call deadline. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2 * m->call_ms / 1000 + 1;
	pthread_mutex_lock(&m->mu);
	while (!m->left && pthread_cond_timedwait(&m->cv, &m->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&m->mu);
	tn_loop_stop(m->loop);
	pthread_join(m->thr, NULL);
	/* From here on tasks posted to the loop run cancelled at once: notices still coming
	 * from the SUB callback are dropped. */
	tn_loop_close(m->loop);
	notice_close(m);
	wait_connected(&m->req_pipes);
	nng_close(m->req);
	tn_loop_free(m->loop);
	tn_gauge_set(m->mt.registered, 0);
	membership_unref(m);
}
