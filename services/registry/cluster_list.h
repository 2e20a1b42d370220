/* The cluster listing of `tern-admin list` (pomelo's `pomelo list`): the registry's
 * membership, one line per server with its id, type, state (up, or draining: shutting
 * down, owns no room), advertised addresses, pid, uptime, connections or rooms, memory and
 * messages per second. */
#ifndef TN_CLUSTER_LIST_H
#define TN_CLUSTER_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "topology.h"

/* Asks the registry at `registry` (host:port, or an nng URL such as inproc://x) for its
 * membership, waiting at most timeout_ms. On success *out is a new topology (free it with
 * tn_topology_free) and *recovering tells whether the registry is still in its quiet
 * period. Otherwise returns TN_ETIMEDOUT (no answer), TN_EINVAL (a bad address), or the
 * registry's refusal or a decoding error, with a message in err. Blocks the calling
 * thread. */
int tn_cluster_list_fetch(struct tn_topology **out, bool *recovering, const char *registry,
	int timeout_ms, char *err, size_t err_len);

/* Appends the listing as a table: a summary line, a header, one line per server in the
 * registry's order. */
void tn_cluster_list_table(struct tn_buf *out, const struct tn_topology *t, bool recovering);

/* Appends the listing as one JSON object: {"epoch", "registry_incarnation", "recovering",
 * "servers": [{"id", "type", "draining", "host", "port", ..., "msgs_per_s",
 * "rss_bytes"}]}. */
void tn_cluster_list_json(struct tn_buf *out, const struct tn_topology *t, bool recovering);

/* "1h02m", "5m12s", "12s": a duration for the table. */
void tn_cluster_list_duration(char *out, size_t len, uint64_t ms);

#endif
