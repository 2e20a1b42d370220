/* Scenario fanout: rooms of o.members clients (all in this process), o.senders of each
 * room sending chat messages to the whole room at an offered rate, in steps of
 * increasing rate. Open loop: messages leave on a 1 ms schedule whatever the answers do,
 * except that a sender with o.max_inflight unanswered requests skips its turn (counted:
 * skipped sends mean the servers no longer keep up).
 *
 * Each message's content carries its step and its send time (CLOCK_MONOTONIC, shared by
 * every process on the machine): "<step>.<us>.xxxx". Every member of the room (the sender
 * too) receives it as onChat, and the receiver records now - send time. After a step's
 * sending window the scenario waits for every answer and for every delivery the
 * acknowledged messages owe (for as long as they keep coming, up to a minute; o.drain_s
 * without progress ends the wait), then prints one CSV row and "# hist step=N
 * lower:count,..." (the latency histogram, for merging across processes).
 *
 * Standalone: the steps of o.rates, stopping after the first saturated one. With
 * --control: "step RATE SECONDS" runs one step; "quit" or end of input finishes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "json.h"
#include "loadgen.h"

#define PAD_MAX     4000
#define DRAIN_MAX_S 60

struct fan_step {
	int index;
	double rate; /* offered messages/s */
	double secs;
	int64_t start_us;
	int64_t end_us;
	uint64_t offered; /* sends due by the schedule */
	uint64_t sent;    /* accepted by the client library */
	uint64_t skipped; /* the sender had max_inflight unanswered */
	uint64_t refused; /* the library refused (not connected, server not reading) */
	uint64_t acked;   /* answered {} */
	uint64_t errors;  /* answered with an error code, or timed out */
	uint64_t delivered;
	uint64_t delivered_in_window;
	uint64_t kicks0;
	uint64_t disconnects0;
	uint64_t stale0;
	int64_t cpu0;
	int64_t drain_us; /* from the end of sending to the last delivery (or giving up) */
	struct bench_hist lat;
};

struct fanout {
	struct lg *lg;
	struct lg_member **senders;
	int nsenders;
	int next_sender;
	int steps;
	struct fan_step step; /* the current or last step */
	uint64_t inflight;
	uint64_t stale;            /* deliveries of an earlier step, after its row was printed */
	uint64_t drain_seen;       /* deliveries + answers at the last progress */
	int64_t drain_progress_us; /* when the drain last saw progress */
	struct tn_cli_timer tick;
	char pad[PAD_MAX + 1];
};

/* ---- receiving ---- */

static void
on_chat(void *arg, struct tn_cli_client *c, const char *route, json_object *body)
{
	struct lg_member *m = arg;
	struct fanout *f = m->lg->scen;
	int64_t now = tn_now_us();
	const char *msg = tn_json_get_str(body, "msg", NULL);
	if (msg == NULL)
		return;
	char *end;
	long step = strtol(msg, &end, 10);
	if (*end != '.')
		return;
	long long sent_us = strtoll(end + 1, &end, 10);
	if (*end != '.')
		return;
	struct fan_step *st = &f->step;
	if (step != st->index) {
		f->stale++;
		return;
	}
	st->delivered++;
	if (now <= st->end_us)
		st->delivered_in_window++;
	bench_hist_record(&st->lat, now - sent_us);
}

/* ---- sending ---- */

static void
on_sent(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct lg_member *m = arg;
	struct fanout *f = m->lg->scen;
	m->inflight--;
	f->inflight--;
	if (lg_answer_ok(err, body)) {
		f->step.acked++;
		return;
	}
	if (f->step.errors++ < 3)
		fprintf(stderr, "loadgen: %s: send failed: %s %s\n", m->uid, tn_strerror(err),
		        body ? json_object_to_json_string(body) : "");
}

static void
send_one(struct fanout *f, int64_t now)
{
	struct fan_step *st = &f->step;
	struct lg_member *m = f->senders[f->next_sender];
	f->next_sender = (f->next_sender + 1) % f->nsenders;
	st->offered++;
	if (!m->entered || m->inflight >= (unsigned)f->lg->o.max_inflight) {
		st->skipped++;
		return;
	}
	char content[64 + PAD_MAX];
	int n = snprintf(content, sizeof(content), "%d.%lld.", st->index, (long long)now);
	int pad = f->lg->o.size - n;
	if (pad > 0) {
		memcpy(content + n, f->pad, (size_t)pad);
		n += pad;
	}
	int rv = lg_send_chat(m, content, (size_t)n, on_sent, m);
	if (rv != TN_OK) {
		st->refused++;
		return;
	}
	st->sent++;
	m->inflight++;
	f->inflight++;
}

