/* The JSON control packages: the handshake in both directions (protocol.md §2) and the
 * kick (§5). The server side parses a client's handshake and answers it; the client side
 * (for the C client library) builds a handshake like the browser's and reads the answer.
 *
 * Bodies are parsed with tn_json_parse and written with tn_jw, so CESU-8 passes through
 * and 4-byte UTF-8 goes out as \u escapes. Pure functions; any thread. */
#ifndef TN_PML_HANDSHAKE_H
#define TN_PML_HANDSHAKE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct tn_pml_dict;

enum tn_pml_hs_code {
	TN_PML_HS_OK = 200,
	TN_PML_HS_ERROR = 500,      /* no sys object, not JSON */
	TN_PML_HS_OLD_CLIENT = 501, /* refused by the check_client hook */
};

/* Nesting accepted in a handshake body: the real ones are 3 deep. */
#define TN_PML_HS_MAX_DEPTH 16

/* Decides whether a client may connect from its sys.type and sys.version (each NULL
 * when absent or not a string). Called on the connection's thread; must not block. */
typedef bool (*tn_pml_check_client_fn)(void *ctx, const char *type, const char *version);

/* What a server puts in its handshake responses. Borrowed by every call that takes it;
 * usually one instance shared by all connections, never changed while they exist. */
struct tn_pml_hs_config {
	int heartbeat_s;                     /* seconds between heartbeats; 0: none, key omitted */
	const struct tn_pml_dict *dict;      /* NULL: no route dictionary, useDict omitted */
	const char *proto_version;           /* non-empty; "protos" is always sent with it */
	tn_pml_check_client_fn check_client; /* NULL: every client is accepted */
	void *check_ctx;
};

/* A parsed client handshake. The strings are borrowed from root. */
struct tn_pml_hs_request {
	json_object *root;        /* owned: released by tn_pml_hs_request_fini */
	json_object *sys;         /* the sys object */
	const char *type;         /* sys.type, NULL when absent or not a string */
	const char *version;      /* sys.version, likewise */
	const char *dict_version; /* sys.dictVersion, likewise */
	json_object *user;        /* the top-level "user" value, NULL when absent */
};

/* Parses a client handshake body. Returns TN_EPROTO when it is not JSON, TN_ETOOBIG when
 * nested deeper than TN_PML_HS_MAX_DEPTH, TN_EINVAL when it has no sys object; *out is
 * written only on success and must then be released with tn_pml_hs_request_fini. */
int tn_pml_hs_request_parse(struct tn_pml_hs_request *out, const void *body, size_t len);

/* Releases what tn_pml_hs_request_parse allocated. */
void tn_pml_hs_request_fini(struct tn_pml_hs_request *req);

/* Appends the HANDSHAKE package answering req (NULL: the body could not be parsed) and
 * returns its code. 200: {"code":200,"sys":{heartbeat, dict..., useDict, protos,
 * useProto}} in pomelo's key order, where heartbeat is left out when cfg->heartbeat_s is
 * 0 and the dict keys are sent only when the client's dictVersion is missing or differs.
 * protos {"server":{},"client":{},"version":...} and useProto:true are always sent,
 * because they overwrite protobuf definitions that a browser may have cached from a real
 * pomelo server (§6.5). 500 or 501: {"code":N}; the connection must then be closed.
 * 500 also when the 200 answer would not fit in a package (a dict over 16 MiB). */
enum tn_pml_hs_code tn_pml_hs_reply_encode(struct tn_buf *out, const struct tn_pml_hs_config *cfg,
        const struct tn_pml_hs_request *req);

/* Parses body and answers it with tn_pml_hs_reply_encode. */
enum tn_pml_hs_code tn_pml_hs_answer(
        struct tn_buf *out, const struct tn_pml_hs_config *cfg, const void *body, size_t len);

/* Client side: what goes into the handshake. */
struct tn_pml_hs_client_info {
	const char *type;          /* sys.type, e.g. "js-websocket" */
	const char *version;       /* sys.version, e.g. "0.0.1" */
	const char *proto_version; /* the last protos version; NULL sends the number 0 */
	const char *dict_version;  /* NULL: omitted, as the browser does */
	const char *user_json;     /* already-encoded JSON for "user"; NULL: omitted */
};

/* Appends a HANDSHAKE package shaped like the browser client's:
 * {"sys":{"type":..,"version":..,"rsa":{},"protoVersion":..[,"dictVersion":..]}[,"user":..]}.
 * The strings are borrowed for the call. */
void tn_pml_hs_request_encode(struct tn_buf *out, const struct tn_pml_hs_client_info *info);

/* Client side: a parsed handshake response. */
struct tn_pml_hs_reply {
	int code;
	int64_t heartbeat_ms;     /* sys.heartbeat * 1000; 0 when absent */
	bool use_dict;            /* sys.useDict */
	bool use_proto;           /* sys.useProto */
	struct tn_pml_dict *dict; /* owned; NULL when the response carried no dict */
	char *dict_version;       /* owned; NULL when absent */
	char *proto_version;      /* owned; sys.protos.version, NULL when absent */
	json_object *user;        /* owned reference; NULL when absent */
};

/* Parses a handshake response body. Returns TN_EPROTO when it is not a JSON object with
 * an integer code or its dict is malformed, TN_ETOOBIG when the nesting or the dict is too
 * big. *out is written only on success; release it with tn_pml_hs_reply_fini. */
int tn_pml_hs_reply_parse(struct tn_pml_hs_reply *out, const void *body, size_t len);

/* Releases what tn_pml_hs_reply_parse allocated. */
void tn_pml_hs_reply_fini(struct tn_pml_hs_reply *reply);

/* Appends a KICK package {"reason":reason} (reason NULL, or one too long for a package:
 * "kick", pomelo's default), so the body is never empty. */
void tn_pml_kick_encode(struct tn_buf *out, const char *reason);

/* Appends the reason of a KICK body to *reason (nothing when the key is absent or not a
 * string). Returns TN_EPROTO when the body is not a JSON object, TN_ETOOBIG when it is
 * nested deeper than TN_PML_HS_MAX_DEPTH. */
int tn_pml_kick_decode(struct tn_buf *reason, const void *body, size_t len);

#endif
