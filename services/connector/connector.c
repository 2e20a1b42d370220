#include "connector.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
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

#define MAX_NAME 64
#define MAX_RID 128
#define MAX_ROOMS_PER_SESSION 16
#define PUSH_RECVBUF 8192
#define PUSH_MAX_MSG (16u << 20)
/* Batches held behind a gap while its items are fetched; past this, recovery gives up. */
#define PUSH_HOLD_MAX 4096
/* While draining, how often the calls to chat servers still in flight are counted. */
#define DRAIN_POLL_MS 10

struct chat_target {
	const struct tn_server_info *info; /* in c->topo; NULL once it left the membership */
	struct tn_rpc_client *rpc;         /* NULL once closed (a slot free for reuse) */
	char *id;
	char url[300];
};

/* What the connector knows of a push stream from one chat server. */
struct stream_in {
	char *chat_id;
	uint64_t chat_inc;
	uint64_t next_seq;  /* the next item expected */
	bool fetching;      /* a gap is being fetched: later batches wait in held */
	uint64_t fetch_from, fetch_to;
	nng_msg **held;
	size_t n_held, cap_held;
};

struct tn_connector {
	const struct tn_config *cfg;
	struct tn_topology *topo;
	struct tn_edge *edge;
	struct chat_target *chats;
	int n_chats;
	nng_socket sub;
	nng_aio *sub_aio;
	struct tn_map streams; /* chat_id -> struct stream_in */
	struct tn_map sessions; /* sid (8 bytes) -> struct csess */
	uint64_t inc;           /* this process's incarnation */
	struct tn_filters filters;
	struct tn_abuse_filter *abuse;
	struct tn_buf scratch;
	struct tn_buf json;
	struct tn_gauge *g_sessions;
	struct tn_counter *push_msgs, *push_items, *deliveries, *push_gaps, *push_resets,
		*push_bad, *push_orphans, *push_stale, *push_recovered, *push_unrecoverable,
		*push_duplicates;
	struct tn_counter *rpc_timeout, *rpc_busy, *rpc_other;
	struct tn_histogram *rpc_seconds;
	int64_t drain_deadline; /* tn_connector_drain: when the process must be on its way out */
	struct call *waiting;   /* calls waiting to be tried again (a room moving) */
	int n_waiting;
	struct rejoin *rejoins; /* lost chat servers whose rooms' members are re-registered */
	struct tn_hook refresh; /* asks the membership client for a fresh snapshot */
	struct tn_counter *retries_moved, *retries_recovering, *retries_unreachable,
		*rejoin_members;
	struct tn_room_orders orders; /* each room's broadcasts in order, across moves */
	uint64_t orders_seen[3];      /* held, duplicates, gaps given up: already counted */
	struct tn_counter *push_held, *push_room_duplicates, *push_room_gaps;
};

struct csess {
	struct tn_connector *c;
	struct tn_edge_sess *s;
	uint64_t sid;
	char *name; /* bound by the first successful enter */
	char *rooms[MAX_ROOMS_PER_SESSION];
	int n_rooms;
	int entering; /* enters in flight */
	bool kicked;  /* a kick is on its way; the session closes soon */
};

enum call_kind {
	CALL_ENTER = 0,
	CALL_SEND = 1,
	CALL_LEAVE = 2,
};

struct call {
	struct tn_connector *c;
	struct call *prev, *next; /* in c->waiting while it waits to be tried again */
	enum call_kind kind;
	uint64_t sid;
	uint32_t req_id; /* the client's request id; 0 for a notify or an internal call */
	int chat;        /* index in c->chats */
	char *name, *rid;
	char *target, *content; /* SEND */
	size_t target_len, content_len;
	int64_t t0_us;
	int64_t deadline_ms; /* the whole call, retries included */
	int tries;
	int last_err;            /* why the last try did not go through (for the answer) */
	struct tn_filter_ctx fc; /* for the after-filters */
};

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

static int
chat_for_room(struct tn_connector *c, const char *rid, size_t len)
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
static void rejoins_free(struct tn_connector *c);
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

