/* The edge itself: the lws context and its one listening vhost, the connection limit, the
 * service loop and its mailbox, timers, the drain, and shutdown. Sessions are in
 * edge_sess.c. */
#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "alloc.h"
#include "clock.h"
#include "edge_internal.h"
#include "err.h"
#include "log.h"

/* A tn_edge_timer: lws calls back through the sul (first member). */
struct edge_timer {
	lws_sorted_usec_list_t sul;
	struct tn_edge *e;
	void (*fn)(void *arg);
	void *arg;
	struct edge_timer *prev, *next;
};

static const struct lws_protocol_vhost_options mime_json = {
        NULL, NULL, ".json", "application/json"};
static const struct lws_protocol_vhost_options mime_svg = {
        &mime_json, NULL, ".svg", "image/svg+xml"};

/* ---- lws logging into ours ---- */

static void
lws_log_line(int level, const char *line)
{
	/* lws puts its own timestamp first ("[2024/01/01 12:00:00:0000] E: ..."); ours is
	 * enough. */
	if (line[0] == '[') {
		const char *end = strstr(line, "] ");
		if (end)
			line = end + 2;
	}
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	/* lws reports a misbehaving peer as an error too: ours are kept for our own faults. */
	enum tn_log_level lvl = (level & LLL_ERR) ? TN_LOG_WARN : TN_LOG_INFO;
	TN_LOG(lvl, "lws", "%.*s", (int)n, line);
}

/* ---- connections: counting, the limit ---- */

/* Accepted sockets are counted until lws destroys them (whatever they became: WebSocket,
 * HTTP, or nothing); the wsi's opaque pointer marks the counted ones. */
static void
conn_opened(struct tn_edge *e, struct lws *wsi)
{
	e->live++;
	lws_set_opaque_user_data(wsi, e);
	tn_counter_inc(e->m.accepted);
	tn_gauge_inc(e->m.connections);
}

static void
conn_destroyed(struct tn_edge *e, struct lws *wsi)
{
	if (lws_get_opaque_user_data(wsi) != e)
		return;
	lws_set_opaque_user_data(wsi, NULL);
	e->live--;
	tn_gauge_dec(e->m.connections);
}

/* Called right after accept(): non-zero closes the socket at once. */
static int
conn_filter(struct tn_edge *e)
{
	if (e->draining)
		return 1; /* only if the listener could not be closed */
	if (e->live < (size_t)e->cfg->max_connections)
		return 0;
	tn_counter_inc(e->m.refused);
	/* At most one warning per 10 s: a crowd at the door must not flood the log. */
	int64_t now = tn_now_ms();
	if (now - e->refused_warned_ms >= 10000) {
		e->refused_warned_ms = now;
		tn_warn("edge",
		        "connections refused, max-connections reached open=%zu "
		        "max_connections=%d refused_total=%llu",
		        e->live, e->cfg->max_connections,
		        (unsigned long long)tn_counter_get(e->m.refused));
	}
	return 1;
}

static void drain_check(struct tn_edge *e);

/* ---- the one lws protocol ---- */

static int
edge_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct tn_edge *e = lws_context_user(lws_get_context(wsi));
	struct tn_edge_sess **slot = user;
	struct tn_edge_sess *s = slot ? *slot : NULL;
	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: return conn_filter(e);
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: conn_opened(e, wsi); break;
	case LWS_CALLBACK_WSI_DESTROY: conn_destroyed(e, wsi); break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* Wake-ups coalesce and may be spurious: just drain. Never non-zero here. */
		if (!e->closed)
			tn_mailbox_drain(e->mb);
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* WebSocket only: no h2c upgrade on the client port. */
		if (in && strcasecmp(in, "websocket") == 0)
			return 0;
		tn_counter_inc(e->m.bad[EDGE_BAD_BAD_UPGRADE]);
		tn_debug("edge", "upgrade refused to=%s", in ? (const char *)in : "(none)");
		return -1;
	case LWS_CALLBACK_ESTABLISHED:
		/* An upgrade that completes during a drain would only be kicked at once. */
		if (slot == NULL || e->closed || e->draining)
			return -1;
		return edge_sess_open(e, wsi, slot);
	case LWS_CALLBACK_RECEIVE: return s ? edge_sess_receive(s, in, len) : -1;
	case LWS_CALLBACK_SERVER_WRITEABLE: return s ? edge_sess_writeable(s) : 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/* Returning 0 makes lws answer the close frame at once (protocol.md §6.6). */
		if (s)
			s->peer_closed = true;
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (s) {
			*slot = NULL;
			edge_sess_closed(s);
			drain_check(e);
		}
		return 0;
	default: break;
	}
	/* Plain HTTP on the same port: the web root mount, or 404. */
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- start-up ---- */

