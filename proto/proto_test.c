/* The envelope, TN_KIND_REPLY and the TN_KIND_CHAT_* requests: round trips, the exact
 * bytes of one message, forward compatibility and every way of being malformed. */
#include <msgpack.h>

#include "buf.h"
#include "chat.h"
#include "err.h"
#include "proto.h"
#include "proto_testutil.h"
#include "reply.h"
#include "tn_test.h"
#include "wire.h"

#define STR_EQ(a, lit) TN_CHECK_MEM((a).p, (a).len, lit, sizeof(lit) - 1)

/* Starts a hand-made message: [version, kind, {...n pairs}]. */
static void
craft_begin(msgpack_packer *pk, struct tn_buf *b, uint64_t version, uint64_t kind, uint32_t n)
{
	tn_wire_packer_init(pk, b);
	msgpack_pack_array(pk, 3);
	msgpack_pack_uint64(pk, version);
	msgpack_pack_uint64(pk, kind);
	msgpack_pack_map(pk, n);
}

static void
craft_str(msgpack_packer *pk, uint32_t key, const char *s)
{
	msgpack_pack_uint32(pk, key);
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void
craft_u64(msgpack_packer *pk, uint32_t key, uint64_t v)
{
	msgpack_pack_uint32(pk, key);
	msgpack_pack_uint64(pk, v);
}

/* An ENTER body whose fields go in the given order, so tests can add, drop or swap. */
static void
craft_enter(struct tn_buf *b, uint32_t n_extra, uint64_t version, uint64_t kind)
{
	msgpack_packer pk;
	craft_begin(&pk, b, version, kind, 5 + n_extra);
	craft_str(&pk, 4, "bob");
	craft_u64(&pk, 0, 9);
	craft_str(&pk, 1, "conn");
	craft_u64(&pk, 2, 77);
	craft_str(&pk, 3, "lobby");
}

TN_TEST(test_enter_exact_bytes)
{
	unsigned char want[64];
	struct tn_buf b;
	struct tn_chat_req req = {
		.epoch = 7,
		.connector_id = TN_STR("conn-1"),
		.sid = 42,
		.rid = TN_STR("room1"),
		.name = TN_STR("alice"),
		.conn_inc = 9,
	};
	size_t n = tn_test_hex("93 01 10 86"
			       " 00 07"
			       " 01 a6 63 6f 6e 6e 2d 31"
			       " 02 2a"
			       " 03 a5 72 6f 6f 6d 31"
			       " 04 a5 61 6c 69 63 65"
			       " 07 09",
		want, sizeof(want));
	tn_buf_init(&b);
	tn_chat_req_encode(&b, TN_KIND_CHAT_ENTER, &req);
	TN_CHECK_MEM(b.data, b.len, want, n);
	tn_buf_fini(&b);
}

TN_TEST(test_reply_round_trip)
{
	static const struct tn_str users[] = {TN_STR("alice" TN_TEST_CESU8), TN_STR("bob")};
	struct tn_reply in = {
		.code = -5,
		.reason = TN_STR("why " TN_TEST_CESU8),
		.epoch = UINT64_MAX,
		.has_users = true,
		.body = TN_STR("{\"users\":[]}"),
	}, out;
	struct tn_buf b;
	struct tn_str s;
	tn_str_iter_init(&in.users, users, 2);
	tn_buf_init(&b);
	tn_reply_encode(&b, &in);
	TN_CHECK_OK(tn_reply_decode(&out, b.data, b.len, NULL));
	TN_CHECK_INT(out.code, ==, -5);
	STR_EQ(out.reason, "why " TN_TEST_CESU8);
	TN_CHECK(out.epoch == UINT64_MAX);
	TN_CHECK(out.has_users);
	TN_CHECK_INT(out.users.n, ==, 2);
	struct tn_str_iter again = out.users;
	TN_CHECK(tn_str_iter_next(&out.users, &s));
	STR_EQ(s, "alice" TN_TEST_CESU8);
	TN_CHECK((const uint8_t *)s.p > b.data && (const uint8_t *)s.p < b.data + b.len);
	TN_CHECK(tn_str_iter_next(&out.users, &s));
	STR_EQ(s, "bob");
	TN_CHECK(!tn_str_iter_next(&out.users, &s));
	TN_CHECK(tn_str_iter_next(&again, &s)); /* a copy iterates again */
	STR_EQ(s, "alice" TN_TEST_CESU8);
	STR_EQ(out.body, "{\"users\":[]}");
	tn_buf_fini(&b);
}

TN_TEST(test_reply_defaults)
{
	struct tn_reply out;
	struct tn_buf b;
	struct tn_str s;
	tn_buf_init(&b);
	tn_test_sample(&b, TN_SAMPLE_REPLY_MIN);
	unsigned char want[8];
	size_t n = tn_test_hex("93 01 01 81 00 10", want, sizeof(want)); /* [1, 1, {0: 16}] */
	TN_CHECK_MEM(b.data, b.len, want, n);
	TN_CHECK_OK(tn_reply_decode(&out, b.data, b.len, NULL));
	TN_CHECK_INT(out.code, ==, TN_EMOVED);
	TN_CHECK_INT(out.reason.len, ==, 0);
	TN_CHECK(out.reason.p != NULL);
	TN_CHECK_INT(out.body.len, ==, 0);
	TN_CHECK(out.epoch == 0);
	TN_CHECK(!out.has_users);
	TN_CHECK(!tn_str_iter_next(&out.users, &s));
	/* An empty list is told apart from no list. */
	tn_buf_reset(&b);
	tn_test_sample(&b, TN_SAMPLE_REPLY_NO_USERS);
	TN_CHECK_OK(tn_reply_decode(&out, b.data, b.len, NULL));
	TN_CHECK(out.has_users);
	TN_CHECK_INT(out.users.n, ==, 0);
	TN_CHECK(!tn_str_iter_next(&out.users, &s));
	TN_CHECK(out.epoch == 3);
	tn_buf_fini(&b);
}

TN_TEST(test_chat_round_trips)
{
	static const enum tn_kind kinds[] = {TN_KIND_CHAT_ENTER, TN_KIND_CHAT_LEAVE, TN_KIND_CHAT_SEND};
	struct tn_chat_req in = tn_test_sample_req(), out;
	struct tn_buf b;
	tn_buf_init(&b);
	for (size_t i = 0; i < 3; i++) {
		tn_buf_reset(&b);
		tn_chat_req_encode(&b, kinds[i], &in);
		enum tn_kind k = TN_KIND_REPLY;
		TN_CHECK_OK(tn_proto_peek(&k, b.data, b.len));
		TN_CHECK_INT(k, ==, kinds[i]);
		TN_CHECK_OK(tn_chat_req_decode(&out, kinds[i], b.data, b.len, NULL));
		TN_CHECK(out.epoch == 7 && out.sid == 42);
		STR_EQ(out.connector_id, "connector-server-1");
		STR_EQ(out.rid, "room1");
		STR_EQ(out.name, "alice" TN_TEST_CESU8);
		if (kinds[i] == TN_KIND_CHAT_SEND) {
			STR_EQ(out.target, "*");
			STR_EQ(out.content, "hi " TN_TEST_CESU8 " \"quoted\"");
		} else {
			TN_CHECK_INT(out.target.len + out.content.len, ==, 0);
		}
		/* Decoding as another chat kind is refused, not misread. */
		TN_CHECK_INT(tn_chat_req_decode(&out, kinds[(i + 1) % 3], b.data, b.len, NULL), ==, TN_EKIND);
	}
	tn_buf_fini(&b);
}

TN_TEST(test_send_content_any_bytes)
{
	char all[256];
	struct tn_chat_req in = tn_test_sample_req(), out;
	struct tn_buf b;
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	in.content = (struct tn_str){all, sizeof(all)};
	in.target = TN_STR("bob" TN_TEST_CESU8);
	tn_buf_init(&b);
	tn_chat_req_encode(&b, TN_KIND_CHAT_SEND, &in);
	TN_CHECK_OK(tn_chat_req_decode(&out, TN_KIND_CHAT_SEND, b.data, b.len, NULL));
	TN_CHECK_MEM(out.content.p, out.content.len, all, sizeof(all));
	STR_EQ(out.target, "bob" TN_TEST_CESU8);
	/* Empty content is content. */
	in.content = TN_STR("");
	tn_buf_reset(&b);
	tn_chat_req_encode(&b, TN_KIND_CHAT_SEND, &in);
	TN_CHECK_OK(tn_chat_req_decode(&out, TN_KIND_CHAT_SEND, b.data, b.len, NULL));
	TN_CHECK_INT(out.content.len, ==, 0);
	tn_buf_fini(&b);
}

TN_TEST(test_send_content_as_str)
{
	msgpack_packer pk;
	struct tn_buf b;
	struct tn_chat_req out;
	tn_buf_init(&b);
	craft_enter(&b, 2, 1, TN_KIND_CHAT_SEND);
	tn_wire_packer_init(&pk, &b);
	craft_str(&pk, 6, "text as " TN_TEST_CESU8);
	craft_str(&pk, 5, "*");
	TN_CHECK_OK(tn_chat_req_decode(&out, TN_KIND_CHAT_SEND, b.data, b.len, NULL));
	STR_EQ(out.content, "text as " TN_TEST_CESU8);
	STR_EQ(out.name, "bob");
	STR_EQ(out.rid, "lobby");
	TN_CHECK(out.epoch == 9 && out.sid == 77);
	tn_buf_fini(&b);
}

TN_TEST(test_unknown_keys_ignored)
{
	msgpack_packer pk;
	struct tn_buf b;
	struct tn_chat_req out;
	tn_buf_init(&b);
	craft_enter(&b, 3, 1, TN_KIND_CHAT_ENTER);
	tn_wire_packer_init(&pk, &b);
	msgpack_pack_uint32(&pk, 99); /* 99: [1, "x", {"k": [nil]}, 2.5] */
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_str_with_body(&pk, "x", 1);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "k", 1);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_nil(&pk);
	msgpack_pack_double(&pk, 2.5);
	msgpack_pack_uint32(&pk, 100000); /* 100000: {7: bin} */
	msgpack_pack_map(&pk, 1);
	msgpack_pack_uint32(&pk, 7);
	msgpack_pack_bin_with_body(&pk, "\0\1", 2);
	craft_str(&pk, 6, "content of an ENTER is just an unknown key"); /* 6 */
	TN_CHECK_OK(tn_chat_req_decode(&out, TN_KIND_CHAT_ENTER, b.data, b.len, NULL));
	STR_EQ(out.name, "bob");
	STR_EQ(out.connector_id, "conn");
	TN_CHECK_INT(out.content.len, ==, 0);
	tn_buf_fini(&b);
}

