/* The connector: holds client sessions (through the edge), answers connector.* routes,
 * forwards chat.* routes to the room's owner over RPC, and fans the pushes it receives
 * from chat servers out to its local sessions. Everything runs on the edge's service
 * thread; nng callbacks only post to it. */
#ifndef TN_CONNECTOR_H
#define TN_CONNECTOR_H

#include "config.h"
#include "topology.h"

struct tn_connector;

/* Creates the connector: the client edge on cfg's client port, the push listener on
 * cfg's port, one RPC client per chat server of topo (taken over). Main thread. */
int tn_connector_new(struct tn_connector **out, const struct tn_config *cfg,
	struct tn_topology *topo);

/* The client port actually bound. */
int tn_connector_client_port(const struct tn_connector *c);

/* Runs until tn_connector_stop; the calling thread becomes the owner thread. */
void tn_connector_run(struct tn_connector *c);

/* Any thread. */
void tn_connector_stop(struct tn_connector *c);

/* After run has returned. */
void tn_connector_free(struct tn_connector *c);

#endif
