#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

int
tn_json_parse(json_object **out, const void *data, size_t len, int max_depth)
{
	if (max_depth < 1 || max_depth > 1000 || len > INT32_MAX)
		return TN_EINVAL;
	struct json_tokener *tok = json_tokener_new_ex(max_depth);
	if (tok == NULL)
		return TN_EINVAL;
	/* STRICT refuses what JSON.parse refuses (single quotes, trailing commas, comments,
	 * bare words); it does not turn on UTF-8 validation, which is a separate flag. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *obj = json_tokener_parse_ex(tok, data, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue && obj == NULL) {
		/* A bare number at the very end needs a terminator to be complete. */
		obj = json_tokener_parse_ex(tok, " ", 1);
		jerr = json_tokener_get_error(tok);
		used = len;
	}
	json_tokener_free(tok);

	if (jerr == json_tokener_error_depth)
		return TN_ETOOBIG;
	if (jerr != json_tokener_success) {
		json_object_put(obj);
		return TN_EPROTO;
	}
	/* One value only: trailing bytes other than whitespace are an error. */
	const unsigned char *p = data;
	for (size_t i = used; i < len; i++) {
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') {
			json_object_put(obj);
			return TN_EPROTO;
		}
	}
	*out = obj;
	return TN_OK;
}

static const char hexdig[] = "0123456789abcdef";

static void
put_u_escape(struct tn_buf *b, unsigned v)
{
	char e[6] = {'\\', 'u', hexdig[(v >> 12) & 15], hexdig[(v >> 8) & 15],
		hexdig[(v >> 4) & 15], hexdig[v & 15]};
	tn_buf_append(b, e, sizeof(e));
}

/* Length of a well-formed 4-byte UTF-8 sequence at s (code point U+10000..U+10FFFF), or 0. */
static size_t
utf8_four(const unsigned char *s, size_t left, unsigned *cp)
{
	if (left < 4 || s[0] < 0xf0 || s[0] > 0xf4)
		return 0;
	if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
		return 0;
	unsigned v = ((unsigned)(s[0] & 0x07) << 18) | ((unsigned)(s[1] & 0x3f) << 12) |
		((unsigned)(s[2] & 0x3f) << 6) | (unsigned)(s[3] & 0x3f);
	if (v < 0x10000 || v > 0x10ffff)
		return 0;
	*cp = v;
	return 4;
}

void
tn_json_put_str(struct tn_buf *b, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	tn_buf_reserve(b, len + 2);
	tn_buf_append_byte(b, '"');
	size_t run = 0; /* bytes copied verbatim are appended in runs */
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		unsigned cp;
		size_t n = 0;
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0xf0) {
			run++;
			i++;
			continue;
		}
		tn_buf_append(b, s + i - run, run);
		run = 0;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			tn_buf_append(b, e, 2);
		} else if (c == '\n') {
			tn_buf_append(b, "\\n", 2);
		} else if (c == '\r') {
			tn_buf_append(b, "\\r", 2);
		} else if (c == '\t') {
			tn_buf_append(b, "\\t", 2);
		} else if (c < 0x20) {
			put_u_escape(b, c);
		} else if ((n = utf8_four(s + i, len - i, &cp)) != 0) {
			/* The browser's decoder only knows 1-3 byte sequences: write a surrogate pair. */
			cp -= 0x10000;
			put_u_escape(b, 0xd800 + (cp >> 10));
			put_u_escape(b, 0xdc00 + (cp & 0x3ff));
			i += n;
			continue;
		} else {
			tn_buf_append_byte(b, c); /* not valid UTF-8: opaque byte, passed through */
		}
		i++;
	}
	tn_buf_append(b, s + len - run, run);
	tn_buf_append_byte(b, '"');
}

static void put_obj(struct tn_buf *b, json_object *obj, int depth);

static void
put_container(struct tn_buf *b, json_object *obj, int depth)
{
	bool first = true;
	if (json_object_is_type(obj, json_type_object)) {
		tn_buf_append_byte(b, '{');
		json_object_object_foreach(obj, key, val)
		{
			if (!first)
				tn_buf_append_byte(b, ',');
			first = false;
			tn_json_put_str(b, key, strlen(key));
			tn_buf_append_byte(b, ':');
			put_obj(b, val, depth + 1);
		}
		tn_buf_append_byte(b, '}');
		return;
	}
	tn_buf_append_byte(b, '[');
	size_t n = json_object_array_length(obj);
	for (size_t i = 0; i < n; i++) {
		if (i)
			tn_buf_append_byte(b, ',');
		put_obj(b, json_object_array_get_idx(obj, i), depth + 1);
	}
	tn_buf_append_byte(b, ']');
}

