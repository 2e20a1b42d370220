#include "room.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void
tn_rooms_init(struct tn_rooms *rs, int n_streams)
{
	tn_map_init(&rs->by_rid);
	rs->n_streams = n_streams;
	rs->n_members = 0;
}

static void
room_free(struct tn_room *room)
{
	struct tn_member *m = room->head;
	while (m) {
		struct tn_member *next = m->next;
		free(m->name);
		free(m);
		m = next;
	}
	tn_map_fini(&room->by_name);
	free(room->per_stream);
	free(room->rid);
	free(room);
}

void
tn_rooms_fini(struct tn_rooms *rs)
{
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&rs->by_rid, &it)) != NULL;)
		room_free(e->val);
	tn_map_fini(&rs->by_rid);
	rs->n_members = 0;
}

struct tn_room *
tn_rooms_find(struct tn_rooms *rs, const char *rid, size_t len)
{
	return tn_map_get(&rs->by_rid, rid, len);
}

struct tn_room *
tn_rooms_get(struct tn_rooms *rs, const char *rid, size_t len)
{
	struct tn_room *room = tn_map_get(&rs->by_rid, rid, len);
	if (room)
		return room;
	room = tn_calloc(1, sizeof(*room));
	room->rid = tn_strndup(rid, len);
	room->rid_len = len;
	room->next_seq = 1;
	tn_map_init(&room->by_name);
	room->n_streams = rs->n_streams;
	room->per_stream = tn_calloc((size_t)(rs->n_streams ? rs->n_streams : 1), sizeof(uint32_t));
	tn_map_put(&rs->by_rid, room->rid, len, room);
	return room;
}

void
tn_rooms_drop_if_empty(struct tn_rooms *rs, struct tn_room *room)
{
	if (room->n_members != 0)
		return;
	tn_map_del(&rs->by_rid, room->rid, room->rid_len);
	room_free(room);
}

void
tn_rooms_drop(struct tn_rooms *rs, struct tn_room *room)
{
	rs->n_members -= room->n_members;
	tn_map_del(&rs->by_rid, room->rid, room->rid_len);
	room_free(room);
}

size_t
tn_rooms_count(const struct tn_rooms *rs)
{
	return rs->by_rid.count;
}

struct tn_member *
tn_room_member(struct tn_room *room, const char *name, size_t len)
{
	return tn_map_get(&room->by_name, name, len);
}

struct tn_member *
tn_room_add(struct tn_rooms *rs, struct tn_room *room, const char *name, size_t len, uint64_t sid,
	int stream)
{
	struct tn_member *m = tn_calloc(1, sizeof(*m));
	m->name = tn_strndup(name, len);
	m->name_len = len;
	m->sid = sid;
	m->stream = stream;
	m->prev = room->tail;
	if (room->tail)
		room->tail->next = m;
	else
		room->head = m;
	room->tail = m;
	room->n_members++;
	room->per_stream[stream]++;
	rs->n_members++;
	tn_map_put(&room->by_name, m->name, len, m);
	return m;
}

void
tn_room_remove(struct tn_rooms *rs, struct tn_room *room, struct tn_member *m)
{
	tn_map_del(&room->by_name, m->name, m->name_len);
	if (m->prev)
		m->prev->next = m->next;
	else
		room->head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		room->tail = m->prev;
	room->n_members--;
	room->per_stream[m->stream]--;
	rs->n_members--;
	free(m->name);
	free(m);
}
