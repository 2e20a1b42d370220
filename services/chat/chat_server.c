#include "chat_server.h"

#include "chat_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "chat.h"
#include "clock.h"
#include "err.h"
#include "json.h"
#include "moves.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "push.h"
#include "reply.h"
#include "room.h"
#include "rpc.h"
#include "stream.h"

#define CHAT_RPC_WORKERS 64
#define CHAT_MAX_MSG (1u << 20)
/* Streams live in one array that never moves (nng's pipe callbacks hold their
 * addresses), so connectors that join at run time take slots up to this many. */
#define CHAT_MAX_STREAMS 1024
/* After the last flush at a stop, how long the push sockets stay open: nng has no linger,
 * and a batch still in its queue (not yet in the kernel's) would die with the socket. */
#define CHAT_STOP_LINGER_MS 100

/* An enter waiting for the push stream to its connector to come up. */
struct pending_enter {
	struct pending_enter *next;
	struct tn_chat *chat;
	struct tn_rpc_req *req;
	const uint8_t *data; /* valid until req is answered */
	size_t len;
	int stream;
	uint64_t timer;
};


void
chat_reply_code(struct tn_chat *c, struct tn_rpc_req *req, int code, const char *reason)
{
	struct tn_reply r = {.code = code, .reason = tn_str_of(reason ? reason : ""),
		.epoch = c->topo->version};
	tn_buf_reset(&c->scratch);
	tn_reply_encode(&c->scratch, &r);
	tn_rpc_reply(req, c->scratch.data, c->scratch.len);
}

int
chat_stream_slot(struct tn_chat *c, struct tn_str conn_id)
{
	for (int i = 0; i < c->n_streams; i++)
		if (tn_str_eq(tn_str_of(c->streams[i].conn_id), conn_id))
			return i;
	return -1;
}

int
chat_stream_of(struct tn_chat *c, struct tn_str conn_id)
{
	for (int i = 0; i < c->n_streams; i++)
		if (!c->stream_closed[i] && strlen(c->streams[i].conn_id) == conn_id.len &&
			memcmp(c->streams[i].conn_id, conn_id.p, conn_id.len) == 0)
			return i;
	return -1;
}

/* Posts one flush of every stream after the tasks already queued, so that pushes produced
 * by a burst of requests leave in one message per connector. */
static void flush_all(void *arg, bool cancelled);

static void
schedule_flush(struct tn_chat *c)
{
	if (c->flush_posted)
		return;
	c->flush_posted = true;
	tn_loop_post(c->loop, flush_all, c);
}

uint64_t
chat_room_gen(struct tn_chat *c)
{
	/* Wall-clock based, so that a room made again later, here or on another chat server,
	 * gets a larger one; the counter separates rooms made in the same microsecond. */
	uint64_t g = (uint64_t)tn_wall_ms() * 1000 + (uint64_t)(tn_now_us() % 1000);
	if (g <= c->last_gen)
		g = c->last_gen + 1;
	c->last_gen = g;
	return g;
}

/* An answer held until the pushes of its request have gone to nng. */
struct held_reply {
	struct tn_rpc_req *req;
	size_t len;
	uint8_t data[];
};

void
chat_flush_all(struct tn_chat *c)
{
	c->flush_posted = false;
	for (int i = 0; i < c->n_streams; i++)
		if (!c->stream_closed[i])
			tn_stream_flush(&c->streams[i], c->cfg->id);
	/* Only now the answers: a client told "done" has its pushes on their way (and a
	 * crash after the answer cannot have lost them in our batch). */
	for (size_t i = 0; i < c->n_held_replies; i++) {
		struct held_reply *h = c->held_replies[i];
		tn_rpc_reply(h->req, h->data, h->len);
		free(h);
	}
	c->n_held_replies = 0;
}

/* Answers req with data once the pushes made so far are flushed (with the next flush of
 * the burst, so batching is kept). */
static void
reply_after_flush(struct tn_chat *c, struct tn_rpc_req *req, const void *data, size_t len)
{
	struct held_reply *h = tn_malloc(sizeof(*h) + len);
	h->req = req;
	h->len = len;
	memcpy(h->data, data, len);
	if (c->n_held_replies == c->cap_held_replies) {
		c->cap_held_replies = c->cap_held_replies ? c->cap_held_replies * 2 : 64;
		c->held_replies = tn_realloc(c->held_replies,
			c->cap_held_replies * sizeof(*c->held_replies));
	}
	c->held_replies[c->n_held_replies++] = h;
	schedule_flush(c);
}

