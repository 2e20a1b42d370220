#include "admin.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "metrics.h"

enum admin_route {
	ADMIN_METRICS = 0,
	ADMIN_HEALTHZ = 1,
	ADMIN_READYZ = 2,
	ADMIN_ROUTE_COUNT_ = 3,
};

/* Each handler's data points here. nng may still run a handler callback after the handler
 * was removed from the server (it holds its own reference), so this is freed only once
 * every handler's destructor has run: handler_refs counts them, and tn_admin_stop waits
 * for it to drop to zero. */
struct tn_admin {
	nng_http_server *server;
	nng_http_handler *handlers[ADMIN_ROUTE_COUNT_]; /* the ones added to server */
	bool started;
	int port;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int handler_refs; /* handlers whose destructor has not run yet */
	bool ready;
	char reason[TN_ADMIN_REASON_MAX + 1];
};

static const char text_plain[] = "text/plain; charset=utf-8";
static const char metrics_type[] = "text/plain; version=0.0.4; charset=utf-8";

/* Completes a handler's aio with a response; on failure nng drops the connection. */
static void
admin_reply(nng_aio *aio, uint16_t status, const char *ctype, const void *body, size_t len)
{
	nng_http_res *res;
	int rv = nng_http_res_alloc(&res);
	if (rv != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	if ((rv = nng_http_res_set_status(res, status)) != 0 ||
		(rv = nng_http_res_set_header(res, "Content-Type", ctype)) != 0 ||
		(rv = nng_http_res_set_header(res, "Cache-Control", "no-store")) != 0 ||
		(rv = nng_http_res_copy_data(res, body, len)) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static struct tn_admin *
admin_of(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

static void
admin_handle_metrics(nng_aio *aio)
{
	struct tn_buf body;
	tn_buf_init(&body);
	tn_metrics_render(&body);
	admin_reply(aio, NNG_HTTP_STATUS_OK, metrics_type, body.data, body.len);
	tn_buf_fini(&body);
}

static void
admin_handle_healthz(nng_aio *aio)
{
	admin_reply(aio, NNG_HTTP_STATUS_OK, text_plain, "ok\n", 3);
}

static void
admin_handle_readyz(nng_aio *aio)
{
	struct tn_admin *a = admin_of(aio);
	char body[TN_ADMIN_REASON_MAX + 2];
	pthread_mutex_lock(&a->mu);
	bool ready = a->ready;
	snprintf(body, sizeof(body), "%s\n", ready ? "ready" : a->reason);
	pthread_mutex_unlock(&a->mu);
	admin_reply(aio, ready ? NNG_HTTP_STATUS_OK : NNG_HTTP_STATUS_SERVICE_UNAVAILABLE,
		text_plain, body, strlen(body));
}

/* A handler's destructor, run by nng (any of its threads) when its last reference goes. */
static void
admin_handler_dtor(void *arg)
{
	struct tn_admin *a = arg;
	pthread_mutex_lock(&a->mu);
	if (--a->handler_refs == 0)
		pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

static int
admin_add_route(struct tn_admin *a, enum admin_route route, const char *path,
	void (*cb)(nng_aio *))
{
	nng_http_handler *h;
	int rv = nng_http_handler_alloc(&h, path, cb);
	if (rv != 0)
		return rv;
	if ((rv = nng_http_handler_set_data(h, a, admin_handler_dtor)) != 0) {
		nng_http_handler_free(h);
		return rv;
	}
	pthread_mutex_lock(&a->mu);
	a->handler_refs++;
	pthread_mutex_unlock(&a->mu);
	/* No request to these paths has a body: refuse one rather than buffer it. */
	if ((rv = nng_http_handler_collect_body(h, true, 0)) != 0 ||
		(rv = nng_http_server_add_handler(a->server, h)) != 0) {
		nng_http_handler_free(h); /* runs admin_handler_dtor */
		return rv;
	}
	a->handlers[route] = h;
	return 0;
}

/* Undoes whatever tn_admin_start got to, waits for the handlers to go, frees a. */
static void
admin_teardown(struct tn_admin *a)
{
	for (int i = 0; i < ADMIN_ROUTE_COUNT_; i++) {
		/* Removing hands the server's reference back; freeing drops it, and a callback
		 * still running keeps its own until it completes. */
		if (a->handlers[i] != NULL && nng_http_server_del_handler(a->server, a->handlers[i]) == 0)
			nng_http_handler_free(a->handlers[i]);
	}
	if (a->server != NULL) {
		if (a->started)
			nng_http_server_stop(a->server);
		nng_http_server_release(a->server);
	}
	pthread_mutex_lock(&a->mu);
	while (a->handler_refs > 0)
		pthread_cond_wait(&a->cv, &a->mu);
	pthread_mutex_unlock(&a->mu);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

static bool
admin_host_valid(const char *host)
{
	for (const char *p = host; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '.' || c == '-' || c == ':' || c == '_'))
			return false;
	}
	return true;
}

/* Holds the nng server for host:port (an IPv6 literal gets its brackets here). */
static int
admin_hold(struct tn_admin *a, const char *host, int port)
{
	char url_text[300];
	bool v6 = strchr(host, ':') != NULL;
	snprintf(url_text, sizeof(url_text), "http://%s%s%s:%d", v6 ? "[" : "", host,
		v6 ? "]" : "", port);
	nng_url *url;
	int rv = nng_url_parse(&url, url_text);
	if (rv != 0)
		return TN_EINVAL;
	rv = nng_http_server_hold(&a->server, url);
	nng_url_free(url);
	if (rv != 0) {
		a->server = NULL;
		return tn_err_from_nng(rv); /* a name that does not resolve: TN_EADDR */
	}
	return TN_OK;
}

int
tn_admin_start(struct tn_admin **out, const char *host, int port)
{
	if (port == 0) {
		*out = NULL;
		return TN_OK;
	}
	if (host == NULL)
		host = "";
	if (port < 0 || port > 65535 || strlen(host) > 255 || !admin_host_valid(host))
		return TN_EINVAL;

	struct tn_admin *a = tn_calloc(1, sizeof(*a));
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->port = port;
	snprintf(a->reason, sizeof(a->reason), "starting");

	int rv = admin_hold(a, host, port);
	if (rv != TN_OK)
		goto fail;
	if ((rv = admin_add_route(a, ADMIN_METRICS, "/metrics", admin_handle_metrics)) != 0 ||
		(rv = admin_add_route(a, ADMIN_HEALTHZ, "/healthz", admin_handle_healthz)) != 0 ||
		(rv = admin_add_route(a, ADMIN_READYZ, "/readyz", admin_handle_readyz)) != 0 ||
		(rv = nng_http_server_start(a->server)) != 0) {
		/* A route already taken means another admin server of this process holds the
		 * address (nng shares one server per address): also TN_EADDR. */
		rv = tn_err_from_nng(rv);
		goto fail;
	}
	a->started = true;
	*out = a;
	return TN_OK;

fail:
	tn_debug("admin", "start failed host=%s port=%d err=%s", host, port, tn_strerror(rv));
	admin_teardown(a);
	return rv;
}

int
tn_admin_port(const struct tn_admin *a)
{
	return a ? a->port : 0;
}

void
tn_admin_set_ready(struct tn_admin *a, bool ready, const char *reason)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->ready = ready;
	snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "not ready");
	for (char *p = a->reason; *p; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
	pthread_mutex_unlock(&a->mu);
}

void
tn_admin_stop(struct tn_admin *a)
{
	if (a != NULL)
		admin_teardown(a);
}
