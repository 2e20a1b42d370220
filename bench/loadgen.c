/* tern-loadgen: main, options and usage. See loadgen.h and docs/benchmarks.md. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "loadgen.h"
#include "log.h"

static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
	stop_signal = sig;
}

bool
lg_signalled(void)
{
	return stop_signal != 0;
}

static const char usage_text[] =
        "usage: tern-loadgen SCENARIO [options]\n"
        "\n"
        "Load generator for the tern chat servers: clients connect through the gate\n"
        "(gate.gateHandler.queryEntry), enter rooms (connector.entryHandler.enter) and\n"
        "chat (chat.chatHandler.send). CSV on stdout; '#' lines are events for the\n"
        "driver (bench/run.py); diagnostics on stderr. Every run is bounded by --timeout.\n"
        "\n"
        "Scenarios:\n"
        "  idle    N clients enter rooms and stay idle (heartbeats only) until --hold-s\n"
        "          passes or, with --control, standard input says \"quit\" or closes;\n"
        "          one row: how fast they got in. For reading the servers' memory.\n"
        "  fanout  rooms of --members clients, --senders per room sending to the room at\n"
        "          offered rates (messages/s, all senders together); every member\n"
        "          measures the end-to-end latency of each delivery from the send time\n"
        "          carried in the message. One row per rate step. Standalone: the steps\n"
        "          of --rates, stopping after the first saturated one; with --control:\n"
        "          \"step RATE SECONDS\" lines on standard input, \"quit\" to end.\n"
        "  rtt     --clients clients, each alone in a room, one request at a time:\n"
        "          send -> {} response and send -> own onChat latency, --requests in all,\n"
        "          --interval-ms between a client's requests. Rows: response, push.\n"
        "\n"
        "Options (defaults in brackets):\n"
        "  --host H              gate host [127.0.0.1]\n"
        "  --port P              gate client port [3014]\n"
        "  --clients N           clients in this process [idle 100, fanout 100, rtt 1]\n"
        "  --members M           clients per room [idle 20, fanout 10]\n"
        "  --base B              global index of this process's first client [0]\n"
        "  --prefix S            prefix of user and room names [lg]\n"
        "  --ramp C              connection attempts in progress at once [200]\n"
        "  --timeout S           bound on the whole run, seconds [120]\n"
        "  --request-timeout-ms MS  deadline of each request [10000]\n"
        "  --control             take commands from standard input (idle, fanout)\n"
        "  --hold-s S            idle: seconds to stay connected [10]\n"
        "  --rates LIST          fanout: comma-separated offered messages/s [100,200,500,1000]\n"
        "  --step-s S            fanout: seconds per rate step [5]\n"
        "  --drain-s S           fanout: a step's tail is over after S without a\n"
        "                        delivery (the rest counts as lost) [5]\n"
        "  --size BYTES          fanout: chat content bytes per message [64]\n"
        "  --senders K           fanout: senders per room, 0 = every member [0]\n"
        "  --max-inflight K      fanout: unanswered requests per sender before it skips [16]\n"
        "  --stop-p99-ms MS      fanout: a step with a p99 above this is saturated [1000]\n"
        "  --stop-loss F         fanout: ... or with this fraction lost or not sent [0.01]\n"
        "  --requests N          rtt: recorded requests [1000]\n"
        "  --warmup N            rtt: unrecorded requests first [50]\n"
        "  --interval-ms MS      rtt: pause between a client's requests [0]\n"
        "  --help                this text\n"
        "\n"
        "Exit status: 0 done, 1 a client failed (could not enter, was disconnected, a\n"
        "request failed), 2 bad usage.\n";

enum {
	OPT_HOST = 1,
	OPT_PORT,
	OPT_CLIENTS,
	OPT_MEMBERS,
	OPT_BASE,
	OPT_PREFIX,
	OPT_RAMP,
	OPT_TIMEOUT,
	OPT_REQ_TIMEOUT,
	OPT_CONTROL,
	OPT_HOLD,
	OPT_RATES,
	OPT_STEP,
	OPT_DRAIN,
	OPT_SIZE,
	OPT_SENDERS,
	OPT_INFLIGHT,
	OPT_STOP_P99,
	OPT_STOP_LOSS,
	OPT_REQUESTS,
	OPT_WARMUP,
	OPT_INTERVAL,
	OPT_HELP,
};

static const struct option long_opts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"clients", required_argument, NULL, OPT_CLIENTS},
        {"members", required_argument, NULL, OPT_MEMBERS},
        {"base", required_argument, NULL, OPT_BASE},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"ramp", required_argument, NULL, OPT_RAMP},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"request-timeout-ms", required_argument, NULL, OPT_REQ_TIMEOUT},
        {"control", no_argument, NULL, OPT_CONTROL},
        {"hold-s", required_argument, NULL, OPT_HOLD},
        {"rates", required_argument, NULL, OPT_RATES},
        {"step-s", required_argument, NULL, OPT_STEP},
        {"drain-s", required_argument, NULL, OPT_DRAIN},
        {"size", required_argument, NULL, OPT_SIZE},
        {"senders", required_argument, NULL, OPT_SENDERS},
        {"max-inflight", required_argument, NULL, OPT_INFLIGHT},
        {"stop-p99-ms", required_argument, NULL, OPT_STOP_P99},
        {"stop-loss", required_argument, NULL, OPT_STOP_LOSS},
        {"requests", required_argument, NULL, OPT_REQUESTS},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"interval-ms", required_argument, NULL, OPT_INTERVAL},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
};

/* Parses a whole number in [lo, hi]; false (with a message) otherwise. */
static bool
parse_ll(long long *out, const char *name, const char *s, long long lo, long long hi)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "tern-loadgen: --%s: \"%s\" is not a number in %lld..%lld\n", name,
		        s, lo, hi);
		return false;
	}
	*out = v;
	return true;
}

