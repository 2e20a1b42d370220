/* TN_KIND_REG_*: the registry's messages. Round trips with every field, the exact bytes
 * of one message, defaults of absent fields, forward compatibility (unknown keys) and
 * every way of being malformed, truncated or oversized. */
#include <msgpack.h>

#include "buf.h"
#include "err.h"
#include "proto.h"
#include "proto_testutil.h"
#include "registry.h"
#include "tn_test.h"
#include "wire.h"

#define STR_EQ(a, lit) TN_CHECK_MEM((a).p, (a).len, lit, sizeof(lit) - 1)

static void
sample(struct tn_buf *b, int reg_sample)
{
	tn_buf_reset(b);
	tn_test_sample(b, TN_SAMPLE_REG_FIRST + reg_sample);
}

TN_TEST(test_leave_exact_bytes)
{
	unsigned char want[32];
	struct tn_buf b;
	struct tn_reg_leave m = {TN_STR("g1"), 5}, out;
	/* [1, 50, {0: "g1", 1: 5}] */
	size_t n = tn_test_hex("93 01 32 82 00 a2 67 31 01 05", want, sizeof(want));
	tn_buf_init(&b);
	tn_reg_leave_encode(&b, &m);
	TN_CHECK_MEM(b.data, b.len, want, n);
	TN_CHECK_OK(tn_reg_leave_decode(&out, b.data, b.len, NULL));
	STR_EQ(out.id, "g1");
	TN_CHECK(out.incarnation == 5);
	enum tn_kind k = TN_KIND_REPLY;
	TN_CHECK_OK(tn_proto_peek(&k, b.data, b.len));
	TN_CHECK_INT(k, ==, TN_KIND_REG_LEAVE);
	TN_CHECK_STR(tn_kind_name(k), "registry.leave");
	tn_buf_fini(&b);
}

TN_TEST(test_register_round_trip)
{
	struct tn_buf b;
	struct tn_reg_register out;
	tn_buf_init(&b);
	sample(&b, TN_REG_SAMPLE_REGISTER);
	TN_CHECK_OK(tn_reg_register_decode(&out, b.data, b.len, NULL));
	STR_EQ(out.server.id, "connector-server-1");
	TN_CHECK(out.server.type == 1);
	STR_EQ(out.server.host, "10.0.0.7");
	TN_CHECK_INT(out.server.port, ==, 4050);
	STR_EQ(out.server.bind_host, "0.0.0.0");
	STR_EQ(out.server.client_host, "chat.example.org");
	TN_CHECK_INT(out.server.client_port, ==, 3051);
	STR_EQ(out.server.client_bind_host, "0.0.0.0");
	STR_EQ(out.server.admin_host, "10.0.0.7");
	TN_CHECK_INT(out.server.admin_port, ==, 9050);
	TN_CHECK(out.server.pid == 4242);
	STR_EQ(out.server.version, "0.1.0");
	TN_CHECK(out.server.incarnation == 1700000000123456);
	TN_CHECK(out.server.load.connections == 12 && out.server.load.sessions == 10);
	TN_CHECK(out.server.load.msgs_milli == 2500 && out.server.load.rss_bytes == 31457280);
	TN_CHECK(out.server.load.uptime_ms == 60000);
	TN_CHECK(out.epoch == 5 && out.registry_inc == 1699999999000000);
	TN_CHECK_OK(tn_test_check(TN_KIND_REG_REGISTER, b.data, b.len, NULL));
	/* Another kind is refused, not misread. */
	struct tn_reg_heartbeat hb;
	TN_CHECK_INT(tn_reg_heartbeat_decode(&hb, b.data, b.len, NULL), ==, TN_EKIND);
	tn_buf_fini(&b);
}

