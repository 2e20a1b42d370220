/* The client edge: pomelo clients over WebSocket (libwebsockets), shared by the gate and
 * the connectors.
 *
 * One libwebsockets service thread owns every socket and session; it is the "owner
 * thread" of everything called here (except tn_edge_stop and tn_edge_exec's post). Other
 * threads hand work over with tn_edge_exec (a mailbox drained in
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED).
 *
 * The edge runs the pomelo protocol (package and message layers, handshake, heartbeats,
 * kick) through the one protocol module (common/pomelo), enforces every limit of the
 * configuration, answers bad input itself (400/404/413 bodies, kicks, closes; see
 * docs/protocol-hardening.md) and hands the service only well-formed requests on routes
 * it serves. */
#ifndef TN_EDGE_H
#define TN_EDGE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"

struct tn_edge;
struct tn_edge_sess;

struct tn_edge_ops {
	/* The session completed the handshake (state WORKING). Optional. */
	void (*on_open)(void *arg, struct tn_edge_sess *s);
	/* A request (id > 0) or notify (id == 0) on a served route. route_tag is the route's
	 * index in tn_edge_opts.routes. body is the parsed JSON object (borrowed for the
	 * call; take a reference to keep it) and raw/raw_len its original bytes. The service
	 * answers every request exactly once with tn_edge_respond (possibly later, from the
	 * owner thread), and never a notify. */
	void (*on_request)(void *arg, struct tn_edge_sess *s, uint32_t id, int route_tag,
		json_object *body, const uint8_t *raw, size_t raw_len);
	/* The session has ended (either side closed it, a drain's deadline dropped it, or
	 * tn_edge_close). Called once per session that reached on_open, when its socket is
	 * gone or going, never from inside a tn_edge_* call; s stays valid until the call
	 * returns. Once a session starts closing (a kick, a timeout, bad input),
	 * tn_edge_respond/push on it are already no-ops. */
	void (*on_close)(void *arg, struct tn_edge_sess *s);
};

struct tn_edge_opts {
	const struct tn_config *cfg; /* ports, limits, heartbeat, web root */
	/* Every route of the application, for the route dictionary (useDict). */
	const char *const *routes;
	size_t nroutes;
	/* served[i]: this server answers routes[i]; requests for other routes get 404. */
	const bool *served;
	bool use_dict;            /* send the dictionary in handshakes (connectors) */
	const char *metrics_prefix; /* "tern_gate" or "tern_connector" */
};

/* Creates the lws context, binds the first free port of cfg's client port range on
 * cfg->client_host, mounts cfg->web_root for plain HTTP GETs (gate configurations only)
 * and registers the edge's metrics (<metrics_prefix>_*, docs/protocol-hardening.md).
 * Sessions are closed after cfg->idle_timeout_ms without a package from the client when
 * cfg->heartbeat_s is 0 (with heartbeats, the heartbeat timeout does that job).
 * opts and its arrays are copied; cfg is borrowed for the edge's life. Returns TN_EADDR
 * when no port in the range is free, TN_ECONFIG (logged with both numbers) when
 * max-connections plus the file descriptors the rest of the process needs exceed the
 * open-file limit, TN_EINVAL for routes a dictionary cannot hold. Main thread. */
int tn_edge_new(struct tn_edge **out, const struct tn_edge_opts *opts,
	const struct tn_edge_ops *ops, void *arg);

/* The client port actually bound. */
int tn_edge_port(const struct tn_edge *e);

/* Runs the service loop on the calling thread (it becomes the owner thread) until
 * tn_edge_stop. */
void tn_edge_run(struct tn_edge *e);

/* Makes tn_edge_run return soon. Any thread. */
void tn_edge_stop(struct tn_edge *e);

/* After tn_edge_run has returned (calling thread: the main one): calls on_close for
 * every session still open (so the service releases what it holds and can tell others),
 * closes the sockets and the listening port, drops pending tn_edge_timer timers without
 * running them, and closes the mailbox: tasks queued or posted from now on run cancelled
 * at once. Idempotent. */
void tn_edge_close(struct tn_edge *e);

/* Frees everything (closing first if needed). NULL is a no-op. */
void tn_edge_free(struct tn_edge *e);

/* Drains the edge for a graceful shutdown (SIGTERM), on the owner thread: closes the
 * listening socket (new connections are refused from then on), kicks every session with
 * "server shutting down" (counted in <metrics_prefix>_kicks_total) and lets the kicks
 * flush while the clients close. Once every session has gone, or at deadline_ms
 * (tn_now_ms clock), done(arg) runs on the owner thread; at the deadline the sessions
 * still open are dropped first: on_close is called for each and its socket is shut
 * down. done == NULL stops the service loop (tn_edge_stop) instead. Meanwhile the loop
 * serves as usual (on_close, tasks, timers); nothing happens after tn_edge_close, and a
 * second drain is ignored. Any thread. */
void tn_edge_drain(struct tn_edge *e, int64_t deadline_ms, void (*done)(void *arg), void *arg);

/* Posts tasks to the owner thread. */
struct tn_exec tn_edge_exec(struct tn_edge *e);

/* Calls fn(arg) on the owner thread after delay_ms (an lws_sul timer). A timer still
 * pending at tn_edge_close never runs. Owner thread. */
void tn_edge_timer(struct tn_edge *e, int64_t delay_ms, void (*fn)(void *arg), void *arg);

/* Sessions currently open (handshake done or not). */
size_t tn_edge_connections(const struct tn_edge *e);

/* ---- sessions (owner thread) ---- */

/* A process-unique, never reused id (> 0). */
uint64_t tn_edge_sess_id(const struct tn_edge_sess *s);

/* The session with this id, or NULL when it is gone. */
struct tn_edge_sess *tn_edge_sess_find(struct tn_edge *e, uint64_t id);

/* The service's data pointer for this session (NULL until set). */
void tn_edge_sess_set_data(struct tn_edge_sess *s, void *data);
void *tn_edge_sess_data(const struct tn_edge_sess *s);

/* The host name the client used to reach this server: the Host header without the
 * port, an IPv6 literal with its brackets ("[::1]", so "ws://" + host + ":" + port is a
 * URL), or "" when absent or not a plausible host name. */
const char *tn_edge_sess_host(const struct tn_edge_sess *s);

/* Sends a response to request id with a JSON body (len bytes; never empty: "{}" at
 * least). 4-byte UTF-8 in the body goes out as \u escapes (protocol.md §6.4). A second
 * response to one id is dropped (and logged): the client would choke on it. A no-op
 * once the session is closing. */
void tn_edge_respond(struct tn_edge_sess *s, uint32_t id, const char *json, size_t len);

/* Sends a push on route with a JSON body. Pending packages to one client are coalesced
 * into one WebSocket frame. The outbound queue is bounded: a client that does not read
 * is kicked with reason "slow consumer". */
void tn_edge_push(struct tn_edge_sess *s, const char *route, const char *json, size_t len);

/* Sends a KICK {"reason": reason} (NULL: "kick") and closes the session once it is
 * flushed; counted in <metrics_prefix>_kicks_total{reason} (reasons must come from the
 * code, never from a client). A no-op once the session is closing. */
void tn_edge_kick(struct tn_edge_sess *s, const char *reason);

#endif
