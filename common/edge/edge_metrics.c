#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "edge_internal.h"
#include "log.h"

static const char *const bad_names[EDGE_BAD_COUNT_] = {
        [EDGE_BAD_BAD_JSON] = "bad_json",
        [EDGE_BAD_JSON_TOO_DEEP] = "json_too_deep",
        [EDGE_BAD_BODY_NOT_OBJECT] = "body_not_object",
        [EDGE_BAD_BODY_TOO_LARGE] = "body_too_large",
        [EDGE_BAD_UNKNOWN_ROUTE] = "unknown_route",
        [EDGE_BAD_ROUTE_NOT_SERVED] = "route_not_served",
        [EDGE_BAD_UNKNOWN_ROUTE_CODE] = "unknown_route_code",
        [EDGE_BAD_RATE_LIMITED] = "rate_limited",
        [EDGE_BAD_TOO_MANY_PENDING] = "too_many_pending",
        [EDGE_BAD_PACKAGE_TOO_LARGE] = "package_too_large",
        [EDGE_BAD_TEXT_FRAME] = "text_frame",
        [EDGE_BAD_UNKNOWN_PACKAGE] = "unknown_package",
        [EDGE_BAD_TRUNCATED_PACKAGE] = "truncated_package",
        [EDGE_BAD_DATA_BEFORE_ACK] = "data_before_ack",
        [EDGE_BAD_OUT_OF_STATE] = "out_of_state",
        [EDGE_BAD_BAD_MESSAGE] = "bad_message",
        [EDGE_BAD_BAD_MESSAGE_TYPE] = "bad_message_type",
        [EDGE_BAD_BAD_REQUEST_ID] = "bad_request_id",
        [EDGE_BAD_HANDSHAKE_REFUSED] = "handshake_refused",
        [EDGE_BAD_HANDSHAKE_TIMEOUT] = "handshake_timeout",
        [EDGE_BAD_BAD_UPGRADE] = "bad_upgrade",
};

static const char *const close_names[EDGE_CLOSE_COUNT_] = {
        [EDGE_CLOSE_CLIENT] = "client",
        [EDGE_CLOSE_DROPPED] = "dropped",
        [EDGE_CLOSE_KICKED] = "kicked",
        [EDGE_CLOSE_PROTOCOL] = "protocol_error",
        [EDGE_CLOSE_HANDSHAKE_REFUSED] = "handshake_refused",
        [EDGE_CLOSE_HANDSHAKE_TIMEOUT] = "handshake_timeout",
        [EDGE_CLOSE_HEARTBEAT_TIMEOUT] = "heartbeat_timeout",
        [EDGE_CLOSE_SHUTDOWN] = "shutdown",
        [EDGE_CLOSE_IDLE_TIMEOUT] = "idle_timeout",
};

/* Kick reasons of the edge itself, registered up front so they render at zero. */
static const char *const own_kicks[] = {
        TN_PML_KICK_TOO_BIG, "too many requests", "slow consumer", TN_EDGE_KICK_SHUTDOWN};

const char *
edge_bad_name(enum edge_bad c)
{
	return (unsigned)c < EDGE_BAD_COUNT_ ? bad_names[c] : "unknown";
}

const char *
edge_close_name(enum edge_close c)
{
	return (unsigned)c < EDGE_CLOSE_COUNT_ ? close_names[c] : "unknown";
}

/* Registers a family; the names are fixed in the code, so a failure is a programmer
 * error (another module took the name with another type). */
static struct tn_metric_family *
family(enum tn_metric_type type, const char *prefix, const char *suffix, const char *help,
        const char *labels)
{
	char name[128];
	snprintf(name, sizeof(name), "%s_%s", prefix, suffix);
	struct tn_metric_family *fam = NULL;
	if (tn_metrics_family_new(&fam, type, name, help, labels, NULL, 0) != 0) {
		tn_error("edge", "metric name clash name=%s", name);
		abort();
	}
	return fam;
}