static void
want_refresh(struct tn_connector *c)
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
	int chat = chat_for_room(c, k->rid, strlen(k->rid));
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
	if (chat_for_room(c, rid, strlen(rid)) < 0)
		return;
	call_send(c, call_new(c, CALL_LEAVE, sid, 0, name, strlen(name), rid, strlen(rid)));
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
	if (chat_for_room(c, rid, rlen) < 0) {
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
	if (chat_for_room(c, rid, strlen(rid)) < 0) {
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
			want_refresh(c);
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

/* ---- pushes from chat servers ---- */

static struct stream_in *
stream_get(struct tn_connector *c, struct tn_str chat_id)
{
	struct stream_in *st = tn_map_get(&c->streams, chat_id.p, chat_id.len);
	if (st == NULL) {
		st = tn_calloc(1, sizeof(*st));
		st->chat_id = tn_strndup(chat_id.p, chat_id.len);
		tn_map_put(&c->streams, st->chat_id, chat_id.len, st);
	}
	return st;
}

static void
deliver_items(struct tn_connector *c, struct stream_in *st, struct tn_push_reader *rd)
{
	struct tn_push_item item;
	char route[256];
	while (tn_push_reader_next(rd, &item)) {
		if (item.seq < st->next_seq) {
			tn_counter_inc(c->push_duplicates); /* already delivered */
			continue;
		}
		st->next_seq = item.seq + 1;
		tn_counter_inc(c->push_items);
		size_t rl = item.route.len < sizeof(route) - 1 ? item.route.len : sizeof(route) - 1;
		memcpy(route, item.route.p, rl);
		route[rl] = '\0';
		tn_room_orders_item(&c->orders, &item, route, tn_now_ms());
	}
}

/* Queues one push to each local session of sids (tn_room_orders' delivery). */
static void
deliver_to(void *arg, const char *route, struct tn_str body, struct tn_u64_iter sids)
{
	struct tn_connector *c = arg;
	uint64_t sid;
	while (tn_u64_iter_next(&sids, &sid)) {
		struct tn_edge_sess *s = tn_edge_sess_find(c->edge, sid);
		if (s == NULL || tn_edge_sess_data(s) == NULL) {
			tn_counter_inc(c->push_orphans);
			continue;
		}
		tn_edge_push(s, route, body.p, body.len);
		tn_counter_inc(c->deliveries);
	}
}

/* Items of a stream are lost for good: every local session in a room owned by that chat
 * server may have missed something, so each is told and disconnected (it logs in again
 * and sees the room as it is now). */
static void
kick_rooms_of(struct tn_connector *c, const char *chat_id)
{
	struct csess **victims = tn_malloc((c->sessions.count + 1) * sizeof(*victims));
	size_t n = 0, it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->sessions, &it)) != NULL;) {
		struct csess *cs = e->val;
		for (int i = 0; !cs->kicked && i < cs->n_rooms; i++) {
			int chat = chat_for_room(c, cs->rooms[i], strlen(cs->rooms[i]));
			if (chat >= 0 && strcmp(c->chats[chat].id, chat_id) == 0) {
				victims[n++] = cs;
				break;
			}
		}
	}
	/* Kicking changes the session map (on_close), so collect first. */
	for (size_t i = 0; i < n; i++) {
		/* Counted by the edge in tern_connector_kicks_total{reason="missed messages"}. */
		victims[i]->kicked = true;
		tn_edge_kick(victims[i]->s, "missed messages");
	}
	free(victims);
	if (n)
		tn_warn("push", "unrecoverable gap: sessions kicked chat=%s sessions=%zu", chat_id, n);
}

static void fetch_start(struct tn_connector *c, struct stream_in *st, uint64_t from, uint64_t to);
static void stream_drain_held(struct tn_connector *c, struct stream_in *st);

/* Handles one batch of a stream that is not fetching. Returns false when the batch
 * revealed a gap: a fetch started and the batch is held (the caller keeps msg). */
