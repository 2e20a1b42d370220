"""Issue "registry and discovery" acceptance, with the real binaries: servers found by the
registry, never listed in a file (join by hand while clients are connected), eviction after
SIGKILL, a registry restart that moves no room, a duplicate id refused, the gate sending new
clients to the least loaded connector, a client port range on one host, and the
operations side (tern-admin list, /readyz, membership metrics).

Servers sit on distinct loopback addresses (127.0.0.2, 127.0.0.3, ...) as stand-ins for
separate hosts. Every wait has a deadline; nothing sleeps for a fixed time."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import zlib

import pytest

import harness
from hand import Hand
import pomelo
from pomelo import ENTER_ROUTE, GATE_ROUTE, SEND_ROUTE

EVICT_MS = 1500         # the registry's evictAfter (and quiet period) in these tests
HEARTBEAT_MS = 150      # every other server's heartbeatInterval
WAIT = 30.0             # generous deadline for things that normally take a second or two
TYPES = ("registry", "chat", "connector", "gate")


def run(coro, timeout=120.0):
    return harness.run_async(coro, timeout)


def require_built():
    admin = str(harness.BIN_DIR / "tern-admin")
    missing = harness.missing_binaries(TYPES) + ([] if os.access(admin, os.X_OK) else [admin])
    if missing:
        pytest.fail(f"not built: {', '.join(missing)} (set TERN_BIN)", pytrace=False)


def admin_list(registry_address, json_out=True):
    argv = [str(harness.BIN_DIR / "tern-admin"), "list", "--registry", registry_address,
            "--timeout", "5000"] + (["--json"] if json_out else [])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          env=harness.child_environment())
    assert proc.returncode == 0, f"tern-admin failed ({proc.returncode}): {proc.stderr}"
    assert harness.sanitizer_report(proc.stderr) is None, proc.stderr
    return json.loads(proc.stdout) if json_out else proc.stdout


def listed(registry_address):
    """{id: server entry} as the registry lists them."""
    return {s["id"]: s for s in admin_list(registry_address)["servers"]}


def wait_until(pred, what, timeout=WAIT):
    return harness.wait_until(pred, timeout, interval=0.05, what=what)


def sees(node, stype, n):
    """node's membership holds n servers of stype."""
    return node.metric("tern_membership_servers", -1, type=stype) == n


async def query_gate(gate, uid):
    c = await pomelo.Client.connect(gate.host, gate.client_port)
    try:
        return await c.request(GATE_ROUTE, {"uid": uid})
    finally:
        await c.close()


async def login(gate, uid, name, rid):
    """The chatofpomelo flow: ask the gate, connect where it says, enter. Returns
    (client, entry answer, enter answer)."""
    entry = await query_gate(gate, uid)
    assert entry["code"] == 200, entry
    c = await pomelo.Client.connect(entry["host"], entry["port"])
    resp = await c.request(ENTER_ROUTE, {"username": name, "rid": rid})
    return c, entry, resp


async def close_all(clients):
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def small_cluster(hand, hosts, connectors=1, chats=1, gate=True):
    """A registry and servers joined by hand, each on its own loopback address; returns
    the nodes once every server sees every other."""
    it = iter(hosts)
    reg = hand.start("registry", "registry-1", next(it))
    chat = [hand.start("chat", f"chat-{i + 1}", next(it)) for i in range(chats)]
    conn = [hand.start("connector", f"connector-{i + 1}", next(it)) for i in range(connectors)]
    g = hand.start("gate", "gate-1", next(it)) if gate else None
    for n in conn + ([g] if g else []):
        wait_until(lambda n=n: sees(n, "chat", chats) and sees(n, "connector", connectors),
                   f"{n.id} to see the cluster")
    for n in chat:
        wait_until(lambda n=n: sees(n, "connector", connectors), f"{n.id} to see connectors")
    return reg, chat, conn, g


