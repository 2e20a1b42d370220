/* Configuration: one table of options (name, type, default, bounds), applied in this order,
 * later sources winning:
 *   1. the table's defaults;
 *   2. this server's entry in config/servers.json (pomelo's format: {env: {type: [entry]}}),
 *      found by id under the chosen environment;
 *   3. environment variables (TERN_<NAME>);
 *   4. command-line flags (--name value or --name=value).
 * Validation names the bad option, its value and where it came from. Main thread, once,
 * before other threads start. */
#ifndef TN_CONFIG_H
#define TN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum tn_server_type {
	TN_SERVER_GATE = 0,
	TN_SERVER_CONNECTOR = 1,
	TN_SERVER_CHAT = 2,
	TN_SERVER_REGISTRY = 3,
	TN_SERVER_TYPE_COUNT_ = 4,
};

enum tn_dispatch {
	TN_DISPATCH_HASH = 0,         /* hash of the uid over the live connectors */
	TN_DISPATCH_CRC32 = 1,        /* pomelo's abs(crc32(uid)) % n */
	TN_DISPATCH_LEAST_LOADED = 2, /* fewest connections; ties by a hash of the uid */
};

enum tn_room_hash {
	TN_ROOM_HASH_RENDEZVOUS = 0, /* highest random weight; minimal movement */
	TN_ROOM_HASH_CRC32 = 1,      /* pomelo's abs(crc32(rid)) % n */
};

struct tn_config {
	enum tn_server_type type;
	char *id;
	char *env;
	char *config_path;   /* "" or "none": no file */
	int log_level;       /* enum tn_log_level */
	/* internal network */
	char *host;           /* address internal listeners bind */
	char *advertise_host; /* address other servers use to reach this one */
	int port;             /* chat, registry: RPC (REP); connector: push (SUB) listener */
	char *admin_host;
	int admin_port;       /* 0: no admin HTTP server */
	char *registry;       /* registry RPC address host:port */
	int heartbeat_interval_ms; /* between heartbeats to the registry */
	int evict_after_ms;   /* registry: silence before a server is evicted; also its quiet
	                       * period after a start */
	int notice_port;      /* registry: change notices (PUB); 0 = a free port, announced */
	int rpc_timeout_ms;
	int rpc_max_inflight;
	int drain_timeout_ms; /* SIGTERM: most time spent draining before the exit */
	/* client edge (gate, connector) */
	char *client_host;    /* address the client port binds */
	int client_port_min;  /* clientPort: a port or a range "3050-3099" */
	int client_port_max;
	char *public_host;    /* host clients are told to use; "" = the host they reached the gate by */
	int max_connections;
	int heartbeat_s;      /* 0: no heartbeats, no timeout */
	int handshake_timeout_ms;
	int idle_timeout_ms;  /* no message for this long closes a session (heartbeat 0 only) */
	int package_limit;
	int body_limit;
	int json_depth;
	int rate_per_s;
	int rate_burst;
	int rate_kick_after;
	char *web_root;       /* gate: directory served over HTTP on the client port; "" = none */
	int dispatch;         /* enum tn_dispatch */
	int room_hash;        /* enum tn_room_hash */
	/* delivery (chat) */
	int push_ring;        /* items kept per push stream for gap recovery */
	int push_tick_ms;     /* idle position announcements on a stream after activity */
	int debug_drop_push_every; /* fault injection: drop every n-th push message */
	/* filters (connector) */
	char *abuse_words;    /* comma-separated words replaced by '*' in chat content */
	int slow_request_ms;  /* requests slower than this are logged */
	int out_limit;        /* bytes queued to one client before it is cut as a slow consumer */
};

/* Loads the configuration of a server of the given type from defaults, file, environment
 * and argv (argv[0] is skipped). On success fills *cfg (release with tn_config_fini) and
 * returns TN_OK. On failure returns TN_ECONFIG and writes one message naming the problem
 * into err. Returns TN_ENOENT with an empty err when --help was given (usage printed to
 * stdout). */
int tn_config_load(struct tn_config *cfg, enum tn_server_type type, int argc, char **argv,
	char *err, size_t err_len);

/* Releases the strings held by cfg. */
void tn_config_fini(struct tn_config *cfg);

/* Name of a server type as used in servers.json: "gate", "connector", "chat", "registry". */
const char *tn_server_type_name(enum tn_server_type type);

/* Writes the option reference (name, flag, environment variable, type, default, meaning)
 * as a Markdown table. */
void tn_config_print_reference(FILE *out);

#endif
