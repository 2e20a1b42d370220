#include "pml_conn.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "pml_package.h"

/* An outbound buffer that grew past this is freed once drained, so that a burst does not
 * pin memory on an idle connection. */
#define OUT_SHRINK_CAP (16u * 1024u)

void
tn_pml_conn_config_init(struct tn_pml_conn_config *cfg)
{
	*cfg = (struct tn_pml_conn_config){
	        .hs = {.proto_version = TN_PML_DEFAULT_PROTO_VERSION},
	        .handshake_timeout_ms = TN_PML_DEFAULT_HANDSHAKE_TIMEOUT_MS,
	        .package_limit = TN_PML_PKG_DEFAULT_LIMIT,
	        .max_inflight = TN_PML_DEFAULT_MAX_INFLIGHT,
	};
}

void
tn_pml_conn_init(struct tn_pml_conn *conn, const struct tn_pml_conn_config *cfg,
        const struct tn_pml_conn_cbs *cbs, void *ctx, int64_t now_ms)
{
	assert(cbs->on_request && cbs->on_notify && cbs->on_close_needed);
	assert(cfg->hs.proto_version && cfg->hs.proto_version[0]);
	*conn = (struct tn_pml_conn){
	        .cfg = cfg,
	        .cbs = cbs,
	        .ctx = ctx,
	        .state = TN_PML_CONN_INITED,
	        .hs_deadline = cfg->handshake_timeout_ms > 0 ? now_ms + cfg->handshake_timeout_ms
	                                                     : TN_PML_NO_DEADLINE,
	        .hb_deadline = TN_PML_NO_DEADLINE,
	};
	tn_buf_init(&conn->out);
}

void
tn_pml_conn_fini(struct tn_pml_conn *conn)
{
	tn_buf_fini(&conn->out);
	free(conn->inflight);
	conn->inflight = NULL;
	conn->n_inflight = conn->cap_inflight = 0;
	conn->state = TN_PML_CONN_CLOSED;
}

enum tn_pml_conn_state
tn_pml_conn_state(const struct tn_pml_conn *conn)
{
	return conn->state;
}

static void
report(struct tn_pml_conn *conn, enum tn_pml_conn_error err, uint32_t req_id)
{
	if (conn->cbs->on_error)
		conn->cbs->on_error(conn->ctx, err, req_id);
}

static void
close_needed(struct tn_pml_conn *conn, enum tn_pml_close_reason reason)
{
	conn->state = TN_PML_CONN_CLOSED;
	conn->cbs->on_close_needed(conn->ctx, reason);
}

/* The outbound buffer, with its headroom in place, ready for a package to be appended. */
static struct tn_buf *
out_buf(struct tn_pml_conn *conn)
{
	size_t room = conn->cfg->out_headroom;
	if (conn->out.len == 0 && room > 0) {
		memset(tn_buf_reserve(&conn->out, room), 0, room);
		conn->out.len = room;
	}
	return &conn->out;
}

size_t
tn_pml_conn_out_pending(const struct tn_pml_conn *conn)
{
	size_t room = conn->cfg->out_headroom;
	return conn->out.len > room ? conn->out.len - room : 0;
}

/* --- heartbeats and deadlines --- */

static int64_t
heartbeat_timeout_ms(const struct tn_pml_conn_config *cfg)
{
	if (cfg->hs.heartbeat_s <= 0)
		return 0;
	if (cfg->heartbeat_timeout_ms > 0)
		return cfg->heartbeat_timeout_ms;
	return 2 * (int64_t)cfg->hs.heartbeat_s * 1000;
}

/* Answers (or opens) the heartbeat exchange and moves the liveness deadline. */
static void
heartbeat_beat(struct tn_pml_conn *conn, int64_t now_ms)
{
	int64_t timeout = heartbeat_timeout_ms(conn->cfg);
	if (timeout == 0)
		return; /* no heartbeat configured: pomelo neither answers nor times out */
	tn_pml_pkg_encode(out_buf(conn), TN_PML_PKG_HEARTBEAT, NULL, 0);
	conn->hb_deadline = now_ms + timeout;
}

int64_t
tn_pml_conn_deadline(const struct tn_pml_conn *conn)
{
	switch (conn->state) {
	case TN_PML_CONN_INITED:
	case TN_PML_CONN_WAIT_ACK: return conn->hs_deadline;
	case TN_PML_CONN_WORKING: return conn->hb_deadline;
	default: return TN_PML_NO_DEADLINE;
	}
}