static void
on_tick(void *arg)
{
	struct fanout *f = arg;
	struct fan_step *st = &f->step;
	int64_t now = tn_now_us();
	/* The last tick tops the step up to exactly rate x seconds. */
	bool last = now >= st->end_us;
	int64_t elapsed = (last ? st->end_us : now) - st->start_us;
	uint64_t due = (uint64_t)((double)elapsed * st->rate / 1e6 + 0.5);
	while (st->offered < due)
		send_one(f, now);
	if (!last)
		tn_cli_timer_start(f->lg->loop, &f->tick, 1);
}

/* ---- steps ---- */

/* The sending window is over once the tick has made its last round. */
static bool
window_over(struct lg *lg, void *arg)
{
	struct fanout *f = arg;
	return !tn_cli_timer_armed(&f->tick);
}

/* Done when every answer and every owed delivery arrived, or when nothing has arrived for
 * o.drain_s (what is still missing then counts as lost). A saturated step keeps draining
 * for as long as its backlog keeps coming, up to DRAIN_MAX_S. */
static bool
drained(struct lg *lg, void *arg)
{
	struct fanout *f = arg;
	struct fan_step *st = &f->step;
	if (f->inflight == 0 && st->delivered >= st->acked * (uint64_t)lg->o.members)
		return true;
	int64_t now = tn_now_us();
	uint64_t seen = st->delivered + st->acked + st->errors;
	if (seen != f->drain_seen) {
		f->drain_seen = seen;
		f->drain_progress_us = now;
	}
	return now - f->drain_progress_us > (int64_t)(lg->o.drain_s * 1e6);
}

static void
print_header(void)
{
	lg_out("scenario,rooms,members,senders,step,offered_per_s,secs,offered,sent,skipped,"
	       "refused,acked,errors,expected,delivered,lost,delivered_per_s,p50_ms,p90_ms,"
	       "p99_ms,p999_ms,max_ms,mean_ms,client_cpu_pct,kicks,disconnects,stale,drain_s");
}

static void
print_row(struct fanout *f)
{
	struct lg *lg = f->lg;
	struct fan_step *st = &f->step;
	const struct bench_hist *h = &st->lat;
	uint64_t expected = st->acked * (uint64_t)lg->o.members;
	uint64_t lost = expected > st->delivered ? expected - st->delivered : 0;
	int64_t cpu = lg_cpu_us() - st->cpu0;
	double wall = (double)(tn_now_us() - st->start_us);
	lg_out("fanout,%d,%d,%d,%d,%.1f,%.3f,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%.1f,"
	       "%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.1f,%llu,%llu,%llu,%.3f",
	        lg->o.clients / lg->o.members, lg->o.members, f->nsenders, st->index, st->rate,
	        st->secs, (unsigned long long)st->offered, (unsigned long long)st->sent,
	        (unsigned long long)st->skipped, (unsigned long long)st->refused,
	        (unsigned long long)st->acked, (unsigned long long)st->errors,
	        (unsigned long long)expected, (unsigned long long)st->delivered,
	        (unsigned long long)lost, (double)st->delivered_in_window / st->secs,
	        bench_hist_percentile(h, 50) / 1e3, bench_hist_percentile(h, 90) / 1e3,
	        bench_hist_percentile(h, 99) / 1e3, bench_hist_percentile(h, 99.9) / 1e3,
	        bench_hist_percentile(h, 100) / 1e3, bench_hist_mean(h) / 1e3,
	        wall > 0 ? 100.0 * (double)cpu / wall : 0.0,
	        (unsigned long long)(lg->kicks - st->kicks0),
	        (unsigned long long)(lg->disconnects - st->disconnects0),
	        (unsigned long long)(f->stale - st->stale0), (double)st->drain_us / 1e6);
	struct tn_buf b;
	tn_buf_init(&b);
	bench_hist_dump(h, &b);
	printf("# hist step=%d %.*s\n", st->index, (int)b.len, (const char *)b.data);
	fflush(stdout);
	tn_buf_fini(&b);
}

/* Runs one step at rate messages/s for secs, drains, prints its row. Returns true when
 * the step showed saturation (by o.stop_p99_ms and o.stop_loss). */
