#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
oom(size_t n)
{
	fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
	abort();
}

void *
tn_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *
tn_calloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (p == NULL)
		oom(count * size);
	return p;
}

void *
tn_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom(n);
	return q;
}

char *
tn_strdup(const char *s)
{
	return tn_memdup(s, strlen(s) + 1);
}

char *
tn_strndup(const char *s, size_t n)
{
	char *p = tn_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void *
tn_memdup(const void *src, size_t n)
{
	void *p = tn_malloc(n);
	if (n)
		memcpy(p, src, n);
	return p;
}
