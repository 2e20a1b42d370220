#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "json.h"
#include "log.h"

enum opt_type {
	OPT_STR = 0,
	OPT_INT = 1,
	OPT_RANGE = 2, /* a port or "lo-hi"; stored in two ints */
	OPT_ENUM = 3,  /* one of the names in choices, stored as its index */
};

#define ALL_TYPES 0xf
#define T(x) (1u << (x))
#define FRONTEND (T(TN_SERVER_GATE) | T(TN_SERVER_CONNECTOR))
#define NOT_REGISTRY (ALL_TYPES & ~T(TN_SERVER_REGISTRY))

struct opt {
	const char *name; /* servers.json key and flag stem */
	const char *flag;
	const char *env;
	enum opt_type type;
	size_t off;
	size_t off2; /* OPT_RANGE: the upper bound */
	const char *def;
	long min, max;
	const char *const *choices;
	unsigned types; /* server types the option applies to (for the reference) */
	const char *help;
};

static const char *const level_choices[] = {"debug", "info", "warn", "error", "off", NULL};
static const char *const dispatch_choices[] = {"hash", "crc32", "least-loaded", NULL};
static const char *const room_hash_choices[] = {"rendezvous", "crc32", NULL};

#define OFF(f) offsetof(struct tn_config, f)

