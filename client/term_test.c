#define _GNU_SOURCE /* posix_openpt, grantpt, unlockpt, ptsname */

/* The line editor on a real pseudo-terminal: raw mode and its restoration, editing keys,
 * output above the input line, horizontal scrolling. */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "err.h"
#include "term.h"
#include "tn_test.h"

struct pty {
	int master;
	int slave;
};

static int
pty_open(struct pty *p, int cols)
{
	p->master = posix_openpt(O_RDWR | O_NOCTTY);
	if (p->master < 0 || grantpt(p->master) != 0 || unlockpt(p->master) != 0)
		return -1;
	p->slave = open(ptsname(p->master), O_RDWR | O_NOCTTY);
	if (p->slave < 0)
		return -1;
	struct winsize ws = {.ws_row = 24, .ws_col = (unsigned short)cols};
	ioctl(p->slave, TIOCSWINSZ, &ws);
	return 0;
}

static void
pty_close(struct pty *p)
{
	close(p->slave);
	close(p->master);
}

/* What the terminal was sent since the last call (NUL-terminated in buf). */
static size_t
screen_bytes(struct pty *p, char *buf, size_t cap)
{
	size_t n = 0;
	struct pollfd pfd = {.fd = p->master, .events = POLLIN};
	while (n + 1 < cap && poll(&pfd, 1, 50) > 0) {
		ssize_t r = read(p->master, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	return n;
}

struct lines {
	char got[8][128];
	int n;
};

static void
on_line(void *arg, const char *line)
{
	struct lines *l = arg;
	if (l->n < 8)
		snprintf(l->got[l->n++], sizeof(l->got[0]), "%s", line);
}

static bool
feed(struct tn_cli_term *t, const char *keys, struct lines *l)
{
	return tn_cli_term_feed(t, (const uint8_t *)keys, strlen(keys), on_line, l);
}

TN_TEST(editing_keys)
{
	struct pty p;
	TN_CHECK_OK(pty_open(&p, 80));
	struct termios before, during, after;
	tcgetattr(p.slave, &before);
	struct tn_cli_term t;
	TN_CHECK_OK(tn_cli_term_start(&t, p.slave, p.slave, "me> "));
	tcgetattr(p.slave, &during);
	TN_CHECK(!(during.c_lflag & ICANON) && !(during.c_lflag & ECHO));
	TN_CHECK(during.c_lflag & ISIG); /* Ctrl-C still raises SIGINT */

	struct lines l = {0};
	TN_CHECK(!feed(&t, "hellp\x7fo\r", &l));
	TN_CHECK(!feed(&t, "gone\x15kept\n", &l));
	TN_CHECK(!feed(&t,
	        "two words\x17"
	        "things\r",
	        &l));
	/* Arrow keys and function keys are ignored, whole. */
	TN_CHECK(!feed(&t, "a\x1b[A\x1b[1;5Cb\x1bOPc\r", &l));
	/* Backspace removes a whole UTF-8 character. */
	TN_CHECK(!feed(&t, "x\xe4\xbd\xa0\x7fy\r", &l));
	/* Other control keys do nothing. */
	TN_CHECK(!feed(&t, "\x01q\x02\r", &l));
	TN_CHECK_INT(l.n, ==, 6);
	TN_CHECK_STR(l.got[0], "hello");
	TN_CHECK_STR(l.got[1], "kept");
	TN_CHECK_STR(l.got[2], "two things");
	TN_CHECK_STR(l.got[3], "abc");
	TN_CHECK_STR(l.got[4], "xy");
	TN_CHECK_STR(l.got[5], "q");
	/* Ctrl-D quits only on an empty line. */
	TN_CHECK(!feed(&t, "z\x04", &l));
	TN_CHECK(feed(&t, "\x15\x04", &l));

	tn_cli_term_stop(&t);
	tcgetattr(p.slave, &after);
	TN_CHECK(after.c_lflag == before.c_lflag && after.c_iflag == before.c_iflag);
	pty_close(&p);
}

TN_TEST(output_keeps_the_input_line)
{
	struct pty p;
	TN_CHECK_OK(pty_open(&p, 80));
	struct tn_cli_term t;
	char buf[4096];
	TN_CHECK_OK(tn_cli_term_start(&t, p.slave, p.slave, "me> "));
	struct lines l = {0};
	feed(&t, "draft", &l);
	screen_bytes(&p, buf, sizeof(buf));
	tn_cli_term_print(&t, "[12:00:00] bob: hi");
	screen_bytes(&p, buf, sizeof(buf));
	/* Clear the input line, print (LF becomes CRLF on output), then prompt and draft. */
	TN_CHECK_STR(buf, "\r\x1b[K[12:00:00] bob: hi\r\n\r\x1b[Kme> draft");
	tn_cli_term_stop(&t);
	pty_close(&p);
}

TN_TEST(long_lines_scroll)
{
	struct pty p;
	TN_CHECK_OK(pty_open(&p, 20));
	struct tn_cli_term t;
	char buf[4096];
	TN_CHECK_OK(tn_cli_term_start(&t, p.slave, p.slave, "me> "));
	struct lines l = {0};
	feed(&t, "abcdefghijklmnopqrstuvwxyz", &l);
	screen_bytes(&p, buf, sizeof(buf));
	/* 20 columns, 4 of prompt, one kept free: the last 15 characters show. */
	const char *last = strrchr(buf, '\r');
	TN_CHECK(last != NULL);
	TN_CHECK_STR(last, "\r\x1b[Kme> lmnopqrstuvwxyz");
	TN_CHECK_INT(tn_cli_term_width("a\xe4\xbd\xa0"
	                               "b",
	                     5),
	        ==, 4);
	TN_CHECK_INT(tn_cli_term_width("\xf0\x9f\x98\x80", 4), ==, 2);
	feed(&t, "\r", &l);
	TN_CHECK_STR(l.got[0], "abcdefghijklmnopqrstuvwxyz");
	tn_cli_term_stop(&t);
	pty_close(&p);
}

TN_TEST(not_a_terminal)
{
	int fds[2];
	TN_CHECK_OK(pipe(fds));
	struct tn_cli_term t;
	TN_CHECK_OK(tn_cli_term_start(&t, fds[0], fds[1], "me> "));
	TN_CHECK(!t.raw);
	tn_cli_term_print(&t, "plain");
	char buf[64] = {0};
	TN_CHECK_INT(read(fds[0], buf, sizeof(buf) - 1), ==, 6);
	TN_CHECK_STR(buf, "plain\n");
	tn_cli_term_stop(&t);
	close(fds[0]);
	close(fds[1]);
}

TN_TEST_MAIN(TN_CASE(editing_keys), TN_CASE(output_keeps_the_input_line),
        TN_CASE(long_lines_scroll), TN_CASE(not_a_terminal))
