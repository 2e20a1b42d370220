/* TN_KIND_REG_*: the registry's protocol (pomelo's master). Every server talks to the
 * registry over one REQ socket and listens to its change notices on one SUB socket.
 *
 * Requests, each answered with a TN_KIND_REG_ACK (or, for a snapshot request, with a
 * TN_KIND_REG_SNAPSHOT when the registry can serve one):
 *   REGISTER       body: 0 server (a server map, required), 1 epoch (uint), 2 registry_inc
 *                  (uint): the membership the server holds (0, 0 when none).
 *   HEARTBEAT      body: 0 id (str), 1 incarnation (uint), both required, 2 epoch (uint),
 *                  3 registry_inc (uint), 4 load (a load map), 5 draining (uint 0/1,
 *                  written only when 1).
 *   LEAVE          body: 0 id (str), 1 incarnation (uint), both required.
 *   SNAPSHOT_REQ   body: 0 id (str, the asker; may be absent, e.g. the admin command),
 *                  1 epoch (uint), 2 registry_inc (uint): the membership the asker holds.
 * Replies:
 *   ACK            body: 0 code (int, required), 1 reason (str), 2 epoch (uint),
 *                  3 registry_inc (uint), 4 recovering (uint 0/1), 5 notice_port (uint),
 *                  6 evict_after_ms (uint), 7 closing (uint 0/1, written only when 1).
 *   SNAPSHOT       body: 0 epoch (uint), 1 registry_inc (uint), both required,
 *                  2 recovering (uint 0/1), 3 servers (array of server maps, required).
 * Published on the notice socket (hints: a receiver that sees a newer epoch re-reads the
 * snapshot; a missed notice is caught by the epoch in the next heartbeat's ACK):
 *   NOTICE         body: 0 epoch, 1 registry_inc, 2 change (enum tn_reg_change), all
 *                  required, 3 id (str), 4 type (uint), 5 recovering (uint 0/1).
 *
 * A server map: 0 id (str), 1 type (uint, enum tn_server_type), 2 host (str), all
 * required; 3 port, 4 bind_host, 5 client_host, 6 client_port, 7 client_bind_host,
 * 8 admin_host, 9 admin_port, 10 pid, 11 version (str), 12 incarnation, 13 load (a load
 * map), 14 draining (uint 0/1, written only when 1). Ports above 65535 are malformed. A
 * load map: 0 connections, 1 sessions, 2 rooms, 3 members, 4 msgs_milli (messages per
 * second x 1000), 5 rss_bytes, 6 uptime_ms; every key optional (0 when absent). Unknown
 * keys are skipped everywhere, as in every kind. A draining server is shutting down: it
 * still serves, but is no longer chosen as any room's owner. */
#ifndef TN_REGISTRY_PROTO_H
#define TN_REGISTRY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"

/* What a change notice announces. Values are on the wire. */
enum tn_reg_change {
	TN_REG_JOINED = 0,    /* a server registered */
	TN_REG_LEFT = 1,      /* a server left on its own (shutdown) */
	TN_REG_EVICTED = 2,   /* a server missed its heartbeats */
	TN_REG_RECOVERED = 3, /* a restarted registry ended its quiet period */
	TN_REG_CHANGED = 4,   /* a server re-registered with other addresses, or is draining */
	TN_REG_CHANGE_COUNT_ = 5,
};

/* A server's load as it reports it in heartbeats and the registry lists it. */
struct tn_reg_load {
	uint64_t connections; /* frontends: client connections open */
	uint64_t sessions;    /* connector: sessions past the handshake */
	uint64_t rooms;       /* chat: rooms owned */
	uint64_t members;     /* chat: memberships held */
	uint64_t msgs_milli;  /* messages per second x 1000, over the last interval */
	uint64_t rss_bytes;   /* resident memory */
	uint64_t uptime_ms;   /* since the process started */
};

/* One server as registered: who it is, where it binds, what it advertises. */
struct tn_reg_server {
	struct tn_str id;
	uint64_t type;                 /* an enum tn_server_type value; checked by receivers */
	struct tn_str host;            /* advertised internal host (RPC, push) */
	uint32_t port;                 /* internal port: RPC (chat, registry), push (connector) */
	struct tn_str bind_host;       /* address the internal port binds */
	struct tn_str client_host;     /* advertised client host; "" = the host clients used */
	uint32_t client_port;          /* advertised (bound) client port; 0 when none */
	struct tn_str client_bind_host;
	struct tn_str admin_host;
	uint32_t admin_port;           /* 0: no admin port */
	uint64_t pid;
	struct tn_str version;
	uint64_t incarnation;          /* unique per process start */
	struct tn_reg_load load;
	bool draining;                 /* shutting down: still serving, but no room's owner */
};