/* Refuses a max-connections that accept() could not honour under RLIMIT_NOFILE. */
static int
check_fd_limit(int max_connections)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return TN_OK;
	unsigned long long need = (unsigned long long)max_connections + TN_EDGE_FD_RESERVE;
	if (need <= (unsigned long long)rl.rlim_cur)
		return TN_OK;
	unsigned long long most = rl.rlim_cur > TN_EDGE_FD_RESERVE
	                                  ? (unsigned long long)rl.rlim_cur - TN_EDGE_FD_RESERVE
	                                  : 0;
	tn_error("edge",
	        "max-connections is more than the open-file limit allows max_connections=%d "
	        "needed_fds=%llu open_file_limit=%llu reserved_fds=%d "
	        "hint=\"lower max-connections to at most %llu or raise ulimit -n\"",
	        max_connections, need, (unsigned long long)rl.rlim_cur, TN_EDGE_FD_RESERVE, most);
	return TN_ECONFIG;
}

static int
routes_init(struct tn_edge *e, const struct tn_edge_opts *opts)
{
	e->nroutes = opts->nroutes;
	e->routes = tn_calloc(opts->nroutes ? opts->nroutes : 1, sizeof(char *));
	e->served = tn_calloc(opts->nroutes ? opts->nroutes : 1, sizeof(bool));
	for (size_t i = 0; i < opts->nroutes; i++) {
		e->routes[i] = tn_strdup(opts->routes[i]);
		e->served[i] = opts->served ? opts->served[i] : true;
		tn_map_put(&e->route_tags, e->routes[i], strlen(e->routes[i]),
		        (void *)(uintptr_t)(i + 1));
	}
	if (!opts->use_dict)
		return TN_OK;
	int rv = tn_pml_dict_new(&e->dict, opts->routes, opts->nroutes, NULL, 0);
	if (rv)
		tn_error("edge", "cannot build the route dictionary err=\"%s\"", tn_strerror(rv));
	return rv;
}

static void
pml_config_init(struct tn_edge *e)
{
	const struct tn_config *cfg = e->cfg;
	tn_pml_conn_config_init(&e->pml);
	e->pml.hs.heartbeat_s = cfg->heartbeat_s;
	e->pml.hs.dict = e->dict;
	e->pml.handshake_timeout_ms = cfg->handshake_timeout_ms;
	e->pml.package_limit = (size_t)cfg->package_limit;
	e->pml.out_limit = (size_t)cfg->out_limit; /* outLimit, 1 MiB by default */
	e->pml.out_headroom = LWS_PRE;
	/* Only a backstop: the edge answers 429 at TN_EDGE_MAX_PENDING already. */
	e->pml.max_inflight = 2 * TN_EDGE_MAX_PENDING;
	edge_sess_cbs_init(&e->pml_cbs);
	/* Heartbeats are the liveness check where there are any; the idle timeout stands in
	 * for them on servers without (the gate). */
	e->idle_ms = cfg->heartbeat_s == 0 ? cfg->idle_timeout_ms : 0;
}

/* The web root as an absolute path, or NULL (with a warning when one was configured but
 * cannot be found: the WebSocket side still works). */
static char *
web_root_resolve(const char *dir)
{
	if (dir == NULL || *dir == '\0')
		return NULL;
	char *abs = realpath(dir, NULL);
	if (abs == NULL) {
		tn_warn("edge", "web root not found, serving no files web_root=\"%s\"", dir);
		return NULL;
	}
	return abs;
}

static void
mount_init(struct tn_edge *e)
{
	e->mount = (struct lws_http_mount){
	        .mountpoint = "/",
	        .mountpoint_len = 1,
	        .origin = e->web_root,
	        .def = "index.html",
	        .origin_protocol = LWSMPRO_FILE,
	        .extra_mimetypes = &mime_svg,
	};
}

/* What lws's iface wants for the configured bind host: NULL for every address (IPv4 only
 * for 0.0.0.0), or a numeric address. Writes it to buf. */
