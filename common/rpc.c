#include "rpc.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "log.h"

int
tn_nng_url(char *out, size_t len, const char *host, int port)
{
	int n = snprintf(out, len, "tcp://%s:%d", host, port);
	return (n < 0 || (size_t)n >= len) ? TN_EINVAL : TN_OK;
}

int
tn_nng_listen(nng_socket sock, const char *url, size_t max_msg)
{
	int rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, max_msg);
	if (rv == 0)
		rv = nng_listen(sock, url, NULL, 0);
	if (rv)
		tn_error("nng", "listen failed url=%s err=\"%s\"", url, nng_strerror(rv));
	return tn_err_from_nng(rv);
}

int
tn_nng_dial(nng_socket sock, const char *url, size_t max_msg)
{
	int rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, max_msg);
	/* Short reconnect times: a restarted peer is found again within a fraction of a
	 * second, which the liveness of the whole cluster depends on. */
	if (rv == 0)
		rv = nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, 50);
	if (rv == 0)
		rv = nng_socket_set_ms(sock, NNG_OPT_RECONNMAXT, 1000);
	if (rv == 0)
		rv = nng_dial(sock, url, NULL, NNG_FLAG_NONBLOCK);
	if (rv)
		tn_error("nng", "dial failed url=%s err=\"%s\"", url, nng_strerror(rv));
	return tn_err_from_nng(rv);
}

/* ---- server ---- */

enum worker_state {
	W_RECV = 0,
	W_OWNER = 1, /* the request is with the owner thread */
	W_SEND = 2,
	W_DONE = 3,
};

struct tn_rpc_req {
	struct tn_rpc_server *srv;
	nng_ctx ctx;
	nng_aio *aio;
	nng_msg *msg;
	enum worker_state state;
};

struct tn_rpc_server {
	nng_socket sock;
	struct tn_exec exec;
	tn_rpc_handler_fn handler;
	void *arg;
	int nworkers;
	struct tn_rpc_req *workers;
	atomic_bool closing;
};

static void
worker_recv(struct tn_rpc_req *w)
{
	w->state = W_RECV;
	nng_ctx_recv(w->ctx, w->aio);
}

static void
worker_handle(void *arg, bool cancelled)
{
	struct tn_rpc_req *w = arg;
	if (cancelled) {
		nng_msg_free(w->msg);
		w->msg = NULL;
		w->state = W_DONE;
		return;
	}
	w->srv->handler(w->srv->arg, w, nng_msg_body(w->msg), nng_msg_len(w->msg));
}

static void
worker_cb(void *arg)
{
	struct tn_rpc_req *w = arg;
	int rv = nng_aio_result(w->aio);
	if (w->state == W_SEND && rv != 0)
		nng_msg_free(nng_aio_get_msg(w->aio));
	if (rv == NNG_ECLOSED || atomic_load(&w->srv->closing)) {
		/* A request that arrived as the server closes is dropped, not leaked. */
		if (w->state == W_RECV && rv == 0)
			nng_msg_free(nng_aio_get_msg(w->aio));
		w->state = W_DONE;
		return;
	}
	if (w->state == W_RECV && rv == 0) {
		w->msg = nng_aio_get_msg(w->aio);
		w->state = W_OWNER;
		tn_exec_post(&w->srv->exec, worker_handle, w);
		return;
	}
	if (rv != 0 && rv != NNG_ECANCELED)
		tn_warn("rpc", "server context error err=\"%s\"", nng_strerror(rv));
	worker_recv(w);
}

int
tn_rpc_server_start(struct tn_rpc_server **out, const char *url, int workers, size_t max_msg,
	struct tn_exec exec, tn_rpc_handler_fn handler, void *arg)
{
	struct tn_rpc_server *srv = tn_calloc(1, sizeof(*srv));
	srv->exec = exec;
	srv->handler = handler;
	srv->arg = arg;
	int rv = tn_err_from_nng(nng_rep0_open(&srv->sock));
	if (rv) {
		free(srv);
		return rv;
	}
	srv->workers = tn_calloc((size_t)workers, sizeof(*srv->workers));
	for (int i = 0; i < workers; i++) {
		struct tn_rpc_req *w = &srv->workers[i];
		w->srv = srv;
		if (nng_aio_alloc(&w->aio, worker_cb, w) != 0 || nng_ctx_open(&w->ctx, srv->sock) != 0) {
			fprintf(stderr, "fatal: nng context allocation failed\n");
			abort();
		}
		srv->nworkers++;
	}
	rv = tn_nng_listen(srv->sock, url, max_msg);
	if (rv) {
		tn_rpc_server_stop(srv);
		return rv;
	}
	for (int i = 0; i < workers; i++)
		worker_recv(&srv->workers[i]);
	*out = srv;
	return TN_OK;
}

void
tn_rpc_reply(struct tn_rpc_req *w, const void *data, size_t len)
{
	nng_msg *m;
	if (nng_msg_alloc(&m, len) != 0) {
		fprintf(stderr, "fatal: out of memory for an nng message\n");
		abort();
	}
	if (len)
		memcpy(nng_msg_body(m), data, len);
	/* Only now: data may point into the request. */
	nng_msg_free(w->msg);
	w->msg = NULL;
	w->state = W_SEND;
	nng_aio_set_msg(w->aio, m);
	nng_ctx_send(w->ctx, w->aio);
}

