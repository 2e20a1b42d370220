#include "pml_handshake.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "json.h"
#include "pml_dict.h"
#include "pml_package.h"

/* Returns the string value of key in obj, NULL when absent or of another type. */
static const char *
get_str(json_object *obj, const char *key)
{
	return tn_json_get_str(obj, key, NULL);
}

int
tn_pml_hs_request_parse(struct tn_pml_hs_request *out, const void *body, size_t len)
{
	json_object *root = NULL;
	int rv = tn_json_parse(&root, body, len, TN_PML_HS_MAX_DEPTH);
	if (rv != TN_OK)
		return rv;
	json_object *sys = NULL;
	if (!json_object_is_type(root, json_type_object) ||
	        !json_object_object_get_ex(root, "sys", &sys) ||
	        !json_object_is_type(sys, json_type_object)) {
		json_object_put(root);
		return TN_EINVAL;
	}
	json_object *user = NULL;
	json_object_object_get_ex(root, "user", &user);
	*out = (struct tn_pml_hs_request){
	        .root = root,
	        .sys = sys,
	        .type = get_str(sys, "type"),
	        .version = get_str(sys, "version"),
	        .dict_version = get_str(sys, "dictVersion"),
	        .user = user,
	};
	return TN_OK;
}

void
tn_pml_hs_request_fini(struct tn_pml_hs_request *req)
{
	json_object_put(req->root);
	memset(req, 0, sizeof(*req));
}

static void
encode_code_only(struct tn_buf *out, enum tn_pml_hs_code code)
{
	struct tn_jw w;
	size_t start = tn_pml_pkg_begin(out, TN_PML_PKG_HANDSHAKE);
	tn_jw_init(&w, out);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "code");
	tn_jw_int(&w, code);
	tn_jw_obj_end(&w);
	tn_pml_pkg_end(out, start);
}

static bool
client_needs_dict(const struct tn_pml_dict *dict, const struct tn_pml_hs_request *req)
{
	return req->dict_version == NULL ||
	       strcmp(req->dict_version, tn_pml_dict_version(dict)) != 0;
}

static void
write_sys(struct tn_jw *w, const struct tn_pml_hs_config *cfg, const struct tn_pml_hs_request *req)
{
	tn_jw_obj_begin(w);
	if (cfg->heartbeat_s > 0) {
		tn_jw_key(w, "heartbeat");
		tn_jw_int(w, cfg->heartbeat_s);
	}
	if (cfg->dict != NULL) {
		if (client_needs_dict(cfg->dict, req))
			tn_pml_dict_write_handshake(cfg->dict, w);
		tn_jw_key(w, "useDict");
		tn_jw_bool(w, true);
	}
	tn_jw_key(w, "protos");
	tn_jw_obj_begin(w);
	tn_jw_key(w, "server");
	tn_jw_raw(w, "{}", 2);
	tn_jw_key(w, "client");
	tn_jw_raw(w, "{}", 2);
	tn_jw_key(w, "version");
	tn_jw_cstr(w, cfg->proto_version);
	tn_jw_obj_end(w);
	tn_jw_key(w, "useProto");
	tn_jw_bool(w, true);
	tn_jw_obj_end(w);
}

enum tn_pml_hs_code
tn_pml_hs_reply_encode(
        struct tn_buf *out, const struct tn_pml_hs_config *cfg, const struct tn_pml_hs_request *req)
{
	assert(cfg->proto_version != NULL && cfg->proto_version[0] != '\0');
	if (req == NULL) {
		encode_code_only(out, TN_PML_HS_ERROR);
		return TN_PML_HS_ERROR;
	}
	if (cfg->check_client && !cfg->check_client(cfg->check_ctx, req->type, req->version)) {
		encode_code_only(out, TN_PML_HS_OLD_CLIENT);
		return TN_PML_HS_OLD_CLIENT;
	}
	struct tn_jw w;
	size_t start = tn_pml_pkg_begin(out, TN_PML_PKG_HANDSHAKE);
	tn_jw_init(&w, out);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "code");
	tn_jw_int(&w, TN_PML_HS_OK);
	tn_jw_key(&w, "sys");
	write_sys(&w, cfg, req);
	tn_jw_obj_end(&w);
	if (tn_pml_pkg_end(out, start) != TN_OK) {
		/* Only a dict of tens of thousands of long routes passes 16 MiB; the client
		 * cannot be served without it, so it gets a clean refusal, not silence. */
		encode_code_only(out, TN_PML_HS_ERROR);
		return TN_PML_HS_ERROR;
	}
	return TN_PML_HS_OK;
}

enum tn_pml_hs_code
tn_pml_hs_answer(
        struct tn_buf *out, const struct tn_pml_hs_config *cfg, const void *body, size_t len)
{
	struct tn_pml_hs_request req;
	if (tn_pml_hs_request_parse(&req, body, len) != TN_OK)
		return tn_pml_hs_reply_encode(out, cfg, NULL);
	enum tn_pml_hs_code code = tn_pml_hs_reply_encode(out, cfg, &req);
	tn_pml_hs_request_fini(&req);
	return code;
}

