/* Room ownership and moves (design.md §3).
 *
 * Exactly one chat server holds a room, active, at any time; only that one accepts
 * requests for it. Who should hold it is a function of the membership (rendezvous over
 * the live chat servers that are not draining); who does hold it changes only by a
 * hand-off, which the old holder starts and the new one acknowledges:
 *
 * - A server that holds a room it no longer owns (a chat server joined, or this one
 *   drains) flushes its pushes, drops the room, keeps the encoded state as a "tomb" and
 *   sends it (TN_KIND_ROOM_STATE) to the owner, again and again until acknowledged. In
 *   the meantime it answers requests for the room TN_ERECOVERING, afterwards TN_EMOVED.
 * - A server that owns a room it does not hold asks every other chat server for it
 *   (TN_KIND_ROOM_CLAIM) and holds the requests for it meanwhile. A holder that agrees
 *   hands the room over as above; when nobody holds it, the room is new and is made
 *   here; when some server could not say, the requests are answered TN_ERECOVERING.
 * - When a chat server disappears from the membership (crash, eviction), its rooms are
 *   rebuilt: each connector re-registers its members of the rooms that server owned
 *   (TN_KIND_ROOM_REJOIN), and until every live connector has confirmed, or one eviction
 *   period has passed, those rooms answer TN_ERECOVERING.
 *
 * Requests carry the connector's membership epoch: one from a newer epoch makes this
 * server ask for a fresh membership; one for a room this server neither holds nor owns
 * gets TN_EMOVED with this server's epoch, and the connector retries after refreshing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "chat_internal.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "moves.h"
#include "reply.h"

/* Claims are quick questions: a server that cannot answer within this is taken as
 * "unknown" (the requests that waited get TN_ERECOVERING and come back). */
#define CLAIM_TIMEOUT_MAX_MS 1000
/* A hand-off not acknowledged is sent again after this. */
#define HANDOFF_RETRY_MS 200

struct queued {
	struct queued *next;
	struct tn_rpc_req *req;
	const uint8_t *data; /* valid until req is answered */
	size_t len;
};

struct claim {
	char *rid;
	size_t rid_len;
	uint64_t gen;
	struct queued *head, **tail;
	int waiting;     /* answers still to come */
	bool unknown;    /* some server could not say whether it holds the room */
	bool coming;     /* a holder is handing it over */
	uint64_t timer;  /* while coming: the wait for it */
	struct claim_call *timer_arg; /* the timer's argument, freed with it */
};

struct claim_call {
	struct tn_chat *c;
	char *rid;
	size_t rid_len;
	uint64_t gen;
};

struct tomb {
	char *rid;
	size_t rid_len;
	char *to;          /* where it was last sent */
	struct tn_buf msg; /* the TN_KIND_ROOM_STATE message */
	bool in_flight;
	int64_t retry_at;
	int64_t since_ms;
};

struct tomb_call {
	struct tn_chat *c;
	char *rid;
	size_t rid_len;
};

static uint64_t claim_gen;

/* ---- ownership ---- */

static bool
is_me(const struct tn_chat *c, const struct tn_server_info *s)
{
	return s && strcmp(s->id, c->cfg->id) == 0;
}

static const struct tn_server_info *
owner_of(const struct tn_chat *c, const char *rid, size_t len)
{
	return tn_topology_room_owner(c->view, rid, len, (enum tn_room_hash)c->cfg->room_hash);
}

static void
want_refresh(struct tn_chat *c)
{
	tn_hook_call(&c->refresh);
}

static bool
known_draining(const struct tn_chat *c, const char *id)
{
	if (c->draining && strcmp(id, c->cfg->id) == 0)
		return true;
	for (int i = 0; i < c->n_draining_ids; i++)
		if (strcmp(c->draining_ids[i], id) == 0)
			return true;
	return false;
}

/* The ownership view: the membership, with this server and the servers whose hand-offs
 * said so marked draining even before the registry's membership shows it. */
static void
view_rebuild(struct tn_chat *c)
{
	/* Forget servers that left. */
	int k = 0;
	for (int i = 0; i < c->n_draining_ids; i++) {
		if (tn_topology_find(c->topo, c->draining_ids[i]))
			c->draining_ids[k++] = c->draining_ids[i];
		else
			free(c->draining_ids[i]);
	}
	c->n_draining_ids = k;
	tn_topology_free(c->view);
	c->view = tn_topology_copy(c->topo);
	for (size_t i = 0; i < c->view->n; i++)
		if (known_draining(c, c->view->servers[i].id))
			c->view->servers[i].draining = true;
	for (struct chat_lost *l = c->lost; l; l = l->next) {
		const struct tn_server_info *s = tn_topology_find(c->topo, l->id);
		struct tn_server_info gone = {.id = l->id, .type = TN_SERVER_CHAT, .host = "", .port = 0};
		tn_topology_free(l->with);
		l->with = tn_topology_with(c->view, s ? s : &gone);
	}
}

