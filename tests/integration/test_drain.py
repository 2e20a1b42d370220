"""Graceful stops and idle sessions, with the real binaries (design.md §7):

- a connector stopped with SIGTERM closes its client port, kicks its clients with
  "server shutting down", leaves their rooms for them (the members on other connectors
  see onLeave, and the rooms no longer list them) and exits 0 before its drainTimeout;
- when the LEAVEs cannot be answered (the chat server is frozen), it still exits 0, at
  its deadline;
- a gate stopped with SIGTERM kicks its clients the same way and exits 0;
- a chat server stopped with SIGTERM exits 0 and what it answered before the signal
  reaches the rooms' members: its push batches are flushed, not dropped;
- the gate closes a session that sends nothing for idleTimeout and counts it; a connector
  (which has heartbeats) does not use the idle timeout.
"""
import asyncio
import signal
import socket
import time

import harness
import pomelo
from pomelo import ENTER_ROUTE, GATE_ROUTE, SEND_ROUTE

run = harness.run_async

KICK_REASON = "server shutting down"
DRAIN_S = 8.0  # drainTimeout's default
# How far past its drainTimeout a process may take to exit: leaving the registry, freeing
# everything, and an ASan build's leak check at exit on a loaded machine.
EXIT_SLACK_S = 2.0


async def enter(cluster, sid, name, rid):
    host, port = cluster.client_address(sid)
    c = await pomelo.Client.connect(host, port)
    resp = await c.request(ENTER_ROUTE, {"username": name, "rid": rid})
    assert resp.get("users") and name in resp["users"], resp
    return c


async def close_all(clients):
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def stop(cluster, sid, sig=signal.SIGTERM):
    """Stops sid with sig without blocking the clients' event loop (they must keep
    reading, or they could not take their kicks). Returns (exit status, seconds)."""
    t0 = time.monotonic()
    code = await asyncio.to_thread(cluster.stop_server, sid, sig)
    return code, time.monotonic() - t0


async def leaves(client, n, timeout=5.0):
    """The users of the next n onLeave pushes of client."""
    return {(await client.next_push("onLeave", timeout))[1]["user"] for _ in range(n)}


def log_messages(server, module):
    out = []
    for line in server.output().splitlines():
        rec = harness.parse_log_line(line)
        if rec and rec["module"] == module:
            out.append(rec["message"])
    return out


def refused(host, port):
    try:
        socket.create_connection((host, port), timeout=2.0).close()
    except ConnectionRefusedError:
        return True
    return False


def test_connector_drain_kicks_and_leaves_rooms(tern):
    cluster = tern.cluster(connectors=2, chats=1)
    c1, c2 = cluster.topology.ids("connector")

    async def scenario():
        b1 = await enter(cluster, c2, "bob", "lobby")
        b2 = await enter(cluster, c2, "bea", "den")
        a1 = await enter(cluster, c1, "ann", "lobby")
        a2 = await enter(cluster, c1, "art", "lobby")
        a3 = await enter(cluster, c1, "amy", "den")
        host, port = cluster.client_address(c1)
        idle = await pomelo.Client.connect(host, port)  # in no room
        ours = [a1, a2, a3, idle]
        assert {(await b1.next_push("onAdd"))[1]["user"] for _ in range(2)} == {"ann", "art"}
        assert (await b2.next_push("onAdd"))[1]["user"] == "amy"

        code, elapsed = await stop(cluster, c1)
        assert code == 0, cluster.server(c1).output()
        assert elapsed < DRAIN_S + EXIT_SLACK_S, f"exited {elapsed:.1f}s after SIGTERM"
        for c in ours:
            assert await c.wait_kicked(timeout=1.0) == KICK_REASON
            await c.wait_closed(timeout=1.0)
            assert not c.violations, c.violations
        assert await leaves(b1, 2) == {"ann", "art"}
        assert await leaves(b2, 1) == {"amy"}
        assert refused(host, port)

        # The rooms no longer hold them, and keep working.
        carl = await enter(cluster, c2, "carl", "lobby")
        assert await b1.next_push("onAdd") == ("onAdd", {"route": "onAdd", "user": "carl"})
        dana = await enter(cluster, c2, "dana", "den")
        for c, rid in ((carl, "lobby"), (dana, "den")):
            assert await c.request(SEND_ROUTE, {"rid": rid, "content": "hi", "target": "*"}) == {}
            assert (await c.next_push("onChat"))[1]["msg"] == "hi"
        eve = await pomelo.Client.connect(*cluster.client_address(c2))
        resp = await eve.request(ENTER_ROUTE, {"username": "eve", "rid": "lobby"})
        assert set(resp["users"]) == {"bob", "carl", "eve"}, resp
        await close_all([b1, b2, carl, dana, eve])

    run(scenario(), timeout=60)
    msgs = log_messages(cluster.server(c1), "edge")
    drain = [harness.log_fields(m) for m in msgs if m.startswith("draining:")]
    assert drain and drain[0]["sessions"] == "4", msgs
    conn_msgs = log_messages(cluster.server(c1), "connector")
    assert any(m.startswith("drained:") for m in conn_msgs), conn_msgs
    assert not any("deadline passed" in m for m in msgs + conn_msgs), msgs + conn_msgs


