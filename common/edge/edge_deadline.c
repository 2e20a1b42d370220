/* Handshake, heartbeat (or idle) and close-grace deadlines of every session on one lws
 * timer.
 *
 * A timer per session would cost an ordered insert into lws's timer list (a walk over
 * every other session's timer) on every client heartbeat. Instead each session sits on
 * one of three lists, kept in deadline order for free: every deadline is "an event +
 * a constant" (start + handshake timeout; last heartbeat + heartbeat timeout, or on a
 * server without heartbeats last package + idle timeout; start of the close + grace), so
 * a session whose deadline moves goes to the tail. One timer (the edge's tick) is set for
 * the earliest head. */
#include "clock.h"
#include "edge_internal.h"

static void tick(lws_sorted_usec_list_t *sul);

static void
list_unlink(struct tn_edge_sess *s)
{
	struct edge_dlist *l = s->dl;
	if (l == NULL)
		return;
	if (s->dl_prev)
		s->dl_prev->dl_next = s->dl_next;
	else
		l->head = s->dl_next;
	if (s->dl_next)
		s->dl_next->dl_prev = s->dl_prev;
	else
		l->tail = s->dl_prev;
	s->dl = NULL;
	s->dl_prev = s->dl_next = NULL;
}

/* Inserts s by its deadline, searching from the tail, where it nearly always belongs. */
static void
list_insert(struct edge_dlist *l, struct tn_edge_sess *s)
{
	struct tn_edge_sess *after = l->tail;
	while (after && after->deadline > s->deadline)
		after = after->dl_prev;
	s->dl = l;
	s->dl_prev = after;
	s->dl_next = after ? after->dl_next : l->head;
	if (s->dl_next)
		s->dl_next->dl_prev = s;
	else
		l->tail = s;
	if (after)
		after->dl_next = s;
	else
		l->head = s;
}

/* Makes sure the tick fires no later than at_ms. */
static void
tick_arm(struct tn_edge *e, int64_t at_ms)
{
	if (at_ms >= e->tick_at_ms || e->ctx == NULL || e->closed)
		return;
	int64_t delay_us = at_ms * 1000 - tn_now_us();
	e->tick_at_ms = at_ms;
	lws_sul_schedule(e->ctx, 0, &e->tick, tick, delay_us > 0 ? delay_us : 0);
}

void
edge_deadline_update(struct tn_edge_sess *s)
{
	struct tn_edge *e = s->e;
	struct edge_dlist *l;
	int64_t d;
	if (s->closing) {
		l = &e->close_list;
		d = s->wsi && !e->closed ? s->close_at : TN_PML_NO_DEADLINE;
	} else if (tn_pml_conn_state(&s->conn) == TN_PML_CONN_WORKING) {
		/* idle_ms is only set without heartbeats, so one kind of deadline fills hb_list. */
		l = &e->hb_list;
		d = e->idle_ms > 0 ? s->last_rx_ms + e->idle_ms : tn_pml_conn_deadline(&s->conn);
	} else {
		l = &e->hs_list;
		d = tn_pml_conn_deadline(&s->conn);
	}
	if (d == TN_PML_NO_DEADLINE) {
		list_unlink(s);
		s->deadline = TN_PML_NO_DEADLINE;
		return;
	}
	if (d == s->deadline && s->dl == l)
		return;
	list_unlink(s);
	s->deadline = d;
	list_insert(l, s);
	tick_arm(e, d);
}

void
edge_deadline_remove(struct tn_edge_sess *s)
{
	list_unlink(s);
	s->deadline = TN_PML_NO_DEADLINE;
}

/* Times out the expired heads of l. */
static void
expire(struct edge_dlist *l, int64_t now_ms)
{
	while (l->head && l->head->deadline <= now_ms) {
		struct tn_edge_sess *s = l->head;
		list_unlink(s);
		s->deadline = TN_PML_NO_DEADLINE;
		edge_sess_timeout(s, now_ms);
	}
}

static void
tick(lws_sorted_usec_list_t *sul)
{
	struct tn_edge *e = lws_container_of(sul, struct tn_edge, tick);
	e->tick_at_ms = INT64_MAX;
	int64_t now = tn_now_ms();
	struct edge_dlist *lists[] = {&e->hs_list, &e->hb_list, &e->close_list};
	for (int i = 0; i < 3; i++)
		expire(lists[i], now);
	for (int i = 0; i < 3; i++)
		if (lists[i]->head)
			tick_arm(e, lists[i]->head->deadline);
}

void
edge_deadline_stop(struct tn_edge *e)
{
	lws_sul_cancel(&e->tick);
	e->tick_at_ms = INT64_MAX;
}
