/* Topologies: the servers.json seed, copies, natural ordering, membership differences and
 * room owners. */
#include "topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"
#include "hash.h"
#include "tn_test.h"

static const char seed_json[] =
	"{\"dev\":{"
	"\"registry\":[{\"id\":\"registry-1\",\"host\":\"127.0.0.1\",\"port\":3005}],"
	"\"connector\":[{\"id\":\"connector-2\",\"host\":\"0.0.0.0\",\"advertiseHost\":\"10.0.0.2\","
	"\"port\":4051,\"clientHost\":\"0.0.0.0\",\"clientPort\":\"3050-3099\","
	"\"publicHost\":\"chat.example.org\",\"adminPort\":9051}],"
	"\"chat\":[{\"id\":\"chat-10\",\"host\":\"127.0.0.1\",\"port\":6060},"
	"{\"id\":\"chat-2\",\"host\":\"127.0.0.1\",\"port\":6052}]}}";

static struct tn_topology *
load_seed(void)
{
	char path[] = "/tmp/tn_topology_testXXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "w");
	fputs(seed_json, f);
	fclose(f);
	struct tn_topology *t = NULL;
	char err[256];
	int rv = tn_topology_load_file(&t, path, "dev", err, sizeof(err));
	unlink(path);
	return rv == TN_OK ? t : NULL;
}

TN_TEST(test_load_seed)
{
	struct tn_topology *t = load_seed();
	TN_CHECK(t != NULL);
	TN_CHECK_INT(t->n, ==, 4);
	TN_CHECK(t->version == 1 && t->registry_inc == 0);
	const struct tn_server_info *c = tn_topology_find(t, "connector-2");
	TN_CHECK(c != NULL);
	TN_CHECK_INT(c->type, ==, TN_SERVER_CONNECTOR);
	TN_CHECK_STR(c->host, "10.0.0.2");      /* advertised, not bound */
	TN_CHECK_STR(c->bind_host, "0.0.0.0");
	TN_CHECK_INT(c->client_port, ==, 3050); /* the first port of the range */
	TN_CHECK_STR(c->client_host, "chat.example.org");
	TN_CHECK_STR(c->client_bind_host, "0.0.0.0");
	TN_CHECK_STR(c->admin_host, "");
	TN_CHECK_STR(c->version, "");
	TN_CHECK_INT(c->admin_port, ==, 9051);
	const struct tn_server_info *chats[4];
	TN_CHECK_INT(tn_topology_of_type(t, TN_SERVER_CHAT, chats, 4), ==, 2);
	TN_CHECK_STR(chats[0]->id, "chat-10"); /* file order */
	TN_CHECK(tn_topology_find(t, "nosuch") == NULL);
	char err[256];
	struct tn_topology *none = NULL;
	TN_CHECK_INT(tn_topology_load_file(&none, "/nonexistent/servers.json", "dev", err,
			     sizeof(err)), ==, TN_ECONFIG);
	TN_CHECK(none == NULL);
	tn_topology_free(t);
}

TN_TEST(test_natural_order)
{
	TN_CHECK(tn_server_id_cmp("chat-2", "chat-10") < 0);
	TN_CHECK(tn_server_id_cmp("chat-10", "chat-2") > 0);
	TN_CHECK(tn_server_id_cmp("chat-2", "chat-2") == 0);
	TN_CHECK(tn_server_id_cmp("chat-02", "chat-2") == 0);
	TN_CHECK(tn_server_id_cmp("chat", "chat-1") < 0);
	TN_CHECK(tn_server_id_cmp("a9b", "a10a") < 0);
	TN_CHECK(tn_server_id_cmp("b", "a10") > 0);
	TN_CHECK(tn_server_id_cmp("x99999999999999999999999", "x100000000000000000000000") < 0);
	struct tn_topology *t = load_seed();
	TN_CHECK(t != NULL);
	tn_topology_sort(t);
	TN_CHECK_STR(t->servers[0].id, "connector-2"); /* connectors (1) before chat (2) */
	TN_CHECK_STR(t->servers[1].id, "chat-2");
	TN_CHECK_STR(t->servers[2].id, "chat-10");
	TN_CHECK_STR(t->servers[3].id, "registry-1");
	/* Sorting keeps each entry's seed with it: room owners do not change. */
	struct tn_topology *u = load_seed();
	for (int i = 0; i < 50; i++) {
		char rid[16];
		int n = snprintf(rid, sizeof(rid), "room%d", i);
		TN_CHECK_STR(tn_topology_room_owner(t, rid, (size_t)n, TN_ROOM_HASH_RENDEZVOUS)->id,
			tn_topology_room_owner(u, rid, (size_t)n, TN_ROOM_HASH_RENDEZVOUS)->id);
	}
	tn_topology_free(u);
	tn_topology_free(t);
}

