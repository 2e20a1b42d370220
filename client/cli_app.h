/* The state of tern-chat-cli shared by its two files: cli.c (start-up, the connection,
 * the room, what is printed, quitting) and cli_input.c (what is typed or scripted:
 * commands, the send queue, sending). One thread: the loop's. */
#ifndef TN_CHAT_CLI_APP_H
#define TN_CHAT_CLI_APP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "chat_text.h"
#include "cli_loop.h"
#include "term.h"
#include "tn_client.h"

#define ROUTE_ENTER "connector.entryHandler.enter"
#define ROUTE_SEND  "chat.chatHandler.send"
/* Sends in flight at once when sending a file. */
#define MAX_INFLIGHT 16
/* Longest message sent; the connector refuses bodies over 16 KiB. */
#define MAX_MESSAGE 8000
/* Re-entering after a reconnect may find our old session not yet gone from the room. */
#define ENTER_RETRIES    10
#define ENTER_RETRY_MS   1000
#define EXIT_INTERRUPTED 130

struct line {
	struct line *next;
	char text[];
};

struct app {
	struct tn_chat_opts o;
	struct tn_cli_loop *loop;
	struct tn_cli_client *c;
	struct tn_cli_term term;
	bool interactive; /* a terminal: line editor, prompt */
	bool script;      /* sending the lines of a file or of standard input */
	bool waiting;     /* --wait-messages */

	bool connected_once;
	bool ever_entered;
	bool entered;
	unsigned enter_retries;
	struct tn_cli_timer enter_retry;
	struct tn_chat_users users;

	int in_fd;
	bool in_owned;
	struct tn_cli_watch in_watch;
	struct tn_buf in_buf;
	bool input_done;
	struct line *q_head, *q_tail;
	unsigned inflight;
	unsigned long sent, failed_sends;
	struct tn_cli_timer pace;
	int64_t next_send_ms;

	long messages;
	struct tn_cli_timer deadline;
	int sig_fd;
	struct tn_cli_watch sig_watch;

	int exit_code;
	bool quitting;
	bool client_closed;
	struct tn_cli_timer quit_guard;
};

/* ---- cli.c ---- */

/* Prints one line: through the line editor when interactive, else on stdout. */
void chat_emit_line(struct app *app, const char *text);

/* A status line ("[12:01:02] * bob joined"); --quiet drops it. */
void chat_status(struct app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The answer to a command the user typed: printed even with --quiet. */
void chat_reply(struct app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A problem: on the screen in interactive mode, on stderr otherwise. */
void chat_problem(struct app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends the program with code (the first reason wins; msg NULL: nothing to say) once the
 * client has closed. */
void chat_quit(struct app *app, int code, const char *msg);

/* Stops reading input and closes the file it came from. */
void chat_stop_input(struct app *app);

/* True when a response body says the request failed ("error" true or a "code" other than
 * 200); writes the code (200 when absent). */
bool chat_body_failed(json_object *body, int64_t *code);

/* ---- cli_input.c ---- */

/* Sends queued script lines while in the room, within --rate and the in-flight bound. */
void chat_pump(struct app *app);

/* Quits once a script's goal is reached: every line answered, enough messages. */
void chat_check_goal(struct app *app);

/* Drops the lines not yet sent. */
void chat_drop_queue(struct app *app);

/* Opens --send-file (or standard input): a regular file (or anything epoll cannot watch)
 * is read at once, anything else is watched. Returns TN_OK or TN_EIO. */
int chat_open_input(struct app *app);

/* The watch callback of standard input (interactive) or the script's descriptor. */
void chat_on_input(void *arg, unsigned events);

/* The --rate timer: sends the next line. */
void chat_on_pace(void *arg);

#endif
