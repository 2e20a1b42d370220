#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "session.h"
#include "ws_conn.h"
#include "ws_frame.h"

#define LOG_MOD "client"
/* The browser declares a heartbeat timeout when less than this is left (gapThreshold). */
#define HB_GAP_MS 100

enum sess_state {
	SESS_OPENING = 0,
	SESS_READY = 1,
	SESS_CLOSING = 2,
	SESS_CLOSED = 3, /* on_close pending */
	SESS_DONE = 4,   /* on_close delivered */
};

struct tn_cli_sess {
	struct tn_cli_loop *loop;
	enum sess_state state;
	const struct tn_cli_sess_cbs *cbs;
	void *arg;
	struct tn_cli_ws *ws;
	char *host;
	int port;
	char *client_type;
	char *client_version;
	char *proto_version;
	size_t max_package;

	struct tn_pml_dict *dict; /* from the handshake; NULL: string routes */
	int64_t hb_interval;      /* ms; 0: no heartbeats */
	int64_t hb_deadline;      /* nothing received by then: dead */
	struct tn_cli_timer hb_send;
	struct tn_cli_timer hb_timeout;
	struct tn_cli_timer open_timer;
	struct tn_cli_timer report;

	int end_err;  /* what on_close will report */
	bool end_set; /* end_err/detail chosen before the socket finished closing */
	char detail[200];
	struct tn_buf out; /* scratch for encoding */
	struct tn_cli_sess_stats stats;

	unsigned busy;
	bool doomed;
};

void
tn_cli_sess_opts_init(struct tn_cli_sess_opts *opts)
{
	opts->open_timeout_ms = 10000;
	opts->max_package = TN_PML_PKG_MAX_BODY;
	opts->client_type = "js-websocket";
	opts->client_version = "0.0.1";
	opts->proto_version = NULL;
	opts->path = NULL;
}

bool
tn_cli_sess_is_ready(const struct tn_cli_sess *s)
{
	return s->state == SESS_READY;
}

int64_t
tn_cli_sess_heartbeat_ms(const struct tn_cli_sess *s)
{
	return s->hb_interval;
}

void
tn_cli_sess_stats(struct tn_cli_sess_stats *out, const struct tn_cli_sess *s)
{
	*out = s->stats;
}

/* ---- teardown ---- */

static void
destroy(struct tn_cli_sess *s)
{
	tn_cli_ws_free(s->ws);
	tn_cli_timer_stop(s->loop, &s->hb_send);
	tn_cli_timer_stop(s->loop, &s->hb_timeout);
	tn_cli_timer_stop(s->loop, &s->open_timer);
	tn_cli_timer_stop(s->loop, &s->report);
	tn_pml_dict_free(s->dict);
	tn_buf_fini(&s->out);
	free(s->host);
	free(s->client_type);
	free(s->client_version);
	free(s->proto_version);
	free(s);
}

void
tn_cli_sess_free(struct tn_cli_sess *s)
{
	if (s == NULL)
		return;
	if (s->busy) {
		s->doomed = true;
		s->cbs = NULL;
		return;
	}
	destroy(s);
}

static void
enter(struct tn_cli_sess *s)
{
	s->busy++;
}

/* Returns false when the session was freed inside the section. */
static bool
leave(struct tn_cli_sess *s)
{
	if (--s->busy == 0 && s->doomed) {
		destroy(s);
		return false;
	}
	return true;
}

/* True while callbacks may still be made and input processed. */
static bool
alive(const struct tn_cli_sess *s)
{
	return !s->doomed && s->state < SESS_CLOSED;
}

