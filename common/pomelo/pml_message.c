#include "pml_message.h"

#include "err.h"
#include "pml_dict.h"
#include "pml_package.h"

bool
tn_pml_msg_has_id(enum tn_pml_msg_type type)
{
	return type == TN_PML_MSG_REQUEST || type == TN_PML_MSG_RESPONSE;
}

bool
tn_pml_msg_has_route(enum tn_pml_msg_type type)
{
	return type == TN_PML_MSG_REQUEST || type == TN_PML_MSG_NOTIFY || type == TN_PML_MSG_PUSH;
}

void
tn_pml_varint_encode(struct tn_buf *out, uint32_t id)
{
	do {
		uint8_t b = id & 0x7f;
		id >>= 7;
		if (id != 0)
			b |= 0x80;
		tn_buf_append_byte(out, b);
	} while (id != 0);
}

int
tn_pml_varint_decode(uint32_t *id, size_t *used, const uint8_t *data, size_t len)
{
	uint64_t v = 0;
	for (size_t i = 0; i < TN_PML_MSG_ID_MAX_BYTES; i++) {
		if (i >= len)
			return TN_ETRUNC;
		v |= (uint64_t)(data[i] & 0x7f) << (7 * i);
		if ((data[i] & 0x80) == 0) {
			if (v > UINT32_MAX)
				return TN_ETOOBIG;
			*id = (uint32_t)v;
			*used = i + 1;
			return TN_OK;
		}
	}
	return TN_ETOOBIG;
}

static int
msg_check(const struct tn_pml_msg *msg)
{
	if ((unsigned)msg->type > TN_PML_MSG_PUSH)
		return TN_EINVAL;
	if (tn_pml_msg_has_id(msg->type) && msg->id == 0)
		return TN_EINVAL;
	if (!tn_pml_msg_has_route(msg->type))
		return TN_OK;
	if (msg->compressed)
		return msg->route_code != 0 ? TN_OK : TN_EINVAL;
	if (msg->route_len > TN_PML_ROUTE_MAX || (msg->route == NULL && msg->route_len > 0))
		return TN_EINVAL;
	return TN_OK;
}

int
tn_pml_msg_encode(struct tn_buf *out, const struct tn_pml_msg *msg)
{
	int rv = msg_check(msg);
	if (rv != TN_OK)
		return rv;
	bool has_route = tn_pml_msg_has_route(msg->type);
	uint8_t flag = (uint8_t)(msg->type << 1);
	if (has_route && msg->compressed)
		flag |= TN_PML_MSG_FLAG_COMPRESSED;
	tn_buf_append_byte(out, flag);
	if (tn_pml_msg_has_id(msg->type))
		tn_pml_varint_encode(out, msg->id);
	if (has_route && msg->compressed) {
		tn_buf_append_byte(out, (uint8_t)(msg->route_code >> 8));
		tn_buf_append_byte(out, (uint8_t)msg->route_code);
	} else if (has_route) {
		tn_buf_append_byte(out, (uint8_t)msg->route_len);
		tn_buf_append(out, msg->route, msg->route_len);
	}
	tn_buf_append(out, msg->body, msg->body_len);
	return TN_OK;
}

int
tn_pml_msg_encode_pkg(struct tn_buf *out, const struct tn_pml_msg *msg)
{
	int rv = msg_check(msg);
	if (rv != TN_OK)
		return rv;
	size_t start = tn_pml_pkg_begin(out, TN_PML_PKG_DATA);
	tn_pml_msg_encode(out, msg);
	return tn_pml_pkg_end(out, start);
}

void
tn_pml_msg_set_route(
        struct tn_pml_msg *msg, const struct tn_pml_dict *dict, const char *route, size_t len)
{
	uint16_t code;
	msg->route = route;
	msg->route_len = len;
	msg->compressed = dict != NULL && tn_pml_dict_code(&code, dict, route, len);
	msg->route_code = msg->compressed ? code : 0;
}

static int
decode_route(struct tn_pml_msg *m, const uint8_t *p, size_t len, size_t *off, bool compressed)
{
	size_t o = *off;
	if (compressed) {
		if (len - o < 2)
			return TN_ETRUNC;
		m->compressed = true;
		m->route_code = (uint16_t)((p[o] << 8) | p[o + 1]);
		*off = o + 2;
		return TN_OK;
	}
	if (len - o < 1)
		return TN_ETRUNC;
	size_t rlen = p[o];
	if (len - o - 1 < rlen)
		return TN_ETRUNC;
	m->route = (const char *)p + o + 1;
	m->route_len = rlen;
	*off = o + 1 + rlen;
	return TN_OK;
}

int
tn_pml_msg_decode(struct tn_pml_msg *out, const void *data, size_t len)
{
	const uint8_t *p = data;
	if (len < 1)
		return TN_ETRUNC;
	uint8_t flag = p[0];
	unsigned type = (flag >> 1) & 7;
	if ((flag & (TN_PML_MSG_FLAG_GZIP | TN_PML_MSG_FLAG_RESERVED)) || type > TN_PML_MSG_PUSH)
		return TN_EPROTO;
	struct tn_pml_msg m = {.type = (enum tn_pml_msg_type)type};
	bool compressed = flag & TN_PML_MSG_FLAG_COMPRESSED;
	if (compressed && !tn_pml_msg_has_route(m.type))
		return TN_EPROTO; /* a response has no route to compress */
	size_t off = 1;
	if (tn_pml_msg_has_id(m.type)) {
		size_t used;
		int rv = tn_pml_varint_decode(&m.id, &used, p + off, len - off);
		if (rv != TN_OK)
			return rv;
		off += used;
	}
	if (tn_pml_msg_has_route(m.type)) {
		int rv = decode_route(&m, p, len, &off, compressed);
		if (rv != TN_OK)
			return rv;
	}
	m.body = p + off;
	m.body_len = len - off;
	*out = m;
	return TN_OK;
}

int
tn_pml_msg_resolve(struct tn_pml_msg *msg, const struct tn_pml_dict *dict)
{
	if (!msg->compressed)
		return TN_OK;
	size_t len;
	const char *route = dict ? tn_pml_dict_route(dict, msg->route_code, &len) : NULL;
	if (route == NULL)
		return TN_ENOENT;
	msg->route = route;
	msg->route_len = len;
	return TN_OK;
}
