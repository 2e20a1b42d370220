/* TN_KIND_ROOM_*: hand-off state, claims and rejoin batches. */
#include "buf.h"
#include "err.h"
#include "moves.h"
#include "proto.h"
#include "tn_test.h"

#define STR_EQ(a, lit) TN_CHECK_MEM((a).p, (a).len, lit, sizeof(lit) - 1)

static void
sample_state(struct tn_buf *b, bool draining)
{
	static const struct tn_str names[] = {TN_STR("alice"), TN_STR("bob")};
	static const struct tn_str conns[] = {TN_STR("connector-1"), TN_STR("connector-2")};
	static const uint64_t sids[] = {7, 1u << 20};
	static const uint64_t incs[] = {1700000000456, 0};
	struct tn_room_state s = {.epoch = 42, .from = TN_STR("chat-1"), .rid = TN_STR("lobby"),
		.next_seq = 1001, .xfer = 99, .draining = draining};
	tn_str_iter_init(&s.names, names, 2);
	tn_str_iter_init(&s.connectors, conns, 2);
	tn_u64_iter_init(&s.sids, sids, 2);
	tn_u64_iter_init(&s.conn_incs, incs, 2);
	tn_room_state_encode(b, &s);
}

TN_TEST(test_state_round_trip)
{
	struct tn_buf b;
	struct tn_room_state s;
	struct tn_str v;
	uint64_t u;
	tn_buf_init(&b);
	sample_state(&b, true);
	TN_CHECK_OK(tn_room_state_decode(&s, b.data, b.len, NULL));
	TN_CHECK(s.epoch == 42 && s.next_seq == 1001 && s.xfer == 99 && s.draining);
	STR_EQ(s.from, "chat-1");
	STR_EQ(s.rid, "lobby");
	TN_CHECK_INT(s.names.n, ==, 2);
	TN_CHECK(tn_str_iter_next(&s.names, &v));
	STR_EQ(v, "alice");
	TN_CHECK(tn_str_iter_next(&s.names, &v));
	STR_EQ(v, "bob");
	TN_CHECK(!tn_str_iter_next(&s.names, &v));
	TN_CHECK(tn_str_iter_next(&s.connectors, &v));
	STR_EQ(v, "connector-1");
	TN_CHECK(tn_u64_iter_next(&s.sids, &u) && u == 7);
	TN_CHECK(tn_u64_iter_next(&s.sids, &u) && u == 1u << 20);
	TN_CHECK(tn_u64_iter_next(&s.conn_incs, &u) && u == 1700000000456);
	/* Every proper prefix is refused. */
	for (size_t n = 0; n < b.len; n++)
		TN_CHECK(tn_room_state_decode(&s, b.data, n, NULL) != TN_OK);
	tn_buf_reset(&b);
	sample_state(&b, false);
	TN_CHECK_OK(tn_room_state_decode(&s, b.data, b.len, NULL));
	TN_CHECK(!s.draining);
	tn_buf_fini(&b);
}

TN_TEST(test_state_arrays_must_agree)
{
	/* [1, 64, {0:1, 1:"a", 2:"r", 3:1, 4:["x"], 5:[], 6:[1], 7:[0], 8:1}] */
	static const uint8_t bad[] = {0x93, 0x01, 0x40, 0x89, 0x00, 0x01, 0x01, 0xa1, 'a', 0x02,
		0xa1, 'r', 0x03, 0x01, 0x04, 0x91, 0xa1, 'x', 0x05, 0x90, 0x06, 0x91, 0x01, 0x07,
		0x91, 0x00, 0x08, 0x01};
	struct tn_room_state s;
	TN_CHECK_INT(tn_room_state_decode(&s, bad, sizeof(bad), NULL), ==, TN_EPROTO);
	/* The same with key 5 holding one element decodes. */
	static const uint8_t good[] = {0x93, 0x01, 0x40, 0x89, 0x00, 0x01, 0x01, 0xa1, 'a', 0x02,
		0xa1, 'r', 0x03, 0x01, 0x04, 0x91, 0xa1, 'x', 0x05, 0x91, 0xa1, 'c', 0x06, 0x91, 0x01,
		0x07, 0x91, 0x00, 0x08, 0x01};
	TN_CHECK_OK(tn_room_state_decode(&s, good, sizeof(good), NULL));
	TN_CHECK_INT(s.names.n, ==, 1);
}

TN_TEST(test_claim_round_trip)
{
	struct tn_buf b;
	struct tn_room_claim c = {.epoch = 7, .from = TN_STR("chat-2"), .rid = TN_STR("r1")}, d;
	tn_buf_init(&b);
	tn_room_claim_encode(&b, &c);
	TN_CHECK_OK(tn_room_claim_decode(&d, b.data, b.len, NULL));
	TN_CHECK(d.epoch == 7 && tn_str_eq(d.from, c.from) && tn_str_eq(d.rid, c.rid));
	/* Another kind is refused as such. */
	struct tn_room_state s;
	TN_CHECK_INT(tn_room_state_decode(&s, b.data, b.len, NULL), ==, TN_EKIND);
	tn_buf_fini(&b);
}

TN_TEST(test_rejoin_round_trip)
{
	struct tn_buf b;
	static const struct tn_str rids[] = {TN_STR("r1"), TN_STR("r2"), TN_STR("r1")};
	static const struct tn_str names[] = {TN_STR("a"), TN_STR("b"), TN_STR("c")};
	static const uint64_t sids[] = {1, 2, 3};
	struct tn_room_rejoin r = {.epoch = 9, .connector_id = TN_STR("connector-1"),
		.conn_inc = 5, .lost = TN_STR("chat-3"), .final = true}, d;
	tn_str_iter_init(&r.rids, rids, 3);
	tn_str_iter_init(&r.names, names, 3);
	tn_u64_iter_init(&r.sids, sids, 3);
	tn_buf_init(&b);
	tn_room_rejoin_encode(&b, &r);
	TN_CHECK_OK(tn_room_rejoin_decode(&d, b.data, b.len, NULL));
	TN_CHECK(d.epoch == 9 && d.conn_inc == 5 && d.final);
	STR_EQ(d.lost, "chat-3");
	TN_CHECK_INT(d.rids.n, ==, 3);
	struct tn_str v;
	uint64_t u;
	TN_CHECK(tn_str_iter_next(&d.rids, &v));
	TN_CHECK(tn_str_iter_next(&d.rids, &v));
	STR_EQ(v, "r2");
	TN_CHECK(tn_u64_iter_next(&d.sids, &u) && u == 1);
	/* An empty final batch (a confirmation) is valid. */
	tn_str_iter_init(&r.rids, NULL, 0);
	tn_str_iter_init(&r.names, NULL, 0);
	tn_u64_iter_init(&r.sids, NULL, 0);
	tn_buf_reset(&b);
	tn_room_rejoin_encode(&b, &r);
	TN_CHECK_OK(tn_room_rejoin_decode(&d, b.data, b.len, NULL));
	TN_CHECK_INT(d.rids.n, ==, 0);
	for (size_t n = 0; n < b.len; n++)
		TN_CHECK(tn_room_rejoin_decode(&d, b.data, n, NULL) != TN_OK);
	tn_buf_fini(&b);
}

TN_TEST_MAIN(TN_CASE(test_state_round_trip), TN_CASE(test_state_arrays_must_agree),
	TN_CASE(test_claim_round_trip), TN_CASE(test_rejoin_round_trip))
