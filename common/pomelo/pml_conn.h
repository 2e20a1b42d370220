/* The server side of one pomelo client connection (protocol.md §2, §3, §6.10), free of
 * any transport: the transport feeds it whole WebSocket messages, drains the packages it
 * queues, and closes the socket when told to.
 *
 *   INITED --HANDSHAKE--> WAIT_ACK --HANDSHAKE_ACK--> WORKING --(kick, error, timeout)--> CLOSED
 *
 * - A HANDSHAKE is accepted only in INITED, an ACK only in WAIT_ACK, HEARTBEAT and DATA
 *   only in WORKING. Others are dropped and reported through on_error.
 * - The handshake is answered at once; until the ACK nothing else is sent.
 * - On the ACK and on every client HEARTBEAT a HEARTBEAT is sent and the liveness deadline
 *   is moved to now + 2 x interval (or heartbeat_timeout_ms). Only heartbeats move it.
 * - A connection not WORKING handshake_timeout_ms after tn_pml_conn_init is closed.
 * - Malformed framing, an unknown package type, or a KICK from the client close the
 *   connection: the framing can no longer be trusted.
 * - A package over package_limit is answered, in WORKING, with a KICK
 *   {"reason":"package too large"} before the close (TN_PML_CLOSE_PACKAGE_TOO_BIG), so the
 *   client learns why; before WORKING nothing but the handshake answer may be sent, so the
 *   connection is just closed.
 *
 * Outbound packages accumulate in one buffer, so several coalesce into one WebSocket
 * message; tn_pml_conn_out_peek never splits a package.
 *
 * Threads: a connection and its callbacks belong to one thread (the transport's). The
 * callbacks may call the output functions (respond, push, kick) on the same connection,
 * but must not call tn_pml_conn_fini from inside a callback. */
#ifndef TN_PML_CONN_H
#define TN_PML_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "pml_handshake.h"
#include "pml_message.h"

enum tn_pml_conn_state {
	TN_PML_CONN_INITED = 0,
	TN_PML_CONN_WAIT_ACK = 1,
	TN_PML_CONN_WORKING = 2,
	TN_PML_CONN_CLOSED = 3,
};

/* What went wrong, for counters and logs. "close" ones are followed by on_close_needed;
 * the others drop one package or message and the connection goes on. */
enum tn_pml_conn_error {
	TN_PML_ERR_BAD_PACKAGE = 1,        /* truncated package or empty message (close) */
	TN_PML_ERR_PACKAGE_TOO_BIG = 2,    /* body over package_limit (kick or close) */
	TN_PML_ERR_UNKNOWN_PACKAGE = 3,    /* unknown type, or a KICK from the client (close) */
	TN_PML_ERR_HANDSHAKE_REFUSED = 4,  /* answered 500 or 501 (close) */
	TN_PML_ERR_DATA_BEFORE_ACK = 5,    /* DATA in INITED or WAIT_ACK (dropped) */
	TN_PML_ERR_OUT_OF_STATE = 6,       /* HANDSHAKE, ACK or HEARTBEAT out of state (dropped) */
	TN_PML_ERR_BAD_MESSAGE = 7,        /* malformed message layer (dropped) */
	TN_PML_ERR_BAD_MESSAGE_TYPE = 8,   /* a response or push from the client (dropped) */
	TN_PML_ERR_UNKNOWN_ROUTE_CODE = 9, /* compressed route not in the dict (dropped; see
	                                    * on_error for requests) */
	TN_PML_ERR_BAD_REQUEST_ID = 10,    /* request id 0 or already outstanding (dropped) */
	TN_PML_ERR_TOO_MANY_REQUESTS = 11, /* more than max_inflight outstanding (dropped) */
	TN_PML_ERR_PUSH_SUPPRESSED = 12,   /* push while not WORKING (dropped) */
	TN_PML_ERR_OUTBOUND_FULL = 13,     /* push over out_limit (dropped) */
	TN_PML_ERR_COUNT_ = 14,
};

