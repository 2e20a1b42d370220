#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "ws_http.h"

/* ---- SHA-1 (FIPS 180-4 §6.1), only for Sec-WebSocket-Accept ---- */

static uint32_t
rol32(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static uint32_t
load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t
sha1_f(int round, uint32_t b, uint32_t c, uint32_t d)
{
	if (round < 20)
		return (b & c) | (~b & d);
	if (round < 40 || round >= 60)
		return b ^ c ^ d;
	return (b & c) | (b & d) | (c & d);
}

static void
sha1_block(uint32_t h[5], const uint8_t *p)
{
	static const uint32_t k[4] = {0x5a827999, 0x6ed9eba1, 0x8f1bbcdc, 0xca62c1d6};
	uint32_t w[80];
	for (int i = 0; i < 16; i++)
		w[i] = load_be32(p + 4 * i);
	for (int i = 16; i < 80; i++)
		w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 80; i++) {
		uint32_t t = rol32(a, 5) + sha1_f(i, b, c, d) + e + k[i / 20] + w[i];
		e = d;
		d = c;
		c = rol32(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void
tn_cli_sha1(uint8_t out[20], const void *data, size_t len)
{
	uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
	const uint8_t *p = data;
	size_t full = len / 64 * 64;
	for (size_t off = 0; off < full; off += 64)
		sha1_block(h, p + off);

	/* The tail, the 0x80 marker and the 64-bit bit count fill one or two blocks. */
	uint8_t tail[128] = {0};
	size_t rest = len - full;
	if (rest)
		memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	size_t tail_len = rest < 56 ? 64 : 128;
	uint64_t bits = (uint64_t)len * 8;
	for (int i = 0; i < 8; i++)
		tail[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (size_t off = 0; off < tail_len; off += 64)
		sha1_block(h, tail + off);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}

size_t
tn_cli_base64(char *out, const void *data, size_t len)
{
	static const char abc[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = data;
	size_t n = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		out[n++] = abc[v >> 18 & 63];
		out[n++] = abc[v >> 12 & 63];
		out[n++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
		out[n++] = i + 2 < len ? abc[v & 63] : '=';
	}
	out[n] = '\0';
	return n;
}

/* ---- the upgrade ---- */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void
tn_cli_ws_key_new(char key[TN_CLI_WS_KEY_LEN + 1])
{
	uint8_t raw[16];
	arc4random_buf(raw, sizeof(raw));
	tn_cli_base64(key, raw, sizeof(raw));
}

void
tn_cli_ws_accept(char out[TN_CLI_WS_ACCEPT_LEN + 1], const char *key)
{
	char joined[128];
	size_t klen = strlen(key);
	assert(klen + sizeof(ws_guid) <= sizeof(joined));
	memcpy(joined, key, klen);
	memcpy(joined + klen, ws_guid, sizeof(ws_guid) - 1);
	uint8_t digest[20];
	tn_cli_sha1(digest, joined, klen + sizeof(ws_guid) - 1);
	tn_cli_base64(out, digest, sizeof(digest));
}

void
tn_cli_ws_upgrade_request(
        struct tn_buf *out, const char *host, int port, const char *path, const char *key)
{
	assert(strpbrk(host, "\r\n") == NULL);
	if (path == NULL || *path == '\0')
		path = "/";
	assert(strpbrk(path, "\r\n ") == NULL);
	/* An IPv6 literal goes in brackets in the Host header. */
	bool v6 = strchr(host, ':') != NULL;
	tn_buf_printf(out,
	        "GET %s HTTP/1.1\r\n"
	        "Host: %s%s%s:%d\r\n"
	        "Upgrade: websocket\r\n"
	        "Connection: Upgrade\r\n"
	        "Sec-WebSocket-Key: %s\r\n"
	        "Sec-WebSocket-Version: 13\r\n"
	        "User-Agent: tern-client/1\r\n"
	        "\r\n",
	        path, v6 ? "[" : "", host, v6 ? "]" : "", port, key);
}

/* Finds the blank line ending the head; returns the head length or 0. */
static size_t
head_end(const char *s, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++) {
		if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' && s[i + 3] == '\n')
			return i + 4;
	}
	return 0;
}

int
tn_cli_http_status(const void *data, size_t len)
{
	const char *s = data;
	/* "HTTP/1.x NNN" followed by a space or the end of the line. */
	if (len < 14 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' || s[8] != ' ')
		return -1;
	int code = 0;
	for (int i = 9; i < 12; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		code = code * 10 + (s[i] - '0');
	}
	if (s[12] != ' ' && s[12] != '\r')
		return -1;
	return code;
}

/* What the headers of a response said. */
struct upgrade_seen {
	bool upgrade;    /* Upgrade: websocket */
	bool connection; /* Connection has the token upgrade */
	bool accept;     /* Sec-WebSocket-Accept matched */
	bool unasked;    /* an extension or subprotocol the client did not request */
};

/* True when the comma-separated list v (n bytes) holds token, case-insensitively. */
static bool
list_has_token(const char *v, size_t n, const char *token)
{
	size_t tlen = strlen(token);
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t start = i;
		while (i < n && v[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end - start == tlen && strncasecmp(v + start, token, tlen) == 0)
			return true;
	}
	return false;
}

static bool
name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

static void
header_note(struct upgrade_seen *seen, const char *name, size_t nlen, const char *v, size_t vlen,
        const char *accept)
{
	if (name_is(name, nlen, "Upgrade"))
		seen->upgrade = vlen == 9 && strncasecmp(v, "websocket", 9) == 0;
	else if (name_is(name, nlen, "Connection"))
		seen->connection = list_has_token(v, vlen, "upgrade");
	else if (name_is(name, nlen, "Sec-WebSocket-Accept"))
		seen->accept = vlen == TN_CLI_WS_ACCEPT_LEN && memcmp(v, accept, vlen) == 0;
	else if ((name_is(name, nlen, "Sec-WebSocket-Extensions") ||
	                 name_is(name, nlen, "Sec-WebSocket-Protocol")) &&
	         vlen > 0)
		seen->unasked = true;
}

/* Parses one "name: value" line of n bytes. Returns false when it is malformed. */
static bool
header_parse(struct upgrade_seen *seen, const char *line, size_t n, const char *accept)
{
	const char *colon = memchr(line, ':', n);
	/* A missing name, a space before the colon, or an obsolete folded line. */
	if (colon == NULL || colon == line || line[0] == ' ' || line[0] == '\t' ||
	        colon[-1] == ' ' || colon[-1] == '\t')
		return false;
	const char *v = colon + 1, *end = line + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	header_note(seen, line, (size_t)(colon - line), v, (size_t)(end - v), accept);
	return true;
}

int
tn_cli_ws_upgrade_check(size_t *head_len, const void *data, size_t len, const char *key)
{
	const char *s = data;
	size_t scan = len < TN_CLI_HTTP_HEAD_MAX ? len : TN_CLI_HTTP_HEAD_MAX;
	size_t hlen = head_end(s, scan);
	if (hlen == 0)
		return len >= TN_CLI_HTTP_HEAD_MAX ? TN_ETOOBIG : TN_ETRUNC;
	if (tn_cli_http_status(s, hlen) != 101)
		return TN_EPROTO;

	char accept[TN_CLI_WS_ACCEPT_LEN + 1];
	tn_cli_ws_accept(accept, key);
	struct upgrade_seen seen = {0};
	const char *p = (const char *)memchr(s, '\n', hlen) + 1; /* after the status line */
	const char *end = s + hlen - 2;                          /* the final CRLF */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || nl == p || nl[-1] != '\r')
			return TN_EPROTO;
		if (!header_parse(&seen, p, (size_t)(nl - 1 - p), accept))
			return TN_EPROTO;
		p = nl + 1;
	}
	if (!seen.upgrade || !seen.connection || !seen.accept || seen.unasked)
		return TN_EPROTO;
	*head_len = hlen;
	return TN_OK;
}