static void set_end(struct tn_cli_sess *s, int err, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void
set_end(struct tn_cli_sess *s, int err, const char *fmt, va_list ap)
{
	char text[sizeof(s->detail)];
	vsnprintf(text, sizeof(text), fmt, ap);
	memcpy(s->detail, text, sizeof(text));
	s->end_err = err;
	s->end_set = true;
}

static void
on_report(void *arg)
{
	struct tn_cli_sess *s = arg;
	s->state = SESS_DONE;
	if (s->cbs == NULL)
		return;
	enter(s);
	s->cbs->on_close(s->arg, s, s->end_err, s->detail);
	leave(s);
}

/* Ends the session now (socket dropped, timers stopped); on_close comes next iteration. */
static void end(struct tn_cli_sess *s, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
end(struct tn_cli_sess *s, int err, const char *fmt, ...)
{
	if (s->state >= SESS_CLOSED)
		return;
	va_list ap;
	va_start(ap, fmt);
	set_end(s, err, fmt, ap);
	va_end(ap);
	tn_cli_ws_free(s->ws);
	s->ws = NULL;
	tn_cli_timer_stop(s->loop, &s->hb_send);
	tn_cli_timer_stop(s->loop, &s->hb_timeout);
	tn_cli_timer_stop(s->loop, &s->open_timer);
	s->state = SESS_CLOSED;
	tn_cli_timer_start(s->loop, &s->report, 0);
}

/* Closes cleanly after a reason was chosen (kick, heartbeat timeout): the close
 * handshake runs, and on_close reports the reason given here. */
static void close_with(struct tn_cli_sess *s, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
close_with(struct tn_cli_sess *s, int err, const char *fmt, ...)
{
	if (s->state >= SESS_CLOSING)
		return;
	va_list ap;
	va_start(ap, fmt);
	set_end(s, err, fmt, ap);
	va_end(ap);
	s->state = SESS_CLOSING;
	tn_cli_timer_stop(s->loop, &s->hb_send);
	tn_cli_timer_stop(s->loop, &s->hb_timeout);
	tn_cli_timer_stop(s->loop, &s->open_timer);
	tn_cli_ws_close(s->ws, TN_CLI_WS_CLOSE_NORMAL, NULL);
}

void
tn_cli_sess_close(struct tn_cli_sess *s)
{
	if (s->state == SESS_OPENING) {
		end(s, TN_OK, "closed before the session was ready");
		return;
	}
	close_with(s, TN_OK, "closed");
}

/* ---- output ---- */

/* Sends the packages in s->out as one WebSocket message. */
static int
send_out(struct tn_cli_sess *s)
{
	int rv = tn_cli_ws_send(s->ws, s->out.data, s->out.len);
	tn_buf_reset(&s->out);
	return rv;
}

static int
send_empty(struct tn_cli_sess *s, enum tn_pml_pkg_type type)
{
	tn_buf_reset(&s->out);
	tn_pml_pkg_encode(&s->out, type, NULL, 0);
	return send_out(s);
}

static int
send_message(struct tn_cli_sess *s, struct tn_pml_msg *msg, const char *route, size_t route_len,
        const void *body, size_t len)
{
	if (s->state != SESS_READY)
		return TN_ECLOSED;
	if (route_len == 0 || route_len > TN_PML_ROUTE_MAX || memchr(route, '\0', route_len))
		return TN_EINVAL;
	tn_pml_msg_set_route(msg, s->dict, route, route_len);
	msg->body = body;
	msg->body_len = len;
	tn_buf_reset(&s->out);
	int rv = tn_pml_msg_encode_pkg(&s->out, msg);
	if (rv != TN_OK) {
		tn_buf_reset(&s->out);
		return rv;
	}
	return send_out(s);
}

int
tn_cli_sess_request(struct tn_cli_sess *s, uint32_t id, const char *route, size_t route_len,
        const void *body, size_t len)
{
	if (id == 0)
		return TN_EINVAL;
	struct tn_pml_msg msg = {.type = TN_PML_MSG_REQUEST, .id = id};
	return send_message(s, &msg, route, route_len, body, len);
}

int
tn_cli_sess_notify(
        struct tn_cli_sess *s, const char *route, size_t route_len, const void *body, size_t len)
{
	struct tn_pml_msg msg = {.type = TN_PML_MSG_NOTIFY};
	return send_message(s, &msg, route, route_len, body, len);
}

/* ---- heartbeats ---- */

static void
on_hb_send(void *arg)
{
	struct tn_cli_sess *s = arg;
	if (s->state != SESS_READY)
		return;
	send_empty(s, TN_PML_PKG_HEARTBEAT);
	s->stats.heartbeats_sent++;
	int64_t now = tn_cli_loop_now(s->loop);
	s->hb_deadline = now + 2 * s->hb_interval;
	tn_cli_timer_start_at(s->loop, &s->hb_timeout, s->hb_deadline);
}

static void
on_hb_timeout(void *arg)
{
	struct tn_cli_sess *s = arg;
	int64_t gap = s->hb_deadline - tn_cli_loop_now(s->loop);
	if (gap > HB_GAP_MS) {
		tn_cli_timer_start_at(s->loop, &s->hb_timeout, s->hb_deadline);
		return;
	}
	tn_debug(LOG_MOD, "heartbeat timeout host=%s port=%d interval_ms=%lld", s->host, s->port,
	        (long long)s->hb_interval);
	/* No close handshake: a server silent this long would not answer it either. */
	end(s, TN_ETIMEDOUT, "heartbeat timeout: nothing from the server for %lld ms",
	        (long long)(2 * s->hb_interval));
}

static void
got_heartbeat(struct tn_cli_sess *s)
{
	s->stats.heartbeats_received++;
	if (s->hb_interval <= 0)
		return;
	tn_cli_timer_stop(s->loop, &s->hb_timeout);
	if (!tn_cli_timer_armed(&s->hb_send))
		tn_cli_timer_start(s->loop, &s->hb_send, s->hb_interval);
}

/* ---- input ---- */

static void
got_handshake(struct tn_cli_sess *s, const struct tn_pml_pkg *pkg)
{
	struct tn_pml_hs_reply hs;
	if (s->state != SESS_OPENING) {
		s->stats.bad_messages++;
		return;
	}
	if (tn_pml_hs_reply_parse(&hs, pkg->body, pkg->len) != TN_OK) {
		end(s, TN_EPROTO, "malformed handshake response");
		return;
	}
	if (hs.code != TN_PML_HS_OK) {
		int code = hs.code;
		tn_pml_hs_reply_fini(&hs);
		if (code == TN_PML_HS_OLD_CLIENT)
			end(s, TN_EVERSION,
			        "handshake refused: client version not accepted (code 501)");
		else
			end(s, TN_EPROTO, "handshake refused (code %d)", code);
		return;
	}
	s->dict = hs.dict;
	hs.dict = NULL;
	s->hb_interval = hs.heartbeat_ms > 0 ? hs.heartbeat_ms : 0;
	send_empty(s, TN_PML_PKG_HANDSHAKE_ACK);
	s->state = SESS_READY;
	tn_cli_timer_stop(s->loop, &s->open_timer);
	if (s->hb_interval > 0) {
		s->hb_deadline = tn_cli_loop_now(s->loop) + 2 * s->hb_interval;
		tn_cli_timer_start_at(s->loop, &s->hb_timeout, s->hb_deadline);
	}
	if (s->cbs)
		s->cbs->on_ready(s->arg, s, &hs);
	tn_pml_hs_reply_fini(&hs);
}

static void
got_kick(struct tn_cli_sess *s, const struct tn_pml_pkg *pkg)
{
	struct tn_buf reason;
	tn_buf_init(&reason);
	if (tn_pml_kick_decode(&reason, pkg->body, pkg->len) != TN_OK)
		tn_buf_reset(&reason);
	tn_buf_append_byte(&reason, 0);
	const char *text = (const char *)reason.data;
	tn_debug(LOG_MOD, "kicked host=%s port=%d reason=\"%s\"", s->host, s->port, text);
	if (s->cbs)
		s->cbs->on_kick(s->arg, s, text);
	if (alive(s))
		close_with(s, TN_ECLOSED, "kicked by the server: %s", *text ? text : "(no reason)");
	tn_buf_fini(&reason);
}

static void
got_push(struct tn_cli_sess *s, struct tn_pml_msg *msg)
{
	if (tn_pml_msg_resolve(msg, s->dict) != TN_OK) {
		tn_debug(LOG_MOD, "push with an unknown route code=%u", msg->route_code);
		s->stats.bad_messages++;
		return;
	}
	/* The route needs a NUL for the callback; routes are at most 255 bytes. */
	char route[TN_PML_ROUTE_MAX + 1];
	memcpy(route, msg->route, msg->route_len);
	route[msg->route_len] = '\0';
	if (s->cbs)
		s->cbs->on_push(s->arg, s, route, msg->route_len, msg->body, msg->body_len);
}

static void
got_data(struct tn_cli_sess *s, const struct tn_pml_pkg *pkg)
{
	struct tn_pml_msg msg;
	if (s->state != SESS_READY || tn_pml_msg_decode(&msg, pkg->body, pkg->len) != TN_OK) {
		s->stats.bad_messages++;
		return;
	}
	if (msg.type == TN_PML_MSG_RESPONSE) {
		if (s->cbs)
			s->cbs->on_response(s->arg, s, msg.id, msg.body, msg.body_len);
	} else if (msg.type == TN_PML_MSG_PUSH) {
		got_push(s, &msg);
	} else {
		s->stats.bad_messages++;
	}
}

static void
got_package(struct tn_cli_sess *s, const struct tn_pml_pkg *pkg)
{
	switch (pkg->type) {
	case TN_PML_PKG_HANDSHAKE: got_handshake(s, pkg); break;
	case TN_PML_PKG_HEARTBEAT:
		if (s->state == SESS_READY)
			got_heartbeat(s);
		break;
	case TN_PML_PKG_DATA: got_data(s, pkg); break;
	case TN_PML_PKG_KICK: got_kick(s, pkg); break;
	default: /* HANDSHAKE_ACK: the server must never send it */
		end(s, TN_EPROTO, "the server sent a package of type %d", (int)pkg->type);
		break;
	}
}

static void
ws_message(void *arg, const uint8_t *data, size_t len)
{
	struct tn_cli_sess *s = arg;
	enter(s);
	/* Anything at all from the server proves it alive (the browser's onmessage). */
	if (s->hb_interval > 0 && s->state == SESS_READY)
		s->hb_deadline = tn_cli_loop_now(s->loop) + 2 * s->hb_interval;
	struct tn_pml_pkg_iter it;
	tn_pml_pkg_iter_init(&it, data, len, s->max_package);
	while (alive(s) && s->state != SESS_CLOSING && tn_pml_pkg_iter_more(&it)) {
		struct tn_pml_pkg pkg;
		int rv = tn_pml_pkg_next(&pkg, &it);
		if (rv != TN_OK) {
			end(s, TN_EPROTO, "bad package framing from the server: %s",
			        tn_strerror(rv));
			break;
		}
		got_package(s, &pkg);
	}
	leave(s);
}

static void
ws_open(void *arg)
{
	struct tn_cli_sess *s = arg;
	struct tn_pml_hs_client_info info = {
	        .type = s->client_type,
	        .version = s->client_version,
	        .proto_version = s->proto_version,
	};
	tn_buf_reset(&s->out);
	tn_pml_hs_request_encode(&s->out, &info);
	send_out(s);
}

static void
ws_close(void *arg, int err, uint16_t code, const char *detail)
{
	struct tn_cli_sess *s = arg;
	enter(s);
	if (s->end_set)
		end(s, s->end_err, "%s", s->detail);
	else if (err == TN_OK)
		end(s, TN_OK, "closed");
	else
		end(s, err, "%s", detail);
	leave(s);
}

static const struct tn_cli_ws_cbs ws_cbs = {
        .on_open = ws_open,
        .on_message = ws_message,
        .on_close = ws_close,
};

static void
on_open_timeout(void *arg)
{
	struct tn_cli_sess *s = arg;
	end(s, TN_ETIMEDOUT, "timed out opening a session with %s:%d", s->host, s->port);
}

int
tn_cli_sess_new(struct tn_cli_sess **out, struct tn_cli_loop *loop, const char *host, int port,
        const struct tn_cli_sess_opts *opts, const struct tn_cli_sess_cbs *cbs, void *arg)
{
	struct tn_cli_ws_opts wo;
	tn_cli_ws_opts_init(&wo);
	wo.path = opts->path;
	wo.open_timeout_ms = 0; /* the session's own deadline covers the handshake too */
	/* A message may hold several packages; allow a few largest ones. */
	wo.max_message = opts->max_package + TN_PML_PKG_HEADER_LEN + 4096;
	struct tn_cli_sess *s = tn_calloc(1, sizeof(*s));
	int rv = tn_cli_ws_new(&s->ws, loop, host, port, &wo, &ws_cbs, s);
	if (rv != TN_OK) {
		free(s);
		return rv;
	}
	s->loop = loop;
	s->cbs = cbs;
	s->arg = arg;
	s->host = tn_strdup(host);
	s->port = port;
	s->client_type = tn_strdup(opts->client_type ? opts->client_type : "js-websocket");
	s->client_version = tn_strdup(opts->client_version ? opts->client_version : "0.0.1");
	s->proto_version = opts->proto_version ? tn_strdup(opts->proto_version) : NULL;
	s->max_package = opts->max_package;
	tn_buf_init(&s->out);
	tn_cli_timer_init(&s->hb_send, on_hb_send, s);
	tn_cli_timer_init(&s->hb_timeout, on_hb_timeout, s);
	tn_cli_timer_init(&s->open_timer, on_open_timeout, s);
	tn_cli_timer_init(&s->report, on_report, s);
	if (opts->open_timeout_ms > 0)
		tn_cli_timer_start(loop, &s->open_timer, opts->open_timeout_ms);
	*out = s;
	return TN_OK;
}
