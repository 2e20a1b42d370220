/* tern-chat-cli, what is typed or scripted: commands (/w, /who, /quit, /help), the queue
 * of script lines paced by --rate, and chat.chatHandler.send with its answers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "cli_app.h"
#include "clock.h"
#include "err.h"
#include "json.h"

/* A send in flight: the line it came from, put back in the queue if the connection
 * drops before the answer. */
struct send_ctx {
	struct app *app;
	char line[];
};

/* ---- sending ---- */

static void
requeue_front(struct app *app, const char *text)
{
	size_t n = strlen(text);
	struct line *l = tn_malloc(sizeof(*l) + n + 1);
	memcpy(l->text, text, n + 1);
	l->next = app->q_head;
	app->q_head = l;
	if (app->q_tail == NULL)
		app->q_tail = l;
}

static void
on_sent(void *arg, struct tn_cli_client *c, int err, json_object *body)
{
	struct send_ctx *ctx = arg;
	struct app *app = ctx->app;
	int64_t code = 200;
	app->inflight--;
	if (err == TN_OK && !chat_body_failed(body, &code)) {
		app->sent++;
	} else if (err == TN_ECLOSED && app->script && !app->quitting) {
		requeue_front(app, ctx->line); /* sent again after the reconnect */
	} else if (!app->quitting) {
		app->failed_sends++;
		const char *msg = err == TN_OK ? tn_json_get_str(body, "message", NULL) : NULL;
		if (err != TN_OK)
			chat_problem(app, "message not delivered: %s", tn_strerror(err));
		else
			chat_problem(app, "message not delivered: %s (code %lld)",
			        msg ? msg : "refused", (long long)code);
	}
	free(ctx);
	if (!app->quitting) {
		chat_pump(app);
		chat_check_goal(app);
	}
}

/* Sends text to target ("*": the room) as chat.chatHandler.send; line is what to put
 * back in the queue if the connection drops first. Returns false when not sent. */
static bool
send_chat(struct app *app, const char *target, size_t target_len, const char *text, size_t text_len,
        const char *line)
{
	if (text_len > MAX_MESSAGE) {
		chat_problem(
		        app, "message too long (%zu bytes, at most %d)", text_len, MAX_MESSAGE);
		app->failed_sends++;
		return false;
	}
	struct tn_buf body;
	struct tn_jw w;
	tn_buf_init(&body);
	tn_jw_init(&w, &body);
	tn_jw_obj_begin(&w);
	tn_jw_key(&w, "rid");
	tn_jw_cstr(&w, app->o.room);
	tn_jw_key(&w, "content");
	tn_jw_str(&w, text, text_len);
	tn_jw_key(&w, "from");
	tn_jw_cstr(&w, app->o.name);
	tn_jw_key(&w, "target");
	tn_jw_str(&w, target, target_len);
	tn_jw_obj_end(&w);
	size_t n = strlen(line);
	struct send_ctx *ctx = tn_malloc(sizeof(*ctx) + n + 1);
	ctx->app = app;
	memcpy(ctx->line, line, n + 1);
	int rv = tn_cli_request(
	        app->c, ROUTE_SEND, (const char *)body.data, body.len, 0, on_sent, ctx);
	tn_buf_fini(&body);
	if (rv != TN_OK) {
		free(ctx);
		chat_problem(app, "message not sent: %s", tn_strerror(rv));
		app->failed_sends++;
		return false;
	}
	app->inflight++;
	return true;
}

