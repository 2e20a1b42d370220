#include "pml_package.h"

#include <assert.h>

#include "err.h"

bool
tn_pml_pkg_type_is_valid(unsigned t)
{
	return t >= TN_PML_PKG_HANDSHAKE && t <= TN_PML_PKG_KICK;
}

static void
put_header(uint8_t *p, enum tn_pml_pkg_type type, size_t len)
{
	p[0] = (uint8_t)type;
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

int
tn_pml_pkg_encode(struct tn_buf *out, enum tn_pml_pkg_type type, const void *body, size_t len)
{
	if (!tn_pml_pkg_type_is_valid(type))
		return TN_EINVAL;
	if (len > TN_PML_PKG_MAX_BODY)
		return TN_ETOOBIG;
	uint8_t *p = tn_buf_reserve(out, TN_PML_PKG_HEADER_LEN + len);
	put_header(p, type, len);
	out->len += TN_PML_PKG_HEADER_LEN;
	tn_buf_append(out, body, len);
	return TN_OK;
}

size_t
tn_pml_pkg_begin(struct tn_buf *out, enum tn_pml_pkg_type type)
{
	assert(tn_pml_pkg_type_is_valid(type));
	size_t start = out->len;
	put_header(tn_buf_reserve(out, TN_PML_PKG_HEADER_LEN), type, 0);
	out->len += TN_PML_PKG_HEADER_LEN;
	return start;
}

int
tn_pml_pkg_end(struct tn_buf *out, size_t start)
{
	assert(start + TN_PML_PKG_HEADER_LEN <= out->len);
	size_t len = out->len - start - TN_PML_PKG_HEADER_LEN;
	if (len > TN_PML_PKG_MAX_BODY) {
		out->len = start;
		return TN_ETOOBIG;
	}
	put_header(out->data + start, (enum tn_pml_pkg_type)out->data[start], len);
	return TN_OK;
}

void
tn_pml_pkg_abort(struct tn_buf *out, size_t start)
{
	assert(start <= out->len);
	out->len = start;
}

void
tn_pml_pkg_iter_init(struct tn_pml_pkg_iter *it, const void *data, size_t len, size_t limit)
{
	it->data = data;
	it->len = data ? len : 0;
	it->off = 0;
	it->limit = limit ? limit : TN_PML_PKG_DEFAULT_LIMIT;
	it->err = TN_OK;
}

bool
tn_pml_pkg_iter_more(const struct tn_pml_pkg_iter *it)
{
	return it->err != TN_OK || it->off < it->len;
}

size_t
tn_pml_pkg_iter_offset(const struct tn_pml_pkg_iter *it)
{
	return it->off;
}

int
tn_pml_pkg_header_decode(enum tn_pml_pkg_type *type, size_t *body_len, const void *data, size_t len)
{
	const uint8_t *p = data;
	/* The type is checked first, as soon as it is there: a stream transport can then
	 * refuse garbage without waiting for three more bytes that may never come. */
	if (len >= 1 && !tn_pml_pkg_type_is_valid(p[0]))
		return TN_EPROTO;
	if (len < TN_PML_PKG_HEADER_LEN)
		return TN_ETRUNC;
	*type = (enum tn_pml_pkg_type)p[0];
	*body_len = ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | (size_t)p[3];
	return TN_OK;
}

int
tn_pml_pkg_next(struct tn_pml_pkg *pkg, struct tn_pml_pkg_iter *it)
{
	if (it->err != TN_OK)
		return it->err;
	if (it->off >= it->len)
		return TN_ENOENT;
	const uint8_t *p = it->data + it->off;
	size_t avail = it->len - it->off;
	enum tn_pml_pkg_type type;
	size_t body_len;
	int rv = tn_pml_pkg_header_decode(&type, &body_len, p, avail);
	if (rv == TN_OK && body_len > it->limit)
		rv = TN_ETOOBIG;
	else if (rv == TN_OK && body_len > avail - TN_PML_PKG_HEADER_LEN)
		rv = TN_ETRUNC;
	if (rv != TN_OK) {
		it->err = rv;
		return rv;
	}
	pkg->type = type;
	pkg->body = p + TN_PML_PKG_HEADER_LEN;
	pkg->len = body_len;
	it->off += TN_PML_PKG_HEADER_LEN + body_len;
	return TN_OK;
}
