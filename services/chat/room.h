/* Rooms and their members on the chat server that owns them. Owned by the chat server's
 * loop thread; nothing here is thread-safe. */
#ifndef TN_ROOM_H
#define TN_ROOM_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"

struct tn_member {
	struct tn_member *prev, *next; /* entry order */
	char *name;
	size_t name_len;
	uint64_t sid;   /* the session on its connector */
	int stream;     /* the index of the member's connector's push stream */
};

/* Whether a room held here serves requests. */
enum tn_room_phase {
	TN_ROOM_ACTIVE = 0,     /* the one room of that id accepting requests in the cluster */
	TN_ROOM_REBUILDING = 1, /* its owner crashed: members are coming back from the
	                         * connectors; requests are answered TN_ERECOVERING */
};

struct tn_room {
	char *rid;
	size_t rid_len;
	enum tn_room_phase state;
	uint64_t next_seq; /* the number the room's next broadcast gets (moves with the room) */
	uint64_t gen;      /* the room's generation: new when made or rebuilt, kept by moves */
	uint64_t xfer;     /* the hand-off that brought it here (0: made here) */
	struct tn_member *head, *tail;
	size_t n_members;
	struct tn_map by_name;  /* name -> member */
	uint32_t *per_stream;   /* members per connector stream */
	int n_streams;
};

struct tn_rooms {
	struct tn_map by_rid;
	int n_streams;
	size_t n_members; /* over all rooms */
};

void tn_rooms_init(struct tn_rooms *rs, int n_streams);
/* Frees every room and member. */
void tn_rooms_fini(struct tn_rooms *rs);

/* The room, or NULL. */
struct tn_room *tn_rooms_find(struct tn_rooms *rs, const char *rid, size_t len);

/* The room, created empty when absent. */
struct tn_room *tn_rooms_get(struct tn_rooms *rs, const char *rid, size_t len);

/* Frees an empty room. */
void tn_rooms_drop_if_empty(struct tn_rooms *rs, struct tn_room *room);

/* Frees a room and its members (it was handed to another server). */
void tn_rooms_drop(struct tn_rooms *rs, struct tn_room *room);

size_t tn_rooms_count(const struct tn_rooms *rs);

/* The member with this name, or NULL. */
struct tn_member *tn_room_member(struct tn_room *room, const char *name, size_t len);

/* Adds a member at the end (the name must not be present). Returns it. */
struct tn_member *tn_room_add(struct tn_rooms *rs, struct tn_room *room, const char *name,
	size_t len, uint64_t sid, int stream);

/* Removes and frees a member. */
void tn_room_remove(struct tn_rooms *rs, struct tn_room *room, struct tn_member *m);

#endif
