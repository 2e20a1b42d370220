/* The message layer: ids, routes, flags, and every malformed shape. */
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "pml_dict.h"
#include "pml_message.h"
#include "tn_test.h"

static int
decode_hex(struct tn_pml_msg *m, const char *hex)
{
	uint8_t data[512];
	size_t n = tn_test_hex(hex, data, sizeof(data));
	/* An exact-size heap copy, so that ASan sees any overread. The views in *m are not
	 * used after this returns except for their lengths and ids. */
	uint8_t *copy = tn_memdup(data, n);
	int rv = tn_pml_msg_decode(m, copy, n);
	free(copy);
	return rv;
}

TN_TEST(varint_values)
{
	static const struct {
		uint32_t v;
		const char *hex;
	} cases[] = {
	        {1, "01"},
	        {127, "7f"},
	        {128, "80 01"},
	        {300, "ac 02"},
	        {16383, "ff 7f"},
	        {16384, "80 80 01"},
	        {(1u << 28) - 1, "ff ff ff 7f"},
	        {1u << 28, "80 80 80 80 01"},
	        {UINT32_MAX, "ff ff ff ff 0f"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t want[8];
		size_t n = tn_test_hex(cases[i].hex, want, sizeof(want));
		struct tn_buf b;
		tn_buf_init(&b);
		tn_pml_varint_encode(&b, cases[i].v);
		int same = b.len == n && memcmp(b.data, want, n) == 0;
		tn_buf_fini(&b);
		TN_CHECK(same);
		uint32_t v;
		size_t used;
		TN_CHECK_OK(tn_pml_varint_decode(&v, &used, want, n));
		TN_CHECK_INT(v, ==, cases[i].v);
		TN_CHECK_INT(used, ==, n);
	}
}

TN_TEST(varint_errors)
{
	uint8_t d[8];
	uint32_t v = 7;
	size_t used = 9;
	size_t n = tn_test_hex("ff ff ff ff 10", d, sizeof(d)); /* 2^32: overflow */
	TN_CHECK_INT(tn_pml_varint_decode(&v, &used, d, n), ==, TN_ETOOBIG);
	n = tn_test_hex("80 80 80 80 80 01", d, sizeof(d)); /* 6 bytes */
	TN_CHECK_INT(tn_pml_varint_decode(&v, &used, d, n), ==, TN_ETOOBIG);
	n = tn_test_hex("80 80", d, sizeof(d));
	TN_CHECK_INT(tn_pml_varint_decode(&v, &used, d, n), ==, TN_ETRUNC);
	TN_CHECK_INT(tn_pml_varint_decode(&v, &used, d, 0), ==, TN_ETRUNC);
	TN_CHECK_INT(v, ==, 7);
	TN_CHECK_INT(used, ==, 9);
}

TN_TEST(flag_bytes)
{
	struct tn_pml_msg m;
	TN_CHECK_OK(decode_hex(&m, "00 01 01 61"));
	TN_CHECK_INT(m.type, ==, TN_PML_MSG_REQUEST);
	TN_CHECK_OK(decode_hex(&m, "01 01 00 05"));
	TN_CHECK(m.type == TN_PML_MSG_REQUEST && m.compressed && m.route_code == 5);
	TN_CHECK(m.route == NULL);
	TN_CHECK_OK(decode_hex(&m, "02 01 61"));
	TN_CHECK(m.type == TN_PML_MSG_NOTIFY && m.id == 0);
	TN_CHECK_OK(decode_hex(&m, "03 01 02"));
	TN_CHECK(m.type == TN_PML_MSG_NOTIFY && m.route_code == 0x0102);
	TN_CHECK_OK(decode_hex(&m, "04 05"));
	TN_CHECK(m.type == TN_PML_MSG_RESPONSE && m.id == 5 && m.body_len == 0);
	TN_CHECK_OK(decode_hex(&m, "06 00"));
	TN_CHECK(m.type == TN_PML_MSG_PUSH && m.route_len == 0 && m.body_len == 0);
	TN_CHECK_OK(decode_hex(&m, "07 ff ff 7b 7d"));
	TN_CHECK(m.type == TN_PML_MSG_PUSH && m.route_code == 0xffff && m.body_len == 2);
}

TN_TEST(refused_flags)
{
	struct tn_pml_msg m;
	/* gzip, the pitaya error bit, bits 6-7, types 4..7, a compressed response. */
	static const char *const bad[] = {"10 01 01 61", "12 01 61", "20 01 01 61", "40 01 01 61",
	        "80 01 01 61", "08 01", "0a 01", "0c 01", "0e 01", "05 01"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TN_CHECK_INT(decode_hex(&m, bad[i]), ==, TN_EPROTO);
}

TN_TEST(truncated_and_overlong)
{
	struct tn_pml_msg m;
	TN_CHECK_INT(tn_pml_msg_decode(&m, "", 0), ==, TN_ETRUNC);
	TN_CHECK_INT(decode_hex(&m, "00"), ==, TN_ETRUNC);          /* no id */
	TN_CHECK_INT(decode_hex(&m, "00 81"), ==, TN_ETRUNC);       /* id cut */
	TN_CHECK_INT(decode_hex(&m, "00 01"), ==, TN_ETRUNC);       /* no route length */
	TN_CHECK_INT(decode_hex(&m, "00 01 02 61"), ==, TN_ETRUNC); /* route past end */
	TN_CHECK_INT(decode_hex(&m, "02 ff 61 62"), ==, TN_ETRUNC);
	TN_CHECK_INT(decode_hex(&m, "01 01 00"), ==, TN_ETRUNC); /* half a code */
	TN_CHECK_INT(decode_hex(&m, "03"), ==, TN_ETRUNC);
	TN_CHECK_INT(decode_hex(&m, "04"), ==, TN_ETRUNC);
	TN_CHECK_INT(decode_hex(&m, "00 80 80 80 80 80 01 00"), ==, TN_ETOOBIG);
	TN_CHECK_INT(decode_hex(&m, "04 ff ff ff ff 1f 7b 7d"), ==, TN_ETOOBIG);
	TN_CHECK_OK(decode_hex(&m, "04 ff ff ff ff 0f 7b 7d"));
	TN_CHECK_INT(m.id, ==, UINT32_MAX);
}

/* Every prefix of the id-300 request: errors until the route is complete, then OK with a
 * shorter body. */
TN_TEST(every_prefix)
{
	uint8_t d[8];
	size_t n = tn_test_hex("00 ac 02 01 61 7b 7d", d, sizeof(d));
	for (size_t cut = 0; cut <= n; cut++) {
		uint8_t *copy = tn_memdup(d, cut);
		struct tn_pml_msg m;
		int rv = tn_pml_msg_decode(&m, copy, cut);
		size_t body_len = rv == TN_OK ? m.body_len : 0;
		free(copy);
		if (cut < 5) {
			TN_CHECK_INT(rv, ==, TN_ETRUNC);
		} else {
			TN_CHECK_OK(rv);
			TN_CHECK_INT(body_len, ==, cut - 5);
		}
	}
}

TN_TEST(route_limits)
{
	char route[257];
	memset(route, 'r', sizeof(route));
	struct tn_pml_msg m = {.type = TN_PML_MSG_NOTIFY, .route = route, .route_len = 256};
	struct tn_buf b;
	tn_buf_init(&b);
	TN_CHECK_INT(tn_pml_msg_encode(&b, &m), ==, TN_EINVAL);
	TN_CHECK_INT(b.len, ==, 0);
	m.route_len = 255;
	m.body = (const uint8_t *)"{}";
	m.body_len = 2;
	TN_CHECK_OK(tn_pml_msg_encode(&b, &m));
	TN_CHECK_INT(b.len, ==, 1 + 1 + 255 + 2);
	TN_CHECK_INT(b.data[1], ==, 255);
	struct tn_pml_msg got;
	TN_CHECK_OK(tn_pml_msg_decode(&got, b.data, b.len));
	TN_CHECK_MEM(got.route, got.route_len, route, 255);
	TN_CHECK_MEM(got.body, got.body_len, "{}", 2);

	/* An empty route is legal on the wire. */
	tn_buf_reset(&b);
	m.route_len = 0;
	TN_CHECK_OK(tn_pml_msg_encode(&b, &m));
	static const uint8_t want[] = {0x02, 0x00, '{', '}'};
	TN_CHECK_MEM(b.data, b.len, want, sizeof(want));
	tn_buf_fini(&b);
}

TN_TEST(encode_refusals)
{
	struct tn_buf b;
	tn_buf_init(&b);
	struct tn_pml_msg m = {.type = TN_PML_MSG_REQUEST, .id = 0, .route = "a", .route_len = 1};
	TN_CHECK_INT(tn_pml_msg_encode(&b, &m), ==, TN_EINVAL); /* id 0 reads as a push */
	m.type = TN_PML_MSG_RESPONSE;
	TN_CHECK_INT(tn_pml_msg_encode_pkg(&b, &m), ==, TN_EINVAL);
	m = (struct tn_pml_msg){.type = TN_PML_MSG_PUSH, .compressed = true, .route_code = 0};
	TN_CHECK_INT(tn_pml_msg_encode(&b, &m), ==, TN_EINVAL);
	m = (struct tn_pml_msg){.type = (enum tn_pml_msg_type)4, .route = "a", .route_len = 1};
	TN_CHECK_INT(tn_pml_msg_encode(&b, &m), ==, TN_EINVAL);
	TN_CHECK_INT(b.len, ==, 0);

	/* A response ignores route fields; a notify ignores the id. */
	m = (struct tn_pml_msg){.type = TN_PML_MSG_RESPONSE,
	        .id = 9,
	        .compressed = true,
	        .route = "zz",
	        .route_len = 2};
	TN_CHECK_OK(tn_pml_msg_encode(&b, &m));
	static const uint8_t resp[] = {0x04, 0x09};
	TN_CHECK_MEM(b.data, b.len, resp, sizeof(resp));
	tn_buf_reset(&b);
	m = (struct tn_pml_msg){.type = TN_PML_MSG_NOTIFY, .id = 9, .route = "a", .route_len = 1};
	TN_CHECK_OK(tn_pml_msg_encode(&b, &m));
	static const uint8_t notify[] = {0x02, 0x01, 'a'};
	TN_CHECK_MEM(b.data, b.len, notify, sizeof(notify));
	tn_buf_fini(&b);
}

TN_TEST(resolve)
{
	static const char *const routes[] = {"b.h.m", "a.h.m"};
	struct tn_pml_dict *dict;
	TN_CHECK_OK(tn_pml_dict_new(&dict, routes, 2, NULL, 0));
	struct tn_pml_msg m;
	TN_CHECK_OK(decode_hex(&m, "01 07 00 02 7b 7d"));
	TN_CHECK_INT(tn_pml_msg_resolve(&m, NULL), ==, TN_ENOENT);
	TN_CHECK(m.route == NULL && m.route_code == 2 && m.id == 7);
	TN_CHECK_OK(tn_pml_msg_resolve(&m, dict));
	TN_CHECK_MEM(m.route, m.route_len, "b.h.m", 5);
	TN_CHECK_OK(decode_hex(&m, "03 00 03"));
	TN_CHECK_INT(tn_pml_msg_resolve(&m, dict), ==, TN_ENOENT);
	TN_CHECK_OK(decode_hex(&m, "03 00 00"));
	TN_CHECK_INT(tn_pml_msg_resolve(&m, dict), ==, TN_ENOENT);
	/* A string route is left alone. */
	TN_CHECK_OK(decode_hex(&m, "02 01 61"));
	TN_CHECK_OK(tn_pml_msg_resolve(&m, NULL));
	TN_CHECK_INT(m.route_len, ==, 1);

	/* set_route compresses only routes in the dict. */
	tn_pml_msg_set_route(&m, dict, "a.h.m", 5);
	TN_CHECK(m.compressed && m.route_code == 1);
	tn_pml_msg_set_route(&m, dict, "onChat", 6);
	TN_CHECK(!m.compressed && m.route_len == 6);
	tn_pml_msg_set_route(&m, NULL, "a.h.m", 5);
	TN_CHECK(!m.compressed);
	tn_pml_dict_free(dict);
}

/* §6.4: bodies are bytes; CESU-8 (U+1F600 as two 3-byte surrogates) is untouched. */
TN_TEST(cesu8_body_passes)
{
	static const uint8_t body[] = {
	        '{', '"', 'm', '"', ':', '"', 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80, '"', '}'};
	struct tn_pml_msg m = {.type = TN_PML_MSG_PUSH,
	        .route = "onChat",
	        .route_len = 6,
	        .body = body,
	        .body_len = sizeof(body)};
	struct tn_buf b;
	tn_buf_init(&b);
	TN_CHECK_OK(tn_pml_msg_encode(&b, &m));
	struct tn_pml_msg got;
	TN_CHECK_OK(tn_pml_msg_decode(&got, b.data, b.len));
	TN_CHECK_MEM(got.body, got.body_len, body, sizeof(body));
	tn_buf_fini(&b);
}

TN_TEST_MAIN(TN_CASE(varint_values), TN_CASE(varint_errors), TN_CASE(flag_bytes),
        TN_CASE(refused_flags), TN_CASE(truncated_and_overlong), TN_CASE(every_prefix),
        TN_CASE(route_limits), TN_CASE(encode_refusals), TN_CASE(resolve),
        TN_CASE(cesu8_body_passes))
