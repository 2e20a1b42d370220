/* Private to common/edge: the structures shared by the edge's files and the helpers they
 * call each other through. Nothing here is part of the edge's API (edge.h).
 *
 *   edge.c          context, listening port, service loop, mailbox, timers, drain,
 *                   shutdown
 *   edge_sess.c     one WebSocket session: reassembly, pomelo state machine, checks,
 *                   rate limit, outbound queue, close
 *   edge_deadline.c handshake, heartbeat (or idle) and close deadlines of every session
 *                   on one lws timer
 *   edge_metrics.c  the counters of docs/protocol-hardening.md
 *   edge_text.c     pure helpers: Host header, 4-byte UTF-8 to \u escapes
 *
 * Everything runs on the lws service thread (the owner thread), except tn_edge_new,
 * tn_edge_close and tn_edge_free, which run on the main thread while no service loop
 * runs, and the wake-up hook, which any thread may call. */
#ifndef TN_EDGE_INTERNAL_H
#define TN_EDGE_INTERNAL_H

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "edge.h"
#include "map.h"
#include "metrics.h"
#include "pomelo.h"

/* The kick reason of a drain (tn_edge_drain). */
#define TN_EDGE_KICK_SHUTDOWN "server shutting down"
/* Most bytes handed to one lws_write; packages are never split, so a single larger
 * package still goes out whole in its own frame. */
#define TN_EDGE_FRAME_MAX (64u * 1024u)
/* Requests handed to the service and not answered yet, per session; beyond: 429. */
#define TN_EDGE_MAX_PENDING 64
/* Seconds a closing session may take to flush its last packages (a kick reason) to a
 * client that does not read, before the socket is shut down anyway (lws itself would
 * keep flushing for as long as the client reads a little). */
#define TN_EDGE_CLOSE_GRACE_S 3
/* File descriptors kept for the rest of the process (nng sockets, the admin port, logs,
 * libraries) when max-connections is checked against RLIMIT_NOFILE. */
#define TN_EDGE_FD_RESERVE 64
/* Listening sockets of the client port (one per address family at most). */
#define TN_EDGE_MAX_LISTEN 4
/* Extra slots in lws's fd table beyond max-connections: the listening socket, the
 * cancel pipe, and room to accept() a connection in order to refuse it. */
#define TN_EDGE_FD_SLACK 16

/* ---- metrics ---- */

/* Bad input, by case (the labels of <prefix>_bad_input_total). */
enum edge_bad {
	EDGE_BAD_BAD_JSON = 0,
	EDGE_BAD_JSON_TOO_DEEP = 1,
	EDGE_BAD_BODY_NOT_OBJECT = 2,
	EDGE_BAD_BODY_TOO_LARGE = 3,
	EDGE_BAD_UNKNOWN_ROUTE = 4,
	EDGE_BAD_ROUTE_NOT_SERVED = 5,
	EDGE_BAD_UNKNOWN_ROUTE_CODE = 6,
	EDGE_BAD_RATE_LIMITED = 7,
	EDGE_BAD_TOO_MANY_PENDING = 8,
	EDGE_BAD_PACKAGE_TOO_LARGE = 9,
	EDGE_BAD_TEXT_FRAME = 10,
	EDGE_BAD_UNKNOWN_PACKAGE = 11,
	EDGE_BAD_TRUNCATED_PACKAGE = 12,
	EDGE_BAD_DATA_BEFORE_ACK = 13,
	EDGE_BAD_OUT_OF_STATE = 14,
	EDGE_BAD_BAD_MESSAGE = 15,
	EDGE_BAD_BAD_MESSAGE_TYPE = 16,
	EDGE_BAD_BAD_REQUEST_ID = 17,
	EDGE_BAD_HANDSHAKE_REFUSED = 18,
	EDGE_BAD_HANDSHAKE_TIMEOUT = 19,
	EDGE_BAD_BAD_UPGRADE = 20,
	EDGE_BAD_COUNT_ = 21,
};