TN_TEST(test_copy_and_differences)
{
	struct tn_topology *t = load_seed();
	TN_CHECK(t != NULL);
	t->version = 7;
	t->registry_inc = 99;
	t->servers[1].load.connections = 5;
	struct tn_topology *c = tn_topology_copy(t);
	TN_CHECK(c->version == 7 && c->registry_inc == 99 && c->n == t->n);
	TN_CHECK(c->servers[1].id != t->servers[1].id); /* deep */
	TN_CHECK_STR(c->servers[1].id, t->servers[1].id);
	TN_CHECK(c->servers[1].load.connections == 5);
	TN_CHECK(c->servers[1].seed == t->servers[1].seed);
	TN_CHECK_INT(tn_topology_missing(c, t), ==, 0);
	TN_CHECK_INT(tn_topology_missing(t, c), ==, 0);

	/* One server leaves, one joins, one restarts (a new incarnation). */
	struct tn_topology *next = tn_topology_new_empty();
	struct tn_server_info joined = {.id = "chat-3", .type = TN_SERVER_CHAT, .host = "h",
		.port = 1};
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->servers[i].id, "chat-2") != 0)
			tn_topology_add(next, &t->servers[i]);
	tn_topology_add(next, &joined);
	TN_CHECK_INT(tn_topology_missing(next, t), ==, 1);
	TN_CHECK_INT(tn_topology_missing(t, next), ==, 1);
	TN_CHECK_STR(tn_topology_find(next, "chat-3")->client_host, ""); /* NULL -> "" */
	c->servers[0].incarnation = 5;
	next->servers[0].incarnation = 5;
	TN_CHECK(tn_server_info_same(&c->servers[0], &next->servers[0]));
	next->servers[0].incarnation = 6;
	TN_CHECK(!tn_server_info_same(&c->servers[0], &next->servers[0]));
	next->servers[0].incarnation = 0; /* unknown on one side: the id decides */
	TN_CHECK(tn_server_info_same(&c->servers[0], &next->servers[0]));
	next->servers[0].port++;
	TN_CHECK(!tn_server_info_same(&c->servers[0], &next->servers[0]));
	tn_topology_free(next);
	tn_topology_free(c);
	tn_topology_free(t);
}

TN_TEST(test_room_owner)
{
	struct tn_topology *t = tn_topology_new_empty();
	TN_CHECK(tn_topology_room_owner(t, "r", 1, TN_ROOM_HASH_RENDEZVOUS) == NULL);
	TN_CHECK(tn_topology_room_owner(t, "r", 1, TN_ROOM_HASH_CRC32) == NULL);
	struct tn_server_info s = {.type = TN_SERVER_CHAT, .host = "h", .port = 1};
	const char *ids[] = {"chat-1", "chat-2", "chat-3"};
	for (int i = 0; i < 3; i++) {
		s.id = (char *)ids[i];
		tn_topology_add(t, &s);
	}
	/* Adding a fourth server moves only the rooms it now wins. */
	struct tn_topology *u = tn_topology_copy(t);
	s.id = "chat-4";
	tn_topology_add(u, &s);
	int moved = 0;
	for (int i = 0; i < 400; i++) {
		char rid[16];
		int n = snprintf(rid, sizeof(rid), "r%d", i);
		const char *a = tn_topology_room_owner(t, rid, (size_t)n, TN_ROOM_HASH_RENDEZVOUS)->id;
		const char *b = tn_topology_room_owner(u, rid, (size_t)n, TN_ROOM_HASH_RENDEZVOUS)->id;
		if (strcmp(a, b) != 0) {
			TN_CHECK_STR(b, "chat-4");
			moved++;
		}
	}
	TN_CHECK(moved > 50 && moved < 150);
	/* pomelo's choice: abs(crc32("room1")) % 3 over the chat servers in order. */
	for (int i = 0; i < 20; i++) {
		char rid[16];
		int n = snprintf(rid, sizeof(rid), "room%d", i);
		uint32_t want = tn_hash_pomelo_index(rid, (size_t)n, 3);
		TN_CHECK_STR(tn_topology_room_owner(t, rid, (size_t)n, TN_ROOM_HASH_CRC32)->id,
			ids[want]);
	}
	tn_topology_free(u);
	tn_topology_free(t);
}

