/* Handshake request and response, both sides, and the kick body. */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "pml_dict.h"
#include "pml_handshake.h"
#include "pml_package.h"
#include "tn_test.h"

static const char *const demo[] = {
        "gate.gateHandler.queryEntry",
        "connector.entryHandler.enter",
        "chat.chatHandler.send",
};

#define BROWSER_HS                                                                                 \
	"{\"sys\":{\"type\":\"js-websocket\",\"version\":\"0.0.1\",\"rsa\":{},\"protoVersion\":0}" \
	"}"

/* Answers body with cfg; writes the response body as a C string into text. */
static enum tn_pml_hs_code
answer(char *text, size_t cap, const struct tn_pml_hs_config *cfg, const char *body)
{
	struct tn_buf b;
	tn_buf_init(&b);
	enum tn_pml_hs_code code = tn_pml_hs_answer(&b, cfg, body, strlen(body));
	/* One HANDSHAKE package and nothing else. */
	enum tn_pml_pkg_type type = 0;
	size_t len = 0;
	text[0] = '\0';
	if (tn_pml_pkg_header_decode(&type, &len, b.data, b.len) == TN_OK &&
	        type == TN_PML_PKG_HANDSHAKE && len + 4 == b.len && len < cap)
		snprintf(text, cap, "%.*s", (int)len, (const char *)b.data + 4);
	tn_buf_fini(&b);
	return code;
}

TN_TEST(connector_without_dict)
{
	struct tn_pml_hs_config cfg = {.heartbeat_s = 3, .proto_version = "c1"};
	char text[512];
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, BROWSER_HS), ==, TN_PML_HS_OK);
	/* protocol.md's minimal compatible server script, step 1. */
	TN_CHECK_STR(text, "{\"code\":200,\"sys\":{\"heartbeat\":3,\"protos\":{\"server\":{},"
	                   "\"client\":{},\"version\":\"c1\"},\"useProto\":true}}");
}

TN_TEST(gate_without_heartbeat)
{
	struct tn_pml_hs_config cfg = {.heartbeat_s = 0, .proto_version = "v-7"};
	char text[512];
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, BROWSER_HS), ==, TN_PML_HS_OK);
	TN_CHECK_STR(text, "{\"code\":200,\"sys\":{\"protos\":{\"server\":{},\"client\":{},"
	                   "\"version\":\"v-7\"},\"useProto\":true}}");
	TN_CHECK(strstr(text, "heartbeat") == NULL);
}

TN_TEST(dict_sent_when_version_differs)
{
	struct tn_pml_dict *dict;
	TN_CHECK_OK(tn_pml_dict_new(&dict, demo, 3, NULL, 0));
	struct tn_pml_hs_config cfg = {.heartbeat_s = 3, .dict = dict, .proto_version = "p"};
	const char *r2c = tn_pml_dict_route_to_code_json(dict, NULL);
	const char *c2r = tn_pml_dict_code_to_route_json(dict, NULL);
	const char *ver = tn_pml_dict_version(dict);
	char want[1024], text[1024], body[256];

	/* The browser never sends dictVersion: the dict goes out, in pomelo's key order. */
	snprintf(want, sizeof(want),
	        "{\"code\":200,\"sys\":{\"heartbeat\":3,\"dict\":%s,\"routeToCode\":%s,"
	        "\"codeToRoute\":%s,\"dictVersion\":\"%s\",\"useDict\":true,\"protos\":"
	        "{\"server\":{},\"client\":{},\"version\":\"p\"},\"useProto\":true}}",
	        r2c, r2c, c2r, ver);
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, BROWSER_HS), ==, TN_PML_HS_OK);
	TN_CHECK_STR(text, want);

	/* A stale version: the dict goes out again. */
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, "{\"sys\":{\"dictVersion\":\"old\"}}"), ==,
	        TN_PML_HS_OK);
	TN_CHECK_STR(text, want);
	/* Not a string: treated as missing. */
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, "{\"sys\":{\"dictVersion\":5}}"), ==,
	        TN_PML_HS_OK);
	TN_CHECK_STR(text, want);

	/* The current version: only useDict; protos are still sent. */
	snprintf(body, sizeof(body), "{\"sys\":{\"dictVersion\":\"%s\"}}", ver);
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, body), ==, TN_PML_HS_OK);
	TN_CHECK_STR(text, "{\"code\":200,\"sys\":{\"heartbeat\":3,\"useDict\":true,\"protos\":"
	                   "{\"server\":{},\"client\":{},\"version\":\"p\"},\"useProto\":true}}");
	tn_pml_dict_free(dict);
}