# ---- 1, 4, 6: discovery, joining by hand, advertised addresses ----

def test_servers_join_by_hand_and_are_used(tern):
    """No servers.json anywhere: servers know only the registry. A connector and a chat
    server started while clients are connected join and are used: the gate sends new
    clients to the new connector, rooms that hash to the new chat server live there."""
    require_built()
    hosts = harness.loopback_hosts(8)[1:]
    hand = Hand(tern, EVICT_MS, HEARTBEAT_MS)
    reg, (chat1,), (conn1,), gate = small_cluster(hand, hosts[:4])

    async def scenario():
        a, entry, resp = await login(gate, "alice", "alice", "lobby")
        # The gate answers with the connector's advertised client address.
        assert entry == {"code": 200, "host": conn1.host, "port": conn1.client_port}, entry
        assert resp == {"users": ["alice"]}
        # Two more clients on connector-1 (loads within one connection count as even),
        # known to the registry before the new connector arrives.
        idle = [await pomelo.Client.connect(conn1.host, conn1.client_port) for _ in range(2)]
        wait_until(lambda: listed(hand.registry_address())["connector-1"]["connections"] >= 3,
                   "connector-1's load at the registry")

        conn2 = hand.start("connector", "connector-2", hosts[4])
        wait_until(lambda: sees(gate, "connector", 2) and sees(chat1, "connector", 2),
                   "gate and chat-1 to see connector-2")
        b, entry, resp = await login(gate, "bob", "bob", "lobby")
        assert (entry["host"], entry["port"]) == (conn2.host, conn2.client_port), entry
        assert resp == {"users": ["alice", "bob"]}  # same room, on chat-1, across connectors
        assert (await a.next_push("onAdd"))[1]["user"] == "bob"
        assert await b.request(SEND_ROUTE, {"rid": "lobby", "content": "hi", "target": "*"}) == {}
        assert (await a.next_push("onChat"))[1] == {"msg": "hi", "from": "bob", "target": "*"}

        chat2 = hand.start("chat", "chat-2", hosts[5])
        wait_until(lambda: all(sees(n, "chat", 2) for n in (conn1, conn2, gate)),
                   "connectors to see chat-2")
        wait_until(lambda: sees(chat2, "connector", 2), "chat-2 to see both connectors")
        # Rooms now spread over both chat servers; some land on chat-2 and work there.
        clients = []
        on_chat2 = None
        for i in range(40):
            rid = f"room{i}"
            before = chat2.metric("tern_chat_rooms")
            x = await pomelo.Client.connect(conn1.host, conn1.client_port)
            y = await pomelo.Client.connect(conn2.host, conn2.client_port)
            clients += [x, y]
            assert "users" in await x.request(ENTER_ROUTE, {"username": "x", "rid": rid})
            assert "users" in await y.request(ENTER_ROUTE, {"username": "y", "rid": rid})
            if chat2.metric("tern_chat_rooms") > before:
                on_chat2 = (rid, x, y)
                break
        assert on_chat2, "no room landed on the chat server that joined"
        rid, x, y = on_chat2
        assert await x.request(SEND_ROUTE, {"rid": rid, "content": "there", "target": "*"}) == {}
        assert (await y.next_push("onChat"))[1]["msg"] == "there"
        await close_all([a, b] + idle + clients)

    run(scenario())
    # The listing shows every server with its advertised addresses.
    servers = listed(hand.registry_address())
    assert set(servers) == {"registry-1", "chat-1", "chat-2", "connector-1", "connector-2",
                            "gate-1"}
    for sid, node in hand.nodes.items():
        s = servers[sid]
        assert s["type"] == node.type and s["host"] == node.host, s
        assert s["pid"] == node.server.proc.pid, s
        if node.type in ("chat", "connector", "registry"):
            assert s["port"] == node.port, s
        if node.type in harness.FRONTEND_TYPES:
            assert (s["client_host"], s["client_port"]) == (node.host, node.client_port), s
        assert s["admin_port"] == node.admin[1], s


