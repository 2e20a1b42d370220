/* Per-room ordering of pushes across chat servers. */
#include <stdio.h>
#include <string.h>

#include "room_order.h"
#include "tn_test.h"

struct log {
	char text[1024];
	int gave_up;
};

static void
deliver(void *arg, const char *route, struct tn_str body, struct tn_u64_iter sids)
{
	struct log *l = arg;
	size_t n = strlen(l->text);
	snprintf(l->text + n, sizeof(l->text) - n, "%s%.*s", n ? "," : "", (int)body.len, body.p);
}

static void
gave_up(void *arg, const char *rid)
{
	struct log *l = arg;
	l->gave_up++;
}

static void
item(struct tn_room_orders *o, const char *rid, uint64_t gen, uint64_t seq, const char *body,
	int64_t now)
{
	static const uint64_t sids[] = {1, 2};
	struct tn_push_item it = {.rid = tn_str_of(rid), .route = TN_STR("onChat"),
		.body = tn_str_of(body), .room_seq = seq, .room_gen = gen};
	tn_u64_iter_init(&it.sids, sids, 2);
	tn_room_orders_item(o, &it, "onChat", now);
}

TN_TEST(test_in_order_and_reordered)
{
	struct log l = {{0}, 0};
	struct tn_room_orders o;
	tn_room_orders_init(&o, 1000, deliver, &l);
	tn_room_orders_local(&o, "r", 1, 1);
	item(&o, "r", 7, 10, "a", 0);
	item(&o, "r", 7, 11, "b", 0);
	/* 13 and 14 come over the new holder's stream before 12 over the old one's. */
	item(&o, "r", 7, 13, "d", 0);
	item(&o, "r", 7, 14, "e", 0);
	TN_CHECK_STR(l.text, "a,b");
	item(&o, "r", 7, 12, "c", 0);
	TN_CHECK_STR(l.text, "a,b,c,d,e");
	TN_CHECK(o.held == 2 && o.reordered == 2 && o.n_holding == 0);
	/* Again: dropped. */
	item(&o, "r", 7, 13, "d", 0);
	item(&o, "r", 7, 9, "z", 0);
	TN_CHECK_STR(l.text, "a,b,c,d,e");
	TN_CHECK(o.duplicates == 2);
	tn_room_orders_fini(&o);
}

TN_TEST(test_private_and_unknown_rooms_pass_through)
{
	struct log l = {{0}, 0};
	struct tn_room_orders o;
	tn_room_orders_init(&o, 1000, deliver, &l);
	tn_room_orders_local(&o, "r", 1, 1);
	item(&o, "r", 1, 5, "a", 0);
	item(&o, "r", 0, 0, "private", 0); /* not a broadcast: never held */
	item(&o, "other", 1, 99, "x", 0);  /* no local session there: not ordered */
	item(&o, "r", 1, 7, "c", 0);       /* held */
	TN_CHECK_STR(l.text, "a,private,x");
	tn_room_orders_fini(&o); /* frees what is held */
}

TN_TEST(test_new_generation_starts_over)
{
	struct log l = {{0}, 0};
	struct tn_room_orders o;
	tn_room_orders_init(&o, 1000, deliver, &l);
	tn_room_orders_local(&o, "r", 1, 1);
	item(&o, "r", 5, 40, "a", 0);
	item(&o, "r", 5, 42, "c", 0); /* held: 41 missing */
	/* The room was rebuilt (a crash): numbering starts over under a larger generation;
	 * what was held goes out first. */
	item(&o, "r", 9, 1, "x", 0);
	item(&o, "r", 9, 2, "y", 0);
	TN_CHECK_STR(l.text, "a,c,x,y");
	/* A late item of the old life is dropped. */
	item(&o, "r", 5, 41, "b", 0);
	TN_CHECK_STR(l.text, "a,c,x,y");
	tn_room_orders_fini(&o);
}

TN_TEST(test_gap_given_up_after_the_hold)
{
	struct log l = {{0}, 0};
	struct tn_room_orders o;
	tn_room_orders_init(&o, 1000, deliver, &l);
	tn_room_orders_local(&o, "r", 1, 1);
	item(&o, "r", 1, 1, "a", 100);
	item(&o, "r", 1, 3, "c", 200);
	item(&o, "r", 1, 4, "d", 300);
	TN_CHECK_INT(tn_room_orders_expire(&o, 1199, gave_up, &l), ==, 0);
	TN_CHECK_STR(l.text, "a");
	TN_CHECK_INT(tn_room_orders_expire(&o, 1200, gave_up, &l), ==, 1);
	TN_CHECK_STR(l.text, "a,c,d");
	TN_CHECK(l.gave_up == 1 && o.gaps_given_up == 1 && o.n_holding == 0);
	item(&o, "r", 1, 5, "e", 1300);
	TN_CHECK_STR(l.text, "a,c,d,e");
	tn_room_orders_fini(&o);
}

TN_TEST(test_local_sessions_reset_the_state)
{
	struct log l = {{0}, 0};
	struct tn_room_orders o;
	tn_room_orders_init(&o, 1000, deliver, &l);
	tn_room_orders_local(&o, "r", 1, 1);
	tn_room_orders_local(&o, "r", 1, 1);
	item(&o, "r", 1, 10, "a", 0);
	tn_room_orders_local(&o, "r", 1, -1);
	item(&o, "r", 1, 11, "b", 0); /* one local session left: still ordered */
	tn_room_orders_local(&o, "r", 1, -1);
	/* Nobody here for a while (the room went on without this connector), then someone
	 * enters again: numbering picks up wherever the room is, no gap to wait for. */
	tn_room_orders_local(&o, "r", 1, 1);
	item(&o, "r", 1, 50, "c", 0);
	item(&o, "r", 1, 51, "d", 0);
	TN_CHECK_STR(l.text, "a,b,c,d");
	TN_CHECK(o.held == 0);
	tn_room_orders_fini(&o);
}

TN_TEST_MAIN(TN_CASE(test_in_order_and_reordered), TN_CASE(test_private_and_unknown_rooms_pass_through),
	TN_CASE(test_new_generation_starts_over), TN_CASE(test_gap_given_up_after_the_hold),
	TN_CASE(test_local_sessions_reset_the_state))