bool
tn_pml_conn_check_timeout(struct tn_pml_conn *conn, int64_t now_ms)
{
	int64_t deadline = tn_pml_conn_deadline(conn);
	if (deadline == TN_PML_NO_DEADLINE || now_ms < deadline)
		return false;
	close_needed(conn, conn->state == TN_PML_CONN_WORKING ? TN_PML_CLOSE_HEARTBEAT_TIMEOUT
	                                                      : TN_PML_CLOSE_HANDSHAKE_TIMEOUT);
	return true;
}

/* --- outstanding request ids --- */

static int
inflight_find(const struct tn_pml_conn *conn, uint32_t id)
{
	for (unsigned i = 0; i < conn->n_inflight; i++)
		if (conn->inflight[i] == id)
			return (int)i;
	return -1;
}

/* Records id as outstanding; reports and returns false when it cannot be. */
static bool
inflight_add(struct tn_pml_conn *conn, uint32_t id)
{
	unsigned max =
	        conn->cfg->max_inflight ? conn->cfg->max_inflight : TN_PML_DEFAULT_MAX_INFLIGHT;
	if (id == 0 || inflight_find(conn, id) >= 0) {
		report(conn, TN_PML_ERR_BAD_REQUEST_ID, 0);
		return false;
	}
	if (conn->n_inflight >= max) {
		report(conn, TN_PML_ERR_TOO_MANY_REQUESTS, 0);
		return false;
	}
	if (conn->n_inflight == conn->cap_inflight) {
		conn->cap_inflight = conn->cap_inflight ? conn->cap_inflight * 2 : 4;
		conn->inflight = tn_realloc(conn->inflight, conn->cap_inflight * sizeof(uint32_t));
	}
	conn->inflight[conn->n_inflight++] = id;
	return true;
}

static void
inflight_remove_at(struct tn_pml_conn *conn, int i)
{
	/* Order does not matter: the last one fills the gap. */
	conn->inflight[i] = conn->inflight[--conn->n_inflight];
}

/* --- inbound --- */

static void
deliver(struct tn_pml_conn *conn, struct tn_pml_msg *msg)
{
	/* Give handlers a C string: routes are at most 255 bytes, so a stack copy is cheap. */
	char route[TN_PML_ROUTE_MAX + 1];
	memcpy(route, msg->route, msg->route_len);
	route[msg->route_len] = '\0';
	msg->route = route;
	if (msg->type == TN_PML_MSG_REQUEST)
		conn->cbs->on_request(conn->ctx, msg);
	else
		conn->cbs->on_notify(conn->ctx, msg);
}

static void
handle_data(struct tn_pml_conn *conn, const uint8_t *body, size_t len)
{
	struct tn_pml_msg msg;
	if (tn_pml_msg_decode(&msg, body, len) != TN_OK) {
		report(conn, TN_PML_ERR_BAD_MESSAGE, 0);
		return;
	}
	if (msg.type != TN_PML_MSG_REQUEST && msg.type != TN_PML_MSG_NOTIFY) {
		report(conn, TN_PML_ERR_BAD_MESSAGE_TYPE, 0);
		return;
	}
	if (msg.type == TN_PML_MSG_REQUEST && !inflight_add(conn, msg.id))
		return;
	if (tn_pml_msg_resolve(&msg, conn->cfg->hs.dict) != TN_OK) {
		/* A request keeps its id outstanding so that the server can answer 404. */
		report(conn, TN_PML_ERR_UNKNOWN_ROUTE_CODE, msg.id);
		return;
	}
	deliver(conn, &msg);
}

static void
handle_handshake(struct tn_pml_conn *conn, const uint8_t *body, size_t len)
{
	if (conn->state != TN_PML_CONN_INITED) {
		report(conn, TN_PML_ERR_OUT_OF_STATE, 0);
		return;
	}
	enum tn_pml_hs_code code = tn_pml_hs_answer(out_buf(conn), &conn->cfg->hs, body, len);
	if (code == TN_PML_HS_OK) {
		conn->state = TN_PML_CONN_WAIT_ACK;
		return;
	}
	report(conn, TN_PML_ERR_HANDSHAKE_REFUSED, 0);
	close_needed(conn, TN_PML_CLOSE_HANDSHAKE_REFUSED);
}

static void
handle_ack(struct tn_pml_conn *conn, int64_t now_ms)
{
	if (conn->state != TN_PML_CONN_WAIT_ACK) {
		report(conn, TN_PML_ERR_OUT_OF_STATE, 0);
		return;
	}
	conn->state = TN_PML_CONN_WORKING;
	/* The client only ever answers heartbeats, so the server has to start. */
	heartbeat_beat(conn, now_ms);
	if (conn->cbs->on_ready)
		conn->cbs->on_ready(conn->ctx);
}

