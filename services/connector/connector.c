#include "connector.h"

#include "connector_internal.h"

#include <nng/nng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "app_routes.h"
#include "chat.h"
#include "clock.h"
#include "edge.h"
#include "filter.h"
#include "hook.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "map.h"
#include "metrics.h"
#include "moves.h"
#include "push.h"
#include "reply.h"
#include "room_order.h"
#include "rpc.h"

/* ---- helpers ---- */

static void
respond_error(struct tn_edge_sess *s, uint32_t id, int code, const char *message)
{
	if (id == 0)
		return; /* never answer a notify */
	struct tn_buf b;
	struct tn_jw w;
	tn_buf_init(&b);
	tn_jw_init(&w, &b);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "code");
	tn_jw_int(&w, code);
	tn_jw_key(&w, "error");
	tn_jw_bool(&w, true);
	tn_jw_key(&w, "message");
	tn_jw_cstr(&w, message);
	tn_jw_obj_end(&w);
	tn_edge_respond(s, id, (const char *)b.data, b.len);
	tn_buf_fini(&b);
}

/* The client-facing code for an RPC failure (documented in docs/operations.md). */
static int
code_of(int err, const char **message)
{
	switch (err) {
	case TN_ETIMEDOUT:
		*message = "the chat server did not answer in time";
		return 504;
	case TN_EBUSY:
		*message = "too many requests in flight to the chat server";
		return 503;
	case TN_ECLOSED:
	case TN_EUNREACH:
		*message = "the chat server is unreachable";
		return 503;
	case TN_EMOVED:
	case TN_ERECOVERING:
		*message = "the room is moving to another chat server: try again";
		return 503;
	default:
		*message = tn_strerror(err);
		return 500;
	}
}

int
conn_chat_for_room(struct tn_connector *c, const char *rid, size_t len)
{
	const struct tn_server_info *owner =
		tn_topology_room_owner(c->topo, rid, len, (enum tn_room_hash)c->cfg->room_hash);
	for (int i = 0; owner && i < c->n_chats; i++)
		if (c->chats[i].info == owner)
			return i;
	return -1;
}

static void call_done(void *arg, int err, const uint8_t *data, size_t len);
static void reap_later(struct tn_connector *c);
static void tick_start(void *arg, bool cancelled);

static void
call_free(struct call *k)
{
	free(k->name);
	free(k->rid);
	free(k->target);
	free(k->content);
	free(k);
}

void
conn_want_refresh(struct tn_connector *c)
{
	tn_hook_call(&c->refresh);
}

static enum tn_kind
kind_of(enum call_kind k)
{
	return k == CALL_ENTER ? TN_KIND_CHAT_ENTER
		: k == CALL_SEND ? TN_KIND_CHAT_SEND
		: TN_KIND_CHAT_LEAVE;
}

static void call_send(struct tn_connector *c, struct call *k);
static void call_complete(struct tn_connector *c, struct call *k, int err,
	const struct tn_reply *rep);

static void
waiting_unlink(struct tn_connector *c, struct call *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		c->waiting = k->next;
	if (k->next)
		k->next->prev = k->prev;
	k->prev = k->next = NULL;
	c->n_waiting--;
}

static void
call_retry_fire(void *arg)
{
	struct call *k = arg;
	waiting_unlink(k->c, k);
	call_send(k->c, k);
}

/* The call did not go through (the room is moving, or its server is not connected): it
 * is tried again shortly, at the room's owner as the membership then says, while its
 * deadline allows; otherwise it is answered with why. */
static void
call_retry_later(struct tn_connector *c, struct call *k, int why)
{
	k->last_err = why;
	int shift = k->tries < 4 ? k->tries : 4;
	int64_t delay = 10 << shift;
	k->tries++;
	if (tn_now_ms() + delay >= k->deadline_ms) {
		struct tn_reply none = {0};
		call_complete(c, k, why, &none);
		return;
	}
	k->prev = NULL;
	k->next = c->waiting;
	if (c->waiting)
		c->waiting->prev = k;
	c->waiting = k;
	c->n_waiting++;
	tn_edge_timer(c->edge, delay, call_retry_fire, k);
}

