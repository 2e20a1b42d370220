/* tern-chat: owns rooms. See services/chat/chat_server.h. */
#include <pthread.h>
#include <stdio.h>

#include "chat_server.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "membership.h"
#include "service.h"
#include "topology.h"

static void *
loop_main(void *arg)
{
	tn_loop_run(arg);
	return NULL;
}

static void
on_topology(void *arg, struct tn_topology *topo)
{
	tn_chat_set_topology(arg, topo);
}

static void
on_refresh(void *arg)
{
	tn_membership_refresh(arg);
}

static void
on_load(void *arg, struct tn_server_load *out, uint64_t *messages)
{
	tn_chat_load(arg, out, messages);
}

int
main(int argc, char **argv)
{
	struct tn_service svc;
	int status = tn_service_init(&svc, TN_SERVER_CHAT, argc, argv);
	if (status >= 0)
		return status;

	struct tn_topology *topo = tn_service_seed_topology(&svc, "connectors");
	/* servers.json, when there is one, is only where the server starts. */
	struct tn_topology *seed = tn_topology_copy(topo);
	struct tn_loop *loop = tn_loop_new();
	struct tn_chat *chat = NULL;
	int rv = tn_chat_new(&chat, &svc.cfg, topo, loop);
	if (rv) {
		tn_error("main", "cannot start host=%s port=%d err=\"%s\"", svc.cfg.host, svc.cfg.port,
			tn_strerror(rv));
		tn_topology_free(seed);
		tn_loop_free(loop);
		tn_service_fini(&svc);
		return 1;
	}
	pthread_t thr;
	pthread_create(&thr, NULL, loop_main, loop);
	struct tn_membership_opts mo = {.cfg = &svc.cfg, .seed = seed, .owner = tn_loop_exec(loop),
		.on_topology = on_topology, .load = on_load, .arg = chat, .admin = svc.admin};
	struct tn_membership *m = NULL;
	rv = tn_membership_start(&m, &mo);
	tn_topology_free(seed);
	if (rv == TN_OK)
		tn_chat_set_refresh(chat, on_refresh, m);
	if (rv == TN_OK)
		tn_membership_wait_registered(m, svc.cfg.rpc_timeout_ms < 2000 ? svc.cfg.rpc_timeout_ms
										: 2000);
	else
		tn_error("main", "bad registry address registry=%s", svc.cfg.registry);
	char details[128];
	snprintf(details, sizeof(details), "port=%d", svc.cfg.port);
	tn_service_ready(&svc, details);
	if (m)
		tn_membership_serving(m);

	const char *sig = tn_service_wait(&svc);
	tn_service_exit_within(&svc, svc.cfg.drain_timeout_ms + 1500);
	tn_info("main", "stopping signal=%s", sig);
	/* design.md §7: draining (never chosen as an owner again, still serving), rooms
	 * handed over, pushes flushed, then out of the membership. The hand-overs get most of
	 * the drain time; the rest is for leaving the registry and the last flush. */
	if (m)
		tn_membership_set_draining(m);
	int64_t t0 = tn_now_ms();
	size_t left = tn_chat_drain(chat, t0 + svc.cfg.drain_timeout_ms * 3 / 4);
	if (left)
		tn_warn("main", "drain time over with rooms not handed over rooms=%zu", left);
	else
		tn_info("main", "rooms handed over took_ms=%lld", (long long)(tn_now_ms() - t0));
	tn_chat_set_refresh(chat, NULL, NULL);
	tn_membership_stop(m);
	tn_chat_stop(chat); /* flushes the pushes of what was answered */
	pthread_join(thr, NULL);
	tn_service_exit_within(&svc, 3000); /* the drain is done: what is left is freeing */
	tn_loop_close(loop);
	tn_chat_free(chat);
	tn_loop_free(loop);
	tn_service_fini(&svc);
	tn_info("main", "stopped");
	return 0;
}
