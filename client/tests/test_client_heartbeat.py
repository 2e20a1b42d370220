"""Heartbeats with the real connector (1 s interval): they keep an idle session alive
(the connector closes a session that sends nothing for 2 s, the client one that hears
nothing for 2 s), and they let the client notice a connector that went silent."""
import os
import re
import signal
import time

from conftest import probe_args, run, start


def test_idle_session_survives_past_twice_the_heartbeat(tern):
    topo = tern.topology(connectors=1, chats=1, options={"connector": {"heartbeat": 1}})
    cluster = tern.cluster(topo)
    code, out = run(probe_args(cluster, "idle", "--idle-ms", 3500, "--timeout", 30), timeout=60)
    assert code == 0, out
    assert "heartbeat_ms 1000" in out, out
    m = re.search(r"heartbeats sent=(\d+) received=(\d+) disconnects=0", out)
    assert m, out
    # One heartbeat each way per second, the first from the server at the ACK.
    assert int(m.group(1)) >= 3 and int(m.group(2)) >= 3, out
    assert "ok idle" in out, out


def test_silent_connector_is_detected_by_the_heartbeat_timeout(tern, procs):
    # A stopped connector sends nothing: the client gives up on it after twice the
    # interval (2 s), and comes back once the connector runs again.
    topo = tern.topology(connectors=1, chats=1, options={"connector": {"heartbeat": 1}})
    cluster = tern.cluster(topo)
    connector = cluster.server("connector-server-1")
    p = start(procs, probe_args(cluster, "reconnect", "--backoff-max-ms", 500, "--timeout", 60))
    p.wait_line(r"^connected \d+$", 30)
    t0 = time.monotonic()
    os.kill(connector.proc.pid, signal.SIGSTOP)
    try:
        p.wait_line(r"^disconnected heartbeat timeout", 10)
        waited = time.monotonic() - t0
    finally:
        os.kill(connector.proc.pid, signal.SIGCONT)
    # Up to one interval until the client's next heartbeat, then two without an answer.
    assert 1.0 <= waited <= 6.0, f"detected after {waited:.1f}s:\n{p.output()}"
    p.wait_line(r"^reconnected \d+$", 30)
    p.wait_line(r"^ok reconnect", 40)
    assert p.wait(10) == 0, p.output()
