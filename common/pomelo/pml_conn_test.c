/* The server-side connection state machine, driven with explicit times (no sleeping). */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "pomelo.h"
#include "tn_test.h"

static const char *const demo[] = {
        "gate.gateHandler.queryEntry",
        "connector.entryHandler.enter",
        "chat.chatHandler.send",
};

#define HS_HEX                                                                                     \
	"01 00 00 4b 7b 22 73 79 73 22 3a 7b 22 74 79 70 65 22 3a 22 6a 73 2d 77 65 62 73 6f 63"   \
	"6b 65 74 22 2c 22 76 65 72 73 69 6f 6e 22 3a 22 30 2e 30 2e 31 22 2c 22 72 73 61 22"      \
	"3a 7b 7d 2c 22 70 72 6f 74 6f 56 65 72 73 69 6f 6e 22 3a 30 7d 7d"
#define ACK_HEX "02 00 00 00"
#define HB_HEX  "03 00 00 00"
#define ENTER_BODY_HEX                                                                             \
	"7b 22 75 73 65 72 6e 61 6d 65 22 3a 22 61 6c 69 63 65 22 2c 22 72 69 64 22 3a 22 72 "     \
	"6f 6f 6d 31 22 7d"
#define ENTER_HEX                                                                                  \
	"04 00 00 41 00 01 1c 63 6f 6e 6e 65 63 74 6f 72 2e 65 6e 74 72 79 48 61 6e 64 6c 65"      \
	"72 2e 65 6e 74 65 72 " ENTER_BODY_HEX
#define ENTER_DICT_HEX "04 00 00 26 01 02 00 02 " ENTER_BODY_HEX
#define NOTIFY_HEX                                                                                 \
	"04 00 00 19 02 15 63 68 61 74 2e 63 68 61 74 48 61 6e 64 6c 65 72 2e 73 65 6e 64 7b"      \
	" 7d"

/* What the callbacks saw. */
struct rec {
	struct tn_pml_conn conn;
	int ready;
	int requests;
	int notifies;
	int closes;
	int errors[TN_PML_ERR_COUNT_];
	int n_errors;
	uint32_t err_req_id;
	enum tn_pml_close_reason close_reason;
	uint32_t last_id;
	char last_route[256];
	size_t last_route_len;
	uint8_t last_body[256];
	size_t last_body_len;
	/* Actions taken from inside on_request. */
	bool respond_inline;
	bool kick_inline;
};

static void
on_ready(void *ctx)
{
	((struct rec *)ctx)->ready++;
}

static void
keep(struct rec *r, const struct tn_pml_msg *msg)
{
	r->last_id = msg->id;
	/* The route is promised to be NUL-terminated. */
	snprintf(r->last_route, sizeof(r->last_route), "%s", msg->route);
	r->last_route_len = msg->route_len;
	r->last_body_len = msg->body_len < sizeof(r->last_body) ? msg->body_len : 0;
	memcpy(r->last_body, msg->body, r->last_body_len);
}

static void
on_request(void *ctx, const struct tn_pml_msg *msg)
{
	struct rec *r = ctx;
	r->requests++;
	keep(r, msg);
	if (r->respond_inline)
		tn_pml_conn_respond(&r->conn, msg->id, "{\"ok\":1}", 8);
	if (r->kick_inline)
		tn_pml_conn_kick(&r->conn, "inline");
}

static void
on_notify(void *ctx, const struct tn_pml_msg *msg)
{
	struct rec *r = ctx;
	r->notifies++;
	keep(r, msg);
}

static void
on_error(void *ctx, enum tn_pml_conn_error err, uint32_t req_id)
{
	struct rec *r = ctx;
	r->errors[err]++;
	r->n_errors++;
	r->err_req_id = req_id;
}

static void
on_close_needed(void *ctx, enum tn_pml_close_reason reason)
{
	struct rec *r = ctx;
	r->closes++;
	r->close_reason = reason;
}

static const struct tn_pml_conn_cbs cbs = {
        .on_ready = on_ready,
        .on_request = on_request,
        .on_notify = on_notify,
        .on_error = on_error,
        .on_close_needed = on_close_needed,
};

static void
start(struct rec *r, const struct tn_pml_conn_config *cfg, int64_t now)
{
	memset(r, 0, sizeof(*r));
	tn_pml_conn_init(&r->conn, cfg, &cbs, r, now);
}

static int
feed_hex(struct rec *r, const char *hex, int64_t now)
{
	uint8_t data[1024];
	size_t n = tn_test_hex(hex, data, sizeof(data));
	uint8_t *copy = tn_memdup(data, n); /* exact size, for ASan */
	int rv = tn_pml_conn_feed(&r->conn, copy, n, now);
	free(copy);
	return rv;
}

/* Takes everything queued into out (replacing its contents). */
static void
drain(struct rec *r, struct tn_buf *out)
{
	size_t len;
	uint8_t *p = tn_pml_conn_out_peek(&r->conn, &len, 0);
	tn_buf_reset(out);
	tn_buf_append(out, p, len);
	tn_pml_conn_out_consume(&r->conn, len);
}

