/* TN_KIND_PUSH: what a chat server publishes to one connector. One nng message per
 * (chat server, connector) stream carries a batch of items; each item is one push (a
 * route and a JSON body, encoded once by the room's owner) for a list of sessions on
 * that connector.
 *
 * Body keys: 0 chat_id (str), 1 chat_inc (uint), 2 conn_inc (uint), 3 items (array of
 * item maps), all required. Item keys: 0 seq (uint), 1 rid (str), 2 route (str), 3 body
 * (bin), 4 sids (array of uint), all required; 5 room_seq and 6 room_gen (uint), both
 * present or both absent. The items' seqs are consecutive: the batch covers
 * [first_seq, first_seq + n_items) of the stream, so a receiver checks for gaps once per
 * batch. room_seq numbers a room's broadcasts (onAdd, onLeave, onChat to everyone)
 * across its moves between chat servers, within one generation of the room (room_gen:
 * a new one when the room is made, or rebuilt after a crash, larger than the last), so a
 * connector can put a room's pushes from two chat servers in order. */
#ifndef TN_PUSH_H
#define TN_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"

/* Which stream a batch belongs to. */
struct tn_push_hdr {
	struct tn_str chat_id; /* the publishing chat server's id */
	uint64_t chat_inc;     /* the chat server's incarnation */
	uint64_t conn_inc;     /* the connector incarnation the stream was opened against */
	uint64_t next_seq;     /* optional (key 4, 0 = absent): the stream's next sequence
	                        * number after this batch, so an empty batch (a tick) shows a
	                        * receiver that items at its end were lost */
};

/* One push. */
struct tn_push_item {
	uint64_t seq;         /* the stream's sequence number for this item */
	struct tn_str rid;    /* the room it comes from */
	struct tn_str route;  /* the client route, e.g. "onChat" */
	struct tn_str body;   /* the JSON body, the same bytes for every recipient */
	struct tn_u64_iter sids; /* the recipients' session ids on this connector */
	uint64_t room_seq;    /* the room broadcast's number; 0: not a broadcast (no order) */
	uint64_t room_gen;    /* the room's generation (with room_seq) */
};

/* Builds one batch message in a tn_buf, item by item, without allocating anything but
 * the buffer's growth. n_items is read-only; the rest is private. One thread. */
struct tn_push_batch {
	struct tn_buf *out;
	uint32_t n_items;
	size_t start_;     /* where the message starts in out */
	size_t count_at_;  /* where the items count is patched in by finish */
	uint64_t next_seq_;
	uint32_t sids_owed_;
};

/* Starts a batch for the stream hdr, appended to out (which may already hold bytes;
 * they are kept). out is borrowed until tn_push_batch_finish; hdr only for the call. */
void tn_push_batch_begin(struct tn_push_batch *b, struct tn_buf *out,
	const struct tn_push_hdr *hdr);

/* Appends item (borrowed for the call). Its seq must follow the previous item's (a
 * programmer error otherwise). */
void tn_push_batch_add_item(struct tn_push_batch *b, const struct tn_push_item *item);

/* Like tn_push_batch_add_item, for callers that produce the recipients one by one:
 * appends item without its sids (item->sids is ignored), then the caller must append
 * exactly n_sids ids with tn_push_batch_item_sid before the next item or finish. */
void tn_push_batch_item_open(struct tn_push_batch *b, const struct tn_push_item *item,
	uint32_t n_sids);
void tn_push_batch_item_sid(struct tn_push_batch *b, uint64_t sid);

/* Completes the batch: out then holds the whole message from where begin found it. An
 * empty batch is a valid message, but there is seldom a reason to send one. */
void tn_push_batch_finish(struct tn_push_batch *b);

/* Bytes the batch occupies in out so far (for flushing at a size). */
size_t tn_push_batch_bytes(const struct tn_push_batch *b);

/* Reads a batch. hdr, first_seq (0 when empty) and n_items are read-only; the rest is
 * private. */
struct tn_push_reader {
	struct tn_push_hdr hdr;
	uint64_t first_seq;
	uint32_t n_items;
	uint32_t i_;
	const uint8_t *p_;
	const uint8_t *end_;
};

/* Checks the whole batch in data[0..len) against lim (NULL: defaults; items against
 * max_array_len, sids per item against max_recipients) and sets rd up to iterate it.
 * Checking everything first means a malformed batch is refused before any of its items
 * is acted on, and tn_push_reader_next cannot fail. rd's views point into data, which
 * must stay unchanged while they are used: copy what outlives it. Writes *rd only on
 * success; otherwise returns TN_ETOOBIG, TN_ETRUNC, TN_EPROTO (including seqs that are
 * not consecutive), TN_EVERSION or TN_EKIND (not a push). Any thread. */
int tn_push_reader_init(struct tn_push_reader *rd, const void *data, size_t len,
	const struct tn_proto_limits *lim);

/* Stores the next item in *item and returns true, or returns false after the last.
 * Allocates nothing. */
bool tn_push_reader_next(struct tn_push_reader *rd, struct tn_push_item *item);

/* TN_KIND_PUSH_FETCH: a connector that saw a gap in a stream asks the chat server for the
 * missing items. Body keys: 0 connector_id (str), 1 conn_inc, 2 chat_inc, 3 from_seq,
 * 4 to_seq (uint), all required. The answer is a TN_KIND_REPLY whose body is a
 * TN_KIND_PUSH message with exactly the items from_seq..to_seq (code TN_OK), or code
 * TN_ENOENT when the chat server no longer holds them all (or is another incarnation). */
struct tn_push_fetch {
	struct tn_str connector_id;
	uint64_t conn_inc;
	uint64_t chat_inc;
	uint64_t from_seq;
	uint64_t to_seq;
};

/* Appends the encoding of f to out. */
void tn_push_fetch_encode(struct tn_buf *out, const struct tn_push_fetch *f);

/* Decodes a fetch request; out's strings point into data. Writes *out only on success. */
int tn_push_fetch_decode(struct tn_push_fetch *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);

#endif
