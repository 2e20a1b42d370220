#!/usr/bin/python3
"""The benchmark driver: starts a tern cluster from a temporary servers.json (through
scripts/cluster.py), runs tern-loadgen scenarios against it, writes CSV files and a
description of the machine into a results directory, and draws the plots with gnuplot.

  bench/run.py [--quick | --smoke] [--bin DIR] [--out DIR] [--scenarios rtt,fanout,connections]

Profiles (every wait is bounded; the run stops by itself):
  full    (default) 5-10 minutes: rtt, fan-out in two room shapes up to saturation,
          1k/5k/10k/20k idle connections
  quick   under 2 minutes: the same scenarios, smaller
  smoke   a few seconds of each scenario with a handful of clients; checks that the
          numbers add up (no loss, every session seen by the servers) and exits non-zero
          otherwise. The ctest bench_smoke runs this.

Scenarios (docs/benchmarks.md says more):
  rtt          request round trip at low load (tern-loadgen rtt)
  fanout       R rooms x M members, offered message rate stepped up until saturation;
               delivered messages/s and end-to-end latency (tern-loadgen fanout --control)
  connections  idle sessions in rooms, added level by level over several loadgen
               processes; server RSS per connection (tern-loadgen idle --control)

The servers are whatever --bin holds (bench/run.sh builds build/release first).
"""
import argparse
import csv
import datetime
import importlib.util
import io
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[1]
BENCH_DIR = SOURCE_DIR / "bench"
ENV = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The machine is shared: busy CPU charged to none of our processes above this (percent of
# one core) means other work ran during a measurement, which is then taken again (up to
# the profile's "attempts" times in all).
NOISE_PCT = 25.0
SERVER_TYPES = ("registry", "chat", "connector", "gate")

PROFILES = {
    "full": {
        # seconds; connections_s is kept back from fan-out for the scenario after it
        "deadline_s": 600, "quiet_wait_s": 60, "connections_s": 150, "attempts": 3,
        "connectors": 3, "chats": 3,
        # (clients, pause between a client's requests in ms, recorded requests). Paced:
        # a session may send 50 requests/s (rateLimit), so every client stays under 40/s.
        "rtt": [(1, 25, 600), (20, 25, 6000), (100, 25, 20000)],
        # (rooms, members): 1000 clients in rooms of 50; 1000 in two rooms of 500
        "shapes": [(20, 50), (2, 500)],
        # two processes so that the client side can use both cores: one load generator
        # thread saturates before the servers do
        "fanout_procs": 2,
        # offered deliveries/s (message rate x room size), stepped up to saturation
        "deliveries": [5000, 10000, 25000, 50000, 75000, 100000, 150000, 200000, 250000,
                       300000, 400000, 500000, 600000, 800000],
        "step_s": 5, "drain_s": 5, "size": 64,
        "levels": [1000, 5000, 10000, 20000],
        "per_proc": 5000, "idle_members": 20, "settle_s": 3, "idle_window_s": 5,
    },
    "quick": {
        "deadline_s": 115, "quiet_wait_s": 10, "connections_s": 40, "attempts": 1,
        "connectors": 3, "chats": 3,
        "rtt": [(1, 25, 200), (20, 25, 2000)],
        "shapes": [(20, 50)],
        "fanout_procs": 2,
        "deliveries": [5000, 25000, 50000, 100000, 200000, 300000, 400000, 600000],
        "step_s": 2, "drain_s": 3, "size": 64,
        "levels": [1000, 4000],
        "per_proc": 4000, "idle_members": 20, "settle_s": 2, "idle_window_s": 2,
    },
    "smoke": {
        "deadline_s": 120, "quiet_wait_s": 0, "connections_s": 30, "attempts": 1,
        "connectors": 2, "chats": 2,
        "rtt": [(2, 25, 40)],
        "shapes": [(2, 5)],
        "fanout_procs": 2,
        "deliveries": [100, 250],
        "step_s": 1, "drain_s": 3, "size": 64,
        "levels": [20, 60],
        "per_proc": 40, "idle_members": 10, "settle_s": 0.5, "idle_window_s": 0.5,
    },
}


def load_launcher():
    spec = importlib.util.spec_from_file_location("tern_cluster_launcher",
                                                  SOURCE_DIR / "scripts" / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


launcher = load_launcher()


class BenchError(Exception):
    pass


def log(msg):
    print(f"bench: {msg}", flush=True)


# ---- the cluster ----

def free_ports(n):
    """n distinct ports that can be bound now, below the ephemeral range (the load
    generator's tens of thousands of outgoing connections take ports from that range)."""
    ports = []
    candidates = list(range(20000, 32000))
    random.shuffle(candidates)
    for port in candidates:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        ports.append(port)
        if len(ports) == n:
            return ports
    raise BenchError("no free ports")


class Cluster:
    """1 registry, 1 gate, `connectors` connectors and `chats` chat servers on loopback,
    default settings except the ports (and max-connections, sized for the run)."""

    def __init__(self, bindir, workdir, connectors, chats, max_connections):
        self.bindir = str(bindir)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = iter(free_ports(4 + 3 * connectors + 2 * chats))
        doc = {"registry": [], "chat": [], "connector": [], "gate": []}
        doc["registry"].append({"id": "registry-server-1", "host": "127.0.0.1",
                                "port": next(ports), "adminPort": next(ports)})
        for i in range(chats):
            doc["chat"].append({"id": f"chat-server-{i + 1}", "host": "127.0.0.1",
                                "port": next(ports), "adminPort": next(ports)})
        for i in range(connectors):
            doc["connector"].append({
                "id": f"connector-server-{i + 1}", "host": "127.0.0.1",
                "port": next(ports), "clientHost": "127.0.0.1", "clientPort": next(ports),
                "frontend": True, "adminPort": next(ports),
                "max-connections": max_connections})
        doc["gate"].append({"id": "gate-server-1", "host": "127.0.0.1",
                            "clientHost": "127.0.0.1", "clientPort": next(ports),
                            "frontend": True, "adminPort": next(ports)})
        self.doc = doc
        self.config = self.workdir / "servers.json"
        self.config.write_text(json.dumps({ENV: doc}, indent=2) + "\n")
        self.servers = []

    def entries(self):
        for stype in SERVER_TYPES:
            yield from ((stype, e) for e in self.doc[stype])

    def gate_port(self):
        return self.doc["gate"][0]["clientPort"]

    def start(self):
        self.servers = launcher.start_all(self.bindir, str(self.config), ENV, echo=False)
        return self

    def stop(self):
        codes = launcher.stop_all(self.servers)
        for s in self.servers:
            (self.workdir / f"{s.id}.log").write_text(s.output() + "\n")
        self.servers = []
        bad = {k: v for k, v in codes.items() if v != 0}
        if bad:
            raise BenchError(f"servers exited unclean: {bad} (logs in {self.workdir})")

    def by_type(self, stype):
        return [s for s in self.servers if s.type == stype]

    def check_alive(self):
        dead = [s.id for s in self.servers if s.proc.poll() is not None]
        if dead:
            raise BenchError(f"servers died: {dead} (logs in {self.workdir})")

    def metrics(self, sid):
        """The server's /metrics as {name{labels}: value}."""
        entry = next(e for _, e in self.entries() if e["id"] == sid)
        url = f"http://127.0.0.1:{entry['adminPort']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    out[key] = float(value)
                except ValueError:
                    pass
        return out

    def metric_sum(self, stype, name):
        total = 0.0
        for s in self.by_type(stype):
            total += sum(v for k, v in self.metrics(s.id).items()
                         if k == name or k.startswith(name + "{"))
        return total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """user + system CPU seconds of a process (threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_ticks():
    """(busy, softirq, total) clock ticks of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    idle = v[3] + v[4]
    total = sum(v[:8])
    return total - idle, v[6], total


class CpuMeter:
    """CPU use per process group (percent of one core) between start() and stop(), and
    of the whole machine from /proc/stat: "machine" (busy, percent of one core, so 200 =
    both cores of two) and "softirq" (the kernel's deferred network work, which on
    loopback carries much of the TCP processing; with tick accounting it overlaps with
    the system time of the process it interrupted)."""

    def __init__(self, groups):
        self.groups = groups  # name -> list of pids (read at start)

    def start(self):
        self.t0 = time.monotonic()
        self.c0 = {g: self._sum(p) for g, p in self.groups.items()}
        self.m0 = machine_ticks()

    def stop(self):
        wall = time.monotonic() - self.t0
        out = {g: 100.0 * (self._sum(p) - self.c0[g]) / wall for g, p in self.groups.items()}
        m1 = machine_ticks()
        share = (os.cpu_count() or 1) * 100.0 / max(1, m1[2] - self.m0[2])
        out["machine"] = (m1[0] - self.m0[0]) * share
        out["softirq"] = (m1[1] - self.m0[1]) * share
        # Busy time charged to none of the groups: the kernel's network work on an
        # otherwise idle CPU, this driver, and anything else running on the machine.
        out["unattributed"] = max(0.0, out["machine"] - sum(out[g] for g in self.groups))
        return out

    @staticmethod
    def _sum(pids):
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except OSError:
                pass
        return total


def server_groups(cluster):
    return {t: [s.proc.pid for s in cluster.by_type(t)] for t in SERVER_TYPES}


# ---- load generator processes ----

class LoadGen:
    """One tern-loadgen process: stdout read line by line into `lines`, stderr into a
    log file, commands written to its standard input."""

    def __init__(self, bindir, args, logpath):
        self.argv = [str(Path(bindir) / "tern-loadgen")] + [str(a) for a in args]
        self.logfile = open(logpath, "w")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.logfile, text=True)
        self.lines = []
        self.cond = threading.Condition()
        self.ended = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def wait_line(self, prefix, timeout, start=0):
        """(index, line) of the first line from index `start` on that starts with prefix."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    if self.lines[i].startswith(prefix):
                        return i, self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if self.ended or left <= 0:
                    raise BenchError(f"no '{prefix}' line from {' '.join(self.argv)} "
                                     f"within {timeout:.0f}s (status {self.proc.poll()}); "
                                     f"see {self.logfile.name}")
                self.cond.wait(min(left, 1.0))

    def header(self):
        """The CSV header line."""
        with self.cond:
            return next((l for l in self.lines if l.startswith("scenario,")), "")

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def csv_rows(self):
        with self.cond:
            text = "\n".join(l for l in self.lines if not l.startswith("#"))
        return list(csv.DictReader(io.StringIO(text)))

    def finish(self, timeout=60):
        """Asks it to quit (end of input), waits; returns the exit status."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.reader.join(5)
        self.logfile.close()
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        if not self.logfile.closed:
            self.logfile.close()


def hist_parse(text):
    """{lower: count} from "lower:count,..."."""
    out = {}
    for pair in filter(None, text.split(",")):
        lower, _, count = pair.partition(":")
        out[int(lower)] = out.get(int(lower), 0) + int(count)
    return out


def hist_upper(lower):
    """Highest value of the bucket that starts at lower (bench/hist.c's layout: values
    below 256 have a bucket each, then 128 buckets per power of two)."""
    if lower < 256:
        return lower
    shift = lower.bit_length() - 8
    return lower + (1 << shift) - 1


def hist_percentile(hist, pct, maximum):
    total = sum(hist.values())
    if total == 0:
        return 0
    if pct >= 100:
        return maximum
    rank = max(1, int(pct / 100.0 * total + 0.999999))
    seen = 0
    for lower in sorted(hist):
        seen += hist[lower]
        if seen >= rank:
            return min(hist_upper(lower), maximum)
    return maximum


# ---- machine and build ----

def machine_info(bindir, profile_name, argv):
    info = {}
    info["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    info["profile"] = profile_name
    info["command"] = " ".join(argv)
    info["nproc"] = os.cpu_count()
    with open("/proc/meminfo") as f:
        mem = next(l for l in f if l.startswith("MemTotal:"))
    info["mem_total_gib"] = round(int(mem.split()[1]) / 1024 / 1024, 1)
    with open("/proc/cpuinfo") as f:
        models = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
    info["cpu_model"] = models[0] if models else "unknown"
    info["kernel"] = platform.release()
    try:
        with open("/etc/os-release") as f:
            osr = dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l)
        info["os"] = osr.get("PRETTY_NAME", "").strip('"')
    except OSError:
        info["os"] = "unknown"
    info["open_files_limit"] = int(subprocess.run(["sh", "-c", "ulimit -n"], capture_output=True,
                                                  text=True).stdout.strip() or 0)
    cache = Path(bindir).resolve().parent / "CMakeCache.txt"
    if cache.exists():
        for line in cache.read_text().splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                info["build_type"] = line.split("=", 1)[1]
            if line.startswith("CMAKE_C_COMPILER:"):
                info["compiler"] = line.split("=", 1)[1]
            if line.startswith("TERN_SANITIZE:"):
                info["sanitize"] = line.split("=", 1)[1]
    git = subprocess.run(["git", "-C", str(SOURCE_DIR), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    info["git"] = git.stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(SOURCE_DIR), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True)
    info["git_modified_files"] = len(dirty.stdout.splitlines())
    info["bin"] = str(Path(bindir).resolve())
    return info


# ---- scenario: rtt ----

RTT_FIELDS = ["scenario", "clients", "interval_ms", "metric", "count", "elapsed_s",
              "rate_per_s", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
              "errors", "missing_pushes", "client_cpu_pct", "server_cpu_pct",
              "unattributed_cpu_pct", "attempts"]


def run_rtt_once(ctx, cluster, clients, interval, requests, attempt):
    """One tern-loadgen rtt run: (its two rows, the CPU meter's figures)."""
    args = ["rtt", "--port", cluster.gate_port(), "--clients", clients,
            "--interval-ms", interval, "--requests", requests, "--prefix", f"rt{attempt}-",
            "--timeout", ctx.bound(120)]
    lg = LoadGen(ctx.bindir, args, ctx.tmp / f"rtt-{clients}-{interval}-{attempt}.log")
    groups = server_groups(cluster)
    groups["loadgen"] = [lg.proc.pid]
    meter = CpuMeter(groups)
    meter.start()
    code = lg.finish(timeout=ctx.bound(150))
    cpu = meter.stop()
    got = lg.csv_rows()
    if code != 0 or len(got) != 2:
        raise BenchError(f"rtt failed (status {code}); see {lg.logfile.name}")
    return got, cpu


def scenario_rtt(ctx, cluster):
    rows = []
    for clients, interval, requests in ctx.p["rtt"]:
        log(f"rtt: {clients} client(s), {interval} ms between requests, {requests} requests")
        for attempt in range(1, ctx.p["attempts"] + 1):
            got, cpu = run_rtt_once(ctx, cluster, clients, interval, requests, attempt)
            if cpu["unattributed"] <= NOISE_PCT or attempt == ctx.p["attempts"]:
                break
            log(f"  other work on the machine ({cpu['unattributed']:.0f}% of a core): again")
            ctx.pause_for_quiet(server_groups(cluster))
        for r in got:
            r["server_cpu_pct"] = f"{sum(cpu[t] for t in SERVER_TYPES):.1f}"
            r["unattributed_cpu_pct"] = f"{cpu['unattributed']:.1f}"
            r["attempts"] = attempt
            rows.append(r)
            log(f"  {r['metric']}: p50 {r['p50_us']} us, p99 {r['p99_us']} us, "
                f"{r['rate_per_s']}/s")
        ctx.check(all(int(r["errors"]) == 0 and int(r["missing_pushes"]) == 0 for r in got),
                  "rtt: errors or missing pushes")
    write_csv(ctx.out / "rtt.csv", RTT_FIELDS, rows)


# ---- scenario: fanout ----

FANOUT_FIELDS = ["shape", "rooms", "members", "senders", "procs", "step", "offered_per_s",
                 "offered_deliveries_per_s", "secs", "offered", "sent", "skipped", "refused",
                 "acked", "errors", "expected", "delivered", "lost", "delivered_per_s",
                 "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms", "kicks",
                 "disconnects", "drain_s", "cpu_gate_pct", "cpu_connector_pct", "cpu_chat_pct",
                 "cpu_registry_pct", "cpu_loadgen_pct", "cpu_softirq_pct", "cpu_machine_pct",
                 "cpu_unattributed_pct", "attempts", "saturated"]

SUMMED = ["offered", "sent", "skipped", "refused", "acked", "errors", "expected", "delivered",
          "lost", "kicks", "disconnects"]


def merge_step(shape, rooms, members, procs, rate, secs, results, cpu):
    """One fanout.csv row from the rows and histograms of every loadgen process."""
    row = {"shape": shape, "rooms": rooms, "members": members, "procs": procs}
    first = results[0][0]
    row["senders"] = sum(int(r["senders"]) for r, _ in results)
    row["step"] = first["step"]
    row["offered_per_s"] = f"{rate:.1f}"
    row["offered_deliveries_per_s"] = f"{rate * members:.0f}"
    row["secs"] = secs
    for k in SUMMED:
        row[k] = sum(int(r[k]) for r, _ in results)
    row["delivered_per_s"] = f"{sum(float(r['delivered_per_s']) for r, _ in results):.0f}"
    row["drain_s"] = f"{max(float(r['drain_s']) for r, _ in results):.3f}"
    hist = {}
    for _, h in results:
        for lower, count in h.items():
            hist[lower] = hist.get(lower, 0) + count
    maximum = max(int(round(float(r["max_ms"]) * 1000)) for r, _ in results)
    for name, pct in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p999_ms", 99.9),
                      ("max_ms", 100)):
        row[name] = f"{hist_percentile(hist, pct, maximum) / 1000:.3f}"
    total = sum(hist.values())
    row["mean_ms"] = f"{sum(float(r['mean_ms']) * sum(h.values()) for r, h in results) / total:.3f}" \
        if total else "0"
    for g in ("gate", "connector", "chat", "registry", "loadgen", "softirq", "machine",
              "unattributed"):
        row[f"cpu_{g}_pct"] = f"{cpu.get(g, 0.0):.1f}"
    return row


def saturated(row, stop_p99_ms):
    offered = max(1, row["offered"])
    expected = max(1, row["expected"])
    not_done = (row["skipped"] + row["refused"] + row["errors"]) / offered
    lost = row["lost"] / expected
    # Behind, and not just for a moment: the tail took over a second to arrive.
    slow = (float(row["delivered_per_s"]) < 0.9 * float(row["offered_deliveries_per_s"]) and
            float(row["drain_s"]) > 1.0)
    return (not_done > 0.01 or lost > 0.01 or float(row["p99_ms"]) > stop_p99_ms or slow or
            row["disconnects"] > 0 or row["kicks"] > 0)


def scenario_fanout(ctx, cluster):
    rows = []
    for rooms, members in ctx.p["shapes"]:
        shape = f"{rooms}x{members}"
        procs = ctx.p["fanout_procs"]
        if rooms % procs:
            procs = 1
        clients = rooms * members // procs
        log(f"fanout {shape}: {rooms * members} clients in {procs} loadgen process(es)")
        gens = []
        try:
            for i in range(procs):
                args = ["fanout", "--port", cluster.gate_port(), "--clients", clients,
                        "--members", members, "--base", i * clients, "--prefix", f"f{shape}-",
                        "--control", "--size", ctx.p["size"], "--drain-s", ctx.p["drain_s"],
                        "--timeout", ctx.bound(600)]
                gens.append(LoadGen(ctx.bindir, args, ctx.tmp / f"fanout-{shape}-{i}.log"))
            for g in gens:
                g.wait_line("# ready", ctx.bound(120))
            rows += run_fanout_steps(ctx, cluster, gens, shape, rooms, members)
        finally:
            for g in gens:
                g.finish(timeout=30)
                g.kill()
        cluster.check_alive()
    write_csv(ctx.out / "fanout.csv", FANOUT_FIELDS, rows)


def run_fanout_step(ctx, gens, marks, groups, shape, rooms, members, rate):
    """One step on every loadgen process at once: the merged fanout.csv row."""
    secs = ctx.p["step_s"]
    meter = CpuMeter(groups)
    for g in gens:
        g.send(f"step {rate / len(gens)} {secs}")
    meter.start()
    time.sleep(secs)
    cpu = meter.stop()
    results = []
    for k, g in enumerate(gens):
        i, line = g.wait_line("fanout,", secs + 90, marks[k])
        j, hline = g.wait_line("# hist", 30, i)
        marks[k] = j + 1
        row = next(csv.DictReader(io.StringIO(g.header() + "\n" + line)))
        parts = hline.split(" ", 3)
        results.append((row, hist_parse(parts[3] if len(parts) > 3 else "")))
    return merge_step(shape, rooms, members, len(gens), rate, secs, results, cpu)


def run_fanout_steps(ctx, cluster, gens, shape, rooms, members):
    rows = []
    groups = server_groups(cluster)
    groups["loadgen"] = [g.proc.pid for g in gens]
    marks = [len(g.lines) for g in gens]
    for deliveries in ctx.p["deliveries"]:
        rate = deliveries / members
        if ctx.left() - ctx.reserve < ctx.p["step_s"] + 20:
            log("fanout: out of time, stopping the steps here")
            ctx.check(not ctx.smoke, "fanout: out of time")
            break
        for attempt in range(1, ctx.p["attempts"] + 1):
            row = run_fanout_step(ctx, gens, marks, groups, shape, rooms, members, rate)
            noise = float(row["cpu_unattributed_pct"])
            if noise <= NOISE_PCT or attempt == ctx.p["attempts"] or row["disconnects"]:
                break
            log(f"  {rate:>7.1f} msg/s: other work on the machine ({noise:.0f}% of a core): "
                f"again")
            ctx.pause_for_quiet(groups)
        row["attempts"] = attempt
        row["saturated"] = int(saturated(row, 1000.0))
        rows.append(row)
        log(f"  {rate:>7.1f} msg/s ({deliveries} deliveries/s) offered: "
            f"{row['delivered_per_s']:>7} delivered/s, "
            f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, max {row['max_ms']} ms, "
            f"lost {row['lost']}, cpu conn {row['cpu_connector_pct']}% "
            f"chat {row['cpu_chat_pct']}% loadgen {row['cpu_loadgen_pct']}% "
            f"softirq {row['cpu_softirq_pct']}% machine {row['cpu_machine_pct']}% "
            f"(unattributed {row['cpu_unattributed_pct']}%)")
        # The servers promise no silent loss: a client that falls behind is kicked.
        ctx.check(row["lost"] == 0 or row["kicks"] > 0 or row["disconnects"] > 0,
                  f"fanout {shape} step {row['step']}: {row['lost']} deliveries lost "
                  f"without a kick or disconnect")
        if ctx.smoke:
            ctx.check(not row["saturated"] and row["lost"] == 0 and row["errors"] == 0,
                      f"fanout {shape} step {row['step']}: a tiny load was not carried "
                      f"cleanly: {row}")
        if row["saturated"]:
            break
    return rows


# ---- scenario: connections ----

CONN_FIELDS = ["phase", "connections", "loadgen_procs", "gate_rss_kib", "connector_rss_kib",
               "chat_rss_kib", "registry_rss_kib", "servers_rss_kib",
               "connector_bytes_per_conn", "chat_bytes_per_conn", "servers_bytes_per_conn",
               "loadgen_rss_kib", "loadgen_bytes_per_conn", "kernel_slab_kib",
               "kernel_slab_bytes_per_conn",
               "sessions", "chat_members",
               "enter_per_s", "connect_p50_ms", "connect_p99_ms", "cpu_gate_pct",
               "cpu_connector_pct", "cpu_chat_pct", "cpu_registry_pct", "cpu_loadgen_pct",
               "cpu_softirq_pct", "cpu_machine_pct", "cpu_unattributed_pct"]


def rss_by_type(cluster):
    return {t: sum(rss_kib(s.proc.pid) for s in cluster.by_type(t)) for t in SERVER_TYPES}


def baseline(cluster):
    """Memory before any client: the servers' RSS by type, and the kernel's slab."""
    base = rss_by_type(cluster)
    base["slab"] = slab_kib()
    return base


def slab_kib():
    """Kernel slab memory, KiB, machine-wide (/proc/meminfo): where the kernel keeps
    sockets, files and epoll entries. On loopback it holds both ends of every connection
    (the load generator's too), and other processes move it a little."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return 0


def connections_row(ctx, cluster, phase, connections, gens, base, enter_rows):
    time.sleep(ctx.p["settle_s"])
    groups = server_groups(cluster)
    groups["loadgen"] = [g.proc.pid for g in gens]
    for attempt in range(1, ctx.p["attempts"] + 1):
        meter = CpuMeter(groups)
        meter.start()
        time.sleep(ctx.p["idle_window_s"])
        cpu = meter.stop()
        if cpu["unattributed"] <= NOISE_PCT or attempt == ctx.p["attempts"]:
            break
        ctx.pause_for_quiet(groups)
    rss = rss_by_type(cluster)
    row = {"phase": phase, "connections": connections, "loadgen_procs": len(gens)}
    for t in SERVER_TYPES:
        row[f"{t}_rss_kib"] = rss[t]
    row["servers_rss_kib"] = sum(rss.values())
    lg_rss = sum(rss_kib(g.proc.pid) for g in gens if g.proc.poll() is None)
    row["loadgen_rss_kib"] = lg_rss
    def per(now_kib, then_kib):
        return f"{(now_kib - then_kib) * 1024 / connections:.0f}" if connections else ""

    row["connector_bytes_per_conn"] = per(rss["connector"], base["connector"])
    row["chat_bytes_per_conn"] = per(rss["chat"], base["chat"])
    row["servers_bytes_per_conn"] = per(sum(rss.values()),
                                        sum(base[t] for t in SERVER_TYPES))
    row["loadgen_bytes_per_conn"] = f"{lg_rss * 1024 / connections:.0f}" if connections else ""
    row["kernel_slab_kib"] = slab_kib()
    row["kernel_slab_bytes_per_conn"] = per(row["kernel_slab_kib"], base["slab"])
    row["sessions"] = int(cluster.metric_sum("connector", "tern_connector_sessions"))
    row["chat_members"] = int(cluster.metric_sum("chat", "tern_chat_members"))
    if enter_rows:
        secs = max(float(r["elapsed_s"]) for r in enter_rows)
        row["enter_per_s"] = f"{sum(int(r['entered']) for r in enter_rows) / secs:.0f}"
        # The slowest process's percentiles (a bound; the processes are not merged).
        row["connect_p50_ms"] = max(float(r["connect_p50_ms"]) for r in enter_rows)
        row["connect_p99_ms"] = max(float(r["connect_p99_ms"]) for r in enter_rows)
    for g in ("gate", "connector", "chat", "registry", "loadgen", "softirq", "machine",
              "unattributed"):
        row[f"cpu_{g}_pct"] = f"{cpu.get(g, 0.0):.1f}"
    return row


def wait_quiet(ctx, cluster, timeout):
    """Waits (bounded) until the connectors hold no session and the chat servers no
    member, and the servers' CPU use has fallen below 5% of a core in a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meter = CpuMeter(server_groups(cluster))
        meter.start()
        time.sleep(1)
        busy = sum(v for k, v in meter.stop().items() if k in SERVER_TYPES)
        if (busy < 5 and cluster.metric_sum("connector", "tern_connector_sessions") == 0 and
                cluster.metric_sum("chat", "tern_chat_members") == 0):
            return True
    return False


def scenario_connections(ctx, cluster):
    rows = []
    gens = []
    total = 0
    members = ctx.p["idle_members"]
    base = baseline(cluster)
    rows.append(connections_row(ctx, cluster, "baseline", 0, [], base, []))
    try:
        for level in ctx.p["levels"]:
            new = []
            while total < level:
                n = min(ctx.p["per_proc"], level - total)
                args = ["idle", "--port", cluster.gate_port(), "--clients", n,
                        "--members", members, "--base", total, "--prefix", "c",
                        "--control", "--hold-s", ctx.bound(900), "--timeout", ctx.bound(900)]
                new.append(LoadGen(ctx.bindir, args, ctx.tmp / f"idle-{total}.log"))
                total += n
            enter_rows = []
            for g in new:
                g.wait_line("# ready", ctx.bound(240))
                enter_rows += g.csv_rows()
            gens += new
            row = connections_row(ctx, cluster, "connected", total, gens, base, enter_rows)
            rows.append(row)
            log(f"connections {total}: servers {row['servers_rss_kib']} KiB "
                f"({row['servers_bytes_per_conn']} B/conn; connectors "
                f"{row['connector_bytes_per_conn']} B/conn), sessions {row['sessions']}, "
                f"{row['enter_per_s']} entered/s, idle cpu connectors "
                f"{row['cpu_connector_pct']}%")
            ctx.check(row["sessions"] == total,
                      f"connectors report {row['sessions']} sessions, expected {total}")
            ctx.check(row["chat_members"] == total,
                      f"chat servers report {row['chat_members']} members, expected {total}")
        cluster.check_alive()
        codes = [g.finish(timeout=ctx.bound(120)) for g in gens]
        ctx.check(all(c == 0 for c in codes), f"idle loadgens exited with {codes}")
        ctx.check(wait_quiet(ctx, cluster, ctx.bound(60)),
                  "the servers did not settle after every client left")
        after = connections_row(ctx, cluster, "after", 0, [], base, [])
        after["connections"] = 0
        rows.append(after)
        log(f"after every client left: servers {after['servers_rss_kib']} KiB, "
            f"sessions {after['sessions']}")
    finally:
        for g in gens:
            g.kill()
    write_csv(ctx.out / "connections.csv", CONN_FIELDS, rows)


# ---- output ----

def write_csv(path, fields, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    log(f"wrote {path}")


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def summary(out):
    """summary.md: the main figures of the CSV files in out as Markdown tables (what
    docs/benchmarks.md quotes)."""
    parts = []
    ms = lambda us: f"{int(us) / 1000:.2f}"
    if (out / "rtt.csv").exists():
        rows = read_csv(out / "rtt.csv")
        resp = [r for r in rows if r["metric"] == "response"]
        push = {r["clients"]: r for r in rows if r["metric"] == "push"}
        parts.append("### Request round trip (send -> {} response; send -> own onChat)\n\n" + md_table(
            ["clients", "pause ms", "requests/s", "response p50 ms", "p90", "p99", "max",
             "onChat p50 ms", "p99", "server CPU %"],
            [[r["clients"], r["interval_ms"], r["rate_per_s"], ms(r["p50_us"]),
              ms(r["p90_us"]), ms(r["p99_us"]), ms(r["max_us"]),
              ms(push[r["clients"]]["p50_us"]), ms(push[r["clients"]]["p99_us"]),
              r["server_cpu_pct"]] for r in resp]))
    if (out / "fanout.csv").exists():
        rows = read_csv(out / "fanout.csv")
        for shape in dict.fromkeys(r["shape"] for r in rows):
            sel = [r for r in rows if r["shape"] == shape]
            parts.append(f"### Fan-out {shape} (rooms x members)\n\n" + md_table(
                ["msg/s", "offered deliveries/s", "delivered/s", "p50 ms", "p90", "p99",
                 "max", "lost", "CPU % connectors", "chat", "loadgen", "softirq",
                 "machine", "unattributed", "saturated"],
                [[r["offered_per_s"], r["offered_deliveries_per_s"], r["delivered_per_s"],
                  r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"], r["lost"],
                  r["cpu_connector_pct"], r["cpu_chat_pct"], r["cpu_loadgen_pct"],
                  r["cpu_softirq_pct"], r["cpu_machine_pct"], r["cpu_unattributed_pct"],
                  "yes" if r["saturated"] == "1" else ""] for r in sel]))
    if (out / "connections.csv").exists():
        rows = read_csv(out / "connections.csv")
        mib = lambda kib: f"{int(kib) / 1024:.1f}"
        parts.append("### Idle connections\n\n" + md_table(
            ["phase", "connections", "servers RSS MiB", "connectors MiB", "chat MiB",
             "B/conn connectors", "B/conn chat", "B/conn all servers",
             "B/conn kernel slab", "B/conn loadgen", "entered/s", "connect p50 ms",
             "p99", "idle CPU % connectors", "machine"],
            [[r["phase"], r["connections"], mib(r["servers_rss_kib"]),
              mib(r["connector_rss_kib"]), mib(r["chat_rss_kib"]),
              r["connector_bytes_per_conn"], r["chat_bytes_per_conn"],
              r["servers_bytes_per_conn"], r["kernel_slab_bytes_per_conn"],
              r["loadgen_bytes_per_conn"], r["enter_per_s"], r["connect_p50_ms"],
              r["connect_p99_ms"], r["cpu_connector_pct"], r["cpu_machine_pct"]]
             for r in rows]))
    (out / "summary.md").write_text("\n".join(parts))


def gp_col(fields, name):
    return fields.index(name) + 1


def plot_script(out):
    """A gnuplot script for the CSV files present in out (saved beside them)."""
    lines = ['set datafile separator ","',
             'set terminal pngcairo size 900,560 font "sans,10"',
             'set grid', 'set key top left opaque box']
    fan = "fanout.csv"
    shapes = []
    if (out / fan).exists():
        with open(out / fan) as f:
            shapes = list(dict.fromkeys(r["shape"] for r in csv.DictReader(f)))
    if shapes:
        c = lambda n: gp_col(FANOUT_FIELDS, n)
        sel = lambda shape, n: f'(strcol(1) eq "{shape}" ? column({c(n)}) : NaN)'
        x = lambda shape: sel(shape, "offered_deliveries_per_s")
        lines += ['set logscale xy',
                  'set xlabel "offered deliveries/s (chat messages/s x room size)"',
                  'set ylabel "end-to-end latency, ms (send -> onChat at each member)"',
                  'set title "Room fan-out: latency vs offered rate"',
                  'set output "fanout_latency.png"']
        series = []
        for i, shape in enumerate(shapes):
            for j, (col, what) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"),
                                             ("max_ms", "max"))):
                series.append(f'"{fan}" skip 1 using {x(shape)}:{sel(shape, col)} with '
                              f'linespoints lc {i + 1} dt {j + 1} pt {j + 5} '
                              f'title "{shape} {what}"')
        lines.append("plot " + ", \\\n     ".join(series))
        lines += ['set ylabel "deliveries/s (onChat pushes received)"',
                  'set title "Room fan-out: throughput vs offered rate"',
                  'set output "fanout_throughput.png"']
        series = []
        for i, shape in enumerate(shapes):
            series.append(f'"{fan}" skip 1 using {x(shape)}:{sel(shape, "delivered_per_s")} '
                          f'with linespoints lc {i + 1} pt 7 title "{shape} delivered"')
            series.append(f'"{fan}" skip 1 using {x(shape)}:'
                          f'{sel(shape, "offered_deliveries_per_s")} with lines lc {i + 1} '
                          f'dt 2 title "{shape} offered (rate x members)"')
        lines.append("plot " + ", \\\n     ".join(series))
        lines += ['unset logscale y', 'set yrange [0:*]', 'set key top left',
                  'set ylabel "CPU, % of one core (2 cores = 200%)"',
                  f'set title "Room fan-out {shapes[0]}: CPU by process kind"',
                  'set output "fanout_cpu.png"']
        series = []
        for i, g in enumerate(("connector", "chat", "gate", "registry", "loadgen", "softirq",
                               "machine")):
            series.append(f'"{fan}" skip 1 using {x(shapes[0])}:{sel(shapes[0], f"cpu_{g}_pct")}'
                          f' with linespoints lc {i + 1} pt 7 title "{g}"')
        lines.append("plot " + ", \\\n     ".join(series))
        lines += ['unset logscale', 'set yrange [*:*]']
    conn = "connections.csv"
    if (out / conn).exists():
        c = lambda n: gp_col(CONN_FIELDS, n)
        sel = lambda n, scale: f'(strcol(1) ne "after" ? column({c(n)}) / {scale} : NaN)'
        lines += ['set xlabel "idle connections (sessions in rooms)"',
                  'set ylabel "resident memory, MiB"',
                  'set y2label "server bytes per connection"', 'set y2tics', 'set ytics nomirror',
                  'set yrange [0:*]', 'set y2range [0:*]', 'set key outside below horizontal',
                  'set title "Server memory (VmRSS) vs connections"',
                  'set output "rss_vs_connections.png"']
        series = [f'"{conn}" skip 1 using {sel("connections", 1)}:{sel(k + "_rss_kib", 1024)} '
                  f'with linespoints lc {i + 1} pt 7 title "{t}"'
                  for i, (k, t) in enumerate((("servers", "all servers"),
                                              ("connector", "connectors"),
                                              ("chat", "chat servers"),
                                              ("gate", "gate")))]
        series.append(f'"{conn}" skip 1 using {sel("connections", 1)}:'
                      f'{sel("servers_bytes_per_conn", 1)} axes x1y2 with linespoints lc 7 '
                      f'dt 2 pt 4 title "all servers, bytes/connection (right)"')
        lines.append("plot " + ", \\\n     ".join(series))
        lines += ['unset y2tics', 'unset y2label', 'set ytics mirror', 'set yrange [0:*]',
                  'set ylabel "CPU, % of one core (2 cores = 200%)"',
                  'set key top left',
                  'set title "Idle connections: CPU spent on heartbeats alone"',
                  'set output "idle_cpu_vs_connections.png"']
        series = [f'"{conn}" skip 1 using {sel("connections", 1)}:{sel(f"cpu_{g}_pct", 1)} '
                  f'with linespoints lc {i + 1} pt 7 title "{g}"'
                  for i, g in enumerate(("connector", "chat", "gate", "loadgen", "machine"))]
        lines.append("plot " + ", \\\n     ".join(series))
    return "\n".join(lines) + "\n"


