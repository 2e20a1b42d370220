/* nng helpers: listen/dial, RPC over req/rep with deadlines, and pub/sub sockets.
 *
 * Server: a REP socket with a fixed number of worker contexts. Each received request is
 * handed to the owner thread (an executor, see loop.h); the owner answers it exactly once
 * with tn_rpc_reply, from any thread, possibly later (after its own calls).
 *
 * Client: one REQ socket per target server with a pool of contexts, a deadline per call
 * and a bound on calls in flight; further calls wait in a bounded queue. REQ's automatic
 * resend is off (a call that timed out may still have run: "outcome unknown"), and
 * NNG_OPT_RECVMAXSZ is set on every socket. Results are delivered on the owner thread. */
#ifndef TN_RPC_H
#define TN_RPC_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

/* "tcp://host:port" into out. Returns TN_EINVAL when it does not fit. */
int tn_nng_url(char *out, size_t len, const char *host, int port);

/* Opens a socket with NNG_OPT_RECVMAXSZ = max_msg and listens on url. Returns a tn_err;
 * on failure the socket is closed. */
int tn_nng_listen(nng_socket sock, const char *url, size_t max_msg);

/* Dials url without blocking; nng keeps redialling in the background. */
int tn_nng_dial(nng_socket sock, const char *url, size_t max_msg);

/* ---- server ---- */

struct tn_rpc_server;
struct tn_rpc_req;

/* Called on the owner thread with a request. data/len stay valid until the request is
 * answered. The handler (or code it hands the request to) must call tn_rpc_reply once. */
typedef void (*tn_rpc_handler_fn)(void *arg, struct tn_rpc_req *req, const uint8_t *data,
	size_t len);

/* Listens on url with `workers` contexts. Requests go to handler(arg, ...) through exec. */
int tn_rpc_server_start(struct tn_rpc_server **out, const char *url, int workers, size_t max_msg,
	struct tn_exec exec, tn_rpc_handler_fn handler, void *arg);

/* Answers req with len bytes (copied); req is gone afterwards. Any thread. */
void tn_rpc_reply(struct tn_rpc_req *req, const void *data, size_t len);

/* Stops the server: closes the socket, waits for every callback, frees everything.
 * Requests still held by the owner must not be answered afterwards: close the owner's
 * executor first (tn_loop_close), which drops them. */
void tn_rpc_server_stop(struct tn_rpc_server *srv);

/* ---- client ---- */

struct tn_rpc_client;

/* Called on the owner thread with the reply (err == TN_OK; data valid for the call only)
 * or an error: TN_ETIMEDOUT (deadline passed, outcome unknown), TN_EBUSY (queue full),
 * TN_ECLOSED (client stopping). */
typedef void (*tn_rpc_done_fn)(void *arg, int err, const uint8_t *data, size_t len);

struct tn_rpc_client_opts {
	int max_inflight; /* contexts, i.e. calls on the wire at once */
	int max_queued;   /* calls waiting for a context */
	size_t max_msg;   /* largest reply accepted */
};

/* Creates a client dialing url (non-blocking; redials in the background). exec delivers
 * results to the owner thread. */
int tn_rpc_client_new(struct tn_rpc_client **out, const char *url,
	const struct tn_rpc_client_opts *opts, struct tn_exec exec);

/* Sends a request (len bytes, copied) with a deadline timeout_ms from now. done(arg, ...)
 * is called exactly once on the owner thread, also when the call is refused at once.
 * Owner thread only. */
void tn_rpc_call(struct tn_rpc_client *cli, const void *data, size_t len, int timeout_ms,
	tn_rpc_done_fn done, void *arg);

/* True when at least one pipe to the server is connected. Any thread. */
bool tn_rpc_client_connected(const struct tn_rpc_client *cli);

/* Calls on the wire plus calls queued. Owner thread. */
int tn_rpc_client_pending(const struct tn_rpc_client *cli);

/* Stops the client: every outstanding call completes with TN_ECLOSED (through exec, so
 * possibly cancelled), then everything is freed. Owner thread, or after the owner
 * stopped. */
void tn_rpc_client_free(struct tn_rpc_client *cli);

#endif
