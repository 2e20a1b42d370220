#include "moves.h"

#include <assert.h>
#include <stddef.h>

#include "err.h"
#include "wire.h"

enum {
	KEY_EPOCH = 0,
	KEY_FROM = 1,
	KEY_RID = 2,
	KEY_NEXT_SEQ = 3,
	KEY_NAMES = 4,
	KEY_CONNECTORS = 5,
	KEY_SIDS = 6,
	KEY_CONN_INCS = 7,
	KEY_XFER = 8,
	KEY_DRAINING = 9,
	KEY_ROOM_GEN = 10,
};

enum {
	KEY_RJ_EPOCH = 0,
	KEY_RJ_CONNECTOR = 1,
	KEY_RJ_CONN_INC = 2,
	KEY_RJ_LOST = 3,
	KEY_RJ_FINAL = 4,
	KEY_RJ_RIDS = 5,
	KEY_RJ_NAMES = 6,
	KEY_RJ_SIDS = 7,
};

/* What the bodies decode into before the flags become bools. */
struct state_body {
	struct tn_room_state s;
	uint64_t draining;
};

struct rejoin_body {
	struct tn_room_rejoin r;
	uint64_t final;
};

#define SFIELD(key, member, read) {key, true, offsetof(struct state_body, s.member), read}
static const struct tn_wire_field state_fields[] = {
	SFIELD(KEY_EPOCH, epoch, tn_wire_read_u64),
	SFIELD(KEY_FROM, from, tn_wire_read_str),
	SFIELD(KEY_RID, rid, tn_wire_read_str),
	SFIELD(KEY_NEXT_SEQ, next_seq, tn_wire_read_u64),
	SFIELD(KEY_NAMES, names, tn_wire_read_strs),
	SFIELD(KEY_CONNECTORS, connectors, tn_wire_read_strs),
	SFIELD(KEY_SIDS, sids, tn_wire_read_sids),
	SFIELD(KEY_CONN_INCS, conn_incs, tn_wire_read_sids),
	SFIELD(KEY_XFER, xfer, tn_wire_read_u64),
	{KEY_DRAINING, false, offsetof(struct state_body, draining), tn_wire_read_u64},
	{KEY_ROOM_GEN, false, offsetof(struct state_body, s.room_gen), tn_wire_read_u64},
};

#define CFIELD(key, member, read) {key, true, offsetof(struct tn_room_claim, member), read}
static const struct tn_wire_field claim_fields[] = {
	CFIELD(KEY_EPOCH, epoch, tn_wire_read_u64),
	CFIELD(KEY_FROM, from, tn_wire_read_str),
	CFIELD(KEY_RID, rid, tn_wire_read_str),
};

#define RFIELD(key, member, read) {key, true, offsetof(struct rejoin_body, r.member), read}
static const struct tn_wire_field rejoin_fields[] = {
	RFIELD(KEY_RJ_EPOCH, epoch, tn_wire_read_u64),
	RFIELD(KEY_RJ_CONNECTOR, connector_id, tn_wire_read_str),
	RFIELD(KEY_RJ_CONN_INC, conn_inc, tn_wire_read_u64),
	RFIELD(KEY_RJ_LOST, lost, tn_wire_read_str),
	{KEY_RJ_FINAL, true, offsetof(struct rejoin_body, final), tn_wire_read_u64},
	RFIELD(KEY_RJ_RIDS, rids, tn_wire_read_strs),
	RFIELD(KEY_RJ_NAMES, names, tn_wire_read_strs),
	RFIELD(KEY_RJ_SIDS, sids, tn_wire_read_sids),
};

