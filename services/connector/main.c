/* tern-connector: holds client sessions. See services/connector/connector.h. */
#include <pthread.h>
#include <stdio.h>

#include "clock.h"
#include "connector.h"
#include "err.h"
#include "log.h"
#include "membership.h"
#include "service.h"
#include "topology.h"

static void *
run_main(void *arg)
{
	tn_connector_run(arg);
	return NULL;
}

static void
on_topology(void *arg, struct tn_topology *topo)
{
	tn_connector_set_topology(arg, topo);
}

static void
on_refresh(void *arg)
{
	tn_membership_refresh(arg);
}

static void
on_load(void *arg, struct tn_server_load *out, uint64_t *messages)
{
	tn_connector_load(arg, out, messages);
}

int
main(int argc, char **argv)
{
	struct tn_service svc;
	int status = tn_service_init(&svc, TN_SERVER_CONNECTOR, argc, argv);
	if (status >= 0)
		return status;

	struct tn_topology *topo = tn_service_seed_topology(&svc, "chat servers");
	/* servers.json, when there is one, is only where the server starts. */
	struct tn_topology *seed = tn_topology_copy(topo);
	struct tn_connector *conn = NULL;
	int rv = tn_connector_new(&conn, &svc.cfg, topo);
	if (rv) {
		tn_error("main", "cannot start client_port=%d-%d port=%d err=\"%s\"",
			svc.cfg.client_port_min, svc.cfg.client_port_max, svc.cfg.port, tn_strerror(rv));
		tn_topology_free(seed);
		tn_service_fini(&svc);
		return 1;
	}
	pthread_t thr;
	pthread_create(&thr, NULL, run_main, conn);
	/* Registered with the client port actually bound (the first free one of a range). */
	struct tn_membership_opts mo = {.cfg = &svc.cfg,
		.client_port = tn_connector_client_port(conn), .seed = seed,
		.owner = tn_connector_exec(conn), .on_topology = on_topology, .load = on_load,
		.arg = conn, .admin = svc.admin};
	struct tn_membership *m = NULL;
	rv = tn_membership_start(&m, &mo);
	tn_topology_free(seed);
	if (rv == TN_OK)
		tn_connector_set_refresh(conn, on_refresh, m);
	if (rv == TN_OK)
		tn_membership_wait_registered(m, svc.cfg.rpc_timeout_ms < 2000 ? svc.cfg.rpc_timeout_ms
										: 2000);
	else
		tn_error("main", "bad registry address registry=%s", svc.cfg.registry);
	char details[128];
	snprintf(details, sizeof(details), "client_port=%d port=%d",
		tn_connector_client_port(conn), svc.cfg.port);
	tn_service_ready(&svc, details);
	if (m)
		tn_membership_serving(m);

	const char *sig = tn_service_wait(&svc);
	tn_service_exit_within(&svc, svc.cfg.drain_timeout_ms + 1500);
	/* The drain is bounded from the signal on, as the orchestrator's stop grace is. */
	int64_t deadline = tn_now_ms() + svc.cfg.drain_timeout_ms;
	tn_info("main", "stopping signal=%s drain_timeout_ms=%d", sig, svc.cfg.drain_timeout_ms);
	/* design.md §7: out of the registry first (the gate stops sending clients here; the
	 * chat servers keep this connector's members until its push pipe goes down, so the
	 * LEAVEs of the kicked sessions still work), then stop accepting, kick, flush, and
	 * leave the rooms. */
	tn_connector_set_refresh(conn, NULL, NULL);
	tn_membership_stop(m);
	tn_connector_drain(conn, deadline);
	pthread_join(thr, NULL);
	tn_service_exit_within(&svc, 3000); /* the drain is done: what is left is freeing */
	tn_connector_free(conn);
	tn_service_fini(&svc);
	tn_info("main", "stopped");
	return 0;
}
