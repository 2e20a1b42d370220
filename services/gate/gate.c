#include "gate.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "app_routes.h"
#include "edge.h"
#include "err.h"
#include "hash.h"
#include "json.h"
#include "log.h"
#include "metrics.h"

#define MAX_UID 256

struct tn_gate {
	const struct tn_config *cfg;
	struct tn_topology *topo;
	struct tn_edge *edge;
	struct tn_counter *answered, *no_connector, *bad_uid;
};

const struct tn_server_info *
tn_gate_pick(const struct tn_topology *topo, enum tn_dispatch how, const char *uid, size_t len)
{
	const struct tn_server_info *list[1024];
	size_t n = tn_topology_of_type(topo, TN_SERVER_CONNECTOR, list, 1024);
	if (n > 1024)
		n = 1024;
	if (n == 0)
		return NULL;
	if (how == TN_DISPATCH_CRC32)
		return list[tn_hash_pomelo_index(uid, len, (uint32_t)n)];
	uint64_t seeds[1024];
	for (size_t i = 0; i < n; i++)
		seeds[i] = list[i]->seed;
	return list[tn_hash_rendezvous_seeded(uid, len, seeds, n)];
}

static void
query_entry(struct tn_gate *g, struct tn_edge_sess *s, uint32_t id, json_object *body)
{
	size_t len = 0;
	const char *uid = tn_json_get_str(body, "uid", &len);
	if (uid == NULL || len == 0 || len > MAX_UID) {
		/* chatofpomelo's client shows "There is no server to log in" on 500. */
		tn_counter_inc(g->bad_uid);
		static const char bad[] = "{\"code\":500,\"message\":\"uid must be a non-empty string\"}";
		tn_edge_respond(s, id, bad, sizeof(bad) - 1);
		return;
	}
	const struct tn_server_info *conn =
		tn_gate_pick(g->topo, (enum tn_dispatch)g->cfg->dispatch, uid, len);
	if (conn == NULL) {
		tn_counter_inc(g->no_connector);
		static const char none[] = "{\"code\":500,\"message\":\"no connector is available\"}";
		tn_edge_respond(s, id, none, sizeof(none) - 1);
		return;
	}
	/* The host a browser can reach: the connector's public host if it has one, otherwise
	 * the host this client used to reach the gate (they share a machine), otherwise the
	 * connector's advertised internal host. */
	const char *host = conn->client_host;
	if (host == NULL || *host == '\0')
		host = tn_edge_sess_host(s);
	if (host == NULL || *host == '\0')
		host = conn->host;
	struct tn_buf b;
	struct tn_jw w;
	tn_buf_init(&b);
	tn_jw_init(&w, &b);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "code");
	tn_jw_int(&w, 200);
	tn_jw_key(&w, "host");
	tn_jw_cstr(&w, host);
	tn_jw_key(&w, "port");
	tn_jw_int(&w, conn->client_port);
	tn_jw_obj_end(&w);
	tn_edge_respond(s, id, (const char *)b.data, b.len);
	tn_buf_fini(&b);
	tn_counter_inc(g->answered);
}

static void
on_request(void *arg, struct tn_edge_sess *s, uint32_t id, int route, json_object *body,
	const uint8_t *raw, size_t raw_len)
{
	struct tn_gate *g = arg;
	if (id == 0)
		return; /* a notify gets no answer; queryEntry as a notify does nothing */
	if (route == TN_ROUTE_QUERY_ENTRY)
		query_entry(g, s, id, body);
}

int
tn_gate_new(struct tn_gate **out, const struct tn_config *cfg, struct tn_topology *topo)
{
	struct tn_gate *g = tn_calloc(1, sizeof(*g));
	g->cfg = cfg;
	g->topo = topo;
	struct tn_metric_family *fam;
	tn_metrics_family_new(&fam, TN_METRIC_COUNTER, "tern_gate_query_entry_total",
		"queryEntry requests, by outcome", "outcome", NULL, 0);
	g->answered = tn_metrics_counter_labels(fam, "ok");
	g->no_connector = tn_metrics_counter_labels(fam, "no connector");
	g->bad_uid = tn_metrics_counter_labels(fam, "bad uid");
	static const bool served[TN_ROUTE_COUNT_] = {[TN_ROUTE_QUERY_ENTRY] = true};
	struct tn_edge_opts eo = {.cfg = cfg, .routes = tn_app_routes, .nroutes = TN_ROUTE_COUNT_,
		.served = served, .use_dict = false, .metrics_prefix = "tern_gate"};
	static const struct tn_edge_ops ops = {.on_request = on_request};
	int rv = tn_edge_new(&g->edge, &eo, &ops, g);
	if (rv) {
		tn_topology_free(topo);
		free(g);
		return rv;
	}
	*out = g;
	return TN_OK;
}

int
tn_gate_client_port(const struct tn_gate *g)
{
	return tn_edge_port(g->edge);
}

void
tn_gate_run(struct tn_gate *g)
{
	tn_edge_run(g->edge);
}

void
tn_gate_stop(struct tn_gate *g)
{
	tn_edge_stop(g->edge);
}

void
tn_gate_free(struct tn_gate *g)
{
	if (g == NULL)
		return;
	tn_edge_free(g->edge);
	tn_topology_free(g->topo);
	free(g);
}