TN_TEST(test_kind_and_version)
{
	enum tn_kind k = TN_KIND_PUSH;
	struct tn_chat_req out;
	struct tn_reply reply;
	struct tn_buf b;
	tn_buf_init(&b);
	craft_enter(&b, 0, 1, 19); /* a kind this build does not know */
	TN_CHECK_INT(tn_proto_peek(&k, b.data, b.len), ==, TN_EKIND);
	TN_CHECK_INT(k, ==, TN_KIND_PUSH); /* untouched on failure */
	TN_CHECK_INT(tn_chat_req_decode(&out, TN_KIND_CHAT_ENTER, b.data, b.len, NULL), ==, TN_EKIND);
	TN_CHECK_INT(tn_reply_decode(&reply, b.data, b.len, NULL), ==, TN_EKIND);
	for (uint64_t v = 0; v < 4; v += 2) { /* versions 0 and 2 */
		tn_buf_reset(&b);
		craft_enter(&b, 0, v, TN_KIND_CHAT_ENTER);
		TN_CHECK_INT(tn_proto_peek(&k, b.data, b.len), ==, TN_EVERSION);
		TN_CHECK_INT(tn_chat_req_decode(&out, TN_KIND_CHAT_ENTER, b.data, b.len, NULL), ==, TN_EVERSION);
	}
	/* A future version is reported as such even when its envelope has another shape. */
	unsigned char m[8];
	size_t n = tn_test_hex("94 02 10 80 c0", m, sizeof(m));
	TN_CHECK_INT(tn_proto_peek(&k, m, n), ==, TN_EVERSION);
	TN_CHECK_STR(tn_kind_name(TN_KIND_CHAT_SEND), "chat.send");
	TN_CHECK_STR(tn_kind_name(19), "unknown");
	TN_CHECK(tn_kind_is_known(TN_KIND_PUSH) && !tn_kind_is_known(0));
	tn_buf_fini(&b);
}

