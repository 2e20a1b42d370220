/* One WebSocket session: message reassembly, the pomelo state machine (tn_pml_conn), the
 * checks of docs/protocol-hardening.md, the token bucket, the bounded outbound queue and
 * the close sequence. Owner thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "clock.h"
#include "edge_internal.h"
#include "err.h"
#include "json.h"
#include "log.h"

/* An inbound buffer that grew past this (a large message) is freed when the message ends,
 * so that one burst does not pin memory on an idle session. */
#define RX_KEEP (8u * 1024u)

static atomic_uint_fast64_t next_sess_id = 1;

static unsigned long long
sid(const struct tn_edge_sess *s)
{
	return (unsigned long long)s->id;
}

/* ---- output and closing ---- */

static void
want_write(struct tn_edge_sess *s)
{
	if (s->want_write || s->wsi == NULL || s->e->closed)
		return;
	s->want_write = true;
	lws_callback_on_writable(s->wsi);
}

/* Starts closing: input is ignored and the service's output dropped from now on; what is
 * queued (a handshake answer, a kick) is flushed, then the socket closes. A client that
 * does not read gets TN_EDGE_CLOSE_GRACE_S, then its socket is shut down. */
static void
begin_close(
        struct tn_edge_sess *s, enum edge_close why, enum lws_close_status status, const char *text)
{
	if (s->closing)
		return;
	s->closing = true;
	s->close_status = status;
	s->close_text = text;
	s->close_at = tn_now_ms() + TN_EDGE_CLOSE_GRACE_S * 1000;
	tn_pml_conn_close(&s->conn);
	edge_deadline_update(s);
	tn_counter_inc(s->e->m.closes[why]);
	/* The ordinary ends of a session, and those every session gets at a shutdown. */
	if (why == EDGE_CLOSE_CLIENT || why == EDGE_CLOSE_DROPPED || why == EDGE_CLOSE_SHUTDOWN ||
	        why == EDGE_CLOSE_IDLE_TIMEOUT || s->e->draining)
		tn_debug(
		        "edge", "session closing sid=%llu reason=%s", sid(s), edge_close_name(why));
	else
		tn_info("edge", "session closing sid=%llu reason=%s", sid(s), edge_close_name(why));
	want_write(s);
}

/* Sends the WebSocket close; the lws callback must then return -1. */
static void
close_now(struct tn_edge_sess *s)
{
	const char *text = s->close_text ? s->close_text : "";
	lws_close_reason(s->wsi, s->close_status ? s->close_status : LWS_CLOSE_STATUS_NORMAL,
	        (unsigned char *)text, strlen(text));
}

static void
kick(struct tn_edge_sess *s, const char *reason)
{
	if (s->closing)
		return;
	tn_counter_inc(edge_metrics_kick(&s->e->m, reason));
	if (s->e->draining)
		tn_debug("edge", "kick sid=%llu reason=\"%s\"", sid(s), reason);
	else
		tn_info("edge", "kick sid=%llu reason=\"%s\"", sid(s), reason);
	/* Queues the KICK and calls back on_close_needed(KICKED), which begins the close. */
	tn_pml_conn_kick(&s->conn, reason);
}

/* The client does not read what it is sent: what is still queued is dropped (it would
 * never arrive) and only the kick goes out. */
static void
slow_consumer(struct tn_edge_sess *s)
{
	tn_pml_conn_out_consume(&s->conn, tn_pml_conn_out_pending(&s->conn));
	kick(s, "slow consumer");
}

/* After something was queued or the session began closing: bounds the queue and asks for
 * a writeable callback, which sends and, once a closing session is flushed, closes. */
static void
after_output(struct tn_edge_sess *s)
{
	size_t pending = tn_pml_conn_out_pending(&s->conn);
	if (!s->closing && pending > s->e->pml.out_limit)
		slow_consumer(s);
	if (pending > 0 || s->closing)
		want_write(s);
}

static void
bad_input(struct tn_edge_sess *s, enum edge_bad c)
{
	tn_counter_inc(s->e->m.bad[c]);
	/* Once per case and session at info: a flood must not flood the log. */
	uint32_t bit = 1u << c;
	if (s->logged & bit) {
		tn_debug("edge", "bad input sid=%llu case=%s", sid(s), edge_bad_name(c));
		return;
	}
	s->logged |= bit;
	tn_info("edge", "bad input sid=%llu case=%s host=%s", sid(s), edge_bad_name(c), s->host);
}

