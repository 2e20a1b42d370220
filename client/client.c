#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "map.h"
#include "session.h"
#include "tn_client.h"

#define LOG_MOD    "client"
#define GATE_ROUTE "gate.gateHandler.queryEntry"

enum cstate {
	C_IDLE = 0,      /* created, never connected */
	C_GATE = 1,      /* asking the gate */
	C_CONNECTOR = 2, /* opening the connector session */
	C_CONNECTED = 3,
	C_WAIT = 4,    /* backoff before the next attempt */
	C_CLOSING = 5, /* tn_cli_client_close: sessions finishing */
	C_CLOSED = 6,
};

/* A request waiting for its response. The gate query is one too, answered internally. */
struct req {
	uint32_t id; /* the key in c->pending */
	struct tn_cli_client *c;
	struct tn_cli_sess *sess; /* the session it went out on */
	struct tn_cli_timer deadline;
	tn_cli_response_fn cb;
	void *arg;
	bool gate_query;
};

struct handler {
	char *route; /* the key in c->handlers */
	tn_cli_push_fn fn;
	void *arg;
};

struct tn_cli_client {
	struct tn_cli_loop *loop;
	struct tn_cli_opts opts; /* the strings point at the owned copies below */
	char *host;
	char *uid;
	char *client_type;
	char *client_version;
	char *proto_version; /* from the last handshake, sent in the next */

	enum cstate state;
	struct tn_cli_sess *gate;     /* the gate session of the current attempt */
	struct tn_cli_sess *gate_old; /* a gate session finishing its close */
	struct tn_cli_sess *conn;     /* the connector session */
	char *conn_host;
	int conn_port;
	unsigned attempts; /* failed attempts in a row */
	bool ever_connected;
	struct tn_cli_timer retry;
	struct tn_cli_timer report; /* CLOSED after a close with no session to wait for */
	struct tn_cli_timer later;  /* reports an attempt that failed before it started */
	int later_err;
	char later_detail[160];

	uint32_t last_id;
	struct tn_map pending;  /* request id -> struct req */
	struct tn_map handlers; /* route -> struct handler */
	struct handler fallback;
	struct tn_cli_stats stats;

	unsigned busy;   /* nesting of our callbacks into the application */
	bool doomed;     /* freed while busy */
	bool destroying; /* inside destroy: ignore re-entrant frees */
};

static const struct tn_cli_sess_cbs gate_cbs;
static const struct tn_cli_sess_cbs conn_cbs;
static void start_attempt(struct tn_cli_client *c);

/* ---- small helpers ---- */

void
tn_cli_opts_init(struct tn_cli_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->port = 3014;
	opts->connect_timeout_ms = 10000;
	opts->request_timeout_ms = 10000;
	opts->reconnect = true;
	opts->backoff_initial_ms = 500;
	opts->backoff_max_ms = 30000;
	opts->max_attempts = 10;
	opts->json_depth = 64;
	opts->max_package = TN_PML_PKG_MAX_BODY;
	opts->client_type = "js-websocket";
	opts->client_version = "0.0.1";
}

const char *
tn_cli_event_name(enum tn_cli_event_type type)
{
	switch (type) {
	case TN_CLI_EV_CONNECTED: return "connected";
	case TN_CLI_EV_CONNECT_FAILED: return "connect_failed";
	case TN_CLI_EV_KICKED: return "kicked";
	case TN_CLI_EV_DISCONNECTED: return "disconnected";
	case TN_CLI_EV_CLOSED: return "closed";
	}
	return "unknown";
}

int64_t
tn_cli_backoff_delay(const struct tn_cli_opts *opts, unsigned attempt, uint64_t random)
{
	int64_t d = opts->backoff_initial_ms;
	for (unsigned i = 1; i < attempt && d < opts->backoff_max_ms; i++)
		d *= 2;
	if (d > opts->backoff_max_ms)
		d = opts->backoff_max_ms;
	int64_t half = d / 2;
	return d - half + (int64_t)(random % (uint64_t)(half + 1));
}

