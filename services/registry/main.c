/* tern-registry: the membership service. See services/registry/registry.h. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "loop.h"
#include "registry_server.h"
#include "rpc.h"
#include "service.h"
#include "topology.h"

#ifndef TN_VERSION
#define TN_VERSION "unknown"
#endif

static void *
loop_main(void *arg)
{
	tn_loop_run(arg);
	return NULL;
}

static int
start(struct tn_registry **out, const struct tn_config *cfg, struct tn_loop *loop)
{
	char rpc_url[300], notice_url[300];
	if (tn_nng_url(rpc_url, sizeof(rpc_url), cfg->host, cfg->port) != TN_OK ||
		tn_nng_url(notice_url, sizeof(notice_url), cfg->host, cfg->notice_port) != TN_OK)
		return TN_EINVAL;
	struct tn_server_info self = {
		.id = cfg->id,
		.type = TN_SERVER_REGISTRY,
		.host = cfg->advertise_host,
		.port = cfg->port,
		.admin_port = cfg->admin_port,
		.bind_host = cfg->host,
		.admin_host = cfg->admin_host,
		.pid = (int)getpid(),
		.version = TN_VERSION,
	};
	struct tn_registry_opts o = {
		.self = &self,
		.rpc_url = rpc_url,
		.notice_url = notice_url,
		.evict_after_ms = cfg->evict_after_ms,
		.quiet_ms = cfg->evict_after_ms,
	};
	return tn_registry_new(out, &o, loop);
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
	int rv = start(&reg, &svc.cfg, loop);
	if (rv) {
		tn_error("main", "cannot start host=%s port=%d notice_port=%d err=\"%s\"", svc.cfg.host,
			svc.cfg.port, svc.cfg.notice_port, tn_strerror(rv));
		tn_loop_free(loop);
		tn_service_fini(&svc);
		return 1;
	}
	pthread_t thr;
	pthread_create(&thr, NULL, loop_main, loop);
	char details[128];
	snprintf(details, sizeof(details), "port=%d notice_port=%d", svc.cfg.port,
		tn_registry_notice_port(reg));
	tn_service_ready(&svc, details);

	const char *sig = tn_service_wait(&svc);
	tn_service_exit_within(&svc, svc.cfg.drain_timeout_ms + 1500);
	tn_info("main", "stopping signal=%s", sig);
	/* Servers heartbeating at the default interval have all been told within a second;
	 * one that died unnoticed only makes the registry wait for the bound. */
	tn_registry_drain(reg, 100, 3000);
	tn_loop_stop(loop);
	pthread_join(thr, NULL);
	tn_service_exit_within(&svc, 3000); /* the drain is done: what is left is freeing */
	tn_loop_close(loop);
	tn_registry_free(reg);
	tn_loop_free(loop);
	tn_service_fini(&svc);
	tn_info("main", "stopped");
	return 0;
}
