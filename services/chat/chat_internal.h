/* What chat_server.c (requests, pushes, streams) and moves.c (room ownership, hand-offs,
 * claims, crash recovery) share. Everything here runs on the chat server's loop thread. */
#ifndef TN_CHAT_INTERNAL_H
#define TN_CHAT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "hook.h"
#include "chat_server.h"
#include "map.h"
#include "metrics.h"
#include "proto.h"
#include "room.h"
#include "rpc.h"
#include "stream.h"

/* Another chat server, for claims and hand-offs. */
struct chat_peer {
	char *id;
	char url[300];
	struct tn_rpc_client *rpc; /* NULL once closed */
	bool live;                 /* in the current membership */
};

/* A chat server that left the membership: until every live connector has re-registered
 * its members of the rooms that server owned (or one eviction period has passed), those
 * rooms are rebuilt and answer TN_ERECOVERING. */
struct chat_lost {
	struct chat_lost *next;
	char *id;
	uint64_t epoch;          /* the epoch that no longer had it */
	int64_t until_ms;        /* recovery ends at the latest then */
	int64_t since_ms;
	struct tn_topology *with; /* the ownership view with it still there */
	struct tn_map confirmed; /* connector id -> the id (a copy, freed with the entry) */
};

struct tn_chat {
	const struct tn_config *cfg;
	struct tn_topology *topo;
	struct tn_topology *view; /* topo with the draining marks this server knows of */
	struct tn_loop *loop;
	struct tn_rpc_server *rpc;
	struct tn_stream *streams;
	int n_streams;
	bool *stream_closed;     /* its connector left the membership: socket closed, slot kept */
	int64_t *stream_leaving; /* its connector left: members go once its pipe is down or
	                          * at this time (0: not leaving) */
	uint64_t inc;            /* this process's incarnation */
	struct tn_rooms rooms;
	struct pending_enter *pending;
	bool flush_posted;
	bool stopping;        /* tn_chat_stop ran: no more position ticks */
	struct held_reply **held_replies; /* answers waiting for the next flush */
	size_t n_held_replies, cap_held_replies;
	struct tn_buf scratch; /* reply and body encoding */
	struct tn_buf body;

	/* Room moves (moves.c). */
	struct chat_peer *peers;
	int n_peers;
	struct tn_map claims; /* rid -> struct claim: asking the other servers for a room */
	struct tn_map tombs;  /* rid -> struct tomb: handed over, not yet acknowledged */
	struct chat_lost *lost;
	char **draining_ids;  /* servers known to drain (from their hand-offs) */
	int n_draining_ids;
	bool draining;        /* this server drains: it owns nothing any more */
	uint64_t xfer_seq;
	uint64_t last_gen;    /* the last room generation handed out */
	struct tn_hook refresh; /* asks the membership client for a fresh snapshot */
	pthread_mutex_t drain_mu;
	pthread_cond_t drain_cv;
	bool drain_done;
	size_t drain_left;    /* rooms held plus hand-offs unacknowledged, as last counted */

	struct tn_counter *req_enter, *req_leave, *req_send, *req_bad;
	struct tn_counter *rejected_dup, *rejected_absent;
	struct tn_counter *req_fetch, *fetch_ok, *fetch_gone, *conn_restarts, *conn_lost;
	struct tn_counter *moved, *recovering, *claims_sent, *rooms_in, *rooms_out,
		*rooms_rebuilt, *recoveries, *recoveries_timed_out;
	struct tn_gauge *g_rooms, *g_members;
	struct tn_histogram *handle_seconds;
};

/* ---- chat_server.c ---- */

/* Answers req with a reply carrying code, reason and this server's epoch. */
void chat_reply_code(struct tn_chat *c, struct tn_rpc_req *req, int code, const char *reason);

/* The stream of connector conn_id, or -1 (also when it is closed). */
int chat_stream_of(struct tn_chat *c, struct tn_str conn_id);

/* The stream slot of connector conn_id, open or closed, or -1 (never known). */
int chat_stream_slot(struct tn_chat *c, struct tn_str conn_id);

/* Widens room's per-stream counts to every stream there is. */
void chat_room_fit(struct tn_chat *c, struct tn_room *room);

/* A new room generation (see proto/push.h): larger than any this server gave before,
 * and, clocks allowing, than any given before on another server. */
uint64_t chat_room_gen(struct tn_chat *c);

/* Sends every stream's pending batch now. */
void chat_flush_all(struct tn_chat *c);

void chat_update_gauges(struct tn_chat *c);

/* Runs a connector request (enter, leave, send) again, as if it had just arrived: used
 * for requests that waited for a room to arrive. */
void chat_dispatch(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len);

/* ---- moves.c ---- */

void chat_moves_init(struct tn_chat *c);
void chat_moves_fini(struct tn_chat *c);

/* Decides whether a connector request for room rid may run here now: true when this
 * server holds the room, active (*room is set), or owns it and it is new (*room NULL:
 * the caller creates it). Otherwise the request has been answered (TN_EMOVED,
 * TN_ERECOVERING) or queued until the room arrives, and false is returned. */
bool chat_room_route(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data,
	size_t len, uint64_t epoch, struct tn_str rid, struct tn_room **room);

/* Handlers of the chat-to-chat and recovery requests (moves.h). */
void chat_handle_state(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data,
	size_t len);
void chat_handle_claim(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data,
	size_t len);
void chat_handle_rejoin(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data,
	size_t len);

/* The membership changed (c->topo is the new one; old is the previous, freed by the
 * caller afterwards): follows peers, notes lost servers, hands over the rooms this
 * server no longer owns. */
void chat_moves_topology(struct tn_chat *c, const struct tn_topology *old);

/* Periodic work: ends recoveries whose time is up, retries hand-offs. */
void chat_moves_tick(struct tn_chat *c);

/* Starts handing every room over (SIGTERM). */
void chat_moves_drain(struct tn_chat *c);

#endif
