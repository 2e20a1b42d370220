/* The pomelo message layer (protocol.md §4), the body of a DATA package:
 *
 *   flag(1) | id varint (request, response) | route (request, notify, push) | body
 *
 * flag: bit0 route compressed, bits1-3 type, bit4 gzip, bits5-7 unused. The id is a
 * base-128 varint, least significant group first, at most 5 bytes. A route is either a
 * 2-byte big-endian dictionary code or a 1-byte length and up to 255 bytes. The body is
 * everything that remains and is opaque here (JSON in practice; CESU-8 passes through).
 *
 * Decoding refuses (TN_EPROTO) a flag with the gzip bit (0x10) or any of bits 5-7 set.
 * The reference server ignores bits 5-7 and would try to gunzip; no pomelo client sets
 * any of them, so a byte that has them is garbage or a protocol we do not speak, and
 * refusing it early is safer than guessing.
 *
 * Pure functions over bytes; any thread. */
#ifndef TN_PML_MESSAGE_H
#define TN_PML_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct tn_pml_dict;

enum tn_pml_msg_type {
	TN_PML_MSG_REQUEST = 0,
	TN_PML_MSG_NOTIFY = 1,
	TN_PML_MSG_RESPONSE = 2,
	TN_PML_MSG_PUSH = 3,
};

#define TN_PML_MSG_FLAG_COMPRESSED 0x01u
#define TN_PML_MSG_FLAG_GZIP       0x10u
#define TN_PML_MSG_FLAG_RESERVED   0xe0u
#define TN_PML_MSG_ID_MAX_BYTES    5
#define TN_PML_ROUTE_MAX           255

/* A message. Decoding fills it with views into the decoded buffer (valid as long as that
 * buffer); encoding reads it. */
struct tn_pml_msg {
	enum tn_pml_msg_type type;
	uint32_t id;         /* request and response only; 0 otherwise */
	bool compressed;     /* the route travels as route_code */
	uint16_t route_code; /* when compressed */
	const char *route;   /* route_len bytes, not NUL-terminated; NULL when compressed
	                      * and not resolved (tn_pml_msg_resolve) */
	size_t route_len;
	const uint8_t *body;
	size_t body_len;
};

/* True when messages of this type carry an id / a route. */
bool tn_pml_msg_has_id(enum tn_pml_msg_type type);
bool tn_pml_msg_has_route(enum tn_pml_msg_type type);

/* Appends the message bytes of msg (no package header) to out. For a compressed route
 * route_code is written and route ignored. Returns TN_EINVAL, leaving out unchanged, for
 * an invalid type, an id of 0 on a request or response (the client takes id 0 for a push),
 * a compressed route code of 0, or a string route over TN_PML_ROUTE_MAX bytes. */
int tn_pml_msg_encode(struct tn_buf *out, const struct tn_pml_msg *msg);

/* As tn_pml_msg_encode, wrapped in a DATA package. Also TN_ETOOBIG when the package would
 * exceed the 24-bit length. */
int tn_pml_msg_encode_pkg(struct tn_buf *out, const struct tn_pml_msg *msg);

/* Sets msg's route to route (len bytes, borrowed), compressed to its code when dict (may
 * be NULL) has it. The dict must outlive msg's encoding. */
void tn_pml_msg_set_route(
        struct tn_pml_msg *msg, const struct tn_pml_dict *dict, const char *route, size_t len);

/* Decodes one message (the body of a DATA package). Syntax only: a compressed route is
 * returned as route_code with route NULL; see tn_pml_msg_resolve. Errors: TN_ETRUNC when
 * data ends inside the flag, id or route (including a route length past the end),
 * TN_ETOOBIG for an id longer than 5 bytes or above UINT32_MAX, TN_EPROTO for an invalid
 * type, the gzip bit or a reserved bit. *out is written only on success. */
int tn_pml_msg_decode(struct tn_pml_msg *out, const void *data, size_t len);

/* Turns a compressed route into its string using dict (may be NULL). Returns TN_ENOENT,
 * leaving msg unchanged, when there is no dict or the code is not in it: the server drops
 * such a message, or answers a request with a 404. A string route: TN_OK, no change. */
int tn_pml_msg_resolve(struct tn_pml_msg *msg, const struct tn_pml_dict *dict);

/* Appends id as a varint (1..5 bytes). */
void tn_pml_varint_encode(struct tn_buf *out, uint32_t id);

/* Reads a varint id from data; writes the value and the number of bytes used. Errors as
 * for the id in tn_pml_msg_decode. */
int tn_pml_varint_decode(uint32_t *id, size_t *used, const uint8_t *data, size_t len);

#endif
