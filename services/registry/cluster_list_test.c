/* The cluster listing: the table and JSON layouts, durations, and fetching from a real
 * registry core (inproc) and from none. */
#include "cluster_list.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "json.h"
#include "registry_server.h"
#include "tn_test.h"

static struct tn_topology *
sample_topology(void)
{
	struct tn_topology *t = tn_topology_new_empty();
	t->version = 7;
	t->registry_inc = 1700000000000001;
	struct tn_server_info s[] = {
		{.id = "gate-server-1", .type = TN_SERVER_GATE, .host = "10.0.0.2",
			.client_host = "", .client_port = 3014, .pid = 101,
			.load = {.connections = 3, .uptime_ms = 3723000, .rss_bytes = 5 << 20}},
		{.id = "connector-server-1", .type = TN_SERVER_CONNECTOR, .host = "10.0.0.3",
			.port = 4050, .client_host = "chat.example.org", .client_port = 3050,
			.pid = 102, .load = {.connections = 120, .sessions = 118, .msgs_milli = 2500,
			.uptime_ms = 65000, .rss_bytes = 12 << 20}},
		{.id = "chat-server-1", .type = TN_SERVER_CHAT, .host = "fd00::4", .port = 6050,
			.pid = 103, .load = {.rooms = 17, .members = 118, .uptime_ms = 9000},
			.draining = true},
		{.id = "registry-server-1", .type = TN_SERVER_REGISTRY, .host = "10.0.0.1",
			.port = 3005, .pid = 100, .load = {.connections = 3, .uptime_ms = 200000000}},
	};
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		tn_topology_add(t, &s[i]);
	return t;
}

TN_TEST(test_durations)
{
	char b[32];
	tn_cluster_list_duration(b, sizeof(b), 0);
	TN_CHECK_STR(b, "0s");
	tn_cluster_list_duration(b, sizeof(b), 59999);
	TN_CHECK_STR(b, "59s");
	tn_cluster_list_duration(b, sizeof(b), 65000);
	TN_CHECK_STR(b, "1m05s");
	tn_cluster_list_duration(b, sizeof(b), 3723000);
	TN_CHECK_STR(b, "1h02m");
	tn_cluster_list_duration(b, sizeof(b), 200000000);
	TN_CHECK_STR(b, "2d07h");
}

TN_TEST(test_table)
{
	struct tn_topology *t = sample_topology();
	struct tn_buf b;
	tn_buf_init(&b);
	tn_cluster_list_table(&b, t, true);
	tn_buf_append_byte(&b, '\0');
	const char *text = (const char *)b.data;
	fputs(text, stderr);
	static const char summary[] = "epoch 7, 4 servers (1 registry, 1 gate, 1 connector, 1 chat)";
	TN_CHECK(strncmp(text, summary, sizeof(summary) - 1) == 0);
	TN_CHECK(strstr(text, "waiting for servers to re-register") != NULL);
	const char *head = strstr(text, "ID ");
	TN_CHECK(head != NULL);
	/* Every line of the table is as wide as its header up to the last column. */
	const char *conn = strstr(text, "\nconnector-server-1 ");
	TN_CHECK(conn != NULL);
	TN_CHECK(strstr(conn, "10.0.0.3:4050") && strstr(conn, "chat.example.org:3050"));
	TN_CHECK(strstr(conn, "120 conns") && strstr(conn, "12.0M") && strstr(conn, "2.5\n"));
	TN_CHECK(strstr(conn, "1m05s") != NULL);
	const char *chat = strstr(text, "\nchat-server-1 ");
	TN_CHECK(chat && strstr(chat, "[fd00::4]:6050") && strstr(chat, "17 rooms"));
	const char *gate = strstr(text, "\ngate-server-1 ");
	TN_CHECK(gate && strstr(gate, "*:3014") && strstr(gate, "1h02m"));
	TN_CHECK(strstr(text, "3 servers") != NULL);
	/* Columns line up: TYPE starts at the same offset on every line. */
	size_t col = (size_t)(strstr(head, "TYPE") - head);
	TN_CHECK(strncmp(conn + 1 + col, "connector", 9) == 0);
	TN_CHECK(strncmp(chat + 1 + col, "chat", 4) == 0);
	/* So does STATE, which tells a draining server from the others. */
	size_t state = (size_t)(strstr(head, "STATE") - head);
	TN_CHECK(strstr(head, "STATE") != NULL && state > col);
	TN_CHECK(strncmp(chat + 1 + state, "draining ", 9) == 0);
	TN_CHECK(strncmp(conn + 1 + state, "up ", 3) == 0);
	TN_CHECK(strncmp(gate + 1 + state, "up ", 3) == 0);
	const char *after_state = strstr(head, "ADDRESS");
	TN_CHECK(after_state != NULL && after_state > head + state);
	tn_buf_fini(&b);
	tn_topology_free(t);
}