void
tn_rpc_server_stop(struct tn_rpc_server *srv)
{
	if (srv == NULL)
		return;
	atomic_store(&srv->closing, true);
	nng_close(srv->sock);
	for (int i = 0; i < srv->nworkers; i++)
		nng_aio_stop(srv->workers[i].aio);
	for (int i = 0; i < srv->nworkers; i++) {
		nng_msg_free(srv->workers[i].msg);
		nng_aio_free(srv->workers[i].aio);
	}
	free(srv->workers);
	free(srv);
}

/* ---- client ---- */

enum slot_state {
	S_IDLE = 0,
	S_SEND = 1,
	S_RECV = 2,
	S_DONE = 3, /* completion posted to the owner */
};

struct slot {
	struct tn_rpc_client *cli;
	struct slot *next_free;
	nng_ctx ctx;
	nng_aio *aio;
	enum slot_state state;
	int64_t deadline_ms;
	tn_rpc_done_fn done;
	void *arg;
	nng_msg *reply;
	int result;
};

struct queued {
	struct queued *next;
	nng_msg *msg;
	int64_t deadline_ms;
	tn_rpc_done_fn done;
	void *arg;
};

struct tn_rpc_client {
	nng_socket sock;
	struct tn_exec exec;
	struct tn_rpc_client_opts opts;
	struct slot *slots;
	int nslots;
	struct slot *free_slots;
	struct queued *qhead, *qtail;
	int nqueued;
	int inflight;
	atomic_int pipes;
	atomic_int refs; /* the owner's, plus one per completion posted and not yet run */
	bool closing;
};

static void
client_unref(struct tn_rpc_client *cli)
{
	if (atomic_fetch_sub(&cli->refs, 1) != 1)
		return;
	for (int i = 0; i < cli->nslots; i++)
		nng_aio_free(cli->slots[i].aio);
	free(cli->slots);
	free(cli);
}

static void start_queued(struct tn_rpc_client *cli);

static void
slot_complete(void *arg, bool cancelled)
{
	struct slot *s = arg;
	struct tn_rpc_client *cli = s->cli;
	int err = s->result;
	if (err == TN_OK && (cancelled || cli->closing) && s->reply == NULL)
		err = TN_ECLOSED;
	if (cancelled && err == TN_OK)
		err = TN_ECLOSED; /* the owner is gone: only let the caller release arg */
	const uint8_t *data = s->reply ? nng_msg_body(s->reply) : NULL;
	size_t len = s->reply ? nng_msg_len(s->reply) : 0;
	s->done(s->arg, err, err == TN_OK ? data : NULL, err == TN_OK ? len : 0);
	nng_msg_free(s->reply);
	s->reply = NULL;
	s->state = S_IDLE;
	if (!cancelled && !cli->closing) {
		cli->inflight--;
		s->next_free = cli->free_slots;
		cli->free_slots = s;
		start_queued(cli);
	}
	client_unref(cli);
}

/* nng thread: hand the result to the owner. */
static void
slot_finish(struct slot *s, int err)
{
	s->result = err;
	s->state = S_DONE;
	atomic_fetch_add(&s->cli->refs, 1);
	tn_exec_post(&s->cli->exec, slot_complete, s);
}

static void
slot_cb(void *arg)
{
	struct slot *s = arg;
	int rv = nng_aio_result(s->aio);
	if (s->state == S_SEND) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(s->aio));
			slot_finish(s, rv == NNG_ETIMEDOUT ? TN_ETIMEDOUT : tn_err_from_nng(rv));
			return;
		}
		int64_t left = s->deadline_ms - tn_now_ms();
		if (left <= 0) {
			slot_finish(s, TN_ETIMEDOUT);
			return;
		}
		s->state = S_RECV;
		nng_aio_set_timeout(s->aio, (nng_duration)left);
		nng_ctx_recv(s->ctx, s->aio);
		return;
	}
	if (rv == 0)
		s->reply = nng_aio_get_msg(s->aio);
	slot_finish(s, rv == 0 ? TN_OK : rv == NNG_ETIMEDOUT ? TN_ETIMEDOUT : tn_err_from_nng(rv));
}

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct tn_rpc_client *cli = arg;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&cli->pipes, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&cli->pipes, 1);
}

