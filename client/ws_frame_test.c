#include <string.h>

#include "err.h"
#include "tn_test.h"
#include "ws_frame.h"

#define MAX (1u << 20)

static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* The examples of RFC 6455 §5.7. */
TN_TEST(encode_rfc_examples)
{
	struct tn_buf b;
	uint8_t want[32];
	tn_buf_init(&b);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_TEXT, true, "Hello", 5, NULL);
	size_t n = tn_test_hex("81 05 48 65 6c 6c 6f", want, sizeof(want));
	TN_CHECK_MEM(b.data, b.len, want, n);

	tn_buf_reset(&b);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_TEXT, true, "Hello", 5, rfc_mask);
	n = tn_test_hex("81 85 37 fa 21 3d 7f 9f 4d 51 58", want, sizeof(want));
	TN_CHECK_MEM(b.data, b.len, want, n);

	tn_buf_reset(&b);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_TEXT, false, "Hel", 3, NULL);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_CONT, true, "lo", 2, NULL);
	n = tn_test_hex("01 03 48 65 6c 80 02 6c 6f", want, sizeof(want));
	TN_CHECK_MEM(b.data, b.len, want, n);

	tn_buf_reset(&b);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_PONG, true, "Hello", 5, rfc_mask);
	n = tn_test_hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58", want, sizeof(want));
	TN_CHECK_MEM(b.data, b.len, want, n);
	tn_buf_fini(&b);
}

TN_TEST(encode_length_forms)
{
	static uint8_t payload[70000];
	struct tn_buf b;
	tn_buf_init(&b);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_BINARY, true, payload, 125, NULL);
	TN_CHECK(b.data[0] == 0x82 && b.data[1] == 125 && b.len == 127);
	tn_buf_reset(&b);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_BINARY, true, payload, 126, NULL);
	TN_CHECK(b.data[1] == 126 && b.data[2] == 0 && b.data[3] == 126 && b.len == 130);
	tn_buf_reset(&b);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_BINARY, true, payload, 256, NULL);
	TN_CHECK(b.data[1] == 126 && b.data[2] == 1 && b.data[3] == 0);
	tn_buf_reset(&b);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_BINARY, true, payload, 65536, rfc_mask);
	uint8_t want[14];
	size_t n = tn_test_hex("82 ff 00 00 00 00 00 01 00 00 37 fa 21 3d", want, sizeof(want));
	TN_CHECK_MEM(b.data, n, want, n);
	TN_CHECK_INT(b.len, ==, 14 + 65536);
	/* The zero payload came out as the mask itself. */
	TN_CHECK(b.data[14] == 0x37 && b.data[17] == 0x3d && b.data[18] == 0x37);
	tn_buf_fini(&b);
}

/* Encodes then decodes len bytes in the given role, checking the round trip. */
static int
round_trip(size_t len, bool masked)
{
	struct tn_buf b;
	tn_buf_init(&b);
	uint8_t *src = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		src[i] = (uint8_t)(i * 7);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_BINARY, true, src, len, masked ? rfc_mask : NULL);
	struct tn_cli_ws_frame f;
	size_t used = 0;
	int rv = tn_cli_ws_frame_decode(&f, &used, b.data, b.len, MAX, masked);
	int ok = rv == TN_OK && used == b.len && f.op == TN_CLI_WS_BINARY && f.fin &&
	         f.len == len && (len == 0 || memcmp(f.payload, src, len) == 0);
	free(src);
	tn_buf_fini(&b);
	return ok;
}

TN_TEST(decode_round_trips)
{
	static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 100000};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		TN_CHECK(round_trip(lens[i], false));
		TN_CHECK(round_trip(lens[i], true));
	}
}