/* Sends the call to the owner of its room with the time it has left. Takes k. */
static void
call_send(struct tn_connector *c, struct call *k)
{
	int chat = conn_chat_for_room(c, k->rid, strlen(k->rid));
	if (chat < 0 || !tn_rpc_client_connected(c->chats[chat].rpc)) {
		tn_counter_inc(c->retries_unreachable);
		call_retry_later(c, k, TN_EUNREACH);
		return;
	}
	k->chat = chat;
	struct tn_chat_req req = {.epoch = c->topo->version, .connector_id = tn_str_of(c->cfg->id),
		.sid = k->sid, .rid = tn_str_of(k->rid), .name = tn_str_of(k->name),
		.conn_inc = c->inc};
	if (k->kind == CALL_SEND) {
		req.target = (struct tn_str){k->target, k->target_len};
		req.content = (struct tn_str){k->content, k->content_len};
	}
	tn_buf_reset(&c->scratch);
	tn_chat_req_encode(&c->scratch, kind_of(k->kind), &req);
	k->t0_us = tn_now_us();
	int64_t left = k->deadline_ms - tn_now_ms();
	tn_rpc_call(c->chats[chat].rpc, c->scratch.data, c->scratch.len, (int)(left > 1 ? left : 1),
		call_done, k);
}

static struct call *
call_new(struct tn_connector *c, enum call_kind kind, uint64_t sid, uint32_t id,
	const char *name, size_t name_len, const char *rid, size_t rid_len)
{
	struct call *k = tn_calloc(1, sizeof(*k));
	k->c = c;
	k->kind = kind;
	k->sid = sid;
	k->req_id = id;
	k->name = tn_strndup(name, name_len);
	k->rid = tn_strndup(rid, rid_len);
	k->deadline_ms = tn_now_ms() + c->cfg->rpc_timeout_ms;
	return k;
}

static void
send_leave(struct tn_connector *c, uint64_t sid, const char *name, const char *rid)
{
	if (conn_chat_for_room(c, rid, strlen(rid)) < 0)
		return;
	struct call *k = call_new(c, CALL_LEAVE, sid, 0, name, strlen(name), rid, strlen(rid));
	/* Nobody waits for this answer, and a room being rebuilt after a crash answers
	 * TN_ERECOVERING for up to one eviction period: a LEAVE that gave up sooner would
	 * leave a ghost member holding the name. A drain still ends at its own deadline. */
	int64_t hold = 2 * (int64_t)c->cfg->evict_after_ms;
	if (hold > c->cfg->rpc_timeout_ms)
		k->deadline_ms = tn_now_ms() + hold;
	call_send(c, k);
}

/* ---- enter ---- */

/* Answers a request with an error at once and runs the after-filters. */
static void
refuse(struct tn_connector *c, struct csess *cs, const struct tn_filter_ctx *fc, int code,
	const char *message)
{
	respond_error(cs->s, fc->id, code, message);
	tn_filters_after(&c->filters, fc, code);
}

static void
on_enter(struct tn_connector *c, struct csess *cs, const struct tn_filter_ctx *fc)
{
	uint32_t id = fc->id;
	json_object *body = fc->body;
	size_t nlen = 0, rlen = 0;
	const char *name = tn_json_get_str(body, "username", &nlen);
	const char *rid = tn_json_get_str(body, "rid", &rlen);
	if (name == NULL || rid == NULL || nlen == 0 || rlen == 0 || nlen > MAX_NAME ||
		rlen > MAX_RID) {
		refuse(c, cs, fc, 400, "username and rid must be non-empty strings "
					      "(at most 64 and 128 bytes)");
		return;
	}
	if (cs->name && (strlen(cs->name) != nlen || memcmp(cs->name, name, nlen) != 0)) {
		refuse(c, cs, fc, 409, "this session already has another name");
		return;
	}
	for (int i = 0; i < cs->n_rooms; i++) {
		if (strlen(cs->rooms[i]) == rlen && memcmp(cs->rooms[i], rid, rlen) == 0) {
			refuse(c, cs, fc, 500, "already in this room");
			return;
		}
	}
	if (cs->n_rooms + cs->entering >= MAX_ROOMS_PER_SESSION) {
		refuse(c, cs, fc, 429, "too many rooms for one session");
		return;
	}
	if (conn_chat_for_room(c, rid, rlen) < 0) {
		refuse(c, cs, fc, 503, "no chat server is available");
		return;
	}
	struct call *k = call_new(c, CALL_ENTER, cs->sid, id, name, nlen, rid, rlen);
	k->fc = *fc;
	k->fc.body = NULL;
	cs->entering++;
	call_send(c, k);
}

