"""A pomelo client over WebSocket for the integration tests (asyncio, `websockets` 10.4).

It behaves like the chatofpomelo browser client (pomelo-jsclient-websocket with the
bundled pomelo-protocol and pomelo-protobuf), as described in /work/shared/protocol.md:

- package layer: 4-byte header (type, 24-bit big-endian length); one WebSocket binary
  message may carry several packages, every one of them is handled;
- message layer: flag byte, base-128 request id (least significant group first), string
  routes (1-byte length) or 2-byte compressed routes from the handshake `dict`, body;
- handshake exactly like the browser's, then HANDSHAKE_ACK, then the app may send;
- heartbeats like the browser: the client answers a server HEARTBEAT only after the
  interval, and disconnects when nothing arrived for twice the interval;
- request ids count up across connections (BrowserState), like the page's `pomelo` object;
- strings are encoded the browser's way (UTF-16 code units as 1-3 byte sequences, so
  characters outside the BMP go out as CESU-8) and decoded the browser's way.

Beyond what the browser does, the client records everything a server did that the real
client would choke on or that protocol.md forbids (text frames, package type 2, empty
bodies, unknown response ids, packages split across frames, ...) in `violations`, so a
test can assert the list stays empty.

RawWebSocket and the encode_* helpers build arbitrary bytes and frames for hostile-input
tests (garbage, partial packages, text frames, bad WebSocket framing).
"""
import asyncio
import base64
import hashlib
import json
import os
import struct
import time

import websockets

# ---- constants (protocol.md §1, §4) ----

PKG_HANDSHAKE = 1
PKG_HANDSHAKE_ACK = 2
PKG_HEARTBEAT = 3
PKG_DATA = 4
PKG_KICK = 5
PKG_NAMES = {1: "HANDSHAKE", 2: "HANDSHAKE_ACK", 3: "HEARTBEAT", 4: "DATA", 5: "KICK"}

MSG_REQUEST = 0
MSG_NOTIFY = 1
MSG_RESPONSE = 2
MSG_PUSH = 3

PKG_HEAD_LEN = 4
PKG_BODY_MAX = (1 << 24) - 1
ROUTE_MAX = 255
ROUTE_CODE_MAX = 0xFFFF
MSG_ID_MAX_BYTES = 5

CLIENT_TYPE = "js-websocket"
CLIENT_VERSION = "0.0.1"
RES_OK = 200
RES_FAIL = 500
RES_OLD_CLIENT = 501

# The browser fires its heartbeat timeout when less than this is left (gapThreshold).
HEARTBEAT_GAP_THRESHOLD = 0.1


class ProtocolError(Exception):
    """Bytes that do not follow the pomelo wire format."""


class HandshakeError(Exception):
    """The server answered the handshake with a code other than 200."""

    def __init__(self, code, response):
        self.code = code
        self.response = response
        what = "client version not fullfill" if code == RES_OLD_CLIENT else "handshake fail"
        super().__init__(f"{what} (code {code!r}): {response!r}")


class ConnectionLost(Exception):
    """The connection closed while a call waited on it."""

    def __init__(self, client):
        self.kick_reason = client.kick_reason
        self.close_code = client.close_code
        super().__init__(f"connection closed (code {client.close_code}, "
                         f"kick reason {client.kick_reason!r})")


class RequestTimeout(asyncio.TimeoutError):
    """No response arrived in time."""


# ---- strings the browser's way ----

def strencode(text):
    """Encodes a str like the browser's Protocol.strencode: each UTF-16 code unit as a 1-3
    byte sequence, so a character outside the BMP becomes two 3-byte surrogates (CESU-8)."""
    out = bytearray()
    units = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(units), 2):
        code = units[i] | (units[i + 1] << 8)
        if code <= 0x7F:
            out.append(code)
        elif code <= 0x7FF:
            out += bytes((0xC0 | (code >> 6), 0x80 | (code & 0x3F)))
        else:
            out += bytes((0xE0 | (code >> 12), 0x80 | ((code >> 6) & 0x3F), 0x80 | (code & 0x3F)))
    return bytes(out)


def strdecode(data):
    """Decodes bytes like the browser's Protocol.strdecode: sequences of 1 to 3 bytes only
    (a proper 4-byte UTF-8 sequence turns into garbage, as in the browser); bytes missing at
    the end count as 0. Surrogate pairs are joined; lone surrogates stay in the str."""
    units = []
    i, n = 0, len(data)

    def at(k):
        return data[k] if k < n else 0

    while i < n:
        b = data[i]
        if b < 0x80:
            units.append(b)
            i += 1
        elif b < 0xE0:
            units.append(((b & 0x3F) << 6) + (at(i + 1) & 0x3F))
            i += 2
        else:
            units.append(((b & 0x0F) << 12) + ((at(i + 1) & 0x3F) << 6) + (at(i + 2) & 0x3F))
            i += 3
    raw = b"".join(struct.pack("<H", u & 0xFFFF) for u in units)
    return raw.decode("utf-16-le", "surrogatepass")


