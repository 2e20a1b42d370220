/* Every test vector of protocol.md §8, encoded byte for byte and decoded back. */
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "pomelo.h"
#include "tn_test.h"

static const char *const demo_routes[] = {
        "gate.gateHandler.queryEntry",
        "connector.entryHandler.enter",
        "chat.chatHandler.send",
};

#define ENTER_BODY "{\"username\":\"alice\",\"rid\":\"room1\"}"
#define ENTER_BODY_HEX                                                                             \
	"7b 22 75 73 65 72 6e 61 6d 65 22 3a 22 61 6c 69 63 65 22 2c 22 72 69 64 22 3a 22 72 "     \
	"6f 6f 6d 31 22 7d"

/* The only package in pkt (asserting there is exactly one). */
static int
one_pkg(struct tn_pml_pkg *pkg, const uint8_t *pkt, size_t len)
{
	struct tn_pml_pkg_iter it;
	tn_pml_pkg_iter_init(&it, pkt, len, 0);
	int rv = tn_pml_pkg_next(pkg, &it);
	if (rv != TN_OK)
		return rv;
	return tn_pml_pkg_iter_more(&it) ? TN_EPROTO : TN_OK;
}

/* Decodes the DATA package in pkt into msg (views into pkt). */
static int
data_msg(struct tn_pml_msg *msg, const uint8_t *pkt, size_t len)
{
	struct tn_pml_pkg pkg;
	int rv = one_pkg(&pkg, pkt, len);
	if (rv != TN_OK)
		return rv;
	if (pkg.type != TN_PML_PKG_DATA)
		return TN_EKIND;
	return tn_pml_msg_decode(msg, pkg.body, pkg.len);
}

TN_TEST(v1_client_handshake)
{
	uint8_t want[128];
	size_t n = tn_test_hex("01 00 00 4b 7b 22 73 79 73 22 3a 7b 22 74 79 70 65 22 3a 22 6a 73 "
	                       "2d 77 65 62 73 6f 63"
	                       "6b 65 74 22 2c 22 76 65 72 73 69 6f 6e 22 3a 22 30 2e 30 2e 31 22 "
	                       "2c 22 72 73 61 22"
	                       "3a 7b 7d 2c 22 70 72 6f 74 6f 56 65 72 73 69 6f 6e 22 3a 30 7d 7d",
	        want, sizeof(want));
	struct tn_buf b;
	tn_buf_init(&b);
	struct tn_pml_hs_client_info info = {.type = "js-websocket", .version = "0.0.1"};
	tn_pml_hs_request_encode(&b, &info);
	TN_CHECK_MEM(b.data, b.len, want, n);
	tn_buf_fini(&b);

	struct tn_pml_pkg pkg;
	TN_CHECK_OK(one_pkg(&pkg, want, n));
	TN_CHECK_INT(pkg.type, ==, TN_PML_PKG_HANDSHAKE);
	TN_CHECK_INT(pkg.len, ==, 75);
	struct tn_pml_hs_request req;
	TN_CHECK_OK(tn_pml_hs_request_parse(&req, pkg.body, pkg.len));
	TN_CHECK_STR(req.type, "js-websocket");
	TN_CHECK_STR(req.version, "0.0.1");
	TN_CHECK(req.dict_version == NULL);
	TN_CHECK(req.user == NULL);
	tn_pml_hs_request_fini(&req);
}