TN_TEST(decode_prefixes_are_incomplete)
{
	struct tn_buf b;
	tn_buf_init(&b);
	static uint8_t payload[300];
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_BINARY, true, payload, sizeof(payload), NULL);
	struct tn_cli_ws_frame f;
	size_t used = 99;
	for (size_t n = 0; n < b.len; n++) {
		TN_CHECK_INT(
		        tn_cli_ws_frame_decode(&f, &used, b.data, n, MAX, false), ==, TN_ETRUNC);
		TN_CHECK_INT(used, ==, 99);
	}
	TN_CHECK_OK(tn_cli_ws_frame_decode(&f, &used, b.data, b.len, MAX, false));
	tn_buf_fini(&b);
}

static int
decode_hex(const char *hex, size_t max, bool masked)
{
	uint8_t buf[64];
	size_t n = tn_test_hex(hex, buf, sizeof(buf));
	struct tn_cli_ws_frame f;
	size_t used;
	return tn_cli_ws_frame_decode(&f, &used, buf, n, max, masked);
}

TN_TEST(decode_rejects_bad_frames)
{
	/* A masked frame from the server. */
	TN_CHECK_INT(decode_hex("81 85 37 fa 21 3d 7f 9f 4d 51 58", MAX, false), ==, TN_EPROTO);
	/* An unmasked frame from a client (server role). */
	TN_CHECK_INT(decode_hex("81 05 48 65 6c 6c 6f", MAX, true), ==, TN_EPROTO);
	/* RSV1, RSV2, RSV3. */
	TN_CHECK_INT(decode_hex("c1 01 41", MAX, false), ==, TN_EPROTO);
	TN_CHECK_INT(decode_hex("a1 01 41", MAX, false), ==, TN_EPROTO);
	TN_CHECK_INT(decode_hex("91 01 41", MAX, false), ==, TN_EPROTO);
	/* Reserved opcodes 3 and 0xb. */
	TN_CHECK_INT(decode_hex("83 00", MAX, false), ==, TN_EPROTO);
	TN_CHECK_INT(decode_hex("8b 00", MAX, false), ==, TN_EPROTO);
	/* A fragmented ping, a ping over 125 bytes. */
	TN_CHECK_INT(decode_hex("09 00", MAX, false), ==, TN_EPROTO);
	TN_CHECK_INT(decode_hex("89 7e 00 7e", MAX, false), ==, TN_EPROTO);
	/* A 64-bit length with the top bit set. */
	TN_CHECK_INT(decode_hex("82 7f 80 00 00 00 00 00 00 01", MAX, false), ==, TN_EPROTO);
	/* Over the limit: known from the header alone. */
	TN_CHECK_INT(decode_hex("82 7e 01 00", 255, false), ==, TN_ETOOBIG);
	TN_CHECK_INT(decode_hex("82 7f 00 00 00 01 00 00 00 00", MAX, false), ==, TN_ETOOBIG);
	/* At the limit: just incomplete. */
	TN_CHECK_INT(decode_hex("82 7e 01 00", 256, false), ==, TN_ETRUNC);
}

TN_TEST(decode_unmasks_in_place)
{
	uint8_t buf[16];
	size_t n = tn_test_hex("81 85 37 fa 21 3d 7f 9f 4d 51 58", buf, sizeof(buf));
	struct tn_cli_ws_frame f;
	size_t used;
	TN_CHECK_OK(tn_cli_ws_frame_decode(&f, &used, buf, n, MAX, true));
	TN_CHECK_INT(used, ==, n);
	TN_CHECK(f.op == TN_CLI_WS_TEXT && f.fin);
	TN_CHECK_MEM(f.payload, f.len, "Hello", 5);
}

/* Decodes every frame in b and feeds the data ones to a; collects messages into out,
 * separated by '|', and counts control frames. Returns the first error or TN_OK. */
