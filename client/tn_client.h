/* libtn_client: a non-blocking pomelo client. One tn_cli_loop (cli_loop.h) drives any
 * number of clients from one thread.
 *
 * Why a loop of our own rather than the libwebsockets client API: the library's job is
 * thousands of connections with per-request deadlines, heartbeats and reconnect timers
 * on one thread, plus stdin for the terminal client. With our own epoll loop that is one
 * level-triggered wait, an O(log n) timer heap with timers embedded in their owners, and
 * no hidden threads or re-entrant callbacks (lws_client_connect_via_info may report a
 * failure from inside the call; lws_service ignores its timeout in 4.1.6, so timers would
 * go through lws_sul; a second lws context would be needed next to the servers' one in
 * tests). The client side of RFC 6455 that pomelo needs is small (ws_frame.c: masking,
 * fragment reassembly, ping/pong, close; ws_http.c: the upgrade) and is unit-tested
 * byte for byte, and being independent of libwebsockets it also checks the servers'
 * WebSocket edge against a second implementation. What it gives up: TLS (wss://) and
 * compression extensions, which the pomelo chat protocol does not use.
 *
 * What a client does (protocol.md):
 * - connect: a session with the gate, gate.gateHandler.queryEntry {"uid":...}, then a
 *   session with the connector the gate names (or straight to a connector: direct);
 *   each session opens with the browser client's handshake and its ACK;
 * - heartbeats like the browser (answered one interval after the server's; no traffic
 *   for twice the interval closes the session);
 * - requests with a callback and a deadline (the callback always runs exactly once:
 *   with the response, TN_ETIMEDOUT, or TN_ECLOSED when the session ends first);
 *   notifies; push handlers by route; kick and close events;
 * - reconnect through the gate with bounded exponential backoff and jitter.
 * Request ids count per client, across its connections, as the browser's do.
 *
 * Threads: every function below is for the loop thread (or any one thread while the loop
 * is not running). Other threads use tn_cli_loop_post. */
#ifndef TN_CLIENT_H
#define TN_CLIENT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_loop.h"

struct tn_cli_client;

enum tn_cli_event_type {
	/* A session with the connector is ready; requests may be sent. */
	TN_CLI_EV_CONNECTED = 1,
	/* An attempt to connect (gate or connector) failed. */
	TN_CLI_EV_CONNECT_FAILED = 2,
	/* The server kicked this client (detail: the reason). DISCONNECTED follows. */
	TN_CLI_EV_KICKED = 3,
	/* A ready session ended. */
	TN_CLI_EV_DISCONNECTED = 4,
	/* The client stopped for good: after tn_cli_client_close (err TN_OK), or when no
	 * more attempts are allowed (err: the last failure). Nothing follows. */
	TN_CLI_EV_CLOSED = 5,
};

struct tn_cli_event {
	enum tn_cli_event_type type;
	int err;             /* CONNECT_FAILED, DISCONNECTED, CLOSED: why (tn_strerror) */
	const char *detail;  /* human-readable; the kick reason for KICKED */
	const char *host;    /* CONNECTED: the connector's host */
	int port;            /* CONNECTED: the connector's port */
	bool reconnected;    /* CONNECTED: this client was connected before */
	int64_t retry_in_ms; /* CONNECT_FAILED, DISCONNECTED: delay before the next attempt,
	                      * -1 when there is none (CLOSED follows) */
	unsigned attempt;    /* CONNECT_FAILED: failed attempts in a row, this one included */
};

/* Strings in ev are valid during the call. The callback may call any function of this
 * client, including tn_cli_client_free. */
typedef void (*tn_cli_event_fn)(void *arg, struct tn_cli_client *c, const struct tn_cli_event *ev);

/* A request's outcome: err TN_OK with the response body (a JSON value borrowed for the
 * call; take a reference to keep it), TN_ETIMEDOUT when the deadline passed, TN_ECLOSED
 * when the session ended or the client was closed or freed first, TN_EPROTO when the
 * response was not JSON. body is NULL unless err is TN_OK. The body's "code" is not
 * interpreted: that is the application's business, as in pomelo. */
typedef void (*tn_cli_response_fn)(void *arg, struct tn_cli_client *c, int err, json_object *body);

/* A push on route with its JSON body (both borrowed for the call). */
typedef void (*tn_cli_push_fn)(
        void *arg, struct tn_cli_client *c, const char *route, json_object *body);

struct tn_cli_opts {
	const char *host; /* the gate (or the connector when direct) */
	int port;
	bool direct;                /* skip the gate: host:port is a connector */
	const char *uid;            /* sent to the gate as {"uid":...}; required unless direct */
	int64_t connect_timeout_ms; /* per session: connect, upgrade, handshake (and the
	                             * gate's answer) */
	int64_t request_timeout_ms; /* deadline of a request given timeout 0 */
	bool reconnect;             /* try again after a failure or a lost session */
	int64_t backoff_initial_ms; /* delay before the first retry */
	int64_t backoff_max_ms;     /* the delay doubles up to this */
	unsigned max_attempts;      /* failed attempts in a row before giving up; 0: no limit */
	int json_depth;             /* deepest JSON accepted in responses and pushes */
	size_t max_package;         /* largest package body accepted from a server */
	const char *client_type;    /* handshake sys.type */
	const char *client_version; /* handshake sys.version */
	tn_cli_event_fn on_event;   /* may be NULL */
	void *event_arg;
};

