/* tern-admin: operator commands against a running cluster.
 *
 *   tern-admin list [--registry host:port] [--timeout ms] [--json]
 *
 * prints the cluster as the registry sees it, like pomelo's `pomelo list`. The registry
 * address defaults to TERN_REGISTRY, then 127.0.0.1:3005 (the development cluster's).
 * Exit status: 0 listed, 1 the registry did not answer or refused, 2 bad usage. */
#include <nng/nng.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cluster_list.h"
#include "err.h"
#include "topology.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: tern-admin list [--registry host:port] [--timeout ms] [--json]\n"
		   "\n"
		   "  list          print every server the registry knows: id, type, state (up,\n"
		   "                or draining: shutting down, no longer any room's owner),\n"
		   "                advertised address, client address, pid, uptime, connections\n"
		   "                or rooms, memory (RSS) and messages per second\n"
		   "  --registry    the registry's RPC address (default: $TERN_REGISTRY, else\n"
		   "                127.0.0.1:3005)\n"
		   "  --timeout     how long to wait for the registry, ms (default 3000)\n"
		   "  --json        one JSON object instead of the table\n");
}

struct args {
	const char *registry;
	int timeout_ms;
	bool json;
};

/* Returns -1 to go on, or the exit status. */
static int
parse(struct args *a, int argc, char **argv)
{
	const char *env = getenv("TERN_REGISTRY");
	*a = (struct args){env && *env ? env : "127.0.0.1:3005", 3000, false};
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "list") != 0) {
		fprintf(stderr, "tern-admin: unknown command \"%s\"\n", argv[1]);
		usage(stderr);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			a->json = true;
		} else if (strcmp(argv[i], "--registry") == 0 && i + 1 < argc) {
			a->registry = argv[++i];
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end != '\0' || v < 1 || v > 600000) {
				fprintf(stderr, "tern-admin: --timeout: \"%s\" is not 1..600000 ms\n", argv[i]);
				return 2;
			}
			a->timeout_ms = (int)v;
		} else {
			fprintf(stderr, "tern-admin: unknown option \"%s\" (see --help)\n", argv[i]);
			return 2;
		}
	}
	return -1;
}

int
main(int argc, char **argv)
{
	struct args a;
	int status = parse(&a, argc, argv);
	if (status >= 0)
		return status;
	struct tn_topology *t = NULL;
	bool recovering = false;
	char err[512];
	int rv = tn_cluster_list_fetch(&t, &recovering, a.registry, a.timeout_ms, err, sizeof(err));
	if (rv != TN_OK) {
		fprintf(stderr, "tern-admin: %s\n", err);
		nng_fini();
		return 1;
	}
	struct tn_buf out;
	tn_buf_init(&out);
	if (a.json)
		tn_cluster_list_json(&out, t, recovering);
	else
		tn_cluster_list_table(&out, t, recovering);
	fwrite(out.data, 1, out.len, stdout);
	tn_buf_fini(&out);
	tn_topology_free(t);
	nng_fini();
	return 0;
}
