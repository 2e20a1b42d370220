/* JSON for client bodies.
 *
 * Parsing uses json-c: it accepts any bytes inside strings (no UTF-8 validation by
 * default), so the CESU-8 that browsers send for characters outside the BMP
 * (U+1F600 as ed a0 bd ed b8 80) passes through unchanged, and its tokener has a
 * configurable nesting limit, so deep input is refused before it costs stack.
 *
 * Writing uses the small writer below rather than json-c's serializer, so that output is
 * exactly what the pomelo browser client can read: raw 4-byte UTF-8 (which the browser's
 * decoder turns into garbage) is written as a \uXXXX\uXXXX surrogate pair, CESU-8 and
 * other bytes >= 0x80 pass through untouched, and '/' is not escaped. */
#ifndef TN_JSON_H
#define TN_JSON_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Parses len bytes of JSON. On success writes a new reference to *out (release it with
 * json_object_put) and returns TN_OK. Returns TN_ETOOBIG when nesting exceeds max_depth
 * (1..1000), TN_EPROTO for anything else that is not exactly one JSON value (trailing
 * bytes other than whitespace are an error). Any thread. */
int tn_json_parse(json_object **out, const void *data, size_t len, int max_depth);

/* Appends s (len bytes) as a quoted JSON string, escaped as described above. */
void tn_json_put_str(struct tn_buf *b, const char *s, size_t len);

/* Appends the JSON text of obj (NULL writes null) with the same escaping rules. */
void tn_json_put_obj(struct tn_buf *b, json_object *obj);

/* Convenience lookups on an object: return NULL / false when the key is absent or has
 * another type. Returned strings are borrowed from obj. */
const char *tn_json_get_str(json_object *obj, const char *key, size_t *len);
bool tn_json_get_int(json_object *obj, const char *key, int64_t *out);

/* A streaming writer for building bodies without a tree. Commas are inserted
 * automatically. Nesting is limited to TN_JW_MAX_DEPTH (a programmer error beyond). */
#define TN_JW_MAX_DEPTH 16
struct tn_jw {
	struct tn_buf *b;
	int depth;
	bool need_comma[TN_JW_MAX_DEPTH];
};

void tn_jw_init(struct tn_jw *w, struct tn_buf *b);
void tn_jw_obj_begin(struct tn_jw *w);
void tn_jw_obj_end(struct tn_jw *w);
void tn_jw_arr_begin(struct tn_jw *w);
void tn_jw_arr_end(struct tn_jw *w);
/* Writes an object key; the next value call writes its value. */
void tn_jw_key(struct tn_jw *w, const char *key);
void tn_jw_str(struct tn_jw *w, const char *s, size_t len);
void tn_jw_cstr(struct tn_jw *w, const char *s);
void tn_jw_int(struct tn_jw *w, int64_t v);
void tn_jw_bool(struct tn_jw *w, bool v);
void tn_jw_null(struct tn_jw *w);
/* Writes already-encoded JSON text as one value. */
void tn_jw_raw(struct tn_jw *w, const char *json, size_t len);
void tn_jw_obj(struct tn_jw *w, json_object *obj);

#endif
