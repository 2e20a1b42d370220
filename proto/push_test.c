/* TN_KIND_PUSH: the batch builder and the reader. */
#include <msgpack.h>

#include "buf.h"
#include "err.h"
#include "proto.h"
#include "proto_testutil.h"
#include "push.h"
#include "tn_test.h"
#include "wire.h"

#define STR_EQ(a, lit) TN_CHECK_MEM((a).p, (a).len, lit, sizeof(lit) - 1)

TN_TEST(test_push_round_trip)
{
	struct tn_buf b;
	struct tn_push_reader rd;
	struct tn_push_item it;
	uint64_t sid;
	tn_buf_init(&b);
	tn_test_sample(&b, TN_SAMPLE_PUSH);
	TN_CHECK_OK(tn_push_reader_init(&rd, b.data, b.len, NULL));
	STR_EQ(rd.hdr.chat_id, "chat-server-1");
	TN_CHECK(rd.hdr.chat_inc == 1700000000123 && rd.hdr.conn_inc == 1700000000456);
	TN_CHECK_INT(rd.n_items, ==, 3);
	TN_CHECK(rd.first_seq == 1000);

	TN_CHECK(tn_push_reader_next(&rd, &it));
	TN_CHECK(it.seq == 1000);
	STR_EQ(it.rid, "room1");
	STR_EQ(it.route, "onChat");
	STR_EQ(it.body, "{\"msg\":\"hi " TN_TEST_CESU8 "\",\"from\":\"alice\",\"target\":\"*\"}");
	TN_CHECK((const uint8_t *)it.body.p > b.data && (const uint8_t *)it.body.p < b.data + b.len);
	TN_CHECK_INT(it.sids.n, ==, 5);
	static const uint64_t want[] = {1, 2, 300, 70000, UINT64_MAX};
	for (int i = 0; i < 5; i++) {
		TN_CHECK(tn_u64_iter_next(&it.sids, &sid));
		TN_CHECK(sid == want[i]);
	}
	TN_CHECK(!tn_u64_iter_next(&it.sids, &sid));

	TN_CHECK(tn_push_reader_next(&rd, &it));
	TN_CHECK(it.seq == 1001);
	STR_EQ(it.route, "onAdd");
	STR_EQ(it.body, "{\"user\":\"bob\"}");
	TN_CHECK(tn_u64_iter_next(&it.sids, &sid) && sid == 9);
	TN_CHECK(!tn_u64_iter_next(&it.sids, &sid));

	TN_CHECK(tn_push_reader_next(&rd, &it));
	TN_CHECK(it.seq == 1002);
	TN_CHECK_INT(it.sids.n, ==, 0);
	TN_CHECK(!tn_u64_iter_next(&it.sids, &sid));
	TN_CHECK(!tn_push_reader_next(&rd, &it));
	TN_CHECK(!tn_push_reader_next(&rd, &it));
	tn_buf_fini(&b);
}

TN_TEST(test_push_empty_batch)
{
	struct tn_buf b;
	struct tn_push_reader rd;
	struct tn_push_item it;
	tn_buf_init(&b);
	tn_test_sample(&b, TN_SAMPLE_PUSH_EMPTY);
	TN_CHECK_OK(tn_push_reader_init(&rd, b.data, b.len, NULL));
	TN_CHECK_INT(rd.n_items, ==, 0);
	TN_CHECK(rd.first_seq == 0);
	TN_CHECK(!tn_push_reader_next(&rd, &it));
	tn_buf_fini(&b);
}

/* The streaming form, into a buffer that already holds bytes, with the body shared. */
TN_TEST(test_push_streaming_sids)
{
	struct tn_buf b;
	struct tn_push_batch batch;
	struct tn_push_hdr hdr = {TN_STR(""), 0, UINT64_MAX, 0};
	struct tn_push_item item = {.rid = TN_STR("r"), .route = TN_STR("onLeave"),
		.body = TN_STR("{\"user\":\"" TN_TEST_CESU8 "\"}")};
	tn_buf_init(&b);
	tn_buf_append(&b, "PREFIX", 6);
	tn_push_batch_begin(&batch, &b, &hdr);
	for (uint64_t seq = UINT64_MAX - 2; seq != 0; seq++) { /* up to the largest seq */
		item.seq = seq;
		tn_push_batch_item_open(&batch, &item, 300);
		for (uint64_t s = 0; s < 300; s++)
			tn_push_batch_item_sid(&batch, s * 1000003);
	}
	tn_push_batch_finish(&batch);
	TN_CHECK_INT(batch.n_items, ==, 3);
	TN_CHECK_INT(tn_push_batch_bytes(&batch), ==, b.len - 6);
	TN_CHECK_MEM(b.data, 6, "PREFIX", 6);

	struct tn_push_reader rd;
	struct tn_push_item got;
	TN_CHECK_OK(tn_push_reader_init(&rd, b.data + 6, b.len - 6, NULL));
	TN_CHECK_INT(rd.hdr.chat_id.len, ==, 0);
	TN_CHECK(rd.hdr.conn_inc == UINT64_MAX && rd.first_seq == UINT64_MAX - 2);
	const char *body = NULL;
	for (uint32_t i = 0; tn_push_reader_next(&rd, &got); i++) {
		uint64_t sid, s = 0;
		TN_CHECK(got.seq == UINT64_MAX - 2 + i);
		STR_EQ(got.body, "{\"user\":\"" TN_TEST_CESU8 "\"}");
		TN_CHECK(body == NULL || got.body.p != body); /* each item carries its own copy */
		body = got.body.p;
		TN_CHECK_INT(got.sids.n, ==, 300);
		while (tn_u64_iter_next(&got.sids, &sid))
			TN_CHECK(sid == s++ * 1000003);
		TN_CHECK_INT(s, ==, 300);
	}
	tn_buf_fini(&b);
}

