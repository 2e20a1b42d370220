#include "map.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <stdbool.h>

#include "alloc.h"

void
tn_map_init(struct tn_map *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->count = 0;
}

void
tn_map_fini(struct tn_map *m)
{
	free(m->slots);
	tn_map_init(m);
}

static uint64_t
key_hash(const void *key, size_t len)
{
	uint64_t h = XXH3_64bits(key, len);
	return h ? h : 1; /* 0 marks an empty slot */
}

static struct tn_map_entry *
find(const struct tn_map *m, uint64_t h, const void *key, size_t len)
{
	if (m->cap == 0)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct tn_map_entry *e = &m->slots[i];
		if (e->hash == 0)
			return NULL;
		if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
			return e;
	}
}

void *
tn_map_get(const struct tn_map *m, const void *key, size_t len)
{
	struct tn_map_entry *e = find(m, key_hash(key, len), key, len);
	return e ? e->val : NULL;
}

static void
insert_new(struct tn_map *m, struct tn_map_entry ent)
{
	size_t mask = m->cap - 1;
	size_t i = ent.hash & mask;
	while (m->slots[i].hash != 0)
		i = (i + 1) & mask;
	m->slots[i] = ent;
	m->count++;
}

static void
grow(struct tn_map *m)
{
	struct tn_map old = *m;
	m->cap = old.cap ? old.cap * 2 : 16;
	m->slots = tn_calloc(m->cap, sizeof(*m->slots));
	m->count = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].hash)
			insert_new(m, old.slots[i]);
	free(old.slots);
}

void *
tn_map_put(struct tn_map *m, const void *key, size_t len, void *val)
{
	uint64_t h = key_hash(key, len);
	struct tn_map_entry *e = find(m, h, key, len);
	if (e) {
		void *prev = e->val;
		e->key = key; /* the new value's copy of the key */
		e->val = val;
		return prev;
	}
	if ((m->count + 1) * 4 > m->cap * 3) /* load factor 3/4 */
		grow(m);
	insert_new(m, (struct tn_map_entry){.hash = h, .key = key, .len = len, .val = val});
	return NULL;
}

void *
tn_map_del(struct tn_map *m, const void *key, size_t len)
{
	struct tn_map_entry *e = find(m, key_hash(key, len), key, len);
	if (e == NULL)
		return NULL;
	void *val = e->val;
	size_t mask = m->cap - 1;
	size_t hole = (size_t)(e - m->slots);
	/* Backward shift: move later entries of the probe run into the hole when their home
	 * slot is not between the hole and themselves. */
	for (size_t j = (hole + 1) & mask; m->slots[j].hash != 0; j = (j + 1) & mask) {
		size_t home = m->slots[j].hash & mask;
		bool stays = (hole <= j) ? (hole < home && home <= j) : (hole < home || home <= j);
		if (!stays) {
			m->slots[hole] = m->slots[j];
			hole = j;
		}
	}
	m->slots[hole].hash = 0;
	m->count--;
	return val;
}

struct tn_map_entry *
tn_map_next(const struct tn_map *m, size_t *iter)
{
	while (*iter < m->cap) {
		struct tn_map_entry *e = &m->slots[(*iter)++];
		if (e->hash)
			return e;
	}
	return NULL;
}
