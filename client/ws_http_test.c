#include <string.h>

#include "err.h"
#include "tn_test.h"
#include "ws_http.h"

static void
hex20(char out[41], const uint8_t d[20])
{
	for (int i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int
sha1_is(const void *data, size_t len, const char *want)
{
	uint8_t d[20];
	char hex[41];
	tn_cli_sha1(d, data, len);
	hex20(hex, d);
	if (strcmp(hex, want) != 0) {
		fprintf(stderr, "sha1 of %zu bytes: %s, want %s\n", len, hex, want);
		return 0;
	}
	return 1;
}

TN_TEST(sha1_vectors)
{
	TN_CHECK(sha1_is("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709"));
	TN_CHECK(sha1_is("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d"));
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	TN_CHECK(sha1_is(two, strlen(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1"));
	/* Lengths around the padding boundaries (55/56 bytes in the last block). */
	static const struct {
		size_t n;
		const char *hex;
	} as[] = {
	        {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
	        {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
	        {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
	        {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
	        {65, "11655326c708d70319be2610e8a57d9a5b959d3b"},
	        {119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"},
	        {120, "f34c1488385346a55709ba056ddd08280dd4c6d6"},
	};
	char buf[128];
	memset(buf, 'a', sizeof(buf));
	for (size_t i = 0; i < sizeof(as) / sizeof(as[0]); i++)
		TN_CHECK(sha1_is(buf, as[i].n, as[i].hex));
	static char million[1000000];
	memset(million, 'a', sizeof(million));
	TN_CHECK(sha1_is(million, sizeof(million), "34aa973cd4c4daa4f61eeb2bdbad27316534016f"));
}

TN_TEST(base64_vectors)
{
	static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	char buf[16];
	for (size_t i = 0; i < 7; i++) {
		size_t n = tn_cli_base64(buf, in[i], strlen(in[i]));
		TN_CHECK_INT(n, ==, strlen(out[i]));
		TN_CHECK_STR(buf, out[i]);
	}
	const uint8_t bin[] = {0xff, 0xfe, 0x00};
	tn_cli_base64(buf, bin, 3);
	TN_CHECK_STR(buf, "//4A");
}

TN_TEST(accept_rfc_example)
{
	char accept[TN_CLI_WS_ACCEPT_LEN + 1];
	tn_cli_ws_accept(accept, "dGhlIHNhbXBsZSBub25jZQ==");
	TN_CHECK_STR(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TN_TEST(keys_are_fresh)
{
	char a[TN_CLI_WS_KEY_LEN + 1], b[TN_CLI_WS_KEY_LEN + 1];
	tn_cli_ws_key_new(a);
	tn_cli_ws_key_new(b);
	TN_CHECK_INT(strlen(a), ==, 24);
	TN_CHECK(a[22] == '=' && a[23] == '=');
	TN_CHECK(strcmp(a, b) != 0);
}

TN_TEST(upgrade_request_bytes)
{
	struct tn_buf b;
	tn_buf_init(&b);
	tn_cli_ws_upgrade_request(&b, "127.0.0.1", 3014, NULL, "dGhlIHNhbXBsZSBub25jZQ==");
	const char *want = "GET / HTTP/1.1\r\n"
	                   "Host: 127.0.0.1:3014\r\n"
	                   "Upgrade: websocket\r\n"
	                   "Connection: Upgrade\r\n"
	                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                   "Sec-WebSocket-Version: 13\r\n"
	                   "User-Agent: tern-client/1\r\n"
	                   "\r\n";
	TN_CHECK_MEM(b.data, b.len, want, strlen(want));
	tn_buf_reset(&b);
	tn_cli_ws_upgrade_request(&b, "::1", 80, "/chat", "k");
	tn_buf_append_byte(&b, 0);
	TN_CHECK(strstr((char *)b.data, "GET /chat HTTP/1.1\r\n") != NULL);
	TN_CHECK(strstr((char *)b.data, "Host: [::1]:80\r\n") != NULL);
	tn_buf_fini(&b);
}

static const char *key = "dGhlIHNhbXBsZSBub25jZQ==";

static int
check(const char *resp, size_t *head)
{
	return tn_cli_ws_upgrade_check(head, resp, strlen(resp), key);
}

TN_TEST(upgrade_response_valid)
{
	const char *r = "HTTP/1.1 101 Switching Protocols\r\n"
	                "upgrade: WebSocket\r\n"
	                "CONNECTION: keep-alive, Upgrade\r\n"
	                "Sec-WebSocket-Accept:   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \r\n"
	                "Sec-WebSocket-Extensions:\r\n"
	                "Server: test\r\n"
	                "\r\n";
	size_t head = 0;
	TN_CHECK_OK(check(r, &head));
	TN_CHECK_INT(head, ==, strlen(r));
	/* Frame bytes after the head are not part of it. */
	char more[512];
	snprintf(more, sizeof(more), "%s\x82\x01X", r);
	TN_CHECK_OK(check(more, &head));
	TN_CHECK_INT(head, ==, strlen(r));
	/* No reason phrase is fine. */
	TN_CHECK_OK(check("HTTP/1.1 101\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
	                  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	        &head));
	/* Every strict prefix is incomplete. */
	for (size_t n = 0; n < strlen(r); n++)
		TN_CHECK_INT(tn_cli_ws_upgrade_check(&head, r, n, key), ==, TN_ETRUNC);
}

TN_TEST(upgrade_response_refused)
{
	size_t head = 7;
	const char *ok_headers = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
	char r[1024];
	snprintf(r, sizeof(r), "HTTP/1.1 200 OK\r\n%s\r\n", ok_headers);
	TN_CHECK_INT(check(r, &head), ==, TN_EPROTO);
	TN_CHECK_INT(tn_cli_http_status(r, strlen(r)), ==, 200);
	TN_CHECK_INT(head, ==, 7); /* untouched on failure */

	static const char *bad[] = {
	        /* wrong accept */
	        "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
	        /* no Upgrade */
	        "HTTP/1.1 101 x\r\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	        /* Connection without the upgrade token */
	        "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: upgraded\r\n"
	        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	        /* an extension we never offered */
	        "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
	        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	        /* a subprotocol we never asked for */
	        "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Protocol: chat\r\n"
	        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	        /* a folded header line */
	        "HTTP/1.1 101 x\r\nUpgrade: websocket\r\n continued\r\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	        /* a line without a colon */
	        "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\ngarbage\r\n"
	        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	        /* a bare LF */
	        "HTTP/1.1 101 x\r\nUpgrade: websocket\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	        /* not HTTP */
	        "SSH-2.0-OpenSSH\r\n\r\n",
	        "HTTP/1.1 1o1 x\r\n\r\n",
	        "\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (check(bad[i], &head) != TN_EPROTO) {
			fprintf(stderr, "accepted bad response %zu\n", i);
			TN_CHECK(0);
		}
	}
	TN_CHECK_INT(tn_cli_http_status("HTTP/1.1 1o1 x\r\n", 16), ==, -1);
}

TN_TEST(upgrade_response_too_long)
{
	static char big[TN_CLI_HTTP_HEAD_MAX + 100];
	memset(big, 'x', sizeof(big));
	memcpy(big, "HTTP/1.1 101 x\r\n", 16);
	size_t head;
	TN_CHECK_INT(tn_cli_ws_upgrade_check(&head, big, sizeof(big), key), ==, TN_ETOOBIG);
	TN_CHECK_INT(tn_cli_ws_upgrade_check(&head, big, 100, key), ==, TN_ETRUNC);
}

TN_TEST_MAIN(TN_CASE(sha1_vectors), TN_CASE(base64_vectors), TN_CASE(accept_rfc_example),
        TN_CASE(keys_are_fresh), TN_CASE(upgrade_request_bytes), TN_CASE(upgrade_response_valid),
        TN_CASE(upgrade_response_refused), TN_CASE(upgrade_response_too_long))