static void
reply_ok_after_flush(struct tn_chat *c, struct tn_rpc_req *req)
{
	struct tn_reply r = {.code = TN_OK, .epoch = c->topo->version};
	tn_buf_reset(&c->scratch);
	tn_reply_encode(&c->scratch, &r);
	reply_after_flush(c, req, c->scratch.data, c->scratch.len);
}

static void
flush_all(void *arg, bool cancelled)
{
	if (!cancelled)
		chat_flush_all(arg);
}

static void body_user(struct tn_chat *c, const char *route, const char *name, size_t len);

/* Pushes route/body to every member of room (except `except`, may be NULL): one item per
 * connector stream that hosts members, carrying their session ids. */
static void
push_room(struct tn_chat *c, struct tn_room *room, const struct tn_member *except,
	const char *route, const char *body, size_t body_len)
{
	uint64_t room_seq = room->next_seq++;
	if (room->gen == 0)
		room->gen = chat_room_gen(c);
	struct tn_blob *blob = tn_blob_new(body, body_len);
	/* A room's counts cover the streams there were when it last grew; members of a
	 * closed stream's connector are skipped (they go when connector loss is handled). */
	for (int i = 0; i < room->n_streams; i++) {
		uint32_t n = room->per_stream[i];
		if (except && except->stream == i)
			n--;
		if (n > 0 && !c->stream_closed[i])
			tn_stream_item_open(&c->streams[i], c->cfg->id, room->rid, room->rid_len, route,
				blob, n, room_seq, room->gen);
	}
	for (struct tn_member *m = room->head; m; m = m->next)
		if (m != except && !c->stream_closed[m->stream])
			tn_stream_item_sid(&c->streams[m->stream], m->sid);
	tn_blob_unref(blob);
	for (int i = 0; i < c->n_streams; i++)
		if (!c->stream_closed[i])
			tn_stream_flush_if_big(&c->streams[i], c->cfg->id);
	schedule_flush(c);
}

static void
push_one(struct tn_chat *c, struct tn_room *room, const struct tn_member *to, const char *route,
	const char *body, size_t body_len)
{
	struct tn_stream *s = &c->streams[to->stream];
	if (c->stream_closed[to->stream])
		return;
	struct tn_blob *blob = tn_blob_new(body, body_len);
	tn_stream_item_open(s, c->cfg->id, room->rid, room->rid_len, route, blob, 1, 0, 0);
	tn_stream_item_sid(s, to->sid);
	tn_blob_unref(blob);
	schedule_flush(c);
}

/* Removes every member hosted by stream si (its connector restarted: those sessions are
 * gone) and tells the rest of each room. */
static void
purge_stream_members(struct tn_chat *c, int si)
{
	size_t it = 0, n = 0, removed = 0;
	struct tn_room **rooms = tn_malloc((tn_rooms_count(&c->rooms) + 1) * sizeof(*rooms));
	for (struct tn_map_entry *e; (e = tn_map_next(&c->rooms.by_rid, &it)) != NULL;)
		rooms[n++] = e->val;
	struct tn_buf gone;
	tn_buf_init(&gone);
	for (size_t i = 0; i < n; i++) {
		struct tn_room *room = rooms[i];
		/* Take them all out first, so no onLeave is addressed to one of them. */
		tn_buf_reset(&gone);
		for (struct tn_member *m = room->head, *next; m; m = next) {
			next = m->next;
			if (m->stream != si)
				continue;
			uint32_t len = (uint32_t)m->name_len;
			tn_buf_append(&gone, &len, sizeof(len));
			tn_buf_append(&gone, m->name, len);
			tn_room_remove(&c->rooms, room, m);
			removed++;
		}
		for (size_t off = 0; off < gone.len && room->n_members > 0;) {
			uint32_t len;
			memcpy(&len, gone.data + off, sizeof(len));
			body_user(c, "onLeave", (const char *)gone.data + off + sizeof(len), len);
			push_room(c, room, NULL, "onLeave", (const char *)c->body.data, c->body.len);
			off += sizeof(len) + len;
		}
		tn_rooms_drop_if_empty(&c->rooms, room);
	}
	tn_buf_fini(&gone);
	free(rooms);
	chat_update_gauges(c);
	if (removed)
		tn_info("chat", "connector restarted: its members left connector=%s members=%zu",
			c->streams[si].conn_id, removed);
}

/* Checks the connector incarnation a request carries. A newer one means the connector
 * restarted: its old sessions are gone and its stream starts over. An older one is a
 * late request from before the restart: refused. Returns false when it replied. */
