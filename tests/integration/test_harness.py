"""Checks of the test harness itself, with fake server binaries (small python scripts): a
clean server passes, and a non-zero exit, a sanitizer report, a server that ignores SIGTERM
or never gets ready are each caught. Also the Prometheus parser and the port allocator.
Needs no tern binary."""
import os
import signal
import socket
import stat
import time

import pytest

import harness

FAKE_SERVER = r'''#!/usr/bin/python3
import os, signal, sys, time
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
sid = args.get("--id", "fake")
mode = os.environ.get("FAKE_MODE", "clean")
def log(msg):
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
    sys.stderr.write(f"{t} INFO {sid} main: {msg}\n")
    sys.stderr.flush()
stop = []
def on_signal(signum, frame):
    stop.append(signum)  # act in the main loop: writing from a handler can re-enter stderr
signal.signal(signal.SIGTERM, on_signal if mode != "stubborn" else signal.SIG_IGN)
signal.signal(signal.SIGINT, on_signal)
log("starting")
if mode != "never_ready":
    log("ready type=fake")
while not stop:
    time.sleep(0.02)
if mode == "asan":
    sys.stderr.write("==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\n")
if mode == "ubsan":
    sys.stderr.write("x.c:1:2: runtime error: signed integer overflow\n")
log("stopped")
sys.exit(3 if mode == "exit3" else 0)
'''


@pytest.fixture
def fake_bin(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for stype in harness.SERVER_TYPES:
        path = bindir / f"tern-{stype}"
        path.write_text(FAKE_SERVER)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bindir


def start_fake(tmp_path, fake_bin, mode, **kw):
    topo = harness.Topology(connectors=1, chats=1, gate=False)
    return harness.Cluster(topo, tmp_path, bindir=fake_bin, env={"FAKE_MODE": mode}).start(**kw)


def test_clean_servers_pass(tmp_path, fake_bin):
    cluster = start_fake(tmp_path, fake_bin, "clean")
    assert [s.id for s in cluster.servers] == ["registry-server-1", "chat-server-1",
                                               "connector-server-1"]
    assert all(len(harness.ready_lines(s)) == 1 for s in cluster.servers)
    assert cluster.stop() == []
    assert cluster.stop() == []  # idempotent


@pytest.mark.parametrize("mode,needle", [
    ("exit3", "exited with status 3"),
    ("asan", "sanitizer report (ERROR: AddressSanitizer)"),
    ("ubsan", "sanitizer report (runtime error:)"),
])
def test_bad_exits_are_reported(tmp_path, fake_bin, mode, needle):
    cluster = start_fake(tmp_path, fake_bin, mode)
    problems = cluster.stop()
    text = "\n".join(problems)
    assert needle in text and "---- stderr of chat-server-1 ----" in text, text


def test_server_ignoring_sigterm_is_killed_and_reported(tmp_path, fake_bin):
    cluster = start_fake(tmp_path, fake_bin, "stubborn")
    start = time.monotonic()
    problems = cluster.stop(grace=1.0)
    assert time.monotonic() - start < 5
    assert "still running 1s after SIGTERM; killed" in "\n".join(problems)
    assert all(s.proc.poll() is not None for s in cluster.servers)


def test_never_ready_fails_start_within_deadline(tmp_path, fake_bin):
    start = time.monotonic()
    with pytest.raises(AssertionError, match="did not become ready"):
        start_fake(tmp_path, fake_bin, "never_ready", ready_timeout=1.0)
    assert time.monotonic() - start < 5


def test_missing_binary_fails(tmp_path):
    topo = harness.Topology(connectors=0, chats=0, gate=False)
    with pytest.raises(AssertionError, match="not built"):
        harness.Cluster(topo, tmp_path, bindir=tmp_path / "nowhere").start()


def test_stop_with_sigint(tmp_path, fake_bin):
    cluster = start_fake(tmp_path, fake_bin, "clean")
    assert cluster.stop_server("chat-server-1", signal.SIGINT) == 0
    assert cluster.stop() == []


def test_child_environment_drops_tern_options(monkeypatch):
    monkeypatch.setenv("TERN_ID", "leaked")
    env = harness.child_environment({"TERN_PORT": "1"})
    assert "TERN_ID" not in env and env["TERN_PORT"] == "1"
    assert env["ASAN_OPTIONS"] == os.environ.get("ASAN_OPTIONS",
                                                 harness.SANITIZER_ENV_DEFAULTS["ASAN_OPTIONS"])


def test_parse_metrics():
    text = (
        "# HELP process_resident_memory_bytes Resident set size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes 1.2e+07\n"
        "# TYPE tern_kicks_total counter\n"
        'tern_kicks_total{reason="package too large"} 2\n'
        'tern_kicks_total{reason="a \\"quoted\\" \\\\ one\\n"} 1\n'
        "# TYPE tern_rpc_seconds histogram\n"
        'tern_rpc_seconds_bucket{target="chat",le="0.005"} 3\n'
        'tern_rpc_seconds_bucket{le="+Inf",target="chat"} 4\n'
        'tern_rpc_seconds_sum{target="chat"} 0.25 1700000000000\n'
    )
    s = harness.parse_metrics(text)
    assert harness.sample(s, "process_resident_memory_bytes") == 12e6
    assert harness.sample(s, "tern_kicks_total", reason="package too large") == 2
    assert harness.sample(s, "tern_kicks_total", reason='a "quoted" \\ one\n') == 1
    assert harness.sample(s, "tern_rpc_seconds_bucket", target="chat", le="+Inf") == 4
    assert harness.sample(s, "tern_rpc_seconds_sum", target="chat") == 0.25
    assert harness.sample_sum(s, "tern_kicks_total") == 3
    assert harness.metric_types(text)["tern_rpc_seconds"] == "histogram"
    with pytest.raises(ValueError):
        harness.parse_metrics("a 1\na 2\n")
    with pytest.raises(ValueError):
        harness.parse_metrics('a{b="c} 1\n')


def test_free_ports_are_distinct_and_bindable():
    ports = harness.free_ports(20)
    assert len(set(ports)) == 20
    for p in ports[:5]:
        s = socket.socket()
        s.bind(("127.0.0.1", p))
        s.close()


def test_log_line_parsing():
    rec = harness.parse_log_line(
        "2026-11-21T16:20:01.123Z INFO chat-server-1 main: ready type=chat port=6050")
    assert rec["id"] == "chat-server-1" and rec["module"] == "main"
    assert harness.log_fields(rec["message"]) == {"type": "chat", "port": "6050"}
    assert harness.log_fields('x err="a b" n=1') == {"err": "a b", "n": "1"}
    assert harness.parse_log_line("tern-chat: configuration error: x") is None