TN_TEST(test_heartbeat_ack_notice_round_trips)
{
	struct tn_buf b;
	struct tn_reg_heartbeat hb;
	struct tn_reg_ack ack;
	struct tn_reg_notice note;
	struct tn_reg_snapshot_req sreq;
	tn_buf_init(&b);
	sample(&b, TN_REG_SAMPLE_HEARTBEAT);
	TN_CHECK_OK(tn_reg_heartbeat_decode(&hb, b.data, b.len, NULL));
	STR_EQ(hb.id, "chat-server-1");
	TN_CHECK(hb.incarnation == 77 && hb.epoch == 9 && hb.registry_inc == 3);
	TN_CHECK(hb.load.connections == 1 && hb.load.uptime_ms == 7 && hb.load.rooms == 3);

	sample(&b, TN_REG_SAMPLE_ACK_REFUSED);
	TN_CHECK_OK(tn_reg_ack_decode(&ack, b.data, b.len, NULL));
	TN_CHECK_INT(ack.code, ==, TN_EEXIST);
	STR_EQ(ack.reason, "server id chat-server-1 is already registered");
	TN_CHECK(ack.epoch == 9 && ack.registry_inc == 1700000000999000 && ack.recovering);
	TN_CHECK(ack.closing);
	TN_CHECK_INT(ack.notice_port, ==, 3006);
	TN_CHECK(ack.evict_after_ms == 5000);
	sample(&b, TN_REG_SAMPLE_ACK);
	TN_CHECK_OK(tn_reg_ack_decode(&ack, b.data, b.len, NULL));
	TN_CHECK_INT(ack.code, ==, TN_OK);
	TN_CHECK(ack.reason.len == 0 && ack.reason.p != NULL && !ack.recovering && !ack.closing);

	sample(&b, TN_REG_SAMPLE_NOTICE);
	TN_CHECK_OK(tn_reg_notice_decode(&note, b.data, b.len, NULL));
	TN_CHECK(note.epoch == 12 && note.change == TN_REG_EVICTED && note.type == 2);
	STR_EQ(note.id, "chat-server-3");
	TN_CHECK_STR(tn_reg_change_name(note.change), "evicted");
	TN_CHECK_STR(tn_reg_change_name(99), "unknown");

	sample(&b, TN_REG_SAMPLE_SNAPSHOT_REQ);
	TN_CHECK_OK(tn_reg_snapshot_req_decode(&sreq, b.data, b.len, NULL));
	STR_EQ(sreq.id, "gate-server-1");
	TN_CHECK(sreq.epoch == 4 && sreq.registry_inc == 2);
	/* The asker's id may be left out (the admin command). */
	struct tn_reg_snapshot_req anon = {TN_STR(""), 0, 0};
	tn_buf_reset(&b);
	tn_reg_snapshot_req_encode(&b, &anon);
	TN_CHECK_OK(tn_reg_snapshot_req_decode(&sreq, b.data, b.len, NULL));
	TN_CHECK(sreq.id.len == 0 && sreq.id.p != NULL && sreq.epoch == 0);
	tn_buf_fini(&b);
}

TN_TEST(test_snapshot_iterates)
{
	struct tn_buf b;
	struct tn_reg_snapshot_reader rd;
	struct tn_reg_server s;
	tn_buf_init(&b);
	sample(&b, TN_REG_SAMPLE_SNAPSHOT);
	TN_CHECK_OK(tn_reg_snapshot_reader_init(&rd, b.data, b.len, NULL));
	TN_CHECK(rd.hdr.epoch == 9 && rd.hdr.registry_inc == 1700000000999000);
	TN_CHECK(rd.hdr.recovering);
	TN_CHECK_INT(rd.n_servers, ==, 2);
	TN_CHECK(tn_reg_snapshot_next(&rd, &s));
	STR_EQ(s.id, "connector-server-1");
	TN_CHECK_INT(s.client_port, ==, 3051);
	TN_CHECK((const uint8_t *)s.id.p > b.data && (const uint8_t *)s.id.p < b.data + b.len);
	TN_CHECK(tn_reg_snapshot_next(&rd, &s));
	STR_EQ(s.id, "chat-server-2" TN_TEST_CESU8);
	TN_CHECK(s.type == 2 && s.port == 6051 && s.load.rooms == 3 && s.load.members == 7);
	TN_CHECK(s.admin_port == 0 && s.admin_host.len == 0);
	TN_CHECK(!tn_reg_snapshot_next(&rd, &s));
	TN_CHECK(!tn_reg_snapshot_next(&rd, &s));

	sample(&b, TN_REG_SAMPLE_SNAPSHOT_EMPTY);
	TN_CHECK_OK(tn_reg_snapshot_reader_init(&rd, b.data, b.len, NULL));
	TN_CHECK_INT(rd.n_servers, ==, 0);
	TN_CHECK(!tn_reg_snapshot_next(&rd, &s));
	tn_buf_fini(&b);
}

