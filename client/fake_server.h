/* A scripted pomelo server for the client library's unit tests: one gate and two
 * connectors on loopback ports, served by a thread of their own. The pomelo side is the
 * project's server state machine (common/pomelo's tn_pml_conn: handshake, ACK,
 * heartbeats and their timeout, kick); the WebSocket side uses the library's framing in
 * the server role. Test-only code.
 *
 * Connector routes:
 *   connector.echo    answers with the request body
 *   connector.silent  never answers
 *   connector.slow    answers {} after 300 ms
 *   connector.push    pushes onChat {"msg":"hi","from":"fake","target":"*"}, answers {}
 *   connector.kick    kicks with reason "go away"
 *   connector.mute    stops sending anything (heartbeats included), stays connected
 *   connector.drop    closes the TCP connection without a close frame
 * The gate answers queryEntry with the first connector that is up ({"code":500} when
 * none is). Functions are called from the test's thread; they wait for the server
 * thread to carry them out. */
#ifndef TN_CLI_FAKE_SERVER_H
#define TN_CLI_FAKE_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct fake_server;

struct fake_opts {
	int heartbeat_s; /* connectors' heartbeat interval; 0: none */
	bool fragment;   /* send every message in two fragments with a ping between */
	bool refuse;     /* answer handshakes with 501 */
	bool use_dict;   /* send a route dictionary, so the client compresses routes */
};

struct fake_stats {
	int accepted[3]; /* connections: gate, connector 0, connector 1 */
	int requests;    /* on connectors */
	int notifies;
	int pongs;        /* answers to our pings (fragment mode) */
	int compressed;   /* requests that arrived with a route code */
	uint32_t ids[64]; /* request ids in arrival order (gate and connectors) */
	int n_ids;
	int open_sessions; /* connector sessions currently open */
};

/* Starts the server; aborts the test program when it cannot (a test bug or no loopback). */
struct fake_server *fake_start(const struct fake_opts *opts);

/* Stops the thread, closes everything and frees. */
void fake_stop(struct fake_server *fs);

/* The loopback ports of the gate and of connector i (0 or 1). */
int fake_gate_port(const struct fake_server *fs);
int fake_connector_port(const struct fake_server *fs, int i);

/* Closes connector i's listener and every connection it holds (no close frames). */
void fake_kill_connector(struct fake_server *fs, int i);

/* Listens again on connector i's old port. */
void fake_revive_connector(struct fake_server *fs, int i);

/* A copy of the counters. */
void fake_get_stats(struct fake_server *fs, struct fake_stats *out);

#endif
