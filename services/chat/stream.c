#include "stream.h"

#include <nng/protocol/pubsub0/pub.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "rpc.h"

/* Per-pipe queue of the PUB socket: nng drops the oldest message when it is full, so it is
 * sized for bursts; batching keeps the number of messages small, and a drop shows up as a
 * gap that the connector recovers from the ring. */
#define STREAM_SENDBUF 8192
#define STREAM_FLUSH_BYTES (256 * 1024)
#define STREAM_TICKS_AFTER_ACTIVITY 3

/* One pushed item as kept in the ring: rid, route and sids live in the same allocation. */
struct tn_ring_item {
	uint64_t seq;
	uint64_t room_seq, room_gen;
	struct tn_blob *body;
	const char *rid;
	size_t rid_len;
	const char *route;
	uint32_t n_sids, filled;
	uint64_t sids[];
};

struct tn_blob *
tn_blob_new(const void *data, size_t len)
{
	struct tn_blob *b = tn_malloc(sizeof(*b) + len);
	b->refs = 1;
	b->len = len;
	memcpy(b->data, data, len);
	return b;
}

void
tn_blob_unref(struct tn_blob *b)
{
	if (b && --b->refs == 0)
		free(b);
}

static void
pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct tn_stream *s = arg;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_fetch_add(&s->pipes, 1);
		if (s->on_up)
			tn_exec_post(&s->exec, s->on_up, s->on_up_arg);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_sub(&s->pipes, 1);
	}
}

int
tn_stream_open(struct tn_stream *s, const char *conn_id, const char *host, int port,
	uint64_t chat_inc, uint32_t ring_cap, struct tn_exec exec, void (*on_up)(void *, bool),
	void *on_up_arg)
{
	memset(s, 0, sizeof(*s));
	s->conn_id = tn_strdup(conn_id);
	s->chat_inc = chat_inc;
	s->next_seq = 1;
	s->exec = exec;
	s->on_up = on_up;
	s->on_up_arg = on_up_arg;
	s->ring_cap = ring_cap ? ring_cap : 1;
	s->ring = tn_calloc(s->ring_cap, sizeof(*s->ring));
	tn_buf_init(&s->out);
	int rv = tn_err_from_nng(nng_pub0_open(&s->pub));
	if (rv)
		return rv;
	nng_socket_set_int(s->pub, NNG_OPT_SENDBUF, STREAM_SENDBUF);
	nng_pipe_notify(s->pub, NNG_PIPE_EV_ADD_POST, pipe_event, s);
	nng_pipe_notify(s->pub, NNG_PIPE_EV_REM_POST, pipe_event, s);
	tn_nng_url(s->url, sizeof(s->url), host, port);
	return tn_nng_dial(s->pub, s->url, 1024);
}

bool
tn_stream_up(const struct tn_stream *s)
{
	return atomic_load(&s->pipes) > 0;
}

static void
ring_item_free(struct tn_ring_item *it)
{
	if (it == NULL)
		return;
	tn_blob_unref(it->body);
	free(it);
}

static void
ring_clear(struct tn_stream *s)
{
	for (uint32_t i = 0; i < s->ring_len; i++)
		ring_item_free(s->ring[(s->ring_head + i) % s->ring_cap]);
	s->ring_len = 0;
	s->ring_head = 0;
}

static void
ring_push(struct tn_stream *s, struct tn_ring_item *it)
{
	if (s->ring_len == s->ring_cap) {
		ring_item_free(s->ring[s->ring_head]);
		s->ring[s->ring_head] = it;
		s->ring_head = (s->ring_head + 1) % s->ring_cap;
		return;
	}
	s->ring[(s->ring_head + s->ring_len++) % s->ring_cap] = it;
}

static void
batch_begin(struct tn_stream *s, const char *chat_id, uint64_t next_seq)
{
	struct tn_push_hdr hdr = {.chat_id = tn_str_of(chat_id), .chat_inc = s->chat_inc,
		.conn_inc = s->conn_inc, .next_seq = next_seq};
	tn_buf_reset(&s->out);
	tn_push_batch_begin(&s->batch, &s->out, &hdr);
}

uint64_t
tn_stream_item_open(struct tn_stream *s, const char *chat_id, const char *rid, size_t rid_len,
	const char *route, struct tn_blob *body, uint32_t n_sids, uint64_t room_seq,
	uint64_t room_gen)
{
	if (!s->open) {
		batch_begin(s, chat_id, 0);
		s->open = true;
	}
	size_t route_len = strlen(route);
	struct tn_ring_item *it =
		tn_malloc(sizeof(*it) + n_sids * sizeof(uint64_t) + rid_len + route_len + 2);
	char *text = (char *)(it->sids + n_sids);
	memcpy(text, rid, rid_len);
	text[rid_len] = '\0';
	memcpy(text + rid_len + 1, route, route_len + 1);
	it->seq = s->next_seq++;
	it->room_seq = room_seq;
	it->room_gen = room_gen;
	it->body = body;
	body->refs++;
	it->rid = text;
	it->rid_len = rid_len;
	it->route = text + rid_len + 1;
	it->n_sids = n_sids;
	it->filled = 0;
	struct tn_push_item item = {
		.seq = it->seq,
		.rid = {it->rid, rid_len},
		.route = {it->route, route_len},
		.body = {body->data, body->len},
		.room_seq = room_seq,
		.room_gen = room_gen,
	};
	tn_push_batch_item_open(&s->batch, &item, n_sids);
	ring_push(s, it);
	s->filling = it;
	return it->seq;
}

