/* A hash map from byte-string keys to pointers: open addressing with linear probing and
 * backward-shift deletion (no tombstones). Keys are borrowed: the caller keeps each key's
 * bytes alive and unchanged while it is in the map (usually they live in the value).
 * One thread at a time. */
#ifndef TN_MAP_H
#define TN_MAP_H

#include <stddef.h>
#include <stdint.h>

struct tn_map_entry {
	uint64_t hash; /* 0 = empty slot */
	const void *key;
	size_t len;
	void *val;
};

struct tn_map {
	struct tn_map_entry *slots;
	size_t cap; /* a power of two, or 0 */
	size_t count;
};

void tn_map_init(struct tn_map *m);
void tn_map_fini(struct tn_map *m);

/* The value stored under key, or NULL. */
void *tn_map_get(const struct tn_map *m, const void *key, size_t len);

/* Stores val under key, replacing (and returning) any previous value; NULL if none. */
void *tn_map_put(struct tn_map *m, const void *key, size_t len, void *val);

/* Removes key; returns its value, or NULL when absent. */
void *tn_map_del(struct tn_map *m, const void *key, size_t len);

/* Iteration: for (size_t i = 0; tn_map_next(m, &i, &e);) ... . The map must not be
 * changed during the loop. */
struct tn_map_entry *tn_map_next(const struct tn_map *m, size_t *iter);

#endif