/* Returns the code the client got (0: success). */
static int
enter_done(struct tn_connector *c, struct call *k, struct csess *cs, int err,
	const struct tn_reply *rep)
{
	if (cs)
		cs->entering--;
	if (err == TN_OK && rep->code == TN_OK && cs == NULL) {
		/* The client left while the enter was in flight: undo it. */
		send_leave(c, k->sid, k->name, k->rid);
		return 0;
	}
	if (cs == NULL)
		return 0;
	if (err) {
		const char *msg;
		int code = code_of(err, &msg);
		respond_error(cs->s, k->req_id, code, msg);
		return code;
	}
	if (rep->code == TN_EEXIST) {
		/* chatofpomelo's client checks data.error and asks for another name. */
		static const char dup[] = "{\"code\":500,\"error\":true}";
		tn_edge_respond(cs->s, k->req_id, dup, sizeof(dup) - 1);
		return 500;
	}
	if (rep->code != TN_OK) {
		const char *msg;
		int code = code_of(rep->code, &msg);
		respond_error(cs->s, k->req_id, code, msg);
		return code;
	}
	if (cs->name == NULL)
		cs->name = tn_strdup(k->name);
	cs->rooms[cs->n_rooms++] = tn_strdup(k->rid);
	tn_room_orders_local(&c->orders, k->rid, strlen(k->rid), 1);
	struct tn_jw w;
	tn_buf_reset(&c->json);
	tn_jw_init(&w, &c->json);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "users");
	tn_jw_arr_begin(&w);
	struct tn_str_iter it = rep->users;
	struct tn_str u;
	while (tn_str_iter_next(&it, &u))
		tn_jw_str(&w, u.p, u.len);
	tn_jw_arr_end(&w);
	tn_jw_obj_end(&w);
	tn_edge_respond(cs->s, k->req_id, (const char *)c->json.data, c->json.len);
	return 0;
}

/* ---- send ---- */

static const char *
session_room(struct csess *cs, json_object *body)
{
	size_t len = 0;
	const char *rid = tn_json_get_str(body, "rid", &len);
	for (int i = 0; rid && i < cs->n_rooms; i++)
		if (strlen(cs->rooms[i]) == len && memcmp(cs->rooms[i], rid, len) == 0)
			return cs->rooms[i];
	/* pomelo uses the session's room whatever the body says. */
	return cs->n_rooms == 1 ? cs->rooms[0] : NULL;
}

static void
on_send(struct tn_connector *c, struct csess *cs, const struct tn_filter_ctx *fc)
{
	uint32_t id = fc->id;
	json_object *body = fc->body;
	const char *rid = session_room(cs, body);
	if (rid == NULL) {
		refuse(c, cs, fc, 403, cs->n_rooms ? "rid names none of this session's rooms"
							: "enter a room first");
		return;
	}
	size_t clen = 0, tlen = 1;
	const char *content = tn_json_get_str(body, "content", &clen);
	const char *target = tn_json_get_str(body, "target", &tlen);
	if (content == NULL) {
		refuse(c, cs, fc, 400, "content must be a string");
		return;
	}
	if (target == NULL || tlen == 0) {
		target = "*";
		tlen = 1;
	}
	if (conn_chat_for_room(c, rid, strlen(rid)) < 0) {
		refuse(c, cs, fc, 503, "no chat server is available");
		return;
	}
	struct call *k = call_new(c, CALL_SEND, cs->sid, id, cs->name, strlen(cs->name), rid,
		strlen(rid));
	k->fc = *fc;
	k->fc.body = NULL;
	k->target = tn_strndup(target, tlen);
	k->target_len = tlen;
	k->content = tn_malloc(clen + 1);
	memcpy(k->content, content, clen);
	k->content[clen] = '\0';
	k->content_len = clen;
	call_send(c, k);
}

