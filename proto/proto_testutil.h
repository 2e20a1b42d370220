/* Helpers shared by proto's unit tests, the seed-corpus generator and the fuzz harness:
 * a set of sample messages and a checker that decodes bytes as a given kind, reads every
 * byte of every view (so AddressSanitizer sees any view reaching past the input), and on
 * success re-encodes the result and checks that it decodes to the same values. A broken
 * invariant aborts: for the fuzzer that is a finding, for a test a failure. */
#ifndef TN_PROTO_TESTUTIL_H
#define TN_PROTO_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "chat.h"
#include "err.h"
#include "moves.h"
#include "proto.h"
#include "push.h"
#include "registry.h"
#include "reply.h"

/* U+1F600 as CESU-8 (two 3-byte surrogates), how the pomelo client sends it. */
#define TN_TEST_CESU8 "\xed\xa0\xbd\xed\xb8\x80"

/* Every kind a checker can decode. */
static const enum tn_kind tn_test_kinds[] = {
	TN_KIND_REPLY, TN_KIND_CHAT_ENTER, TN_KIND_CHAT_LEAVE, TN_KIND_CHAT_SEND, TN_KIND_PUSH,
	TN_KIND_PUSH_FETCH, TN_KIND_REG_REGISTER, TN_KIND_REG_HEARTBEAT, TN_KIND_REG_LEAVE,
	TN_KIND_REG_SNAPSHOT_REQ, TN_KIND_REG_ACK, TN_KIND_REG_SNAPSHOT, TN_KIND_REG_NOTICE,
	TN_KIND_ROOM_STATE, TN_KIND_ROOM_CLAIM, TN_KIND_ROOM_REJOIN,
};
#define TN_TEST_N_KINDS (sizeof(tn_test_kinds) / sizeof(tn_test_kinds[0]))

/* For decoding re-encoded messages, which may be a little larger than the original (the
 * encoder picks its own integer widths). */
static const struct tn_proto_limits tn_test_unlimited = {
	SIZE_MAX, SIZE_MAX, SIZE_MAX, UINT32_MAX, UINT32_MAX,
};

static inline void
tn_test_fail(const char *what)
{
	fprintf(stderr, "proto invariant broken: %s\n", what);
	abort();
}

/* Folds every byte of s into *sum. */
static inline void
tn_test_touch(unsigned *sum, struct tn_str s)
{
	for (size_t i = 0; i < s.len; i++)
		*sum = *sum * 31 + (unsigned char)s.p[i];
}

/* True when two string lists hold the same strings (the lists are copied, not used up). */
static inline int
tn_test_strs_eq(struct tn_str_iter a, struct tn_str_iter b, unsigned *sum)
{
	struct tn_str x, y;
	if (a.n != b.n)
		return 0;
	while (tn_str_iter_next(&a, &x)) {
		if (!tn_str_iter_next(&b, &y) || !tn_str_eq(x, y))
			return 0;
		tn_test_touch(sum, x);
	}
	return !tn_str_iter_next(&b, &y);
}

static inline int
tn_test_u64s_eq(struct tn_u64_iter a, struct tn_u64_iter b)
{
	uint64_t x, y;
	if (a.n != b.n)
		return 0;
	while (tn_u64_iter_next(&a, &x)) {
		if (!tn_u64_iter_next(&b, &y) || x != y)
			return 0;
	}
	return !tn_u64_iter_next(&b, &y);
}

