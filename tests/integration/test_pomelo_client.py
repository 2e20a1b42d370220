"""Checks of the test toolkit itself: the python pomelo client's encoders and decoders
against the hex vectors of protocol.md §8, and its browser-like behaviour (handshake, ACK,
heartbeats after the interval, ids across connections, pushes, kicks, violations) against
small in-process fake servers. Needs no tern binary."""
import asyncio
import json
import time

import pytest
import websockets

import pomelo as pml


def vec(text):
    return bytes.fromhex(text.replace(" ", ""))


def run(coro, timeout=20.0):
    """Runs one coroutine with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---- protocol.md §8 vectors ----

V_HANDSHAKE = vec(
    "01 00 00 4b 7b 22 73 79 73 22 3a 7b 22 74 79 70 65 22 3a 22 6a 73 2d 77 65 62 73 6f 63 6b "
    "65 74 22 2c 22 76 65 72 73 69 6f 6e 22 3a 22 30 2e 30 2e 31 22 2c 22 72 73 61 22 3a 7b 7d "
    "2c 22 70 72 6f 74 6f 56 65 72 73 69 6f 6e 22 3a 30 7d 7d")
V_SERVER_HANDSHAKE = vec(
    "01 00 00 22 7b 22 63 6f 64 65 22 3a 32 30 30 2c 22 73 79 73 22 3a 7b 22 68 65 61 72 74 62 "
    "65 61 74 22 3a 33 7d 7d")
V_ENTER_REQ = vec(
    "04 00 00 41 00 01 1c 63 6f 6e 6e 65 63 74 6f 72 2e 65 6e 74 72 79 48 61 6e 64 6c 65 72 2e "
    "65 6e 74 65 72 7b 22 75 73 65 72 6e 61 6d 65 22 3a 22 61 6c 69 63 65 22 2c 22 72 69 64 22 "
    "3a 22 72 6f 6f 6d 31 22 7d")
V_ENTER_REQ_DICT_PREFIX = vec("04 00 00 26 01 02 00 02 7b 22 75 73 65 72 6e 61 6d 65")
V_GATE_REQ = vec(
    "04 00 00 2d 00 01 1b 67 61 74 65 2e 67 61 74 65 48 61 6e 64 6c 65 72 2e 71 75 65 72 79 45 "
    "6e 74 72 79 7b 22 75 69 64 22 3a 22 61 6c 69 63 65 22 7d")
V_GATE_RESP = vec(
    "04 00 00 2d 04 01 7b 22 63 6f 64 65 22 3a 32 30 30 2c 22 68 6f 73 74 22 3a 22 31 32 37 2e "
    "30 2e 30 2e 31 22 2c 22 70 6f 72 74 22 3a 33 30 35 30 7d")
V_ENTER_RESP = vec(
    "04 00 00 15 04 02 7b 22 75 73 65 72 73 22 3a 5b 22 61 6c 69 63 65 22 5d 7d")
V_EMPTY_RESP = vec("04 00 00 04 04 01 7b 7d")
V_ONADD = vec(
    "04 00 00 25 06 05 6f 6e 41 64 64 7b 22 72 6f 75 74 65 22 3a 22 6f 6e 41 64 64 22 2c 22 75 "
    "73 65 72 22 3a 22 62 6f 62 22 7d")
V_ONCHAT_JSON = vec(
    "04 00 00 30 06 06 6f 6e 43 68 61 74 7b 22 6d 73 67 22 3a 22 68 69 22 2c 22 66 72 6f 6d 22 "
    "3a 22 61 6c 69 63 65 22 2c 22 74 61 72 67 65 74 22 3a 22 2a 22 7d")
V_ONCHAT_PB = vec(
    "04 00 00 16 06 06 6f 6e 43 68 61 74 0a 02 68 69 12 05 61 6c 69 63 65 1a 01 2a")
V_NOTIFY_MSG = vec(
    "02 15 63 68 61 74 2e 63 68 61 74 48 61 6e 64 6c 65 72 2e 73 65 6e 64 7b 7d")
V_REQ_300 = vec("00 ac 02 01 61 7b 7d")
V_KICK = vec("05 00 00 11 7b 22 72 65 61 73 6f 6e 22 3a 22 6b 69 63 6b 22 7d")

ONCHAT_PROTOS = json.loads(
    '{"server":{"onChat":{"msg":{"option":"required","type":"string","tag":1},"from":{"option":'
    '"required","type":"string","tag":2},"target":{"option":"required","type":"string","tag":3},'
    '"__messages":{},"__tags":{"1":"msg","2":"from","3":"target"}}},"client":{},'
    '"version":"2zWPnSlRsRxjqgcU215Uxg=="}')


def test_client_handshake_vector():
    assert pml.encode_package(pml.PKG_HANDSHAKE, pml.handshake_body()) == V_HANDSHAKE
    assert len(pml.handshake_body()) == 75


def test_server_handshake_vector_decodes():
    [(ptype, body)] = pml.decode_packages(V_SERVER_HANDSHAKE)
    assert ptype == pml.PKG_HANDSHAKE
    assert pml.json_decode(body) == {"code": 200, "sys": {"heartbeat": 3}}
    assert pml.encode_package(pml.PKG_HANDSHAKE,
                              pml.json_encode({"code": 200, "sys": {"heartbeat": 3}})) \
        == V_SERVER_HANDSHAKE


def test_ack_and_heartbeat_vectors():
    assert pml.HANDSHAKE_ACK == vec("02 00 00 00")
    assert pml.HEARTBEAT == vec("03 00 00 00")
    assert pml.encode_package(pml.PKG_HEARTBEAT) == vec("03 00 00 00")


def test_request_vectors():
    assert pml.encode_request(1, pml.ENTER_ROUTE, {"username": "alice", "rid": "room1"}) \
        == V_ENTER_REQ
    assert pml.encode_request(1, pml.GATE_ROUTE, {"uid": "alice"}) == V_GATE_REQ
    compressed = pml.encode_package(pml.PKG_DATA, pml.encode_message(
        pml.MSG_REQUEST, 2, 2, {"username": "alice", "rid": "room1"}))
    assert compressed.startswith(V_ENTER_REQ_DICT_PREFIX)
    assert len(compressed) == 4 + 0x26 and compressed.endswith(b"}")
    assert pml.encode_message(pml.MSG_REQUEST, 300, "a", {}) == V_REQ_300


def test_request_vectors_decode():
    [(ptype, body)] = pml.decode_packages(V_ENTER_REQ)
    msg = pml.decode_message(body)
    assert (ptype, msg.type, msg.id, msg.route, msg.compressed) == \
        (pml.PKG_DATA, pml.MSG_REQUEST, 1, pml.ENTER_ROUTE, False)
    assert pml.json_decode(msg.body) == {"username": "alice", "rid": "room1"}
    msg = pml.decode_message(V_REQ_300)
    assert (msg.id, msg.route, msg.body) == (300, "a", b"{}")
    msg = pml.decode_message(vec("01 02 00 02 7b 7d"), {2: pml.ENTER_ROUTE})
    assert (msg.id, msg.route, msg.compressed) == (2, pml.ENTER_ROUTE, True)
    assert pml.decode_message(vec("01 02 00 09 7b 7d")).route == 9  # unknown code stays a number


@pytest.mark.parametrize("frame,msg_id,body", [
    (V_GATE_RESP, 1, {"code": 200, "host": "127.0.0.1", "port": 3050}),
    (V_ENTER_RESP, 2, {"users": ["alice"]}),
    (V_EMPTY_RESP, 1, {}),
])
def test_response_vectors(frame, msg_id, body):
    [(ptype, data)] = pml.decode_packages(frame)
    msg = pml.decode_message(data)
    assert (ptype, msg.type, msg.id, msg.route) == (pml.PKG_DATA, pml.MSG_RESPONSE, msg_id, None)
    assert pml.json_decode(msg.body) == body
    assert pml.encode_package(pml.PKG_DATA, pml.encode_message(pml.MSG_RESPONSE, msg_id,
                                                               body=body)) == frame


@pytest.mark.parametrize("frame,route,body", [
    (V_ONADD, "onAdd", {"route": "onAdd", "user": "bob"}),
    (V_ONCHAT_JSON, "onChat", {"msg": "hi", "from": "alice", "target": "*"}),
])
def test_push_vectors(frame, route, body):
    assert pml.encode_package(pml.PKG_DATA, pml.encode_message(pml.MSG_PUSH, 0, route, body)) \
        == frame
    [(_, data)] = pml.decode_packages(frame)
    msg = pml.decode_message(data)
    assert (msg.type, msg.id, msg.route, msg.flag) == (pml.MSG_PUSH, 0, route, 0x06)
    assert pml.json_decode(msg.body) == body


def test_protobuf_push_vector():
    body = {"msg": "hi", "from": "alice", "target": "*"}
    encoded = pml.pb_encode(ONCHAT_PROTOS["server"], "onChat", body)
    assert encoded == vec("0a 02 68 69 12 05 61 6c 69 63 65 1a 01 2a")
    assert pml.encode_package(pml.PKG_DATA, pml.encode_message(pml.MSG_PUSH, 0, "onChat",
                                                               encoded)) == V_ONCHAT_PB
    [(_, data)] = pml.decode_packages(V_ONCHAT_PB)
    msg = pml.decode_message(data)
    assert pml.pb_decode(ONCHAT_PROTOS["server"], msg.route, msg.body) == body
    assert pml.pb_encode(ONCHAT_PROTOS["server"], "onChat", {"msg": "x"}) is None  # required
    with pytest.raises(pml.ProtocolError):
        pml.pb_decode(ONCHAT_PROTOS["server"], "onChat", encoded[:-1])


def test_notify_and_kick_vectors():
    assert pml.encode_message(pml.MSG_NOTIFY, 0, pml.SEND_ROUTE, {}) == V_NOTIFY_MSG
    assert pml.encode_notify(pml.SEND_ROUTE) == vec("04 00 00 19") + V_NOTIFY_MSG
    msg = pml.decode_message(V_NOTIFY_MSG)
    assert (msg.type, msg.id, msg.route, msg.body) == (pml.MSG_NOTIFY, 0, pml.SEND_ROUTE, b"{}")
    assert pml.encode_package(pml.PKG_KICK, pml.json_encode({"reason": "kick"})) == V_KICK


def test_varints():
    assert pml.encode_varint(1) == vec("01")
    assert pml.encode_varint(300) == vec("ac 02")
    assert pml.encode_varint(0) == vec("00")
    assert pml.decode_varint(vec("ac 02 ff"), 0) == (300, 2)
    assert pml.decode_varint(pml.encode_varint(2 ** 35 - 1), 0, 5) == (2 ** 35 - 1, 5)
    with pytest.raises(pml.ProtocolError):
        pml.decode_varint(vec("ac"), 0)
    with pytest.raises(pml.ProtocolError):
        pml.decode_message(vec("04 80 80 80 80 80 01"))  # a 6-byte id


def test_several_packages_in_one_frame_and_truncation():
    frame = pml.HEARTBEAT + V_ONADD + V_KICK
    assert [t for t, _ in pml.decode_packages(frame)] == [3, 4, 5]
    for cut in (1, 3, len(pml.HEARTBEAT) + 2, len(frame) - 1):
        with pytest.raises(pml.ProtocolError):
            pml.decode_packages(frame[:cut])
    assert pml.decode_packages(b"") == []
    for bad in (vec("00"), vec("00 05"), vec("06 05 6f 6e"), vec("03 00"), vec("0e 00")):
        with pytest.raises(pml.ProtocolError):
            pml.decode_message(bad)


def test_package_limits():
    assert pml.encode_package(4, b"", length=0xFFFFFF) == vec("04 ff ff ff")
    with pytest.raises(ValueError):
        pml.encode_message(pml.MSG_REQUEST, 1, "r" * 256, {})
    assert len(pml.encode_message(pml.MSG_REQUEST, 1, "r" * 255, b"")) == 1 + 1 + 1 + 255


def test_strings_the_browser_way():
    assert pml.strencode("\U0001F600") == vec("ed a0 bd ed b8 80")  # CESU-8
    assert pml.strdecode(vec("ed a0 bd ed b8 80")) == "\U0001F600"
    assert pml.strencode("h\u00e9\u4e2d") == "h\u00e9\u4e2d".encode()
    assert pml.strdecode("h\u00e9\u4e2d".encode()) == "h\u00e9\u4e2d"
    # Proper 4-byte UTF-8 is garbage to the browser.
    assert pml.strdecode("\U0001F600".encode()) != "\U0001F600"
    assert pml.json_encode({"m": "\U0001F600"}) == b'{"m":"' + vec("ed a0 bd ed b8 80") + b'"}'
    assert pml.json_decode(b'{"m":"\\ud83d\\ude00"}') == {"m": "\U0001F600"}
    with pytest.raises(ValueError):
        pml.json_decode(b"NaN")
    with pytest.raises(ValueError):
        pml.json_decode(b"")


def test_ws_frame_builder():
    assert pml.ws_frame(pml.OP_BINARY, b"\x03\x00\x00\x00", mask=False) == vec("82 04 03 00 00 00")
    f = pml.ws_frame(pml.OP_BINARY, b"ab", mask_key=b"\x01\x02\x03\x04")
    assert f == vec("82 82 01 02 03 04") + bytes((ord("a") ^ 1, ord("b") ^ 2))
    assert pml.ws_frame(pml.OP_BINARY, b"x" * 300, mask=False)[:4] == vec("82 7e 01 2c")
    assert pml.ws_frame(pml.OP_TEXT, b"", mask=False, length=2 ** 40)[:10] == \
        vec("81 7f 00 00 01 00 00 00 00 00")


# ---- behaviour against fake servers ----

class FakeServer:
    """A websockets server on 127.0.0.1 running handler(ws) per connection; records every
    binary message it receives with its arrival time."""

    def __init__(self, handler):
        self.handler = handler
        self.server = None
        self.port = None

    async def __aenter__(self):
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0, compression=None,
                                             ping_interval=None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), 5)


async def recv_package(ws, timeout=3.0):
    frame = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(frame, bytes), f"the client sent a text frame: {frame!r}"
    [(ptype, body)] = pml.decode_packages(frame)  # the client sends one package per frame
    return ptype, body


async def server_handshake(ws, sys_=None, code=200):
    ptype, body = await recv_package(ws)
    assert ptype == pml.PKG_HANDSHAKE
    resp = {"code": code}
    if code == 200:
        resp["sys"] = sys_ or {}
    await ws.send(pml.encode_package(pml.PKG_HANDSHAKE, pml.json_encode(resp)))
    return pml.json_decode(body)


def test_browser_flow_against_fake_connector():
    seen = {}
    dict_ = {"chat.chatHandler.send": 1, "connector.entryHandler.enter": 2}

    async def handler(ws):
        hs = await server_handshake(ws, {"heartbeat": 1, "dict": dict_, "useDict": True,
                                         "protos": {"server": {}, "client": {}, "version": "v1"}})
        seen["handshake"] = hs
        assert await recv_package(ws) == (pml.PKG_HANDSHAKE_ACK, b"")
        await ws.send(pml.HEARTBEAT)
        hb_sent = time.monotonic()
        ptype, body = await recv_package(ws)
        # The request comes right after the ACK; the client's heartbeat only after 1 s.
        assert ptype == pml.PKG_DATA
        msg = pml.decode_message(body, {v: k for k, v in dict_.items()})
        seen["request"] = msg
        # Response and a push in one frame: both must be handled.
        await ws.send(pml.encode_package(pml.PKG_DATA, pml.encode_message(
            pml.MSG_RESPONSE, msg.id, body={"users": ["alice"]})) + pml.encode_package(
            pml.PKG_DATA, pml.encode_message(pml.MSG_PUSH, 0, "onAdd",
                                             {"route": "onAdd", "user": "bob"})))
        ptype, _ = await recv_package(ws, timeout=3)
        seen["heartbeat_delay"] = time.monotonic() - hb_sent
        seen["heartbeat_type"] = ptype
        ptype, body = await recv_package(ws)
        seen["notify"] = pml.decode_message(body, {v: k for k, v in dict_.items()})
        await ws.send(pml.encode_package(pml.PKG_KICK, pml.json_encode({"reason": "bye"})))
        await ws.close()

    async def main():
        async with FakeServer(handler) as srv:
            state = pml.BrowserState(first_id=2)
            client = await pml.Client.connect("127.0.0.1", srv.port, state=state)
            resp = await client.request(pml.ENTER_ROUTE, {"username": "alice", "rid": "r"})
            assert resp == {"users": ["alice"]}
            assert await client.next_push("onAdd", 2) == ("onAdd", {"route": "onAdd",
                                                                     "user": "bob"})
            await asyncio.wait_for(_until(lambda: client.heartbeats_sent), 3)
            await client.notify(pml.SEND_ROUTE, {"content": "x"})
            assert await client.wait_kicked(3) == "bye"
            await client.wait_closed(3)
            assert client.violations == []
            assert state.protos["version"] == "v1" and state.peek_id() == 3
            return client

    client = run(main())
    assert seen["handshake"] == {"sys": {"type": "js-websocket", "version": "0.0.1", "rsa": {},
                                         "protoVersion": 0}}
    req = seen["request"]
    assert (req.id, req.route, req.compressed) == (2, pml.ENTER_ROUTE, True)
    assert seen["heartbeat_type"] == pml.PKG_HEARTBEAT
    assert 0.9 <= seen["heartbeat_delay"] < 2.5
    assert (seen["notify"].type, seen["notify"].route) == (pml.MSG_NOTIFY, pml.SEND_ROUTE)
    assert client.heartbeat_interval == 1.0 and client.kick_reason == "bye"


async def _until(pred):
    while not pred():
        await asyncio.sleep(0.01)


def test_query_entry_and_ids_across_connections():
    ids = []

    async def gate(ws):
        await server_handshake(ws, {"protos": {"server": {}, "client": {}, "version": "g"}})
        assert (await recv_package(ws))[0] == pml.PKG_HANDSHAKE_ACK
        _, body = await recv_package(ws)
        msg = pml.decode_message(body)
        ids.append(("gate", msg.id, msg.route, pml.json_decode(msg.body)))
        await ws.send(pml.encode_package(pml.PKG_DATA, pml.encode_message(
            pml.MSG_RESPONSE, msg.id, body={"code": 200, "host": "127.0.0.1",
                                            "port": conn_port[0]})))
        await ws.wait_closed()

    async def connector(ws):
        hs = await server_handshake(ws, {"heartbeat": 3})
        ids.append(("protoVersion", hs["sys"]["protoVersion"]))
        await recv_package(ws)
        _, body = await recv_package(ws)
        msg = pml.decode_message(body)
        ids.append(("connector", msg.id, msg.route, pml.json_decode(msg.body)))
        await ws.send(pml.encode_package(pml.PKG_DATA, pml.encode_message(
            pml.MSG_RESPONSE, msg.id, body={"users": ["alice"]})))
        await ws.wait_closed()

    conn_port = [0]

    async def main():
        async with FakeServer(gate) as g, FakeServer(connector) as c:
            conn_port[0] = c.port
            assert await pml.query_entry("127.0.0.1", g.port, "bob") == \
                {"code": 200, "host": "127.0.0.1", "port": c.port}
            client, resp = await pml.login("127.0.0.1", g.port, "alice", "room1")
            assert resp == {"users": ["alice"]}
            await client.close()
            assert client.violations == []

    run(main())
    assert ids == [
        ("gate", 1, pml.GATE_ROUTE, {"uid": "bob"}),
        ("gate", 1, pml.GATE_ROUTE, {"uid": "alice"}),
        ("protoVersion", "g"),
        ("connector", 2, pml.ENTER_ROUTE, {"username": "alice", "rid": "room1"}),
    ]


def test_handshake_refused_sends_no_ack():
    got = []

    async def handler(ws):
        await server_handshake(ws, code=501)
        try:
            got.append(await asyncio.wait_for(ws.recv(), 0.3))
        except asyncio.TimeoutError:
            pass
        await ws.close()

    async def main():
        async with FakeServer(handler) as srv:
            with pytest.raises(pml.HandshakeError) as exc:
                await pml.Client.connect("127.0.0.1", srv.port)
            assert exc.value.code == 501

    run(main())
    assert got == []


def test_violations_are_recorded():
    async def handler(ws):
        await server_handshake(ws)
        await recv_package(ws)
        await ws.send("text frame")
        await ws.send(pml.HANDSHAKE_ACK)  # type 2 towards the client
        await ws.send(pml.encode_package(pml.PKG_DATA, pml.encode_message(
            pml.MSG_RESPONSE, 77, body={})))  # unknown id
        await ws.send(V_ONADD[:-3])  # a package split across messages
        await ws.send(pml.encode_package(pml.PKG_KICK))  # empty kick body
        await ws.close()

    async def main():
        async with FakeServer(handler) as srv:
            client = await pml.Client.connect("127.0.0.1", srv.port)
            await client.wait_closed(3)
            return client

    client = run(main())
    text = "\n".join(client.violations)
    for needle in ("text frame", "package type 2", "unknown or answered id 77",
                   "undecodable message", "empty kick body"):
        assert needle in text, text
    assert client.heartbeat_interval == 0


def test_pending_request_fails_when_closed_and_times_out():
    async def handler(ws):
        await server_handshake(ws)
        await recv_package(ws)
        await recv_package(ws)  # first request: never answered
        _, body = await recv_package(ws)  # second: close instead
        await ws.send(pml.encode_package(pml.PKG_KICK, pml.json_encode({"reason": "kick"})))
        await ws.close()

    async def main():
        async with FakeServer(handler) as srv:
            client = await pml.Client.connect("127.0.0.1", srv.port)
            with pytest.raises(pml.RequestTimeout):
                await client.request("a.b.c", {}, timeout=0.2)
            with pytest.raises(pml.ConnectionLost) as exc:
                await client.request("a.b.d", {}, timeout=3)
            assert exc.value.kick_reason == "kick"
            with pytest.raises(pml.ConnectionLost):
                await client.next_push(timeout=1)

    run(main())


def test_client_gives_up_on_silent_server():
    async def handler(ws):
        await server_handshake(ws, {"heartbeat": 0.2})
        await recv_package(ws)
        await ws.send(pml.HEARTBEAT)
        await ws.wait_closed()  # never answers the client's heartbeat

    async def main():
        async with FakeServer(handler) as srv:
            client = await pml.Client.connect("127.0.0.1", srv.port)
            start = time.monotonic()
            await client.wait_closed(3)
            return client, time.monotonic() - start

    client, took = run(main())
    # First heartbeat sent after 0.2 s, then 0.4 s without anything from the server: not
    # before that (how much later, on a loaded machine, is not asserted; wait_closed
    # bounds the wait).
    assert client.heartbeat_timed_out and len(client.heartbeats_sent) == 1
    assert took >= 0.5, took


def test_raw_websocket_against_fake_server():
    async def handler(ws):
        frame = await ws.recv()
        await ws.send(frame + pml.HEARTBEAT)  # echo, plus a second package
        await ws.wait_closed()

    async def main():
        async with FakeServer(handler) as srv:
            raw = await pml.RawWebSocket.connect("127.0.0.1", srv.port)
            await raw.send_binary(V_HANDSHAKE)
            packages = await raw.recv_packages(3)
            assert packages == [(pml.PKG_HANDSHAKE, V_HANDSHAKE[4:]), (pml.PKG_HEARTBEAT, b"")]
            await raw.send_frame(pml.OP_CLOSE, b"\x03\xe8")
            assert await raw.wait_closed(3) == 1000
            await raw.close()
            # A frame the server must refuse: unmasked client frame -> close 1002.
            raw = await pml.RawWebSocket.connect("127.0.0.1", srv.port)
            await raw.send_frame(pml.OP_BINARY, b"x", mask=False)
            assert await raw.wait_closed(3) in (1002, None)
            await raw.close()

    run(main())