/* The one table. Keep docs/configuration.md in step (tern-<service> --help-config prints it). */
static const struct opt opts[] = {
	{"id", "--id", "TERN_ID", OPT_STR, OFF(id), 0, "", 0, 0, NULL, ALL_TYPES,
		"server id, unique in the cluster; default: the host name"},
	{"env", "--env", "TERN_ENV", OPT_STR, OFF(env), 0, "development", 0, 0, NULL, ALL_TYPES,
		"environment to read from servers.json"},
	{"config", "--config", "TERN_CONFIG", OPT_STR, OFF(config_path), 0, "config/servers.json", 0, 0,
		NULL, ALL_TYPES, "servers.json path; \"none\" for no file (then an absent default file is not an error)"},
	{"logLevel", "--log-level", "TERN_LOG_LEVEL", OPT_ENUM, OFF(log_level), 0, "info", 0, 0,
		level_choices, ALL_TYPES, "debug, info, warn, error or off"},
	{"host", "--host", "TERN_HOST", OPT_STR, OFF(host), 0, "127.0.0.1", 0, 0, NULL, ALL_TYPES,
		"address the internal ports bind"},
	{"advertiseHost", "--advertise-host", "TERN_ADVERTISE_HOST", OPT_STR, OFF(advertise_host), 0, "",
		0, 0, NULL, ALL_TYPES, "address other servers use to reach this one; default: host"},
	{"port", "--port", "TERN_PORT", OPT_INT, OFF(port), 0, "0", 0, 65535, NULL,
		T(TN_SERVER_CONNECTOR) | T(TN_SERVER_CHAT) | T(TN_SERVER_REGISTRY),
		"internal port: RPC (chat, registry) or push listener (connector); required there"},
	{"adminHost", "--admin-host", "TERN_ADMIN_HOST", OPT_STR, OFF(admin_host), 0, "", 0, 0, NULL,
		ALL_TYPES, "address the admin HTTP port binds; default: host"},
	{"adminPort", "--admin-port", "TERN_ADMIN_PORT", OPT_INT, OFF(admin_port), 0, "0", 0, 65535,
		NULL, ALL_TYPES, "admin HTTP port (/metrics, /healthz, /readyz); 0 = off"},
	{"registry", "--registry", "TERN_REGISTRY", OPT_STR, OFF(registry), 0, "registry:3005", 0, 0,
		NULL, ALL_TYPES, "registry RPC address host:port; default: the registry entry of servers.json"},
	{"heartbeatInterval", "--heartbeat-interval", "TERN_HEARTBEAT_INTERVAL", OPT_INT,
		OFF(heartbeat_interval_ms), 0, "1000", 10, 60000, NULL, NOT_REGISTRY,
		"interval of heartbeats to the registry (with this server's load), ms; keep it well "
		"under the registry's evictAfter"},
	{"evictAfter", "--evict-after", "TERN_EVICT_AFTER", OPT_INT, OFF(evict_after_ms), 0, "5000",
		50, 600000, NULL, T(TN_SERVER_REGISTRY),
		"a server silent this long (ms) is evicted; a started registry also stays quiet this "
		"long while servers re-register"},
	{"noticePort", "--notice-port", "TERN_NOTICE_PORT", OPT_INT, OFF(notice_port), 0, "0", 0,
		65535, NULL, T(TN_SERVER_REGISTRY),
		"port of the membership change notices (nng PUB); 0 = a free port, announced to "
		"servers when they register"},
	{"rpcTimeout", "--rpc-timeout", "TERN_RPC_TIMEOUT", OPT_INT, OFF(rpc_timeout_ms), 0, "3000", 10,
		600000, NULL, ALL_TYPES, "deadline of one internal call, ms"},
	{"rpcMaxInflight", "--rpc-max-inflight", "TERN_RPC_MAX_INFLIGHT", OPT_INT,
		OFF(rpc_max_inflight), 0, "1024", 1, 65536, NULL, ALL_TYPES,
		"calls in flight per target server; more wait in a bounded queue"},
	{"drainTimeout", "--drain-timeout", "TERN_DRAIN_TIMEOUT", OPT_INT, OFF(drain_timeout_ms), 0,
		"8000", 100, 600000, NULL, FRONTEND | T(TN_SERVER_CHAT),
		"on SIGTERM, the most a server takes to drain before it exits, ms (connectors kick "
		"their clients and leave their rooms); keep it under the stop grace (docker: 10 s)"},
	{"clientHost", "--client-host", "TERN_CLIENT_HOST", OPT_STR, OFF(client_host), 0, "0.0.0.0", 0, 0,
		NULL, FRONTEND, "address the client (WebSocket) port binds"},
	{"clientPort", "--client-port", "TERN_CLIENT_PORT", OPT_RANGE, OFF(client_port_min),
		OFF(client_port_max), "0", 1, 65535, NULL, FRONTEND,
		"client port, or a range lo-hi: the first free port is taken; required"},
	{"publicHost", "--public-host", "TERN_PUBLIC_HOST", OPT_STR, OFF(public_host), 0, "", 0, 0,
		NULL, FRONTEND,
		"host clients are told to connect to; default: the host they reached the gate by"},
	{"max-connections", "--max-connections", "TERN_MAX_CONNECTIONS", OPT_INT,
		OFF(max_connections), 0, "10000", 1, 1000000, NULL, FRONTEND,
		"client connections held at once; checked against the open-file limit"},
	{"heartbeat", "--heartbeat", "TERN_HEARTBEAT", OPT_INT, OFF(heartbeat_s), 0, "3", 0, 3600, NULL,
		FRONTEND, "heartbeat interval, s (gate default 0 = none); no heartbeat for 2x closes"},
	{"handshakeTimeout", "--handshake-timeout", "TERN_HANDSHAKE_TIMEOUT", OPT_INT,
		OFF(handshake_timeout_ms), 0, "10000", 100, 600000, NULL, FRONTEND,
		"a connection not past the handshake ACK by then is closed, ms"},
	{"idleTimeout", "--idle-timeout", "TERN_IDLE_TIMEOUT", OPT_INT, OFF(idle_timeout_ms), 0,
		"30000", 0, 86400000, NULL, FRONTEND,
		"a session that sends nothing for this long is closed, ms; 0 = never; only without "
		"heartbeats (heartbeat 0, the gate's default): otherwise the heartbeat timeout rules"},
	{"packageLimit", "--package-limit", "TERN_PACKAGE_LIMIT", OPT_INT, OFF(package_limit), 0, "65536",
		64, 16777215, NULL, FRONTEND, "largest package body accepted; larger: kick"},
	{"bodyLimit", "--body-limit", "TERN_BODY_LIMIT", OPT_INT, OFF(body_limit), 0, "16384", 16,
		16777215, NULL, FRONTEND, "largest request body; larger: error 413"},
	{"jsonDepth", "--json-depth", "TERN_JSON_DEPTH", OPT_INT, OFF(json_depth), 0, "16", 1, 1000, NULL,
		FRONTEND, "deepest JSON nesting accepted in a body; deeper: error 400"},
	{"rateLimit", "--rate-limit", "TERN_RATE_LIMIT", OPT_INT, OFF(rate_per_s), 0, "50", 1, 1000000,
		NULL, FRONTEND, "requests per second per session (token bucket refill)"},
	{"rateBurst", "--rate-burst", "TERN_RATE_BURST", OPT_INT, OFF(rate_burst), 0, "100", 1, 1000000,
		NULL, FRONTEND, "token bucket size"},
	{"rateKickAfter", "--rate-kick-after", "TERN_RATE_KICK_AFTER", OPT_INT, OFF(rate_kick_after), 0,
		"50", 1, 1000000, NULL, FRONTEND, "requests refused in a row before the session is kicked"},
	{"webRoot", "--web-root", "TERN_WEB_ROOT", OPT_STR, OFF(web_root), 0, "web", 0, 0, NULL,
		T(TN_SERVER_GATE), "directory of the web chat page served on the gate's client port; \"\" = none"},
	{"dispatch", "--dispatch", "TERN_DISPATCH", OPT_ENUM, OFF(dispatch), 0, "least-loaded", 0, 0,
		dispatch_choices, T(TN_SERVER_GATE),
		"connector choice: least-loaded (fewest connections, ties by a hash of the uid), "
		"hash (of the uid) or crc32 (pomelo's abs(crc32(uid)) % n)"},
	{"roomHash", "--room-hash", "TERN_ROOM_HASH", OPT_ENUM, OFF(room_hash), 0, "rendezvous", 0, 0,
		room_hash_choices, T(TN_SERVER_CONNECTOR) | T(TN_SERVER_CHAT),
		"room owner choice: rendezvous or crc32 (pomelo)"},
	{"pushRing", "--push-ring", "TERN_PUSH_RING", OPT_INT, OFF(push_ring), 0, "4096", 1, 10000000,
		NULL, T(TN_SERVER_CHAT),
		"recent push items kept per connector stream, so a connector can fetch what it missed"},
	{"pushTick", "--push-tick", "TERN_PUSH_TICK", OPT_INT, OFF(push_tick_ms), 0, "250", 10, 60000,
		NULL, T(TN_SERVER_CHAT),
		"after activity, a stream announces its position this often (ms) so a lost tail is seen"},
	{"debugDropPushEvery", "--debug-drop-push-every", "TERN_DEBUG_DROP_PUSH_EVERY", OPT_INT,
		OFF(debug_drop_push_every), 0, "0", 0, 1000000, NULL, T(TN_SERVER_CHAT),
		"fault injection for tests: drop every n-th push message (0 = never)"},
	{"abuseWords", "--abuse-words", "TERN_ABUSE_WORDS", OPT_STR, OFF(abuse_words), 0, "", 0, 0,
		NULL, T(TN_SERVER_CONNECTOR),
		"comma-separated words replaced by '*' in chat messages (the abuse filter)"},
	{"slowRequest", "--slow-request", "TERN_SLOW_REQUEST", OPT_INT, OFF(slow_request_ms), 0, "3000",
		1, 3600000, NULL, FRONTEND, "requests slower than this (ms) are logged with their route"},
	{"outLimit", "--out-limit", "TERN_OUT_LIMIT", OPT_INT, OFF(out_limit), 0, "1048576", 4096,
		1073741824, NULL, FRONTEND,
		"bytes queued to one client; a client over it is kicked as a slow consumer"},
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const type_names[TN_SERVER_TYPE_COUNT_] = {"gate", "connector", "chat",
	"registry"};

const char *
tn_server_type_name(enum tn_server_type type)
{
	return (unsigned)type < TN_SERVER_TYPE_COUNT_ ? type_names[type] : "?";
}

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return TN_ECONFIG;
}