void
tn_room_state_encode(struct tn_buf *out, const struct tn_room_state *m)
{
	msgpack_packer pk;
	assert(m->connectors.n == m->names.n && m->sids.n == m->names.n &&
		m->conn_incs.n == m->names.n);
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_ROOM_STATE, 9 + (m->draining ? 1 : 0) + (m->room_gen ? 1 : 0));
	tn_wire_put_u64(&pk, KEY_EPOCH, m->epoch);
	tn_wire_put_str(&pk, KEY_FROM, m->from);
	tn_wire_put_str(&pk, KEY_RID, m->rid);
	tn_wire_put_u64(&pk, KEY_NEXT_SEQ, m->next_seq);
	tn_wire_put_strs(&pk, KEY_NAMES, &m->names);
	tn_wire_put_strs(&pk, KEY_CONNECTORS, &m->connectors);
	tn_wire_put_u64s(&pk, KEY_SIDS, &m->sids);
	tn_wire_put_u64s(&pk, KEY_CONN_INCS, &m->conn_incs);
	tn_wire_put_u64(&pk, KEY_XFER, m->xfer);
	if (m->draining)
		tn_wire_put_u64(&pk, KEY_DRAINING, 1);
	if (m->room_gen)
		tn_wire_put_u64(&pk, KEY_ROOM_GEN, m->room_gen);
}

void
tn_room_claim_encode(struct tn_buf *out, const struct tn_room_claim *m)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_ROOM_CLAIM, 3);
	tn_wire_put_u64(&pk, KEY_EPOCH, m->epoch);
	tn_wire_put_str(&pk, KEY_FROM, m->from);
	tn_wire_put_str(&pk, KEY_RID, m->rid);
}

void
tn_room_rejoin_encode(struct tn_buf *out, const struct tn_room_rejoin *m)
{
	msgpack_packer pk;
	assert(m->names.n == m->rids.n && m->sids.n == m->rids.n);
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_ROOM_REJOIN, 8);
	tn_wire_put_u64(&pk, KEY_RJ_EPOCH, m->epoch);
	tn_wire_put_str(&pk, KEY_RJ_CONNECTOR, m->connector_id);
	tn_wire_put_u64(&pk, KEY_RJ_CONN_INC, m->conn_inc);
	tn_wire_put_str(&pk, KEY_RJ_LOST, m->lost);
	tn_wire_put_u64(&pk, KEY_RJ_FINAL, m->final ? 1 : 0);
	tn_wire_put_strs(&pk, KEY_RJ_RIDS, &m->rids);
	tn_wire_put_strs(&pk, KEY_RJ_NAMES, &m->names);
	tn_wire_put_u64s(&pk, KEY_RJ_SIDS, &m->sids);
}

int
tn_room_state_decode(struct tn_room_state *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct state_body b = {{0}, 0};
	int rv = tn_wire_decode(&b, NULL, TN_KIND_ROOM_STATE, state_fields,
		TN_ARRAY_LEN(state_fields), data, len, tn_wire_limits(lim));
	if (rv != TN_OK)
		return rv;
	uint32_t n = b.s.names.n;
	if (b.s.connectors.n != n || b.s.sids.n != n || b.s.conn_incs.n != n || b.draining > 1)
		return TN_EPROTO;
	b.s.draining = b.draining == 1;
	*out = b.s;
	return TN_OK;
}

int
tn_room_claim_decode(struct tn_room_claim *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct tn_room_claim tmp = {0};
	int rv = tn_wire_decode(&tmp, NULL, TN_KIND_ROOM_CLAIM, claim_fields,
		TN_ARRAY_LEN(claim_fields), data, len, tn_wire_limits(lim));
	if (rv != TN_OK)
		return rv;
	*out = tmp;
	return TN_OK;
}

int
tn_room_rejoin_decode(struct tn_room_rejoin *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct rejoin_body b = {{0}, 0};
	int rv = tn_wire_decode(&b, NULL, TN_KIND_ROOM_REJOIN, rejoin_fields,
		TN_ARRAY_LEN(rejoin_fields), data, len, tn_wire_limits(lim));
	if (rv != TN_OK)
		return rv;
	if (b.r.names.n != b.r.rids.n || b.r.sids.n != b.r.rids.n || b.final > 1)
		return TN_EPROTO;
	b.r.final = b.final == 1;
	*out = b.r;
	return TN_OK;
}
