#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "resolve.h"

#define LOG_MOD "client"

/* One lookup. Owned by the resolver's queue, then by the worker, then by the result task
 * posted to the loop, which frees it. fn is cleared (loop thread) to cancel. */
struct tn_cli_resolve {
	struct tn_cli_resolve *next;
	char *host;
	char port[8];
	tn_cli_resolve_fn fn;
	void *arg;
	int err;
	struct addrinfo *ai;
	struct tn_cli_loop *loop;
};

/* Lookups run one at a time on a single thread: names are rare (a gate and a few
 * connectors), so one thread is enough and bounds what a burst of reconnects costs. */
struct tn_cli_resolver {
	struct tn_cli_loop *loop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct tn_cli_resolve *head, *tail;
	bool started;
	bool quit;
	pthread_t thread;
};

static void
job_free(struct tn_cli_resolve *r)
{
	if (r->ai)
		freeaddrinfo(r->ai);
	free(r->host);
	free(r);
}

static void
deliver(void *arg, bool cancelled)
{
	struct tn_cli_resolve *r = arg;
	if (!cancelled && r->fn) {
		struct addrinfo *ai = r->ai;
		r->ai = NULL;
		r->fn(r->arg, r->err, ai);
	}
	job_free(r);
}

static int
lookup(struct tn_cli_resolve *r, int flags)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	        .ai_socktype = SOCK_STREAM,
	        .ai_flags = flags | AI_NUMERICSERV};
	int rv = getaddrinfo(r->host, r->port, &hints, &r->ai);
	if (rv == 0)
		return TN_OK;
	r->ai = NULL;
	if (rv == EAI_NONAME || rv == EAI_FAMILY)
		return TN_ENOENT;
	tn_debug(LOG_MOD, "name lookup failed host=%s err=\"%s\"", r->host, gai_strerror(rv));
	return TN_EIO;
}

static void *
worker(void *arg)
{
	struct tn_cli_resolver *rs = arg;
	pthread_mutex_lock(&rs->mu);
	for (;;) {
		while (!rs->quit && rs->head == NULL)
			pthread_cond_wait(&rs->cv, &rs->mu);
		if (rs->quit)
			break;
		struct tn_cli_resolve *r = rs->head;
		rs->head = r->next;
		if (rs->head == NULL)
			rs->tail = NULL;
		pthread_mutex_unlock(&rs->mu);
		r->err = lookup(r, 0);
		tn_cli_loop_post(rs->loop, deliver, r);
		pthread_mutex_lock(&rs->mu);
	}
	pthread_mutex_unlock(&rs->mu);
	return NULL;
}

struct tn_cli_resolver *
tn_cli_resolver_new(struct tn_cli_loop *loop)
{
	struct tn_cli_resolver *rs = tn_calloc(1, sizeof(*rs));
	rs->loop = loop;
	pthread_mutex_init(&rs->mu, NULL);
	pthread_cond_init(&rs->cv, NULL);
	return rs;
}

void
tn_cli_resolver_free(struct tn_cli_resolver *rs)
{
	if (rs == NULL)
		return;
	pthread_mutex_lock(&rs->mu);
	rs->quit = true;
	struct tn_cli_resolve *r = rs->head;
	rs->head = rs->tail = NULL;
	pthread_cond_signal(&rs->cv);
	pthread_mutex_unlock(&rs->mu);
	if (rs->started)
		pthread_join(rs->thread, NULL);
	while (r) {
		struct tn_cli_resolve *next = r->next;
		job_free(r);
		r = next;
	}
	pthread_cond_destroy(&rs->cv);
	pthread_mutex_destroy(&rs->mu);
	free(rs);
}

static void
enqueue(struct tn_cli_resolver *rs, struct tn_cli_resolve *r)
{
	pthread_mutex_lock(&rs->mu);
	if (!rs->started) {
		/* Without a thread, report the failure the normal way. */
		if (pthread_create(&rs->thread, NULL, worker, rs) != 0) {
			pthread_mutex_unlock(&rs->mu);
			tn_error(LOG_MOD, "cannot start the resolver thread");
			r->err = TN_EIO;
			tn_cli_loop_post(rs->loop, deliver, r);
			return;
		}
		rs->started = true;
	}
	if (rs->tail)
		rs->tail->next = r;
	else
		rs->head = r;
	rs->tail = r;
	pthread_cond_signal(&rs->cv);
	pthread_mutex_unlock(&rs->mu);
}

struct tn_cli_resolve *
tn_cli_resolve_start(
        struct tn_cli_loop *loop, const char *host, int port, tn_cli_resolve_fn fn, void *arg)
{
	struct tn_cli_resolve *r = tn_calloc(1, sizeof(*r));
	r->host = tn_strdup(host);
	snprintf(r->port, sizeof(r->port), "%d", port);
	r->fn = fn;
	r->arg = arg;
	r->loop = loop;
	/* A numeric address never touches the network: convert it here. */
	r->err = lookup(r, AI_NUMERICHOST);
	if (r->err == TN_ENOENT && *host != '\0') {
		r->err = TN_OK;
		enqueue(tn_cli_loop_resolver(loop), r);
		return r;
	}
	tn_cli_loop_post(loop, deliver, r);
	return r;
}

void
tn_cli_resolve_cancel(struct tn_cli_resolve *r)
{
	r->fn = NULL;
}
