/* The registry (pomelo's master): the cluster's membership service. This version binds its
 * RPC port and answers every request; membership kinds (register, heartbeat, leave,
 * snapshot) are added with the registry's protocol. Owned by one loop thread. */
#ifndef TN_REGISTRY_H
#define TN_REGISTRY_H

#include "config.h"
#include "loop.h"

struct tn_registry;

/* Listens on cfg's host:port; requests run on loop. Main thread. */
int tn_registry_new(struct tn_registry **out, const struct tn_config *cfg, struct tn_loop *loop);

/* The loop must have stopped and been closed. */
void tn_registry_free(struct tn_registry *r);

#endif