static bool
run_step(struct fanout *f, double rate, double secs)
{
	struct lg *lg = f->lg;
	struct fan_step *st = &f->step;
	memset(st, 0, sizeof(*st));
	st->index = ++f->steps;
	st->rate = rate;
	st->secs = secs;
	st->kicks0 = lg->kicks;
	st->disconnects0 = lg->disconnects;
	st->stale0 = f->stale;
	st->cpu0 = lg_cpu_us();
	st->start_us = tn_now_us();
	st->end_us = st->start_us + (int64_t)(secs * 1e6);
	tn_cli_timer_start(lg->loop, &f->tick, 0);
	lg_run_until(lg, st->end_us + 1000000, window_over, f);
	tn_cli_timer_stop(lg->loop, &f->tick);
	int64_t drain_start = tn_now_us();
	f->drain_seen = 0;
	f->drain_progress_us = drain_start;
	lg_run_until(lg, drain_start + DRAIN_MAX_S * 1000000, drained, f);
	st->drain_us = tn_now_us() - drain_start;
	print_row(f);
	uint64_t expected = st->acked * (uint64_t)lg->o.members;
	double lost = expected ? 1.0 - (double)st->delivered / (double)expected : 1.0;
	double bad =
	        st->offered ? (double)(st->skipped + st->refused + st->errors) / (double)st->offered
	                    : 0.0;
	return lost > lg->o.stop_loss || bad > lg->o.stop_loss ||
	       bench_hist_percentile(&st->lat, 99) / 1e3 > lg->o.stop_p99_ms ||
	       lg->disconnects > st->disconnects0;
}

static void
run_rates(struct fanout *f)
{
	const char *p = f->lg->o.rates;
	while (*p && !lg_should_stop(f->lg)) {
		char *end;
		double rate = strtod(p, &end);
		if (end == p || rate <= 0) {
			fprintf(stderr, "loadgen: bad rate list at \"%s\"\n", p);
			return;
		}
		if (run_step(f, rate, f->lg->o.step_s)) {
			lg_out("# saturated step=%d rate=%.1f", f->step.index, rate);
			return;
		}
		p = *end == ',' ? end + 1 : end;
	}
}

static bool
have_line(struct lg *lg, void *arg)
{
	return memchr(lg->ctl.buf, '\n', lg->ctl.len) != NULL || lg->ctl.eof;
}

/* Commands: "step RATE SECONDS", "quit". */
static void
run_commands(struct fanout *f)
{
	struct lg *lg = f->lg;
	lg_ctl_start(lg);
	for (;;) {
		char line[128];
		lg_run_until(lg, lg->deadline_us, have_line, NULL);
		if (!lg_ctl_next(lg, line, sizeof(line)))
			break; /* end of input, deadline or signal */
		double rate, secs;
		if (strcmp(line, "quit") == 0)
			break;
		if (sscanf(line, "step %lf %lf", &rate, &secs) == 2 && rate > 0 && secs > 0 &&
		        secs <= 3600)
			run_step(f, rate, secs);
		else
			fprintf(stderr, "loadgen: fanout: bad command \"%s\"\n", line);
	}
	lg_ctl_stop(lg);
}

int
lg_scen_fanout(struct lg *lg)
{
	struct fanout *f = tn_calloc(1, sizeof(*f));
	f->lg = lg;
	lg->scen = f;
	lg->on_chat = on_chat;
	memset(f->pad, 'x', PAD_MAX);
	tn_cli_timer_init(&f->tick, on_tick, f);
	lg_pool_init(lg);
	int per_room = lg->o.senders > 0 ? lg->o.senders : lg->o.members;
	f->senders = tn_calloc((size_t)lg->o.clients, sizeof(*f->senders));
	for (int i = 0; i < lg->o.clients; i++) {
		if (i % lg->o.members < per_room)
			f->senders[f->nsenders++] = &lg->m[i];
	}
	int status = 1;
	if (!lg_pool_enter_all(lg))
		goto out;
	print_header();
	lg_out("# ready entered=%d senders=%d", lg->entered, f->nsenders);
	if (lg->o.control)
		run_commands(f);
	else
		run_rates(f);
	status = lg->disconnects == 0 ? 0 : 1;
out:
	tn_cli_timer_stop(lg->loop, &f->tick);
	lg_pool_fini(lg);
	free(f->senders);
	free(f);
	return status;
}
