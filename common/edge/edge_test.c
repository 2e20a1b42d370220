/* The edge in process: its pure helpers, start-up checks (port range, open-file limit),
 * and one real WebSocket client over loopback driving a session through handshake,
 * heartbeat, requests, checks, pushes, a kick, the mailbox, timers and shutdown; the idle
 * timeout and the drain. The integration tests (tests/integration/test_edge.py,
 * test_hostile_input.py, test_drain.py) cover the rest against the real servers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "edge.h"
#include "edge_internal.h"
#include "err.h"
#include "json.h"
#include "metrics.h"
#include "tn_test.h"

/* ---- pure helpers ---- */

static bool
host_is(const char *value, const char *want)
{
	char out[64];
	bool ok = edge_host_parse(out, sizeof(out), value, strlen(value));
	if (want == NULL)
		return !ok && out[0] == '\0';
	return ok && strcmp(out, want) == 0;
}

TN_TEST(host_header)
{
	TN_CHECK(host_is("example.com", "example.com"));
	TN_CHECK(host_is("example.com:3014", "example.com"));
	TN_CHECK(host_is(" 127.0.0.1:80 ", "127.0.0.1"));
	TN_CHECK(host_is("[::1]:3014", "[::1]"));
	TN_CHECK(host_is("[fe80::1%25eth0]", NULL));
	TN_CHECK(host_is("[2001:db8::7]", "[2001:db8::7]"));
	TN_CHECK(host_is("", NULL));
	TN_CHECK(host_is(":80", NULL));
	TN_CHECK(host_is("a b", NULL));
	TN_CHECK(host_is("evil.com\"x", NULL));
	TN_CHECK(host_is("host:80x", NULL));
	TN_CHECK(host_is("host:1234567", NULL));
	TN_CHECK(host_is("[::1", NULL));
	TN_CHECK(host_is("::1", NULL));
	char small[4];
	TN_CHECK(!edge_host_parse(small, sizeof(small), "abcd", 4));
}

TN_TEST(utf8_escape)
{
	struct tn_buf b;
	tn_buf_init(&b);
	/* Nothing to do: ASCII, 2- and 3-byte UTF-8, CESU-8 surrogates. */
	static const char plain[] = "{\"m\":\"h\xc3\xa9 \xe4\xb8\xad \xed\xa0\xbd\xed\xb8\x80\"}";
	TN_CHECK(!edge_utf8_escape(&b, plain, sizeof(plain) - 1));
	TN_CHECK_INT(b.len, ==, 0);
	/* U+1F600 as 4-byte UTF-8 becomes a surrogate pair escape. */
	static const char four[] = "{\"m\":\"a\xf0\x9f\x98\x80z\xf4\x8f\xbf\xbf\"}";
	TN_CHECK(edge_utf8_escape(&b, four, sizeof(four) - 1));
	static const char want[] = "{\"m\":\"a\\ud83d\\ude00z\\udbff\\udfff\"}";
	TN_CHECK_MEM(b.data, b.len, want, sizeof(want) - 1);
	/* Invalid or truncated sequences pass through untouched. */
	tn_buf_reset(&b);
	static const char bad[] = "\xf0\x9f\x98 \xf5\x80\x80\x80 \xf0\x8f\xbf\xbf \xf0";
	TN_CHECK(!edge_utf8_escape(&b, bad, sizeof(bad) - 1));
	tn_buf_fini(&b);
}

/* ---- a running edge ---- */

static struct tn_config
test_config(int port_min, int port_max)
{
	return (struct tn_config){
	        .client_host = "127.0.0.1",
	        .client_port_min = port_min,
	        .client_port_max = port_max,
	        .max_connections = 100,
	        .heartbeat_s = 1,
	        .handshake_timeout_ms = 2000,
	        .package_limit = 4096,
	        .body_limit = 1024,
	        .json_depth = 8,
	        .rate_per_s = 1000,
	        .rate_burst = 1000,
	        .rate_kick_after = 5,
	        .web_root = "",
	        .out_limit = 1 << 20,
	};
}

static const char *const routes[] = {"a.b.served", "a.b.other"};
static const bool served[] = {true, false};