static bool
check_incarnation(struct tn_chat *c, struct tn_rpc_req *req, int si, uint64_t conn_inc)
{
	struct tn_stream *s = &c->streams[si];
	if (conn_inc == 0 || conn_inc == s->conn_inc)
		return true;
	if (s->conn_inc != 0 && conn_inc < s->conn_inc) {
		chat_reply_code(c, req, TN_ECLOSED, "request from a connector incarnation that has ended");
		return false;
	}
	if (s->conn_inc != 0) {
		tn_stream_flush(s, c->cfg->id);
		purge_stream_members(c, si);
		chat_flush_all(c);
		tn_counter_inc(c->conn_restarts);
	}
	tn_stream_reset(s, conn_inc);
	return true;
}

/* {"route":"onAdd","user":name}: pomelo keeps the route key in the body. */
static void
body_user(struct tn_chat *c, const char *route, const char *name, size_t len)
{
	struct tn_jw w;
	tn_buf_reset(&c->body);
	tn_jw_init(&w, &c->body);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "route");
	tn_jw_cstr(&w, route);
	tn_jw_key(&w, "user");
	tn_jw_str(&w, name, len);
	tn_jw_obj_end(&w);
}

void
chat_update_gauges(struct tn_chat *c)
{
	tn_gauge_set(c->g_rooms, (int64_t)tn_rooms_count(&c->rooms));
	tn_gauge_set(c->g_members, (int64_t)c->rooms.n_members);
}

/* Rooms made before a connector joined count members over fewer streams: widen. */
void
chat_room_fit(struct tn_chat *c, struct tn_room *room)
{
	if (room->n_streams >= c->n_streams)
		return;
	room->per_stream = tn_realloc(room->per_stream, (size_t)c->n_streams * sizeof(uint32_t));
	memset(room->per_stream + room->n_streams, 0,
		(size_t)(c->n_streams - room->n_streams) * sizeof(uint32_t));
	room->n_streams = c->n_streams;
}

static void pending_expire(void *arg);

static void
defer_enter(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len, int stream)
{
	struct pending_enter *p = tn_calloc(1, sizeof(*p));
	p->chat = c;
	p->req = req;
	p->data = data;
	p->len = len;
	p->stream = stream;
	p->timer = tn_loop_timer_add(c->loop, c->cfg->rpc_timeout_ms, pending_expire, p);
	p->next = c->pending;
	c->pending = p;
}

static bool
unlink_pending(struct tn_chat *c, struct pending_enter *p)
{
	for (struct pending_enter **pp = &c->pending; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			return true;
		}
	}
	return false;
}

static void
pending_expire(void *arg)
{
	struct pending_enter *p = arg;
	if (!unlink_pending(p->chat, p))
		return;
	tn_warn("chat", "enter refused: push stream down connector=%s",
		p->chat->streams[p->stream].conn_id);
	chat_reply_code(p->chat, p->req, TN_EUNREACH, "push stream to the connector is not up");
	free(p);
}

static void
handle_enter(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_chat_req r;
	int rv = tn_chat_req_decode(&r, TN_KIND_CHAT_ENTER, data, len, NULL);
	if (rv) {
		tn_counter_inc(c->req_bad);
		chat_reply_code(c, req, rv, "malformed enter");
		return;
	}
	int si = chat_stream_of(c, r.connector_id);
	if (si < 0) {
		chat_reply_code(c, req, TN_ENOENT, "unknown connector");
		return;
	}
	if (!check_incarnation(c, req, si, r.conn_inc))
		return;
	struct tn_room *room;
	if (!chat_room_route(c, req, data, len, r.epoch, r.rid, &room))
		return;
	if (!tn_stream_up(&c->streams[si])) {
		/* Answering now would let the client miss the pushes that follow. */
		defer_enter(c, req, data, len, si);
		return;
	}
	if (room == NULL)
		room = tn_rooms_get(&c->rooms, r.rid.p, r.rid.len);
	if (tn_room_member(room, r.name.p, r.name.len)) {
		tn_counter_inc(c->rejected_dup);
		tn_rooms_drop_if_empty(&c->rooms, room);
		chat_reply_code(c, req, TN_EEXIST, "name taken in this room");
		return;
	}
	/* onAdd goes to the room before the newcomer joins, so the newcomer does not get it. */
	if (room->n_members > 0) {
		body_user(c, "onAdd", r.name.p, r.name.len);
		push_room(c, room, NULL, "onAdd", (const char *)c->body.data, c->body.len);
	}
	chat_room_fit(c, room);
	tn_room_add(&c->rooms, room, r.name.p, r.name.len, r.sid, si);
	chat_update_gauges(c);

	struct tn_str *names = tn_malloc(room->n_members * sizeof(*names));
	uint32_t n = 0;
	for (struct tn_member *m = room->head; m; m = m->next)
		names[n++] = (struct tn_str){m->name, m->name_len};
	struct tn_reply rep = {.code = TN_OK, .has_users = true};
	tn_str_iter_init(&rep.users, names, n);
	tn_buf_reset(&c->scratch);
	tn_reply_encode(&c->scratch, &rep);
	free(names);
	reply_after_flush(c, req, c->scratch.data, c->scratch.len);
}

