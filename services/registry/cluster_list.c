#include "cluster_list.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "json.h"
#include "membership.h"
#include "proto.h"
#include "registry.h"
#include "rpc.h"

#define LIST_MAX_MSG (16u << 20)
#define N_COLS 10

static const char *const headers[N_COLS] = {"ID", "TYPE", "STATE", "ADDRESS", "CLIENT", "PID",
	"UPTIME", "LOAD", "RSS", "MSG/S"};
/* Numbers line up on the right. */
static const bool right_aligned[N_COLS] = {false, false, false, false, false, true, true, false,
	true, true};

/* "tcp://host:port" for host:port; a URL is taken as it is. */
static int
registry_url(char *out, size_t len, const char *registry)
{
	if (strstr(registry, "://") != NULL) {
		int n = snprintf(out, len, "%s", registry);
		return n < 0 || (size_t)n >= len ? TN_EINVAL : TN_OK;
	}
	const char *colon = strrchr(registry, ':');
	if (colon == NULL || colon == registry || colon[1] == '\0')
		return TN_EINVAL;
	char host[256];
	snprintf(host, sizeof(host), "%.*s", (int)(colon - registry), registry);
	return tn_nng_url(out, len, host, atoi(colon + 1));
}

/* One request, one reply, on a socket of its own. */
static int
ask(nng_msg **reply, const char *url, int timeout_ms, const struct tn_buf *req)
{
	nng_socket s;
	int rv = nng_req0_open(&s);
	if (rv != 0)
		return tn_err_from_nng(rv);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, LIST_MAX_MSG);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	/* Non-blocking dial: the send waits (up to the timeout) for the connection. */
	rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	if (rv == 0)
		rv = nng_send(s, req->data, req->len, 0);
	if (rv == 0)
		rv = nng_recvmsg(s, reply, 0);
	nng_close(s);
	return rv == NNG_ETIMEDOUT ? TN_ETIMEDOUT : tn_err_from_nng(rv);
}

int
tn_cluster_list_fetch(struct tn_topology **out, bool *recovering, const char *registry,
	int timeout_ms, char *err, size_t elen)
{
	char url[320];
	if (registry_url(url, sizeof(url), registry) != TN_OK) {
		snprintf(err, elen, "\"%s\" is not host:port", registry);
		return TN_EINVAL;
	}
	/* Epoch 0: a registry in its quiet period answers those who hold no membership. */
	struct tn_reg_snapshot_req q = {TN_STR(""), 0, 0};
	struct tn_buf b;
	tn_buf_init(&b);
	tn_reg_snapshot_req_encode(&b, &q);
	nng_msg *reply = NULL;
	int rv = ask(&reply, url, timeout_ms, &b);
	tn_buf_fini(&b);
	if (rv != TN_OK) {
		snprintf(err, elen, "no answer from the registry at %s: %s", url,
			rv == TN_ETIMEDOUT ? "timed out" : tn_strerror(rv));
		return rv;
	}
	struct tn_reg_ack ack;
	rv = tn_membership_decode_snapshot(out, recovering, nng_msg_body(reply), nng_msg_len(reply));
	if (rv == TN_OK) {
		nng_msg_free(reply);
		return TN_OK;
	}
	if (tn_reg_ack_decode(&ack, nng_msg_body(reply), nng_msg_len(reply), NULL) == TN_OK &&
		ack.code != TN_OK) {
		snprintf(err, elen, "the registry refused: %.*s (%s)", (int)ack.reason.len,
			ack.reason.p, tn_strerror(ack.code));
		rv = ack.code;
	} else {
		snprintf(err, elen, "the registry's answer is not a membership: %s", tn_strerror(rv));
	}
	nng_msg_free(reply);
	return rv;
}

