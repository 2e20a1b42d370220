/* The client library's event loop: one thread, epoll, a timer heap and a task mailbox.
 *
 * Everything the library does for any number of connections happens on the thread that
 * runs tn_cli_loop_run (the loop thread); nothing there blocks. Other threads hand work
 * over with tn_cli_loop_post (a mutex-protected queue that wakes the loop through an
 * eventfd) and may call tn_cli_loop_stop. Every other function here is for the loop
 * thread only, or for any single thread while the loop is not running.
 *
 * Timers and watches live in their owner's storage (no allocation per timer): a
 * connection embeds its heartbeat timer, a request its deadline. Stopping a timer or
 * removing a watch takes effect at once, even for an event already returned by the
 * current epoll_wait, so an owner may free itself from inside any callback once it has
 * stopped its timers and watches. */
#ifndef TN_CLI_LOOP_H
#define TN_CLI_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct tn_cli_loop;

/* ---- the loop ---- */

/* Creates a loop (epoll instance, eventfd, mailbox). Returns TN_EIO when the kernel
 * refuses one of them. */
int tn_cli_loop_new(struct tn_cli_loop **out);

/* Frees the loop: stops the name resolver thread, runs tasks still queued with
 * cancelled == true, closes the descriptors. Every timer and watch must have been
 * removed by their owners first (the client objects' _free functions do that). Not
 * while tn_cli_loop_run is running. NULL is a no-op. */
void tn_cli_loop_free(struct tn_cli_loop *loop);

/* Runs timers, I/O callbacks and posted tasks on the calling thread until
 * tn_cli_loop_stop. Returns TN_OK, or TN_EIO when epoll_wait fails. */
int tn_cli_loop_run(struct tn_cli_loop *loop);

/* Runs one iteration: waits at most max_wait_ms (0: do not wait; -1: until something
 * happens) and dispatches what is due. For callers that drive the loop themselves. */
int tn_cli_loop_run_once(struct tn_cli_loop *loop, int64_t max_wait_ms);

/* Makes tn_cli_loop_run return after the callback in progress. Any thread. */
void tn_cli_loop_stop(struct tn_cli_loop *loop);

/* Queues fn(arg, false) to run on the loop thread. Any thread. After tn_cli_loop_free
 * began, or when the loop is never run again, fn runs with cancelled == true so it can
 * release arg. */
void tn_cli_loop_post(struct tn_cli_loop *loop, tn_task_fn fn, void *arg);

/* An executor posting into the loop (for code written against common/loop.h). */
struct tn_exec tn_cli_loop_exec(struct tn_cli_loop *loop);

/* The loop's clock: monotonic milliseconds, read once per iteration (tn_now_ms). */
int64_t tn_cli_loop_now(const struct tn_cli_loop *loop);

/* Re-reads the clock, for code that has just done something slow. */
int64_t tn_cli_loop_update_now(struct tn_cli_loop *loop);

/* A uniformly distributed 64-bit value from the loop's generator (seeded from the
 * kernel; used for WebSocket masking keys and backoff jitter, not for secrets). */
uint64_t tn_cli_loop_random(struct tn_cli_loop *loop);

/* ---- timers ---- */

typedef void (*tn_cli_timer_fn)(void *arg);

/* A one-shot timer. Caller's storage; fields are private. */
struct tn_cli_timer {
	int64_t due;  /* loop clock, ms */
	uint64_t seq; /* ties broken in arming order */
	size_t pos;   /* index in the heap + 1; 0 when not armed */
	tn_cli_timer_fn fn;
	void *arg;
};

/* Sets the callback of a stopped timer. */
void tn_cli_timer_init(struct tn_cli_timer *t, tn_cli_timer_fn fn, void *arg);

/* Arms (or re-arms) t to fire delay_ms from now (0 or less: on the next iteration,
 * after the I/O already pending). */
void tn_cli_timer_start(struct tn_cli_loop *loop, struct tn_cli_timer *t, int64_t delay_ms);

/* Arms (or re-arms) t to fire at the loop-clock time due_ms. */
void tn_cli_timer_start_at(struct tn_cli_loop *loop, struct tn_cli_timer *t, int64_t due_ms);

/* Disarms t; a no-op when it is not armed. */
void tn_cli_timer_stop(struct tn_cli_loop *loop, struct tn_cli_timer *t);

/* True while t is armed. */
bool tn_cli_timer_armed(const struct tn_cli_timer *t);

/* Number of armed timers (for tests and statistics). */
size_t tn_cli_loop_timer_count(const struct tn_cli_loop *loop);

/* ---- descriptor watches ---- */

enum tn_cli_io {
	TN_CLI_IO_IN = 1,  /* readable (or the peer hung up) */
	TN_CLI_IO_OUT = 2, /* writable */
	TN_CLI_IO_ERR = 4, /* error or hang-up: read or getsockopt to learn which */
};

/* Called with the TN_CLI_IO_* bits that are ready. */
typedef void (*tn_cli_io_fn)(void *arg, unsigned events);

/* A watched descriptor (level-triggered). Caller's storage; fields are private. */
struct tn_cli_watch {
	int fd;
	unsigned events;
	uint32_t slot; /* index in the loop's slot table + 1; 0 when not watched */
	tn_cli_io_fn fn;
	void *arg;
};

/* Starts watching fd for events (TN_CLI_IO_IN and/or TN_CLI_IO_OUT; errors are always
 * reported). The descriptor stays the caller's. Returns TN_EIO (with errno logged) when
 * epoll refuses it, e.g. a regular file. */
int tn_cli_watch_start(struct tn_cli_loop *loop, struct tn_cli_watch *w, int fd, unsigned events,
        tn_cli_io_fn fn, void *arg);

/* Changes the events of a watched descriptor. */
int tn_cli_watch_set(struct tn_cli_loop *loop, struct tn_cli_watch *w, unsigned events);

/* Stops watching (before the caller closes the descriptor); a no-op when not watched.
 * An event for it already fetched in this iteration is not delivered. */
void tn_cli_watch_stop(struct tn_cli_loop *loop, struct tn_cli_watch *w);

/* Number of watched descriptors, the loop's own eventfd included. */
size_t tn_cli_loop_watch_count(const struct tn_cli_loop *loop);

/* ---- internal: the resolver's hook (resolve.c) ---- */

struct tn_cli_resolver;

/* The loop's resolver, created on first use. Loop thread. */
struct tn_cli_resolver *tn_cli_loop_resolver(struct tn_cli_loop *loop);

#endif