int
tn_rpc_client_new(struct tn_rpc_client **out, const char *url,
	const struct tn_rpc_client_opts *opts, struct tn_exec exec)
{
	struct tn_rpc_client *cli = tn_calloc(1, sizeof(*cli));
	cli->exec = exec;
	cli->opts = *opts;
	atomic_init(&cli->refs, 1);
	int rv = nng_req0_open(&cli->sock);
	if (rv) {
		free(cli);
		return tn_err_from_nng(rv);
	}
	/* No automatic resend: a slow call would otherwise run twice. */
	nng_socket_set_ms(cli->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_pipe_notify(cli->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, cli);
	nng_pipe_notify(cli->sock, NNG_PIPE_EV_REM_POST, pipe_cb, cli);
	cli->slots = tn_calloc((size_t)opts->max_inflight, sizeof(*cli->slots));
	for (int i = 0; i < opts->max_inflight; i++) {
		struct slot *s = &cli->slots[i];
		s->cli = cli;
		if (nng_aio_alloc(&s->aio, slot_cb, s) != 0 || nng_ctx_open(&s->ctx, cli->sock) != 0) {
			fprintf(stderr, "fatal: nng context allocation failed\n");
			abort();
		}
		nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
		cli->nslots++;
		s->next_free = cli->free_slots;
		cli->free_slots = s;
	}
	rv = tn_nng_dial(cli->sock, url, opts->max_msg);
	if (rv) {
		tn_rpc_client_free(cli);
		return rv;
	}
	*out = cli;
	return TN_OK;
}

static void
slot_start(struct tn_rpc_client *cli, nng_msg *m, int64_t deadline, tn_rpc_done_fn done,
	void *arg)
{
	struct slot *s = cli->free_slots;
	cli->free_slots = s->next_free;
	cli->inflight++;
	s->deadline_ms = deadline;
	s->done = done;
	s->arg = arg;
	s->result = TN_OK;
	s->state = S_SEND;
	int64_t left = deadline - tn_now_ms();
	nng_aio_set_timeout(s->aio, (nng_duration)(left > 0 ? left : 1));
	nng_aio_set_msg(s->aio, m);
	nng_ctx_send(s->ctx, s->aio);
}

struct refusal {
	tn_rpc_done_fn done;
	void *arg;
	int err;
};

static void
refusal_run(void *arg, bool cancelled)
{
	struct refusal *r = arg;
	r->done(r->arg, cancelled ? TN_ECLOSED : r->err, NULL, 0);
	free(r);
}

/* Completes a call that never reached the wire, on the owner thread, later. */
static void
refuse(struct tn_rpc_client *cli, tn_rpc_done_fn done, void *arg, int err)
{
	struct refusal *r = tn_malloc(sizeof(*r));
	r->done = done;
	r->arg = arg;
	r->err = err;
	tn_exec_post(&cli->exec, refusal_run, r);
}

static void
start_queued(struct tn_rpc_client *cli)
{
	int64_t now = tn_now_ms();
	while (cli->qhead && cli->free_slots) {
		struct queued *q = cli->qhead;
		cli->qhead = q->next;
		if (cli->qhead == NULL)
			cli->qtail = NULL;
		cli->nqueued--;
		if (q->deadline_ms <= now) {
			nng_msg_free(q->msg);
			q->done(q->arg, TN_ETIMEDOUT, NULL, 0);
		} else {
			slot_start(cli, q->msg, q->deadline_ms, q->done, q->arg);
		}
		free(q);
	}
}

void
tn_rpc_call(struct tn_rpc_client *cli, const void *data, size_t len, int timeout_ms,
	tn_rpc_done_fn done, void *arg)
{
	if (cli->closing) {
		refuse(cli, done, arg, TN_ECLOSED);
		return;
	}
	if (cli->free_slots == NULL && cli->nqueued >= cli->opts.max_queued) {
		refuse(cli, done, arg, TN_EBUSY);
		return;
	}
	nng_msg *m;
	if (nng_msg_alloc(&m, len) != 0) {
		fprintf(stderr, "fatal: out of memory for an nng message\n");
		abort();
	}
	if (len)
		memcpy(nng_msg_body(m), data, len);
	int64_t deadline = tn_now_ms() + timeout_ms;
	if (cli->free_slots) {
		slot_start(cli, m, deadline, done, arg);
		return;
	}
	struct queued *q = tn_malloc(sizeof(*q));
	*q = (struct queued){.msg = m, .deadline_ms = deadline, .done = done, .arg = arg};
	if (cli->qtail)
		cli->qtail->next = q;
	else
		cli->qhead = q;
	cli->qtail = q;
	cli->nqueued++;
}

bool
tn_rpc_client_connected(const struct tn_rpc_client *cli)
{
	return atomic_load(&cli->pipes) > 0;
}

int
tn_rpc_client_pending(const struct tn_rpc_client *cli)
{
	return cli->inflight + cli->nqueued;
}

void
tn_rpc_client_free(struct tn_rpc_client *cli)
{
	if (cli == NULL)
		return;
	cli->closing = true;
	/* Stop every operation first (their callbacks finish the calls), then close: closing
	 * under a running callback can trip nng 1.5.2. Completions already posted hold
	 * references. */
	for (int i = 0; i < cli->nslots; i++)
		nng_aio_stop(cli->slots[i].aio);
	nng_close(cli->sock);
	while (cli->qhead) {
		struct queued *q = cli->qhead;
		cli->qhead = q->next;
		nng_msg_free(q->msg);
		refuse(cli, q->done, q->arg, TN_ECLOSED);
		free(q);
	}
	cli->qtail = NULL;
	cli->nqueued = 0;
	client_unref(cli);
}
