/* tn_cli_probe: drives libtn_client against the real servers for the integration tests
 * (client/tests/test_*.py start the servers and read what this prints).
 *
 *   tn_cli_probe chat      many clients in rooms: every one enters, sends, and must see
 *                          every message of its room and an onAdd for each later member
 *   tn_cli_probe deadline  a request to a stopped chat server (--stop-pid, SIGSTOP) must
 *                          end with the timeout error at its deadline, once; after
 *                          SIGCONT the next one succeeds
 *   tn_cli_probe idle      stays idle --idle-ms with heartbeats only, then must still be
 *                          connected and able to chat
 *   tn_cli_probe reconnect prints its connector, then waits to be disconnected and to
 *                          come back through the gate, enters again and chats
 *
 * Prints progress lines ("connected PORT", ...) and a final "ok ..." or "FAIL: ...";
 * exits 0 only on success. Test-only code. */
#include <dirent.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "tn_client.h"

struct probe_opts {
	const char *scenario;
	const char *host;
	int port;
	int clients;
	int rooms;
	int messages;
	int ramp;       /* connects in progress at once */
	double timeout; /* seconds for the whole scenario */
	int stop_pid;
	int64_t idle_ms;
	int64_t backoff_max_ms;
	int64_t deadline_ms;
};

struct probe;

struct member {
	struct probe *p;
	struct tn_cli_client *c;
	int index;
	int room;
	char room_name[40];
	char name[32];
	bool connected;
	bool entered;
	bool failed;
	int reconnects;
	int disconnects;
	long chats;   /* onChat received */
	long adds;    /* onAdd received */
	long sent_ok; /* sends answered without error */
	int port;
	struct tn_cli_timer enter_retry;
	int enter_retries;
};

struct outcome;

struct probe {
	struct probe_opts o;
	struct outcome *watch; /* the request run_until waits for (deadline) */
	struct tn_cli_loop *loop;
	struct member *m;
	int started;
	int connected;
	int entered;
	int sends_done;
	int errors;
	char error[512];
	int64_t start_ms;
};