static void
handle_leave(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_chat_req r;
	int rv = tn_chat_req_decode(&r, TN_KIND_CHAT_LEAVE, data, len, NULL);
	if (rv) {
		tn_counter_inc(c->req_bad);
		chat_reply_code(c, req, rv, "malformed leave");
		return;
	}
	int si = chat_stream_of(c, r.connector_id);
	if (si >= 0 && !check_incarnation(c, req, si, r.conn_inc))
		return;
	struct tn_room *room;
	if (!chat_room_route(c, req, data, len, r.epoch, r.rid, &room))
		return;
	struct tn_member *m = room ? tn_room_member(room, r.name.p, r.name.len) : NULL;
	/* Only the session that entered can leave under that name. */
	if (m == NULL || m->sid != r.sid || m->stream != si) {
		if (room)
			tn_rooms_drop_if_empty(&c->rooms, room);
		chat_reply_code(c, req, TN_ENOENT, "not in this room");
		return;
	}
	tn_room_remove(&c->rooms, room, m);
	if (room->n_members > 0) {
		body_user(c, "onLeave", r.name.p, r.name.len);
		push_room(c, room, NULL, "onLeave", (const char *)c->body.data, c->body.len);
	}
	tn_rooms_drop_if_empty(&c->rooms, room);
	chat_update_gauges(c);
	reply_ok_after_flush(c, req);
}

static void
handle_send(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_chat_req r;
	int rv = tn_chat_req_decode(&r, TN_KIND_CHAT_SEND, data, len, NULL);
	if (rv) {
		tn_counter_inc(c->req_bad);
		chat_reply_code(c, req, rv, "malformed send");
		return;
	}
	int si = chat_stream_of(c, r.connector_id);
	if (si >= 0 && !check_incarnation(c, req, si, r.conn_inc))
		return;
	struct tn_room *room;
	if (!chat_room_route(c, req, data, len, r.epoch, r.rid, &room))
		return;
	struct tn_member *from = room ? tn_room_member(room, r.name.p, r.name.len) : NULL;
	if (from == NULL || from->sid != r.sid || from->stream != si) {
		if (room)
			tn_rooms_drop_if_empty(&c->rooms, room);
		chat_reply_code(c, req, TN_ENOENT, "not in this room");
		return;
	}
	bool all = r.target.len == 1 && r.target.p[0] == '*';
	struct tn_member *to = all ? NULL : tn_room_member(room, r.target.p, r.target.len);
	if (!all && to == NULL) {
		tn_counter_inc(c->rejected_absent);
		chat_reply_code(c, req, TN_ENOENT, "user not in this room");
		return;
	}
	struct tn_jw w;
	tn_buf_reset(&c->body);
	tn_jw_init(&w, &c->body);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "msg");
	tn_jw_str(&w, r.content.p, r.content.len);
	tn_jw_key(&w, "from");
	tn_jw_str(&w, from->name, from->name_len);
	tn_jw_key(&w, "target");
	tn_jw_str(&w, r.target.p, r.target.len);
	tn_jw_obj_end(&w);
	if (all)
		push_room(c, room, NULL, "onChat", (const char *)c->body.data, c->body.len);
	else
		push_one(c, room, to, "onChat", (const char *)c->body.data, c->body.len);
	reply_ok_after_flush(c, req);
}

static void
handle_fetch(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_push_fetch f;
	int rv = tn_push_fetch_decode(&f, data, len, NULL);
	if (rv) {
		tn_counter_inc(c->req_bad);
		chat_reply_code(c, req, rv, "malformed fetch");
		return;
	}
	int si = chat_stream_of(c, f.connector_id);
	struct tn_stream *s = si >= 0 ? &c->streams[si] : NULL;
	/* The items must still be in the ring, and of the same two incarnations. */
	struct tn_buf items;
	tn_buf_init(&items);
	rv = TN_ENOENT;
	if (s && f.chat_inc == s->chat_inc && f.conn_inc == s->conn_inc &&
		f.to_seq - f.from_seq < 1000000)
		rv = tn_stream_fetch(s, c->cfg->id, f.from_seq, f.to_seq, &items);
	if (rv == TN_OK) {
		tn_counter_inc(c->fetch_ok);
		struct tn_reply rep = {.code = TN_OK, .body = {(const char *)items.data, items.len}};
		tn_buf_reset(&c->scratch);
		tn_reply_encode(&c->scratch, &rep);
		tn_rpc_reply(req, c->scratch.data, c->scratch.len);
	} else {
		tn_counter_inc(c->fetch_gone);
		tn_warn("push", "fetch of items no longer held connector=%.*s from=%llu to=%llu",
			(int)f.connector_id.len, f.connector_id.p, (unsigned long long)f.from_seq,
			(unsigned long long)f.to_seq);
		chat_reply_code(c, req, TN_ENOENT, "those items are no longer held");
	}
	tn_buf_fini(&items);
}

