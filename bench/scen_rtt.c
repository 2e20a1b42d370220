/* Scenario rtt: the round trip of one chat.chatHandler.send at low load. o.clients
 * clients, each alone in its own room, each with one request at a time: send, wait for
 * the {} answer and for its own onChat, wait o.interval_ms, send again; o.requests in
 * all (after o.warmup unrecorded ones). Two latencies per request: send -> response
 * (client -> connector -> chat server RPC -> connector -> client) and send -> onChat push
 * (the same way in, out through the chat server's push stream to the connector).
 *
 * Prints two CSV rows, metric "response" and metric "push". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "json.h"
#include "loadgen.h"

struct rtt_client {
	struct rtt *r;
	struct lg_member *m;
	struct tn_cli_timer timer; /* next send, or the wait for a missing push */
	int64_t sent_us;
	int seq; /* of the request out: its content is "rtt.<seq>" */
	bool wait_response;
	bool wait_push;
	bool record; /* past the warm-up */
};

struct rtt {
	struct lg *lg;
	struct rtt_client *cl;
	int issued; /* requests sent, warm-up included */
	int finished;
	uint64_t errors;
	uint64_t missing_pushes;
	struct bench_hist response;
	struct bench_hist push;
};

static void send_next(void *arg);

static void
request_done(struct rtt_client *c)
{
	if (c->wait_response || c->wait_push)
		return;
	struct rtt *r = c->r;
	r->finished++;
	tn_cli_timer_start(r->lg->loop, &c->timer, r->lg->o.interval_ms);
}

static void
on_response(void *arg, struct tn_cli_client *cli, int err, json_object *body)
{
	struct rtt_client *c = arg;
	struct rtt *r = c->r;
	c->m->inflight--;
	if (!c->wait_response)
		return;
	c->wait_response = false;
	if (lg_answer_ok(err, body)) {
		if (c->record)
			bench_hist_record(&r->response, tn_now_us() - c->sent_us);
	} else {
		r->errors++;
		c->wait_push = false; /* nothing will be pushed */
	}
	request_done(c);
}

static void
on_chat(void *arg, struct tn_cli_client *cli, const char *route, json_object *body)
{
	struct lg_member *m = arg;
	struct rtt *r = m->lg->scen;
	struct rtt_client *c = &r->cl[m - m->lg->m];
	const char *msg = tn_json_get_str(body, "msg", NULL);
	/* A late push of an earlier request is not this one's. */
	if (!c->wait_push || msg == NULL || strncmp(msg, "rtt.", 4) != 0 || atoi(msg + 4) != c->seq)
		return;
	c->wait_push = false;
	if (c->record)
		bench_hist_record(&r->push, tn_now_us() - c->sent_us);
	tn_cli_timer_stop(r->lg->loop, &c->timer);
	request_done(c);
}

/* The timer while a request is out: the push did not come within the deadline. */
static void
on_push_deadline(struct rtt_client *c)
{
	c->r->missing_pushes++;
	c->wait_push = false;
	request_done(c);
}

static void
send_next(void *arg)
{
	struct rtt_client *c = arg;
	struct rtt *r = c->r;
	struct lg *lg = r->lg;
	if (c->wait_push) {
		on_push_deadline(c);
		return;
	}
	if (c->wait_response)
		return; /* its own deadline (the library's) will end it */
	if (r->issued >= lg->o.warmup + lg->o.requests)
		return;
	char content[48];
	c->seq = r->issued;
	int n = snprintf(content, sizeof(content), "rtt.%d", c->seq);
	c->record = r->issued >= lg->o.warmup;
	c->sent_us = tn_now_us();
	if (lg_send_chat(c->m, content, (size_t)n, on_response, c) != TN_OK) {
		r->errors++;
		r->issued++;
		r->finished++;
		tn_cli_timer_start(lg->loop, &c->timer, 10);
		return;
	}
	r->issued++;
	c->m->inflight++;
	c->wait_response = true;
	c->wait_push = true;
	/* Armed for the push's deadline; request_done re-arms it for the next send. */
	tn_cli_timer_start(lg->loop, &c->timer, lg->o.request_timeout_ms);
}

static bool
all_finished(struct lg *lg, void *arg)
{
	struct rtt *r = arg;
	return r->finished >= lg->o.warmup + lg->o.requests;
}

static void
print_row(struct rtt *r, const char *metric, const struct bench_hist *h, double secs, double cpu)
{
	struct lg *lg = r->lg;
	lg_out("rtt,%d,%lld,%s,%llu,%.3f,%.1f,%.1f,%lld,%lld,%lld,%lld,%lld,%llu,%llu,%.1f",
	        lg->o.clients, (long long)lg->o.interval_ms, metric, (unsigned long long)h->total,
	        secs, secs > 0 ? (double)h->total / secs : 0.0, bench_hist_mean(h),
	        (long long)bench_hist_percentile(h, 50), (long long)bench_hist_percentile(h, 90),
	        (long long)bench_hist_percentile(h, 99), (long long)bench_hist_percentile(h, 99.9),
	        (long long)bench_hist_percentile(h, 100), (unsigned long long)r->errors,
	        (unsigned long long)r->missing_pushes, cpu);
}

int
lg_scen_rtt(struct lg *lg)
{
	struct rtt *r = tn_calloc(1, sizeof(*r));
	r->lg = lg;
	lg->scen = r;
	lg->on_chat = on_chat;
	lg->o.members = 1; /* each client alone in its room */
	bench_hist_init(&r->response);
	bench_hist_init(&r->push);
	lg_pool_init(lg);
	r->cl = tn_calloc((size_t)lg->o.clients, sizeof(*r->cl));
	for (int i = 0; i < lg->o.clients; i++) {
		r->cl[i].r = r;
		r->cl[i].m = &lg->m[i];
		tn_cli_timer_init(&r->cl[i].timer, send_next, &r->cl[i]);
	}
	int status = 1;
	if (!lg_pool_enter_all(lg))
		goto out;
	int64_t t0 = tn_now_us();
	int64_t cpu0 = lg_cpu_us();
	for (int i = 0; i < lg->o.clients; i++)
		tn_cli_timer_start(lg->loop, &r->cl[i].timer, 0);
	bool done = lg_run_until(lg, lg->deadline_us, all_finished, r);
	double wall = (double)(tn_now_us() - t0);
	double secs = wall / 1e6;
	double cpu = wall > 0 ? 100.0 * (double)(lg_cpu_us() - cpu0) / wall : 0.0;
	lg_out("scenario,clients,interval_ms,metric,count,elapsed_s,rate_per_s,mean_us,p50_us,"
	       "p90_us,p99_us,p999_us,max_us,errors,missing_pushes,client_cpu_pct");
	print_row(r, "response", &r->response, secs, cpu);
	print_row(r, "push", &r->push, secs, cpu);
	if (!done)
		fprintf(stderr, "loadgen: rtt: %d of %d requests finished in time\n", r->finished,
		        lg->o.warmup + lg->o.requests);
	status = done && r->errors == 0 && r->missing_pushes == 0 && lg->disconnects == 0 ? 0 : 1;
out:
	for (int i = 0; i < lg->o.clients; i++)
		tn_cli_timer_stop(lg->loop, &r->cl[i].timer);
	lg_pool_fini(lg);
	free(r->cl);
	free(r);
	return status;
}
