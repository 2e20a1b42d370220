/* The gate's connector choice: least loaded (ties by uid), pomelo's crc32 % n, and the
 * uid hash. */
#include "gate.h"

#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "tn_test.h"

static struct tn_topology *
connectors(const uint64_t *conns, size_t n)
{
	struct tn_topology *t = tn_topology_new_empty();
	struct tn_server_info chat = {.id = "chat-1", .type = TN_SERVER_CHAT, .host = "h", .port = 1};
	tn_topology_add(t, &chat); /* not a candidate */
	for (size_t i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "connector-%zu", i + 1);
		struct tn_server_info s = {.id = id, .type = TN_SERVER_CONNECTOR, .host = "h",
			.port = 1, .client_port = 3050 + (int)i, .load = {.connections = conns[i]}};
		tn_topology_add(t, &s);
	}
	return t;
}

TN_TEST(test_no_connector)
{
	struct tn_topology *t = connectors(NULL, 0);
	for (int how = 0; how < 3; how++)
		TN_CHECK(tn_gate_pick(t, (enum tn_dispatch)how, "u", 1) == NULL);
	tn_topology_free(t);
}

TN_TEST(test_least_loaded)
{
	static const uint64_t load[] = {30, 4, 12};
	struct tn_topology *t = connectors(load, 3);
	for (int i = 0; i < 50; i++) {
		char uid[16];
		int n = snprintf(uid, sizeof(uid), "user%d", i);
		const struct tn_server_info *c =
			tn_gate_pick(t, TN_DISPATCH_LEAST_LOADED, uid, (size_t)n);
		TN_CHECK_STR(c->id, "connector-2");
	}
	tn_topology_free(t);
}

/* Even loads (within a tenth, at least one connection) are a tie broken by the uid. */
static void
check_ties(const uint64_t *load, size_t n, size_t tied)
{
	struct tn_topology *t = connectors(load, n);
	int count[8] = {0};
	for (int i = 0; i < 400; i++) {
		char uid[16];
		int len = snprintf(uid, sizeof(uid), "user%d", i);
		const struct tn_server_info *a =
			tn_gate_pick(t, TN_DISPATCH_LEAST_LOADED, uid, (size_t)len);
		const struct tn_server_info *b =
			tn_gate_pick(t, TN_DISPATCH_LEAST_LOADED, uid, (size_t)len);
		TN_CHECK(a == b); /* the same uid, the same answer */
		/* With even loads the choice is the uid hash over the tied ones. */
		const char *ids[8];
		uint64_t seeds[8];
		for (size_t k = 0; k < tied; k++) {
			ids[k] = t->servers[1 + k].id;
			seeds[k] = t->servers[1 + k].seed;
		}
		TN_CHECK_STR(a->id, ids[tn_hash_rendezvous_seeded(uid, (size_t)len, seeds, tied)]);
		count[a - &t->servers[1]]++;
	}
	for (size_t k = 0; k < tied; k++)
		TN_CHECK(count[k] > 400 / (int)tied / 2); /* spread over the tied ones */
	for (size_t k = tied; k < n; k++)
		TN_CHECK_INT(count[k], ==, 0);
	tn_topology_free(t);
}

TN_TEST(test_ties_by_uid)
{
	static const uint64_t zero[] = {0, 0, 0, 9};
	static const uint64_t one_apart[] = {1, 0, 1, 3};
	static const uint64_t tenth[] = {200, 210, 221, 300};
	check_ties(zero, 4, 3);
	check_ties(one_apart, 4, 3);
	check_ties(tenth, 4, 2);
}

TN_TEST(test_crc32_and_hash)
{
	static const uint64_t load[] = {0, 100, 1000};
	static const char *const ids[] = {"connector-1", "connector-2", "connector-3"};
	struct tn_topology *t = connectors(load, 3);
	for (int i = 0; i < 50; i++) {
		char uid[16];
		int n = snprintf(uid, sizeof(uid), "u%d", i);
		const struct tn_server_info *c = tn_gate_pick(t, TN_DISPATCH_CRC32, uid, (size_t)n);
		TN_CHECK_STR(c->id, ids[tn_hash_pomelo_index(uid, (size_t)n, 3)]);
		const struct tn_server_info *h = tn_gate_pick(t, TN_DISPATCH_HASH, uid, (size_t)n);
		TN_CHECK_STR(h->id, ids[tn_hash_rendezvous(uid, (size_t)n, ids, 3)]);
	}
	tn_topology_free(t);
}

TN_TEST_MAIN(TN_CASE(test_no_connector), TN_CASE(test_least_loaded), TN_CASE(test_ties_by_uid),
	TN_CASE(test_crc32_and_hash))