void
chat_dispatch(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	enum tn_kind kind = 0;
	tn_proto_peek(&kind, data, len);
	if (kind == TN_KIND_CHAT_ENTER)
		handle_enter(c, req, data, len);
	else if (kind == TN_KIND_CHAT_LEAVE)
		handle_leave(c, req, data, len);
	else
		handle_send(c, req, data, len);
}

static void
on_request(void *arg, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_chat *c = arg;
	int64_t t0 = tn_now_us();
	enum tn_kind kind;
	int rv = tn_proto_peek(&kind, data, len);
	if (rv) {
		tn_counter_inc(c->req_bad);
		chat_reply_code(c, req, rv, "unreadable request");
		return;
	}
	switch (kind) {
	case TN_KIND_CHAT_ENTER:
		tn_counter_inc(c->req_enter);
		handle_enter(c, req, data, len);
		break;
	case TN_KIND_CHAT_LEAVE:
		tn_counter_inc(c->req_leave);
		handle_leave(c, req, data, len);
		break;
	case TN_KIND_CHAT_SEND:
		tn_counter_inc(c->req_send);
		handle_send(c, req, data, len);
		break;
	case TN_KIND_PUSH_FETCH:
		tn_counter_inc(c->req_fetch);
		handle_fetch(c, req, data, len);
		break;
	case TN_KIND_ROOM_STATE: chat_handle_state(c, req, data, len); break;
	case TN_KIND_ROOM_CLAIM: chat_handle_claim(c, req, data, len); break;
	case TN_KIND_ROOM_REJOIN: chat_handle_rejoin(c, req, data, len); break;
	default:
		tn_counter_inc(c->req_bad);
		chat_reply_code(c, req, TN_EKIND, "this server does not serve that kind");
		break;
	}
	tn_histogram_observe(c->handle_seconds, (double)(tn_now_us() - t0) / 1e6);
}

/* A pipe of some stream connected: answer the enters that waited for it. */
static void
stream_up(void *arg, bool cancelled)
{
	struct tn_chat *c = arg;
	if (cancelled)
		return;
	struct pending_enter *ready = NULL;
	for (struct pending_enter **pp = &c->pending; *pp;) {
		struct pending_enter *p = *pp;
		if (tn_stream_up(&c->streams[p->stream])) {
			*pp = p->next;
			p->next = ready;
			ready = p;
		} else {
			pp = &p->next;
		}
	}
	while (ready) {
		struct pending_enter *p = ready;
		ready = p->next;
		tn_loop_timer_cancel(c->loop, p->timer);
		handle_enter(c, p->req, p->data, p->len);
		free(p);
	}
}

/* The per-connector push families (made on first use, then found again). */
static void
push_families(struct tn_metric_family **msgs, struct tn_metric_family **items,
	struct tn_metric_family **dropped)
{
	tn_metrics_family_new(msgs, TN_METRIC_COUNTER, "tern_chat_push_messages_total",
		"push messages (batches) published, by connector", "connector", NULL, 0);
	tn_metrics_family_new(items, TN_METRIC_COUNTER, "tern_chat_push_items_total",
		"push items published, by connector", "connector", NULL, 0);
	tn_metrics_family_new(dropped, TN_METRIC_COUNTER, "tern_chat_push_dropped_total",
		"push messages dropped on purpose by fault injection (debugDropPushEvery)",
		"connector", NULL, 0);
}

/* The metric children of stream i. */
static void
stream_metrics(struct tn_chat *c, int i)
{
	struct tn_metric_family *msgs, *items, *dropped;
	struct tn_stream *s = &c->streams[i];
	push_families(&msgs, &items, &dropped);
	s->msgs = tn_metrics_counter_labels(msgs, s->conn_id);
	s->items = tn_metrics_counter_labels(items, s->conn_id);
	s->dropped = tn_metrics_counter_labels(dropped, s->conn_id);
}