static bool
stream_process(struct tn_connector *c, struct stream_in *st, struct tn_push_reader *rd)
{
	if (st->chat_inc != rd->hdr.chat_inc) {
		/* A new incarnation of the chat server: its stream to us starts over at 1. */
		if (st->chat_inc != 0)
			tn_counter_inc(c->push_resets);
		tn_info("push", "stream from a new incarnation chat=%s incarnation=%llu", st->chat_id,
			(unsigned long long)rd->hdr.chat_inc);
		st->chat_inc = rd->hdr.chat_inc;
		st->next_seq = 1;
	}
	/* Where this batch starts: its first item, or for a tick the position it announces. */
	uint64_t pos = rd->n_items ? rd->first_seq : rd->hdr.next_seq;
	if (pos > st->next_seq) {
		tn_counter_inc(c->push_gaps);
		tn_warn("push", "gap in push stream chat=%s expected=%llu got=%llu", st->chat_id,
			(unsigned long long)st->next_seq, (unsigned long long)pos);
		fetch_start(c, st, st->next_seq, pos - 1);
		return false;
	}
	deliver_items(c, st, rd);
	return true;
}

static void
hold(struct stream_in *st, nng_msg *m)
{
	if (st->n_held == st->cap_held) {
		st->cap_held = st->cap_held ? st->cap_held * 2 : 16;
		st->held = tn_realloc(st->held, st->cap_held * sizeof(*st->held));
	}
	st->held[st->n_held++] = m;
}

/* Feeds one received batch (takes m). */
static void
stream_feed(struct tn_connector *c, struct stream_in *st, nng_msg *m)
{
	if (st->fetching) {
		if (st->n_held >= PUSH_HOLD_MAX) {
			/* Too far behind to catch up in order: give the fetch up. */
			tn_warn("push", "too many batches behind a gap chat=%s held=%zu", st->chat_id,
				st->n_held);
			st->fetching = false;
			tn_counter_inc(c->push_unrecoverable);
			kick_rooms_of(c, st->chat_id);
			st->next_seq = st->fetch_to + 1;
			hold(st, m);
			stream_drain_held(c, st);
			return;
		}
		hold(st, m);
		return;
	}
	struct tn_push_reader rd;
	if (tn_push_reader_init(&rd, nng_msg_body(m), nng_msg_len(m), NULL) != TN_OK) {
		nng_msg_free(m);
		return;
	}
	if (stream_process(c, st, &rd))
		nng_msg_free(m);
	else
		hold(st, m);
}

/* Processes held batches in order until empty or a new gap starts a fetch. */
static void
stream_drain_held(struct tn_connector *c, struct stream_in *st)
{
	size_t i = 0;
	while (i < st->n_held && !st->fetching) {
		nng_msg *m = st->held[i++];
		struct tn_push_reader rd;
		if (tn_push_reader_init(&rd, nng_msg_body(m), nng_msg_len(m), NULL) != TN_OK ||
			stream_process(c, st, &rd)) {
			nng_msg_free(m);
			continue;
		}
		i--; /* the fetch holds this one again: keep it first */
		break;
	}
	memmove(st->held, st->held + i, (st->n_held - i) * sizeof(*st->held));
	st->n_held -= i;
}

struct fetch_call {
	struct tn_connector *c;
	char *chat_id;
	uint64_t chat_inc;
};

static void
fetch_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct fetch_call *fk = arg;
	struct tn_connector *c = fk->c;
	struct stream_in *st = err == TN_ECLOSED ? NULL
		: tn_map_get(&c->streams, fk->chat_id, strlen(fk->chat_id));
	if (st == NULL || !st->fetching || st->chat_inc != fk->chat_inc) {
		free(fk->chat_id);
		free(fk);
		return;
	}
	st->fetching = false;
	struct tn_reply rep;
	struct tn_push_reader rd;
	bool ok = err == TN_OK && tn_reply_decode(&rep, data, len, NULL) == TN_OK &&
		rep.code == TN_OK &&
		tn_push_reader_init(&rd, rep.body.p, rep.body.len, NULL) == TN_OK &&
		rd.n_items == st->fetch_to - st->fetch_from + 1 && rd.first_seq == st->fetch_from;
	if (ok) {
		deliver_items(c, st, &rd);
		tn_counter_inc(c->push_recovered);
		tn_info("push", "gap recovered chat=%s from=%llu to=%llu", st->chat_id,
			(unsigned long long)st->fetch_from, (unsigned long long)st->fetch_to);
	} else {
		tn_counter_inc(c->push_unrecoverable);
		tn_warn("push", "gap not recoverable chat=%s from=%llu to=%llu err=\"%s\"",
			st->chat_id, (unsigned long long)st->fetch_from,
			(unsigned long long)st->fetch_to, tn_strerror(err ? err : TN_ENOENT));
		kick_rooms_of(c, st->chat_id);
		st->next_seq = st->fetch_to + 1;
	}
	stream_drain_held(c, st);
	free(fk->chat_id);
	free(fk);
}

