/* Name resolution without blocking the loop. A numeric address is converted at once (and
 * still reported through the callback, so callers have one path); a name is looked up
 * with getaddrinfo on the loop's resolver thread, created on first use, and the result is
 * posted back to the loop thread.
 *
 * Loop thread only, except where noted. */
#ifndef TN_CLI_RESOLVE_H
#define TN_CLI_RESOLVE_H

#include <netdb.h>

#include "cli_loop.h"

struct tn_cli_resolve;
struct tn_cli_resolver;

/* The result of a lookup: TN_OK with a list of TCP addresses (ai, owned by the callee:
 * release it with freeaddrinfo), TN_ENOENT when the name does not resolve, TN_EIO for a
 * system failure. Runs on the loop thread. */
typedef void (*tn_cli_resolve_fn)(void *arg, int err, struct addrinfo *ai);

/* Starts looking up host (a name or a numeric IPv4/IPv6 address) for TCP port port.
 * host is copied. fn(arg, ...) runs exactly once on the loop thread, later (never inside
 * this call), unless the lookup is cancelled first. Returns the handle for
 * tn_cli_resolve_cancel, valid until fn runs. */
struct tn_cli_resolve *tn_cli_resolve_start(
        struct tn_cli_loop *loop, const char *host, int port, tn_cli_resolve_fn fn, void *arg);

/* Makes sure fn is never called for r; r's memory is released by the resolver. Only
 * before fn has run. */
void tn_cli_resolve_cancel(struct tn_cli_resolve *r);

/* For cli_loop.c: creates the resolver of loop (the thread starts on the first name
 * lookup), and stops and frees it, joining the thread and dropping lookups not yet
 * started. */
struct tn_cli_resolver *tn_cli_resolver_new(struct tn_cli_loop *loop);
void tn_cli_resolver_free(struct tn_cli_resolver *rs);

#endif