static void
register_metrics(struct tn_chat *c)
{
	struct tn_metric_family *fam;
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_chat_requests_total",
		"RPC requests received, by kind", "kind", NULL, 0);
	c->req_enter = tn_metrics_counter_labels(fam, "enter");
	c->req_leave = tn_metrics_counter_labels(fam, "leave");
	c->req_send = tn_metrics_counter_labels(fam, "send");
	c->req_bad = tn_metrics_counter_labels(fam, "invalid");
	c->req_fetch = tn_metrics_counter_labels(fam, "fetch");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_chat_push_fetches_total",
		"gap fetches from connectors, by outcome", "outcome", NULL, 0);
	c->fetch_ok = tn_metrics_counter_labels(fam, "served");
	c->fetch_gone = tn_metrics_counter_labels(fam, "gone");
	tn_metrics_counter(&c->conn_restarts, "tern_chat_connector_restarts_total",
		"connectors seen with a new incarnation (their members removed)");
	tn_metrics_counter(&c->conn_lost, "tern_chat_connectors_lost_total",
		"connectors that left the membership (their members removed)");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_chat_retry_answers_total",
		"requests answered with a retryable code, by code", "code", NULL, 0);
	c->moved = tn_metrics_counter_labels(fam, "moved");
	c->recovering = tn_metrics_counter_labels(fam, "recovering");
	tn_metrics_counter(&c->claims_sent, "tern_chat_room_claims_total",
		"rooms asked of the other chat servers (a room this server owns but does not hold)");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_chat_room_moves_total",
		"rooms handed over, by direction", "direction", NULL, 0);
	c->rooms_in = tn_metrics_counter_labels(fam, "in");
	c->rooms_out = tn_metrics_counter_labels(fam, "out");
	tn_metrics_counter(&c->rooms_rebuilt, "tern_chat_rooms_rebuilt_total",
		"rooms rebuilt from the connectors after their owner was lost");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_chat_recoveries_total",
		"recoveries of a lost chat server's rooms, by how they ended", "end", NULL, 0);
	c->recoveries = tn_metrics_counter_labels(fam, "confirmed");
	c->recoveries_timed_out = tn_metrics_counter_labels(fam, "timed out");
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_chat_refused_total",
		"requests refused, by reason", "reason", NULL, 0);
	c->rejected_dup = tn_metrics_counter_labels(fam, "name taken");
	c->rejected_absent = tn_metrics_counter_labels(fam, "target absent");
	tn_metrics_gauge(&c->g_rooms, "tern_chat_rooms", "rooms owned by this server");
	tn_metrics_gauge(&c->g_members, "tern_chat_members", "room memberships on this server");
	static const double bounds[] = {1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 1e-2};
	tn_metrics_histogram(&c->handle_seconds, "tern_chat_handle_seconds",
		"time to handle one RPC request on the room thread", bounds, 8);
	struct tn_metric_family *msgs, *items, *dropped;
	push_families(&msgs, &items, &dropped); /* listed even before a connector is known */
	for (int i = 0; i < c->n_streams; i++)
		stream_metrics(c, i);
}

/* Announces stream positions after activity, so a lost tail is noticed. */
static void stream_leaving_check(struct tn_chat *c, int i);

static void
tick(void *arg)
{
	struct tn_chat *c = arg;
	for (int i = 0; i < c->n_streams; i++) {
		if (c->stream_closed[i])
			continue;
		/* Not while stopping: a message still queued when the socket closes is leaked
		 * by nng 1.5.2 (fixed upstream later), and the streams end anyway. */
		if (!c->stopping)
			tn_stream_tick(&c->streams[i], c->cfg->id);
		if (c->stream_leaving[i])
			stream_leaving_check(c, i);
	}
	chat_moves_tick(c);
	tn_loop_timer_add(c->loop, c->cfg->push_tick_ms, tick, c);
}

static void
start_ticks(void *arg, bool cancelled)
{
	struct tn_chat *c = arg;
	if (!cancelled)
		tn_loop_timer_add(c->loop, c->cfg->push_tick_ms, tick, c);
}