static int
send_done(struct call *k, struct csess *cs, int err, const struct tn_reply *rep)
{
	const char *msg;
	int code = 0;
	if (err)
		code = code_of(err, &msg);
	else if (rep->code == TN_ENOENT)
		code = 500, msg = "user not in this room";
	else if (rep->code != TN_OK)
		code = code_of(rep->code, &msg);
	if (cs == NULL || k->req_id == 0)
		return code;
	if (code)
		respond_error(cs->s, k->req_id, code, msg);
	else
		tn_edge_respond(cs->s, k->req_id, "{}", 2);
	return code;
}

/* Answers the client (if any) and frees k. */
static void
call_complete(struct tn_connector *c, struct call *k, int err, const struct tn_reply *rep)
{
	if (err)
		tn_info("rpc", "call failed kind=%d rid=%s sid=%llu tries=%d err=\"%s\"",
			(int)k->kind, k->rid, (unsigned long long)k->sid, k->tries + 1, tn_strerror(err));
	struct tn_edge_sess *s = tn_edge_sess_find(c->edge, k->sid);
	struct csess *cs = s ? tn_edge_sess_data(s) : NULL;
	int code = 0;
	if (k->kind == CALL_ENTER)
		code = enter_done(c, k, cs, err, rep);
	else if (k->kind == CALL_SEND)
		code = send_done(k, cs, err, rep);
	if (k->fc.route)
		tn_filters_after(&c->filters, &k->fc, code);
	call_free(k);
}

static void
call_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct call *k = arg;
	struct tn_connector *c = k->c;
	if (err == TN_ECLOSED) {
		call_free(k); /* shutting down: nobody left to answer */
		return;
	}
	tn_histogram_observe(c->rpc_seconds, (double)(tn_now_us() - k->t0_us) / 1e6);
	struct tn_reply rep = {0};
	if (err == TN_OK && tn_reply_decode(&rep, data, len, NULL) != TN_OK)
		err = TN_EPROTO;
	if (err == TN_ETIMEDOUT)
		tn_counter_inc(c->rpc_timeout);
	else if (err == TN_EBUSY)
		tn_counter_inc(c->rpc_busy);
	else if (err)
		tn_counter_inc(c->rpc_other);
	if (c->chats[k->chat].info == NULL)
		reap_later(c);
	if (err == TN_OK && (rep.code == TN_EMOVED || rep.code == TN_ERECOVERING)) {
		/* Not run there: safe to send again, to whoever owns the room by then. */
		tn_counter_inc(rep.code == TN_EMOVED ? c->retries_moved : c->retries_recovering);
		if (rep.epoch > c->topo->version)
			conn_want_refresh(c);
		call_retry_later(c, k, rep.code);
		return;
	}
	call_complete(c, k, err, &rep);
}

/* ---- edge callbacks ---- */

static void
sess_open(void *arg, struct tn_edge_sess *s)
{
	struct tn_connector *c = arg;
	struct csess *cs = tn_calloc(1, sizeof(*cs));
	cs->c = c;
	cs->s = s;
	cs->sid = tn_edge_sess_id(s);
	tn_edge_sess_set_data(s, cs);
	tn_map_put(&c->sessions, &cs->sid, sizeof(cs->sid), cs);
	tn_gauge_inc(c->g_sessions);
}

