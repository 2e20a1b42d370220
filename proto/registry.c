#include "registry.h"

#include <stddef.h>

#include "err.h"
#include "wire.h"

enum {
	KEY_LOAD_CONNECTIONS = 0,
	KEY_LOAD_SESSIONS = 1,
	KEY_LOAD_ROOMS = 2,
	KEY_LOAD_MEMBERS = 3,
	KEY_LOAD_MSGS = 4,
	KEY_LOAD_RSS = 5,
	KEY_LOAD_UPTIME = 6,
	N_LOAD_KEYS = 7,
};

enum {
	KEY_SRV_ID = 0,
	KEY_SRV_TYPE = 1,
	KEY_SRV_HOST = 2,
	KEY_SRV_PORT = 3,
	KEY_SRV_BIND_HOST = 4,
	KEY_SRV_CLIENT_HOST = 5,
	KEY_SRV_CLIENT_PORT = 6,
	KEY_SRV_CLIENT_BIND_HOST = 7,
	KEY_SRV_ADMIN_HOST = 8,
	KEY_SRV_ADMIN_PORT = 9,
	KEY_SRV_PID = 10,
	KEY_SRV_VERSION = 11,
	KEY_SRV_INCARNATION = 12,
	KEY_SRV_LOAD = 13,
	KEY_SRV_DRAINING = 14,
	N_SRV_KEYS = 14, /* always written; draining only when set */
};

/* Keys shared by the requests: REGISTER's server and HEARTBEAT's / LEAVE's id come first. */
enum {
	KEY_REG_SERVER = 0,
	KEY_REG_EPOCH = 1,
	KEY_REG_REGISTRY_INC = 2,
};

enum {
	KEY_HB_ID = 0,
	KEY_HB_INCARNATION = 1,
	KEY_HB_EPOCH = 2,
	KEY_HB_REGISTRY_INC = 3,
	KEY_HB_LOAD = 4,
	KEY_HB_DRAINING = 5,
};

enum {
	KEY_SREQ_ID = 0,
	KEY_SREQ_EPOCH = 1,
	KEY_SREQ_REGISTRY_INC = 2,
};

enum {
	KEY_ACK_CODE = 0,
	KEY_ACK_REASON = 1,
	KEY_ACK_EPOCH = 2,
	KEY_ACK_REGISTRY_INC = 3,
	KEY_ACK_RECOVERING = 4,
	KEY_ACK_NOTICE_PORT = 5,
	KEY_ACK_EVICT_AFTER = 6,
	KEY_ACK_CLOSING = 7,
};

enum {
	KEY_SNAP_EPOCH = 0,
	KEY_SNAP_REGISTRY_INC = 1,
	KEY_SNAP_RECOVERING = 2,
	KEY_SNAP_SERVERS = 3,
};

enum {
	KEY_NOTE_EPOCH = 0,
	KEY_NOTE_REGISTRY_INC = 1,
	KEY_NOTE_CHANGE = 2,
	KEY_NOTE_ID = 3,
	KEY_NOTE_TYPE = 4,
	KEY_NOTE_RECOVERING = 5,
};

/* ---- field readers of this kind's own value types ---- */

static int
read_port(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	struct tn_mp_reader rd = *r;
	uint64_t v;
	int rv = tn_mp_read_u64(&rd, &v);
	if (rv != TN_OK)
		return rv;
	if (v > 65535)
		return TN_EPROTO;
	*(uint32_t *)dst = (uint32_t)v;
	*r = rd;
	return TN_OK;
}

/* A flag travels as an unsigned integer, 0 or not. */
static int
read_flag(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	uint64_t v;
	int rv = tn_mp_read_u64(r, &v);
	if (rv == TN_OK)
		*(bool *)dst = v != 0;
	return rv;
}

#define LOAD_FIELD(key, member) \
	{key, false, offsetof(struct tn_reg_load, member), tn_wire_read_u64}

