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
#define MAX_CONNECTORS 1024

struct tn_gate {
	const struct tn_config *cfg;
	struct tn_topology *topo;
	struct tn_edge *edge;
	struct tn_counter *answered, *no_connector, *bad_uid;
};

/* Among list[0..n), the one with the fewest connections. Loads within a tenth of the
 * smallest (at least one connection) count as a tie, and ties go to the rendezvous
 * winner of the uid among the tied: while the connectors are about even a uid keeps its
 * connector (a client that reconnects finds its old one), and new clients still avoid a
 * connector that is clearly busier. Loads are as last reported, so a burst of logins
 * within one heartbeat interval goes where the loads pointed; with even loads the uid
 * hash spreads it. */
static size_t
least_loaded(const struct tn_server_info *const *list, size_t n, const char *uid, size_t len)
{
	uint64_t min = UINT64_MAX;
	for (size_t i = 0; i < n; i++)
		if (list[i]->load.connections < min)
			min = list[i]->load.connections;
	uint64_t slack = min / 10 > 1 ? min / 10 : 1;
	uint64_t seeds[MAX_CONNECTORS];
	size_t at[MAX_CONNECTORS], k = 0;
	for (size_t i = 0; i < n; i++) {
		if (list[i]->load.connections <= min + slack) {
			seeds[k] = list[i]->seed;
			at[k++] = i;
		}
	}
	return at[tn_hash_rendezvous_seeded(uid, len, seeds, k)];
}

const struct tn_server_info *
tn_gate_pick(const struct tn_topology *topo, enum tn_dispatch how, const char *uid, size_t len)
{
	const struct tn_server_info *list[MAX_CONNECTORS];
	size_t n = tn_topology_of_type(topo, TN_SERVER_CONNECTOR, list, MAX_CONNECTORS);
	if (n > MAX_CONNECTORS)
		n = MAX_CONNECTORS;
	if (n == 0)
		return NULL;
	size_t i;
	if (how == TN_DISPATCH_CRC32) {
		i = tn_hash_pomelo_index(uid, len, (uint32_t)n);
	} else if (how == TN_DISPATCH_HASH) {
		uint64_t seeds[MAX_CONNECTORS];
		for (size_t j = 0; j < n; j++)
			seeds[j] = list[j]->seed;
		i = (size_t)tn_hash_rendezvous_seeded(uid, len, seeds, n);
	} else {
		i = least_loaded(list, n, uid, len);
	}
	return list[i];
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

void
tn_gate_set_topology(struct tn_gate *g, struct tn_topology *topo)
{
	tn_topology_free(g->topo);
	g->topo = topo;
}

void
tn_gate_load(struct tn_gate *g, struct tn_server_load *out, uint64_t *messages)
{
	out->connections = tn_edge_connections(g->edge);
	*messages = tn_counter_get(g->answered) + tn_counter_get(g->no_connector) +
		tn_counter_get(g->bad_uid);
}

struct tn_exec
tn_gate_exec(struct tn_gate *g)
{
	return tn_edge_exec(g->edge);
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
		tn_topology_free(g->topo);
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
tn_gate_drain(struct tn_gate *g, int64_t deadline_ms)
{
	tn_edge_drain(g->edge, deadline_ms, NULL, NULL);
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