# ---- 1, 2, 7: eviction after SIGKILL ----

def test_killed_server_is_evicted(tern):
    require_built()
    hosts = harness.loopback_hosts(7)[1:]
    hand = Hand(tern, EVICT_MS, HEARTBEAT_MS)
    reg, (chat1, chat2), (conn,), gate = small_cluster(hand, hosts, chats=2)
    left_before = conn.metric("tern_membership_changes_total", change="left")
    epoch_before = conn.metric("tern_membership_epoch")

    t0 = time.monotonic()
    hand.kill("chat-2")
    wait_until(lambda: reg.metric("tern_registry_changes_total", change="evicted") >= 1,
               "the registry to evict chat-2")
    took = time.monotonic() - t0
    # Not before evictAfter of silence (less one heartbeat it may have missed), and
    # promptly after it.
    assert EVICT_MS / 1000 - HEARTBEAT_MS / 1000 - 0.1 <= took <= EVICT_MS / 1000 + 5, took
    wait_until(lambda: sees(conn, "chat", 1) and sees(gate, "chat", 1),
               "connector and gate to drop chat-2")
    assert "chat-2" not in listed(hand.registry_address())
    assert conn.metric("tern_membership_changes_total", change="left") == left_before + 1
    assert conn.metric("tern_membership_epoch") > epoch_before
    # The notice of the eviction reached the others (a hint, but one that got through).
    wait_until(lambda: conn.metric("tern_membership_evictions_total") >= 1,
               "the eviction notice at the connector")
    assert chat1.metric("tern_membership_registered") == 1

    async def scenario():
        # Every room is chat-1's now: entering and talking works everywhere.
        clients = []
        for i in range(12):
            c = await pomelo.Client.connect(conn.host, conn.client_port)
            clients.append(c)
            assert "users" in await c.request(ENTER_ROUTE, {"username": "u", "rid": f"e{i}"})
            assert await c.request(SEND_ROUTE, {"rid": f"e{i}", "content": "m", "target": "*"}) == {}
        await close_all(clients)

    run(scenario())
    wait_until(lambda: chat1.metric("tern_chat_rooms") == 0, "every room to be left again")


def test_evicted_connector_comes_back_under_its_id(tern):
    """A connector killed with members in a room: once evicted, the chat server closes
    its push stream (the room keeps working for the others); the connector restarted
    under the same id (new incarnation, new ports) gets a stream again in the same place,
    and its first request clears the members its predecessor left behind."""
    require_built()
    hosts = harness.loopback_hosts(7)[1:]
    hand = Hand(tern, EVICT_MS, HEARTBEAT_MS)
    reg, (chat,), (c1, c2), gate = small_cluster(hand, hosts[:5], connectors=2)

    async def scenario():
        a = await pomelo.Client.connect(c1.host, c1.client_port)
        b = await pomelo.Client.connect(c2.host, c2.client_port)
        assert await a.request(ENTER_ROUTE, {"username": "alice", "rid": "lobby"}) == \
            {"users": ["alice"]}
        assert "users" in await b.request(ENTER_ROUTE, {"username": "bob", "rid": "lobby"})
        assert (await a.next_push("onAdd"))[1]["user"] == "bob"
        hand.kill("connector-2")
        wait_until(lambda: sees(chat, "connector", 1), "chat-1 to drop connector-2")
        assert "push stream closed: connector left the membership connector=connector-2" in \
            chat.server.output()
        # The room goes on; the departed member's pushes go nowhere.
        assert await a.request(SEND_ROUTE, {"rid": "lobby", "content": "1", "target": "*"}) == {}
        assert (await a.next_push("onChat"))[1]["msg"] == "1"

        back = hand.start("connector", "connector-2", hosts[4], label="connector-2-back")
        wait_until(lambda: sees(chat, "connector", 2), "chat-1 to see connector-2 again")
        bob = await pomelo.Client.connect(back.host, back.client_port)
        # The old bob is cleared (alice sees him leave) and the new one enters.
        resp = await bob.request(ENTER_ROUTE, {"username": "bob", "rid": "lobby"})
        assert resp == {"users": ["alice", "bob"]}, resp
        assert (await a.next_push("onLeave"))[1]["user"] == "bob"
        assert (await a.next_push("onAdd"))[1]["user"] == "bob"
        assert await bob.request(SEND_ROUTE, {"rid": "lobby", "content": "2", "target": "*"}) == {}
        for c in (a, bob):
            assert (await c.next_push("onChat"))[1] == {"msg": "2", "from": "bob", "target": "*"}
        await close_all([a, b, bob])

    run(scenario())
    assert harness.sample(chat.metrics(), "tern_chat_connector_restarts_total") == 1


