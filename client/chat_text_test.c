#include <string.h>

#include "chat_text.h"
#include "err.h"
#include "tn_test.h"

static int
parse(struct tn_chat_opts *o, char *err, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = (char *)"tern-chat-cli";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	return tn_chat_opts_parse(o, argc, argv, err, 256);
}

TN_TEST(options)
{
	struct tn_chat_opts o;
	char err[256];
	static const char *const full[] = {"--host", "gate.example", "--port", "4000", "--name",
	        "alice", "--room", "r1", "--send-file", "-", "--count", "3", "--timeout", "2.5",
	        "--rate", "5", "--quiet", "--direct", "--no-reconnect", NULL};
	TN_CHECK_OK(parse(&o, err, full));
	TN_CHECK_STR(o.host, "gate.example");
	TN_CHECK_INT(o.port, ==, 4000);
	TN_CHECK_STR(o.name, "alice");
	TN_CHECK_STR(o.room, "r1");
	TN_CHECK_STR(o.send_file, "-");
	TN_CHECK_INT(o.wait_messages, ==, 3);
	TN_CHECK(o.timeout_s == 2.5 && o.rate == 5 && o.quiet && o.direct && !o.reconnect);

	static const char *const minimal[] = {"--name=bob", "--room=r2", NULL};
	TN_CHECK_OK(parse(&o, err, minimal));
	TN_CHECK_STR(o.host, "127.0.0.1");
	TN_CHECK_INT(o.port, ==, 3014);
	TN_CHECK(o.wait_messages == -1 && o.timeout_s == 0 && o.send_file == NULL && o.reconnect);
	static const char *const wait[] = {
	        "--name", "b", "--room", "r", "--wait-messages", "0", NULL};
	TN_CHECK_OK(parse(&o, err, wait));
	TN_CHECK_INT(o.wait_messages, ==, 0);

	static const char *const help[] = {"--help", NULL};
	TN_CHECK_OK(parse(&o, err, help));
	TN_CHECK(o.help);
	TN_CHECK(strstr(tn_chat_usage(), "--wait-messages") != NULL);
}

TN_TEST(bad_options)
{
	struct tn_chat_opts o;
	char err[256];
	static const char *const no_name[] = {"--room", "r", NULL};
	TN_CHECK_INT(parse(&o, err, no_name), ==, TN_EINVAL);
	TN_CHECK(strstr(err, "--name is required") != NULL);
	static const char *const bad_name[] = {"--name", "a b", "--room", "r", NULL};
	TN_CHECK_INT(parse(&o, err, bad_name), ==, TN_EINVAL);
	TN_CHECK(strstr(err, "--name") != NULL);
	static const char *const bad_room[] = {"--name", "a", "--room", "r!", NULL};
	TN_CHECK_INT(parse(&o, err, bad_room), ==, TN_EINVAL);
	static const char *const port[] = {"--name", "a", "--room", "r", "--port", "70000", NULL};
	TN_CHECK_INT(parse(&o, err, port), ==, TN_EINVAL);
	TN_CHECK(strstr(err, "--port") != NULL);
	static const char *const port2[] = {"--name", "a", "--room", "r", "--port", "12x", NULL};
	TN_CHECK_INT(parse(&o, err, port2), ==, TN_EINVAL);
	static const char *const timeout[] = {"--name", "a", "--room", "r", "--timeout", "0", NULL};
	TN_CHECK_INT(parse(&o, err, timeout), ==, TN_EINVAL);
	static const char *const count[] = {"--name", "a", "--room", "r", "--count", "-1", NULL};
	TN_CHECK_INT(parse(&o, err, count), ==, TN_EINVAL);
	static const char *const unknown[] = {"--name", "a", "--room", "r", "--colour", NULL};
	TN_CHECK_INT(parse(&o, err, unknown), ==, TN_EINVAL);
	TN_CHECK(strstr(err, "--colour") != NULL);
	static const char *const missing[] = {"--name", "a", "--room", NULL};
	TN_CHECK_INT(parse(&o, err, missing), ==, TN_EINVAL);
	static const char *const extra[] = {"--name", "a", "--room", "r", "stray", NULL};
	TN_CHECK_INT(parse(&o, err, extra), ==, TN_EINVAL);
	TN_CHECK(strstr(err, "stray") != NULL);
}

