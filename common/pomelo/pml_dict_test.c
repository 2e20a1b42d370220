/* The route dictionary: numbering, lookups both ways, JSON forms, version, client side. */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "json.h"
#include "pml_dict.h"
#include "tn_test.h"

static const char *const demo[] = {
        "gate.gateHandler.queryEntry",
        "connector.entryHandler.enter",
        "chat.chatHandler.send",
};

TN_TEST(numbering_and_lookups)
{
	struct tn_pml_dict *d;
	TN_CHECK_OK(tn_pml_dict_new(&d, demo, 3, NULL, 0));
	TN_CHECK_INT(tn_pml_dict_count(d), ==, 3);
	uint16_t code = 0;
	TN_CHECK(tn_pml_dict_code(&code, d, "chat.chatHandler.send", 21));
	TN_CHECK_INT(code, ==, 1);
	TN_CHECK(tn_pml_dict_code(&code, d, "connector.entryHandler.enter", 28));
	TN_CHECK_INT(code, ==, 2);
	TN_CHECK(tn_pml_dict_code(&code, d, "gate.gateHandler.queryEntry", 27));
	TN_CHECK_INT(code, ==, 3);
	/* Length matters: a prefix or a longer string is not a match. */
	TN_CHECK(!tn_pml_dict_code(&code, d, "chat.chatHandler.sen", 20));
	TN_CHECK(!tn_pml_dict_code(&code, d, "chat.chatHandler.send\0", 22));
	TN_CHECK(!tn_pml_dict_code(&code, d, "", 0));
	TN_CHECK_INT(code, ==, 3); /* untouched on a miss */
	size_t len = 0;
	TN_CHECK_STR(tn_pml_dict_route(d, 2, &len), "connector.entryHandler.enter");
	TN_CHECK_INT(len, ==, 28);
	TN_CHECK_STR(tn_pml_dict_route(d, 3, NULL), "gate.gateHandler.queryEntry");
	TN_CHECK(tn_pml_dict_route(d, 0, &len) == NULL);
	TN_CHECK(tn_pml_dict_route(d, 4, &len) == NULL);
	TN_CHECK(tn_pml_dict_route(d, 0xffff, &len) == NULL);
	tn_pml_dict_free(d);
}

TN_TEST(json_forms)
{
	struct tn_pml_dict *d;
	TN_CHECK_OK(tn_pml_dict_new(&d, demo, 3, NULL, 0));
	size_t len;
	const char *s = tn_pml_dict_code_to_route_json(d, &len);
	static const char c2r[] =
	        "{\"1\":\"chat.chatHandler.send\",\"2\":"
	        "\"connector.entryHandler.enter\",\"3\":\"gate.gateHandler.queryEntry\"}";
	TN_CHECK_MEM(s, len, c2r, strlen(c2r));

	struct tn_buf b;
	struct tn_jw w;
	tn_buf_init(&b);
	tn_jw_init(&w, &b);
	tn_jw_obj_begin(&w);
	tn_pml_dict_write_handshake(d, &w);
	tn_jw_obj_end(&w);
	char want[1024];
	const char *r2c = tn_pml_dict_route_to_code_json(d, NULL);
	snprintf(want, sizeof(want),
	        "{\"dict\":%s,\"routeToCode\":%s,\"codeToRoute\":%s,\"dictVersion\":\"%s\"}", r2c,
	        r2c, c2r, tn_pml_dict_version(d));
	TN_CHECK_MEM(b.data, b.len, want, strlen(want));
	/* And it is valid JSON. */
	json_object *obj = NULL;
	TN_CHECK_OK(tn_json_parse(&obj, b.data, b.len, 8));
	json_object_put(obj);
	tn_buf_fini(&b);
	tn_pml_dict_free(d);
}

