/* Puts each room's broadcasts back in the order the room's owner numbered them, across
 * the chat servers that carried them. A room's pushes come over the push stream of
 * whichever chat server held the room; when the room moves, the last pushes of the old
 * holder and the first of the new one travel over two streams and may arrive the wrong
 * way round. Each broadcast carries the room's sequence number and generation
 * (proto/push.h): this module delivers a room's items in that order, holds an item that
 * arrives early until the ones before it come (a gap in one stream is fetched again by
 * the stream's own recovery), drops one already delivered, and gives a gap up after a
 * while (the caller then tells the room's local sessions).
 *
 * State is kept only for rooms with local sessions (the caller counts them in and out),
 * and starts over when the first one enters. Owned by the connector's owner thread;
 * nothing here is thread-safe. */
#ifndef TN_ROOM_ORDER_H
#define TN_ROOM_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "proto.h"
#include "push.h"

/* Delivers one push to the sessions sids (a view valid for the call). */
typedef void (*tn_room_order_deliver_fn)(void *arg, const char *route, struct tn_str body,
	struct tn_u64_iter sids);

struct tn_room_orders {
	struct tn_map rooms;      /* rid -> struct room_order (private) */
	size_t n_holding;         /* rooms with items held */
	int64_t hold_ms;          /* how long a gap is waited for */
	tn_room_order_deliver_fn deliver;
	void *arg;
	/* Counts, for metrics. */
	uint64_t held, reordered, duplicates, gaps_given_up;
};

void tn_room_orders_init(struct tn_room_orders *o, int64_t hold_ms,
	tn_room_order_deliver_fn deliver, void *arg);

/* Frees every room's state and held items (nothing is delivered). */
void tn_room_orders_fini(struct tn_room_orders *o);

/* A local session entered (delta 1) or left (delta -1) room rid. The first to enter and
 * the last to leave reset the room's state. */
void tn_room_orders_local(struct tn_room_orders *o, const char *rid, size_t len, int delta);

/* Takes one push item (route: the item's route as a C string): delivers it, and then
 * any held items that follow it, at once; or holds a copy of it; or drops it as already
 * delivered. Items that are not room broadcasts (room_seq 0), and items of rooms without
 * local sessions, are delivered at once. now_ms: tn_now_ms(). */
void tn_room_orders_item(struct tn_room_orders *o, const struct tn_push_item *item,
	const char *route, int64_t now_ms);

/* Gives up the gaps waited for longer than hold_ms at now_ms: for each such room,
 * delivers what it held in order, then calls gave_up(arg, rid) so the caller can tell the
 * room's local sessions that they missed messages. Returns how many rooms gave up. */
size_t tn_room_orders_expire(struct tn_room_orders *o, int64_t now_ms,
	void (*gave_up)(void *arg, const char *rid), void *arg);

#endif