static const struct opt *
opt_by_name(const char *name)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

static const struct opt *
opt_by_flag(const char *flag, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strlen(opts[i].flag) == len && strncmp(opts[i].flag, flag, len) == 0)
			return &opts[i];
	return NULL;
}

static bool
parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || isspace((unsigned char)*s))
		return false;
	*out = v;
	return true;
}

/* Sets one option from its text form; src names the source for messages. */
static int
opt_set(struct tn_config *cfg, const struct opt *o, const char *val, const char *src, char *err,
	size_t elen)
{
	char *base = (char *)cfg;
	long v, hi;
	switch (o->type) {
	case OPT_STR:
		free(*(char **)(base + o->off));
		*(char **)(base + o->off) = tn_strdup(val);
		return TN_OK;
	case OPT_INT:
		if (!parse_long(val, &v))
			return fail(err, elen, "%s: %s: \"%s\" is not an integer", src, o->name, val);
		if (v < o->min || v > o->max)
			return fail(err, elen, "%s: %s: %ld is out of range %ld..%ld", src, o->name, v,
				o->min, o->max);
		*(int *)(base + o->off) = (int)v;
		return TN_OK;
	case OPT_RANGE: {
		const char *dash = strchr(val, '-');
		char lo[32];
		size_t n = dash ? (size_t)(dash - val) : strlen(val);
		if (n == 0 || n >= sizeof(lo))
			return fail(err, elen, "%s: %s: \"%s\" is not a port or a range lo-hi", src,
				o->name, val);
		memcpy(lo, val, n);
		lo[n] = '\0';
		if (!parse_long(lo, &v) || !parse_long(dash ? dash + 1 : lo, &hi))
			return fail(err, elen, "%s: %s: \"%s\" is not a port or a range lo-hi", src,
				o->name, val);
		if (v == 0 && hi == 0) { /* 0: unset */
			*(int *)(base + o->off) = *(int *)(base + o->off2) = 0;
			return TN_OK;
		}
		if (v < o->min || v > o->max || hi < o->min || hi > o->max || hi < v)
			return fail(err, elen, "%s: %s: \"%s\" is out of range %ld..%ld", src, o->name,
				val, o->min, o->max);
		*(int *)(base + o->off) = (int)v;
		*(int *)(base + o->off2) = (int)hi;
		return TN_OK;
	}
	case OPT_ENUM:
		for (int i = 0; o->choices[i]; i++) {
			if (strcmp(o->choices[i], val) == 0) {
				*(int *)(base + o->off) = i;
				return TN_OK;
			}
		}
		return fail(err, elen, "%s: %s: \"%s\" is not one of the allowed values", src, o->name,
			val);
	}
	return TN_EINVAL;
}