static const struct tn_wire_field load_fields[] = {
	LOAD_FIELD(KEY_LOAD_CONNECTIONS, connections),
	LOAD_FIELD(KEY_LOAD_SESSIONS, sessions),
	LOAD_FIELD(KEY_LOAD_ROOMS, rooms),
	LOAD_FIELD(KEY_LOAD_MEMBERS, members),
	LOAD_FIELD(KEY_LOAD_MSGS, msgs_milli),
	LOAD_FIELD(KEY_LOAD_RSS, rss_bytes),
	LOAD_FIELD(KEY_LOAD_UPTIME, uptime_ms),
};

static int
read_load(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	struct tn_reg_load tmp = {0};
	int rv = tn_wire_read_fields(&tmp, NULL, load_fields, TN_ARRAY_LEN(load_fields), r, lim);
	if (rv == TN_OK)
		*(struct tn_reg_load *)dst = tmp;
	return rv;
}

#define SRV_FIELD(key, req, member, read) \
	{key, req, offsetof(struct tn_reg_server, member), read}

static const struct tn_wire_field server_fields[] = {
	SRV_FIELD(KEY_SRV_ID, true, id, tn_wire_read_str),
	SRV_FIELD(KEY_SRV_TYPE, true, type, tn_wire_read_u64),
	SRV_FIELD(KEY_SRV_HOST, true, host, tn_wire_read_str),
	SRV_FIELD(KEY_SRV_PORT, false, port, read_port),
	SRV_FIELD(KEY_SRV_BIND_HOST, false, bind_host, tn_wire_read_str),
	SRV_FIELD(KEY_SRV_CLIENT_HOST, false, client_host, tn_wire_read_str),
	SRV_FIELD(KEY_SRV_CLIENT_PORT, false, client_port, read_port),
	SRV_FIELD(KEY_SRV_CLIENT_BIND_HOST, false, client_bind_host, tn_wire_read_str),
	SRV_FIELD(KEY_SRV_ADMIN_HOST, false, admin_host, tn_wire_read_str),
	SRV_FIELD(KEY_SRV_ADMIN_PORT, false, admin_port, read_port),
	SRV_FIELD(KEY_SRV_PID, false, pid, tn_wire_read_u64),
	SRV_FIELD(KEY_SRV_VERSION, false, version, tn_wire_read_str),
	SRV_FIELD(KEY_SRV_INCARNATION, false, incarnation, tn_wire_read_u64),
	SRV_FIELD(KEY_SRV_LOAD, false, load, read_load),
	SRV_FIELD(KEY_SRV_DRAINING, false, draining, read_flag),
};

/* Absent strings are empty views that still point somewhere. */
static const struct tn_reg_server server_defaults = {
	.id = {"", 0},
	.host = {"", 0},
	.bind_host = {"", 0},
	.client_host = {"", 0},
	.client_bind_host = {"", 0},
	.admin_host = {"", 0},
	.version = {"", 0},
};

static int
read_server(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	struct tn_reg_server tmp = server_defaults;
	int rv = tn_wire_read_fields(&tmp, NULL, server_fields, TN_ARRAY_LEN(server_fields), r,
		lim);
	if (rv == TN_OK)
		*(struct tn_reg_server *)dst = tmp;
	return rv;
}

/* The servers array of a snapshot, as checked by read_servers. */
struct servers_view {
	uint32_t n;
	const uint8_t *p;
	const uint8_t *end;
};

/* Checks every server map, so that iterating cannot fail. */
static int
read_servers(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	struct tn_mp_reader rd = *r;
	struct servers_view v = {0};
	int rv = tn_mp_read_array(&rd, &v.n);
	if (rv != TN_OK)
		return rv;
	if (v.n > lim->max_array_len)
		return TN_ETOOBIG;
	v.p = rd.p;
	for (uint32_t i = 0; i < v.n; i++) {
		struct tn_reg_server s;
		if ((rv = read_server(&s, &rd, lim)) != TN_OK)
			return rv;
	}
	v.end = rd.p;
	*(struct servers_view *)dst = v;
	*r = rd;
	return TN_OK;
}

/* ---- encoding helpers ---- */

