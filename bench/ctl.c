/* Commands from the driver on standard input, and figures about this process. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "err.h"
#include "loadgen.h"

static void
on_stdin(void *arg, unsigned events)
{
	struct lg *lg = arg;
	struct lg_ctl *ctl = &lg->ctl;
	if (ctl->len == sizeof(ctl->buf)) {
		/* A line longer than any command: drop it rather than stall. */
		ctl->len = 0;
	}
	ssize_t n = read(STDIN_FILENO, ctl->buf + ctl->len, sizeof(ctl->buf) - ctl->len);
	if (n > 0) {
		ctl->len += (size_t)n;
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	ctl->eof = true;
	lg_ctl_stop(lg);
}

void
lg_ctl_start(struct lg *lg)
{
	if (!lg->o.control)
		return;
	int rv = tn_cli_watch_start(
	        lg->loop, &lg->ctl.watch, STDIN_FILENO, TN_CLI_IO_IN, on_stdin, lg);
	if (rv != TN_OK) {
		/* Not a pipe or terminal (e.g. /dev/null): no commands will come. */
		fprintf(stderr, "loadgen: cannot watch standard input: %s\n", tn_strerror(rv));
		lg->ctl.eof = true;
		return;
	}
	lg->ctl.watching = true;
}

void
lg_ctl_stop(struct lg *lg)
{
	if (lg->ctl.watching) {
		tn_cli_watch_stop(lg->loop, &lg->ctl.watch);
		lg->ctl.watching = false;
	}
}

bool
lg_ctl_next(struct lg *lg, char *line, size_t size)
{
	struct lg_ctl *ctl = &lg->ctl;
	char *nl = memchr(ctl->buf, '\n', ctl->len);
	if (nl == NULL)
		return false;
	size_t n = (size_t)(nl - ctl->buf);
	size_t copy = n < size - 1 ? n : size - 1;
	memcpy(line, ctl->buf, copy);
	line[copy] = '\0';
	ctl->len -= n + 1;
	memmove(ctl->buf, nl + 1, ctl->len);
	return true;
}

int64_t
lg_cpu_us(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

long
lg_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return 0;
	char line[256];
	long kib = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

void
lg_out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}
