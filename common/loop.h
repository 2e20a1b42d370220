/* Hand-off of work to an owner thread, and the owner thread's loop.
 *
 * An executor is anything that runs tasks on one thread: a struct tn_loop (below), or a
 * libwebsockets service thread draining a struct tn_mailbox in
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED. nng callbacks never touch owned state: they post a
 * task. */
#ifndef TN_LOOP_H
#define TN_LOOP_H

#include <stdbool.h>
#include <stdint.h>

/* A task runs on the owner thread with cancelled == false, or, when the executor has
 * stopped, exactly once with cancelled == true so it can release what arg holds (on
 * whatever thread posted it or stopped the executor). */
typedef void (*tn_task_fn)(void *arg, bool cancelled);

struct tn_exec {
	void (*post)(void *ctx, tn_task_fn fn, void *arg);
	void *ctx;
};

/* Posts a task through an executor. Any thread. */
static inline void
tn_exec_post(const struct tn_exec *ex, tn_task_fn fn, void *arg)
{
	ex->post(ex->ctx, fn, arg);
}

/* ---- mailbox: a mutex-protected task queue with a wake-up hook ---- */

struct tn_mailbox;

/* Creates a mailbox; wake(wake_arg) is called (from the posting thread, outside the lock)
 * when a task is posted to an empty queue, e.g. lws_cancel_service. */
struct tn_mailbox *tn_mailbox_new(void (*wake)(void *), void *wake_arg);

/* Queues a task. Any thread. After tn_mailbox_close the task runs cancelled at once. */
void tn_mailbox_post(struct tn_mailbox *mb, tn_task_fn fn, void *arg);

/* Runs every queued task (owner thread). Returns how many ran. */
unsigned tn_mailbox_drain(struct tn_mailbox *mb);

/* Stops accepting tasks and runs the queued ones cancelled. Any thread, once. */
void tn_mailbox_close(struct tn_mailbox *mb);

/* Closes (if needed) and frees. */
void tn_mailbox_free(struct tn_mailbox *mb);

/* An executor posting into mb. */
struct tn_exec tn_mailbox_exec(struct tn_mailbox *mb);

/* ---- loop: an owner thread with a mailbox and timers ---- */

struct tn_loop;

typedef void (*tn_timer_fn)(void *arg);

struct tn_loop *tn_loop_new(void);

/* Runs tasks and timers on the calling thread until tn_loop_stop. */
void tn_loop_run(struct tn_loop *loop);

/* Makes tn_loop_run return after the task in progress; later posts run cancelled. Any
 * thread. */
void tn_loop_stop(struct tn_loop *loop);

/* After tn_loop_run has returned: runs the queued tasks cancelled, and makes every later
 * post run cancelled at once in the posting thread. Call before stopping whatever posts
 * into the loop (RPC servers, clients), then free the loop after those. */
void tn_loop_close(struct tn_loop *loop);

/* Frees the loop (closing it first if needed); it must not be running. */
void tn_loop_free(struct tn_loop *loop);

void tn_loop_post(struct tn_loop *loop, tn_task_fn fn, void *arg);
struct tn_exec tn_loop_exec(struct tn_loop *loop);

/* Calls fn(arg) on the loop thread after delay_ms. Returns a timer id (> 0) for
 * tn_loop_timer_cancel. Loop thread only. */
uint64_t tn_loop_timer_add(struct tn_loop *loop, int64_t delay_ms, tn_timer_fn fn, void *arg);

/* Cancels a pending timer; a no-op for an id that already fired. Loop thread only. */
void tn_loop_timer_cancel(struct tn_loop *loop, uint64_t id);

/* ---- signals ---- */

/* Blocks SIGINT, SIGTERM and SIGPIPE in the calling thread and the threads it creates
 * afterwards. Call first thing in main. */
void tn_signals_block(void);

/* Waits for SIGINT or SIGTERM and returns its number. */
int tn_signals_wait(void);

#endif
