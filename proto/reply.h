/* TN_KIND_REPLY: the generic answer to every internal RPC.
 *
 * Body keys: 0 code (int, required), 1 reason (str), 2 epoch (uint), 3 users (array of
 * str), 4 body (bin). All but code are optional and omitted when empty. */
#ifndef TN_REPLY_H
#define TN_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"

struct tn_reply {
	int32_t code;        /* TN_OK, or a tn_err code saying why the call failed */
	struct tn_str reason; /* human-readable detail; empty when absent */
	uint64_t epoch;      /* the replier's membership epoch; 0 when absent */
	/* An enter reply's member names, in the order they entered. has_users tells an
	 * empty list from none. Encoders set it up with tn_str_iter_init. */
	bool has_users;
	struct tn_str_iter users;
	struct tn_str body; /* raw JSON to forward to a client; empty when absent */
};

/* Appends the encoding of r to out (r and the bytes it points to are borrowed). Any
 * thread, one writer per out. */
void tn_reply_encode(struct tn_buf *out, const struct tn_reply *r);

/* Decodes the reply in data[0..len) into *out, checked against lim (NULL: defaults).
 * out's strings, body and users point into data: copy what outlives it. Writes *out only
 * on success; otherwise returns TN_ETOOBIG, TN_ETRUNC, TN_EPROTO, TN_EVERSION or
 * TN_EKIND (not a reply). Any thread. */
int tn_reply_decode(struct tn_reply *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);

#endif
