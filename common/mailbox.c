#include <pthread.h>
#include <stdlib.h>

#include "alloc.h"
#include "loop.h"

struct task {
	struct task *next;
	tn_task_fn fn;
	void *arg;
};

struct tn_mailbox {
	pthread_mutex_t mu;
	struct task *head, *tail;
	bool closed;
	void (*wake)(void *);
	void *wake_arg;
};

struct tn_mailbox *
tn_mailbox_new(void (*wake)(void *), void *wake_arg)
{
	struct tn_mailbox *mb = tn_calloc(1, sizeof(*mb));
	pthread_mutex_init(&mb->mu, NULL);
	mb->wake = wake;
	mb->wake_arg = wake_arg;
	return mb;
}

void
tn_mailbox_post(struct tn_mailbox *mb, tn_task_fn fn, void *arg)
{
	pthread_mutex_lock(&mb->mu);
	if (mb->closed) {
		pthread_mutex_unlock(&mb->mu);
		fn(arg, true);
		return;
	}
	struct task *t = tn_malloc(sizeof(*t));
	t->next = NULL;
	t->fn = fn;
	t->arg = arg;
	bool was_empty = mb->head == NULL;
	if (mb->tail)
		mb->tail->next = t;
	else
		mb->head = t;
	mb->tail = t;
	pthread_mutex_unlock(&mb->mu);
	if (was_empty && mb->wake)
		mb->wake(mb->wake_arg);
}

static struct task *
take_all(struct tn_mailbox *mb)
{
	pthread_mutex_lock(&mb->mu);
	struct task *t = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->mu);
	return t;
}

static unsigned
run_list(struct task *t, bool cancelled)
{
	unsigned n = 0;
	while (t) {
		struct task *next = t->next;
		t->fn(t->arg, cancelled);
		free(t);
		t = next;
		n++;
	}
	return n;
}

unsigned
tn_mailbox_drain(struct tn_mailbox *mb)
{
	return run_list(take_all(mb), false);
}

void
tn_mailbox_close(struct tn_mailbox *mb)
{
	pthread_mutex_lock(&mb->mu);
	mb->closed = true;
	pthread_mutex_unlock(&mb->mu);
	run_list(take_all(mb), true);
}

void
tn_mailbox_free(struct tn_mailbox *mb)
{
	if (mb == NULL)
		return;
	tn_mailbox_close(mb);
	pthread_mutex_destroy(&mb->mu);
	free(mb);
}

static void
mailbox_exec_post(void *ctx, tn_task_fn fn, void *arg)
{
	tn_mailbox_post(ctx, fn, arg);
}

struct tn_exec
tn_mailbox_exec(struct tn_mailbox *mb)
{
	return (struct tn_exec){.post = mailbox_exec_post, .ctx = mb};
}
