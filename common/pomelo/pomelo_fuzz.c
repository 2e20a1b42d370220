/* libFuzzer harness for the pomelo module: arbitrary bytes go to the package iterator,
 * the message decoder, the JSON control bodies and the connection state machine. Besides
 * the sanitizers, it checks invariants and traps when one breaks:
 * - decoded views stay inside the input; a decoded message re-encodes to the same fields;
 * - everything the server queues is well-formed: whole packages of types 1, 3, 4 or 5,
 *   no empty handshake, kick or response body, and handshake answers the client side
 *   can parse.
 * Built only with -DTERN_FUZZ=ON (clang). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "pomelo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static const char *const routes[] = {
        "gate.gateHandler.queryEntry",
        "connector.entryHandler.enter",
        "chat.chatHandler.send",
};

static const struct tn_pml_dict *
fuzz_dict(void)
{
	static struct tn_pml_dict *dict;
	if (dict == NULL && tn_pml_dict_new(&dict, routes, 3, NULL, 0) != TN_OK)
		__builtin_trap();
	return dict;
}

static void
fuzz_packages(const uint8_t *data, size_t size, size_t limit)
{
	struct tn_pml_pkg_iter it;
	struct tn_pml_pkg pkg;
	tn_pml_pkg_iter_init(&it, data, size, limit);
	size_t last = 0;
	int rv;
	while ((rv = tn_pml_pkg_next(&pkg, &it)) == TN_OK) {
		CHECK(tn_pml_pkg_type_is_valid(pkg.type));
		CHECK(pkg.body >= data + TN_PML_PKG_HEADER_LEN &&
		        pkg.body + pkg.len <= data + size);
		CHECK(pkg.len <= (limit ? limit : TN_PML_PKG_DEFAULT_LIMIT));
		CHECK(tn_pml_pkg_iter_offset(&it) > last);
		last = tn_pml_pkg_iter_offset(&it);
	}
	CHECK(rv == TN_ENOENT || rv == TN_ETRUNC || rv == TN_ETOOBIG || rv == TN_EPROTO);
	CHECK(tn_pml_pkg_next(&pkg, &it) == rv);
}

static void
fuzz_message(const uint8_t *data, size_t size)
{
	struct tn_pml_msg m;
	if (tn_pml_msg_decode(&m, data, size) != TN_OK)
		return;
	CHECK(m.body >= data && m.body + m.body_len == data + size);
	if (!m.compressed && m.route != NULL)
		CHECK((const uint8_t *)m.route > data &&
		        (const uint8_t *)m.route + m.route_len <= m.body);
	if (tn_pml_msg_resolve(&m, fuzz_dict()) != TN_OK)
		CHECK(m.compressed);
	if ((tn_pml_msg_has_id(m.type) && m.id == 0) || (m.compressed && m.route_code == 0))
		return; /* legal to decode, refused by the encoder */

	struct tn_buf b;
	struct tn_pml_msg again;
	tn_buf_init(&b);
	CHECK(tn_pml_msg_encode(&b, &m) == TN_OK);
	CHECK(tn_pml_msg_decode(&again, b.data, b.len) == TN_OK);
	CHECK(again.type == m.type && again.id == m.id && again.compressed == m.compressed);
	CHECK(again.body_len == m.body_len && memcmp(again.body, m.body, m.body_len) == 0);
	if (m.compressed)
		CHECK(again.route_code == m.route_code);
	else if (tn_pml_msg_has_route(m.type))
		CHECK(again.route_len == m.route_len &&
		        memcmp(again.route, m.route, m.route_len) == 0);
	tn_buf_fini(&b);
}