TN_TEST(error_500)
{
	struct tn_pml_hs_config cfg = {.heartbeat_s = 3, .proto_version = "p"};
	/* Nested deeper than TN_PML_HS_MAX_DEPTH, with a valid sys after it. */
	static const char deep[] =
	        "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"
	        "\"sys\":{}}";
	const char *const bad[] = {"", "not json", "{\"sys\":", "{}", "[]", "null", "42",
	        "{\"sys\":1}", "{\"sys\":[]}", "{\"sys\":null}", "{\"sys\":{}} x", deep};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[64];
		TN_CHECK_INT(answer(text, sizeof(text), &cfg, bad[i]), ==, TN_PML_HS_ERROR);
		TN_CHECK_STR(text, "{\"code\":500}");
	}
	/* An empty sys object is a valid handshake. */
	char text[256];
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, "{\"sys\":{}}"), ==, TN_PML_HS_OK);
}

struct check_seen {
	int calls;
	char type[32];
	char version[32];
	bool accept;
};

static bool
check_client(void *ctx, const char *type, const char *version)
{
	struct check_seen *s = ctx;
	s->calls++;
	snprintf(s->type, sizeof(s->type), "%s", type ? type : "(null)");
	snprintf(s->version, sizeof(s->version), "%s", version ? version : "(null)");
	return s->accept;
}

TN_TEST(check_client_501)
{
	struct check_seen seen = {.accept = false};
	struct tn_pml_hs_config cfg = {
	        .proto_version = "p", .check_client = check_client, .check_ctx = &seen};
	char text[256];
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, BROWSER_HS), ==, TN_PML_HS_OLD_CLIENT);
	TN_CHECK_STR(text, "{\"code\":501}");
	TN_CHECK_INT(seen.calls, ==, 1);
	TN_CHECK_STR(seen.type, "js-websocket");
	TN_CHECK_STR(seen.version, "0.0.1");

	seen.accept = true;
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, "{\"sys\":{\"type\":7}}"), ==, TN_PML_HS_OK);
	TN_CHECK_STR(seen.type, "(null)");
	TN_CHECK_STR(seen.version, "(null)");
	/* No sys: 500 before the hook is asked. */
	TN_CHECK_INT(answer(text, sizeof(text), &cfg, "{}"), ==, TN_PML_HS_ERROR);
	TN_CHECK_INT(seen.calls, ==, 2);
}

TN_TEST(request_parse)
{
	static const char body[] =
	        "{\"sys\":{\"type\":\"c\",\"version\":\"1\",\"dictVersion\":\"dv\"},"
	        "\"user\":{\"name\":\"x\"}}";
	struct tn_pml_hs_request req;
	TN_CHECK_OK(tn_pml_hs_request_parse(&req, body, strlen(body)));
	TN_CHECK_STR(req.type, "c");
	TN_CHECK_STR(req.version, "1");
	TN_CHECK_STR(req.dict_version, "dv");
	TN_CHECK(json_object_is_type(req.user, json_type_object));
	tn_pml_hs_request_fini(&req);
	TN_CHECK(req.root == NULL);
	TN_CHECK_INT(tn_pml_hs_request_parse(&req, "{", 1), ==, TN_EPROTO);
	TN_CHECK_INT(tn_pml_hs_request_parse(&req, "{}", 2), ==, TN_EINVAL);
}

TN_TEST(client_request_encode)
{
	struct tn_buf b;
	tn_buf_init(&b);
	struct tn_pml_hs_client_info info = {.type = "c-tern",
	        .version = "1.0",
	        .proto_version = "2zWPnSlRsRxjqgcU215Uxg==",
	        .dict_version = "dv",
	        .user_json = "{\"id\":1}"};
	tn_pml_hs_request_encode(&b, &info);
	static const char want[] =
	        "{\"sys\":{\"type\":\"c-tern\",\"version\":\"1.0\",\"rsa\":{},"
	        "\"protoVersion\":\"2zWPnSlRsRxjqgcU215Uxg==\",\"dictVersion\":\"dv\"},"
	        "\"user\":{\"id\":1}}";
	TN_CHECK_INT(b.len, ==, 4 + strlen(want));
	TN_CHECK_INT(b.data[0], ==, TN_PML_PKG_HANDSHAKE);
	TN_CHECK_MEM(b.data + 4, b.len - 4, want, strlen(want));
	tn_buf_fini(&b);
}