static void
sess_request(void *arg, struct tn_edge_sess *s, uint32_t id, int route, json_object *body,
	const uint8_t *raw, size_t raw_len)
{
	struct tn_connector *c = arg;
	struct csess *cs = tn_edge_sess_data(s);
	if (cs == NULL)
		return;
	struct tn_filter_ctx fc = {.route = tn_app_routes[route], .sid = cs->sid, .id = id,
		.body = body, .start_us = tn_now_us()};
	int code = tn_filters_before(&c->filters, &fc);
	if (code) {
		refuse(c, cs, &fc, code, "refused by a filter");
		return;
	}
	if (route == TN_ROUTE_ENTER)
		on_enter(c, cs, &fc);
	else if (route == TN_ROUTE_CHAT_SEND)
		on_send(c, cs, &fc);
	else
		refuse(c, cs, &fc, 404, "route not served here");
}

static void
sess_close(void *arg, struct tn_edge_sess *s)
{
	struct tn_connector *c = arg;
	struct csess *cs = tn_edge_sess_data(s);
	if (cs == NULL)
		return;
	/* A disconnect, clean or not, leaves every room (the rest see onLeave). */
	for (int i = 0; i < cs->n_rooms; i++) {
		send_leave(c, cs->sid, cs->name, cs->rooms[i]);
		tn_room_orders_local(&c->orders, cs->rooms[i], strlen(cs->rooms[i]), -1);
		free(cs->rooms[i]);
	}
	tn_map_del(&c->sessions, &cs->sid, sizeof(cs->sid));
	free(cs->name);
	free(cs);
	tn_edge_sess_set_data(s, NULL);
	tn_gauge_dec(c->g_sessions);

}

/* ---- life cycle ---- */

static void
register_metrics(struct tn_connector *c)
{
	struct tn_metric_family *fam;
	tn_metrics_gauge(&c->g_sessions, "tern_connector_sessions",
		"sessions past the handshake on this connector");
	tn_metrics_counter(&c->push_msgs, "tern_connector_push_messages_total",
		"push messages (batches) received from chat servers");
	tn_metrics_counter(&c->push_items, "tern_connector_push_items_total",
		"push items received from chat servers");
	tn_metrics_counter(&c->deliveries, "tern_connector_push_deliveries_total",
		"pushes queued to local sessions");
	tn_metrics_counter(&c->push_orphans, "tern_connector_push_orphans_total",
		"pushes for sessions that had already gone");
	tn_metrics_counter(&c->push_gaps, "tern_connector_push_gaps_total",
		"gaps seen in a push stream's sequence numbers");
	tn_metrics_counter(&c->push_resets, "tern_connector_push_stream_resets_total",
		"push streams that restarted with a new incarnation");
	tn_metrics_counter(&c->push_bad, "tern_connector_push_malformed_total",
		"push messages that failed to decode");
	tn_metrics_counter(&c->push_stale, "tern_connector_push_stale_total",
		"push messages addressed to another incarnation of this connector");
	tn_metrics_counter(&c->push_duplicates, "tern_connector_push_duplicates_total",
		"push items received again after delivery (dropped)");
	tn_metrics_counter(&c->push_recovered, "tern_connector_push_gaps_recovered_total",
		"gaps whose items were fetched from the chat server and delivered in order");
	tn_metrics_counter(&c->push_unrecoverable, "tern_connector_push_gaps_unrecoverable_total",
		"gaps whose items the chat server no longer held");

	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_connector_rpc_retries_total",
		"calls to chat servers tried again (not run the first time), by reason", "reason",
		NULL, 0);
	c->retries_moved = tn_metrics_counter_labels(fam, "moved");
	c->retries_recovering = tn_metrics_counter_labels(fam, "recovering");
	c->retries_unreachable = tn_metrics_counter_labels(fam, "unreachable");
	tn_metrics_counter(&c->push_held, "tern_connector_push_held_total",
		"room pushes that came before earlier ones of the room (a move) and were held");
	tn_metrics_counter(&c->push_room_duplicates, "tern_connector_push_room_duplicates_total",
		"room pushes dropped as already delivered (or from an earlier life of the room)");
	tn_metrics_counter(&c->push_room_gaps, "tern_connector_push_room_gaps_total",
		"rooms whose missing pushes never came (their local sessions were kicked)");
	tn_metrics_counter(&c->rejoin_members, "tern_connector_rejoined_members_total",
		"room memberships re-registered with new owners after a chat server was lost");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_connector_rpc_errors_total",
		"calls to chat servers that failed, by reason", "reason", NULL, 0);
	c->rpc_timeout = tn_metrics_counter_labels(fam, "timeout");
	c->rpc_busy = tn_metrics_counter_labels(fam, "busy");
	c->rpc_other = tn_metrics_counter_labels(fam, "other");
	static const double bounds[] = {1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2, 0.1, 1};
	tn_metrics_histogram(&c->rpc_seconds, "tern_connector_rpc_seconds",
		"round trip of calls to chat servers", bounds, 10);
}

