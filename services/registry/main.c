/* tern-registry: the membership service. See services/registry/registry.h. */
#include <pthread.h>
#include <stdio.h>

#include "registry.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "service.h"

static void *
loop_main(void *arg)
{
	tn_loop_run(arg);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct tn_service svc;
	int status = tn_service_init(&svc, TN_SERVER_REGISTRY, argc, argv);
	if (status >= 0)
		return status;

	struct tn_loop *loop = tn_loop_new();
	struct tn_registry *reg = NULL;
	int rv = tn_registry_new(&reg, &svc.cfg, loop);
	if (rv) {
		tn_error("main", "cannot start host=%s port=%d err=\"%s\"", svc.cfg.host, svc.cfg.port,
			tn_strerror(rv));
		tn_loop_free(loop);
		tn_service_fini(&svc);
		return 1;
	}
	pthread_t thr;
	pthread_create(&thr, NULL, loop_main, loop);
	char details[128];
	snprintf(details, sizeof(details), "port=%d", svc.cfg.port);
	tn_service_ready(&svc, details);

	const char *sig = tn_service_wait(&svc);
	tn_info("main", "stopping signal=%s", sig);
	tn_loop_stop(loop);
	pthread_join(thr, NULL);
	tn_loop_close(loop);
	tn_registry_free(reg);
	tn_loop_free(loop);
	tn_service_fini(&svc);
	tn_info("main", "stopped");
	return 0;
}