def _reject_constant(name):
    raise ValueError(f"JSON.parse rejects {name}")


def json_encode(obj):
    """JSON.stringify + strencode: compact JSON, non-ASCII left unescaped, CESU-8 bytes."""
    return strencode(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def json_decode(data):
    """strdecode + JSON.parse (NaN and Infinity rejected, as JSON.parse does). Raises
    ValueError when the body is not JSON."""
    return json.loads(strdecode(data), parse_constant=_reject_constant)


# ---- package layer ----

def encode_package(ptype, body=b"", length=None):
    """One package: type byte, 24-bit big-endian body length, body. `length` overrides the
    length field (for hostile tests); otherwise the body must fit in 24 bits."""
    body = bytes(body)
    if length is None:
        length = len(body)
        if length > PKG_BODY_MAX:
            raise ValueError(f"package body of {length} bytes exceeds {PKG_BODY_MAX}")
    if not 0 <= ptype <= 0xFF or not 0 <= length <= 0xFFFFFF:
        raise ValueError("package type or length out of range")
    return bytes((ptype, (length >> 16) & 0xFF, (length >> 8) & 0xFF, length & 0xFF)) + body


def decode_packages(data):
    """Splits one WebSocket message into [(type, body), ...]. Raises ProtocolError when the
    message ends inside a header or a body (a package split across messages)."""
    out = []
    pos, n = 0, len(data)
    while pos < n:
        if n - pos < PKG_HEAD_LEN:
            raise ProtocolError(f"truncated package header at offset {pos} of {n}")
        ptype = data[pos]
        length = (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
        pos += PKG_HEAD_LEN
        if n - pos < length:
            raise ProtocolError(f"package type {ptype} claims {length} body bytes, "
                                f"{n - pos} left in the message")
        out.append((ptype, bytes(data[pos:pos + length])))
        pos += length
    return out


# ---- message layer ----

def encode_varint(value):
    """Base-128 varint, least significant 7 bits first, bit 7 set on all but the last byte."""
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data, pos=0, max_bytes=None):
    """Reads a varint at pos; returns (value, next position). Raises ProtocolError when it
    is truncated or longer than max_bytes."""
    value, shift, start = 0, 0, pos
    while True:
        if pos >= len(data):
            raise ProtocolError("truncated varint")
        if max_bytes is not None and pos - start >= max_bytes:
            raise ProtocolError(f"varint longer than {max_bytes} bytes")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


class Message:
    """One decoded message-layer unit. route is a str (string route), an int (compressed
    code not found in the dict) or None (responses); body is the raw bytes."""

    __slots__ = ("type", "id", "route", "body", "compressed", "flag")

    def __init__(self, mtype, msg_id, route, body, compressed, flag):
        self.type = mtype
        self.id = msg_id
        self.route = route
        self.body = body
        self.compressed = compressed
        self.flag = flag

    def __repr__(self):
        return (f"Message(type={self.type}, id={self.id}, route={self.route!r}, "
                f"compressed={self.compressed}, body={self.body!r})")


def _has_id(mtype):
    return mtype in (MSG_REQUEST, MSG_RESPONSE)


def _has_route(mtype):
    return mtype in (MSG_REQUEST, MSG_NOTIFY, MSG_PUSH)


def encode_message(mtype, msg_id=0, route=None, body=b"", flag_extra=0):
    """flag | [id] | [route] | body. route: str (string route, at most 255 bytes, encoded
    like the browser), bytes (sent as is after a length byte), or int (compressed, 2 bytes
    big-endian). flag_extra ORs extra bits into the flag (hostile tests only)."""
    if isinstance(body, (dict, list)):
        body = json_encode(body)
    compressed = isinstance(route, int) and not isinstance(route, bool)
    flag = (mtype << 1) | (1 if compressed else 0) | flag_extra
    out = bytearray((flag & 0xFF,))
    if _has_id(mtype):
        out += encode_varint(msg_id)
    if _has_route(mtype):
        if compressed:
            if not 0 <= route <= ROUTE_CODE_MAX:
                raise ValueError(f"route code {route} out of range")
            out += struct.pack(">H", route)
        else:
            raw = route if isinstance(route, bytes) else strencode(route or "")
            if len(raw) > ROUTE_MAX:
                raise ValueError(f"route max length is overflow: {len(raw)} bytes")
            out.append(len(raw))
            out += raw
    out += bytes(body)
    return bytes(out)


def decode_message(data, code_to_route=None):
    """Decodes a DATA body. Compressed route codes are looked up in code_to_route (code ->
    route); unknown ones stay ints. Raises ProtocolError on truncated input, an id longer
    than 5 bytes or an unknown message type."""
    if not data:
        raise ProtocolError("empty message")
    flag = data[0]
    mtype = (flag >> 1) & 0x7
    if mtype > MSG_PUSH:
        raise ProtocolError(f"unknown message type {mtype} (flag 0x{flag:02x})")
    compressed = bool(flag & 1)
    pos, msg_id, route = 1, 0, None
    if _has_id(mtype):
        msg_id, pos = decode_varint(data, pos, MSG_ID_MAX_BYTES)
    if _has_route(mtype):
        if compressed:
            if len(data) - pos < 2:
                raise ProtocolError("truncated route code")
            code = (data[pos] << 8) | data[pos + 1]
            pos += 2
            route = (code_to_route or {}).get(code, code)
        else:
            if pos >= len(data):
                raise ProtocolError("truncated route length")
            rlen = data[pos]
            pos += 1
            if len(data) - pos < rlen:
                raise ProtocolError("truncated route")
            route = strdecode(data[pos:pos + rlen])
            pos += rlen
    return Message(mtype, msg_id, route, bytes(data[pos:]), compressed, flag)


def encode_request(msg_id, route, body=None):
    """A complete DATA package holding a request (body: dict/list -> JSON, bytes as is)."""
    return encode_package(PKG_DATA, encode_message(MSG_REQUEST, msg_id, route,
                                                   {} if body is None else body))


def encode_notify(route, body=None):
    """A complete DATA package holding a notify."""
    return encode_package(PKG_DATA, encode_message(MSG_NOTIFY, 0, route,
                                                   {} if body is None else body))


def handshake_body(proto_version=0, user=None, rsa=None):
    """The browser's handshake JSON (key order as the browser sends it)."""
    sys_ = {"type": CLIENT_TYPE, "version": CLIENT_VERSION, "rsa": rsa or {},
            "protoVersion": proto_version}
    msg = {"sys": sys_}
    if user is not None:
        msg["user"] = user
    return json_encode(msg)


HANDSHAKE_ACK = encode_package(PKG_HANDSHAKE_ACK)
HEARTBEAT = encode_package(PKG_HEARTBEAT)


# ---- pomelo-protobuf (the browser's protobuf.js) ----

_PB_WIRE = {"uInt32": 0, "sInt32": 0, "int32": 0, "double": 1, "string": 2, "message": 2,
            "float": 5}
_PB_SIMPLE = {"uInt32", "sInt32", "int32", "uInt64", "sInt64", "float", "double"}


def _pb_message_proto(protos, all_protos, type_name):
    return (protos.get("__messages") or {}).get(type_name) or all_protos.get("message " + type_name)


def _pb_zigzag(n):
    return -2 * n - 1 if n < 0 else 2 * n


def _pb_prop(value, ptype, protos, all_protos):
    if ptype == "uInt32":
        return encode_varint(int(value))
    if ptype in ("int32", "sInt32"):
        return encode_varint(_pb_zigzag(int(value)))
    if ptype == "float":
        return struct.pack("<f", value)
    if ptype == "double":
        return struct.pack("<d", value)
    if ptype in ("string", "object"):
        raw = strencode(value if ptype == "string" else json.dumps(value, separators=(",", ":")))
        return encode_varint(len(raw)) + raw
    sub = _pb_message_proto(protos, all_protos, ptype)
    if sub is None:
        return b""
    inner = _pb_encode_msg(sub, value, all_protos)
    return encode_varint(len(inner)) + inner


def _pb_tag(ptype, tag):
    # protobuf.js writes `TYPES[type] || 2`, so the varint types get wire type 2 too.
    return encode_varint((tag << 3) | (_PB_WIRE.get(ptype) or 2))


def _pb_encode_msg(protos, msg, all_protos):
    out = bytearray()
    for name, value in msg.items():
        proto = protos.get(name) if not name.startswith("__") else None
        if not proto:
            continue
        option, ptype, tag = proto.get("option"), proto.get("type"), proto.get("tag")
        if option in ("required", "optional"):
            out += _pb_tag(ptype, tag) + _pb_prop(value, ptype, protos, all_protos)
        elif option == "repeated" and value:
            if ptype in _PB_SIMPLE:
                out += _pb_tag(ptype, tag) + encode_varint(len(value))
                for item in value:
                    out += _pb_prop(item, ptype, protos, all_protos)
            else:
                for item in value:
                    out += _pb_tag(ptype, tag) + _pb_prop(item, ptype, protos, all_protos)
    return bytes(out)


def pb_encode(all_protos, route, msg):
    """Encodes msg with all_protos[route] the way protobuf.js does (fields in the dict's
    order). Returns None when there is no proto for the route or a required field is
    missing (the browser then falls back to JSON)."""
    protos = all_protos.get(route)
    if not protos:
        return None
    for name, proto in protos.items():
        if not name.startswith("__") and proto.get("option") == "required" and name not in msg:
            return None
    return _pb_encode_msg(protos, msg, all_protos)


class _PbReader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def varint(self):
        value, self.pos = decode_varint(self.data, self.pos, 10)
        return value

    def take(self, n):
        if n > len(self.data) - self.pos:
            raise ProtocolError("truncated protobuf field")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def _pb_decode_prop(rd, ptype, protos, all_protos):
    if ptype == "uInt32":
        return rd.varint()
    if ptype in ("int32", "sInt32"):
        n = rd.varint()
        return -((n + 1) // 2) if n & 1 else n // 2
    if ptype == "float":
        return struct.unpack("<f", rd.take(4))[0]
    if ptype == "double":
        return struct.unpack("<d", rd.take(8))[0]
    if ptype == "string":
        return strdecode(rd.take(rd.varint()))
    if ptype == "object":
        return json.loads(rd.take(rd.varint()).decode("utf-8"))
    sub = _pb_message_proto(protos, all_protos, ptype)
    if sub is None:
        raise ProtocolError(f"no proto for message type {ptype!r}")
    end = rd.varint() + rd.pos
    if end > len(rd.data):
        raise ProtocolError("truncated protobuf message")
    return _pb_decode_msg(rd, sub, all_protos, end)


def _pb_decode_msg(rd, protos, all_protos, end):
    msg = {}
    tags = protos.get("__tags") or {}
    while rd.pos < end:
        tag = rd.varint() >> 3  # protobuf.js ignores the wire type
        name = tags.get(str(tag))
        if name is None or name not in protos:
            raise ProtocolError(f"protobuf tag {tag} not in the proto")
        proto = protos[name]
        if proto.get("option") == "repeated":
            items = msg.setdefault(name, [])
            if proto["type"] in _PB_SIMPLE:
                for _ in range(rd.varint()):
                    items.append(_pb_decode_prop(rd, proto["type"], protos, all_protos))
            else:
                items.append(_pb_decode_prop(rd, proto["type"], protos, all_protos))
        else:
            msg[name] = _pb_decode_prop(rd, proto["type"], protos, all_protos)
    return msg


def pb_decode(all_protos, route, data):
    """Decodes data with all_protos[route] like protobuf.js (tags through `__tags`).
    Raises ProtocolError on truncated or unknown fields, KeyError when there is no proto."""
    protos = all_protos[route]
    rd = _PbReader(bytes(data))
    return _pb_decode_msg(rd, protos, all_protos, len(rd.data))


# ---- the client ----

class BrowserState:
    """What the page's `pomelo` object keeps across connections: the request id counter
    (starts at 1, never reset) and the protos saved in localStorage."""

    def __init__(self, first_id=1, protos=None):
        self._next_id = first_id
        self.protos = protos  # {"server": {...}, "client": {...}, "version": ...} or None

    def next_id(self):
        rid = self._next_id
        self._next_id += 1
        return rid

    def peek_id(self):
        return self._next_id

    @property
    def proto_version(self):
        return (self.protos or {}).get("version") or 0

    @property
    def server_protos(self):
        return (self.protos or {}).get("server") or {}

    @property
    def client_protos(self):
        return (self.protos or {}).get("client") or {}


class Client:
    """One pomelo connection, driven like the browser client. Create with `await
    Client.connect(host, port)` (which also handshakes unless handshake=False).

    Inspect: handshake_response, heartbeat_interval (s), dict (route -> code or None),
    received (every (type, body) package, in order), pushes (every (route, body)),
    kick_reason, close_code, heartbeat_timed_out, heartbeats_received/heartbeats_sent
    (monotonic times), violations (what the real client would choke on)."""

    def __init__(self, state=None, auto_heartbeat=True, strict_frames=True):
        self.state = state if state is not None else BrowserState()
        self.auto_heartbeat = auto_heartbeat
        self.strict_frames = strict_frames
        self.ws = None
        self.handshake_response = None
        self.heartbeat_interval = 0.0
        self.heartbeat_timeout = 0.0
        self.dict = None
        self.abbrs = {}
        self.received = []
        self.pushes = []
        self.violations = []
        self.kick_reason = None
        self.kicked = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code = None
        self.close_reason = None
        self.heartbeat_timed_out = False
        self.heartbeats_received = []
        self.heartbeats_sent = []
        self.text_frames = []
        self._pending = {}  # id -> (route, future)
        self._unread_pushes = []
        self._push_signal = asyncio.Event()
        self._handlers = {}
        self._handshake_fut = None
        self._reader = None
        self._hb_send_task = None
        self._hb_timeout_task = None
        self._next_hb_deadline = 0.0
        self._working = False

    # -- connection --

    @classmethod
    async def connect(cls, host, port, state=None, path="/", timeout=5.0, handshake=True,
                      user=None, auto_heartbeat=True, compression=None, max_size=2 ** 25,
                      extra_headers=None):
        """Opens ws://host:port/path (no subprotocol, no permessage-deflate unless
        compression="deflate", no WebSocket pings: the browser sends none) and, unless
        handshake=False, performs the handshake. Raises on failure within timeout."""
        client = cls(state, auto_heartbeat)
        await client.open(host, port, path, timeout, compression, max_size, extra_headers)
        if handshake:
            try:
                await client.handshake(timeout=timeout, user=user)
            except BaseException:
                await client.abort()
                raise
        return client

    async def open(self, host, port, path="/", timeout=5.0, compression=None,
                   max_size=2 ** 25, extra_headers=None):
        uri = f"ws://{_host_for_uri(host)}:{port}{path}"
        self.ws = await asyncio.wait_for(
            websockets.connect(uri, compression=compression, max_size=max_size,
                               ping_interval=None, close_timeout=2, open_timeout=timeout,
                               extra_headers=extra_headers),
            timeout)
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self, timeout=3.0):
        """Closes like pomelo.disconnect(): a normal WebSocket close; waits for the reader
        to finish within timeout, then drops the connection."""
        self._cancel_heartbeat()
        if self.ws is None:
            return
        try:
            await asyncio.wait_for(self.ws.close(), timeout)
        except (asyncio.TimeoutError, OSError, websockets.WebSocketException):
            pass
        await self._finish_reader(timeout)

    async def abort(self):
        """Drops the TCP connection without a close handshake."""
        self._cancel_heartbeat()
        if self.ws is not None:
            self.ws.transport.abort()
            await self._finish_reader(2.0)

    async def _finish_reader(self, timeout):
        if self._reader is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except asyncio.TimeoutError:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass

    async def wait_closed(self, timeout=5.0):
        """Waits until the server closed the connection; returns (close code, reason).
        Raises asyncio.TimeoutError if it stays open."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code, self.close_reason

    async def wait_kicked(self, timeout=5.0):
        """Waits for a KICK package; returns its reason."""
        await asyncio.wait_for(self.kicked.wait(), timeout)
        return self.kick_reason

    @property
    def is_closed(self):
        return self.closed.is_set()

    # -- handshake --

    async def handshake(self, timeout=5.0, user=None, body=None):
        """Sends the browser's handshake (or `body`, raw bytes), waits for the answer, and
        on code 200 applies it (heartbeat, dict, protos) and sends HANDSHAKE_ACK right
        away. Returns the response dict. Raises HandshakeError (no ACK sent) on another
        code, ConnectionLost or asyncio.TimeoutError."""
        self._handshake_fut = asyncio.get_running_loop().create_future()
        if body is None:
            body = handshake_body(self.state.proto_version, user)
        await self.send_package(PKG_HANDSHAKE, body)
        resp = await self._wait(self._handshake_fut, timeout)
        if not isinstance(resp, dict) or resp.get("code") != RES_OK:
            raise HandshakeError(resp.get("code") if isinstance(resp, dict) else None, resp)
        self._handshake_init(resp)
        # WORKING from here: the server answers the ACK with a heartbeat at once.
        self._working = True
        await self.send_raw(HANDSHAKE_ACK)
        return resp

    def _handshake_init(self, resp):
        sys_ = resp.get("sys") or {}
        hb = sys_.get("heartbeat")
        self.heartbeat_interval = float(hb) if hb else 0.0
        self.heartbeat_timeout = 2 * self.heartbeat_interval
        self.dict = sys_.get("dict")
        if self.dict:
            self.abbrs = {code: route for route, code in self.dict.items()}
        protos = sys_.get("protos")
        if protos:
            self.state.protos = {"server": protos.get("server") or {},
                                 "client": protos.get("client") or {},
                                 "version": protos.get("version") or 0}
        self.handshake_response = resp

    # -- requests, notifies, pushes --

    def _encode_body(self, route, body):
        if isinstance(body, (bytes, bytearray)):
            return bytes(body)
        body = {} if body is None else body
        if route in self.state.client_protos:
            encoded = pb_encode(self.state.client_protos, route, body)
            if encoded is not None:
                return encoded
        return json_encode(body)

    def _route_for_wire(self, route, compress):
        if compress is None:
            compress = bool(self.dict) and route in self.dict
        return self.dict[route] if compress else route

    async def request(self, route, body=None, timeout=5.0, compress=None, msg_id=None):
        """Sends a request (body: dict -> JSON or protobuf per clientProtos, bytes as is;
        the route compressed when the handshake dict has it, unless compress=False) and
        returns the decoded response body. msg_id overrides the browser's counter.
        Raises RequestTimeout or ConnectionLost."""
        rid = self.state.next_id() if msg_id is None else msg_id
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = (route, fut)
        msg = encode_message(MSG_REQUEST, rid, self._route_for_wire(route, compress),
                             self._encode_body(route, body))
        try:
            await self.send_package(PKG_DATA, msg)
            return await self._wait(fut, timeout, RequestTimeout(
                f"no response to request {rid} {route} within {timeout}s"))
        finally:
            self._pending.pop(rid, None)

    async def notify(self, route, body=None, compress=None):
        """Sends a notify (no id, no response expected)."""
        msg = encode_message(MSG_NOTIFY, 0, self._route_for_wire(route, compress),
                             self._encode_body(route, body))
        await self.send_package(PKG_DATA, msg)

    def on(self, route, handler):
        """Calls handler(body) for every push on route (from the reader task)."""
        self._handlers.setdefault(route, []).append(handler)

    async def next_push(self, route=None, timeout=5.0):
        """Returns the oldest push not returned yet (on route, if given) as (route, body).
        Raises asyncio.TimeoutError, or ConnectionLost once closed with none left."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (r, _b) in enumerate(self._unread_pushes):
                if route is None or r == route:
                    return self._unread_pushes.pop(i)
            if self.is_closed:
                raise ConnectionLost(self)
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError(f"no push{' ' + route if route else ''} "
                                           f"within {timeout}s")
            self._push_signal.clear()
            try:
                await asyncio.wait_for(self._push_signal.wait(), left)
            except asyncio.TimeoutError:
                pass

    def unread_pushes(self, route=None):
        """Pushes not yet returned by next_push (on route, if given)."""
        return [(r, b) for r, b in self._unread_pushes if route is None or r == route]

    async def _wait(self, fut, timeout, timeout_exc=None):
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            done, _ = await asyncio.wait({fut, closed}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if fut in done:
            return fut.result()
        if closed in done:
            raise ConnectionLost(self)
        raise timeout_exc or asyncio.TimeoutError(f"nothing within {timeout}s")

    # -- raw sending (hostile tests) --

    async def send_raw(self, data):
        """Sends data as one binary WebSocket message, whatever it holds."""
        await self.ws.send(bytes(data))

    async def send_package(self, ptype, body=b""):
        """Sends one package in one binary message."""
        await self.send_raw(encode_package(ptype, body))

    async def send_text(self, text):
        """Sends a text WebSocket message (the browser never does)."""
        await self.ws.send(text)

    # -- receiving --

    async def _read_loop(self):
        try:
            async for frame in self.ws:
                self._on_frame(frame)
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # a bug here must not hang the test: record and close
            self.violations.append(f"client reader failed: {e!r}")
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self._cancel_heartbeat()
            self.closed.set()
            self._push_signal.set()

    def _on_frame(self, frame):
        if self.heartbeat_timeout:
            self._next_hb_deadline = time.monotonic() + self.heartbeat_timeout
        if isinstance(frame, str):
            # The browser drops text messages silently; the server must never send them.
            self.text_frames.append(frame)
            self.violations.append(f"text frame from the server: {frame[:80]!r}")
            return
        try:
            packages = decode_packages(frame)
        except ProtocolError as e:
            self.violations.append(f"undecodable message ({e}): {frame[:64].hex()}")
            if self.strict_frames:
                return
            packages = []
        for ptype, body in packages:
            self.received.append((ptype, body))
            self._on_package(ptype, body)

    def _on_package(self, ptype, body):
        if ptype == PKG_HANDSHAKE:
            self._on_handshake(body)
        elif ptype == PKG_HEARTBEAT:
            self._on_heartbeat(body)
        elif ptype == PKG_DATA:
            self._on_data(body)
        elif ptype == PKG_KICK:
            self._on_kick(body)
        else:
            # The browser throws "handlers[type] is not a function" for type 2 or unknown.
            self.violations.append(f"package type {ptype} from the server")

    def _parse_json(self, what, body):
        if not body:
            self.violations.append(f"empty {what} body (JSON.parse would throw)")
            return None
        try:
            return json_decode(body)
        except ValueError as e:
            self.violations.append(f"{what} body is not JSON ({e}): {body[:80]!r}")
            return None

    def _on_handshake(self, body):
        resp = self._parse_json("handshake", body)
        fut = self._handshake_fut
        if fut is None or fut.done():
            self.violations.append("handshake response nobody asked for")
            return
        fut.set_result(resp)

    def _on_heartbeat(self, body):
        self.heartbeats_received.append(time.monotonic())
        if body:
            self.violations.append("heartbeat with a body")
        if not self._working:
            self.violations.append("heartbeat before the handshake ACK")
        if not self.heartbeat_interval or not self.auto_heartbeat:
            return
        if self._hb_timeout_task is not None:
            self._hb_timeout_task.cancel()
            self._hb_timeout_task = None
        if self._hb_send_task is not None:
            return  # already waiting to send one
        self._hb_send_task = asyncio.get_running_loop().create_task(self._heartbeat_later())

    async def _heartbeat_later(self):
        await asyncio.sleep(self.heartbeat_interval)
        self._hb_send_task = None
        if self.is_closed:
            return
        try:
            await self.send_raw(HEARTBEAT)
        except websockets.ConnectionClosed:
            return
        self.heartbeats_sent.append(time.monotonic())
        self._next_hb_deadline = time.monotonic() + self.heartbeat_timeout
        self._hb_timeout_task = asyncio.get_running_loop().create_task(self._heartbeat_watch())

    async def _heartbeat_watch(self):
        # The browser's heartbeatTimeoutCb: re-arm while the deadline (pushed by every
        # incoming message) is still ahead, else give up on the server.
        await asyncio.sleep(self.heartbeat_timeout)
        while True:
            gap = self._next_hb_deadline - time.monotonic()
            if gap <= HEARTBEAT_GAP_THRESHOLD:
                break
            await asyncio.sleep(gap)
        self._hb_timeout_task = None
        self.heartbeat_timed_out = True
        asyncio.get_running_loop().create_task(self.close())

    def _cancel_heartbeat(self):
        current = asyncio.current_task()
        for task in (self._hb_send_task, self._hb_timeout_task):
            if task is not None and task is not current:
                task.cancel()
        self._hb_send_task = self._hb_timeout_task = None

    def _on_data(self, body):
        if not self._working:
            self.violations.append("DATA before the handshake ACK")
        try:
            msg = decode_message(body, self.abbrs)
        except ProtocolError as e:
            self.violations.append(f"undecodable message ({e}): {body[:64].hex()}")
            return
        if msg.flag & 0xF0:
            self.violations.append(f"message flag 0x{msg.flag:02x} has unknown bits set")
        if msg.id > 0:
            self._on_response(msg)
        else:
            self._on_push(msg)

    def _decode_body(self, route, body, what):
        protos = self.state.server_protos
        if isinstance(route, str) and route in protos:
            try:
                return pb_decode(protos, route, body)
            except (ProtocolError, KeyError, ValueError) as e:
                self.violations.append(f"{what} {route}: protobuf body undecodable ({e})")
                return None
        return self._parse_json(f"{what} {route}", body)

    def _on_response(self, msg):
        if msg.type != MSG_RESPONSE:
            self.violations.append(f"message type {msg.type} with id {msg.id} (the client "
                                   f"treats it as a response)")
        entry = self._pending.get(msg.id)
        if entry is None:
            # The browser throws here and drops the rest of the frame.
            self.violations.append(f"response to unknown or answered id {msg.id}")
            return
        route, fut = self._pending.pop(msg.id)
        if not msg.body:
            self.violations.append(f"empty response body for id {msg.id}")
        body = self._decode_body(route, msg.body, "response to")
        if not fut.done():
            fut.set_result(body)

    def _on_push(self, msg):
        if msg.type != MSG_PUSH:
            self.violations.append(f"message type {msg.type} with id 0 (the client treats it "
                                   f"as a push)")
        if isinstance(msg.route, int):
            body = {}  # a code the dict does not know: the browser emits the number with {}
        else:
            body = self._decode_body(msg.route, msg.body, "push")
        self.pushes.append((msg.route, body))
        self._unread_pushes.append((msg.route, body))
        self._push_signal.set()
        for handler in self._handlers.get(msg.route, []):
            handler(body)

    def _on_kick(self, body):
        data = self._parse_json("kick", body)
        self.kick_reason = data.get("reason") if isinstance(data, dict) else data
        self.kicked.set()


def _host_for_uri(host):
    return f"[{host}]" if ":" in host else host


# ---- the chatofpomelo flow ----

GATE_ROUTE = "gate.gateHandler.queryEntry"
ENTER_ROUTE = "connector.entryHandler.enter"
SEND_ROUTE = "chat.chatHandler.send"


async def query_entry(gate_host, gate_port, uid, state=None, timeout=5.0):
    """client.js queryEntry: connect to the gate, handshake, request queryEntry {uid} (id 1
    with a fresh state; the next id of `state` otherwise), disconnect. Returns the response
    body, e.g. {"code":200,"host":...,"port":...}. Raises if the gate misbehaves at the
    protocol level (violations)."""
    client = await Client.connect(gate_host, gate_port, state=state, timeout=timeout)
    try:
        resp = await client.request(GATE_ROUTE, {"uid": uid}, timeout=timeout)
    finally:
        await client.close()
    if client.violations:
        raise ProtocolError(f"gate {gate_host}:{gate_port}: {client.violations}")
    return resp


async def login(gate_host, gate_port, username, rid, state=None, timeout=5.0):
    """The page's login: queryEntry at the gate, then connect to the connector it names and
    request enter {username, rid}, sharing one BrowserState (so the ids are 1 and 2 for a
    fresh one). Returns (client, enter response); the caller closes the client. Raises
    AssertionError if queryEntry does not answer code 200."""
    state = state if state is not None else BrowserState()
    entry = await query_entry(gate_host, gate_port, username, state, timeout)
    if not isinstance(entry, dict) or entry.get("code") != RES_OK:
        raise AssertionError(f"queryEntry({username!r}) answered {entry!r}")
    client = await Client.connect(entry["host"], entry["port"], state=state, timeout=timeout)
    try:
        resp = await client.request(ENTER_ROUTE, {"username": username, "rid": rid},
                                    timeout=timeout)
    except BaseException:
        await client.close()
        raise
    return client, resp


# ---- WebSocket framing by hand (hostile tests) ----

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None, mask_key=None):
    """One WebSocket frame, client style (masked unless mask=False). length overrides the
    payload length field (it may then disagree with the payload); rsv sets RSV1-3 bits."""
    payload = bytes(payload)
    n = len(payload) if length is None else length
    head = bytearray(((0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF),))
    mbit = 0x80 if mask else 0
    if n < 126:
        head.append(mbit | n)
    elif n < 1 << 16:
        head.append(mbit | 126)
        head += struct.pack(">H", n)
    else:
        head.append(mbit | 127)
        head += struct.pack(">Q", n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


class RawWebSocket:
    """A TCP connection that speaks WebSocket by hand, for frames `websockets` refuses to
    send (bad lengths, fragments, unmasked frames, ...) and for plain garbage.

    `await RawWebSocket.connect(host, port)` performs the HTTP upgrade (unless
    upgrade=False, then it is a bare TCP connection)."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.response_head = None

    @classmethod
    async def connect(cls, host, port, path="/", timeout=5.0, upgrade=True, headers=None):
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        sock = cls(reader, writer)
        if upgrade:
            try:
                await sock._upgrade(host, port, path, timeout, headers or {})
            except BaseException:
                sock.abort()
                raise
        return sock

    async def _upgrade(self, host, port, path, timeout, headers):
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {_host_for_uri(host)}:{port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        self.response_head = head.decode("latin-1")
        status = self.response_head.split("\r\n", 1)[0]
        if " 101 " not in status + " ":
            raise ProtocolError(f"upgrade refused: {status}")
        expect = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        if f"sec-websocket-accept: {expect}".lower() not in self.response_head.lower():
            raise ProtocolError("bad Sec-WebSocket-Accept in the upgrade response")

    async def send_bytes(self, data):
        """Writes raw bytes to the socket."""
        self.writer.write(bytes(data))
        await self.writer.drain()

    async def send_frame(self, opcode, payload=b"", **kw):
        """Writes one frame built by ws_frame(opcode, payload, **kw)."""
        await self.send_bytes(ws_frame(opcode, payload, **kw))

    async def send_binary(self, payload):
        await self.send_frame(OP_BINARY, payload)

    async def recv_frame(self, timeout=5.0):
        """Reads one server frame: (opcode, fin, payload), or None at end of stream. Raises
        asyncio.TimeoutError, or ProtocolError for a masked server frame."""
        async def read():
            try:
                b0, b1 = await self.reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", await self.reader.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", await self.reader.readexactly(8))[0]
                if b1 & 0x80:
                    raise ProtocolError("the server masked a frame")
                return b0 & 0x0F, bool(b0 & 0x80), await self.reader.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
        return await asyncio.wait_for(read(), timeout)

    async def recv_message(self, timeout=5.0):
        """Reads one whole data message (joining fragments, answering pings, skipping
        pongs): (opcode, payload); (OP_CLOSE, payload) for a close frame; None at end of
        stream."""
        deadline = time.monotonic() + timeout
        opcode, parts = None, []
        while True:
            frame = await self.recv_frame(max(0.0, deadline - time.monotonic()))
            if frame is None:
                return None
            op, fin, payload = frame
            if op == OP_PING:
                await self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                return OP_CLOSE, payload
            if op != OP_CONT:
                opcode = op
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts)

    async def recv_packages(self, timeout=5.0):
        """Reads one data message and splits it into packages [(type, body), ...]; None when
        the connection closed (close frame or end of stream) first."""
        msg = await self.recv_message(timeout)
        if msg is None or msg[0] == OP_CLOSE:
            return None
        return decode_packages(msg[1])

    async def wait_closed(self, timeout=5.0):
        """Reads and discards until the server closes (close frame or end of stream).
        Returns the close frame's code (None if the stream just ended). Raises
        asyncio.TimeoutError if the server keeps the connection open."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError("the server kept the connection open")
            frame = await self.recv_frame(left)
            if frame is None:
                return None
            if frame[0] == OP_CLOSE:
                payload = frame[2]
                return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None

    def abort(self):
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()

    async def close(self):
        """Closes the TCP connection (no close handshake)."""
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (asyncio.TimeoutError, OSError):
            self.abort()
