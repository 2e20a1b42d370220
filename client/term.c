#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "err.h"
#include "term.h"

enum esc_state {
	ESC_NONE = 0,
	ESC_START = 1, /* after ESC */
	ESC_CSI = 2,   /* after ESC [ : until a final byte 0x40..0x7e */
	ESC_SS3 = 3,   /* after ESC O : one more byte */
};

static void
out(struct tn_cli_term *t, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = write(t->fd_out, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to show it; the program goes on */
		s += w;
		n -= (size_t)w;
	}
}

static void
out_str(struct tn_cli_term *t, const char *s)
{
	out(t, s, strlen(s));
}

/* Decodes the code point of the UTF-8 sequence at s (n bytes left); sets *used. */
static uint32_t
utf8_next(const unsigned char *s, size_t n, size_t *used)
{
	unsigned char c = s[0];
	size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
	if (len > n)
		len = 1;
	uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7f >> len));
	for (size_t i = 1; i < len; i++)
		cp = cp << 6 | (s[i] & 0x3fu);
	*used = len;
	return cp;
}

static bool
is_wide(uint32_t cp)
{
	return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
	       (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
	       (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
	       (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) ||
	       (cp >= 0x20000 && cp <= 0x3fffd);
}

int
tn_cli_term_width(const char *s, size_t len)
{
	int w = 0;
	size_t i = 0;
	while (i < len) {
		size_t used;
		uint32_t cp = utf8_next((const unsigned char *)s + i, len - i, &used);
		w += is_wide(cp) ? 2 : 1;
		i += used;
	}
	return w;
}

/* The offset in the line from which its tail fits in cols columns. */
static size_t
tail_start(const struct tn_cli_term *t, int cols)
{
	const char *s = (const char *)t->line.data;
	size_t start = 0;
	while (start < t->line.len && tn_cli_term_width(s + start, t->line.len - start) > cols) {
		size_t used;
		utf8_next((const unsigned char *)s + start, t->line.len - start, &used);
		start += used;
	}
	return start;
}

static void
redraw(struct tn_cli_term *t)
{
	if (!t->raw)
		return;
	int room = t->width - 1 - tn_cli_term_width(t->prompt, strlen(t->prompt));
	size_t start = tail_start(t, room > 1 ? room : 1);
	out_str(t, "\r\x1b[K");
	out_str(t, t->prompt);
	if (t->line.len > start) /* an empty line may have no buffer yet */
		out(t, t->line.data + start, t->line.len - start);
}

static void
read_width(struct tn_cli_term *t)
{
	struct winsize ws;
	t->width = 80;
	if (ioctl(t->fd_out, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 10)
		t->width = ws.ws_col;
}

int
tn_cli_term_start(struct tn_cli_term *t, int fd_in, int fd_out, const char *prompt)
{
	memset(t, 0, sizeof(*t));
	t->fd_in = fd_in;
	t->fd_out = fd_out;
	snprintf(t->prompt, sizeof(t->prompt), "%s", prompt ? prompt : "> ");
	tn_buf_init(&t->line);
	read_width(t);
	if (!isatty(fd_in))
		return TN_OK;
	if (tcgetattr(fd_in, &t->saved) != 0)
		return TN_EIO;
	struct termios raw = t->saved;
	/* No line buffering or echo; signals (Ctrl-C) and output processing stay on. */
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN);
	raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL | INLCR);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	raw.c_cc[VSUSP] = _POSIX_VDISABLE; /* suspending would leave the terminal raw */
	if (tcsetattr(fd_in, TCSAFLUSH, &raw) != 0)
		return TN_EIO;
	t->raw = true;
	redraw(t);
	return TN_OK;
}

void
tn_cli_term_stop(struct tn_cli_term *t)
{
	if (t->raw) {
		out_str(t, "\r\x1b[K");
		tcsetattr(t->fd_in, TCSAFLUSH, &t->saved);
		t->raw = false;
	}
	tn_buf_fini(&t->line);
}

void
tn_cli_term_print(struct tn_cli_term *t, const char *text)
{
	if (t->raw)
		out_str(t, "\r\x1b[K");
	out_str(t, text);
	out_str(t, "\n");
	redraw(t);
}

void
tn_cli_term_resize(struct tn_cli_term *t)
{
	read_width(t);
	redraw(t);
}

static void
erase_char(struct tn_cli_term *t)
{
	if (t->line.len == 0)
		return;
	t->line.len--;
	while (t->line.len > 0 && (t->line.data[t->line.len] & 0xc0) == 0x80)
		t->line.len--;
}

static void
erase_word(struct tn_cli_term *t)
{
	while (t->line.len > 0 && t->line.data[t->line.len - 1] == ' ')
		t->line.len--;
	while (t->line.len > 0 && t->line.data[t->line.len - 1] != ' ')
		t->line.len--;
}

static void
submit(struct tn_cli_term *t, tn_cli_term_line_fn on_line, void *arg)
{
	tn_buf_append_byte(&t->line, 0);
	/* A copy: the callback may print, which redraws from t->line. */
	char text[TN_CLI_TERM_LINE_MAX + 1];
	memcpy(text, t->line.data, t->line.len);
	tn_buf_reset(&t->line);
	redraw(t);
	on_line(arg, text);
}

/* Consumes one byte of an escape sequence; returns true while inside one. */
static bool
escape_byte(struct tn_cli_term *t, uint8_t c)
{
	switch (t->esc) {
	case ESC_START: t->esc = c == '[' ? ESC_CSI : c == 'O' ? ESC_SS3 : ESC_NONE; return true;
	case ESC_CSI:
		if (c >= 0x40 && c <= 0x7e)
			t->esc = ESC_NONE;
		return true;
	case ESC_SS3: t->esc = ESC_NONE; return true;
	default: return false;
	}
}

/* Handles one key; returns true for a quit request. */
static bool
key(struct tn_cli_term *t, uint8_t c, tn_cli_term_line_fn on_line, void *arg)
{
	switch (c) {
	case '\r':
	case '\n': submit(t, on_line, arg); return false;
	case 0x7f:
	case 0x08: erase_char(t); break;
	case 0x15: /* Ctrl-U */ tn_buf_reset(&t->line); break;
	case 0x17: /* Ctrl-W */ erase_word(t); break;
	case 0x0c: /* Ctrl-L */ out_str(t, "\x1b[H\x1b[2J"); break;
	case 0x04: /* Ctrl-D */ return t->line.len == 0;
	case 0x1b: t->esc = ESC_START; return false;
	default:
		if (c < 0x20)
			return false; /* other control keys do nothing */
		if (t->line.len >= TN_CLI_TERM_LINE_MAX)
			return false;
		tn_buf_append_byte(&t->line, c);
		break;
	}
	redraw(t);
	return false;
}

bool
tn_cli_term_feed(struct tn_cli_term *t, const uint8_t *data, size_t len,
        tn_cli_term_line_fn on_line, void *arg)
{
	for (size_t i = 0; i < len; i++) {
		if (escape_byte(t, data[i]))
			continue;
		if (key(t, data[i], on_line, arg))
			return true;
	}
	return false;
}
