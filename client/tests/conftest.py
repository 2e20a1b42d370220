"""Fixtures and helpers for the client integration tests: the real servers through
tests/lib/harness.py (which starts them with scripts/cluster.py), and the client
programs of this directory, tn_cli_probe and tern-chat-cli, run as child processes whose
output is read line by line with deadlines.

Environment (set by client/CMakeLists.txt):
  TERN_BIN         directory of tern-{gate,connector,chat,registry} and tern-chat-cli
  TN_CLI_PROBE     path of tn_cli_probe
  TERN_SOURCE_DIR  source tree
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SOURCE_DIR = Path(os.environ.get("TERN_SOURCE_DIR") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(SOURCE_DIR / "tests" / "lib"))

import harness  # noqa: E402

BIN_DIR = harness.BIN_DIR
CLI = str(BIN_DIR / "tern-chat-cli")
PROBE = os.environ.get("TN_CLI_PROBE") or str(BIN_DIR.parent / "client" / "tn_cli_probe")


@pytest.fixture
def tern(tmp_path):
    """A harness.ClusterFactory; at teardown every server is stopped and the test fails
    if one exited non-zero or printed a sanitizer report."""
    factory = harness.ClusterFactory(tmp_path)
    yield factory
    problems = factory.shutdown()
    if problems:
        pytest.fail(harness.describe_problems(problems), pytrace=False)


@pytest.fixture
def procs():
    """Client processes started by the test; killed at teardown if still running."""
    started = []
    yield started
    for p in started:
        p.kill()


class Proc:
    """A client program with its stdout and stderr read into one list of lines."""

    def __init__(self, argv, stdin=subprocess.DEVNULL, env=None):
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     env=harness.child_environment(env))
        self.lines = []
        self.ended = False
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def output(self):
        with self.cond:
            return "\n".join(self.lines)

    def wait_line(self, pattern, timeout):
        """The match of the first line (already printed or still to come) that matches
        the regular expression; AssertionError with the output when none has come when
        timeout seconds have passed or the program has ended."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                while seen < len(self.lines):
                    m = rx.search(self.lines[seen])
                    seen += 1
                    if m:
                        return m
                left = deadline - time.monotonic()
                if self.ended or left <= 0:
                    break
                self.cond.wait(left)
        raise AssertionError(f"no line matching {pattern!r} from {self.argv[0]} within "
                             f"{timeout}s (status {self.proc.poll()}):\n{self.output()}")

    def wait(self, timeout):
        """The exit status; AssertionError with the output when it is still running."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.argv[0]} still running after {timeout}s:\n"
                                 f"{self.output()}") from None
        self.reader.join(5)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)


def start(procs, argv, **kw):
    p = Proc(argv, **kw)
    procs.append(p)
    return p


def run(argv, timeout, stdin_text=None):
    """Runs a client program to completion: (status, combined output)."""
    r = subprocess.run([str(a) for a in argv], input=stdin_text, capture_output=True, text=True,
                       errors="replace", timeout=timeout, env=harness.child_environment())
    return r.returncode, r.stdout + r.stderr


def cli_args(cluster, name, room, *extra):
    host, port = cluster.gate_address()
    return [CLI, "--host", host, "--port", port, "--name", name, "--room", room, *extra]


def probe_args(cluster, scenario, *extra):
    host, port = cluster.gate_address()
    return [PROBE, scenario, "--host", host, "--port", port, *extra]


def connector_by_port(cluster, port):
    for sid in cluster.topology.ids("connector"):
        if cluster.client_address(sid)[1] == port:
            return sid
    raise KeyError(f"no connector on port {port}")


def kill_hard(cluster, sid):
    """SIGKILLs server sid (a crash, as far as its clients can tell) and takes it out of
    the cluster's end-of-test checks, after checking its output for sanitizer reports. A
    later cluster.spawn(sid) starts it again."""
    s = cluster.server(sid)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    s.reader.join(5)
    cluster.servers.remove(s)
    report = harness.sanitizer_report(s.output())
    assert report is None, f"{sid}: {report}\n{s.output()}"