static void
fetch_start(struct tn_connector *c, struct stream_in *st, uint64_t from, uint64_t to)
{
	int chat = -1;
	for (int i = 0; i < c->n_chats; i++)
		if (c->chats[i].info && strcmp(c->chats[i].id, st->chat_id) == 0)
			chat = i;
	st->fetching = true;
	st->fetch_from = from;
	st->fetch_to = to;
	struct fetch_call *fk = tn_calloc(1, sizeof(*fk));
	fk->c = c;
	fk->chat_id = tn_strdup(st->chat_id);
	fk->chat_inc = st->chat_inc;
	if (chat < 0) {
		fetch_done(fk, TN_ENOENT, NULL, 0);
		return;
	}
	struct tn_push_fetch f = {.connector_id = tn_str_of(c->cfg->id), .conn_inc = c->inc,
		.chat_inc = st->chat_inc, .from_seq = from, .to_seq = to};
	tn_buf_reset(&c->scratch);
	tn_push_fetch_encode(&c->scratch, &f);
	tn_rpc_call(c->chats[chat].rpc, c->scratch.data, c->scratch.len, c->cfg->rpc_timeout_ms,
		fetch_done, fk);
}

static void
deliver_batch(void *arg, bool cancelled)
{
	nng_msg *m = arg;
	struct tn_connector *c = cancelled ? NULL : *(struct tn_connector **)nng_msg_header(m);
	if (c == NULL) {
		nng_msg_free(m);
		return;
	}
	struct tn_push_reader rd;
	if (tn_push_reader_init(&rd, nng_msg_body(m), nng_msg_len(m), NULL) != TN_OK) {
		tn_counter_inc(c->push_bad);
		tn_warn("push", "malformed push batch dropped bytes=%zu", nng_msg_len(m));
		nng_msg_free(m);
		return;
	}
	tn_counter_inc(c->push_msgs);
	if (rd.hdr.conn_inc != c->inc) {
		/* Addressed to an earlier incarnation of this connector (or sent before the chat
		 * server heard of this one): its sessions are not ours. */
		tn_counter_inc(c->push_stale);
		nng_msg_free(m);
		return;
	}
	stream_feed(c, stream_get(c, rd.hdr.chat_id), m);
}

static void
sub_cb(void *arg)
{
	struct tn_connector *c = arg;
	int rv = nng_aio_result(c->sub_aio);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0) {
		nng_msg *m = nng_aio_get_msg(c->sub_aio);
		/* The header carries the connector pointer so the task needs no allocation. */
		nng_msg_header_clear(m);
		nng_msg_header_append(m, &c, sizeof(c));
		struct tn_exec ex = tn_edge_exec(c->edge);
		tn_exec_post(&ex, deliver_batch, m);
	}
	nng_recv_aio(c->sub, c->sub_aio);
}