/* Adding items only appends: with room reserved beforehand the buffer never moves. */
TN_TEST(test_push_room_seq)
{
	static const uint64_t sids[] = {5};
	struct tn_buf b;
	struct tn_push_batch batch;
	struct tn_push_hdr hdr = {TN_STR("chat-1"), 1, 2, 0};
	struct tn_push_item in = {.seq = 1, .rid = TN_STR("room"), .route = TN_STR("onChat"),
		.body = TN_STR("{}"), .room_seq = 77, .room_gen = 1700000000123456};
	tn_u64_iter_init(&in.sids, sids, 1);
	tn_buf_init(&b);
	tn_push_batch_begin(&batch, &b, &hdr);
	tn_push_batch_add_item(&batch, &in);
	in.seq = 2;
	in.room_seq = 0; /* a private message: no room numbering */
	tn_push_batch_add_item(&batch, &in);
	tn_push_batch_finish(&batch);
	struct tn_push_reader rd;
	struct tn_push_item out;
	TN_CHECK_OK(tn_push_reader_init(&rd, b.data, b.len, NULL));
	TN_CHECK(tn_push_reader_next(&rd, &out));
	TN_CHECK(out.room_seq == 77 && out.room_gen == 1700000000123456);
	TN_CHECK(tn_push_reader_next(&rd, &out));
	TN_CHECK(out.room_seq == 0 && out.room_gen == 0);
	tn_buf_fini(&b);
}

TN_TEST(test_push_add_only_appends)
{
	static const uint64_t sids[] = {5, 6, 7};
	struct tn_buf b;
	struct tn_push_batch batch;
	struct tn_push_hdr hdr = {TN_STR("chat-1"), 1, 2, 0};
	struct tn_push_item item = {.rid = TN_STR("room"), .route = TN_STR("onChat"),
		.body = TN_STR("{}")};
	tn_u64_iter_init(&item.sids, sids, 3);
	tn_buf_init(&b);
	tn_buf_reserve(&b, 1 << 16);
	uint8_t *data = b.data;
	tn_push_batch_begin(&batch, &b, &hdr);
	size_t before = b.len;
	for (uint64_t seq = 0; seq < 1000; seq++) {
		item.seq = seq;
		tn_push_batch_add_item(&batch, &item);
	}
	tn_push_batch_finish(&batch);
	TN_CHECK(b.data == data);
	/* Each item is 1 map + 5 keys + seq + "room" + "onChat" + bin "{}" + [5,6,7]. */
	size_t per = 1 + 5 + 5 + 7 + 3 + 4;
	TN_CHECK_INT(b.len - before, >=, 1000 * per);
	TN_CHECK_INT(b.len - before, <=, 1000 * (per + 4));
	struct tn_push_reader rd;
	TN_CHECK_OK(tn_push_reader_init(&rd, b.data, b.len, NULL));
	TN_CHECK_INT(rd.n_items, ==, 1000);
	TN_CHECK_OK(tn_test_check(TN_KIND_PUSH, b.data, b.len, NULL));
	tn_buf_fini(&b);
}