/* What the service callbacks saw. */
struct svc {
	struct tn_edge *edge;
	atomic_int opens, closes, requests, notifies, tasks, cancelled, timers;
	int last_route;
	uint32_t last_id;
	char last_body[256];
	uint64_t sid;
};

static void
svc_open(void *arg, struct tn_edge_sess *s)
{
	struct svc *v = arg;
	v->sid = tn_edge_sess_id(s);
	tn_edge_sess_set_data(s, v);
	TN_CHECK(tn_edge_sess_find(v->edge, v->sid) == s);
	TN_CHECK_STR(tn_edge_sess_host(s), "127.0.0.1");
	v->opens++;
}

static void
svc_request(void *arg, struct tn_edge_sess *s, uint32_t id, int route, json_object *body,
        const uint8_t *raw, size_t raw_len)
{
	struct svc *v = arg;
	TN_CHECK(tn_edge_sess_data(s) == v);
	v->last_route = route;
	v->last_id = id;
	snprintf(v->last_body, sizeof(v->last_body), "%.*s", (int)raw_len, (const char *)raw);
	TN_CHECK(json_object_is_type(body, json_type_object));
	if (id == 0) {
		v->notifies++;
		return;
	}
	v->requests++;
	const char *cmd = tn_json_get_str(body, "cmd", NULL);
	if (cmd && strcmp(cmd, "push") == 0) {
		/* 4-byte UTF-8 from the service goes out escaped. */
		tn_edge_push(s, "onTest", "{\"x\":\"\xf0\x9f\x98\x80\"}", 12);
		tn_edge_respond(s, id, "{}", 2);
	} else if (cmd && strcmp(cmd, "fill") == 0) {
		/* 900 KB of pushes: a client that does not read is over the 1 MiB bound by the
		 * second of these that finds its socket full. */
		static char big[60000];
		if (big[0] == '\0') {
			memset(big, 'f', sizeof(big));
			memcpy(big, "{\"x\":\"", 6);
			memcpy(big + sizeof(big) - 2, "\"}", 2);
		}
		for (int i = 0; i < 15; i++)
			tn_edge_push(s, "onFill", big, sizeof(big));
		tn_edge_respond(s, id, "{}", 2);
	} else if (cmd && strcmp(cmd, "kick") == 0) {
		tn_edge_respond(s, id, "{\"bye\":1}", 9);
		tn_edge_kick(s, "test kick");
		tn_edge_respond(s, id, "{}", 2); /* no-op: closing */
	} else if (cmd == NULL || strcmp(cmd, "later") != 0) {
		tn_edge_respond(s, id, "{\"ok\":true}", 11);
	}
}

static void
svc_close(void *arg, struct tn_edge_sess *s)
{
	struct svc *v = arg;
	v->closes++;
	tn_edge_push(s, "onTest", "{}", 2); /* no-op from here on */
}

static const struct tn_edge_ops svc_ops = {
        .on_open = svc_open, .on_request = svc_request, .on_close = svc_close};

static void *
run_thread(void *arg)
{
	tn_edge_run(arg);
	return NULL;
}

/* A free loopback port (bound to 0 and released). */
static int
free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		abort();
	close(fd);
	return ntohs(a.sin_port);
}