static void
pack_load(msgpack_packer *pk, uint32_t key, const struct tn_reg_load *l)
{
	msgpack_pack_uint32(pk, key);
	msgpack_pack_map(pk, N_LOAD_KEYS);
	tn_wire_put_u64(pk, KEY_LOAD_CONNECTIONS, l->connections);
	tn_wire_put_u64(pk, KEY_LOAD_SESSIONS, l->sessions);
	tn_wire_put_u64(pk, KEY_LOAD_ROOMS, l->rooms);
	tn_wire_put_u64(pk, KEY_LOAD_MEMBERS, l->members);
	tn_wire_put_u64(pk, KEY_LOAD_MSGS, l->msgs_milli);
	tn_wire_put_u64(pk, KEY_LOAD_RSS, l->rss_bytes);
	tn_wire_put_u64(pk, KEY_LOAD_UPTIME, l->uptime_ms);
}

/* One server map (no key in front: a snapshot's array elements have none). */
static void
pack_server(msgpack_packer *pk, const struct tn_reg_server *s)
{
	msgpack_pack_map(pk, N_SRV_KEYS + s->draining);
	tn_wire_put_str(pk, KEY_SRV_ID, s->id);
	tn_wire_put_u64(pk, KEY_SRV_TYPE, s->type);
	tn_wire_put_str(pk, KEY_SRV_HOST, s->host);
	tn_wire_put_u64(pk, KEY_SRV_PORT, s->port);
	tn_wire_put_str(pk, KEY_SRV_BIND_HOST, s->bind_host);
	tn_wire_put_str(pk, KEY_SRV_CLIENT_HOST, s->client_host);
	tn_wire_put_u64(pk, KEY_SRV_CLIENT_PORT, s->client_port);
	tn_wire_put_str(pk, KEY_SRV_CLIENT_BIND_HOST, s->client_bind_host);
	tn_wire_put_str(pk, KEY_SRV_ADMIN_HOST, s->admin_host);
	tn_wire_put_u64(pk, KEY_SRV_ADMIN_PORT, s->admin_port);
	tn_wire_put_u64(pk, KEY_SRV_PID, s->pid);
	tn_wire_put_str(pk, KEY_SRV_VERSION, s->version);
	tn_wire_put_u64(pk, KEY_SRV_INCARNATION, s->incarnation);
	pack_load(pk, KEY_SRV_LOAD, &s->load);
	if (s->draining)
		tn_wire_put_u64(pk, KEY_SRV_DRAINING, 1);
}

/* ---- REGISTER ---- */

static const struct tn_wire_field register_fields[] = {
	{KEY_REG_SERVER, true, offsetof(struct tn_reg_register, server), read_server},
	{KEY_REG_EPOCH, false, offsetof(struct tn_reg_register, epoch), tn_wire_read_u64},
	{KEY_REG_REGISTRY_INC, false, offsetof(struct tn_reg_register, registry_inc),
		tn_wire_read_u64},
};

void
tn_reg_register_encode(struct tn_buf *out, const struct tn_reg_register *m)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_REG_REGISTER, 3);
	msgpack_pack_uint32(&pk, KEY_REG_SERVER);
	pack_server(&pk, &m->server);
	tn_wire_put_u64(&pk, KEY_REG_EPOCH, m->epoch);
	tn_wire_put_u64(&pk, KEY_REG_REGISTRY_INC, m->registry_inc);
}

int
tn_reg_register_decode(struct tn_reg_register *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct tn_reg_register tmp = {.server = server_defaults};
	int rv = tn_wire_decode(&tmp, NULL, TN_KIND_REG_REGISTER, register_fields,
		TN_ARRAY_LEN(register_fields), data, len, tn_wire_limits(lim));
	if (rv == TN_OK)
		*out = tmp;
	return rv;
}

/* ---- HEARTBEAT ---- */

