/* tern-connector: holds client sessions. See services/connector/connector.h. */
#include <pthread.h>
#include <stdio.h>

#include "connector.h"
#include "err.h"
#include "log.h"
#include "service.h"
#include "topology.h"

static void *
run_main(void *arg)
{
	tn_connector_run(arg);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct tn_service svc;
	int status = tn_service_init(&svc, TN_SERVER_CONNECTOR, argc, argv);
	if (status >= 0)
		return status;

	char err[512];
	struct tn_topology *topo = NULL;
	if (tn_topology_load_file(&topo, svc.cfg.config_path, svc.cfg.env, err, sizeof(err)) != TN_OK) {
		tn_warn("main", "no static topology, starting without chat servers reason=\"%s\"", err);
		topo = tn_topology_new_empty();
	}
	struct tn_connector *conn = NULL;
	int rv = tn_connector_new(&conn, &svc.cfg, topo);
	if (rv) {
		tn_error("main", "cannot start client_port=%d-%d port=%d err=\"%s\"",
			svc.cfg.client_port_min, svc.cfg.client_port_max, svc.cfg.port, tn_strerror(rv));
		tn_service_fini(&svc);
		return 1;
	}
	pthread_t thr;
	pthread_create(&thr, NULL, run_main, conn);
	char details[128];
	snprintf(details, sizeof(details), "client_port=%d port=%d",
		tn_connector_client_port(conn), svc.cfg.port);
	tn_service_ready(&svc, details);

	const char *sig = tn_service_wait(&svc);
	tn_info("main", "stopping signal=%s", sig);
	tn_connector_stop(conn);
	pthread_join(thr, NULL);
	tn_connector_free(conn);
	tn_service_fini(&svc);
	tn_info("main", "stopped");
	return 0;
}