static void
fuzz_json(const uint8_t *data, size_t size)
{
	struct tn_pml_hs_config cfg = {
	        .heartbeat_s = 3, .dict = fuzz_dict(), .proto_version = "fz"};
	struct tn_buf b;
	tn_buf_init(&b);
	enum tn_pml_hs_code code = tn_pml_hs_answer(&b, &cfg, data, size);
	struct tn_pml_hs_reply reply;
	CHECK(b.len > TN_PML_PKG_HEADER_LEN && b.data[0] == TN_PML_PKG_HANDSHAKE);
	CHECK(tn_pml_hs_reply_parse(&reply, b.data + 4, b.len - 4) == TN_OK);
	CHECK(reply.code == (int)code);
	tn_pml_hs_reply_fini(&reply);

	if (tn_pml_hs_reply_parse(&reply, data, size) == TN_OK)
		tn_pml_hs_reply_fini(&reply);
	tn_buf_reset(&b);
	tn_pml_kick_decode(&b, data, size);
	tn_buf_fini(&b);
}

/* --- the state machine --- */

struct fuzz_conn {
	struct tn_pml_conn conn;
	unsigned mode;
	int closes;
};

static void
on_request(void *ctx, const struct tn_pml_msg *msg)
{
	struct fuzz_conn *f = ctx;
	CHECK(msg->route[msg->route_len] == '\0');
	/* Answer most requests, some twice, some never. */
	if (msg->id % 4 != 3)
		CHECK(tn_pml_conn_respond(&f->conn, msg->id, msg->body, msg->body_len) == TN_OK);
	if (msg->id % 4 == 2)
		CHECK(tn_pml_conn_respond(&f->conn, msg->id, "{}", 2) == TN_ENOENT);
	if (msg->id % 16 == 15)
		tn_pml_conn_kick(&f->conn, NULL);
}

static void
on_notify(void *ctx, const struct tn_pml_msg *msg)
{
	struct fuzz_conn *f = ctx;
	CHECK(msg->route[msg->route_len] == '\0');
	if (msg->body_len > 0 && msg->route_len > 0 &&
	        memchr(msg->route, 0, msg->route_len) == NULL)
		tn_pml_conn_push(&f->conn, msg->route, msg->body, msg->body_len);
}

static void
on_error(void *ctx, enum tn_pml_conn_error err, uint32_t req_id)
{
	struct fuzz_conn *f = ctx;
	CHECK(err >= 1 && err < TN_PML_ERR_COUNT_);
	if (req_id != 0)
		CHECK(tn_pml_conn_respond(&f->conn, req_id, "{\"code\":404}", 12) == TN_OK);
}

static void
on_close_needed(void *ctx, enum tn_pml_close_reason reason)
{
	struct fuzz_conn *f = ctx;
	f->closes++;
	CHECK(f->closes == 1);
	CHECK(tn_pml_conn_state(&f->conn) == TN_PML_CONN_CLOSED);
}

static const struct tn_pml_conn_cbs fuzz_cbs = {
        .on_request = on_request,
        .on_notify = on_notify,
        .on_error = on_error,
        .on_close_needed = on_close_needed,
};

/* Checks what the server queued and drains it in frames of at most max bytes. */
static void
drain_checked(struct tn_pml_conn *conn, size_t max)
{
	size_t len;
	uint8_t *p;
	while ((p = tn_pml_conn_out_peek(conn, &len, max)) != NULL) {
		struct tn_pml_pkg_iter it;
		struct tn_pml_pkg pkg;
		tn_pml_pkg_iter_init(&it, p, len, TN_PML_PKG_MAX_BODY);
		int rv, n = 0;
		while ((rv = tn_pml_pkg_next(&pkg, &it)) == TN_OK) {
			n++;
			CHECK(pkg.type != TN_PML_PKG_HANDSHAKE_ACK);
			if (pkg.type == TN_PML_PKG_HANDSHAKE || pkg.type == TN_PML_PKG_KICK)
				CHECK(pkg.len >= 2);
			if (pkg.type == TN_PML_PKG_HEARTBEAT)
				CHECK(pkg.len == 0);
			struct tn_pml_msg m;
			if (pkg.type == TN_PML_PKG_DATA) {
				CHECK(tn_pml_msg_decode(&m, pkg.body, pkg.len) == TN_OK);
				CHECK(m.type == TN_PML_MSG_RESPONSE || m.type == TN_PML_MSG_PUSH);
				CHECK(m.body_len > 0 && (m.type == TN_PML_MSG_PUSH || m.id != 0));
			}
		}
		CHECK(rv == TN_ENOENT && n >= 1);
		CHECK(max == 0 || len <= max || n == 1);
		/* The headroom is the transport's to overwrite. */
		memset(p - conn->cfg->out_headroom, 0xa5, conn->cfg->out_headroom);
		tn_pml_conn_out_consume(conn, len);
	}
	CHECK(tn_pml_conn_out_pending(conn) == 0);
}