static void
whisper(struct app *app, const struct tn_chat_cmd *cmd, const char *line)
{
	char target[64];
	if (cmd->target_len >= sizeof(target)) {
		chat_problem(app, "no such user name: too long");
		return;
	}
	memcpy(target, cmd->target, cmd->target_len);
	target[cmd->target_len] = '\0';
	if (!send_chat(app, cmd->target, cmd->target_len, cmd->text, cmd->text_len, line))
		return;
	/* The server sends a private message to its target only: echo it, as the page does. */
	if (strcmp(target, app->o.name) != 0) {
		char when[16];
		struct tn_buf b;
		char *text = tn_strndup(cmd->text, cmd->text_len);
		tn_chat_time(when, tn_wall_ms());
		tn_buf_init(&b);
		tn_chat_format_chat(&b, when, app->o.name, target, text, app->o.name);
		tn_buf_append_byte(&b, 0);
		chat_emit_line(app, (const char *)b.data);
		tn_buf_fini(&b);
		free(text);
	}
}

static void
show_users(struct app *app)
{
	struct tn_buf list;
	tn_buf_init(&list);
	tn_chat_users_format(&list, &app->users);
	tn_buf_append_byte(&list, 0);
	chat_reply(
	        app, "users in %s (%zu): %s", app->o.room, app->users.n, (const char *)list.data);
	tn_buf_fini(&list);
}

static void
show_help(struct app *app)
{
	chat_reply(app, "type a line to send it to the room; /w NAME TEXT sends privately; "
	                "/who lists the users; /quit leaves");
}

/* Carries out one typed or scripted line. */
static void
handle_line(struct app *app, const char *line)
{
	struct tn_chat_cmd cmd;
	tn_chat_cmd_parse(&cmd, line);
	bool sends = cmd.type == TN_CHAT_CMD_SAY || cmd.type == TN_CHAT_CMD_WHISPER;
	if (sends && !app->entered) {
		chat_problem(app, "not in the room right now; message not sent");
		return;
	}
	switch (cmd.type) {
	case TN_CHAT_CMD_EMPTY: break;
	case TN_CHAT_CMD_SAY: send_chat(app, "*", 1, cmd.text, cmd.text_len, line); break;
	case TN_CHAT_CMD_WHISPER: whisper(app, &cmd, line); break;
	case TN_CHAT_CMD_WHO: show_users(app); break;
	case TN_CHAT_CMD_HELP: show_help(app); break;
	case TN_CHAT_CMD_QUIT:
		if (app->script) {
			/* The rest of the script is not sent. */
			chat_stop_input(app);
			chat_drop_queue(app);
			app->input_done = true;
			chat_check_goal(app);
		} else {
			chat_quit(app, TN_CHAT_EXIT_OK, NULL);
		}
		break;
	case TN_CHAT_CMD_BAD: chat_problem(app, "usage: /w NAME TEXT"); break;
	case TN_CHAT_CMD_UNKNOWN:
		chat_problem(app, "unknown command %.*s (try /help)", (int)cmd.text_len, cmd.text);
		break;
	}
}

static void
enqueue(struct app *app, const char *text, size_t n)
{
	struct line *l = tn_malloc(sizeof(*l) + n + 1);
	memcpy(l->text, text, n);
	l->text[n] = '\0';
	l->next = NULL;
	if (app->q_tail)
		app->q_tail->next = l;
	else
		app->q_head = l;
	app->q_tail = l;
}

void
chat_drop_queue(struct app *app)
{
	while (app->q_head) {
		struct line *l = app->q_head;
		app->q_head = l->next;
		free(l);
	}
	app->q_tail = NULL;
}

/* Sends queued script lines while in the room, within the rate and in-flight limits. */
void
chat_pump(struct app *app)
{
	while (app->q_head && app->entered && !app->quitting && app->inflight < MAX_INFLIGHT) {
		int64_t now = tn_cli_loop_update_now(app->loop);
		if (now < app->next_send_ms) {
			tn_cli_timer_start_at(app->loop, &app->pace, app->next_send_ms);
			return;
		}
		struct line *l = app->q_head;
		app->q_head = l->next;
		if (app->q_head == NULL)
			app->q_tail = NULL;
		app->next_send_ms = now + (int64_t)(1000.0 / app->o.rate);
		handle_line(app, l->text);
		free(l);
	}
}