/* Decodes hex as an ENTER. */
static int
enter_hex(const char *hex)
{
	unsigned char m[128];
	struct tn_chat_req out;
	size_t n = tn_test_hex(hex, m, sizeof(m));
	return tn_chat_req_decode(&out, TN_KIND_CHAT_ENTER, m, n, NULL);
}

#define ENTER_BODY "00 07 01 a1 63 02 2a 03 a1 72 04 a1 61"

TN_TEST(test_malformed_envelope_and_body)
{
	TN_CHECK_OK(enter_hex("93 01 10 85 " ENTER_BODY));
	TN_CHECK_INT(enter_hex("83 01 10 85 " ENTER_BODY), ==, TN_EPROTO);  /* map, not array */
	TN_CHECK_INT(enter_hex("90"), ==, TN_EPROTO);                        /* [] */
	TN_CHECK_INT(enter_hex("92 01 10"), ==, TN_EPROTO);                  /* [1, 16] */
	TN_CHECK_INT(enter_hex("94 01 10 85 " ENTER_BODY " c0"), ==, TN_EPROTO);
	TN_CHECK_INT(enter_hex("93 a1 31 10 85 " ENTER_BODY), ==, TN_EPROTO); /* version "1" */
	TN_CHECK_INT(enter_hex("93 01 ff 85 " ENTER_BODY), ==, TN_EPROTO);    /* kind -1 */
	TN_CHECK_INT(enter_hex("93 01 10 95 " ENTER_BODY), ==, TN_EPROTO);    /* body array */
	TN_CHECK_INT(enter_hex("93 01 10 85 " ENTER_BODY " 00"), ==, TN_EPROTO); /* trailing */
	TN_CHECK_INT(enter_hex("93 01 10 84 00 07 01 a1 63 02 2a 03 a1 72"), ==, TN_EPROTO); /* no name */
	TN_CHECK_INT(enter_hex("93 01 10 86 " ENTER_BODY " 00 07"), ==, TN_EPROTO); /* epoch twice */
	TN_CHECK_INT(enter_hex("93 01 10 86 " ENTER_BODY " a1 78 01"), ==, TN_EPROTO); /* str key */
	TN_CHECK_INT(enter_hex("93 01 10 86 " ENTER_BODY " ff 01"), ==, TN_EPROTO); /* key -1 */
	TN_CHECK_OK(enter_hex("93 01 10 86 " ENTER_BODY " cf 00 00 00 01 00 00 00 00 c0"));
}

