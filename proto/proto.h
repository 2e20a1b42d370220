/* The internal message layer: what services send each other over nng.
 *
 * Every message is one msgpack array [version, kind, body]:
 *   - version is TN_PROTO_VERSION; anything else is refused with TN_EVERSION;
 *   - kind is an enum tn_kind value; a value this build does not know is refused with
 *     TN_EKIND, so a newer peer gets a clear error rather than a misreading;
 *   - body is a map from small unsigned-integer keys (one per field) to values.
 *     Receivers skip keys they do not know, absent optional keys take their defaults and an
 *     absent required key is an error. New fields are added under new keys, so a cluster
 *     can be upgraded one server at a time.
 *
 * Decoders never allocate and never trust the input: every length is checked against the
 * bytes received and against the caller's tn_proto_limits. Decoded strings and byte
 * strings are VIEWS into the received buffer (struct tn_str): they stay valid only while
 * that buffer does, so callers copy what they keep.
 *
 * The kinds live in reply.h (TN_KIND_REPLY), chat.h (TN_KIND_CHAT_*), push.h
 * (TN_KIND_PUSH*), registry.h (TN_KIND_REG_*) and moves.h (TN_KIND_ROOM_*). This header
 * holds what they share.
 * Adding a kind: give it a value in its area's range below, name it in tn_kind_name
 * (proto.c), and write its struct, key enum, field table and encode/decode on top of
 * wire.h as reply.c does; add a sample to proto_testutil.h so the tests and the fuzzer
 * cover it. */
#ifndef TN_PROTO_H
#define TN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TN_PROTO_VERSION 1

/* Message kinds. Values are on the wire: never renumber one. Ranges are set aside per
 * area so later kinds slot in next to their relatives:
 *   1..15 generic, 16..31 connector -> chat requests, 32..47 push stream (gap fetch
 *   comes here), 48..63 registry (register, heartbeat, leave, snapshot, change notice),
 *   64..79 room hand-off between chat servers. */
enum tn_kind {
	TN_KIND_REPLY = 1,       /* generic RPC reply (reply.h) */
	TN_KIND_CHAT_ENTER = 16, /* connector -> chat: a session joins a room (chat.h) */
	TN_KIND_CHAT_LEAVE = 17, /* connector -> chat: a session leaves a room */
	TN_KIND_CHAT_SEND = 18,  /* connector -> chat: a session sends a chat message */
	TN_KIND_PUSH = 32,       /* chat -> connector: a batch of pushes (push.h) */
	TN_KIND_PUSH_FETCH = 33, /* connector -> chat: resend a range of a stream (push.h) */
	TN_KIND_REG_REGISTER = 48,     /* server -> registry: join (registry.h) */
	TN_KIND_REG_HEARTBEAT = 49,    /* server -> registry: still alive, with its load */
	TN_KIND_REG_LEAVE = 50,        /* server -> registry: leaving (shutdown) */
	TN_KIND_REG_SNAPSHOT_REQ = 51, /* anyone -> registry: send the full membership */
	TN_KIND_REG_ACK = 52,          /* registry -> server: the answer to the above */
	TN_KIND_REG_SNAPSHOT = 53,     /* registry -> server: the full membership */
	TN_KIND_REG_NOTICE = 54,       /* registry -> all (pub/sub): membership changed */
	TN_KIND_ROOM_STATE = 64,  /* chat -> chat: a room handed over (moves.h) */
	TN_KIND_ROOM_CLAIM = 65,  /* chat -> chat: the owner asks the holder for a room */
	TN_KIND_ROOM_REJOIN = 66, /* connector -> chat: members of a lost chat server's rooms */
};

/* A view of bytes owned by someone else: a string (not NUL-terminated) or a byte string.
 * Decoders point these into the received message; encoders read them. */
struct tn_str {
	const char *p;
	size_t len;
};

/* A view of a C string literal, e.g. TN_STR("onChat"). */
#define TN_STR(lit) ((struct tn_str){(lit), sizeof(lit) - 1})

/* A view of the NUL-terminated string s (borrowed, not copied). */
static inline struct tn_str
tn_str_of(const char *s)
{
	return (struct tn_str){s, strlen(s)};
}

/* True when a and b hold the same bytes. */
static inline bool
tn_str_eq(struct tn_str a, struct tn_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Bounds the receiver enforces; anything over a bound is refused with TN_ETOOBIG. They
 * guard sanity, not memory: decoding allocates nothing whatever the input says. */
struct tn_proto_limits {
	size_t max_msg_bytes;     /* the whole encoded message */
	size_t max_str_len;       /* one str field: ids, names, routes, reasons, targets */
	size_t max_bin_len;       /* one payload field: chat content, JSON bodies */
	uint32_t max_array_len;   /* users in a reply, items in a push batch */
	uint32_t max_recipients;  /* session ids in one push item */
};

/* Defaults: 16 MiB messages and payloads (a pomelo frame's maximum), 4 KiB strings,
 * 65536 array elements and recipients. Decoders use these when given NULL limits. */
extern const struct tn_proto_limits tn_proto_limits_default;

/* Reads only the envelope's version and kind of the message in data[0..len), so a
 * dispatcher can switch on the kind; the body is not looked at, so TN_OK here does not
 * mean the message is valid. Writes *kind_out only on success. Returns TN_EVERSION,
 * TN_EKIND, TN_ETRUNC or TN_EPROTO otherwise. Any thread. */
int tn_proto_peek(enum tn_kind *kind_out, const void *data, size_t len);

/* True when kind is a kind this build can decode. Any thread. */
bool tn_kind_is_known(uint64_t kind);

/* A static name for kind ("reply", "chat.enter", ...; "unknown" otherwise), for logs.
 * Any thread. */
const char *tn_kind_name(uint64_t kind);

/* A list of strings: either one decoded from a message (the decoder has already checked
 * every element, so iterating cannot fail) or a plain array set up with tn_str_iter_init
 * (how encoders take their input). Iterating consumes it: copy the struct to go again.
 * n is the element count; the other fields are private. One thread per iterator. */
struct tn_str_iter {
	uint32_t n;
	uint32_t i_;
	const struct tn_str *arr_;
	const uint8_t *p_;
	const uint8_t *end_;
};

/* Sets it to iterate arr[0..n) (borrowed: arr must outlive the iteration). */
void tn_str_iter_init(struct tn_str_iter *it, const struct tn_str *arr, uint32_t n);

/* Stores the next element in *out and returns true; returns false at the end. */
bool tn_str_iter_next(struct tn_str_iter *it, struct tn_str *out);

/* A list of unsigned integers, with the same two sources and rules as tn_str_iter. */
struct tn_u64_iter {
	uint32_t n;
	uint32_t i_;
	const uint64_t *arr_;
	const uint8_t *p_;
	const uint8_t *end_;
};

/* Sets it to iterate arr[0..n) (borrowed: arr must outlive the iteration). */
void tn_u64_iter_init(struct tn_u64_iter *it, const uint64_t *arr, uint32_t n);

/* Stores the next element in *out and returns true; returns false at the end. */
bool tn_u64_iter_next(struct tn_u64_iter *it, uint64_t *out);

#endif