/* True when the queued output is exactly hex; drains it. */
static bool
out_is(struct rec *r, const char *hex)
{
	uint8_t want[1024];
	size_t n = tn_test_hex(hex, want, sizeof(want));
	struct tn_buf b;
	tn_buf_init(&b);
	drain(r, &b);
	bool same = b.len == n && memcmp(b.data, want, n) == 0;
	if (!same) {
		fprintf(stderr, "  output (%zu bytes):", b.len);
		for (size_t i = 0; i < b.len && i < 64; i++)
			fprintf(stderr, " %02x", b.data[i]);
		fprintf(stderr, "\n");
	}
	tn_buf_fini(&b);
	return same;
}

/* Handshake and ACK at time now; drains the handshake response and first heartbeat. */
static bool
to_working(struct rec *r, int64_t now)
{
	if (feed_hex(r, HS_HEX, now) != TN_OK ||
	        tn_pml_conn_state(&r->conn) != TN_PML_CONN_WAIT_ACK)
		return false;
	if (feed_hex(r, ACK_HEX, now) != TN_OK)
		return false;
	struct tn_buf b;
	tn_buf_init(&b);
	drain(r, &b);
	tn_buf_fini(&b);
	return tn_pml_conn_state(&r->conn) == TN_PML_CONN_WORKING;
}

static struct tn_pml_conn_config
cfg_hb(int heartbeat_s)
{
	struct tn_pml_conn_config cfg;
	tn_pml_conn_config_init(&cfg);
	cfg.hs.heartbeat_s = heartbeat_s;
	cfg.hs.proto_version = "c1";
	return cfg;
}

TN_TEST(happy_path)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK_INT(tn_pml_conn_state(&r.conn), ==, TN_PML_CONN_INITED);
	TN_CHECK_OK(feed_hex(&r, HS_HEX, 10));
	TN_CHECK_INT(tn_pml_conn_state(&r.conn), ==, TN_PML_CONN_WAIT_ACK);
	/* The handshake response is queued at once. */
	static const char resp[] =
	        "{\"code\":200,\"sys\":{\"heartbeat\":3,\"protos\":{\"server\":{},"
	        "\"client\":{},\"version\":\"c1\"},\"useProto\":true}}";
	struct tn_buf b;
	tn_buf_init(&b);
	drain(&r, &b);
	TN_CHECK_INT(b.len, ==, 4 + strlen(resp));
	TN_CHECK_INT(b.data[0], ==, TN_PML_PKG_HANDSHAKE);
	TN_CHECK_MEM(b.data + 4, b.len - 4, resp, strlen(resp));
	tn_buf_fini(&b);

	/* ACK: WORKING, first heartbeat sent, on_ready. */
	TN_CHECK_OK(feed_hex(&r, ACK_HEX, 20));
	TN_CHECK_INT(tn_pml_conn_state(&r.conn), ==, TN_PML_CONN_WORKING);
	TN_CHECK_INT(r.ready, ==, 1);
	TN_CHECK(out_is(&r, HB_HEX));

	TN_CHECK_OK(feed_hex(&r, ENTER_HEX, 30));
	TN_CHECK_INT(r.requests, ==, 1);
	TN_CHECK_INT(r.last_id, ==, 1);
	TN_CHECK_STR(r.last_route, "connector.entryHandler.enter");
	TN_CHECK_INT(r.last_route_len, ==, 28);
	TN_CHECK_MEM(
	        r.last_body, r.last_body_len, "{\"username\":\"alice\",\"rid\":\"room1\"}", 34);
	TN_CHECK_OK(tn_pml_conn_respond(
	        &r.conn, 1, "{\"code\":200,\"host\":\"127.0.0.1\",\"port\":3050}", 43));
	TN_CHECK(out_is(&r, "04 00 00 2d 04 01 7b 22 63 6f 64 65 22 3a 32 30 30 2c 22 68 6f 73 74"
	                    "22 3a 22 31 32 37 2e 30 2e 30 2e 31 22 2c 22 70 6f 72 74 22 3a 33 30"
	                    "35 30 7d"));

	TN_CHECK_OK(feed_hex(&r, NOTIFY_HEX, 40));
	TN_CHECK_INT(r.notifies, ==, 1);
	TN_CHECK_STR(r.last_route, "chat.chatHandler.send");
	TN_CHECK_INT(r.last_id, ==, 0);
	TN_CHECK_INT(r.n_errors, ==, 0);
	TN_CHECK_INT(r.closes, ==, 0);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(out_of_state_dropped)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	/* INITED: data, ack and heartbeat are dropped; nothing is sent. */
	TN_CHECK_OK(feed_hex(&r, ENTER_HEX, 1));
	TN_CHECK_OK(feed_hex(&r, ACK_HEX, 1));
	TN_CHECK_OK(feed_hex(&r, HB_HEX, 1));
	TN_CHECK_INT(r.errors[TN_PML_ERR_DATA_BEFORE_ACK], ==, 1);
	TN_CHECK_INT(r.errors[TN_PML_ERR_OUT_OF_STATE], ==, 2);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);
	TN_CHECK_INT(tn_pml_conn_state(&r.conn), ==, TN_PML_CONN_INITED);

	/* WAIT_ACK: data before the ACK (the client's init callback races it), a second
	 * handshake and a heartbeat are dropped. */
	TN_CHECK_OK(feed_hex(&r, HS_HEX, 2));
	struct tn_buf b;
	tn_buf_init(&b);
	drain(&r, &b);
	tn_buf_fini(&b);
	TN_CHECK_OK(feed_hex(&r, NOTIFY_HEX, 3));
	TN_CHECK_OK(feed_hex(&r, HS_HEX, 3));
	TN_CHECK_OK(feed_hex(&r, HB_HEX, 3));
	TN_CHECK_INT(r.errors[TN_PML_ERR_DATA_BEFORE_ACK], ==, 2);
	TN_CHECK_INT(r.errors[TN_PML_ERR_OUT_OF_STATE], ==, 4);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);
	TN_CHECK_INT(r.requests + r.notifies, ==, 0);

	/* WORKING: a second ACK and a handshake are dropped. */
	TN_CHECK_OK(feed_hex(&r, ACK_HEX, 4));
	TN_CHECK(out_is(&r, HB_HEX));
	TN_CHECK_OK(feed_hex(&r, ACK_HEX, 5));
	TN_CHECK_OK(feed_hex(&r, HS_HEX, 5));
	TN_CHECK_INT(r.errors[TN_PML_ERR_OUT_OF_STATE], ==, 6);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);
	TN_CHECK_INT(r.ready, ==, 1);
	TN_CHECK_INT(r.closes, ==, 0);
	tn_pml_conn_fini(&r.conn);
}

