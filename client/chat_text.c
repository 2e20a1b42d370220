#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "chat_text.h"
#include "err.h"

/* ---- options ---- */

const char *
tn_chat_usage(void)
{
	return "usage: tern-chat-cli --name NAME --room ROOM [options]\n"
	       "\n"
	       "Chats in ROOM as NAME through the tern gate (pomelo's chat protocol).\n"
	       "Interactive on a terminal: type a line to send it to the room,\n"
	       "  /w NAME TEXT  private message     /who   users in the room\n"
	       "  /quit         leave               /help  this list\n"
	       "\n"
	       "options:\n"
	       "  --host HOST          gate host (default 127.0.0.1)\n"
	       "  --port PORT          gate port (default 3014)\n"
	       "  --direct             HOST:PORT is a connector: skip the gate\n"
	       "  --send-file FILE     send each line of FILE (- for standard input), then exit\n"
	       "  --wait-messages M    exit once M chat messages arrived (--count M: the same)\n"
	       "  --timeout S          give up after S seconds (exit status 3)\n"
	       "  --rate R             send at most R lines per second (default 20)\n"
	       "  --no-reconnect       exit when the connection is lost\n"
	       "  --quiet              print chat messages only\n"
	       "  --help               this text\n"
	       "\n"
	       "Without a terminal on standard input and without --send-file or\n"
	       "--wait-messages, standard input is sent line by line.\n"
	       "Exit status: 0 done, 1 cannot connect or connection lost for good, 2 the room\n"
	       "refused the name, 3 timeout, 4 a message was not delivered, 64 usage.\n";
}

static int bad(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int
bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return TN_EINVAL;
}

static bool
parse_double(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || !(v >= 0) || v > 1e9)
		return false;
	*out = v;
	return true;
}

static bool
parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

enum opt_id {
	OPT_HOST = 1,
	OPT_PORT,
	OPT_NAME,
	OPT_ROOM,
	OPT_SEND_FILE,
	OPT_WAIT,
	OPT_TIMEOUT,
	OPT_RATE,
	OPT_QUIET,
	OPT_DIRECT,
	OPT_NO_RECONNECT,
	OPT_HELP,
};

static const struct option long_opts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"name", required_argument, NULL, OPT_NAME},
        {"room", required_argument, NULL, OPT_ROOM},
        {"send-file", required_argument, NULL, OPT_SEND_FILE},
        {"wait-messages", required_argument, NULL, OPT_WAIT},
        {"count", required_argument, NULL, OPT_WAIT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"rate", required_argument, NULL, OPT_RATE},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"direct", no_argument, NULL, OPT_DIRECT},
        {"no-reconnect", no_argument, NULL, OPT_NO_RECONNECT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
};

/* Applies one option; returns TN_OK or TN_EINVAL with err filled. */
static int
apply(struct tn_chat_opts *o, int id, const char *arg, char *err, size_t errlen)
{
	long v;
	switch (id) {
	case OPT_HOST: o->host = arg; break;
	case OPT_PORT:
		if (!parse_long(arg, 1, 65535, &v))
			return bad(err, errlen, "--port: %s is not a port number", arg);
		o->port = (int)v;
		break;
	case OPT_NAME: o->name = arg; break;
	case OPT_ROOM: o->room = arg; break;
	case OPT_SEND_FILE: o->send_file = arg; break;
	case OPT_WAIT:
		if (!parse_long(arg, 0, 1000000000, &o->wait_messages))
			return bad(err, errlen, "--wait-messages: %s is not a count", arg);
		break;
	case OPT_TIMEOUT:
		if (!parse_double(arg, &o->timeout_s) || o->timeout_s <= 0)
			return bad(err, errlen, "--timeout: %s is not a positive number of seconds",
			        arg);
		break;
	case OPT_RATE:
		if (!parse_double(arg, &o->rate) || o->rate < 0.1)
			return bad(err, errlen, "--rate: %s is not a rate (at least 0.1)", arg);
		break;
	case OPT_QUIET: o->quiet = true; break;
	case OPT_DIRECT: o->direct = true; break;
	case OPT_NO_RECONNECT: o->reconnect = false; break;
	case OPT_HELP: o->help = true; break;
	default: return bad(err, errlen, "%s", "unknown option (see --help)");
	}
	return TN_OK;
}