enum tn_pml_close_reason {
	TN_PML_CLOSE_PROTOCOL = 1,          /* bad framing or package type */
	TN_PML_CLOSE_HANDSHAKE_REFUSED = 2, /* a 500 or 501 answer was queued */
	TN_PML_CLOSE_HANDSHAKE_TIMEOUT = 3, /* not WORKING by the handshake deadline */
	TN_PML_CLOSE_HEARTBEAT_TIMEOUT = 4, /* no client heartbeat for the timeout */
	TN_PML_CLOSE_KICKED = 5,            /* tn_pml_conn_kick */
	TN_PML_CLOSE_PACKAGE_TOO_BIG = 6,   /* a package over package_limit; in WORKING a KICK
	                                     * with TN_PML_KICK_TOO_BIG was queued first */
};

/* The kick reason sent for a package over package_limit. */
#define TN_PML_KICK_TOO_BIG "package too large"

#define TN_PML_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define TN_PML_DEFAULT_MAX_INFLIGHT         128
#define TN_PML_DEFAULT_PROTO_VERSION        "tern-1"
/* tn_pml_conn_deadline when no timer is needed. */
#define TN_PML_NO_DEADLINE INT64_MAX

/* Settings shared by many connections: borrowed by each, so it must outlive them and not
 * change while they exist. */
struct tn_pml_conn_config {
	struct tn_pml_hs_config hs;   /* heartbeat_s, dict, proto_version, check_client */
	int64_t heartbeat_timeout_ms; /* 0: 2 x hs.heartbeat_s; unused when that is 0 */
	int64_t handshake_timeout_ms; /* until WORKING; 0: no limit */
	size_t package_limit;         /* largest incoming package body; 0: 64 KiB */
	size_t out_limit;             /* pushes are dropped above this many queued bytes;
	                               * 0: no limit */
	size_t out_headroom;          /* free bytes kept before the queued data, e.g. LWS_PRE */
	unsigned max_inflight;        /* outstanding requests per connection; 0: default */
};

/* The events a connection reports. Called synchronously from tn_pml_conn_feed,
 * tn_pml_conn_check_timeout and the output functions. on_ready and on_error may be NULL. */
struct tn_pml_conn_cbs {
	/* The ACK arrived: the connection is WORKING. */
	void (*on_ready)(void *ctx);
	/* A request. msg->route is NUL-terminated (route_len bytes before the NUL); route and
	 * body are valid only during the call. The id stays outstanding until
	 * tn_pml_conn_respond: every request must be answered exactly once. */
	void (*on_request)(void *ctx, const struct tn_pml_msg *msg);
	/* A notify (never answered). Same lifetime rules. */
	void (*on_notify)(void *ctx, const struct tn_pml_msg *msg);
	/* Something was dropped or refused. req_id is non-zero only for
	 * TN_PML_ERR_UNKNOWN_ROUTE_CODE on a request: that id is outstanding and the server
	 * should answer it (e.g. {"code":404}) so the client's callback is not left waiting. */
	void (*on_error)(void *ctx, enum tn_pml_conn_error err, uint32_t req_id);
	/* The connection is now CLOSED: send what is queued (a handshake error or kick may be
	 * there), then close the socket. Called once. */
	void (*on_close_needed)(void *ctx, enum tn_pml_close_reason reason);
};

/* One connection. Caller's storage; fields are private. */
struct tn_pml_conn {
	const struct tn_pml_conn_config *cfg;
	const struct tn_pml_conn_cbs *cbs;
	void *ctx;
	enum tn_pml_conn_state state;
	int64_t hs_deadline;
	int64_t hb_deadline;
	struct tn_buf out;  /* out_headroom bytes, then whole packages; empty when idle */
	uint32_t *inflight; /* outstanding request ids */
	unsigned n_inflight;
	unsigned cap_inflight;
};

/* Fills cfg with the defaults: no heartbeat, no dict, proto version
 * TN_PML_DEFAULT_PROTO_VERSION, a 10 s handshake timeout, 64 KiB packages, no outbound
 * limit, no headroom, TN_PML_DEFAULT_MAX_INFLIGHT. */
void tn_pml_conn_config_init(struct tn_pml_conn_config *cfg);

/* Starts conn in INITED at time now_ms (any monotonic milliseconds; the same clock for
 * every call). cfg, cbs and ctx are borrowed for conn's life; on_request, on_notify and
 * on_close_needed are required. */
