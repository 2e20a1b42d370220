/* What the connector's files share: its state and the functions one file calls in
 * another. connector.c: sessions, requests to chat servers, life cycle; push_in.c: push
 * streams from the chat servers, gaps, per-room order; rejoin.c: re-registering members
 * after a chat server is lost. Everything runs on the owner thread (the edge's service
 * thread) unless it says otherwise. */
#ifndef TN_CONNECTOR_INTERNAL_H
#define TN_CONNECTOR_INTERNAL_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "connector.h"
#include "edge.h"
#include "filter.h"
#include "hook.h"
#include "map.h"
#include "metrics.h"
#include "push.h"
#include "room_order.h"
#include "rpc.h"
#include "topology.h"

#define MAX_NAME 64
#define MAX_RID 128
#define MAX_ROOMS_PER_SESSION 16
#define PUSH_RECVBUF 8192
#define PUSH_MAX_MSG (16u << 20)
/* Batches held behind a gap while its items are fetched; past this, recovery gives up. */
#define PUSH_HOLD_MAX 4096
/* While draining, how often the calls to chat servers still in flight are counted. */
#define DRAIN_POLL_MS 10

struct chat_target {
	const struct tn_server_info *info; /* in c->topo; NULL once it left the membership */
	struct tn_rpc_client *rpc;         /* NULL once closed (a slot free for reuse) */
	char *id;
	char url[300];
};

/* What the connector knows of a push stream from one chat server. */
struct stream_in {
	char *chat_id;
	uint64_t chat_inc;
	uint64_t next_seq;  /* the next item expected */
	bool fetching;      /* a gap is being fetched: later batches wait in held */
	uint64_t fetch_from, fetch_to;
	nng_msg **held;
	size_t n_held, cap_held;
};

struct tn_connector {
	const struct tn_config *cfg;
	struct tn_topology *topo;
	struct tn_edge *edge;
	struct chat_target *chats;
	int n_chats;
	nng_socket sub;
	nng_aio *sub_aio;
	struct tn_map streams; /* chat_id -> struct stream_in */
	struct tn_map sessions; /* sid (8 bytes) -> struct csess */
	uint64_t inc;           /* this process's incarnation */
	struct tn_filters filters;
	struct tn_abuse_filter *abuse;
	struct tn_buf scratch;
	struct tn_buf json;
	struct tn_gauge *g_sessions;
	struct tn_counter *push_msgs, *push_items, *deliveries, *push_gaps, *push_resets,
		*push_bad, *push_orphans, *push_stale, *push_recovered, *push_unrecoverable,
		*push_duplicates;
	struct tn_counter *rpc_timeout, *rpc_busy, *rpc_other;
	struct tn_histogram *rpc_seconds;
	int64_t drain_deadline; /* tn_connector_drain: when the process must be on its way out */
	struct call *waiting;   /* calls waiting to be tried again (a room moving) */
	int n_waiting;
	struct rejoin *rejoins; /* lost chat servers whose rooms' members are re-registered */
	struct tn_hook refresh; /* asks the membership client for a fresh snapshot */
	struct tn_counter *retries_moved, *retries_recovering, *retries_unreachable,
		*rejoin_members;
	struct tn_room_orders orders; /* each room's broadcasts in order, across moves */
	uint64_t orders_seen[3];      /* held, duplicates, gaps given up: already counted */
	struct tn_counter *push_held, *push_room_duplicates, *push_room_gaps;
};

struct csess {
	struct tn_connector *c;
	struct tn_edge_sess *s;
	uint64_t sid;
	char *name; /* bound by the first successful enter */
	char *rooms[MAX_ROOMS_PER_SESSION];
	int n_rooms;
	int entering; /* enters in flight */
	bool kicked;  /* a kick is on its way; the session closes soon */
};

enum call_kind {
	CALL_ENTER = 0,
	CALL_SEND = 1,
	CALL_LEAVE = 2,
};

struct call {
	struct tn_connector *c;
	struct call *prev, *next; /* in c->waiting while it waits to be tried again */
	enum call_kind kind;
	uint64_t sid;
	uint32_t req_id; /* the client's request id; 0 for a notify or an internal call */
	int chat;        /* index in c->chats */
	char *name, *rid;
	char *target, *content; /* SEND */
	size_t target_len, content_len;
	int64_t t0_us;
	int64_t deadline_ms; /* the whole call, retries included */
	int tries;
	int last_err;            /* why the last try did not go through (for the answer) */
	struct tn_filter_ctx fc; /* for the after-filters */
};

/* ---- connector.c ---- */

/* The index in c->chats of the owner of room rid, or -1. */
int conn_chat_for_room(struct tn_connector *c, const char *rid, size_t len);

/* Asks the membership client for a fresh membership (at most every 50 ms). */
void conn_want_refresh(struct tn_connector *c);

/* ---- push_in.c ---- */

/* Listens for the chat servers' push streams on the connector's internal port. */
int conn_push_listen(struct tn_connector *c);

/* tn_room_orders' delivery: queues one push to each local session of sids. */
void conn_deliver_to(void *arg, const char *route, struct tn_str body, struct tn_u64_iter sids);

/* Kicks every local session in room rid with "missed messages" (arg: the connector). */
void conn_kick_room(void *arg, const char *rid);

/* Frees a stream's state and the batches it holds. */
void conn_stream_free(struct stream_in *st);

/* ---- rejoin.c ---- */

/* The membership changed from old to c->topo: starts re-registering the members of the
 * rooms of every chat server lost, and recomputes the jobs already running. */
void conn_rejoin_topology(struct tn_connector *c, const struct tn_topology *old);

/* Runs the jobs whose retry time has come (from the housekeeping tick). */
void conn_rejoin_retry_due(struct tn_connector *c);

/* Frees every job (at shutdown; answers still due are dropped). */
void conn_rejoins_free(struct tn_connector *c);

#endif
