/* The package layer: encoding, iteration over several packages, and every way a buffer
 * can be malformed. */
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "pml_package.h"
#include "tn_test.h"

TN_TEST(encode_header)
{
	struct tn_buf b;
	tn_buf_init(&b);
	uint8_t body[300];
	memset(body, 'x', sizeof(body));
	TN_CHECK_OK(tn_pml_pkg_encode(&b, TN_PML_PKG_DATA, body, sizeof(body)));
	TN_CHECK_INT(b.len, ==, 304);
	static const uint8_t hdr[] = {0x04, 0x00, 0x01, 0x2c};
	TN_CHECK_MEM(b.data, 4, hdr, 4);
	TN_CHECK_MEM(b.data + 4, 300, body, 300);
	tn_buf_fini(&b);
}

TN_TEST(encode_refuses_bad_type_and_size)
{
	struct tn_buf b;
	tn_buf_init(&b);
	TN_CHECK_INT(tn_pml_pkg_encode(&b, (enum tn_pml_pkg_type)0, NULL, 0), ==, TN_EINVAL);
	TN_CHECK_INT(tn_pml_pkg_encode(&b, (enum tn_pml_pkg_type)6, NULL, 0), ==, TN_EINVAL);
	/* The length is checked before the body is touched. */
	TN_CHECK_INT(tn_pml_pkg_encode(&b, TN_PML_PKG_DATA, "", TN_PML_PKG_MAX_BODY + 1), ==,
	        TN_ETOOBIG);
	TN_CHECK_INT(b.len, ==, 0);
	tn_buf_fini(&b);
}

TN_TEST(begin_end)
{
	struct tn_buf b;
	tn_buf_init(&b);
	tn_buf_append(&b, "pre", 3);
	size_t start = tn_pml_pkg_begin(&b, TN_PML_PKG_KICK);
	TN_CHECK_INT(start, ==, 3);
	tn_buf_append(&b, "{}", 2);
	TN_CHECK_OK(tn_pml_pkg_end(&b, start));
	static const uint8_t want[] = {'p', 'r', 'e', 0x05, 0, 0, 2, '{', '}'};
	TN_CHECK_MEM(b.data, b.len, want, sizeof(want));

	/* A body over 2^24-1 bytes is refused and removed. */
	start = tn_pml_pkg_begin(&b, TN_PML_PKG_DATA);
	tn_buf_reserve(&b, TN_PML_PKG_MAX_BODY + 1);
	memset(b.data + b.len, 0, TN_PML_PKG_MAX_BODY + 1);
	b.len += TN_PML_PKG_MAX_BODY + 1;
	TN_CHECK_INT(tn_pml_pkg_end(&b, start), ==, TN_ETOOBIG);
	TN_CHECK_MEM(b.data, b.len, want, sizeof(want));

	start = tn_pml_pkg_begin(&b, TN_PML_PKG_DATA);
	tn_buf_append(&b, "abc", 3);
	tn_pml_pkg_abort(&b, start);
	TN_CHECK_MEM(b.data, b.len, want, sizeof(want));
	tn_buf_fini(&b);
}

/* HEARTBEAT, DATA "hello", KICK "{}", ACK: 4 + 9 + 6 + 4 = 23 bytes. */
static size_t
three_plus_one(uint8_t *out)
{
	struct tn_buf b;
	tn_buf_init(&b);
	tn_pml_pkg_encode(&b, TN_PML_PKG_HEARTBEAT, NULL, 0);
	tn_pml_pkg_encode(&b, TN_PML_PKG_DATA, "hello", 5);
	tn_pml_pkg_encode(&b, TN_PML_PKG_KICK, "{}", 2);
	tn_pml_pkg_encode(&b, TN_PML_PKG_HANDSHAKE_ACK, NULL, 0);
	size_t n = b.len;
	memcpy(out, b.data, n);
	tn_buf_fini(&b);
	return n;
}