TN_TEST(names)
{
	TN_CHECK(tn_chat_name_valid("alice"));
	TN_CHECK(tn_chat_name_valid("A_1"));
	TN_CHECK(tn_chat_name_valid("abcdefghijklmnopqrst"));     /* 20 */
	TN_CHECK(!tn_chat_name_valid("abcdefghijklmnopqrstu"));   /* 21 */
	TN_CHECK(tn_chat_name_valid("\xe4\xbd\xa0\xe5\xa5\xbd")); /* U+4F60 U+597D */
	TN_CHECK(tn_chat_name_valid("\xe4\xb8\x80"));             /* U+4E00 */
	TN_CHECK(!tn_chat_name_valid("\xe3\x81\x82"));            /* U+3042: hiragana */
	TN_CHECK(!tn_chat_name_valid("\xf0\x9f\x98\x80"));        /* an emoji */
	TN_CHECK(!tn_chat_name_valid("\xe4\xbd"));                /* truncated */
	TN_CHECK(!tn_chat_name_valid(""));
	TN_CHECK(!tn_chat_name_valid("a b"));
	TN_CHECK(!tn_chat_name_valid("a*b"));
	/* 20 CJK characters (60 bytes) are fine, 21 are not. */
	char cjk[70] = "";
	for (int i = 0; i < 20; i++)
		strcat(cjk, "\xe4\xb8\x80");
	TN_CHECK(tn_chat_name_valid(cjk));
	strcat(cjk, "\xe4\xb8\x80");
	TN_CHECK(!tn_chat_name_valid(cjk));
}

static int
cmd_is(const char *line, enum tn_chat_cmd_type type, const char *target, const char *text)
{
	struct tn_chat_cmd c;
	tn_chat_cmd_parse(&c, line);
	if (c.type != type)
		return 0;
	if (target && (c.target_len != strlen(target) || memcmp(c.target, target, c.target_len)))
		return 0;
	if (text && (c.text_len != strlen(text) || memcmp(c.text, text, c.text_len)))
		return 0;
	return 1;
}

TN_TEST(commands)
{
	TN_CHECK(cmd_is("", TN_CHAT_CMD_EMPTY, NULL, NULL));
	TN_CHECK(cmd_is("   \r\n", TN_CHAT_CMD_EMPTY, NULL, NULL));
	TN_CHECK(cmd_is("hello world\n", TN_CHAT_CMD_SAY, NULL, "hello world"));
	TN_CHECK(cmd_is("  indented  ", TN_CHAT_CMD_SAY, NULL, "indented"));
	TN_CHECK(cmd_is("//not a command", TN_CHAT_CMD_SAY, NULL, "/not a command"));
	TN_CHECK(cmd_is("/w bob hi there", TN_CHAT_CMD_WHISPER, "bob", "hi there"));
	TN_CHECK(cmd_is("/msg  bob   spaced\r\n", TN_CHAT_CMD_WHISPER, "bob", "spaced"));
	TN_CHECK(cmd_is("/w bob", TN_CHAT_CMD_BAD, NULL, NULL));
	TN_CHECK(cmd_is("/w", TN_CHAT_CMD_BAD, NULL, NULL));
	TN_CHECK(cmd_is("/w   ", TN_CHAT_CMD_BAD, NULL, NULL));
	TN_CHECK(cmd_is("/who", TN_CHAT_CMD_WHO, NULL, NULL));
	TN_CHECK(cmd_is("/quit", TN_CHAT_CMD_QUIT, NULL, NULL));
	TN_CHECK(cmd_is("/exit\n", TN_CHAT_CMD_QUIT, NULL, NULL));
	TN_CHECK(cmd_is("/help", TN_CHAT_CMD_HELP, NULL, NULL));
	TN_CHECK(cmd_is("/whom x", TN_CHAT_CMD_UNKNOWN, NULL, "/whom"));
	TN_CHECK(cmd_is("/", TN_CHAT_CMD_UNKNOWN, NULL, "/"));
}

