/* The text side of the terminal chat client (tern-chat-cli): command-line options, name
 * and room validation, input line commands, the room's user list, and the formatting of
 * what is printed. Pure functions and plain data; no I/O. One thread. */
#ifndef TN_CHAT_TEXT_H
#define TN_CHAT_TEXT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Exit statuses of tern-chat-cli. */
enum tn_chat_exit {
	TN_CHAT_EXIT_OK = 0,
	TN_CHAT_EXIT_CONNECT = 1, /* could not connect, or gave up reconnecting */
	TN_CHAT_EXIT_ENTER = 2,   /* the room refused us (name taken, invalid) */
	TN_CHAT_EXIT_TIMEOUT = 3, /* --timeout passed before the goal was reached */
	TN_CHAT_EXIT_SEND = 4,    /* some message could not be sent */
	TN_CHAT_EXIT_USAGE = 64,  /* bad command line */
};

struct tn_chat_opts {
	const char *host; /* the gate (or connector with direct) */
	int port;
	const char *name;
	const char *room;
	const char *send_file; /* NULL: none; "-": standard input */
	long wait_messages;    /* onChat messages to wait for; -1: none */
	double timeout_s;      /* 0: none */
	double rate;           /* lines sent per second at most */
	bool quiet;            /* print chat messages only */
	bool direct;           /* host:port is a connector */
	bool reconnect;
	bool help;
};

/* Parses argv (getopt_long; resets its state first). Returns TN_OK, or TN_EINVAL with a
 * one-line reason in err. --help sets o->help and skips the checks of required
 * options. argv's strings are borrowed by o. */
int tn_chat_opts_parse(struct tn_chat_opts *o, int argc, char **argv, char *err, size_t errlen);

/* The --help text. */
const char *tn_chat_usage(void);

/* True for 1 to 20 characters from [A-Za-z0-9_] and U+4E00..U+9FA5, the rule of the
 * chatofpomelo page for names and rooms. */
bool tn_chat_name_valid(const char *s);

enum tn_chat_cmd_type {
	TN_CHAT_CMD_EMPTY = 0,   /* nothing but spaces */
	TN_CHAT_CMD_SAY = 1,     /* text to the room ("//x" says "/x") */
	TN_CHAT_CMD_WHISPER = 2, /* /w name text */
	TN_CHAT_CMD_WHO = 3,     /* /who */
	TN_CHAT_CMD_QUIT = 4,    /* /quit */
	TN_CHAT_CMD_HELP = 5,    /* /help */
	TN_CHAT_CMD_BAD = 6,     /* /w without a name and text */
	TN_CHAT_CMD_UNKNOWN = 7, /* another /command */
};

/* A parsed input line; views into the line. */
struct tn_chat_cmd {
	enum tn_chat_cmd_type type;
	const char *target; /* WHISPER: the name */
	size_t target_len;
	const char *text; /* SAY, WHISPER: the message; UNKNOWN: the command */
	size_t text_len;
};

/* Parses a typed or scripted line (a trailing CR or LF is ignored). */
void tn_chat_cmd_parse(struct tn_chat_cmd *out, const char *line);

/* The room's members, in the order the server gave them. */
struct tn_chat_users {
	char **names;
	size_t n;
	size_t cap;
};

void tn_chat_users_init(struct tn_chat_users *u);
void tn_chat_users_fini(struct tn_chat_users *u);
void tn_chat_users_clear(struct tn_chat_users *u);
/* Adds name (copied) unless present; returns true when added. */
bool tn_chat_users_add(struct tn_chat_users *u, const char *name);
/* Removes name; returns true when it was there. */
bool tn_chat_users_remove(struct tn_chat_users *u, const char *name);
bool tn_chat_users_has(const struct tn_chat_users *u, const char *name);
/* Replaces the list with the strings of a JSON array (other elements are skipped).
 * Returns false, leaving the list unchanged, when arr is not an array. */
bool tn_chat_users_set(struct tn_chat_users *u, json_object *arr);
/* Appends "alice, bob" to out. */
void tn_chat_users_format(struct tn_buf *out, const struct tn_chat_users *u);

/* Appends s (len bytes) with every control character that could drive the terminal
 * (C0 but tab, DEL, and the C1 range U+0080..U+009F) replaced by '?'. For text from
 * other users. */
void tn_chat_sanitize(struct tn_buf *out, const char *s, size_t len);

/* "[12:01:02]" for wall-clock milliseconds (local time). */
void tn_chat_time(char out[16], int64_t wall_ms);

/* Appends the line for an onChat message to out: "[t] from: msg", "[t] [private] from:
 * msg" when it was sent to me alone, "[t] [private to target] from: msg" for my own
 * private message. Every field is sanitized. */
void tn_chat_format_chat(struct tn_buf *out, const char *time, const char *from, const char *target,
        const char *msg, const char *me);

#endif