void
tn_stream_item_sid(struct tn_stream *s, uint64_t sid)
{
	tn_push_batch_item_sid(&s->batch, sid);
	s->filling->sids[s->filling->filled++] = sid;
}

static void
send_out(struct tn_stream *s, uint32_t n_items)
{
	s->n_sent++;
	if (s->drop_every && s->n_sent % s->drop_every == 0) {
		/* Fault injection for tests: the message is lost as nng would lose it. */
		tn_counter_inc(s->dropped);
		return;
	}
	nng_msg *m;
	if (nng_msg_alloc(&m, s->out.len) != 0) {
		fprintf(stderr, "fatal: out of memory for an nng message\n");
		abort();
	}
	memcpy(nng_msg_body(m), s->out.data, s->out.len);
	/* PUB never blocks: with no pipe or a full queue the message is dropped by nng; the
	 * sequence numbers let the connector see that and fetch the items again. */
	int rv = nng_sendmsg(s->pub, m, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		nng_msg_free(m);
		tn_warn("push", "send failed connector=%s err=\"%s\"", s->conn_id, nng_strerror(rv));
		return;
	}
	tn_counter_inc(s->msgs);
	tn_counter_add(s->items, n_items);
}

void
tn_stream_flush(struct tn_stream *s, const char *chat_id)
{
	if (!s->open)
		return;
	tn_push_batch_finish(&s->batch);
	s->open = false;
	s->filling = NULL;
	s->ticks_owed = STREAM_TICKS_AFTER_ACTIVITY;
	send_out(s, s->batch.n_items);
	/* Keep a moderate buffer for the next batch, but do not hold on to a huge one. */
	if (s->out.cap > STREAM_FLUSH_BYTES * 4)
		tn_buf_fini(&s->out);
}

void
tn_stream_flush_if_big(struct tn_stream *s, const char *chat_id)
{
	if (s->open && tn_push_batch_bytes(&s->batch) >= STREAM_FLUSH_BYTES)
		tn_stream_flush(s, chat_id);
}

void
tn_stream_tick(struct tn_stream *s, const char *chat_id)
{
	if (s->open || s->ticks_owed == 0 || !tn_stream_up(s))
		return;
	s->ticks_owed--;
	batch_begin(s, chat_id, s->next_seq);
	tn_push_batch_finish(&s->batch);
	send_out(s, 0);
}

void
tn_stream_reset(struct tn_stream *s, uint64_t conn_inc)
{
	ring_clear(s);
	s->conn_inc = conn_inc;
	s->next_seq = 1;
	s->open = false;
	s->filling = NULL;
	s->ticks_owed = 0;
}

int
tn_stream_fetch(struct tn_stream *s, const char *chat_id, uint64_t from, uint64_t to,
	struct tn_buf *out)
{
	if (s->ring_len == 0 || from > to)
		return TN_ENOENT;
	uint64_t oldest = s->ring[s->ring_head]->seq;
	uint64_t newest = oldest + s->ring_len - 1;
	if (from < oldest || to > newest)
		return TN_ENOENT;
	struct tn_push_batch b;
	struct tn_push_hdr hdr = {.chat_id = tn_str_of(chat_id), .chat_inc = s->chat_inc,
		.conn_inc = s->conn_inc};
	tn_push_batch_begin(&b, out, &hdr);
	for (uint64_t seq = from; seq <= to; seq++) {
		const struct tn_ring_item *it = s->ring[(s->ring_head + (seq - oldest)) % s->ring_cap];
		struct tn_push_item item = {.seq = it->seq, .rid = {it->rid, it->rid_len},
			.route = tn_str_of(it->route), .body = {it->body->data, it->body->len},
			.room_seq = it->room_seq, .room_gen = it->room_gen};
		tn_u64_iter_init(&item.sids, it->sids, it->filled);
		tn_push_batch_add_item(&b, &item);
	}
	tn_push_batch_finish(&b);
	return TN_OK;
}

void
tn_stream_close(struct tn_stream *s)
{
	nng_close(s->pub);
	ring_clear(s);
	free(s->ring);
	tn_buf_fini(&s->out);
	free(s->conn_id);
	s->conn_id = NULL;
}