/* Opens an RPC client to chat server s in a free slot (or a new one). */
static int
chat_open(struct tn_connector *c, const struct tn_server_info *s)
{
	int i = 0;
	while (i < c->n_chats && (c->chats[i].rpc != NULL || c->chats[i].info != NULL))
		i++;
	if (i == c->n_chats) {
		c->chats = tn_realloc(c->chats, (size_t)(c->n_chats + 1) * sizeof(*c->chats));
		memset(&c->chats[i], 0, sizeof(c->chats[i]));
		c->n_chats++;
	}
	struct chat_target *t = &c->chats[i];
	struct tn_rpc_client_opts o = {.max_inflight = c->cfg->rpc_max_inflight,
		.max_queued = c->cfg->rpc_max_inflight * 4, .max_msg = 1u << 20};
	free(t->id);
	t->id = tn_strdup(s->id);
	tn_nng_url(t->url, sizeof(t->url), s->host, s->port);
	int rv = tn_rpc_client_new(&t->rpc, t->url, &o, tn_edge_exec(c->edge));
	if (rv == TN_OK)
		t->info = s;
	return rv;
}

static int
open_chat_clients(struct tn_connector *c)
{
	const struct tn_server_info *list[1024];
	size_t n = tn_topology_of_type(c->topo, TN_SERVER_CHAT, list, 1024);
	if (n > 1024)
		n = 1024;
	c->chats = tn_calloc(n ? n : 1, sizeof(*c->chats));
	for (size_t i = 0; i < n; i++) {
		int rv = chat_open(c, list[i]);
		if (rv)
			return rv;
	}
	return TN_OK;
}

int
tn_connector_new(struct tn_connector **out, const struct tn_config *cfg, struct tn_topology *topo)
{
	struct tn_connector *c = tn_calloc(1, sizeof(*c));
	c->cfg = cfg;
	c->topo = topo;
	tn_map_init(&c->streams);
	tn_map_init(&c->sessions);
	c->inc = (uint64_t)tn_wall_ms() * 1000 + (uint64_t)(tn_now_us() % 1000);
	tn_hook_init(&c->refresh, 50); /* one refresh asked for per 50 ms at most */
	/* A gap is waited for as long as a stream's own recovery may take to fill it. */
	tn_room_orders_init(&c->orders, cfg->rpc_timeout_ms + 1000, conn_deliver_to, c);
	c->abuse = tn_abuse_filter_new(cfg->abuse_words);
	if (c->abuse) {
		struct tn_filter af = tn_abuse_filter(c->abuse);
		tn_filters_add(&c->filters, &af);
	}
	struct tn_filter slow = tn_slow_request_filter(&cfg->slow_request_ms);
	tn_filters_add(&c->filters, &slow);
	tn_buf_init(&c->scratch);
	tn_buf_init(&c->json);
	register_metrics(c);
	static const bool served[TN_ROUTE_COUNT_] = {
		[TN_ROUTE_CHAT_SEND] = true, [TN_ROUTE_ENTER] = true};
	struct tn_edge_opts eo = {.cfg = cfg, .routes = tn_app_routes, .nroutes = TN_ROUTE_COUNT_,
		.served = served, .use_dict = true, .metrics_prefix = "tern_connector"};
	static const struct tn_edge_ops ops = {
		.on_open = sess_open, .on_request = sess_request, .on_close = sess_close};
	int rv = tn_edge_new(&c->edge, &eo, &ops, c);
	if (rv == TN_OK)
		rv = conn_push_listen(c);
	if (rv == TN_OK)
		rv = open_chat_clients(c);
	if (rv) {
		tn_connector_free(c);
		return rv;
	}
	struct tn_exec ex = tn_edge_exec(c->edge);
	tn_exec_post(&ex, tick_start, c);
	*out = c;
	return TN_OK;
}