/* A hand-made push: header fields, then items with the given seqs (and sids [1]). */
static void
craft_push(struct tn_buf *b, const uint64_t *seqs, uint32_t n, bool items_first)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, b);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_uint32(&pk, TN_KIND_PUSH);
	msgpack_pack_map(&pk, 5);
	for (int part = 0; part < 2; part++) {
		if ((part == 0) == items_first) {
			msgpack_pack_uint32(&pk, 3);
			msgpack_pack_array(&pk, n);
			for (uint32_t i = 0; i < n; i++) {
				msgpack_pack_map(&pk, 6);
				msgpack_pack_uint32(&pk, 42); /* unknown item key */
				msgpack_pack_map(&pk, 0);
				tn_wire_put_bin(&pk, 3, TN_STR("{}"));
				tn_wire_put_str(&pk, 2, TN_STR("onChat"));
				tn_wire_put_str(&pk, 1, TN_STR("r"));
				msgpack_pack_uint32(&pk, 4);
				msgpack_pack_array(&pk, 1);
				msgpack_pack_uint32(&pk, 1);
				tn_wire_put_u64(&pk, 0, seqs[i]);
			}
		} else {
			tn_wire_put_u64(&pk, 2, 22);
			tn_wire_put_str(&pk, 99, TN_STR("unknown header key"));
			tn_wire_put_u64(&pk, 1, 11);
			tn_wire_put_str(&pk, 0, TN_STR("chat-x"));
		}
	}
}

TN_TEST(test_push_key_order_and_unknown_keys)
{
	static const uint64_t seqs[] = {5, 6, 7};
	struct tn_buf b;
	struct tn_push_reader rd;
	struct tn_push_item it;
	tn_buf_init(&b);
	for (int items_first = 0; items_first < 2; items_first++) {
		tn_buf_reset(&b);
		craft_push(&b, seqs, 3, items_first);
		TN_CHECK_OK(tn_push_reader_init(&rd, b.data, b.len, NULL));
		STR_EQ(rd.hdr.chat_id, "chat-x");
		TN_CHECK(rd.hdr.chat_inc == 11 && rd.hdr.conn_inc == 22 && rd.first_seq == 5);
		TN_CHECK(tn_push_reader_next(&rd, &it));
		STR_EQ(it.route, "onChat");
		TN_CHECK_OK(tn_test_check(TN_KIND_PUSH, b.data, b.len, NULL));
	}
	tn_buf_fini(&b);
}

TN_TEST(test_push_seqs_must_be_consecutive)
{
	static const uint64_t gap[] = {5, 7}, back[] = {5, 4}, dup[] = {5, 5}, wrap[] = {UINT64_MAX, 0};
	struct tn_buf b;
	struct tn_push_reader rd;
	tn_buf_init(&b);
	craft_push(&b, gap, 2, false);
	TN_CHECK_INT(tn_push_reader_init(&rd, b.data, b.len, NULL), ==, TN_EPROTO);
	tn_buf_reset(&b);
	craft_push(&b, back, 2, false);
	TN_CHECK_INT(tn_push_reader_init(&rd, b.data, b.len, NULL), ==, TN_EPROTO);
	tn_buf_reset(&b);
	craft_push(&b, dup, 2, false);
	TN_CHECK_INT(tn_push_reader_init(&rd, b.data, b.len, NULL), ==, TN_EPROTO);
	tn_buf_reset(&b);
	craft_push(&b, wrap, 2, false); /* wraps like the stream's counter does */
	TN_CHECK_OK(tn_push_reader_init(&rd, b.data, b.len, NULL));
	tn_buf_fini(&b);
}

TN_TEST(test_push_limits)
{
	struct tn_buf b;
	struct tn_push_reader rd;
	struct tn_proto_limits lim = tn_proto_limits_default;
	tn_buf_init(&b);
	tn_test_sample(&b, TN_SAMPLE_PUSH); /* 3 items, at most 5 sids each */
	lim.max_array_len = 3;
	lim.max_recipients = 5;
	TN_CHECK_OK(tn_push_reader_init(&rd, b.data, b.len, &lim));
	lim.max_array_len = 2;
	TN_CHECK_INT(tn_push_reader_init(&rd, b.data, b.len, &lim), ==, TN_ETOOBIG);
	lim.max_array_len = 3;
	lim.max_recipients = 4;
	TN_CHECK_INT(tn_push_reader_init(&rd, b.data, b.len, &lim), ==, TN_ETOOBIG);
	lim.max_recipients = 5;
	lim.max_str_len = 5; /* "chat-server-1" */
	TN_CHECK_INT(tn_push_reader_init(&rd, b.data, b.len, &lim), ==, TN_ETOOBIG);
	lim = tn_proto_limits_default;
	lim.max_bin_len = 10; /* the onChat body */
	TN_CHECK_INT(tn_push_reader_init(&rd, b.data, b.len, &lim), ==, TN_ETOOBIG);
	lim = tn_proto_limits_default;
	lim.max_msg_bytes = b.len - 1;
	TN_CHECK_INT(tn_push_reader_init(&rd, b.data, b.len, &lim), ==, TN_ETOOBIG);
	tn_buf_fini(&b);
}

