#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "metrics.h"
#include "tn_test.h"

/* A TCP socket bound to 127.0.0.1 on an ephemeral port; listening when asked. */
static int
bound_socket(int *port, bool listening)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
		(listening && listen(fd, 4) != 0)) {
		perror("bound_socket");
		abort();
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Starts an admin server on a port that was free a moment ago; retries if another
 * process took it in between. */
static int
start_on_free_port(struct tn_admin **out)
{
	int rv = TN_EADDR;
	for (int attempt = 0; attempt < 10 && rv == TN_EADDR; attempt++) {
		int port;
		close(bound_socket(&port, false));
		rv = tn_admin_start(out, "127.0.0.1", port);
	}
	return rv;
}

static int
connect_to(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct http_reply {
	int status;
	char ctype[128];
	char *body; /* NUL-terminated */
	size_t body_len;
	char *raw;
};

static void
reply_free(struct http_reply *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

/* Reads until EOF (5 s without data is a failure). */
static bool
read_all(int fd, struct tn_buf *b)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 5000) != 1)
			return false;
		ssize_t n = read(fd, tn_buf_reserve(b, 4096), 4096);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return false;
		if (n == 0)
			return true;
		b->len += (size_t)n;
	}
}

/* Splits a raw response into status, Content-Type and body; checks Content-Length. */
static bool
parse_reply(struct http_reply *r)
{
	char *end = strstr(r->raw, "\r\n\r\n");
	if (end == NULL || sscanf(r->raw, "HTTP/1.1 %d ", &r->status) != 1)
		return false;
	*end = '\0';
	r->body = end + 4;
	long clen = -1;
	for (char *line = strstr(r->raw, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
		if (strncasecmp(line + 2, "Content-Type: ", 14) == 0) {
			size_t len = strcspn(line + 16, "\r");
			snprintf(r->ctype, sizeof(r->ctype), "%.*s", (int)len, line + 16);
		} else if (strncasecmp(line + 2, "Content-Length: ", 16) == 0) {
			clen = strtol(line + 18, NULL, 10);
		}
	}
	return clen >= 0 && (size_t)clen == r->body_len;
}

/* One request over a fresh connection, as a plain client would send it. */
static bool
http_request(int port, const char *method, const char *path, struct http_reply *r)
{
	memset(r, 0, sizeof(*r));
	int fd = connect_to(port);
	if (fd < 0)
		return false;
	char req[256];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		method, path);
	struct tn_buf b;
	tn_buf_init(&b);
	bool ok = write(fd, req, (size_t)n) == n && read_all(fd, &b);
	close(fd);
	size_t total;
	r->raw = (char *)tn_buf_release(&b, &total);
	if (!ok)
		return false;
	char *sep = strstr(r->raw, "\r\n\r\n");
	r->body_len = sep ? total - (size_t)(sep + 4 - r->raw) : 0;
	return parse_reply(r);
}