static int
check_required(const struct tn_chat_opts *o, char *err, size_t errlen)
{
	if (o->name == NULL)
		return bad(err, errlen, "%s", "--name is required (see --help)");
	if (o->room == NULL)
		return bad(err, errlen, "%s", "--room is required (see --help)");
	if (!tn_chat_name_valid(o->name))
		return bad(err, errlen,
		        "--name: \"%s\" must be 1-20 letters, digits, _ or CJK characters",
		        o->name);
	if (!tn_chat_name_valid(o->room))
		return bad(err, errlen,
		        "--room: \"%s\" must be 1-20 letters, digits, _ or CJK characters",
		        o->room);
	if (*o->host == '\0')
		return bad(err, errlen, "%s", "--host must not be empty");
	return TN_OK;
}

int
tn_chat_opts_parse(struct tn_chat_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	*o = (struct tn_chat_opts){.host = "127.0.0.1",
	        .port = 3014,
	        .wait_messages = -1,
	        .rate = 20,
	        .reconnect = true};
	optind = 0; /* glibc: start over, so the parser can run more than once */
	opterr = 0;
	int id;
	while ((id = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		if (id == '?' || id == ':') {
			const char *what = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
			return bad(
			        err, errlen, "bad option or missing value: %s (see --help)", what);
		}
		if (apply(o, id, optarg, err, errlen) != TN_OK)
			return TN_EINVAL;
	}
	if (optind < argc)
		return bad(err, errlen, "unexpected argument: %s (see --help)", argv[optind]);
	if (o->help)
		return TN_OK;
	return check_required(o, err, errlen);
}

/* ---- names and commands ---- */

bool
tn_chat_name_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int chars = 0;
	while (*p) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		        (*p >= '0' && *p <= '9') || *p == '_') {
			p++;
		} else if ((p[0] & 0xf0) == 0xe0 && (p[1] & 0xc0) == 0x80 &&
		           (p[2] & 0xc0) == 0x80) {
			unsigned cp = (unsigned)(p[0] & 0x0f) << 12 | (unsigned)(p[1] & 0x3f) << 6 |
			              (p[2] & 0x3fu);
			if (cp < 0x4e00 || cp > 0x9fa5)
				return false;
			p += 3;
		} else {
			return false;
		}
		if (++chars > 20)
			return false;
	}
	return chars > 0;
}

