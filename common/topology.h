/* The servers of the cluster as this server knows them: from the registry's snapshots
 * (common/membership.h), or from config/servers.json as a seed until the registry
 * answers. Immutable once built: a new membership is a new struct, swapped in by the
 * owner thread. Nothing here is thread-safe; a built topology may be read by any number
 * of threads at once. */
#ifndef TN_TOPOLOGY_H
#define TN_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* A server's load as it last reported it (all zero for a seed entry). */
struct tn_server_load {
	uint64_t connections; /* frontends: client connections open */
	uint64_t sessions;    /* connector: sessions past the handshake */
	uint64_t rooms;       /* chat: rooms owned */
	uint64_t members;     /* chat: memberships held */
	uint64_t msgs_milli;  /* messages per second x 1000 */
	uint64_t rss_bytes;   /* resident memory */
	uint64_t uptime_ms;   /* since the process started */
};

struct tn_server_info {
	char *id;
	enum tn_server_type type;
	char *host;        /* advertised internal host */
	int port;          /* chat/registry: RPC; connector: push listener */
	char *client_host; /* frontends: advertised client host ("" = as reached) */
	int client_port;   /* frontends: advertised client port */
	int admin_port;
	uint64_t seed;     /* tn_hash_server_seed(id), for rendezvous */
	/* What the registry knows besides (a seed file gives what it says, the rest is
	 * empty or 0). Strings are never NULL. */
	char *bind_host;        /* address the internal port binds */
	char *client_bind_host; /* address the client port binds */
	char *admin_host;       /* address the admin port binds */
	int pid;
	char *version;
	uint64_t incarnation;   /* unique per process start; 0 when unknown */
	struct tn_server_load load;
	bool draining;          /* shutting down: still serving, but no longer chosen as a
	                         * room's owner (false for a seed entry) */
};

struct tn_topology {
	uint64_t version;      /* the membership epoch (a seed file: 1, empty: 0) */
	uint64_t registry_inc; /* the registry incarnation it came from (0: not a registry's) */
	struct tn_server_info *servers;
	size_t n;
};

/* Reads every server of environment env from a servers.json file. For a client port
 * range the first port is advertised. */
int tn_topology_load_file(struct tn_topology **out, const char *path, const char *env, char *err,
	size_t err_len);

/* An empty topology (version 0). */
struct tn_topology *tn_topology_new_empty(void);

/* A deep copy of t. */
struct tn_topology *tn_topology_copy(const struct tn_topology *t);

void tn_topology_free(struct tn_topology *t);

/* Appends a deep copy of s (NULL strings are taken as ""); the seed is computed from the
 * id. For building a topology, before it is shared. */
void tn_topology_add(struct tn_topology *t, const struct tn_server_info *s);

/* Sorts the servers by type, then by id in natural order ("chat-2" before "chat-10"), so
 * that every server that builds the same membership lists it in the same order (pomelo's
 * crc32 % n choices depend on it). */
void tn_topology_sort(struct tn_topology *t);

/* Natural order of server ids: runs of digits compare as numbers. strcmp-like result. */
int tn_server_id_cmp(const char *a, const char *b);

/* Deep copy of src into dst (dst's previous contents are not freed). */
void tn_server_info_copy(struct tn_server_info *dst, const struct tn_server_info *src);

/* Frees the strings of s (not s itself). */
void tn_server_info_fini(struct tn_server_info *s);

/* Fills ids (capacity cap) with the servers of one type, in file order; returns how many
 * there are (possibly more than cap). */
size_t tn_topology_of_type(const struct tn_topology *t, enum tn_server_type type,
	const struct tn_server_info **out, size_t cap);

/* The server with this id, or NULL. */
const struct tn_server_info *tn_topology_find(const struct tn_topology *t, const char *id);

/* True when a and b are the same process at the same addresses: same id and type, same
 * advertised addresses, and the same incarnation when both know it. */
bool tn_server_info_same(const struct tn_server_info *a, const struct tn_server_info *b);

/* How many servers of a have no counterpart in b (tn_server_info_same): with a the new
 * membership and b the old one, the servers that joined; the other way round, those that
 * left. */
size_t tn_topology_missing(const struct tn_topology *a, const struct tn_topology *b);

/* The owner of a room among the chat servers that are not draining: rendezvous (or
 * pomelo's crc32 % n over those chat servers in file order). When every chat server is
 * draining, among all of them, so that a room has an owner while any chat server exists.
 * NULL when there is no chat server. The result points into t. Any thread. */
const struct tn_server_info *tn_topology_room_owner(const struct tn_topology *t, const char *rid,
	size_t rid_len, enum tn_room_hash how);

/* A new topology (free it with tn_topology_free): a deep copy of t with a deep copy of s
 * added, or replacing the entry with s's id, sorted as tn_topology_sort sorts. Version
 * and registry_inc are t's. For asking who owned a room while server s was still in the
 * membership. t and s are borrowed. Any thread. */
struct tn_topology *tn_topology_with(const struct tn_topology *t, const struct tn_server_info *s);

#endif