TN_TEST(v2_minimal_server_handshake)
{
	static const char body[] = "{\"code\":200,\"sys\":{\"heartbeat\":3}}";
	uint8_t want[64];
	size_t n = tn_test_hex("01 00 00 22 7b 22 63 6f 64 65 22 3a 32 30 30 2c 22 73 79 73 22 3a "
	                       "7b 22 68 65 61 72"
	                       "74 62 65 61 74 22 3a 33 7d 7d",
	        want, sizeof(want));
	struct tn_buf b;
	tn_buf_init(&b);
	TN_CHECK_OK(tn_pml_pkg_encode(&b, TN_PML_PKG_HANDSHAKE, body, strlen(body)));
	TN_CHECK_MEM(b.data, b.len, want, n);
	tn_buf_fini(&b);

	struct tn_pml_pkg pkg;
	TN_CHECK_OK(one_pkg(&pkg, want, n));
	TN_CHECK_INT(pkg.type, ==, TN_PML_PKG_HANDSHAKE);
	struct tn_pml_hs_reply reply;
	TN_CHECK_OK(tn_pml_hs_reply_parse(&reply, pkg.body, pkg.len));
	TN_CHECK_INT(reply.code, ==, 200);
	TN_CHECK_INT(reply.heartbeat_ms, ==, 3000);
	TN_CHECK(reply.dict == NULL && !reply.use_dict && !reply.use_proto);
	tn_pml_hs_reply_fini(&reply);
}

TN_TEST(v3_ack_and_heartbeat)
{
	static const uint8_t ack[] = {0x02, 0, 0, 0}, hb[] = {0x03, 0, 0, 0};
	struct tn_buf b;
	tn_buf_init(&b);
	TN_CHECK_OK(tn_pml_pkg_encode(&b, TN_PML_PKG_HANDSHAKE_ACK, NULL, 0));
	TN_CHECK_MEM(b.data, b.len, ack, sizeof(ack));
	tn_buf_reset(&b);
	TN_CHECK_OK(tn_pml_pkg_encode(&b, TN_PML_PKG_HEARTBEAT, NULL, 0));
	TN_CHECK_MEM(b.data, b.len, hb, sizeof(hb));
	tn_buf_fini(&b);

	struct tn_pml_pkg pkg;
	TN_CHECK_OK(one_pkg(&pkg, ack, sizeof(ack)));
	TN_CHECK_INT(pkg.type, ==, TN_PML_PKG_HANDSHAKE_ACK);
	TN_CHECK_INT(pkg.len, ==, 0);
	TN_CHECK_OK(one_pkg(&pkg, hb, sizeof(hb)));
	TN_CHECK_INT(pkg.type, ==, TN_PML_PKG_HEARTBEAT);
	TN_CHECK_INT(pkg.len, ==, 0);
}

/* Encodes msg as a DATA package, compares with hex, decodes hex back and compares the
 * fields; the route of a compressed message is resolved with dict. */
static void
check_data(const char *hex, const struct tn_pml_msg *msg, const struct tn_pml_dict *dict)
{
	uint8_t want[256];
	size_t n = tn_test_hex(hex, want, sizeof(want));
	struct tn_buf b;
	tn_buf_init(&b);
	int rv = tn_pml_msg_encode_pkg(&b, msg);
	if (rv == TN_OK && (b.len != n || memcmp(b.data, want, n) != 0))
		rv = TN_EPROTO;
	tn_buf_fini(&b);
	TN_CHECK_OK(rv);

	struct tn_pml_msg got;
	TN_CHECK_OK(data_msg(&got, want, n));
	TN_CHECK_INT(got.type, ==, msg->type);
	TN_CHECK_INT(got.id, ==, msg->id);
	TN_CHECK_INT(got.compressed, ==, msg->compressed);
	TN_CHECK_OK(tn_pml_msg_resolve(&got, dict));
	if (msg->compressed)
		TN_CHECK_INT(got.route_code, ==, msg->route_code);
	if (tn_pml_msg_has_route(msg->type))
		TN_CHECK_MEM(got.route, got.route_len, msg->route, msg->route_len);
	else
		TN_CHECK(got.route == NULL && got.route_len == 0);
	TN_CHECK_MEM(got.body, got.body_len, msg->body, msg->body_len);
}

static struct tn_pml_msg
mk(enum tn_pml_msg_type type, uint32_t id, const char *route, const char *body)
{
	return (struct tn_pml_msg){
	        .type = type,
	        .id = id,
	        .route = route,
	        .route_len = route ? strlen(route) : 0,
	        .body = (const uint8_t *)body,
	        .body_len = strlen(body),
	};
}

