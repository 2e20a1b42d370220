/* The load generator's clients: connect through the gate, enter a room, and report what
 * happens to them afterwards (disconnects and kicks are counted, never retried: a
 * benchmark that quietly reconnects would hide the failure it should show). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "json.h"
#include "loadgen.h"

void
lg_pool_init(struct lg *lg)
{
	lg->m = tn_calloc((size_t)lg->o.clients, sizeof(*lg->m));
	for (int i = 0; i < lg->o.clients; i++) {
		struct lg_member *m = &lg->m[i];
		m->lg = lg;
		m->index = lg->o.base + i;
		snprintf(m->uid, sizeof(m->uid), "%su%d", lg->o.prefix, m->index);
		snprintf(m->room, sizeof(m->room), "%sr%d", lg->o.prefix, m->index / lg->o.members);
	}
	bench_hist_init(&lg->connect_us);
}

void
lg_pool_fini(struct lg *lg)
{
	for (int i = 0; i < lg->o.clients; i++)
		tn_cli_client_free(lg->m[i].c);
	free(lg->m);
	lg->m = NULL;
}

bool
lg_should_stop(struct lg *lg)
{
	return lg_signalled() || tn_now_us() >= lg->deadline_us;
}

bool
lg_run_until(struct lg *lg, int64_t until_us, bool (*done)(struct lg *lg, void *arg), void *arg)
{
	for (;;) {
		if (done && done(lg, arg))
			return true;
		int64_t now = tn_now_us();
		if (now >= until_us || lg_should_stop(lg))
			return false;
		/* Short waits: timers wake the loop earlier, and a signal is seen soon. */
		int64_t wait_ms = (until_us - now) / 1000;
		tn_cli_loop_run_once(lg->loop, wait_ms < 20 ? wait_ms : 20);
	}
}

bool
lg_answer_ok(int err, json_object *body)
{
	int64_t code = 200;
	if (err != TN_OK)
		return false;
	return !tn_json_get_int(body, "code", &code) || code == 200;
}

int
lg_send_chat(struct lg_member *m, const char *content, size_t len, tn_cli_response_fn cb, void *arg)
{
	char body[512 + 4096];
	int n = snprintf(body, sizeof(body),
	        "{\"rid\":\"%s\",\"content\":\"%.*s\",\"from\":\"%s\",\"target\":\"*\"}", m->room,
	        (int)len, content, m->uid);
	if (n < 0 || (size_t)n >= sizeof(body))
		return TN_ETOOBIG;
	return tn_cli_request(m->c, "chat.chatHandler.send", body, (size_t)n, 0, cb, arg);
}

/* ---- connecting and entering ---- */

static void
member_failed(struct lg_member *m, const char *what, const char *detail)
{
	if (m->failed)
		return;
	m->failed = true;
	m->lg->failed++;
	/* The first few are enough to see what went wrong. */
	if (m->lg->failed <= 5)
		fprintf(stderr, "loadgen: %s: %s: %s\n", m->uid, what, detail);
}

static void
on_entered(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct lg_member *m = arg;
	json_object *users;
	if (err == TN_OK && json_object_object_get_ex(body, "users", &users)) {
		m->entered = true;
		m->lg->entered++;
		bench_hist_record(&m->lg->connect_us, tn_now_us() - m->start_us);
		return;
	}
	member_failed(m, "enter refused",
	        err == TN_OK ? json_object_to_json_string(body) : tn_strerror(err));
}

static void
send_enter(struct lg_member *m)
{
	char body[160];
	int n = snprintf(
	        body, sizeof(body), "{\"username\":\"%s\",\"rid\":\"%s\"}", m->uid, m->room);
	int rv = tn_cli_request(
	        m->c, "connector.entryHandler.enter", body, (size_t)n, 0, on_entered, m);
	if (rv != TN_OK)
		member_failed(m, "cannot send enter", tn_strerror(rv));
}

static void
on_event(void *arg, struct tn_cli_client *c, const struct tn_cli_event *ev)
{
	struct lg_member *m = arg;
	switch (ev->type) {
	case TN_CLI_EV_CONNECTED: send_enter(m); break;
	case TN_CLI_EV_CONNECT_FAILED:
		if (ev->retry_in_ms < 0)
			member_failed(m, "cannot connect", ev->detail);
		break;
	case TN_CLI_EV_KICKED:
		m->lg->kicks++;
		if (m->lg->kicks <= 5)
			fprintf(stderr, "loadgen: %s kicked: %s\n", m->uid, ev->detail);
		break;
	case TN_CLI_EV_DISCONNECTED:
		if (m->entered) {
			m->entered = false;
			m->lg->entered--;
		}
		m->lg->disconnects++;
		if (m->lg->disconnects <= 5)
			fprintf(stderr, "loadgen: %s disconnected: %s\n", m->uid, ev->detail);
		member_failed(m, "disconnected", ev->detail);
		break;
	case TN_CLI_EV_CLOSED: break;
	}
}

static int
member_start(struct lg *lg, struct lg_member *m)
{
	struct tn_cli_opts o;
	tn_cli_opts_init(&o);
	o.host = lg->o.host;
	o.port = lg->o.port;
	o.uid = m->uid;
	o.connect_timeout_ms = 30000;
	o.request_timeout_ms = lg->o.request_timeout_ms;
	/* Once: a benchmark reports failures instead of papering over them. */
	o.reconnect = false;
	o.max_attempts = 1;
	o.on_event = on_event;
	o.event_arg = m;
	int rv = tn_cli_client_new(&m->c, lg->loop, &o);
	if (rv != TN_OK)
		return rv;
	if (lg->on_chat)
		tn_cli_on(m->c, "onChat", lg->on_chat, m);
	m->start_us = tn_now_us();
	return tn_cli_client_connect(m->c);
}

/* Starts more clients while fewer than o.ramp are on their way in; done when every one
 * entered, or one failed. */
static bool
ramp_done(struct lg *lg, void *arg)
{
	while (lg->started < lg->o.clients && lg->started - lg->entered - lg->failed < lg->o.ramp) {
		struct lg_member *m = &lg->m[lg->started++];
		int rv = member_start(lg, m);
		if (rv != TN_OK)
			member_failed(m, "cannot start", tn_strerror(rv));
	}
	return lg->failed > 0 || lg->entered + lg->failed == lg->o.clients;
}

bool
lg_pool_enter_all(struct lg *lg)
{
	lg_run_until(lg, lg->deadline_us, ramp_done, NULL);
	if (lg->entered == lg->o.clients)
		return true;
	fprintf(stderr, "loadgen: %d of %d clients entered (%d failed, %d started)\n", lg->entered,
	        lg->o.clients, lg->failed, lg->started);
	return false;
}
