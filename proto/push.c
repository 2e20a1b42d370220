#include "push.h"

#include <assert.h>
#include <stddef.h>

#include "err.h"
#include "wire.h"

enum {
	KEY_CHAT_ID = 0,
	KEY_CHAT_INC = 1,
	KEY_CONN_INC = 2,
	KEY_ITEMS = 3,
	KEY_NEXT_SEQ = 4,
};

enum {
	KEY_ITEM_SEQ = 0,
	KEY_ITEM_RID = 1,
	KEY_ITEM_ROUTE = 2,
	KEY_ITEM_BODY = 3,
	KEY_ITEM_SIDS = 4,
	KEY_ITEM_ROOM_SEQ = 5,
	KEY_ITEM_ROOM_GEN = 6,
};

/* The items array as checked by read_items. */
struct items_view {
	uint32_t n;
	uint64_t first_seq;
	const uint8_t *p;
	const uint8_t *end;
};

/* What the body map decodes into. */
struct push_body {
	struct tn_push_hdr hdr;
	struct items_view items;
};

static int read_items(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim);

static const struct tn_wire_field push_fields[] = {
	{KEY_CHAT_ID, true, offsetof(struct push_body, hdr.chat_id), tn_wire_read_str},
	{KEY_CHAT_INC, true, offsetof(struct push_body, hdr.chat_inc), tn_wire_read_u64},
	{KEY_CONN_INC, true, offsetof(struct push_body, hdr.conn_inc), tn_wire_read_u64},
	{KEY_ITEMS, true, offsetof(struct push_body, items), read_items},
	{KEY_NEXT_SEQ, false, offsetof(struct push_body, hdr.next_seq), tn_wire_read_u64},
};

static const struct tn_wire_field item_fields[] = {
	{KEY_ITEM_SEQ, true, offsetof(struct tn_push_item, seq), tn_wire_read_u64},
	{KEY_ITEM_RID, true, offsetof(struct tn_push_item, rid), tn_wire_read_str},
	{KEY_ITEM_ROUTE, true, offsetof(struct tn_push_item, route), tn_wire_read_str},
	{KEY_ITEM_BODY, true, offsetof(struct tn_push_item, body), tn_wire_read_bin},
	{KEY_ITEM_SIDS, true, offsetof(struct tn_push_item, sids), tn_wire_read_sids},
	{KEY_ITEM_ROOM_SEQ, false, offsetof(struct tn_push_item, room_seq), tn_wire_read_u64},
	{KEY_ITEM_ROOM_GEN, false, offsetof(struct tn_push_item, room_gen), tn_wire_read_u64},
};

/* Items were checked against the caller's limits in tn_push_reader_init; re-reading
 * them in next() needs no limits. */
static const struct tn_proto_limits unlimited = {
	SIZE_MAX, SIZE_MAX, SIZE_MAX, UINT32_MAX, UINT32_MAX,
};

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void
tn_push_batch_begin(struct tn_push_batch *b, struct tn_buf *out, const struct tn_push_hdr *hdr)
{
	msgpack_packer pk;
	*b = (struct tn_push_batch){.out = out, .start_ = out->len};
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_PUSH, hdr->next_seq ? 5 : 4);
	tn_wire_put_str(&pk, KEY_CHAT_ID, hdr->chat_id);
	tn_wire_put_u64(&pk, KEY_CHAT_INC, hdr->chat_inc);
	tn_wire_put_u64(&pk, KEY_CONN_INC, hdr->conn_inc);
	if (hdr->next_seq)
		tn_wire_put_u64(&pk, KEY_NEXT_SEQ, hdr->next_seq);
	msgpack_pack_uint32(&pk, KEY_ITEMS);
	/* The count is not known yet: an array32 header (msgpack lets any count use the
	 * wide form) is patched by finish, so items are never moved. */
	tn_buf_append_byte(out, 0xdd);
	b->count_at_ = out->len;
	tn_buf_append(out, "\0\0\0\0", 4);
}

void
tn_push_batch_item_open(struct tn_push_batch *b, const struct tn_push_item *item,
	uint32_t n_sids)
{
	msgpack_packer pk;
	assert(b->sids_owed_ == 0);
	assert(b->n_items == 0 || item->seq == b->next_seq_);
	assert(b->n_items < UINT32_MAX);
	tn_wire_packer_init(&pk, b->out);
	msgpack_pack_map(&pk, item->room_seq ? 7 : 5);
	tn_wire_put_u64(&pk, KEY_ITEM_SEQ, item->seq);
	tn_wire_put_str(&pk, KEY_ITEM_RID, item->rid);
	tn_wire_put_str(&pk, KEY_ITEM_ROUTE, item->route);
	tn_wire_put_bin(&pk, KEY_ITEM_BODY, item->body);
	if (item->room_seq) {
		tn_wire_put_u64(&pk, KEY_ITEM_ROOM_SEQ, item->room_seq);
		tn_wire_put_u64(&pk, KEY_ITEM_ROOM_GEN, item->room_gen);
	}
	msgpack_pack_uint32(&pk, KEY_ITEM_SIDS);
	msgpack_pack_array(&pk, n_sids);
	b->n_items++;
	b->next_seq_ = item->seq + 1;
	b->sids_owed_ = n_sids;
}

