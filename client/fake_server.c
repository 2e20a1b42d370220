#define _GNU_SOURCE /* accept4, memmem */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "cli_loop.h"
#include "err.h"
#include "fake_server.h"
#include "pomelo.h"
#include "ws_frame.h"
#include "ws_http.h"

#define ROLE_GATE 0

struct fconn;

struct listener {
	struct fake_server *fs;
	int role; /* 0 gate, 1 and 2 connectors */
	int port;
	int fd;
	struct tn_cli_watch watch;
};

struct slow_reply {
	struct tn_cli_timer t;
	struct fconn *c;
	uint32_t id;
	struct slow_reply *next;
};

struct fconn {
	struct fake_server *fs;
	struct fconn *next;
	int role;
	int fd;
	struct tn_cli_watch watch;
	struct tn_cli_timer check;
	struct tn_buf rx;
	bool upgraded;
	bool muted;
	bool working;
	struct tn_cli_ws_asm asm_;
	struct tn_pml_conn pc;
	struct slow_reply *slow;
};

struct fake_server {
	struct fake_opts opts;
	struct tn_cli_loop *loop;
	pthread_t thread;
	struct listener ls[3];
	struct fconn *conns;
	struct tn_pml_conn_config cfg_gate;
	struct tn_pml_conn_config cfg_conn;
	struct tn_pml_dict *dict;
	pthread_mutex_t mu; /* guards stats */
	struct fake_stats stats;
};

static void fconn_close(struct fconn *c);

/* ---- output ---- */

static void
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			poll(&pfd, 1, 1000);
			continue;
		}
		return; /* the peer went away; the read side will notice */
	}
}

static void
send_frame(struct fconn *c, enum tn_cli_ws_op op, const void *p, size_t n)
{
	struct tn_buf b;
	tn_buf_init(&b);
	if (c->fs->opts.fragment && op == TN_CLI_WS_BINARY && n >= 2) {
		tn_cli_ws_frame_encode(&b, op, false, p, n / 2, NULL);
		tn_cli_ws_frame_encode(&b, TN_CLI_WS_PING, true, "hb", 2, NULL);
		tn_cli_ws_frame_encode(
		        &b, TN_CLI_WS_CONT, true, (const uint8_t *)p + n / 2, n - n / 2, NULL);
	} else {
		tn_cli_ws_frame_encode(&b, op, true, p, n, NULL);
	}
	write_all(c->fd, b.data, b.len);
	tn_buf_fini(&b);
}

static void
drain(struct fconn *c)
{
	size_t n;
	uint8_t *p;
	while ((p = tn_pml_conn_out_peek(&c->pc, &n, 0)) != NULL) {
		if (!c->muted)
			send_frame(c, TN_CLI_WS_BINARY, p, n);
		tn_pml_conn_out_consume(&c->pc, n);
	}
}

static void
arm_check(struct fconn *c)
{
	int64_t d = tn_pml_conn_deadline(&c->pc);
	if (d == TN_PML_NO_DEADLINE)
		tn_cli_timer_stop(c->fs->loop, &c->check);
	else
		tn_cli_timer_start_at(c->fs->loop, &c->check, d);
}

/* ---- pomelo callbacks ---- */

static int
first_live_connector(struct fake_server *fs)
{
	for (int i = 1; i <= 2; i++) {
		if (fs->ls[i].fd >= 0)
			return fs->ls[i].port;
	}
	return 0;
}

static void
record_id(struct fake_server *fs, uint32_t id, bool compressed)
{
	pthread_mutex_lock(&fs->mu);
	if (fs->stats.n_ids < 64)
		fs->stats.ids[fs->stats.n_ids++] = id;
	fs->stats.compressed += compressed;
	pthread_mutex_unlock(&fs->mu);
}

static void
answer_gate(struct fconn *c, uint32_t id)
{
	char body[128];
	int port = first_live_connector(c->fs);
	if (port)
		snprintf(body, sizeof(body), "{\"code\":200,\"host\":\"127.0.0.1\",\"port\":%d}",
		        port);
	else
		snprintf(body, sizeof(body), "{\"code\":500,\"message\":\"no connector\"}");
	tn_pml_conn_respond(&c->pc, id, body, strlen(body));
}

