/* The msgpack reader against msgpack-c's packer and hand-written bytes. */
#include <msgpack.h>

#include "buf.h"
#include "err.h"
#include "mp.h"
#include "tn_test.h"
#include "wire.h"

static struct tn_mp_reader
reader_of(const struct tn_buf *b)
{
	struct tn_mp_reader r;
	tn_mp_reader_init(&r, b->data, b->len);
	return r;
}

TN_TEST(test_ints_every_width)
{
	static const uint64_t us[] = {0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
		(uint64_t)UINT32_MAX + 1, UINT64_MAX};
	static const int64_t is[] = {-1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,
		(int64_t)INT32_MIN - 1, INT64_MIN, INT64_MAX};
	struct tn_buf b;
	msgpack_packer pk;
	tn_buf_init(&b);
	tn_wire_packer_init(&pk, &b);
	for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++)
		msgpack_pack_uint64(&pk, us[i]);
	for (size_t i = 0; i < sizeof(is) / sizeof(is[0]); i++)
		msgpack_pack_int64(&pk, is[i]);
	struct tn_mp_reader r = reader_of(&b);
	for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
		uint64_t v = 12345;
		TN_CHECK_OK(tn_mp_read_u64(&r, &v));
		TN_CHECK(v == us[i]);
	}
	for (size_t i = 0; i < sizeof(is) / sizeof(is[0]); i++) {
		int64_t v = 12345;
		TN_CHECK_OK(tn_mp_read_i64(&r, &v));
		TN_CHECK(v == is[i]);
	}
	TN_CHECK(tn_mp_reader_is_done(&r));
	tn_buf_fini(&b);
}

TN_TEST(test_int_signedness)
{
	unsigned char m[16];
	struct tn_mp_reader r;
	uint64_t u;
	int64_t i;
	/* int8 5 and int64 5: signed encodings of non-negative values are valid unsigneds. */
	size_t n = tn_test_hex("d0 05 d3 00 00 00 00 00 00 00 05", m, sizeof(m));
	tn_mp_reader_init(&r, m, n);
	TN_CHECK_OK(tn_mp_read_u64(&r, &u));
	TN_CHECK_INT(u, ==, 5);
	TN_CHECK_OK(tn_mp_read_u64(&r, &u));
	TN_CHECK_INT(u, ==, 5);
	/* -1 is no unsigned, and the failed read leaves the reader where it was. */
	n = tn_test_hex("ff", m, sizeof(m));
	tn_mp_reader_init(&r, m, n);
	TN_CHECK_INT(tn_mp_read_u64(&r, &u), ==, TN_EPROTO);
	TN_CHECK(r.p == m);
	TN_CHECK_OK(tn_mp_read_i64(&r, &i));
	TN_CHECK_INT(i, ==, -1);
	/* 2^63 does not fit int64_t. */
	n = tn_test_hex("cf 80 00 00 00 00 00 00 00", m, sizeof(m));
	tn_mp_reader_init(&r, m, n);
	TN_CHECK_INT(tn_mp_read_i64(&r, &i), ==, TN_EPROTO);
	TN_CHECK_OK(tn_mp_read_u64(&r, &u));
	TN_CHECK(u == UINT64_C(1) << 63);
	/* int16 -2 sign-extends. */
	n = tn_test_hex("d1 ff fe", m, sizeof(m));
	tn_mp_reader_init(&r, m, n);
	TN_CHECK_OK(tn_mp_read_i64(&r, &i));
	TN_CHECK_INT(i, ==, -2);
}

TN_TEST(test_str_bin_widths)
{
	static char big[70000];
	static const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
	struct tn_buf b;
	msgpack_packer pk;
	memset(big, 'x', sizeof(big));
	tn_buf_init(&b);
	tn_wire_packer_init(&pk, &b);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		msgpack_pack_str_with_body(&pk, big, lens[i]);
		msgpack_pack_bin_with_body(&pk, big, lens[i]);
	}
	struct tn_mp_reader r = reader_of(&b);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct tn_str s;
		TN_CHECK_INT(tn_mp_read_bin(&r, &s, SIZE_MAX), ==, TN_EPROTO);
		TN_CHECK_OK(tn_mp_read_str(&r, &s, SIZE_MAX));
		TN_CHECK_MEM(s.p, s.len, big, lens[i]);
		TN_CHECK_INT(tn_mp_read_str(&r, &s, SIZE_MAX), ==, TN_EPROTO);
		if (lens[i] > 0)
			TN_CHECK_INT(tn_mp_read_bin(&r, &s, lens[i] - 1), ==, TN_ETOOBIG);
		TN_CHECK_OK(tn_mp_read_raw(&r, &s, lens[i]));
		TN_CHECK_MEM(s.p, s.len, big, lens[i]);
		TN_CHECK((const uint8_t *)s.p > b.data && (const uint8_t *)s.p + s.len <= b.data + b.len);
	}
	TN_CHECK(tn_mp_reader_is_done(&r));
	tn_buf_fini(&b);
}

TN_TEST(test_containers)
{
	unsigned char m[32];
	struct tn_mp_reader r;
	uint32_t n;
	size_t len = tn_test_hex("93 dc 00 02 dd 00 01 00 00 81 de 00 00 df 00 00 00 03", m, sizeof(m));
	tn_mp_reader_init(&r, m, len);
	TN_CHECK_INT(tn_mp_read_map(&r, &n), ==, TN_EPROTO);
	TN_CHECK_OK(tn_mp_read_array(&r, &n));
	TN_CHECK_INT(n, ==, 3);
	TN_CHECK_OK(tn_mp_read_array(&r, &n));
	TN_CHECK_INT(n, ==, 2);
	TN_CHECK_OK(tn_mp_read_array(&r, &n));
	TN_CHECK_INT(n, ==, 65536);
	TN_CHECK_OK(tn_mp_read_map(&r, &n));
	TN_CHECK_INT(n, ==, 1);
	TN_CHECK_OK(tn_mp_read_map(&r, &n));
	TN_CHECK_INT(n, ==, 0);
	TN_CHECK_OK(tn_mp_read_map(&r, &n));
	TN_CHECK_INT(n, ==, 3);
	TN_CHECK(tn_mp_reader_is_done(&r));
}