static void
note_draining(struct tn_chat *c, struct tn_str id)
{
	for (int i = 0; i < c->n_draining_ids; i++)
		if (tn_str_eq(tn_str_of(c->draining_ids[i]), id))
			return;
	c->draining_ids = tn_realloc(c->draining_ids,
		(size_t)(c->n_draining_ids + 1) * sizeof(*c->draining_ids));
	c->draining_ids[c->n_draining_ids++] = tn_strndup(id.p, id.len);
	view_rebuild(c);
}

/* True when room rid may have been owned by a lost server whose rooms are still being
 * rebuilt. */
static bool
recovering_for(const struct tn_chat *c, const char *rid, size_t len)
{
	for (struct chat_lost *l = c->lost; l; l = l->next) {
		const struct tn_server_info *o = tn_topology_room_owner(l->with, rid, len,
			(enum tn_room_hash)c->cfg->room_hash);
		if (o && strcmp(o->id, l->id) == 0)
			return true;
	}
	return false;
}

/* ---- peers ---- */

static struct chat_peer *
peer_find(struct tn_chat *c, const char *id, size_t len)
{
	for (int i = 0; i < c->n_peers; i++)
		if (c->peers[i].rpc && c->peers[i].live && strlen(c->peers[i].id) == len &&
			memcmp(c->peers[i].id, id, len) == 0)
			return &c->peers[i];
	return NULL;
}

static void
peers_follow(struct tn_chat *c)
{
	for (int i = 0; i < c->n_peers; i++)
		c->peers[i].live = false;
	for (size_t k = 0; k < c->topo->n; k++) {
		const struct tn_server_info *s = &c->topo->servers[k];
		if (s->type != TN_SERVER_CHAT || strcmp(s->id, c->cfg->id) == 0)
			continue;
		char url[300];
		tn_nng_url(url, sizeof(url), s->host, s->port);
		int i = 0;
		while (i < c->n_peers && !(c->peers[i].rpc && strcmp(c->peers[i].id, s->id) == 0 &&
					   strcmp(c->peers[i].url, url) == 0))
			i++;
		if (i == c->n_peers) {
			i = 0;
			while (i < c->n_peers && c->peers[i].rpc)
				i++;
			if (i == c->n_peers) {
				c->peers = tn_realloc(c->peers, (size_t)(c->n_peers + 1) * sizeof(*c->peers));
				memset(&c->peers[i], 0, sizeof(c->peers[i]));
				c->n_peers++;
			}
			struct chat_peer *p = &c->peers[i];
			struct tn_rpc_client_opts o = {.max_inflight = 16, .max_queued = 4096,
				.max_msg = 16u << 20};
			free(p->id);
			p->id = tn_strdup(s->id);
			snprintf(p->url, sizeof(p->url), "%s", url);
			if (tn_rpc_client_new(&p->rpc, url, &o, tn_loop_exec(c->loop)) != TN_OK) {
				tn_error("moves", "cannot open a client to a chat server chat=%s url=%s",
					s->id, url);
				p->rpc = NULL;
				continue;
			}
		}
		c->peers[i].live = true;
	}
}

/* Frees the clients of servers that left once nothing of theirs is outstanding. */
static void
peers_reap(struct tn_chat *c)
{
	for (int i = 0; i < c->n_peers; i++) {
		struct chat_peer *p = &c->peers[i];
		if (!p->live && p->rpc && tn_rpc_client_pending(p->rpc) == 0) {
			tn_rpc_client_free(p->rpc);
			p->rpc = NULL;
		}
	}
}

/* ---- hand-offs (the old holder's side) ---- */

static void tomb_send(struct tn_chat *c, struct tomb *t);

static void
tomb_free(struct tomb *t)
{
	free(t->rid);
	free(t->to);
	tn_buf_fini(&t->msg);
	free(t);
}

/* True when some other chat server is live and not draining: one that can take rooms. */
static bool
any_serving_peer(const struct tn_chat *c)
{
	for (size_t i = 0; i < c->view->n; i++) {
		const struct tn_server_info *s = &c->view->servers[i];
		if (s->type == TN_SERVER_CHAT && !s->draining && strcmp(s->id, c->cfg->id) != 0)
			return true;
	}
	return false;
}

static void
drain_check(struct tn_chat *c)
{
	if (!c->draining)
		return;
	/* With every chat server draining (the whole tier stopping) nobody can take the
	 * rooms: waiting would only use up the drain time. */
	bool nobody = !any_serving_peer(c);
	size_t left = tn_rooms_count(&c->rooms) + c->tombs.count;
	pthread_mutex_lock(&c->drain_mu);
	c->drain_left = left;
	if (!nobody && left > 0) {
		pthread_mutex_unlock(&c->drain_mu);
		return;
	}
	if (!c->drain_done && nobody)
		tn_info("moves", "drained: no chat server left to take the rooms rooms=%zu",
			tn_rooms_count(&c->rooms));
	else if (!c->drain_done)
		tn_info("moves", "drained: every room handed over");
	c->drain_done = true;
	pthread_cond_broadcast(&c->drain_cv);
	pthread_mutex_unlock(&c->drain_mu);
}

