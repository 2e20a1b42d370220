/* tern-loadgen: the load generator of the benchmarks, on libtn_client. One process, one
 * thread, one tn_cli_loop driving every client; bench/run.py spreads larger loads over
 * several processes (the open-file limit is 20000 per process here).
 *
 * This header is the interface between main and options (loadgen.c), the pool of clients
 * that connect through the gate and enter rooms (pool.c), the stdin command reader and
 * process figures (ctl.c), and the scenarios (scen_idle.c, scen_fanout.c, scen_rtt.c).
 *
 * Output: CSV rows on stdout (a header line first); lines starting with '#' are events
 * for the driver ("# ready ...", "# hist ..."), which CSV readers skip as comments.
 * Diagnostics go to stderr. Everything here runs on the one thread. */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "tn_client.h"

struct lg_opts {
	const char *scenario; /* idle, fanout, rtt */
	const char *host;     /* the gate */
	int port;
	int clients;
	int members;        /* clients per room (consecutive global indexes share a room) */
	int base;           /* global index of this process's first client */
	const char *prefix; /* of user and room names, so that runs do not collide */
	int ramp;           /* connection attempts in progress at once */
	double timeout_s;   /* bound on the whole run */
	int64_t request_timeout_ms;
	bool control; /* take commands from standard input */
	/* idle */
	double hold_s;
	/* fanout */
	const char *rates; /* comma-separated messages/s, standalone mode */
	double step_s;
	double drain_s;
	int size;         /* bytes of chat content per message */
	int senders;      /* senders per room; 0: every member */
	int max_inflight; /* requests in flight per sender; more are skipped */
	double stop_p99_ms;
	double stop_loss; /* fraction */
	/* rtt */
	int requests;
	int warmup;
	int64_t interval_ms;
};

struct lg;

struct lg_member {
	struct lg *lg;
	struct tn_cli_client *c;
	int index; /* global */
	char uid[48];
	char room[48];
	int64_t start_us; /* when it started connecting */
	bool entered;
	bool failed;
	unsigned inflight; /* requests of the scenario waiting for their response */
};

/* A line reader on standard input (the driver's commands). */
struct lg_ctl {
	struct tn_cli_watch watch;
	bool watching;
	bool eof;
	char buf[512];
	size_t len;
};

struct lg {
	struct lg_opts o;
	struct tn_cli_loop *loop;
	struct lg_member *m; /* o.clients of them */
	int started;
	int entered;
	int failed;
	uint64_t disconnects;
	uint64_t kicks;
	struct bench_hist connect_us; /* start of connecting -> enter answered */
	int64_t start_us;
	int64_t deadline_us;    /* start + timeout */
	tn_cli_push_fn on_chat; /* the scenario's onChat handler (arg: the member) */
	void *scen;             /* the scenario's state */
	struct lg_ctl ctl;
};

/* ---- pool.c ---- */

/* Creates the clients (not yet connecting) with names from o.prefix and o.base. */
void lg_pool_init(struct lg *lg);

/* Connects every client through the gate and enters its room, at most o.ramp attempts at
 * once, running the loop until all are in, one failed, or the run's deadline passed.
 * Returns true when all entered; prints the reason to stderr otherwise. */
bool lg_pool_enter_all(struct lg *lg);

/* Frees every client (pending callbacks run with TN_ECLOSED); the loop stays. */
void lg_pool_fini(struct lg *lg);

/* Sends chat.chatHandler.send to the member's room with content (len bytes, no JSON
 * escaping needed: the caller sends printable ASCII without quotes or backslashes).
 * Returns tn_cli_request's result; cb runs exactly once when TN_OK. */
int lg_send_chat(
        struct lg_member *m, const char *content, size_t len, tn_cli_response_fn cb, void *arg);

/* True when a request's answer is a success: err TN_OK and no "code" other than 200. */
bool lg_answer_ok(int err, json_object *body);

/* True once SIGINT/SIGTERM arrived or the run's deadline passed. */
bool lg_should_stop(struct lg *lg);

/* Runs the loop until done(arg) holds, until_us (monotonic us) passes, or the run must
 * stop. done may be NULL. Returns done's last answer (false without done). */
bool lg_run_until(
        struct lg *lg, int64_t until_us, bool (*done)(struct lg *lg, void *arg), void *arg);

/* Set by the signal handler in loadgen.c. */
bool lg_signalled(void);

/* ---- ctl.c ---- */

/* Starts reading commands from standard input (when o.control). */
void lg_ctl_start(struct lg *lg);

/* Takes the next complete line (NUL-terminated, without the newline) into line. False
 * when none is waiting. */
bool lg_ctl_next(struct lg *lg, char *line, size_t size);

/* Stops reading. */
void lg_ctl_stop(struct lg *lg);

/* CPU time of this process (user + system), microseconds. */
int64_t lg_cpu_us(void);

/* Resident set size of this process, KiB (0 when unknown). */
long lg_rss_kib(void);

/* Prints a CSV line (the format plus a newline) on stdout and flushes. */
void lg_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- scenarios: each returns the process exit status ---- */

int lg_scen_idle(struct lg *lg);
int lg_scen_fanout(struct lg *lg);
int lg_scen_rtt(struct lg *lg);

#endif
