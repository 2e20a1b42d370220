#include "topology.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "hash.h"
#include "json.h"

struct tn_topology *
tn_topology_new_empty(void)
{
	return tn_calloc(1, sizeof(struct tn_topology));
}

static char *
dup_or_empty(const char *s)
{
	return tn_strdup(s ? s : "");
}

void
tn_server_info_copy(struct tn_server_info *dst, const struct tn_server_info *src)
{
	*dst = *src;
	dst->id = dup_or_empty(src->id);
	dst->host = dup_or_empty(src->host);
	dst->client_host = dup_or_empty(src->client_host);
	dst->bind_host = dup_or_empty(src->bind_host);
	dst->client_bind_host = dup_or_empty(src->client_bind_host);
	dst->admin_host = dup_or_empty(src->admin_host);
	dst->version = dup_or_empty(src->version);
	dst->seed = tn_hash_server_seed(dst->id);
}

void
tn_server_info_fini(struct tn_server_info *s)
{
	free(s->id);
	free(s->host);
	free(s->client_host);
	free(s->bind_host);
	free(s->client_bind_host);
	free(s->admin_host);
	free(s->version);
	memset(s, 0, sizeof(*s));
}

void
tn_topology_free(struct tn_topology *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		tn_server_info_fini(&t->servers[i]);
	free(t->servers);
	free(t);
}

void
tn_topology_add(struct tn_topology *t, const struct tn_server_info *s)
{
	t->servers = tn_realloc(t->servers, (t->n + 1) * sizeof(*t->servers));
	tn_server_info_copy(&t->servers[t->n++], s);
}

struct tn_topology *
tn_topology_copy(const struct tn_topology *t)
{
	struct tn_topology *c = tn_topology_new_empty();
	c->version = t->version;
	c->registry_inc = t->registry_inc;
	c->servers = tn_calloc(t->n ? t->n : 1, sizeof(*c->servers));
	for (size_t i = 0; i < t->n; i++)
		tn_server_info_copy(&c->servers[i], &t->servers[i]);
	c->n = t->n;
	return c;
}

int
tn_server_id_cmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
			/* Compare the runs as numbers: skip leading zeros, then the longer run
			 * is larger, then the first differing digit decides. */
			while (*a == '0' && isdigit((unsigned char)a[1]))
				a++;
			while (*b == '0' && isdigit((unsigned char)b[1]))
				b++;
			size_t la = 0, lb = 0;
			while (isdigit((unsigned char)a[la]))
				la++;
			while (isdigit((unsigned char)b[lb]))
				lb++;
			if (la != lb)
				return la < lb ? -1 : 1;
			int c = memcmp(a, b, la);
			if (c)
				return c < 0 ? -1 : 1;
			a += la;
			b += lb;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	/* The one that ran out first is smaller ("x01" and "x1" are equal here). */
	if (*a || *b)
		return *a ? 1 : -1;
	return 0;
}

static int
server_order(const void *pa, const void *pb)
{
	const struct tn_server_info *a = pa, *b = pb;
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	int c = tn_server_id_cmp(a->id, b->id);
	return c ? c : strcmp(a->id, b->id);
}

void
tn_topology_sort(struct tn_topology *t)
{
	if (t->n > 1)
		qsort(t->servers, t->n, sizeof(*t->servers), server_order);
}

static int
int_field(json_object *e, const char *key, int def)
{
	json_object *v;
	if (!json_object_object_get_ex(e, key, &v))
		return def;
	if (json_object_is_type(v, json_type_string))
		return atoi(json_object_get_string(v)); /* "3050-3099": the first port */
	return json_object_get_int(v);
}

static void
add_entry(struct tn_topology *t, json_object *e, enum tn_server_type type)
{
	const char *id = tn_json_get_str(e, "id", NULL);
	if (id == NULL)
		return;
	const char *bind = tn_json_get_str(e, "host", NULL);
	const char *host = tn_json_get_str(e, "advertiseHost", NULL);
	struct tn_server_info s = {
		.id = (char *)id,
		.type = type,
		.host = (char *)(host ? host : bind ? bind : "127.0.0.1"),
		.port = int_field(e, "port", 0),
		.client_host = (char *)tn_json_get_str(e, "publicHost", NULL),
		.client_port = int_field(e, "clientPort", 0),
		.admin_port = int_field(e, "adminPort", 0),
		.bind_host = (char *)bind,
		.client_bind_host = (char *)tn_json_get_str(e, "clientHost", NULL),
		.admin_host = (char *)tn_json_get_str(e, "adminHost", NULL),
	};
	tn_topology_add(t, &s);
}

