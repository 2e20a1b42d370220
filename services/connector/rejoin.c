/* Re-registering members after a chat server is lost (design.md §3): the new owner of
 * each of its rooms rebuilds the room from the connectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "connector_internal.h"
#include "err.h"
#include "log.h"
#include "moves.h"
#include "reply.h"

/* ---- re-registering members after a chat server is lost ---- */

/* Members per message (the decoder's array bound is 65536). */
#define REJOIN_CHUNK 32768
#define REJOIN_RETRY_MS 100

/* The entries of one lost server's rooms that one live chat server now owns. */
struct rejoin_target {
	char *id;
	struct tn_str *rids, *names;
	uint64_t *sids;
	uint32_t n, off;
	bool done;
};

struct rejoin {
	struct rejoin *next;
	uint64_t id;
	struct tn_server_info lost;
	int64_t until_ms;
	uint64_t epoch; /* the membership the targets were computed for */
	uint64_t gen;   /* bumped at every recomputation: older answers are ignored */
	struct rejoin_target *targets;
	int n_targets;
	bool retry_armed;
	int64_t retry_at;
};

struct rejoin_call {
	struct tn_connector *c;
	uint64_t job, gen;
	int target;
};

static uint64_t rejoin_ids;

static void
rejoin_targets_free(struct rejoin *j)
{
	for (int i = 0; i < j->n_targets; i++) {
		for (uint32_t e = 0; e < j->targets[i].n; e++) {
			free((char *)j->targets[i].rids[e].p);
			free((char *)j->targets[i].names[e].p);
		}
		free(j->targets[i].id);
		free(j->targets[i].rids);
		free(j->targets[i].names);
		free(j->targets[i].sids);
	}
	free(j->targets);
	j->targets = NULL;
	j->n_targets = 0;
}

static void
rejoin_free(struct rejoin *j)
{
	rejoin_targets_free(j);
	tn_server_info_fini(&j->lost);
	free(j);
}

void
conn_rejoins_free(struct tn_connector *c)
{
	while (c->rejoins) {
		struct rejoin *j = c->rejoins;
		c->rejoins = j->next;
		rejoin_free(j);
	}
}

static struct rejoin *
rejoin_find(struct tn_connector *c, uint64_t id)
{
	for (struct rejoin *j = c->rejoins; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

static void
rejoin_remove(struct tn_connector *c, struct rejoin *j)
{
	for (struct rejoin **pp = &c->rejoins; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			rejoin_free(j);
			return;
		}
	}
}

/* Which local memberships were in the lost server's rooms, grouped by their owner now.
 * Every live chat server is a target, with no entries if need be: its answer to the final
 * (empty) batch is this connector's confirmation. */
static void
rejoin_compute(struct tn_connector *c, struct rejoin *j)
{
	rejoin_targets_free(j);
	j->epoch = c->topo->version;
	j->gen++;
	struct tn_topology *before = tn_topology_with(c->topo, &j->lost);
	enum tn_room_hash how = (enum tn_room_hash)c->cfg->room_hash;
	const struct tn_server_info *chats[1024];
	size_t n = tn_topology_of_type(c->topo, TN_SERVER_CHAT, chats, 1024);
	n = n > 1024 ? 1024 : n;
	j->targets = tn_calloc(n + 1, sizeof(*j->targets));
	j->n_targets = (int)n;
	for (size_t i = 0; i < n; i++)
		j->targets[i].id = tn_strdup(chats[i]->id);
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->sessions, &it)) != NULL;) {
		struct csess *cs = e->val;
		for (int r = 0; r < cs->n_rooms; r++) {
			size_t rl = strlen(cs->rooms[r]);
			const struct tn_server_info *was = tn_topology_room_owner(before, cs->rooms[r], rl, how);
			const struct tn_server_info *now = tn_topology_room_owner(c->topo, cs->rooms[r], rl, how);
			if (was == NULL || now == NULL || strcmp(was->id, j->lost.id) != 0)
				continue;
			for (int t = 0; t < j->n_targets; t++) {
				struct rejoin_target *rt = &j->targets[t];
				if (strcmp(rt->id, now->id) != 0)
					continue;
				rt->rids = tn_realloc(rt->rids, (rt->n + 1) * sizeof(*rt->rids));
				rt->names = tn_realloc(rt->names, (rt->n + 1) * sizeof(*rt->names));
				rt->sids = tn_realloc(rt->sids, (rt->n + 1) * sizeof(*rt->sids));
				/* Copies: a session may close before its batch goes (its LEAVE then
				 * follows, retried while the room is being rebuilt). */
				rt->rids[rt->n] = (struct tn_str){tn_strndup(cs->rooms[r], rl), rl};
				rt->names[rt->n] = (struct tn_str){tn_strdup(cs->name), strlen(cs->name)};
				rt->sids[rt->n] = cs->sid;
				rt->n++;
				break;
			}
		}
	}
	tn_topology_free(before);
}

static void rejoin_send(struct tn_connector *c, struct rejoin *j, int t);
static void rejoin_run(struct tn_connector *c, struct rejoin *j);

/* Tried again by the tick (connector_tick) once retry_at has come. */
static void
rejoin_retry_later(struct tn_connector *c, struct rejoin *j)
{
	if (j->retry_armed)
		return;
	if (tn_now_ms() >= j->until_ms) {
		tn_warn("connector", "gave up re-registering members with new owners lost=%s",
			j->lost.id);
		rejoin_remove(c, j);
		return;
	}
	j->retry_armed = true;
	j->retry_at = tn_now_ms() + REJOIN_RETRY_MS;
}

