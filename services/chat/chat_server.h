/* The chat server: owns rooms, orders their messages, and publishes one push message per
 * connector that hosts members of a room. All state is owned by one loop thread; nng
 * callbacks only post to it. */
#ifndef TN_CHAT_SERVER_H
#define TN_CHAT_SERVER_H

#include "config.h"
#include "loop.h"
#include "topology.h"

struct tn_chat;

/* Creates the server: opens one push stream per connector of topo (dialing its push
 * listener) and listens for RPC on cfg's host:port. Results and requests run on loop.
 * Takes ownership of topo. Main thread, before the loop runs. */
int tn_chat_new(struct tn_chat **out, const struct tn_config *cfg, struct tn_topology *topo,
	struct tn_loop *loop);

/* Replaces the membership (takes topo; the old one is freed): opens a push stream to each
 * connector that joined (or moved), closes the streams of those that left. Loop thread. */
void tn_chat_set_topology(struct tn_chat *c, struct tn_topology *topo);

/* This server's load for the registry: rooms and memberships held, and the requests
 * handled so far as its messages. Loop thread. */
void tn_chat_load(struct tn_chat *c, struct tn_server_load *out, uint64_t *messages);

/* Sets the function that asks the membership client for a fresh snapshot (a peer or a
 * connector showed a newer epoch). fn runs on the loop thread under a lock
 * and must not block; NULL clears it (done before the membership client is freed). Any
 * thread. */
void tn_chat_set_refresh(struct tn_chat *c, void (*fn)(void *arg), void *arg);

/* Drains (SIGTERM): from now on this server owns no room; it hands every room it holds to
 * the room's new owner and keeps serving what still comes to it (answering TN_EMOVED for
 * rooms gone). Blocks until every hand-off is acknowledged or deadline_ms (tn_now_ms
 * clock) passes; returns the number of rooms still here or unacknowledged. Main thread,
 * with the loop running. */
size_t tn_chat_drain(struct tn_chat *c, int64_t deadline_ms);

/* Stops the loop gracefully (SIGTERM): after the requests already queued have run, flushes
 * every push stream, keeps serving for a short linger (at most drainTimeout) so that nng
 * hands the last batches to the network, flushes again and stops the loop (tn_loop_run
 * returns). Pushes for requests answered before the stop are not lost. Any thread. */
void tn_chat_stop(struct tn_chat *c);

/* Stops listening and frees everything. The loop must have stopped and been closed
 * (tn_loop_close). */
void tn_chat_free(struct tn_chat *c);

#endif