# ---- 3: a registry restart moves no room ----

def test_registry_restart_moves_no_room(tern):
    """The cluster starts from servers.json (the dev cluster's way), takes the registry's
    membership, loses the registry (SIGKILL) and keeps working on what it knows; the
    restarted registry stays quiet while everyone re-registers, then serves the same
    membership under a newer epoch: no server ever drops a chat server, no room moves."""
    require_built()
    hosts = harness.loopback_hosts(7)[1:]
    # Servers come back within about a second of the registry (heartbeats every
    # HEARTBEAT_MS, redials backing off to 1 s): a quiet period of a few seconds covers
    # that with room to spare, as the 5 s default does in production.
    topo = harness.Topology(connectors=2, chats=2, hosts=hosts, options={
        "registry": {"evictAfter": 3000},
        "chat": {"heartbeatInterval": HEARTBEAT_MS},
        "connector": {"heartbeatInterval": HEARTBEAT_MS},
        "gate": {"heartbeatInterval": HEARTBEAT_MS}})
    for e in topo.entries["connector"]:
        e["publicHost"] = e["host"]
    cluster = tern.cluster(topo)
    reg_id = topo.ids("registry")[0]
    servers = [sid for sid in topo.ids() if sid != reg_id]
    chats, conns = topo.ids("chat"), topo.ids("connector")

    def m(sid, name, default=0.0, **labels):
        return harness.sample(cluster.metrics(sid), name, default, **labels)

    def adopted():
        return all(m(sid, "tern_membership_epoch") > 1 for sid in servers)

    # The seed (servers.json) holds until the registry's quiet period ends.
    wait_until(lambda: m(reg_id, "tern_registry_recovering", 1) == 0, "the quiet period to end")
    wait_until(adopted, "every server to take the registry's membership")
    reg_addr = topo.registry_address()
    first = admin_list(reg_addr)

    async def scenario():
        # Two members per room, one on each connector; rooms on both chat servers.
        rooms = {}
        for i in range(16):
            rid = f"r{i}"
            a = await pomelo.Client.connect(*cluster.client_address(conns[0]))
            b = await pomelo.Client.connect(*cluster.client_address(conns[1]))
            assert "users" in await a.request(ENTER_ROUTE, {"username": "a", "rid": rid})
            assert "users" in await b.request(ENTER_ROUTE, {"username": "b", "rid": rid})
            rooms[rid] = (a, b)
        owned = {sid: m(sid, "tern_chat_rooms") for sid in chats}
        assert sum(owned.values()) == 16 and all(owned.values()), owned
        left = {sid: m(sid, "tern_membership_changes_total", change="left") for sid in servers}
        epochs = {sid: m(sid, "tern_membership_epoch") for sid in servers}

        async def talk(tag):
            for rid, (a, b) in rooms.items():
                assert await a.request(SEND_ROUTE, {"rid": rid, "content": f"{tag}-{rid}",
                                                    "target": "*"}) == {}
            for rid, (a, b) in rooms.items():
                for c in (a, b):
                    assert (await c.next_push("onChat"))[1]["msg"] == f"{tag}-{rid}"

        errors = m(conns[0], "tern_membership_registry_errors_total", reason="timeout")
        cluster.stop_server(reg_id, sig=signal.SIGKILL)
        cluster.codes[reg_id] = 0
        await talk("while-down")  # the registry is not on the message path
        # Heartbeats fail meanwhile; everyone keeps what it has.
        wait_until(lambda: m(conns[0], "tern_membership_registry_errors_total",
                             reason="timeout") > errors, "a heartbeat to fail")
        await talk("still-down")
        cluster.spawn(reg_id)
        wait_until(lambda: m(reg_id, "tern_registry_members", type="chat") == 2 and
                   m(reg_id, "tern_registry_members", type="connector") == 2 and
                   m(reg_id, "tern_registry_members", type="gate") == 1,
                   "every server to register again")
        wait_until(lambda: m(reg_id, "tern_registry_recovering", 1) == 0,
                   "the restarted registry's quiet period to end")
        wait_until(lambda: all(m(sid, "tern_membership_epoch") > epochs[sid] for sid in servers),
                   "every server to take the new registry's membership")
        # Nobody lost a server at any point, and every room stayed where it was.
        for sid in servers:
            assert m(sid, "tern_membership_changes_total", change="left") == left[sid], \
                cluster.server(sid).output()
            assert m(sid, "tern_membership_registered") == 1, sid
        assert {sid: m(sid, "tern_chat_rooms") for sid in chats} == owned
        await talk("after")
        for rid, (a, b) in rooms.items():
            assert not a.is_closed and not b.is_closed, rid
        await close_all([c for pair in rooms.values() for c in pair])

    run(scenario(), timeout=180)
    second = admin_list(reg_addr)
    assert second["registry_incarnation"] != first["registry_incarnation"]
    assert second["epoch"] > first["epoch"]  # past everything the servers held
    assert {s["id"] for s in second["servers"]} == {s["id"] for s in first["servers"]}


