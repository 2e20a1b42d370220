"""Delivery guarantees: one order for every member of a room, no silent loss (gaps are
fetched again or end in a "missed messages" kick), slow consumers cut, and the shipped
filters (abuse words, slow-request log)."""
import asyncio
import signal
import socket
import struct
import time

import harness
import pomelo
from pomelo import ENTER_ROUTE, SEND_ROUTE

run = harness.run_async
NO_RATE_LIMIT = {"TERN_RATE_LIMIT": "1000000", "TERN_RATE_BURST": "1000000"}


async def enter(cluster, sid, name, rid):
    host, port = cluster.client_address(sid)
    c = await pomelo.Client.connect(host, port)
    resp = await c.request(ENTER_ROUTE, {"username": name, "rid": rid}, timeout=20)
    assert "users" in resp, resp
    return c


async def collect(client, n, timeout):
    """The msg fields of the next n onChat pushes."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        _, body = await client.next_push("onChat", timeout=max(0.1, deadline - time.monotonic()))
        out.append(body["msg"])
    return out


async def chat_rooms(cluster, rooms, per_room, messages, senders_per_room=None, timeout=120):
    """Enters per_room members into each room (round robin over the connectors), then every
    sender sends `messages` room messages concurrently. Returns {rid: [received list per
    member]} and the sent messages per room."""
    conns = cluster.topology.ids("connector")
    members = {}
    k = 0
    for r in range(rooms):
        rid = f"room{r}"
        members[rid] = []
        for m in range(per_room):
            members[rid].append(await enter(cluster, conns[k % len(conns)], f"u{m}", rid))
            k += 1
    # Everyone has entered: drain the onAdd pushes so only onChat is left to count.
    senders = senders_per_room or per_room

    async def send_all(c, rid, who):
        for i in range(messages):
            resp = await c.request(SEND_ROUTE, {"rid": rid, "content": f"{who}:{i}",
                                                "target": "*"}, timeout=30)
            assert resp == {}, resp

    await asyncio.gather(*(send_all(c, rid, f"{rid}/{j}")
                           for rid, cs in members.items() for j, c in enumerate(cs[:senders])))
    total = senders * messages
    received = {}
    for rid, cs in members.items():
        received[rid] = await asyncio.gather(*(collect(c, total, timeout) for c in cs))
    return members, received


def check_one_order(received, senders, messages):
    """Every member of a room saw the identical sequence, each message exactly once, and
    each sender's messages in the order sent."""
    for rid, lists in received.items():
        first = lists[0]
        for i, other in enumerate(lists[1:], 1):
            assert other == first, f"{rid}: member {i} saw another order"
        assert len(set(first)) == len(first), f"{rid}: duplicates"
        assert len(first) == senders * messages
        for j in range(senders):
            mine = [m for m in first if m.startswith(f"{rid}/{j}:")]
            assert mine == [f"{rid}/{j}:{i}" for i in range(messages)], f"{rid}/{j} reordered"


async def close_all(members):
    await asyncio.gather(*(c.close() for cs in members.values() for c in cs),
                         return_exceptions=True)


def test_every_member_sees_one_order(tern):
    """300 clients in 30 rooms over 3 connectors and 3 chat servers each send 20 messages
    at once: every member of a room receives the same sequence, no gaps, no duplicates."""
    cluster = tern.cluster(connectors=3, chats=3, env=NO_RATE_LIMIT)

    async def scenario():
        members, received = await chat_rooms(cluster, rooms=30, per_room=10, messages=20)
        check_one_order(received, 10, 20)
        await close_all(members)

    run(scenario(), timeout=300)
    for sid in cluster.topology.ids("connector"):
        s = cluster.metrics(sid)
        assert harness.sample(s, "tern_connector_push_gaps_unrecoverable_total") == 0


def test_forced_gaps_are_detected_and_recovered(tern):
    topo = tern.topology(connectors=2, chats=1,
                         options={"chat": {"debugDropPushEvery": 4}})
    cluster = tern.cluster(topo, env=NO_RATE_LIMIT)

    async def scenario():
        members, received = await chat_rooms(cluster, rooms=2, per_room=4, messages=25,
                                             senders_per_room=2)
        check_one_order(received, 2, 25)
        await close_all(members)

    run(scenario(), timeout=180)
    chat = cluster.metrics("chat-server-1")
    assert harness.sample_sum(chat, "tern_chat_push_dropped_total") > 0
    gaps = recovered = 0
    for sid in cluster.topology.ids("connector"):
        s = cluster.metrics(sid)
        gaps += harness.sample(s, "tern_connector_push_gaps_total")
        recovered += harness.sample(s, "tern_connector_push_gaps_recovered_total")
        assert harness.sample(s, "tern_connector_push_gaps_unrecoverable_total") == 0
        assert harness.sample(s, "tern_connector_kicks_total", 0, reason="missed messages") == 0
    assert gaps > 0 and recovered > 0
    logs = "\n".join(cluster.server(sid).output() for sid in cluster.topology.ids("connector"))
    assert "gap in push stream" in logs and "gap recovered" in logs


def test_unrecoverable_gap_kicks_with_missed_messages(tern):
    # A ring of one item: by the time the connector asks, what it missed is gone.
    topo = tern.topology(connectors=1, chats=1,
                         options={"chat": {"debugDropPushEvery": 2, "pushRing": 1}})
    cluster = tern.cluster(topo, env=NO_RATE_LIMIT)

    async def scenario():
        a = await enter(cluster, "connector-server-1", "alice", "r")
        b = await enter(cluster, "connector-server-1", "bob", "r")
        for i in range(6):
            try:
                await a.request(SEND_ROUTE, {"rid": "r", "content": str(i), "target": "*"},
                                timeout=5)
            except Exception:  # kicked meanwhile: the socket is closing under the send
                break
        assert await b.wait_kicked(timeout=10) == "missed messages"
        assert await a.wait_kicked(timeout=10) == "missed messages"

    run(scenario(), timeout=60)
    s = cluster.metrics("connector-server-1")
    assert harness.sample(s, "tern_connector_push_gaps_unrecoverable_total") >= 1
    assert harness.sample(s, "tern_connector_kicks_total", reason="missed messages") == 2
    assert "unrecoverable gap" in cluster.server("connector-server-1").output()