TN_TEST(v4_enter_request)
{
	struct tn_pml_msg m = mk(TN_PML_MSG_REQUEST, 1, "connector.entryHandler.enter", ENTER_BODY);
	check_data("04 00 00 41 00 01 1c 63 6f 6e 6e 65 63 74 6f 72 2e 65 6e 74 72 79 48 61 6e"
	           "64 6c 65 72 2e 65 6e 74 65 72 " ENTER_BODY_HEX,
	        &m, NULL);
}

TN_TEST(v4_enter_request_dict_code)
{
	struct tn_pml_dict *dict;
	TN_CHECK_OK(tn_pml_dict_new(&dict, demo_routes, 3, NULL, 0));
	struct tn_pml_msg m = mk(TN_PML_MSG_REQUEST, 2, NULL, ENTER_BODY);
	tn_pml_msg_set_route(&m, dict, "connector.entryHandler.enter", 28);
	TN_CHECK(m.compressed);
	TN_CHECK_INT(m.route_code, ==, 2);
	check_data("04 00 00 26 01 02 00 02 " ENTER_BODY_HEX, &m, dict);
	tn_pml_dict_free(dict);
}

TN_TEST(v5_gate_request)
{
	struct tn_pml_msg m =
	        mk(TN_PML_MSG_REQUEST, 1, "gate.gateHandler.queryEntry", "{\"uid\":\"alice\"}");
	check_data("04 00 00 2d 00 01 1b 67 61 74 65 2e 67 61 74 65 48 61 6e 64 6c 65 72 2e 71"
	           "75 65 72 79 45 6e 74 72 79 7b 22 75 69 64 22 3a 22 61 6c 69 63 65 22 7d",
	        &m, NULL);
}

TN_TEST(v6_responses)
{
	struct tn_pml_msg m = mk(TN_PML_MSG_RESPONSE, 1, NULL,
	        "{\"code\":200,\"host\":\"127.0.0.1\",\"port\":3050}");
	check_data("04 00 00 2d 04 01 7b 22 63 6f 64 65 22 3a 32 30 30 2c 22 68 6f 73 74 22 3a"
	           "22 31 32 37 2e 30 2e 30 2e 31 22 2c 22 70 6f 72 74 22 3a 33 30 35 30 7d",
	        &m, NULL);
	m = mk(TN_PML_MSG_RESPONSE, 2, NULL, "{\"users\":[\"alice\"]}");
	check_data("04 00 00 15 04 02 7b 22 75 73 65 72 73 22 3a 5b 22 61 6c 69 63 65 22 5d 7d", &m,
	        NULL);
	m = mk(TN_PML_MSG_RESPONSE, 1, NULL, "{}");
	check_data("04 00 00 04 04 01 7b 7d", &m, NULL);
}

TN_TEST(v7_pushes)
{
	struct tn_pml_msg m =
	        mk(TN_PML_MSG_PUSH, 0, "onAdd", "{\"route\":\"onAdd\",\"user\":\"bob\"}");
	check_data("04 00 00 25 06 05 6f 6e 41 64 64 7b 22 72 6f 75 74 65 22 3a 22 6f 6e 41 64"
	           "64 22 2c 22 75 73 65 72 22 3a 22 62 6f 62 22 7d",
	        &m, NULL);
	m = mk(TN_PML_MSG_PUSH, 0, "onChat",
	        "{\"msg\":\"hi\",\"from\":\"alice\",\"target\":\"*\"}");
	check_data("04 00 00 30 06 06 6f 6e 43 68 61 74 7b 22 6d 73 67 22 3a 22 68 69 22 2c 22"
	           "66 72 6f 6d 22 3a 22 61 6c 69 63 65 22 2c 22 74 61 72 67 65 74 22 3a 22 2a"
	           "22 7d",
	        &m, NULL);
	/* The protobuf body is opaque bytes to this layer. */
	static const uint8_t pb[] = {
	        0x0a, 0x02, 0x68, 0x69, 0x12, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x1a, 0x01, 0x2a};
	m = mk(TN_PML_MSG_PUSH, 0, "onChat", "");
	m.body = pb;
	m.body_len = sizeof(pb);
	check_data("04 00 00 16 06 06 6f 6e 43 68 61 74 0a 02 68 69 12 05 61 6c 69 63 65 1a 01 2a",
	        &m, NULL);
}