void
conn_rejoin_retry_due(struct tn_connector *c)
{
	int64_t now = tn_now_ms();
	for (struct rejoin *j = c->rejoins, *next; j; j = next) {
		next = j->next;
		if (!j->retry_armed || now < j->retry_at)
			continue;
		j->retry_armed = false;
		rejoin_compute(c, j);
		rejoin_run(c, j);
	}
}

static void
rejoin_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct rejoin_call *rc = arg;
	struct tn_connector *c = rc->c;
	struct rejoin *j = err == TN_ECLOSED ? NULL : rejoin_find(c, rc->job);
	int t = rc->target;
	uint64_t gen = rc->gen;
	free(rc);
	if (j == NULL || j->gen != gen)
		return;
	struct tn_reply rep;
	struct rejoin_target *rt = &j->targets[t];
	if (err != TN_OK || tn_reply_decode(&rep, data, len, NULL) != TN_OK || rep.code != TN_OK) {
		if (err == TN_OK && rep.epoch > c->topo->version)
			conn_want_refresh(c);
		rejoin_retry_later(c, j);
		return;
	}
	uint32_t sent = rt->n - rt->off < REJOIN_CHUNK ? rt->n - rt->off : REJOIN_CHUNK;
	rt->off += sent;
	tn_counter_add(c->rejoin_members, sent);
	if (rt->off < rt->n) {
		rejoin_send(c, j, t);
		return;
	}
	if (!rt->done && sent == 0) {
		rt->done = true; /* the final batch went through */
	} else {
		rejoin_send(c, j, t); /* entries done: the empty final batch confirms */
		return;
	}
	for (int i = 0; i < j->n_targets; i++)
		if (!j->targets[i].done)
			return;
	tn_info("connector", "members re-registered with new owners lost=%s", j->lost.id);
	rejoin_remove(c, j);
}

/* Sends target t its next batch: entries in chunks, then an empty final one. */
static void
rejoin_send(struct tn_connector *c, struct rejoin *j, int t)
{
	struct rejoin_target *rt = &j->targets[t];
	int chat = -1;
	for (int i = 0; i < c->n_chats; i++)
		if (c->chats[i].info && c->chats[i].rpc && strcmp(c->chats[i].id, rt->id) == 0)
			chat = i;
	if (chat < 0) {
		rejoin_retry_later(c, j);
		return;
	}
	uint32_t n = rt->n - rt->off < REJOIN_CHUNK ? rt->n - rt->off : REJOIN_CHUNK;
	struct tn_room_rejoin r = {.epoch = j->epoch, .connector_id = tn_str_of(c->cfg->id),
		.conn_inc = c->inc, .lost = tn_str_of(j->lost.id), .final = n == 0};
	tn_str_iter_init(&r.rids, rt->rids ? rt->rids + rt->off : NULL, n);
	tn_str_iter_init(&r.names, rt->names ? rt->names + rt->off : NULL, n);
	tn_u64_iter_init(&r.sids, rt->sids ? rt->sids + rt->off : NULL, n);
	tn_buf_reset(&c->scratch);
	tn_room_rejoin_encode(&c->scratch, &r);
	struct rejoin_call *rc = tn_calloc(1, sizeof(*rc));
	*rc = (struct rejoin_call){c, j->id, j->gen, t};
	tn_rpc_call(c->chats[chat].rpc, c->scratch.data, c->scratch.len, c->cfg->rpc_timeout_ms,
		rejoin_done, rc);
}

static void
rejoin_run(struct tn_connector *c, struct rejoin *j)
{
	if (j->n_targets == 0) {
		rejoin_remove(c, j);
		return;
	}
	for (int t = 0; t < j->n_targets; t++)
		rejoin_send(c, j, t);
}

/* Chat servers of old that are not in topo (the same process), and were not draining
 * (a draining server hands its rooms over itself): their rooms' members go to the new
 * owners. Jobs already running start over for the new membership. */
void
conn_rejoin_topology(struct tn_connector *c, const struct tn_topology *old)
{
	for (struct rejoin *j = c->rejoins; j; j = j->next) {
		j->retry_armed = false;
		rejoin_compute(c, j);
	}
	for (size_t i = 0; i < old->n; i++) {
		const struct tn_server_info *s = &old->servers[i];
		if (s->type != TN_SERVER_CHAT || s->draining)
			continue;
		const struct tn_server_info *now = tn_topology_find(c->topo, s->id);
		if (now && tn_server_info_same(now, s))
			continue;
		struct rejoin *j = tn_calloc(1, sizeof(*j));
		j->id = ++rejoin_ids;
		tn_server_info_copy(&j->lost, s);
		j->until_ms = tn_now_ms() + 2 * (int64_t)c->cfg->evict_after_ms;
		j->next = c->rejoins;
		c->rejoins = j;
		rejoin_compute(c, j);
		tn_info("connector", "chat server lost: re-registering members with new owners "
				     "lost=%s", s->id);
	}
	/* Answers for earlier computations are ignored (gen): send afresh. */
	for (struct rejoin *j = c->rejoins, *next; j; j = next) {
		next = j->next;
		rejoin_run(c, j);
	}
}