/* True when the peer closes fd within 5 s without sending anything. */
static bool
closed_by_peer(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char c;
	if (poll(&pfd, 1, 5000) != 1)
		return false;
	ssize_t n = read(fd, &c, 1);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static bool
http_get(int port, const char *path, struct http_reply *r)
{
	return http_request(port, "GET", path, r);
}

TN_TEST(test_port_zero_disables)
{
	struct tn_admin *a = (struct tn_admin *)&a; /* any non-NULL value */
	TN_CHECK_OK(tn_admin_start(&a, "127.0.0.1", 0));
	TN_CHECK(a == NULL);
	TN_CHECK_INT(tn_admin_port(a), ==, 0);
	tn_admin_set_ready(a, true, NULL);
	tn_admin_stop(a);
}

TN_TEST(test_bad_arguments)
{
	struct tn_admin *a = NULL;
	TN_CHECK_INT(tn_admin_start(&a, "127.0.0.1", -1), ==, TN_EINVAL);
	TN_CHECK_INT(tn_admin_start(&a, "127.0.0.1", 65536), ==, TN_EINVAL);
	TN_CHECK_INT(tn_admin_start(&a, "127.0.0.1/x", 9100), ==, TN_EINVAL);
	TN_CHECK_INT(tn_admin_start(&a, "a b", 9100), ==, TN_EINVAL);
	TN_CHECK(a == NULL);
}

TN_TEST(test_routes)
{
	tn_metrics_reset_for_tests(true);
	struct tn_counter *c;
	TN_CHECK_OK(tn_metrics_counter(&c, "tern_admin_test_total", "Counted by the admin test."));
	tn_counter_add(c, 7);

	struct tn_admin *a = NULL;
	TN_CHECK_OK(start_on_free_port(&a));
	TN_CHECK(a != NULL);
	int port = tn_admin_port(a);
	TN_CHECK(port > 0);
	struct http_reply r;
	bool ok;

	ok = http_get(port, "/metrics", &r);
	ok = ok && r.status == 200 &&
		strcmp(r.ctype, "text/plain; version=0.0.4; charset=utf-8") == 0 &&
		strstr(r.body, "\ntern_admin_test_total 7\n") != NULL &&
		strstr(r.body, "# TYPE tern_admin_test_total counter\n") != NULL &&
		strstr(r.body, "\nprocess_open_fds ") != NULL;
	reply_free(&r);
	TN_CHECK(ok);

	ok = http_get(port, "/healthz", &r) && r.status == 200 && strcmp(r.body, "ok\n") == 0 &&
		strcmp(r.ctype, "text/plain; charset=utf-8") == 0;
	reply_free(&r);
	TN_CHECK(ok);

	ok = http_get(port, "/readyz", &r) && r.status == 503 && strcmp(r.body, "starting\n") == 0;
	reply_free(&r);
	TN_CHECK(ok);

	tn_admin_set_ready(a, false, "not registered\nwith registry");
	ok = http_get(port, "/readyz", &r) && r.status == 503 &&
		strcmp(r.body, "not registered with registry\n") == 0;
	reply_free(&r);
	TN_CHECK(ok);

	tn_admin_set_ready(a, true, NULL);
	ok = http_get(port, "/readyz?verbose=1", &r) && r.status == 200 &&
		strcmp(r.body, "ready\n") == 0;
	reply_free(&r);
	TN_CHECK(ok);

	tn_admin_set_ready(a, false, NULL);
	ok = http_get(port, "/readyz", &r) && r.status == 503 && strcmp(r.body, "not ready\n") == 0;
	reply_free(&r);
	TN_CHECK(ok);

	ok = http_get(port, "/nope", &r) && r.status == 404;
	reply_free(&r);
	TN_CHECK(ok);
	ok = http_get(port, "/metricsx", &r) && r.status == 404;
	reply_free(&r);
	TN_CHECK(ok);
	ok = http_request(port, "POST", "/metrics", &r) && r.status == 405;
	reply_free(&r);
	TN_CHECK(ok);

	/* The counter moves between scrapes: nothing is cached. */
	tn_counter_inc(c);
	ok = http_get(port, "/metrics", &r) && strstr(r.body, "\ntern_admin_test_total 8\n") != NULL;
	reply_free(&r);
	TN_CHECK(ok);

	tn_admin_stop(a);
	TN_CHECK(connect_to(port) < 0); /* nothing listens any more */
}

TN_TEST(test_port_in_use)
{
	int port;
	int fd = bound_socket(&port, true);
	struct tn_admin *a = NULL;
	int rv = tn_admin_start(&a, "127.0.0.1", port);
	close(fd);
	TN_CHECK_INT(rv, ==, TN_EADDR);
	TN_CHECK(a == NULL);

	/* Two admin servers of one process on one address: the second is refused too. */
	struct tn_admin *first = NULL, *second = NULL;
	TN_CHECK_OK(start_on_free_port(&first));
	rv = tn_admin_start(&second, "127.0.0.1", tn_admin_port(first));
	struct http_reply r;
	bool still = http_get(tn_admin_port(first), "/healthz", &r) && r.status == 200;
	reply_free(&r);
	tn_admin_stop(first);
	TN_CHECK_INT(rv, ==, TN_EADDR);
	TN_CHECK(second == NULL);
	TN_CHECK(still);
}

TN_TEST(test_restart_same_port)
{
	struct tn_admin *a = NULL;
	TN_CHECK_OK(start_on_free_port(&a));
	int port = tn_admin_port(a);
	tn_admin_stop(a);
	a = NULL;
	TN_CHECK_OK(tn_admin_start(&a, "127.0.0.1", port));
	struct http_reply r;
	bool ok = http_get(port, "/healthz", &r) && r.status == 200;
	reply_free(&r);
	tn_admin_stop(a);
	TN_CHECK(ok);
}

TN_TEST(test_stop_with_idle_connection)
{
	struct tn_admin *a = NULL;
	TN_CHECK_OK(start_on_free_port(&a));
	int port = tn_admin_port(a);
	int idle = connect_to(port);
	int partial = connect_to(port);
	TN_CHECK(idle >= 0 && partial >= 0);
	TN_CHECK(write(partial, "GET /metr", 9) == 9);
	usleep(50 * 1000); /* let nng accept both */
	tn_admin_stop(a);
	/* The server closed its ends: the clients see EOF (or a reset), not a hang. */
	bool closed = closed_by_peer(idle) && closed_by_peer(partial);
	close(idle);
	close(partial);
	TN_CHECK(closed);
}

struct scraper {
	int port;
	int bad;
};

static void *
scraper_main(void *arg)
{
	struct scraper *s = arg;
	for (int i = 0; i < 25; i++) {
		struct http_reply r;
		const char *path = i % 2 ? "/readyz" : "/metrics";
		bool ok = http_get(s->port, path, &r);
		if (!ok || (i % 2 && !((r.status == 200 && strcmp(r.body, "ready\n") == 0) ||
				(r.status == 503 && strcmp(r.body, "draining\n") == 0))))
			s->bad++;
		if (ok && i % 2 == 0 && strstr(r.body, "tern_admin_scrape_total") == NULL)
			s->bad++;
		reply_free(&r);
	}
	return NULL;
}

static void
collect_scrapes(void *arg)
{
	tn_counter_inc(arg);
}

/* Scrapes from several clients at once while readiness flips and a collector runs. */
TN_TEST(test_concurrent_scrapes)
{
	tn_metrics_reset_for_tests(false);
	struct tn_counter *scrapes;
	TN_CHECK_OK(tn_metrics_counter(&scrapes, "tern_admin_scrape_total", "Scrapes."));
	tn_metrics_add_collector(collect_scrapes, scrapes);
	struct tn_admin *a = NULL;
	TN_CHECK_OK(start_on_free_port(&a));
	tn_admin_set_ready(a, false, "draining"); /* before any scraper can ask */
	struct scraper s[4];
	pthread_t tids[4];
	for (int i = 0; i < 4; i++) {
		s[i] = (struct scraper){.port = tn_admin_port(a)};
		TN_CHECK_OK(pthread_create(&tids[i], NULL, scraper_main, &s[i]));
	}
	for (int i = 0; i < 200; i++) {
		tn_admin_set_ready(a, i % 2 == 0, "draining");
		usleep(500);
	}
	int bad = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(tids[i], NULL);
		bad += s[i].bad;
	}
	tn_admin_stop(a);
	/* Collectors are not run after stop returns; removing ours is then safe. */
	TN_CHECK(tn_metrics_remove_collector(collect_scrapes, scrapes));
	TN_CHECK_INT(bad, ==, 0);
	TN_CHECK_INT(tn_counter_get(scrapes), ==, 4 * 13);
}

TN_TEST_MAIN(TN_CASE(test_port_zero_disables), TN_CASE(test_bad_arguments), TN_CASE(test_routes),
	TN_CASE(test_port_in_use), TN_CASE(test_restart_same_port),
	TN_CASE(test_stop_with_idle_connection), TN_CASE(test_concurrent_scrapes))
