/* The connector: holds client sessions (through the edge), answers connector.* routes,
 * forwards chat.* routes to the room's owner over RPC, and fans the pushes it receives
 * from chat servers out to its local sessions. Everything runs on the edge's service
 * thread; nng callbacks only post to it. */
#ifndef TN_CONNECTOR_H
#define TN_CONNECTOR_H

#include <stdint.h>

#include "config.h"
#include "topology.h"

struct tn_connector;

/* Creates the connector: the client edge on cfg's client port, the push listener on
 * cfg's port, one RPC client per chat server of topo (taken over). Main thread. */
int tn_connector_new(struct tn_connector **out, const struct tn_config *cfg,
	struct tn_topology *topo);

/* Replaces the membership (takes topo; the old one is freed): opens an RPC client to
 * each chat server that joined (or moved); the clients of those that left close once
 * their calls in flight have finished. Rooms are routed by the new membership from now
 * on. Owner thread. */
void tn_connector_set_topology(struct tn_connector *c, struct tn_topology *topo);

/* Sets the function that asks the membership client for a fresh snapshot (a chat server
 * answered with a newer epoch). fn runs on the owner thread under a lock
 * and must not block; NULL clears it (done before the membership client is freed). Any
 * thread. */
void tn_connector_set_refresh(struct tn_connector *c, void (*fn)(void *arg), void *arg);

/* This connector's load for the registry: connections and sessions, and chat calls plus
 * pushes delivered so far as its messages. Owner thread. */
void tn_connector_load(struct tn_connector *c, struct tn_server_load *out, uint64_t *messages);

/* Posts tasks to the owner thread. Any thread. */
struct tn_exec tn_connector_exec(struct tn_connector *c);

/* The client port actually bound. */
int tn_connector_client_port(const struct tn_connector *c);

/* Runs until tn_connector_stop; the calling thread becomes the owner thread. */
void tn_connector_run(struct tn_connector *c);

/* Makes tn_connector_run return soon, dropping the sessions. Any thread. */
void tn_connector_stop(struct tn_connector *c);

/* Drains for a graceful stop (SIGTERM), then makes tn_connector_run return: the client
 * port stops accepting, every session is kicked with "server shutting down", and the
 * LEAVEs their closing sends to the chat servers are awaited, so that the rest of each
 * room sees onLeave. Done by deadline_ms (tn_now_ms clock) whatever the clients do: the
 * first half of the time is theirs to close, the rest the LEAVEs'. Any thread, once. */
void tn_connector_drain(struct tn_connector *c, int64_t deadline_ms);

/* After run has returned. */
void tn_connector_free(struct tn_connector *c);

#endif
