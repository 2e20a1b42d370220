/* A bounds-checked msgpack reader over a received byte buffer. Internal to proto/.
 *
 * Why not msgpack-c's unpacker (msgpack_unpack_next into a msgpack_zone)? It builds a
 * tree of msgpack_object in memory it allocates, sized by what the input claims, which
 * we would then walk a second time to fill our structs; strings are copied or referenced
 * depending on unpacker settings. Reading the bytes directly is one pass, allocates
 * nothing, yields views into the buffer and lets every length be checked against the
 * caller's limits before it is used. The format is small enough (one type byte, then a
 * big-endian length or value) that the reader stays short. Encoding does use msgpack-c's
 * packer (wire.c).
 *
 * Every read either succeeds, advancing the reader and writing its out-parameters, or
 * fails leaving both untouched, with TN_ETRUNC (the bytes end first), TN_EPROTO (another
 * type is there, or the byte is not valid msgpack) or TN_ETOOBIG (over the max given).
 * Integers of any msgpack width are accepted as long as the value fits. One thread per
 * reader. */
#ifndef TN_MP_H
#define TN_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "proto.h"

struct tn_mp_reader {
	const uint8_t *p;   /* next byte to read */
	const uint8_t *end; /* one past the last byte */
};

/* Sets r to read data[0..len) (borrowed). */
static inline void
tn_mp_reader_init(struct tn_mp_reader *r, const void *data, size_t len)
{
	r->p = data;
	r->end = len > 0 ? r->p + len : r->p; /* data may be NULL when len is 0 */
}

/* True when every byte has been read. */
static inline bool
tn_mp_reader_is_done(const struct tn_mp_reader *r)
{
	return r->p == r->end;
}

/* An array header: *n is its element count. */
int tn_mp_read_array(struct tn_mp_reader *r, uint32_t *n);

/* A map header: *n is its number of key/value pairs. */
int tn_mp_read_map(struct tn_mp_reader *r, uint32_t *n);

/* A big-endian value of w (1, 2, 4 or 8) bytes at p. Fixed widths let the compiler use
 * one load and a byte swap. */
static inline uint64_t
tn_mp_load_be(const uint8_t *p, unsigned w)
{
	switch (w) {
	case 1: return p[0];
	case 2: return (uint64_t)p[0] << 8 | p[1];
	case 4: return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
	default: return tn_mp_load_be(p, 4) << 32 | tn_mp_load_be(p + 4, 4);
	}
}

/* tn_mp_read_u64 for every encoding; callers use tn_mp_read_u64. */
int tn_mp_read_u64_any(struct tn_mp_reader *r, uint64_t *v);

/* A non-negative integer (any int or uint encoding). Session ids and seqs are read in
 * bulk, so the unsigned forms are parsed inline. */
static inline int
tn_mp_read_u64(struct tn_mp_reader *r, uint64_t *v)
{
	const uint8_t *p = r->p;
	if (p != r->end && *p <= 0x7f) {
		*v = *p;
		r->p = p + 1;
		return TN_OK;
	}
	if (p != r->end && *p >= 0xcc && *p <= 0xcf) {
		unsigned w = 1u << (*p - 0xcc);
		if ((size_t)(r->end - p) <= w)
			return TN_ETRUNC;
		*v = tn_mp_load_be(p + 1, w);
		r->p = p + 1 + w;
		return TN_OK;
	}
	return tn_mp_read_u64_any(r, v);
}

/* A signed integer that fits int64_t (any int or uint encoding). */
int tn_mp_read_i64(struct tn_mp_reader *r, int64_t *v);

/* A str of at most max bytes, as a view. */
int tn_mp_read_str(struct tn_mp_reader *r, struct tn_str *s, size_t max);

/* A bin of at most max bytes, as a view. */
int tn_mp_read_bin(struct tn_mp_reader *r, struct tn_str *s, size_t max);

/* A str or a bin of at most max bytes, as a view (for opaque text that may not be UTF-8). */
int tn_mp_read_raw(struct tn_mp_reader *r, struct tn_str *s, size_t max);

/* Skips one complete value of any type, however nested. Iterative, so hostile nesting
 * cannot exhaust the stack, and every element costs at least one input byte, so the work
 * is bounded by the input's length. */
int tn_mp_skip(struct tn_mp_reader *r);

#endif