static const struct tn_wire_field heartbeat_fields[] = {
	{KEY_HB_ID, true, offsetof(struct tn_reg_heartbeat, id), tn_wire_read_str},
	{KEY_HB_INCARNATION, true, offsetof(struct tn_reg_heartbeat, incarnation),
		tn_wire_read_u64},
	{KEY_HB_EPOCH, false, offsetof(struct tn_reg_heartbeat, epoch), tn_wire_read_u64},
	{KEY_HB_REGISTRY_INC, false, offsetof(struct tn_reg_heartbeat, registry_inc),
		tn_wire_read_u64},
	{KEY_HB_LOAD, false, offsetof(struct tn_reg_heartbeat, load), read_load},
	{KEY_HB_DRAINING, false, offsetof(struct tn_reg_heartbeat, draining), read_flag},
};

void
tn_reg_heartbeat_encode(struct tn_buf *out, const struct tn_reg_heartbeat *m)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_REG_HEARTBEAT, 5 + m->draining);
	tn_wire_put_str(&pk, KEY_HB_ID, m->id);
	tn_wire_put_u64(&pk, KEY_HB_INCARNATION, m->incarnation);
	tn_wire_put_u64(&pk, KEY_HB_EPOCH, m->epoch);
	tn_wire_put_u64(&pk, KEY_HB_REGISTRY_INC, m->registry_inc);
	pack_load(&pk, KEY_HB_LOAD, &m->load);
	if (m->draining)
		tn_wire_put_u64(&pk, KEY_HB_DRAINING, 1);
}

int
tn_reg_heartbeat_decode(struct tn_reg_heartbeat *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct tn_reg_heartbeat tmp = {.id = TN_STR("")};
	int rv = tn_wire_decode(&tmp, NULL, TN_KIND_REG_HEARTBEAT, heartbeat_fields,
		TN_ARRAY_LEN(heartbeat_fields), data, len, tn_wire_limits(lim));
	if (rv == TN_OK)
		*out = tmp;
	return rv;
}

/* ---- LEAVE ---- */

static const struct tn_wire_field leave_fields[] = {
	{KEY_HB_ID, true, offsetof(struct tn_reg_leave, id), tn_wire_read_str},
	{KEY_HB_INCARNATION, true, offsetof(struct tn_reg_leave, incarnation), tn_wire_read_u64},
};

void
tn_reg_leave_encode(struct tn_buf *out, const struct tn_reg_leave *m)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_REG_LEAVE, 2);
	tn_wire_put_str(&pk, KEY_HB_ID, m->id);
	tn_wire_put_u64(&pk, KEY_HB_INCARNATION, m->incarnation);
}

int
tn_reg_leave_decode(struct tn_reg_leave *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct tn_reg_leave tmp = {.id = TN_STR("")};
	int rv = tn_wire_decode(&tmp, NULL, TN_KIND_REG_LEAVE, leave_fields,
		TN_ARRAY_LEN(leave_fields), data, len, tn_wire_limits(lim));
	if (rv == TN_OK)
		*out = tmp;
	return rv;
}

/* ---- SNAPSHOT_REQ ---- */

static const struct tn_wire_field snapshot_req_fields[] = {
	{KEY_SREQ_ID, false, offsetof(struct tn_reg_snapshot_req, id), tn_wire_read_str},
	{KEY_SREQ_EPOCH, false, offsetof(struct tn_reg_snapshot_req, epoch), tn_wire_read_u64},
	{KEY_SREQ_REGISTRY_INC, false, offsetof(struct tn_reg_snapshot_req, registry_inc),
		tn_wire_read_u64},
};

void
tn_reg_snapshot_req_encode(struct tn_buf *out, const struct tn_reg_snapshot_req *m)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_REG_SNAPSHOT_REQ, 2 + (m->id.len > 0));
	if (m->id.len > 0)
		tn_wire_put_str(&pk, KEY_SREQ_ID, m->id);
	tn_wire_put_u64(&pk, KEY_SREQ_EPOCH, m->epoch);
	tn_wire_put_u64(&pk, KEY_SREQ_REGISTRY_INC, m->registry_inc);
}