/* Gives room up to server `to`: its pushes so far leave first, then it goes, and its
 * state is sent until `to` acknowledges it. */
static void
hand_over(struct tn_chat *c, struct tn_room *room, const char *to)
{
	chat_flush_all(c);
	uint32_t n = (uint32_t)room->n_members;
	struct tn_str *names = tn_malloc((n + 1) * sizeof(*names));
	struct tn_str *conns = tn_malloc((n + 1) * sizeof(*conns));
	uint64_t *sids = tn_malloc((n + 1) * sizeof(*sids));
	uint64_t *incs = tn_malloc((n + 1) * sizeof(*incs));
	uint32_t i = 0;
	for (struct tn_member *m = room->head; m; m = m->next, i++) {
		names[i] = (struct tn_str){m->name, m->name_len};
		conns[i] = tn_str_of(c->streams[m->stream].conn_id);
		sids[i] = m->sid;
		incs[i] = c->streams[m->stream].conn_inc;
	}
	struct tn_room_state st = {.epoch = c->topo->version, .from = tn_str_of(c->cfg->id),
		.rid = {room->rid, room->rid_len}, .next_seq = room->next_seq,
		.xfer = c->inc * 1024 + (++c->xfer_seq % 1024), .draining = c->draining,
		.room_gen = room->gen};
	tn_str_iter_init(&st.names, names, n);
	tn_str_iter_init(&st.connectors, conns, n);
	tn_u64_iter_init(&st.sids, sids, n);
	tn_u64_iter_init(&st.conn_incs, incs, n);
	struct tomb *t = tn_calloc(1, sizeof(*t));
	tn_buf_init(&t->msg);
	tn_room_state_encode(&t->msg, &st);
	free(names);
	free(conns);
	free(sids);
	free(incs);
	t->rid = tn_strndup(room->rid, room->rid_len);
	t->rid_len = room->rid_len;
	t->to = tn_strdup(to);
	t->since_ms = tn_now_ms();
	tn_map_put(&c->tombs, t->rid, t->rid_len, t);
	tn_info("moves", "room handed over rid=%s to=%s members=%u", t->rid, to, n);
	tn_rooms_drop(&c->rooms, room);
	chat_update_gauges(c);
	tn_counter_inc(c->rooms_out);
	tomb_send(c, t);
}

static void
tomb_done(void *arg, int err, const uint8_t *data, size_t len)
{
	struct tomb_call *tc = arg;
	struct tn_chat *c = tc->c;
	struct tomb *t = err == TN_ECLOSED ? NULL : tn_map_get(&c->tombs, tc->rid, tc->rid_len);
	free(tc->rid);
	free(tc);
	if (t == NULL)
		return;
	t->in_flight = false;
	struct tn_reply rep;
	if (err == TN_OK && tn_reply_decode(&rep, data, len, NULL) == TN_OK && rep.code == TN_OK) {
		tn_debug("moves", "hand-off acknowledged rid=%s to=%s took_ms=%lld", t->rid, t->to,
			(long long)(tn_now_ms() - t->since_ms));
		tn_map_del(&c->tombs, t->rid, t->rid_len);
		tomb_free(t);
		drain_check(c);
		return;
	}
	int why = err ? err : rep.code;
	/* TN_ERECOVERING: the receiver is not connected to every member's connector yet. */
	if (why == TN_ERECOVERING)
		tn_info("moves", "hand-off not taken yet, retrying rid=%s to=%s", t->rid, t->to);
	else
		tn_warn("moves", "hand-off not acknowledged, retrying rid=%s to=%s err=\"%s\"",
			t->rid, t->to, tn_strerror(why));
	t->retry_at = tn_now_ms() + HANDOFF_RETRY_MS;
}

static void
tomb_send(struct tn_chat *c, struct tomb *t)
{
	struct chat_peer *p = peer_find(c, t->to, strlen(t->to));
	if (p == NULL) {
		t->retry_at = tn_now_ms() + HANDOFF_RETRY_MS;
		return;
	}
	struct tomb_call *tc = tn_malloc(sizeof(*tc));
	*tc = (struct tomb_call){c, tn_strndup(t->rid, t->rid_len), t->rid_len};
	t->in_flight = true;
	tn_rpc_call(p->rpc, t->msg.data, t->msg.len, c->cfg->rpc_timeout_ms, tomb_done, tc);
}

static void install(struct tn_chat *c, const struct tn_room_state *st);

/* A hand-off not acknowledged yet: send it again, to the room's owner now. When that is
 * this server again (the receiver left), the room comes back from the tomb. */
