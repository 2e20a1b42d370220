/* tern-chat: owns rooms. See services/chat/chat_server.h. */
#include <pthread.h>
#include <stdio.h>

#include "chat_server.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "service.h"
#include "topology.h"

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
	int status = tn_service_init(&svc, TN_SERVER_CHAT, argc, argv);
	if (status >= 0)
		return status;

	char err[512];
	struct tn_topology *topo = NULL;
	if (tn_topology_load_file(&topo, svc.cfg.config_path, svc.cfg.env, err, sizeof(err)) != TN_OK) {
		tn_warn("main", "no static topology, starting without connectors reason=\"%s\"", err);
		topo = tn_topology_new_empty();
	}
	struct tn_loop *loop = tn_loop_new();
	struct tn_chat *chat = NULL;
	int rv = tn_chat_new(&chat, &svc.cfg, topo, loop);
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
	tn_chat_free(chat);
	tn_loop_free(loop);
	tn_service_fini(&svc);
	tn_info("main", "stopped");
	return 0;
}