static void
put_obj(struct tn_buf *b, json_object *obj, int depth)
{
	switch (json_object_get_type(obj)) {
	case json_type_null:
		tn_buf_append_str(b, "null");
		break;
	case json_type_boolean:
		tn_buf_append_str(b, json_object_get_boolean(obj) ? "true" : "false");
		break;
	case json_type_int:
		tn_buf_printf(b, "%" PRId64, json_object_get_int64(obj));
		break;
	case json_type_double:
		/* json-c keeps the original text of parsed numbers, so 1.50 stays 1.50. */
		tn_buf_append_str(b, json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
		break;
	case json_type_string:
		tn_json_put_str(b, json_object_get_string(obj), (size_t)json_object_get_string_len(obj));
		break;
	case json_type_object:
	case json_type_array:
		put_container(b, obj, depth);
		break;
	}
}

void
tn_json_put_obj(struct tn_buf *b, json_object *obj)
{
	put_obj(b, obj, 0);
}

const char *
tn_json_get_str(json_object *obj, const char *key, size_t *len)
{
	json_object *v;
	if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
		!json_object_is_type(v, json_type_string))
		return NULL;
	if (len)
		*len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

bool
tn_json_get_int(json_object *obj, const char *key, int64_t *out)
{
	json_object *v;
	if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
		!json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

/* ---- streaming writer ---- */

void
tn_jw_init(struct tn_jw *w, struct tn_buf *b)
{
	w->b = b;
	w->depth = 0;
	w->need_comma[0] = false;
}

/* Called before every value and key: a comma when the container already has an entry.
 * A value right after its key never gets one (the key cleared the flag). */
static void
jw_sep(struct tn_jw *w)
{
	if (w->need_comma[w->depth])
		tn_buf_append_byte(w->b, ',');
	w->need_comma[w->depth] = true;
}

static void
jw_open(struct tn_jw *w, char c)
{
	jw_sep(w);
	tn_buf_append_byte(w->b, (uint8_t)c);
	if (w->depth + 1 >= TN_JW_MAX_DEPTH) {
		fprintf(stderr, "fatal: tn_jw nesting over %d\n", TN_JW_MAX_DEPTH);
		abort();
	}
	w->need_comma[++w->depth] = false;
}

static void
jw_close(struct tn_jw *w, char c)
{
	tn_buf_append_byte(w->b, (uint8_t)c);
	if (w->depth > 0)
		w->depth--;
}

void tn_jw_obj_begin(struct tn_jw *w) { jw_open(w, '{'); }
void tn_jw_obj_end(struct tn_jw *w) { jw_close(w, '}'); }
void tn_jw_arr_begin(struct tn_jw *w) { jw_open(w, '['); }
void tn_jw_arr_end(struct tn_jw *w) { jw_close(w, ']'); }

void
tn_jw_key(struct tn_jw *w, const char *key)
{
	jw_sep(w);
	tn_json_put_str(w->b, key, strlen(key));
	tn_buf_append_byte(w->b, ':');
	w->need_comma[w->depth] = false; /* the value follows without a comma */
}

void
tn_jw_str(struct tn_jw *w, const char *s, size_t len)
{
	jw_sep(w);
	tn_json_put_str(w->b, s, len);
}

void tn_jw_cstr(struct tn_jw *w, const char *s) { tn_jw_str(w, s, strlen(s)); }

void
tn_jw_int(struct tn_jw *w, int64_t v)
{
	jw_sep(w);
	tn_buf_printf(w->b, "%" PRId64, v);
}

void
tn_jw_bool(struct tn_jw *w, bool v)
{
	jw_sep(w);
	tn_buf_append_str(w->b, v ? "true" : "false");
}

void
tn_jw_null(struct tn_jw *w)
{
	jw_sep(w);
	tn_buf_append_str(w->b, "null");
}

void
tn_jw_raw(struct tn_jw *w, const char *json, size_t len)
{
	jw_sep(w);
	tn_buf_append(w->b, json, len);
}

void
tn_jw_obj(struct tn_jw *w, json_object *obj)
{
	jw_sep(w);
	tn_json_put_obj(w->b, obj);
}
