"""Hostile client input against a running gate and connector (issue "client edge", item 6).

Every case of the table in docs/protocol-hardening.md is sent to the real servers and must
get exactly the documented answer (response code, kick, or close with its WebSocket code)
and move exactly its counter on /metrics. Throughout each case a second, well-behaved
client on the same server (a "bystander") keeps sending requests, heartbeating and
receiving pushes; it must see every response and never be disconnected.

Most cases share one small cluster (registry, 1 chat, 1 connector, 1 gate) with short
handshake and heartbeat timeouts; max-connections and the slow consumer get their own.
"""
import asyncio
import itertools
import json
import resource
import struct
import time

import pytest

import harness
import pomelo as pml

HEARTBEAT_S = 2            # the shared connector's heartbeat (timeout: 2 x)
HANDSHAKE_TIMEOUT_MS = 1000
# The defaults of the configuration (docs/configuration.md), which the shared cluster keeps.
PACKAGE_LIMIT = 65536
BODY_LIMIT = 16384
JSON_DEPTH = 16
RATE_PER_S = 50
RATE_BURST = 100
RATE_KICK_AFTER = 50
MAX_PENDING = 64           # requests in flight per session (docs/protocol-hardening.md)
CLOSE_GRACE_S = 3       # a closing session's time to take its last packages (same)

KINDS = ("gate", "connector")
SID = {"gate": "gate-server-1", "connector": "connector-server-1"}
PREFIX = {"gate": "tern_gate", "connector": "tern_connector"}
# A route each server answers, one it does not, and a request that reaches the service.
OWN_ROUTE = {"gate": pml.GATE_ROUTE, "connector": pml.SEND_ROUTE}
OTHER_ROUTE = {"gate": pml.ENTER_ROUTE, "connector": pml.GATE_ROUTE}
# Compressed codes nobody knows: the gate has no dictionary at all.
UNKNOWN_CODE = {"gate": 3, "connector": 999}

WS_NORMAL, WS_GOING_AWAY, WS_PROTOCOL, WS_UNACCEPTABLE = 1000, 1001, 1002, 1003
WS_POLICY, WS_TOO_BIG = 1008, 1009

_names = itertools.count(1)


def unique(prefix):
    return f"{prefix}{next(_names)}"


def run(coro, timeout=60.0):
    return harness.run_async(coro, timeout)


# ---- the shared cluster ----

class Servers:
    """The running cluster, with metric helpers keyed by kind ("gate" or "connector")."""

    def __init__(self, cluster):
        self.cluster = cluster

    def addr(self, kind):
        return self.cluster.client_address(SID[kind])

    def gate(self):
        return self.cluster.gate_address()

    def metrics(self, kind):
        return self.cluster.metrics(SID[kind])

    def counter(self, kind, samples, suffix, **labels):
        return harness.sample(samples, f"{PREFIX[kind]}_{suffix}", 0.0, **labels)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    factory = harness.ClusterFactory(tmp_path_factory.mktemp("hostile"))
    topo = harness.Topology(connectors=1, chats=1, options={
        "connector": {"heartbeat": HEARTBEAT_S, "handshakeTimeout": HANDSHAKE_TIMEOUT_MS},
        "gate": {"handshakeTimeout": HANDSHAKE_TIMEOUT_MS, "webRoot": ""}})
    cluster = factory.cluster(topo)
    yield Servers(cluster)
    problems = factory.shutdown()
    if problems:
        pytest.fail(harness.describe_problems(problems), pytrace=False)


