#include "reply.h"

#include <stddef.h>

#include "err.h"
#include "wire.h"

enum {
	KEY_CODE = 0,
	KEY_REASON = 1,
	KEY_EPOCH = 2,
	KEY_USERS = 3,
	KEY_BODY = 4,
};

/* Index of the users entry in reply_fields, for its presence bit. */
#define USERS_FIELD 3

static const struct tn_wire_field reply_fields[] = {
	{KEY_CODE, true, offsetof(struct tn_reply, code), tn_wire_read_i32},
	{KEY_REASON, false, offsetof(struct tn_reply, reason), tn_wire_read_str},
	{KEY_EPOCH, false, offsetof(struct tn_reply, epoch), tn_wire_read_u64},
	{KEY_USERS, false, offsetof(struct tn_reply, users), tn_wire_read_strs},
	{KEY_BODY, false, offsetof(struct tn_reply, body), tn_wire_read_bin},
};

void
tn_reply_encode(struct tn_buf *out, const struct tn_reply *r)
{
	msgpack_packer pk;
	uint32_t n = 1 + (r->reason.len > 0) + (r->epoch != 0) + r->has_users + (r->body.len > 0);
	tn_wire_packer_init(&pk, out);
	tn_wire_begin(&pk, TN_KIND_REPLY, n);
	tn_wire_put_i64(&pk, KEY_CODE, r->code);
	if (r->reason.len > 0)
		tn_wire_put_str(&pk, KEY_REASON, r->reason);
	if (r->epoch != 0)
		tn_wire_put_u64(&pk, KEY_EPOCH, r->epoch);
	if (r->has_users)
		tn_wire_put_strs(&pk, KEY_USERS, &r->users);
	if (r->body.len > 0)
		tn_wire_put_bin(&pk, KEY_BODY, r->body);
}

int
tn_reply_decode(struct tn_reply *out, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	uint32_t seen = 0;
	struct tn_reply tmp = {.reason = TN_STR(""), .body = TN_STR("")};
	int rv = tn_wire_decode(&tmp, &seen, TN_KIND_REPLY, reply_fields,
		TN_ARRAY_LEN(reply_fields), data, len, tn_wire_limits(lim));
	if (rv != TN_OK)
		return rv;
	tmp.has_users = (seen >> USERS_FIELD) & 1;
	*out = tmp;
	return TN_OK;
}
