/* Levelled logging: one line per event on stderr,
 *   2026-11-21T16:20:01.123Z INFO chat-server-1 rpc: call timed out target=chat-server-2 ms=500
 * The level is checked before anything is formatted. Any thread. */
#ifndef TN_LOG_H
#define TN_LOG_H

#include <stdbool.h>

enum tn_log_level {
	TN_LOG_DEBUG = 0,
	TN_LOG_INFO = 1,
	TN_LOG_WARN = 2,
	TN_LOG_ERROR = 3,
	TN_LOG_OFF = 4,
};

/* Sets the server id printed on every line (copied) and the minimum level. Call once at
 * start-up, before other threads log. */
void tn_log_init(const char *server_id, enum tn_log_level level);

/* Parses "debug", "info", "warn", "error", "off". Returns false on an unknown name. */
bool tn_log_level_parse(const char *name, enum tn_log_level *out);

/* True when a message at level would be printed. */
bool tn_log_enabled(enum tn_log_level level);

/* Writes one line: module, then the printf-formatted message, which by convention is a
 * short text followed by key=value fields. One write(2) per line, so lines from different
 * threads never interleave. */
void tn_log_write(enum tn_log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define TN_LOG(lvl, mod, ...)                                      \
	do {                                                           \
		if (tn_log_enabled(lvl))                                   \
			tn_log_write((lvl), (mod), __VA_ARGS__);               \
	} while (0)
#define tn_debug(mod, ...) TN_LOG(TN_LOG_DEBUG, mod, __VA_ARGS__)
#define tn_info(mod, ...) TN_LOG(TN_LOG_INFO, mod, __VA_ARGS__)
#define tn_warn(mod, ...) TN_LOG(TN_LOG_WARN, mod, __VA_ARGS__)
#define tn_error(mod, ...) TN_LOG(TN_LOG_ERROR, mod, __VA_ARGS__)

#endif
