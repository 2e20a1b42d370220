"""The chat application end to end (chatofpomelo, route for route) over the real gate,
connectors and chat servers: the page's exact byte flow, rooms spread over chat servers,
pushes that reach only the connectors hosting members, duplicate names across connectors,
and requests that fail with an error body, never a hang, when a chat server dies."""
import asyncio
import signal
import time

import pytest

import harness
import pomelo
from pomelo import ENTER_ROUTE, GATE_ROUTE, SEND_ROUTE

run = harness.run_async


def hexbytes(s):
    return bytes.fromhex(s.replace(" ", ""))


async def connect(cluster, sid, state=None):
    host, port = cluster.client_address(sid)
    return await pomelo.Client.connect(host, port, state=state)


async def enter(cluster, sid, name, rid):
    """A client on connector sid that entered room rid as name; returns (client, answer)."""
    c = await connect(cluster, sid)
    resp = await c.request(ENTER_ROUTE, {"username": name, "rid": rid})
    return c, resp


async def close_all(clients):
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def test_page_flow_byte_for_byte(tern):
    """What the chatofpomelo page puts on the wire, byte for byte, and what it gets back."""
    cluster = tern.cluster(connectors=1, chats=1)

    async def scenario():
        ghost, gport = cluster.gate_address()
        gate = await pomelo.RawWebSocket.connect(ghost, gport)
        # Vector 1: the browser's first handshake (protoVersion 0).
        await gate.send_binary(hexbytes(
            "01 00 00 4b 7b 22 73 79 73 22 3a 7b 22 74 79 70 65 22 3a 22 6a 73 2d 77 65 62 "
            "73 6f 63 6b 65 74 22 2c 22 76 65 72 73 69 6f 6e 22 3a 22 30 2e 30 2e 31 22 2c "
            "22 72 73 61 22 3a 7b 7d 2c 22 70 72 6f 74 6f 56 65 72 73 69 6f 6e 22 3a 30 7d 7d"))
        pkgs = await gate.recv_packages()
        assert [t for t, _ in pkgs] == [pomelo.PKG_HANDSHAKE]
        hs = pomelo.json_decode(pkgs[0][1])
        assert hs["code"] == 200
        protos = hs["sys"]["protos"]
        assert protos["server"] == {} and protos["client"] == {} and protos["version"]
        assert "heartbeat" not in hs["sys"]  # the gate runs without heartbeats
        await gate.send_binary(hexbytes("02 00 00 00"))
        # queryEntry as request id 1 over an uncompressed route (vector 5's layout).
        body = b'{"uid":"alice"}'
        msg = b"\x00\x01" + bytes([27]) + b"gate.gateHandler.queryEntry" + body
        await gate.send_binary(pomelo.encode_package(pomelo.PKG_DATA, msg))
        pkgs = await gate.recv_packages()
        assert len(pkgs) == 1 and pkgs[0][0] == pomelo.PKG_DATA
        resp = pkgs[0][1]
        assert resp[:2] == b"\x04\x01"  # response flag, id 1, no route
        entry = pomelo.json_decode(resp[2:])
        chost, cport = cluster.client_address("connector-server-1")
        assert entry == {"code": 200, "host": chost, "port": cport}
        await gate.send_frame(pomelo.OP_CLOSE, b"\x03\xe8")
        assert await gate.wait_closed(timeout=2.0) in (1000, None)
        await gate.close()

        conn = await pomelo.RawWebSocket.connect(entry["host"], entry["port"])
        hs_body = pomelo.handshake_body(protos["version"])
        await conn.send_binary(pomelo.encode_package(pomelo.PKG_HANDSHAKE, hs_body))
        pkgs = await conn.recv_packages()
        hs = pomelo.json_decode(pkgs[0][1])
        assert hs["code"] == 200 and hs["sys"]["heartbeat"] == 3
        assert hs["sys"]["dict"] == {"chat.chatHandler.send": 1,
                                     "connector.entryHandler.enter": 2,
                                     "gate.gateHandler.queryEntry": 3}
        assert hs["sys"]["useDict"] is True and hs["sys"]["protos"]["version"]
        await conn.send_binary(hexbytes("02 00 00 00"))
        pkgs = await conn.recv_packages()
        assert pkgs == [(pomelo.PKG_HEARTBEAT, b"")]  # the first heartbeat, on the ACK
        # enter as id 2 over dictionary code 2 (vector 4's second form).
        await conn.send_binary(pomelo.encode_package(pomelo.PKG_DATA,
            b"\x01\x02\x00\x02" + b'{"username":"alice","rid":"room1"}'))
        pkgs = await conn.recv_packages()
        assert pkgs == [(pomelo.PKG_DATA, hexbytes(
            "04 02 7b 22 75 73 65 72 73 22 3a 5b 22 61 6c 69 63 65 22 5d 7d"))]
        # send as id 3 over dictionary code 1.
        await conn.send_binary(pomelo.encode_package(pomelo.PKG_DATA,
            b"\x01\x03\x00\x01" + b'{"rid":"room1","content":"hi","from":"alice","target":"*"}'))
        got = []
        while len(got) < 2:
            got += await conn.recv_packages()
        # The push (vector 7, JSON onChat) and the response {} for id 3, in either order.
        assert (pomelo.PKG_DATA, hexbytes("04 03 7b 7d")) in got
        assert (pomelo.PKG_DATA, hexbytes(
            "06 06 6f 6e 43 68 61 74 7b 22 6d 73 67 22 3a 22 68 69 22 2c 22 66 72 6f 6d 22 3a "
            "22 61 6c 69 63 65 22 2c 22 74 61 72 67 65 74 22 3a 22 2a 22 7d")) in got
        await conn.close()

    run(scenario())


