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
 * sized for bursts; batching keeps the number of messages small. */
#define STREAM_SENDBUF 8192
#define STREAM_FLUSH_BYTES (256 * 1024)

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
	uint64_t chat_inc, struct tn_exec exec, void (*on_up)(void *, bool), void *on_up_arg)
{
	memset(s, 0, sizeof(*s));
	s->conn_id = tn_strdup(conn_id);
	s->chat_inc = chat_inc;
	s->next_seq = 1;
	s->exec = exec;
	s->on_up = on_up;
	s->on_up_arg = on_up_arg;
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

uint64_t
tn_stream_item_open(struct tn_stream *s, const char *chat_id, const char *rid, size_t rid_len,
	const char *route, const char *body, size_t body_len, uint32_t n_sids)
{
	if (!s->open) {
		struct tn_push_hdr hdr = {.chat_id = tn_str_of(chat_id), .chat_inc = s->chat_inc,
			.conn_inc = 0};
		tn_buf_reset(&s->out);
		tn_push_batch_begin(&s->batch, &s->out, &hdr);
		s->open = true;
	}
	struct tn_push_item item = {
		.seq = s->next_seq++,
		.rid = {rid, rid_len},
		.route = tn_str_of(route),
		.body = {body, body_len},
	};
	tn_push_batch_item_open(&s->batch, &item, n_sids);
	return item.seq;
}

void
tn_stream_item_sid(struct tn_stream *s, uint64_t sid)
{
	tn_push_batch_item_sid(&s->batch, sid);
}

void
tn_stream_flush(struct tn_stream *s)
{
	if (!s->open)
		return;
	tn_push_batch_finish(&s->batch);
	s->open = false;
	uint32_t n = s->batch.n_items;
	nng_msg *m;
	if (nng_msg_alloc(&m, s->out.len) != 0) {
		fprintf(stderr, "fatal: out of memory for an nng message\n");
		abort();
	}
	memcpy(nng_msg_body(m), s->out.data, s->out.len);
	/* PUB never blocks: with no pipe or a full queue the message is dropped by nng; the
	 * sequence numbers let the connector see that. */
	int rv = nng_sendmsg(s->pub, m, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		nng_msg_free(m);
		tn_warn("push", "send failed connector=%s err=\"%s\"", s->conn_id, nng_strerror(rv));
		return;
	}
	tn_counter_inc(s->msgs);
	tn_counter_add(s->items, n);
	/* Keep a moderate buffer for the next batch, but do not hold on to a huge one. */
	if (s->out.cap > STREAM_FLUSH_BYTES * 4)
		tn_buf_fini(&s->out);
}

void
tn_stream_flush_if_big(struct tn_stream *s)
{
	if (s->open && tn_push_batch_bytes(&s->batch) >= STREAM_FLUSH_BYTES)
		tn_stream_flush(s);
}

void
tn_stream_close(struct tn_stream *s)
{
	nng_close(s->pub);
	tn_buf_fini(&s->out);
	free(s->conn_id);
	s->conn_id = NULL;
}
