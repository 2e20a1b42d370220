"""After its connector goes away, a client reconnects through the gate with backoff and
enters its room again. The connector is started again once the client has noticed, so
the tests do not depend on how soon the gate stops naming a dead connector; the
restarted connector's new incarnation makes the chat servers drop the members it had
(so the name is free again in the room).

Two ways to lose a connector:
- SIGKILL (a crash: no close frame, no kick);
- SIGTERM (a drain): the connector kicks its clients with a reason and leaves their
  rooms, so the client shows the kick too.
"""
from conftest import cli_args, connector_by_port, kill_hard, probe_args, run, start


def test_probe_comes_back_through_the_gate_after_a_crash(tern, procs):
    cluster = tern.cluster(connectors=2, chats=1)
    p = start(procs, probe_args(cluster, "reconnect", "--backoff-max-ms", 1000,
                                "--timeout", 60))
    port = int(p.wait_line(r"^connected (\d+)$", 30).group(1))
    sid = connector_by_port(cluster, port)
    kill_hard(cluster, sid)
    p.wait_line(r"^disconnected ", 15)
    cluster.spawn(sid)
    p.wait_line(r"^reconnected \d+$", 30)
    p.wait_line(r"^ok reconnect ", 40)
    assert p.wait(10) == 0, p.output()


def test_terminal_client_after_a_connector_drain(tern, procs):
    cluster = tern.cluster(connectors=1, chats=1)
    erin = start(procs, cli_args(cluster, "erin", "r1", "--wait-messages", 1, "--timeout", 60))
    erin.wait_line(r"\* joined room r1 as erin", 30)
    assert cluster.stop_server("connector-server-1") == 0
    erin.wait_line(r"\* (kicked by the server: .+|disconnected: .*; reconnecting in .*)$", 15)
    erin.wait_line(r"\* disconnected: .*; reconnecting in", 15)
    cluster.spawn("connector-server-1")
    erin.wait_line(r"\* reconnected to ", 60)
    erin.wait_line(r"\* back in room r1 as erin", 30)
    code, out = run(cli_args(cluster, "frank", "r1", "--send-file", "-", "--timeout", 30),
                    timeout=60, stdin_text="welcome back\n")
    assert code == 0, out
    assert erin.wait(30) == 0, erin.output()
    erin.wait_line(r"^\[\d\d:\d\d:\d\d\] frank: welcome back$", 1)


def test_terminal_client_after_a_connector_crash(tern, procs):
    cluster = tern.cluster(connectors=1, chats=1)
    erin = start(procs, cli_args(cluster, "erin", "r1", "--wait-messages", 1, "--timeout", 60))
    erin.wait_line(r"\* joined room r1 as erin", 30)
    kill_hard(cluster, "connector-server-1")
    erin.wait_line(r"\* disconnected: .*; reconnecting in", 15)
    cluster.spawn("connector-server-1")
    erin.wait_line(r"\* reconnected to ", 60)
    erin.wait_line(r"\* back in room r1 as erin", 30)
    code, out = run(cli_args(cluster, "frank", "r1", "--send-file", "-", "--timeout", 30),
                    timeout=60, stdin_text="welcome back\n")
    assert code == 0, out
    assert erin.wait(30) == 0, erin.output()