/* Why a session ended (the labels of <prefix>_closes_total). */
enum edge_close {
	EDGE_CLOSE_CLIENT = 0,            /* the client sent a WebSocket close */
	EDGE_CLOSE_DROPPED = 1,           /* the socket ended without a close handshake */
	EDGE_CLOSE_KICKED = 2,            /* a KICK was sent (any reason) */
	EDGE_CLOSE_PROTOCOL = 3,          /* bad framing, unknown package type, text frame */
	EDGE_CLOSE_HANDSHAKE_REFUSED = 4, /* handshake answered 500 */
	EDGE_CLOSE_HANDSHAKE_TIMEOUT = 5,
	EDGE_CLOSE_HEARTBEAT_TIMEOUT = 6,
	EDGE_CLOSE_SHUTDOWN = 7,     /* tn_edge_close */
	EDGE_CLOSE_IDLE_TIMEOUT = 8, /* nothing from the client for idleTimeout (no heartbeats) */
	EDGE_CLOSE_COUNT_ = 9,
};

#define EDGE_KICK_CACHE 16

struct edge_metrics {
	struct tn_gauge *connections; /* TCP connections held (bounded by max-connections) */
	struct tn_gauge *sessions;    /* WebSocket sessions, any protocol state */
	struct tn_counter *accepted, *refused;
	struct tn_counter *bad[EDGE_BAD_COUNT_];
	struct tn_counter *closes[EDGE_CLOSE_COUNT_];
	struct tn_counter *in_request, *in_notify, *out_response, *out_push;
	struct tn_counter *bytes_in, *bytes_out, *frames_out;
	struct tn_metric_family *kicks;
	struct {
		char *reason;
		struct tn_counter *c;
	} kick_cache[EDGE_KICK_CACHE];
	int n_kick_cache;
	struct tn_counter *kick_other;
};

/* Registers (or finds) every family under prefix and creates the children of every case,
 * so they render at zero from the start. */
void edge_metrics_init(struct edge_metrics *m, const char *prefix);
void edge_metrics_fini(struct edge_metrics *m);
/* The kick counter for a reason string from the code (never from a client). */
struct tn_counter *edge_metrics_kick(struct edge_metrics *m, const char *reason);
const char *edge_bad_name(enum edge_bad c);
const char *edge_close_name(enum edge_close c);

/* ---- sessions and the edge ---- */

/* A doubly linked list of sessions ordered by deadline (edge_deadline.c). */
struct edge_dlist {
	struct tn_edge_sess *head, *tail;
};

struct tn_edge_sess {
	struct tn_edge *e;
	struct lws *wsi; /* NULL once lws has closed the socket */
	uint64_t id;     /* also the key of e->sessions (8 bytes) */
	struct tn_pml_conn conn;
	void *data;
	char *host;

	/* Inbound: the WebSocket message being reassembled (only an incomplete package stays
	 * here between fragments; whole ones are fed at once). */
	struct tn_buf rx;
	bool in_message;
	size_t msg_len; /* bytes of the current message so far */

	/* Deadline list membership (edge_deadline.c). */
	struct edge_dlist *dl;
	struct tn_edge_sess *dl_prev, *dl_next;
	int64_t deadline;
	int64_t close_at;   /* when a closing session is dropped even if unflushed */
	int64_t last_rx_ms; /* the client's last package (the idle timeout counts from it) */

	/* Token bucket, in thousandths of a request. */
	int64_t tokens_milli;
	int64_t refill_ms;
	int refusals;    /* refused in a row */
	int pending;     /* requests handed to the service, not answered yet */
	uint32_t logged; /* bad-input cases already logged at info for this session */

	bool opened;      /* reached WORKING: on_open was called */
	bool notified;    /* on_close was called */
	bool closing;     /* no more input or service output; flush, then close */
	bool peer_closed; /* the client sent a WebSocket close */
	bool want_write;  /* lws_callback_on_writable is pending */
	enum lws_close_status close_status;
	const char *close_text;
};

struct edge_timer;

struct tn_edge {
	struct tn_edge_ops ops;
	void *arg;
	const struct tn_config *cfg;
	char *prefix;

	/* Routes: tag = index in opts->routes. */
	char **routes;
	bool *served;
	size_t nroutes;
	struct tn_map route_tags; /* route -> (void *)(tag + 1) */
	struct tn_pml_dict *dict;
	struct tn_pml_conn_config pml;
	struct tn_pml_conn_cbs pml_cbs;