bool
tn_cli_client_is_connected(const struct tn_cli_client *c)
{
	return c->state == C_CONNECTED;
}

size_t
tn_cli_client_pending(const struct tn_cli_client *c)
{
	return c->pending.count;
}

const char *
tn_cli_client_host(const struct tn_cli_client *c)
{
	return c->state == C_CONNECTED && c->conn_host ? c->conn_host : "";
}

int
tn_cli_client_port(const struct tn_cli_client *c)
{
	return c->state == C_CONNECTED ? c->conn_port : 0;
}

int64_t
tn_cli_client_heartbeat_ms(const struct tn_cli_client *c)
{
	return c->state == C_CONNECTED ? tn_cli_sess_heartbeat_ms(c->conn) : 0;
}

static void
add_sess_stats(struct tn_cli_stats *st, const struct tn_cli_sess *s)
{
	struct tn_cli_sess_stats ss;
	tn_cli_sess_stats(&ss, s);
	st->heartbeats_sent += ss.heartbeats_sent;
	st->heartbeats_received += ss.heartbeats_received;
	st->bad_pushes += ss.bad_messages;
}

void
tn_cli_client_stats(struct tn_cli_stats *out, const struct tn_cli_client *c)
{
	*out = c->stats;
	if (c->conn)
		add_sess_stats(out, c->conn);
}

static void
enter(struct tn_cli_client *c)
{
	c->busy++;
}

static void destroy(struct tn_cli_client *c);

static void
leave(struct tn_cli_client *c)
{
	if (--c->busy == 0 && c->doomed)
		destroy(c);
}

static void
emit(struct tn_cli_client *c, const struct tn_cli_event *ev)
{
	if (!c->doomed && c->opts.on_event)
		c->opts.on_event(c->opts.event_arg, c, ev);
}

static void
emit_closed(struct tn_cli_client *c, int err, const char *detail)
{
	struct tn_cli_event ev = {
	        .type = TN_CLI_EV_CLOSED, .err = err, .detail = detail, .retry_in_ms = -1};
	emit(c, &ev);
}

/* ---- pending requests ---- */

static void handle_gate_answer(struct tn_cli_client *c, int err, json_object *body);

/* Removes r from the table and runs its callback (or the gate logic), then frees it. */
static void
complete(struct req *r, int err, json_object *body)
{
	struct tn_cli_client *c = r->c;
	tn_map_del(&c->pending, &r->id, sizeof(r->id));
	tn_cli_timer_stop(c->loop, &r->deadline);
	if (r->gate_query) {
		handle_gate_answer(c, err, body);
		free(r);
		return;
	}
	switch (err) {
	case TN_OK:
	case TN_EPROTO: c->stats.responses++; break;
	case TN_ETIMEDOUT: c->stats.timeouts++; break;
	default: c->stats.failed++; break;
	}
	if (r->cb)
		r->cb(r->arg, c, err, body);
	free(r);
}

/* Fails every request sent on s (every request when s is NULL) with TN_ECLOSED. */
static void
fail_pending(struct tn_cli_client *c, const struct tn_cli_sess *s)
{
	size_t n = 0;
	struct req **list = tn_malloc((c->pending.count + 1) * sizeof(*list));
	struct tn_map_entry *e;
	for (size_t i = 0; (e = tn_map_next(&c->pending, &i));) {
		struct req *r = e->val;
		if (s == NULL || r->sess == s)
			list[n++] = r;
	}
	/* Callbacks may send new requests; those are not in the list. */
	for (size_t i = 0; i < n; i++)
		complete(list[i], TN_ECLOSED, NULL);
	free(list);
}

static void
on_deadline(void *arg)
{
	struct req *r = arg;
	struct tn_cli_client *c = r->c;
	enter(c);
	complete(r, TN_ETIMEDOUT, NULL);
	leave(c);
}