/* The client side reads what the server side writes. */
TN_TEST(reply_roundtrip)
{
	struct tn_pml_dict *dict;
	TN_CHECK_OK(tn_pml_dict_new(&dict, demo, 3, NULL, 0));
	struct tn_pml_hs_config cfg = {.heartbeat_s = 3, .dict = dict, .proto_version = "pv"};
	struct tn_buf b;
	tn_buf_init(&b);
	TN_CHECK_INT(tn_pml_hs_answer(&b, &cfg, BROWSER_HS, strlen(BROWSER_HS)), ==, TN_PML_HS_OK);
	struct tn_pml_hs_reply r;
	TN_CHECK_OK(tn_pml_hs_reply_parse(&r, b.data + 4, b.len - 4));
	tn_buf_fini(&b);
	TN_CHECK_INT(r.code, ==, 200);
	TN_CHECK_INT(r.heartbeat_ms, ==, 3000);
	TN_CHECK(r.use_dict && r.use_proto);
	TN_CHECK_STR(r.proto_version, "pv");
	TN_CHECK_STR(r.dict_version, tn_pml_dict_version(dict));
	TN_CHECK(r.dict != NULL);
	TN_CHECK_STR(tn_pml_dict_version(r.dict), tn_pml_dict_version(dict));
	uint16_t code;
	TN_CHECK(tn_pml_dict_code(&code, r.dict, "connector.entryHandler.enter", 28) && code == 2);
	TN_CHECK(r.user == NULL);
	tn_pml_hs_reply_fini(&r);
	tn_pml_dict_free(dict);
}