TN_TEST(users)
{
	struct tn_chat_users u;
	struct tn_buf b;
	tn_chat_users_init(&u);
	tn_buf_init(&b);
	json_object *arr = json_tokener_parse("[\"bob\",7,\"alice\",\"bob\",null]");
	TN_CHECK(tn_chat_users_set(&u, arr));
	TN_CHECK_INT(u.n, ==, 2);
	TN_CHECK(!tn_chat_users_add(&u, "alice"));
	TN_CHECK(tn_chat_users_add(&u, "carol"));
	TN_CHECK(tn_chat_users_remove(&u, "bob"));
	TN_CHECK(!tn_chat_users_remove(&u, "bob"));
	TN_CHECK(tn_chat_users_has(&u, "carol") && !tn_chat_users_has(&u, "bob"));
	tn_chat_users_format(&b, &u);
	TN_CHECK_MEM(b.data, b.len, "alice, carol", strlen("alice, carol"));
	json_object *obj = json_tokener_parse("{}");
	TN_CHECK(!tn_chat_users_set(&u, obj));
	TN_CHECK_INT(u.n, ==, 2); /* unchanged */
	json_object_put(arr);
	json_object_put(obj);
	tn_buf_fini(&b);
	tn_chat_users_fini(&u);
}

TN_TEST(sanitize_and_format)
{
	struct tn_buf b;
	tn_buf_init(&b);
	const char evil[] = "a\x1b[2Jb\tc\x7f\xc2\x9b"
	                    "31md\xe4\xbd\xa0\r\n";
	tn_chat_sanitize(&b, evil, sizeof(evil) - 1);
	TN_CHECK_MEM(b.data, b.len, "a?[2Jb\tc??31md\xe4\xbd\xa0??",
	        strlen("a?[2Jb\tc??31md\xe4\xbd\xa0??"));

	tn_buf_reset(&b);
	tn_chat_format_chat(&b, "[12:01:02]", "bob", "*", "hello", "alice");
	TN_CHECK_MEM(b.data, b.len, "[12:01:02] bob: hello", strlen("[12:01:02] bob: hello"));
	tn_buf_reset(&b);
	tn_chat_format_chat(&b, "[12:01:02]", "bob", "alice", "psst", "alice");
	TN_CHECK_MEM(b.data, b.len, "[12:01:02] [private] bob: psst",
	        strlen("[12:01:02] [private] bob: psst"));
	tn_buf_reset(&b);
	tn_chat_format_chat(&b, "[12:01:02]", "alice", "bob", "psst", "alice");
	TN_CHECK_MEM(b.data, b.len, "[12:01:02] [private to bob] alice: psst",
	        strlen("[12:01:02] [private to bob] alice: psst"));
	tn_buf_reset(&b);
	tn_chat_format_chat(&b, "[12:01:02]", "alice", "alice", "memo", "alice");
	TN_CHECK_MEM(b.data, b.len, "[12:01:02] [private] alice: memo",
	        strlen("[12:01:02] [private] alice: memo"));
	tn_buf_reset(&b);
	tn_chat_format_chat(&b, "[t]", "x\x1b", "", "m\x07", "me");
	TN_CHECK_MEM(b.data, b.len, "[t] x?: m?", strlen("[t] x?: m?"));
	tn_buf_fini(&b);

	char t[16];
	tn_chat_time(t, 1700000000123);
	TN_CHECK_INT(strlen(t), ==, 10);
	TN_CHECK(t[0] == '[' && t[3] == ':' && t[6] == ':' && t[9] == ']');
}

TN_TEST_MAIN(TN_CASE(options), TN_CASE(bad_options), TN_CASE(names), TN_CASE(commands),
        TN_CASE(users), TN_CASE(sanitize_and_format))