class Deltas:
    """Counter changes between construction and check()."""

    def __init__(self, servers, kind):
        self.servers, self.kind = servers, kind
        self.before = servers.metrics(kind)

    def get(self, suffix, **labels):
        after = self.servers.metrics(self.kind)
        return (self.servers.counter(self.kind, after, suffix, **labels)
                - self.servers.counter(self.kind, self.before, suffix, **labels))

    def bad(self, case):
        return self.get("bad_input_total", case=case)

    async def wait_bad(self, case, want, timeout=5.0):
        """Waits until the case's counter moved by want (server-side work may lag the
        client's view by a moment); returns the final delta."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.bad(case)
            if got >= want or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.05)


# ---- the well-behaved bystander ----

class Bystander:
    """A browser-like client on the same server as a hostile case: logged in (connector) or
    connected (gate), sending a request every 50 ms and heartbeating as the browser does.
    finish() checks that every request was answered, every own chat message came back as
    a push, no heartbeat was missed, and the connection is still up."""

    def __init__(self, servers, kind):
        self.servers, self.kind = servers, kind
        self.client = None
        self.answered = 0
        self.room = unique("calm")
        self.name = unique("by")
        self._stop = asyncio.Event()
        self._task = None

    async def start(self):
        if self.kind == "gate":
            host, port = self.servers.gate()
            self.client = await pml.Client.connect(host, port)
        else:
            host, port = self.servers.gate()
            self.client, resp = await pml.login(host, port, self.name, self.room)
            assert resp == {"users": [self.name]}, resp
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def _loop(self):
        n = 0
        while not self._stop.is_set():
            n += 1
            if self.kind == "gate":
                resp = await self.client.request(pml.GATE_ROUTE, {"uid": f"{self.name}-{n}"},
                                                 timeout=10)
                assert isinstance(resp, dict) and resp.get("code") == 200, resp
            else:
                resp = await self.client.request(pml.SEND_ROUTE, {
                    "rid": self.room, "content": f"tick {n}", "from": self.name,
                    "target": "*"}, timeout=10)
                assert resp == {}, resp
            self.answered += 1
            try:
                await asyncio.wait_for(self._stop.wait(), 0.05)
            except asyncio.TimeoutError:
                pass

    async def wait_answered(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.answered < n:
            if self._task.done():
                await self._task  # raises what went wrong
            assert time.monotonic() < deadline, \
                f"bystander stuck at {self.answered} answers (wanted {n})"
            await asyncio.sleep(0.01)

    async def finish(self, more=2):
        # It must keep working after the hostile case too, not only before.
        await self.wait_answered(self.answered + more)
        self._stop.set()
        await self._task
        c = self.client
        assert not c.is_closed, f"bystander disconnected (code {c.close_code}, kick " \
                                f"{c.kick_reason!r})"
        assert c.violations == [], c.violations
        if self.kind == "connector":
            assert not c.heartbeat_timed_out
            assert c.heartbeats_received, "no heartbeat reached the bystander"
            ticks = lambda: [b for r, b in c.pushes if r == "onChat"  # noqa: E731
                             and b.get("from") == self.name]
            deadline = time.monotonic() + 5
            while len(ticks()) < self.answered and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert [b["msg"] for b in ticks()] == \
                [f"tick {i}" for i in range(1, self.answered + 1)]
        await c.close()

    async def abort(self):
        self._stop.set()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except BaseException:  # noqa: BLE001 - the scenario's failure is what matters
                pass
        if self.client:
            await self.client.abort()


def with_bystander(servers, kind, scenario, timeout=60.0):
    """Runs scenario() while a bystander works on the same server: it has been answered
    before the scenario starts, must be answered again after it, and is checked whole."""
    async def main():
        by = await Bystander(servers, kind).start()
        try:
            await by.wait_answered(1)
            result = await scenario()
        except BaseException:
            await by.abort()
            raise
        await by.finish()
        return result
    result = run(main(), timeout)
    servers.cluster.assert_running()
    return result


# ---- raw hostile sessions ----

async def raw_connect(servers, kind):
    host, port = servers.addr(kind)
    return await pml.RawWebSocket.connect(host, port)


async def raw_session(servers, kind, ack=True):
    """A hand-driven session: handshake, and unless ack=False the ACK (after which the
    connector sends its first heartbeat, consumed here)."""
    raw = await raw_connect(servers, kind)
    await raw.send_binary(pml.encode_package(pml.PKG_HANDSHAKE, pml.handshake_body()))
    pkgs = await raw.recv_packages()
    assert pkgs and pkgs[0][0] == pml.PKG_HANDSHAKE, pkgs
    assert pml.json_decode(pkgs[0][1])["code"] == 200
    if ack:
        await raw.send_binary(pml.HANDSHAKE_ACK)
        if kind == "connector":
            assert await raw.recv_packages() == [(pml.PKG_HEARTBEAT, b"")]
    return raw


def request(msg_id, route, body):
    """A DATA package holding a request; body: dict (JSON) or raw bytes."""
    return pml.encode_package(pml.PKG_DATA, pml.encode_message(pml.MSG_REQUEST, msg_id, route,
                                                               body))


def notify(route, body):
    return pml.encode_package(pml.PKG_DATA, pml.encode_message(pml.MSG_NOTIFY, 0, route, body))


async def next_packages(raw, want, timeout=5.0, keep_heartbeats=False):
    """Reads frames until `want` packages other than heartbeats arrived (or the connection
    closed); returns them as (type, body) in order."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < want:
        pkgs = await raw.recv_packages(max(0.01, deadline - time.monotonic()))
        if pkgs is None:
            break
        out += [p for p in pkgs if keep_heartbeats or p[0] != pml.PKG_HEARTBEAT]
    return out


async def response(raw, msg_id, timeout=5.0):
    """The next non-heartbeat package, which must be the response to msg_id."""
    pkgs = await next_packages(raw, 1, timeout)
    assert pkgs, "connection closed instead of answering"
    ptype, body = pkgs[0]
    assert ptype == pml.PKG_DATA, pkgs
    msg = pml.decode_message(body)
    assert (msg.type, msg.id) == (pml.MSG_RESPONSE, msg_id), msg
    return pml.json_decode(msg.body)


async def probe(raw, kind, msg_id):
    """A well-formed request the service answers: proves the session still works."""
    body = {"uid": "probe"} if kind == "gate" else {"content": "x"}
    await raw.send_binary(request(msg_id, OWN_ROUTE[kind], body))
    resp = await response(raw, msg_id)
    if kind == "gate":
        assert resp.get("code") == 200, resp
    else:
        assert resp.get("code") == 403, resp  # the connector's own "enter a room first"


