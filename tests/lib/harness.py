"""Integration-test harness: ports, temporary servers.json topologies, starting and stopping
the real binaries through scripts/cluster.py, the admin HTTP port, Prometheus parsing, and
the end-of-test checks (every server exited 0, no sanitizer report in any stderr).

Environment:
  TERN_BIN         directory of tern-{gate,connector,chat,registry}
                   (default <source>/build/release/bin)
  TERN_SOURCE_DIR  source tree (default: two levels above this file)

Typical use from a test (the `tern` fixture of tests/integration/conftest.py wraps this):
    topo = Topology(connectors=2, chats=2)
    cluster = Cluster(topo, tmp_path).start()
    samples = cluster.metrics("chat-server-1")
    problems = cluster.stop()          # [] when every server exited cleanly
"""
import asyncio
import atexit
import contextlib
import errno
import fcntl
import http.client
import importlib.util
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("TERN_SOURCE_DIR") or Path(__file__).resolve().parents[2])
BIN_DIR = Path(os.environ.get("TERN_BIN") or SOURCE_DIR / "build" / "release" / "bin")
SERVER_TYPES = ("registry", "chat", "connector", "gate")
FRONTEND_TYPES = ("gate", "connector")

# Long enough for an ASan build on a loaded two-core machine; a healthy server needs well
# under a second.
READY_TIMEOUT = float(os.environ.get("TERN_READY_TIMEOUT", "30"))
STOP_GRACE = 10.0

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                      "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer")

# Sanitizer settings for servers started outside scripts/test.sh (which sets its own).
SANITIZER_ENV_DEFAULTS = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=66",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

# `<time> <LEVEL> <server-id> <module>: <message>`
LOG_LINE_RE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>DEBUG|INFO|WARN|ERROR) "
    r"(?P<id>\S+) (?P<module>[^\s:]+): (?P<message>.*)$")


