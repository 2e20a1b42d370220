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

/* Stops listening and frees everything. The loop must have stopped and been closed
 * (tn_loop_close). */
void tn_chat_free(struct tn_chat *c);

#endif