static struct tn_counter *
counter(const char *prefix, const char *suffix, const char *help)
{
	char name[128];
	snprintf(name, sizeof(name), "%s_%s", prefix, suffix);
	struct tn_counter *c = NULL;
	if (tn_metrics_counter(&c, name, help) != 0) {
		tn_error("edge", "metric name clash name=%s", name);
		abort();
	}
	return c;
}

static struct tn_gauge *
gauge(const char *prefix, const char *suffix, const char *help)
{
	char name[128];
	snprintf(name, sizeof(name), "%s_%s", prefix, suffix);
	struct tn_gauge *g = NULL;
	if (tn_metrics_gauge(&g, name, help) != 0) {
		tn_error("edge", "metric name clash name=%s", name);
		abort();
	}
	return g;
}

void
edge_metrics_init(struct edge_metrics *m, const char *prefix)
{
	memset(m, 0, sizeof(*m));
	m->connections = gauge(prefix, "connections",
	        "client TCP connections held (WebSocket and HTTP), bounded by max-connections");
	m->sessions =
	        gauge(prefix, "ws_sessions", "WebSocket sessions open, in any protocol state");
	m->accepted = counter(prefix, "connections_accepted_total", "client connections accepted");
	m->refused = counter(prefix, "connections_refused_total",
	        "client connections refused at once because max-connections were open");
	struct tn_metric_family *fam = family(TN_METRIC_COUNTER, prefix, "bad_input_total",
	        "bad client input, by case (docs/protocol-hardening.md)", "case");
	for (int i = 0; i < EDGE_BAD_COUNT_; i++)
		m->bad[i] = tn_metrics_counter_labels(fam, bad_names[i]);
	fam = family(
	        TN_METRIC_COUNTER, prefix, "closes_total", "sessions ended, by reason", "reason");
	for (int i = 0; i < EDGE_CLOSE_COUNT_; i++)
		m->closes[i] = tn_metrics_counter_labels(fam, close_names[i]);
	fam = family(TN_METRIC_COUNTER, prefix, "messages_in_total",
	        "requests and notifies received", "type");
	m->in_request = tn_metrics_counter_labels(fam, "request");
	m->in_notify = tn_metrics_counter_labels(fam, "notify");
	fam = family(TN_METRIC_COUNTER, prefix, "messages_out_total",
	        "responses and pushes queued to clients", "type");
	m->out_response = tn_metrics_counter_labels(fam, "response");
	m->out_push = tn_metrics_counter_labels(fam, "push");
	m->bytes_in = counter(prefix, "bytes_in_total", "WebSocket payload bytes received");
	m->bytes_out = counter(prefix, "bytes_out_total", "WebSocket payload bytes sent");
	m->frames_out = counter(prefix, "frames_out_total",
	        "WebSocket messages sent (each holds one or more whole packages)");
	m->kicks = family(
	        TN_METRIC_COUNTER, prefix, "kicks_total", "sessions kicked, by reason", "reason");
	m->kick_other = tn_metrics_counter_labels(m->kicks, "other");
	for (size_t i = 0; i < sizeof(own_kicks) / sizeof(own_kicks[0]); i++)
		edge_metrics_kick(m, own_kicks[i]);
}

void
edge_metrics_fini(struct edge_metrics *m)
{
	for (int i = 0; i < m->n_kick_cache; i++)
		free(m->kick_cache[i].reason);
	m->n_kick_cache = 0;
}

struct tn_counter *
edge_metrics_kick(struct edge_metrics *m, const char *reason)
{
	for (int i = 0; i < m->n_kick_cache; i++)
		if (strcmp(m->kick_cache[i].reason, reason) == 0)
			return m->kick_cache[i].c;
	/* Reasons come from the code, so the set is small; a bound keeps it so anyway. */
	if (m->n_kick_cache == EDGE_KICK_CACHE)
		return m->kick_other;
	struct tn_counter *c = tn_metrics_counter_labels(m->kicks, reason);
	m->kick_cache[m->n_kick_cache].reason = tn_strdup(reason);
	m->kick_cache[m->n_kick_cache].c = c;
	m->n_kick_cache++;
	return c;
}