def stalled_client(host, port, name, rid):
    """A blocking client with a 4 KiB receive buffer that enters a room, then never reads
    again. Returns the socket."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((host, port))
    s.sendall((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    buf = buf.split(b"\r\n\r\n", 1)[1]

    def send_pkg(data):
        s.sendall(pomelo.ws_frame(pomelo.OP_BINARY, data, mask=True))

    def read_frame():
        nonlocal buf
        while True:
            if len(buf) >= 2:
                n, off = buf[1] & 0x7F, 2
                if n == 126 and len(buf) >= 4:
                    n, off = struct.unpack(">H", buf[2:4])[0], 4
                elif n == 127 and len(buf) >= 10:
                    n, off = struct.unpack(">Q", buf[2:10])[0], 10
                if n < 126 or off > 2:
                    if len(buf) >= off + n:
                        payload, buf = buf[off:off + n], buf[off + n:]
                        return payload
            buf += s.recv(4096)

    send_pkg(pomelo.encode_package(pomelo.PKG_HANDSHAKE, pomelo.handshake_body(0)))
    read_frame()
    send_pkg(pomelo.encode_package(pomelo.PKG_HANDSHAKE_ACK))
    msg = pomelo.encode_message(pomelo.MSG_REQUEST, 1, ENTER_ROUTE,
                                {"username": name, "rid": rid})
    send_pkg(pomelo.encode_package(pomelo.PKG_DATA, msg))
    # Read until the enter answer (a heartbeat may come first), then stop reading.
    while not any(t == pomelo.PKG_DATA for t, _ in pomelo.decode_packages(read_frame())):
        pass
    return s


def test_slow_consumer_is_cut_and_the_room_goes_on(tern):
    topo = tern.topology(connectors=1, chats=1,
                         options={"connector": {"outLimit": 65536, "bodyLimit": 16384}})
    cluster = tern.cluster(topo, env=NO_RATE_LIMIT)
    host, port = cluster.client_address("connector-server-1")

    async def scenario():
        a = await enter(cluster, "connector-server-1", "alice", "r")
        b = await enter(cluster, "connector-server-1", "bob", "r")
        stalled = stalled_client(host, port, "sloth", "r")
        try:
            big = "x" * 8000
            sent = 0
            # Enough to fill the stalled client's kernel buffers and then the server's
            # queue for it; bounded in count.
            while sent < 3000:
                assert await a.request(SEND_ROUTE, {"rid": "r", "content": f"{sent}:{big}",
                                                    "target": "*"}, timeout=20) == {}
                sent += 1
                if sent % 100 == 0 and harness.sample(
                        cluster.metrics("connector-server-1"), "tern_connector_kicks_total",
                        reason="slow consumer", default=0):
                    break
            got_a = await collect(a, sent, 120)
            got_b = await collect(b, sent, 120)
            want = [f"{i}:{big}" for i in range(sent)]
            assert got_a == want and got_b == want  # the others lose nothing
        finally:
            stalled.close()
        await asyncio.gather(a.close(), b.close())

    run(scenario(), timeout=240)
    s = cluster.metrics("connector-server-1")
    assert harness.sample(s, "tern_connector_kicks_total", reason="slow consumer") == 1


def test_abuse_filter_replaces_words(tern):
    topo = tern.topology(connectors=1, chats=1,
                         options={"connector": {"abuseWords": "darn, heck"}})
    cluster = tern.cluster(topo)

    async def scenario():
        a = await enter(cluster, "connector-server-1", "alice", "r")
        assert await a.request(SEND_ROUTE, {"rid": "r", "content": "oh DARN it, what the heck",
                                            "target": "*"}) == {}
        _, body = await a.next_push("onChat")
        assert body["msg"] == "oh **** it, what the ****"
        await a.close()

    run(scenario())
    assert harness.sample(cluster.metrics("connector-server-1"),
                          "tern_connector_abuse_words_total") == 2


def test_slow_request_logger(tern):
    topo = tern.topology(connectors=1, chats=1, options={"connector": {"slowRequest": 300}})
    cluster = tern.cluster(topo)
    chat = cluster.server("chat-server-1")

    async def scenario():
        a = await enter(cluster, "connector-server-1", "alice", "r")
        chat.proc.send_signal(signal.SIGSTOP)  # the chat server answers late
        try:
            pending = asyncio.ensure_future(
                a.request(SEND_ROUTE, {"rid": "r", "content": "slow", "target": "*"}))
            await asyncio.sleep(0.8)
        finally:
            chat.proc.send_signal(signal.SIGCONT)
        assert await pending == {}
        await a.close()

    run(scenario())
    out = cluster.server("connector-server-1").output()
    # The send waited at least 0.8 s for the stopped chat server: it is logged with its
    # route and time. (The enter may be logged too when start-up made it slow.)
    slow = [l for l in out.splitlines()
            if "slow request" in l and "route=chat.chatHandler.send" in l]
    assert len(slow) == 1, out
    ms = int(slow[0].split(" ms=")[1].split()[0])
    assert ms >= 300
    assert harness.sample(cluster.metrics("connector-server-1"),
                          "tern_connector_slow_requests_total") >= 1
