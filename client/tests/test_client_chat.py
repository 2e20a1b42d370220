"""libtn_client against the real servers: requests and responses (queryEntry, enter,
send) and pushes (onAdd, onChat) between clients in one room, on different connectors."""
from conftest import probe_args, run


def test_two_clients_see_each_others_messages(tern):
    cluster = tern.cluster(connectors=2, chats=1)
    code, out = run(probe_args(cluster, "chat", "--clients", 2, "--rooms", 1, "--messages", 3,
                               "--timeout", 30), timeout=60)
    assert code == 0, out
    assert "ok clients=2" in out, out


def test_rooms_are_separate(tern):
    # Six clients in three rooms over two connectors and two chat servers: each sees the
    # messages and joins of its own room only (the probe checks the exact counts).
    cluster = tern.cluster(connectors=2, chats=2)
    code, out = run(probe_args(cluster, "chat", "--clients", 6, "--rooms", 3, "--messages", 2,
                               "--timeout", 30), timeout=60)
    assert code == 0, out
    assert "ok clients=6 rooms=3" in out, out
