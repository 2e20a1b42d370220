#include "service.h"

#include <nng/nng.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "loop.h"

int
tn_service_init(struct tn_service *svc, enum tn_server_type type, int argc, char **argv)
{
	memset(svc, 0, sizeof(*svc));
	svc->name = tn_server_type_name(type);
	tn_signals_block();
	char err[512] = "";
	int rv = tn_config_load(&svc->cfg, type, argc, argv, err, sizeof(err));
	if (rv == TN_ENOENT && err[0] == '\0')
		return 0; /* --help */
	if (rv) {
		fprintf(stderr, "tern-%s: configuration error: %s\n", svc->name, err);
		return 2;
	}
	tn_log_init(svc->cfg.id, (enum tn_log_level)svc->cfg.log_level);
	rv = tn_admin_start(&svc->admin, svc->cfg.admin_host, svc->cfg.admin_port);
	if (rv) {
		tn_error("main", "cannot serve the admin port host=%s port=%d err=\"%s\"",
			svc->cfg.admin_host, svc->cfg.admin_port, tn_strerror(rv));
		tn_config_fini(&svc->cfg);
		return 2;
	}
	tn_admin_set_ready(svc->admin, false, "starting");
	tn_info("main", "starting type=%s env=%s pid=%d admin_port=%d", svc->name, svc->cfg.env,
		(int)getpid(), svc->cfg.admin_port);
	return -1;
}

struct tn_topology *
tn_service_seed_topology(const struct tn_service *svc, const char *others)
{
	char err[512];
	struct tn_topology *topo = NULL;
	if (tn_topology_load_file(&topo, svc->cfg.config_path, svc->cfg.env, err, sizeof(err)) ==
		TN_OK)
		return topo;
	tn_info("main", "no static topology: %s come from the registry reason=\"%s\"", others, err);
	return tn_topology_new_empty();
}

void
tn_service_ready(struct tn_service *svc, const char *details)
{
	tn_admin_set_ready(svc->admin, true, NULL);
	tn_log_write(TN_LOG_INFO, "main", "ready type=%s %s", svc->name, details ? details : "");
}

const char *
tn_service_wait(struct tn_service *svc)
{
	(void)svc;
	int sig = tn_signals_wait();
	return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

void
tn_service_fini(struct tn_service *svc)
{
	tn_admin_stop(svc->admin);
	svc->admin = NULL;
	tn_config_fini(&svc->cfg);
	/* nng frees closed pipes on its own reaper thread; wait for that so nothing is left
	 * for the leak checker at exit. Every socket is closed by now. */
	nng_fini();
}

static atomic_llong exit_deadline_ms; /* 0: no watchdog yet */

static void *
watchdog_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec ts = {0, 50 * 1000000};
		nanosleep(&ts, NULL);
		long long due = atomic_load(&exit_deadline_ms);
		if (due && tn_now_ms() >= due)
			break;
	}
	tn_log_write(TN_LOG_WARN, "main",
		"shutdown: releasing resources is stuck (an nng socket close); exiting now");
	_exit(0);
	return NULL;
}

void
tn_service_exit_within(struct tn_service *svc, int ms)
{
	(void)svc;
	long long due = (long long)tn_now_ms() + ms;
	long long prev = atomic_load(&exit_deadline_ms);
	if (prev != 0 && prev <= due)
		return;
	atomic_store(&exit_deadline_ms, due);
	if (prev == 0) {
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_create(&t, &attr, watchdog_main, NULL);
		pthread_attr_destroy(&attr);
	}
}