static void
dispatch(struct tn_pml_conn *conn, const struct tn_pml_pkg *pkg, int64_t now_ms)
{
	bool working = conn->state == TN_PML_CONN_WORKING;
	switch (pkg->type) {
	case TN_PML_PKG_HANDSHAKE: handle_handshake(conn, pkg->body, pkg->len); break;
	case TN_PML_PKG_HANDSHAKE_ACK: handle_ack(conn, now_ms); break;
	case TN_PML_PKG_HEARTBEAT:
		if (working)
			heartbeat_beat(conn, now_ms);
		else
			report(conn, TN_PML_ERR_OUT_OF_STATE, 0);
		break;
	case TN_PML_PKG_DATA:
		if (working)
			handle_data(conn, pkg->body, pkg->len);
		else
			report(conn, TN_PML_ERR_DATA_BEFORE_ACK, 0);
		break;
	default:
		/* KICK is server-to-client only; pomelo has no handler for it and disconnects. */
		report(conn, TN_PML_ERR_UNKNOWN_PACKAGE, 0);
		close_needed(conn, TN_PML_CLOSE_PROTOCOL);
		break;
	}
}

static enum tn_pml_conn_error
framing_error(int rv)
{
	return rv == TN_EPROTO ? TN_PML_ERR_UNKNOWN_PACKAGE : TN_PML_ERR_BAD_PACKAGE;
}

/* A package over the limit: tell a WORKING client why before closing (pomelo clients
 * show kick reasons); before the ACK only the handshake answer may go out. */
static void
too_big(struct tn_pml_conn *conn)
{
	if (conn->state == TN_PML_CONN_WORKING)
		tn_pml_kick_encode(out_buf(conn), TN_PML_KICK_TOO_BIG);
	close_needed(conn, TN_PML_CLOSE_PACKAGE_TOO_BIG);
}

int
tn_pml_conn_feed(struct tn_pml_conn *conn, const void *data, size_t len, int64_t now_ms)
{
	if (conn->state == TN_PML_CONN_CLOSED)
		return TN_ECLOSED;
	if (len == 0) {
		report(conn, TN_PML_ERR_BAD_PACKAGE, 0);
		close_needed(conn, TN_PML_CLOSE_PROTOCOL);
		return TN_ECLOSED;
	}
	struct tn_pml_pkg_iter it;
	tn_pml_pkg_iter_init(&it, data, len, conn->cfg->package_limit);
	while (conn->state != TN_PML_CONN_CLOSED && tn_pml_pkg_iter_more(&it)) {
		struct tn_pml_pkg pkg;
		int rv = tn_pml_pkg_next(&pkg, &it);
		if (rv == TN_ETOOBIG) {
			report(conn, TN_PML_ERR_PACKAGE_TOO_BIG, 0);
			too_big(conn);
			break;
		}
		if (rv != TN_OK) {
			report(conn, framing_error(rv), 0);
			close_needed(conn, TN_PML_CLOSE_PROTOCOL);
			break;
		}
		dispatch(conn, &pkg, now_ms);
	}
	return conn->state == TN_PML_CONN_CLOSED ? TN_ECLOSED : TN_OK;
}

/* --- outbound --- */

int
tn_pml_conn_respond(struct tn_pml_conn *conn, uint32_t id, const void *body, size_t len)
{
	if (conn->state == TN_PML_CONN_CLOSED)
		return TN_ECLOSED;
	int i = inflight_find(conn, id);
	if (id == 0 || i < 0)
		return TN_ENOENT;
	if (len == 0) {
		body = "{}";
		len = 2;
	}
	struct tn_pml_msg msg = {
	        .type = TN_PML_MSG_RESPONSE, .id = id, .body = body, .body_len = len};
	int rv = tn_pml_msg_encode_pkg(out_buf(conn), &msg);
	if (rv == TN_OK)
		inflight_remove_at(conn, i);
	return rv;
}

int
tn_pml_conn_push(struct tn_pml_conn *conn, const char *route, const void *body, size_t len)
{
	if (conn->state != TN_PML_CONN_WORKING) {
		report(conn, TN_PML_ERR_PUSH_SUPPRESSED, 0);
		return TN_ECLOSED;
	}
	size_t route_len = route ? strlen(route) : 0;
	if (route_len == 0 || route_len > TN_PML_ROUTE_MAX || len == 0 || body == NULL)
		return TN_EINVAL;
	/* Upper bound of the package: header, flag, route length byte, route, body. */
	size_t size = TN_PML_PKG_HEADER_LEN + 2 + route_len + len;
	size_t limit = conn->cfg->out_limit;
	if (limit > 0 && tn_pml_conn_out_pending(conn) + size > limit) {
		report(conn, TN_PML_ERR_OUTBOUND_FULL, 0);
		return TN_EBUSY;
	}
	struct tn_pml_msg msg = {.type = TN_PML_MSG_PUSH, .body = body, .body_len = len};
	tn_pml_msg_set_route(&msg, conn->cfg->hs.dict, route, route_len);
	return tn_pml_msg_encode_pkg(out_buf(conn), &msg);
}