static const char *
skip_spaces(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* Length of s without trailing CR, LF and spaces. */
static size_t
trimmed_len(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 &&
	        (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n;
}

static bool
word_is(const char *w, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(w, want, n) == 0;
}

static void
parse_whisper(struct tn_chat_cmd *out, const char *args, const char *end)
{
	const char *name = skip_spaces(args);
	const char *name_end = name;
	while (name_end < end && *name_end != ' ' && *name_end != '\t')
		name_end++;
	const char *text = name_end < end ? skip_spaces(name_end) : end;
	if (name == name_end || text >= end) {
		out->type = TN_CHAT_CMD_BAD;
		return;
	}
	out->type = TN_CHAT_CMD_WHISPER;
	out->target = name;
	out->target_len = (size_t)(name_end - name);
	out->text = text;
	out->text_len = (size_t)(end - text);
}

void
tn_chat_cmd_parse(struct tn_chat_cmd *out, const char *line)
{
	memset(out, 0, sizeof(*out));
	size_t n = trimmed_len(line);
	const char *end = line + n;
	const char *s = skip_spaces(line);
	if (s >= end) {
		out->type = TN_CHAT_CMD_EMPTY;
		return;
	}
	if (s[0] != '/' || (s + 1 < end && s[1] == '/')) {
		out->type = TN_CHAT_CMD_SAY;
		out->text = s[0] == '/' ? s + 1 : s; /* "//x" says "/x" */
		out->text_len = (size_t)(end - out->text);
		return;
	}
	const char *w = s + 1, *w_end = w;
	while (w_end < end && *w_end != ' ' && *w_end != '\t')
		w_end++;
	size_t wl = (size_t)(w_end - w);
	if (word_is(w, wl, "w") || word_is(w, wl, "msg"))
		parse_whisper(out, w_end, end);
	else if (word_is(w, wl, "who"))
		out->type = TN_CHAT_CMD_WHO;
	else if (word_is(w, wl, "quit") || word_is(w, wl, "exit"))
		out->type = TN_CHAT_CMD_QUIT;
	else if (word_is(w, wl, "help"))
		out->type = TN_CHAT_CMD_HELP;
	else {
		out->type = TN_CHAT_CMD_UNKNOWN;
		out->text = s;
		out->text_len = (size_t)(w_end - s);
	}
}

/* ---- users ---- */

void
tn_chat_users_init(struct tn_chat_users *u)
{
	memset(u, 0, sizeof(*u));
}

void
tn_chat_users_clear(struct tn_chat_users *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->names[i]);
	u->n = 0;
}

void
tn_chat_users_fini(struct tn_chat_users *u)
{
	tn_chat_users_clear(u);
	free(u->names);
	memset(u, 0, sizeof(*u));
}

bool
tn_chat_users_has(const struct tn_chat_users *u, const char *name)
{
	for (size_t i = 0; i < u->n; i++) {
		if (strcmp(u->names[i], name) == 0)
			return true;
	}
	return false;
}

bool
tn_chat_users_add(struct tn_chat_users *u, const char *name)
{
	if (tn_chat_users_has(u, name))
		return false;
	if (u->n == u->cap) {
		u->cap = u->cap ? 2 * u->cap : 8;
		u->names = tn_realloc(u->names, u->cap * sizeof(*u->names));
	}
	u->names[u->n++] = tn_strdup(name);
	return true;
}

bool
tn_chat_users_remove(struct tn_chat_users *u, const char *name)
{
	for (size_t i = 0; i < u->n; i++) {
		if (strcmp(u->names[i], name) == 0) {
			free(u->names[i]);
			memmove(&u->names[i], &u->names[i + 1], (u->n - i - 1) * sizeof(*u->names));
			u->n--;
			return true;
		}
	}
	return false;
}

bool
tn_chat_users_set(struct tn_chat_users *u, json_object *arr)
{
	if (arr == NULL || !json_object_is_type(arr, json_type_array))
		return false;
	tn_chat_users_clear(u);
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		if (json_object_is_type(v, json_type_string))
			tn_chat_users_add(u, json_object_get_string(v));
	}
	return true;
}

void
tn_chat_users_format(struct tn_buf *out, const struct tn_chat_users *u)
{
	for (size_t i = 0; i < u->n; i++) {
		if (i)
			tn_buf_append_str(out, ", ");
		tn_chat_sanitize(out, u->names[i], strlen(u->names[i]));
	}
}

/* ---- output ---- */

void
tn_chat_sanitize(struct tn_buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		/* U+0080..U+009F are C2 80..C2 9F in UTF-8: 8-bit control codes (CSI is 9B). */
		if (c == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
			tn_buf_append_byte(out, '?');
			i++;
		} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
			tn_buf_append_byte(out, '?');
		} else {
			tn_buf_append_byte(out, c);
		}
	}
}

void
tn_chat_time(char out[16], int64_t wall_ms)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, 16, "[%H:%M:%S]", &tm);
}

static void
put(struct tn_buf *out, const char *s)
{
	tn_chat_sanitize(out, s, strlen(s));
}

void
tn_chat_format_chat(struct tn_buf *out, const char *time, const char *from, const char *target,
        const char *msg, const char *me)
{
	tn_buf_append_str(out, time);
	tn_buf_append_byte(out, ' ');
	bool priv = target && *target && strcmp(target, "*") != 0;
	if (priv && strcmp(from, me) == 0 && strcmp(target, me) != 0) {
		tn_buf_append_str(out, "[private to ");
		put(out, target);
		tn_buf_append_str(out, "] ");
	} else if (priv) {
		tn_buf_append_str(out, "[private] ");
	}
	put(out, from);
	tn_buf_append_str(out, ": ");
	put(out, msg);
}