int
tn_connector_client_port(const struct tn_connector *c)
{
	return tn_edge_port(c->edge);
}

void
tn_connector_run(struct tn_connector *c)
{
	tn_edge_run(c->edge);
}

void
tn_connector_stop(struct tn_connector *c)
{
	tn_edge_stop(c->edge);
}

/* Calls to chat servers in flight that can still be answered (one to a server with no
 * connection could only wait for its deadline). */
static int
drain_calls(const struct tn_connector *c)
{
	int n = c->n_waiting;
	for (int i = 0; i < c->n_chats; i++)
		if (c->chats[i].rpc && tn_rpc_client_connected(c->chats[i].rpc))
			n += tn_rpc_client_pending(c->chats[i].rpc);
	return n;
}

/* The edge has drained: every session is gone, so each has sent the LEAVEs of its rooms
 * (sess_close). Waits for those to be answered, so that the rest of every room hears
 * onLeave, then stops the loop. Owner thread. */
static void
drain_wait_calls(void *arg)
{
	struct tn_connector *c = arg;
	int n = drain_calls(c);
	if (n > 0 && tn_now_ms() < c->drain_deadline) {
		tn_edge_timer(c->edge, DRAIN_POLL_MS, drain_wait_calls, c);
		return;
	}
	if (n > 0)
		tn_warn("connector", "drain deadline passed with calls to chat servers in flight "
				     "calls=%d", n);
	else
		tn_info("connector", "drained: sessions closed, their rooms left");
	tn_edge_stop(c->edge);
}

void
tn_connector_drain(struct tn_connector *c, int64_t deadline_ms)
{
	/* Half of the time for the clients to take their kicks and close, the rest (at
	 * least) for the LEAVEs their closing sends. */
	int64_t now = tn_now_ms();
	c->drain_deadline = deadline_ms;
	tn_edge_drain(c->edge, now + (deadline_ms - now) / 2, drain_wait_calls, c);
}

void
tn_connector_free(struct tn_connector *c)
{
	if (c == NULL)
		return;
	/* Stop the inputs first: pushes, then RPC results (their callbacks post to the edge,
	 * whose mailbox runs them cancelled once the edge is freed). */
	nng_close(c->sub);
	if (c->sub_aio) {
		nng_aio_stop(c->sub_aio);
		nng_aio_free(c->sub_aio);
	}
	/* Sessions still open leave their rooms (on_close), then the edge's mailbox closes:
	 * RPC completions from here on run cancelled, so the clients can go, then the edge. */
	if (c->edge)
		tn_edge_close(c->edge);
	for (int i = 0; i < c->n_chats; i++) {
		tn_rpc_client_free(c->chats[i].rpc);
		free(c->chats[i].id);
	}
	/* Their timers died with the edge's close. */
	while (c->waiting) {
		struct call *k = c->waiting;
		c->waiting = k->next;
		call_free(k);
	}
	conn_rejoins_free(c);
	tn_edge_free(c->edge);
	free(c->chats);
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->streams, &it)) != NULL;) {
		conn_stream_free(e->val);
	}
	tn_map_fini(&c->streams);
	tn_map_fini(&c->sessions);
	tn_room_orders_fini(&c->orders);
	tn_abuse_filter_free(c->abuse);
	tn_buf_fini(&c->scratch);
	tn_buf_fini(&c->json);
	tn_topology_free(c->topo);
	tn_hook_fini(&c->refresh);
	free(c);
}