static uint32_t
next_id(struct tn_cli_client *c)
{
	do {
		if (++c->last_id == 0)
			c->last_id = 1;
	} while (tn_map_get(&c->pending, &c->last_id, sizeof(c->last_id)));
	return c->last_id;
}

/* Sends a request on s and records it. */
static int
send_request(struct tn_cli_client *c, struct tn_cli_sess *s, const char *route, const char *body,
        size_t len, int64_t timeout_ms, struct req *r)
{
	size_t rlen = strlen(route);
	uint32_t id = next_id(c);
	int rv = tn_cli_sess_request(s, id, route, rlen, body, len);
	if (rv != TN_OK) {
		free(r);
		return rv;
	}
	r->id = id;
	r->c = c;
	r->sess = s;
	tn_cli_timer_init(&r->deadline, on_deadline, r);
	if (timeout_ms > 0)
		tn_cli_timer_start(c->loop, &r->deadline, timeout_ms);
	tn_map_put(&c->pending, &r->id, sizeof(r->id), r);
	c->stats.requests += !r->gate_query;
	return TN_OK;
}

int
tn_cli_request(struct tn_cli_client *c, const char *route, const char *body, size_t len,
        int64_t timeout_ms, tn_cli_response_fn cb, void *arg)
{
	if (c->state != C_CONNECTED || c->doomed)
		return TN_ECLOSED;
	if (route == NULL || *route == '\0')
		return TN_EINVAL;
	if (body == NULL) {
		body = "{}";
		len = 2;
	}
	struct req *r = tn_calloc(1, sizeof(*r));
	r->cb = cb;
	r->arg = arg;
	return send_request(c, c->conn, route, body, len,
	        timeout_ms == 0 ? c->opts.request_timeout_ms : timeout_ms, r);
}

int
tn_cli_notify(struct tn_cli_client *c, const char *route, const char *body, size_t len)
{
	if (c->state != C_CONNECTED || c->doomed)
		return TN_ECLOSED;
	if (route == NULL || *route == '\0')
		return TN_EINVAL;
	if (body == NULL) {
		body = "{}";
		len = 2;
	}
	int rv = tn_cli_sess_notify(c->conn, route, strlen(route), body, len);
	if (rv == TN_OK)
		c->stats.notifies++;
	return rv;
}

/* ---- session callbacks shared by gate and connector ---- */

static void
sess_response(void *arg, struct tn_cli_sess *s, uint32_t id, const uint8_t *body, size_t len)
{
	struct tn_cli_client *c = arg;
	struct req *r = tn_map_get(&c->pending, &id, sizeof(id));
	if (r == NULL || r->sess != s) {
		/* Its deadline passed (or the server invented the id): nobody is waiting. */
		c->stats.late_responses++;
		return;
	}
	json_object *obj = NULL;
	int rv = tn_json_parse(&obj, body, len, c->opts.json_depth);
	enter(c);
	complete(r, rv == TN_OK ? TN_OK : TN_EPROTO, obj);
	json_object_put(obj);
	leave(c);
}

static void
sess_push(void *arg, struct tn_cli_sess *s, const char *route, size_t route_len,
        const uint8_t *body, size_t len)
{
	struct tn_cli_client *c = arg;
	if (s != c->conn || c->state != C_CONNECTED)
		return;
	struct handler *h = tn_map_get(&c->handlers, route, route_len);
	if (h == NULL)
		h = &c->fallback;
	if (h->fn == NULL)
		return;
	json_object *obj;
	if (tn_json_parse(&obj, body, len, c->opts.json_depth) != TN_OK) {
		tn_debug(LOG_MOD, "push body is not JSON route=%s len=%zu", route, len);
		c->stats.bad_pushes++;
		return;
	}
	c->stats.pushes++;
	enter(c);
	h->fn(h->arg, c, route, obj);
	json_object_put(obj);
	leave(c);
}