/* Listens on 127.0.0.1:port; returns the fd or -1. */
static int
occupy(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	        .sin_port = htons((uint16_t)port),
	        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct tn_edge_opts
test_opts(const struct tn_config *cfg)
{
	return (struct tn_edge_opts){.cfg = cfg,
	        .routes = routes,
	        .nroutes = 2,
	        .served = served,
	        .use_dict = true,
	        .metrics_prefix = "tern_test"};
}

TN_TEST(first_free_port_of_the_range)
{
	int blocker = -1, port = 0;
	for (int tries = 0; tries < 50 && blocker < 0; tries++) {
		port = free_port();
		if (port >= 65535)
			continue;
		int probe = occupy(port + 1);
		if (probe < 0)
			continue;
		close(probe);
		blocker = occupy(port);
	}
	TN_CHECK(blocker >= 0);
	struct tn_config cfg = test_config(port, port + 1);
	struct tn_edge_opts opts = test_opts(&cfg);
	struct svc v = {0};
	struct tn_edge *e = NULL;
	TN_CHECK_OK(tn_edge_new(&e, &opts, &svc_ops, &v));
	TN_CHECK_INT(tn_edge_port(e), ==, port + 1);
	/* Both taken now: a second edge finds no port. */
	struct tn_edge *e2 = NULL;
	TN_CHECK_INT(tn_edge_new(&e2, &opts, &svc_ops, &v), ==, TN_EADDR);
	TN_CHECK(e2 == NULL);
	tn_edge_free(e);
	close(blocker);
}

TN_TEST(max_connections_checked_against_open_file_limit)
{
	struct rlimit rl;
	TN_CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000)
		return; /* nothing to check against */
	struct tn_config cfg = test_config(free_port(), 0);
	cfg.client_port_max = cfg.client_port_min;
	cfg.max_connections = (int)rl.rlim_cur; /* no room left for anything else */
	struct tn_edge_opts opts = test_opts(&cfg);
	struct svc v = {0};
	struct tn_edge *e = NULL;
	TN_CHECK_INT(tn_edge_new(&e, &opts, &svc_ops, &v), ==, TN_ECONFIG);
	TN_CHECK(e == NULL);
	cfg.max_connections = (int)rl.rlim_cur - TN_EDGE_FD_RESERVE;
	TN_CHECK_OK(tn_edge_new(&e, &opts, &svc_ops, &v));
	tn_edge_free(e);
}

/* ---- a minimal WebSocket client (blocking, with a receive timeout) ---- */

