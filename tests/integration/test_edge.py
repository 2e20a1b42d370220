"""The client edge as a pomelo client sees it (issue "client edge", item 6): handshake
content (heartbeat, route dictionary, protos), heartbeats, string and compressed routes,
the Host header, UTF-8, no permessage-deflate, static files on the gate's port, the
client port range, two clients at once, and the edge's metrics."""
import asyncio
import base64
import http.client
import json
import os
import re
import socket

import pytest

import harness
import pomelo as pml

DICT = {"chat.chatHandler.send": 1, "connector.entryHandler.enter": 2,
        "gate.gateHandler.queryEntry": 3}
EMOJI = "\U0001F600"


def run(coro, timeout=60.0):
    return harness.run_async(coro, timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    factory = harness.ClusterFactory(tmp_path_factory.mktemp("edge"))
    c = factory.cluster(harness.Topology(connectors=1, chats=1))
    yield c
    problems = factory.shutdown()
    if problems:
        pytest.fail(harness.describe_problems(problems), pytrace=False)


def connector_address(cluster):
    return cluster.client_address("connector-server-1")


async def raw_handshake(host, port, body=None):
    """Connects, sends a handshake, returns (raw socket, the response body bytes)."""
    raw = await pml.RawWebSocket.connect(host, port)
    await raw.send_binary(pml.encode_package(pml.PKG_HANDSHAKE, body or pml.handshake_body()))
    [(ptype, resp)] = await raw.recv_packages()
    assert ptype == pml.PKG_HANDSHAKE
    return raw, resp


def keys_in_order(raw_json, keys):
    """True when every key occurs in raw_json, in this order."""
    pos = [raw_json.find(f'"{k}":'.encode()) for k in keys]
    return all(p >= 0 for p in pos) and pos == sorted(pos)


# ---- handshake ----

def test_gate_handshake(cluster):
    """The gate (no heartbeat, no dictionary): code 200, and protos with empty sets and a
    non-empty version, which replaces any protos a browser kept from a real pomelo."""
    async def main():
        raw, body = await raw_handshake(*cluster.gate_address())
        resp = pml.json_decode(body)
        version = resp["sys"]["protos"]["version"]
        assert isinstance(version, str) and version
        assert resp == {"code": 200, "sys": {"protos": {"server": {}, "client": {},
                                                        "version": version},
                                             "useProto": True}}
        assert keys_in_order(body, ["code", "sys", "protos", "useProto"])
        await raw.close()
    run(main())


def test_connector_handshake_and_dict(cluster):
    """The connector: heartbeat 3 s, the route dictionary in pomelo's key order (sorted
    routes numbered from 1), protos; a client that already has the dict version gets no
    dict again, but useDict stays."""
    host, port = connector_address(cluster)

    async def main():
        raw, body = await raw_handshake(host, port)
        resp = pml.json_decode(body)
        sys_ = resp["sys"]
        assert resp["code"] == 200 and sys_["heartbeat"] == 3
        assert sys_["dict"] == DICT and sys_["routeToCode"] == DICT
        assert sys_["codeToRoute"] == {str(v): k for k, v in DICT.items()}
        assert isinstance(sys_["dictVersion"], str) and sys_["dictVersion"]
        assert sys_["useDict"] is True and sys_["useProto"] is True
        assert sys_["protos"]["server"] == {} and sys_["protos"]["client"] == {}
        assert sys_["protos"]["version"]
        assert keys_in_order(body, ["heartbeat", "dict", "routeToCode", "codeToRoute",
                                    "dictVersion", "useDict", "protos", "useProto"])
        await raw.close()
        again = pml.json_encode({"sys": {"type": "js-websocket", "version": "0.0.1", "rsa": {},
                                         "protoVersion": sys_["protos"]["version"],
                                         "dictVersion": sys_["dictVersion"]}})
        raw, body = await raw_handshake(host, port, again)
        resp = pml.json_decode(body)
        assert "dict" not in resp["sys"] and resp["sys"]["useDict"] is True
        assert resp["sys"]["heartbeat"] == 3
        await raw.close()
    run(main())


def test_handshake_answer_is_the_only_thing_before_the_ack(cluster):
    """A push or response must not reach a client that has not acknowledged: the edge
    holds everything but the handshake answer (protocol.md §6.10)."""
    host, port = connector_address(cluster)

    async def main():
        raw, _ = await raw_handshake(host, port)
        await raw.send_binary(pml.encode_request(1, pml.SEND_ROUTE, {"content": "x"}))
        with pytest.raises(asyncio.TimeoutError):
            await raw.recv_packages(timeout=0.5)
        await raw.send_binary(pml.HANDSHAKE_ACK)
        assert await raw.recv_packages() == [(pml.PKG_HEARTBEAT, b"")]
        await raw.close()
    run(main())


# ---- heartbeats ----

def test_heartbeats(cluster):
    """The connector sends a heartbeat at the ACK and answers every client heartbeat at
    once; a browser-like client that heartbeats stays connected past 2 x interval. The
    gate sends none and times nobody out."""
    host, port = connector_address(cluster)

    async def main():
        raw, _ = await raw_handshake(host, port)
        await raw.send_binary(pml.HANDSHAKE_ACK)
        assert await raw.recv_packages(timeout=0.5) == [(pml.PKG_HEARTBEAT, b"")]
        for _ in range(3):
            await raw.send_binary(pml.HEARTBEAT)
            assert await raw.recv_packages(timeout=0.5) == [(pml.PKG_HEARTBEAT, b"")]
        await raw.close()

        client = await pml.Client.connect(host, port)
        assert client.heartbeat_interval == 3
        await asyncio.sleep(2 * client.heartbeat_interval + 1.5)
        assert not client.is_closed and not client.heartbeat_timed_out
        assert len(client.heartbeats_sent) >= 2
        assert client.violations == []
        await client.close()

        gate = await pml.Client.connect(*cluster.gate_address())
        assert gate.heartbeat_interval == 0
        await asyncio.sleep(1.5)
        assert gate.heartbeats_received == [] and not gate.is_closed
        assert (await gate.request(pml.GATE_ROUTE, {"uid": "hb"}))["code"] == 200
        await gate.close()
    run(main())


# ---- routes ----

def test_string_and_compressed_routes(cluster):
    async def main():
        gh, gp = cluster.gate_address()
        entry = await pml.query_entry(gh, gp, "routes")
        client = await pml.Client.connect(entry["host"], entry["port"])
        resp = await client.request(pml.ENTER_ROUTE, {"username": "routes", "rid": "r-routes"},
                                    compress=True)
        assert resp == {"users": ["routes"]}
        resp = await client.request(pml.SEND_ROUTE, {"rid": "r-routes", "content": "s",
                                                     "target": "*"}, compress=False)
        assert resp == {}
        resp = await client.request(pml.SEND_ROUTE, {"rid": "r-routes", "content": "c",
                                                     "target": "*"}, compress=True)
        assert resp == {}
        pushes = [await client.next_push("onChat") for _ in range(2)]
        assert [b["msg"] for _, b in pushes] == ["s", "c"]
        assert client.violations == []
        await client.close()
    run(main())


# ---- the Host header ----

async def upgrade_with_host(host, port, host_header):
    """A WebSocket upgrade whose Host header is exactly host_header."""
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET / HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    return pml.RawWebSocket(reader, writer)


@pytest.mark.parametrize("host_header,want", [
    ("localhost:3014", "localhost"),
    ("chat.example.org", "chat.example.org"),
    ("[::1]:3014", "[::1]"),
    ("bad host!", None),
])
def test_gate_answers_with_the_host_the_client_used(cluster, host_header, want):
    """Connectors without a public host are announced under the host the client used to
    reach the gate (Host header, port cut, IPv6 brackets kept so that "ws://"+host+":"+port
    stays a valid URL); a Host that is no host name falls back to the connector's address."""
    async def main():
        gh, gp = cluster.gate_address()
        raw = await upgrade_with_host(gh, gp, host_header)
        await raw.send_binary(pml.encode_package(pml.PKG_HANDSHAKE, pml.handshake_body()))
        await raw.recv_packages()
        await raw.send_binary(pml.HANDSHAKE_ACK)
        await raw.send_binary(pml.encode_request(1, pml.GATE_ROUTE, {"uid": "host"}))
        [(_, body)] = await raw.recv_packages()
        resp = pml.json_decode(pml.decode_message(body).body)
        await raw.close()
        return resp
    resp = run(main())
    assert resp["code"] == 200
    assert resp["host"] == (want or cluster.topology.entry("connector-server-1")["host"])
    assert resp["port"] == connector_address(cluster)[1]


# ---- UTF-8 and compression ----

def test_utf8_reaches_browsers_readably(cluster):
    """The browser sends CESU-8 and cannot read 4-byte UTF-8 (protocol.md §6.4): both kinds
    of input arrive at a browser as text it decodes to the same character, and no raw
    4-byte sequence is ever sent."""
    async def main():
        gh, gp = cluster.gate_address()
        state = pml.BrowserState()
        reader, _ = await pml.login(gh, gp, "utf8r", "r-utf8", state)
        writer, _ = await pml.login(gh, gp, "utf8w", "r-utf8")
        await reader.next_push("onAdd")
        # Browser style: CESU-8 surrogates.
        assert await writer.request(pml.SEND_ROUTE, {"content": f"a{EMOJI}b", "target": "*"}) \
            == {}
        # libpomelo style: proper 4-byte UTF-8 bytes.
        raw_body = json.dumps({"content": f"c{EMOJI}d", "target": "*"},
                              ensure_ascii=False).encode("utf-8")
        assert b"\xf0" in raw_body
        assert await writer.request(pml.SEND_ROUTE, raw_body) == {}
        got = [(await reader.next_push("onChat"))[1]["msg"] for _ in range(2)]
        assert got == [f"a{EMOJI}b", f"c{EMOJI}d"]
        for ptype, body in reader.received:
            assert not re.search(rb"[\xf0-\xf4][\x80-\xbf]{3}", body), body
        assert reader.violations == [] and writer.violations == []
        await reader.close()
        await writer.close()
    run(main())


def test_no_permessage_deflate(cluster):
    async def main():
        client = await pml.Client.connect(*connector_address(cluster), compression="deflate")
        assert client.ws.extensions == []
        await client.request(pml.SEND_ROUTE, {"content": "x"})
        await client.close()
    run(main())


# ---- static files ----

def http_fetch(host, port, path):
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def make_site(root):
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<html><body>tern test page</body></html>\n")
    (root / "style.css").write_text("body { color: black; }\n")
    (root / "js" / "app.js").write_text("var x = 1;\n")
    (root / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>\n')
    return root


def test_gate_serves_static_files(tern, tmp_path):
    site = make_site(tmp_path / "site")
    c = tern.cluster(harness.Topology(connectors=1, chats=1, options={
        "gate": {"webRoot": str(site)}}))
    gh, gp = c.gate_address()
    status, ctype, body = http_fetch(gh, gp, "/")
    assert status == 200 and ctype.startswith("text/html")
    assert body == (site / "index.html").read_bytes()
    assert http_fetch(gh, gp, "/index.html")[2] == (site / "index.html").read_bytes()
    status, ctype, body = http_fetch(gh, gp, "/style.css")
    assert (status, body) == (200, (site / "style.css").read_bytes())
    assert ctype.startswith("text/css")
    status, ctype, body = http_fetch(gh, gp, "/js/app.js")
    assert status == 200 and "javascript" in ctype and body == b"var x = 1;\n"
    status, ctype, _ = http_fetch(gh, gp, "/logo.svg")
    assert status == 200 and ctype.startswith("image/svg+xml")
    assert http_fetch(gh, gp, "/missing.html")[0] == 404
    for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "/js/../../site/index.html/../../../etc/passwd"):
        status, _, body = http_fetch(gh, gp, path)
        assert status != 200 or b"root:" not in body, path
    # The same port still speaks WebSocket, and the connector serves no files.
    assert run(pml.query_entry(gh, gp, "static"))["code"] == 200
    ch, cp = c.client_address("connector-server-1")
    assert http_fetch(ch, cp, "/")[0] == 404


def test_relative_web_root_is_relative_to_the_working_directory(tern, tmp_path, monkeypatch):
    make_site(tmp_path / "relsite")
    monkeypatch.chdir(tmp_path)  # the servers inherit it
    c = tern.cluster(harness.Topology(connectors=0, chats=0, options={
        "gate": {"webRoot": "relsite"}}))
    gh, gp = c.gate_address()
    status, _, body = http_fetch(gh, gp, "/")
    assert status == 200 and b"tern test page" in body


def test_default_web_root_serves_the_chat_page(tern, monkeypatch):
    monkeypatch.chdir(harness.SOURCE_DIR)
    c = tern.cluster(harness.Topology(connectors=0, chats=0))
    gh, gp = c.gate_address()
    status, ctype, body = http_fetch(gh, gp, "/")
    assert status == 200 and ctype.startswith("text/html")
    assert body == (harness.SOURCE_DIR / "web" / "index.html").read_bytes()


# ---- the client port ----

def test_first_free_port_of_the_range(tern):
    for _ in range(50):
        port = harness.free_port()
        if port >= 65535:
            continue
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        finally:
            probe.close()
        break
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen(1)
    try:
        topo = harness.Topology(connectors=0, chats=0)
        topo.entries["gate"][0]["clientPort"] = f"{port}-{port + 1}"
        c = tern.cluster(topo)
        [ready] = harness.ready_lines(c.server("gate-server-1"))
        assert f"client_port={port + 1}" in ready, ready
        resp = run(pml.query_entry("127.0.0.1", port + 1, "range"))
        assert resp["code"] == 500  # answered (no connector in this topology)
    finally:
        blocker.close()


# ---- two clients at once ----

def test_two_concurrent_clients(cluster):
    """Two browser-like clients in one room, sending at the same time: every request is
    answered, each sees every message of both in the order each was sent, and the
    connection and session gauges follow them."""
    sid = "connector-server-1"

    def gauge(name):
        return harness.sample(cluster.metrics(sid), f"tern_connector_{name}")

    async def main():
        gh, gp = cluster.gate_address()
        before = cluster.metrics(sid)
        alice, _ = await pml.login(gh, gp, "alice2", "r-two")
        bob, resp = await pml.login(gh, gp, "bob2", "r-two")
        assert resp == {"users": ["alice2", "bob2"]}
        for _ in range(100):  # earlier tests' sockets may take a moment to go
            if gauge("connections") == 2 and gauge("ws_sessions") == 2:
                break
            await asyncio.sleep(0.05)
        assert gauge("connections") == 2 and gauge("ws_sessions") == 2

        async def talk(client, name):
            for i in range(20):
                assert await client.request(pml.SEND_ROUTE, {"content": f"{name}{i}",
                                                             "target": "*"}) == {}
        await asyncio.gather(talk(alice, "a"), talk(bob, "b"))
        for client in (alice, bob):
            msgs = [(await client.next_push("onChat"))[1]["msg"] for _ in range(40)]
            assert [m for m in msgs if m[0] == "a"] == [f"a{i}" for i in range(20)]
            assert [m for m in msgs if m[0] == "b"] == [f"b{i}" for i in range(20)]
            assert client.violations == []
        after = cluster.metrics(sid)
        sent = harness.sample(after, "tern_connector_messages_in_total", type="request") - \
            harness.sample(before, "tern_connector_messages_in_total", type="request")
        assert sent == 42
        await alice.close()
        await bob.close()
        for _ in range(100):
            if gauge("connections") == 0 and gauge("ws_sessions") == 0:
                break
            await asyncio.sleep(0.05)
        assert gauge("connections") == 0 and gauge("ws_sessions") == 0
    run(main())


# ---- metrics and the hardening table ----

def hardening_cases():
    """The case labels named in docs/protocol-hardening.md's table."""
    doc = (harness.SOURCE_DIR / "docs" / "protocol-hardening.md").read_text()
    return set(re.findall(r'bad_input_total\{case="([a-z_]+)"\}', doc))


@pytest.mark.parametrize("kind", ["gate", "connector"])
def test_metrics_match_the_hardening_table(cluster, kind):
    """Every case of docs/protocol-hardening.md has its counter (rendered from the start),
    and every counter has its row, so the table and the code cannot drift apart."""
    status, text = cluster.admin_get(f"{kind}-server-1", "/metrics")
    assert status == 200
    samples = harness.parse_metrics(text)
    types = harness.metric_types(text)
    prefix = f"tern_{kind}"
    cases = {dict(labels)["case"] for (name, labels) in samples
             if name == f"{prefix}_bad_input_total"}
    assert cases and cases == hardening_cases()
    for name, want in [("connections", "gauge"), ("ws_sessions", "gauge"),
                       ("connections_accepted_total", "counter"),
                       ("connections_refused_total", "counter"),
                       ("bad_input_total", "counter"), ("kicks_total", "counter"),
                       ("closes_total", "counter"), ("messages_in_total", "counter"),
                       ("messages_out_total", "counter"), ("bytes_in_total", "counter"),
                       ("bytes_out_total", "counter"), ("frames_out_total", "counter")]:
        assert types.get(f"{prefix}_{name}") == want, name
    kicks = {dict(labels)["reason"] for (name, labels) in samples
             if name == f"{prefix}_kicks_total"}
    assert {"package too large", "too many requests", "slow consumer"} <= kicks