static void
sess_kick(void *arg, struct tn_cli_sess *s, const char *reason)
{
	struct tn_cli_client *c = arg;
	if (s != c->conn)
		return;
	c->stats.kicks++;
	struct tn_cli_event ev = {.type = TN_CLI_EV_KICKED, .detail = reason, .retry_in_ms = -1};
	enter(c);
	emit(c, &ev);
	leave(c);
}

static void
remember_proto_version(struct tn_cli_client *c, const struct tn_pml_hs_reply *hs)
{
	if (hs->proto_version == NULL)
		return;
	free(c->proto_version);
	c->proto_version = tn_strdup(hs->proto_version);
}

static struct tn_cli_sess *
open_session(struct tn_cli_client *c, const char *host, int port, const struct tn_cli_sess_cbs *cbs,
        int *err)
{
	struct tn_cli_sess_opts so;
	tn_cli_sess_opts_init(&so);
	so.open_timeout_ms = c->opts.connect_timeout_ms;
	so.max_package = c->opts.max_package;
	so.client_type = c->client_type;
	so.client_version = c->client_version;
	so.proto_version = c->proto_version;
	struct tn_cli_sess *s = NULL;
	*err = tn_cli_sess_new(&s, c->loop, host, port, &so, cbs, c);
	return s;
}

/* ---- attempts, failures, retries ---- */

static bool
may_retry(const struct tn_cli_client *c)
{
	return c->opts.reconnect &&
	       (c->opts.max_attempts == 0 || c->attempts < c->opts.max_attempts);
}

static void
drop_sessions(struct tn_cli_client *c)
{
	if (c->gate) {
		fail_pending(c, c->gate);
		tn_cli_sess_free(c->gate);
		c->gate = NULL;
	}
	if (c->conn) {
		fail_pending(c, c->conn);
		add_sess_stats(&c->stats, c->conn);
		tn_cli_sess_free(c->conn);
		c->conn = NULL;
	}
}

/* Schedules the next attempt or gives up; type is CONNECT_FAILED or DISCONNECTED. */
static void
after_failure(struct tn_cli_client *c, enum tn_cli_event_type type, int err, const char *detail)
{
	struct tn_cli_event ev = {.type = type,
	        .err = err,
	        .detail = detail,
	        .retry_in_ms = -1,
	        .attempt = c->attempts};
	if (may_retry(c)) {
		ev.retry_in_ms = tn_cli_backoff_delay(
		        &c->opts, c->attempts + 1, tn_cli_loop_random(c->loop));
		c->state = C_WAIT;
		tn_cli_timer_start(c->loop, &c->retry, ev.retry_in_ms);
		emit(c, &ev);
		return;
	}
	c->state = C_CLOSED;
	emit(c, &ev);
	/* The callback may have started a new connection. */
	if (c->state == C_CLOSED)
		emit_closed(c, err, detail);
}

static void
attempt_failed(struct tn_cli_client *c, int err, const char *detail)
{
	drop_sessions(c);
	c->attempts++;
	c->stats.failed_attempts++;
	tn_debug(LOG_MOD, "connect attempt failed uid=%s attempt=%u err=%s detail=\"%s\"",
	        c->uid ? c->uid : "", c->attempts, tn_strerror(err), detail);
	after_failure(c, TN_CLI_EV_CONNECT_FAILED, err, detail);
}

static void
on_retry(void *arg)
{
	struct tn_cli_client *c = arg;
	if (c->state != C_WAIT)
		return;
	enter(c);
	start_attempt(c);
	leave(c);
}

/* An attempt that could not even start (an invalid address): reported from a timer so
 * that no event is sent from inside tn_cli_client_connect or a session callback. */
static void
fail_later(struct tn_cli_client *c, int err, const char *detail)
{
	c->later_err = err;
	snprintf(c->later_detail, sizeof(c->later_detail), "%s", detail);
	tn_cli_timer_start(c->loop, &c->later, 0);
}

static void
on_later(void *arg)
{
	struct tn_cli_client *c = arg;
	if ((c->state != C_GATE && c->state != C_CONNECTOR) || c->gate || c->conn)
		return;
	enter(c);
	attempt_failed(c, c->later_err, c->later_detail);
	leave(c);
}