static bool
parse_int(int *out, const char *name, const char *s, int lo, int hi)
{
	long long v;
	if (!parse_ll(&v, name, s, lo, hi))
		return false;
	*out = (int)v;
	return true;
}

static bool
parse_double(double *out, const char *name, const char *s, double lo, double hi)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || !(v >= lo && v <= hi)) {
		fprintf(stderr, "tern-loadgen: --%s: \"%s\" is not a number in %g..%g\n", name, s,
		        lo, hi);
		return false;
	}
	*out = v;
	return true;
}

static void
set_defaults(struct lg_opts *o)
{
	*o = (struct lg_opts){
	        .host = "127.0.0.1",
	        .port = 3014,
	        .clients = -1,
	        .members = -1,
	        .prefix = "lg",
	        .ramp = 200,
	        .timeout_s = 120,
	        .request_timeout_ms = 10000,
	        .hold_s = 10,
	        .rates = "100,200,500,1000",
	        .step_s = 5,
	        .drain_s = 5,
	        .size = 64,
	        .max_inflight = 16,
	        .stop_p99_ms = 1000,
	        .stop_loss = 0.01,
	        .requests = 1000,
	        .warmup = 50,
	};
}

/* One option; false on a bad value. */
static bool
parse_one(struct lg_opts *o, int c, const char *a)
{
	long long v;
	switch (c) {
	case OPT_HOST: o->host = a; return true;
	case OPT_PORT: return parse_int(&o->port, "port", a, 1, 65535);
	case OPT_CLIENTS: return parse_int(&o->clients, "clients", a, 1, 19000);
	case OPT_MEMBERS: return parse_int(&o->members, "members", a, 1, 100000);
	case OPT_BASE: return parse_int(&o->base, "base", a, 0, 100000000);
	case OPT_PREFIX: o->prefix = a; return strlen(a) <= 16;
	case OPT_RAMP: return parse_int(&o->ramp, "ramp", a, 1, 19000);
	case OPT_TIMEOUT: return parse_double(&o->timeout_s, "timeout", a, 0.1, 86400);
	case OPT_REQ_TIMEOUT:
		if (!parse_ll(&v, "request-timeout-ms", a, 1, 3600000))
			return false;
		o->request_timeout_ms = v;
		return true;
	case OPT_CONTROL: o->control = true; return true;
	case OPT_HOLD: return parse_double(&o->hold_s, "hold-s", a, 0, 86400);
	case OPT_RATES: o->rates = a; return true;
	case OPT_STEP: return parse_double(&o->step_s, "step-s", a, 0.1, 3600);
	case OPT_DRAIN: return parse_double(&o->drain_s, "drain-s", a, 0, 3600);
	case OPT_SIZE: return parse_int(&o->size, "size", a, 0, 4000);
	case OPT_SENDERS: return parse_int(&o->senders, "senders", a, 0, 100000);
	case OPT_INFLIGHT: return parse_int(&o->max_inflight, "max-inflight", a, 1, 100000);
	case OPT_STOP_P99: return parse_double(&o->stop_p99_ms, "stop-p99-ms", a, 0, 1e9);
	case OPT_STOP_LOSS: return parse_double(&o->stop_loss, "stop-loss", a, 0, 1);
	case OPT_REQUESTS: return parse_int(&o->requests, "requests", a, 1, 100000000);
	case OPT_WARMUP: return parse_int(&o->warmup, "warmup", a, 0, 100000000);
	case OPT_INTERVAL:
		if (!parse_ll(&v, "interval-ms", a, 0, 3600000))
			return false;
		o->interval_ms = v;
		return true;
	default: return false;
	}
}