static void
feed_one(struct fuzz_conn *f, const uint8_t *data, size_t size, int64_t now)
{
	/* An exact-size copy, so that the sanitizer sees any read past the message. */
	uint8_t *copy = tn_memdup(data, size);
	int rv = tn_pml_conn_feed(&f->conn, copy, size, now);
	free(copy);
	CHECK(rv == TN_OK || rv == TN_ECLOSED);
	CHECK((rv == TN_ECLOSED) == (tn_pml_conn_state(&f->conn) == TN_PML_CONN_CLOSED));
}

static void
fuzz_conn(const uint8_t *data, size_t size)
{
	static const uint8_t hello[] = {0x01, 0x00, 0x00, 0x0a, '{', '"', 's', 'y', 's', '"', ':',
	        '{', '}', '}', 0x02, 0x00, 0x00, 0x00};
	if (size < 2)
		return;
	struct tn_pml_conn_config cfg;
	tn_pml_conn_config_init(&cfg);
	unsigned mode = data[0];
	cfg.hs.heartbeat_s = mode & 0x02 ? 3 : 0;
	cfg.hs.dict = mode & 0x04 ? fuzz_dict() : NULL;
	cfg.package_limit = mode & 0x08 ? 64 : 0;
	cfg.out_limit = mode & 0x10 ? 256 : 0;
	cfg.out_headroom = mode & 0x20 ? 16 : 0;
	cfg.max_inflight = mode & 0x40 ? 2 : 0;
	size_t split = data[1] % (size - 1);
	data += 2;
	size -= 2;

	struct fuzz_conn f = {.mode = mode};
	tn_pml_conn_init(&f.conn, &cfg, &fuzz_cbs, &f, 0);
	/* Half the runs start WORKING so that the mutator spends its time on DATA. */
	if (mode & 0x01)
		feed_one(&f, hello, sizeof(hello), 0);
	if (split > 0)
		feed_one(&f, data, split, 100);
	drain_checked(&f.conn, mode & 0x80 ? 40 : 0);
	tn_pml_conn_check_timeout(&f.conn, 100 + (int64_t)(mode & 0x0f) * 1000);
	if (size - split > 0)
		feed_one(&f, data + split, size - split, 9000);
	tn_pml_conn_push(&f.conn, "onChat", "{\"m\":1}", 7);
	tn_pml_conn_check_timeout(&f.conn, 20000);
	CHECK(tn_pml_conn_state(&f.conn) == TN_PML_CONN_CLOSED || cfg.hs.heartbeat_s == 0);
	drain_checked(&f.conn, mode & 0x80 ? 0 : 40);
	tn_pml_conn_fini(&f.conn);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_packages(data, size, 0);
	fuzz_packages(data, size, 8);
	fuzz_message(data, size);
	/* A DATA package's body, when the input is one. */
	if (size >= TN_PML_PKG_HEADER_LEN)
		fuzz_message(data + TN_PML_PKG_HEADER_LEN, size - TN_PML_PKG_HEADER_LEN);
	fuzz_json(data, size);
	if (size >= TN_PML_PKG_HEADER_LEN)
		fuzz_json(data + TN_PML_PKG_HEADER_LEN, size - TN_PML_PKG_HEADER_LEN);
	fuzz_conn(data, size);
	return 0;
}
