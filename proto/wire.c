#include "wire.h"

#include <assert.h>
#include <string.h>

#include "err.h"

const struct tn_proto_limits *
tn_wire_limits(const struct tn_proto_limits *lim)
{
	return lim ? lim : &tn_proto_limits_default;
}

int
tn_wire_envelope(struct tn_mp_reader *r, enum tn_kind *kind, const void *data, size_t len)
{
	struct tn_mp_reader rd;
	uint32_t n;
	uint64_t version, k;
	tn_mp_reader_init(&rd, data, len);
	int rv = tn_mp_read_array(&rd, &n);
	if (rv != TN_OK)
		return rv;
	if (n == 0)
		return TN_EPROTO;
	/* The version comes before the shape check so that a future envelope of another
	 * shape is reported as a version mismatch, which is what it is. */
	if ((rv = tn_mp_read_u64(&rd, &version)) != TN_OK)
		return rv;
	if (version != TN_PROTO_VERSION)
		return TN_EVERSION;
	if (n != 3)
		return TN_EPROTO;
	if ((rv = tn_mp_read_u64(&rd, &k)) != TN_OK)
		return rv;
	if (!tn_kind_is_known(k))
		return TN_EKIND;
	*kind = (enum tn_kind)k;
	*r = rd;
	return TN_OK;
}

static const struct tn_wire_field *
field_find(const struct tn_wire_field *fields, size_t n, uint64_t key)
{
	for (size_t i = 0; i < n; i++) {
		if (fields[i].key == key)
			return &fields[i];
	}
	return NULL;
}

int
tn_wire_read_fields(void *out, uint32_t *seen_out, const struct tn_wire_field *fields,
	size_t n, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	uint32_t pairs, seen = 0, required = 0;
	assert(n <= 32);
	int rv = tn_mp_read_map(r, &pairs);
	for (uint32_t i = 0; rv == TN_OK && i < pairs; i++) {
		uint64_t key;
		if ((rv = tn_mp_read_u64(r, &key)) != TN_OK)
			break;
		const struct tn_wire_field *f = field_find(fields, n, key);
		if (f == NULL) {
			rv = tn_mp_skip(r); /* a newer peer's field: not ours to judge */
			continue;
		}
		uint32_t bit = UINT32_C(1) << (f - fields);
		if (seen & bit)
			return TN_EPROTO;
		seen |= bit;
		rv = f->read((char *)out + f->off, r, lim);
	}
	if (rv != TN_OK)
		return rv;
	for (size_t i = 0; i < n; i++) {
		if (fields[i].required)
			required |= UINT32_C(1) << i;
	}
	if ((seen & required) != required)
		return TN_EPROTO;
	if (seen_out != NULL)
		*seen_out = seen;
	return TN_OK;
}

int
tn_wire_decode(void *out, uint32_t *seen, enum tn_kind kind,
	const struct tn_wire_field *fields, size_t n, const void *data, size_t len,
	const struct tn_proto_limits *lim)
{
	struct tn_mp_reader r;
	enum tn_kind got;
	if (len > lim->max_msg_bytes)
		return TN_ETOOBIG;
	int rv = tn_wire_envelope(&r, &got, data, len);
	if (rv != TN_OK)
		return rv;
	if (got != kind)
		return TN_EKIND;
	if ((rv = tn_wire_read_fields(out, seen, fields, n, &r, lim)) != TN_OK)
		return rv;
	/* Trailing bytes are not a forward-compatibility channel (new fields go in the
	 * body): they mean a framing bug somewhere. */
	return tn_mp_reader_is_done(&r) ? TN_OK : TN_EPROTO;
}

int
tn_wire_read_u64(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	return tn_mp_read_u64(r, dst);
}

int
tn_wire_read_i32(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	int64_t v;
	int rv = tn_mp_read_i64(r, &v);
	if (rv != TN_OK)
		return rv;
	if (v < INT32_MIN || v > INT32_MAX)
		return TN_EPROTO;
	*(int32_t *)dst = (int32_t)v;
	return TN_OK;
}

int
tn_wire_read_str(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	return tn_mp_read_str(r, dst, lim->max_str_len);
}

int
tn_wire_read_bin(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	return tn_mp_read_bin(r, dst, lim->max_bin_len);
}

