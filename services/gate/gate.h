/* The gate: tells a client which connector to use (gate.gateHandler.queryEntry) and
 * serves the web chat page on the same port. Stateless. */
#ifndef TN_GATE_H
#define TN_GATE_H

#include <stddef.h>

#include "config.h"
#include "topology.h"

struct tn_gate;

/* Picks the connector for uid among topo's connectors (NULL when there is none). */
const struct tn_server_info *tn_gate_pick(const struct tn_topology *topo, enum tn_dispatch how,
	const char *uid, size_t uid_len);

/* Creates the gate on cfg's client port; takes over topo. Main thread. */
int tn_gate_new(struct tn_gate **out, const struct tn_config *cfg, struct tn_topology *topo);
int tn_gate_client_port(const struct tn_gate *g);
void tn_gate_run(struct tn_gate *g);
void tn_gate_stop(struct tn_gate *g);
void tn_gate_free(struct tn_gate *g);

#endif