def test_two_connectors_one_room(tern):
    cluster = tern.cluster(connectors=2, chats=1)

    async def scenario():
        a, ra = await enter(cluster, "connector-server-1", "alice", "lobby")
        assert ra == {"users": ["alice"]}
        b, rb = await enter(cluster, "connector-server-2", "bob", "lobby")
        assert rb == {"users": ["alice", "bob"]}
        assert await a.next_push("onAdd") == ("onAdd", {"route": "onAdd", "user": "bob"})
        assert await b.request(SEND_ROUTE, {"rid": "lobby", "content": "hello",
                                            "from": "mallory", "target": "*"}) == {}
        want = ("onChat", {"msg": "hello", "from": "bob", "target": "*"})  # never the body's from
        assert await a.next_push("onChat") == want
        assert await b.next_push("onChat") == want  # the sender gets its room message too
        await b.close()
        assert await a.next_push("onLeave") == ("onLeave", {"route": "onLeave", "user": "bob"})
        assert not b.unread_pushes("onAdd")  # the newcomer never sees its own onAdd
        await a.close()

    run(scenario())


def owner_of_rooms(cluster, chats, before):
    """Which chat server's room count rose since `before` (a {sid: rooms} dict)."""
    now = {sid: harness.sample(cluster.metrics(sid), "tern_chat_rooms", 0) for sid in chats}
    grown = [sid for sid in chats if now[sid] > before[sid]]
    return grown, now


def test_rooms_spread_over_chat_servers_and_stay_apart(tern):
    cluster = tern.cluster(connectors=3, chats=3)
    conns = cluster.topology.ids("connector")
    chats = cluster.topology.ids("chat")

    async def scenario():
        clients = {}
        for i in range(30):
            rid = f"room{i}"
            for j in range(2):
                c, resp = await enter(cluster, conns[(i + j) % 3], f"u{j}", rid)
                assert "users" in resp, resp
                clients[(rid, j)] = c
        rooms = {sid: harness.sample(cluster.metrics(sid), "tern_chat_rooms", 0) for sid in chats}
        assert sum(rooms.values()) == 30
        assert all(n > 0 for n in rooms.values()), f"a chat server owns no room: {rooms}"
        for i in range(30):
            rid = f"room{i}"
            assert await clients[(rid, 0)].request(
                SEND_ROUTE, {"rid": rid, "content": f"m-{rid}", "target": "*"}) == {}
        for (rid, j), c in clients.items():
            route, body = await c.next_push("onChat")
            assert body["msg"] == f"m-{rid}", f"{rid}/{j} got {body}"
        # Nothing else arrives anywhere: a message never leaks into another room.
        await asyncio.sleep(0)  # let any stray push already read be queued
        for (rid, j), c in clients.items():
            assert c.unread_pushes("onChat") == [], f"{rid}/{j}: {c.unread_pushes('onChat')}"
        await close_all(clients.values())

    run(scenario(), timeout=120)


def test_private_message_reaches_only_its_target(tern):
    cluster = tern.cluster(connectors=2, chats=1)

    async def scenario():
        a, _ = await enter(cluster, "connector-server-1", "alice", "r")
        b, _ = await enter(cluster, "connector-server-2", "bob", "r")
        c, _ = await enter(cluster, "connector-server-1", "carol", "r")
        assert await a.request(SEND_ROUTE, {"rid": "r", "content": "psst", "target": "bob"}) == {}
        assert await b.next_push("onChat") == ("onChat",
                                               {"msg": "psst", "from": "alice", "target": "bob"})
        # A room message after it: when it arrives, the private one would have arrived too.
        assert await a.request(SEND_ROUTE, {"rid": "r", "content": "all", "target": "*"}) == {}
        for x in (a, c):
            assert (await x.next_push("onChat"))[1]["msg"] == "all"
        assert (await b.next_push("onChat"))[1]["msg"] == "all"
        # An absent target is refused with a reason.
        resp = await a.request(SEND_ROUTE, {"rid": "r", "content": "x", "target": "nobody"})
        assert resp["code"] == 500 and resp.get("message")
        await close_all([a, b, c])

    run(scenario())