static int
push_listen(struct tn_connector *c)
{
	int rv = tn_err_from_nng(nng_sub0_open(&c->sub));
	if (rv)
		return rv;
	nng_socket_set(c->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_int(c->sub, NNG_OPT_RECVBUF, PUSH_RECVBUF);
	char url[300];
	tn_nng_url(url, sizeof(url), c->cfg->host, c->cfg->port);
	rv = tn_nng_listen(c->sub, url, PUSH_MAX_MSG);
	if (rv)
		return rv;
	if (nng_aio_alloc(&c->sub_aio, sub_cb, c) != 0)
		return TN_ENOMEM;
	nng_recv_aio(c->sub, c->sub_aio);
	return TN_OK;
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
	tn_room_orders_init(&c->orders, cfg->rpc_timeout_ms + 1000, deliver_to, c);
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
		rv = push_listen(c);
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
	rejoins_free(c);
	tn_edge_free(c->edge);
	free(c->chats);
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->streams, &it)) != NULL;) {
		struct stream_in *st = e->val;
		for (size_t i = 0; i < st->n_held; i++)
			nng_msg_free(st->held[i]);
		free(st->held);
		free(st->chat_id);
		free(st);
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

/* ---- re-registering members after a chat server is lost ---- */

/* Members per message (the decoder's array bound is 65536). */
#define REJOIN_CHUNK 32768
#define REJOIN_RETRY_MS 100

/* The entries of one lost server's rooms that one live chat server now owns. */
struct rejoin_target {
	char *id;
	struct tn_str *rids, *names;
	uint64_t *sids;
	uint32_t n, off;
	bool done;
};

struct rejoin {
	struct rejoin *next;
	uint64_t id;
	struct tn_server_info lost;
	int64_t until_ms;
	uint64_t epoch; /* the membership the targets were computed for */
	uint64_t gen;   /* bumped at every recomputation: older answers are ignored */
	struct rejoin_target *targets;
	int n_targets;
	bool retry_armed;
	int64_t retry_at;
};

struct rejoin_call {
	struct tn_connector *c;
	uint64_t job, gen;
	int target;
};

static uint64_t rejoin_ids;

static void
rejoin_targets_free(struct rejoin *j)
{
	for (int i = 0; i < j->n_targets; i++) {
		for (uint32_t e = 0; e < j->targets[i].n; e++) {
			free((char *)j->targets[i].rids[e].p);
			free((char *)j->targets[i].names[e].p);
		}
		free(j->targets[i].id);
		free(j->targets[i].rids);
		free(j->targets[i].names);
		free(j->targets[i].sids);
	}
	free(j->targets);
	j->targets = NULL;
	j->n_targets = 0;
}

static void
rejoin_free(struct rejoin *j)
{
	rejoin_targets_free(j);
	tn_server_info_fini(&j->lost);
	free(j);
}

static void
rejoins_free(struct tn_connector *c)
{
	while (c->rejoins) {
		struct rejoin *j = c->rejoins;
		c->rejoins = j->next;
		rejoin_free(j);
	}
}

static struct rejoin *
rejoin_find(struct tn_connector *c, uint64_t id)
{
	for (struct rejoin *j = c->rejoins; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

static void
rejoin_remove(struct tn_connector *c, struct rejoin *j)
{
	for (struct rejoin **pp = &c->rejoins; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			rejoin_free(j);
			return;
		}
	}
}

/* Which local memberships were in the lost server's rooms, grouped by their owner now.
 * Every live chat server is a target, with no entries if need be: its answer to the final
 * (empty) batch is this connector's confirmation. */
static void
rejoin_compute(struct tn_connector *c, struct rejoin *j)
{
	rejoin_targets_free(j);
	j->epoch = c->topo->version;
	j->gen++;
	struct tn_topology *before = tn_topology_with(c->topo, &j->lost);
	enum tn_room_hash how = (enum tn_room_hash)c->cfg->room_hash;
	const struct tn_server_info *chats[1024];
	size_t n = tn_topology_of_type(c->topo, TN_SERVER_CHAT, chats, 1024);
	n = n > 1024 ? 1024 : n;
	j->targets = tn_calloc(n + 1, sizeof(*j->targets));
	j->n_targets = (int)n;
	for (size_t i = 0; i < n; i++)
		j->targets[i].id = tn_strdup(chats[i]->id);
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->sessions, &it)) != NULL;) {
		struct csess *cs = e->val;
		for (int r = 0; r < cs->n_rooms; r++) {
			size_t rl = strlen(cs->rooms[r]);
			const struct tn_server_info *was = tn_topology_room_owner(before, cs->rooms[r], rl, how);
			const struct tn_server_info *now = tn_topology_room_owner(c->topo, cs->rooms[r], rl, how);
			if (was == NULL || now == NULL || strcmp(was->id, j->lost.id) != 0)
				continue;
			for (int t = 0; t < j->n_targets; t++) {
				struct rejoin_target *rt = &j->targets[t];
				if (strcmp(rt->id, now->id) != 0)
					continue;
				rt->rids = tn_realloc(rt->rids, (rt->n + 1) * sizeof(*rt->rids));
				rt->names = tn_realloc(rt->names, (rt->n + 1) * sizeof(*rt->names));
				rt->sids = tn_realloc(rt->sids, (rt->n + 1) * sizeof(*rt->sids));
				/* Copies: a session may close before its batch goes (its LEAVE then
				 * follows, retried while the room is being rebuilt). */
				rt->rids[rt->n] = (struct tn_str){tn_strndup(cs->rooms[r], rl), rl};
				rt->names[rt->n] = (struct tn_str){tn_strdup(cs->name), strlen(cs->name)};
				rt->sids[rt->n] = cs->sid;
				rt->n++;
				break;
			}
		}
	}
	tn_topology_free(before);
}