int
tn_chat_new(struct tn_chat **out, const struct tn_config *cfg, struct tn_topology *topo,
	struct tn_loop *loop)
{
	struct tn_chat *c = tn_calloc(1, sizeof(*c));
	c->cfg = cfg;
	c->topo = topo;
	c->loop = loop;
	tn_buf_init(&c->scratch);
	tn_buf_init(&c->body);
	const struct tn_server_info *conns[CHAT_MAX_STREAMS];
	size_t n = tn_topology_of_type(topo, TN_SERVER_CONNECTOR, conns, CHAT_MAX_STREAMS);
	if (n > CHAT_MAX_STREAMS)
		n = CHAT_MAX_STREAMS;
	c->streams = tn_calloc(CHAT_MAX_STREAMS, sizeof(*c->streams));
	c->stream_closed = tn_calloc(CHAT_MAX_STREAMS, sizeof(*c->stream_closed));
	c->stream_leaving = tn_calloc(CHAT_MAX_STREAMS, sizeof(*c->stream_leaving));
	chat_moves_init(c);
	uint64_t inc = (uint64_t)tn_wall_ms() * 1000 + (uint64_t)(tn_now_us() % 1000);
	c->inc = inc;
	int rv = TN_OK;
	for (size_t i = 0; i < n && rv == TN_OK; i++) {
		rv = tn_stream_open(&c->streams[i], conns[i]->id, conns[i]->host, conns[i]->port, inc,
			(uint32_t)cfg->push_ring, tn_loop_exec(loop), stream_up, c);
		c->streams[i].drop_every = (uint32_t)cfg->debug_drop_push_every;
		c->n_streams++;
	}
	tn_rooms_init(&c->rooms, c->n_streams);
	register_metrics(c);
	char url[300];
	if (rv == TN_OK)
		rv = tn_nng_url(url, sizeof(url), cfg->host, cfg->port);
	if (rv == TN_OK)
		rv = tn_rpc_server_start(&c->rpc, url, CHAT_RPC_WORKERS, CHAT_MAX_MSG,
			tn_loop_exec(loop), on_request, c);
	if (rv) {
		tn_chat_free(c);
		return rv;
	}
	tn_loop_post(loop, start_ticks, c);
	tn_info("chat", "serving rpc=%s connectors=%d incarnation=%llu", url, c->n_streams,
		(unsigned long long)inc);
	*out = c;
	return TN_OK;
}

/* The linger is over: pushes made meanwhile go out too, then the loop stops. */
static void
stop_now(void *arg)
{
	struct tn_chat *c = arg;
	chat_flush_all(c);
	tn_loop_stop(c->loop);
}

/* Runs after every request queued before the stop: what they produced goes out now. */
static void
stop_flush(void *arg, bool cancelled)
{
	struct tn_chat *c = arg;
	if (cancelled)
		return;
	c->stopping = true;
	chat_flush_all(c);
	int linger = c->cfg->drain_timeout_ms < CHAT_STOP_LINGER_MS ? c->cfg->drain_timeout_ms
								       : CHAT_STOP_LINGER_MS;
	tn_loop_timer_add(c->loop, linger, stop_now, c);
}

void
tn_chat_set_refresh(struct tn_chat *c, void (*fn)(void *arg), void *arg)
{
	tn_hook_set(&c->refresh, fn, arg);
}

static void
drain_task(void *arg, bool cancelled)
{
	if (!cancelled)
		chat_moves_drain(arg);
}

size_t
tn_chat_drain(struct tn_chat *c, int64_t deadline_ms)
{
	tn_loop_post(c->loop, drain_task, c);
	pthread_mutex_lock(&c->drain_mu);
	while (!c->drain_done) {
		int64_t left = deadline_ms - tn_now_ms();
		if (left <= 0)
			break;
		struct timespec ts;
		tn_timespec_after(&ts, CLOCK_REALTIME, left);
		pthread_cond_timedwait(&c->drain_cv, &c->drain_mu, &ts);
	}
	/* What the loop thread last counted (it owns the rooms); not done is never 0. */
	size_t rest = c->drain_done ? 0 : c->drain_left > 0 ? c->drain_left : 1;
	pthread_mutex_unlock(&c->drain_mu);
	return rest;
}

void
tn_chat_stop(struct tn_chat *c)
{
	tn_loop_post(c->loop, stop_flush, c);
}

void
tn_chat_free(struct tn_chat *c)
{
	if (c == NULL)
		return;
	tn_rpc_server_stop(c->rpc);
	for (int i = 0; i < c->n_streams; i++)
		tn_stream_close(&c->streams[i]);
	while (c->pending) {
		struct pending_enter *p = c->pending;
		c->pending = p->next;
		free(p);
	}
	chat_moves_fini(c);
	for (size_t i = 0; i < c->n_held_replies; i++)
		free(c->held_replies[i]); /* the server is stopped: nobody to answer */
	free(c->held_replies);
	tn_rooms_fini(&c->rooms);
	free(c->streams);
	free(c->stream_closed);
	free(c->stream_leaving);
	tn_buf_fini(&c->scratch);
	tn_buf_fini(&c->body);
	tn_topology_free(c->topo);
	free(c);
}