void
chat_on_pace(void *arg)
{
	chat_pump(arg);
	chat_check_goal(arg); /* the last line may have been a command, answered at once */
}

/* Exits once the script's goal is reached: every line answered, enough messages. */
void
chat_check_goal(struct app *app)
{
	if (app->interactive || app->quitting || !app->ever_entered)
		return;
	bool sends_done =
	        !app->script || (app->input_done && app->q_head == NULL && app->inflight == 0);
	bool msgs_done = !app->waiting || app->messages >= app->o.wait_messages;
	if (!sends_done || !msgs_done)
		return;
	if (app->failed_sends) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%lu message(s) not delivered", app->failed_sends);
		chat_quit(app, TN_CHAT_EXIT_SEND, msg);
		return;
	}
	chat_quit(app, TN_CHAT_EXIT_OK, "done");
}

/* ---- input ---- */

static void
on_term_line(void *arg, const char *line)
{
	handle_line(arg, line);
}

static void
split_lines(struct app *app, bool eof)
{
	size_t start = 0;
	for (size_t i = 0; i < app->in_buf.len; i++) {
		if (app->in_buf.data[i] == '\n') {
			enqueue(app, (const char *)app->in_buf.data + start, i - start);
			start = i + 1;
		}
	}
	if (eof && start < app->in_buf.len) {
		enqueue(app, (const char *)app->in_buf.data + start, app->in_buf.len - start);
		start = app->in_buf.len;
	}
	tn_buf_consume(&app->in_buf, start);
}

static void
input_eof(struct app *app)
{
	chat_stop_input(app);
	app->input_done = true;
	if (app->interactive)
		chat_quit(app, TN_CHAT_EXIT_OK, NULL);
	else
		chat_check_goal(app);
}

void
chat_on_input(void *arg, unsigned events)
{
	struct app *app = arg;
	uint8_t buf[4096];
	ssize_t n = read(app->in_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (!app->interactive)
			split_lines(app, true);
		input_eof(app);
		chat_pump(app);
		return;
	}
	if (app->interactive) {
		if (tn_cli_term_feed(&app->term, buf, (size_t)n, on_term_line, app))
			chat_quit(app, TN_CHAT_EXIT_OK, NULL);
		return;
	}
	tn_buf_append(&app->in_buf, buf, (size_t)n);
	split_lines(app, false);
	chat_pump(app);
}

/* Reads a regular file at once (epoll cannot watch one); watches anything else. */
int
chat_open_input(struct app *app)
{
	const char *f = app->o.send_file;
	app->in_fd =
	        f == NULL || strcmp(f, "-") == 0 ? STDIN_FILENO : open(f, O_RDONLY | O_CLOEXEC);
	if (app->in_fd < 0) {
		fprintf(stderr, "tern-chat-cli: cannot open %s: %s\n", f, strerror(errno));
		return TN_EIO;
	}
	app->in_owned = app->in_fd != STDIN_FILENO;
	struct stat st;
	bool regular = fstat(app->in_fd, &st) == 0 && S_ISREG(st.st_mode);
	if (!regular) {
		int fl = fcntl(app->in_fd, F_GETFL);
		fcntl(app->in_fd, F_SETFL, fl | O_NONBLOCK);
		if (tn_cli_watch_start(app->loop, &app->in_watch, app->in_fd, TN_CLI_IO_IN,
		            chat_on_input, app) == TN_OK)
			return TN_OK;
		fcntl(app->in_fd, F_SETFL, fl); /* not pollable (/dev/null): read it at once */
	}
	uint8_t buf[65536];
	ssize_t n;
	while ((n = read(app->in_fd, buf, sizeof(buf))) > 0)
		tn_buf_append(&app->in_buf, buf, (size_t)n);
	split_lines(app, true);
	chat_stop_input(app);
	app->input_done = true;
	return TN_OK;
}
