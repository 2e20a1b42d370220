"""Clusters started by hand: every server from TERN_* variables only (no servers.json), each
on its own loopback address, joining through the registry, into one cluster of the
`tern` fixture (which stops them at the end and fails the test on a non-zero exit or a
sanitizer report).

    hand = Hand(tern, evict_ms=1500, heartbeat_ms=150)
    hand.start("registry", "registry-1", "127.0.0.2")
    chat = hand.start("chat", "chat-1", "127.0.0.3")
    chat.metric("tern_chat_rooms")
    hand.stop("chat-1")                    # SIGTERM; the exit status

A server started again under an id it had gets a label of its own (id@2, id@3, ...) and
fresh ports; `current` maps each id to its latest process."""
import signal
import time

import harness


class Node:
    """One server process started from TERN_* variables only."""

    def __init__(self, stype, sid, label, host, env, server):
        self.type, self.id, self.label, self.host, self.env = stype, sid, label, host, env
        self.server = server

    @property
    def admin(self):
        return self.host, int(self.env["TERN_ADMIN_PORT"])

    @property
    def port(self):
        return int(self.env["TERN_PORT"])

    @property
    def client_port(self):
        return int(self.env["TERN_CLIENT_PORT"].split("-")[0])

    def metrics(self):
        status, body = harness.http_get(*self.admin, "/metrics")
        assert status == 200, f"{self.label} /metrics: {status}"
        return harness.parse_metrics(body)

    def metric(self, name, default=0.0, **labels):
        return harness.sample(self.metrics(), name, default, **labels)

    def readyz(self):
        return harness.http_get(*self.admin, "/readyz")

    def running(self):
        return self.server.proc.poll() is None


class Hand:
    def __init__(self, tern, evict_ms, heartbeat_ms):
        self.cluster = tern.cluster(harness.Topology(registry=False, chats=0, connectors=0,
                                                     gate=False), start=False)
        self.evict_ms, self.heartbeat_ms = evict_ms, heartbeat_ms
        self.nodes = {}      # label -> Node
        self.current = {}    # id -> Node of its latest process
        self.registry = None

    def start(self, stype, sid, host, registry=None, ready=True, label=None, **extra):
        """Starts tern-<stype> with server id sid on host (the registry's evictAfter and the
        others' heartbeat interval as given to the constructor; extra: more TERN_*
        variables). label names the process (default: sid, or sid@n for the n-th process
        of that id). Waits for its ready line unless ready=False."""
        if label is None:
            n = sum(1 for node in self.nodes.values() if node.id == sid)
            label = sid if n == 0 else f"{sid}@{n + 1}"
        env = {"TERN_CONFIG": "none", "TERN_ID": sid, "TERN_ENV": "test", "TERN_HOST": host,
               "TERN_ADMIN_PORT": str(harness.free_port()), "TERN_LOG_LEVEL": "info"}
        if stype == "registry":
            env["TERN_EVICT_AFTER"] = str(self.evict_ms)
        else:
            env["TERN_REGISTRY"] = registry or self.registry_address()
            env["TERN_HEARTBEAT_INTERVAL"] = str(self.heartbeat_ms)
        if stype != "gate":
            env["TERN_PORT"] = str(harness.free_port())
        if stype in harness.FRONTEND_TYPES:
            env["TERN_CLIENT_HOST"] = host
            env["TERN_PUBLIC_HOST"] = host
            env["TERN_CLIENT_PORT"] = str(harness.free_port())
        if stype == "gate":
            env["TERN_WEB_ROOT"] = ""
        env.update({k: str(v) for k, v in extra.items()})
        server = self.cluster.spawn(label, argv=[str(harness.binary(stype))], env=env,
                                    ready=ready)
        node = Node(stype, sid, label, host, env, server)
        self.nodes[label] = node
        self.current[sid] = node
        if stype == "registry" and self.registry is None:
            self.registry = node
        return node

    def registry_address(self):
        return f"{self.registry.host}:{self.registry.port}"

    def _label(self, who):
        return who if who in self.nodes else self.current[who].label

    def stop(self, who, sig=signal.SIGTERM):
        """Stops a process (by label, or an id's latest) and returns its exit status. A
        SIGKILL is the test's doing and not counted as a failure at the end."""
        label = self._label(who)
        code = self.cluster.stop_server(label, sig=sig)
        if sig == signal.SIGKILL:
            self.cluster.codes[label] = 0
        return code

    def stop_timed(self, who, sig=signal.SIGTERM):
        """stop(), returning (exit status, seconds it took)."""
        t0 = time.monotonic()
        code = self.stop(who, sig)
        return code, time.monotonic() - t0

    def kill(self, who):
        """SIGKILL; the exit status."""
        return self.stop(who, signal.SIGKILL)

    def of_type(self, stype):
        """The running latest processes of that type."""
        return [n for n in self.current.values() if n.type == stype and n.running()]
