/* The route dictionary (protocol.md §2, §4): routes numbered 1..65535 so that a client
 * can send a 2-byte code instead of the route string. Built like pomelo's dictionary
 * component: the handler routes sorted (byte order) and numbered from 1, then optional
 * extra routes (pomelo's config/dictionary.json) numbered after them in the given order.
 *
 * A dictionary is immutable once built, so one instance may be shared by every connection
 * and read from any number of threads at once. Its JSON forms for the handshake response
 * are rendered once, at construction. */
#ifndef TN_PML_DICT_H
#define TN_PML_DICT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

struct tn_pml_dict;

#define TN_PML_DICT_MAX 65535

/* Builds a dictionary from n routes (sorted and numbered from 1; duplicates count once)
 * followed by n_extra extra routes (numbered on in the given order; those already present
 * are skipped). The strings are copied. Writes the new dictionary to *out (free it with
 * tn_pml_dict_free). Returns TN_EINVAL for a NULL or empty route or one over 255 bytes,
 * TN_ETOOBIG for more than TN_PML_DICT_MAX routes. The version is a base64 hash of the
 * routeToCode JSON, so it changes whenever a route or a code does. */
int tn_pml_dict_new(struct tn_pml_dict **out, const char *const *routes, size_t n,
        const char *const *extra, size_t n_extra);

/* Builds a dictionary from a handshake response's routeToCode object ({route: code})
 * as a client does, keeping the server's codes; version (copied; NULL to compute one as
 * tn_pml_dict_new does) is the response's dictVersion. Returns TN_EPROTO when obj is not
 * an object, a code is not an integer in 1..65535, a route is empty, over 255 bytes or
 * holds a NUL, or a code or route repeats; TN_ETOOBIG for too many entries. */
int tn_pml_dict_from_json(struct tn_pml_dict **out, json_object *obj, const char *version);

/* Frees d (NULL is fine). No connection may still use it. */
void tn_pml_dict_free(struct tn_pml_dict *d);

/* Number of routes in d. */
size_t tn_pml_dict_count(const struct tn_pml_dict *d);

/* Looks route (len bytes) up; on success writes its code and returns true. */
bool tn_pml_dict_code(uint16_t *code, const struct tn_pml_dict *d, const char *route, size_t len);

/* Returns the NUL-terminated route of code (borrowed from d) and writes its length to
 * *len (may be NULL), or returns NULL when the code is unknown. */
const char *tn_pml_dict_route(const struct tn_pml_dict *d, uint16_t code, size_t *len);

/* The version string (non-empty, borrowed from d). */
const char *tn_pml_dict_version(const struct tn_pml_dict *d);

/* The routeToCode object {"route":code,...} and the codeToRoute object
 * {"1":"route",...} as JSON text, both in code order (borrowed from d). */
const char *tn_pml_dict_route_to_code_json(const struct tn_pml_dict *d, size_t *len);
const char *tn_pml_dict_code_to_route_json(const struct tn_pml_dict *d, size_t *len);

/* Writes the handshake keys "dict", "routeToCode", "codeToRoute" and "dictVersion" into
 * the object w is inside, in pomelo's order. */
void tn_pml_dict_write_handshake(const struct tn_pml_dict *d, struct tn_jw *w);

#endif
