#include "json.h"

#include "err.h"
#include "tn_test.h"

/* U+1F600 as a browser sends it: each UTF-16 surrogate encoded as 3 bytes (CESU-8). */
static const char cesu_body[] = "{\"msg\":\"a\xed\xa0\xbd\xed\xb8\x80z\"}";

TN_TEST(cesu8_passes_through)
{
	json_object *o = NULL;
	TN_CHECK_OK(tn_json_parse(&o, cesu_body, sizeof(cesu_body) - 1, 32));
	size_t len = 0;
	const char *msg = tn_json_get_str(o, "msg", &len);
	TN_CHECK(msg != NULL);
	TN_CHECK_MEM(msg, len, "a\xed\xa0\xbd\xed\xb8\x80z", 8);
	struct tn_buf b;
	tn_buf_init(&b);
	tn_json_put_obj(&b, o);
	/* Re-encoded byte for byte as it arrived. */
	TN_CHECK_MEM(b.data, b.len, cesu_body, sizeof(cesu_body) - 1);
	tn_buf_fini(&b);
	json_object_put(o);
}

TN_TEST(four_byte_utf8_written_as_surrogates)
{
	struct tn_buf b;
	tn_buf_init(&b);
	tn_json_put_str(&b, "x\xf0\x9f\x98\x80y", 6);
	TN_CHECK_MEM(b.data, b.len, "\"x\\ud83d\\ude00y\"", 16);
	tn_buf_reset(&b);
	/* An escaped pair in the input decodes to 4-byte UTF-8 and is written escaped again. */
	json_object *o = NULL;
	const char in[] = "{\"m\":\"\\uD83D\\uDE00\"}";
	TN_CHECK_OK(tn_json_parse(&o, in, sizeof(in) - 1, 8));
	tn_json_put_obj(&b, o);
	TN_CHECK_MEM(b.data, b.len, "{\"m\":\"\\ud83d\\ude00\"}", 20);
	json_object_put(o);
	tn_buf_fini(&b);
}

TN_TEST(escapes_controls_quotes_not_slash)
{
	struct tn_buf b;
	tn_buf_init(&b);
	tn_json_put_str(&b, "a\"b\\c/d\n\x01\xc3\xa9", 11);
	const char want[] = "\"a\\\"b\\\\c/d\\n\\u0001\xc3\xa9\"";
	TN_CHECK_MEM(b.data, b.len, want, sizeof(want) - 1);
	tn_buf_fini(&b);
}

TN_TEST(rejects_bad_json)
{
	const char *bad[] = {"", "{", "{\"a\":}", "{\"a\":'x'}", "{\"a\":1,}", "{} x", "nul", "[1,2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_object *o = NULL;
		int rv = tn_json_parse(&o, bad[i], strlen(bad[i]), 32);
		if (rv != TN_EPROTO)
			fprintf(stderr, "input %zu: %s\n", i, bad[i]);
		TN_CHECK_INT(rv, ==, TN_EPROTO);
	}
	json_object *o = NULL;
	TN_CHECK_OK(tn_json_parse(&o, "42", 2, 4));
	TN_CHECK_INT(json_object_get_int64(o), ==, 42);
	json_object_put(o);
	TN_CHECK_OK(tn_json_parse(&o, " {\"a\":[1,2]} \n", 14, 4));
	json_object_put(o);
}

TN_TEST(depth_limit)
{
	char deep[200];
	size_t n = 0;
	for (int i = 0; i < 40; i++)
		deep[n++] = '[';
	for (int i = 0; i < 40; i++)
		deep[n++] = ']';
	json_object *o = NULL;
	TN_CHECK_INT(tn_json_parse(&o, deep, n, 32), ==, TN_ETOOBIG);
	TN_CHECK_OK(tn_json_parse(&o, deep, n, 64));
	json_object_put(o);
}

TN_TEST(writer_builds_nested)
{
	struct tn_buf b;
	tn_buf_init(&b);
	struct tn_jw w;
	tn_jw_init(&w, &b);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "code");
	tn_jw_int(&w, 200);
	tn_jw_key(&w, "users");
	tn_jw_arr_begin(&w);
	tn_jw_cstr(&w, "alice");
	tn_jw_cstr(&w, "bob");
	tn_jw_arr_end(&w);
	tn_jw_key(&w, "sys");
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "ok");
	tn_jw_bool(&w, true);
	tn_jw_key(&w, "n");
	tn_jw_null(&w);
	tn_jw_obj_end(&w);
	tn_jw_key(&w, "raw");
	tn_jw_raw(&w, "{}", 2);
	tn_jw_obj_end(&w);
	const char want[] = "{\"code\":200,\"users\":[\"alice\",\"bob\"],\"sys\":{\"ok\":true,\"n\":null},\"raw\":{}}";
	TN_CHECK_MEM(b.data, b.len, want, sizeof(want) - 1);
	tn_buf_fini(&b);
}

TN_TEST_MAIN(TN_CASE(cesu8_passes_through), TN_CASE(four_byte_utf8_written_as_surrogates),
	TN_CASE(escapes_controls_quotes_not_slash), TN_CASE(rejects_bad_json), TN_CASE(depth_limit),
	TN_CASE(writer_builds_nested))