/* Every way the framing breaks closes the connection, in any state. */
TN_TEST(framing_errors_close)
{
	static const struct {
		const char *hex;
		enum tn_pml_conn_error err;
	} cases[] = {
	        {"06 00 00 00", TN_PML_ERR_UNKNOWN_PACKAGE},
	        {"00 00 00 00", TN_PML_ERR_UNKNOWN_PACKAGE},
	        {"05 00 00 02 7b 7d", TN_PML_ERR_UNKNOWN_PACKAGE}, /* KICK from a client */
	        {"04 00 00 05 02 01 61", TN_PML_ERR_BAD_PACKAGE},
	        {"03 00 00", TN_PML_ERR_BAD_PACKAGE},
	        {"", TN_PML_ERR_BAD_PACKAGE},
	};
	struct tn_pml_conn_config cfg = cfg_hb(3);
	for (int working = 0; working < 2; working++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct rec r;
			start(&r, &cfg, 0);
			if (working)
				TN_CHECK(to_working(&r, 0));
			TN_CHECK_INT(feed_hex(&r, cases[i].hex, 1), ==, TN_ECLOSED);
			TN_CHECK_INT(r.errors[cases[i].err], ==, 1);
			TN_CHECK_INT(r.closes, ==, 1);
			TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_PROTOCOL);
			TN_CHECK_INT(tn_pml_conn_state(&r.conn), ==, TN_PML_CONN_CLOSED);
			/* Closed for good: later input is ignored, no second close. */
			TN_CHECK_INT(feed_hex(&r, HB_HEX, 2), ==, TN_ECLOSED);
			TN_CHECK_INT(r.closes, ==, 1);
			TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, TN_PML_NO_DEADLINE);
			tn_pml_conn_fini(&r.conn);
		}
	}
}