static void rejoin_send(struct tn_connector *c, struct rejoin *j, int t);
static void rejoin_run(struct tn_connector *c, struct rejoin *j);

/* Tried again by the tick (connector_tick) once retry_at has come. */
static void
rejoin_retry_later(struct tn_connector *c, struct rejoin *j)
{
	if (j->retry_armed)
		return;
	if (tn_now_ms() >= j->until_ms) {
		tn_warn("connector", "gave up re-registering members with new owners lost=%s",
			j->lost.id);
		rejoin_remove(c, j);
		return;
	}
	j->retry_armed = true;
	j->retry_at = tn_now_ms() + REJOIN_RETRY_MS;
}

static void
rejoin_retry_due(struct tn_connector *c)
{
	int64_t now = tn_now_ms();
	for (struct rejoin *j = c->rejoins, *next; j; j = next) {
		next = j->next;
		if (!j->retry_armed || now < j->retry_at)
			continue;
		j->retry_armed = false;
		rejoin_compute(c, j);
		rejoin_run(c, j);
	}
}

static void
rejoin_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct rejoin_call *rc = arg;
	struct tn_connector *c = rc->c;
	struct rejoin *j = err == TN_ECLOSED ? NULL : rejoin_find(c, rc->job);
	int t = rc->target;
	uint64_t gen = rc->gen;
	free(rc);
	if (j == NULL || j->gen != gen)
		return;
	struct tn_reply rep;
	struct rejoin_target *rt = &j->targets[t];
	if (err != TN_OK || tn_reply_decode(&rep, data, len, NULL) != TN_OK || rep.code != TN_OK) {
		if (err == TN_OK && rep.epoch > c->topo->version)
			want_refresh(c);
		rejoin_retry_later(c, j);
		return;
	}
	uint32_t sent = rt->n - rt->off < REJOIN_CHUNK ? rt->n - rt->off : REJOIN_CHUNK;
	rt->off += sent;
	tn_counter_add(c->rejoin_members, sent);
	if (rt->off < rt->n) {
		rejoin_send(c, j, t);
		return;
	}
	if (!rt->done && sent == 0) {
		rt->done = true; /* the final batch went through */
	} else {
		rejoin_send(c, j, t); /* entries done: the empty final batch confirms */
		return;
	}
	for (int i = 0; i < j->n_targets; i++)
		if (!j->targets[i].done)
			return;
	tn_info("connector", "members re-registered with new owners lost=%s", j->lost.id);
	rejoin_remove(c, j);
}