def test_concurrent_enters_of_one_name(tern):
    """50 enters of one name into one room over 3 connectors at once: exactly one wins,
    the others get the name-taken answer the page understands."""
    cluster = tern.cluster(connectors=3, chats=2)
    conns = cluster.topology.ids("connector")

    async def scenario():
        clients = await asyncio.gather(*(connect(cluster, conns[i % 3]) for i in range(50)))
        answers = await asyncio.gather(*(
            c.request(ENTER_ROUTE, {"username": "neo", "rid": "zion"}) for c in clients))
        wins = [a for a in answers if "users" in a]
        assert len(wins) == 1, answers
        assert wins[0] == {"users": ["neo"]}
        losses = [a for a in answers if "users" not in a]
        assert all(a == {"code": 500, "error": True} for a in losses), losses
        await close_all(clients)

    run(scenario(), timeout=120)


def test_pushes_go_only_to_connectors_with_members(tern):
    # Three senders make 1000 requests as fast as they can: lift the per-session rate limit.
    cluster = tern.cluster(connectors=3, chats=1,
                           env={"TERN_RATE_LIMIT": "100000", "TERN_RATE_BURST": "100000"})

    async def scenario():
        members = [(await enter(cluster, "connector-server-1", f"m{i}", "solo"))[0]
                   for i in range(3)]
        for i in range(1000):
            assert await members[i % 3].request(
                SEND_ROUTE, {"rid": "solo", "content": str(i), "target": "*"}) == {}
        for m in members:
            seen = []
            while len(seen) < 1000:
                seen.append(int((await m.next_push("onChat"))[1]["msg"]))
            assert seen == list(range(1000))  # every message once, in order
        await close_all(members)

    run(scenario(), timeout=180)
    for sid in ("connector-server-2", "connector-server-3"):
        s = cluster.metrics(sid)
        assert harness.sample(s, "tern_connector_push_messages_total") == 0, sid
        assert harness.sample(s, "tern_connector_push_items_total") == 0, sid
    s = cluster.metrics("connector-server-1")
    assert harness.sample(s, "tern_connector_push_items_total") >= 1000
    chat = cluster.metrics("chat-server-1")
    assert harness.sample(chat, "tern_chat_push_items_total", connector="connector-server-2") == 0
    assert harness.sample(chat, "tern_chat_push_items_total", connector="connector-server-3") == 0


def test_killed_chat_server_fails_requests_with_an_error(tern):
    deadline_ms = 1000
    cluster = tern.cluster(connectors=1, chats=2, env={"TERN_RPC_TIMEOUT": str(deadline_ms)})
    chats = cluster.topology.ids("chat")

    async def scenario():
        # Find a room on each chat server.
        owned = {}
        before = {sid: 0 for sid in chats}
        clients = []
        i = 0
        while len(owned) < 2 and i < 64:
            rid = f"k{i}"
            c, resp = await enter(cluster, "connector-server-1", "u", rid)
            assert "users" in resp
            clients.append(c)
            grown, before = owner_of_rooms(cluster, chats, before)
            owned.setdefault(grown[0], (rid, c))
            i += 1
        assert len(owned) == 2
        cluster.stop_server("chat-server-1", sig=signal.SIGKILL)
        rid, c = owned["chat-server-1"]
        t0 = time.monotonic()
        resp = await c.request(SEND_ROUTE, {"rid": rid, "content": "x", "target": "*"},
                               timeout=deadline_ms / 1000 + 10)
        elapsed = time.monotonic() - t0
        assert resp["code"] in (503, 504) and resp["error"] is True, resp
        assert elapsed < deadline_ms / 1000 + 10  # answered, never left hanging
        # The other chat server's rooms keep working.
        rid2, c2 = owned["chat-server-2"]
        assert await c2.request(SEND_ROUTE, {"rid": rid2, "content": "y", "target": "*"}) == {}
        await close_all(clients)

    run(scenario(), timeout=120)
    # Failed on the wire, or (not connected any more) tried again until the deadline.
    s = cluster.metrics("connector-server-1")
    assert (harness.sample_sum(s, "tern_connector_rpc_errors_total") +
            harness.sample_sum(s, "tern_connector_rpc_retries_total")) >= 1
    # The killed server's exit status is the test's doing, not a failure.
    cluster.codes["chat-server-1"] = 0
