/* The membership client every server but the registry runs (pomelo's monitor): it
 * registers this server with the registry, heartbeats with its load, follows the
 * registry's change notices, re-reads the full membership when it sees a newer epoch, and
 * hands each new membership (a struct tn_topology) to the server's owner thread. It
 * leaves the registry on shutdown; a chat server first announces that it is draining.
 *
 * It runs on a thread of its own with its own timer, so heartbeats keep going however
 * busy the owner thread is; the owner is only asked, once per heartbeat, for its load
 * numbers (a task posted through its executor; a busy owner just means an older sample).
 *
 * The registry's address is all it needs (cfg->registry); the notice port comes with the
 * registry's first answer. While the registry is unreachable the server keeps its last
 * membership (or its seed), and re-registers when the registry is back. /readyz answers
 * 200 while this server is registered and serving. Protocol: proto/registry.h. */
#ifndef TN_MEMBERSHIP_H
#define TN_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "admin.h"
#include "config.h"
#include "loop.h"
#include "registry.h"
#include "topology.h"

struct tn_membership;

/* A new membership for the owner thread, which takes ownership of topo. Runs on the
 * owner thread, through the executor given at start. */
typedef void (*tn_membership_topology_fn)(void *arg, struct tn_topology *topo);

/* Fills what the server counts itself (connections, sessions, rooms, members) into out,
 * which comes zeroed, and the total of messages it has handled so far into *messages
 * (the client turns that into a rate). Runs on the owner thread. */
typedef void (*tn_membership_load_fn)(void *arg, struct tn_server_load *out,
	uint64_t *messages);

struct tn_membership_opts {
	const struct tn_config *cfg; /* id, type, addresses, registry, heartbeat interval,
	                              * rpc timeout; borrowed until tn_membership_stop */
	int client_port;             /* the client port actually bound (frontends), else 0 */
	const struct tn_topology *seed; /* the membership the server starts with (copied);
	                                 * NULL: none */
	struct tn_exec owner;        /* the owner thread's executor */
	tn_membership_topology_fn on_topology;
	tn_membership_load_fn load;  /* NULL: report no load numbers */
	void *arg;                   /* for on_topology and load */
	struct tn_admin *admin;      /* whose /readyz follows registration; NULL: none */
	bool follow_load;            /* re-read the membership at every heartbeat for fresh
	                              * loads, even when the epoch did not change (the gate) */
	const char *registry_url;    /* NULL: tcp://<cfg->registry>; tests: inproc://... */
	const char *notice_url;      /* NULL: tcp://<registry host>:<port the registry gave> */
};

/* Starts the client thread, which registers at once. Returns TN_OK (and *out) or
 * TN_EINVAL for a registry address that makes no URL. opts is copied; what it points to
 * is borrowed until tn_membership_stop. Main thread. */
int tn_membership_start(struct tn_membership **out, const struct tn_membership_opts *opts);

/* Waits until the first registration attempt has an outcome (registered, refused, or
 * the registry did not answer) or timeout_ms passes. Returns true when registered. Lets
 * a server print its `ready` line after registering when the registry is up, without
 * waiting long when it is not. Main thread. */
bool tn_membership_wait_registered(struct tn_membership *m, int timeout_ms);

/* The service is serving (call right after tn_service_ready, which marks /readyz ready
 * unconditionally): from now on /readyz says ready exactly while this server is
 * registered. Any thread. */
void tn_membership_serving(struct tn_membership *m);

/* This server is shutting down: from now on every heartbeat and registration says it is
 * draining, so that the registry marks it draining (sticky for this registration) and it
 * stops being chosen as any room's owner while it still serves. Sends one heartbeat at
 * once instead of at the next interval (after a request already on the wire, and not
 * while a closing registry asks for silence). The membership with this server draining
 * arrives through on_topology like any other. Idempotent. Any thread, until
 * tn_membership_stop. */
void tn_membership_set_draining(struct tn_membership *m);

/* Asks the client thread to re-read the registry's snapshot soon, e.g. when a peer showed
 * a newer epoch than this server holds. Cheap and coalesced: calls while one is pending
 * make one read; calls while a read is on the wire make one more after it. A newer
 * membership arrives through on_topology; an unregistered server reads once it has
 * registered. Any thread, until tn_membership_stop. */
void tn_membership_refresh(struct tn_membership *m);

/* This process's incarnation as registered. Any thread. */
uint64_t tn_membership_incarnation(const struct tn_membership *m);

/* Leaves the registry (waiting at most the call deadline for its answer, and not at all
 * when it is unreachable), stops the thread and frees m. Tasks already posted to the
 * owner stay valid: they run, or run cancelled, after this returns. Main thread. */
void tn_membership_stop(struct tn_membership *m);

/* ---- conversions shared with the registry and the admin command ---- */

/* A view of info in the registry's wire form; the strings are borrowed from info. */
void tn_membership_server_view(struct tn_reg_server *out, const struct tn_server_info *info);

/* Fills *out (strings copied; release with tn_server_info_fini) from a server as the
 * registry sent it. Returns false, writing nothing, for a server type this build does not
 * know (a newer peer's), which callers skip. */
bool tn_membership_server_from(struct tn_server_info *out, const struct tn_reg_server *in);

/* Decodes a TN_KIND_REG_SNAPSHOT into a new topology (version = epoch, registry_inc) in
 * the registry's order, and whether the registry was still in its quiet period. Servers
 * of unknown types are left out. Returns the decoder's error otherwise. Any thread. */
int tn_membership_decode_snapshot(struct tn_topology **out, bool *recovering, const void *data,
	size_t len);

#endif