static int
ws_connect_rcvbuf(int port, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in a = {.sin_family = AF_INET,
	        .sin_port = htons((uint16_t)port),
	        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	char req[256];
	int n = snprintf(req, sizeof(req),
	        "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	        "Sec-WebSocket-Version: 13\r\n\r\n",
	        port);
	if (write(fd, req, (size_t)n) != n)
		abort();
	/* Read the 101 head byte by byte, so no frame bytes are swallowed. */
	char head[1024];
	size_t len = 0;
	while (len < sizeof(head) - 1 && read(fd, head + len, 1) == 1) {
		len++;
		if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	head[len] = '\0';
	if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
ws_connect(int port)
{
	return ws_connect_rcvbuf(port, 0);
}

static void
ws_send(int fd, int opcode, const void *data, size_t len)
{
	uint8_t *f = tn_malloc(len + 14);
	size_t h = 0;
	f[h++] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		f[h++] = (uint8_t)(0x80 | len);
	} else {
		f[h++] = 0x80 | 126;
		f[h++] = (uint8_t)(len >> 8);
		f[h++] = (uint8_t)len;
	}
	static const uint8_t mask[4] = {1, 2, 3, 4};
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		f[h + i] = ((const uint8_t *)data)[i] ^ mask[i % 4];
	if (write(fd, f, h + len) != (ssize_t)(h + len))
		abort();
	free(f);
}

static bool
read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/* Reads one frame into out; returns its opcode, or -1 at end of stream or timeout. */
static int
ws_recv(int fd, struct tn_buf *out)
{
	uint8_t h[2];
	if (!read_full(fd, h, 2))
		return -1;
	size_t len = h[1] & 0x7f;
	if (len == 126) {
		uint8_t x[2];
		if (!read_full(fd, x, 2))
			return -1;
		len = ((size_t)x[0] << 8) | x[1];
	} else if (len == 127) {
		uint8_t x[8];
		if (!read_full(fd, x, 8))
			return -1;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | x[i];
	}
	tn_buf_reset(out);
	if (len && !read_full(fd, tn_buf_reserve(out, len), len))
		return -1;
	out->len = len;
	return h[0] & 0x0f;
}

static void
send_pkg(int fd, int type, const char *body, size_t len)
{
	uint8_t *p = tn_malloc(len + 4);
	p[0] = (uint8_t)type;
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	memcpy(p + 4, body, len);
	ws_send(fd, 2, p, len + 4);
	free(p);
}

/* A request with a string route. */
static void
send_request(int fd, uint32_t id, const char *route, const char *body)
{
	char msg[2048];
	size_t n = 0;
	msg[n++] = 0x00;
	do {
		uint8_t b = id & 0x7f;
		id >>= 7;
		msg[n++] = (char)(id ? b | 0x80 : b);
	} while (id);
	msg[n++] = (char)strlen(route);
	memcpy(msg + n, route, strlen(route));
	n += strlen(route);
	memcpy(msg + n, body, strlen(body));
	n += strlen(body);
	send_pkg(fd, 4, msg, n);
}

/* The next binary frame's packages as text: "type:body|type:body|...". */
static bool
recv_pkgs(int fd, char *out, size_t cap)
{
	struct tn_buf f;
	tn_buf_init(&f);
	int op = ws_recv(fd, &f);
	size_t off = 0, w = 0;
	out[0] = '\0';
	while (op == 2 && off + 4 <= f.len) {
		size_t len = ((size_t)f.data[off + 1] << 16) | ((size_t)f.data[off + 2] << 8) |
		             f.data[off + 3];
		int k = snprintf(out + w, cap - w, "%s%d:%.*s", w ? "|" : "", f.data[off], (int)len,
		        (const char *)f.data + off + 4);
		w += (size_t)k < cap - w ? (size_t)k : cap - w - 1;
		off += 4 + len;
	}
	tn_buf_fini(&f);
	return op == 2;
}

static bool
wait_for(atomic_int *counter, int value)
{
	for (int i = 0; i < 500 && *counter < value; i++)
		usleep(10000);
	return *counter >= value;
}

static void
task_counted(void *arg, bool cancelled)
{
	struct svc *v = arg;
	if (cancelled)
		v->cancelled++;
	else
		v->tasks++;
}

static void
timer_fired(void *arg)
{
	struct svc *v = arg;
	v->timers++;
}

static void
task_arm_timer(void *arg, bool cancelled)
{
	struct svc *v = arg;
	if (!cancelled)
		tn_edge_timer(v->edge, 20, timer_fired, v);
}

static const char handshake[] =
        "{\"sys\":{\"type\":\"js-websocket\",\"version\":\"0.0.1\",\"rsa\":{},\"protoVersion\":0}}";

TN_TEST(session_end_to_end)
{
	struct tn_config cfg = test_config(free_port(), 0);
	cfg.client_port_max = cfg.client_port_min;
	struct tn_edge_opts opts = test_opts(&cfg);
	struct svc v = {0};
	TN_CHECK_OK(tn_edge_new(&v.edge, &opts, &svc_ops, &v));
	pthread_t thr;
	pthread_create(&thr, NULL, run_thread, v.edge);

	/* Mailbox and timer, from another thread. */
	struct tn_exec ex = tn_edge_exec(v.edge);
	tn_exec_post(&ex, task_counted, &v);
	tn_exec_post(&ex, task_arm_timer, &v);
	TN_CHECK(wait_for(&v.tasks, 1));
	TN_CHECK(wait_for(&v.timers, 1));

	int fd = ws_connect(tn_edge_port(v.edge));
	TN_CHECK(fd >= 0);
	char got[2048];
	send_pkg(fd, 1, handshake, sizeof(handshake) - 1);
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	/* heartbeat, the dict (sorted routes), and protos with a non-empty version. */
	static const char hs_head[] = "1:{\"code\":200,\"sys\":{\"heartbeat\":1,\"dict\":{\"a.b."
	                              "other\":1,\"a.b.served\":2}";
	TN_CHECK(strncmp(got, hs_head, sizeof(hs_head) - 1) == 0);
	TN_CHECK(strstr(got, "\"protos\":{\"server\":{},\"client\":{},\"version\":\"") != NULL);
	/* Nothing but the handshake answer before the ACK: this request is dropped. */
	send_request(fd, 1, "a.b.served", "{}");
	send_pkg(fd, 2, "", 0);
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	TN_CHECK_STR(got, "3:");
	TN_CHECK(wait_for(&v.opens, 1));
	TN_CHECK_INT(tn_edge_connections(v.edge), ==, 1);

	/* A served route; a notify; checks answered by the edge itself. */
	send_request(fd, 2, "a.b.served", "{\"k\":1}");
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	TN_CHECK_STR(got, "4:\x04\x02{\"ok\":true}");
	TN_CHECK_INT(v.last_route, ==, 0);
	TN_CHECK_STR(v.last_body, "{\"k\":1}");
	static const struct {
		const char *route, *body, *want;
	} refused[] = {
	        {"a.b.other", "{}",
	                "{\"code\":404,\"error\":true,\"message\":\"route not served by this "
	                "server\"}"},
	        {"x.y.z", "{}", "{\"code\":404,\"error\":true,\"message\":\"unknown route\"}"},
	        {"a.b.served", "{\"a\":",
	                "{\"code\":400,\"error\":true,\"message\":\"body is not valid JSON\"}"},
	        {"a.b.served", "[1]",
	                "{\"code\":400,\"error\":true,\"message\":\"body must be a JSON object\"}"},
	        {"a.b.served", "{\"a\":[[[[[[[[[1]]]]]]]]]}",
	                "{\"code\":400,\"error\":true,\"message\":\"body nested too deep\"}"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		send_request(fd, 10 + (uint32_t)i, refused[i].route, refused[i].body);
		TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
		TN_CHECK(got[0] == '4' && got[3] == 10 + (char)i);
		TN_CHECK_STR(got + 4, refused[i].want);
	}
	char big[1100];
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = '\0';
	send_request(fd, 20, "a.b.served", big);
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	TN_CHECK_STR(got, "4:\x04\x14{\"code\":413,\"error\":true,\"message\":\"body too large\"}");
	TN_CHECK_INT(v.requests, ==, 1);

	/* A push, with 4-byte UTF-8 escaped, coalesced with the response. */
	send_request(fd, 21, "a.b.served", "{\"cmd\":\"push\"}");
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	TN_CHECK_STR(got, "4:\x06\x06onTest{\"x\":\"\\ud83d\\ude00\"}|4:\x04\x15{}");

	/* Heartbeat answered. */
	send_pkg(fd, 3, "", 0);
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	TN_CHECK_STR(got, "3:");

	/* A kick from the service: response, KICK, then the close frame. */
	send_request(fd, 22, "a.b.served", "{\"cmd\":\"kick\"}");
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	TN_CHECK_STR(got, "4:\x04\x16{\"bye\":1}|5:{\"reason\":\"test kick\"}");
	struct tn_buf f;
	tn_buf_init(&f);
	TN_CHECK_INT(ws_recv(fd, &f), ==, 8);
	TN_CHECK(f.len >= 2 && f.data[0] == 0x03 && f.data[1] == 0xe8); /* 1000 */
	tn_buf_fini(&f);
	TN_CHECK(wait_for(&v.closes, 1));
	close(fd);

	/* A session still open at shutdown gets on_close from tn_edge_close. */
	fd = ws_connect(tn_edge_port(v.edge));
	TN_CHECK(fd >= 0);
	send_pkg(fd, 1, handshake, sizeof(handshake) - 1);
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	send_pkg(fd, 2, "", 0);
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	send_request(fd, 30, "a.b.served", "{\"cmd\":\"later\"}"); /* never answered */
	TN_CHECK(wait_for(&v.requests, 4));
	tn_edge_timer(v.edge, 60000, timer_fired, &v); /* freed at close without firing */
	tn_edge_stop(v.edge);
	pthread_join(thr, NULL);
	tn_edge_close(v.edge);
	TN_CHECK_INT(v.closes, ==, 2);
	TN_CHECK_INT(tn_edge_connections(v.edge), ==, 0);
	tn_exec_post(&ex, task_counted, &v);
	TN_CHECK_INT(v.cancelled, ==, 1);
	TN_CHECK_INT(v.timers, ==, 1);
	tn_edge_free(v.edge);
	close(fd);
}

TN_TEST(handshake_deadline_and_limits)
{
	struct tn_config cfg = test_config(free_port(), 0);
	cfg.client_port_max = cfg.client_port_min;
	cfg.handshake_timeout_ms = 200;
	cfg.max_connections = 2;
	struct tn_edge_opts opts = test_opts(&cfg);
	struct svc v = {0};
	TN_CHECK_OK(tn_edge_new(&v.edge, &opts, &svc_ops, &v));
	pthread_t thr;
	pthread_create(&thr, NULL, run_thread, v.edge);
	int a = ws_connect(tn_edge_port(v.edge));
	int b = ws_connect(tn_edge_port(v.edge));
	TN_CHECK(a >= 0 && b >= 0);
	/* The third is over max-connections: closed at once. */
	int c = ws_connect(tn_edge_port(v.edge));
	TN_CHECK(c < 0);
	/* No handshake: both closed (policy violation) after 200 ms. */
	struct tn_buf f;
	tn_buf_init(&f);
	TN_CHECK_INT(ws_recv(a, &f), ==, 8);
	TN_CHECK(f.len >= 2 && f.data[0] == 0x03 && f.data[1] == 0xf0); /* 1008 */
	TN_CHECK_INT(ws_recv(b, &f), ==, 8);
	tn_buf_fini(&f);
	close(a);
	close(b);
	TN_CHECK_INT(v.opens, ==, 0);
	tn_edge_stop(v.edge);
	pthread_join(thr, NULL);
	tn_edge_free(v.edge);
	TN_CHECK_INT(v.closes, ==, 0);
}

/* A client that stops reading is kicked as a slow consumer, and its session ends within
 * the close grace whether or not the KICK still fits into its socket (when it does not,
 * lws alone would keep trying to flush for as long as the socket lives). */
TN_TEST(slow_consumer_that_never_reads_is_dropped)
{
	struct tn_config cfg = test_config(free_port(), 0);
	cfg.client_port_max = cfg.client_port_min;
	struct tn_edge_opts opts = test_opts(&cfg);
	struct svc v = {0};
	TN_CHECK_OK(tn_edge_new(&v.edge, &opts, &svc_ops, &v));
	pthread_t thr;
	pthread_create(&thr, NULL, run_thread, v.edge);
	int fd = ws_connect_rcvbuf(tn_edge_port(v.edge), 4096);
	TN_CHECK(fd >= 0);
	char got[256];
	send_pkg(fd, 1, handshake, sizeof(handshake) - 1);
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	send_pkg(fd, 2, "", 0);
	TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
	/* From here on nothing is read. */
	/* Slowly enough that the server's socket buffers fill before its queue passes the
	 * bound, so that the KICK cannot be written either. */
	for (int i = 0; i < 60 && v.closes == 0; i++) {
		send_pkg(fd, 3, "", 0);
		send_request(fd, 100 + (uint32_t)i, "a.b.served", "{\"cmd\":\"fill\"}");
		usleep(150000);
	}
	TN_CHECK(tn_counter_get(edge_metrics_kick(&v.edge->m, "slow consumer")) >= 1);
	TN_CHECK(wait_for(&v.closes, 1)); /* within 5 s: the 3 s grace, and some slack */
	close(fd);
	tn_edge_stop(v.edge);
	pthread_join(thr, NULL);
	tn_edge_free(v.edge);
}

/* A WebSocket session past the handshake ACK (the server's answers read and dropped),
 * with a receive buffer of rcvbuf bytes (0: the default). */
static int
ws_session_rcvbuf(int port, struct svc *v, int opens, int rcvbuf)
{
	int fd = ws_connect_rcvbuf(port, rcvbuf);
	if (fd < 0)
		return -1;
	char got[2048];
	send_pkg(fd, 1, handshake, sizeof(handshake) - 1);
	if (!recv_pkgs(fd, got, sizeof(got)) || strncmp(got, "1:{\"code\":200", 13) != 0) {
		close(fd);
		return -1;
	}
	send_pkg(fd, 2, "", 0);
	if (!wait_for(&v->opens, opens)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
ws_session(int port, struct svc *v, int opens)
{
	return ws_session_rcvbuf(port, v, opens, 0);
}

/* True when nothing arrives on fd for ms milliseconds (and it stays open). */
static bool
quiet_for(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) == 0;
}

/* Reads frames until the close frame; returns its status code (-1: none came). When
 * reason is not NULL, the close reason must be it. */
static int
ws_recv_close(int fd, const char *reason)
{
	struct tn_buf f;
	tn_buf_init(&f);
	int op, code = -1;
	while ((op = ws_recv(fd, &f)) >= 0 && op != 8)
		;
	if (op == 8 && f.len >= 2) {
		code = (f.data[0] << 8) | f.data[1];
		if (reason &&
		        (f.len - 2 != strlen(reason) || memcmp(f.data + 2, reason, f.len - 2)))
			code = -2;
	}
	tn_buf_fini(&f);
	return code;
}

/* On a server without heartbeats a session that sends nothing for idleTimeout is closed
 * (1001, "idle timeout"), counted; every package, and a request still waiting for its
 * answer, keeps it open. With heartbeats the idle timeout is not used. */
TN_TEST(idle_timeout_without_heartbeats)
{
	struct tn_config cfg = test_config(free_port(), 0);
	cfg.client_port_max = cfg.client_port_min;
	cfg.idle_timeout_ms = 5000;
	struct tn_edge_opts opts = test_opts(&cfg);
	struct svc v = {0};
	TN_CHECK_OK(tn_edge_new(&v.edge, &opts, &svc_ops, &v));
	TN_CHECK_INT(v.edge->idle_ms, ==, 0); /* heartbeat 1: not used */
	tn_edge_free(v.edge);

	cfg.heartbeat_s = 0;
	cfg.idle_timeout_ms = 300;
	TN_CHECK_OK(tn_edge_new(&v.edge, &opts, &svc_ops, &v));
	struct tn_counter *idle = v.edge->m.closes[EDGE_CLOSE_IDLE_TIMEOUT];
	uint64_t idle0 = tn_counter_get(idle);
	pthread_t thr;
	pthread_create(&thr, NULL, run_thread, v.edge);
	int fd = ws_session(tn_edge_port(v.edge), &v, 1);
	TN_CHECK(fd >= 0);
	/* Active for twice the timeout: still open. */
	char got[256];
	int64_t last = 0;
	for (uint32_t i = 1; i <= 6; i++) {
		usleep(100000);
		send_request(fd, i, "a.b.served", "{}");
		last = tn_now_ms();
		TN_CHECK(recv_pkgs(fd, got, sizeof(got)));
		TN_CHECK(got[0] == '4');
	}
	TN_CHECK_INT(v.closes, ==, 0);
	/* Then silent: closed, not before the timeout. */
	TN_CHECK_INT(ws_recv_close(fd, "idle timeout"), ==, 1001);
	TN_CHECK(tn_now_ms() - last >= 300 - 20); /* clock granularity */
	TN_CHECK(wait_for(&v.closes, 1));
	TN_CHECK_INT(tn_counter_get(idle) - idle0, ==, 1);
	close(fd);

	/* A request the service has not answered yet: the client is waiting, not idle. */
	fd = ws_session(tn_edge_port(v.edge), &v, 2);
	TN_CHECK(fd >= 0);
	send_request(fd, 1, "a.b.served", "{\"cmd\":\"later\"}");
	TN_CHECK(quiet_for(fd, 800));
	TN_CHECK_INT(v.closes, ==, 1);
	TN_CHECK_INT(tn_counter_get(idle) - idle0, ==, 1);
	tn_edge_stop(v.edge);
	pthread_join(thr, NULL);
	tn_edge_free(v.edge);
	TN_CHECK_INT(v.closes, ==, 2);
	close(fd);
}

/* True when a TCP connect to the port is refused (nothing listens any more). */
static bool
refused(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	        .sin_port = htons((uint16_t)port),
	        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int rv = connect(fd, (struct sockaddr *)&a, sizeof(a));
	int err = errno;
	close(fd);
	return rv != 0 && err == ECONNREFUSED;
}

struct drain_probe {
	struct svc *v;
	atomic_int done;
	int closes_at_done;
	int64_t done_ms;
};

static void
drained(void *arg)
{
	struct drain_probe *p = arg;
	p->closes_at_done = p->v->closes;
	p->done_ms = tn_now_ms();
	p->done++;
	tn_edge_stop(p->v->edge);
}

struct runner {
	struct tn_edge *edge;
	atomic_int returned;
};

static void *
run_and_flag(void *arg)
{
	struct runner *r = arg;
	tn_edge_run(r->edge);
	r->returned = 1;
	return NULL;
}

/* A drain closes the listener, kicks every session ("server shutting down", counted),
 * waits for the clients to close, drops at its deadline those that cannot take their kick
 * (on_close first), then runs done. */
TN_TEST(drain_kicks_and_ends_at_the_deadline)
{
	struct tn_config cfg = test_config(free_port(), 0);
	cfg.client_port_max = cfg.client_port_min;
	cfg.out_limit = 64 << 20;
	struct tn_edge_opts opts = test_opts(&cfg);
	struct svc v = {0};
	TN_CHECK_OK(tn_edge_new(&v.edge, &opts, &svc_ops, &v));
	int port = tn_edge_port(v.edge);
	struct tn_counter *kicks = edge_metrics_kick(&v.edge->m, "server shutting down");
	uint64_t kicks0 = tn_counter_get(kicks);
	pthread_t thr;
	pthread_create(&thr, NULL, run_thread, v.edge);
	int a = ws_session(port, &v, 1);
	int b = ws_session_rcvbuf(port, &v, 2, 4096);
	int c = ws_connect(port); /* never handshakes */
	TN_CHECK(a >= 0 && b >= 0 && c >= 0);
	char got[256];
	TN_CHECK(recv_pkgs(a, got, sizeof(got))); /* the heartbeat after the ACK */
	/* b reads nothing from here on, and has more queued (11 MB) than the sockets on the
	 * way hold, under an out limit raised for it: its KICK cannot go out. */
	for (uint32_t i = 1; i <= 12; i++)
		send_request(b, i, "a.b.served", "{\"cmd\":\"fill\"}");
	TN_CHECK(wait_for(&v.requests, 12));
	usleep(100000);

	struct drain_probe probe = {.v = &v};
	int64_t t0 = tn_now_ms();
	tn_edge_drain(v.edge, t0 + 800, drained, &probe);
	TN_CHECK(recv_pkgs(a, got, sizeof(got)));
	TN_CHECK_STR(got, "5:{\"reason\":\"server shutting down\"}");
	TN_CHECK_INT(ws_recv_close(a, NULL), ==, 1000);
	TN_CHECK(refused(port));
	close(a); /* answers the close: the session ends at once */
	TN_CHECK(wait_for(&v.closes, 1));
	TN_CHECK_INT(probe.done, ==, 0); /* b is still open */

	/* b is dropped at the deadline, well before the close grace would end it. */
	TN_CHECK(wait_for(&probe.done, 1));
	pthread_join(thr, NULL);
	TN_CHECK_INT(probe.closes_at_done, ==, 2);
	TN_CHECK(probe.done_ms - t0 >= 800 - 20);
	TN_CHECK(probe.done_ms - t0 < 800 + 1500);
	TN_CHECK_INT(tn_counter_get(kicks) - kicks0, ==, 3);
	/* After the loop: dropped at the close, done does not run again. */
	tn_edge_drain(v.edge, tn_now_ms(), drained, &probe);
	tn_edge_free(v.edge);
	TN_CHECK_INT(probe.done, ==, 1);
	TN_CHECK_INT(v.closes, ==, 2);
	close(b);
	close(c);

	/* No session: done at once; done == NULL stops the loop. */
	TN_CHECK_OK(tn_edge_new(&v.edge, &opts, &svc_ops, &v));
	port = tn_edge_port(v.edge);
	struct runner r = {.edge = v.edge};
	pthread_create(&thr, NULL, run_and_flag, &r);
	tn_edge_drain(v.edge, tn_now_ms() + 60000, NULL, NULL);
	bool stopped = wait_for(&r.returned, 1);
	TN_CHECK(stopped);
	if (!stopped)
		tn_edge_stop(v.edge);
	pthread_join(thr, NULL);
	TN_CHECK(refused(port));
	tn_edge_free(v.edge);
}

TN_TEST_MAIN(TN_CASE(host_header), TN_CASE(utf8_escape), TN_CASE(first_free_port_of_the_range),
        TN_CASE(max_connections_checked_against_open_file_limit), TN_CASE(session_end_to_end),
        TN_CASE(handshake_deadline_and_limits), TN_CASE(slow_consumer_that_never_reads_is_dropped),
        TN_CASE(idle_timeout_without_heartbeats), TN_CASE(drain_kicks_and_ends_at_the_deadline))
