#include "topology.h"

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

void
tn_topology_free(struct tn_topology *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->servers[i].id);
		free(t->servers[i].host);
		free(t->servers[i].client_host);
	}
	free(t->servers);
	free(t);
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
	t->servers = tn_realloc(t->servers, (t->n + 1) * sizeof(*t->servers));
	struct tn_server_info *s = &t->servers[t->n++];
	memset(s, 0, sizeof(*s));
	s->id = tn_strdup(id);
	s->type = type;
	const char *host = tn_json_get_str(e, "advertiseHost", NULL);
	if (host == NULL)
		host = tn_json_get_str(e, "host", NULL);
	s->host = tn_strdup(host ? host : "127.0.0.1");
	const char *ch = tn_json_get_str(e, "publicHost", NULL);
	s->client_host = tn_strdup(ch ? ch : "");
	s->port = int_field(e, "port", 0);
	s->client_port = int_field(e, "clientPort", 0);
	s->admin_port = int_field(e, "adminPort", 0);
	s->seed = tn_hash_server_seed(s->id);
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

const struct tn_server_info *
tn_topology_room_owner(const struct tn_topology *t, const char *rid, size_t rid_len,
	enum tn_room_hash how)
{
	const struct tn_server_info *best = NULL;
	uint64_t best_score = 0;
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		n += t->servers[i].type == TN_SERVER_CHAT;
	if (n == 0)
		return NULL;
	if (how == TN_ROOM_HASH_CRC32) {
		uint32_t want = tn_hash_pomelo_index(rid, rid_len, (uint32_t)n);
		for (size_t i = 0, k = 0; i < t->n; i++)
			if (t->servers[i].type == TN_SERVER_CHAT && k++ == want)
				return &t->servers[i];
		return NULL;
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct tn_server_info *s = &t->servers[i];
		if (s->type != TN_SERVER_CHAT)
			continue;
		uint64_t score = tn_hash64(rid, rid_len, s->seed);
		if (best == NULL || score > best_score) {
			best = s;
			best_score = score;
		}
	}
	return best;
}