# ---- 1: a duplicate id is refused ----

def test_duplicate_id_is_refused(tern):
    require_built()
    hosts = harness.loopback_hosts(4)[1:]
    hand = Hand(tern, EVICT_MS, HEARTBEAT_MS)
    reg = hand.start("registry", "registry-1", hosts[0])
    chat = hand.start("chat", "chat-1", hosts[1])
    wait_until(lambda: "chat-1" in listed(hand.registry_address()), "chat-1 registered")
    assert chat.readyz()[0] == 200

    # Another process claims the same id from another address.
    twin = hand.start("chat", "chat-1", hosts[2], label="chat-1-twin")
    wait_until(lambda: reg.metric("tern_registry_refused_total", reason="duplicate id") >= 1,
               "the registry to refuse the twin")
    status, body = twin.readyz()
    assert status == 503 and "registration refused" in body, (status, body)
    errors = [harness.parse_log_line(x) for x in twin.server.output().splitlines()]
    refusals = [e for e in errors if e and e["level"] == "ERROR" and
                "registration refused" in e["message"]]
    assert refusals, twin.server.output()
    msg = refusals[0]["message"]
    assert "already registered" in msg and f"pid {chat.server.proc.pid}" in msg, msg
    assert f"{chat.host}:{chat.port}" in msg, msg
    assert twin.metric("tern_membership_refused_total") >= 1
    assert twin.metric("tern_membership_registered") == 0
    # The original keeps its registration and its place in the listing.
    s = listed(hand.registry_address())["chat-1"]
    assert s["pid"] == chat.server.proc.pid and s["host"] == chat.host
    assert chat.readyz()[0] == 200

    # Once the holder leaves (SIGTERM: it deregisters), the id is free at once.
    assert hand.stop("chat-1") == 0
    wait_until(lambda: twin.readyz()[0] == 200, "the twin to register once the id is free")
    assert listed(hand.registry_address())["chat-1"]["pid"] == twin.server.proc.pid