int
tn_reg_snapshot_req_decode(struct tn_reg_snapshot_req *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct tn_reg_snapshot_req tmp = {.id = TN_STR("")};
	int rv = tn_wire_decode(&tmp, NULL, TN_KIND_REG_SNAPSHOT_REQ, snapshot_req_fields,
		TN_ARRAY_LEN(snapshot_req_fields), data, len, tn_wire_limits(lim));
	if (rv == TN_OK)
		*out = tmp;
	return rv;
}

/* ---- ACK ---- */

static const struct tn_wire_field ack_fields[] = {
	{KEY_ACK_CODE, true, offsetof(struct tn_reg_ack, code), tn_wire_read_i32},
	{KEY_ACK_REASON, false, offsetof(struct tn_reg_ack, reason), tn_wire_read_str},
	{KEY_ACK_EPOCH, false, offsetof(struct tn_reg_ack, epoch), tn_wire_read_u64},
	{KEY_ACK_REGISTRY_INC, false, offsetof(struct tn_reg_ack, registry_inc), tn_wire_read_u64},
	{KEY_ACK_RECOVERING, false, offsetof(struct tn_reg_ack, recovering), read_flag},
	{KEY_ACK_NOTICE_PORT, false, offsetof(struct tn_reg_ack, notice_port), read_port},
	{KEY_ACK_EVICT_AFTER, false, offsetof(struct tn_reg_ack, evict_after_ms), tn_wire_read_u64},
	{KEY_ACK_CLOSING, false, offsetof(struct tn_reg_ack, closing), read_flag},
};

void
tn_reg_ack_encode(struct tn_buf *out, const struct tn_reg_ack *m)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_REG_ACK, 6 + (m->reason.len > 0) + m->closing);
	tn_wire_put_i64(&pk, KEY_ACK_CODE, m->code);
	if (m->reason.len > 0)
		tn_wire_put_str(&pk, KEY_ACK_REASON, m->reason);
	tn_wire_put_u64(&pk, KEY_ACK_EPOCH, m->epoch);
	tn_wire_put_u64(&pk, KEY_ACK_REGISTRY_INC, m->registry_inc);
	tn_wire_put_u64(&pk, KEY_ACK_RECOVERING, m->recovering);
	tn_wire_put_u64(&pk, KEY_ACK_NOTICE_PORT, m->notice_port);
	tn_wire_put_u64(&pk, KEY_ACK_EVICT_AFTER, m->evict_after_ms);
	if (m->closing)
		tn_wire_put_u64(&pk, KEY_ACK_CLOSING, 1);
}

int
tn_reg_ack_decode(struct tn_reg_ack *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct tn_reg_ack tmp = {.reason = TN_STR("")};
	int rv = tn_wire_decode(&tmp, NULL, TN_KIND_REG_ACK, ack_fields, TN_ARRAY_LEN(ack_fields),
		data, len, tn_wire_limits(lim));
	if (rv == TN_OK)
		*out = tmp;
	return rv;
}

/* ---- NOTICE ---- */

static const struct tn_wire_field notice_fields[] = {
	{KEY_NOTE_EPOCH, true, offsetof(struct tn_reg_notice, epoch), tn_wire_read_u64},
	{KEY_NOTE_REGISTRY_INC, true, offsetof(struct tn_reg_notice, registry_inc),
		tn_wire_read_u64},
	{KEY_NOTE_CHANGE, true, offsetof(struct tn_reg_notice, change), tn_wire_read_u64},
	{KEY_NOTE_ID, false, offsetof(struct tn_reg_notice, id), tn_wire_read_str},
	{KEY_NOTE_TYPE, false, offsetof(struct tn_reg_notice, type), tn_wire_read_u64},
	{KEY_NOTE_RECOVERING, false, offsetof(struct tn_reg_notice, recovering), read_flag},
};