static int
apply_defaults(struct tn_config *cfg, enum tn_server_type type, char *err, size_t elen)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->type = type;
	for (size_t i = 0; i < N_OPTS; i++) {
		int rv = opt_set(cfg, &opts[i], opts[i].def, "default", err, elen);
		if (rv)
			return rv;
	}
	if (type == TN_SERVER_GATE)
		cfg->heartbeat_s = 0; /* pomelo's gate runs without heartbeats */
	return TN_OK;
}

/* Finds the value of a flag in argv without applying it (for --env, --id and --config,
 * which decide what is read from the file). */
static const char *
argv_peek(int argc, char **argv, const char *flag)
{
	size_t fl = strlen(flag);
	const char *found = NULL;
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], flag, fl) != 0)
			continue;
		if (argv[i][fl] == '=')
			found = argv[i] + fl + 1;
		else if (argv[i][fl] == '\0' && i + 1 < argc)
			found = argv[i + 1];
	}
	return found;
}

static const char *
source_value(int argc, char **argv, const struct opt *o)
{
	const char *v = argv_peek(argc, argv, o->flag);
	if (v == NULL)
		v = getenv(o->env);
	return v;
}

/* Converts a JSON scalar from the file to the text form opt_set takes. */
static int
json_scalar_text(json_object *v, char *out, size_t len)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		snprintf(out, len, "%s", json_object_get_string(v));
		return TN_OK;
	case json_type_int:
		snprintf(out, len, "%lld", (long long)json_object_get_int64(v));
		return TN_OK;
	case json_type_boolean:
		snprintf(out, len, "%s", json_object_get_boolean(v) ? "true" : "false");
		return TN_OK;
	default:
		return TN_EINVAL;
	}
}

