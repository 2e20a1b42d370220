#include "mp.h"

#include "err.h"

/* What a type byte introduces. */
enum mp_class {
	MP_UINT = 1, /* non-negative integer, uint encodings and positive fixint */
	MP_INT,      /* integer in a signed encoding (int8..int64, negative fixint) */
	MP_STR,
	MP_BIN,
	MP_ARRAY,
	MP_MAP,
	MP_OTHER, /* nil, bool, float, ext: only ever skipped */
};

/* A parsed value header. */
struct mp_head {
	enum mp_class cls;
	/* MP_UINT: the value. MP_INT: the value in two's complement. MP_ARRAY: the element
	 * count. MP_MAP: the pair count. Otherwise: how many payload bytes follow. */
	uint64_t n;
	const uint8_t *next; /* first byte after the header */
};


/* The header forms that carry no length field. Returns false for the others. */
static bool
head_fixed(uint8_t b, struct mp_head *h)
{
	if (b <= 0x7f)
		*h = (struct mp_head){MP_UINT, b, NULL};
	else if (b <= 0x8f)
		*h = (struct mp_head){MP_MAP, b & 0x0f, NULL};
	else if (b <= 0x9f)
		*h = (struct mp_head){MP_ARRAY, b & 0x0f, NULL};
	else if (b <= 0xbf)
		*h = (struct mp_head){MP_STR, b & 0x1f, NULL};
	else if (b >= 0xe0)
		*h = (struct mp_head){MP_INT, UINT64_C(0xffffffffffffff00) | b, NULL};
	else
		return false;
	return true;
}

/* The type bytes 0xc0..0xdf, indexed by b - 0xc0: the class, the width of the big-endian
 * length or value that follows (0 when none) and, for fixed-size payloads, the payload
 * size. A zero class marks 0xc1, which msgpack never uses. */
static const struct {
	uint8_t cls;
	uint8_t width;
	uint8_t payload;
} tagged[32] = {
	[0x00] = {MP_OTHER, 0, 0},                                  /* nil */
	[0x02] = {MP_OTHER, 0, 0}, [0x03] = {MP_OTHER, 0, 0},       /* false, true */
	[0x04] = {MP_BIN, 1, 0}, [0x05] = {MP_BIN, 2, 0}, [0x06] = {MP_BIN, 4, 0},
	[0x07] = {MP_OTHER, 1, 0}, [0x08] = {MP_OTHER, 2, 0}, [0x09] = {MP_OTHER, 4, 0}, /* ext */
	[0x0a] = {MP_OTHER, 0, 4}, [0x0b] = {MP_OTHER, 0, 8},       /* float32, float64 */
	[0x0c] = {MP_UINT, 1, 0}, [0x0d] = {MP_UINT, 2, 0},
	[0x0e] = {MP_UINT, 4, 0}, [0x0f] = {MP_UINT, 8, 0},
	[0x10] = {MP_INT, 1, 0}, [0x11] = {MP_INT, 2, 0},
	[0x12] = {MP_INT, 4, 0}, [0x13] = {MP_INT, 8, 0},
	/* fixext 1, 2, 4, 8, 16: a type byte, then the data */
	[0x14] = {MP_OTHER, 0, 2}, [0x15] = {MP_OTHER, 0, 3}, [0x16] = {MP_OTHER, 0, 5},
	[0x17] = {MP_OTHER, 0, 9}, [0x18] = {MP_OTHER, 0, 17},
	[0x19] = {MP_STR, 1, 0}, [0x1a] = {MP_STR, 2, 0}, [0x1b] = {MP_STR, 4, 0},
	[0x1c] = {MP_ARRAY, 2, 0}, [0x1d] = {MP_ARRAY, 4, 0},
	[0x1e] = {MP_MAP, 2, 0}, [0x1f] = {MP_MAP, 4, 0},
};

/* Parses the header at p (before end). Checks only the header's own bytes. */
static int
head_read(const uint8_t *p, const uint8_t *end, struct mp_head *h)
{
	if (p == end)
		return TN_ETRUNC;
	uint8_t b = *p++;
	if (head_fixed(b, h)) {
		h->next = p;
		return TN_OK;
	}
	unsigned t = b - 0xc0u, w = tagged[t].width;
	if (tagged[t].cls == 0)
		return TN_EPROTO;
	if ((size_t)(end - p) < w)
		return TN_ETRUNC;
	h->cls = tagged[t].cls;
	uint64_t n = w > 0 ? tn_mp_load_be(p, w) : tagged[t].payload;
	if (h->cls == MP_INT && w < 8 && (n >> (8 * w - 1)) != 0)
		n |= UINT64_MAX << (8 * w); /* sign-extend */
	else if (b >= 0xc7 && b <= 0xc9)
		n += 1; /* ext: the type byte after the length is payload too */
	h->n = n;
	h->next = p + w;
	return TN_OK;
}