TN_TEST(package_too_large_kicks_when_working)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	/* The browser's handshake body is 75 bytes: exactly at the limit is accepted. */
	cfg.package_limit = 75;
	struct rec r;
	/* Before the ACK: closed without a kick (only the handshake answer may go out). */
	start(&r, &cfg, 0);
	TN_CHECK_INT(feed_hex(&r, "01 00 00 4c", 1), ==, TN_ECLOSED);
	TN_CHECK_INT(r.errors[TN_PML_ERR_PACKAGE_TOO_BIG], ==, 1);
	TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_PACKAGE_TOO_BIG);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);
	tn_pml_conn_fini(&r.conn);

	/* In WORKING: the packages before it are handled, then KICK "package too large"; the
	 * header alone is enough to decide (the body never has to arrive). */
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	TN_CHECK_INT(feed_hex(&r, HB_HEX " 04 00 00 4c", 1), ==, TN_ECLOSED);
	TN_CHECK_INT(r.errors[TN_PML_ERR_PACKAGE_TOO_BIG], ==, 1);
	TN_CHECK_INT(r.closes, ==, 1);
	TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_PACKAGE_TOO_BIG);
	TN_CHECK(out_is(&r, HB_HEX " 05 00 00 1e 7b 22 72 65 61 73 6f 6e 22 3a 22 70 61 63 6b 61 67"
	                           " 65 20 74 6f 6f 20 6c 61 72 67 65 22 7d"));
	TN_CHECK_STR(tn_pml_close_reason_name(TN_PML_CLOSE_PACKAGE_TOO_BIG), "package_too_large");
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(several_packages_in_one_message)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	r.respond_inline = true;
	TN_CHECK_OK(feed_hex(&r, HB_HEX " " ENTER_HEX " " NOTIFY_HEX, 100));
	TN_CHECK_INT(r.requests, ==, 1);
	TN_CHECK_INT(r.notifies, ==, 1);
	/* Heartbeat answer and response coalesced in order. */
	TN_CHECK(out_is(&r, HB_HEX " 04 00 00 0a 04 01 7b 22 6f 6b 22 3a 31 7d"));

	/* Packages after a fatal one are not processed. */
	TN_CHECK_INT(feed_hex(&r, NOTIFY_HEX " 09 00 00 00 " NOTIFY_HEX, 200), ==, TN_ECLOSED);
	TN_CHECK_INT(r.notifies, ==, 2);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(kick_inside_callback_stops_the_message)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	r.kick_inline = true;
	TN_CHECK_INT(feed_hex(&r, ENTER_HEX " " NOTIFY_HEX, 100), ==, TN_ECLOSED);
	TN_CHECK_INT(r.requests, ==, 1);
	TN_CHECK_INT(r.notifies, ==, 0);
	TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_KICKED);
	/* {"reason":"inline"} */
	TN_CHECK(
	        out_is(&r, "05 00 00 13 7b 22 72 65 61 73 6f 6e 22 3a 22 69 6e 6c 69 6e 65 22 7d"));
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(heartbeats)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK_OK(feed_hex(&r, HS_HEX, 500));
	TN_CHECK_OK(feed_hex(&r, ACK_HEX, 1000));
	struct tn_buf b;
	tn_buf_init(&b);
	drain(&r, &b); /* the handshake reply, then the first heartbeat */
	bool hb_last = b.len > 8 && memcmp(b.data + b.len - 4, "\x03\0\0\0", 4) == 0;
	tn_buf_fini(&b);
	TN_CHECK(hb_last);
	TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, 7000);
	TN_CHECK(!tn_pml_conn_check_timeout(&r.conn, 6999));

	/* Data does not move the deadline. */
	TN_CHECK_OK(feed_hex(&r, NOTIFY_HEX, 5000));
	TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, 7000);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);

	/* A client heartbeat is answered at once and moves it. */
	TN_CHECK_OK(feed_hex(&r, HB_HEX, 6000));
	TN_CHECK(out_is(&r, HB_HEX));
	TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, 12000);
	TN_CHECK(!tn_pml_conn_check_timeout(&r.conn, 11999));
	TN_CHECK_INT(r.closes, ==, 0);
	TN_CHECK(tn_pml_conn_check_timeout(&r.conn, 12000));
	TN_CHECK_INT(r.closes, ==, 1);
	TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_HEARTBEAT_TIMEOUT);
	TN_CHECK_INT(tn_pml_conn_state(&r.conn), ==, TN_PML_CONN_CLOSED);
	TN_CHECK(!tn_pml_conn_check_timeout(&r.conn, 99999));
	TN_CHECK_INT(r.closes, ==, 1);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(heartbeat_timeout_override)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	cfg.heartbeat_timeout_ms = 500;
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 100));
	TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, 600);
	TN_CHECK(tn_pml_conn_check_timeout(&r.conn, 600));
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(no_heartbeat_configured)
{
	struct tn_pml_conn_config cfg = cfg_hb(0);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK_OK(feed_hex(&r, HS_HEX, 0));
	struct tn_buf b;
	tn_buf_init(&b);
	drain(&r, &b);
	tn_buf_fini(&b);
	TN_CHECK_OK(feed_hex(&r, ACK_HEX, 0));
	TN_CHECK_INT(r.ready, ==, 1);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0); /* no heartbeat on the ACK */
	TN_CHECK_OK(feed_hex(&r, HB_HEX, 10));
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0); /* and none answered */
	TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, TN_PML_NO_DEADLINE);
	TN_CHECK(!tn_pml_conn_check_timeout(&r.conn, INT64_MAX - 1));
	TN_CHECK_INT(r.n_errors, ==, 0);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(handshake_deadline)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	TN_CHECK_INT(cfg.handshake_timeout_ms, ==, 10000);
	struct rec r;

	/* Nothing at all. */
	start(&r, &cfg, 1000);
	TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, 11000);
	TN_CHECK(!tn_pml_conn_check_timeout(&r.conn, 10999));
	TN_CHECK(tn_pml_conn_check_timeout(&r.conn, 11000));
	TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_HANDSHAKE_TIMEOUT);
	tn_pml_conn_fini(&r.conn);

	/* A handshake but no ACK. */
	start(&r, &cfg, 0);
	TN_CHECK_OK(feed_hex(&r, HS_HEX, 9000));
	TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, 10000);
	TN_CHECK(tn_pml_conn_check_timeout(&r.conn, 10001));
	TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_HANDSHAKE_TIMEOUT);
	tn_pml_conn_fini(&r.conn);

	/* WORKING in time: the handshake deadline no longer applies. */
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 9999));
	TN_CHECK(!tn_pml_conn_check_timeout(&r.conn, 10000));
	TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, 15999);
	tn_pml_conn_fini(&r.conn);

	/* Disabled. */
	cfg.handshake_timeout_ms = 0;
	start(&r, &cfg, 0);
	TN_CHECK_INT(tn_pml_conn_deadline(&r.conn), ==, TN_PML_NO_DEADLINE);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(push_rules)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	static const char add[] = "{\"route\":\"onAdd\",\"user\":\"bob\"}";
	TN_CHECK_INT(tn_pml_conn_push(&r.conn, "onAdd", add, strlen(add)), ==, TN_ECLOSED);
	TN_CHECK_OK(feed_hex(&r, HS_HEX, 0));
	struct tn_buf b;
	tn_buf_init(&b);
	drain(&r, &b);
	TN_CHECK_INT(tn_pml_conn_push(&r.conn, "onAdd", add, strlen(add)), ==, TN_ECLOSED);
	TN_CHECK_INT(r.errors[TN_PML_ERR_PUSH_SUPPRESSED], ==, 2);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);
	TN_CHECK_INT(tn_pml_conn_heartbeat(&r.conn), ==, TN_ECLOSED);

	TN_CHECK_OK(feed_hex(&r, ACK_HEX, 0));
	drain(&r, &b);
	TN_CHECK_OK(tn_pml_conn_push(&r.conn, "onAdd", add, strlen(add)));
	TN_CHECK(out_is(&r, "04 00 00 25 06 05 6f 6e 41 64 64 7b 22 72 6f 75 74 65 22 3a 22 6f 6e"
	                    "41 64 64 22 2c 22 75 73 65 72 22 3a 22 62 6f 62 22 7d"));
	TN_CHECK_INT(tn_pml_conn_push(&r.conn, "onAdd", "", 0), ==, TN_EINVAL);
	TN_CHECK_INT(tn_pml_conn_push(&r.conn, "", "{}", 2), ==, TN_EINVAL);
	TN_CHECK_INT(tn_pml_conn_push(&r.conn, NULL, "{}", 2), ==, TN_EINVAL);
	char long_route[300];
	memset(long_route, 'r', 256);
	long_route[256] = '\0';
	TN_CHECK_INT(tn_pml_conn_push(&r.conn, long_route, "{}", 2), ==, TN_EINVAL);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);
	TN_CHECK_OK(tn_pml_conn_heartbeat(&r.conn));
	TN_CHECK(out_is(&r, HB_HEX));

	TN_CHECK_OK(tn_pml_conn_kick(&r.conn, NULL));
	drain(&r, &b);
	TN_CHECK_INT(tn_pml_conn_push(&r.conn, "onAdd", add, strlen(add)), ==, TN_ECLOSED);
	TN_CHECK_INT(r.errors[TN_PML_ERR_PUSH_SUPPRESSED], ==, 3);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);
	tn_buf_fini(&b);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(responses)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	TN_CHECK_INT(tn_pml_conn_respond(&r.conn, 1, "{}", 2), ==, TN_ENOENT); /* never asked */
	TN_CHECK_OK(feed_hex(&r, ENTER_HEX, 1));
	/* An empty body becomes {} (vector 6). */
	TN_CHECK_OK(tn_pml_conn_respond(&r.conn, 1, NULL, 0));
	TN_CHECK(out_is(&r, "04 00 00 04 04 01 7b 7d"));
	/* Answered once only. */
	TN_CHECK_INT(tn_pml_conn_respond(&r.conn, 1, "{}", 2), ==, TN_ENOENT);
	/* A notify is never answered. */
	TN_CHECK_OK(feed_hex(&r, NOTIFY_HEX, 1));
	TN_CHECK_INT(tn_pml_conn_respond(&r.conn, 0, "{}", 2), ==, TN_ENOENT);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);

	/* Several outstanding, answered out of order. */
	TN_CHECK_OK(feed_hex(&r, "04 00 00 07 00 ac 02 01 61 7b 7d", 2));
	TN_CHECK_OK(feed_hex(&r, "04 00 00 06 00 05 01 61 7b 7d", 2));
	TN_CHECK_INT(r.requests, ==, 3);
	TN_CHECK_OK(tn_pml_conn_respond(&r.conn, 5, "{}", 2));
	TN_CHECK_OK(tn_pml_conn_respond(&r.conn, 300, "{}", 2));
	TN_CHECK(out_is(&r, "04 00 00 04 04 05 7b 7d 04 00 00 05 04 ac 02 7b 7d"));

	/* A repeated id while outstanding, and id 0, are dropped. */
	TN_CHECK_OK(feed_hex(&r, "04 00 00 06 00 07 01 61 7b 7d", 3));
	TN_CHECK_OK(feed_hex(&r, "04 00 00 06 00 07 01 61 7b 7d", 3));
	TN_CHECK_OK(feed_hex(&r, "04 00 00 06 00 00 01 61 7b 7d", 3));
	TN_CHECK_INT(r.requests, ==, 4);
	TN_CHECK_INT(r.errors[TN_PML_ERR_BAD_REQUEST_ID], ==, 2);

	/* After a close nothing goes out. */
	tn_pml_conn_close(&r.conn);
	TN_CHECK_INT(tn_pml_conn_respond(&r.conn, 7, "{}", 2), ==, TN_ECLOSED);
	TN_CHECK_INT(tn_pml_conn_kick(&r.conn, "x"), ==, TN_ECLOSED);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);
	TN_CHECK_INT(r.closes, ==, 0); /* tn_pml_conn_close has no callback */
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(max_inflight)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	cfg.max_inflight = 2;
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	TN_CHECK_OK(feed_hex(&r, "04 00 00 06 00 01 01 61 7b 7d", 1));
	TN_CHECK_OK(feed_hex(&r, "04 00 00 06 00 02 01 61 7b 7d", 1));
	TN_CHECK_OK(feed_hex(&r, "04 00 00 06 00 03 01 61 7b 7d", 1));
	TN_CHECK_INT(r.requests, ==, 2);
	TN_CHECK_INT(r.errors[TN_PML_ERR_TOO_MANY_REQUESTS], ==, 1);
	TN_CHECK_INT(tn_pml_conn_respond(&r.conn, 3, "{}", 2), ==, TN_ENOENT);
	TN_CHECK_OK(tn_pml_conn_respond(&r.conn, 1, "{}", 2));
	TN_CHECK_OK(feed_hex(&r, "04 00 00 06 00 04 01 61 7b 7d", 1));
	TN_CHECK_INT(r.requests, ==, 3);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(kick)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	TN_CHECK_OK(tn_pml_conn_kick(&r.conn, "kick"));
	TN_CHECK_INT(tn_pml_conn_state(&r.conn), ==, TN_PML_CONN_CLOSED);
	TN_CHECK_INT(r.closes, ==, 1);
	TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_KICKED);
	TN_CHECK(out_is(&r, "05 00 00 11 7b 22 72 65 61 73 6f 6e 22 3a 22 6b 69 63 6b 22 7d"));
	TN_CHECK_INT(tn_pml_conn_kick(&r.conn, "again"), ==, TN_ECLOSED);
	TN_CHECK_INT(r.closes, ==, 1);
	tn_pml_conn_fini(&r.conn);

	/* Allowed before the handshake too, with the default reason: never an empty body. */
	start(&r, &cfg, 0);
	TN_CHECK_OK(tn_pml_conn_kick(&r.conn, NULL));
	TN_CHECK(out_is(&r, "05 00 00 11 7b 22 72 65 61 73 6f 6e 22 3a 22 6b 69 63 6b 22 7d"));
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(handshake_refused)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	/* Not JSON: {"code":500}, then close. */
	TN_CHECK_INT(feed_hex(&r, "01 00 00 03 61 62 63 " HB_HEX, 0), ==, TN_ECLOSED);
	TN_CHECK(out_is(&r, "01 00 00 0c 7b 22 63 6f 64 65 22 3a 35 30 30 7d"));
	TN_CHECK_INT(r.errors[TN_PML_ERR_HANDSHAKE_REFUSED], ==, 1);
	TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_HANDSHAKE_REFUSED);
	TN_CHECK_INT(
	        r.errors[TN_PML_ERR_OUT_OF_STATE], ==, 0); /* the heartbeat was not looked at */
	tn_pml_conn_fini(&r.conn);

	/* An empty handshake body is not JSON either. */
	start(&r, &cfg, 0);
	TN_CHECK_INT(feed_hex(&r, "01 00 00 00", 0), ==, TN_ECLOSED);
	TN_CHECK(out_is(&r, "01 00 00 0c 7b 22 63 6f 64 65 22 3a 35 30 30 7d"));
	tn_pml_conn_fini(&r.conn);
}

