/* The registry kinds' part of proto_testutil.h: a checker (decode, read every byte of
 * every view, re-encode, decode again, compare) and sample messages. Included by
 * proto_testutil.h after its helpers (tn_test_fail, tn_test_touch, tn_test_unlimited);
 * use that header. */
#ifndef TN_REGISTRY_TESTUTIL_H
#define TN_REGISTRY_TESTUTIL_H

#include <stdlib.h>

#include "buf.h"
#include "err.h"
#include "proto.h"
#include "registry.h"

static inline int
tn_test_reg_loads_eq(const struct tn_reg_load *a, const struct tn_reg_load *b)
{
	return a->connections == b->connections && a->sessions == b->sessions &&
		a->rooms == b->rooms && a->members == b->members && a->msgs_milli == b->msgs_milli &&
		a->rss_bytes == b->rss_bytes && a->uptime_ms == b->uptime_ms;
}

/* Compares two servers and folds the bytes of a's strings into *sum. */
static inline int
tn_test_reg_servers_eq(const struct tn_reg_server *a, const struct tn_reg_server *b,
	unsigned *sum)
{
	const struct tn_str *sa[] = {&a->id, &a->host, &a->bind_host, &a->client_host,
		&a->client_bind_host, &a->admin_host, &a->version};
	const struct tn_str *sb[] = {&b->id, &b->host, &b->bind_host, &b->client_host,
		&b->client_bind_host, &b->admin_host, &b->version};
	for (size_t i = 0; i < sizeof(sa) / sizeof(sa[0]); i++) {
		tn_test_touch(sum, *sa[i]);
		if (!tn_str_eq(*sa[i], *sb[i]))
			return 0;
	}
	return a->type == b->type && a->port == b->port && a->client_port == b->client_port &&
		a->admin_port == b->admin_port && a->pid == b->pid &&
		a->incarnation == b->incarnation && a->draining == b->draining &&
		tn_test_reg_loads_eq(&a->load, &b->load);
}

