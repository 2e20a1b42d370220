/* tern-chat-cli: a terminal chat client on libtn_client.
 *
 * It asks the gate for a connector, enters the room (connector.entryHandler.enter),
 * prints pushes as they arrive (onChat, onAdd, onLeave), and sends what is typed
 * (chat.chatHandler.send). Interactive on a terminal; for scripts it sends the lines of a
 * file or of standard input and/or waits for a number of messages, then exits with a
 * status that says how it went (chat_text.h). After a lost connection it reconnects
 * through the gate and enters the room again.
 *
 * Everything runs on one tn_cli_loop: the client, standard input, signals (signalfd).
 * This file: start-up, the connection and the room, output, quitting; what is typed or
 * scripted is cli_input.c's. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli_app.h"
#include "clock.h"
#include "err.h"
#include "json.h"
#include "log.h"

/* ---- output ---- */

void
chat_emit_line(struct app *app, const char *text)
{
	if (app->interactive) {
		tn_cli_term_print(&app->term, text);
		return;
	}
	fputs(text, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

static void vprint_event(struct app *app, bool always, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void
vprint_event(struct app *app, bool always, const char *fmt, va_list ap)
{
	if (app->o.quiet && !always)
		return;
	char when[16], text[1024];
	tn_chat_time(when, tn_wall_ms());
	vsnprintf(text, sizeof(text), fmt, ap);
	struct tn_buf b;
	tn_buf_init(&b);
	tn_buf_printf(&b, "%s * %s", when, text);
	tn_buf_append_byte(&b, 0);
	chat_emit_line(app, (const char *)b.data);
	tn_buf_fini(&b);
}

/* A status line ("[12:01:02] * bob joined"); --quiet drops it. */
void
chat_status(struct app *app, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint_event(app, false, fmt, ap);
	va_end(ap);
}

/* The answer to a command the user typed: printed even with --quiet. */
void
chat_reply(struct app *app, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint_event(app, true, fmt, ap);
	va_end(ap);
}

/* A problem: on the screen in interactive mode, on stderr otherwise. */
void
chat_problem(struct app *app, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (app->interactive) {
		char when[16], line[1100];
		tn_chat_time(when, tn_wall_ms());
		snprintf(line, sizeof(line), "%s ! %s", when, text);
		tn_cli_term_print(&app->term, line);
	} else {
		fprintf(stderr, "tern-chat-cli: %s\n", text);
	}
}

/* ---- quitting ---- */

void
chat_stop_input(struct app *app)
{
	tn_cli_watch_stop(app->loop, &app->in_watch);
	if (app->in_owned && app->in_fd >= 0)
		close(app->in_fd);
	app->in_fd = -1;
	app->in_owned = false;
}

/* Ends the program with code (the first reason wins) once the client has closed. */
void
chat_quit(struct app *app, int code, const char *msg)
{
	if (app->quitting)
		return;
	app->quitting = true;
	app->exit_code = code;
	if (msg && code == TN_CHAT_EXIT_OK)
		chat_status(app, "%s", msg);
	else if (msg)
		chat_problem(app, "%s", msg);
	tn_cli_timer_stop(app->loop, &app->deadline);
	tn_cli_timer_stop(app->loop, &app->pace);
	tn_cli_timer_stop(app->loop, &app->enter_retry);
	chat_stop_input(app);
	if (app->client_closed) {
		tn_cli_loop_stop(app->loop);
		return;
	}
	tn_cli_client_close(app->c);
	/* A server that never finishes the close must not keep us. */
	tn_cli_timer_start(app->loop, &app->quit_guard, 3000);
}

static void
on_quit_guard(void *arg)
{
	struct app *app = arg;
	tn_cli_loop_stop(app->loop);
}

static void
on_deadline(void *arg)
{
	struct app *app = arg;
	char msg[256];
	snprintf(msg, sizeof(msg),
	        "timeout after %g s: %ld message(s) received%s, %lu line(s) sent", app->o.timeout_s,
	        app->messages, app->waiting ? " so far" : "", app->sent);
	chat_quit(app, TN_CHAT_EXIT_TIMEOUT, msg);
}

/* ---- the room ---- */

static void send_enter(struct app *app);

bool
chat_body_failed(json_object *body, int64_t *code)
{
	json_object *e;
	*code = 200;
	bool has_code = tn_json_get_int(body, "code", code);
	bool error = json_object_object_get_ex(body, "error", &e) && json_object_get_boolean(e);
	return error || (has_code && *code != 200);
}

static void
entered(struct app *app, json_object *body)
{
	json_object *users;
	if (json_object_object_get_ex(body, "users", &users))
		tn_chat_users_set(&app->users, users);
	app->entered = true;
	app->enter_retries = 0;
	struct tn_buf list;
	tn_buf_init(&list);
	tn_chat_users_format(&list, &app->users);
	tn_buf_append_byte(&list, 0);
	chat_status(app, "%s room %s as %s; users: %s", app->ever_entered ? "back in" : "joined",
	        app->o.room, app->o.name, (const char *)list.data);
	tn_buf_fini(&list);
	app->ever_entered = true;
	chat_pump(app);
	chat_check_goal(app);
}

static void
retry_enter(struct app *app, const char *why)
{
	if (app->enter_retries++ >= ENTER_RETRIES) {
		char msg[256];
		snprintf(msg, sizeof(msg), "cannot enter room %s again: %s", app->o.room, why);
		chat_quit(app, TN_CHAT_EXIT_ENTER, msg);
		return;
	}
	tn_cli_timer_start(app->loop, &app->enter_retry, ENTER_RETRY_MS);
}

static void
on_enter(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct app *app = arg;
	int64_t code;
	if (app->quitting || err == TN_ECLOSED)
		return; /* a reconnect enters again */
	if (err != TN_OK) {
		chat_problem(app, "entering the room failed: %s", tn_strerror(err));
		retry_enter(app, tn_strerror(err));
		return;
	}
	if (!chat_body_failed(body, &code)) {
		entered(app, body);
		return;
	}
	const char *msg = tn_json_get_str(body, "message", NULL);
	bool taken = code == 500 && msg == NULL;
	if (taken && app->ever_entered) {
		retry_enter(app, "the name is still taken");
		return;
	}
	char text[256];
	if (taken)
		snprintf(text, sizeof(text), "the name %s is already taken in room %s", app->o.name,
		        app->o.room);
	else
		snprintf(text, sizeof(text), "cannot enter room %s: %s (code %lld)", app->o.room,
		        msg ? msg : "refused", (long long)code);
	chat_quit(app, TN_CHAT_EXIT_ENTER, text);
}

static void
send_enter(struct app *app)
{
	struct tn_buf body;
	struct tn_jw w;
	tn_buf_init(&body);
	tn_jw_init(&w, &body);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "username");
	tn_jw_cstr(&w, app->o.name);
	tn_jw_key(&w, "rid");
	tn_jw_cstr(&w, app->o.room);
	tn_jw_obj_end(&w);
	int rv = tn_cli_request(
	        app->c, ROUTE_ENTER, (const char *)body.data, body.len, 0, on_enter, app);
	if (rv != TN_OK && rv != TN_ECLOSED)
		chat_problem(app, "cannot send the enter request: %s", tn_strerror(rv));
	tn_buf_fini(&body);
}

static void
on_enter_retry(void *arg)
{
	struct app *app = arg;
	if (tn_cli_client_is_connected(app->c) && !app->entered)
		send_enter(app);
}

/* ---- pushes ---- */

static const char *
str_or_empty(json_object *body, const char *key)
{
	const char *s = tn_json_get_str(body, key, NULL);
	return s ? s : "";
}

static void
on_chat(void *arg, struct tn_cli_client *c, const char *route, json_object *body)
{
	struct app *app = arg;
	char when[16];
	struct tn_buf b;
	tn_chat_time(when, tn_wall_ms());
	tn_buf_init(&b);
	tn_chat_format_chat(&b, when, str_or_empty(body, "from"), str_or_empty(body, "target"),
	        str_or_empty(body, "msg"), app->o.name);
	tn_buf_append_byte(&b, 0);
	chat_emit_line(app, (const char *)b.data);
	tn_buf_fini(&b);
	app->messages++;
	chat_check_goal(app);
}

static void
on_member(void *arg, struct tn_cli_client *c, const char *route, json_object *body)
{
	struct app *app = arg;
	const char *user = tn_json_get_str(body, "user", NULL);
	if (user == NULL)
		return;
	struct tn_buf name;
	tn_buf_init(&name);
	tn_chat_sanitize(&name, user, strlen(user));
	tn_buf_append_byte(&name, 0);
	if (strcmp(route, "onAdd") == 0) {
		tn_chat_users_add(&app->users, user);
		chat_status(app, "%s joined", (const char *)name.data);
	} else {
		tn_chat_users_remove(&app->users, user);
		chat_status(app, "%s left", (const char *)name.data);
	}
	tn_buf_fini(&name);
}

/* ---- connection events ---- */

static void
on_event(void *arg, struct tn_cli_client *c, const struct tn_cli_event *ev)
{
	struct app *app = arg;
	char msg[400];
	switch (ev->type) {
	case TN_CLI_EV_CONNECTED:
		chat_status(app, "%s %s:%d", ev->reconnected ? "reconnected to" : "connected to",
		        ev->host, ev->port);
		app->connected_once = true;
		send_enter(app);
		break;
	case TN_CLI_EV_CONNECT_FAILED:
		if (!app->connected_once) {
			snprintf(msg, sizeof(msg), "cannot connect: %s", ev->detail);
			chat_quit(app, TN_CHAT_EXIT_CONNECT, msg);
		} else if (ev->retry_in_ms >= 0) {
			chat_status(app, "reconnect failed: %s; next try in %.1f s", ev->detail,
			        (double)ev->retry_in_ms / 1000);
		}
		break;
	case TN_CLI_EV_KICKED:
		chat_status(
		        app, "kicked by the server: %s", *ev->detail ? ev->detail : "(no reason)");
		break;
	case TN_CLI_EV_DISCONNECTED:
		app->entered = false;
		tn_cli_timer_stop(app->loop, &app->enter_retry);
		if (ev->retry_in_ms >= 0)
			chat_status(app, "disconnected: %s; reconnecting in %.1f s", ev->detail,
			        (double)ev->retry_in_ms / 1000);
		else
			chat_status(app, "disconnected: %s", ev->detail);
		break;
	case TN_CLI_EV_CLOSED:
		app->client_closed = true;
		if (app->quitting) {
			tn_cli_loop_stop(app->loop);
		} else {
			snprintf(msg, sizeof(msg), "connection lost for good: %s", ev->detail);
			chat_quit(app, TN_CHAT_EXIT_CONNECT, msg);
		}
		break;
	}
}

/* ---- signals and setup ---- */

static void
on_signal(void *arg, unsigned events)
{
	struct app *app = arg;
	struct signalfd_siginfo si;
	while (read(app->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGWINCH) {
			if (app->interactive)
				tn_cli_term_resize(&app->term);
		} else {
			chat_quit(app, app->interactive ? TN_CHAT_EXIT_OK : EXIT_INTERRUPTED,
			        app->interactive ? NULL : "interrupted");
		}
	}
}

static int
setup_signals(struct app *app)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGWINCH);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	app->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (app->sig_fd < 0)
		return TN_EIO;
	return tn_cli_watch_start(
	        app->loop, &app->sig_watch, app->sig_fd, TN_CLI_IO_IN, on_signal, app);
}