/* Queues a response, with 4-byte UTF-8 turned into escapes (protocol.md §6.4). */
static int
respond(struct tn_edge_sess *s, uint32_t id, const char *json, size_t len)
{
	struct tn_buf *esc = &s->e->scratch;
	tn_buf_reset(esc);
	if (edge_utf8_escape(esc, json, len)) {
		json = (const char *)esc->data;
		len = esc->len;
	}
	int rv = tn_pml_conn_respond(&s->conn, id, json, len);
	if (rv == TN_OK) {
		tn_counter_inc(s->e->m.out_response);
		after_output(s);
	}
	return rv;
}

/* The edge's own answer to a request it refuses: {"code":N,"error":true,"message":...}.
 * "error" is what the chatofpomelo page checks on enter. */
static void
respond_error(struct tn_edge_sess *s, uint32_t id, int code, const char *message)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "{\"code\":%d,\"error\":true,\"message\":\"%s\"}",
	        code, message);
	respond(s, id, body, (size_t)n);
}

/* Counts a case and answers a request (never a notify) with the error. */
static void
refuse(struct tn_edge_sess *s, uint32_t id, enum edge_bad c, int code, const char *message)
{
	bad_input(s, c);
	if (id != 0)
		respond_error(s, id, code, message);
}

/* ---- inbound checks ---- */

/* The token bucket (rate_per_s refill, rate_burst size) and the bound on requests in
 * flight. Returns true when the message may go on; otherwise it was answered (429) or, for
 * a notify, dropped, and rate_kick_after rate refusals in a row kick the session. */
static bool
admit(struct tn_edge_sess *s, uint32_t id)
{
	const struct tn_config *cfg = s->e->cfg;
	int64_t now = tn_now_ms();
	int64_t elapsed = now - s->refill_ms;
	int64_t cap = (int64_t)cfg->rate_burst * 1000;
	s->refill_ms = now;
	if (elapsed > 0) {
		if (elapsed > 1000000)
			elapsed = 1000000; /* no overflow; the bucket is full long before */
		s->tokens_milli += elapsed * cfg->rate_per_s;
		if (s->tokens_milli > cap)
			s->tokens_milli = cap;
	}
	if (s->tokens_milli < 1000) {
		refuse(s, id, EDGE_BAD_RATE_LIMITED, 429, "too many requests");
		if (++s->refusals >= cfg->rate_kick_after)
			kick(s, "too many requests");
		return false;
	}
	s->tokens_milli -= 1000;
	s->refusals = 0;
	/* A slow server must not get a client kicked, so this refusal does not count. */
	if (id != 0 && s->pending >= TN_EDGE_MAX_PENDING) {
		refuse(s, id, EDGE_BAD_TOO_MANY_PENDING, 429, "too many requests in flight");
		return false;
	}
	return true;
}

/* Parses a body: an empty one counts as {} (what pomelo makes of it); anything else must
 * be a JSON object no deeper than json_depth. */
static enum edge_bad
parse_body(json_object **out, const struct tn_edge_sess *s, const struct tn_pml_msg *msg)
{
	if (msg->body_len == 0) {
		*out = json_object_new_object();
		return EDGE_BAD_COUNT_;
	}
	json_object *obj = NULL;
	int rv = tn_json_parse(&obj, msg->body, msg->body_len, s->e->cfg->json_depth);
	if (rv == TN_ETOOBIG)
		return EDGE_BAD_JSON_TOO_DEEP;
	if (rv != TN_OK)
		return EDGE_BAD_BAD_JSON;
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return EDGE_BAD_BODY_NOT_OBJECT;
	}
	*out = obj;
	return EDGE_BAD_COUNT_;
}

