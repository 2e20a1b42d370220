#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "resolve.h"
#include "ws_conn.h"
#include "ws_frame.h"
#include "ws_http.h"

#define LOG_MOD "client"
/* Bytes read per readiness event before other connections get their turn. */
#define READ_BUDGET (256 * 1024)
#define READ_CHUNK  (16 * 1024)

enum ws_state {
	WS_RESOLVING = 0,
	WS_CONNECTING = 1,
	WS_UPGRADING = 2,
	WS_OPEN = 3,
	WS_CLOSING = 4, /* our close frame is out, waiting for the server's and its FIN */
	WS_CLOSED = 5,  /* socket gone, on_close pending */
	WS_DONE = 6,    /* on_close delivered */
};

struct tn_cli_ws {
	struct tn_cli_loop *loop;
	enum ws_state state;
	const struct tn_cli_ws_cbs *cbs;
	void *arg;
	char *host;
	int port;
	char *path;
	int64_t close_timeout_ms;
	size_t max_message;
	size_t max_outbound;
	char key[TN_CLI_WS_KEY_LEN + 1];

	struct tn_cli_resolve *resolve;
	struct addrinfo *ai;      /* the resolved list */
	struct addrinfo *ai_next; /* the next address to try */
	int fd;
	struct tn_cli_watch watch;
	struct tn_cli_timer timer;  /* open deadline, then close deadline */
	struct tn_cli_timer report; /* delivers on_close outside any call into us */

	struct tn_buf rx;
	struct tn_buf tx;
	size_t tx_off; /* bytes of tx already written */
	struct tn_cli_ws_asm asm_;

	bool close_sent;
	bool close_received;
	int close_err;       /* what on_close will report */
	uint16_t close_code; /* the code received, 1006 until one is */
	char detail[160];

	unsigned busy; /* nesting depth of our callbacks into the owner */
	bool doomed;   /* freed while busy: release on the way out */
};

void
tn_cli_ws_opts_init(struct tn_cli_ws_opts *opts)
{
	opts->path = NULL;
	opts->open_timeout_ms = 10000;
	opts->close_timeout_ms = 2000;
	opts->max_message = (16u << 20) + 64;
	opts->max_outbound = 4u << 20;
}

bool
tn_cli_ws_is_open(const struct tn_cli_ws *ws)
{
	return ws->state == WS_OPEN;
}

size_t
tn_cli_ws_pending(const struct tn_cli_ws *ws)
{
	return ws->tx.len - ws->tx_off;
}

/* ---- teardown ---- */

static void
release_socket(struct tn_cli_ws *ws)
{
	tn_cli_watch_stop(ws->loop, &ws->watch);
	if (ws->fd >= 0)
		close(ws->fd);
	ws->fd = -1;
}

static void
destroy(struct tn_cli_ws *ws)
{
	if (ws->resolve)
		tn_cli_resolve_cancel(ws->resolve);
	release_socket(ws);
	tn_cli_timer_stop(ws->loop, &ws->timer);
	tn_cli_timer_stop(ws->loop, &ws->report);
	if (ws->ai)
		freeaddrinfo(ws->ai);
	tn_buf_fini(&ws->rx);
	tn_buf_fini(&ws->tx);
	tn_cli_ws_asm_fini(&ws->asm_);
	free(ws->host);
	free(ws->path);
	free(ws);
}

void
tn_cli_ws_free(struct tn_cli_ws *ws)
{
	if (ws == NULL)
		return;
	if (ws->busy) {
		ws->doomed = true;
		ws->cbs = NULL;
		return;
	}
	destroy(ws);
}

/* Leaves a callback section; returns false when the connection was freed meanwhile (the
 * caller must not touch it). */
static bool
leave(struct tn_cli_ws *ws)
{
	if (--ws->busy == 0 && ws->doomed) {
		destroy(ws);
		return false;
	}
	return true;
}

