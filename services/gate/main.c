/* tern-gate: tells clients which connector to use. See services/gate/gate.h. */
#include <pthread.h>
#include <stdio.h>

#include "clock.h"
#include "err.h"
#include "gate.h"
#include "log.h"
#include "membership.h"
#include "service.h"
#include "topology.h"

static void *
run_main(void *arg)
{
	tn_gate_run(arg);
	return NULL;
}

static void
on_topology(void *arg, struct tn_topology *topo)
{
	tn_gate_set_topology(arg, topo);
}

static void
on_load(void *arg, struct tn_server_load *out, uint64_t *messages)
{
	tn_gate_load(arg, out, messages);
}

int
main(int argc, char **argv)
{
	struct tn_service svc;
	int status = tn_service_init(&svc, TN_SERVER_GATE, argc, argv);
	if (status >= 0)
		return status;

	/* servers.json, when there is one, is only where the gate starts. */
	struct tn_topology *topo = tn_service_seed_topology(&svc, "connectors");
	struct tn_topology *start = tn_topology_copy(topo);
	struct tn_gate *gate = NULL;
	int rv = tn_gate_new(&gate, &svc.cfg, topo);
	if (rv) {
		tn_error("main", "cannot start client_port=%d-%d err=\"%s\"", svc.cfg.client_port_min,
			svc.cfg.client_port_max, tn_strerror(rv));
		tn_topology_free(start);
		tn_service_fini(&svc);
		return 1;
	}
	/* The gate follows the connectors' loads, so it re-reads the membership at every
	 * heartbeat. */
	struct tn_membership_opts mo = {.cfg = &svc.cfg, .client_port = tn_gate_client_port(gate),
		.seed = start, .owner = tn_gate_exec(gate), .on_topology = on_topology,
		.load = on_load, .arg = gate, .admin = svc.admin, .follow_load = true};
	pthread_t thr;
	pthread_create(&thr, NULL, run_main, gate);
	struct tn_membership *m = NULL;
	rv = tn_membership_start(&m, &mo);
	tn_topology_free(start);
	if (rv == TN_OK)
		tn_membership_wait_registered(m, svc.cfg.rpc_timeout_ms < 2000 ? svc.cfg.rpc_timeout_ms
										: 2000);
	else
		tn_error("main", "bad registry address registry=%s", svc.cfg.registry);
	char details[128];
	snprintf(details, sizeof(details), "client_port=%d", tn_gate_client_port(gate));
	tn_service_ready(&svc, details);
	if (m)
		tn_membership_serving(m);

	const char *sig = tn_service_wait(&svc);
	tn_service_exit_within(&svc, svc.cfg.drain_timeout_ms + 1500);
	/* The drain is bounded from the signal on, as the orchestrator's stop grace is. */
	int64_t deadline = tn_now_ms() + svc.cfg.drain_timeout_ms;
	tn_info("main", "stopping signal=%s drain_timeout_ms=%d", sig, svc.cfg.drain_timeout_ms);
	tn_membership_stop(m);
	tn_gate_drain(gate, deadline);
	pthread_join(thr, NULL);
	tn_service_exit_within(&svc, 3000); /* the drain is done: what is left is freeing */
	tn_gate_free(gate);
	tn_service_fini(&svc);
	tn_info("main", "stopped");
	return 0;
}
