/* A growable byte buffer. Not thread-safe: one owner at a time. */
#ifndef TN_BUF_H
#define TN_BUF_H

#include <stddef.h>
#include <stdint.h>

struct tn_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Initialises b empty (no allocation). */
void tn_buf_init(struct tn_buf *b);
/* Releases b's storage and leaves it empty. */
void tn_buf_fini(struct tn_buf *b);
/* Makes room for n more bytes; returns a pointer to the free space (len unchanged). */
uint8_t *tn_buf_reserve(struct tn_buf *b, size_t n);
void tn_buf_append(struct tn_buf *b, const void *p, size_t n);
void tn_buf_append_byte(struct tn_buf *b, uint8_t c);
void tn_buf_append_str(struct tn_buf *b, const char *s);
void tn_buf_printf(struct tn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void tn_buf_consume(struct tn_buf *b, size_t n);
/* Sets len to 0, keeping the storage. */
void tn_buf_reset(struct tn_buf *b);
/* Hands the storage to the caller (who frees it) and leaves b empty. A NUL follows the
 * data so text can be used as a C string. */
uint8_t *tn_buf_release(struct tn_buf *b, size_t *len);

#endif