static void
finish_close(struct tn_cli_client *c)
{
	c->state = C_CLOSED;
	emit_closed(c, TN_OK, "closed");
}

static void
on_report(void *arg)
{
	struct tn_cli_client *c = arg;
	enter(c);
	if (c->state == C_CLOSING && c->gate == NULL && c->conn == NULL)
		finish_close(c);
	leave(c);
}

/* ---- the gate ---- */

static void
open_connector(struct tn_cli_client *c, const char *host, int port)
{
	free(c->conn_host);
	c->conn_host = tn_strdup(host);
	c->conn_port = port;
	int err;
	c->conn = open_session(c, host, port, &conn_cbs, &err);
	c->state = C_CONNECTOR;
	if (c->conn == NULL) {
		char detail[160];
		snprintf(detail, sizeof(detail), "invalid connector address %.100s:%d", host, port);
		fail_later(c, err, detail);
	}
}

/* Explains a gate answer other than success, e.g. {"code":500,"message":"..."}. */
static void
gate_refused(struct tn_cli_client *c, json_object *body)
{
	int64_t code = 0;
	char detail[200];
	const char *msg = tn_json_get_str(body, "message", NULL);
	if (msg == NULL)
		msg = tn_json_get_str(body, "error", NULL);
	if (!tn_json_get_int(body, "code", &code))
		snprintf(detail, sizeof(detail), "the gate's answer has no usable host and port");
	else
		snprintf(detail, sizeof(detail), "the gate answered code %lld%s%.120s",
		        (long long)code, msg ? ": " : "", msg ? msg : "");
	attempt_failed(c, TN_ENOENT, detail);
}

static void
handle_gate_answer(struct tn_cli_client *c, int err, json_object *body)
{
	if (c->state != C_GATE || err == TN_ECLOSED)
		return; /* the gate session's close reports the failure */
	if (err != TN_OK) {
		attempt_failed(c, err,
		        err == TN_ETIMEDOUT ? "the gate did not answer in time"
		                            : "the gate's answer is not JSON");
		return;
	}
	int64_t code = 0, port = 0;
	const char *host = tn_json_get_str(body, "host", NULL);
	if (!tn_json_get_int(body, "code", &code) || code != 200 || host == NULL ||
	        !tn_json_get_int(body, "port", &port) || port < 1 || port > 65535) {
		gate_refused(c, body);
		return;
	}
	/* The browser disconnects from the gate and opens the connector at once; the gate
	 * session finishes its close handshake on the side. */
	if (c->gate_old)
		tn_cli_sess_free(c->gate_old);
	c->gate_old = c->gate;
	c->gate = NULL;
	tn_cli_sess_close(c->gate_old);
	open_connector(c, *host ? host : c->host, (int)port);
}

static void
gate_ready(void *arg, struct tn_cli_sess *s, const struct tn_pml_hs_reply *hs)
{
	struct tn_cli_client *c = arg;
	if (s != c->gate)
		return;
	remember_proto_version(c, hs);
	struct tn_buf body;
	struct tn_jw w;
	tn_buf_init(&body);
	tn_jw_init(&w, &body);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "uid");
	tn_jw_cstr(&w, c->uid);
	tn_jw_obj_end(&w);
	struct req *r = tn_calloc(1, sizeof(*r));
	r->gate_query = true;
	int rv = send_request(
	        c, s, GATE_ROUTE, (const char *)body.data, body.len, c->opts.connect_timeout_ms, r);
	tn_buf_fini(&body);
	if (rv != TN_OK) {
		enter(c);
		attempt_failed(c, rv, "cannot send the query to the gate");
		leave(c);
	}
}