TN_TEST(several_in_order)
{
	uint8_t data[64];
	size_t n = three_plus_one(data);
	TN_CHECK_INT(n, ==, 23);
	struct tn_pml_pkg_iter it;
	struct tn_pml_pkg p;
	tn_pml_pkg_iter_init(&it, data, n, 0);
	TN_CHECK(tn_pml_pkg_iter_more(&it));
	TN_CHECK_OK(tn_pml_pkg_next(&p, &it));
	TN_CHECK_INT(p.type, ==, TN_PML_PKG_HEARTBEAT);
	TN_CHECK_INT(p.len, ==, 0);
	TN_CHECK_OK(tn_pml_pkg_next(&p, &it));
	TN_CHECK_INT(p.type, ==, TN_PML_PKG_DATA);
	TN_CHECK_MEM(p.body, p.len, "hello", 5);
	TN_CHECK(p.body == data + 8); /* a view, not a copy */
	TN_CHECK_OK(tn_pml_pkg_next(&p, &it));
	TN_CHECK_INT(p.type, ==, TN_PML_PKG_KICK);
	TN_CHECK_MEM(p.body, p.len, "{}", 2);
	TN_CHECK_OK(tn_pml_pkg_next(&p, &it));
	TN_CHECK_INT(p.type, ==, TN_PML_PKG_HANDSHAKE_ACK);
	TN_CHECK(!tn_pml_pkg_iter_more(&it));
	TN_CHECK_INT(tn_pml_pkg_next(&p, &it), ==, TN_ENOENT);
	TN_CHECK_INT(tn_pml_pkg_iter_offset(&it), ==, 23);
}

TN_TEST(empty_buffer)
{
	struct tn_pml_pkg_iter it;
	struct tn_pml_pkg p;
	tn_pml_pkg_iter_init(&it, NULL, 0, 0);
	TN_CHECK(!tn_pml_pkg_iter_more(&it));
	TN_CHECK_INT(tn_pml_pkg_next(&p, &it), ==, TN_ENOENT);
}

/* Every prefix of the buffer: the whole packages in it decode, then a cut inside a header
 * or a body is TN_ETRUNC, and stays so. */
TN_TEST(truncated_at_every_prefix)
{
	uint8_t data[64];
	size_t n = three_plus_one(data);
	static const size_t ends[] = {4, 13, 19, 23};
	for (size_t cut = 0; cut < n; cut++) {
		/* A heap copy of exactly cut bytes, so that ASan sees any overread. */
		uint8_t *copy = tn_memdup(data, cut);
		size_t whole = 0;
		bool at_boundary = cut == 0;
		for (size_t i = 0; i < 4; i++) {
			if (ends[i] <= cut)
				whole++;
			if (ends[i] == cut)
				at_boundary = true;
		}
		struct tn_pml_pkg_iter it;
		struct tn_pml_pkg p;
		tn_pml_pkg_iter_init(&it, copy, cut, 0);
		size_t got = 0;
		int rv;
		while ((rv = tn_pml_pkg_next(&p, &it)) == TN_OK)
			got++;
		size_t off = tn_pml_pkg_iter_offset(&it);
		bool more = tn_pml_pkg_iter_more(&it);
		int again = tn_pml_pkg_next(&p, &it);
		free(copy);
		TN_CHECK_INT(got, ==, whole);
		TN_CHECK_INT(rv, ==, at_boundary ? TN_ENOENT : TN_ETRUNC);
		TN_CHECK_INT(again, ==, rv);
		TN_CHECK_INT(more, ==, !at_boundary);
		TN_CHECK_INT(off, ==, whole ? ends[whole - 1] : 0);
	}
}

