/* What every service's main does around its own work: configuration, logging, the admin
 * port, the `ready` line, signals. Main thread. */
#ifndef TN_SERVICE_H
#define TN_SERVICE_H

#include <stdbool.h>

#include "admin.h"
#include "config.h"
#include "topology.h"

struct tn_service {
	struct tn_config cfg;
	struct tn_admin *admin;
	const char *name; /* "gate", "connector", ... */
};

/* Blocks the stop signals, loads the configuration, sets up logging and starts the admin
 * port. Returns -1 on success (carry on), otherwise the exit status main should return
 * (0 after --help; 2 after a bad configuration or an admin port that cannot be bound,
 * with one message on stderr naming the problem). */
int tn_service_init(struct tn_service *svc, enum tn_server_type type, int argc, char **argv);

/* Prints the one `ready` line (with the given key=value details) and marks /readyz ready. */
void tn_service_ready(struct tn_service *svc, const char *details);

/* Waits for SIGINT or SIGTERM; returns the signal's name for the log. */
const char *tn_service_wait(struct tn_service *svc);

/* The servers.json topology the server starts from (the registry's membership replaces
 * it), or an empty one when there is no file; `others` names what then comes from the
 * registry, for the log line. The caller owns the result. */
struct tn_topology *tn_service_seed_topology(const struct tn_service *svc, const char *others);

/* Bounds the rest of the shutdown: if the process has not exited ms from now (or by an
 * earlier bound already set), it logs a warning and exits 0 at once. nng 1.5.2 can
 * deadlock closing a socket while a peer is connecting or sending (upstream issues 1543,
 * 1813); by the time this is armed every client has been answered, kicked or flushed, so
 * all that is skipped is freeing memory. Call after the signal and again, tighter, once
 * the service's own drain is done. Main thread. */
void tn_service_exit_within(struct tn_service *svc, int ms);

/* Stops the admin port, releases the configuration and shuts nng down: call last, after
 * every nng socket is closed. */
void tn_service_fini(struct tn_service *svc);

#endif
