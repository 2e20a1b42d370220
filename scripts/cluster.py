#!/usr/bin/python3
"""Starts a tern cluster from a servers.json environment and stops it cleanly.

Used by the run command (scripts/run.sh) and by the integration tests. Each server is
started as `tern-<type> --env <env> --id <id> --config <file>`; its stderr is relayed with
the server id in front, and the launcher waits for each server's `ready` line before
starting the next kind. Ctrl-C (or SIGTERM) stops every child with SIGTERM, then SIGKILL
after a grace period.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

ORDER = ["registry", "chat", "connector", "gate"]


class Server:
    def __init__(self, sid, stype, argv, env=None, echo=True):
        self.id = sid
        self.type = stype
        self.argv = argv
        self.lines = []
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.echo = echo
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)
            if " ready" in line and line.split(": ", 1)[-1].startswith("ready"):
                self.ready.set()
            if self.echo:
                sys.stderr.write(f"[{self.id}] {line}\n")
                sys.stderr.flush()

    def output(self):
        with self.lock:
            return "\n".join(self.lines)

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.wait(0.05):
                return True
            if self.proc.poll() is not None:
                self.reader.join(1)
                return False
        return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)


def load_servers(config, env):
    with open(config) as f:
        doc = json.load(f)
    if env not in doc:
        raise SystemExit(f"{config}: no environment {env!r}")
    out = []
    for stype in ORDER:
        for entry in doc[env].get(stype, []):
            out.append((stype, entry))
    return out


def start_all(bindir, config, env, echo=True, ready_timeout=30, extra_env=None, environ=None):
    """Starts every server of environment env, kind by kind, waiting for ready lines.
    environ: the servers' whole environment (default: this process's), plus extra_env."""
    servers = []
    environ = dict(os.environ if environ is None else environ)
    if extra_env:
        environ.update(extra_env)
    try:
        for stype in ORDER:
            batch = []
            for t, entry in load_servers(config, env):
                if t != stype:
                    continue
                binary = os.path.join(bindir, f"tern-{stype}")
                if not os.access(binary, os.X_OK):
                    raise RuntimeError(f"{binary} is not built (entry {entry['id']})")
                argv = [binary, "--env", env, "--id", entry["id"], "--config", config]
                batch.append(Server(entry["id"], stype, argv, environ, echo))
            servers += batch
            for s in batch:
                if not s.wait_ready(ready_timeout):
                    raise RuntimeError(f"{s.id} did not become ready:\n{s.output()}")
    except BaseException:
        stop_all(servers)
        raise
    return servers


def stop_all(servers, grace=10.0):
    """SIGTERM to every child (front to back), then SIGKILL what is left after grace.
    Returns {id: exit status}."""
    for s in reversed(servers):
        s.stop()
    deadline = time.monotonic() + grace
    codes = {}
    for s in reversed(servers):
        left = max(0.0, deadline - time.monotonic())
        try:
            codes[s.id] = s.proc.wait(left)
        except subprocess.TimeoutExpired:
            s.stop(signal.SIGKILL)
            codes[s.id] = s.proc.wait()
        s.reader.join(2)
    return codes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="build/release/bin")
    ap.add_argument("--config", default="config/servers.json")
    ap.add_argument("--env", default="development")
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    servers = start_all(args.bin, args.config, args.env)
    gate = [e for t, e in load_servers(args.config, args.env) if t == "gate"]
    kinds = {}
    for s in servers:
        kinds[s.type] = kinds.get(s.type, 0) + 1
    summary = ", ".join(f"{n} {t}" for t, n in kinds.items())
    print(f"cluster: {len(servers)} servers running ({summary})", flush=True)
    if gate:
        print(f"cluster: open http://localhost:{gate[0]['clientPort']}/ in a browser", flush=True)
    print("cluster: Ctrl-C stops every server", flush=True)
    while not stop.is_set():
        for s in servers:
            if s.proc.poll() is not None:
                print(f"cluster: {s.id} exited with status {s.proc.returncode}", flush=True)
                servers.remove(s)
                break
        stop.wait(0.5)
    print("cluster: stopping", flush=True)
    codes = stop_all(servers)
    bad = {k: v for k, v in codes.items() if v != 0}
    print(f"cluster: stopped ({'all clean' if not bad else 'unclean: ' + str(bad)})", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
