#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum tn_log_level min_level = TN_LOG_INFO;
static char server_id[96] = "-";

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

void
tn_log_init(const char *id, enum tn_log_level level)
{
	snprintf(server_id, sizeof(server_id), "%s", (id && *id) ? id : "-");
	min_level = level;
}

bool
tn_log_level_parse(const char *name, enum tn_log_level *out)
{
	static const char *const names[] = {"debug", "info", "warn", "error", "off"};
	for (int i = 0; i <= TN_LOG_OFF; i++) {
		if (strcasecmp(name, names[i]) == 0) {
			*out = (enum tn_log_level)i;
			return true;
		}
	}
	return false;
}

bool
tn_log_enabled(enum tn_log_level level)
{
	return level >= min_level && level < TN_LOG_OFF;
}

void
tn_log_write(enum tn_log_level level, const char *module, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s %s: ",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		(int)(tv.tv_usec / 1000), level_names[level], server_id, module);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
		if (m > 0)
			n += m;
	}
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2; /* truncated: keep one line */
	/* A line never spans two: newlines in values become spaces. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}
