/* Push streams from the chat servers: batches in order per stream, gaps fetched again,
 * each room's broadcasts in the room's order (room_order.h), and kicks when something
 * cannot be recovered. */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "connector_internal.h"
#include "err.h"
#include "log.h"
#include "reply.h"

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
void
conn_deliver_to(void *arg, const char *route, struct tn_str body, struct tn_u64_iter sids)
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

/* Kicks with "missed messages" every local session in a room for which hit(c, rid, arg)
 * holds, and returns how many. The sessions are collected first: kicking changes the
 * session map (on_close). Counted by the edge in
 * tern_connector_kicks_total{reason="missed messages"}. */
static size_t
kick_missed(struct tn_connector *c, bool (*hit)(struct tn_connector *c, const char *rid,
	const char *arg), const char *arg)
{
	struct csess **victims = tn_malloc((c->sessions.count + 1) * sizeof(*victims));
	size_t n = 0, it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->sessions, &it)) != NULL;) {
		struct csess *cs = e->val;
		for (int i = 0; !cs->kicked && i < cs->n_rooms; i++) {
			if (hit(c, cs->rooms[i], arg)) {
				victims[n++] = cs;
				break;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		victims[i]->kicked = true;
		tn_edge_kick(victims[i]->s, "missed messages");
	}
	free(victims);
	return n;
}

static bool
owned_by(struct tn_connector *c, const char *rid, const char *chat_id)
{
	int chat = conn_chat_for_room(c, rid, strlen(rid));
	return chat >= 0 && strcmp(c->chats[chat].id, chat_id) == 0;
}

static bool
same_room(struct tn_connector *c, const char *rid, const char *other)
{
	return strcmp(rid, other) == 0;
}

/* Items of a stream are lost for good: every local session in a room owned by that chat
 * server may have missed something, so each is told and disconnected (it logs in again
 * and sees the room as it is now). */
static void
kick_rooms_of(struct tn_connector *c, const char *chat_id)
{
	size_t n = kick_missed(c, owned_by, chat_id);
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

int
conn_push_listen(struct tn_connector *c)
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

void
conn_kick_room(void *arg, const char *rid)
{
	struct tn_connector *c = arg;
	size_t n = kick_missed(c, same_room, rid);
	tn_warn("push", "room pushes missing after the wait: sessions kicked rid=%s sessions=%zu",
		rid, n);
}

void
conn_stream_free(struct stream_in *st)
{
	for (size_t i = 0; i < st->n_held; i++)
		nng_msg_free(st->held[i]);
	free(st->held);
	free(st->chat_id);
	free(st);
}