int
tn_wire_read_raw(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	return tn_mp_read_raw(r, dst, lim->max_bin_len);
}

int
tn_wire_read_strs(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	struct tn_mp_reader rd = *r;
	uint32_t n;
	int rv = tn_mp_read_array(&rd, &n);
	if (rv != TN_OK)
		return rv;
	if (n > lim->max_array_len)
		return TN_ETOOBIG;
	const uint8_t *first = rd.p;
	for (uint32_t i = 0; i < n; i++) {
		struct tn_str s;
		if ((rv = tn_mp_read_str(&rd, &s, lim->max_str_len)) != TN_OK)
			return rv;
	}
	*(struct tn_str_iter *)dst = (struct tn_str_iter){n, 0, NULL, first, rd.p};
	*r = rd;
	return TN_OK;
}

int
tn_wire_read_sids(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim)
{
	struct tn_mp_reader rd = *r;
	uint32_t n;
	int rv = tn_mp_read_array(&rd, &n);
	if (rv != TN_OK)
		return rv;
	if (n > lim->max_recipients)
		return TN_ETOOBIG;
	const uint8_t *first = rd.p;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t sid;
		if ((rv = tn_mp_read_u64(&rd, &sid)) != TN_OK)
			return rv;
	}
	*(struct tn_u64_iter *)dst = (struct tn_u64_iter){n, 0, NULL, first, rd.p};
	*r = rd;
	return TN_OK;
}

/* msgpack-c's packer hands every piece (a few bytes each) to this. The common case,
 * room to spare, is a bare copy; tn_buf_append grows the buffer otherwise (and aborts
 * rather than fail). The spare byte is the one tn_buf keeps for its NUL. */
static int
buf_write(void *data, const char *p, size_t n)
{
	struct tn_buf *b = data;
	if (n == 0)
		return 0; /* an empty string's body may come with a NULL pointer */
	if (b->cap - b->len > n) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	} else {
		tn_buf_append(b, p, n);
	}
	return 0;
}

void
tn_wire_packer_init(msgpack_packer *pk, struct tn_buf *out)
{
	msgpack_packer_init(pk, out, buf_write);
}

void
tn_wire_begin(msgpack_packer *pk, enum tn_kind kind, uint32_t n_fields)
{
	msgpack_pack_array(pk, 3);
	msgpack_pack_uint64(pk, TN_PROTO_VERSION);
	msgpack_pack_uint64(pk, (uint64_t)kind);
	msgpack_pack_map(pk, n_fields);
}

void
tn_wire_put_u64(msgpack_packer *pk, uint32_t key, uint64_t v)
{
	msgpack_pack_uint32(pk, key);
	msgpack_pack_uint64(pk, v);
}

void
tn_wire_put_i64(msgpack_packer *pk, uint32_t key, int64_t v)
{
	msgpack_pack_uint32(pk, key);
	msgpack_pack_int64(pk, v);
}

void
tn_wire_put_str(msgpack_packer *pk, uint32_t key, struct tn_str s)
{
	assert(s.len <= UINT32_MAX);
	msgpack_pack_uint32(pk, key);
	msgpack_pack_str_with_body(pk, s.p, s.len);
}

void
tn_wire_put_bin(msgpack_packer *pk, uint32_t key, struct tn_str s)
{
	assert(s.len <= UINT32_MAX);
	msgpack_pack_uint32(pk, key);
	msgpack_pack_bin_with_body(pk, s.p, s.len);
}

void
tn_wire_put_strs(msgpack_packer *pk, uint32_t key, const struct tn_str_iter *list)
{
	struct tn_str_iter it = *list;
	struct tn_str s;
	msgpack_pack_uint32(pk, key);
	msgpack_pack_array(pk, it.n);
	while (tn_str_iter_next(&it, &s)) {
		assert(s.len <= UINT32_MAX);
		msgpack_pack_str_with_body(pk, s.p, s.len);
	}
}

void
tn_wire_put_u64s(msgpack_packer *pk, uint32_t key, const struct tn_u64_iter *list)
{
	struct tn_u64_iter it = *list;
	uint64_t v;
	msgpack_pack_uint32(pk, key);
	msgpack_pack_array(pk, it.n);
	while (tn_u64_iter_next(&it, &v))
		msgpack_pack_uint64(pk, v);
}