void
tn_reg_notice_encode(struct tn_buf *out, const struct tn_reg_notice *m)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_REG_NOTICE, 6);
	tn_wire_put_u64(&pk, KEY_NOTE_EPOCH, m->epoch);
	tn_wire_put_u64(&pk, KEY_NOTE_REGISTRY_INC, m->registry_inc);
	tn_wire_put_u64(&pk, KEY_NOTE_CHANGE, m->change);
	tn_wire_put_str(&pk, KEY_NOTE_ID, m->id);
	tn_wire_put_u64(&pk, KEY_NOTE_TYPE, m->type);
	tn_wire_put_u64(&pk, KEY_NOTE_RECOVERING, m->recovering);
}

int
tn_reg_notice_decode(struct tn_reg_notice *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct tn_reg_notice tmp = {.id = TN_STR("")};
	int rv = tn_wire_decode(&tmp, NULL, TN_KIND_REG_NOTICE, notice_fields,
		TN_ARRAY_LEN(notice_fields), data, len, tn_wire_limits(lim));
	if (rv == TN_OK)
		*out = tmp;
	return rv;
}

/* ---- SNAPSHOT ---- */

/* What the snapshot's body map decodes into. */
struct snapshot_body {
	struct tn_reg_snapshot_hdr hdr;
	struct servers_view servers;
};

static const struct tn_wire_field snapshot_fields[] = {
	{KEY_SNAP_EPOCH, true, offsetof(struct snapshot_body, hdr.epoch), tn_wire_read_u64},
	{KEY_SNAP_REGISTRY_INC, true, offsetof(struct snapshot_body, hdr.registry_inc),
		tn_wire_read_u64},
	{KEY_SNAP_RECOVERING, false, offsetof(struct snapshot_body, hdr.recovering), read_flag},
	{KEY_SNAP_SERVERS, true, offsetof(struct snapshot_body, servers), read_servers},
};

void
tn_reg_snapshot_encode(struct tn_buf *out, const struct tn_reg_snapshot_hdr *hdr,
	const struct tn_reg_server *servers, size_t n)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_REG_SNAPSHOT, 4);
	tn_wire_put_u64(&pk, KEY_SNAP_EPOCH, hdr->epoch);
	tn_wire_put_u64(&pk, KEY_SNAP_REGISTRY_INC, hdr->registry_inc);
	tn_wire_put_u64(&pk, KEY_SNAP_RECOVERING, hdr->recovering);
	msgpack_pack_uint32(&pk, KEY_SNAP_SERVERS);
	msgpack_pack_array(&pk, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		pack_server(&pk, &servers[i]);
}

int
tn_reg_snapshot_reader_init(struct tn_reg_snapshot_reader *rd, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct snapshot_body body = {0};
	int rv = tn_wire_decode(&body, NULL, TN_KIND_REG_SNAPSHOT, snapshot_fields,
		TN_ARRAY_LEN(snapshot_fields), data, len, tn_wire_limits(lim));
	if (rv != TN_OK)
		return rv;
	*rd = (struct tn_reg_snapshot_reader){
		.hdr = body.hdr,
		.n_servers = body.servers.n,
		.p_ = body.servers.p,
		.end_ = body.servers.end,
	};
	return TN_OK;
}

bool
tn_reg_snapshot_next(struct tn_reg_snapshot_reader *rd, struct tn_reg_server *out)
{
	/* The maps were checked against the caller's limits by init; these only re-read. */
	static const struct tn_proto_limits unlimited = {
		SIZE_MAX, SIZE_MAX, SIZE_MAX, UINT32_MAX, UINT32_MAX,
	};
	if (rd->i_ >= rd->n_servers)
		return false;
	struct tn_mp_reader r = {rd->p_, rd->end_};
	if (read_server(out, &r, &unlimited) != TN_OK) {
		rd->i_ = rd->n_servers; /* only if the buffer changed under the views */
		return false;
	}
	rd->p_ = r.p;
	rd->i_++;
	return true;
}

const char *
tn_reg_change_name(uint64_t change)
{
	static const char *const names[TN_REG_CHANGE_COUNT_] = {"joined", "left", "evicted",
		"recovered", "changed"};
	return change < TN_REG_CHANGE_COUNT_ ? names[change] : "unknown";
}
