/* WebSocket framing (RFC 6455 §5) for the client library: frame encoding with masking,
 * an incremental frame decoder, reassembly of fragmented messages, and close payloads.
 *
 * A client masks every frame it sends and must refuse a masked frame from the server;
 * the decoder also has a server role (expect_masked) so that tests can play the server.
 * No extension is ever negotiated, so any RSV bit is an error.
 *
 * Pure functions over bytes; the assembler allocates. Any thread, one user per object. */
#ifndef TN_CLI_WS_FRAME_H
#define TN_CLI_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum tn_cli_ws_op {
	TN_CLI_WS_CONT = 0x0,
	TN_CLI_WS_TEXT = 0x1,
	TN_CLI_WS_BINARY = 0x2,
	TN_CLI_WS_CLOSE = 0x8,
	TN_CLI_WS_PING = 0x9,
	TN_CLI_WS_PONG = 0xa,
};

/* Close status codes used here (RFC 6455 §7.4.1). */
enum tn_cli_ws_close_code {
	TN_CLI_WS_CLOSE_NORMAL = 1000,
	TN_CLI_WS_CLOSE_GOING_AWAY = 1001,
	TN_CLI_WS_CLOSE_PROTOCOL = 1002,
	TN_CLI_WS_CLOSE_UNSUPPORTED = 1003,
	TN_CLI_WS_CLOSE_NO_STATUS = 1005, /* never sent: "the close frame had no code" */
	TN_CLI_WS_CLOSE_ABNORMAL = 1006,  /* never sent: "no close frame at all" */
	TN_CLI_WS_CLOSE_TOO_BIG = 1009,
};

/* The longest frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define TN_CLI_WS_HEADER_MAX 14
/* Control frames carry at most 125 bytes and are never fragmented. */
#define TN_CLI_WS_CONTROL_MAX 125

/* True for CLOSE, PING and PONG. */
bool tn_cli_ws_op_is_control(enum tn_cli_ws_op op);

/* Appends one frame to out. mask is the 4-byte masking key (a client always passes one);
 * NULL sends the payload unmasked, as a server does. The payload (len bytes, may be NULL
 * when len is 0) is borrowed for the call. A control frame must be final and at most
 * TN_CLI_WS_CONTROL_MAX bytes (asserted: the library never builds another). */
void tn_cli_ws_frame_encode(struct tn_buf *out, enum tn_cli_ws_op op, bool fin, const void *payload,
        size_t len, const uint8_t *mask);

/* One decoded frame; payload points into the decoded buffer, already unmasked. */
struct tn_cli_ws_frame {
	enum tn_cli_ws_op op;
	bool fin;
	uint8_t *payload;
	size_t len;
};

/* Decodes the frame at the start of data (len bytes received so far). On success writes
 * the frame and the number of bytes it took (*used), and unmasks its payload in place.
 * max_payload bounds the payload of one frame. expect_masked is false for a client (the
 * server's frames must not be masked) and true for a server. Errors: TN_ETRUNC when the
 * frame is not complete yet (nothing is changed; call again with more bytes), TN_EPROTO
 * for an RSV bit, an unknown opcode, a fragmented or oversized control frame, a masking
 * bit that does not match the role, or a 64-bit length with the top bit set, TN_ETOOBIG
 * when the payload is over max_payload. */
int tn_cli_ws_frame_decode(struct tn_cli_ws_frame *out, size_t *used, uint8_t *data, size_t len,
        size_t max_payload, bool expect_masked);

/* Reassembles data frames into messages. Caller's storage; fields are private. */
struct tn_cli_ws_asm {
	struct tn_buf buf;
	bool active;             /* a fragmented message is in progress */
	enum tn_cli_ws_op first; /* its opcode (TEXT or BINARY) */
	size_t max;              /* largest message */
};

/* Starts an assembler for messages of at most max bytes. */
void tn_cli_ws_asm_init(struct tn_cli_ws_asm *a, size_t max);

/* Releases the assembler's buffer. */
void tn_cli_ws_asm_fini(struct tn_cli_ws_asm *a);

/* Feeds one data frame (TEXT, BINARY or CONT; control frames are the caller's). When it
 * completes a message, writes its opcode, bytes and length and returns TN_OK: the bytes
 * are f's payload for an unfragmented message, otherwise the assembler's buffer, valid
 * until the next call. TN_ETRUNC: a fragment was stored, no message yet. TN_EPROTO: a
 * continuation with no message started, or a new message while one is in progress.
 * TN_ETOOBIG: the message grew past max. After an error the assembler is reset. */
int tn_cli_ws_asm_feed(struct tn_cli_ws_asm *a, const struct tn_cli_ws_frame *f,
        enum tn_cli_ws_op *op, const uint8_t **msg, size_t *len);

/* Appends a CLOSE payload (code, then up to 123 bytes of reason; NULL for none) to out.
 * TN_CLI_WS_CLOSE_NO_STATUS makes an empty payload. */
void tn_cli_ws_close_payload(struct tn_buf *out, uint16_t code, const char *reason);

/* Reads a CLOSE payload: an empty one gives TN_CLI_WS_CLOSE_NO_STATUS and no reason.
 * Otherwise writes the code and the reason (a view into payload, not NUL-terminated).
 * TN_EPROTO for a 1-byte payload or a code that may not be sent (below 1000, 1004-1006,
 * 1015, 1016-2999, 5000 and above). */
int tn_cli_ws_close_parse(uint16_t *code, const uint8_t **reason, size_t *reason_len,
        const uint8_t *payload, size_t len);

#endif