/* A request or notify with a string route (resolved from the dict when compressed). */
static void
on_message(struct tn_edge_sess *s, const struct tn_pml_msg *msg)
{
	struct tn_edge *e = s->e;
	uint32_t id = msg->type == TN_PML_MSG_REQUEST ? msg->id : 0;
	tn_counter_inc(id ? e->m.in_request : e->m.in_notify);
	if (!admit(s, id))
		return;
	void *tag = tn_map_get(&e->route_tags, msg->route, msg->route_len);
	if (tag == NULL) {
		refuse(s, id, EDGE_BAD_UNKNOWN_ROUTE, 404, "unknown route");
		return;
	}
	int route = (int)((uintptr_t)tag - 1);
	if (!e->served[route]) {
		refuse(s, id, EDGE_BAD_ROUTE_NOT_SERVED, 404, "route not served by this server");
		return;
	}
	if (msg->body_len > (size_t)e->cfg->body_limit) {
		refuse(s, id, EDGE_BAD_BODY_TOO_LARGE, 413, "body too large");
		return;
	}
	json_object *body = NULL;
	enum edge_bad bad = parse_body(&body, s, msg);
	if (bad == EDGE_BAD_JSON_TOO_DEEP) {
		refuse(s, id, bad, 400, "body nested too deep");
		return;
	}
	if (bad != EDGE_BAD_COUNT_) {
		refuse(s, id, bad, 400,
		        bad == EDGE_BAD_BAD_JSON ? "body is not valid JSON"
		                                 : "body must be a JSON object");
		return;
	}
	if (id)
		s->pending++;
	e->ops.on_request(e->arg, s, id, route, body, msg->body, msg->body_len);
	json_object_put(body);
}

/* ---- the pml callbacks ---- */

static void
pml_ready(void *ctx)
{
	struct tn_edge_sess *s = ctx;
	s->opened = true;
	tn_debug("edge", "session open sid=%llu host=%s", sid(s), s->host);
	if (s->e->ops.on_open)
		s->e->ops.on_open(s->e->arg, s);
}

static void
pml_request(void *ctx, const struct tn_pml_msg *msg)
{
	on_message(ctx, msg);
}

/* A compressed route code the dict does not have (or no dict, on the gate). */
static void
unknown_route_code(struct tn_edge_sess *s, uint32_t id)
{
	tn_counter_inc(id ? s->e->m.in_request : s->e->m.in_notify);
	if (admit(s, id))
		refuse(s, id, EDGE_BAD_UNKNOWN_ROUTE_CODE, 404, "unknown route code");
}

static void
pml_error(void *ctx, enum tn_pml_conn_error err, uint32_t req_id)
{
	struct tn_edge_sess *s = ctx;
	switch (err) {
	case TN_PML_ERR_BAD_PACKAGE: bad_input(s, EDGE_BAD_TRUNCATED_PACKAGE); break;
	case TN_PML_ERR_PACKAGE_TOO_BIG: bad_input(s, EDGE_BAD_PACKAGE_TOO_LARGE); break;
	case TN_PML_ERR_UNKNOWN_PACKAGE: bad_input(s, EDGE_BAD_UNKNOWN_PACKAGE); break;
	case TN_PML_ERR_HANDSHAKE_REFUSED: bad_input(s, EDGE_BAD_HANDSHAKE_REFUSED); break;
	case TN_PML_ERR_DATA_BEFORE_ACK: bad_input(s, EDGE_BAD_DATA_BEFORE_ACK); break;
	case TN_PML_ERR_OUT_OF_STATE: bad_input(s, EDGE_BAD_OUT_OF_STATE); break;
	case TN_PML_ERR_BAD_MESSAGE: bad_input(s, EDGE_BAD_BAD_MESSAGE); break;
	case TN_PML_ERR_BAD_MESSAGE_TYPE: bad_input(s, EDGE_BAD_BAD_MESSAGE_TYPE); break;
	case TN_PML_ERR_BAD_REQUEST_ID: bad_input(s, EDGE_BAD_BAD_REQUEST_ID); break;
	/* pml's own bound (set above TN_EDGE_MAX_PENDING) only backs up admit(). */
	case TN_PML_ERR_TOO_MANY_REQUESTS: bad_input(s, EDGE_BAD_TOO_MANY_PENDING); break;
	case TN_PML_ERR_UNKNOWN_ROUTE_CODE: unknown_route_code(s, req_id); break;
	default: break; /* output-side errors are handled where the output is queued */
	}
}