static int
setup_client(struct app *app)
{
	struct tn_cli_opts co;
	tn_cli_opts_init(&co);
	co.host = app->o.host;
	co.port = app->o.port;
	co.direct = app->o.direct;
	co.uid = app->o.name;
	co.reconnect = app->o.reconnect;
	co.on_event = on_event;
	co.event_arg = app;
	int rv = tn_cli_client_new(&app->c, app->loop, &co);
	if (rv != TN_OK)
		return rv;
	tn_cli_on(app->c, "onChat", on_chat, app);
	tn_cli_on(app->c, "onAdd", on_member, app);
	tn_cli_on(app->c, "onLeave", on_member, app);
	return tn_cli_client_connect(app->c);
}

static int
setup(struct app *app)
{
	int rv = tn_cli_loop_new(&app->loop);
	if (rv != TN_OK)
		return rv;
	tn_cli_timer_init(&app->enter_retry, on_enter_retry, app);
	tn_cli_timer_init(&app->pace, chat_on_pace, app);
	tn_cli_timer_init(&app->deadline, on_deadline, app);
	tn_cli_timer_init(&app->quit_guard, on_quit_guard, app);
	if ((rv = setup_signals(app)) != TN_OK)
		return rv;
	if (app->script && (rv = chat_open_input(app)) != TN_OK)
		return rv;
	if (app->interactive) {
		char prompt[64];
		snprintf(prompt, sizeof(prompt), "%s@%s> ", app->o.name, app->o.room);
		if ((rv = tn_cli_term_start(&app->term, STDIN_FILENO, STDOUT_FILENO, prompt)) !=
		        TN_OK)
			return rv;
		if ((rv = tn_cli_watch_start(app->loop, &app->in_watch, STDIN_FILENO, TN_CLI_IO_IN,
		             chat_on_input, app)) != TN_OK)
			return rv;
		app->in_fd = STDIN_FILENO;
	}
	if (app->o.timeout_s > 0)
		tn_cli_timer_start(app->loop, &app->deadline, (int64_t)(app->o.timeout_s * 1000));
	chat_status(app, "connecting to %s %s:%d as %s", app->o.direct ? "connector" : "gate",
	        app->o.host, app->o.port, app->o.name);
	return setup_client(app);
}

