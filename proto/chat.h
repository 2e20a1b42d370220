/* TN_KIND_CHAT_ENTER, TN_KIND_CHAT_LEAVE, TN_KIND_CHAT_SEND: the requests a connector
 * makes of a room's chat server on behalf of one session. Each is answered with a
 * TN_KIND_REPLY (reply.h).
 *
 * Body keys: 0 epoch (uint), 1 connector_id (str), 2 sid (uint), 3 rid (str), 4 name
 * (str), all required; SEND adds 5 target (str) and 6 content (bin; a str is accepted
 * too), both required. ENTER and LEAVE ignore keys 5 and 6 like any unknown key. */
#ifndef TN_CHAT_H
#define TN_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"

struct tn_chat_req {
	uint64_t epoch;             /* the connector's membership epoch when it sent this */
	struct tn_str connector_id; /* the connector's server id */
	uint64_t sid;               /* the session, unique on that connector */
	struct tn_str rid;          /* the room */
	struct tn_str name;         /* the session's user name (for SEND: the sender, taken
	                             * from the session, never from the client's body) */
	struct tn_str target;       /* SEND: "*" for the whole room, or one user's name */
	struct tn_str content;      /* SEND: the message text, opaque bytes passed through
	                             * unchanged (may be CESU-8, need not be valid UTF-8) */
	uint64_t conn_inc;          /* the connector's incarnation (key 7, optional; 0 when
	                             * absent): a new one tells the chat server the connector
	                             * restarted, so its old sessions are gone */
};

/* Appends the encoding of req as a message of kind `kind` (one of the three above; others
 * are a programmer error) to out. target and content are written for SEND only. req and
 * the bytes it points to are borrowed. Any thread, one writer per out. */
void tn_chat_req_encode(struct tn_buf *out, enum tn_kind kind, const struct tn_chat_req *req);

/* Decodes the request of kind `kind` in data[0..len) into *out, checked against lim
 * (NULL: defaults): names and ids against max_str_len, content against max_bin_len. For
 * ENTER and LEAVE, out's target and content are empty. out's strings point into data:
 * copy what outlives it. Writes *out only on success; otherwise returns TN_ETOOBIG,
 * TN_ETRUNC, TN_EPROTO, TN_EVERSION or TN_EKIND (another kind). Any thread. */
int tn_chat_req_decode(struct tn_chat_req *out, enum tn_kind kind, const void *data,
	size_t len, const struct tn_proto_limits *lim);

#endif
