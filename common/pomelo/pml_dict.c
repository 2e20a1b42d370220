#include "pml_dict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "alloc.h"
#include "err.h"
#include "pml_message.h"

struct dict_entry {
	char *route; /* NUL-terminated copy */
	size_t len;
	uint16_t code;
};

struct tn_pml_dict {
	struct dict_entry *entries; /* never reallocated once filled: the indexes point in */
	size_t n;
	struct dict_entry **by_route; /* sorted by route bytes */
	struct dict_entry **by_code;  /* sorted by code */
	char *version;
	char *r2c_json;
	size_t r2c_len;
	char *c2r_json;
	size_t c2r_len;
};

static int
route_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int
cmp_cstr_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
cmp_entry_route(const void *a, const void *b)
{
	const struct dict_entry *x = *(struct dict_entry *const *)a;
	const struct dict_entry *y = *(struct dict_entry *const *)b;
	return route_cmp(x->route, x->len, y->route, y->len);
}

static int
cmp_entry_code(const void *a, const void *b)
{
	const struct dict_entry *x = *(struct dict_entry *const *)a;
	const struct dict_entry *y = *(struct dict_entry *const *)b;
	return (x->code > y->code) - (x->code < y->code);
}

/* Binary search by route; on a miss *pos is where the route would be inserted. */
static bool
dict_find(const struct tn_pml_dict *d, const char *route, size_t len, size_t *pos)
{
	size_t lo = 0, hi = d->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct dict_entry *e = d->by_route[mid];
		int c = route_cmp(e->route, e->len, route, len);
		if (c == 0) {
			*pos = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return false;
}

static struct tn_pml_dict *
dict_alloc(size_t cap)
{
	struct tn_pml_dict *d = tn_calloc(1, sizeof(*d));
	d->entries = tn_calloc(cap, sizeof(*d->entries));
	d->by_route = tn_calloc(cap, sizeof(*d->by_route));
	d->by_code = tn_calloc(cap, sizeof(*d->by_code));
	return d;
}

static struct dict_entry *
dict_push(struct tn_pml_dict *d, const char *route, size_t len, uint16_t code)
{
	struct dict_entry *e = &d->entries[d->n++];
	e->route = tn_strndup(route, len);
	e->len = len;
	e->code = code;
	return e;
}

static void
render_json(struct tn_pml_dict *d)
{
	struct tn_buf b;
	struct tn_jw w;
	char key[8];

	tn_buf_init(&b);
	tn_jw_init(&w, &b);
	tn_jw_obj_begin(&w);
	for (size_t i = 0; i < d->n; i++) {
		tn_jw_key(&w, d->by_code[i]->route);
		tn_jw_int(&w, d->by_code[i]->code);
	}
	tn_jw_obj_end(&w);
	d->r2c_json = (char *)tn_buf_release(&b, &d->r2c_len);

	tn_jw_init(&w, &b);
	tn_jw_obj_begin(&w);
	for (size_t i = 0; i < d->n; i++) {
		snprintf(key, sizeof(key), "%u", (unsigned)d->by_code[i]->code);
		tn_jw_key(&w, key);
		tn_jw_str(&w, d->by_code[i]->route, d->by_code[i]->len);
	}
	tn_jw_obj_end(&w);
	d->c2r_json = (char *)tn_buf_release(&b, &d->c2r_len);
}

static char *
base64_encode(const uint8_t *p, size_t n)
{
	static const char tab[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *s = tn_malloc((n + 2) / 3 * 4 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		s[o++] = tab[(v >> 18) & 63];
		s[o++] = tab[(v >> 12) & 63];
		s[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		s[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	s[o] = '\0';
	return s;
}

/* Like pomelo (base64 of an MD5 of JSON.stringify(dict)) but with XXH3-128: the version
 * is only a cache key, compared for equality, never recomputed by the client. */
static char *
compute_version(const struct tn_pml_dict *d)
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(d->r2c_json, d->r2c_len));
	return base64_encode(c.digest, sizeof(c.digest));
}

static bool
route_is_valid(const char *route)
{
	return route != NULL && route[0] != '\0' && strlen(route) <= TN_PML_ROUTE_MAX;
}

static int
check_routes(const char *const *routes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!route_is_valid(routes[i]))
			return TN_EINVAL;
	return TN_OK;
}

/* Adds the sorted, deduplicated handler routes; by_route is then the identity. */
static void
add_sorted(struct tn_pml_dict *d, const char *const *routes, size_t n)
{
	const char **sorted = tn_memdup(routes, n * sizeof(*routes));
	qsort(sorted, n, sizeof(*sorted), cmp_cstr_ptr);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
			continue;
		struct dict_entry *e =
		        dict_push(d, sorted[i], strlen(sorted[i]), (uint16_t)(d->n + 1));
		d->by_route[d->n - 1] = e;
	}
	free(sorted);
}

static void
add_extra(struct tn_pml_dict *d, const char *route)
{
	size_t len = strlen(route), pos;
	if (dict_find(d, route, len, &pos))
		return;
	struct dict_entry *e = dict_push(d, route, len, (uint16_t)(d->n + 1));
	memmove(&d->by_route[pos + 1], &d->by_route[pos], (d->n - 1 - pos) * sizeof(*d->by_route));
	d->by_route[pos] = e;
}

int
tn_pml_dict_new(struct tn_pml_dict **out, const char *const *routes, size_t n,
        const char *const *extra, size_t n_extra)
{
	int rv = check_routes(routes, n);
	if (rv == TN_OK)
		rv = check_routes(extra, n_extra);
	if (rv != TN_OK)
		return rv;
	if (n > TN_PML_DICT_MAX || n_extra > TN_PML_DICT_MAX - n)
		return TN_ETOOBIG;
	struct tn_pml_dict *d = dict_alloc(n + n_extra);
	add_sorted(d, routes, n);
	for (size_t i = 0; i < n_extra; i++)
		add_extra(d, extra[i]);
	/* Codes were handed out in entry order. */
	for (size_t i = 0; i < d->n; i++)
		d->by_code[i] = &d->entries[i];
	render_json(d);
	d->version = compute_version(d);
	*out = d;
	return TN_OK;
}

static int
add_json_entry(struct tn_pml_dict *d, const char *route, json_object *val)
{
	size_t len = strlen(route);
	if (len == 0 || len > TN_PML_ROUTE_MAX || !json_object_is_type(val, json_type_int))
		return TN_EPROTO;
	int64_t code = json_object_get_int64(val);
	if (code < 1 || code > TN_PML_DICT_MAX)
		return TN_EPROTO;
	struct dict_entry *e = dict_push(d, route, len, (uint16_t)code);
	d->by_route[d->n - 1] = e;
	d->by_code[d->n - 1] = e;
	return TN_OK;
}

static bool
has_duplicates(struct dict_entry **v, size_t n, int (*cmp)(const void *, const void *))
{
	qsort(v, n, sizeof(*v), cmp);
	for (size_t i = 1; i < n; i++)
		if (cmp(&v[i - 1], &v[i]) == 0)
			return true;
	return false;
}

int
tn_pml_dict_from_json(struct tn_pml_dict **out, json_object *obj, const char *version)
{
	if (!json_object_is_type(obj, json_type_object))
		return TN_EPROTO;
	size_t n = (size_t)json_object_object_length(obj);
	if (n > TN_PML_DICT_MAX)
		return TN_ETOOBIG;
	int rv = TN_OK;
	struct tn_pml_dict *d = dict_alloc(n);
	json_object_object_foreach(obj, key, val)
	{
		/* json-c keys are C strings: a key holding \u0000 is cut short here and then
		 * caught as a duplicate or a wrong route by the server, never misread. */
		rv = add_json_entry(d, key, val);
		if (rv != TN_OK)
			goto fail;
	}
	if (has_duplicates(d->by_route, d->n, cmp_entry_route) ||
	        has_duplicates(d->by_code, d->n, cmp_entry_code)) {
		rv = TN_EPROTO;
		goto fail;
	}
	render_json(d);
	d->version = version && *version ? tn_strdup(version) : compute_version(d);
	*out = d;
	return TN_OK;
fail:
	tn_pml_dict_free(d);
	return rv;
}

void
tn_pml_dict_free(struct tn_pml_dict *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->entries[i].route);
	free(d->entries);
	free(d->by_route);
	free(d->by_code);
	free(d->version);
	free(d->r2c_json);
	free(d->c2r_json);
	free(d);
}