TN_TEST(test_json)
{
	struct tn_topology *t = sample_topology();
	struct tn_buf b;
	tn_buf_init(&b);
	tn_cluster_list_json(&b, t, false);
	json_object *root = NULL;
	TN_CHECK_OK(tn_json_parse(&root, b.data, b.len, 16));
	json_object *servers, *s, *v;
	TN_CHECK(json_object_object_get_ex(root, "servers", &servers));
	TN_CHECK_INT(json_object_array_length(servers), ==, 4);
	s = json_object_array_get_idx(servers, 1);
	TN_CHECK_STR(tn_json_get_str(s, "id", NULL), "connector-server-1");
	TN_CHECK_STR(tn_json_get_str(s, "type", NULL), "connector");
	int64_t n;
	TN_CHECK(tn_json_get_int(s, "client_port", &n) && n == 3050);
	TN_CHECK(tn_json_get_int(s, "sessions", &n) && n == 118);
	TN_CHECK(json_object_object_get_ex(s, "msgs_per_s", &v));
	TN_CHECK(json_object_get_double(v) > 2.49 && json_object_get_double(v) < 2.51);
	TN_CHECK(json_object_object_get_ex(s, "draining", &v) && !json_object_get_boolean(v));
	TN_CHECK(json_object_is_type(v, json_type_boolean));
	s = json_object_array_get_idx(servers, 2);
	TN_CHECK_STR(tn_json_get_str(s, "id", NULL), "chat-server-1");
	TN_CHECK(json_object_object_get_ex(s, "draining", &v) && json_object_get_boolean(v));
	TN_CHECK(json_object_object_get_ex(root, "recovering", &v) && !json_object_get_boolean(v));
	TN_CHECK(tn_json_get_int(root, "epoch", &n) && n == 7);
	json_object_put(root);
	tn_buf_fini(&b);
	tn_topology_free(t);
}

static void *
loop_main(void *arg)
{
	tn_loop_run(arg);
	return NULL;
}

TN_TEST(test_fetch)
{
	struct tn_topology *t = NULL;
	bool recovering = true;
	char err[256];
	/* Nobody there: a clear error within the timeout. */
	int64_t t0 = tn_now_ms();
	TN_CHECK_INT(tn_cluster_list_fetch(&t, &recovering, "inproc://nobody", 200, err,
			     sizeof(err)), ==, TN_ETIMEDOUT);
	TN_CHECK(tn_now_ms() - t0 < 2000);
	TN_CHECK(strstr(err, "no answer from the registry") != NULL);
	TN_CHECK_INT(tn_cluster_list_fetch(&t, &recovering, "nohost", 200, err, sizeof(err)), ==,
		TN_EINVAL);
	/* A registry in its quiet period still answers the listing. */
	struct tn_server_info self = {.id = "registry-9", .type = TN_SERVER_REGISTRY,
		.host = "127.0.0.1", .port = 1};
	struct tn_registry_opts o = {&self, "inproc://list-test", "inproc://list-test-notices",
		1000, 60000};
	struct tn_loop *loop = tn_loop_new();
	struct tn_registry *r = NULL;
	TN_CHECK_OK(tn_registry_new(&r, &o, loop));
	pthread_t thr;
	pthread_create(&thr, NULL, loop_main, loop);
	TN_CHECK_OK(tn_cluster_list_fetch(&t, &recovering, "inproc://list-test", 2000, err,
		sizeof(err)));
	TN_CHECK(recovering && t->n == 1);
	TN_CHECK_STR(t->servers[0].id, "registry-9");
	TN_CHECK(t->servers[0].pid == 0 && t->servers[0].incarnation == tn_registry_incarnation(r));
	tn_topology_free(t);
	tn_loop_stop(loop);
	pthread_join(thr, NULL);
	tn_loop_close(loop);
	tn_registry_free(r);
	tn_loop_free(loop);
}

TN_TEST_MAIN(TN_CASE(test_durations), TN_CASE(test_table), TN_CASE(test_json), TN_CASE(test_fetch))