TN_TEST(test_wrong_types)
{
	TN_CHECK_INT(enter_hex("93 01 10 85 00 a1 37 01 a1 63 02 2a 03 a1 72 04 a1 61"), ==, TN_EPROTO);
	TN_CHECK_INT(enter_hex("93 01 10 85 00 ff 01 a1 63 02 2a 03 a1 72 04 a1 61"), ==, TN_EPROTO);
	TN_CHECK_INT(enter_hex("93 01 10 85 00 07 01 07 02 2a 03 a1 72 04 a1 61"), ==, TN_EPROTO);
	TN_CHECK_INT(enter_hex("93 01 10 85 00 07 01 c4 01 63 02 2a 03 a1 72 04 a1 61"), ==, TN_EPROTO);
	TN_CHECK_INT(enter_hex("93 01 10 85 00 07 01 a1 63 02 c0 03 a1 72 04 a1 61"), ==, TN_EPROTO);
	TN_CHECK_INT(enter_hex("93 01 10 85 00 07 01 a1 63 02 2a 03 91 a1 72 04 a1 61"), ==, TN_EPROTO);
	TN_CHECK_INT(enter_hex("93 01 10 85 00 07 01 a1 63 02 2a 03 a1 72 04 c3"), ==, TN_EPROTO);
	/* A signed encoding of a non-negative number is fine. */
	TN_CHECK_OK(enter_hex("93 01 10 85 00 d0 07 01 a1 63 02 2a 03 a1 72 04 a1 61"));

	unsigned char m[64];
	struct tn_reply reply;
	size_t n = tn_test_hex("93 01 01 81 00 a1 30", m, sizeof(m)); /* code "0" */
	TN_CHECK_INT(tn_reply_decode(&reply, m, n, NULL), ==, TN_EPROTO);
	n = tn_test_hex("93 01 01 81 00 ce 80 00 00 00", m, sizeof(m)); /* code 2^31 */
	TN_CHECK_INT(tn_reply_decode(&reply, m, n, NULL), ==, TN_EPROTO);
	n = tn_test_hex("93 01 01 81 00 d2 80 00 00 00", m, sizeof(m)); /* code -2^31 */
	TN_CHECK_OK(tn_reply_decode(&reply, m, n, NULL));
	TN_CHECK_INT(reply.code, ==, INT32_MIN);
	n = tn_test_hex("93 01 01 82 00 00 03 92 a1 61 01", m, sizeof(m)); /* users ["a", 1] */
	TN_CHECK_INT(tn_reply_decode(&reply, m, n, NULL), ==, TN_EPROTO);
	n = tn_test_hex("93 01 01 82 00 00 04 a1 61", m, sizeof(m)); /* body as str */
	TN_CHECK_INT(tn_reply_decode(&reply, m, n, NULL), ==, TN_EPROTO);
	n = tn_test_hex("93 01 01 81 01 a1 61", m, sizeof(m)); /* no code */
	TN_CHECK_INT(tn_reply_decode(&reply, m, n, NULL), ==, TN_EPROTO);
}

