/* The pomelo package layer (protocol.md §1): a 4-byte header (type, 24-bit big-endian
 * body length) followed by the body. One WebSocket message may hold several packages back
 * to back; a package is never split across messages.
 *
 * Everything here is a pure function over bytes: no allocation except growth of the
 * caller's struct tn_buf, no global state. Any thread, as long as each buffer and
 * iterator has one user at a time. */
#ifndef TN_PML_PACKAGE_H
#define TN_PML_PACKAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum tn_pml_pkg_type {
	TN_PML_PKG_HANDSHAKE = 1,     /* JSON, both directions */
	TN_PML_PKG_HANDSHAKE_ACK = 2, /* empty, client to server only */
	TN_PML_PKG_HEARTBEAT = 3,     /* empty, both directions */
	TN_PML_PKG_DATA = 4,          /* message layer (pml_message.h) */
	TN_PML_PKG_KICK = 5,          /* JSON {"reason":...}, server to client only */
};

#define TN_PML_PKG_HEADER_LEN 4
/* The largest body the 24-bit length field can describe. */
#define TN_PML_PKG_MAX_BODY 0xffffffu
/* Default limit on the body of an incoming package. */
#define TN_PML_PKG_DEFAULT_LIMIT (64u * 1024u)

/* True when t is one of the five package types. */
bool tn_pml_pkg_type_is_valid(unsigned t);

/* Appends one package of the given type with len body bytes (body may be NULL when len is
 * 0). Returns TN_EINVAL for an invalid type, TN_ETOOBIG when len > TN_PML_PKG_MAX_BODY;
 * out is unchanged on error. */
int tn_pml_pkg_encode(struct tn_buf *out, enum tn_pml_pkg_type type, const void *body, size_t len);

/* Starts a package whose body the caller appends to out afterwards (avoids a copy).
 * Returns the offset to pass to tn_pml_pkg_end. type must be valid (asserted). */
size_t tn_pml_pkg_begin(struct tn_buf *out, enum tn_pml_pkg_type type);

/* Finishes the package started at offset start by writing its length. When the body grew
 * past TN_PML_PKG_MAX_BODY the whole package is removed again (out->len = start) and
 * TN_ETOOBIG is returned. */
int tn_pml_pkg_end(struct tn_buf *out, size_t start);

/* Drops the package started at start (for a caller that fails half-way). */
void tn_pml_pkg_abort(struct tn_buf *out, size_t start);

/* One decoded package: a view into the iterated buffer, valid as long as that buffer. */
struct tn_pml_pkg {
	enum tn_pml_pkg_type type;
	const uint8_t *body;
	size_t len;
};

/* Iterates over the packages of one buffer. Fields are private. */
struct tn_pml_pkg_iter {
	const uint8_t *data;
	size_t len;
	size_t off;
	size_t limit;
	int err;
};

/* Starts iterating over len bytes at data (borrowed for the iterator's life). limit is the
 * largest body accepted, 0 meaning TN_PML_PKG_DEFAULT_LIMIT. */
void tn_pml_pkg_iter_init(struct tn_pml_pkg_iter *it, const void *data, size_t len, size_t limit);

/* True while tn_pml_pkg_next has something to return: a package or an error. */
bool tn_pml_pkg_iter_more(const struct tn_pml_pkg_iter *it);

/* Decodes the next package into *pkg. Errors, checked in this order: TN_EPROTO for an
 * unknown type byte, TN_ETRUNC when the header is incomplete, TN_ETOOBIG when the
 * declared body exceeds the limit, TN_ETRUNC when the body is incomplete. An error is
 * final: the stream has lost its framing, every later call returns the same error.
 * TN_ENOENT when there is nothing left. */
int tn_pml_pkg_next(struct tn_pml_pkg *pkg, struct tn_pml_pkg_iter *it);

/* Offset of the first byte not yet consumed (the failing package after an error). */
size_t tn_pml_pkg_iter_offset(const struct tn_pml_pkg_iter *it);

/* Reads the header at data (len bytes available) without needing the body: for stream
 * transports that must know how much more to read. Writes the type and body length.
 * Returns TN_EPROTO for an unknown type (checked as soon as one byte is there),
 * TN_ETRUNC when fewer than TN_PML_PKG_HEADER_LEN bytes are available. */
int tn_pml_pkg_header_decode(
        enum tn_pml_pkg_type *type, size_t *body_len, const void *data, size_t len);

#endif