# ---- 5: the gate dispatches on live membership ----

def crc32_index(uid, n):
    """pomelo's dispatcher: Math.abs of the signed CRC-32, modulo n."""
    v = zlib.crc32(uid.encode())
    if v >= 1 << 31:
        v -= 1 << 32
    return abs(v) % n


def test_gate_sends_new_clients_to_the_least_loaded_connector(tern):
    require_built()
    hosts = harness.loopback_hosts(7)[1:]
    hand = Hand(tern, EVICT_MS, HEARTBEAT_MS)
    reg, (chat,), (c1, c2), gate = small_cluster(hand, hosts[:5], connectors=2)
    crc_gate = hand.start("gate", "gate-crc", hosts[5], TERN_DISPATCH="crc32")
    wait_until(lambda: sees(crc_gate, "connector", 2), "the crc32 gate to see both connectors")

    async def scenario():
        # Three clients straight onto connector-1.
        held = [await pomelo.Client.connect(c1.host, c1.client_port) for _ in range(3)]
        wait_until(lambda: listed(hand.registry_address())["connector-1"]["connections"] == 3,
                   "connector-1's load at the registry")
        # Two fresh reads of the membership by the gate after that.
        applied = gate.metric("tern_membership_snapshots_total", outcome="applied")
        wait_until(lambda: gate.metric("tern_membership_snapshots_total",
                                       outcome="applied") >= applied + 2,
                   "the gate to read the loads")
        # Every new client goes to connector-2 until the loads are about even again.
        for uid in ("u1", "u2", "u3", "u4", "u5"):
            entry = await query_gate(gate, uid)
            assert (entry["host"], entry["port"]) == (c2.host, c2.client_port), (uid, entry)
        # pomelo's choice is the uid's crc32 over the connectors in id order.
        order = [c1, c2]
        for uid in ("alice", "bob", "carol", "dave", "erin"):
            entry = await query_gate(crc_gate, uid)
            want = order[crc32_index(uid, 2)]
            assert (entry["host"], entry["port"]) == (want.host, want.client_port), uid
        await close_all(held)

        # With one connector left the gate uses it; with none it answers 500.
        assert hand.stop("connector-1") == 0
        wait_until(lambda: sees(gate, "connector", 1), "the gate to drop connector-1")
        entry = await query_gate(gate, "u6")
        assert (entry["host"], entry["port"]) == (c2.host, c2.client_port)
        assert hand.stop("connector-2") == 0
        wait_until(lambda: sees(gate, "connector", 0), "the gate to drop connector-2")
        entry = await query_gate(gate, "u7")
        assert entry["code"] == 500, entry
        assert gate.metric("tern_gate_query_entry_total", outcome="no connector") >= 1

    run(scenario())


# ---- 6: a client port range on one host ----

def free_port_range(n, host):
    """A base port such that base..base+n-1 are all free (bindable) on host."""
    for _ in range(200):
        base = harness.free_port()
        ok = True
        for p in range(base, base + n):
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    raise AssertionError("no free port range")