/* The draining flag: set, it travels in the server map (key 14) and the heartbeat (key 5);
 * unset, it is not written at all, so the bytes are those of a server that predates it. */
TN_TEST(test_draining_round_trips)
{
	struct tn_buf b, plain;
	struct tn_reg_register reg;
	struct tn_reg_heartbeat hb;
	struct tn_reg_snapshot_reader rd;
	struct tn_reg_server s;
	tn_buf_init(&b);
	tn_buf_init(&plain);
	sample(&b, TN_REG_SAMPLE_REGISTER_DRAINING);
	TN_CHECK_OK(tn_reg_register_decode(&reg, b.data, b.len, NULL));
	TN_CHECK(reg.server.draining);
	STR_EQ(reg.server.id, "chat-server-2" TN_TEST_CESU8);
	TN_CHECK(reg.server.load.rooms == 3 && reg.server.incarnation == 1700000000777000);
	sample(&b, TN_REG_SAMPLE_REGISTER);
	TN_CHECK_OK(tn_reg_register_decode(&reg, b.data, b.len, NULL));
	TN_CHECK(!reg.server.draining);

	sample(&b, TN_REG_SAMPLE_HEARTBEAT_DRAINING);
	TN_CHECK_OK(tn_reg_heartbeat_decode(&hb, b.data, b.len, NULL));
	TN_CHECK(hb.draining && hb.incarnation == 77 && hb.load.rooms == 3);
	sample(&plain, TN_REG_SAMPLE_HEARTBEAT);
	TN_CHECK_OK(tn_reg_heartbeat_decode(&hb, plain.data, plain.len, NULL));
	TN_CHECK(!hb.draining);
	/* One key more (fixmap 0x85 -> 0x86), and the pair "5: 1" at the end. */
	TN_CHECK_INT(b.len, ==, plain.len + 2);
	TN_CHECK_MEM(b.data + b.len - 2, 2, "\x05\x01", 2);
	TN_CHECK_INT(plain.data[3], ==, 0x85); /* [version, kind, {...}] */
	TN_CHECK_INT(b.data[3], ==, 0x86);

	/* A snapshot lists a draining server with its flag, and the others without. */
	struct tn_reg_server servers[2] = {tn_test_reg_server(0), tn_test_reg_server(1)};
	servers[1].draining = true;
	struct tn_reg_snapshot_hdr hdr = {.epoch = 4, .registry_inc = 2};
	tn_buf_reset(&b);
	tn_reg_snapshot_encode(&b, &hdr, servers, 2);
	TN_CHECK_OK(tn_test_check(TN_KIND_REG_SNAPSHOT, b.data, b.len, NULL));
	TN_CHECK_OK(tn_reg_snapshot_reader_init(&rd, b.data, b.len, NULL));
	TN_CHECK(tn_reg_snapshot_next(&rd, &s) && !s.draining);
	TN_CHECK(tn_reg_snapshot_next(&rd, &s) && s.draining);
	TN_CHECK_INT(s.port, ==, 6051);

	/* Any non-zero value means set; a value of another type is malformed. */
	msgpack_packer pk;
	tn_buf_reset(&b);
	tn_wire_packer_init(&pk, &b);
	tn_wire_begin(&pk, TN_KIND_REG_HEARTBEAT, 3);
	tn_wire_put_str(&pk, 0, TN_STR("c"));
	tn_wire_put_u64(&pk, 1, 1);
	tn_wire_put_u64(&pk, 5, 7);
	TN_CHECK_OK(tn_reg_heartbeat_decode(&hb, b.data, b.len, NULL));
	TN_CHECK(hb.draining);
	tn_buf_reset(&b);
	tn_wire_packer_init(&pk, &b);
	tn_wire_begin(&pk, TN_KIND_REG_HEARTBEAT, 3);
	tn_wire_put_str(&pk, 0, TN_STR("c"));
	tn_wire_put_u64(&pk, 1, 1);
	tn_wire_put_str(&pk, 5, TN_STR("yes"));
	TN_CHECK_INT(tn_reg_heartbeat_decode(&hb, b.data, b.len, NULL), ==, TN_EPROTO);
	tn_buf_fini(&plain);
	tn_buf_fini(&b);
}