TN_TEST(version_tracks_content)
{
	const char *const shuffled[] = {demo[2], demo[0], demo[1], demo[0]};
	const char *const other[] = {demo[0], demo[1]};
	struct tn_pml_dict *a, *b, *c;
	TN_CHECK_OK(tn_pml_dict_new(&a, demo, 3, NULL, 0));
	TN_CHECK_OK(tn_pml_dict_new(&b, shuffled, 4, NULL, 0)); /* same set, other order */
	TN_CHECK_OK(tn_pml_dict_new(&c, other, 2, NULL, 0));
	const char *va = tn_pml_dict_version(a);
	TN_CHECK(va[0] != '\0');
	TN_CHECK_INT(strlen(va), ==, 24); /* base64 of 16 bytes, like pomelo's MD5 */
	TN_CHECK_STR(va, tn_pml_dict_version(b));
	TN_CHECK(strcmp(va, tn_pml_dict_version(c)) != 0);
	TN_CHECK_INT(tn_pml_dict_count(b), ==, 3);
	tn_pml_dict_free(a);
	tn_pml_dict_free(b);
	tn_pml_dict_free(c);
}

TN_TEST(extras_numbered_after)
{
	static const char *const extra[] = {
	        "z.extra.one", "chat.chatHandler.send", "a.extra.two", "z.extra.one"};
	struct tn_pml_dict *d;
	TN_CHECK_OK(tn_pml_dict_new(&d, demo, 3, extra, 4));
	TN_CHECK_INT(tn_pml_dict_count(d), ==, 5);
	uint16_t code;
	TN_CHECK(tn_pml_dict_code(&code, d, "z.extra.one", 11));
	TN_CHECK_INT(code, ==, 4);
	TN_CHECK(tn_pml_dict_code(&code, d, "a.extra.two", 11));
	TN_CHECK_INT(code, ==, 5);
	TN_CHECK(tn_pml_dict_code(&code, d, "chat.chatHandler.send", 21));
	TN_CHECK_INT(code, ==, 1);
	TN_CHECK_STR(tn_pml_dict_route(d, 5, NULL), "a.extra.two");
	/* Every route still found after the sorted index was extended. */
	for (uint16_t c = 1; c <= 5; c++) {
		size_t len;
		const char *r = tn_pml_dict_route(d, c, &len);
		TN_CHECK(r != NULL);
		TN_CHECK(tn_pml_dict_code(&code, d, r, len));
		TN_CHECK_INT(code, ==, c);
	}
	tn_pml_dict_free(d);
}

TN_TEST(invalid_routes)
{
	char long_route[257];
	memset(long_route, 'x', 256);
	long_route[256] = '\0';
	const char *bad1[] = {"a.b.c", ""};
	const char *bad2[] = {long_route};
	const char *bad3[] = {NULL};
	struct tn_pml_dict *d = NULL;
	TN_CHECK_INT(tn_pml_dict_new(&d, bad1, 2, NULL, 0), ==, TN_EINVAL);
	TN_CHECK_INT(tn_pml_dict_new(&d, bad2, 1, NULL, 0), ==, TN_EINVAL);
	TN_CHECK_INT(tn_pml_dict_new(&d, demo, 3, bad3, 1), ==, TN_EINVAL);
	TN_CHECK(d == NULL);
	long_route[255] = '\0';
	TN_CHECK_OK(tn_pml_dict_new(&d, bad2, 1, NULL, 0));
	tn_pml_dict_free(d);
	/* An empty dictionary is allowed. */
	TN_CHECK_OK(tn_pml_dict_new(&d, NULL, 0, NULL, 0));
	TN_CHECK_INT(tn_pml_dict_count(d), ==, 0);
	TN_CHECK_STR(tn_pml_dict_route_to_code_json(d, NULL), "{}");
	tn_pml_dict_free(d);
}

TN_TEST(too_many)
{
	size_t n = TN_PML_DICT_MAX + 1;
	char **routes = tn_calloc(n, sizeof(*routes));
	for (size_t i = 0; i < n; i++) {
		routes[i] = tn_malloc(16);
		snprintf(routes[i], 16, "r.%zu", i);
	}
	struct tn_pml_dict *d = NULL;
	int over = tn_pml_dict_new(&d, (const char *const *)routes, n, NULL, 0);
	int at = tn_pml_dict_new(&d, (const char *const *)routes, n - 1, NULL, 0);
	size_t count = at == TN_OK ? tn_pml_dict_count(d) : 0;
	const char *last = at == TN_OK ? tn_pml_dict_route(d, 65535, NULL) : NULL;
	int last_ok = last != NULL;
	tn_pml_dict_free(d);
	for (size_t i = 0; i < n; i++)
		free(routes[i]);
	free(routes);
	TN_CHECK_INT(over, ==, TN_ETOOBIG);
	TN_CHECK_OK(at);
	TN_CHECK_INT(count, ==, TN_PML_DICT_MAX);
	TN_CHECK(last_ok);
}