/* Keys of pomelo's format that this project reads elsewhere or ignores on purpose. */
static bool
pomelo_known_key(const char *k)
{
	static const char *const keys[] = {"frontend", "args", "cpu", "auto-restart", "restart-force",
		"clusterCount", NULL};
	for (int i = 0; keys[i]; i++)
		if (strcmp(keys[i], k) == 0)
			return true;
	return false;
}

static int
apply_entry(struct tn_config *cfg, json_object *entry, const char *where, char *err, size_t elen)
{
	json_object_object_foreach(entry, key, val)
	{
		if (strcmp(key, "id") == 0 || pomelo_known_key(key))
			continue;
		const struct opt *o = opt_by_name(key);
		if (o == NULL)
			return fail(err, elen, "%s: unknown key \"%s\"", where, key);
		char text[512];
		if (json_scalar_text(val, text, sizeof(text)) != TN_OK)
			return fail(err, elen, "%s: %s: must be a string or a number", where, key);
		int rv = opt_set(cfg, o, text, where, err, elen);
		if (rv)
			return rv;
	}
	return TN_OK;
}

/* The registry's address from the first entry of type "registry", if any. */
static void
apply_registry_entry(struct tn_config *cfg, json_object *envobj)
{
	json_object *list, *first, *host, *port;
	if (!json_object_object_get_ex(envobj, "registry", &list) ||
		!json_object_is_type(list, json_type_array) || json_object_array_length(list) == 0)
		return;
	first = json_object_array_get_idx(list, 0);
	if (!json_object_object_get_ex(first, "host", &host) ||
		!json_object_object_get_ex(first, "port", &port))
		return;
	char addr[300];
	snprintf(addr, sizeof(addr), "%s:%d", json_object_get_string(host), json_object_get_int(port));
	free(cfg->registry);
	cfg->registry = tn_strdup(addr);
}

static int
read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return tn_err_from_errno(errno);
	struct tn_buf b;
	tn_buf_init(&b);
	size_t n;
	do {
		n = fread(tn_buf_reserve(&b, 4096), 1, 4096, f);
		b.len += n;
	} while (n > 0 && b.len < (16u << 20));
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		tn_buf_fini(&b);
		return TN_EIO;
	}
	*out = (char *)tn_buf_release(&b, len);
	return TN_OK;
}

/* Finds the entry with this id; *found_type is the list it is in. */
static json_object *
find_entry(json_object *envobj, const char *id, int *found_type, int *index)
{
	for (int t = 0; t < TN_SERVER_TYPE_COUNT_; t++) {
		json_object *list;
		if (!json_object_object_get_ex(envobj, type_names[t], &list) ||
			!json_object_is_type(list, json_type_array))
			continue;
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			json_object *e = json_object_array_get_idx(list, i);
			const char *eid = tn_json_get_str(e, "id", NULL);
			if (eid && strcmp(eid, id) == 0) {
				*found_type = t;
				*index = (int)i;
				return e;
			}
		}
	}
	return NULL;
}