static void
tomb_retry(struct tn_chat *c, struct tomb *t)
{
	const struct tn_server_info *own = owner_of(c, t->rid, t->rid_len);
	if (own && is_me(c, own) && !c->draining) {
		struct tn_room_state st;
		tn_map_del(&c->tombs, t->rid, t->rid_len);
		if (tn_room_state_decode(&st, t->msg.data, t->msg.len, NULL) == TN_OK)
			install(c, &st);
		tn_info("moves", "room taken back: its receiver is gone rid=%s to=%s", t->rid, t->to);
		tomb_free(t);
		return;
	}
	if (own && strcmp(own->id, t->to) != 0) {
		free(t->to);
		t->to = tn_strdup(own->id);
	}
	tomb_send(c, t);
}

/* Hands over every room this server holds but does not own. */
static void
give_away(struct tn_chat *c)
{
	size_t it = 0, n = 0;
	struct tn_room **rooms = tn_malloc((tn_rooms_count(&c->rooms) + 1) * sizeof(*rooms));
	for (struct tn_map_entry *e; (e = tn_map_next(&c->rooms.by_rid, &it)) != NULL;)
		rooms[n++] = e->val;
	for (size_t i = 0; i < n; i++) {
		struct tn_room *room = rooms[i];
		if (room->state != TN_ROOM_ACTIVE && !c->draining)
			continue;
		const struct tn_server_info *own = owner_of(c, room->rid, room->rid_len);
		/* Never to a draining server (the owner when every chat server drains). */
		if (own && !is_me(c, own) && !own->draining)
			hand_over(c, room, own->id);
	}
	free(rooms);
	drain_check(c);
}

/* ---- claims (the new owner's side) ---- */

static void
queued_answer_all(struct tn_chat *c, struct claim *k, int code, const char *why)
{
	while (k->head) {
		struct queued *q = k->head;
		k->head = q->next;
		if (code)
			chat_reply_code(c, q->req, code, why);
		else
			chat_dispatch(c, q->req, q->data, q->len);
		free(q);
	}
	k->tail = &k->head;
}

static void
claim_end(struct tn_chat *c, struct claim *k, int code, const char *why)
{
	tn_map_del(&c->claims, k->rid, k->rid_len);
	if (k->timer) {
		tn_loop_timer_cancel(c->loop, k->timer);
		free(k->timer_arg->rid);
		free(k->timer_arg);
	}
	if (code == TN_ERECOVERING)
		tn_counter_inc(c->recovering);
	queued_answer_all(c, k, code, why);
	free(k->rid);
	free(k);
}

static void
claim_wait_expired(void *arg)
{
	struct claim_call *cc = arg;
	struct tn_chat *c = cc->c;
	struct claim *k = tn_map_get(&c->claims, cc->rid, cc->rid_len);
	if (k && k->gen == cc->gen) {
		k->timer = 0;
		claim_end(c, k, TN_ERECOVERING, "the room is on its way here: ask again");
	}
	free(cc->rid);
	free(cc);
}

/* Every server has answered. */
static void
claim_settle(struct tn_chat *c, struct claim *k)
{
	if (tn_rooms_find(&c->rooms, k->rid, k->rid_len)) {
		claim_end(c, k, TN_OK, NULL); /* it arrived meanwhile */
	} else if (k->coming) {
		struct claim_call *cc = tn_malloc(sizeof(*cc));
		*cc = (struct claim_call){c, tn_strndup(k->rid, k->rid_len), k->rid_len, k->gen};
		k->timer_arg = cc;
		k->timer = tn_loop_timer_add(c->loop, c->cfg->rpc_timeout_ms, claim_wait_expired, cc);
	} else if (k->unknown) {
		claim_end(c, k, TN_ERECOVERING, "another chat server could not be asked about the room");
	} else {
		/* Nobody holds it: a new room, made here. */
		tn_rooms_get(&c->rooms, k->rid, k->rid_len);
		claim_end(c, k, TN_OK, NULL);
	}
}

static void
claim_answer(void *arg, int err, const uint8_t *data, size_t len)
{
	struct claim_call *cc = arg;
	struct tn_chat *c = cc->c;
	uint64_t gen = cc->gen;
	struct claim *k = err == TN_ECLOSED ? NULL : tn_map_get(&c->claims, cc->rid, cc->rid_len);
	free(cc->rid);
	free(cc);
	if (k == NULL || k->gen != gen)
		return;
	struct tn_reply rep;
	if (err == TN_OK && tn_reply_decode(&rep, data, len, NULL) != TN_OK)
		err = TN_EPROTO;
	if (err) {
		k->unknown = true;
	} else if (rep.code == TN_OK) {
		k->coming = true;
	} else if (rep.code != TN_ENOENT) {
		k->unknown = true;
		if (rep.epoch > c->topo->version)
			want_refresh(c);
	}
	if (--k->waiting == 0)
		claim_settle(c, k);
}

