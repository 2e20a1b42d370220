"""2000 concurrent connections from one process through one event loop: every client
asks the gate, connects, enters one of 100 rooms and sends one message; every one must
receive every message of its room and an onAdd for each member who joined after it.
Bounded in time: the probe gives up after 240 s."""
import resource

from conftest import probe_args, run

CLIENTS = 2000


def test_two_thousand_connections_on_one_loop(tern):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= CLIENTS + 500, f"open-file limit {soft} is too low for {CLIENTS} clients"
    cluster = tern.cluster(connectors=2, chats=2)
    code, out = run(probe_args(cluster, "chat", "--clients", CLIENTS, "--rooms", 100,
                               "--messages", 1, "--ramp", 200, "--timeout", 240), timeout=300)
    assert code == 0, out
    assert f"ok clients={CLIENTS}" in out, out
