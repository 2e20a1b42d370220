#include "registry.h"

#include <stdlib.h>

#include "alloc.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "reply.h"
#include "rpc.h"

#define REGISTRY_WORKERS 16
#define REGISTRY_MAX_MSG (1u << 20)

struct tn_registry {
	const struct tn_config *cfg;
	struct tn_rpc_server *rpc;
	struct tn_buf scratch;
	struct tn_counter *refused;
};

static void
reply_code(struct tn_registry *r, struct tn_rpc_req *req, int code, const char *reason)
{
	struct tn_reply rep = {.code = code, .reason = tn_str_of(reason)};
	tn_buf_reset(&r->scratch);
	tn_reply_encode(&r->scratch, &rep);
	tn_rpc_reply(req, r->scratch.data, r->scratch.len);
}

static void
on_request(void *arg, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_registry *r = arg;
	enum tn_kind kind;
	int rv = tn_proto_peek(&kind, data, len);
	tn_counter_inc(r->refused);
	if (rv) {
		reply_code(r, req, rv, "unreadable request");
		return;
	}
	tn_info("registry", "request of a kind this registry does not serve kind=%s",
		tn_kind_name(kind));
	reply_code(r, req, TN_EKIND, "the registry does not serve this kind");
}

int
tn_registry_new(struct tn_registry **out, const struct tn_config *cfg, struct tn_loop *loop)
{
	struct tn_registry *r = tn_calloc(1, sizeof(*r));
	r->cfg = cfg;
	tn_buf_init(&r->scratch);
	tn_metrics_counter(&r->refused, "tern_registry_refused_total",
		"requests refused (unknown or unreadable kind)");
	char url[300];
	int rv = tn_nng_url(url, sizeof(url), cfg->host, cfg->port);
	if (rv == TN_OK)
		rv = tn_rpc_server_start(&r->rpc, url, REGISTRY_WORKERS, REGISTRY_MAX_MSG,
			tn_loop_exec(loop), on_request, r);
	if (rv) {
		tn_registry_free(r);
		return rv;
	}
	tn_info("registry", "serving rpc=%s", url);
	*out = r;
	return TN_OK;
}

void
tn_registry_free(struct tn_registry *r)
{
	if (r == NULL)
		return;
	tn_rpc_server_stop(r->rpc);
	tn_buf_fini(&r->scratch);
	free(r);
}