/* A register body crafted by hand: the server map with `extra` unknown pairs in front of
 * the known ones, optionally without its host, and a port of the given value. */
static void
craft_register(struct tn_buf *b, int extra, bool with_host, uint64_t port)
{
	msgpack_packer pk;
	tn_buf_reset(b);
	tn_wire_packer_init(&pk, b);
	tn_wire_begin(&pk, TN_KIND_REG_REGISTER, 2);
	msgpack_pack_uint32(&pk, 7); /* an unknown body key, with a nested value */
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 0);
	msgpack_pack_uint32(&pk, 0);
	msgpack_pack_map(&pk, (uint32_t)(extra + 3 + with_host));
	for (int i = 0; i < extra; i++) {
		msgpack_pack_uint32(&pk, 100 + (uint32_t)i);
		msgpack_pack_str_with_body(&pk, "future", 6);
	}
	tn_wire_put_str(&pk, 0, TN_STR("chat-9"));
	tn_wire_put_u64(&pk, 1, 2);
	if (with_host)
		tn_wire_put_str(&pk, 2, TN_STR("10.1.2.3"));
	tn_wire_put_u64(&pk, 3, port);
}

TN_TEST(test_unknown_keys_and_defaults)
{
	struct tn_buf b;
	struct tn_reg_register out;
	tn_buf_init(&b);
	craft_register(&b, 3, true, 6000);
	TN_CHECK_OK(tn_reg_register_decode(&out, b.data, b.len, NULL));
	STR_EQ(out.server.id, "chat-9");
	STR_EQ(out.server.host, "10.1.2.3");
	TN_CHECK_INT(out.server.port, ==, 6000);
	/* Absent: zero, or an empty string that still points somewhere. */
	TN_CHECK(out.epoch == 0 && out.registry_inc == 0 && out.server.pid == 0);
	TN_CHECK(out.server.version.len == 0 && out.server.version.p != NULL);
	TN_CHECK(out.server.client_host.p != NULL && out.server.load.connections == 0);
	/* A required field missing, a port out of range: malformed. */
	craft_register(&b, 0, false, 6000);
	TN_CHECK_INT(tn_reg_register_decode(&out, b.data, b.len, NULL), ==, TN_EPROTO);
	craft_register(&b, 0, true, 65536);
	TN_CHECK_INT(tn_reg_register_decode(&out, b.data, b.len, NULL), ==, TN_EPROTO);
	craft_register(&b, 0, true, 65535);
	TN_CHECK_OK(tn_reg_register_decode(&out, b.data, b.len, NULL));
	tn_buf_fini(&b);
}

/* Every proper prefix of every sample is refused; so is one trailing byte. */
TN_TEST(test_truncated_and_trailing)
{
	struct tn_buf b;
	tn_buf_init(&b);
	for (int s = 0; s < TN_REG_SAMPLE_COUNT; s++) {
		sample(&b, s);
		enum tn_kind kind = TN_KIND_REPLY;
		TN_CHECK_OK(tn_proto_peek(&kind, b.data, b.len));
		TN_CHECK_OK(tn_test_check(kind, b.data, b.len, NULL));
		for (size_t len = 0; len < b.len; len++) {
			int rv = tn_test_check(kind, b.data, len, NULL);
			if (rv == TN_OK)
				fprintf(stderr, "sample %d decoded at %zu of %zu bytes\n", s, len, b.len);
			TN_CHECK(rv != TN_OK);
		}
		tn_buf_append_byte(&b, 0xc0);
		TN_CHECK_INT(tn_test_check(kind, b.data, b.len, NULL), ==, TN_EPROTO);
	}
	tn_buf_fini(&b);
}