void tn_pml_conn_init(struct tn_pml_conn *conn, const struct tn_pml_conn_config *cfg,
        const struct tn_pml_conn_cbs *cbs, void *ctx, int64_t now_ms);

/* Releases conn's buffers. Not from inside one of its callbacks. */
void tn_pml_conn_fini(struct tn_pml_conn *conn);

/* The current state. */
enum tn_pml_conn_state tn_pml_conn_state(const struct tn_pml_conn *conn);

/* Processes one whole WebSocket message (len bytes, borrowed for the call) received at
 * now_ms: each package in it, in order, stopping when the connection closes. Returns
 * TN_OK while the connection is open, TN_ECLOSED once it is closed (on_close_needed has
 * then been called, by this call or before). */
int tn_pml_conn_feed(struct tn_pml_conn *conn, const void *data, size_t len, int64_t now_ms);

/* The time at which tn_pml_conn_check_timeout must next run: the handshake deadline
 * before WORKING, the heartbeat deadline in WORKING (TN_PML_NO_DEADLINE without
 * heartbeats or once CLOSED). Changes after every feed. */
int64_t tn_pml_conn_deadline(const struct tn_pml_conn *conn);

/* Closes the connection (on_close_needed with a timeout reason) when a deadline has
 * passed at now_ms. Returns true when it did. */
bool tn_pml_conn_check_timeout(struct tn_pml_conn *conn, int64_t now_ms);

/* Queues the response to request id. An empty body (len 0, body may be NULL) is sent as
 * "{}": the client JSON-parses every response. Returns TN_ENOENT (nothing sent) when id is
 * not outstanding, which protects the client from duplicate responses; TN_ECLOSED when
 * closed; TN_ETOOBIG when the package would exceed 16 MiB (id stays outstanding). */
int tn_pml_conn_respond(struct tn_pml_conn *conn, uint32_t id, const void *body, size_t len);

/* Queues a push on route (NUL-terminated, at most 255 bytes; sent as a dict code when
 * the dict has it) with a non-empty body. Only in WORKING: otherwise it is dropped,
 * reported as TN_PML_ERR_PUSH_SUPPRESSED and TN_ECLOSED is returned. TN_EBUSY (reported
 * as TN_PML_ERR_OUTBOUND_FULL) when out_limit would be passed, TN_EINVAL for a bad route
 * or an empty body, TN_ETOOBIG over 16 MiB. */
int tn_pml_conn_push(struct tn_pml_conn *conn, const char *route, const void *body, size_t len);

/* Queues a HEARTBEAT (the server normally only answers the client's; this is for a
 * transport that wants to probe). TN_ECLOSED unless WORKING. */
int tn_pml_conn_heartbeat(struct tn_pml_conn *conn);

/* Queues a KICK {"reason":reason} (NULL: "kick"), moves to CLOSED and calls
 * on_close_needed(TN_PML_CLOSE_KICKED). Allowed in any state but CLOSED (TN_ECLOSED). */
int tn_pml_conn_kick(struct tn_pml_conn *conn, const char *reason);

/* Moves to CLOSED without callbacks or output, e.g. when the socket went away. */
void tn_pml_conn_close(struct tn_pml_conn *conn);

/* The queued bytes: whole packages, at most max bytes unless the first package alone is
 * larger (then exactly that one); max 0 means everything. Writes the length to *len (0
 * with a NULL result when nothing is queued). The result is preceded by cfg->out_headroom
 * bytes the caller may overwrite, and stays valid until the next call on conn. */
uint8_t *tn_pml_conn_out_peek(struct tn_pml_conn *conn, size_t *len, size_t max);

/* Removes the first n queued bytes (n from tn_pml_conn_out_peek) after sending them. */
void tn_pml_conn_out_consume(struct tn_pml_conn *conn, size_t n);

/* Number of queued bytes. */
size_t tn_pml_conn_out_pending(const struct tn_pml_conn *conn);

/* Short names for counters and logs ("data_before_ack", "heartbeat_timeout", ...). */
const char *tn_pml_conn_error_name(enum tn_pml_conn_error err);
const char *tn_pml_close_reason_name(enum tn_pml_close_reason reason);

#endif