/* Defaults: port 3014, 10 s connect timeout, 10 s request deadline, reconnect on,
 * backoff 500 ms doubling to 30 s, 10 attempts, JSON depth 64, 16 MiB packages,
 * "js-websocket" "0.0.1". */
void tn_cli_opts_init(struct tn_cli_opts *opts);

/* Creates a client (not yet connecting). opts' strings are copied. Returns TN_EINVAL for
 * a missing host, a port outside 1..65535, a missing uid without direct, or a backoff
 * with initial <= 0 or max < initial. */
int tn_cli_client_new(
        struct tn_cli_client **out, struct tn_cli_loop *loop, const struct tn_cli_opts *opts);

/* Starts connecting (from new, or after CLOSED). TN_EBUSY when already connecting or
 * connected. Events report the outcome; none is sent from inside this call. */
int tn_cli_client_connect(struct tn_cli_client *c);

/* Stops: cancels any retry, closes the sessions cleanly; pending requests fail with
 * TN_ECLOSED; then CLOSED (err TN_OK). All of that happens after this call returns. A
 * no-op when idle or closed. */
void tn_cli_client_close(struct tn_cli_client *c);

/* Frees the client at once: no more events; the callbacks of pending requests run with
 * TN_ECLOSED (inside this call, or when the current callback returns if called from one
 * of this client's callbacks). NULL is a no-op. */
void tn_cli_client_free(struct tn_cli_client *c);

/* True while a session with the connector is ready. */
bool tn_cli_client_is_connected(const struct tn_cli_client *c);

/* Sets the handler of pushes on route (copied), replacing any previous one; fn NULL
 * removes it. route NULL sets the handler of pushes on routes that have none. */
void tn_cli_on(struct tn_cli_client *c, const char *route, tn_cli_push_fn fn, void *arg);

/* Sends a request with body (len bytes of JSON; NULL sends {}) on route. timeout_ms > 0
 * is the deadline, 0 means request_timeout_ms, < 0 none. On TN_OK cb(arg, ...) will run
 * exactly once, later. Errors (cb never runs): TN_ECLOSED when not connected, TN_EINVAL
 * for a route that is empty, over 255 bytes or holds a NUL, TN_EBUSY when the server is
 * not reading, TN_ETOOBIG over the package limit. */
int tn_cli_request(struct tn_cli_client *c, const char *route, const char *body, size_t len,
        int64_t timeout_ms, tn_cli_response_fn cb, void *arg);

/* Sends a notify (never answered). Errors as tn_cli_request. */
int tn_cli_notify(struct tn_cli_client *c, const char *route, const char *body, size_t len);

struct tn_cli_stats {
	uint64_t requests;       /* sent by the application (the gate query is not) */
	uint64_t responses;      /* delivered to callbacks */
	uint64_t timeouts;       /* requests that hit their deadline */
	uint64_t failed;         /* requests failed by a closing session */
	uint64_t late_responses; /* responses after the deadline (dropped) */
	uint64_t notifies;
	uint64_t pushes;          /* delivered to a handler */
	uint64_t bad_pushes;      /* not JSON, or undecodable messages */
	uint64_t connects;        /* CONNECTED events */
	uint64_t failed_attempts; /* CONNECT_FAILED events */
	uint64_t heartbeats_sent;
	uint64_t heartbeats_received;
	uint64_t kicks;
};

/* Counters since the client was created. */
void tn_cli_client_stats(struct tn_cli_stats *out, const struct tn_cli_client *c);

/* Requests waiting for their response. */
size_t tn_cli_client_pending(const struct tn_cli_client *c);

/* The connector of the current session ("" and 0 when none). */
const char *tn_cli_client_host(const struct tn_cli_client *c);
int tn_cli_client_port(const struct tn_cli_client *c);

/* The heartbeat interval the connector asked for, ms (0: none or not connected). */
int64_t tn_cli_client_heartbeat_ms(const struct tn_cli_client *c);

/* The delay before retry number attempt (1, 2, ...): initial * 2^(attempt-1) capped at
 * max, then drawn uniformly from its upper half with random (so a crowd of clients does
 * not come back at once). Pure; any thread. */
int64_t tn_cli_backoff_delay(const struct tn_cli_opts *opts, unsigned attempt, uint64_t random);

/* "connected", "connect_failed", "kicked", "disconnected", "closed". */
const char *tn_cli_event_name(enum tn_cli_event_type type);

#endif