static inline int
tn_test_check_reply(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_reply a, b;
	struct tn_buf buf;
	int rv = tn_reply_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.reason);
	tn_test_touch(sum, a.body);
	tn_buf_init(&buf);
	tn_reply_encode(&buf, &a);
	if (tn_reply_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("reply does not decode after re-encoding");
	if (a.code != b.code || a.epoch != b.epoch || a.has_users != b.has_users ||
		!tn_str_eq(a.reason, b.reason) || !tn_str_eq(a.body, b.body) ||
		!tn_test_strs_eq(a.users, b.users, sum))
		tn_test_fail("reply changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_chat(enum tn_kind kind, const void *data, size_t len,
	const struct tn_proto_limits *lim, unsigned *sum)
{
	struct tn_chat_req a, b;
	struct tn_buf buf;
	int rv = tn_chat_req_decode(&a, kind, data, len, lim);
	if (rv != TN_OK)
		return rv;
	const struct tn_str *strs[] = {&a.connector_id, &a.rid, &a.name, &a.target, &a.content};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		tn_test_touch(sum, *strs[i]);
	tn_buf_init(&buf);
	tn_chat_req_encode(&buf, kind, &a);
	if (tn_chat_req_decode(&b, kind, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("chat request does not decode after re-encoding");
	if (a.epoch != b.epoch || a.sid != b.sid || a.conn_inc != b.conn_inc ||
		!tn_str_eq(a.connector_id, b.connector_id) ||
		!tn_str_eq(a.rid, b.rid) || !tn_str_eq(a.name, b.name) ||
		!tn_str_eq(a.target, b.target) || !tn_str_eq(a.content, b.content))
		tn_test_fail("chat request changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_fetch(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_push_fetch a, b;
	struct tn_buf buf;
	int rv = tn_push_fetch_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.connector_id);
	tn_buf_init(&buf);
	tn_push_fetch_encode(&buf, &a);
	if (tn_push_fetch_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("push fetch does not decode after re-encoding");
	if (!tn_str_eq(a.connector_id, b.connector_id) || a.conn_inc != b.conn_inc ||
		a.chat_inc != b.chat_inc || a.from_seq != b.from_seq || a.to_seq != b.to_seq)
		tn_test_fail("push fetch changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_push_items_eq(const struct tn_push_item *x, const struct tn_push_item *y)
{
	return x->seq == y->seq && tn_str_eq(x->rid, y->rid) && tn_str_eq(x->route, y->route) &&
		tn_str_eq(x->body, y->body) && tn_test_u64s_eq(x->sids, y->sids);
}

static inline int
tn_test_check_push(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_push_reader a, b;
	struct tn_push_batch batch;
	struct tn_push_item x, y;
	struct tn_buf buf;
	uint32_t count = 0;
	int rv = tn_push_reader_init(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.hdr.chat_id);
	tn_buf_init(&buf);
	tn_push_batch_begin(&batch, &buf, &a.hdr);
	for (struct tn_push_reader it = a; tn_push_reader_next(&it, &x); count++) {
		if (x.seq != a.first_seq + count)
			tn_test_fail("push seqs not consecutive after a successful decode");
		tn_test_touch(sum, x.rid);
		tn_test_touch(sum, x.route);
		tn_test_touch(sum, x.body);
		tn_push_batch_add_item(&batch, &x);
	}
	tn_push_batch_finish(&batch);
	if (count != a.n_items)
		tn_test_fail("push item count differs from what the reader announced");
	if (tn_push_reader_init(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("push does not decode after re-encoding");
	if (b.n_items != a.n_items || b.first_seq != a.first_seq ||
		b.hdr.chat_inc != a.hdr.chat_inc || b.hdr.conn_inc != a.hdr.conn_inc ||
		!tn_str_eq(a.hdr.chat_id, b.hdr.chat_id))
		tn_test_fail("push header changed through re-encoding");
	while (tn_push_reader_next(&a, &x)) {
		if (!tn_push_reader_next(&b, &y) || !tn_test_push_items_eq(&x, &y))
			tn_test_fail("push item changed through re-encoding");
	}
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_room_state(
        const void *data, size_t len, const struct tn_proto_limits *lim, unsigned *sum)
{
	struct tn_room_state a, b;
	struct tn_buf buf;
	int rv = tn_room_state_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.from);
	tn_test_touch(sum, a.rid);
	tn_buf_init(&buf);
	tn_room_state_encode(&buf, &a);
	if (tn_room_state_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("room state does not decode after re-encoding");
	if (a.epoch != b.epoch || a.next_seq != b.next_seq || a.xfer != b.xfer ||
	        a.draining != b.draining || a.room_gen != b.room_gen ||
	        !tn_str_eq(a.from, b.from) || !tn_str_eq(a.rid, b.rid) ||
	        !tn_test_strs_eq(a.names, b.names, sum) ||
	        !tn_test_strs_eq(a.connectors, b.connectors, sum) ||
	        !tn_test_u64s_eq(a.sids, b.sids) || !tn_test_u64s_eq(a.conn_incs, b.conn_incs))
		tn_test_fail("room state changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_room_claim(
        const void *data, size_t len, const struct tn_proto_limits *lim, unsigned *sum)
{
	struct tn_room_claim a, b;
	struct tn_buf buf;
	int rv = tn_room_claim_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.from);
	tn_test_touch(sum, a.rid);
	tn_buf_init(&buf);
	tn_room_claim_encode(&buf, &a);
	if (tn_room_claim_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("room claim does not decode after re-encoding");
	if (a.epoch != b.epoch || !tn_str_eq(a.from, b.from) || !tn_str_eq(a.rid, b.rid))
		tn_test_fail("room claim changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_room_rejoin(
        const void *data, size_t len, const struct tn_proto_limits *lim, unsigned *sum)
{
	struct tn_room_rejoin a, b;
	struct tn_buf buf;
	int rv = tn_room_rejoin_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.connector_id);
	tn_test_touch(sum, a.lost);
	tn_buf_init(&buf);
	tn_room_rejoin_encode(&buf, &a);
	if (tn_room_rejoin_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("room rejoin does not decode after re-encoding");
	if (a.epoch != b.epoch || a.conn_inc != b.conn_inc || a.final != b.final ||
	        !tn_str_eq(a.connector_id, b.connector_id) || !tn_str_eq(a.lost, b.lost) ||
	        !tn_test_strs_eq(a.rids, b.rids, sum) || !tn_test_strs_eq(a.names, b.names, sum) ||
	        !tn_test_u64s_eq(a.sids, b.sids))
		tn_test_fail("room rejoin changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

#include "registry_testutil.h"

/* Decodes data[0..len) as kind with lim (NULL: defaults) and checks it as described at
 * the top. Returns the decoder's result. */
static inline int
tn_test_check(enum tn_kind kind, const void *data, size_t len, const struct tn_proto_limits *lim)
{
	unsigned sum = 0;
	int rv;
	switch (kind) {
	case TN_KIND_REPLY: rv = tn_test_check_reply(data, len, lim, &sum); break;
	case TN_KIND_PUSH: rv = tn_test_check_push(data, len, lim, &sum); break;
	case TN_KIND_PUSH_FETCH: rv = tn_test_check_fetch(data, len, lim, &sum); break;
	case TN_KIND_REG_REGISTER:
	case TN_KIND_REG_HEARTBEAT:
	case TN_KIND_REG_LEAVE:
	case TN_KIND_REG_SNAPSHOT_REQ:
	case TN_KIND_REG_ACK:
	case TN_KIND_REG_SNAPSHOT:
	case TN_KIND_REG_NOTICE: rv = tn_test_check_registry(kind, data, len, lim, &sum); break;
	case TN_KIND_ROOM_STATE: rv = tn_test_check_room_state(data, len, lim, &sum); break;
	case TN_KIND_ROOM_CLAIM: rv = tn_test_check_room_claim(data, len, lim, &sum); break;
	case TN_KIND_ROOM_REJOIN: rv = tn_test_check_room_rejoin(data, len, lim, &sum); break;
	default: rv = tn_test_check_chat(kind, data, len, lim, &sum); break;
	}
	/* Keeps the reads of the views from being optimised away. */
	__asm__ volatile("" : : "r"(sum) : "memory");
	return rv;
}

/* The sample messages: valid encodings of every kind, with and without optional fields,
 * empty and non-empty arrays, and CESU-8 bytes. */
enum {
	TN_SAMPLE_REPLY_MIN = 0,
	TN_SAMPLE_REPLY_FULL,
	TN_SAMPLE_REPLY_NO_USERS,
	TN_SAMPLE_ENTER,
	TN_SAMPLE_LEAVE,
	TN_SAMPLE_SEND,
	TN_SAMPLE_PUSH,
	TN_SAMPLE_PUSH_EMPTY,
	TN_SAMPLE_ROOM_STATE,       /* two members, draining, a room generation */
	TN_SAMPLE_ROOM_STATE_EMPTY, /* no members, no optional key */
	TN_SAMPLE_ROOM_CLAIM,
	TN_SAMPLE_ROOM_REJOIN,       /* a batch of three members of two rooms */
	TN_SAMPLE_ROOM_REJOIN_FINAL, /* an empty final batch (the confirmation) */
	TN_SAMPLE_REG_FIRST,         /* then the TN_REG_SAMPLE_* of registry_testutil.h, in order */
	TN_SAMPLE_COUNT = TN_SAMPLE_REG_FIRST + TN_REG_SAMPLE_COUNT,
};

static const char *const tn_sample_names[TN_SAMPLE_COUNT] = {
	"reply-min", "reply-full", "reply-empty-users", "chat-enter", "chat-leave",
	"chat-send", "push", "push-empty", "room-state", "room-state-empty", "room-claim",
	"room-rejoin", "room-rejoin-final", TN_REG_SAMPLE_NAMES,
};

static inline struct tn_chat_req
tn_test_sample_req(void)
{
	return (struct tn_chat_req){
		.epoch = 7,
		.connector_id = TN_STR("connector-server-1"),
		.sid = 42,
		.rid = TN_STR("room1"),
		.name = TN_STR("alice" TN_TEST_CESU8),
		.target = TN_STR("*"),
		.content = TN_STR("hi " TN_TEST_CESU8 " \"quoted\""),
	};
}

static inline void
tn_test_sample_push(struct tn_buf *out, bool empty)
{
	static const uint64_t sids_a[] = {1, 2, 300, 70000, UINT64_MAX};
	static const uint64_t sids_b[] = {9};
	struct tn_push_hdr hdr = {TN_STR("chat-server-1"), 1700000000123, 1700000000456, 0};
	struct tn_push_item item = {
		.seq = 1000,
		.rid = TN_STR("room1"),
		.route = TN_STR("onChat"),
		.body = TN_STR("{\"msg\":\"hi " TN_TEST_CESU8 "\",\"from\":\"alice\",\"target\":\"*\"}"),
	};
	struct tn_push_batch b;
	tn_push_batch_begin(&b, out, &hdr);
	if (!empty) {
		tn_u64_iter_init(&item.sids, sids_a, 5);
		tn_push_batch_add_item(&b, &item);
		item.seq++;
		item.route = TN_STR("onAdd");
		item.body = TN_STR("{\"user\":\"bob\"}");
		tn_u64_iter_init(&item.sids, sids_b, 1);
		tn_push_batch_add_item(&b, &item);
		item.seq++;
		tn_u64_iter_init(&item.sids, NULL, 0);
		tn_push_batch_add_item(&b, &item);
	}
	tn_push_batch_finish(&b);
}

/* A room hand-off: two members on two connectors (one incarnation unknown), or none. */
static inline void
tn_test_sample_room_state(struct tn_buf *out, bool members)
{
	static const struct tn_str names[] = {TN_STR("alice" TN_TEST_CESU8), TN_STR("bob")};
	static const struct tn_str conns[] = {
	        TN_STR("connector-server-1"), TN_STR("connector-server-2")};
	static const uint64_t sids[] = {42, UINT64_MAX}, incs[] = {1700000000456, 0};
	struct tn_room_state st = {.epoch = 9,
	        .from = TN_STR("chat-server-1"),
	        .rid = TN_STR("room1"),
	        .next_seq = 1001,
	        .xfer = 1700000000123ull * 1024 + 5};
	uint32_t n = members ? 2 : 0;
	if (members) {
		st.draining = true;
		st.room_gen = 1700000000789001;
	}
	tn_str_iter_init(&st.names, names, n);
	tn_str_iter_init(&st.connectors, conns, n);
	tn_u64_iter_init(&st.sids, sids, n);
	tn_u64_iter_init(&st.conn_incs, incs, n);
	tn_room_state_encode(out, &st);
}

/* A connector's rejoin batch for a lost chat server: three members, or the empty final
 * one. */
static inline void
tn_test_sample_room_rejoin(struct tn_buf *out, bool final)
{
	static const struct tn_str rids[] = {TN_STR("room1"), TN_STR("room1"), TN_STR("room2")};
	static const struct tn_str names[] = {
	        TN_STR("alice" TN_TEST_CESU8), TN_STR("bob"), TN_STR("")};
	static const uint64_t sids[] = {42, 43, 70000};
	struct tn_room_rejoin rj = {.epoch = 10,
	        .connector_id = TN_STR("connector-server-1"),
	        .conn_inc = 1700000000456,
	        .lost = TN_STR("chat-server-2"),
	        .final = final};
	uint32_t n = final ? 0 : 3;
	tn_str_iter_init(&rj.rids, rids, n);
	tn_str_iter_init(&rj.names, names, n);
	tn_u64_iter_init(&rj.sids, sids, n);
	tn_room_rejoin_encode(out, &rj);
}

/* Appends sample `which` to out and returns its kind. */
static inline enum tn_kind
tn_test_sample(struct tn_buf *out, int which)
{
	static const struct tn_str users[] = {TN_STR("alice" TN_TEST_CESU8), TN_STR("bob"), TN_STR("")};
	struct tn_reply reply = {.code = TN_OK};
	struct tn_chat_req req = tn_test_sample_req();
	switch (which) {
	case TN_SAMPLE_REPLY_MIN:
		reply.code = TN_EMOVED;
		break;
	case TN_SAMPLE_REPLY_FULL:
		reply = (struct tn_reply){
			.code = TN_EPROTO,
			.reason = TN_STR("bad"),
			.epoch = 12,
			.has_users = true,
			.body = TN_STR("{\"code\":500}"),
		};
		tn_str_iter_init(&reply.users, users, 3);
		break;
	case TN_SAMPLE_REPLY_NO_USERS:
		reply.has_users = true;
		reply.epoch = 3;
		break;
	case TN_SAMPLE_ENTER: tn_chat_req_encode(out, TN_KIND_CHAT_ENTER, &req); return TN_KIND_CHAT_ENTER;
	case TN_SAMPLE_LEAVE: tn_chat_req_encode(out, TN_KIND_CHAT_LEAVE, &req); return TN_KIND_CHAT_LEAVE;
	case TN_SAMPLE_SEND: tn_chat_req_encode(out, TN_KIND_CHAT_SEND, &req); return TN_KIND_CHAT_SEND;
	case TN_SAMPLE_PUSH: tn_test_sample_push(out, false); return TN_KIND_PUSH;
	case TN_SAMPLE_PUSH_EMPTY: tn_test_sample_push(out, true); return TN_KIND_PUSH;
	case TN_SAMPLE_ROOM_STATE: tn_test_sample_room_state(out, true); return TN_KIND_ROOM_STATE;
	case TN_SAMPLE_ROOM_STATE_EMPTY:
		tn_test_sample_room_state(out, false);
		return TN_KIND_ROOM_STATE;
	case TN_SAMPLE_ROOM_CLAIM: {
		struct tn_room_claim cl = {
		        .epoch = 9, .from = TN_STR("chat-server-2"), .rid = TN_STR("room1")};
		tn_room_claim_encode(out, &cl);
		return TN_KIND_ROOM_CLAIM;
	}
	case TN_SAMPLE_ROOM_REJOIN:
		tn_test_sample_room_rejoin(out, false);
		return TN_KIND_ROOM_REJOIN;
	case TN_SAMPLE_ROOM_REJOIN_FINAL:
		tn_test_sample_room_rejoin(out, true);
		return TN_KIND_ROOM_REJOIN;
	default:
		if (which >= TN_SAMPLE_REG_FIRST && which < TN_SAMPLE_COUNT)
			return tn_test_sample_registry(out, which - TN_SAMPLE_REG_FIRST);
		abort();
	}
	tn_reply_encode(out, &reply);
	return TN_KIND_REPLY;
}

#endif