/* ---- membership at run time ---- */

/* Opens the stream of slot i to conn. A slot used before (the connector left, or moved)
 * keeps the connector incarnation it knew, so that a restarted connector's first request
 * still purges the members of the old one; its sequence starts over under a new stream
 * incarnation, which tells the connector to start counting again. */
static void
stream_start(struct tn_chat *c, int i, const struct tn_server_info *conn)
{
	struct tn_stream *s = &c->streams[i];
	uint64_t conn_inc = i < c->n_streams ? s->conn_inc : 0;
	uint64_t stream_inc = c->inc;
	if (i < c->n_streams) {
		tn_stream_close(s);
		stream_inc = (uint64_t)tn_wall_ms() * 1000 + (uint64_t)(tn_now_us() % 1000);
	}
	int rv = tn_stream_open(s, conn->id, conn->host, conn->port, stream_inc,
		(uint32_t)c->cfg->push_ring, tn_loop_exec(c->loop), stream_up, c);
	s->conn_inc = conn_inc;
	s->drop_every = (uint32_t)c->cfg->debug_drop_push_every;
	if (i == c->n_streams)
		c->n_streams++;
	c->rooms.n_streams = c->n_streams;
	c->stream_closed[i] = rv != TN_OK;
	stream_metrics(c, i);
	tn_info("chat", "push stream opened connector=%s url=%s", conn->id, s->url);
}

/* Follows one connector of the membership: opens its stream, or reopens it when it was
 * closed or the connector moved. */
static void
stream_follow(struct tn_chat *c, const struct tn_server_info *conn)
{
	char url[300];
	tn_nng_url(url, sizeof(url), conn->host, conn->port);
	for (int i = 0; i < c->n_streams; i++) {
		if (strcmp(c->streams[i].conn_id, conn->id) != 0)
			continue;
		if (c->stream_closed[i] || strcmp(c->streams[i].url, url) != 0)
			stream_start(c, i, conn);
		return;
	}
	if (c->n_streams == CHAT_MAX_STREAMS) {
		tn_error("chat", "too many connectors: no push stream connector=%s max=%d", conn->id,
			CHAT_MAX_STREAMS);
		return;
	}
	stream_start(c, c->n_streams, conn);
}

/* A connector left the membership: its members go (and the rest of each room hears
 * onLeave) once its push pipe is down, which is at once for a crashed connector; a
 * draining one is still sending its own LEAVEs, so it gets until the drain bound. */
static void
stream_leaving_check(struct tn_chat *c, int i)
{
	if (tn_stream_up(&c->streams[i]) && tn_now_ms() < c->stream_leaving[i])
		return;
	c->stream_leaving[i] = 0;
	tn_stream_flush(&c->streams[i], c->cfg->id);
	purge_stream_members(c, i);
	chat_flush_all(c);
	nng_close(c->streams[i].pub);
	c->stream_closed[i] = true;
	tn_counter_inc(c->conn_lost);
	tn_info("chat", "push stream closed: connector left the membership connector=%s",
		c->streams[i].conn_id);
}

void
tn_chat_set_topology(struct tn_chat *c, struct tn_topology *topo)
{
	struct tn_topology *old = c->topo;
	c->topo = topo;
	for (int i = 0; i < c->n_streams; i++) {
		const struct tn_server_info *s = tn_topology_find(topo, c->streams[i].conn_id);
		bool member = s && s->type == TN_SERVER_CONNECTOR;
		if (member)
			c->stream_leaving[i] = 0;
		if (c->stream_closed[i] || member || c->stream_leaving[i])
			continue;
		c->stream_leaving[i] = tn_now_ms() + c->cfg->drain_timeout_ms;
		stream_leaving_check(c, i);
	}
	const struct tn_server_info *conns[CHAT_MAX_STREAMS];
	size_t n = tn_topology_of_type(topo, TN_SERVER_CONNECTOR, conns, CHAT_MAX_STREAMS);
	for (size_t k = 0; k < n && k < CHAT_MAX_STREAMS; k++)
		stream_follow(c, conns[k]);
	chat_moves_topology(c, old);
	tn_topology_free(old);
}

void
tn_chat_load(struct tn_chat *c, struct tn_server_load *out, uint64_t *messages)
{
	out->rooms = tn_rooms_count(&c->rooms);
	out->members = c->rooms.n_members;
	*messages = tn_counter_get(c->req_enter) + tn_counter_get(c->req_leave) +
		tn_counter_get(c->req_send);
}
