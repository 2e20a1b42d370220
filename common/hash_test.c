#include "hash.h"

#include <stdio.h>

#include "tn_test.h"

TN_TEST(crc32_known_values)
{
	/* Standard check value of CRC-32/ISO-HDLC. */
	TN_CHECK_INT(tn_hash_crc32("123456789", 9), ==, 0xcbf43926u);
	TN_CHECK_INT(tn_hash_crc32("", 0), ==, 0);
	TN_CHECK_INT(tn_hash_crc32("The quick brown fox jumps over the lazy dog", 43), ==, 0x414fa339u);
}

TN_TEST(pomelo_index_uses_signed_abs)
{
	/* crc32("123456789") = 0xcbf43926, as int32 -873187034; abs = 873187034. */
	TN_CHECK_INT(tn_hash_pomelo_index("123456789", 9, 3), ==, 873187034u % 3);
	TN_CHECK_INT(tn_hash_pomelo_index("123456789", 9, 7), ==, 873187034u % 7);
	/* 0x414fa339 has the top bit clear: abs is the value itself. */
	TN_CHECK_INT(tn_hash_pomelo_index("The quick brown fox jumps over the lazy dog", 43, 5), ==,
		0x414fa339u % 5);
	for (uint32_t n = 1; n < 10; n++)
		TN_CHECK_INT(tn_hash_pomelo_index("room1", 5, n), <, n);
}

static const char *const ids[] = {"chat-server-1", "chat-server-2", "chat-server-3",
	"chat-server-4"};

TN_TEST(rendezvous_even_spread)
{
	enum { KEYS = 30000 };
	int count[3] = {0};
	char key[32];
	for (int i = 0; i < KEYS; i++) {
		int n = snprintf(key, sizeof(key), "room-%d", i);
		int w = tn_hash_rendezvous(key, (size_t)n, ids, 3);
		TN_CHECK(w >= 0 && w < 3);
		count[w]++;
	}
	/* Each gets a third, within 5 %. */
	for (int s = 0; s < 3; s++)
		TN_CHECK_INT(count[s] * 100 / (KEYS / 3), >=, 95);
	for (int s = 0; s < 3; s++)
		TN_CHECK_INT(count[s] * 100 / (KEYS / 3), <=, 105);
}

TN_TEST(rendezvous_minimal_movement)
{
	enum { KEYS = 40000 };
	int moved = 0;
	char key[32];
	for (int i = 0; i < KEYS; i++) {
		int n = snprintf(key, sizeof(key), "r%d", i);
		int before = tn_hash_rendezvous(key, (size_t)n, ids, 3);
		int after = tn_hash_rendezvous(key, (size_t)n, ids, 4);
		if (before != after) {
			moved++;
			/* A key that moves, moves only to the new server. */
			TN_CHECK_INT(after, ==, 3);
		}
	}
	/* About 1/4 of the keys move (1/(n+1) for n = 3). */
	TN_CHECK_INT(moved, >, KEYS * 22 / 100);
	TN_CHECK_INT(moved, <, KEYS * 28 / 100);
}

TN_TEST(rendezvous_edge_cases)
{
	TN_CHECK_INT(tn_hash_rendezvous("k", 1, ids, 0), ==, -1);
	TN_CHECK_INT(tn_hash_rendezvous("k", 1, ids, 1), ==, 0);
	uint64_t seeds[4];
	for (int i = 0; i < 4; i++)
		seeds[i] = tn_hash_server_seed(ids[i]);
	TN_CHECK_INT(tn_hash_rendezvous_seeded("abc", 3, seeds, 4), ==,
		tn_hash_rendezvous("abc", 3, ids, 4));
	TN_CHECK(tn_hash64("a", 1, 1) != tn_hash64("a", 1, 2));
}

TN_TEST_MAIN(TN_CASE(crc32_known_values), TN_CASE(pomelo_index_uses_signed_abs),
	TN_CASE(rendezvous_even_spread), TN_CASE(rendezvous_minimal_movement),
	TN_CASE(rendezvous_edge_cases))