static void
on_report(void *arg)
{
	struct tn_cli_ws *ws = arg;
	ws->state = WS_DONE;
	if (ws->cbs == NULL)
		return;
	ws->busy++;
	ws->cbs->on_close(ws->arg, ws->close_err, ws->close_code, ws->detail);
	leave(ws);
}

/* Ends the connection: the socket goes now, on_close on the next loop iteration. */
static void finish(struct tn_cli_ws *ws, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
finish(struct tn_cli_ws *ws, int err, const char *fmt, ...)
{
	if (ws->state >= WS_CLOSED)
		return;
	if (ws->resolve) {
		tn_cli_resolve_cancel(ws->resolve);
		ws->resolve = NULL;
	}
	release_socket(ws);
	tn_cli_timer_stop(ws->loop, &ws->timer);
	ws->state = WS_CLOSED;
	ws->close_err = err;
	/* Format into a copy: an argument may be ws->detail itself. */
	char text[sizeof(ws->detail)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	memcpy(ws->detail, text, sizeof(text));
	tn_cli_timer_start(ws->loop, &ws->report, 0);
}

/* ---- output ---- */

static void
want_output(struct tn_cli_ws *ws, bool on)
{
	tn_cli_watch_set(ws->loop, &ws->watch, TN_CLI_IO_IN | (on ? TN_CLI_IO_OUT : 0));
}

/* Writes what is queued until the socket would block. Returns false when the connection
 * failed (and was finished). */
static bool
flush(struct tn_cli_ws *ws)
{
	while (ws->tx_off < ws->tx.len) {
		ssize_t n = send(ws->fd, ws->tx.data + ws->tx_off, ws->tx.len - ws->tx_off,
		        MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			ws->tx_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			want_output(ws, true);
			return true;
		}
		finish(ws, TN_EIO, "send failed: %s", n < 0 ? strerror(errno) : "no progress");
		return false;
	}
	tn_buf_reset(&ws->tx);
	ws->tx_off = 0;
	want_output(ws, false);
	return true;
}

static void
queue_frame(struct tn_cli_ws *ws, enum tn_cli_ws_op op, const void *data, size_t len)
{
	uint64_t r = tn_cli_loop_random(ws->loop);
	uint8_t mask[4];
	memcpy(mask, &r, sizeof(mask));
	/* Drop what was written already before the buffer grows again. */
	if (ws->tx_off > 0 && ws->tx_off >= ws->tx.len / 2) {
		tn_buf_consume(&ws->tx, ws->tx_off);
		ws->tx_off = 0;
	}
	tn_cli_ws_frame_encode(&ws->tx, op, true, data, len, mask);
}

int
tn_cli_ws_send(struct tn_cli_ws *ws, const void *data, size_t len)
{
	if (ws->state != WS_OPEN)
		return TN_ECLOSED;
	if (tn_cli_ws_pending(ws) > ws->max_outbound)
		return TN_EBUSY;
	bool idle = tn_cli_ws_pending(ws) == 0;
	queue_frame(ws, TN_CLI_WS_BINARY, data, len);
	if (idle)
		flush(ws);
	return TN_OK;
}

static void
send_close(struct tn_cli_ws *ws, uint16_t code, const char *reason)
{
	struct tn_buf payload;
	tn_buf_init(&payload);
	tn_cli_ws_close_payload(&payload, code, reason);
	queue_frame(ws, TN_CLI_WS_CLOSE, payload.data, payload.len);
	tn_buf_fini(&payload);
	ws->close_sent = true;
}

void
tn_cli_ws_close(struct tn_cli_ws *ws, uint16_t code, const char *reason)
{
	if (ws->state < WS_OPEN) {
		finish(ws, TN_OK, "closed before the connection opened");
		return;
	}
	if (ws->state != WS_OPEN)
		return;
	ws->state = WS_CLOSING;
	ws->close_err = TN_OK;
	send_close(ws, code, reason);
	tn_cli_timer_start(ws->loop, &ws->timer, ws->close_timeout_ms);
	flush(ws);
}

/* Answers a protocol violation: a close frame with code if we can, then the socket goes
 * at once, since the stream can no longer be trusted. */
static void
fail_protocol(struct tn_cli_ws *ws, int err, uint16_t code, const char *what)
{
	if (ws->state == WS_OPEN && !ws->close_sent) {
		send_close(ws, code, NULL);
		/* One best-effort write; the socket is closed right after. */
		ssize_t n = send(ws->fd, ws->tx.data + ws->tx_off, ws->tx.len - ws->tx_off,
		        MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;
	}
	ws->close_code = code;
	finish(ws, err, "%s", what);
}

/* ---- frames in ---- */

static void
handle_close_frame(struct tn_cli_ws *ws, const struct tn_cli_ws_frame *f)
{
	uint16_t code;
	const uint8_t *reason;
	size_t rlen;
	if (tn_cli_ws_close_parse(&code, &reason, &rlen, f->payload, f->len) != TN_OK) {
		fail_protocol(ws, TN_EPROTO, TN_CLI_WS_CLOSE_PROTOCOL, "malformed close frame");
		return;
	}
	ws->close_received = true;
	ws->close_code = code;
	if (ws->state == WS_OPEN) {
		/* The server started it: echo the code, then wait for it to drop the TCP. */
		ws->state = WS_CLOSING;
		ws->close_err = TN_ECLOSED;
		snprintf(ws->detail, sizeof(ws->detail), "closed by the server (code %u%s%.*s)",
		        code, rlen ? ": " : "", (int)(rlen > 100 ? 100 : rlen),
		        (const char *)reason);
		send_close(ws, code == TN_CLI_WS_CLOSE_NO_STATUS ? TN_CLI_WS_CLOSE_NORMAL : code,
		        NULL);
		tn_cli_timer_start(ws->loop, &ws->timer, ws->close_timeout_ms);
		flush(ws);
	}
}

/* Delivers a data frame's message, if it completes one. Returns false when the caller
 * must stop processing (connection failed or freed). */
static bool
handle_data_frame(struct tn_cli_ws *ws, const struct tn_cli_ws_frame *f)
{
	enum tn_cli_ws_op op;
	const uint8_t *msg;
	size_t len;
	int rv = tn_cli_ws_asm_feed(&ws->asm_, f, &op, &msg, &len);
	if (rv == TN_ETRUNC)
		return true;
	if (rv == TN_ETOOBIG) {
		fail_protocol(
		        ws, TN_ETOOBIG, TN_CLI_WS_CLOSE_TOO_BIG, "message over the size limit");
		return false;
	}
	if (rv != TN_OK) {
		fail_protocol(ws, TN_EPROTO, TN_CLI_WS_CLOSE_PROTOCOL, "bad message fragmentation");
		return false;
	}
	if (op == TN_CLI_WS_TEXT) {
		tn_debug(LOG_MOD, "text message dropped host=%s len=%zu", ws->host, len);
		return true;
	}
	/* After our close frame nothing more is wanted. */
	if (ws->state != WS_OPEN || ws->cbs == NULL)
		return true;
	ws->cbs->on_message(ws->arg, msg, len);
	return !ws->doomed && ws->state <= WS_CLOSING;
}

static bool
handle_frame(struct tn_cli_ws *ws, const struct tn_cli_ws_frame *f)
{
	switch (f->op) {
	case TN_CLI_WS_PING:
		if (!ws->close_sent) {
			queue_frame(ws, TN_CLI_WS_PONG, f->payload, f->len);
			return flush(ws);
		}
		return true;
	case TN_CLI_WS_PONG: return true;
	case TN_CLI_WS_CLOSE: handle_close_frame(ws, f); return ws->state <= WS_CLOSING;
	default: return handle_data_frame(ws, f);
	}
}

/* Decodes and handles the frames in rx; returns false when the caller must stop. */
static bool
process_frames(struct tn_cli_ws *ws)
{
	size_t off = 0;
	bool go = true;
	while (go && off < ws->rx.len) {
		struct tn_cli_ws_frame f;
		size_t used;
		int rv = tn_cli_ws_frame_decode(
		        &f, &used, ws->rx.data + off, ws->rx.len - off, ws->max_message, false);
		if (rv == TN_ETRUNC)
			break;
		if (rv != TN_OK) {
			fail_protocol(ws, rv == TN_ETOOBIG ? TN_ETOOBIG : TN_EPROTO,
			        rv == TN_ETOOBIG ? TN_CLI_WS_CLOSE_TOO_BIG
			                         : TN_CLI_WS_CLOSE_PROTOCOL,
			        rv == TN_ETOOBIG ? "frame over the size limit" : "bad frame");
			return false;
		}
		off += used;
		go = handle_frame(ws, &f);
	}
	if (ws->doomed || ws->state >= WS_CLOSED)
		return false;
	tn_buf_consume(&ws->rx, off);
	return go;
}

/* ---- the upgrade ---- */

static bool
process_upgrade(struct tn_cli_ws *ws)
{
	size_t head;
	int rv = tn_cli_ws_upgrade_check(&head, ws->rx.data, ws->rx.len, ws->key);
	if (rv == TN_ETRUNC)
		return true;
	if (rv != TN_OK) {
		int status = tn_cli_http_status(ws->rx.data, ws->rx.len);
		if (status > 0 && status != 101)
			finish(ws, TN_EPROTO, "upgrade refused: HTTP status %d", status);
		else
			finish(ws, TN_EPROTO, "invalid upgrade response");
		return false;
	}
	tn_buf_consume(&ws->rx, head);
	ws->state = WS_OPEN;
	tn_cli_timer_stop(ws->loop, &ws->timer);
	if (ws->cbs)
		ws->cbs->on_open(ws->arg);
	return !ws->doomed && ws->state <= WS_CLOSING;
}

static void
handle_eof(struct tn_cli_ws *ws)
{
	switch (ws->state) {
	case WS_UPGRADING: finish(ws, TN_ECLOSED, "connection closed during the upgrade"); break;
	case WS_OPEN: finish(ws, TN_ECLOSED, "connection closed by the server"); break;
	default: /* CLOSING: the normal end of a close handshake */
		if (ws->close_err == TN_OK)
			finish(ws, TN_OK, "closed");
		else
			finish(ws, ws->close_err, "%s", ws->detail);
		break;
	}
}

/* Reads what the socket has (up to the budget) and processes it. */
static void
read_input(struct tn_cli_ws *ws)
{
	size_t total = 0;
	while (total < READ_BUDGET && ws->state >= WS_UPGRADING && ws->state <= WS_CLOSING) {
		uint8_t *p = tn_buf_reserve(&ws->rx, READ_CHUNK);
		ssize_t n = recv(ws->fd, p, READ_CHUNK, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			finish(ws, errno == ECONNRESET ? TN_ECLOSED : TN_EIO, "receive failed: %s",
			        strerror(errno));
			return;
		}
		if (n == 0) {
			handle_eof(ws);
			return;
		}
		ws->rx.len += (size_t)n;
		total += (size_t)n;
		if (ws->state == WS_UPGRADING && !process_upgrade(ws))
			return;
		if (ws->state >= WS_OPEN && !process_frames(ws))
			return;
	}
}

/* ---- connecting ---- */

static void on_io(void *arg, unsigned events);

static void
start_upgrade(struct tn_cli_ws *ws)
{
	ws->state = WS_UPGRADING;
	tn_cli_ws_key_new(ws->key);
	tn_cli_ws_upgrade_request(&ws->tx, ws->host, ws->port, ws->path, ws->key);
	flush(ws);
}

/* Tries the addresses from ai_next on; finishes the connection when none is left. */
static void
connect_next(struct tn_cli_ws *ws, int last_errno)
{
	while (ws->ai_next) {
		struct addrinfo *a = ws->ai_next;
		ws->ai_next = a->ai_next;
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
			last_errno = errno;
			close(fd);
			continue;
		}
		ws->fd = fd;
		ws->state = WS_CONNECTING;
		if (tn_cli_watch_start(ws->loop, &ws->watch, fd, TN_CLI_IO_OUT, on_io, ws) !=
		        TN_OK) {
			finish(ws, TN_EIO, "cannot watch the socket");
			return;
		}
		return;
	}
	finish(ws, TN_EIO, "cannot connect to %s:%d: %s", ws->host, ws->port,
	        last_errno ? strerror(last_errno) : "no address");
}

static void
connect_done(struct tn_cli_ws *ws)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(ws->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		release_socket(ws);
		connect_next(ws, err);
		return;
	}
	start_upgrade(ws);
}

static void
on_io(void *arg, unsigned events)
{
	struct tn_cli_ws *ws = arg;
	ws->busy++;
	if (ws->state == WS_CONNECTING) {
		if (events & (TN_CLI_IO_OUT | TN_CLI_IO_ERR))
			connect_done(ws);
	} else {
		if ((events & TN_CLI_IO_OUT) && ws->state < WS_CLOSED)
			flush(ws);
		if ((events & (TN_CLI_IO_IN | TN_CLI_IO_ERR)) && ws->state < WS_CLOSED)
			read_input(ws);
	}
	leave(ws);
}

static void
on_resolved(void *arg, int err, struct addrinfo *ai)
{
	struct tn_cli_ws *ws = arg;
	ws->resolve = NULL;
	if (err != TN_OK) {
		finish(ws, err, "cannot resolve %s: %s", ws->host,
		        err == TN_ENOENT ? "no such host" : "lookup failed");
		return;
	}
	ws->ai = ai;
	ws->ai_next = ai;
	ws->busy++;
	connect_next(ws, 0);
	leave(ws);
}

static void
on_timer(void *arg)
{
	struct tn_cli_ws *ws = arg;
	if (ws->state < WS_OPEN)
		finish(ws, TN_ETIMEDOUT, "timed out connecting to %s:%d", ws->host, ws->port);
	else if (ws->state == WS_CLOSING)
		finish(ws, ws->close_err,
		        ws->close_err == TN_OK ? "closed (the server did not finish the close)"
		                               : "%s",
		        ws->detail);
}

int
tn_cli_ws_new(struct tn_cli_ws **out, struct tn_cli_loop *loop, const char *host, int port,
        const struct tn_cli_ws_opts *opts, const struct tn_cli_ws_cbs *cbs, void *arg)
{
	const char *path = opts->path && *opts->path ? opts->path : "/";
	if (host == NULL || *host == '\0' || strpbrk(host, "\r\n ") || port < 1 || port > 65535 ||
	        path[0] != '/' || strpbrk(path, "\r\n "))
		return TN_EINVAL;
	struct tn_cli_ws *ws = tn_calloc(1, sizeof(*ws));
	ws->loop = loop;
	ws->cbs = cbs;
	ws->arg = arg;
	ws->host = tn_strdup(host);
	ws->port = port;
	ws->path = tn_strdup(path);
	ws->close_timeout_ms = opts->close_timeout_ms;
	ws->max_message = opts->max_message;
	ws->max_outbound = opts->max_outbound;
	ws->fd = -1;
	ws->close_code = TN_CLI_WS_CLOSE_ABNORMAL;
	tn_buf_init(&ws->rx);
	tn_buf_init(&ws->tx);
	tn_cli_ws_asm_init(&ws->asm_, opts->max_message);
	tn_cli_timer_init(&ws->timer, on_timer, ws);
	tn_cli_timer_init(&ws->report, on_report, ws);
	if (opts->open_timeout_ms > 0)
		tn_cli_timer_start(loop, &ws->timer, opts->open_timeout_ms);
	ws->state = WS_RESOLVING;
	ws->resolve = tn_cli_resolve_start(loop, host, port, on_resolved, ws);
	*out = ws;
	return TN_OK;
}