static int
apply_file(struct tn_config *cfg, const char *path, bool explicit_path, char *err, size_t elen)
{
	char *text = NULL;
	size_t len = 0;
	int rv = read_file(path, &text, &len);
	if (rv == TN_ENOENT && !explicit_path)
		return TN_OK; /* no file at the default path: environment-only configuration */
	if (rv)
		return fail(err, elen, "%s: cannot read: %s", path, tn_strerror(rv));
	json_object *root = NULL;
	rv = tn_json_parse(&root, text, len, 64);
	free(text);
	if (rv)
		return fail(err, elen, "%s: not valid JSON", path);
	json_object *envobj;
	if (!json_object_object_get_ex(root, cfg->env, &envobj) ||
		!json_object_is_type(envobj, json_type_object)) {
		rv = fail(err, elen, "%s: no environment \"%s\"", path, cfg->env);
		goto out;
	}
	apply_registry_entry(cfg, envobj);
	int found_type = -1, index = 0;
	json_object *entry = find_entry(envobj, cfg->id, &found_type, &index);
	if (entry == NULL) {
		rv = fail(err, elen, "%s: unknown server id \"%s\" in environment \"%s\"", path, cfg->id,
			cfg->env);
		goto out;
	}
	if (found_type != (int)cfg->type) {
		rv = fail(err, elen, "%s: server \"%s\" is a %s, not a %s", path, cfg->id,
			type_names[found_type], type_names[cfg->type]);
		goto out;
	}
	char where[512];
	snprintf(where, sizeof(where), "%s: %s.%s[%d]", path, cfg->env, type_names[found_type], index);
	rv = apply_entry(cfg, entry, where, err, elen);
out:
	json_object_put(root);
	return rv;
}

static int
apply_environment(struct tn_config *cfg, char *err, size_t elen)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const char *v = getenv(opts[i].env);
		if (v == NULL)
			continue;
		char src[64];
		snprintf(src, sizeof(src), "environment %s", opts[i].env);
		int rv = opt_set(cfg, &opts[i], v, src, err, elen);
		if (rv)
			return rv;
	}
	return TN_OK;
}

static void
print_usage(enum tn_server_type type)
{
	printf("usage: tern-%s [--flag value ...]\n\nOptions (flag, environment variable, default):\n",
		type_names[type]);
	for (size_t i = 0; i < N_OPTS; i++) {
		if (!(opts[i].types & T(type)))
			continue;
		printf("  %-22s %-24s %-14s %s\n", opts[i].flag, opts[i].env,
			*opts[i].def ? opts[i].def : "\"\"", opts[i].help);
	}
	printf("  %-22s print this help\n  %-22s print every option as a Markdown table\n", "--help",
		"--help-config");
}

static int
apply_flags(struct tn_config *cfg, int argc, char **argv, char *err, size_t elen)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			print_usage(cfg->type);
			err[0] = '\0';
			return TN_ENOENT;
		}
		if (strcmp(a, "--help-config") == 0) {
			tn_config_print_reference(stdout);
			err[0] = '\0';
			return TN_ENOENT;
		}
		const char *eq = strchr(a, '=');
		size_t flen = eq ? (size_t)(eq - a) : strlen(a);
		const struct opt *o = strncmp(a, "--", 2) == 0 ? opt_by_flag(a, flen) : NULL;
		if (o == NULL)
			return fail(err, elen, "command line: unknown option \"%.*s\" (see --help)",
				(int)flen, a);
		const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (val == NULL)
			return fail(err, elen, "command line: %s needs a value", o->flag);
		char src[64];
		snprintf(src, sizeof(src), "command line %s", o->flag);
		int rv = opt_set(cfg, o, val, src, err, elen);
		if (rv)
			return rv;
	}
	return TN_OK;
}

