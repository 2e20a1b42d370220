/* TN_KIND_ROOM_*: moving a room from one chat server to another, and rebuilding the
 * rooms of a chat server that crashed. Each request is answered with a TN_KIND_REPLY.
 *
 *   ROOM_STATE    a room as its holder hands it over: body 0 epoch (uint, the sender's
 *                 membership epoch), 1 from (str, the sender's id), 2 rid (str),
 *                 3 next_seq (uint, the room's next message number), 4 names (array of
 *                 str), 5 connectors (array of str), 6 sids (array of uint), 7 conn_incs
 *                 (array of uint), 8 xfer (uint, unique per hand-off), 9 draining (uint
 *                 0/1, the sender is draining), 10 room_gen (uint, the room's generation,
 *                 push.h; 0 or absent: none yet). Arrays 4-7 have one element per member,
 *                 in entry order (the order of the users list of an enter reply); keys
 *                 0-8 are required. Sent as a request (a push hand-off) and as the body of
 *                 the reply to a ROOM_CLAIM.
 *   ROOM_CLAIM    a chat server that owns a room it does not hold asks the others for it:
 *                 body 0 epoch, 1 from (str), 2 rid (str), all required. Reply: code TN_OK
 *                 with body = a ROOM_STATE message (the holder has given the room up),
 *                 TN_ENOENT (not held here), TN_EMOVED (the claimer is not the owner at
 *                 the replier's newer epoch) or TN_ERECOVERING (in transit: ask again).
 *   ROOM_REJOIN   a connector re-registers its local members of the rooms that a lost
 *                 chat server owned with their new owner: body 0 epoch, 1 connector_id
 *                 (str), 2 conn_inc (uint), 3 lost (str, the chat server that went), 4 final
 *                 (uint 0/1: the last batch of this connector for that loss), 5 rids,
 *                 6 names (arrays of str), 7 sids (array of uint); all required, arrays of
 *                 one length. A batch may be empty: the final one confirms.
 */
#ifndef TN_MOVES_H
#define TN_MOVES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"

struct tn_room_state {
	uint64_t epoch;
	struct tn_str from;
	struct tn_str rid;
	uint64_t next_seq;
	struct tn_str_iter names;      /* one per member, in entry order */
	struct tn_str_iter connectors; /* the member's connector id */
	struct tn_u64_iter sids;       /* the member's session on that connector */
	struct tn_u64_iter conn_incs;  /* that connector's incarnation (0: unknown) */
	uint64_t xfer;
	bool draining;
	uint64_t room_gen;
};

struct tn_room_claim {
	uint64_t epoch;
	struct tn_str from;
	struct tn_str rid;
};

struct tn_room_rejoin {
	uint64_t epoch;
	struct tn_str connector_id;
	uint64_t conn_inc;
	struct tn_str lost;
	bool final;
	struct tn_str_iter rids; /* one entry per (rid, name, sid) */
	struct tn_str_iter names;
	struct tn_u64_iter sids;
};

/* Encoders: append one message to out; the structs and what they point to are borrowed.
 * The member (entry) arrays must have one length (a programmer error otherwise). Any
 * thread, one writer per out. */
void tn_room_state_encode(struct tn_buf *out, const struct tn_room_state *m);
void tn_room_claim_encode(struct tn_buf *out, const struct tn_room_claim *m);
void tn_room_rejoin_encode(struct tn_buf *out, const struct tn_room_rejoin *m);

/* Decoders: decode data[0..len) into *out, checked against lim (NULL: defaults); views
 * point into data. Write *out only on success; otherwise return TN_ETOOBIG, TN_ETRUNC,
 * TN_EPROTO (also for arrays of different lengths), TN_EVERSION or TN_EKIND. Any
 * thread. */
int tn_room_state_decode(struct tn_room_state *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);
int tn_room_claim_decode(struct tn_room_claim *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);
int tn_room_rejoin_decode(struct tn_room_rejoin *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);

#endif