static void fail(struct probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
fail(struct probe *p, const char *fmt, ...)
{
	if (p->errors++ > 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
}

static bool
run_until(struct probe *p, bool (*done)(struct probe *), int64_t ms)
{
	int64_t end = tn_now_ms() + ms;
	while (!done(p) && p->errors == 0 && tn_now_ms() < end)
		tn_cli_loop_run_once(p->loop, 50);
	return done(p);
}

static int64_t
left_ms(const struct probe *p)
{
	int64_t end = p->start_ms + (int64_t)(p->o.timeout * 1000);
	int64_t left = end - tn_now_ms();
	return left > 0 ? left : 0;
}

/* ---- pushes and events ---- */

static void
on_chat(void *arg, struct tn_cli_client *c, const char *route, json_object *body)
{
	struct member *m = arg;
	m->chats++;
}

static void
on_add(void *arg, struct tn_cli_client *c, const char *route, json_object *body)
{
	struct member *m = arg;
	m->adds++;
}

static void send_enter(struct member *m);

static void
on_event(void *arg, struct tn_cli_client *c, const struct tn_cli_event *ev)
{
	struct member *m = arg;
	struct probe *p = m->p;
	switch (ev->type) {
	case TN_CLI_EV_CONNECTED:
		m->connected = true;
		m->port = ev->port;
		if (ev->reconnected) {
			m->reconnects++;
			printf("reconnected %d\n", ev->port);
		} else {
			p->connected++;
		}
		fflush(stdout);
		send_enter(m);
		break;
	case TN_CLI_EV_CONNECT_FAILED:
		printf("retry %s\n", ev->detail);
		fflush(stdout);
		if (ev->retry_in_ms < 0) {
			m->failed = true;
			fail(p, "%s: cannot connect: %s", m->name, ev->detail);
		}
		break;
	case TN_CLI_EV_DISCONNECTED:
		m->connected = false;
		m->entered = false;
		m->disconnects++;
		printf("disconnected %s\n", ev->detail);
		fflush(stdout);
		break;
	case TN_CLI_EV_KICKED:
		printf("kicked %s\n", ev->detail);
		fflush(stdout);
		break;
	case TN_CLI_EV_CLOSED: break;
	}
}

static void
on_enter_retry(void *arg)
{
	struct member *m = arg;
	if (tn_cli_client_is_connected(m->c))
		send_enter(m);
}

static void
on_entered(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct member *m = arg;
	json_object *users;
	if (err == TN_ECLOSED)
		return; /* entered again after the reconnect */
	bool ok = err == TN_OK && json_object_object_get_ex(body, "users", &users);
	/* After a crash of our connector the room may still hold our old session until the
	 * servers notice; the name is free again once they do. */
	if (!ok && err == TN_OK && m->reconnects > 0 && m->enter_retries++ < 40) {
		tn_cli_timer_start(m->p->loop, &m->enter_retry, 250);
		return;
	}
	if (!ok) {
		fail(m->p, "%s: enter failed: %s %s", m->name, tn_strerror(err),
		        body ? json_object_to_json_string(body) : "");
		return;
	}
	if (!m->entered && m->reconnects == 0)
		m->p->entered++;
	m->entered = true;
}

static void
send_enter(struct member *m)
{
	char body[128];
	snprintf(body, sizeof(body), "{\"username\":\"%s\",\"rid\":\"%s\"}", m->name, m->room_name);
	int rv = tn_cli_request(
	        m->c, "connector.entryHandler.enter", body, strlen(body), 0, on_entered, m);
	if (rv != TN_OK)
		fail(m->p, "%s: cannot send enter: %s", m->name, tn_strerror(rv));
}

static void
on_sent(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct member *m = arg;
	int64_t code = 200;
	if (err != TN_OK || (tn_json_get_int(body, "code", &code) && code != 200)) {
		fail(m->p, "%s: send failed: %s code=%lld", m->name, tn_strerror(err),
		        (long long)code);
		return;
	}
	m->sent_ok++;
	m->p->sends_done++;
}

static int
send_chat(struct member *m, const char *text, int64_t timeout_ms, tn_cli_response_fn cb, void *arg)
{
	char body[256];
	snprintf(body, sizeof(body),
	        "{\"rid\":\"%s\",\"content\":\"%s\",\"from\":\"%s\",\"target\":\"*\"}",
	        m->room_name, text, m->name);
	return tn_cli_request(
	        m->c, "chat.chatHandler.send", body, strlen(body), timeout_ms, cb, arg);
}

/* ---- members ---- */

static int
member_start(struct probe *p, int i)
{
	struct member *m = &p->m[i];
	struct tn_cli_opts o;
	m->p = p;
	m->index = i;
	m->room = i % p->o.rooms;
	snprintf(m->name, sizeof(m->name), "p%d", i);
	snprintf(m->room_name, sizeof(m->room_name), "room%d", m->room);
	tn_cli_timer_init(&m->enter_retry, on_enter_retry, m);
	tn_cli_opts_init(&o);
	o.host = p->o.host;
	o.port = p->o.port;
	o.uid = m->name;
	o.connect_timeout_ms = 20000;
	o.request_timeout_ms = 20000;
	o.backoff_initial_ms = 200;
	o.backoff_max_ms = p->o.backoff_max_ms;
	o.max_attempts = 0;
	o.on_event = on_event;
	o.event_arg = m;
	int rv = tn_cli_client_new(&m->c, p->loop, &o);
	if (rv != TN_OK)
		return rv;
	tn_cli_on(m->c, "onChat", on_chat, m);
	tn_cli_on(m->c, "onAdd", on_add, m);
	p->started++;
	return tn_cli_client_connect(m->c);
}

/* Keeps at most ramp connections being set up at once. */
static void
ramp_up(struct probe *p)
{
	while (p->started < p->o.clients && p->started - p->connected < p->o.ramp) {
		if (member_start(p, p->started) != TN_OK) {
			fail(p, "cannot start client %d", p->started);
			return;
		}
	}
}

static bool
all_entered(struct probe *p)
{
	ramp_up(p);
	return p->entered == p->o.clients;
}

static bool
all_sent(struct probe *p)
{
	return p->sends_done == p->o.clients * p->o.messages;
}

/* Every member of a room of n sees n * messages chats; member k of the room (0-based in
 * join order) sees an onAdd for each of the n - 1 - k who joined after it. Members join
 * in index order, since each enters only after the previous ones were started and the
 * test waits for all to enter before anyone sends; onAdd totals are checked per room. */
static bool
all_received(struct probe *p)
{
	for (int i = 0; i < p->o.clients; i++) {
		struct member *m = &p->m[i];
		long in_room = p->o.clients / p->o.rooms + (m->room < p->o.clients % p->o.rooms);
		if (m->chats < in_room * p->o.messages)
			return false;
	}
	return true;
}

static int
check_counts(struct probe *p)
{
	long adds = 0, want_adds = 0;
	for (int r = 0; r < p->o.rooms; r++) {
		long n = p->o.clients / p->o.rooms + (r < p->o.clients % p->o.rooms);
		want_adds += n * (n - 1) / 2;
	}
	for (int i = 0; i < p->o.clients; i++) {
		struct member *m = &p->m[i];
		long in_room = p->o.clients / p->o.rooms + (m->room < p->o.clients % p->o.rooms);
		adds += m->adds;
		if (m->chats != in_room * p->o.messages) {
			fail(p, "%s got %ld chat messages, expected %ld", m->name, m->chats,
			        in_room * p->o.messages);
			return 1;
		}
	}
	if (adds != want_adds) {
		fail(p, "onAdd pushes: %ld, expected %ld", adds, want_adds);
		return 1;
	}
	return 0;
}

static int
scenario_chat(struct probe *p)
{
	if (!run_until(p, all_entered, left_ms(p))) {
		fail(p, "only %d of %d clients entered (%d connected)", p->entered, p->o.clients,
		        p->connected);
		return 1;
	}
	printf("entered %d in %lld ms\n", p->entered, (long long)(tn_now_ms() - p->start_ms));
	fflush(stdout);
	for (int i = 0; i < p->o.clients; i++) {
		for (int k = 0; k < p->o.messages; k++) {
			char text[32];
			snprintf(text, sizeof(text), "m%d-%d", i, k);
			if (send_chat(&p->m[i], text, 0, on_sent, &p->m[i]) != TN_OK) {
				fail(p, "p%d: cannot send", i);
				return 1;
			}
		}
	}
	if (!run_until(p, all_sent, left_ms(p)) || !run_until(p, all_received, left_ms(p))) {
		fail(p, "sends answered %d of %d; not every message arrived", p->sends_done,
		        p->o.clients * p->o.messages);
		check_counts(p);
		return 1;
	}
	/* Anything extra would arrive now. */
	int64_t settle = tn_now_ms() + 300;
	while (tn_now_ms() < settle)
		tn_cli_loop_run_once(p->loop, 50);
	if (check_counts(p))
		return 1;
	for (int i = 0; i < p->o.clients; i++) {
		if (p->m[i].disconnects) {
			fail(p, "%s was disconnected", p->m[i].name);
			return 1;
		}
	}
	printf("ok clients=%d rooms=%d messages=%d elapsed_ms=%lld\n", p->o.clients, p->o.rooms,
	        p->o.messages, (long long)(tn_now_ms() - p->start_ms));
	return 0;
}

/* ---- deadline ---- */

struct outcome {
	int calls;
	int err;
	int64_t at;
};

static void
on_outcome(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct outcome *o = arg;
	o->calls++;
	o->err = err;
	o->at = tn_now_ms();
}

static bool
outcome_known(struct probe *p)
{
	return p->watch->calls > 0;
}

/* True when every thread of pid is in the stopped state ('T' in /proc/.../stat): kill()
 * returns before a busy process has actually stopped. */
static bool
all_stopped(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (d == NULL)
		return false;
	bool stopped = true;
	struct dirent *e;
	while (stopped && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char stat[128], buf[512];
		snprintf(stat, sizeof(stat), "%s/%.20s/stat", path, e->d_name);
		FILE *f = fopen(stat, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = '\0';
		/* "pid (comm) S ...": the state follows the last ')'. */
		const char *rp = strrchr(buf, ')');
		stopped = rp && rp[1] == ' ' && (rp[2] == 'T' || rp[2] == 't');
	}
	closedir(d);
	return stopped;
}

static bool
wait_stopped(int pid, int64_t ms)
{
	int64_t end = tn_now_ms() + ms;
	while (!all_stopped(pid)) {
		if (tn_now_ms() >= end)
			return false;
		usleep(1000);
	}
	return true;
}

static int
scenario_deadline(struct probe *p)
{
	if (!run_until(p, all_entered, left_ms(p)))
		return fail(p, "did not enter"), 1;
	struct member *m = &p->m[0];
	struct outcome first = {0}, second = {0};
	p->watch = &first;
	if (kill(p->o.stop_pid, SIGSTOP) != 0 || !wait_stopped(p->o.stop_pid, 5000))
		return fail(p, "cannot stop pid %d", p->o.stop_pid), 1;
	int64_t t0 = tn_now_ms();
	int rv = send_chat(m, "into-the-void", p->o.deadline_ms, on_outcome, &first);
	if (rv == TN_OK)
		run_until(p, outcome_known, p->o.deadline_ms + 5000);
	int64_t took = first.at - t0;
	/* Give a late answer (the connector's own RPC timeout) the chance to show up. */
	int64_t settle = tn_now_ms() + 4000;
	while (tn_now_ms() < settle)
		tn_cli_loop_run_once(p->loop, 50);
	kill(p->o.stop_pid, SIGCONT);
	struct tn_cli_stats st;
	tn_cli_client_stats(&st, m->c);
	printf("deadline err=%s took_ms=%lld calls=%d late=%llu\n", tn_strerror(first.err),
	        (long long)took, first.calls, (unsigned long long)st.late_responses);
	fflush(stdout);
	if (rv != TN_OK || first.calls != 1 || first.err != TN_ETIMEDOUT)
		return fail(p, "expected exactly one timeout callback"), 1;
	/* Only a logic check (a deadline that fires at once, or long before its time, is a
	 * bug); how late it fires on a loaded machine is printed above, never asserted. */
	if (took < p->o.deadline_ms / 2)
		return fail(p, "timeout after %lld ms, deadline %lld", (long long)took,
		               (long long)p->o.deadline_ms),
		       1;
	/* The chat server is back: a normal request succeeds. */
	p->watch = &second;
	if (send_chat(m, "after", 0, on_outcome, &second) != TN_OK)
		return fail(p, "cannot send after SIGCONT"), 1;
	run_until(p, outcome_known, left_ms(p));
	if (second.calls != 1 || second.err != TN_OK)
		return fail(p, "request after SIGCONT: %s", tn_strerror(second.err)), 1;
	printf("ok deadline_ms=%lld took_ms=%lld\n", (long long)p->o.deadline_ms, (long long)took);
	return 0;
}

/* ---- idle with heartbeats ---- */

/* The echo (a push) and the answer travel different paths: wait for both. */
static bool
got_echo(struct probe *p)
{
	return p->m[0].chats > 0 && p->m[0].sent_ok > 0;
}

static int
scenario_idle(struct probe *p)
{
	if (!run_until(p, all_entered, left_ms(p)))
		return fail(p, "did not enter"), 1;
	struct member *m = &p->m[0];
	int64_t hb = tn_cli_client_heartbeat_ms(m->c);
	printf("heartbeat_ms %lld\n", (long long)hb);
	fflush(stdout);
	if (hb <= 0)
		return fail(p, "the connector asked for no heartbeat"), 1;
	int64_t end = tn_now_ms() + p->o.idle_ms;
	while (tn_now_ms() < end && m->disconnects == 0)
		tn_cli_loop_run_once(p->loop, 100);
	struct tn_cli_stats st;
	tn_cli_client_stats(&st, m->c);
	printf("idle_ms=%lld heartbeats sent=%llu received=%llu disconnects=%d\n",
	        (long long)p->o.idle_ms, (unsigned long long)st.heartbeats_sent,
	        (unsigned long long)st.heartbeats_received, m->disconnects);
	fflush(stdout);
	if (m->disconnects || !tn_cli_client_is_connected(m->c))
		return fail(p, "the session did not survive being idle"), 1;
	if ((int64_t)st.heartbeats_sent < p->o.idle_ms / hb - 1)
		return fail(p, "too few heartbeats sent: %llu",
		               (unsigned long long)st.heartbeats_sent),
		       1;
	if (send_chat(m, "still-here", 0, on_sent, m) != TN_OK || !run_until(p, got_echo, 10000))
		return fail(p, "no chat after the idle time"), 1;
	printf("ok idle\n");
	return 0;
}

/* ---- reconnect ---- */

static bool
back_in_room(struct probe *p)
{
	return p->m[0].reconnects > 0 && p->m[0].entered;
}

static int
scenario_reconnect(struct probe *p)
{
	if (!run_until(p, all_entered, left_ms(p)))
		return fail(p, "did not enter"), 1;
	struct member *m = &p->m[0];
	printf("connected %d\n", m->port);
	fflush(stdout);
	if (!run_until(p, back_in_room, left_ms(p)))
		return fail(p, "did not come back (disconnects=%d reconnects=%d)", m->disconnects,
		               m->reconnects),
		       1;
	long before = m->chats;
	long sent_before = m->sent_ok;
	if (send_chat(m, "back", 0, on_sent, m) != TN_OK)
		return fail(p, "cannot send after the reconnect"), 1;
	/* The echo (a push) and the answer to the send travel different paths and may come in
	 * either order: wait for both, or freeing the client would fail the pending request. */
	int64_t end = tn_now_ms() + 10000;
	while ((m->chats == before || m->sent_ok == sent_before) && p->errors == 0 &&
	        tn_now_ms() < end)
		tn_cli_loop_run_once(p->loop, 50);
	if (m->chats == before || m->sent_ok == sent_before)
		return fail(p, "no echo or no answer after the reconnect"), 1;
	printf("ok reconnect port=%d disconnects=%d enter_retries=%d\n", m->port, m->disconnects,
	        m->enter_retries);
	return 0;
}

/* ---- main ---- */

static int
parse(struct probe_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"host", required_argument, NULL, 'h'},
	        {"port", required_argument, NULL, 'p'},
	        {"clients", required_argument, NULL, 'c'},
	        {"rooms", required_argument, NULL, 'r'},
	        {"messages", required_argument, NULL, 'm'},
	        {"ramp", required_argument, NULL, 'R'},
	        {"timeout", required_argument, NULL, 't'},
	        {"stop-pid", required_argument, NULL, 's'},
	        {"idle-ms", required_argument, NULL, 'i'},
	        {"backoff-max-ms", required_argument, NULL, 'b'},
	        {"deadline-ms", required_argument, NULL, 'd'},
	        {NULL, 0, NULL, 0},
	};
	*o = (struct probe_opts){.host = "127.0.0.1",
	        .port = 3014,
	        .clients = 1,
	        .rooms = 1,
	        .messages = 1,
	        .ramp = 100,
	        .timeout = 60,
	        .idle_ms = 3000,
	        .backoff_max_ms = 1000,
	        .deadline_ms = 500};
	if (argc < 2)
		return -1;
	o->scenario = argv[1];
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h': o->host = optarg; break;
		case 'p': o->port = atoi(optarg); break;
		case 'c': o->clients = atoi(optarg); break;
		case 'r': o->rooms = atoi(optarg); break;
		case 'm': o->messages = atoi(optarg); break;
		case 'R': o->ramp = atoi(optarg); break;
		case 't': o->timeout = atof(optarg); break;
		case 's': o->stop_pid = atoi(optarg); break;
		case 'i': o->idle_ms = atoll(optarg); break;
		case 'b': o->backoff_max_ms = atoll(optarg); break;
		case 'd': o->deadline_ms = atoll(optarg); break;
		default: return -1;
		}
	}
	if (o->clients < 1 || o->rooms < 1 || o->rooms > o->clients || o->ramp < 1 ||
	        o->backoff_max_ms < 200)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct probe p = {0};
	if (parse(&p.o, argc, argv) != 0) {
		fprintf(stderr,
		        "usage: tn_cli_probe chat|deadline|idle|reconnect --host H --port P "
		        "[--clients N --rooms R --messages K --ramp C --timeout S "
		        "--stop-pid PID --idle-ms MS --backoff-max-ms MS --deadline-ms MS]\n");
		return 2;
	}
	tn_log_init("probe", TN_LOG_WARN);
	signal(SIGPIPE, SIG_IGN);
	p.m = tn_calloc((size_t)p.o.clients, sizeof(*p.m));
	if (tn_cli_loop_new(&p.loop) != TN_OK)
		return 1;
	p.start_ms = tn_now_ms();
	int rv;
	if (strcmp(p.o.scenario, "deadline") == 0) {
		rv = scenario_deadline(&p);
	} else if (strcmp(p.o.scenario, "chat") == 0) {
		rv = scenario_chat(&p);
	} else if (strcmp(p.o.scenario, "idle") == 0) {
		rv = scenario_idle(&p);
	} else if (strcmp(p.o.scenario, "reconnect") == 0) {
		rv = scenario_reconnect(&p);
	} else {
		fprintf(stderr, "unknown scenario %s\n", p.o.scenario);
		rv = 2;
	}
	if (rv == 1 || p.errors)
		printf("FAIL: %s\n", p.error);
	for (int i = 0; i < p.started; i++) {
		tn_cli_timer_stop(p.loop, &p.m[i].enter_retry);
		tn_cli_client_free(p.m[i].c);
	}
	tn_cli_loop_free(p.loop);
	free(p.m);
	return p.errors ? 1 : rv;
}