TN_TEST(reply_parse_variants)
{
	struct tn_pml_hs_reply r;
	static const char e501[] = "{\"code\":501}";
	TN_CHECK_OK(tn_pml_hs_reply_parse(&r, e501, strlen(e501)));
	TN_CHECK(r.code == 501 && r.heartbeat_ms == 0 && r.dict == NULL && r.proto_version == NULL);
	tn_pml_hs_reply_fini(&r);

	static const char frac[] = "{\"code\":200,\"sys\":{\"heartbeat\":0.5,\"dict\":{\"a.b\":1}},"
	                           "\"user\":{\"k\":1}}";
	TN_CHECK_OK(tn_pml_hs_reply_parse(&r, frac, strlen(frac)));
	TN_CHECK_INT(r.heartbeat_ms, ==, 500);
	TN_CHECK(r.dict != NULL && tn_pml_dict_count(r.dict) == 1); /* old "dict" key */
	TN_CHECK(r.dict_version == NULL);
	TN_CHECK(json_object_is_type(r.user, json_type_object));
	tn_pml_hs_reply_fini(&r);

	static const char *const weird_hb[] = {"-3", "\"3\"", "1e300", "0"};
	for (size_t i = 0; i < 4; i++) {
		char body[128];
		snprintf(body, sizeof(body), "{\"code\":200,\"sys\":{\"heartbeat\":%s}}",
		        weird_hb[i]);
		TN_CHECK_OK(tn_pml_hs_reply_parse(&r, body, strlen(body)));
		TN_CHECK_INT(r.heartbeat_ms, ==, 0);
		tn_pml_hs_reply_fini(&r);
	}

	static const char *const bad[] = {"", "[]", "{}", "{\"code\":\"200\"}", "{\"code\":2000}",
	        "{\"code\":200,\"sys\":{\"routeToCode\":{\"a\":0}}}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TN_CHECK_INT(tn_pml_hs_reply_parse(&r, bad[i], strlen(bad[i])), ==, TN_EPROTO);
}

static bool
contains(const uint8_t *hay, size_t n, const char *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return true;
	return false;
}

TN_TEST(kick_bodies)
{
	struct tn_buf b, reason;
	tn_buf_init(&b);
	tn_buf_init(&reason);
	/* Quotes are escaped; CESU-8 passes through; 4-byte UTF-8 becomes \u escapes. */
	tn_pml_kick_encode(&b, "say \"bye\" \xed\xa0\xbd\xed\xb8\x80 \xf0\x9f\x98\x80");
	TN_CHECK_INT(b.data[0], ==, TN_PML_PKG_KICK);
	TN_CHECK(memchr(b.data, 0xf0, b.len) == NULL);
	TN_CHECK(contains(b.data, b.len, "\xed\xa0\xbd\xed\xb8\x80", 6));
	TN_CHECK_OK(tn_pml_kick_decode(&reason, b.data + 4, b.len - 4));
	/* json-c decodes the \u pair back to 4-byte UTF-8 and keeps the CESU-8 bytes. */
	static const char want[] = "say \"bye\" \xed\xa0\xbd\xed\xb8\x80 \xf0\x9f\x98\x80";
	TN_CHECK_MEM(reason.data, reason.len, want, strlen(want));

	tn_buf_reset(&reason);
	TN_CHECK_OK(tn_pml_kick_decode(&reason, "{}", 2));
	TN_CHECK_INT(reason.len, ==, 0);
	TN_CHECK_INT(tn_pml_kick_decode(&reason, "", 0), ==, TN_EPROTO);
	TN_CHECK_INT(tn_pml_kick_decode(&reason, "\"kick\"", 6), ==, TN_EPROTO);
	tn_buf_fini(&b);
	tn_buf_fini(&reason);
}

/* A dict whose answer cannot fit in one package is refused cleanly, not sent truncated
 * or silently dropped. 65535 routes of 255 bytes: about 50 MB of JSON. */
TN_TEST(oversized_answer_refused)
{
	size_t n = TN_PML_DICT_MAX;
	char **routes = tn_malloc(n * sizeof(*routes));
	for (size_t i = 0; i < n; i++) {
		routes[i] = tn_malloc(256);
		memset(routes[i], 'r', 255);
		routes[i][255] = '\0';
		snprintf(routes[i], 12, "%010zu", i);
		routes[i][10] = '.';
	}
	struct tn_pml_dict *dict = NULL;
	int rv = tn_pml_dict_new(&dict, (const char *const *)routes, n, NULL, 0);
	for (size_t i = 0; i < n; i++)
		free(routes[i]);
	free(routes);
	TN_CHECK_OK(rv);
	struct tn_pml_hs_config cfg = {.dict = dict, .proto_version = "p"};
	struct tn_buf b;
	tn_buf_init(&b);
	tn_buf_append(&b, "x", 1);
	enum tn_pml_hs_code code = tn_pml_hs_answer(&b, &cfg, BROWSER_HS, strlen(BROWSER_HS));
	static const char want[] = "x\x01\x00\x00\x0c{\"code\":500}";
	bool same = b.len == sizeof(want) - 1 && memcmp(b.data, want, b.len) == 0;
	tn_buf_fini(&b);
	tn_pml_dict_free(dict);
	TN_CHECK_INT(code, ==, TN_PML_HS_ERROR);
	TN_CHECK(same);
}

TN_TEST(oversized_kick_reason)
{
	size_t n = TN_PML_PKG_MAX_BODY;
	char *reason = tn_malloc(n + 1);
	memset(reason, 'k', n);
	reason[n] = '\0';
	struct tn_buf b;
	tn_buf_init(&b);
	tn_pml_kick_encode(&b, reason);
	free(reason);
	static const char want[] = "\x05\x00\x00\x11{\"reason\":\"kick\"}";
	bool same = b.len == sizeof(want) - 1 && memcmp(b.data, want, b.len) == 0;
	tn_buf_fini(&b);
	TN_CHECK(same);
}

TN_TEST_MAIN(TN_CASE(connector_without_dict), TN_CASE(gate_without_heartbeat),
        TN_CASE(dict_sent_when_version_differs), TN_CASE(error_500), TN_CASE(check_client_501),
        TN_CASE(request_parse), TN_CASE(client_request_encode), TN_CASE(reply_roundtrip),
        TN_CASE(reply_parse_variants), TN_CASE(kick_bodies), TN_CASE(oversized_answer_refused),
        TN_CASE(oversized_kick_reason))