def _load_launcher():
    path = SOURCE_DIR / "scripts" / "cluster.py"
    spec = importlib.util.spec_from_file_location("tern_cluster_launcher", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


launcher = _load_launcher()


def binary(stype, bindir=None):
    """Path of tern-<stype>."""
    return Path(bindir or BIN_DIR) / f"tern-{stype}"


def missing_binaries(types=SERVER_TYPES, bindir=None):
    """The binaries of `types` that are not built (empty list when all are there)."""
    return [str(binary(t, bindir)) for t in types if not os.access(binary(t, bindir), os.X_OK)]


# ---- ports ----

_PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "tern-test-ports"
_held_ports = {}  # port -> lock file descriptor, kept for the life of the process


def _port_candidates():
    # Stay below the ephemeral range so outgoing connections never take a test's port.
    lo_eph = 32768
    with contextlib.suppress(OSError, ValueError):
        lo_eph = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    lo, hi = 15000, max(15000 + 1000, lo_eph - 1)
    ports = list(range(lo, min(hi, 65535)))
    random.shuffle(ports)
    return ports


def _port_bindable(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port():
    """A TCP port that nothing listens on (on any address) and that no other test process
    holds: each port handed out is locked (a file lock under /tmp/tern-test-ports) for the
    rest of this process and never handed out again by it, so parallel tests and a server
    that left a port in TIME_WAIT do not collide."""
    _PORT_LOCK_DIR.mkdir(exist_ok=True)
    for port in _port_candidates():
        if port in _held_ports:
            continue
        fd = os.open(_PORT_LOCK_DIR / str(port), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                continue
            raise
        if not _port_bindable(port):
            os.close(fd)
            continue
        _held_ports[port] = fd
        return port
    raise RuntimeError("no free TCP port left")


def free_ports(n):
    """n distinct free ports (see free_port)."""
    return [free_port() for _ in range(n)]


def loopback_hosts(n):
    """["127.0.0.1", "127.0.0.2", ...]: n loopback addresses (Linux routes all of 127/8 to
    lo), to give servers distinct addresses on one machine. Raises if one cannot be bound."""
    hosts = [f"127.0.0.{i}" for i in range(1, n + 1)]
    for h in hosts:
        s = socket.socket()
        try:
            s.bind((h, 0))
        finally:
            s.close()
    return hosts


# ---- topology (servers.json) ----

class Topology:
    """A servers.json environment built for one test: every server on its own free ports
    (port, clientPort, adminPort) on the given loopback hosts, handed out round robin.

    Topology(connectors=N, chats=M, gate=True, registry=True, hosts=None, env="test",
             options={type or id: {key: value}})
    `options` adds or overrides servers.json keys, per type ("chat") or per id."""

    def __init__(self, connectors=1, chats=1, gate=True, registry=True, hosts=None,
                 env="test", options=None):
        self.env = env
        self.hosts = list(hosts or ["127.0.0.1"])
        self.options = options or {}
        self.entries = {t: [] for t in SERVER_TYPES}
        self._host_rr = 0
        if registry:
            self.add("registry")
        for _ in range(chats):
            self.add("chat")
        for _ in range(connectors):
            self.add("connector")
        if gate:
            self.add("gate")

    def _next_host(self):
        host = self.hosts[self._host_rr % len(self.hosts)]
        self._host_rr += 1
        return host

    def add(self, stype, sid=None, host=None, **keys):
        """Adds a server of type stype (id <type>-server-<n> unless given) and returns its
        entry (a dict that may still be edited before the file is written)."""
        if stype not in self.entries:
            raise ValueError(f"unknown server type {stype!r}")
        sid = sid or f"{stype}-server-{len(self.entries[stype]) + 1}"
        host = host or self._next_host()
        entry = {"id": sid, "host": host}
        if stype != "gate":
            entry["port"] = free_port()
        if stype in FRONTEND_TYPES:
            entry["clientHost"] = host
            entry["clientPort"] = free_port()
            entry["frontend"] = True
        entry["adminPort"] = free_port()
        entry.update(self.options.get(stype, {}))
        entry.update(self.options.get(sid, {}))
        entry.update(keys)
        self.entries[stype].append(entry)
        return entry

    def all(self):
        """Every entry in start order (registry, chat, connector, gate)."""
        return [e for t in SERVER_TYPES for e in self.entries[t]]

    def entry(self, sid):
        for e in self.all():
            if e["id"] == sid:
                return e
        raise KeyError(sid)

    def type_of(self, sid):
        for t in SERVER_TYPES:
            if any(e["id"] == sid for e in self.entries[t]):
                return t
        raise KeyError(sid)

    def ids(self, stype=None):
        return [e["id"] for e in self.all() if stype is None or self.type_of(e["id"]) == stype]

    def registry_address(self):
        reg = self.entries["registry"]
        return f"{reg[0]['host']}:{reg[0]['port']}" if reg else None

    def to_json(self):
        return {self.env: {t: self.entries[t] for t in SERVER_TYPES if self.entries[t]}}

    def write(self, path):
        """Writes the servers.json file and returns its path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


# ---- processes ----

def child_environment(extra=None):
    """The environment for a server: this process's, without any TERN_* option variable
    (so a developer's shell cannot leak into a test), with sanitizer defaults, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TERN_") or k in ("TERN_BIN", "TERN_SOURCE_DIR")}
    for k, v in SANITIZER_ENV_DEFAULTS.items():
        env.setdefault(k, v)
    env.update(extra or {})
    return env


@contextlib.contextmanager
def _scrubbed_environ(extra=None):
    # scripts/cluster.py start_all() copies os.environ; give it the child environment.
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(child_environment(extra))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sanitizer_report(text):
    """The first sanitizer marker found in text, or None."""
    for pat in SANITIZER_PATTERNS:
        if pat in text:
            return pat
    return None


def parse_log_line(line):
    """Splits a server log line into a dict (time, level, id, module, message), or None
    when the line is not in the log format."""
    m = LOG_LINE_RE.match(line)
    return m.groupdict() if m else None


def ready_lines(server):
    """The log lines of a launcher Server whose message starts with `ready`."""
    out = []
    for line in server.output().splitlines():
        rec = parse_log_line(line)
        if rec and (rec["message"] == "ready" or rec["message"].startswith("ready ")):
            out.append(line)
    return out


def log_fields(message):
    """key=value fields of a log message (values may be "quoted")."""
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
            for m in re.finditer(r'(\w[\w.-]*)=(?:"((?:[^"\\]|\\.)*)"|(\S*))', message)}


_live = []  # every launcher Server started here, for the atexit safety net


def _kill_leftovers():
    for s in _live:
        if s.proc.poll() is None:
            s.proc.kill()


atexit.register(_kill_leftovers)


def stop_servers(servers, sig=signal.SIGTERM, grace=STOP_GRACE):
    """Sends sig to every server still running (last started first), waits up to grace in
    total, SIGKILLs what is left. Returns {id: exit status} (negative: killed by a signal)."""
    for s in reversed(servers):
        s.stop(sig)
    deadline = time.monotonic() + grace
    codes = {}
    for s in reversed(servers):
        try:
            codes[s.id] = s.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()
            codes[s.id] = f"still running {grace:.0f}s after {signal.Signals(sig).name}; killed"
        s.reader.join(5)
    return codes


def server_problems(server, code):
    """Why a server that was stopped (exit status code) counts as a failure: a non-zero
    exit or a sanitizer report. Returns a list of messages carrying its output."""
    problems = []
    out = server.output()
    if code != 0:
        problems.append(f"{server.id} exited with status {code}")
    pat = sanitizer_report(out)
    if pat:
        problems.append(f"{server.id}: sanitizer report ({pat})")
    if problems:
        problems.append(f"---- stderr of {server.id} ----\n{out}\n---- end of {server.id} ----")
    return problems


def run_once(argv, env=None, timeout=30.0, cwd=None):
    """Runs a server binary that is expected to exit by itself (bad configuration, --help):
    returns subprocess.CompletedProcess with text stdout/stderr. The environment is
    child_environment(env). Raises subprocess.TimeoutExpired if it keeps running."""
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace",
                          env=child_environment(env), timeout=timeout, cwd=cwd)


# ---- admin HTTP port and metrics ----

def http_get(host, port, path, timeout=5.0):
    """GET http://host:port/path without any proxy; returns (status, body text). Raises
    OSError when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Calls predicate() until it returns a truthy value (returned) or timeout passes
    (AssertionError naming `what`). Exceptions from predicate count as not yet."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - polled condition, retried until deadline
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")


def _unescape_label(value):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _parse_labels(text):
    labels = []
    pos = 0
    while pos < len(text):
        m = _LABEL_RE.match(text, pos)
        if not m:
            raise ValueError(f"bad label set {{{text}}}")
        labels.append((m.group(1), _unescape_label(m.group(2))))
        pos = m.end()
    return tuple(sorted(labels))


def _parse_value(text):
    special = {"+Inf": float("inf"), "-Inf": float("-inf"), "NaN": float("nan")}
    return special[text] if text in special else float(text)


def parse_metrics(text):
    """Parses the Prometheus text format into {(name, labels): value}, labels being a
    sorted tuple of (label, value) pairs (() when there are none). Raises ValueError on a
    malformed line or a duplicate sample, so the exposition itself is checked too."""
    samples = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError(f"line {lineno}: not a sample: {line!r}")
        labels = _parse_labels(m.group(2)[1:-1]) if m.group(2) else ()
        key = (m.group(1), labels)
        if key in samples:
            raise ValueError(f"line {lineno}: duplicate sample {line!r}")
        samples[key] = _parse_value(m.group(3))
    return samples


def metric_types(text):
    """{family name: type} from the # TYPE lines."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE":
            out[parts[2]] = parts[3]
    return out


def sample(samples, name, default=None, **labels):
    """The value of the sample name{labels} (exactly those labels), or default."""
    return samples.get((name, tuple(sorted(labels.items()))), default)


def sample_sum(samples, name, **labels):
    """Sum of every sample of `name` whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


# ---- a running cluster ----

class Cluster:
    """One test's servers: the servers.json of a Topology written into workdir, the
    servers started through scripts/cluster.py, and the checks at the end."""

    def __init__(self, topology, workdir, bindir=None, env=None):
        self.topology = topology
        self.workdir = Path(workdir)
        self.bindir = Path(bindir or BIN_DIR)
        self.env = dict(env or {})
        self.config = topology.write(self.workdir / "servers.json")
        self.servers = []      # launcher Servers, in start order
        self.codes = {}        # id -> exit status, once stopped
        self._stopped = set()

    # -- start --

    def start(self, ready_timeout=READY_TIMEOUT):
        """Starts every server of the topology in the launcher's order, waiting for each
        kind's ready lines. Raises AssertionError (with the servers' output) when a binary
        is missing or a server does not become ready."""
        types = [t for t in SERVER_TYPES if self.topology.entries[t]]
        missing = missing_binaries(types, self.bindir)
        if missing:
            raise AssertionError(f"not built: {', '.join(missing)} (TERN_BIN={self.bindir})")
        with _scrubbed_environ(self.env):
            try:
                started = launcher.start_all(str(self.bindir), str(self.config),
                                             self.topology.env, echo=os.environ.get("TERN_TEST_ECHO") == "1",
                                             ready_timeout=ready_timeout)
            except RuntimeError as e:
                raise AssertionError(f"cluster did not start: {e}") from None
        self.servers += started
        _live.extend(started)
        return self

    def spawn(self, sid=None, argv=None, env=None, ready=True, ready_timeout=READY_TIMEOUT):
        """Starts one more process, tracked like the others: by default the topology's
        server `sid` with --env/--id/--config; or any argv (env: extra variables). Waits
        for its ready line unless ready=False. Returns the launcher Server."""
        if argv is None:
            stype = self.topology.type_of(sid)
            argv = [str(binary(stype, self.bindir)), "--env", self.topology.env, "--id", sid,
                    "--config", str(self.config)]
        if not os.access(argv[0], os.X_OK):
            raise AssertionError(f"not built: {argv[0]}")
        sid = sid or Path(argv[0]).name
        server = launcher.Server(sid, Path(argv[0]).name.replace("tern-", ""),
                                 [str(a) for a in argv], child_environment(self.env | (env or {})),
                                 echo=os.environ.get("TERN_TEST_ECHO") == "1")
        self.servers.append(server)
        _live.append(server)
        if ready and not server.wait_ready(ready_timeout):
            raise AssertionError(f"{sid} did not become ready within {ready_timeout}s "
                                 f"(status {server.proc.poll()}):\n{server.output()}")
        return server

    # -- access --

    def server(self, sid):
        for s in self.servers:
            if s.id == sid:
                return s
        raise KeyError(sid)

    def admin_address(self, sid):
        e = self.topology.entry(sid)
        return e.get("adminHost") or e["host"], e["adminPort"]

    def client_address(self, sid):
        """(host, clientPort) of a gate or connector."""
        e = self.topology.entry(sid)
        return e["host"], e["clientPort"]

    def gate_address(self):
        return self.client_address(self.topology.ids("gate")[0])

    def admin_get(self, sid, path, timeout=5.0):
        """GET on the admin port of sid: (status, body)."""
        host, port = self.admin_address(sid)
        return http_get(host, port, path, timeout)

    def metrics(self, sid, timeout=5.0):
        """/metrics of sid parsed into {(name, labels): value} (see parse_metrics)."""
        status, body = self.admin_get(sid, "/metrics", timeout)
        assert status == 200, f"{sid} /metrics answered {status}: {body[:200]}"
        return parse_metrics(body)

    def wait_ready_http(self, sid, timeout=READY_TIMEOUT):
        """Waits until /readyz of sid answers 200."""
        wait_until(lambda: self.admin_get(sid, "/readyz", 2.0)[0] == 200, timeout,
                   what=f"{sid} /readyz 200")

    # -- stop and check --

    def stop_server(self, sid, sig=signal.SIGTERM, grace=STOP_GRACE):
        """Stops one server with sig; returns its exit status (see stop_servers)."""
        s = self.server(sid)
        code = stop_servers([s], sig, grace)[sid]
        self.codes[sid] = code
        self._stopped.add(sid)
        return code

    def stop(self, grace=STOP_GRACE):
        """Stops every server still running (SIGTERM, front to back) and returns the list
        of problems over all servers of this cluster: non-zero exits and sanitizer
        reports, each with the server's output. Idempotent."""
        running = [s for s in self.servers if s.id not in self._stopped]
        self.codes.update(stop_servers(running, signal.SIGTERM, grace))
        self._stopped.update(s.id for s in running)
        problems = []
        for s in self.servers:
            problems += server_problems(s, self.codes.get(s.id))
        return problems

    def assert_running(self):
        """Fails (AssertionError with the output) if a server not stopped by the test has
        exited: a crash after hostile input, for instance."""
        dead = [s for s in self.servers
                if s.id not in self._stopped and s.proc.poll() is not None]
        if dead:
            for s in dead:
                s.reader.join(2)
            raise AssertionError("\n".join(
                f"{s.id} exited with status {s.proc.returncode}:\n{s.output()}" for s in dead))

    def outputs(self):
        """Every server's stderr, labelled; for assertion messages."""
        return "\n".join(f"---- {s.id} ----\n{s.output()}" for s in self.servers)


class ClusterFactory:
    """What the `tern` fixture hands a test: makes Clusters in the test's tmp dir and, at
    teardown, stops them all and collects their problems."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.clusters = []

    def topology(self, **kw):
        return Topology(**kw)

    def cluster(self, topology=None, start=True, env=None, **topo_kw):
        """A Cluster of topology (or Topology(**topo_kw)), started unless start=False."""
        sub = self.workdir / f"cluster{len(self.clusters) + 1}"
        sub.mkdir(parents=True, exist_ok=True)
        c = Cluster(topology or Topology(**topo_kw), sub, env=env)
        self.clusters.append(c)
        if start:
            c.start()
        return c

    def shutdown(self):
        problems = []
        for c in reversed(self.clusters):
            problems += c.stop()
        return problems


def run_async(coro, timeout=60.0):
    """Runs a coroutine (a client scenario) to completion with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def describe_problems(problems):
    return "servers misbehaved:\n" + "\n".join(problems)


if __name__ == "__main__":
    # Handy by hand: python3 tests/lib/harness.py prints a topology as servers.json.
    json.dump(Topology(connectors=2, chats=2).to_json(), sys.stdout, indent=2)
    print()