size_t
tn_pml_dict_count(const struct tn_pml_dict *d)
{
	return d->n;
}

bool
tn_pml_dict_code(uint16_t *code, const struct tn_pml_dict *d, const char *route, size_t len)
{
	size_t pos;
	if (!dict_find(d, route, len, &pos))
		return false;
	*code = d->by_route[pos]->code;
	return true;
}

const char *
tn_pml_dict_route(const struct tn_pml_dict *d, uint16_t code, size_t *len)
{
	size_t lo = 0, hi = d->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct dict_entry *e = d->by_code[mid];
		if (e->code == code) {
			if (len)
				*len = e->len;
			return e->route;
		}
		if (e->code < code)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *
tn_pml_dict_version(const struct tn_pml_dict *d)
{
	return d->version;
}

const char *
tn_pml_dict_route_to_code_json(const struct tn_pml_dict *d, size_t *len)
{
	if (len)
		*len = d->r2c_len;
	return d->r2c_json;
}

const char *
tn_pml_dict_code_to_route_json(const struct tn_pml_dict *d, size_t *len)
{
	if (len)
		*len = d->c2r_len;
	return d->c2r_json;
}

void
tn_pml_dict_write_handshake(const struct tn_pml_dict *d, struct tn_jw *w)
{
	/* pomelo sends the same object twice: "dict" for old clients, "routeToCode". */
	tn_jw_key(w, "dict");
	tn_jw_raw(w, d->r2c_json, d->r2c_len);
	tn_jw_key(w, "routeToCode");
	tn_jw_raw(w, d->r2c_json, d->r2c_len);
	tn_jw_key(w, "codeToRoute");
	tn_jw_raw(w, d->c2r_json, d->c2r_len);
	tn_jw_key(w, "dictVersion");
	tn_jw_cstr(w, d->version);
}