static const char *
bind_iface(const char *host, char *buf, size_t cap, bool *ipv4_only)
{
	*ipv4_only = false;
	if (host == NULL || *host == '\0' || strcmp(host, "*") == 0 || strcmp(host, "::") == 0)
		return NULL;
	if (strcmp(host, "0.0.0.0") == 0) {
		*ipv4_only = true;
		return NULL;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
		snprintf(buf, cap, "%s", host); /* maybe an interface name: let lws try */
		return buf;
	}
	if (getnameinfo(res->ai_addr, res->ai_addrlen, buf, (socklen_t)cap, NULL, 0,
	            NI_NUMERICHOST) != 0)
		snprintf(buf, cap, "%s", host);
	freeaddrinfo(res);
	return buf;
}

/* True when fd is a listening TCP socket bound to port. */
static bool
fd_listens_on(int fd, int port)
{
	int on = 0;
	socklen_t len = sizeof(on);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 || !on)
		return false;
	struct sockaddr_storage a;
	len = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		return false;
	if (a.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&a)->sin_port) == port;
	if (a.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&a)->sin6_port) == port;
	return false;
}

/* Finds the listening sockets lws opened for the client port, so that a drain can close
 * them: lws 4.1 has no working call for that (lws_context_deprecate reads the listener
 * after freeing it), but closing the listener's wsi is an ordinary close. */
static void
listen_fds_find(struct tn_edge *e)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL) {
		tn_warn("edge", "cannot list open files; a drain will refuse new connections "
		                "instead of closing the port");
		return;
	}
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		if (*end != '\0' || end == de->d_name || fd < 0 || fd > INT_MAX)
			continue;
		if (e->n_listen_fds < TN_EDGE_MAX_LISTEN && fd_listens_on((int)fd, e->port) &&
		        wsi_from_fd(e->ctx, (int)fd) != NULL)
			e->listen_fds[e->n_listen_fds++] = (int)fd;
	}
	closedir(d);
}

/* Closes the client port's listening sockets: connecting is refused from now on. */
static void
listen_close(struct tn_edge *e)
{
	for (int i = 0; i < e->n_listen_fds; i++) {
		struct lws *wsi = wsi_from_fd(e->ctx, e->listen_fds[i]);
		if (wsi)
			lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
	}
	e->n_listen_fds = 0;
}

/* Creates the context and binds the first free port of the configured range. */
static int
edge_listen(struct tn_edge *e)
{
	const struct tn_config *cfg = e->cfg;
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.fd_limit_per_thread = (unsigned)cfg->max_connections + TN_EDGE_FD_SLACK;
	info.user = e;
	e->ctx = lws_create_context(&info);
	if (e->ctx == NULL) {
		tn_error("edge", "cannot create the libwebsockets context");
		return TN_EIO;
	}
	bool ipv4_only;
	/* lws keeps the iface pointer in the vhost, so it lives in the edge. */
	const char *iface = bind_iface(cfg->client_host, e->iface, sizeof(e->iface), &ipv4_only);
	for (int port = cfg->client_port_min; port <= cfg->client_port_max; port++) {
		struct lws_context_creation_info vi;
		memset(&vi, 0, sizeof(vi));
		vi.port = port;
		vi.iface = iface;
		vi.protocols = e->protocols;
		vi.mounts = e->web_root ? &e->mount : NULL;
		vi.vhost_name = "tern";
		vi.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
		             (ipv4_only ? LWS_SERVER_OPTION_DISABLE_IPV6 : 0);
		/* A port in use is the expected case while scanning the range: keep lws
		 * quiet about it. */
		lws_set_log_level(0, lws_log_line);
		struct lws_vhost *vh = lws_create_vhost(e->ctx, &vi);
		lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_line);
		if (vh != NULL) {
			e->port = lws_get_vhost_port(vh);
			listen_fds_find(e);
			return TN_OK;
		}
		tn_debug("edge", "port not available host=%s port=%d", cfg->client_host, port);
	}
	tn_error("edge", "no free client port host=%s ports=%d-%d", cfg->client_host,
	        cfg->client_port_min, cfg->client_port_max);
	return TN_EADDR;
}

static void
edge_wake(void *arg)
{
	struct tn_edge *e = arg;
	/* The lock makes the context's destruction wait for a wake-up in progress. */
	pthread_mutex_lock(&e->wake_mu);
	if (e->wake_ctx)
		lws_cancel_service(e->wake_ctx);
	pthread_mutex_unlock(&e->wake_mu);
}