struct tn_reg_register {
	struct tn_reg_server server;
	uint64_t epoch;        /* the membership epoch the server holds (0: none) */
	uint64_t registry_inc; /* the registry incarnation it came from (0: none, or a seed) */
};

struct tn_reg_heartbeat {
	struct tn_str id;
	uint64_t incarnation;
	uint64_t epoch;
	uint64_t registry_inc;
	struct tn_reg_load load;
	bool draining; /* the server is shutting down (sticky for the registration) */
};

struct tn_reg_leave {
	struct tn_str id;
	uint64_t incarnation;
};

struct tn_reg_snapshot_req {
	struct tn_str id; /* empty when absent */
	uint64_t epoch;
	uint64_t registry_inc;
};

struct tn_reg_ack {
	int32_t code;          /* TN_OK or a tn_err code (TN_EEXIST: id taken; TN_ENOENT:
	                        * unknown server, register again; TN_ERECOVERING: snapshot
	                        * withheld during the registry's quiet period) */
	struct tn_str reason;  /* human-readable detail; empty when absent */
	uint64_t epoch;        /* the registry's membership epoch */
	uint64_t registry_inc; /* the registry's incarnation */
	bool recovering;       /* the registry is in its quiet period after a start */
	uint32_t notice_port;  /* where its change notices are published (0: unknown) */
	uint64_t evict_after_ms;
	bool closing;          /* the registry is shutting down: hold further requests for a
	                        * while, so that its connections are quiet when it closes */
};

struct tn_reg_notice {
	uint64_t epoch;
	uint64_t registry_inc;
	uint64_t change;       /* enum tn_reg_change; receivers treat unknown values as hints */
	struct tn_str id;      /* the server concerned; empty for RECOVERED */
	uint64_t type;
	bool recovering;
};

/* The header of a snapshot. */
struct tn_reg_snapshot_hdr {
	uint64_t epoch;
	uint64_t registry_inc;
	bool recovering;
};

/* Encoders: append one message to out; the structs and the bytes they point to are
 * borrowed for the call. Any thread, one writer per out. */
void tn_reg_register_encode(struct tn_buf *out, const struct tn_reg_register *m);
void tn_reg_heartbeat_encode(struct tn_buf *out, const struct tn_reg_heartbeat *m);
void tn_reg_leave_encode(struct tn_buf *out, const struct tn_reg_leave *m);
void tn_reg_snapshot_req_encode(struct tn_buf *out, const struct tn_reg_snapshot_req *m);
void tn_reg_ack_encode(struct tn_buf *out, const struct tn_reg_ack *m);
void tn_reg_notice_encode(struct tn_buf *out, const struct tn_reg_notice *m);

/* Appends a snapshot of servers[0..n) (n <= UINT32_MAX). */
void tn_reg_snapshot_encode(struct tn_buf *out, const struct tn_reg_snapshot_hdr *hdr,
	const struct tn_reg_server *servers, size_t n);

/* Decoders: decode data[0..len) into *out, checked against lim (NULL: defaults). Strings
 * point into data: copy what outlives it. Write *out only on success; otherwise return
 * TN_ETOOBIG, TN_ETRUNC, TN_EPROTO, TN_EVERSION or TN_EKIND (another kind). Any thread. */
int tn_reg_register_decode(struct tn_reg_register *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);
int tn_reg_heartbeat_decode(struct tn_reg_heartbeat *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);
int tn_reg_leave_decode(struct tn_reg_leave *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);
int tn_reg_snapshot_req_decode(struct tn_reg_snapshot_req *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);
int tn_reg_ack_decode(struct tn_reg_ack *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);
int tn_reg_notice_decode(struct tn_reg_notice *out, const void *data, size_t len,
	const struct tn_proto_limits *lim);

/* Reads a snapshot. hdr and n_servers are read-only; the rest is private. */
struct tn_reg_snapshot_reader {
	struct tn_reg_snapshot_hdr hdr;
	uint32_t n_servers;
	uint32_t i_;
	const uint8_t *p_;
	const uint8_t *end_;
};

/* Checks the whole snapshot in data[0..len) against lim (servers against max_array_len)
 * and sets rd up to iterate it, so that tn_reg_snapshot_next cannot fail. rd's views
 * point into data. Writes *rd only on success; errors as for the decoders. Any thread. */
int tn_reg_snapshot_reader_init(struct tn_reg_snapshot_reader *rd, const void *data,
	size_t len, const struct tn_proto_limits *lim);

/* Stores the next server in *out and returns true, or returns false after the last. */
bool tn_reg_snapshot_next(struct tn_reg_snapshot_reader *rd, struct tn_reg_server *out);

/* A static name for a change ("joined", "left", ...; "unknown" otherwise). */
const char *tn_reg_change_name(uint64_t change);

#endif