static int
from_json_text(struct tn_pml_dict **out, const char *text, const char *version)
{
	json_object *obj = NULL;
	int rv = tn_json_parse(&obj, text, strlen(text), 8);
	if (rv != TN_OK)
		return rv;
	rv = tn_pml_dict_from_json(out, obj, version);
	json_object_put(obj);
	return rv;
}

TN_TEST(client_side_from_json)
{
	struct tn_pml_dict *server, *client;
	TN_CHECK_OK(tn_pml_dict_new(&server, demo, 3, NULL, 0));
	const char *r2c = tn_pml_dict_route_to_code_json(server, NULL);
	TN_CHECK_OK(from_json_text(&client, r2c, tn_pml_dict_version(server)));
	TN_CHECK_STR(tn_pml_dict_version(client), tn_pml_dict_version(server));
	TN_CHECK_STR(tn_pml_dict_route_to_code_json(client, NULL), r2c);
	uint16_t code;
	TN_CHECK(tn_pml_dict_code(&code, client, "gate.gateHandler.queryEntry", 27));
	TN_CHECK_INT(code, ==, 3);
	tn_pml_dict_free(client);

	/* Sparse codes from a server are kept as they are; no version: one is computed. */
	TN_CHECK_OK(from_json_text(&client, "{\"x.y.z\":700,\"a.b.c\":9,\"m.n.o\":65535}", NULL));
	TN_CHECK_STR(tn_pml_dict_route(client, 700, NULL), "x.y.z");
	TN_CHECK_STR(tn_pml_dict_route(client, 9, NULL), "a.b.c");
	TN_CHECK_STR(tn_pml_dict_route(client, 65535, NULL), "m.n.o");
	TN_CHECK(tn_pml_dict_route(client, 10, NULL) == NULL);
	TN_CHECK(tn_pml_dict_code(&code, client, "m.n.o", 5) && code == 65535);
	TN_CHECK_STR(tn_pml_dict_code_to_route_json(client, NULL),
	        "{\"9\":\"a.b.c\",\"700\":\"x.y.z\",\"65535\":\"m.n.o\"}");
	TN_CHECK_INT(strlen(tn_pml_dict_version(client)), ==, 24);
	tn_pml_dict_free(client);
	tn_pml_dict_free(server);
}

TN_TEST(client_side_errors)
{
	static const char *const bad[] = {"[]", "1", "{\"a\":\"1\"}", "{\"a\":1.5}", "{\"a\":0}",
	        "{\"a\":65536}", "{\"a\":-1}", "{\"a\":1,\"b\":1}", "{\"\":1}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tn_pml_dict *d = NULL;
		TN_CHECK_INT(from_json_text(&d, bad[i], "v"), ==, TN_EPROTO);
		TN_CHECK(d == NULL);
	}
	char big[300];
	snprintf(big, sizeof(big), "{\"%0256d\":1}", 0);
	struct tn_pml_dict *d = NULL;
	TN_CHECK_INT(from_json_text(&d, big, "v"), ==, TN_EPROTO);
	struct tn_pml_dict *ok = NULL;
	TN_CHECK_OK(from_json_text(&ok, "{}", "v"));
	TN_CHECK_INT(tn_pml_dict_count(ok), ==, 0);
	tn_pml_dict_free(ok);
}

TN_TEST_MAIN(TN_CASE(numbering_and_lookups), TN_CASE(json_forms), TN_CASE(version_tracks_content),
        TN_CASE(extras_numbered_after), TN_CASE(invalid_routes), TN_CASE(too_many),
        TN_CASE(client_side_from_json), TN_CASE(client_side_errors))
