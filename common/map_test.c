#include "map.h"

#include <stdio.h>

#include "tn_test.h"

TN_TEST(put_get_del_many)
{
	enum { N = 5000 };
	static char keys[N][16];
	struct tn_map m;
	tn_map_init(&m);
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		TN_CHECK(tn_map_put(&m, keys[i], strlen(keys[i]), keys[i]) == NULL);
	}
	TN_CHECK_INT(m.count, ==, N);
	for (int i = 0; i < N; i++)
		TN_CHECK(tn_map_get(&m, keys[i], strlen(keys[i])) == keys[i]);
	/* Delete every other key; the rest stay reachable (backward shift keeps runs intact). */
	for (int i = 0; i < N; i += 2)
		TN_CHECK(tn_map_del(&m, keys[i], strlen(keys[i])) == keys[i]);
	TN_CHECK_INT(m.count, ==, N / 2);
	for (int i = 0; i < N; i++) {
		void *v = tn_map_get(&m, keys[i], strlen(keys[i]));
		TN_CHECK(i % 2 ? v == keys[i] : v == NULL);
	}
	TN_CHECK(tn_map_del(&m, "absent", 6) == NULL);
	size_t seen = 0, it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&m, &it)) != NULL;)
		seen++;
	TN_CHECK_INT(seen, ==, N / 2);
	tn_map_fini(&m);
}

TN_TEST(replace_returns_previous)
{
	struct tn_map m;
	tn_map_init(&m);
	int a = 1, b = 2;
	TN_CHECK(tn_map_put(&m, "x", 1, &a) == NULL);
	TN_CHECK(tn_map_put(&m, "x", 1, &b) == &a);
	TN_CHECK(tn_map_get(&m, "x", 1) == &b);
	TN_CHECK(tn_map_get(&m, "", 0) == NULL);
	TN_CHECK(tn_map_put(&m, "", 0, &a) == NULL); /* the empty key is a key */
	TN_CHECK(tn_map_get(&m, "", 0) == &a);
	tn_map_fini(&m);
}

TN_TEST_MAIN(TN_CASE(put_get_del_many), TN_CASE(replace_returns_previous))