TN_TEST(v8_notify_and_id_300)
{
	struct tn_pml_msg m = mk(TN_PML_MSG_NOTIFY, 0, "chat.chatHandler.send", "{}");
	check_data("04 00 00 19 02 15 63 68 61 74 2e 63 68 61 74 48 61 6e 64 6c 65 72 2e 73 65"
	           "6e 64 7b 7d",
	        &m, NULL);

	/* The bare message (no package header) as well. */
	uint8_t want[8];
	size_t n = tn_test_hex("00 ac 02 01 61 7b 7d", want, sizeof(want));
	m = mk(TN_PML_MSG_REQUEST, 300, "a", "{}");
	struct tn_buf b;
	tn_buf_init(&b);
	TN_CHECK_OK(tn_pml_msg_encode(&b, &m));
	TN_CHECK_MEM(b.data, b.len, want, n);
	tn_buf_fini(&b);
	struct tn_pml_msg got;
	TN_CHECK_OK(tn_pml_msg_decode(&got, want, n));
	TN_CHECK_INT(got.type, ==, TN_PML_MSG_REQUEST);
	TN_CHECK_INT(got.id, ==, 300);
	TN_CHECK_MEM(got.route, got.route_len, "a", 1);
	TN_CHECK_MEM(got.body, got.body_len, "{}", 2);
}

TN_TEST(v9_kick)
{
	uint8_t want[32];
	size_t n = tn_test_hex("05 00 00 11 7b 22 72 65 61 73 6f 6e 22 3a 22 6b 69 63 6b 22 7d",
	        want, sizeof(want));
	struct tn_buf b;
	tn_buf_init(&b);
	tn_pml_kick_encode(&b, "kick");
	TN_CHECK_MEM(b.data, b.len, want, n);
	tn_buf_reset(&b);
	tn_pml_kick_encode(&b, NULL); /* pomelo's default reason */
	TN_CHECK_MEM(b.data, b.len, want, n);
	tn_buf_reset(&b);

	struct tn_pml_pkg pkg;
	TN_CHECK_OK(one_pkg(&pkg, want, n));
	TN_CHECK_INT(pkg.type, ==, TN_PML_PKG_KICK);
	TN_CHECK_OK(tn_pml_kick_decode(&b, pkg.body, pkg.len));
	TN_CHECK_MEM(b.data, b.len, "kick", 4);
	tn_buf_fini(&b);
}

/* §2: the demo's dict is numbered like pomelo's. */
TN_TEST(demo_dict_json)
{
	struct tn_pml_dict *dict;
	TN_CHECK_OK(tn_pml_dict_new(&dict, demo_routes, 3, NULL, 0));
	size_t len;
	const char *json = tn_pml_dict_route_to_code_json(dict, &len);
	static const char want[] =
	        "{\"chat.chatHandler.send\":1,\"connector.entryHandler.enter\":2,"
	        "\"gate.gateHandler.queryEntry\":3}";
	TN_CHECK_MEM(json, len, want, strlen(want));
	tn_pml_dict_free(dict);
}

TN_TEST_MAIN(TN_CASE(v1_client_handshake), TN_CASE(v2_minimal_server_handshake),
        TN_CASE(v3_ack_and_heartbeat), TN_CASE(v4_enter_request),
        TN_CASE(v4_enter_request_dict_code), TN_CASE(v5_gate_request), TN_CASE(v6_responses),
        TN_CASE(v7_pushes), TN_CASE(v8_notify_and_id_300), TN_CASE(v9_kick),
        TN_CASE(demo_dict_json))
