/* tern-gate: tells clients which connector to use. See services/gate/gate.h. */
#include <pthread.h>
#include <stdio.h>

#include "gate.h"
#include "err.h"
#include "log.h"
#include "service.h"
#include "topology.h"

static void *
run_main(void *arg)
{
	tn_gate_run(arg);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct tn_service svc;
	int status = tn_service_init(&svc, TN_SERVER_GATE, argc, argv);
	if (status >= 0)
		return status;

	char err[512];
	struct tn_topology *topo = NULL;
	if (tn_topology_load_file(&topo, svc.cfg.config_path, svc.cfg.env, err, sizeof(err)) != TN_OK) {
		tn_warn("main", "no static topology, starting without connectors reason=\"%s\"", err);
		topo = tn_topology_new_empty();
	}
	struct tn_gate *gate = NULL;
	int rv = tn_gate_new(&gate, &svc.cfg, topo);
	if (rv) {
		tn_error("main", "cannot start client_port=%d-%d err=\"%s\"", svc.cfg.client_port_min,
			svc.cfg.client_port_max, tn_strerror(rv));
		tn_service_fini(&svc);
		return 1;
	}
	pthread_t thr;
	pthread_create(&thr, NULL, run_main, gate);
	char details[128];
	snprintf(details, sizeof(details), "client_port=%d", tn_gate_client_port(gate));
	tn_service_ready(&svc, details);

	const char *sig = tn_service_wait(&svc);
	tn_info("main", "stopping signal=%s", sig);
	tn_gate_stop(gate);
	pthread_join(thr, NULL);
	tn_gate_free(gate);
	tn_service_fini(&svc);
	tn_info("main", "stopped");
	return 0;
}
