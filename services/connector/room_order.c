#include "room_order.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* A copy of an item that came early. */
struct held {
	uint64_t seq;
	char *route;
	char *body;
	size_t body_len;
	uint64_t *sids;
	uint32_t n_sids;
};

struct room_order {
	char *rid;
	size_t rid_len;
	int locals;
	uint64_t gen;  /* of the items being ordered */
	uint64_t next; /* the next room_seq to deliver; 0: none seen yet */
	struct held *held; /* sorted by seq */
	size_t n_held, cap_held;
	int64_t held_since;
};

void
tn_room_orders_init(struct tn_room_orders *o, int64_t hold_ms, tn_room_order_deliver_fn deliver,
	void *arg)
{
	memset(o, 0, sizeof(*o));
	tn_map_init(&o->rooms);
	o->hold_ms = hold_ms;
	o->deliver = deliver;
	o->arg = arg;
}

static void
held_clear(struct tn_room_orders *o, struct room_order *r)
{
	for (size_t i = 0; i < r->n_held; i++) {
		free(r->held[i].route);
		free(r->held[i].body);
		free(r->held[i].sids);
	}
	if (r->n_held)
		o->n_holding--;
	r->n_held = 0;
}

static void
room_free(struct tn_room_orders *o, struct room_order *r)
{
	held_clear(o, r);
	free(r->held);
	free(r->rid);
	free(r);
}

void
tn_room_orders_fini(struct tn_room_orders *o)
{
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&o->rooms, &it)) != NULL;)
		room_free(o, e->val);
	tn_map_fini(&o->rooms);
}

void
tn_room_orders_local(struct tn_room_orders *o, const char *rid, size_t len, int delta)
{
	struct room_order *r = tn_map_get(&o->rooms, rid, len);
	if (r == NULL) {
		if (delta <= 0)
			return;
		r = tn_calloc(1, sizeof(*r));
		r->rid = tn_strndup(rid, len);
		r->rid_len = len;
		tn_map_put(&o->rooms, r->rid, len, r);
	}
	r->locals += delta;
	if (r->locals <= 0) {
		tn_map_del(&o->rooms, r->rid, r->rid_len);
		room_free(o, r);
	} else if (r->locals == 1 && delta > 0) {
		/* The first local session: whatever was known is stale. */
		held_clear(o, r);
		r->next = 0;
		r->gen = 0;
	}
}

static void
deliver_held(struct tn_room_orders *o, const struct held *h)
{
	struct tn_u64_iter sids;
	tn_u64_iter_init(&sids, h->sids, h->n_sids);
	o->deliver(o->arg, h->route, (struct tn_str){h->body, h->body_len}, sids);
}

/* Delivers the held items that follow on from r->next, in order. The room is looked up
 * again after each delivery: a delivery may close a session, and with it the room. */
static void
release(struct tn_room_orders *o, const char *rid, size_t len)
{
	for (;;) {
		struct room_order *r = tn_map_get(&o->rooms, rid, len);
		if (r == NULL || r->n_held == 0)
			return;
		struct held h = r->held[0];
		if (h.seq > r->next)
			return;
		memmove(r->held, r->held + 1, (r->n_held - 1) * sizeof(*r->held));
		if (--r->n_held == 0)
			o->n_holding--;
		if (h.seq == r->next) {
			r->next++;
			o->reordered++;
			deliver_held(o, &h);
		} else {
			o->duplicates++;
		}
		free(h.route);
		free(h.body);
		free(h.sids);
	}
}

static void
hold(struct tn_room_orders *o, struct room_order *r, const struct tn_push_item *item,
	const char *route, int64_t now_ms)
{
	size_t at = 0;
	while (at < r->n_held && r->held[at].seq < item->room_seq)
		at++;
	if (at < r->n_held && r->held[at].seq == item->room_seq) {
		o->duplicates++;
		return;
	}
	if (r->n_held == r->cap_held) {
		r->cap_held = r->cap_held ? r->cap_held * 2 : 8;
		r->held = tn_realloc(r->held, r->cap_held * sizeof(*r->held));
	}
	memmove(r->held + at + 1, r->held + at, (r->n_held - at) * sizeof(*r->held));
	struct held *h = &r->held[at];
	h->seq = item->room_seq;
	h->route = tn_strdup(route);
	h->body = tn_malloc(item->body.len + 1);
	memcpy(h->body, item->body.p, item->body.len);
	h->body_len = item->body.len;
	struct tn_u64_iter it = item->sids;
	h->n_sids = it.n;
	h->sids = tn_malloc((it.n + 1) * sizeof(uint64_t));
	for (uint32_t i = 0; tn_u64_iter_next(&it, &h->sids[i]); i++)
		;
	if (r->n_held++ == 0) {
		o->n_holding++;
		r->held_since = now_ms;
	}
	o->held++;
}

void
tn_room_orders_item(struct tn_room_orders *o, const struct tn_push_item *item, const char *route,
	int64_t now_ms)
{
	struct room_order *r =
		item->room_seq ? tn_map_get(&o->rooms, item->rid.p, item->rid.len) : NULL;
	if (r == NULL) {
		o->deliver(o->arg, route, item->body, item->sids);
		return;
	}
	if (item->room_gen < r->gen) {
		o->duplicates++; /* from an earlier life of the room */
		return;
	}
	if (r->next == 0 || item->room_gen > r->gen) {
		/* The first broadcast seen, or the room was made anew: start from here. What
		 * an earlier life held goes out first, in its order. */
		char rid[512];
		size_t len = r->rid_len < sizeof(rid) ? r->rid_len : sizeof(rid);
		memcpy(rid, r->rid, len);
		if (r->n_held)
			r->next = r->held[0].seq;
		release(o, rid, len);
		if ((r = tn_map_get(&o->rooms, rid, len)) == NULL) {
			o->deliver(o->arg, route, item->body, item->sids);
			return;
		}
		held_clear(o, r);
		r->gen = item->room_gen;
		r->next = item->room_seq;
	}
	if (item->room_seq < r->next) {
		o->duplicates++;
		return;
	}
	if (item->room_seq > r->next) {
		hold(o, r, item, route, now_ms);
		return;
	}
	r->next++;
	o->deliver(o->arg, route, item->body, item->sids);
	release(o, item->rid.p, item->rid.len);
}

size_t
tn_room_orders_expire(struct tn_room_orders *o, int64_t now_ms,
	void (*gave_up)(void *arg, const char *rid), void *arg)
{
	if (o->n_holding == 0)
		return 0;
	size_t it = 0, n = 0;
	char **due = tn_malloc((o->rooms.count + 1) * sizeof(*due));
	for (struct tn_map_entry *e; (e = tn_map_next(&o->rooms, &it)) != NULL;) {
		struct room_order *r = e->val;
		if (r->n_held && now_ms - r->held_since >= o->hold_ms)
			due[n++] = tn_strndup(r->rid, r->rid_len);
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(due[i]);
		struct room_order *r = tn_map_get(&o->rooms, due[i], len);
		if (r && r->n_held) {
			/* Skip the gap: what came after it goes out, in order. */
			r->next = r->held[0].seq;
			release(o, due[i], len);
			o->gaps_given_up++;
			gave_up(arg, due[i]);
		}
		free(due[i]);
	}
	free(due);
	return n;
}