TN_TEST(test_limits)
{
	static char name[4097];
	struct tn_proto_limits lim = tn_proto_limits_default;
	struct tn_chat_req in = tn_test_sample_req(), out;
	struct tn_reply reply;
	struct tn_buf b;
	memset(name, 'n', sizeof(name));
	tn_buf_init(&b);
	/* Exactly max_str_len passes, one more does not. */
	in.name = (struct tn_str){name, lim.max_str_len};
	tn_chat_req_encode(&b, TN_KIND_CHAT_SEND, &in);
	TN_CHECK_OK(tn_chat_req_decode(&out, TN_KIND_CHAT_SEND, b.data, b.len, NULL));
	TN_CHECK_MEM(out.name.p, out.name.len, name, lim.max_str_len);
	lim.max_str_len--;
	TN_CHECK_INT(tn_chat_req_decode(&out, TN_KIND_CHAT_SEND, b.data, b.len, &lim), ==, TN_ETOOBIG);
	lim = tn_proto_limits_default;
	lim.max_bin_len = in.content.len - 1;
	TN_CHECK_INT(tn_chat_req_decode(&out, TN_KIND_CHAT_SEND, b.data, b.len, &lim), ==, TN_ETOOBIG);
	lim = tn_proto_limits_default;
	lim.max_msg_bytes = b.len;
	TN_CHECK_OK(tn_chat_req_decode(&out, TN_KIND_CHAT_SEND, b.data, b.len, &lim));
	lim.max_msg_bytes = b.len - 1;
	TN_CHECK_INT(tn_chat_req_decode(&out, TN_KIND_CHAT_SEND, b.data, b.len, &lim), ==, TN_ETOOBIG);

	/* Over-long arrays: the sample has three users. */
	tn_buf_reset(&b);
	tn_test_sample(&b, TN_SAMPLE_REPLY_FULL);
	lim = tn_proto_limits_default;
	lim.max_array_len = 3;
	TN_CHECK_OK(tn_reply_decode(&reply, b.data, b.len, &lim));
	lim.max_array_len = 2;
	TN_CHECK_INT(tn_reply_decode(&reply, b.data, b.len, &lim), ==, TN_ETOOBIG);
	/* A count claiming more elements than there are bytes is refused either way. */
	unsigned char m[32];
	size_t n = tn_test_hex("93 01 01 82 00 00 03 dd 7f ff ff ff a1 61", m, sizeof(m));
	TN_CHECK_INT(tn_reply_decode(&reply, m, n, NULL), ==, TN_ETOOBIG);
	lim.max_array_len = UINT32_MAX;
	TN_CHECK_INT(tn_reply_decode(&reply, m, n, &lim), ==, TN_ETRUNC);
	tn_buf_fini(&b);
}

