/* What the message kinds share: the envelope, the field-table body decoder and the
 * encoding helpers over msgpack-c's packer. Internal to proto/; callers use the kinds'
 * headers. Every function is reentrant (no shared state): any thread. */
#ifndef TN_WIRE_H
#define TN_WIRE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mp.h"
#include "proto.h"

#define TN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* lim, or the defaults when lim is NULL. */
const struct tn_proto_limits *tn_wire_limits(const struct tn_proto_limits *lim);

/* Reads the envelope [version, kind, body] of data[0..len) up to the body: *kind is the
 * kind and r is left at the body. Does not check the size limit. */
int tn_wire_envelope(struct tn_mp_reader *r, enum tn_kind *kind, const void *data, size_t len);

/* Reads one field's value at r into dst (the field's place in the output struct). */
typedef int (*tn_wire_read_fn)(void *dst, struct tn_mp_reader *r,
	const struct tn_proto_limits *lim);

/* One field of a body map. */
struct tn_wire_field {
	uint32_t key;       /* its key on the wire */
	bool required;      /* absent -> TN_EPROTO; otherwise dst keeps its default */
	size_t off;         /* offsetof the value in the output struct */
	tn_wire_read_fn read;
};

/* Reads a body map at r into the struct at out, field by field per fields[0..n) (n <= 32):
 * unknown keys are skipped, a known key seen twice or a missing required one is
 * TN_EPROTO. out must hold the defaults on entry; on failure it is partly written, so
 * callers decode into a temporary and copy it out on success. When seen is not NULL,
 * bit i of *seen tells whether fields[i] was present. */
int tn_wire_read_fields(void *out, uint32_t *seen, const struct tn_wire_field *fields,
	size_t n, struct tn_mp_reader *r, const struct tn_proto_limits *lim);

/* Decodes a whole message of kind `kind` (TN_EKIND otherwise) from data[0..len): checks
 * len against lim->max_msg_bytes (lim not NULL), the envelope, the body as
 * tn_wire_read_fields does, and that nothing follows (TN_EPROTO). */
int tn_wire_decode(void *out, uint32_t *seen, enum tn_kind kind,
	const struct tn_wire_field *fields, size_t n, const void *data, size_t len,
	const struct tn_proto_limits *lim);

/* Field readers for the tables. dst types: uint64_t, int32_t, struct tn_str (str: up to
 * max_str_len; bin and raw (str or bin): up to max_bin_len), struct tn_str_iter (array
 * of str, up to max_array_len), struct tn_u64_iter (array of session ids, up to
 * max_recipients). Arrays are checked element by element here so that iterating them
 * later cannot fail. */
int tn_wire_read_u64(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim);
int tn_wire_read_i32(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim);
int tn_wire_read_str(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim);
int tn_wire_read_bin(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim);
int tn_wire_read_raw(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim);
int tn_wire_read_strs(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim);
int tn_wire_read_sids(void *dst, struct tn_mp_reader *r, const struct tn_proto_limits *lim);

/* Sets pk to append to out (borrowed for as long as pk is used). */
void tn_wire_packer_init(msgpack_packer *pk, struct tn_buf *out);

/* Appends the envelope [TN_PROTO_VERSION, kind, and the header of a body map of n_fields
 * pairs]; the caller then appends exactly n_fields key/value pairs. */
void tn_wire_begin(msgpack_packer *pk, enum tn_kind kind, uint32_t n_fields);

/* Append one key/value pair each. str is written as a msgpack str, bin as a bin. */
void tn_wire_put_u64(msgpack_packer *pk, uint32_t key, uint64_t v);
void tn_wire_put_i64(msgpack_packer *pk, uint32_t key, int64_t v);
void tn_wire_put_str(msgpack_packer *pk, uint32_t key, struct tn_str s);
void tn_wire_put_bin(msgpack_packer *pk, uint32_t key, struct tn_str s);
void tn_wire_put_strs(msgpack_packer *pk, uint32_t key, const struct tn_str_iter *list);
void tn_wire_put_u64s(msgpack_packer *pk, uint32_t key, const struct tn_u64_iter *list);

#endif