async def expect_close(raw, code, timeout=5.0, kick=None):
    """Reads to the end: optionally one KICK with reason `kick` first (data before it is
    allowed); then the close frame with `code`. Returns the packages seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        msg = await raw.recv_message(max(0.01, deadline - time.monotonic()))
        assert msg is not None, f"stream ended without a close frame after {seen}"
        op, payload = msg
        if op == pml.OP_CLOSE:
            got = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
            assert got == code, f"close code {got}, expected {code}; packages {seen}"
            break
        assert op == pml.OP_BINARY, f"opcode {op}"
        seen += pml.decode_packages(payload)
    kicks = [json.loads(b) for t, b in seen if t == pml.PKG_KICK]
    if kick is None:
        assert kicks == [], seen
    else:
        assert kicks == [{"reason": kick}], seen
        assert seen[-1][0] == pml.PKG_KICK, "packages after the KICK"
    return seen


def nested(depth):
    """A JSON object of exactly `depth` (every value on the deepest path counts: {"a":1} is
    2 deep), as the server measures it."""
    return ('{"a":' + "[" * (depth - 2) + "1" + "]" * (depth - 2) + "}").encode()


# ---- bodies and routes: 400, 404, 413 ----

BODY_CASES = [
    ("bad_json", b'{"uid":', 400, "body is not valid JSON"),
    ("bad_json", b'{"uid":"x"} trailing', 400, "body is not valid JSON"),
    ("bad_json", b"\xff\xfe{}", 400, "body is not valid JSON"),
    ("json_too_deep", nested(JSON_DEPTH + 1), 400, "body nested too deep"),
    ("body_not_object", b"[1,2]", 400, "body must be a JSON object"),
    ("body_not_object", b'"uid"', 400, "body must be a JSON object"),
    ("body_too_large", b'{"uid":"' + b"x" * (BODY_LIMIT - 9) + b'"}', 413, "body too large"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case,body,code,message", BODY_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BODY_CASES)])
def test_bad_body(servers, kind, case, body, code, message):
    """A request gets {"code":400|413,...}; the same input as a notify is dropped and
    counted, never answered; the session goes on."""
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        await raw.send_binary(request(7, OWN_ROUTE[kind], body))
        assert await response(raw, 7) == {"code": code, "error": True, "message": message}
        await probe(raw, kind, 8)
        await raw.send_binary(notify(OWN_ROUTE[kind], body))
        await probe(raw, kind, 9)  # the next answer is the probe's: the notify got none
        assert await d.wait_bad(case, 2) == 2
        await raw.close()
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_limits_are_inclusive(servers, kind):
    """A body of exactly bodyLimit bytes and JSON exactly jsonDepth deep reach the service."""
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        key = b"uid" if kind == "gate" else b"content"
        pad = BODY_LIMIT - len(b'{"":""}') - len(key)
        body = b'{"' + key + b'":"' + b"x" * pad + b'"}'
        assert len(body) == BODY_LIMIT
        await raw.send_binary(request(3, OWN_ROUTE[kind], body))
        resp = await response(raw, 3)
        # The service's own answers: the gate refuses a 16 KB uid, the connector a send
        # outside a room.
        assert resp.get("code") == (500 if kind == "gate" else 403), resp
        await raw.send_binary(request(4, OWN_ROUTE[kind], nested(JSON_DEPTH)))
        resp = await response(raw, 4)
        assert resp.get("code") == (500 if kind == "gate" else 403), resp
        assert d.bad("body_too_large") == 0 and d.bad("json_too_deep") == 0
        await raw.close()
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", ["unknown_route", "route_not_served", "unknown_route_code"])
def test_bad_route(servers, kind, case):
    """Unknown routes, routes another server type serves, and dictionary codes the server
    does not know: 404 for a request, dropped for a notify."""
    route = {"unknown_route": "nope.nopeHandler.nope", "route_not_served": OTHER_ROUTE[kind],
             "unknown_route_code": UNKNOWN_CODE[kind]}[case]
    message = {"unknown_route": "unknown route",
               "route_not_served": "route not served by this server",
               "unknown_route_code": "unknown route code"}[case]

    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        await raw.send_binary(request(11, route, {"uid": "x"}))
        assert await response(raw, 11) == {"code": 404, "error": True, "message": message}
        await raw.send_binary(notify(route, {"uid": "x"}))
        await probe(raw, kind, 12)
        assert await d.wait_bad(case, 2) == 2
        await raw.close()
    with_bystander(servers, kind, scenario)


# ---- the package layer ----

@pytest.mark.parametrize("kind", KINDS)
def test_package_too_large_kicks(servers, kind):
    """A package over packageLimit (64 KiB): KICK "package too large", then close 1009;
    decided on the header alone, so a body that never comes is not waited for."""
    async def scenario():
        d = Deltas(servers, kind)
        # A whole oversized package.
        raw = await raw_session(servers, kind)
        body = pml.encode_message(pml.MSG_REQUEST, 5, OWN_ROUTE[kind], b"x" * PACKAGE_LIMIT)
        assert len(body) > PACKAGE_LIMIT
        await raw.send_binary(pml.encode_package(pml.PKG_DATA, body))
        await expect_close(raw, WS_TOO_BIG, kick="package too large")
        await raw.close()
        # Only a header claiming 16 MiB: kicked at once.
        raw = await raw_session(servers, kind)
        t0 = time.monotonic()
        await raw.send_binary(pml.encode_package(pml.PKG_DATA, b"", length=0xFFFFFF) + b"abc")
        await expect_close(raw, WS_TOO_BIG, kick="package too large")
        assert time.monotonic() - t0 < 2
        await raw.close()
        # The same header split over fragments, the rest never sent.
        raw = await raw_session(servers, kind)
        head = pml.encode_package(pml.PKG_DATA, b"", length=PACKAGE_LIMIT + 1)
        await raw.send_frame(pml.OP_BINARY, head[:2], fin=False)
        await raw.send_frame(pml.OP_CONT, head[2:], fin=False)
        await expect_close(raw, WS_TOO_BIG, kick="package too large")
        await raw.close()
        # Before the handshake: only the handshake answer may be sent, so no KICK.
        raw = await raw_connect(servers, kind)
        await raw.send_binary(pml.encode_package(pml.PKG_DATA, b"", length=PACKAGE_LIMIT + 1))
        await expect_close(raw, WS_TOO_BIG)
        await raw.close()
        assert await d.wait_bad("package_too_large", 4) == 4
        assert d.get("kicks_total", reason="package too large") == 3
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_package_at_the_limit_is_processed(servers, kind):
    """Exactly packageLimit bytes of body is accepted (then 413: over bodyLimit)."""
    async def scenario():
        raw = await raw_session(servers, kind)
        head = pml.encode_message(pml.MSG_REQUEST, 6, OWN_ROUTE[kind], b"")
        body = head + b'{"uid":"' + b"x" * (PACKAGE_LIMIT - len(head) - 10) + b'"}'
        assert len(body) == PACKAGE_LIMIT
        await raw.send_binary(pml.encode_package(pml.PKG_DATA, body))
        assert (await response(raw, 6))["code"] == 413
        await probe(raw, kind, 7)
        await raw.close()
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_text_frame_closes(servers, kind):
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        await raw.send_frame(pml.OP_TEXT, pml.HEARTBEAT)
        await expect_close(raw, WS_UNACCEPTABLE)
        await raw.close()
        raw = await raw_connect(servers, kind)  # before the handshake too
        await raw.send_frame(pml.OP_TEXT, b'{"sys":{}}')
        await expect_close(raw, WS_UNACCEPTABLE)
        await raw.close()
        assert await d.wait_bad("text_frame", 2) == 2
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ptype", [0, 5, 6, 0x7F, 0xFF])
def test_unknown_package_type_closes(servers, kind, ptype):
    """Types other than 1-4 (5, KICK, is server-to-client only) close the connection; the
    packages before it in the same frame are still handled."""
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        await raw.send_binary(request(3, OWN_ROUTE[kind], {"uid": "a"}) +
                              pml.encode_package(ptype, b"{}") +
                              request(4, OWN_ROUTE[kind], {"uid": "b"}))
        seen = await expect_close(raw, WS_PROTOCOL)
        ids = [pml.decode_message(b).id for t, b in seen if t == pml.PKG_DATA]
        assert ids == [3], seen
        await raw.close()
        assert await d.wait_bad("unknown_package", 1) == 1
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_or_empty_message_closes(servers, kind):
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        pkg = request(3, OWN_ROUTE[kind], {"uid": "a"})
        await raw.send_binary(pkg[:-3])  # a package cut by the end of the message
        await expect_close(raw, WS_PROTOCOL)
        await raw.close()
        raw = await raw_session(servers, kind)
        await raw.send_binary(pml.HEARTBEAT[:2])  # a header cut short
        await expect_close(raw, WS_PROTOCOL)
        await raw.close()
        raw = await raw_session(servers, kind)
        await raw.send_binary(b"")
        await expect_close(raw, WS_PROTOCOL)
        await raw.close()
        assert await d.wait_bad("truncated_package", 3) == 3
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_data_before_ack_is_dropped(servers, kind):
    """Before the ACK nothing but the handshake answer is sent: a request then is dropped
    (counted, no response), and the session is fine once the ACK comes."""
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_connect(servers, kind)
        await raw.send_binary(request(1, OWN_ROUTE[kind], {"uid": "early"}))  # INITED
        await raw.send_binary(pml.encode_package(pml.PKG_HANDSHAKE, pml.handshake_body()))
        [(ptype, _)] = await raw.recv_packages()
        assert ptype == pml.PKG_HANDSHAKE
        await raw.send_binary(request(2, OWN_ROUTE[kind], {"uid": "early"}))  # WAIT_ACK
        with pytest.raises(asyncio.TimeoutError):
            await raw.recv_packages(timeout=0.5)
        await raw.send_binary(pml.HANDSHAKE_ACK)
        await probe(raw, kind, 3)
        assert await d.wait_bad("data_before_ack", 2) == 2
        await raw.close()
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_out_of_state_packages_are_dropped(servers, kind):
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_connect(servers, kind)
        await raw.send_binary(pml.HEARTBEAT)        # before the handshake
        await raw.send_binary(pml.HANDSHAKE_ACK)    # ACK before the handshake
        await raw.send_binary(pml.encode_package(pml.PKG_HANDSHAKE, pml.handshake_body()))
        [(ptype, _)] = await raw.recv_packages()
        assert ptype == pml.PKG_HANDSHAKE
        await raw.send_binary(pml.HEARTBEAT)        # before the ACK
        await raw.send_binary(pml.HANDSHAKE_ACK)
        if kind == "connector":
            assert await raw.recv_packages() == [(pml.PKG_HEARTBEAT, b"")]
        await raw.send_binary(pml.encode_package(pml.PKG_HANDSHAKE, pml.handshake_body()))
        await raw.send_binary(pml.HANDSHAKE_ACK)    # a second ACK
        await probe(raw, kind, 1)                   # nothing came before the response
        assert await d.wait_bad("out_of_state", 5) == 5
        await raw.close()
    with_bystander(servers, kind, scenario)


BAD_MESSAGES = [
    ("bad_message", bytes((0x10,)) + b"\x01\x01a{}"),             # gzip bit
    ("bad_message", bytes((0x20,)) + b"\x01\x01a{}"),             # reserved bit
    ("bad_message", bytes((4 << 1,)) + b"\x01{}"),                 # message type 4
    ("bad_message", b"\x00\x81\x81\x81\x81\x81\x01"),              # id over 5 bytes
    ("bad_message", b"\x00\x05\x20abc"),                           # route runs past the end
    ("bad_message", b"\x00"),                                      # no id
    ("bad_message_type", pml.encode_message(pml.MSG_RESPONSE, 9, None, {})),
    ("bad_message_type", pml.encode_message(pml.MSG_PUSH, 0, "onChat", {})),
    ("bad_request_id", pml.encode_message(pml.MSG_REQUEST, 0, pml.GATE_ROUTE, {})),
]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_messages_are_dropped(servers, kind):
    """Malformed message layers, responses or pushes from the client and request id 0 are
    dropped and counted; nothing is answered (the id cannot be trusted) and the session
    goes on."""
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        for i, (_, msg) in enumerate(BAD_MESSAGES):
            await raw.send_binary(pml.encode_package(pml.PKG_DATA, msg))
            await probe(raw, kind, 100 + i)
        for case in {c for c, _ in BAD_MESSAGES}:
            want = sum(1 for c, _ in BAD_MESSAGES if c == case)
            assert await d.wait_bad(case, want) == want, case
        await raw.close()
    with_bystander(servers, kind, scenario)


def test_duplicate_request_id_is_dropped(servers):
    """A request reusing an id that is still outstanding is dropped: answering it would
    hand the client a second response for one callback. It needs an id the service holds:
    on the connector a send waits for the chat server while the duplicate arrives in the
    same frame (the gate answers everything at once, so no id stays outstanding there)."""
    kind = "connector"

    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        await raw.send_binary(request(1, pml.ENTER_ROUTE, {"username": unique("dup"),
                                                           "rid": unique("dup")}))
        assert "users" in await response(raw, 1)
        send = request(2, pml.SEND_ROUTE, {"content": "once"})
        await raw.send_binary(send + send)
        pkgs = await next_packages(raw, 2)  # the onChat push and one response
        responses = [pml.decode_message(b) for t, b in pkgs if t == pml.PKG_DATA]
        assert sorted(m.type for m in responses) == [pml.MSG_RESPONSE, pml.MSG_PUSH]
        with pytest.raises(asyncio.TimeoutError):
            await raw.recv_packages(timeout=0.5)
        assert await d.wait_bad("bad_request_id", 1) == 1
        await raw.close()
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_handshake_refused(servers, kind):
    """A handshake that is not JSON or has no sys: {"code":500}, then close."""
    async def scenario():
        d = Deltas(servers, kind)
        for body in (b"not json", b'{"user":{}}', b""):
            raw = await raw_connect(servers, kind)
            await raw.send_binary(pml.encode_package(pml.PKG_HANDSHAKE, body))
            seen = await expect_close(raw, WS_PROTOCOL)
            assert seen == [(pml.PKG_HANDSHAKE, b'{"code":500}')], seen
            await raw.close()
        assert await d.wait_bad("handshake_refused", 3) == 3
        assert d.get("closes_total", reason="handshake_refused") == 3
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_handshake_timeout_closes(servers, kind):
    """No handshake, or no ACK, within handshakeTimeout: close 1008."""
    async def scenario():
        d = Deltas(servers, kind)
        idle = await raw_connect(servers, kind)
        no_ack = await raw_session(servers, kind, ack=False)
        t0 = time.monotonic()
        for raw in (idle, no_ack):
            await expect_close(raw, WS_POLICY, timeout=HANDSHAKE_TIMEOUT_MS / 1000 + 3)
            await raw.close()
        elapsed = time.monotonic() - t0
        assert elapsed < HANDSHAKE_TIMEOUT_MS / 1000 + 2, elapsed
        assert await d.wait_bad("handshake_timeout", 2) == 2
        assert d.get("closes_total", reason="handshake_timeout") == 2
    with_bystander(servers, kind, scenario)


def test_heartbeat_timeout_closes(servers):
    """A connector client that stops heartbeating is closed after 2 x heartbeat; data
    packages do not count as heartbeats."""
    async def scenario():
        d = Deltas(servers, "connector")
        host, port = servers.addr("connector")
        quiet = await pml.Client.connect(host, port, auto_heartbeat=False)
        assert quiet.heartbeat_interval == HEARTBEAT_S
        t0 = time.monotonic()
        while not quiet.is_closed and time.monotonic() - t0 < 4 * HEARTBEAT_S:
            try:  # requests keep flowing, but are no heartbeats
                await quiet.request(pml.SEND_ROUTE, {"content": "x"}, timeout=1)
            except (pml.ConnectionLost, pml.RequestTimeout):
                break
            await asyncio.sleep(0.2)
        code, _ = await quiet.wait_closed(4 * HEARTBEAT_S)
        elapsed = time.monotonic() - t0
        assert 2 * HEARTBEAT_S - 0.5 <= elapsed <= 2 * HEARTBEAT_S + 2, elapsed
        assert code == WS_GOING_AWAY
        assert d.get("closes_total", reason="heartbeat_timeout") == 1
    with_bystander(servers, "connector", scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_other_upgrades_are_dropped(servers, kind):
    """Only WebSocket upgrades: an h2c upgrade request is dropped and counted."""
    async def scenario():
        d = Deltas(servers, kind)
        host, port = servers.addr(kind)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
        assert b" 101 " not in data.split(b"\r\n", 1)[0], data
        writer.close()
        assert await d.wait_bad("bad_upgrade", 1) == 1
    with_bystander(servers, kind, scenario)


# ---- flooding ----

@pytest.mark.parametrize("kind", KINDS)
def test_rate_limit_then_kick(servers, kind):
    """One frame of 300 requests: the bucket (rateBurst) lets about 100 through, then
    {"code":429} for rateKickAfter requests in a row, then KICK "too many requests"."""
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        flood = b"".join(request(i, "nope.nope.nope", {}) for i in range(1, 301))
        await raw.send_binary(flood)
        seen = await expect_close(raw, WS_NORMAL, kick="too many requests", timeout=10)
        codes = [pml.json_decode(pml.decode_message(b).body)["code"]
                 for t, b in seen if t == pml.PKG_DATA]
        # The bucket refills while the frame is read (one token per 20 ms), so a 404 may
        # slip in; the kick follows rateKickAfter refusals in a row.
        assert RATE_BURST <= codes.count(404) <= RATE_BURST + 3, codes
        assert codes[-RATE_KICK_AFTER:] == [429] * RATE_KICK_AFTER, codes
        assert codes[:RATE_BURST] == [404] * RATE_BURST, codes
        await raw.close()
        assert d.bad("rate_limited") == codes.count(429)
        assert d.get("kicks_total", reason="too many requests") == 1
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_rate_limit_recovers(servers, kind):
    """Fewer than rateKickAfter refusals in a row: 429s only; the bucket refills at
    rateLimit per second and the session goes on. Notifies over the rate are dropped."""
    async def scenario():
        d = Deltas(servers, kind)
        raw = await raw_session(servers, kind)
        extra = 10
        flood = b"".join(request(i, "nope.nope.nope", {}) for i in range(1, RATE_BURST + extra + 1))
        await raw.send_binary(flood)
        pkgs = await next_packages(raw, RATE_BURST + extra)
        codes = [pml.json_decode(pml.decode_message(b).body)["code"] for _, b in pkgs]
        assert codes.count(429) in range(extra - 2, extra + 1), codes
        await asyncio.sleep(1.0)  # 50 tokens back
        await raw.send_binary(b"".join(notify("nope.nope.nope", {}) for _ in range(60)))
        await asyncio.sleep(0.5)
        await probe(raw, kind, 1000)
        await raw.close()
        # About 50 tokens came back in the second: most of the 60 notifies pass (and are
        # dropped as unknown routes), the rest are refused without an answer.
        assert 3 <= d.bad("rate_limited") - codes.count(429) <= 10
        assert d.get("kicks_total", reason="too many requests") == 0
    with_bystander(servers, kind, scenario)


def test_too_many_requests_in_flight(servers):
    """At most 64 requests per session wait for the service; more get 429 at once (no kick:
    a slow server must not cost clients their session). One frame of 70 chat sends: the
    chat server cannot answer any before the frame is read, so exactly 6 are refused."""
    async def scenario():
        d = Deltas(servers, "connector")
        raw = await raw_session(servers, "connector")
        await raw.send_binary(request(1, pml.ENTER_ROUTE, {"username": unique("inflight"),
                                                           "rid": unique("inflight")}))
        assert "users" in await response(raw, 1)
        n = MAX_PENDING + 6
        # Compressed routes keep the frame small enough to be read in one piece.
        code = 1  # chat.chatHandler.send in the connector's dictionary
        frame = b"".join(request(10 + i, code, {"content": "f"}) for i in range(n))
        assert len(frame) < 4000
        await raw.send_binary(frame)
        pkgs = await next_packages(raw, 2 * MAX_PENDING + 6, timeout=10)
        msgs = [pml.decode_message(b) for t, b in pkgs if t == pml.PKG_DATA]
        resp = {m.id: pml.json_decode(m.body) for m in msgs if m.type == pml.MSG_RESPONSE}
        assert sorted(resp) == list(range(10, 10 + n))
        refused = [i for i, r in resp.items() if r.get("code") == 429]
        assert len(refused) == 6, resp
        assert all(resp[i] == {"code": 429, "error": True,
                               "message": "too many requests in flight"} for i in refused)
        assert d.bad("too_many_pending") == 6
        await raw.close()
    with_bystander(servers, "connector", scenario)


# ---- framing that must work ----

@pytest.mark.parametrize("kind", KINDS)
def test_multi_package_frame_is_fully_processed(servers, kind):
    async def scenario():
        raw = await raw_session(servers, kind)
        body = {"uid": "m"} if kind == "gate" else {"content": "m"}
        frame = (request(1, OWN_ROUTE[kind], body) + pml.HEARTBEAT +
                 notify(OWN_ROUTE[kind], body) + request(2, OWN_ROUTE[kind], body) +
                 request(3, "nope.nope.nope", {}))
        await raw.send_binary(frame)
        # Answered in order; the connector answers the heartbeat too (the gate has none).
        want = ["D1", "H", "D2", "D3"] if kind == "connector" else ["D1", "D2", "D3"]
        pkgs = await next_packages(raw, len(want), keep_heartbeats=True)
        got = ["H" if t == pml.PKG_HEARTBEAT else f"D{pml.decode_message(b).id}"
               for t, b in pkgs]
        assert got == want, pkgs
        await raw.close()
    with_bystander(servers, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_fragmented_messages_are_reassembled(servers, kind):
    async def scenario():
        raw = await raw_session(servers, kind)
        # A request in 3-byte fragments, with a ping between two of them.
        pkg = request(1, OWN_ROUTE[kind], {"uid": "frag"} if kind == "gate" else {})
        parts = [pkg[i:i + 3] for i in range(0, len(pkg), 3)]
        for i, part in enumerate(parts):
            await raw.send_frame(pml.OP_BINARY if i == 0 else pml.OP_CONT, part,
                                 fin=i == len(parts) - 1)
            if i == 2:
                await raw.send_frame(pml.OP_PING, b"p")
        assert "code" in await response(raw, 1)
        # Two packages with the fragment boundary inside the second header.
        two = request(2, OWN_ROUTE[kind], {}) + request(3, OWN_ROUTE[kind], {})
        cut = len(request(2, OWN_ROUTE[kind], {})) + 2
        await raw.send_frame(pml.OP_BINARY, two[:cut], fin=False)
        await raw.send_frame(pml.OP_CONT, two[cut:], fin=True)
        assert [pml.decode_message(b).id for _, b in await next_packages(raw, 2)] == [2, 3]
        # A 60 KB message in 1000-byte fragments: reaches the checks whole (413).
        big = request(4, OWN_ROUTE[kind], b'{"uid":"' + b"y" * 60000 + b'"}')
        chunks = [big[i:i + 1000] for i in range(0, len(big), 1000)]
        for i, c in enumerate(chunks):
            await raw.send_frame(pml.OP_BINARY if i == 0 else pml.OP_CONT, c,
                                 fin=i == len(chunks) - 1)
        assert (await response(raw, 4))["code"] == 413
        # The same in one frame (lws hands it over in pieces of a few KB).
        big = request(5, OWN_ROUTE[kind], b'{"uid":"' + b"z" * 60000 + b'"}')
        await raw.send_binary(big)
        assert (await response(raw, 5))["code"] == 413
        # A body just under bodyLimit, fragmented: the service itself answers.
        key = "uid" if kind == "gate" else "content"
        mid = request(6, OWN_ROUTE[kind], {key: "w" * (BODY_LIMIT - 100)})
        chunks = [mid[i:i + 777] for i in range(0, len(mid), 777)]
        for i, c in enumerate(chunks):
            await raw.send_frame(pml.OP_BINARY if i == 0 else pml.OP_CONT, c,
                                 fin=i == len(chunks) - 1)
        assert (await response(raw, 6))["code"] in (500, 403)
        await raw.close()
    with_bystander(servers, kind, scenario)


def test_gate_answers_close_frame_at_once(servers):
    """protocol.md §6.6: the chat page opens the connector right after closing the gate
    socket; a late onclose would flip it back to the login view."""
    async def scenario():
        host, port = servers.gate()
        raw = await raw_session(servers, "gate")
        await probe(raw, "gate", 1)
        t0 = time.monotonic()
        await raw.send_frame(pml.OP_CLOSE, struct.pack(">H", 1000))
        frame = await raw.recv_frame(timeout=2)
        answered = time.monotonic() - t0
        assert frame is not None and frame[0] == pml.OP_CLOSE, frame
        assert await raw.recv_frame(timeout=2) is None  # and the TCP connection ends
        ended = time.monotonic() - t0
        assert answered < 0.5 and ended < 0.5, (answered, ended)
        await raw.close()
        # The browser-like client: close() returns once the server closed.
        client = await pml.Client.connect(host, port)
        assert (await client.request(pml.GATE_ROUTE, {"uid": "c"}))["code"] == 200
        t0 = time.monotonic()
        await client.close()
        assert client.close_code == 1000 and time.monotonic() - t0 < 0.5
    with_bystander(servers, "gate", scenario)


# ---- their own clusters ----

def test_max_connections_refused_and_counted(tern):
    """A connector started with max-connections 5 closes the 6th connection right after
    accept() and counts it; the five keep working; a slot freed is usable again."""
    cluster = tern.cluster(harness.Topology(connectors=1, chats=1, options={
        "connector": {"max-connections": 5}}))
    servers = Servers(cluster)

    async def scenario():
        d = Deltas(servers, "connector")
        held = [await raw_session(servers, "connector") for _ in range(4)]  # + bystander
        t0 = time.monotonic()
        with pytest.raises((pml.ProtocolError, asyncio.IncompleteReadError, OSError)):
            await raw_connect(servers, "connector")
        assert time.monotonic() - t0 < 1
        assert d.get("connections_refused_total") == 1
        samples = servers.metrics("connector")
        assert servers.counter("connector", samples, "connections") == 5
        for i, raw in enumerate(held):
            await probe(raw, "connector", 1 + i)
        await held.pop().close()
        for _ in range(50):  # the slot comes back once the server saw the close
            if servers.counter("connector", servers.metrics("connector"), "connections") < 5:
                break
            await asyncio.sleep(0.05)
        again = await raw_session(servers, "connector")
        await probe(again, "connector", 10)
        for raw in held + [again]:
            await raw.close()
        assert d.get("connections_refused_total") == 1
    with_bystander(servers, "connector", scenario)


def test_max_connections_over_the_open_file_limit_is_refused(tmp_path):
    """tn_edge_new refuses a max-connections accept() could not honour."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > 1000000:
        pytest.skip(f"open-file limit {soft} is beyond max-connections' range")
    binary = harness.binary("connector")
    port, client_port = harness.free_ports(2)
    res = harness.run_once([binary, "--config", "none", "--id", "c1", "--host", "127.0.0.1",
                            "--port", port, "--client-port", client_port,
                            "--registry", "127.0.0.1:1", "--max-connections", soft - 10])
    assert res.returncode != 0, res.stderr
    assert f"max_connections={soft - 10}" in res.stderr, res.stderr
    assert f"open_file_limit={soft}" in res.stderr, res.stderr
    assert harness.sanitizer_report(res.stderr) is None, res.stderr