/* Decodes hex as a push. */
static int
push_hex(const char *hex)
{
	unsigned char m[128];
	struct tn_push_reader rd;
	size_t n = tn_test_hex(hex, m, sizeof(m));
	return tn_push_reader_init(&rd, m, n, NULL);
}

#define HDR "00 a1 63 01 01 02 02"
#define ITEM_HEAD "00 05 01 a1 72 02 a1 6f 03 c4 02 7b 7d"

TN_TEST(test_push_malformed)
{
	TN_CHECK_OK(push_hex("93 01 20 84 " HDR " 03 91 85 " ITEM_HEAD " 04 92 01 02"));
	TN_CHECK_OK(push_hex("93 01 20 84 " HDR " 03 90"));
	TN_CHECK_INT(push_hex("93 01 20 83 " HDR), ==, TN_EPROTO);                 /* no items */
	TN_CHECK_INT(push_hex("93 01 20 84 " HDR " 03 80"), ==, TN_EPROTO);        /* items map */
	TN_CHECK_INT(push_hex("93 01 20 84 " HDR " 03 91 90"), ==, TN_EPROTO);     /* item array */
	TN_CHECK_INT(push_hex("93 01 20 84 " HDR " 03 91 84 " ITEM_HEAD), ==, TN_EPROTO); /* no sids */
	TN_CHECK_INT(push_hex("93 01 20 84 " HDR " 03 91 85 " ITEM_HEAD " 04 91 ff"), ==, TN_EPROTO);
	TN_CHECK_INT(push_hex("93 01 20 84 " HDR " 03 91 85 " ITEM_HEAD " 04 91 a1 31"), ==, TN_EPROTO);
	TN_CHECK_INT(push_hex("93 01 20 84 " HDR " 03 91 85 " ITEM_HEAD " 04 01"), ==, TN_EPROTO);
	TN_CHECK_INT(push_hex("93 01 20 84 00 a1 63 01 01 02 a1 32 03 90"), ==, TN_EPROTO); /* conn_inc str */
	TN_CHECK_INT(push_hex("93 01 20 84 " HDR " 03 91 85 " ITEM_HEAD " 04 92 01"), ==, TN_ETRUNC);
	/* The item body is bin: a str there is malformed. */
	TN_CHECK_INT(push_hex("93 01 20 84 " HDR " 03 91 85 00 05 01 a1 72 02 a1 6f 03 a2 7b 7d 04 90"),
		==, TN_EPROTO);
}

TN_TEST(test_push_next_seq_and_fetch)
{
	/* An empty batch (a tick) carries the stream position in next_seq. */
	struct tn_buf b;
	tn_buf_init(&b);
	struct tn_push_batch batch;
	struct tn_push_hdr hdr = {TN_STR("chat-1"), 7, 8, 42};
	tn_push_batch_begin(&batch, &b, &hdr);
	tn_push_batch_finish(&batch);
	struct tn_push_reader rd;
	TN_CHECK_OK(tn_push_reader_init(&rd, b.data, b.len, NULL));
	TN_CHECK_INT(rd.n_items, ==, 0);
	TN_CHECK_INT(rd.hdr.next_seq, ==, 42);
	TN_CHECK_INT(rd.hdr.chat_inc, ==, 7);
	tn_buf_reset(&b);
	struct tn_push_fetch f = {TN_STR("connector-server-2"), 11, 12, 100, 140}, g;
	tn_push_fetch_encode(&b, &f);
	TN_CHECK_OK(tn_push_fetch_decode(&g, b.data, b.len, NULL));
	TN_CHECK(tn_str_eq(g.connector_id, f.connector_id));
	TN_CHECK_INT(g.conn_inc, ==, 11);
	TN_CHECK_INT(g.chat_inc, ==, 12);
	TN_CHECK_INT(g.from_seq, ==, 100);
	TN_CHECK_INT(g.to_seq, ==, 140);
	for (size_t n = 0; n < b.len; n++)
		TN_CHECK(tn_push_fetch_decode(&g, b.data, n, NULL) != TN_OK);
	tn_buf_fini(&b);
}

TN_TEST_MAIN(TN_CASE(test_push_next_seq_and_fetch), TN_CASE(test_push_room_seq), TN_CASE(test_push_round_trip), TN_CASE(test_push_empty_batch),
	TN_CASE(test_push_streaming_sids), TN_CASE(test_push_add_only_appends),
	TN_CASE(test_push_key_order_and_unknown_keys), TN_CASE(test_push_seqs_must_be_consecutive),
	TN_CASE(test_push_limits), TN_CASE(test_push_malformed))