static void
pml_close_needed(void *ctx, enum tn_pml_close_reason reason)
{
	struct tn_edge_sess *s = ctx;
	switch (reason) {
	case TN_PML_CLOSE_KICKED:
		begin_close(s, EDGE_CLOSE_KICKED, LWS_CLOSE_STATUS_NORMAL, "kicked");
		break;
	case TN_PML_CLOSE_PACKAGE_TOO_BIG:
		/* pml sent the KICK only to a WORKING session (one that reached on_open). */
		if (s->opened) {
			tn_counter_inc(edge_metrics_kick(&s->e->m, TN_PML_KICK_TOO_BIG));
			tn_info("edge", "kick sid=%llu reason=\"%s\"", sid(s), TN_PML_KICK_TOO_BIG);
		}
		begin_close(s, s->opened ? EDGE_CLOSE_KICKED : EDGE_CLOSE_PROTOCOL,
		        LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, TN_PML_KICK_TOO_BIG);
		break;
	case TN_PML_CLOSE_HANDSHAKE_REFUSED:
		begin_close(s, EDGE_CLOSE_HANDSHAKE_REFUSED, LWS_CLOSE_STATUS_PROTOCOL_ERR,
		        "handshake refused");
		break;
	case TN_PML_CLOSE_HANDSHAKE_TIMEOUT:
		bad_input(s, EDGE_BAD_HANDSHAKE_TIMEOUT);
		begin_close(s, EDGE_CLOSE_HANDSHAKE_TIMEOUT, LWS_CLOSE_STATUS_POLICY_VIOLATION,
		        "handshake timeout");
		break;
	case TN_PML_CLOSE_HEARTBEAT_TIMEOUT:
		begin_close(s, EDGE_CLOSE_HEARTBEAT_TIMEOUT, LWS_CLOSE_STATUS_GOINGAWAY,
		        "heartbeat timeout");
		break;
	default:
		begin_close(
		        s, EDGE_CLOSE_PROTOCOL, LWS_CLOSE_STATUS_PROTOCOL_ERR, "protocol error");
		break;
	}
}

void
edge_sess_cbs_init(struct tn_pml_conn_cbs *cbs)
{
	*cbs = (struct tn_pml_conn_cbs){
	        .on_ready = pml_ready,
	        .on_request = pml_request,
	        .on_notify = pml_request,
	        .on_error = pml_error,
	        .on_close_needed = pml_close_needed,
	};
}

/* The idle deadline of a session on a server without heartbeats passed. A client waiting
 * for an answer is not idle: the wait counts as activity. */
static void
idle_check(struct tn_edge_sess *s, int64_t now_ms)
{
	if (s->pending > 0 && now_ms >= s->last_rx_ms + s->e->idle_ms)
		s->last_rx_ms = now_ms;
	if (now_ms < s->last_rx_ms + s->e->idle_ms) {
		edge_deadline_update(s);
		return;
	}
	begin_close(s, EDGE_CLOSE_IDLE_TIMEOUT, LWS_CLOSE_STATUS_GOINGAWAY, "idle timeout");
}

void
edge_sess_timeout(struct tn_edge_sess *s, int64_t now_ms)
{
	if (s->closing) {
		/* The client did not take its last packages in time. lws would go on flushing
		 * for as long as it reads a trickle; a shut-down socket makes lws close it now
		 * (and report it closed, which frees the session). */
		int fd = s->wsi ? lws_get_socket_fd(s->wsi) : -1;
		tn_info("edge", "closing session did not drain, dropped sid=%llu queued=%zu",
		        sid(s), tn_pml_conn_out_pending(&s->conn));
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
		return;
	}
	if (s->e->idle_ms > 0 && tn_pml_conn_state(&s->conn) == TN_PML_CONN_WORKING) {
		idle_check(s, now_ms);
		return;
	}
	/* On a timeout pml calls back on_close_needed; otherwise the deadline moved. */
	if (!tn_pml_conn_check_timeout(&s->conn, now_ms))
		edge_deadline_update(s);
}

/* ---- lws callbacks ---- */

