/* The registry (pomelo's master): the cluster's membership service.
 *
 * Servers register (id, type, bound and advertised addresses, pid, version, incarnation),
 * heartbeat with their load, and leave on shutdown; one silent for evict_after_ms is
 * evicted. Every change bumps the membership epoch, shows in the full snapshot that any
 * server may read, and (but for planned leaves, see registry_server.c) is announced on
 * the notice socket (nng PUB; hints only: every ACK carries the epoch). An id
 * registered live by another process (another incarnation) is refused with a message
 * naming the holder.
 *
 * A registry keeps nothing on disk, so after a start it cannot tell a fresh cluster from
 * one whose servers are re-registering after a restart. For quiet_ms it therefore
 * withholds its (still incomplete) membership from servers that hold one from elsewhere
 * (an earlier registry, a servers.json seed); servers that hold none, or one from this
 * registry, get it at once. At the end of the quiet period the epoch jumps past every
 * epoch the servers reported, and everyone reads the new membership, which by then lists
 * every live server again: a restart moves no room.
 *
 * Everything runs on one loop thread; nng callbacks only post to it. Protocol:
 * proto/registry.h. */
#ifndef TN_REGISTRY_SERVER_H
#define TN_REGISTRY_SERVER_H

#include "loop.h"
#include "topology.h"

struct tn_registry;

struct tn_registry_opts {
	const struct tn_server_info *self; /* the registry's own entry in snapshots (id, type,
	                                    * addresses, pid, version); copied */
	const char *rpc_url;     /* where requests are served, e.g. tcp://0.0.0.0:3005 */
	const char *notice_url;  /* where notices are published; a tcp port of 0 takes any
	                          * free port, which the ACKs announce */
	int evict_after_ms;      /* silence before a server is evicted */
	int quiet_ms;            /* the quiet period after the start (normally evict_after) */
};

/* Listens on both URLs; requests and timers run on loop (which must not be running yet,
 * or be running on another thread). Returns TN_EADDR when an address cannot be bound.
 * Main thread. */
int tn_registry_new(struct tn_registry **out, const struct tn_registry_opts *opts,
	struct tn_loop *loop);

/* Prepares the registry's sockets to close quietly: it stops announcing changes, tells
 * every server that asks that it is closing (they hold their requests for a while), and
 * returns once every registered server has been told and no request has come for
 * quiet_ms, or after max_ms. nng 1.5 can hang
 * closing a socket while a message arrives on it (nng issues 1543, 1813); servers
 * stopping at the same time get their leaves answered. Main thread, while the loop
 * runs. */
void tn_registry_drain(struct tn_registry *r, int quiet_ms, int max_ms);

/* The port notices are published on (the one bound when opts asked for 0), or 0 for a
 * non-tcp URL. Any thread. */
int tn_registry_notice_port(const struct tn_registry *r);

/* This registry's incarnation (unique per start). Any thread. */
uint64_t tn_registry_incarnation(const struct tn_registry *r);

/* The loop must have stopped and been closed. */
void tn_registry_free(struct tn_registry *r);

#endif