static void
gate_close(void *arg, struct tn_cli_sess *s, int err, const char *detail)
{
	struct tn_cli_client *c = arg;
	enter(c);
	if (s == c->gate_old) {
		tn_cli_sess_free(s);
		c->gate_old = NULL;
	} else if (s == c->gate) {
		fail_pending(c, s);
		tn_cli_sess_free(s);
		c->gate = NULL;
		if (c->state == C_GATE) {
			char text[240];
			snprintf(text, sizeof(text), "gate %.100s:%d: %s", c->host, c->opts.port,
			        detail);
			attempt_failed(c, err, text);
		} else if (c->state == C_CLOSING) {
			finish_close(c);
		}
	}
	leave(c);
}

static void
sess_ignore_kick(void *arg, struct tn_cli_sess *s, const char *reason)
{
}

static void
sess_ignore_push(void *arg, struct tn_cli_sess *s, const char *route, size_t route_len,
        const uint8_t *body, size_t len)
{
}

static const struct tn_cli_sess_cbs gate_cbs = {
        .on_ready = gate_ready,
        .on_response = sess_response,
        .on_push = sess_ignore_push,
        .on_kick = sess_ignore_kick,
        .on_close = gate_close,
};

/* ---- the connector ---- */

static void
conn_ready(void *arg, struct tn_cli_sess *s, const struct tn_pml_hs_reply *hs)
{
	struct tn_cli_client *c = arg;
	if (s != c->conn)
		return;
	remember_proto_version(c, hs);
	c->state = C_CONNECTED;
	c->attempts = 0;
	c->stats.connects++;
	struct tn_cli_event ev = {.type = TN_CLI_EV_CONNECTED,
	        .host = c->conn_host,
	        .port = c->conn_port,
	        .reconnected = c->ever_connected,
	        .retry_in_ms = -1};
	c->ever_connected = true;
	tn_debug(LOG_MOD, "connected uid=%s host=%s port=%d", c->uid ? c->uid : "", c->conn_host,
	        c->conn_port);
	enter(c);
	emit(c, &ev);
	leave(c);
}

static void
conn_close(void *arg, struct tn_cli_sess *s, int err, const char *detail)
{
	struct tn_cli_client *c = arg;
	if (s != c->conn)
		return;
	enter(c);
	enum cstate was = c->state;
	fail_pending(c, s);
	add_sess_stats(&c->stats, s);
	tn_cli_sess_free(s);
	c->conn = NULL;
	if (was == C_CLOSING) {
		finish_close(c);
	} else if (was == C_CONNECTOR) {
		char text[240];
		snprintf(text, sizeof(text), "connector %.100s:%d: %s", c->conn_host, c->conn_port,
		        detail);
		attempt_failed(c, err, text);
	} else if (was == C_CONNECTED) {
		tn_debug(LOG_MOD, "disconnected uid=%s err=%s detail=\"%s\"", c->uid ? c->uid : "",
		        tn_strerror(err), detail);
		after_failure(c, TN_CLI_EV_DISCONNECTED, err, detail);
	}
	leave(c);
}

static const struct tn_cli_sess_cbs conn_cbs = {
        .on_ready = conn_ready,
        .on_response = sess_response,
        .on_push = sess_push,
        .on_kick = sess_kick,
        .on_close = conn_close,
};

/* ---- life cycle ---- */

static void
start_attempt(struct tn_cli_client *c)
{
	if (c->opts.direct) {
		open_connector(c, c->host, c->opts.port);
		return;
	}
	int err;
	c->gate = open_session(c, c->host, c->opts.port, &gate_cbs, &err);
	c->state = C_GATE;
	if (c->gate == NULL)
		fail_later(c, err, "invalid gate address");
}

int
tn_cli_client_connect(struct tn_cli_client *c)
{
	if (c->state != C_IDLE && c->state != C_CLOSED)
		return TN_EBUSY;
	c->attempts = 0;
	start_attempt(c);
	return TN_OK;
}