static bool
refuse_all(void *ctx, const char *type, const char *version)
{
	return false;
}

TN_TEST(handshake_501)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	cfg.hs.check_client = refuse_all;
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK_INT(feed_hex(&r, HS_HEX, 0), ==, TN_ECLOSED);
	TN_CHECK(out_is(&r, "01 00 00 0c 7b 22 63 6f 64 65 22 3a 35 30 31 7d"));
	TN_CHECK_INT(r.close_reason, ==, TN_PML_CLOSE_HANDSHAKE_REFUSED);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(dict_routes)
{
	struct tn_pml_dict *dict;
	TN_CHECK_OK(tn_pml_dict_new(&dict, demo, 3, NULL, 0));
	struct tn_pml_conn_config cfg = cfg_hb(3);
	cfg.hs.dict = dict;
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));

	/* The real demo's enter request, compressed to code 2. */
	TN_CHECK_OK(feed_hex(&r, ENTER_DICT_HEX, 1));
	TN_CHECK_INT(r.requests, ==, 1);
	TN_CHECK_INT(r.last_id, ==, 2);
	TN_CHECK_STR(r.last_route, "connector.entryHandler.enter");
	TN_CHECK_INT(r.last_route_len, ==, 28);

	/* An unknown code on a request: reported with its id, which can be answered. */
	TN_CHECK_OK(feed_hex(&r, "04 00 00 06 01 09 00 63 7b 7d", 2));
	TN_CHECK_INT(r.requests, ==, 1);
	TN_CHECK_INT(r.errors[TN_PML_ERR_UNKNOWN_ROUTE_CODE], ==, 1);
	TN_CHECK_INT(r.err_req_id, ==, 9);
	TN_CHECK_OK(tn_pml_conn_respond(&r.conn, 9, "{\"code\":404}", 12));
	/* On a notify: reported without an id. */
	TN_CHECK_OK(feed_hex(&r, "04 00 00 05 03 00 63 7b 7d", 2));
	TN_CHECK_INT(r.errors[TN_PML_ERR_UNKNOWN_ROUTE_CODE], ==, 2);
	TN_CHECK_INT(r.err_req_id, ==, 0);
	struct tn_buf b;
	tn_buf_init(&b);
	drain(&r, &b);
	tn_buf_fini(&b);

	/* Pushes on a route in the dict go as codes. */
	TN_CHECK_OK(tn_pml_conn_push(&r.conn, "chat.chatHandler.send", "{}", 2));
	TN_CHECK(out_is(&r, "04 00 00 05 07 00 01 7b 7d"));
	tn_pml_conn_fini(&r.conn);

	/* Without a dict every compressed route is unknown. */
	cfg.hs.dict = NULL;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	TN_CHECK_OK(feed_hex(&r, ENTER_DICT_HEX, 1));
	TN_CHECK_INT(r.requests, ==, 0);
	TN_CHECK_INT(r.errors[TN_PML_ERR_UNKNOWN_ROUTE_CODE], ==, 1);
	TN_CHECK_INT(r.err_req_id, ==, 2);
	tn_pml_conn_fini(&r.conn);
	tn_pml_dict_free(dict);
}