int
tn_pml_conn_heartbeat(struct tn_pml_conn *conn)
{
	if (conn->state != TN_PML_CONN_WORKING)
		return TN_ECLOSED;
	return tn_pml_pkg_encode(out_buf(conn), TN_PML_PKG_HEARTBEAT, NULL, 0);
}

int
tn_pml_conn_kick(struct tn_pml_conn *conn, const char *reason)
{
	if (conn->state == TN_PML_CONN_CLOSED)
		return TN_ECLOSED;
	tn_pml_kick_encode(out_buf(conn), reason);
	close_needed(conn, TN_PML_CLOSE_KICKED);
	return TN_OK;
}

void
tn_pml_conn_close(struct tn_pml_conn *conn)
{
	conn->state = TN_PML_CONN_CLOSED;
}

uint8_t *
tn_pml_conn_out_peek(struct tn_pml_conn *conn, size_t *len, size_t max)
{
	size_t room = conn->cfg->out_headroom;
	size_t pending = tn_pml_conn_out_pending(conn);
	if (pending == 0) {
		*len = 0;
		return NULL;
	}
	uint8_t *p = conn->out.data + room;
	size_t take = pending;
	if (max > 0 && pending > max) {
		/* Walk our own (well-formed) headers to the last package boundary <= max; the
		 * first package goes out whole even when it alone is larger. */
		size_t off = 0;
		while (off < pending) {
			const uint8_t *h = p + off;
			size_t n = TN_PML_PKG_HEADER_LEN +
			           (((size_t)h[1] << 16) | ((size_t)h[2] << 8) | (size_t)h[3]);
			if (off > 0 && off + n > max)
				break;
			off += n;
		}
		take = off;
	}
	*len = take;
	return p;
}

void
tn_pml_conn_out_consume(struct tn_pml_conn *conn, size_t n)
{
	size_t room = conn->cfg->out_headroom;
	size_t pending = tn_pml_conn_out_pending(conn);
	assert(n <= pending);
	if (n >= pending) {
		if (conn->out.cap > OUT_SHRINK_CAP)
			tn_buf_fini(&conn->out);
		else
			tn_buf_reset(&conn->out);
		return;
	}
	memmove(conn->out.data + room, conn->out.data + room + n, pending - n);
	conn->out.len -= n;
}

const char *
tn_pml_conn_error_name(enum tn_pml_conn_error err)
{
	static const char *const names[TN_PML_ERR_COUNT_] = {
	        [TN_PML_ERR_BAD_PACKAGE] = "bad_package",
	        [TN_PML_ERR_PACKAGE_TOO_BIG] = "package_too_big",
	        [TN_PML_ERR_UNKNOWN_PACKAGE] = "unknown_package",
	        [TN_PML_ERR_HANDSHAKE_REFUSED] = "handshake_refused",
	        [TN_PML_ERR_DATA_BEFORE_ACK] = "data_before_ack",
	        [TN_PML_ERR_OUT_OF_STATE] = "out_of_state",
	        [TN_PML_ERR_BAD_MESSAGE] = "bad_message",
	        [TN_PML_ERR_BAD_MESSAGE_TYPE] = "bad_message_type",
	        [TN_PML_ERR_UNKNOWN_ROUTE_CODE] = "unknown_route_code",
	        [TN_PML_ERR_BAD_REQUEST_ID] = "bad_request_id",
	        [TN_PML_ERR_TOO_MANY_REQUESTS] = "too_many_requests",
	        [TN_PML_ERR_PUSH_SUPPRESSED] = "push_suppressed",
	        [TN_PML_ERR_OUTBOUND_FULL] = "outbound_full",
	};
	if ((unsigned)err >= TN_PML_ERR_COUNT_ || names[err] == NULL)
		return "unknown";
	return names[err];
}

const char *
tn_pml_close_reason_name(enum tn_pml_close_reason reason)
{
	switch (reason) {
	case TN_PML_CLOSE_PROTOCOL: return "protocol_error";
	case TN_PML_CLOSE_HANDSHAKE_REFUSED: return "handshake_refused";
	case TN_PML_CLOSE_HANDSHAKE_TIMEOUT: return "handshake_timeout";
	case TN_PML_CLOSE_HEARTBEAT_TIMEOUT: return "heartbeat_timeout";
	case TN_PML_CLOSE_KICKED: return "kicked";
	case TN_PML_CLOSE_PACKAGE_TOO_BIG: return "package_too_large";
	default: return "unknown";
	}
}