int
edge_sess_open(struct tn_edge *e, struct lws *wsi, struct tn_edge_sess **slot)
{
	struct tn_edge_sess *s = tn_calloc(1, sizeof(*s));
	s->e = e;
	s->wsi = wsi;
	s->id = atomic_fetch_add(&next_sess_id, 1);
	char value[512], host[256] = "";
	int n = lws_hdr_copy(wsi, value, sizeof(value), WSI_TOKEN_HOST);
	if (n > 0)
		edge_host_parse(host, sizeof(host), value, (size_t)n);
	s->host = tn_strdup(host);
	tn_buf_init(&s->rx);
	s->deadline = TN_PML_NO_DEADLINE;
	int64_t now = tn_now_ms();
	s->tokens_milli = (int64_t)e->cfg->rate_burst * 1000;
	s->refill_ms = now;
	s->last_rx_ms = now;
	tn_pml_conn_init(&s->conn, &e->pml, &e->pml_cbs, s, now);
	tn_map_put(&e->sessions, &s->id, sizeof(s->id), s);
	tn_gauge_inc(e->m.sessions);
	*slot = s;
	edge_deadline_update(s);
	return 0;
}

/* Feeds every whole package buffered so far to pml and keeps an incomplete one. A header
 * that can never be completed (unknown type, or a length over the package limit) is fed
 * at once, so pml refuses it without waiting for (and buffering) the body. At the end of
 * the message whatever is left is fed too: pml reports a package cut short, or an empty
 * message. */
static void
rx_feed(struct tn_edge_sess *s, bool final)
{
	const uint8_t *p = s->rx.data;
	size_t n = s->rx.len, off = 0;
	while (off < n) {
		enum tn_pml_pkg_type type;
		size_t body;
		int rv = tn_pml_pkg_header_decode(&type, &body, p + off, n - off);
		if (rv == TN_ETRUNC)
			break;
		if (rv != TN_OK || body > s->e->pml.package_limit) {
			off = n;
			break;
		}
		if (n - off - TN_PML_PKG_HEADER_LEN < body)
			break;
		off += TN_PML_PKG_HEADER_LEN + body;
	}
	if (final)
		off = n;
	if (off == 0 && !(final && s->msg_len == 0))
		return;
	tn_pml_conn_feed(&s->conn, p, off, tn_now_ms());
	tn_buf_consume(&s->rx, off);
}

int
edge_sess_receive(struct tn_edge_sess *s, const void *in, size_t len)
{
	tn_counter_add(s->e->m.bytes_in, len);
	s->last_rx_ms = tn_now_ms();
	if (!s->closing && !s->in_message) {
		s->in_message = true;
		s->msg_len = 0;
		if (!lws_frame_is_binary(s->wsi)) {
			bad_input(s, EDGE_BAD_TEXT_FRAME);
			begin_close(s, EDGE_CLOSE_PROTOCOL, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
			        "binary frames only");
		}
	}
	bool final = lws_is_final_fragment(s->wsi);
	if (!s->closing) {
		s->msg_len += len;
		tn_buf_append(&s->rx, in, len);
		rx_feed(s, final);
	}
	if (final) {
		s->in_message = false;
		if (s->rx.cap > RX_KEEP)
			tn_buf_fini(&s->rx);
		else
			tn_buf_reset(&s->rx);
	}
	edge_deadline_update(s);
	/* A closing session closes from its writeable callback, never from here: returning
	 * -1 in the middle of a frame the client is still sending drops the socket without
	 * the close frame (and so without whatever the client should read first). */
	after_output(s);
	return 0;
}

int
edge_sess_writeable(struct tn_edge_sess *s)
{
	s->want_write = false;
	size_t len = 0;
	uint8_t *p = tn_pml_conn_out_peek(&s->conn, &len, TN_EDGE_FRAME_MAX);
	if (p != NULL) {
		/* p has LWS_PRE bytes of headroom (the pml out_headroom) for the frame header. */
		int n = lws_write(s->wsi, p, len, LWS_WRITE_BINARY);
		if (n < 0 || (size_t)n < len) {
			tn_info("edge", "write failed sid=%llu bytes=%zu", sid(s), len);
			return -1;
		}
		tn_pml_conn_out_consume(&s->conn, len);
		tn_counter_add(s->e->m.bytes_out, len);
		tn_counter_inc(s->e->m.frames_out);
	}
	/* lws calls back only once the frame just written has left, so a closing session
	 * closes after its last package is out. */
	if (tn_pml_conn_out_pending(&s->conn) > 0 || (s->closing && p != NULL)) {
		want_write(s);
		return 0;
	}
	if (s->closing) {
		close_now(s);
		return -1;
	}
	return 0;
}