/* The id of a room's owner by rendezvous. */
static const char *
owner_id(const struct tn_topology *t, const char *rid, int len)
{
	return tn_topology_room_owner(t, rid, (size_t)len, TN_ROOM_HASH_RENDEZVOUS)->id;
}

/* Four chat servers (and a connector in between, which never owns rooms). */
static struct tn_topology *
four_chats(void)
{
	struct tn_topology *t = tn_topology_new_empty();
	const char *ids[] = {"chat-1", "chat-2", "connector-1", "chat-3", "chat-4"};
	for (int i = 0; i < 5; i++) {
		struct tn_server_info s = {.id = (char *)ids[i], .host = "h", .port = 1,
			.type = i == 2 ? TN_SERVER_CONNECTOR : TN_SERVER_CHAT};
		tn_topology_add(t, &s);
	}
	return t;
}

static void
set_draining(struct tn_topology *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->servers[i].id, id) == 0)
			t->servers[i].draining = true;
}

/* Rendezvous: a draining server owns nothing; its rooms go where they would go if it had
 * left, and no other room moves. */
TN_TEST(test_room_owner_skips_draining_rendezvous)
{
	struct tn_topology *t = four_chats();
	struct tn_topology *d = tn_topology_copy(t);
	set_draining(d, "chat-2");
	TN_CHECK(d->servers[1].draining && !d->servers[0].draining); /* copies keep the flag */
	struct tn_topology *gone = tn_topology_new_empty();
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->servers[i].id, "chat-2") != 0)
			tn_topology_add(gone, &t->servers[i]);
	int was_chat2 = 0;
	for (int i = 0; i < 400; i++) {
		char rid[16];
		int n = snprintf(rid, sizeof(rid), "r%d", i);
		const char *before = owner_id(t, rid, n);
		const char *now = owner_id(d, rid, n);
		const char *left = owner_id(gone, rid, n);
		TN_CHECK(strcmp(now, "chat-2") != 0);
		TN_CHECK_STR(now, left);
		if (strcmp(before, "chat-2") == 0)
			was_chat2++;
		else
			TN_CHECK_STR(now, before);
	}
	TN_CHECK(was_chat2 > 50); /* the test did move rooms */
	/* Every chat server draining: they are all candidates again, as if none were. */
	set_draining(d, "chat-1");
	set_draining(d, "chat-3");
	set_draining(d, "chat-4");
	for (int i = 0; i < 100; i++) {
		char rid[16];
		int n = snprintf(rid, sizeof(rid), "r%d", i);
		TN_CHECK_STR(owner_id(d, rid, n), owner_id(t, rid, n));
	}
	tn_topology_free(gone);
	tn_topology_free(d);
	tn_topology_free(t);
}

