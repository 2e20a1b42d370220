/* The servers of the cluster as this server knows them: from config/servers.json now, and
 * from the registry's snapshots when it runs (same structure, newer version). Immutable
 * once built: a new membership is a new struct, swapped in by the owner thread. */
#ifndef TN_TOPOLOGY_H
#define TN_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct tn_server_info {
	char *id;
	enum tn_server_type type;
	char *host;        /* advertised internal host */
	int port;          /* chat/registry: RPC; connector: push listener */
	char *client_host; /* frontends: advertised client host ("" = as reached) */
	int client_port;   /* frontends: advertised client port */
	int admin_port;
	uint64_t seed;     /* tn_hash_server_seed(id), for rendezvous */
};

struct tn_topology {
	uint64_t version;
	struct tn_server_info *servers;
	size_t n;
};

/* Reads every server of environment env from a servers.json file. For a client port
 * range the first port is advertised. */
int tn_topology_load_file(struct tn_topology **out, const char *path, const char *env, char *err,
	size_t err_len);

/* An empty topology (version 0). */
struct tn_topology *tn_topology_new_empty(void);

void tn_topology_free(struct tn_topology *t);

/* Fills ids (capacity cap) with the servers of one type, in file order; returns how many
 * there are (possibly more than cap). */
size_t tn_topology_of_type(const struct tn_topology *t, enum tn_server_type type,
	const struct tn_server_info **out, size_t cap);

/* The server with this id, or NULL. */
const struct tn_server_info *tn_topology_find(const struct tn_topology *t, const char *id);

/* The owner of a room among the chat servers: rendezvous (or pomelo's crc32 % n over the
 * chat servers in file order). NULL when there is no chat server. */
const struct tn_server_info *tn_topology_room_owner(const struct tn_topology *t, const char *rid,
	size_t rid_len, enum tn_room_hash how);

#endif