/* Holds the request until room rid has been asked for; asks when nobody is asking. */
static void
claim_queue(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len,
	struct tn_str rid)
{
	struct claim *k = tn_map_get(&c->claims, rid.p, rid.len);
	bool fresh = k == NULL;
	if (fresh) {
		k = tn_calloc(1, sizeof(*k));
		k->rid = tn_strndup(rid.p, rid.len);
		k->rid_len = rid.len;
		k->gen = ++claim_gen;
		k->tail = &k->head;
		tn_map_put(&c->claims, k->rid, k->rid_len, k);
	}
	struct queued *q = tn_calloc(1, sizeof(*q));
	*q = (struct queued){NULL, req, data, len};
	*k->tail = q;
	k->tail = &q->next;
	if (!fresh)
		return;
	tn_counter_inc(c->claims_sent);
	struct tn_room_claim cl = {.epoch = c->topo->version, .from = tn_str_of(c->cfg->id),
		.rid = rid};
	struct tn_buf b;
	tn_buf_init(&b);
	tn_room_claim_encode(&b, &cl);
	int timeout = c->cfg->rpc_timeout_ms / 3;
	if (timeout > CLAIM_TIMEOUT_MAX_MS)
		timeout = CLAIM_TIMEOUT_MAX_MS;
	/* Count first: an answer may come back before the loop ends. */
	for (int i = 0; i < c->n_peers; i++)
		if (c->peers[i].live && c->peers[i].rpc)
			k->waiting++;
	int asked = k->waiting;
	for (int i = 0; i < c->n_peers && asked > 0; i++) {
		struct chat_peer *p = &c->peers[i];
		if (!p->live || !p->rpc)
			continue;
		asked--;
		if (!tn_rpc_client_connected(p->rpc)) {
			/* It could not answer before its eviction anyway. */
			k->unknown = true;
			k->waiting--;
			continue;
		}
		struct claim_call *cc = tn_malloc(sizeof(*cc));
		*cc = (struct claim_call){c, tn_strndup(rid.p, rid.len), rid.len, k->gen};
		tn_rpc_call(p->rpc, b.data, b.len, timeout, claim_answer, cc);
	}
	tn_buf_fini(&b);
	if (k->waiting == 0 && tn_map_get(&c->claims, rid.p, rid.len) == k)
		claim_settle(c, k);
}

bool
chat_room_route(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len,
	uint64_t epoch, struct tn_str rid, struct tn_room **room)
{
	if (epoch > c->topo->version)
		want_refresh(c);
	struct tn_room *r = tn_rooms_find(&c->rooms, rid.p, rid.len);
	if (r && r->state == TN_ROOM_ACTIVE) {
		*room = r;
		return true;
	}
	if (r) {
		tn_counter_inc(c->recovering);
		chat_reply_code(c, req, TN_ERECOVERING, "the room is being rebuilt: ask again");
		return false;
	}
	const struct tn_server_info *own = owner_of(c, rid.p, rid.len);
	if ((own && !is_me(c, own)) || epoch > c->topo->version) {
		tn_counter_inc(c->moved);
		chat_reply_code(c, req, TN_EMOVED, own && !is_me(c, own)
			? "another chat server owns the room"
			: "this server's membership is older than the caller's: ask again");
		return false;
	}
	if (tn_map_get(&c->tombs, rid.p, rid.len) || recovering_for(c, rid.p, rid.len)) {
		tn_counter_inc(c->recovering);
		chat_reply_code(c, req, TN_ERECOVERING, "the room is moving: ask again");
		return false;
	}
	int live = 0;
	for (int i = 0; i < c->n_peers; i++)
		live += c->peers[i].live && c->peers[i].rpc;
	if (own == NULL || live == 0) {
		*room = NULL; /* no other chat server: a room not here is new */
		return true;
	}
	claim_queue(c, req, data, len, rid);
	return false;
}

void
chat_handle_claim(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_room_claim cl;
	int rv = tn_room_claim_decode(&cl, data, len, NULL);
	if (rv) {
		tn_counter_inc(c->req_bad);
		chat_reply_code(c, req, rv, "malformed claim");
		return;
	}
	if (cl.epoch > c->topo->version)
		want_refresh(c);
	struct tomb *t = tn_map_get(&c->tombs, cl.rid.p, cl.rid.len);
	if (t) {
		if (!tn_str_eq(tn_str_of(t->to), cl.from)) {
			chat_reply_code(c, req, TN_ERECOVERING, "the room is on its way elsewhere");
			return;
		}
		if (!t->in_flight)
			tomb_send(c, t);
		chat_reply_code(c, req, TN_OK, "on its way");
		return;
	}
	struct tn_room *room = tn_rooms_find(&c->rooms, cl.rid.p, cl.rid.len);
	if (room == NULL) {
		chat_reply_code(c, req, TN_ENOENT, "not held here");
		return;
	}
	if (room->state != TN_ROOM_ACTIVE) {
		chat_reply_code(c, req, TN_ERECOVERING, "the room is being rebuilt");
		return;
	}
	/* A newer membership than ours is trusted (ours catches up); at ours or an older
	 * one, the claimer must be the owner as we see it. */
	const struct tn_server_info *own = owner_of(c, cl.rid.p, cl.rid.len);
	if (cl.epoch <= c->topo->version && !(own && tn_str_eq(tn_str_of(own->id), cl.from))) {
		chat_reply_code(c, req, TN_EMOVED, "the claimer does not own the room");
		return;
	}
	char to[256];
	snprintf(to, sizeof(to), "%.*s", (int)cl.from.len, cl.from.p);
	chat_reply_code(c, req, TN_OK, "on its way");
	hand_over(c, room, to);
}