def test_connectors_share_a_host_through_a_client_port_range(tern):
    require_built()
    hosts = harness.loopback_hosts(6)[1:]
    hand = Hand(tern, EVICT_MS, HEARTBEAT_MS)
    reg = hand.start("registry", "registry-1", hosts[0])
    chat = hand.start("chat", "chat-1", hosts[1])
    gate = hand.start("gate", "gate-1", hosts[2])
    shared = hosts[3]
    base = free_port_range(10, shared)
    span = f"{base}-{base + 9}"
    c1 = hand.start("connector", "connector-1", shared, TERN_CLIENT_PORT=span)
    c2 = hand.start("connector", "connector-2", shared, TERN_CLIENT_PORT=span)
    for c, want in ((c1, base), (c2, base + 1)):
        ready = harness.parse_log_line(harness.ready_lines(c.server)[0])
        assert harness.log_fields(ready["message"])["client_port"] == str(want), ready
    servers = listed(hand.registry_address())
    assert servers["connector-1"]["client_port"] == base
    assert servers["connector-2"]["client_port"] == base + 1
    wait_until(lambda: sees(gate, "connector", 2) and sees(chat, "connector", 2),
               "gate and chat to see both connectors")

    async def scenario():
        seen = set()
        clients = []
        # The gate hands out both advertised ports; each one is a working connector.
        for i in range(4):
            c, entry, resp = await login(gate, f"user{i}", f"n{i}", "shared-room")
            assert entry["host"] == shared and entry["port"] in (base, base + 1), entry
            assert "users" in resp, resp
            seen.add(entry["port"])
            clients.append(c)
        assert seen == {base, base + 1}
        assert await clients[0].request(SEND_ROUTE, {"rid": "shared-room", "content": "all",
                                                     "target": "*"}) == {}
        for c in clients:
            assert (await c.next_push("onChat"))[1]["msg"] == "all"
        await close_all(clients)

    run(scenario())


# ---- 4, 7: a server started before the registry; the listing; readiness ----

def test_server_waits_for_the_registry_and_the_listing(tern):
    require_built()
    hosts = harness.loopback_hosts(4)[1:]
    hand = Hand(tern, EVICT_MS, HEARTBEAT_MS)
    reg_port = harness.free_port()
    address = f"{hosts[0]}:{reg_port}"
    # A chat server with no registry to talk to yet: it starts, serves, is not ready.
    chat = hand.start("chat", "chat-1", hosts[1], registry=address)
    status, body = chat.readyz()
    assert status == 503 and "not registered" in body, (status, body)
    assert chat.metric("tern_membership_registered") == 0
    hand.start("registry", "registry-1", hosts[0], TERN_PORT=reg_port)
    wait_until(lambda: chat.readyz()[0] == 200, "chat-1 to register once the registry is up")
    assert hand.registry.readyz()[0] == 200  # the registry is ready when it serves
    conn = hand.start("connector", "connector-1", hosts[2])
    wait_until(lambda: "connector-1" in listed(address) and sees(chat, "connector", 1),
               "connector-1 to join")

    text = admin_list(address, json_out=False)
    lines = text.splitlines()
    assert lines[0].startswith("epoch "), text
    header = next(line for line in lines if line.startswith("ID "))
    for col in ("TYPE", "ADDRESS", "CLIENT", "PID", "UPTIME", "LOAD", "RSS", "MSG/S"):
        assert col in header, header
    rows = {line.split()[0]: line for line in lines if line.split() and
            line.split()[0] in ("registry-1", "chat-1", "connector-1")}
    assert len(rows) == 3, text
    assert f"{chat.host}:{chat.port}" in rows["chat-1"] and "rooms" in rows["chat-1"]
    assert str(conn.server.proc.pid) in rows["connector-1"] and "conns" in rows["connector-1"]
    assert f"{conn.host}:{conn.client_port}" in rows["connector-1"]
    # Each server's view of the cluster, on /metrics.
    samples = conn.metrics()
    for name in ("tern_membership_epoch", "tern_membership_registered",
                 "tern_membership_evictions_total", "tern_membership_refused_total"):
        assert harness.sample(samples, name) is not None, name
    # chat-1 and connector-1 itself (the registry is not counted as a member)
    assert harness.sample(samples, "tern_membership_changes_total", change="joined") == 2
    # An unreachable registry is a clear error, quickly.
    proc = subprocess.run([str(harness.BIN_DIR / "tern-admin"), "list", "--registry",
                           f"{hosts[0]}:{harness.free_port()}", "--timeout", "300"],
                          capture_output=True, text=True, timeout=30,
                          env=harness.child_environment())
    assert proc.returncode == 1 and "no answer from the registry" in proc.stderr, proc.stderr
