/* The HTTP side of a WebSocket client (RFC 6455 §4.1): the upgrade request and the check
 * of the server's 101 answer, with the SHA-1 and base64 they need for
 * Sec-WebSocket-Accept.
 *
 * Pure functions over bytes, except tn_cli_ws_key_new which draws random bytes. Any
 * thread. */
#ifndef TN_CLI_WS_HTTP_H
#define TN_CLI_WS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A Sec-WebSocket-Key: base64 of 16 bytes is 24 characters. */
#define TN_CLI_WS_KEY_LEN 24
/* A Sec-WebSocket-Accept: base64 of a 20-byte SHA-1 is 28 characters. */
#define TN_CLI_WS_ACCEPT_LEN 28
/* The longest response head accepted (status line and headers). */
#define TN_CLI_HTTP_HEAD_MAX 8192

/* Writes the SHA-1 digest of len bytes at data to out. */
void tn_cli_sha1(uint8_t out[20], const void *data, size_t len);

/* Writes the base64 (RFC 4648, padded) of len bytes at data to out, which must hold
 * 4 * ((len + 2) / 3) + 1 bytes, and NUL-terminates it. Returns the length written. */
size_t tn_cli_base64(char *out, const void *data, size_t len);

/* Writes a fresh random key (NUL-terminated) to key. Uses arc4random, so two connections
 * never share a key and a key cannot be predicted. */
void tn_cli_ws_key_new(char key[TN_CLI_WS_KEY_LEN + 1]);

/* Writes the Sec-WebSocket-Accept value the server must answer key with
 * (base64(SHA-1(key + the RFC's GUID))), NUL-terminated. */
void tn_cli_ws_accept(char out[TN_CLI_WS_ACCEPT_LEN + 1], const char *key);

/* Appends the upgrade request for ws://host:port/path to out (path NULL or "" means "/").
 * Like a browser it names no subprotocol and no extension, so the server must not enable
 * permessage-deflate. host and path are borrowed for the call and must not hold CR or LF
 * (the caller checks; asserted). */
void tn_cli_ws_upgrade_request(
        struct tn_buf *out, const char *host, int port, const char *path, const char *key);

/* Checks the response head at data (len bytes received so far) against the request sent
 * with key. On success writes the length of the head (the bytes after it are the first
 * WebSocket frames) to *head_len. Errors: TN_ETRUNC when the head is not complete yet,
 * TN_ETOOBIG when it passes TN_CLI_HTTP_HEAD_MAX without ending, TN_EPROTO when it is not
 * a valid "101 Switching Protocols" for key: another status, a missing or wrong Upgrade,
 * Connection or Sec-WebSocket-Accept header, or an extension or subprotocol the client
 * did not ask for. */
int tn_cli_ws_upgrade_check(size_t *head_len, const void *data, size_t len, const char *key);

/* The status code of the status line at the start of data, or -1 when there is no
 * complete, well-formed one. For error messages. */
int tn_cli_http_status(const void *data, size_t len);

#endif
