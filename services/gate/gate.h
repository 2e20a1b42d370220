/* The gate: tells a client which connector to use (gate.gateHandler.queryEntry) and
 * serves the web chat page on the same port. Stateless but for the membership it is
 * given: the live connectors with their loads (common/membership.h). Everything runs on
 * the edge's service thread. */
#ifndef TN_GATE_H
#define TN_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "topology.h"

struct tn_gate;

/* Picks the connector for uid among topo's connectors (NULL when there is none):
 *   TN_DISPATCH_LEAST_LOADED  the fewest connections as last reported; loads within a
 *                             tenth of the smallest (at least one) are a tie, broken by a
 *                             rendezvous hash of the uid, so a uid keeps its connector
 *                             while the loads are about even;
 *   TN_DISPATCH_HASH          a rendezvous hash of the uid over every connector;
 *   TN_DISPATCH_CRC32         pomelo's abs(crc32(uid)) % n, connectors in topology order.
 * Any thread (topo is only read). */
const struct tn_server_info *tn_gate_pick(const struct tn_topology *topo, enum tn_dispatch how,
	const char *uid, size_t uid_len);

/* Creates the gate on cfg's client port; takes over topo (the starting membership: a
 * seed, or empty). Main thread. */
int tn_gate_new(struct tn_gate **out, const struct tn_config *cfg, struct tn_topology *topo);

/* Replaces the membership (takes topo; the old one is freed). Owner thread. */
void tn_gate_set_topology(struct tn_gate *g, struct tn_topology *topo);

/* The gate's load for the registry: connections open, and queryEntry answers so far as
 * its messages. Owner thread. */
void tn_gate_load(struct tn_gate *g, struct tn_server_load *out, uint64_t *messages);

/* Posts tasks to the owner thread. Any thread. */
struct tn_exec tn_gate_exec(struct tn_gate *g);

/* The client port actually bound. */
int tn_gate_client_port(const struct tn_gate *g);

/* Runs until tn_gate_stop; the calling thread becomes the owner thread. */
void tn_gate_run(struct tn_gate *g);

/* Makes tn_gate_run return soon. Any thread. */
void tn_gate_stop(struct tn_gate *g);

/* Drains for a graceful stop (SIGTERM), then makes tn_gate_run return: the client port
 * stops accepting, every session is kicked with "server shutting down" and closes, by
 * deadline_ms (tn_now_ms clock) at the latest. Any thread, once. */
void tn_gate_drain(struct tn_gate *g, int64_t deadline_ms);

/* After run has returned. */
void tn_gate_free(struct tn_gate *g);

#endif