static inline int
tn_test_check_reg_snapshot(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_reg_snapshot_reader a, b;
	struct tn_reg_server x, y;
	int rv = tn_reg_snapshot_reader_init(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	struct tn_reg_server *all = calloc(a.n_servers ? a.n_servers : 1, sizeof(*all));
	uint32_t n = 0;
	for (struct tn_reg_snapshot_reader it = a; tn_reg_snapshot_next(&it, &x);)
		all[n++] = x;
	if (n != a.n_servers)
		tn_test_fail("snapshot server count differs from what the reader announced");
	struct tn_buf buf;
	tn_buf_init(&buf);
	tn_reg_snapshot_encode(&buf, &a.hdr, all, n);
	if (tn_reg_snapshot_reader_init(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("snapshot does not decode after re-encoding");
	if (b.hdr.epoch != a.hdr.epoch || b.hdr.registry_inc != a.hdr.registry_inc ||
		b.hdr.recovering != a.hdr.recovering || b.n_servers != a.n_servers)
		tn_test_fail("snapshot header changed through re-encoding");
	for (uint32_t i = 0; tn_reg_snapshot_next(&b, &y); i++)
		if (!tn_test_reg_servers_eq(&all[i], &y, sum))
			tn_test_fail("snapshot server changed through re-encoding");
	free(all);
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_reg_register(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_reg_register a, b;
	struct tn_buf buf;
	int rv = tn_reg_register_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_buf_init(&buf);
	tn_reg_register_encode(&buf, &a);
	if (tn_reg_register_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("register does not decode after re-encoding");
	if (!tn_test_reg_servers_eq(&a.server, &b.server, sum) || a.epoch != b.epoch ||
		a.registry_inc != b.registry_inc)
		tn_test_fail("register changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_reg_heartbeat(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_reg_heartbeat a, b;
	struct tn_buf buf;
	int rv = tn_reg_heartbeat_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.id);
	tn_buf_init(&buf);
	tn_reg_heartbeat_encode(&buf, &a);
	if (tn_reg_heartbeat_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("heartbeat does not decode after re-encoding");
	if (!tn_str_eq(a.id, b.id) || a.incarnation != b.incarnation || a.epoch != b.epoch ||
		a.registry_inc != b.registry_inc || !tn_test_reg_loads_eq(&a.load, &b.load) ||
		a.draining != b.draining)
		tn_test_fail("heartbeat changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_reg_leave(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_reg_leave a, b;
	struct tn_buf buf;
	int rv = tn_reg_leave_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.id);
	tn_buf_init(&buf);
	tn_reg_leave_encode(&buf, &a);
	if (tn_reg_leave_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("leave does not decode after re-encoding");
	if (!tn_str_eq(a.id, b.id) || a.incarnation != b.incarnation)
		tn_test_fail("leave changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_reg_snapshot_req(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_reg_snapshot_req a, b;
	struct tn_buf buf;
	int rv = tn_reg_snapshot_req_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.id);
	tn_buf_init(&buf);
	tn_reg_snapshot_req_encode(&buf, &a);
	if (tn_reg_snapshot_req_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("snapshot request does not decode after re-encoding");
	if (!tn_str_eq(a.id, b.id) || a.epoch != b.epoch || a.registry_inc != b.registry_inc)
		tn_test_fail("snapshot request changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_reg_ack(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_reg_ack a, b;
	struct tn_buf buf;
	int rv = tn_reg_ack_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.reason);
	tn_buf_init(&buf);
	tn_reg_ack_encode(&buf, &a);
	if (tn_reg_ack_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("ack does not decode after re-encoding");
	if (a.code != b.code || !tn_str_eq(a.reason, b.reason) || a.epoch != b.epoch ||
		a.registry_inc != b.registry_inc || a.recovering != b.recovering ||
		a.notice_port != b.notice_port || a.evict_after_ms != b.evict_after_ms ||
		a.closing != b.closing)
		tn_test_fail("ack changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

static inline int
tn_test_check_reg_notice(const void *data, size_t len, const struct tn_proto_limits *lim,
	unsigned *sum)
{
	struct tn_reg_notice a, b;
	struct tn_buf buf;
	int rv = tn_reg_notice_decode(&a, data, len, lim);
	if (rv != TN_OK)
		return rv;
	tn_test_touch(sum, a.id);
	tn_buf_init(&buf);
	tn_reg_notice_encode(&buf, &a);
	if (tn_reg_notice_decode(&b, buf.data, buf.len, &tn_test_unlimited) != TN_OK)
		tn_test_fail("notice does not decode after re-encoding");
	if (a.epoch != b.epoch || a.registry_inc != b.registry_inc || a.change != b.change ||
		!tn_str_eq(a.id, b.id) || a.type != b.type || a.recovering != b.recovering)
		tn_test_fail("notice changed through re-encoding");
	tn_buf_fini(&buf);
	return TN_OK;
}

/* Checks data as the registry kind `kind`; TN_EKIND for a kind that is not one. */
static inline int
tn_test_check_registry(enum tn_kind kind, const void *data, size_t len,
	const struct tn_proto_limits *lim, unsigned *sum)
{
	switch (kind) {
	case TN_KIND_REG_REGISTER: return tn_test_check_reg_register(data, len, lim, sum);
	case TN_KIND_REG_HEARTBEAT: return tn_test_check_reg_heartbeat(data, len, lim, sum);
	case TN_KIND_REG_LEAVE: return tn_test_check_reg_leave(data, len, lim, sum);
	case TN_KIND_REG_SNAPSHOT_REQ: return tn_test_check_reg_snapshot_req(data, len, lim, sum);
	case TN_KIND_REG_ACK: return tn_test_check_reg_ack(data, len, lim, sum);
	case TN_KIND_REG_SNAPSHOT: return tn_test_check_reg_snapshot(data, len, lim, sum);
	case TN_KIND_REG_NOTICE: return tn_test_check_reg_notice(data, len, lim, sum);
	default: return TN_EKIND;
	}
}

/* ---- samples ---- */

enum {
	TN_REG_SAMPLE_REGISTER = 0,
	TN_REG_SAMPLE_HEARTBEAT,
	TN_REG_SAMPLE_LEAVE,
	TN_REG_SAMPLE_SNAPSHOT_REQ,
	TN_REG_SAMPLE_ACK,
	TN_REG_SAMPLE_ACK_REFUSED,
	TN_REG_SAMPLE_SNAPSHOT,
	TN_REG_SAMPLE_SNAPSHOT_EMPTY,
	TN_REG_SAMPLE_NOTICE,
	TN_REG_SAMPLE_REGISTER_DRAINING, /* a chat server that is shutting down */
	TN_REG_SAMPLE_HEARTBEAT_DRAINING,
	TN_REG_SAMPLE_COUNT,
};

#define TN_REG_SAMPLE_NAMES                                                              \
	"reg-register", "reg-heartbeat", "reg-leave", "reg-snapshot-req", "reg-ack",         \
		"reg-ack-refused", "reg-snapshot", "reg-snapshot-empty", "reg-notice",           \
		"reg-register-draining", "reg-heartbeat-draining"

/* A connector with every field set, and a chat server with the optional ones left out. */
static inline struct tn_reg_server
tn_test_reg_server(int which)
{
	if (which == 0)
		return (struct tn_reg_server){
			.id = TN_STR("connector-server-1"),
			.type = 1,
			.host = TN_STR("10.0.0.7"),
			.port = 4050,
			.bind_host = TN_STR("0.0.0.0"),
			.client_host = TN_STR("chat.example.org"),
			.client_port = 3051,
			.client_bind_host = TN_STR("0.0.0.0"),
			.admin_host = TN_STR("10.0.0.7"),
			.admin_port = 9050,
			.pid = 4242,
			.version = TN_STR("0.1.0"),
			.incarnation = 1700000000123456,
			.load = {12, 10, 0, 0, 2500, 31457280, 60000},
		};
	return (struct tn_reg_server){
		.id = TN_STR("chat-server-2" TN_TEST_CESU8),
		.type = 2,
		.host = TN_STR("127.0.0.3"),
		.port = 6051,
		.bind_host = TN_STR(""),
		.client_host = TN_STR(""),
		.client_bind_host = TN_STR(""),
		.admin_host = TN_STR(""),
		.version = TN_STR(""),
		.load = {0, 0, 3, 7, 0, 0, 0},
	};
}

/* Appends registry sample `which` (a TN_REG_SAMPLE_* value) to out; returns its kind. */
static inline enum tn_kind
tn_test_sample_registry(struct tn_buf *out, int which)
{
	struct tn_reg_server servers[2] = {tn_test_reg_server(0), tn_test_reg_server(1)};
	struct tn_reg_snapshot_hdr hdr = {.epoch = 9, .registry_inc = 1700000000999000,
		.recovering = true};
	switch (which) {
	case TN_REG_SAMPLE_REGISTER: {
		struct tn_reg_register m = {servers[0], 5, 1699999999000000};
		tn_reg_register_encode(out, &m);
		return TN_KIND_REG_REGISTER;
	}
	case TN_REG_SAMPLE_HEARTBEAT:
	case TN_REG_SAMPLE_HEARTBEAT_DRAINING: {
		struct tn_reg_heartbeat m = {TN_STR("chat-server-1"), 77, 9, 3,
			{1, 2, 3, 4, 5, 6, 7}, which == TN_REG_SAMPLE_HEARTBEAT_DRAINING};
		tn_reg_heartbeat_encode(out, &m);
		return TN_KIND_REG_HEARTBEAT;
	}
	case TN_REG_SAMPLE_REGISTER_DRAINING: {
		struct tn_reg_register m = {servers[1], 9, 1700000000999000};
		m.server.draining = true;
		m.server.incarnation = 1700000000777000;
		tn_reg_register_encode(out, &m);
		return TN_KIND_REG_REGISTER;
	}
	case TN_REG_SAMPLE_LEAVE: {
		struct tn_reg_leave m = {TN_STR("gate-server-1"), UINT64_MAX};
		tn_reg_leave_encode(out, &m);
		return TN_KIND_REG_LEAVE;
	}
	case TN_REG_SAMPLE_SNAPSHOT_REQ: {
		struct tn_reg_snapshot_req m = {TN_STR("gate-server-1"), 4, 2};
		tn_reg_snapshot_req_encode(out, &m);
		return TN_KIND_REG_SNAPSHOT_REQ;
	}
	case TN_REG_SAMPLE_ACK:
	case TN_REG_SAMPLE_ACK_REFUSED: {
		struct tn_reg_ack m = {.code = TN_OK, .reason = TN_STR(""), .epoch = 9,
			.registry_inc = 1700000000999000, .notice_port = 3006, .evict_after_ms = 5000};
		if (which == TN_REG_SAMPLE_ACK_REFUSED) {
			m.code = TN_EEXIST;
			m.reason = TN_STR("server id chat-server-1 is already registered");
			m.recovering = true;
			m.closing = true;
		}
		tn_reg_ack_encode(out, &m);
		return TN_KIND_REG_ACK;
	}
	case TN_REG_SAMPLE_SNAPSHOT:
	case TN_REG_SAMPLE_SNAPSHOT_EMPTY:
		tn_reg_snapshot_encode(out, &hdr, servers, which == TN_REG_SAMPLE_SNAPSHOT ? 2 : 0);
		return TN_KIND_REG_SNAPSHOT;
	case TN_REG_SAMPLE_NOTICE: {
		struct tn_reg_notice m = {12, 1700000000999000, TN_REG_EVICTED,
			TN_STR("chat-server-3"), 2, false};
		tn_reg_notice_encode(out, &m);
		return TN_KIND_REG_NOTICE;
	}
	default: abort();
	}
}

#endif