/* ---- the new holder's side ---- */

/* Makes room st here, active (members of connectors this server has no stream to are
 * left out: they cannot be pushed to). */
static void
install(struct tn_chat *c, const struct tn_room_state *st)
{
	struct tn_room *room = tn_rooms_get(&c->rooms, st->rid.p, st->rid.len);
	room->state = TN_ROOM_ACTIVE;
	room->next_seq = st->next_seq;
	room->xfer = st->xfer;
	room->gen = st->room_gen;
	chat_room_fit(c, room);
	struct tn_str_iter names = st->names, conns = st->connectors;
	struct tn_u64_iter sids = st->sids, incs = st->conn_incs;
	struct tn_str name, conn;
	uint64_t sid, inc;
	size_t skipped = 0;
	while (tn_str_iter_next(&names, &name) && tn_str_iter_next(&conns, &conn) &&
		tn_u64_iter_next(&sids, &sid) && tn_u64_iter_next(&incs, &inc)) {
		int si = chat_stream_of(c, conn);
		if (si < 0 || tn_room_member(room, name.p, name.len)) {
			skipped++;
			continue;
		}
		if (c->streams[si].conn_inc == 0 && inc != 0)
			tn_stream_reset(&c->streams[si], inc);
		tn_room_add(&c->rooms, room, name.p, name.len, sid, si);
	}
	if (skipped)
		tn_warn("moves", "members left out of a room handed over rid=%.*s skipped=%zu",
			(int)st->rid.len, st->rid.p, skipped);
	tn_rooms_drop_if_empty(&c->rooms, room);
	chat_update_gauges(c);
}

/* True when this server has a push stream up to the connector of every member of st
 * (members of connectors that left the membership, or that it never knew at a membership
 * as new as the sender's, do not count: they are gone). */
static bool
streams_ready(struct tn_chat *c, const struct tn_room_state *st)
{
	struct tn_str_iter conns = st->connectors;
	struct tn_str conn;
	while (tn_str_iter_next(&conns, &conn)) {
		int si = chat_stream_slot(c, conn);
		if (si < 0 && st->epoch > c->topo->version)
			return false; /* a connector this server has not heard of yet */
		if (si < 0)
			continue; /* gone before this server's membership: left out */
		if (!c->stream_closed[si] && !tn_stream_up(&c->streams[si]))
			return false;
	}
	return true;
}

void
chat_handle_state(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_room_state st;
	int rv = tn_room_state_decode(&st, data, len, NULL);
	if (rv) {
		tn_counter_inc(c->req_bad);
		chat_reply_code(c, req, rv, "malformed room state");
		return;
	}
	if (st.epoch > c->topo->version)
		want_refresh(c);
	if (st.draining)
		note_draining(c, st.from);
	struct tn_room *room = tn_rooms_find(&c->rooms, st.rid.p, st.rid.len);
	if (room && room->xfer == st.xfer) {
		chat_reply_code(c, req, TN_OK, NULL); /* a resend of one already taken */
		return;
	}
	if (!streams_ready(c, &st)) {
		/* Pushes to those members would be lost: the sender tries again shortly. */
		want_refresh(c);
		chat_reply_code(c, req, TN_ERECOVERING, "not connected to every member's connector yet");
		return;
	}
	if (room && room->n_members > 0)
		tn_warn("moves", "room handed over is also held here: merged rid=%.*s from=%.*s",
			(int)st.rid.len, st.rid.p, (int)st.from.len, st.from.p);
	struct tomb *t = tn_map_del(&c->tombs, st.rid.p, st.rid.len);
	if (t)
		tomb_free(t); /* ours, come back */
	install(c, &st);
	tn_counter_inc(c->rooms_in);
	tn_info("moves", "room taken over rid=%.*s from=%.*s members=%u", (int)st.rid.len,
		st.rid.p, (int)st.from.len, st.from.p, st.names.n);
	/* st points into the request: what follows the answer needs its own copy. */
	char *rid = tn_strndup(st.rid.p, st.rid.len);
	size_t rid_len = st.rid.len;
	bool current = st.epoch <= c->topo->version;
	chat_reply_code(c, req, TN_OK, NULL);
	struct claim *k = tn_map_get(&c->claims, rid, rid_len);
	if (k && k->waiting == 0)
		claim_end(c, k, TN_OK, NULL);
	/* Not ours by an epoch we know is current: pass it on. */
	room = tn_rooms_find(&c->rooms, rid, rid_len);
	const struct tn_server_info *own = owner_of(c, rid, rid_len);
	if (room && own && !is_me(c, own) && current &&
		tn_map_get(&c->claims, rid, rid_len) == NULL)
		hand_over(c, room, own->id);
	free(rid);
}