static int
feed_all(struct tn_cli_ws_asm *a, struct tn_buf *b, struct tn_buf *out, int *controls)
{
	size_t off = 0;
	while (off < b->len) {
		struct tn_cli_ws_frame f;
		size_t used;
		int rv = tn_cli_ws_frame_decode(&f, &used, b->data + off, b->len - off, MAX, false);
		if (rv != TN_OK)
			return rv;
		off += used;
		if (tn_cli_ws_op_is_control(f.op)) {
			(*controls)++;
			continue;
		}
		enum tn_cli_ws_op op;
		const uint8_t *msg;
		size_t len;
		rv = tn_cli_ws_asm_feed(a, &f, &op, &msg, &len);
		if (rv == TN_ETRUNC)
			continue;
		if (rv != TN_OK)
			return rv;
		tn_buf_append(out, msg, len);
		tn_buf_append_byte(out, op == TN_CLI_WS_BINARY ? '|' : '!');
	}
	return TN_OK;
}

TN_TEST(assemble_fragments_with_control_frames)
{
	struct tn_cli_ws_asm a;
	struct tn_buf b, out;
	int controls = 0;
	tn_cli_ws_asm_init(&a, 100);
	tn_buf_init(&b);
	tn_buf_init(&out);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_BINARY, true, "one", 3, NULL);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_BINARY, false, "tw", 2, NULL);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_PING, true, "p", 1, NULL);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_CONT, false, "", 0, NULL);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_PONG, true, NULL, 0, NULL);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_CONT, true, "o", 1, NULL);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_TEXT, false, "t", 1, NULL);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_CONT, true, "x", 1, NULL);
	tn_cli_ws_frame_encode(&b, TN_CLI_WS_BINARY, true, NULL, 0, NULL);
	TN_CHECK_OK(feed_all(&a, &b, &out, &controls));
	TN_CHECK_MEM(out.data, out.len, "one|two|tx!|", 12);
	TN_CHECK_INT(controls, ==, 2);
	tn_buf_fini(&b);
	tn_buf_fini(&out);
	tn_cli_ws_asm_fini(&a);
}

static int
feed_frames(size_t max, void (*build)(struct tn_buf *))
{
	struct tn_cli_ws_asm a;
	struct tn_buf b, out;
	int controls = 0;
	tn_cli_ws_asm_init(&a, max);
	tn_buf_init(&b);
	tn_buf_init(&out);
	build(&b);
	int rv = feed_all(&a, &b, &out, &controls);
	tn_buf_fini(&b);
	tn_buf_fini(&out);
	tn_cli_ws_asm_fini(&a);
	return rv;
}

static void
stray_continuation(struct tn_buf *b)
{
	tn_cli_ws_frame_encode(b, TN_CLI_WS_CONT, true, "x", 1, NULL);
}

static void
interleaved_message(struct tn_buf *b)
{
	tn_cli_ws_frame_encode(b, TN_CLI_WS_BINARY, false, "a", 1, NULL);
	tn_cli_ws_frame_encode(b, TN_CLI_WS_BINARY, true, "b", 1, NULL);
}

static void
growing_message(struct tn_buf *b)
{
	tn_cli_ws_frame_encode(b, TN_CLI_WS_BINARY, false, "abcdef", 6, NULL);
	tn_cli_ws_frame_encode(b, TN_CLI_WS_CONT, false, "abcdef", 6, NULL);
}

static void
exact_message(struct tn_buf *b)
{
	tn_cli_ws_frame_encode(b, TN_CLI_WS_BINARY, false, "abcdef", 6, NULL);
	tn_cli_ws_frame_encode(b, TN_CLI_WS_CONT, true, "abcd", 4, NULL);
}

static void
big_single(struct tn_buf *b)
{
	tn_cli_ws_frame_encode(b, TN_CLI_WS_BINARY, true, "abcdefghijk", 11, NULL);
}