void
tn_cli_client_close(struct tn_cli_client *c)
{
	switch (c->state) {
	case C_WAIT:
		tn_cli_timer_stop(c->loop, &c->retry);
		c->state = C_CLOSING;
		tn_cli_timer_start(c->loop, &c->report, 0);
		break;
	case C_GATE:
	case C_CONNECTOR:
	case C_CONNECTED:
		c->state = C_CLOSING;
		tn_cli_timer_stop(c->loop, &c->later);
		if (c->gate)
			tn_cli_sess_close(c->gate);
		else if (c->conn)
			tn_cli_sess_close(c->conn);
		else
			tn_cli_timer_start(c->loop, &c->report, 0);
		break;
	default: /* idle, closing or closed */ break;
	}
}

static void
free_handler(struct handler *h)
{
	free(h->route);
	free(h);
}

void
tn_cli_on(struct tn_cli_client *c, const char *route, tn_cli_push_fn fn, void *arg)
{
	if (route == NULL) {
		c->fallback.fn = fn;
		c->fallback.arg = arg;
		return;
	}
	struct handler *old = tn_map_del(&c->handlers, route, strlen(route));
	if (old)
		free_handler(old);
	if (fn == NULL)
		return;
	struct handler *h = tn_calloc(1, sizeof(*h));
	h->route = tn_strdup(route);
	h->fn = fn;
	h->arg = arg;
	tn_map_put(&c->handlers, h->route, strlen(h->route), h);
}

static bool
opts_valid(const struct tn_cli_opts *o)
{
	return o->host && *o->host && o->port >= 1 && o->port <= 65535 &&
	       (o->direct || (o->uid && *o->uid)) && o->backoff_initial_ms > 0 &&
	       o->backoff_max_ms >= o->backoff_initial_ms && o->json_depth >= 1 &&
	       o->json_depth <= 1000 && o->max_package > 0 && o->connect_timeout_ms >= 0;
}

int
tn_cli_client_new(
        struct tn_cli_client **out, struct tn_cli_loop *loop, const struct tn_cli_opts *opts)
{
	if (!opts_valid(opts))
		return TN_EINVAL;
	struct tn_cli_client *c = tn_calloc(1, sizeof(*c));
	c->loop = loop;
	c->opts = *opts;
	c->host = tn_strdup(opts->host);
	c->uid = opts->uid ? tn_strdup(opts->uid) : NULL;
	c->client_type = tn_strdup(opts->client_type ? opts->client_type : "js-websocket");
	c->client_version = tn_strdup(opts->client_version ? opts->client_version : "0.0.1");
	c->opts.host = c->host;
	c->opts.uid = c->uid;
	c->opts.client_type = c->client_type;
	c->opts.client_version = c->client_version;
	c->state = C_IDLE;
	tn_map_init(&c->pending);
	tn_map_init(&c->handlers);
	tn_cli_timer_init(&c->retry, on_retry, c);
	tn_cli_timer_init(&c->report, on_report, c);
	tn_cli_timer_init(&c->later, on_later, c);
	*out = c;
	return TN_OK;
}

static void
destroy(struct tn_cli_client *c)
{
	c->destroying = true;
	c->state = C_CLOSED;
	c->doomed = true; /* no events from here on */
	tn_cli_timer_stop(c->loop, &c->retry);
	tn_cli_timer_stop(c->loop, &c->report);
	tn_cli_timer_stop(c->loop, &c->later);
	drop_sessions(c);
	tn_cli_sess_free(c->gate_old);
	c->gate_old = NULL;
	fail_pending(c, NULL);
	struct tn_map_entry *e;
	for (size_t i = 0; (e = tn_map_next(&c->handlers, &i));)
		free_handler(e->val);
	tn_map_fini(&c->handlers);
	tn_map_fini(&c->pending);
	free(c->host);
	free(c->uid);
	free(c->client_type);
	free(c->client_version);
	free(c->proto_version);
	free(c->conn_host);
	free(c);
}

void
tn_cli_client_free(struct tn_cli_client *c)
{
	if (c == NULL || c->destroying)
		return;
	if (c->busy) {
		c->doomed = true;
		return;
	}
	destroy(c);
}