/* ---- crash recovery ---- */

static struct chat_lost *
lost_find(struct tn_chat *c, const char *id, size_t len)
{
	for (struct chat_lost *l = c->lost; l; l = l->next)
		if (strlen(l->id) == len && memcmp(l->id, id, len) == 0)
			return l;
	return NULL;
}

static struct chat_lost *
lost_add(struct tn_chat *c, const struct tn_server_info *s)
{
	struct chat_lost *l = lost_find(c, s->id, strlen(s->id));
	if (l)
		return l;
	l = tn_calloc(1, sizeof(*l));
	l->id = tn_strdup(s->id);
	l->epoch = c->topo->version;
	l->since_ms = tn_now_ms();
	l->until_ms = l->since_ms + c->cfg->evict_after_ms;
	l->with = tn_topology_with(c->view, s);
	tn_map_init(&l->confirmed);
	l->next = c->lost;
	c->lost = l;
	tn_info("moves", "chat server gone: its rooms are rebuilt from the connectors chat=%s "
			 "epoch=%llu", l->id, (unsigned long long)l->epoch);
	return l;
}

static void
lost_free(struct chat_lost *l)
{
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&l->confirmed, &it)) != NULL;)
		free(e->val); /* the key's own bytes */
	tn_map_fini(&l->confirmed);
	tn_topology_free(l->with);
	free(l->id);
	free(l);
}

static bool
lost_confirmed(const struct tn_chat *c, const struct chat_lost *l)
{
	for (size_t i = 0; i < c->topo->n; i++) {
		const struct tn_server_info *s = &c->topo->servers[i];
		if (s->type == TN_SERVER_CONNECTOR &&
			tn_map_get((struct tn_map *)&l->confirmed, s->id, strlen(s->id)) == NULL)
			return false;
	}
	return true;
}

/* Ends the recoveries that are complete or out of time; rooms rebuilt under none still
 * running become active. */
static void
recovery_check(struct tn_chat *c)
{
	int64_t now = tn_now_ms();
	bool ended = false;
	for (struct chat_lost **pp = &c->lost; *pp;) {
		struct chat_lost *l = *pp;
		bool done = lost_confirmed(c, l);
		if (!done && now < l->until_ms) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		tn_counter_inc(done ? c->recoveries : c->recoveries_timed_out);
		tn_info("moves", "rooms of a lost chat server recovered chat=%s how=%s took_ms=%lld",
			l->id, done ? "every connector confirmed" : "timed out",
			(long long)(now - l->since_ms));
		lost_free(l);
		ended = true;
	}
	if (!ended)
		return;
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->rooms.by_rid, &it)) != NULL;) {
		struct tn_room *room = e->val;
		if (room->state == TN_ROOM_REBUILDING &&
			!recovering_for(c, room->rid, room->rid_len)) {
			room->state = TN_ROOM_ACTIVE;
			tn_counter_inc(c->rooms_rebuilt);
		}
	}
	view_rebuild(c);
	give_away(c);
}