/* Sends target t its next batch: entries in chunks, then an empty final one. */
static void
rejoin_send(struct tn_connector *c, struct rejoin *j, int t)
{
	struct rejoin_target *rt = &j->targets[t];
	int chat = -1;
	for (int i = 0; i < c->n_chats; i++)
		if (c->chats[i].info && c->chats[i].rpc && strcmp(c->chats[i].id, rt->id) == 0)
			chat = i;
	if (chat < 0) {
		rejoin_retry_later(c, j);
		return;
	}
	uint32_t n = rt->n - rt->off < REJOIN_CHUNK ? rt->n - rt->off : REJOIN_CHUNK;
	struct tn_room_rejoin r = {.epoch = j->epoch, .connector_id = tn_str_of(c->cfg->id),
		.conn_inc = c->inc, .lost = tn_str_of(j->lost.id), .final = n == 0};
	tn_str_iter_init(&r.rids, rt->rids ? rt->rids + rt->off : NULL, n);
	tn_str_iter_init(&r.names, rt->names ? rt->names + rt->off : NULL, n);
	tn_u64_iter_init(&r.sids, rt->sids ? rt->sids + rt->off : NULL, n);
	tn_buf_reset(&c->scratch);
	tn_room_rejoin_encode(&c->scratch, &r);
	struct rejoin_call *rc = tn_calloc(1, sizeof(*rc));
	*rc = (struct rejoin_call){c, j->id, j->gen, t};
	tn_rpc_call(c->chats[chat].rpc, c->scratch.data, c->scratch.len, c->cfg->rpc_timeout_ms,
		rejoin_done, rc);
}

static void
rejoin_run(struct tn_connector *c, struct rejoin *j)
{
	if (j->n_targets == 0) {
		rejoin_remove(c, j);
		return;
	}
	for (int t = 0; t < j->n_targets; t++)
		rejoin_send(c, j, t);
}

/* Chat servers of old that are not in topo (the same process), and were not draining
 * (a draining server hands its rooms over itself): their rooms' members go to the new
 * owners. Jobs already running start over for the new membership. */
static void
rejoin_topology(struct tn_connector *c, const struct tn_topology *old)
{
	for (struct rejoin *j = c->rejoins; j; j = j->next) {
		j->retry_armed = false;
		rejoin_compute(c, j);
	}
	for (size_t i = 0; i < old->n; i++) {
		const struct tn_server_info *s = &old->servers[i];
		if (s->type != TN_SERVER_CHAT || s->draining)
			continue;
		const struct tn_server_info *now = tn_topology_find(c->topo, s->id);
		if (now && tn_server_info_same(now, s))
			continue;
		struct rejoin *j = tn_calloc(1, sizeof(*j));
		j->id = ++rejoin_ids;
		tn_server_info_copy(&j->lost, s);
		j->until_ms = tn_now_ms() + 2 * (int64_t)c->cfg->evict_after_ms;
		j->next = c->rejoins;
		c->rejoins = j;
		rejoin_compute(c, j);
		tn_info("connector", "chat server lost: re-registering members with new owners "
				     "lost=%s", s->id);
	}
	/* Answers for earlier computations are ignored (gen): send afresh. */
	for (struct rejoin *j = c->rejoins, *next; j; j = next) {
		next = j->next;
		rejoin_run(c, j);
	}
}

/* ---- housekeeping ---- */

#define TICK_MS 100

static void
kick_room(void *arg, const char *rid)
{
	struct tn_connector *c = arg;
	struct csess **victims = tn_malloc((c->sessions.count + 1) * sizeof(*victims));
	size_t n = 0, it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->sessions, &it)) != NULL;) {
		struct csess *cs = e->val;
		for (int i = 0; !cs->kicked && i < cs->n_rooms; i++)
			if (strcmp(cs->rooms[i], rid) == 0)
				victims[n++] = cs;
	}
	for (size_t i = 0; i < n; i++) {
		victims[i]->kicked = true;
		tn_edge_kick(victims[i]->s, "missed messages");
	}
	free(victims);
	tn_warn("push", "room pushes missing after the wait: sessions kicked rid=%s sessions=%zu",
		rid, n);
}

static void
connector_tick(void *arg)
{
	struct tn_connector *c = arg;
	tn_room_orders_expire(&c->orders, tn_now_ms(), kick_room, c);
	uint64_t now[3] = {c->orders.held, c->orders.duplicates, c->orders.gaps_given_up};
	struct tn_counter *to[3] = {c->push_held, c->push_room_duplicates, c->push_room_gaps};
	for (int i = 0; i < 3; i++) {
		tn_counter_add(to[i], now[i] - c->orders_seen[i]);
		c->orders_seen[i] = now[i];
	}
	rejoin_retry_due(c);
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
	rejoin_topology(c, prev);
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