def test_connector_drain_ends_at_its_deadline(tern):
    """The chat server is frozen, so the LEAVE of the kicked client is never answered:
    the connector waits for it until its drainTimeout, then exits 0 all the same."""
    drain_ms = 2000
    topo = harness.Topology(connectors=2, chats=1,
                            options={"connector": {"drainTimeout": drain_ms}})
    cluster = tern.cluster(topo)
    c1, c2 = topo.ids("connector")
    chat = cluster.server("chat-server-1")

    async def scenario():
        b = await enter(cluster, c2, "bob", "lobby")
        a = await enter(cluster, c1, "ann", "lobby")
        chat.proc.send_signal(signal.SIGSTOP)
        try:
            code, elapsed = await stop(cluster, c1)
            assert await a.wait_kicked(timeout=1.0) == KICK_REASON
        finally:
            chat.proc.send_signal(signal.SIGCONT)
        assert code == 0, cluster.server(c1).output()
        assert elapsed < drain_ms / 1000 + EXIT_SLACK_S, f"exited {elapsed:.1f}s after SIGTERM"
        # It did wait for the LEAVE, not just exit: half the time went to the clients
        # (who closed at once), the rest to the call.
        assert elapsed >= drain_ms / 1000 / 2, f"exited {elapsed:.1f}s after SIGTERM"
        await close_all([a, b])

    run(scenario(), timeout=60)
    msgs = log_messages(cluster.server(c1), "connector")
    assert any(m.startswith("drain deadline passed with calls to chat servers in flight")
               for m in msgs), msgs


def test_gate_drain_kicks_its_clients(tern):
    cluster = tern.cluster(connectors=1, chats=1)
    gate = cluster.topology.ids("gate")[0]

    async def scenario():
        host, port = cluster.gate_address()
        clients = [await pomelo.Client.connect(host, port) for _ in range(3)]
        assert (await clients[0].request(GATE_ROUTE, {"uid": "ann"}))["code"] == 200
        code, elapsed = await stop(cluster, gate)
        assert code == 0, cluster.server(gate).output()
        assert elapsed < DRAIN_S + EXIT_SLACK_S, f"exited {elapsed:.1f}s after SIGTERM"
        for c in clients:
            assert await c.wait_kicked(timeout=1.0) == KICK_REASON
            await c.wait_closed(timeout=1.0)
        assert refused(host, port)

    run(scenario(), timeout=60)
    msgs = log_messages(cluster.server(gate), "edge")
    assert any(m.startswith("drained: every session has closed") for m in msgs), msgs


def test_chat_server_flushes_pushes_on_sigterm(tern):
    """Requests race the SIGTERM: every one the chat server answered with success before
    it went reaches the room's members (its push was flushed, not dropped with the loop's
    queue or the socket), and it exits 0. Without a registry the server stops at once, so
    the race is at its tightest; a few rounds, since one may miss the narrow window."""
    n, rounds = 400, 4
    # Calls to the stopped server fail fast: the rounds are about those that succeeded.
    env = {"TERN_RATE_LIMIT": "100000", "TERN_RATE_BURST": "100000", "TERN_RPC_TIMEOUT": "500"}

    async def scenario(cluster):
        c1, c2 = cluster.topology.ids("connector")
        b = await enter(cluster, c2, "bob", "lobby")
        senders = [await enter(cluster, c1, f"s{i}", "lobby") for i in range(4)]

        async def send(i):
            return await senders[i % 4].request(
                SEND_ROUTE, {"rid": "lobby", "content": str(i), "target": "*"}, timeout=15.0)

        tasks = [asyncio.ensure_future(send(i)) for i in range(n)]
        code, _ = await stop(cluster, "chat-server-1")
        assert code == 0, cluster.server("chat-server-1").output()
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        ok = {i for i, r in enumerate(answers) if r == {}}
        # The rest failed with an error body or a timeout, never a success.
        assert all(r == {} or isinstance(r, Exception) or r.get("error") for r in answers)
        for who in (b, senders[0]):
            got = set()
            while not ok <= got:
                try:
                    _, body = await who.next_push("onChat", timeout=5.0)
                except asyncio.TimeoutError:
                    raise AssertionError(f"answered but never pushed: {sorted(ok - got)[:20]}")
                got.add(int(body["msg"]))
        await close_all([b] + senders)

    for _ in range(rounds):
        cluster = tern.cluster(harness.Topology(connectors=2, chats=1, registry=False), env=env)
        run(scenario(cluster), timeout=90)
        problems = cluster.stop()
        assert not problems, harness.describe_problems(problems)


def test_gate_idle_timeout(tern):
    idle_ms = 300
    topo = harness.Topology(connectors=1, chats=1,
                            options={"gate": {"idleTimeout": idle_ms},
                                     "connector": {"idleTimeout": idle_ms}})
    cluster = tern.cluster(topo)
    gate = topo.ids("gate")[0]
    conn = topo.ids("connector")[0]

    async def scenario():
        host, port = cluster.gate_address()
        c = await pomelo.Client.connect(host, port)
        # Busy for well over the timeout: every request counts as activity.
        for i in range(6):
            await asyncio.sleep(idle_ms / 1000 / 3)
            assert (await c.request(GATE_ROUTE, {"uid": f"u{i}"}))["code"] == 200
        assert not c.is_closed
        t0 = time.monotonic()
        assert await c.wait_closed(timeout=5.0) == (1001, "idle timeout")
        assert time.monotonic() - t0 >= idle_ms / 1000 - 0.05
        assert c.kick_reason is None and not c.violations

        # The connector has heartbeats (3 s): idleTimeout is not used there. A client that
        # sends nothing at all, not even heartbeats, stays for far longer than it.
        chost, cport = cluster.client_address(conn)
        quiet = await pomelo.Client.connect(chost, cport, auto_heartbeat=False)
        await asyncio.sleep(idle_ms / 1000 * 4)
        assert not quiet.is_closed
        await quiet.close()

    run(scenario(), timeout=60)
    s = cluster.metrics(gate)
    assert harness.sample(s, "tern_gate_closes_total", reason="idle_timeout") == 1
    s = cluster.metrics(conn)
    assert harness.sample(s, "tern_connector_closes_total", reason="idle_timeout") == 0