void
tn_pml_hs_request_encode(struct tn_buf *out, const struct tn_pml_hs_client_info *info)
{
	struct tn_jw w;
	size_t start = tn_pml_pkg_begin(out, TN_PML_PKG_HANDSHAKE);
	tn_jw_init(&w, out);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "sys");
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "type");
	tn_jw_cstr(&w, info->type ? info->type : "");
	tn_jw_key(&w, "version");
	tn_jw_cstr(&w, info->version ? info->version : "");
	tn_jw_key(&w, "rsa");
	tn_jw_raw(&w, "{}", 2);
	tn_jw_key(&w, "protoVersion");
	if (info->proto_version)
		tn_jw_cstr(&w, info->proto_version);
	else
		tn_jw_int(&w, 0);
	if (info->dict_version) {
		tn_jw_key(&w, "dictVersion");
		tn_jw_cstr(&w, info->dict_version);
	}
	tn_jw_obj_end(&w);
	if (info->user_json) {
		tn_jw_key(&w, "user");
		tn_jw_raw(&w, info->user_json, strlen(info->user_json));
	}
	tn_jw_obj_end(&w);
	tn_pml_pkg_end(out, start);
}

static bool
get_bool(json_object *obj, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(obj, key, &v) &&
	       json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static int64_t
get_heartbeat_ms(json_object *sys)
{
	json_object *v;
	if (!json_object_object_get_ex(sys, "heartbeat", &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return 0;
	double ms = json_object_get_double(v) * 1000.0;
	/* A day is far beyond any sane interval; anything else is treated as no heartbeat,
	 * which is what the browser does with a value it cannot use. */
	if (!(ms >= 1.0 && ms <= 86400000.0))
		return 0;
	return (int64_t)(ms + 0.5);
}

static int
parse_reply_dict(struct tn_pml_hs_reply *r, json_object *sys)
{
	json_object *map;
	if (!json_object_object_get_ex(sys, "routeToCode", &map) &&
	        !json_object_object_get_ex(sys, "dict", &map))
		return TN_OK;
	const char *version = get_str(sys, "dictVersion");
	if (version)
		r->dict_version = tn_strdup(version);
	return tn_pml_dict_from_json(&r->dict, map, version);
}

static int
parse_reply_sys(struct tn_pml_hs_reply *r, json_object *sys)
{
	r->heartbeat_ms = get_heartbeat_ms(sys);
	r->use_dict = get_bool(sys, "useDict");
	r->use_proto = get_bool(sys, "useProto");
	json_object *protos;
	if (json_object_object_get_ex(sys, "protos", &protos)) {
		const char *v = get_str(protos, "version");
		if (v)
			r->proto_version = tn_strdup(v);
	}
	return parse_reply_dict(r, sys);
}

int
tn_pml_hs_reply_parse(struct tn_pml_hs_reply *out, const void *body, size_t len)
{
	json_object *root = NULL;
	int64_t code;
	int rv = tn_json_parse(&root, body, len, TN_PML_HS_MAX_DEPTH);
	if (rv != TN_OK)
		return rv;
	if (!json_object_is_type(root, json_type_object) || !tn_json_get_int(root, "code", &code) ||
	        code < 0 || code > 999) {
		json_object_put(root);
		return TN_EPROTO;
	}
	struct tn_pml_hs_reply r = {.code = (int)code};
	json_object *sys, *user;
	if (json_object_object_get_ex(root, "sys", &sys) &&
	        json_object_is_type(sys, json_type_object))
		rv = parse_reply_sys(&r, sys);
	if (rv == TN_OK && json_object_object_get_ex(root, "user", &user))
		r.user = json_object_get(user);
	json_object_put(root);
	if (rv != TN_OK) {
		tn_pml_hs_reply_fini(&r);
		return rv;
	}
	*out = r;
	return TN_OK;
}

void
tn_pml_hs_reply_fini(struct tn_pml_hs_reply *reply)
{
	tn_pml_dict_free(reply->dict);
	free(reply->dict_version);
	free(reply->proto_version);
	json_object_put(reply->user);
	memset(reply, 0, sizeof(*reply));
}

void
tn_pml_kick_encode(struct tn_buf *out, const char *reason)
{
	struct tn_jw w;
	size_t start = tn_pml_pkg_begin(out, TN_PML_PKG_KICK);
	tn_jw_init(&w, out);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "reason");
	tn_jw_cstr(&w, reason ? reason : "kick");
	tn_jw_obj_end(&w);
	/* A reason over 16 MiB is replaced rather than leaving the kick unsent. */
	if (tn_pml_pkg_end(out, start) != TN_OK)
		tn_pml_kick_encode(out, NULL);
}

int
tn_pml_kick_decode(struct tn_buf *reason, const void *body, size_t len)
{
	json_object *root = NULL;
	int rv = tn_json_parse(&root, body, len, TN_PML_HS_MAX_DEPTH);
	if (rv != TN_OK)
		return rv;
	if (!json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return TN_EPROTO;
	}
	size_t n;
	const char *s = tn_json_get_str(root, "reason", &n);
	if (s)
		tn_buf_append(reason, s, n);
	json_object_put(root);
	return TN_OK;
}
