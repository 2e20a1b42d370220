#include "chat.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "wire.h"

enum {
	KEY_EPOCH = 0,
	KEY_CONNECTOR_ID = 1,
	KEY_SID = 2,
	KEY_RID = 3,
	KEY_NAME = 4,
	KEY_TARGET = 5,
	KEY_CONTENT = 6,
	KEY_CONN_INC = 7,
};

#define FIELD(key, member, read) {key, true, offsetof(struct tn_chat_req, member), read}

/* ENTER and LEAVE read the first five entries, SEND all seven. */
static const struct tn_wire_field chat_fields[] = {
	FIELD(KEY_EPOCH, epoch, tn_wire_read_u64),
	FIELD(KEY_CONNECTOR_ID, connector_id, tn_wire_read_str),
	FIELD(KEY_SID, sid, tn_wire_read_u64),
	FIELD(KEY_RID, rid, tn_wire_read_str),
	FIELD(KEY_NAME, name, tn_wire_read_str),
	FIELD(KEY_TARGET, target, tn_wire_read_str),
	FIELD(KEY_CONTENT, content, tn_wire_read_raw),
};

/* Optional in all three kinds (absent: 0, "unknown"); decoded separately so the tables
 * above keep their order. */
static const struct tn_wire_field conn_inc_field = {
	KEY_CONN_INC, false, offsetof(struct tn_chat_req, conn_inc), tn_wire_read_u64};

static bool
is_chat_kind(enum tn_kind kind)
{
	return kind == TN_KIND_CHAT_ENTER || kind == TN_KIND_CHAT_LEAVE ||
		kind == TN_KIND_CHAT_SEND;
}

void
tn_chat_req_encode(struct tn_buf *out, enum tn_kind kind, const struct tn_chat_req *req)
{
	msgpack_packer pk;
	bool send = kind == TN_KIND_CHAT_SEND;
	assert(is_chat_kind(kind));
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, kind, send ? 8 : 6);
	tn_wire_put_u64(&pk, KEY_EPOCH, req->epoch);
	tn_wire_put_str(&pk, KEY_CONNECTOR_ID, req->connector_id);
	tn_wire_put_u64(&pk, KEY_SID, req->sid);
	tn_wire_put_str(&pk, KEY_RID, req->rid);
	tn_wire_put_str(&pk, KEY_NAME, req->name);
	tn_wire_put_u64(&pk, KEY_CONN_INC, req->conn_inc);
	if (send) {
		tn_wire_put_str(&pk, KEY_TARGET, req->target);
		/* bin, not str: the bytes may be CESU-8, which is not valid UTF-8. */
		tn_wire_put_bin(&pk, KEY_CONTENT, req->content);
	}
}

int
tn_chat_req_decode(struct tn_chat_req *out, enum tn_kind kind, const void *data,
	size_t len, const struct tn_proto_limits *lim)
{
	struct tn_chat_req tmp = {.target = TN_STR(""), .content = TN_STR("")};
	size_t n_fields = kind == TN_KIND_CHAT_SEND ? 7 : 5;
	struct tn_wire_field fields[8];
	if (!is_chat_kind(kind))
		return TN_EKIND;
	for (size_t i = 0; i < n_fields; i++)
		fields[i] = chat_fields[i];
	fields[n_fields++] = conn_inc_field;
	int rv = tn_wire_decode(&tmp, NULL, kind, fields, n_fields, data, len,
		tn_wire_limits(lim));
	if (rv != TN_OK)
		return rv;
	*out = tmp;
	return TN_OK;
}