/* Fills scenario-dependent defaults and checks combinations. */
static bool
finish_opts(struct lg_opts *o)
{
	bool fanout = strcmp(o->scenario, "fanout") == 0;
	bool rtt = strcmp(o->scenario, "rtt") == 0;
	if (!fanout && !rtt && strcmp(o->scenario, "idle") != 0) {
		fprintf(stderr, "tern-loadgen: unknown scenario \"%s\"\n", o->scenario);
		return false;
	}
	if (o->clients < 0)
		o->clients = rtt ? 1 : 100;
	if (o->members < 0)
		o->members = fanout ? 10 : 20;
	/* Rooms must not straddle processes: a fanout process expects every member of its
	 * rooms to be its own. */
	if (fanout && (o->clients % o->members != 0 || o->base % o->members != 0)) {
		fprintf(stderr, "tern-loadgen: fanout: --clients and --base must be multiples of "
		                "--members\n");
		return false;
	}
	return true;
}

static int
parse_args(struct lg_opts *o, int argc, char **argv)
{
	set_defaults(o);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return 1;
	if (argc < 2 || argv[1][0] == '-') {
		fputs(usage_text, stderr);
		return 2;
	}
	o->scenario = argv[1];
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		if (c == OPT_HELP)
			return 1;
		if (!parse_one(o, c, optarg)) {
			fprintf(stderr, "tern-loadgen: bad option (see --help)\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tern-loadgen: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	return finish_opts(o) ? 0 : 2;
}

int
main(int argc, char **argv)
{
	struct lg lg = {0};
	int rv = parse_args(&lg.o, argc, argv);
	if (rv == 1) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (rv != 0)
		return 2;
	tn_log_init("loadgen", TN_LOG_WARN);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (tn_cli_loop_new(&lg.loop) != TN_OK) {
		fprintf(stderr, "tern-loadgen: cannot create the event loop\n");
		return 1;
	}
	lg.start_us = tn_now_us();
	lg.deadline_us = lg.start_us + (int64_t)(lg.o.timeout_s * 1e6);
	int status;
	if (strcmp(lg.o.scenario, "idle") == 0)
		status = lg_scen_idle(&lg);
	else if (strcmp(lg.o.scenario, "fanout") == 0)
		status = lg_scen_fanout(&lg);
	else
		status = lg_scen_rtt(&lg);
	if (lg.m)
		lg_pool_fini(&lg);
	tn_cli_loop_free(lg.loop);
	if (lg_signalled())
		fprintf(stderr, "tern-loadgen: stopped by signal %d\n", (int)stop_signal);
	return status;
}
