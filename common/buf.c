#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void
tn_buf_init(struct tn_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
tn_buf_fini(struct tn_buf *b)
{
	free(b->data);
	tn_buf_init(b);
}

uint8_t *
tn_buf_reserve(struct tn_buf *b, size_t n)
{
	/* One spare byte so tn_buf_release can always NUL-terminate. */
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = tn_realloc(b->data, cap);
		b->cap = cap;
	}
	return b->data + b->len;
}

void
tn_buf_append(struct tn_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(tn_buf_reserve(b, n), p, n);
	b->len += n;
}

void
tn_buf_append_byte(struct tn_buf *b, uint8_t c)
{
	*tn_buf_reserve(b, 1) = c;
	b->len++;
}

void
tn_buf_append_str(struct tn_buf *b, const char *s)
{
	tn_buf_append(b, s, strlen(s));
}

void
tn_buf_printf(struct tn_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	char *dst = (char *)tn_buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(dst, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
tn_buf_consume(struct tn_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void
tn_buf_reset(struct tn_buf *b)
{
	b->len = 0;
}

uint8_t *
tn_buf_release(struct tn_buf *b, size_t *len)
{
	tn_buf_reserve(b, 0);
	b->data[b->len] = 0;
	uint8_t *p = b->data;
	if (len)
		*len = b->len;
	tn_buf_init(b);
	return p;
}
