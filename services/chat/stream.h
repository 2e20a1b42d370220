/* Push streams: one per connector, from this chat server to that connector only. Each is
 * a PUB socket dialing the connector's push listener, the two ends' incarnations, a
 * sequence number, the batch being filled, and a ring of the most recent items so that a
 * connector that saw a gap can fetch what it missed. Owned by the chat server's loop
 * thread (pipe events arrive on nng threads; they only count atomically and post). */
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

/* A push body shared by the items of every stream it goes to (encoded once per room
 * event). Reference counted; loop thread only. */
struct tn_blob {
	unsigned refs;
	size_t len;
	char data[];
};

/* Makes a blob holding a copy of len bytes, with one reference. */
struct tn_blob *tn_blob_new(const void *data, size_t len);
void tn_blob_unref(struct tn_blob *b);

struct tn_ring_item;

struct tn_stream {
	char *conn_id;
	char url[300];
	nng_socket pub;
	atomic_int pipes;      /* connected pipes (nng threads update it) */
	uint64_t chat_inc;
	uint64_t conn_inc;     /* the connector's incarnation; 0 until it is known */
	uint64_t next_seq;     /* the next item's sequence number (the first is 1) */
	struct tn_buf out;     /* the batch being filled */
	struct tn_push_batch batch;
	bool open;             /* a batch has items waiting for the flush */
	struct tn_ring_item *filling; /* the item whose sids are being added */
	/* The ring: the last ring_cap items, oldest at ring_head. */
	struct tn_ring_item **ring;
	uint32_t ring_cap, ring_len, ring_head;
	uint32_t ticks_owed;   /* idle position announcements still to send */
	uint32_t drop_every;   /* fault injection: drop every n-th message (0: never) */
	uint64_t n_sent;
	struct tn_counter *msgs;  /* nng messages sent */
	struct tn_counter *items; /* push items sent */
	struct tn_counter *dropped; /* messages dropped by fault injection */
	/* Posted to the owner when a pipe connects (enters wait for that). */
	struct tn_exec exec;
	void (*on_up)(void *arg, bool cancelled);
	void *on_up_arg;
};

/* Opens the PUB socket and dials the connector at host:port (non-blocking). ring_cap
 * items are kept for fetches. */
int tn_stream_open(struct tn_stream *s, const char *conn_id, const char *host, int port,
	uint64_t chat_inc, uint32_t ring_cap, struct tn_exec exec, void (*on_up)(void *, bool),
	void *on_up_arg);

/* True once a pipe to the connector is connected: only then is a push sent anywhere. */
bool tn_stream_up(const struct tn_stream *s);

/* Starts an item for n_sids recipients on this stream with body (a reference is taken);
 * the caller then adds exactly n_sids session ids with tn_stream_item_sid. room_seq and
 * room_gen number a room broadcast (0: not one). Returns the item's sequence number. */
uint64_t tn_stream_item_open(struct tn_stream *s, const char *chat_id, const char *rid,
	size_t rid_len, const char *route, struct tn_blob *body, uint32_t n_sids,
	uint64_t room_seq, uint64_t room_gen);
void tn_stream_item_sid(struct tn_stream *s, uint64_t sid);

/* Sends the batch being filled, if any, as one nng message. */
void tn_stream_flush(struct tn_stream *s, const char *chat_id);

/* Sends the batch early when it has grown large (call between items). */
void tn_stream_flush_if_big(struct tn_stream *s, const char *chat_id);

/* Sends an empty batch announcing the stream's position if items went out recently, so
 * that the connector notices items lost at the end of a burst. */
void tn_stream_tick(struct tn_stream *s, const char *chat_id);

/* The connector restarted (new incarnation): the stream starts over at sequence 1 and
 * forgets its ring. */
void tn_stream_reset(struct tn_stream *s, uint64_t conn_inc);

/* Appends to out a push message holding items from..to of the ring. Returns TN_ENOENT
 * when the ring no longer holds all of them. */
int tn_stream_fetch(struct tn_stream *s, const char *chat_id, uint64_t from, uint64_t to,
	struct tn_buf *out);

/* Closes the socket and frees the buffers and the ring. */
void tn_stream_close(struct tn_stream *s);

#endif