def test_slow_consumer_is_kicked(servers):
    """Clients that stop reading while pushes keep coming are cut once more than 1 MiB
    waits for them: what is queued is dropped and KICK "slow consumer" sent. One reads
    again at once and gets what was already on its way, the KICK and the close; the other
    never reads, and its socket is shut down after the 3 s close grace."""
    async def sender(room, name, stop):
        raw = await raw_session(servers, "connector")
        await raw.send_binary(request(1, pml.ENTER_ROUTE, {"username": name, "rid": room}))

        async def drain():  # read and discard everything (our own echoes)
            while await raw.recv_frame(timeout=60) is not None:
                pass
        reader = asyncio.get_running_loop().create_task(drain())
        content = "s" * (BODY_LIMIT - 200)
        i = 1
        while not stop.is_set():
            burst = b"".join(request(i + k, pml.SEND_ROUTE, {"content": content})
                             for k in range(1, 41))
            i += 40
            await raw.send_binary(pml.HEARTBEAT + burst)
            try:  # 40 per 0.8 s: within the 50/s rate
                await asyncio.wait_for(stop.wait(), 0.8)
            except asyncio.TimeoutError:
                pass
        reader.cancel()
        await raw.close()

    async def stuck_client(room):
        raw = await raw_session(servers, "connector")
        await raw.send_binary(request(1, pml.ENTER_ROUTE, {"username": unique("stuck"),
                                                           "rid": room}))
        assert "users" in await response(raw, 1)
        return raw

    async def scenario():
        d = Deltas(servers, "connector")
        room = unique("slow")
        reader, never = await stuck_client(room), await stuck_client(room)
        stop = asyncio.Event()
        senders = [asyncio.get_running_loop().create_task(sender(room, unique("snd"), stop))
                   for _ in range(3)]
        # The stuck clients read nothing (asyncio stops taking bytes from the socket once
        # its own buffer is full) but keep heartbeating, which only writes.
        t0 = last_hb = time.monotonic()
        while d.get("kicks_total", reason="slow consumer") < 2:
            assert time.monotonic() - t0 < 40, "never kicked"
            if time.monotonic() - last_hb > 1:
                for raw in (reader, never):
                    await raw.send_binary(pml.HEARTBEAT)
                last_hb = time.monotonic()
            await asyncio.sleep(0.05)
        stop.set()
        kicked = time.monotonic()
        # Reading again within the grace: what was on its way, the KICK, the close.
        seen = await expect_close(reader, WS_NORMAL, kick="slow consumer", timeout=20)
        assert any(t == pml.PKG_DATA for t, _ in seen)
        await reader.close()
        await asyncio.gather(*senders)
        # The other never reads again: its session is over by the end of the grace
        # whether the KICK still fit into its socket or not (then the socket is shut
        # down). Only the bystander's session is left.
        await asyncio.sleep(max(0.0, kicked + CLOSE_GRACE_S + 1 - time.monotonic()))
        left = servers.counter("connector", servers.metrics("connector"), "ws_sessions")
        assert left == servers.counter("connector", d.before, "ws_sessions") == 1
        while await never.recv_frame(timeout=10) is not None:
            pass
        never.abort()
        assert d.get("closes_total", reason="kicked") == 2
    with_bystander(servers, "connector", scenario, timeout=120)