def plot(out):
    """PNG plots of the CSV files in out, drawn by gnuplot from out/plots.gp."""
    if shutil.which("gnuplot") is None:
        log("gnuplot not found (scripts/install-deps.sh installs gnuplot-nox): no plots")
        return False
    script = out / "plots.gp"
    script.write_text(plot_script(out))
    r = subprocess.run(["gnuplot", script.name], cwd=out, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise BenchError(f"gnuplot failed:\n{r.stderr}")
    log(f"plots in {out}")
    return True


# ---- main ----

def check_usage(bindir):
    """tern-loadgen answers --help with its usage and a bad option with status 2."""
    exe = str(Path(bindir) / "tern-loadgen")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or "usage: tern-loadgen" not in r.stdout:
        raise SystemExit(f"bench: tern-loadgen --help failed ({r.returncode}): {r.stderr}")
    r = subprocess.run([exe, "fanout", "--members", "0"], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 2:
        raise SystemExit(f"bench: tern-loadgen accepted --members 0 (status {r.returncode})")


class Context:
    def __init__(self, args, profile):
        self.p = profile
        self.smoke = args.smoke
        self.bindir = args.bin
        self.out = args.out
        self.tmp = args.tmp
        self.deadline = time.monotonic() + profile["deadline_s"]
        # Time fan-out leaves for the connections scenario when that one comes after it.
        names = args.scenarios.split(",")
        later = "fanout" in names and "connections" in names[names.index("fanout"):]
        self.reserve = profile["connections_s"] if later else 0
        self.problems = []

    def left(self):
        return self.deadline - time.monotonic()

    def bound(self, seconds):
        """seconds, but never past the run's deadline (at least 5)."""
        return max(5, int(min(seconds, self.left())))

    def pause_for_quiet(self, groups, timeout=20):
        """Before measuring again: waits (at most timeout s, and never past the deadline)
        until the machine's busy time outside our processes falls below NOISE_PCT."""
        end = time.monotonic() + min(timeout, max(0, self.left() - 120))
        while time.monotonic() < end:
            meter = CpuMeter(groups)
            meter.start()
            time.sleep(1)
            if meter.stop()["unattributed"] <= NOISE_PCT:
                return

    def check(self, ok, what):
        if not ok:
            log(f"PROBLEM: {what}")
            self.problems.append(what)


def wait_for_quiet_machine(timeout, limit_pct=15.0):
    """The machine's busy CPU (percent of one core) over a few seconds, waiting (bounded)
    for other work to end first: figures taken next to someone's build mean nothing."""
    deadline = time.monotonic() + timeout
    while True:
        meter = CpuMeter({})
        meter.start()
        time.sleep(3)
        busy = meter.stop()["machine"]
        if busy <= limit_pct or time.monotonic() >= deadline:
            return busy
        log(f"the machine is busy ({busy:.0f}% of a core) with other work; waiting")


def set_niceness(target):
    """Sets this process's niceness (the cluster and the load generators inherit it);
    returns the niceness in force."""
    now = os.nice(0)
    if target != now:
        try:
            now = os.nice(target - now)
        except PermissionError:
            log(f"cannot set niceness {target} (not root): running at {now}")
    return now


def default_out():
    day = datetime.date.today().isoformat()
    out = BENCH_DIR / "results" / day
    n = 2
    while out.exists():
        out = BENCH_DIR / "results" / f"{day}-{n}"
        n += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="under 2 minutes")
    mode.add_argument("--smoke", action="store_true", help="seconds; checks, for ctest")
    ap.add_argument("--bin", default=str(SOURCE_DIR / "build" / "release" / "bin"),
                    help="directory of the tern-* servers and tern-loadgen")
    ap.add_argument("--out", type=Path, help="results directory (default bench/results/<date>)")
    ap.add_argument("--scenarios", default="rtt,fanout,connections")
    ap.add_argument("--connectors", type=int, help="connectors in the cluster")
    ap.add_argument("--chats", type=int, help="chat servers in the cluster")
    ap.add_argument("--fanout-procs", type=int, help="loadgen processes for fan-out")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--nice", type=int, default=-10,
                    help="niceness for this driver and every process it starts (inherited), "
                         "so that other work on a shared machine yields to the benchmark; "
                         "needs root below 0 [-10]")
    args = ap.parse_args()

    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    profile = dict(PROFILES[name])
    for key in ("connectors", "chats", "fanout_procs"):
        if getattr(args, key) is not None:
            profile[key] = getattr(args, key)
    for b in ("tern-gate", "tern-connector", "tern-chat", "tern-registry", "tern-loadgen"):
        if not os.access(Path(args.bin) / b, os.X_OK):
            raise SystemExit(f"bench: {Path(args.bin) / b} is not built "
                             f"(scripts/build.sh release, or --bin)")
    args.out = args.out or default_out()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.tmp = (BENCH_DIR / "results" / "tmp" / f"{name}-{stamp}-{os.getpid()}") \
        if not args.smoke else args.out / "tmp"
    args.tmp.mkdir(parents=True, exist_ok=True)

    if args.smoke:
        check_usage(args.bin)
    ctx = Context(args, profile)
    info = machine_info(args.bin, name, ["bench/run.py"] + sys.argv[1:])
    info["nice"] = set_niceness(args.nice)
    info["cluster"] = f"1 registry, 1 gate, {profile['connectors']} connectors, " \
                      f"{profile['chats']} chat servers"
    if profile["quiet_wait_s"] > 0:
        busy = wait_for_quiet_machine(timeout=profile["quiet_wait_s"])
        info["background_cpu_pct"] = f"{busy:.1f}"
        if busy > 15:
            log(f"WARNING: the machine was busy with other work ({busy:.0f}% of a core) "
                f"when the run started: see cpu_unattributed_pct before trusting a figure")
    (args.out / "machine.txt").write_text("".join(f"{k}: {v}\n" for k, v in info.items()))
    log(f"{name} run into {args.out} ({info['cpu_model']}, {info['nproc']} cores, "
        f"{info['build_type'] if 'build_type' in info else '?'} build)")

    scenarios = {"rtt": scenario_rtt, "fanout": scenario_fanout,
                 "connections": scenario_connections}
    max_conn = max(10000, max(profile["levels"]) // profile["connectors"] * 2)
    status = 0
    for sname in args.scenarios.split(","):
        if sname not in scenarios:
            raise SystemExit(f"bench: unknown scenario {sname}")
        cluster = Cluster(args.bin, args.tmp / sname, profile["connectors"], profile["chats"],
                          max_conn)
        cluster.start()
        try:
            scenarios[sname](ctx, cluster)
        except BenchError as e:
            ctx.check(False, f"{sname}: {e}")
            status = 1
        finally:
            try:
                cluster.stop()
            except BenchError as e:
                ctx.check(False, str(e))
    summary(args.out)
    if not args.no_plots:
        plot(args.out)
    if ctx.problems:
        log(f"FAILED: {len(ctx.problems)} problem(s): " + "; ".join(ctx.problems))
        return 1
    log(f"done in {profile['deadline_s'] - ctx.left():.0f} s; results in {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