static void
teardown(struct app *app)
{
	tn_cli_client_free(app->c); /* runs the callbacks of sends still in flight */
	app->c = NULL;
	if (app->interactive)
		tn_cli_term_stop(&app->term);
	chat_stop_input(app);
	tn_cli_watch_stop(app->loop, &app->sig_watch);
	if (app->sig_fd >= 0)
		close(app->sig_fd);
	tn_cli_timer_stop(app->loop, &app->enter_retry);
	tn_cli_timer_stop(app->loop, &app->pace);
	tn_cli_timer_stop(app->loop, &app->deadline);
	tn_cli_timer_stop(app->loop, &app->quit_guard);
	chat_drop_queue(app);
	tn_chat_users_fini(&app->users);
	tn_buf_fini(&app->in_buf);
	tn_cli_loop_free(app->loop);
}

int
main(int argc, char **argv)
{
	struct app app = {.in_fd = -1, .sig_fd = -1};
	char err[256];
	if (tn_chat_opts_parse(&app.o, argc, argv, err, sizeof(err)) != TN_OK) {
		fprintf(stderr, "tern-chat-cli: %s\n", err);
		return TN_CHAT_EXIT_USAGE;
	}
	if (app.o.help) {
		fputs(tn_chat_usage(), stdout);
		return TN_CHAT_EXIT_OK;
	}
	tn_log_init("tern-chat-cli", TN_LOG_WARN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	bool tty = isatty(STDIN_FILENO);
	app.waiting = app.o.wait_messages >= 0;
	app.script = app.o.send_file != NULL || (!tty && !app.waiting);
	app.interactive = tty && !app.script && !app.waiting;
	tn_chat_users_init(&app.users);
	tn_buf_init(&app.in_buf);
	if (setup(&app) != TN_OK) {
		fprintf(stderr, "tern-chat-cli: cannot start\n");
		app.exit_code = TN_CHAT_EXIT_CONNECT;
	} else {
		tn_cli_loop_run(app.loop);
	}
	teardown(&app);
	return app.exit_code;
}