TN_TEST(oversize)
{
	/* Only the header: the limit is checked before waiting for the body. */
	uint8_t hdr[4] = {0x04, 0x01, 0x00, 0x01}; /* 65537 bytes */
	struct tn_pml_pkg_iter it;
	struct tn_pml_pkg p;
	tn_pml_pkg_iter_init(&it, hdr, 4, 0);
	TN_CHECK_INT(tn_pml_pkg_next(&p, &it), ==, TN_ETOOBIG);
	TN_CHECK_INT(tn_pml_pkg_next(&p, &it), ==, TN_ETOOBIG);

	/* Exactly at the default limit is fine. */
	struct tn_buf b;
	tn_buf_init(&b);
	uint8_t *big = tn_calloc(1, TN_PML_PKG_DEFAULT_LIMIT);
	TN_CHECK_OK(tn_pml_pkg_encode(&b, TN_PML_PKG_DATA, big, TN_PML_PKG_DEFAULT_LIMIT));
	free(big);
	tn_pml_pkg_iter_init(&it, b.data, b.len, 0);
	TN_CHECK_OK(tn_pml_pkg_next(&p, &it));
	TN_CHECK_INT(p.len, ==, TN_PML_PKG_DEFAULT_LIMIT);

	/* A custom limit. */
	tn_buf_reset(&b);
	tn_pml_pkg_encode(&b, TN_PML_PKG_DATA, "0123456789", 10);
	tn_pml_pkg_encode(&b, TN_PML_PKG_DATA, "01234567890", 11);
	tn_pml_pkg_iter_init(&it, b.data, b.len, 10);
	TN_CHECK_OK(tn_pml_pkg_next(&p, &it));
	TN_CHECK_INT(tn_pml_pkg_next(&p, &it), ==, TN_ETOOBIG);
	TN_CHECK_INT(tn_pml_pkg_iter_offset(&it), ==, 14);
	tn_buf_fini(&b);
}

TN_TEST(unknown_type)
{
	static const uint8_t types[] = {0x00, 0x06, 0x07, 0x41, 0xff};
	for (size_t i = 0; i < sizeof(types); i++) {
		uint8_t data[8] = {0x03, 0, 0, 0, types[i], 0, 0, 0};
		struct tn_pml_pkg_iter it;
		struct tn_pml_pkg p;
		tn_pml_pkg_iter_init(&it, data, sizeof(data), 0);
		TN_CHECK_OK(tn_pml_pkg_next(&p, &it));
		TN_CHECK_INT(tn_pml_pkg_next(&p, &it), ==, TN_EPROTO);
		/* Recognised from its first byte alone. */
		tn_pml_pkg_iter_init(&it, data + 4, 1, 0);
		TN_CHECK_INT(tn_pml_pkg_next(&p, &it), ==, TN_EPROTO);
	}
}

TN_TEST(header_decode)
{
	enum tn_pml_pkg_type type = TN_PML_PKG_DATA;
	size_t len = 99;
	static const uint8_t h[] = {0x01, 0xab, 0xcd, 0xef};
	TN_CHECK_INT(tn_pml_pkg_header_decode(&type, &len, h, 0), ==, TN_ETRUNC);
	TN_CHECK_INT(tn_pml_pkg_header_decode(&type, &len, h, 3), ==, TN_ETRUNC);
	TN_CHECK_INT(type, ==, TN_PML_PKG_DATA); /* not written on error */
	TN_CHECK_INT(len, ==, 99);
	TN_CHECK_OK(tn_pml_pkg_header_decode(&type, &len, h, 4));
	TN_CHECK_INT(type, ==, TN_PML_PKG_HANDSHAKE);
	TN_CHECK_INT(len, ==, 0xabcdef);
	TN_CHECK(tn_pml_pkg_type_is_valid(5) && !tn_pml_pkg_type_is_valid(0) &&
	         !tn_pml_pkg_type_is_valid(6));
}

TN_TEST_MAIN(TN_CASE(encode_header), TN_CASE(encode_refuses_bad_type_and_size), TN_CASE(begin_end),
        TN_CASE(several_in_order), TN_CASE(empty_buffer), TN_CASE(truncated_at_every_prefix),
        TN_CASE(oversize), TN_CASE(unknown_type), TN_CASE(header_decode))
