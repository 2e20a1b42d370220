/* One WebSocket client connection (ws://, RFC 6455) driven by a tn_cli_loop: name
 * lookup, non-blocking TCP connect (trying each address in turn), the HTTP upgrade,
 * binary messages in both directions, ping/pong, and the close handshake.
 *
 *   RESOLVING -> CONNECTING -> UPGRADING -> OPEN -> CLOSING -> CLOSED
 *
 * Every frame sent is masked with a fresh key; a message is always sent as one frame.
 * Incoming messages may be fragmented; text messages are dropped (a pomelo server sends
 * only binary ones, and the browser client ignores text). A ping is answered with a
 * pong carrying its payload.
 *
 * Callbacks run on the loop thread, never inside a call into this module. on_close is
 * the last one and comes exactly once, however the connection ended (also when it never
 * opened). All functions are for the loop thread. */
#ifndef TN_CLI_WS_CONN_H
#define TN_CLI_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_loop.h"

struct tn_cli_ws;

struct tn_cli_ws_cbs {
	/* The upgrade succeeded: messages may be sent. */
	void (*on_open)(void *arg);
	/* One complete binary message (len bytes, valid during the call). */
	void (*on_message)(void *arg, const uint8_t *data, size_t len);
	/* The connection is over. err: TN_OK when tn_cli_ws_close asked for it, TN_ECLOSED
	 * when the server closed it, TN_ETIMEDOUT when it did not open in time, TN_ENOENT
	 * when the host does not resolve, TN_EIO for a connect or socket error, TN_EPROTO
	 * when the server broke the protocol (a refused upgrade included), TN_ETOOBIG for a
	 * message over the limit. code is the close code received (1006 when there was no
	 * close frame); detail is a short human-readable text, valid during the call. */
	void (*on_close)(void *arg, int err, uint16_t code, const char *detail);
};

struct tn_cli_ws_opts {
	const char *path;         /* request path; NULL: "/" (borrowed for tn_cli_ws_new) */
	int64_t open_timeout_ms;  /* lookup + connect + upgrade; 0: none */
	int64_t close_timeout_ms; /* how long a close handshake may take */
	size_t max_message;       /* largest incoming message */
	size_t max_outbound;      /* queued outgoing bytes beyond which sending fails */
};

/* Defaults: path "/", 10 s to open, 2 s to close, 16 MiB + 64 bytes per message (a
 * largest pomelo package and then some), 4 MiB queued. */
void tn_cli_ws_opts_init(struct tn_cli_ws_opts *opts);

/* Starts connecting to ws://host:port/path. host is copied; opts, cbs and arg are
 * borrowed for the connection's life (opts only for the call). Returns TN_EINVAL, with
 * nothing started, for an empty host, one holding CR, LF or a space, or a port outside
 * 1..65535. */
int tn_cli_ws_new(struct tn_cli_ws **out, struct tn_cli_loop *loop, const char *host, int port,
        const struct tn_cli_ws_opts *opts, const struct tn_cli_ws_cbs *cbs, void *arg);

/* Queues one binary message (copied). TN_ECLOSED unless OPEN; TN_EBUSY when more than
 * max_outbound bytes are already queued (the server is not reading). A write error is
 * reported later through on_close, not here. */
int tn_cli_ws_send(struct tn_cli_ws *ws, const void *data, size_t len);

/* Starts closing: before OPEN the attempt is abandoned at once; when OPEN a close frame
 * with code (and reason, NULL for none) is sent and the server's close awaited, at most
 * close_timeout_ms. on_close follows with err TN_OK. A no-op once closing. */
void tn_cli_ws_close(struct tn_cli_ws *ws, uint16_t code, const char *reason);

/* Frees the connection at once, without the close handshake and without further
 * callbacks. May be called from inside this connection's callbacks (the memory is then
 * released when the callback returns). */
void tn_cli_ws_free(struct tn_cli_ws *ws);

/* True while OPEN. */
bool tn_cli_ws_is_open(const struct tn_cli_ws *ws);

/* Bytes queued for sending. */
size_t tn_cli_ws_pending(const struct tn_cli_ws *ws);

#endif
