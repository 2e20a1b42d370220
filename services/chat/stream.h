/* Push streams: one per connector, from this chat server to that connector only. Each is
 * a PUB socket dialing the connector's push listener, a sequence number, and the batch
 * being filled. Owned by the chat server's loop thread (pipe events arrive on nng threads
 * and are only counted atomically, then posted). */
#ifndef TN_STREAM_H
#define TN_STREAM_H

#include <nng/nng.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "loop.h"
#include "metrics.h"
#include "push.h"

struct tn_stream {
	char *conn_id;
	char url[300];
	nng_socket pub;
	atomic_int pipes;      /* connected pipes (nng threads update it) */
	uint64_t chat_inc;
	uint64_t next_seq;     /* first item is 1 */
	struct tn_buf out;     /* the batch being filled */
	struct tn_push_batch batch;
	bool open;             /* a batch has items waiting for the flush */
	struct tn_counter *msgs;  /* nng messages sent */
	struct tn_counter *items; /* push items sent */
	/* Posted to the owner when a pipe connects (enters wait for that). */
	struct tn_exec exec;
	void (*on_up)(void *arg, bool cancelled);
	void *on_up_arg;
};

/* Opens the PUB socket and dials the connector at host:port (non-blocking). */
int tn_stream_open(struct tn_stream *s, const char *conn_id, const char *host, int port,
	uint64_t chat_inc, struct tn_exec exec, void (*on_up)(void *, bool), void *on_up_arg);

/* True once a pipe to the connector is connected: only then is a push sent anywhere. */
bool tn_stream_up(const struct tn_stream *s);

/* Starts an item for n_sids recipients on this stream; the caller then adds exactly n_sids
 * session ids with tn_stream_item_sid. Returns the item's sequence number. */
uint64_t tn_stream_item_open(struct tn_stream *s, const char *chat_id, const char *rid,
	size_t rid_len, const char *route, const char *body, size_t body_len, uint32_t n_sids);
void tn_stream_item_sid(struct tn_stream *s, uint64_t sid);

/* Sends the batch being filled, if any, as one nng message. */
void tn_stream_flush(struct tn_stream *s);

/* Sends the batch early when it has grown large (call between items). */
void tn_stream_flush_if_big(struct tn_stream *s);

/* Closes the socket and frees the buffers. */
void tn_stream_close(struct tn_stream *s);

#endif
