#include "proto.h"

#include <stdint.h>

#include "err.h"
#include "mp.h"
#include "wire.h"

const struct tn_proto_limits tn_proto_limits_default = {
	.max_msg_bytes = 16u << 20,
	.max_str_len = 4096,
	.max_bin_len = 16u << 20,
	.max_array_len = 65536,
	.max_recipients = 65536,
};

int
tn_proto_peek(enum tn_kind *kind_out, const void *data, size_t len)
{
	struct tn_mp_reader r;
	return tn_wire_envelope(&r, kind_out, data, len);
}

/* The name of a kind this build knows, or NULL. */
static const char *
kind_name(uint64_t kind)
{
	switch (kind) {
	case TN_KIND_REPLY: return "reply";
	case TN_KIND_CHAT_ENTER: return "chat.enter";
	case TN_KIND_CHAT_LEAVE: return "chat.leave";
	case TN_KIND_CHAT_SEND: return "chat.send";
	case TN_KIND_PUSH: return "push";
	case TN_KIND_PUSH_FETCH: return "push.fetch";
	case TN_KIND_REG_REGISTER: return "registry.register";
	case TN_KIND_REG_HEARTBEAT: return "registry.heartbeat";
	case TN_KIND_REG_LEAVE: return "registry.leave";
	case TN_KIND_REG_SNAPSHOT_REQ: return "registry.snapshot-request";
	case TN_KIND_REG_ACK: return "registry.ack";
	case TN_KIND_REG_SNAPSHOT: return "registry.snapshot";
	case TN_KIND_REG_NOTICE: return "registry.notice";
	case TN_KIND_ROOM_STATE: return "room.state";
	case TN_KIND_ROOM_CLAIM: return "room.claim";
	case TN_KIND_ROOM_REJOIN: return "room.rejoin";
	default: return NULL;
	}
}

bool
tn_kind_is_known(uint64_t kind)
{
	return kind_name(kind) != NULL;
}

const char *
tn_kind_name(uint64_t kind)
{
	const char *name = kind_name(kind);
	return name ? name : "unknown";
}

void
tn_str_iter_init(struct tn_str_iter *it, const struct tn_str *arr, uint32_t n)
{
	*it = (struct tn_str_iter){n, 0, arr, NULL, NULL};
}

bool
tn_str_iter_next(struct tn_str_iter *it, struct tn_str *out)
{
	if (it->i_ >= it->n)
		return false;
	if (it->arr_ != NULL) {
		*out = it->arr_[it->i_++];
		return true;
	}
	/* Decoded lists were checked element by element when decoded: this cannot fail
	 * unless the buffer under the view changed, and then the list just ends. */
	struct tn_mp_reader r = {it->p_, it->end_};
	if (tn_mp_read_str(&r, out, SIZE_MAX) != TN_OK) {
		it->i_ = it->n;
		return false;
	}
	it->p_ = r.p;
	it->i_++;
	return true;
}

void
tn_u64_iter_init(struct tn_u64_iter *it, const uint64_t *arr, uint32_t n)
{
	*it = (struct tn_u64_iter){n, 0, arr, NULL, NULL};
}

bool
tn_u64_iter_next(struct tn_u64_iter *it, uint64_t *out)
{
	if (it->i_ >= it->n)
		return false;
	if (it->arr_ != NULL) {
		*out = it->arr_[it->i_++];
		return true;
	}
	struct tn_mp_reader r = {it->p_, it->end_};
	if (tn_mp_read_u64(&r, out) != TN_OK) {
		it->i_ = it->n;
		return false;
	}
	it->p_ = r.p;
	it->i_++;
	return true;
}