int
tn_edge_new(struct tn_edge **out, const struct tn_edge_opts *opts, const struct tn_edge_ops *ops,
        void *arg)
{
	const struct tn_config *cfg = opts->cfg;
	int rv = check_fd_limit(cfg->max_connections);
	if (rv)
		return rv;
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_line);
	struct tn_edge *e = tn_calloc(1, sizeof(*e));
	e->ops = *ops;
	e->arg = arg;
	e->cfg = cfg;
	e->prefix = tn_strdup(opts->metrics_prefix ? opts->metrics_prefix : "tern_edge");
	tn_map_init(&e->route_tags);
	tn_map_init(&e->sessions);
	tn_buf_init(&e->scratch);
	pthread_mutex_init(&e->wake_mu, NULL);
	e->mb = tn_mailbox_new(edge_wake, e);
	e->tick_at_ms = INT64_MAX;
	e->refused_warned_ms = INT64_MIN / 2;
	edge_metrics_init(&e->m, e->prefix);
	e->protocols[0] = (struct lws_protocols){
	        .name = "pomelo",
	        .callback = edge_lws_cb,
	        .per_session_data_size = sizeof(struct tn_edge_sess *),
	};
	/* webRoot is a gate option (config.c): a connector's default must not serve files. */
	e->web_root = web_root_resolve(cfg->type == TN_SERVER_GATE ? cfg->web_root : NULL);
	mount_init(e);
	rv = routes_init(e, opts);
	if (rv == TN_OK) {
		pml_config_init(e);
		rv = edge_listen(e);
	}
	if (rv) {
		tn_edge_free(e);
		return rv;
	}
	e->wake_ctx = e->ctx;
	tn_info("edge",
	        "listening host=%s port=%d max_connections=%d heartbeat_s=%d idle_timeout_ms=%lld "
	        "web_root=%s",
	        cfg->client_host, e->port, cfg->max_connections, cfg->heartbeat_s,
	        (long long)e->idle_ms, e->web_root ? e->web_root : "(none)");
	*out = e;
	return TN_OK;
}

int
tn_edge_port(const struct tn_edge *e)
{
	return e->port;
}

/* ---- running ---- */

void
tn_edge_run(struct tn_edge *e)
{
	tn_mailbox_drain(e->mb);
	while (!atomic_load(&e->stop)) {
		if (lws_service(e->ctx, 0) < 0) {
			tn_error("edge", "libwebsockets service loop failed");
			break;
		}
	}
}

void
tn_edge_stop(struct tn_edge *e)
{
	atomic_store(&e->stop, true);
	edge_wake(e);
}

static void
mailbox_post(void *ctx, tn_task_fn fn, void *arg)
{
	tn_mailbox_post(ctx, fn, arg);
}

struct tn_exec
tn_edge_exec(struct tn_edge *e)
{
	return (struct tn_exec){.post = mailbox_post, .ctx = e->mb};
}

static void
timer_unlink(struct edge_timer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		t->e->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
}

static void
timer_fire(lws_sorted_usec_list_t *sul)
{
	struct edge_timer *t = lws_container_of(sul, struct edge_timer, sul);
	timer_unlink(t);
	t->fn(t->arg);
	free(t);
}

void
tn_edge_timer(struct tn_edge *e, int64_t delay_ms, void (*fn)(void *arg), void *arg)
{
	if (e->closed)
		return;
	struct edge_timer *t = tn_calloc(1, sizeof(*t));
	t->e = e;
	t->fn = fn;
	t->arg = arg;
	t->next = e->timers;
	if (e->timers)
		e->timers->prev = t;
	e->timers = t;
	lws_sul_schedule(e->ctx, 0, &t->sul, timer_fire, delay_ms > 0 ? delay_ms * 1000 : 0);
}

size_t
tn_edge_connections(const struct tn_edge *e)
{
	return e->sessions.count;
}

struct tn_edge_sess *
tn_edge_sess_find(struct tn_edge *e, uint64_t id)
{
	return tn_map_get(&e->sessions, &id, sizeof(id));
}

/* ---- drain ---- */

/* Every session, copied out so that callbacks may change the map meanwhile. */
static struct tn_edge_sess **sessions_snapshot(struct tn_edge *e, size_t *n);

/* The drain ends: every session has gone, or the deadline passed (the sessions left are
 * dropped first, so the service hears of each before done). */