int
tn_topology_load_file(struct tn_topology **out, const char *path, const char *env, char *err,
	size_t elen)
{
	json_object *root = json_object_from_file(path);
	if (root == NULL) {
		snprintf(err, elen, "%s: cannot read or parse", path);
		return TN_ECONFIG;
	}
	json_object *envobj;
	if (!json_object_object_get_ex(root, env, &envobj)) {
		snprintf(err, elen, "%s: no environment \"%s\"", path, env);
		json_object_put(root);
		return TN_ECONFIG;
	}
	struct tn_topology *t = tn_topology_new_empty();
	t->version = 1;
	for (int ty = 0; ty < TN_SERVER_TYPE_COUNT_; ty++) {
		json_object *list;
		if (!json_object_object_get_ex(envobj, tn_server_type_name(ty), &list) ||
			!json_object_is_type(list, json_type_array))
			continue;
		for (size_t i = 0; i < json_object_array_length(list); i++)
			add_entry(t, json_object_array_get_idx(list, i), (enum tn_server_type)ty);
	}
	json_object_put(root);
	*out = t;
	return TN_OK;
}

size_t
tn_topology_of_type(const struct tn_topology *t, enum tn_server_type type,
	const struct tn_server_info **out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (t->servers[i].type != type)
			continue;
		if (n < cap)
			out[n] = &t->servers[i];
		n++;
	}
	return n;
}

const struct tn_server_info *
tn_topology_find(const struct tn_topology *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->servers[i].id, id) == 0)
			return &t->servers[i];
	return NULL;
}

bool
tn_server_info_same(const struct tn_server_info *a, const struct tn_server_info *b)
{
	if (a->type != b->type || strcmp(a->id, b->id) != 0 || strcmp(a->host, b->host) != 0 ||
		a->port != b->port || strcmp(a->client_host, b->client_host) != 0 ||
		a->client_port != b->client_port)
		return false;
	return a->incarnation == 0 || b->incarnation == 0 || a->incarnation == b->incarnation;
}

size_t
tn_topology_missing(const struct tn_topology *a, const struct tn_topology *b)
{
	size_t missing = 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct tn_server_info *o = tn_topology_find(b, a->servers[i].id);
		if (o == NULL || !tn_server_info_same(&a->servers[i], o))
			missing++;
	}
	return missing;
}

/* The chat servers that can own rooms: those not draining, or, when every one is, all
 * of them. Whether a draining one counts, or 0 when there is no chat server at all. */
static size_t
owner_candidates(const struct tn_topology *t, bool *with_draining)
{
	size_t live = 0, all = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (t->servers[i].type != TN_SERVER_CHAT)
			continue;
		all++;
		live += !t->servers[i].draining;
	}
	*with_draining = live == 0;
	return live > 0 ? live : all;
}

static bool
is_candidate(const struct tn_server_info *s, bool with_draining)
{
	return s->type == TN_SERVER_CHAT && (with_draining || !s->draining);
}

const struct tn_server_info *
tn_topology_room_owner(const struct tn_topology *t, const char *rid, size_t rid_len,
	enum tn_room_hash how)
{
	bool with_draining;
	size_t n = owner_candidates(t, &with_draining);
	if (n == 0)
		return NULL;
	if (how == TN_ROOM_HASH_CRC32) {
		uint32_t want = tn_hash_pomelo_index(rid, rid_len, (uint32_t)n);
		for (size_t i = 0, k = 0; i < t->n; i++)
			if (is_candidate(&t->servers[i], with_draining) && k++ == want)
				return &t->servers[i];
		return NULL;
	}
	const struct tn_server_info *best = NULL;
	uint64_t best_score = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct tn_server_info *s = &t->servers[i];
		if (!is_candidate(s, with_draining))
			continue;
		uint64_t score = tn_hash64(rid, rid_len, s->seed);
		if (best == NULL || score > best_score) {
			best = s;
			best_score = score;
		}
	}
	return best;
}

struct tn_topology *
tn_topology_with(const struct tn_topology *t, const struct tn_server_info *s)
{
	struct tn_topology *c = tn_topology_new_empty();
	c->version = t->version;
	c->registry_inc = t->registry_inc;
	c->servers = tn_calloc(t->n + 1, sizeof(*c->servers));
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->servers[i].id, s->id ? s->id : "") != 0)
			tn_server_info_copy(&c->servers[c->n++], &t->servers[i]);
	tn_server_info_copy(&c->servers[c->n++], s);
	tn_topology_sort(c);
	return c;
}
