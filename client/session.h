/* One pomelo session over one WebSocket connection, the client side of protocol.md §2-§5:
 * the browser-like handshake and its ACK, heartbeats answered the browser's way,
 * requests, notifies, responses and pushes at the message layer, and kicks. Package and
 * message coding is common/pomelo's; nothing here frames bytes by itself.
 *
 *   OPENING (TCP, upgrade, handshake) -> READY -> CLOSING -> CLOSED
 *
 * Heartbeats: when the server's HEARTBEAT arrives the session sends its own one interval
 * later (never on its own schedule); the session is declared dead when nothing at all has
 * arrived for twice the interval after its last heartbeat (100 ms of slack, as the
 * browser). Beyond the browser, the clock also starts at the ACK, so a server that never
 * sends its first heartbeat is noticed too.
 *
 * Request bookkeeping (ids, callbacks, deadlines) is the caller's (client.c): the session
 * sends what it is given and reports responses by id.
 *
 * Callbacks run on the loop thread, never inside a call into this module; on_close is
 * the last and comes exactly once. Loop thread only. */
#ifndef TN_CLI_SESSION_H
#define TN_CLI_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_loop.h"
#include "pomelo.h"

struct tn_cli_sess;

/* Every callback gets the session it is about, so one owner can hold several. */
struct tn_cli_sess_cbs {
	/* The handshake succeeded and the ACK is sent: requests may go. hs is valid during
	 * the call (its dict is the session's from now on). */
	void (*on_ready)(void *arg, struct tn_cli_sess *s, const struct tn_pml_hs_reply *hs);
	/* A response to request id; body (len bytes) valid during the call. */
	void (*on_response)(
	        void *arg, struct tn_cli_sess *s, uint32_t id, const uint8_t *body, size_t len);
	/* A push; route is NUL-terminated (route_len bytes), resolved through the handshake's
	 * dictionary when it came compressed. Both valid during the call. */
	void (*on_push)(void *arg, struct tn_cli_sess *s, const char *route, size_t route_len,
	        const uint8_t *body, size_t len);
	/* The server sent a KICK with this reason ("" when it gave none). The session then
	 * closes; on_close follows with TN_ECLOSED. */
	void (*on_kick)(void *arg, struct tn_cli_sess *s, const char *reason);
	/* The session is over. err: TN_OK after tn_cli_sess_close, TN_ECLOSED when the
	 * server closed it (or kicked), TN_ETIMEDOUT for the open deadline or a heartbeat
	 * timeout, TN_EVERSION when the handshake was refused with 501, TN_EPROTO for a
	 * refused handshake (other codes) or broken framing, or the connection's error
	 * (ws_conn.h). detail says what happened in words; valid during the call. */
	void (*on_close)(void *arg, struct tn_cli_sess *s, int err, const char *detail);
};

struct tn_cli_sess_opts {
	int64_t open_timeout_ms;    /* connect + upgrade + handshake; 0: none */
	size_t max_package;         /* largest package body accepted */
	const char *client_type;    /* handshake sys.type */
	const char *client_version; /* handshake sys.version */
	const char *proto_version;  /* sys.protoVersion: the last one received, NULL: 0 */
	const char *path;           /* WebSocket path; NULL: "/" */
};

/* Defaults: 10 s to open, packages up to 16 MiB, "js-websocket" "0.0.1" like the browser
 * client, protoVersion 0. */
void tn_cli_sess_opts_init(struct tn_cli_sess_opts *opts);

/* Starts a session with the pomelo server at host:port. host and opts' strings are copied
 * or used during the call only; cbs and arg are borrowed for the session's life. Returns
 * TN_EINVAL for an invalid host or port (nothing started). */
int tn_cli_sess_new(struct tn_cli_sess **out, struct tn_cli_loop *loop, const char *host, int port,
        const struct tn_cli_sess_opts *opts, const struct tn_cli_sess_cbs *cbs, void *arg);

/* Sends request id (> 0) on route (route_len bytes, 1..255; compressed when the
 * handshake's dictionary has it) with body (len bytes of JSON, copied). TN_ECLOSED unless
 * READY, TN_EBUSY when the server is not reading (too much queued), TN_EINVAL for a bad
 * route or id, TN_ETOOBIG over the 16 MiB package limit. */
int tn_cli_sess_request(struct tn_cli_sess *s, uint32_t id, const char *route, size_t route_len,
        const void *body, size_t len);

/* Sends a notify; as tn_cli_sess_request without an id. */
int tn_cli_sess_notify(
        struct tn_cli_sess *s, const char *route, size_t route_len, const void *body, size_t len);

/* Starts a clean close (WebSocket close handshake); on_close follows with TN_OK. A no-op
 * when already closing. */
void tn_cli_sess_close(struct tn_cli_sess *s);

/* Frees the session at once without further callbacks. Safe inside its callbacks. */
void tn_cli_sess_free(struct tn_cli_sess *s);

/* True once the handshake is done and until the session starts closing. */
bool tn_cli_sess_is_ready(const struct tn_cli_sess *s);

/* The heartbeat interval the server asked for, ms (0: none). */
int64_t tn_cli_sess_heartbeat_ms(const struct tn_cli_sess *s);

/* Counters since the session started. */
struct tn_cli_sess_stats {
	uint64_t heartbeats_sent;
	uint64_t heartbeats_received;
	uint64_t bad_messages; /* undecodable DATA, unknown route codes, stray packages */
};
void tn_cli_sess_stats(struct tn_cli_sess_stats *out, const struct tn_cli_sess *s);

#endif