/* ---- housekeeping ---- */

#define TICK_MS 100

static void
connector_tick(void *arg)
{
	struct tn_connector *c = arg;
	tn_room_orders_expire(&c->orders, tn_now_ms(), conn_kick_room, c);
	uint64_t now[3] = {c->orders.held, c->orders.duplicates, c->orders.gaps_given_up};
	struct tn_counter *to[3] = {c->push_held, c->push_room_duplicates, c->push_room_gaps};
	for (int i = 0; i < 3; i++) {
		tn_counter_add(to[i], now[i] - c->orders_seen[i]);
		c->orders_seen[i] = now[i];
	}
	conn_rejoin_retry_due(c);
	tn_edge_timer(c->edge, TICK_MS, connector_tick, c);
}

static void
tick_start(void *arg, bool cancelled)
{
	struct tn_connector *c = arg;
	if (!cancelled)
		tn_edge_timer(c->edge, TICK_MS, connector_tick, c);
}

void
tn_connector_set_refresh(struct tn_connector *c, void (*fn)(void *arg), void *arg)
{
	tn_hook_set(&c->refresh, fn, arg);
}

/* ---- membership at run time ---- */

/* Frees the clients of chat servers that left once no call of theirs is outstanding
 * (their calls finish by deadline: no request is left unanswered). */
static void
reap(void *arg, bool cancelled)
{
	struct tn_connector *c = arg;
	if (cancelled)
		return;
	for (int i = 0; i < c->n_chats; i++) {
		struct chat_target *t = &c->chats[i];
		if (t->info == NULL && t->rpc && tn_rpc_client_pending(t->rpc) == 0) {
			tn_rpc_client_free(t->rpc);
			t->rpc = NULL;
		}
	}
}

/* From a completion: the client still counts that call until it returns. */
static void
reap_later(struct tn_connector *c)
{
	struct tn_exec ex = tn_edge_exec(c->edge);
	tn_exec_post(&ex, reap, c);
}

void
tn_connector_set_topology(struct tn_connector *c, struct tn_topology *topo)
{
	const struct tn_server_info *list[1024];
	size_t n = tn_topology_of_type(topo, TN_SERVER_CHAT, list, 1024);
	if (n > 1024)
		n = 1024;
	int old = c->n_chats;
	for (int i = 0; i < old; i++)
		c->chats[i].info = NULL;
	for (size_t k = 0; k < n; k++) {
		char url[300];
		tn_nng_url(url, sizeof(url), list[k]->host, list[k]->port);
		int i = 0;
		while (i < old && !(c->chats[i].rpc && strcmp(c->chats[i].id, list[k]->id) == 0 &&
					  strcmp(c->chats[i].url, url) == 0))
			i++;
		if (i < old) {
			c->chats[i].info = list[k]; /* the same server at the same address */
			continue;
		}
		if (chat_open(c, list[k]) != TN_OK)
			tn_error("connector", "cannot open a client to a chat server chat=%s url=%s",
				list[k]->id, url);
		else
			tn_info("connector", "chat server joined chat=%s url=%s", list[k]->id, url);
	}
	for (int i = 0; i < old; i++)
		if (c->chats[i].info == NULL && c->chats[i].rpc)
			tn_info("connector", "chat server left chat=%s", c->chats[i].id);
	struct tn_topology *prev = c->topo;
	c->topo = topo;
	conn_rejoin_topology(c, prev);
	tn_topology_free(prev);
	reap(c, false);
}

void
tn_connector_load(struct tn_connector *c, struct tn_server_load *out, uint64_t *messages)
{
	out->connections = tn_edge_connections(c->edge);
	out->sessions = (uint64_t)tn_gauge_get(c->g_sessions);
	*messages = tn_histogram_count(c->rpc_seconds) + tn_counter_get(c->deliveries);
}

struct tn_exec
tn_connector_exec(struct tn_connector *c)
{
	return tn_edge_exec(c->edge);
}

