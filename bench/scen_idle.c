/* Scenario idle: o.clients sessions connect through the gate, enter rooms of o.members,
 * and then stay idle (heartbeats only) so the driver can read the servers' memory.
 *
 * Prints one CSV row once every client is in (how fast they got there), then
 * "# ready ...", then holds until standard input says "quit" or closes (with --control),
 * o.hold_s passes, or a signal. Ends with "# done ..." telling how many sessions were
 * lost during the hold; exit status 0 only when none was. */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "loadgen.h"

static bool
told_to_quit(struct lg *lg, void *arg)
{
	char line[128];
	while (lg_ctl_next(lg, line, sizeof(line))) {
		if (strcmp(line, "quit") == 0)
			return true;
		fprintf(stderr, "loadgen: idle: unknown command \"%s\"\n", line);
	}
	return lg->o.control && lg->ctl.eof;
}

int
lg_scen_idle(struct lg *lg)
{
	lg_pool_init(lg);
	int64_t t0 = tn_now_us();
	bool all_in = lg_pool_enter_all(lg);
	double secs = (double)(tn_now_us() - t0) / 1e6;
	const struct bench_hist *h = &lg->connect_us;
	lg_out("scenario,clients,entered,failed,elapsed_s,enter_per_s,connect_p50_ms,"
	       "connect_p90_ms,connect_p99_ms,connect_max_ms,loadgen_rss_kib,loadgen_cpu_s");
	lg_out("idle,%d,%d,%d,%.3f,%.1f,%.3f,%.3f,%.3f,%.3f,%ld,%.3f", lg->o.clients, lg->entered,
	        lg->failed, secs, secs > 0 ? lg->entered / secs : 0.0,
	        bench_hist_percentile(h, 50) / 1e3, bench_hist_percentile(h, 90) / 1e3,
	        bench_hist_percentile(h, 99) / 1e3, bench_hist_percentile(h, 100) / 1e3,
	        lg_rss_kib(), lg_cpu_us() / 1e6);
	if (!all_in) {
		lg_out("# failed entered=%d failed=%d", lg->entered, lg->failed);
		return 1;
	}
	lg_out("# ready entered=%d", lg->entered);
	lg_ctl_start(lg);
	int64_t hold_until = tn_now_us() + (int64_t)(lg->o.hold_s * 1e6);
	lg_run_until(lg, hold_until, told_to_quit, NULL);
	lg_ctl_stop(lg);
	lg_out("# done entered=%d disconnects=%llu kicks=%llu", lg->entered,
	        (unsigned long long)lg->disconnects, (unsigned long long)lg->kicks);
	return lg->disconnects == 0 && lg->entered == lg->o.clients ? 0 : 1;
}
