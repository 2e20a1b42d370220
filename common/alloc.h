/* Allocation that never returns NULL: on failure it prints one line and aborts (these are
 * restartable services; an untested NULL branch is worse than none). Any thread. */
#ifndef TN_ALLOC_H
#define TN_ALLOC_H

#include <stddef.h>

void *tn_malloc(size_t n);
void *tn_calloc(size_t count, size_t size);
void *tn_realloc(void *p, size_t n);
char *tn_strdup(const char *s);
char *tn_strndup(const char *s, size_t n);
void *tn_memdup(const void *p, size_t n);

#endif