static void
drain_fire(lws_sorted_usec_list_t *sul)
{
	struct tn_edge *e = lws_container_of(sul, struct tn_edge, drain_sul);
	if (e->drain_fired)
		return;
	e->drain_fired = true;
	size_t n = 0;
	struct tn_edge_sess **all = sessions_snapshot(e, &n);
	for (size_t i = 0; i < n; i++)
		edge_sess_drop(all[i]);
	free(all);
	if (n > 0)
		tn_warn("edge", "drain deadline passed, sessions dropped sessions=%zu", n);
	else
		tn_info("edge", "drained: every session has closed");
	if (e->drain_done)
		e->drain_done(e->drain_arg);
	else
		tn_edge_stop(e);
}

/* After a session has gone: the last one ends the drain at once. */
static void
drain_check(struct tn_edge *e)
{
	if (e->draining && !e->drain_fired && e->sessions.count == 0 && !e->closed)
		lws_sul_schedule(e->ctx, 0, &e->drain_sul, drain_fire, 0);
}

struct drain_req {
	struct tn_edge *e;
	int64_t deadline_ms;
	void (*done)(void *arg);
	void *arg;
};

static void
drain_begin(void *arg, bool cancelled)
{
	struct drain_req *r = arg;
	struct tn_edge *e = r->e;
	if (cancelled || e->draining || e->closed) {
		free(r);
		return;
	}
	e->draining = true;
	e->drain_done = r->done;
	e->drain_arg = r->arg;
	int64_t delay_ms = r->deadline_ms - tn_now_ms();
	free(r);
	listen_close(e);
	size_t n = 0;
	struct tn_edge_sess **all = sessions_snapshot(e, &n);
	for (size_t i = 0; i < n; i++)
		edge_sess_drain(all[i]);
	free(all);
	tn_info("edge", "draining: listener closed, sessions kicked sessions=%zu deadline_ms=%lld",
	        n, (long long)(delay_ms > 0 ? delay_ms : 0));
	lws_sul_schedule(
	        e->ctx, 0, &e->drain_sul, drain_fire, n > 0 && delay_ms > 0 ? delay_ms * 1000 : 0);
}

void
tn_edge_drain(struct tn_edge *e, int64_t deadline_ms, void (*done)(void *arg), void *arg)
{
	struct drain_req *r = tn_calloc(1, sizeof(*r));
	*r = (struct drain_req){.e = e, .deadline_ms = deadline_ms, .done = done, .arg = arg};
	tn_mailbox_post(e->mb, drain_begin, r);
}

/* ---- shutdown ---- */

static void
timers_cancel(struct tn_edge *e)
{
	while (e->timers) {
		struct edge_timer *t = e->timers;
		lws_sul_cancel(&t->sul);
		timer_unlink(t);
		free(t);
	}
}

static struct tn_edge_sess **
sessions_snapshot(struct tn_edge *e, size_t *n)
{
	struct tn_edge_sess **all = tn_calloc(e->sessions.count + 1, sizeof(*all));
	size_t it = 0, k = 0;
	for (struct tn_map_entry *me; (me = tn_map_next(&e->sessions, &it)) != NULL;)
		all[k++] = me->val;
	*n = k;
	return all;
}

void
tn_edge_close(struct tn_edge *e)
{
	if (e->closed)
		return;
	e->closed = true;
	size_t n;
	struct tn_edge_sess **all = sessions_snapshot(e, &n);
	for (size_t i = 0; i < n; i++)
		edge_sess_shutdown(all[i]);
	free(all);

	pthread_mutex_lock(&e->wake_mu);
	e->wake_ctx = NULL;
	pthread_mutex_unlock(&e->wake_mu);
	if (e->ctx) {
		edge_deadline_stop(e);
		lws_sul_cancel(&e->drain_sul);
		timers_cancel(e);
		/* Closes every socket; lws reports each WebSocket closed (freeing it). */
		lws_context_destroy(e->ctx);
		e->ctx = NULL;
	}
	all = sessions_snapshot(e, &n);
	for (size_t i = 0; i < n; i++)
		edge_sess_free(all[i]);
	free(all);
	tn_mailbox_close(e->mb);
}

void
tn_edge_free(struct tn_edge *e)
{
	if (e == NULL)
		return;
	tn_edge_close(e);
	tn_mailbox_free(e->mb);
	pthread_mutex_destroy(&e->wake_mu);
	tn_map_fini(&e->sessions);
	tn_map_fini(&e->route_tags);
	for (size_t i = 0; i < e->nroutes && e->routes; i++)
		free(e->routes[i]);
	free(e->routes);
	free(e->served);
	tn_pml_dict_free(e->dict);
	free(e->web_root);
	edge_metrics_fini(&e->m);
	tn_buf_fini(&e->scratch);
	free(e->prefix);
	free(e);
}