void
tn_cluster_list_duration(char *out, size_t len, uint64_t ms)
{
	uint64_t s = ms / 1000;
	if (s >= 86400)
		snprintf(out, len, "%llud%02lluh", (unsigned long long)(s / 86400),
			(unsigned long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(out, len, "%lluh%02llum", (unsigned long long)(s / 3600),
			(unsigned long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(out, len, "%llum%02llus", (unsigned long long)(s / 60),
			(unsigned long long)(s % 60));
	else
		snprintf(out, len, "%llus", (unsigned long long)s);
}

/* host:port, with an IPv6 host in brackets; "*" for an empty host (clients are told the
 * host they reached the gate by). */
static void
host_port(char *out, size_t len, const char *host, int port)
{
	const char *h = *host ? host : "*";
	if (strchr(h, ':'))
		snprintf(out, len, "[%s]:%d", h, port);
	else
		snprintf(out, len, "%s:%d", h, port);
}

static void
load_cell(char *out, size_t len, const struct tn_server_info *s)
{
	switch (s->type) {
	case TN_SERVER_CHAT:
		snprintf(out, len, "%llu rooms", (unsigned long long)s->load.rooms);
		break;
	case TN_SERVER_REGISTRY:
		snprintf(out, len, "%llu servers", (unsigned long long)s->load.connections);
		break;
	default:
		snprintf(out, len, "%llu conns", (unsigned long long)s->load.connections);
		break;
	}
}

/* The cells of one server's line. */
static void
row_cells(char cells[N_COLS][160], const struct tn_server_info *s)
{
	snprintf(cells[0], 160, "%s", s->id);
	snprintf(cells[1], 160, "%s", tn_server_type_name(s->type));
	/* A draining server still serves, but owns no new rooms. */
	snprintf(cells[2], 160, "%s", s->draining ? "draining" : "up");
	if (s->port > 0)
		host_port(cells[3], 160, s->host, s->port);
	else
		snprintf(cells[3], 160, "%s", s->host);
	if (s->type == TN_SERVER_GATE || s->type == TN_SERVER_CONNECTOR)
		host_port(cells[4], 160, s->client_host, s->client_port);
	else
		snprintf(cells[4], 160, "-");
	if (s->pid > 0)
		snprintf(cells[5], 160, "%d", s->pid);
	else
		snprintf(cells[5], 160, "-");
	tn_cluster_list_duration(cells[6], 160, s->load.uptime_ms);
	load_cell(cells[7], 160, s);
	if (s->load.rss_bytes > 0)
		snprintf(cells[8], 160, "%.1fM", (double)s->load.rss_bytes / (1024.0 * 1024.0));
	else
		snprintf(cells[8], 160, "-");
	snprintf(cells[9], 160, "%.1f", (double)s->load.msgs_milli / 1000.0);
}

static void
append_row(struct tn_buf *out, char cells[N_COLS][160], const size_t *width)
{
	for (int c = 0; c < N_COLS; c++) {
		int w = (int)width[c];
		const char *sep = c + 1 < N_COLS ? "  " : "\n";
		if (c + 1 == N_COLS && !right_aligned[c])
			tn_buf_printf(out, "%s%s", cells[c], sep); /* no trailing blanks */
		else
			tn_buf_printf(out, right_aligned[c] ? "%*s%s" : "%-*s%s", w, cells[c], sep);
	}
}

void
tn_cluster_list_table(struct tn_buf *out, const struct tn_topology *t, bool recovering)
{
	size_t per_type[TN_SERVER_TYPE_COUNT_] = {0};
	for (size_t i = 0; i < t->n; i++)
		per_type[t->servers[i].type]++;
	tn_buf_printf(out, "epoch %llu, %zu servers (%zu registry, %zu gate, %zu connector, "
			   "%zu chat), registry incarnation %llu\n",
		(unsigned long long)t->version, t->n, per_type[TN_SERVER_REGISTRY],
		per_type[TN_SERVER_GATE], per_type[TN_SERVER_CONNECTOR], per_type[TN_SERVER_CHAT],
		(unsigned long long)t->registry_inc);
	if (recovering)
		tn_buf_printf(out, "the registry started recently and is waiting for servers to "
				   "re-register: the list may be incomplete\n");
	size_t width[N_COLS];
	for (int c = 0; c < N_COLS; c++)
		width[c] = strlen(headers[c]);
	char(*cells)[N_COLS][160] = tn_calloc(t->n ? t->n : 1, sizeof(*cells));
	for (size_t i = 0; i < t->n; i++) {
		row_cells(cells[i], &t->servers[i]);
		for (int c = 0; c < N_COLS; c++)
			if (strlen(cells[i][c]) > width[c])
				width[c] = strlen(cells[i][c]);
	}
	char head[N_COLS][160];
	for (int c = 0; c < N_COLS; c++)
		snprintf(head[c], sizeof(head[c]), "%s", headers[c]);
	append_row(out, head, width);
	for (size_t i = 0; i < t->n; i++)
		append_row(out, cells[i], width);
	free(cells);
}

static void
json_server(struct tn_jw *w, const struct tn_server_info *s)
{
	tn_jw_obj_begin(w);
	tn_jw_key(w, "id");
	tn_jw_cstr(w, s->id);
	tn_jw_key(w, "type");
	tn_jw_cstr(w, tn_server_type_name(s->type));
	tn_jw_key(w, "draining");
	tn_jw_bool(w, s->draining);
	tn_jw_key(w, "host");
	tn_jw_cstr(w, s->host);
	tn_jw_key(w, "port");
	tn_jw_int(w, s->port);
	tn_jw_key(w, "bind_host");
	tn_jw_cstr(w, s->bind_host);
	tn_jw_key(w, "client_host");
	tn_jw_cstr(w, s->client_host);
	tn_jw_key(w, "client_port");
	tn_jw_int(w, s->client_port);
	tn_jw_key(w, "client_bind_host");
	tn_jw_cstr(w, s->client_bind_host);
	tn_jw_key(w, "admin_host");
	tn_jw_cstr(w, s->admin_host);
	tn_jw_key(w, "admin_port");
	tn_jw_int(w, s->admin_port);
	tn_jw_key(w, "pid");
	tn_jw_int(w, s->pid);
	tn_jw_key(w, "version");
	tn_jw_cstr(w, s->version);
	tn_jw_key(w, "incarnation");
	tn_jw_int(w, (int64_t)s->incarnation);
	tn_jw_key(w, "uptime_ms");
	tn_jw_int(w, (int64_t)s->load.uptime_ms);
	tn_jw_key(w, "connections");
	tn_jw_int(w, (int64_t)s->load.connections);
	tn_jw_key(w, "sessions");
	tn_jw_int(w, (int64_t)s->load.sessions);
	tn_jw_key(w, "rooms");
	tn_jw_int(w, (int64_t)s->load.rooms);
	tn_jw_key(w, "members");
	tn_jw_int(w, (int64_t)s->load.members);
	char rate[32];
	snprintf(rate, sizeof(rate), "%.3f", (double)s->load.msgs_milli / 1000.0);
	tn_jw_key(w, "msgs_per_s");
	tn_jw_raw(w, rate, strlen(rate));
	tn_jw_key(w, "rss_bytes");
	tn_jw_int(w, (int64_t)s->load.rss_bytes);
	tn_jw_obj_end(w);
}

void
tn_cluster_list_json(struct tn_buf *out, const struct tn_topology *t, bool recovering)
{
	struct tn_jw w;
	tn_jw_init(&w, out);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "epoch");
	tn_jw_int(&w, (int64_t)t->version);
	tn_jw_key(&w, "registry_incarnation");
	tn_jw_int(&w, (int64_t)t->registry_inc);
	tn_jw_key(&w, "recovering");
	tn_jw_bool(&w, recovering);
	tn_jw_key(&w, "servers");
	tn_jw_arr_begin(&w);
	for (size_t i = 0; i < t->n; i++)
		json_server(&w, &t->servers[i]);
	tn_jw_arr_end(&w);
	tn_jw_obj_end(&w);
	tn_buf_append_byte(out, '\n');
}