/* pomelo's crc32 % n: n and the order are those of the chat servers not draining. */
TN_TEST(test_room_owner_skips_draining_crc32)
{
	struct tn_topology *t = four_chats();
	set_draining(t, "chat-3");
	const char *live[] = {"chat-1", "chat-2", "chat-4"};
	const char *all[] = {"chat-1", "chat-2", "chat-3", "chat-4"};
	int differs = 0;
	for (int i = 0; i < 40; i++) {
		char rid[16];
		int n = snprintf(rid, sizeof(rid), "room%d", i);
		uint32_t want = tn_hash_pomelo_index(rid, (size_t)n, 3);
		const char *got = tn_topology_room_owner(t, rid, (size_t)n, TN_ROOM_HASH_CRC32)->id;
		TN_CHECK_STR(got, live[want]);
		differs += strcmp(got, all[tn_hash_pomelo_index(rid, (size_t)n, 4)]) != 0;
	}
	TN_CHECK(differs > 0);
	for (size_t i = 0; i < t->n; i++)
		t->servers[i].draining = true;
	for (int i = 0; i < 40; i++) {
		char rid[16];
		int n = snprintf(rid, sizeof(rid), "room%d", i);
		uint32_t want = tn_hash_pomelo_index(rid, (size_t)n, 4);
		TN_CHECK_STR(tn_topology_room_owner(t, rid, (size_t)n, TN_ROOM_HASH_CRC32)->id,
			all[want]);
	}
	tn_topology_free(t);
}

/* A topology with one server more (or one replaced), sorted, leaving the original alone. */
TN_TEST(test_topology_with)
{
	struct tn_topology *t = four_chats();
	t->version = 9;
	t->registry_inc = 3;
	struct tn_server_info extra = {.id = "chat-10", .type = TN_SERVER_CHAT, .host = "x",
		.port = 7, .incarnation = 5, .draining = true};
	struct tn_topology *w = tn_topology_with(t, &extra);
	TN_CHECK_INT(t->n, ==, 5);
	TN_CHECK_INT(w->n, ==, 6);
	TN_CHECK(w->version == 9 && w->registry_inc == 3);
	/* Sorted: the connector first, then the chat servers in natural order. */
	const char *order[] = {"connector-1", "chat-1", "chat-2", "chat-3", "chat-4", "chat-10"};
	for (int i = 0; i < 6; i++)
		TN_CHECK_STR(w->servers[i].id, order[i]);
	const struct tn_server_info *e = tn_topology_find(w, "chat-10");
	TN_CHECK(e != NULL && e->id != extra.id && e->draining && e->port == 7);
	TN_CHECK(e->seed == tn_hash_server_seed("chat-10"));
	TN_CHECK_STR(e->client_host, ""); /* NULL -> "" */
	/* Who owned a room while chat-10 was there and not draining. */
	extra.draining = false;
	struct tn_topology *w2 = tn_topology_with(t, &extra);
	struct tn_topology *grown = tn_topology_copy(t);
	tn_topology_add(grown, &extra);
	for (int i = 0; i < 100; i++) {
		char rid[16];
		int n = snprintf(rid, sizeof(rid), "r%d", i);
		TN_CHECK_STR(owner_id(w2, rid, n), owner_id(grown, rid, n));
	}
	/* An entry with the same id is replaced, not doubled. */
	struct tn_server_info again = {.id = "chat-2", .type = TN_SERVER_CHAT, .host = "moved",
		.port = 8, .draining = true};
	struct tn_topology *r = tn_topology_with(w2, &again);
	TN_CHECK_INT(r->n, ==, 6);
	TN_CHECK_STR(tn_topology_find(r, "chat-2")->host, "moved");
	TN_CHECK(tn_topology_find(r, "chat-2")->draining);
	TN_CHECK_STR(tn_topology_find(w2, "chat-2")->host, "h");
	/* And an empty topology takes its first entry. */
	struct tn_topology *empty = tn_topology_new_empty();
	struct tn_topology *one = tn_topology_with(empty, &again);
	TN_CHECK(one->n == 1 && strcmp(one->servers[0].id, "chat-2") == 0);
	TN_CHECK(tn_topology_room_owner(one, "r", 1, TN_ROOM_HASH_CRC32) == &one->servers[0]);
	tn_topology_free(one);
	tn_topology_free(empty);
	tn_topology_free(r);
	tn_topology_free(grown);
	tn_topology_free(w2);
	tn_topology_free(w);
	tn_topology_free(t);
}

TN_TEST_MAIN(TN_CASE(test_load_seed), TN_CASE(test_natural_order),
	TN_CASE(test_copy_and_differences), TN_CASE(test_room_owner),
	TN_CASE(test_room_owner_skips_draining_rendezvous),
	TN_CASE(test_room_owner_skips_draining_crc32), TN_CASE(test_topology_with))