TN_TEST(bad_messages_keep_the_connection)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	TN_CHECK_OK(feed_hex(&r, "04 00 00 00", 1));          /* empty message */
	TN_CHECK_OK(feed_hex(&r, "04 00 00 03 12 01 61", 1)); /* gzip */
	TN_CHECK_OK(feed_hex(&r, "04 00 00 03 00 01 05", 1)); /* route past end */
	TN_CHECK_OK(feed_hex(&r, "04 00 00 03 08 01 61", 1)); /* type 4 */
	TN_CHECK_INT(r.errors[TN_PML_ERR_BAD_MESSAGE], ==, 4);
	TN_CHECK_OK(feed_hex(&r, "04 00 00 04 04 01 7b 7d", 1)); /* a response */
	TN_CHECK_OK(feed_hex(&r, "04 00 00 04 06 00 7b 7d", 1)); /* a push */
	TN_CHECK_INT(r.errors[TN_PML_ERR_BAD_MESSAGE_TYPE], ==, 2);
	TN_CHECK_INT(r.requests + r.notifies + r.closes, ==, 0);
	TN_CHECK_INT(tn_pml_conn_state(&r.conn), ==, TN_PML_CONN_WORKING);
	tn_pml_conn_fini(&r.conn);
}

/* §6.4: CESU-8 passes through both ways. */
TN_TEST(cesu8_passes_through)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	TN_CHECK_OK(feed_hex(&r, "04 00 00 0b 02 01 61 22 ed a0 bd ed b8 80 22", 1));
	TN_CHECK_INT(r.notifies, ==, 1);
	static const uint8_t want[] = {0x22, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80, 0x22};
	TN_CHECK_MEM(r.last_body, r.last_body_len, want, sizeof(want));
	TN_CHECK_OK(tn_pml_conn_push(&r.conn, "onChat", want, sizeof(want)));
	TN_CHECK(out_is(&r, "04 00 00 10 06 06 6f 6e 43 68 61 74 22 ed a0 bd ed b8 80 22"));
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(outbound_limit)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	cfg.out_limit = 40;
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	TN_CHECK_OK(tn_pml_conn_push(&r.conn, "p", "{\"a\":1234567890}", 16)); /* 4+1+1+1+16 = 23 */
	TN_CHECK_INT(tn_pml_conn_push(&r.conn, "p", "{\"a\":1234567890}", 16), ==, TN_EBUSY);
	TN_CHECK_INT(r.errors[TN_PML_ERR_OUTBOUND_FULL], ==, 1);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 23);
	/* Responses are not limited: the client is waiting for them. */
	TN_CHECK_OK(feed_hex(&r, ENTER_HEX, 1));
	TN_CHECK_OK(tn_pml_conn_respond(&r.conn, 1, "{\"users\":[\"alice\"]}", 19));
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 23 + 25);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(peek_headroom_and_frame_limit)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	cfg.out_headroom = 16;
	struct rec r;
	start(&r, &cfg, 0);
	size_t len = 99;
	TN_CHECK(tn_pml_conn_out_peek(&r.conn, &len, 0) == NULL);
	TN_CHECK_INT(len, ==, 0);
	TN_CHECK(to_working(&r, 0));
	TN_CHECK_OK(tn_pml_conn_push(&r.conn, "a", "{\"x\":1}", 7));   /* 4+1+1+1+7 = 14 */
	TN_CHECK_OK(tn_pml_conn_push(&r.conn, "b", "{\"y\":22}", 8));  /* 15 */
	TN_CHECK_OK(tn_pml_conn_push(&r.conn, "c", "{\"z\":333}", 9)); /* 16 */
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 45);
	uint8_t *p = tn_pml_conn_out_peek(&r.conn, &len, 0);
	TN_CHECK(p == r.conn.out.data + 16); /* the headroom is in front */
	TN_CHECK_INT(len, ==, 45);
	p = tn_pml_conn_out_peek(&r.conn, &len, 30);
	TN_CHECK_INT(len, ==, 29); /* two whole packages */
	p = tn_pml_conn_out_peek(&r.conn, &len, 28);
	TN_CHECK_INT(len, ==, 14);
	p = tn_pml_conn_out_peek(&r.conn, &len, 5);
	TN_CHECK_INT(len, ==, 14); /* never split: the first package alone */
	memset(p - 16, 0xee, 16);  /* the headroom is the caller's to overwrite */
	tn_pml_conn_out_consume(&r.conn, 14);
	p = tn_pml_conn_out_peek(&r.conn, &len, 0);
	TN_CHECK_INT(len, ==, 31);
	TN_CHECK_INT(p[0], ==, 0x04);
	TN_CHECK_INT(p[6], ==, 'b');
	tn_pml_conn_out_consume(&r.conn, 31);
	TN_CHECK_INT(tn_pml_conn_out_pending(&r.conn), ==, 0);
	TN_CHECK(tn_pml_conn_out_peek(&r.conn, &len, 0) == NULL);
	/* Refills with the headroom in front again. */
	TN_CHECK_OK(tn_pml_conn_heartbeat(&r.conn));
	p = tn_pml_conn_out_peek(&r.conn, &len, 0);
	TN_CHECK(p == r.conn.out.data + 16 && len == 4);
	tn_pml_conn_fini(&r.conn);
}