	struct lws_context *ctx;
	struct lws_protocols protocols[2];
	struct lws_http_mount mount;
	char *web_root;
	char iface[INET6_ADDRSTRLEN + 64]; /* the bind address as lws wants it */
	int port;
	int listen_fds[TN_EDGE_MAX_LISTEN]; /* the port's listening sockets (lws owns them) */
	int n_listen_fds;

	struct tn_mailbox *mb;
	pthread_mutex_t wake_mu;
	struct lws_context *wake_ctx; /* NULL once the context is going away */
	atomic_bool stop;
	bool closed;

	int64_t idle_ms; /* idleTimeout when there are no heartbeats, else 0 */

	/* tn_edge_drain */
	bool draining;    /* the listener is closed and every session kicked */
	bool drain_fired; /* done has run (or is about to) */
	void (*drain_done)(void *arg);
	void *drain_arg;
	lws_sorted_usec_list_t drain_sul; /* the deadline, or at once when the last one left */

	struct tn_map sessions; /* id -> struct tn_edge_sess */
	size_t live;            /* TCP connections counted against max-connections */
	int64_t refused_warned_ms;

	struct edge_dlist hs_list, hb_list, close_list;
	lws_sorted_usec_list_t tick;
	int64_t tick_at_ms; /* INT64_MAX when not scheduled */
	struct edge_timer *timers;

	struct edge_metrics m;
	struct tn_buf scratch;
};

/* edge_sess.c: the lws callbacks of a WebSocket session. Each returns what the lws
 * callback must return (-1 closes the connection). */
int edge_sess_open(struct tn_edge *e, struct lws *wsi, struct tn_edge_sess **slot);
int edge_sess_receive(struct tn_edge_sess *s, const void *in, size_t len);
int edge_sess_writeable(struct tn_edge_sess *s);
void edge_sess_closed(struct tn_edge_sess *s);
/* tn_edge_close: tells the service (on_close), stops all output. */
void edge_sess_shutdown(struct tn_edge_sess *s);
/* tn_edge_drain: kicks the session with "server shutting down" (logged at debug only: a
 * drain kicks everyone). */
void edge_sess_drain(struct tn_edge_sess *s);
/* A drain's deadline passed with the session still open: tells the service (on_close)
 * and shuts its socket down, so that lws closes it at once. */
void edge_sess_drop(struct tn_edge_sess *s);
/* Frees a session lws never reported closed (after the context is gone). */
void edge_sess_free(struct tn_edge_sess *s);
/* The pml callbacks, installed in e->pml_cbs. */
void edge_sess_cbs_init(struct tn_pml_conn_cbs *cbs);
/* A deadline of this session passed (called by edge_deadline.c): its handshake,
 * heartbeat or idle deadline, or for a closing session the end of its grace. */
void edge_sess_timeout(struct tn_edge_sess *s, int64_t now_ms);

/* edge_deadline.c */
/* Re-files s after its deadline may have changed: the pml deadline (feed) or the idle
 * deadline (servers without heartbeats), or the close grace once it is closing. */
void edge_deadline_update(struct tn_edge_sess *s);
/* Takes s off its list (session going away). */
void edge_deadline_remove(struct tn_edge_sess *s);
/* Stops the tick timer (shutdown). */
void edge_deadline_stop(struct tn_edge *e);

/* edge_text.c */
/* Writes the host part of a Host header value (no port; an IPv6 literal keeps its
 * brackets, so that "ws://" + host + ":" + port is a valid URL) into out (cap bytes,
 * NUL-terminated). Returns false, leaving out "", when the value is not a plausible
 * host[:port]. */
bool edge_host_parse(char *out, size_t cap, const char *value, size_t len);
/* When json (len bytes) holds 4-byte UTF-8 sequences (which the pomelo browser client
 * decodes into garbage, protocol.md §6.4), appends a copy with each one written as a
 * \uD8xx\uDCxx escape pair to out and returns true; otherwise returns false and leaves
 * out alone. 4-byte sequences can only stand inside JSON strings, where the escape means
 * the same character. */
bool edge_utf8_escape(struct tn_buf *out, const char *json, size_t len);

#endif