/* Skips one value from hex and checks that exactly `consumed` bytes went. */
static int
skip_hex(const char *hex, size_t consumed)
{
	unsigned char m[64];
	struct tn_mp_reader r;
	size_t n = tn_test_hex(hex, m, sizeof(m));
	tn_mp_reader_init(&r, m, n);
	int rv = tn_mp_skip(&r);
	if (rv == TN_OK && (size_t)(r.p - m) != consumed)
		return -1;
	if (rv != TN_OK && r.p != m)
		return -2;
	return rv;
}

TN_TEST(test_skip_every_type)
{
	TN_CHECK_OK(skip_hex("c0 01", 1));                      /* nil */
	TN_CHECK_OK(skip_hex("c2 c3", 1));                      /* false */
	TN_CHECK_OK(skip_hex("ca 00 00 00 00 01", 5));          /* float32 */
	TN_CHECK_OK(skip_hex("cb 00 00 00 00 00 00 00 00", 9)); /* float64 */
	TN_CHECK_OK(skip_hex("cf 00 00 00 00 00 00 00 00", 9)); /* uint64 */
	TN_CHECK_OK(skip_hex("d2 ff ff ff ff", 5));             /* int32 */
	TN_CHECK_OK(skip_hex("d4 01 02", 3));                   /* fixext 1 */
	TN_CHECK_OK(skip_hex("d8 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00", 18));
	TN_CHECK_OK(skip_hex("c7 02 05 aa bb", 5));             /* ext8 */
	TN_CHECK_OK(skip_hex("c8 00 01 05 aa", 5));             /* ext16 */
	TN_CHECK_OK(skip_hex("c9 00 00 00 00 05", 6));          /* ext32, empty */
	TN_CHECK_OK(skip_hex("c4 02 aa bb cc", 4));             /* bin8 */
	TN_CHECK_OK(skip_hex("db 00 00 00 01 61", 6));          /* str32 */
	/* [1, {"a": [nil, {}]}, "x"] then a trailing byte */
	TN_CHECK_OK(skip_hex("93 01 81 a1 61 92 c0 80 a1 78 ff", 10));
	TN_CHECK_INT(skip_hex("c1", 0), ==, TN_EPROTO);
	TN_CHECK_INT(skip_hex("92 01 c1", 0), ==, TN_EPROTO);
	TN_CHECK_INT(skip_hex("c7 02 05 aa", 0), ==, TN_ETRUNC);
	TN_CHECK_INT(skip_hex("cb 00 00", 0), ==, TN_ETRUNC);
	TN_CHECK_INT(skip_hex("", 0), ==, TN_ETRUNC);
	/* Hostile counts are refused as soon as they exceed the bytes left. */
	TN_CHECK_INT(skip_hex("dd ff ff ff ff 01 02", 0), ==, TN_ETRUNC);
	TN_CHECK_INT(skip_hex("df ff ff ff ff 01 02", 0), ==, TN_ETRUNC);
	TN_CHECK_INT(skip_hex("91 91 91 91 91", 0), ==, TN_ETRUNC);
}

TN_TEST(test_skip_deep_nesting)
{
	/* 100000 nested arrays: no recursion, so no stack to exhaust. */
	static unsigned char m[100001];
	struct tn_mp_reader r;
	memset(m, 0x91, sizeof(m) - 1);
	m[sizeof(m) - 1] = 0x01;
	tn_mp_reader_init(&r, m, sizeof(m));
	TN_CHECK_OK(tn_mp_skip(&r));
	TN_CHECK(tn_mp_reader_is_done(&r));
	tn_mp_reader_init(&r, m, sizeof(m) - 1);
	TN_CHECK_INT(tn_mp_skip(&r), ==, TN_ETRUNC);
}

TN_TEST(test_truncated_headers)
{
	static const char *const cases[] = {"cc", "cd 01", "ce 01 02 03", "cf 00", "d0", "d3 01",
		"d9", "da 00", "db 00 00 00", "d9 02 61", "c4 01", "a3 61 62", "dc 00", "dd 00 00"};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char m[16];
		struct tn_mp_reader r;
		size_t n = tn_test_hex(cases[i], m, sizeof(m));
		tn_mp_reader_init(&r, m, n);
		TN_CHECK_INT(skip_hex(cases[i], 0), ==, TN_ETRUNC);
		/* The typed readers agree, or see another type. */
		uint64_t u;
		struct tn_str s;
		uint32_t c;
		int a = tn_mp_read_u64(&r, &u), b = tn_mp_read_raw(&r, &s, SIZE_MAX);
		int d = tn_mp_read_array(&r, &c);
		TN_CHECK(a == TN_ETRUNC || b == TN_ETRUNC || d == TN_ETRUNC);
		TN_CHECK(a != TN_OK && b != TN_OK && d != TN_OK);
		TN_CHECK(r.p == m);
	}
}

TN_TEST_MAIN(TN_CASE(test_ints_every_width), TN_CASE(test_int_signedness),
	TN_CASE(test_str_bin_widths), TN_CASE(test_containers), TN_CASE(test_skip_every_type),
	TN_CASE(test_skip_deep_nesting), TN_CASE(test_truncated_headers))
