#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "err.h"
#include "tn_test.h"

static char path[64];

static void
write_file(const char *text)
{
	snprintf(path, sizeof(path), "/tmp/tn_config_test_%d.json", (int)getpid());
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

static const char good[] =
	"{\"development\":{"
	"\"registry\":[{\"id\":\"registry-1\",\"host\":\"127.0.0.1\",\"port\":3005}],"
	"\"gate\":[{\"id\":\"gate-server-1\",\"host\":\"127.0.0.1\",\"clientPort\":3014,\"frontend\":true}],"
	"\"connector\":[{\"id\":\"connector-server-1\",\"host\":\"127.0.0.1\",\"port\":4050,"
	"\"clientPort\":\"3050-3059\",\"frontend\":true,\"max-connections\":500,\"adminPort\":9050}],"
	"\"chat\":[{\"id\":\"chat-server-1\",\"host\":\"127.0.0.2\",\"port\":6050}]},"
	"\"production\":{\"chat\":[{\"id\":\"chat-server-1\",\"host\":\"10.0.0.1\",\"port\":7000}]}}";

static void
clear_env(void)
{
	unsetenv("TERN_PORT");
	unsetenv("TERN_ID");
	unsetenv("TERN_ENV");
	unsetenv("TERN_CONFIG");
	unsetenv("TERN_HEARTBEAT");
}

static int
load(struct tn_config *c, enum tn_server_type t, char *err, int argc, char **argv)
{
	return tn_config_load(c, t, argc, argv, err, 256);
}

TN_TEST(entry_found_by_id_and_env)
{
	clear_env();
	write_file(good);
	char err[256];
	char *argv[] = {"x", "--env", "development", "--id", "connector-server-1", "--config", path};
	struct tn_config c;
	TN_CHECK_OK(load(&c, TN_SERVER_CONNECTOR, err, 7, argv));
	TN_CHECK_INT(c.port, ==, 4050);
	TN_CHECK_INT(c.client_port_min, ==, 3050);
	TN_CHECK_INT(c.client_port_max, ==, 3059);
	TN_CHECK_INT(c.max_connections, ==, 500);
	TN_CHECK_INT(c.admin_port, ==, 9050);
	TN_CHECK_INT(c.heartbeat_s, ==, 3);
	TN_CHECK_STR(c.registry, "127.0.0.1:3005");
	TN_CHECK_STR(c.advertise_host, "127.0.0.1");
	tn_config_fini(&c);

	char *argv2[] = {"x", "--env=production", "--id=chat-server-1", "--config", path};
	TN_CHECK_OK(load(&c, TN_SERVER_CHAT, err, 5, argv2));
	TN_CHECK_STR(c.host, "10.0.0.1");
	TN_CHECK_INT(c.port, ==, 7000);
	tn_config_fini(&c);

	char *argv3[] = {"x", "--id", "gate-server-1", "--config", path};
	TN_CHECK_OK(load(&c, TN_SERVER_GATE, err, 5, argv3));
	TN_CHECK_INT(c.client_port_min, ==, 3014);
	TN_CHECK_INT(c.client_port_max, ==, 3014);
	TN_CHECK_INT(c.heartbeat_s, ==, 0); /* gate default: no heartbeat */
	tn_config_fini(&c);
	unlink(path);
}

TN_TEST(precedence_file_env_flag)
{
	clear_env();
	write_file(good);
	char err[256];
	struct tn_config c;
	char *argv[] = {"x", "--id", "chat-server-1", "--config", path};
	setenv("TERN_PORT", "6100", 1);
	TN_CHECK_OK(load(&c, TN_SERVER_CHAT, err, 5, argv));
	TN_CHECK_INT(c.port, ==, 6100); /* environment beats file */
	tn_config_fini(&c);
	char *argv2[] = {"x", "--id", "chat-server-1", "--config", path, "--port", "6200"};
	TN_CHECK_OK(load(&c, TN_SERVER_CHAT, err, 7, argv2));
	TN_CHECK_INT(c.port, ==, 6200); /* flag beats environment */
	tn_config_fini(&c);
	/* id from the environment picks the entry; a flag for env beats TERN_ENV. */
	unsetenv("TERN_PORT");
	setenv("TERN_ID", "chat-server-1", 1);
	setenv("TERN_ENV", "nonexistent", 1);
	char *argv3[] = {"x", "--config", path, "--env", "production"};
	TN_CHECK_OK(load(&c, TN_SERVER_CHAT, err, 5, argv3));
	TN_CHECK_INT(c.port, ==, 7000);
	tn_config_fini(&c);
	clear_env();
	unlink(path);
}

TN_TEST(environment_alone)
{
	clear_env();
	char err[256];
	struct tn_config c;
	setenv("TERN_CONFIG", "none", 1);
	setenv("TERN_ID", "chat-x", 1);
	setenv("TERN_PORT", "6001", 1);
	char *argv[] = {"x"};
	TN_CHECK_OK(load(&c, TN_SERVER_CHAT, err, 1, argv));
	TN_CHECK_STR(c.id, "chat-x");
	TN_CHECK_INT(c.port, ==, 6001);
	TN_CHECK_STR(c.registry, "registry:3005");
	tn_config_fini(&c);
	clear_env();
}

static void
expect_fail(enum tn_server_type t, int argc, char **argv, const char *needle)
{
	char err[256] = "";
	struct tn_config c;
	int rv = tn_config_load(&c, t, argc, argv, err, sizeof(err));
	if (rv != TN_ECONFIG || strstr(err, needle) == NULL) {
		fprintf(stderr, "expected failure containing \"%s\", got rv=%d err=\"%s\"\n", needle, rv,
			err);
		tn_test_failures_++;
	}
}

TN_TEST(bad_configurations_name_the_problem)
{
	clear_env();
	write_file(good);
	char *a1[] = {"x", "--id", "nobody", "--config", path};
	expect_fail(TN_SERVER_CHAT, 5, a1, "unknown server id \"nobody\"");
	char *a2[] = {"x", "--id", "chat-server-1", "--config", path, "--port", "70000"};
	expect_fail(TN_SERVER_CHAT, 7, a2, "port: 70000 is out of range");
	char *a3[] = {"x", "--id", "chat-server-1", "--config", path};
	expect_fail(TN_SERVER_CONNECTOR, 5, a3, "is a chat, not a connector");
	char *a4[] = {"x", "--id", "chat-server-1", "--config", path, "--bogus", "1"};
	expect_fail(TN_SERVER_CHAT, 7, a4, "unknown option \"--bogus\"");
	char *a5[] = {"x", "--config", "none", "--id", "c"};
	expect_fail(TN_SERVER_CHAT, 5, a5, "port: required");
	char *a6[] = {"x", "--config", "/nonexistent/servers.json", "--id", "c"};
	expect_fail(TN_SERVER_CHAT, 5, a6, "cannot read");
	char *a7[] = {"x", "--config", "none", "--id", "g", "--client-port", "99-3"};
	expect_fail(TN_SERVER_GATE, 7, a7, "clientPort");
	char *a8[] = {"x", "--config", "none", "--id", "g", "--client-port", "3014", "--log-level",
		"loud"};
	expect_fail(TN_SERVER_GATE, 9, a8, "logLevel: \"loud\"");
	write_file("{\"development\": {\"chat\": [ {\"id\": \"c1\", ");
	char *a9[] = {"x", "--config", path, "--id", "c1"};
	expect_fail(TN_SERVER_CHAT, 5, a9, "not valid JSON");
	write_file("{\"development\":{\"chat\":[{\"id\":\"c1\",\"port\":\"abc\"}]}}");
	expect_fail(TN_SERVER_CHAT, 5, a9, "port: \"abc\" is not an integer");
	write_file("{\"development\":{\"chat\":[{\"id\":\"c1\",\"port\":6000,\"colour\":1}]}}");
	expect_fail(TN_SERVER_CHAT, 5, a9, "unknown key \"colour\"");
	char *a10[] = {"x", "--config", "none", "--id", "c", "--port", "1", "--registry", "nohost"};
	expect_fail(TN_SERVER_CHAT, 9, a10, "registry");
	setenv("TERN_HEARTBEAT", "-1", 1);
	char *a11[] = {"x", "--config", "none", "--id", "g", "--client-port", "3014"};
	expect_fail(TN_SERVER_GATE, 7, a11, "environment TERN_HEARTBEAT: heartbeat: -1");
	clear_env();
	unlink(path);
}

TN_TEST(checked_in_servers_json_loads)
{
	clear_env();
	/* The repository's own topology: every server of both environments loads. */
	static const struct {
		const char *id;
		enum tn_server_type t;
	} all[] = {{"gate-server-1", TN_SERVER_GATE}, {"connector-server-1", TN_SERVER_CONNECTOR},
		{"connector-server-3", TN_SERVER_CONNECTOR}, {"chat-server-1", TN_SERVER_CHAT},
		{"chat-server-3", TN_SERVER_CHAT}, {"registry-server-1", TN_SERVER_REGISTRY}};
	const char *envs[] = {"development", "production"};
	for (int e = 0; e < 2; e++) {
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
			char err[256];
			struct tn_config c;
			char *argv[] = {"x", "--config", TN_SOURCE_DIR "/config/servers.json", "--env",
				(char *)envs[e], "--id", (char *)all[i].id};
			int rv = load(&c, all[i].t, err, 7, argv);
			if (rv)
				fprintf(stderr, "%s\n", err);
			TN_CHECK_OK(rv);
			tn_config_fini(&c);
		}
	}
}

TN_TEST_MAIN(TN_CASE(entry_found_by_id_and_env), TN_CASE(precedence_file_env_flag),
	TN_CASE(environment_alone), TN_CASE(bad_configurations_name_the_problem),
	TN_CASE(checked_in_servers_json_loads))