static void
on_slow(void *arg)
{
	struct slow_reply *s = arg;
	struct fconn *c = s->c;
	tn_pml_conn_respond(&c->pc, s->id, "{}", 2);
	drain(c);
	for (struct slow_reply **pp = &c->slow; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	free(s);
}

static void
answer_connector(struct fconn *c, const struct tn_pml_msg *msg)
{
	const char *r = msg->route;
	if (strcmp(r, "connector.echo") == 0) {
		tn_pml_conn_respond(&c->pc, msg->id, msg->body, msg->body_len);
	} else if (strcmp(r, "connector.push") == 0) {
		const char *p = "{\"msg\":\"hi\",\"from\":\"fake\",\"target\":\"*\"}";
		tn_pml_conn_push(&c->pc, "onChat", p, strlen(p));
		tn_pml_conn_respond(&c->pc, msg->id, "{}", 2);
	} else if (strcmp(r, "connector.slow") == 0) {
		struct slow_reply *s = tn_calloc(1, sizeof(*s));
		s->c = c;
		s->id = msg->id;
		s->next = c->slow;
		c->slow = s;
		tn_cli_timer_init(&s->t, on_slow, s);
		tn_cli_timer_start(c->fs->loop, &s->t, 300);
	} else if (strcmp(r, "connector.kick") == 0) {
		tn_pml_conn_kick(&c->pc, "go away");
	} else if (strcmp(r, "connector.mute") == 0) {
		c->muted = true;
	} else if (strcmp(r, "connector.drop") == 0) {
		shutdown(c->fd, SHUT_RDWR);
	} else if (strcmp(r, "connector.silent") != 0) {
		tn_pml_conn_respond(&c->pc, msg->id, "{\"code\":404}", 12);
	}
}

static void
on_request(void *ctx, const struct tn_pml_msg *msg)
{
	struct fconn *c = ctx;
	record_id(c->fs, msg->id, msg->compressed);
	if (c->role == ROLE_GATE) {
		answer_gate(c, msg->id);
		return;
	}
	pthread_mutex_lock(&c->fs->mu);
	c->fs->stats.requests++;
	pthread_mutex_unlock(&c->fs->mu);
	answer_connector(c, msg);
}

static void
on_notify(void *ctx, const struct tn_pml_msg *msg)
{
	struct fconn *c = ctx;
	pthread_mutex_lock(&c->fs->mu);
	c->fs->stats.notifies++;
	pthread_mutex_unlock(&c->fs->mu);
}

static void
on_ready(void *ctx)
{
	struct fconn *c = ctx;
	if (c->role == ROLE_GATE)
		return;
	c->working = true;
	pthread_mutex_lock(&c->fs->mu);
	c->fs->stats.open_sessions++;
	pthread_mutex_unlock(&c->fs->mu);
}

static void
on_close_needed(void *ctx, enum tn_pml_close_reason reason)
{
	struct fconn *c = ctx;
	drain(c);
	shutdown(c->fd, SHUT_WR);
}

static const struct tn_pml_conn_cbs pml_cbs = {
        .on_ready = on_ready,
        .on_request = on_request,
        .on_notify = on_notify,
        .on_close_needed = on_close_needed,
};

/* ---- WebSocket input ---- */

static bool
upgrade(struct fconn *c)
{
	const char *s = (const char *)c->rx.data;
	const char *end = memmem(s, c->rx.len, "\r\n\r\n", 4);
	if (end == NULL)
		return false;
	const char *k = NULL;
	for (const char *p = s; p < end; p++) {
		if (strncasecmp(p, "\r\nSec-WebSocket-Key:", 20) == 0) {
			k = p + 20;
			break;
		}
	}
	if (k == NULL) {
		shutdown(c->fd, SHUT_RDWR);
		return false;
	}
	while (*k == ' ')
		k++;
	char key[64] = {0};
	size_t n = strcspn(k, "\r");
	memcpy(key, k, n < 63 ? n : 63);
	char accept[TN_CLI_WS_ACCEPT_LEN + 1];
	tn_cli_ws_accept(accept, key);
	char resp[256];
	int len = snprintf(resp, sizeof(resp),
	        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
	        accept);
	write_all(c->fd, (const uint8_t *)resp, (size_t)len);
	tn_buf_consume(&c->rx, (size_t)(end + 4 - s));
	c->upgraded = true;
	return true;
}

static void
got_frame(struct fconn *c, const struct tn_cli_ws_frame *f)
{
	if (f->op == TN_CLI_WS_PONG) {
		pthread_mutex_lock(&c->fs->mu);
		c->fs->stats.pongs++;
		pthread_mutex_unlock(&c->fs->mu);
		return;
	}
	if (f->op == TN_CLI_WS_CLOSE) {
		send_frame(c, TN_CLI_WS_CLOSE, f->payload, f->len);
		shutdown(c->fd, SHUT_WR);
		return;
	}
	if (f->op == TN_CLI_WS_PING)
		return;
	enum tn_cli_ws_op op;
	const uint8_t *msg;
	size_t len;
	if (tn_cli_ws_asm_feed(&c->asm_, f, &op, &msg, &len) == TN_OK)
		tn_pml_conn_feed(&c->pc, msg, len, tn_cli_loop_now(c->fs->loop));
}

static void
frames(struct fconn *c)
{
	size_t off = 0;
	for (;;) {
		struct tn_cli_ws_frame f;
		size_t used;
		int rv = tn_cli_ws_frame_decode(
		        &f, &used, c->rx.data + off, c->rx.len - off, 1u << 24, true);
		if (rv != TN_OK)
			break;
		off += used;
		got_frame(c, &f);
	}
	tn_buf_consume(&c->rx, off);
	drain(c);
	arm_check(c);
}

static void
on_conn_io(void *arg, unsigned events)
{
	struct fconn *c = arg;
	uint8_t *p = tn_buf_reserve(&c->rx, 65536);
	ssize_t n = recv(c->fd, p, 65536, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		fconn_close(c);
		return;
	}
	c->rx.len += (size_t)n;
	if (!c->upgraded && !upgrade(c))
		return;
	frames(c);
}

static void
on_check(void *arg)
{
	struct fconn *c = arg;
	tn_pml_conn_check_timeout(&c->pc, tn_cli_loop_now(c->fs->loop));
	drain(c);
	arm_check(c);
}

static void
fconn_close(struct fconn *c)
{
	struct fake_server *fs = c->fs;
	for (struct fconn **pp = &fs->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->working) {
		pthread_mutex_lock(&fs->mu);
		fs->stats.open_sessions--;
		pthread_mutex_unlock(&fs->mu);
	}
	while (c->slow) {
		struct slow_reply *s = c->slow;
		c->slow = s->next;
		tn_cli_timer_stop(fs->loop, &s->t);
		free(s);
	}
	tn_cli_watch_stop(fs->loop, &c->watch);
	tn_cli_timer_stop(fs->loop, &c->check);
	close(c->fd);
	tn_pml_conn_fini(&c->pc);
	tn_cli_ws_asm_fini(&c->asm_);
	tn_buf_fini(&c->rx);
	free(c);
}

/* ---- listeners ---- */

static void
on_accept(void *arg, unsigned events)
{
	struct listener *l = arg;
	struct fake_server *fs = l->fs;
	int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct fconn *c = tn_calloc(1, sizeof(*c));
	c->fs = fs;
	c->role = l->role;
	c->fd = fd;
	tn_buf_init(&c->rx);
	tn_cli_ws_asm_init(&c->asm_, 1u << 24);
	tn_pml_conn_init(&c->pc, l->role == ROLE_GATE ? &fs->cfg_gate : &fs->cfg_conn, &pml_cbs, c,
	        tn_cli_loop_now(fs->loop));
	tn_cli_timer_init(&c->check, on_check, c);
	arm_check(c);
	c->next = fs->conns;
	fs->conns = c;
	tn_cli_watch_start(fs->loop, &c->watch, fd, TN_CLI_IO_IN, on_conn_io, c);
	pthread_mutex_lock(&fs->mu);
	fs->stats.accepted[l->role]++;
	pthread_mutex_unlock(&fs->mu);
}

static void
listen_on(struct listener *l)
{
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	if (bind(l->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l->fd, 512) != 0 ||
	        getsockname(l->fd, (struct sockaddr *)&a, &alen) != 0) {
		perror("fake server: listen");
		abort();
	}
	l->port = ntohs(a.sin_port);
	tn_cli_watch_start(l->fs->loop, &l->watch, l->fd, TN_CLI_IO_IN, on_accept, l);
}

static void
unlisten(struct listener *l)
{
	if (l->fd < 0)
		return;
	tn_cli_watch_stop(l->fs->loop, &l->watch);
	close(l->fd);
	l->fd = -1;
}

/* ---- cross-thread calls ---- */

struct sync_call {
	struct fake_server *fs;
	int arg;
	void (*fn)(struct fake_server *fs, int arg);
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void
sync_task(void *arg, bool cancelled)
{
	struct sync_call *sc = arg;
	if (!cancelled)
		sc->fn(sc->fs, sc->arg);
	pthread_mutex_lock(&sc->mu);
	sc->done = true;
	pthread_cond_signal(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
}

static void
call_sync(struct fake_server *fs, void (*fn)(struct fake_server *, int), int arg)
{
	struct sync_call sc = {.fs = fs, .arg = arg, .fn = fn};
	pthread_mutex_init(&sc.mu, NULL);
	pthread_cond_init(&sc.cv, NULL);
	tn_cli_loop_post(fs->loop, sync_task, &sc);
	pthread_mutex_lock(&sc.mu);
	while (!sc.done)
		pthread_cond_wait(&sc.cv, &sc.mu);
	pthread_mutex_unlock(&sc.mu);
	pthread_mutex_destroy(&sc.mu);
	pthread_cond_destroy(&sc.cv);
}

static void
do_kill(struct fake_server *fs, int i)
{
	unlisten(&fs->ls[i + 1]);
	struct fconn *c = fs->conns;
	while (c) {
		struct fconn *next = c->next;
		if (c->role == i + 1)
			fconn_close(c);
		c = next;
	}
}

static void
do_revive(struct fake_server *fs, int i)
{
	if (fs->ls[i + 1].fd < 0)
		listen_on(&fs->ls[i + 1]);
}

static void
do_shutdown(struct fake_server *fs, int unused)
{
	for (int i = 0; i < 3; i++)
		unlisten(&fs->ls[i]);
	while (fs->conns)
		fconn_close(fs->conns);
	tn_cli_loop_stop(fs->loop);
}

static void *
run(void *arg)
{
	struct fake_server *fs = arg;
	tn_cli_loop_run(fs->loop);
	return NULL;
}

static bool
refuse_all(void *ctx, const char *type, const char *version)
{
	return false;
}

struct fake_server *
fake_start(const struct fake_opts *opts)
{
	static const char *const routes[] = {"connector.echo", "connector.push", "connector.silent",
	        "connector.slow", "connector.kick", "connector.mute", "connector.drop",
	        "gate.gateHandler.queryEntry"};
	struct fake_server *fs = tn_calloc(1, sizeof(*fs));
	fs->opts = *opts;
	pthread_mutex_init(&fs->mu, NULL);
	if (tn_cli_loop_new(&fs->loop) != TN_OK)
		abort();
	tn_pml_conn_config_init(&fs->cfg_gate);
	tn_pml_conn_config_init(&fs->cfg_conn);
	fs->cfg_conn.hs.heartbeat_s = opts->heartbeat_s;
	if (opts->use_dict) {
		tn_pml_dict_new(&fs->dict, routes, sizeof(routes) / sizeof(routes[0]), NULL, 0);
		fs->cfg_conn.hs.dict = fs->dict;
	}
	if (opts->refuse) {
		fs->cfg_gate.hs.check_client = refuse_all;
		fs->cfg_conn.hs.check_client = refuse_all;
	}
	for (int i = 0; i < 3; i++) {
		fs->ls[i].fs = fs;
		fs->ls[i].role = i;
		listen_on(&fs->ls[i]);
	}
	pthread_create(&fs->thread, NULL, run, fs);
	return fs;
}

void
fake_stop(struct fake_server *fs)
{
	call_sync(fs, do_shutdown, 0);
	pthread_join(fs->thread, NULL);
	tn_cli_loop_free(fs->loop);
	tn_pml_dict_free(fs->dict);
	pthread_mutex_destroy(&fs->mu);
	free(fs);
}

int
fake_gate_port(const struct fake_server *fs)
{
	return fs->ls[0].port;
}

int
fake_connector_port(const struct fake_server *fs, int i)
{
	return fs->ls[i + 1].port;
}

void
fake_kill_connector(struct fake_server *fs, int i)
{
	call_sync(fs, do_kill, i);
}

void
fake_revive_connector(struct fake_server *fs, int i)
{
	call_sync(fs, do_revive, i);
}

void
fake_get_stats(struct fake_server *fs, struct fake_stats *out)
{
	pthread_mutex_lock(&fs->mu);
	*out = fs->stats;
	pthread_mutex_unlock(&fs->mu);
}