void
chat_handle_rejoin(struct tn_chat *c, struct tn_rpc_req *req, const uint8_t *data, size_t len)
{
	struct tn_room_rejoin r;
	int rv = tn_room_rejoin_decode(&r, data, len, NULL);
	if (rv) {
		tn_counter_inc(c->req_bad);
		chat_reply_code(c, req, rv, "malformed rejoin");
		return;
	}
	if (r.epoch != c->topo->version) {
		if (r.epoch > c->topo->version)
			want_refresh(c);
		tn_counter_inc(c->moved);
		chat_reply_code(c, req, TN_EMOVED, "membership epochs differ: ask again");
		return;
	}
	int si = chat_stream_of(c, r.connector_id);
	if (si < 0) {
		chat_reply_code(c, req, TN_ENOENT, "unknown connector");
		return;
	}
	if (c->streams[si].conn_inc == 0 && r.conn_inc != 0)
		tn_stream_reset(&c->streams[si], r.conn_inc);
	char lost_id[256];
	snprintf(lost_id, sizeof(lost_id), "%.*s", (int)r.lost.len, r.lost.p);
	struct chat_lost *l = lost_find(c, r.lost.p, r.lost.len);
	if (l == NULL && tn_topology_find(c->topo, lost_id) == NULL) {
		/* Gone before this server knew it (it started later): still rebuild. */
		struct tn_server_info gone = {.id = lost_id, .type = TN_SERVER_CHAT, .host = ""};
		l = lost_add(c, &gone);
	}
	struct tn_str rid, name;
	uint64_t sid;
	size_t added = 0;
	while (tn_str_iter_next(&r.rids, &rid) && tn_str_iter_next(&r.names, &name) &&
		tn_u64_iter_next(&r.sids, &sid)) {
		if (!is_me(c, owner_of(c, rid.p, rid.len)))
			continue;
		struct tn_room *room = tn_rooms_find(&c->rooms, rid.p, rid.len);
		if (room && room->state == TN_ROOM_ACTIVE)
			continue; /* held all along: the member is there, or has left */
		if (room == NULL) {
			room = tn_rooms_get(&c->rooms, rid.p, rid.len);
			room->state = TN_ROOM_REBUILDING;
		}
		if (tn_room_member(room, name.p, name.len))
			continue;
		chat_room_fit(c, room);
		tn_room_add(&c->rooms, room, name.p, name.len, sid, si);
		added++;
	}
	if (added)
		tn_info("moves", "members re-registered connector=%.*s lost=%s members=%zu",
			(int)r.connector_id.len, r.connector_id.p, lost_id, added);
	if (r.final && l && tn_map_get(&l->confirmed, r.connector_id.p, r.connector_id.len) == NULL) {
		char *key = tn_strndup(r.connector_id.p, r.connector_id.len);
		tn_map_put(&l->confirmed, key, r.connector_id.len, key);
	}
	chat_update_gauges(c);
	chat_reply_code(c, req, TN_OK, NULL);
	recovery_check(c);
}

/* ---- life cycle ---- */

void
chat_moves_init(struct tn_chat *c)
{
	tn_map_init(&c->claims);
	tn_map_init(&c->tombs);
	pthread_mutex_init(&c->drain_mu, NULL);
	tn_hook_init(&c->refresh, 50); /* one refresh asked for per 50 ms at most */
	pthread_cond_init(&c->drain_cv, NULL);
	c->view = tn_topology_copy(c->topo);
}

void
chat_moves_fini(struct tn_chat *c)
{
	for (int i = 0; i < c->n_peers; i++) {
		tn_rpc_client_free(c->peers[i].rpc);
		free(c->peers[i].id);
	}
	free(c->peers);
	size_t it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->claims, &it)) != NULL;) {
		struct claim *k = e->val;
		if (k->timer) {
			free(k->timer_arg->rid);
			free(k->timer_arg);
		}
		while (k->head) {
			struct queued *q = k->head;
			k->head = q->next;
			free(q);
		}
		free(k->rid);
		free(k);
	}
	tn_map_fini(&c->claims);
	it = 0;
	for (struct tn_map_entry *e; (e = tn_map_next(&c->tombs, &it)) != NULL;)
		tomb_free(e->val);
	tn_map_fini(&c->tombs);
	while (c->lost) {
		struct chat_lost *l = c->lost;
		c->lost = l->next;
		lost_free(l);
	}
	for (int i = 0; i < c->n_draining_ids; i++)
		free(c->draining_ids[i]);
	free(c->draining_ids);
	tn_topology_free(c->view);
	pthread_mutex_destroy(&c->drain_mu);
	tn_hook_fini(&c->refresh);
	pthread_cond_destroy(&c->drain_cv);
}

void
chat_moves_topology(struct tn_chat *c, const struct tn_topology *old)
{
	peers_follow(c);
	for (size_t i = 0; i < old->n; i++) {
		const struct tn_server_info *s = &old->servers[i];
		/* A draining server hands its rooms over itself. */
		if (s->type != TN_SERVER_CHAT || strcmp(s->id, c->cfg->id) == 0 || s->draining ||
			known_draining(c, s->id))
			continue;
		const struct tn_server_info *now = tn_topology_find(c->topo, s->id);
		if (now == NULL || !tn_server_info_same(now, s))
			lost_add(c, s);
	}
	view_rebuild(c);
	give_away(c);
	recovery_check(c);
	peers_reap(c);
}

void
chat_moves_tick(struct tn_chat *c)
{
	int64_t now = tn_now_ms();
	size_t it = 0, n = 0;
	struct tomb **due = tn_malloc((c->tombs.count + 1) * sizeof(*due));
	for (struct tn_map_entry *e; (e = tn_map_next(&c->tombs, &it)) != NULL;) {
		struct tomb *t = e->val;
		if (!t->in_flight && t->retry_at <= now)
			due[n++] = t;
	}
	for (size_t i = 0; i < n; i++)
		tomb_retry(c, due[i]);
	free(due);
	recovery_check(c);
	peers_reap(c);
	drain_check(c);
}

void
chat_moves_drain(struct tn_chat *c)
{
	c->draining = true;
	view_rebuild(c);
	tn_info("moves", "draining: handing every room over rooms=%zu",
		tn_rooms_count(&c->rooms));
	give_away(c);
}