/* Reads a header of class cls. */
static int
head_expect(const struct tn_mp_reader *r, enum mp_class cls, struct mp_head *h)
{
	int rv = head_read(r->p, r->end, h);
	if (rv != TN_OK)
		return rv;
	return h->cls == cls ? TN_OK : TN_EPROTO;
}

int
tn_mp_read_array(struct tn_mp_reader *r, uint32_t *n)
{
	struct mp_head h;
	int rv = head_expect(r, MP_ARRAY, &h);
	if (rv != TN_OK)
		return rv;
	*n = (uint32_t)h.n;
	r->p = h.next;
	return TN_OK;
}

int
tn_mp_read_map(struct tn_mp_reader *r, uint32_t *n)
{
	struct mp_head h;
	int rv = head_expect(r, MP_MAP, &h);
	if (rv != TN_OK)
		return rv;
	*n = (uint32_t)h.n;
	r->p = h.next;
	return TN_OK;
}

int
tn_mp_read_u64_any(struct tn_mp_reader *r, uint64_t *v)
{
	struct mp_head h;
	int rv = head_read(r->p, r->end, &h);
	if (rv != TN_OK)
		return rv;
	/* A signed encoding of a non-negative value is still a valid unsigned. */
	if (h.cls != MP_UINT && !(h.cls == MP_INT && h.n <= (uint64_t)INT64_MAX))
		return TN_EPROTO;
	*v = h.n;
	r->p = h.next;
	return TN_OK;
}

int
tn_mp_read_i64(struct tn_mp_reader *r, int64_t *v)
{
	struct mp_head h;
	int rv = head_read(r->p, r->end, &h);
	if (rv != TN_OK)
		return rv;
	if (h.cls != MP_INT && !(h.cls == MP_UINT && h.n <= (uint64_t)INT64_MAX))
		return TN_EPROTO;
	*v = (int64_t)h.n;
	r->p = h.next;
	return TN_OK;
}

/* Reads a str or bin (as allowed by want_str, want_bin) of at most max bytes. */
static int
read_bytes(struct tn_mp_reader *r, struct tn_str *s, size_t max, bool want_str, bool want_bin)
{
	struct mp_head h;
	int rv = head_read(r->p, r->end, &h);
	if (rv != TN_OK)
		return rv;
	if (!((want_str && h.cls == MP_STR) || (want_bin && h.cls == MP_BIN)))
		return TN_EPROTO;
	if (h.n > max)
		return TN_ETOOBIG;
	if (h.n > (uint64_t)(r->end - h.next))
		return TN_ETRUNC;
	s->p = (const char *)h.next;
	s->len = (size_t)h.n;
	r->p = h.next + h.n;
	return TN_OK;
}

int
tn_mp_read_str(struct tn_mp_reader *r, struct tn_str *s, size_t max)
{
	return read_bytes(r, s, max, true, false);
}

int
tn_mp_read_bin(struct tn_mp_reader *r, struct tn_str *s, size_t max)
{
	return read_bytes(r, s, max, false, true);
}

int
tn_mp_read_raw(struct tn_mp_reader *r, struct tn_str *s, size_t max)
{
	return read_bytes(r, s, max, true, true);
}

int
tn_mp_skip(struct tn_mp_reader *r)
{
	const uint8_t *p = r->p;
	uint64_t pending = 1; /* values still to skip, nested ones included */
	while (pending > 0) {
		struct mp_head h;
		int rv = head_read(p, r->end, &h);
		if (rv != TN_OK)
			return rv;
		pending--;
		p = h.next;
		uint64_t avail = (uint64_t)(r->end - p);
		if (h.cls == MP_ARRAY || h.cls == MP_MAP) {
			/* Each pending value needs at least one byte: refusing early keeps
			 * the count (at most 2 * 2^32 per header) from ever growing past the
			 * input's length. */
			pending += h.cls == MP_MAP ? 2 * h.n : h.n;
			if (pending > avail)
				return TN_ETRUNC;
		} else if (h.cls != MP_UINT && h.cls != MP_INT) {
			if (h.n > avail)
				return TN_ETRUNC;
			p += h.n;
		}
	}
	r->p = p;
	return TN_OK;
}