void
tn_push_batch_item_sid(struct tn_push_batch *b, uint64_t sid)
{
	msgpack_packer pk;
	assert(b->sids_owed_ > 0);
	tn_wire_packer_init(&pk, b->out);
	msgpack_pack_uint64(&pk, sid);
	b->sids_owed_--;
}

void
tn_push_batch_add_item(struct tn_push_batch *b, const struct tn_push_item *item)
{
	struct tn_u64_iter it = item->sids;
	uint64_t sid;
	tn_push_batch_item_open(b, item, it.n);
	while (tn_u64_iter_next(&it, &sid))
		tn_push_batch_item_sid(b, sid);
	assert(b->sids_owed_ == 0);
}

void
tn_push_batch_finish(struct tn_push_batch *b)
{
	assert(b->sids_owed_ == 0);
	put_be32(b->out->data + b->count_at_, b->n_items);
}

size_t
tn_push_batch_bytes(const struct tn_push_batch *b)
{
	return b->out->len - b->start_;
}

static int
read_item(struct tn_push_item *item, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	struct tn_push_item tmp = {0};
	int rv = tn_wire_read_fields(&tmp, NULL, item_fields, TN_ARRAY_LEN(item_fields), r, lim);
	if (rv != TN_OK)
		return rv;
	*item = tmp;
	return TN_OK;
}

/* Checks every item (so that next() cannot fail) and that their seqs are consecutive. */
static int
read_items(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	struct tn_mp_reader rd = *r;
	struct items_view v = {0};
	int rv = tn_mp_read_array(&rd, &v.n);
	if (rv != TN_OK)
		return rv;
	if (v.n > lim->max_array_len)
		return TN_ETOOBIG;
	v.p = rd.p;
	for (uint32_t i = 0; i < v.n; i++) {
		struct tn_push_item item;
		if ((rv = read_item(&item, &rd, lim)) != TN_OK)
			return rv;
		if (i == 0)
			v.first_seq = item.seq;
		else if (item.seq != v.first_seq + i)
			return TN_EPROTO;
	}
	v.end = rd.p;
	*(struct items_view *)dst = v;
	*r = rd;
	return TN_OK;
}

int
tn_push_reader_init(struct tn_push_reader *rd, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct push_body body = {0};
	int rv = tn_wire_decode(&body, NULL, TN_KIND_PUSH, push_fields,
		TN_ARRAY_LEN(push_fields), data, len, tn_wire_limits(lim));
	if (rv != TN_OK)
		return rv;
	*rd = (struct tn_push_reader){
		.hdr = body.hdr,
		.first_seq = body.items.first_seq,
		.n_items = body.items.n,
		.p_ = body.items.p,
		.end_ = body.items.end,
	};
	return TN_OK;
}

bool
tn_push_reader_next(struct tn_push_reader *rd, struct tn_push_item *item)
{
	if (rd->i_ >= rd->n_items)
		return false;
	struct tn_mp_reader r = {rd->p_, rd->end_};
	/* Cannot fail: init read these same bytes. Should the buffer have changed under
	 * the views, the iteration just ends. */
	if (read_item(item, &r, &unlimited) != TN_OK) {
		rd->i_ = rd->n_items;
		return false;
	}
	rd->p_ = r.p;
	rd->i_++;
	return true;
}

enum {
	KEY_FETCH_CONNECTOR_ID = 0,
	KEY_FETCH_CONN_INC = 1,
	KEY_FETCH_CHAT_INC = 2,
	KEY_FETCH_FROM = 3,
	KEY_FETCH_TO = 4,
};

static const struct tn_wire_field fetch_fields[] = {
	{KEY_FETCH_CONNECTOR_ID, true, offsetof(struct tn_push_fetch, connector_id),
		tn_wire_read_str},
	{KEY_FETCH_CONN_INC, true, offsetof(struct tn_push_fetch, conn_inc), tn_wire_read_u64},
	{KEY_FETCH_CHAT_INC, true, offsetof(struct tn_push_fetch, chat_inc), tn_wire_read_u64},
	{KEY_FETCH_FROM, true, offsetof(struct tn_push_fetch, from_seq), tn_wire_read_u64},
	{KEY_FETCH_TO, true, offsetof(struct tn_push_fetch, to_seq), tn_wire_read_u64},
};

void
tn_push_fetch_encode(struct tn_buf *out, const struct tn_push_fetch *f)
{
	msgpack_packer pk;
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_PUSH_FETCH, 5);
	tn_wire_put_str(&pk, KEY_FETCH_CONNECTOR_ID, f->connector_id);
	tn_wire_put_u64(&pk, KEY_FETCH_CONN_INC, f->conn_inc);
	tn_wire_put_u64(&pk, KEY_FETCH_CHAT_INC, f->chat_inc);
	tn_wire_put_u64(&pk, KEY_FETCH_FROM, f->from_seq);
	tn_wire_put_u64(&pk, KEY_FETCH_TO, f->to_seq);
}

int
tn_push_fetch_decode(struct tn_push_fetch *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct tn_push_fetch tmp = {0};
	int rv = tn_wire_decode(&tmp, NULL, TN_KIND_PUSH_FETCH, fetch_fields,
		sizeof(fetch_fields) / sizeof(fetch_fields[0]), data, len, tn_wire_limits(lim));
	if (rv != TN_OK)
		return rv;
	*out = tmp;
	return TN_OK;
}