/* Derived defaults and cross-option checks, once every source is applied. */
static int
finish(struct tn_config *cfg, char *err, size_t elen)
{
	if (*cfg->id == '\0') {
		char host[256] = "";
		if (gethostname(host, sizeof(host) - 1) != 0 || *host == '\0')
			return fail(err, elen, "id: not set and the host name is unavailable");
		free(cfg->id);
		cfg->id = tn_strdup(host);
	}
	if (*cfg->advertise_host == '\0') {
		free(cfg->advertise_host);
		cfg->advertise_host = tn_strdup(cfg->host);
	}
	if (*cfg->admin_host == '\0') {
		free(cfg->admin_host);
		cfg->admin_host = tn_strdup(cfg->host);
	}
	if (*cfg->host == '\0')
		return fail(err, elen, "host: must not be empty");
	if (cfg->type != TN_SERVER_GATE && cfg->port == 0)
		return fail(err, elen, "port: required for a %s server (set it in servers.json, "
				       "TERN_PORT or --port)", type_names[cfg->type]);
	bool frontend = cfg->type == TN_SERVER_GATE || cfg->type == TN_SERVER_CONNECTOR;
	if (frontend && cfg->client_port_min == 0)
		return fail(err, elen, "clientPort: required for a %s server", type_names[cfg->type]);
	if (frontend && cfg->body_limit > cfg->package_limit)
		return fail(err, elen, "bodyLimit: %d is larger than packageLimit %d", cfg->body_limit,
			cfg->package_limit);
	if (cfg->type == TN_SERVER_REGISTRY && cfg->notice_port == cfg->port)
		return fail(err, elen, "noticePort: %d is the RPC port too", cfg->notice_port);
	const char *colon = strrchr(cfg->registry, ':');
	long rport;
	if (colon == NULL || colon == cfg->registry || !parse_long(colon + 1, &rport) || rport < 1 ||
		rport > 65535)
		return fail(err, elen, "registry: \"%s\" is not host:port", cfg->registry);
	return TN_OK;
}

int
tn_config_load(struct tn_config *cfg, enum tn_server_type type, int argc, char **argv, char *err,
	size_t elen)
{
	int rv = apply_defaults(cfg, type, err, elen);
	/* env, id and config decide what is read from the file, so take them first from the
	 * environment and the command line. */
	static const char *const early[] = {"env", "id", "config"};
	for (size_t i = 0; rv == TN_OK && i < 3; i++) {
		const struct opt *o = opt_by_name(early[i]);
		const char *v = source_value(argc, argv, o);
		if (v)
			rv = opt_set(cfg, o, v, "command line or environment", err, elen);
	}
	if (rv == TN_OK && *cfg->config_path && strcmp(cfg->config_path, "none") != 0) {
		bool explicit_path = source_value(argc, argv, opt_by_name("config")) != NULL;
		/* Without an id there is no entry to look up; the host name is not guessed here. */
		if (*cfg->id)
			rv = apply_file(cfg, cfg->config_path, explicit_path, err, elen);
	}
	if (rv == TN_OK)
		rv = apply_environment(cfg, err, elen);
	if (rv == TN_OK)
		rv = apply_flags(cfg, argc, argv, err, elen);
	if (rv == TN_OK)
		rv = finish(cfg, err, elen);
	if (rv)
		tn_config_fini(cfg);
	return rv;
}

void
tn_config_fini(struct tn_config *cfg)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (opts[i].type == OPT_STR) {
			char **p = (char **)((char *)cfg + opts[i].off);
			free(*p);
			*p = NULL;
		}
	}
}

void
tn_config_print_reference(FILE *out)
{
	fprintf(out, "| option (servers.json key) | flag | environment | default | servers | meaning |\n");
	fprintf(out, "|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opts[i];
		char types[64] = "";
		if (o->types == ALL_TYPES) {
			snprintf(types, sizeof(types), "all");
		} else {
			for (int t = 0; t < TN_SERVER_TYPE_COUNT_; t++) {
				if (o->types & T(t)) {
					size_t n = strlen(types);
					snprintf(types + n, sizeof(types) - n, "%s%s", n ? ", " : "", type_names[t]);
				}
			}
		}
		fprintf(out, "| `%s` | `%s` | `%s` | %s%s%s | %s | %s |\n", o->name, o->flag, o->env,
			*o->def ? "`" : "", *o->def ? o->def : "(empty)", *o->def ? "`" : "", types,
			o->help);
	}
}