TN_TEST(test_limits)
{
	struct tn_buf b;
	struct tn_reg_snapshot_reader rd;
	struct tn_reg_register reg;
	struct tn_proto_limits lim = tn_proto_limits_default;
	tn_buf_init(&b);
	sample(&b, TN_REG_SAMPLE_SNAPSHOT);
	lim.max_array_len = 1;
	TN_CHECK_INT(tn_reg_snapshot_reader_init(&rd, b.data, b.len, &lim), ==, TN_ETOOBIG);
	lim.max_array_len = 2;
	TN_CHECK_OK(tn_reg_snapshot_reader_init(&rd, b.data, b.len, &lim));
	lim.max_msg_bytes = b.len - 1;
	TN_CHECK_INT(tn_reg_snapshot_reader_init(&rd, b.data, b.len, &lim), ==, TN_ETOOBIG);
	lim = tn_proto_limits_default;
	lim.max_str_len = 8; /* "connector-server-1" is longer */
	sample(&b, TN_REG_SAMPLE_REGISTER);
	TN_CHECK_INT(tn_reg_register_decode(&reg, b.data, b.len, &lim), ==, TN_ETOOBIG);
	tn_buf_fini(&b);
}

TN_TEST(test_duplicate_key_and_wrong_types)
{
	msgpack_packer pk;
	struct tn_buf b;
	struct tn_reg_leave leave;
	struct tn_reg_ack ack;
	tn_buf_init(&b);
	tn_wire_packer_init(&pk, &b);
	tn_wire_begin(&pk, TN_KIND_REG_LEAVE, 3);
	tn_wire_put_str(&pk, 0, TN_STR("a"));
	tn_wire_put_u64(&pk, 1, 1);
	tn_wire_put_str(&pk, 0, TN_STR("b"));
	TN_CHECK_INT(tn_reg_leave_decode(&leave, b.data, b.len, NULL), ==, TN_EPROTO);
	/* An id that is a number. */
	tn_buf_reset(&b);
	tn_wire_packer_init(&pk, &b);
	tn_wire_begin(&pk, TN_KIND_REG_LEAVE, 2);
	tn_wire_put_u64(&pk, 0, 1);
	tn_wire_put_u64(&pk, 1, 1);
	TN_CHECK_INT(tn_reg_leave_decode(&leave, b.data, b.len, NULL), ==, TN_EPROTO);
	/* A code that does not fit an int32. */
	tn_buf_reset(&b);
	tn_wire_packer_init(&pk, &b);
	tn_wire_begin(&pk, TN_KIND_REG_ACK, 1);
	tn_wire_put_u64(&pk, 0, UINT64_C(1) << 40);
	TN_CHECK_INT(tn_reg_ack_decode(&ack, b.data, b.len, NULL), ==, TN_EPROTO);
	/* A newer envelope version is reported as such. */
	tn_buf_reset(&b);
	tn_wire_packer_init(&pk, &b);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint64(&pk, TN_PROTO_VERSION + 1);
	msgpack_pack_uint64(&pk, TN_KIND_REG_ACK);
	msgpack_pack_map(&pk, 0);
	TN_CHECK_INT(tn_reg_ack_decode(&ack, b.data, b.len, NULL), ==, TN_EVERSION);
	tn_buf_fini(&b);
}

/* Every single-byte change of every sample decodes or fails cleanly, never crashes
 * (AddressSanitizer watches the reads). */
TN_TEST(test_mutations_never_crash)
{
	struct tn_buf b, m;
	tn_buf_init(&b);
	tn_buf_init(&m);
	static const uint8_t values[] = {0x00, 0x7f, 0x80, 0x90, 0xa0, 0xc0, 0xc1, 0xcc, 0xcf,
		0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xff};
	for (int s = 0; s < TN_REG_SAMPLE_COUNT; s++) {
		sample(&b, s);
		for (size_t i = 0; i < b.len; i++) {
			for (size_t v = 0; v < sizeof(values); v++) {
				tn_buf_reset(&m);
				tn_buf_append(&m, b.data, b.len);
				m.data[i] = values[v];
				for (size_t k = 0; k < TN_TEST_N_KINDS; k++)
					tn_test_check(tn_test_kinds[k], m.data, m.len, NULL);
			}
		}
	}
	tn_buf_fini(&b);
	tn_buf_fini(&m);
}

TN_TEST_MAIN(TN_CASE(test_leave_exact_bytes), TN_CASE(test_register_round_trip),
	TN_CASE(test_heartbeat_ack_notice_round_trips), TN_CASE(test_snapshot_iterates),
	TN_CASE(test_draining_round_trips),
	TN_CASE(test_unknown_keys_and_defaults), TN_CASE(test_truncated_and_trailing),
	TN_CASE(test_limits), TN_CASE(test_duplicate_key_and_wrong_types),
	TN_CASE(test_mutations_never_crash))