/* A large burst is released once drained. */
TN_TEST(out_buffer_shrinks)
{
	struct tn_pml_conn_config cfg = cfg_hb(3);
	struct rec r;
	start(&r, &cfg, 0);
	TN_CHECK(to_working(&r, 0));
	char *body = tn_malloc(40000);
	memset(body, 'x', 40000);
	int rv = tn_pml_conn_push(&r.conn, "big", body, 40000);
	free(body);
	TN_CHECK_OK(rv);
	size_t len;
	tn_pml_conn_out_peek(&r.conn, &len, 0);
	tn_pml_conn_out_consume(&r.conn, len);
	TN_CHECK(r.conn.out.data == NULL && r.conn.out.cap == 0);
	tn_pml_conn_fini(&r.conn);
}

TN_TEST(names)
{
	TN_CHECK_STR(tn_pml_conn_error_name(TN_PML_ERR_DATA_BEFORE_ACK), "data_before_ack");
	TN_CHECK_STR(tn_pml_conn_error_name((enum tn_pml_conn_error)99), "unknown");
	for (int e = 1; e < TN_PML_ERR_COUNT_; e++)
		TN_CHECK(strcmp(tn_pml_conn_error_name((enum tn_pml_conn_error)e), "unknown") != 0);
	TN_CHECK_STR(tn_pml_close_reason_name(TN_PML_CLOSE_HEARTBEAT_TIMEOUT), "heartbeat_timeout");
	TN_CHECK_STR(tn_pml_close_reason_name((enum tn_pml_close_reason)0), "unknown");
}

TN_TEST_MAIN(TN_CASE(happy_path), TN_CASE(out_of_state_dropped), TN_CASE(framing_errors_close),
        TN_CASE(package_too_large_kicks_when_working),
        TN_CASE(several_packages_in_one_message), TN_CASE(kick_inside_callback_stops_the_message),
        TN_CASE(heartbeats), TN_CASE(heartbeat_timeout_override), TN_CASE(no_heartbeat_configured),
        TN_CASE(handshake_deadline), TN_CASE(push_rules), TN_CASE(responses), TN_CASE(max_inflight),
        TN_CASE(kick), TN_CASE(handshake_refused), TN_CASE(handshake_501), TN_CASE(dict_routes),
        TN_CASE(bad_messages_keep_the_connection), TN_CASE(cesu8_passes_through),
        TN_CASE(outbound_limit), TN_CASE(peek_headroom_and_frame_limit),
        TN_CASE(out_buffer_shrinks), TN_CASE(names))