/* Tells the service, once, that a session it saw open has gone. */
static void
notify_closed(struct tn_edge_sess *s)
{
	if (!s->opened || s->notified)
		return;
	s->notified = true;
	if (s->e->ops.on_close)
		s->e->ops.on_close(s->e->arg, s);
}

void
edge_sess_free(struct tn_edge_sess *s)
{
	struct tn_edge *e = s->e;
	edge_deadline_remove(s);
	tn_map_del(&e->sessions, &s->id, sizeof(s->id));
	tn_gauge_dec(e->m.sessions);
	tn_pml_conn_fini(&s->conn);
	tn_buf_fini(&s->rx);
	free(s->host);
	free(s);
}

void
edge_sess_closed(struct tn_edge_sess *s)
{
	/* lws is freeing the wsi: no more calls on it. */
	s->wsi = NULL;
	if (!s->closing)
		begin_close(s, s->peer_closed ? EDGE_CLOSE_CLIENT : EDGE_CLOSE_DROPPED,
		        LWS_CLOSE_STATUS_NORMAL, NULL);
	notify_closed(s);
	edge_sess_free(s);
}

void
edge_sess_shutdown(struct tn_edge_sess *s)
{
	begin_close(s, EDGE_CLOSE_SHUTDOWN, LWS_CLOSE_STATUS_GOINGAWAY, TN_EDGE_KICK_SHUTDOWN);
	notify_closed(s);
}

void
edge_sess_drain(struct tn_edge_sess *s)
{
	/* Any state: a client still in its handshake takes a KICK as well as any. */
	kick(s, TN_EDGE_KICK_SHUTDOWN);
}

void
edge_sess_drop(struct tn_edge_sess *s)
{
	edge_sess_shutdown(s);
	int fd = s->wsi ? lws_get_socket_fd(s->wsi) : -1;
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

/* ---- the service's side (edge.h) ---- */

uint64_t
tn_edge_sess_id(const struct tn_edge_sess *s)
{
	return s->id;
}

void
tn_edge_sess_set_data(struct tn_edge_sess *s, void *data)
{
	s->data = data;
}

void *
tn_edge_sess_data(const struct tn_edge_sess *s)
{
	return s->data;
}

const char *
tn_edge_sess_host(const struct tn_edge_sess *s)
{
	return s->host;
}

void
tn_edge_respond(struct tn_edge_sess *s, uint32_t id, const char *json, size_t len)
{
	if (s == NULL || s->closing)
		return;
	int rv = respond(s, id, json, len);
	if (rv == TN_ETOOBIG) {
		tn_warn("edge", "response too large for a package sid=%llu id=%u bytes=%zu", sid(s),
		        id, len);
		respond_error(s, id, 500, "response too large");
		rv = TN_OK;
	}
	if (rv == TN_OK) {
		if (s->pending > 0)
			s->pending--;
	} else {
		/* A second answer, or one to an id never asked: the client would choke on it. */
		tn_warn("edge", "response dropped sid=%llu id=%u err=\"%s\"", sid(s), id,
		        tn_strerror(rv));
	}
}

void
tn_edge_push(struct tn_edge_sess *s, const char *route, const char *json, size_t len)
{
	if (s == NULL || s->closing)
		return;
	struct tn_buf *esc = &s->e->scratch;
	tn_buf_reset(esc);
	if (edge_utf8_escape(esc, json, len)) {
		json = (const char *)esc->data;
		len = esc->len;
	}
	int rv = tn_pml_conn_push(&s->conn, route, json, len);
	if (rv == TN_OK) {
		tn_counter_inc(s->e->m.out_push);
		after_output(s);
	} else if (rv == TN_EBUSY) {
		slow_consumer(s);
	} else {
		tn_warn("edge", "push dropped sid=%llu route=%s err=\"%s\"", sid(s),
		        route ? route : "(null)", tn_strerror(rv));
	}
}

void
tn_edge_kick(struct tn_edge_sess *s, const char *reason)
{
	if (s == NULL || s->closing)
		return;
	kick(s, reason ? reason : "kick");
}