TN_TEST(test_every_truncation)
{
	struct tn_buf b;
	tn_buf_init(&b);
	for (int s = 0; s < TN_SAMPLE_COUNT; s++) {
		tn_buf_reset(&b);
		enum tn_kind kind = tn_test_sample(&b, s), peeked = 0;
		TN_CHECK_OK(tn_test_check(kind, b.data, b.len, NULL));
		TN_CHECK_OK(tn_proto_peek(&peeked, b.data, b.len));
		TN_CHECK_INT(peeked, ==, kind);
		for (size_t len = 0; len < b.len; len++) {
			/* A copy of exactly len bytes, so ASan sees any read past the end. */
			uint8_t *p = malloc(len ? len : 1);
			memcpy(p, b.data, len);
			int rv = tn_test_check(kind, p, len, NULL);
			free(p);
			if (rv != TN_ETRUNC)
				fprintf(stderr, "sample %s, prefix %zu: %d\n", tn_sample_names[s], len, rv);
			TN_CHECK_INT(rv, ==, TN_ETRUNC);
		}
	}
	tn_buf_fini(&b);
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

TN_TEST(test_random_flips)
{
	uint64_t seed = 0x9e3779b97f4a7c15u;
	struct tn_buf b;
	int decoded = 0;
	tn_buf_init(&b);
	for (int s = 0; s < TN_SAMPLE_COUNT; s++) {
		tn_buf_reset(&b);
		tn_test_sample(&b, s);
		uint8_t *p = malloc(b.len);
		for (int round = 0; round < 3000; round++) {
			memcpy(p, b.data, b.len);
			int flips = 1 + (int)(xorshift(&seed) % 4);
			for (int f = 0; f < flips; f++)
				p[xorshift(&seed) % b.len] ^= (uint8_t)(1 + xorshift(&seed) % 255);
			size_t len = b.len - (round % 5 == 0 ? xorshift(&seed) % b.len : 0);
			for (size_t k = 0; k < TN_TEST_N_KINDS; k++)
				decoded += tn_test_check(tn_test_kinds[k], p, len, NULL) == TN_OK;
		}
		free(p);
	}
	/* Some flips only change a value: those still decode (and were re-checked). */
	TN_CHECK_INT(decoded, >, 0);
	tn_buf_fini(&b);
}

TN_TEST(test_empty_input)
{
	enum tn_kind k;
	TN_CHECK_INT(tn_proto_peek(&k, NULL, 0), ==, TN_ETRUNC);
	for (size_t i = 0; i < TN_TEST_N_KINDS; i++)
		TN_CHECK_INT(tn_test_check(tn_test_kinds[i], NULL, 0, NULL), ==, TN_ETRUNC);
}

TN_TEST_MAIN(TN_CASE(test_enter_exact_bytes), TN_CASE(test_empty_input), TN_CASE(test_reply_round_trip),
	TN_CASE(test_reply_defaults), TN_CASE(test_chat_round_trips),
	TN_CASE(test_send_content_any_bytes), TN_CASE(test_send_content_as_str),
	TN_CASE(test_unknown_keys_ignored), TN_CASE(test_kind_and_version),
	TN_CASE(test_malformed_envelope_and_body), TN_CASE(test_wrong_types),
	TN_CASE(test_limits), TN_CASE(test_every_truncation), TN_CASE(test_random_flips))
