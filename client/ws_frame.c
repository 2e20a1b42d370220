#include <assert.h>
#include <string.h>

#include "err.h"
#include "ws_frame.h"

#define WS_FIN  0x80u
#define WS_RSV  0x70u
#define WS_MASK 0x80u

bool
tn_cli_ws_op_is_control(enum tn_cli_ws_op op)
{
	return op == TN_CLI_WS_CLOSE || op == TN_CLI_WS_PING || op == TN_CLI_WS_PONG;
}

static bool
op_is_known(unsigned op)
{
	return op <= TN_CLI_WS_BINARY || (op >= TN_CLI_WS_CLOSE && op <= TN_CLI_WS_PONG);
}

/* XORs len bytes with the 4-byte key (masking and unmasking are the same operation). */
static void
mask_bytes(uint8_t *p, size_t len, const uint8_t key[4])
{
	for (size_t i = 0; i < len; i++)
		p[i] ^= key[i & 3];
}

void
tn_cli_ws_frame_encode(struct tn_buf *out, enum tn_cli_ws_op op, bool fin, const void *payload,
        size_t len, const uint8_t *mask)
{
	assert(op_is_known(op));
	assert(!tn_cli_ws_op_is_control(op) || (fin && len <= TN_CLI_WS_CONTROL_MAX));
	uint8_t head[TN_CLI_WS_HEADER_MAX];
	size_t n = 0;
	head[n++] = (uint8_t)((fin ? WS_FIN : 0) | (unsigned)op);
	uint8_t mbit = mask ? WS_MASK : 0;
	if (len < 126) {
		head[n++] = (uint8_t)(mbit | len);
	} else if (len <= 0xffff) {
		head[n++] = mbit | 126;
		head[n++] = (uint8_t)(len >> 8);
		head[n++] = (uint8_t)len;
	} else {
		head[n++] = mbit | 127;
		for (int i = 7; i >= 0; i--)
			head[n++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	if (mask) {
		memcpy(head + n, mask, 4);
		n += 4;
	}
	tn_buf_append(out, head, n);
	if (len == 0)
		return;
	size_t start = out->len;
	tn_buf_append(out, payload, len);
	if (mask)
		mask_bytes(out->data + start, len, mask);
}

/* Reads the payload length field; returns the header bytes it needs in total (without
 * the mask) or 0 when more bytes are needed. */
static size_t
length_field(uint64_t *plen, const uint8_t *data, size_t len)
{
	unsigned l7 = data[1] & 0x7fu;
	if (l7 < 126) {
		*plen = l7;
		return 2;
	}
	size_t extra = l7 == 126 ? 2 : 8;
	if (len < 2 + extra)
		return 0;
	uint64_t v = 0;
	for (size_t i = 0; i < extra; i++)
		v = v << 8 | data[2 + i];
	*plen = v;
	return 2 + extra;
}

/* The checks that need only the first two bytes. */
static int
check_first_bytes(const uint8_t *data, bool expect_masked)
{
	unsigned op = data[0] & 0x0fu;
	if ((data[0] & WS_RSV) || !op_is_known(op))
		return TN_EPROTO;
	if (tn_cli_ws_op_is_control(op) && (!(data[0] & WS_FIN) || (data[1] & 0x7fu) > 125))
		return TN_EPROTO;
	if (((data[1] & WS_MASK) != 0) != expect_masked)
		return TN_EPROTO;
	return TN_OK;
}

int
tn_cli_ws_frame_decode(struct tn_cli_ws_frame *out, size_t *used, uint8_t *data, size_t len,
        size_t max_payload, bool expect_masked)
{
	if (len < 2)
		return TN_ETRUNC;
	int rv = check_first_bytes(data, expect_masked);
	if (rv != TN_OK)
		return rv;
	uint64_t plen;
	size_t hlen = length_field(&plen, data, len);
	if (hlen == 0)
		return TN_ETRUNC;
	if (plen >> 63)
		return TN_EPROTO;
	if (plen > max_payload)
		return TN_ETOOBIG;
	size_t mlen = expect_masked ? 4 : 0;
	if (len - hlen < mlen || len - hlen - mlen < plen)
		return TN_ETRUNC;
	uint8_t *payload = data + hlen + mlen;
	if (expect_masked)
		mask_bytes(payload, (size_t)plen, data + hlen);
	out->op = (enum tn_cli_ws_op)(data[0] & 0x0fu);
	out->fin = (data[0] & WS_FIN) != 0;
	out->payload = payload;
	out->len = (size_t)plen;
	*used = hlen + mlen + (size_t)plen;
	return TN_OK;
}

void
tn_cli_ws_asm_init(struct tn_cli_ws_asm *a, size_t max)
{
	tn_buf_init(&a->buf);
	a->active = false;
	a->first = TN_CLI_WS_BINARY;
	a->max = max;
}

void
tn_cli_ws_asm_fini(struct tn_cli_ws_asm *a)
{
	tn_buf_fini(&a->buf);
	a->active = false;
}

static int
asm_fail(struct tn_cli_ws_asm *a, int err)
{
	tn_buf_reset(&a->buf);
	a->active = false;
	return err;
}

int
tn_cli_ws_asm_feed(struct tn_cli_ws_asm *a, const struct tn_cli_ws_frame *f, enum tn_cli_ws_op *op,
        const uint8_t **msg, size_t *len)
{
	assert(!tn_cli_ws_op_is_control(f->op));
	if (f->op == TN_CLI_WS_CONT) {
		if (!a->active)
			return asm_fail(a, TN_EPROTO);
	} else if (a->active) {
		return asm_fail(a, TN_EPROTO);
	} else if (f->fin) {
		if (f->len > a->max)
			return TN_ETOOBIG;
		*op = f->op;
		*msg = f->payload;
		*len = f->len;
		return TN_OK;
	} else {
		a->active = true;
		a->first = f->op;
		tn_buf_reset(&a->buf);
	}
	if (f->len > a->max - a->buf.len)
		return asm_fail(a, TN_ETOOBIG);
	tn_buf_append(&a->buf, f->payload, f->len);
	if (!f->fin)
		return TN_ETRUNC;
	a->active = false;
	*op = a->first;
	*msg = a->buf.data;
	*len = a->buf.len;
	return TN_OK;
}

void
tn_cli_ws_close_payload(struct tn_buf *out, uint16_t code, const char *reason)
{
	if (code == TN_CLI_WS_CLOSE_NO_STATUS)
		return;
	tn_buf_append_byte(out, (uint8_t)(code >> 8));
	tn_buf_append_byte(out, (uint8_t)code);
	if (reason) {
		size_t n = strlen(reason);
		tn_buf_append(
		        out, reason, n > TN_CLI_WS_CONTROL_MAX - 2 ? TN_CLI_WS_CONTROL_MAX - 2 : n);
	}
}

static bool
close_code_is_valid(unsigned code)
{
	if (code >= 1000 && code <= 1015)
		return code != 1004 && code != 1005 && code != 1006 && code != 1015;
	return code >= 3000 && code <= 4999;
}

int
tn_cli_ws_close_parse(uint16_t *code, const uint8_t **reason, size_t *reason_len,
        const uint8_t *payload, size_t len)
{
	if (len == 0) {
		*code = TN_CLI_WS_CLOSE_NO_STATUS;
		*reason = NULL;
		*reason_len = 0;
		return TN_OK;
	}
	if (len == 1)
		return TN_EPROTO;
	unsigned c = (unsigned)payload[0] << 8 | payload[1];
	if (!close_code_is_valid(c))
		return TN_EPROTO;
	*code = (uint16_t)c;
	*reason = payload + 2;
	*reason_len = len - 2;
	return TN_OK;
}
