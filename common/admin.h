/* The admin HTTP port every server exposes, served by nng's HTTP server (nng 1.5.2
 * supplemental/http), whose handlers run on nng's threads:
 *   GET /metrics  200, "text/plain; version=0.0.4; charset=utf-8", tn_metrics_render()
 *   GET /healthz  200 "ok\n" while the process is alive
 *   GET /readyz   200 "ready\n" once tn_admin_set_ready(a, true, ...), otherwise
 *                 503 with the reason the service set and a newline ("starting" at first)
 * HEAD works on the same paths (nng derives it from GET); any other method on them is
 * 405, and any other path is 404 (nng's HTML error page). A GET with a body is 400. */
#ifndef TN_ADMIN_H
#define TN_ADMIN_H

#include <stdbool.h>

struct tn_admin;

/* Longest readiness reason kept (longer ones are cut). */
#define TN_ADMIN_REASON_MAX 127

/* Starts serving on host:port (host NULL or "" = all IPv4 interfaces; an IPv6 literal may
 * be given without brackets). port 0 means the admin port is disabled: returns TN_OK and
 * sets *out to NULL, and the other functions accept that NULL. On success *out is a new
 * server, not ready, that the caller releases with tn_admin_stop.
 * Returns TN_EINVAL for a port outside 0..65535 or an unusable host, TN_EADDR when the
 * address is in use or cannot be bound, TN_EIO for other nng failures; the caller prints
 * the message (tn_strerror) with the address. *out is written only on success. Main
 * thread at start-up. */
int tn_admin_start(struct tn_admin **out, const char *host, int port);

/* The port being served (0 for a NULL admin). Any thread. */
int tn_admin_port(const struct tn_admin *a);

/* Sets what /readyz answers. reason (copied, newlines turned into spaces, NULL = "not
 * ready") is shown only while not ready. a may be NULL (no-op). Any thread. */
void tn_admin_set_ready(struct tn_admin *a, bool ready, const char *reason);

/* Stops serving, closes the open connections and frees a; when it returns no handler is
 * running any more, so a module may then free what its metrics collectors use. a may be
 * NULL. Call it from a thread of the service, never from an nng callback or a metrics
 * collector. */
void tn_admin_stop(struct tn_admin *a);

#endif