TN_TEST(assemble_errors)
{
	TN_CHECK_INT(feed_frames(100, stray_continuation), ==, TN_EPROTO);
	TN_CHECK_INT(feed_frames(100, interleaved_message), ==, TN_EPROTO);
	TN_CHECK_INT(feed_frames(10, growing_message), ==, TN_ETOOBIG);
	TN_CHECK_INT(feed_frames(10, exact_message), ==, TN_OK);
	TN_CHECK_INT(feed_frames(10, big_single), ==, TN_ETOOBIG);
}

TN_TEST(assembler_recovers_after_error)
{
	struct tn_cli_ws_asm a;
	tn_cli_ws_asm_init(&a, 100);
	uint8_t x = 'x';
	struct tn_cli_ws_frame start = {TN_CLI_WS_BINARY, false, &x, 1};
	struct tn_cli_ws_frame again = {TN_CLI_WS_TEXT, true, &x, 1};
	enum tn_cli_ws_op op;
	const uint8_t *msg;
	size_t len;
	TN_CHECK_INT(tn_cli_ws_asm_feed(&a, &start, &op, &msg, &len), ==, TN_ETRUNC);
	TN_CHECK_INT(tn_cli_ws_asm_feed(&a, &again, &op, &msg, &len), ==, TN_EPROTO);
	TN_CHECK_OK(tn_cli_ws_asm_feed(&a, &again, &op, &msg, &len));
	TN_CHECK(op == TN_CLI_WS_TEXT && len == 1 && msg[0] == 'x');
	tn_cli_ws_asm_fini(&a);
}

TN_TEST(close_payloads)
{
	struct tn_buf b;
	tn_buf_init(&b);
	tn_cli_ws_close_payload(&b, 1000, "bye");
	TN_CHECK_MEM(b.data, b.len,
	        "\x03\xe8"
	        "bye",
	        5);
	uint16_t code = 0;
	const uint8_t *reason;
	size_t rlen;
	TN_CHECK_OK(tn_cli_ws_close_parse(&code, &reason, &rlen, b.data, b.len));
	TN_CHECK_INT(code, ==, 1000);
	TN_CHECK_MEM(reason, rlen, "bye", 3);
	tn_buf_reset(&b);
	tn_cli_ws_close_payload(&b, TN_CLI_WS_CLOSE_NO_STATUS, "ignored");
	TN_CHECK_INT(b.len, ==, 0);
	TN_CHECK_OK(tn_cli_ws_close_parse(&code, &reason, &rlen, b.data, 0));
	TN_CHECK_INT(code, ==, TN_CLI_WS_CLOSE_NO_STATUS);
	/* A long reason is cut to fit a control frame. */
	char longr[300];
	memset(longr, 'r', sizeof(longr) - 1);
	longr[sizeof(longr) - 1] = '\0';
	tn_buf_reset(&b);
	tn_cli_ws_close_payload(&b, 4000, longr);
	TN_CHECK_INT(b.len, ==, TN_CLI_WS_CONTROL_MAX);
	tn_buf_fini(&b);

	static const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
		TN_CHECK_INT(tn_cli_ws_close_parse(&code, &reason, &rlen, p, 2), ==, TN_EPROTO);
	}
	static const uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1011, 3000, 4999};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint8_t p[2] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
		TN_CHECK_OK(tn_cli_ws_close_parse(&code, &reason, &rlen, p, 2));
		TN_CHECK_INT(code, ==, good[i]);
	}
	uint8_t one = 3;
	TN_CHECK_INT(tn_cli_ws_close_parse(&code, &reason, &rlen, &one, 1), ==, TN_EPROTO);
}

TN_TEST_MAIN(TN_CASE(encode_rfc_examples), TN_CASE(encode_length_forms),
        TN_CASE(decode_round_trips), TN_CASE(decode_prefixes_are_incomplete),
        TN_CASE(decode_rejects_bad_frames), TN_CASE(decode_unmasks_in_place),
        TN_CASE(assemble_fragments_with_control_frames), TN_CASE(assemble_errors),
        TN_CASE(assembler_recovers_after_error), TN_CASE(close_payloads))
