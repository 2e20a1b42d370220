/*
 * Pomelo wire protocol for the browser (and Node): the package layer, the
 * message layer, the pomelo flavour of protobuf, and a UTF-8 codec that
 * behaves like the one in the pomelo browser client.
 *
 * See /work/shared/protocol.md sections 1, 2 and 4 for the byte layouts.
 * Every decoder here works on untrusted bytes: it checks bounds and throws a
 * ProtocolError instead of reading past the end.
 */
(function (root) {
	'use strict';

	const CLIENT_TYPE = 'js-websocket';
	const CLIENT_VERSION = '0.0.1';

	const PackageType = Object.freeze({
		HANDSHAKE: 1,
		HANDSHAKE_ACK: 2,
		HEARTBEAT: 3,
		DATA: 4,
		KICK: 5,
	});

	const MessageType = Object.freeze({
		REQUEST: 0,
		NOTIFY: 1,
		RESPONSE: 2,
		PUSH: 3,
	});

	const PKG_HEAD_BYTES = 4;
	const PKG_BODY_MAX = 0xffffff;
	const MSG_ID_MAX_BYTES = 5;
	const MSG_ROUTE_MAX_BYTES = 255;
	const MSG_ROUTE_CODE_MAX = 0xffff;
	const PB_DEPTH_MAX = 64;

	class ProtocolError extends Error {
		constructor(message) {
			super(message);
			this.name = 'ProtocolError';
		}
	}

	function toBytes(data) {
		if (data instanceof Uint8Array)
			return data;
		if (data instanceof ArrayBuffer)
			return new Uint8Array(data);
		if (ArrayBuffer.isView(data))
			return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
		throw new TypeError('expected bytes');
	}

	/* ---------------------------------------------------------------- UTF-8 */

	/*
	 * Encodes each UTF-16 code unit on its own, in 1 to 3 bytes, exactly like
	 * the pomelo browser codec: a character outside the BMP therefore goes out
	 * as two 3-byte surrogate sequences (CESU-8), which pomelo servers expect.
	 */
	function strencode(str) {
		const out = new Uint8Array(str.length * 3);
		let n = 0;

		for (let i = 0; i < str.length; i++) {
			const c = str.charCodeAt(i);

			if (c < 0x80) {
				out[n++] = c;
			} else if (c < 0x800) {
				out[n++] = 0xc0 | (c >> 6);
				out[n++] = 0x80 | (c & 0x3f);
			} else {
				out[n++] = 0xe0 | (c >> 12);
				out[n++] = 0x80 | ((c >> 6) & 0x3f);
				out[n++] = 0x80 | (c & 0x3f);
			}
		}
		return out.slice(0, n);
	}

	/* How many continuation bytes follow lead byte b; -1 if b cannot lead. */
	function utf8Trail(b) {
		if (b < 0x80)
			return 0;
		if (b >= 0xc2 && b < 0xe0)
			return 1;
		if (b >= 0xe0 && b < 0xf0)
			return 2;
		if (b >= 0xf0 && b < 0xf5)
			return 3;
		return -1;
	}

	/*
	 * Reads one sequence at bytes[i]. Returns [codePoint, length], or
	 * [0xfffd, 1] for anything malformed or truncated. 3-byte surrogates
	 * (CESU-8, what pomelo clients send) are accepted and come out as
	 * UTF-16 code units, so a surrogate pair joins up again in the string.
	 */
	function utf8Read(bytes, i) {
		const b = bytes[i];
		const trail = utf8Trail(b);

		if (trail < 0 || i + trail >= bytes.length)
			return [0xfffd, 1];
		let cp = trail ? b & (0x3f >> trail) : b;
		for (let k = 1; k <= trail; k++) {
			const cb = bytes[i + k];
			if ((cb & 0xc0) !== 0x80)
				return [0xfffd, 1];
			cp = cp * 64 + (cb & 0x3f);
		}
		if ((trail === 2 && cp < 0x800) ||
		    (trail === 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return [0xfffd, 1];
		return [cp, trail + 1];
	}

	/*
	 * Decodes UTF-8 or CESU-8 bytes to a string. Never throws: bad bytes
	 * become U+FFFD. Proper 4-byte sequences are decoded too (the pomelo
	 * codec garbles them; accepting them costs nothing).
	 */
	function strdecode(data) {
		const bytes = toBytes(data);
		const CHUNK = 8192;	/* stay far below the argument-count limit */
		const parts = [];
		let units = [];

		for (let i = 0; i < bytes.length;) {
			const [cp, len] = utf8Read(bytes, i);
			i += len;
			if (cp > 0xffff) {
				units.push(0xd800 + ((cp - 0x10000) >> 10));
				units.push(0xdc00 + ((cp - 0x10000) & 0x3ff));
			} else {
				units.push(cp);
			}
			if (units.length >= CHUNK) {
				parts.push(String.fromCharCode.apply(null, units));
				units = [];
			}
		}
		parts.push(String.fromCharCode.apply(null, units));
		return parts.join('');
	}

	function jsonEncode(value) {
		return strencode(JSON.stringify(value));
	}

	function jsonDecode(bytes) {
		return JSON.parse(strdecode(bytes));
	}

	/* -------------------------------------------------------------- varints */

	/* Base-128, least significant group first; n must be a safe integer >= 0. */
	function varintPush(out, n) {
		if (!Number.isSafeInteger(n) || n < 0)
			throw new ProtocolError('varint out of range: ' + n);
		do {
			let b = n % 128;
			n = Math.floor(n / 128);
			if (n !== 0)
				b |= 0x80;
			out.push(b);
		} while (n !== 0);
	}

	/* Returns [value, nextOffset]; throws if truncated or longer than maxBytes. */
	function varintRead(bytes, pos, end, maxBytes) {
		let value = 0;
		let scale = 1;

		for (let k = 0; k < maxBytes; k++) {
			if (pos >= end)
				throw new ProtocolError('truncated varint');
			const b = bytes[pos++];
			value += (b & 0x7f) * scale;
			if (b < 0x80)
				return [value, pos];
			scale *= 128;
		}
		throw new ProtocolError('varint too long');
	}

	/* -------------------------------------------------------- package layer */

	/* type | 24-bit big-endian body length | body. body may be omitted. */
	function packageEncode(type, body) {
		const len = body ? body.length : 0;

		if (len > PKG_BODY_MAX)
			throw new ProtocolError('package body too large: ' + len);
		const out = new Uint8Array(PKG_HEAD_BYTES + len);
		out[0] = type & 0xff;
		out[1] = (len >> 16) & 0xff;
		out[2] = (len >> 8) & 0xff;
		out[3] = len & 0xff;
		if (body)
			out.set(body, PKG_HEAD_BYTES);
		return out;
	}

	/*
	 * Splits one WebSocket message into its packages: [{type, body}], body a
	 * Uint8Array view (possibly empty). Throws if any package is truncated.
	 */
	function packageDecode(data) {
		const bytes = toBytes(data);
		const out = [];
		let pos = 0;

		while (pos < bytes.length) {
			if (bytes.length - pos < PKG_HEAD_BYTES)
				throw new ProtocolError('truncated package header');
			const type = bytes[pos];
			const len = (bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) |
			    bytes[pos + 3];
			pos += PKG_HEAD_BYTES;
			if (bytes.length - pos < len)
				throw new ProtocolError('truncated package body');
			out.push({ type: type, body: bytes.subarray(pos, pos + len) });
			pos += len;
		}
		return out;
	}

	/* -------------------------------------------------------- message layer */

	function msgHasId(type) {
		return type === MessageType.REQUEST || type === MessageType.RESPONSE;
	}

	function msgHasRoute(type) {
		return type !== MessageType.RESPONSE;
	}

	/*
	 * flag | [id varint] | [route] | body. route is a string, or a number
	 * when compressRoute is set (a dictionary code). body is bytes or null.
	 */
	function messageEncode(id, type, compressRoute, route, body) {
		if (type !== MessageType.REQUEST && type !== MessageType.NOTIFY &&
		    type !== MessageType.RESPONSE && type !== MessageType.PUSH)
			throw new ProtocolError('unknown message type: ' + type);
		const head = [(type << 1) | (compressRoute ? 1 : 0)];

		if (msgHasId(type))
			varintPush(head, id);
		if (msgHasRoute(type)) {
			if (compressRoute) {
				if (!Number.isInteger(route) || route < 0 ||
				    route > MSG_ROUTE_CODE_MAX)
					throw new ProtocolError('bad route code: ' + route);
				head.push(route >> 8, route & 0xff);
			} else {
				const r = strencode(route || '');
				if (r.length > MSG_ROUTE_MAX_BYTES)
					throw new ProtocolError('route too long');
				head.push(r.length);
				for (let i = 0; i < r.length; i++)
					head.push(r[i]);
			}
		}
		const blen = body ? body.length : 0;
		const out = new Uint8Array(head.length + blen);
		out.set(head, 0);
		if (body)
			out.set(body, head.length);
		return out;
	}

	/*
	 * Parses a DATA body: {id, type, compressRoute, route, body}. id is 0
	 * when absent; route is null for a response, a number when compressed.
	 */
	function messageDecode(data) {
		const bytes = toBytes(data);
		const end = bytes.length;
		let pos = 0;
		let id = 0;
		let route = null;

		if (end < 1)
			throw new ProtocolError('empty message');
		const flag = bytes[pos++];
		const compressRoute = (flag & 1) === 1;
		const type = (flag >> 1) & 7;
		if (type > MessageType.PUSH)
			throw new ProtocolError('unknown message type: ' + type);
		if (msgHasId(type))
			[id, pos] = varintRead(bytes, pos, end, MSG_ID_MAX_BYTES);
		if (msgHasRoute(type)) {
			if (compressRoute) {
				if (end - pos < 2)
					throw new ProtocolError('truncated route code');
				route = (bytes[pos] << 8) | bytes[pos + 1];
				pos += 2;
			} else {
				if (end - pos < 1)
					throw new ProtocolError('truncated route');
				const rlen = bytes[pos++];
				if (end - pos < rlen)
					throw new ProtocolError('truncated route');
				route = strdecode(bytes.subarray(pos, pos + rlen));
				pos += rlen;
			}
		}
		return {
			id: id,
			type: type,
			compressRoute: compressRoute,
			route: route,
			body: bytes.subarray(pos),
		};
	}

	/* ----------------------------------------------------- pomelo protobuf */

	/*
	 * Protos look like pomelo-protobuf's parsed form:
	 *   {field: {option, type, tag}, __messages: {Type: proto}, __tags: {tag: field}}
	 * and a proto set maps a route (or "message Type") to such a proto.
	 * Repeated scalars are written as key, element count, elements.
	 */
	const PB_WIRE = { uInt32: 0, sInt32: 0, int32: 0, double: 1, string: 2, float: 5 };
	const PB_SCALARS = ['uInt32', 'sInt32', 'int32', 'uInt64', 'sInt64', 'float', 'double'];

	function pbIsField(name, proto) {
		return name.slice(0, 2) !== '__' && proto[name] !== null &&
		    typeof proto[name] === 'object' && 'tag' in proto[name];
	}

	function own(obj, key) {
		return !!obj && Object.prototype.hasOwnProperty.call(obj, key);
	}

	function pbNested(set, proto, type) {
		if (own(proto.__messages, type))
			return proto.__messages[type];
		return own(set, 'message ' + type) ? set['message ' + type] : null;
	}

	function pbFloat(value, size) {
		const view = new DataView(new ArrayBuffer(size));
		if (size === 4)
			view.setFloat32(0, value, true);
		else
			view.setFloat64(0, value, true);
		return Array.from(new Uint8Array(view.buffer));
	}

	function pbEncodeValue(out, set, proto, type, value, depth) {
		switch (type) {
		case 'uInt32':
			varintPush(out, Number(value));
			return;
		case 'int32':
		case 'sInt32': {
			const n = Number(value);
			varintPush(out, n < 0 ? -n * 2 - 1 : n * 2);
			return;
		}
		case 'float':
		case 'double':
			out.push(...pbFloat(Number(value), type === 'float' ? 4 : 8));
			return;
		case 'string': {
			const s = strencode(String(value));
			varintPush(out, s.length);
			for (let i = 0; i < s.length; i++)
				out.push(s[i]);
			return;
		}
		}
		const inner = pbNested(set, proto, type);
		if (!inner)
			throw new ProtocolError('protobuf: unsupported type ' + type);
		const sub = [];
		pbEncodeMessage(sub, set, inner, value, depth + 1);
		varintPush(out, sub.length);
		for (let i = 0; i < sub.length; i++)
			out.push(sub[i]);
	}

	function pbKey(out, field) {
		const wire = own(PB_WIRE, field.type) ? PB_WIRE[field.type] : 2;
		varintPush(out, field.tag * 8 + wire);
	}

	function pbEncodeMessage(out, set, proto, msg, depth) {
		if (depth > PB_DEPTH_MAX)
			throw new ProtocolError('protobuf: nested too deep');
		if (msg === null || typeof msg !== 'object')
			throw new ProtocolError('protobuf: message must be an object');
		for (const name of Object.keys(proto)) {
			if (pbIsField(name, proto) && proto[name].option === 'required' &&
			    msg[name] === undefined)
				throw new ProtocolError('protobuf: missing ' + name);
		}
		for (const name of Object.keys(msg)) {
			if (!pbIsField(name, proto) || msg[name] === undefined)
				continue;
			const field = proto[name];
			const value = msg[name];
			if (field.option !== 'repeated') {
				pbKey(out, field);
				pbEncodeValue(out, set, proto, field.type, value, depth);
			} else if (Array.isArray(value) && value.length > 0) {
				pbEncodeRepeated(out, set, proto, field, value, depth);
			}
		}
	}

	function pbEncodeRepeated(out, set, proto, field, values, depth) {
		if (PB_SCALARS.includes(field.type)) {
			pbKey(out, field);
			varintPush(out, values.length);
			for (const v of values)
				pbEncodeValue(out, set, proto, field.type, v, depth);
			return;
		}
		for (const v of values) {
			pbKey(out, field);
			pbEncodeValue(out, set, proto, field.type, v, depth);
		}
	}

	/* Encodes msg with set[route]; returns a Uint8Array. */
	function protobufEncode(set, route, msg) {
		if (!own(set, route))
			throw new ProtocolError('protobuf: no proto for ' + route);
		const proto = set[route];
		const out = [];
		pbEncodeMessage(out, set, proto, msg, 0);
		return Uint8Array.from(out);
	}

	/* A cursor over bytes[pos..end) that throws instead of overrunning. */
	class PbReader {
		constructor(bytes, pos, end) {
			this.bytes = bytes;
			this.pos = pos;
			this.end = end;
		}

		varint() {
			let v;
			[v, this.pos] = varintRead(this.bytes, this.pos, this.end, 8);
			return v;
		}

		take(n) {
			if (n > this.end - this.pos)
				throw new ProtocolError('protobuf: truncated');
			const start = this.pos;
			this.pos += n;
			return this.bytes.subarray(start, this.pos);
		}
	}

	function pbDecodeFloat(bytes, size) {
		const view = new DataView(bytes.buffer, bytes.byteOffset, size);
		return size === 4 ? view.getFloat32(0, true) : view.getFloat64(0, true);
	}

	function pbDecodeValue(rd, set, proto, type, depth) {
		switch (type) {
		case 'uInt32':
			return rd.varint();
		case 'int32':
		case 'sInt32': {
			const n = rd.varint();
			return n % 2 === 1 ? -(n + 1) / 2 : n / 2;
		}
		case 'float':
			return pbDecodeFloat(rd.take(4), 4);
		case 'double':
			return pbDecodeFloat(rd.take(8), 8);
		case 'string':
			return strdecode(rd.take(rd.varint()));
		}
		const inner = pbNested(set, proto, type);
		if (!inner)
			throw new ProtocolError('protobuf: unsupported type ' + type);
		const len = rd.varint();
		if (len > rd.end - rd.pos)
			throw new ProtocolError('protobuf: truncated');
		const sub = new PbReader(rd.bytes, rd.pos, rd.pos + len);
		const value = pbDecodeMessage(sub, set, inner, depth + 1);
		rd.pos += len;
		return value;
	}

	/* Skips a field whose tag the proto does not know (pomelo would crash). */
	function pbSkip(rd, wire) {
		switch (wire) {
		case 0:
			rd.varint();
			return;
		case 1:
			rd.take(8);
			return;
		case 2:
			rd.take(rd.varint());
			return;
		case 5:
			rd.take(4);
			return;
		}
		throw new ProtocolError('protobuf: bad wire type ' + wire);
	}

	function pbTagMap(proto) {
		if (proto.__tags)
			return proto.__tags;
		const tags = {};
		for (const name of Object.keys(proto)) {
			if (pbIsField(name, proto))
				tags[proto[name].tag] = name;
		}
		return tags;
	}

	function pbDecodeMessage(rd, set, proto, depth) {
		if (depth > PB_DEPTH_MAX)
			throw new ProtocolError('protobuf: nested too deep');
		const tags = pbTagMap(proto);
		const msg = {};

		while (rd.pos < rd.end) {
			const key = rd.varint();
			const tag = Math.floor(key / 8);
			const name = own(tags, tag) ? tags[tag] : null;
			if (!name || !own(proto, name) || !pbIsField(name, proto)) {
				pbSkip(rd, key % 8);
				continue;
			}
			const field = proto[name];
			if (field.option !== 'repeated') {
				msg[name] = pbDecodeValue(rd, set, proto, field.type, depth);
				continue;
			}
			const list = msg[name] || (msg[name] = []);
			let count = 1;
			if (PB_SCALARS.includes(field.type))
				count = rd.varint();
			if (count > rd.end - rd.pos)
				throw new ProtocolError('protobuf: truncated');
			for (let i = 0; i < count; i++)
				list.push(pbDecodeValue(rd, set, proto, field.type, depth));
		}
		return msg;
	}

	/* Decodes bytes with set[route]; returns a plain object. */
	function protobufDecode(set, route, data) {
		if (!own(set, route))
			throw new ProtocolError('protobuf: no proto for ' + route);
		const proto = set[route];
		const bytes = toBytes(data);
		return pbDecodeMessage(new PbReader(bytes, 0, bytes.length), set, proto, 0);
	}

	/* ------------------------------------------------------------ handshake */

	/*
	 * The handshake request object, key for key what pomelo-jsclient-websocket
	 * sends: protoVersion is the number 0 until the server has sent protos.
	 */
	function handshakeRequest(protoVersion, user) {
		const hs = {
			sys: {
				type: CLIENT_TYPE,
				version: CLIENT_VERSION,
				rsa: {},
				protoVersion: protoVersion || 0,
			},
		};
		if (user !== undefined)
			hs.user = user;
		return hs;
	}

	const Protocol = {
		CLIENT_TYPE: CLIENT_TYPE,
		CLIENT_VERSION: CLIENT_VERSION,
		PackageType: PackageType,
		MessageType: MessageType,
		ProtocolError: ProtocolError,
		strencode: strencode,
		strdecode: strdecode,
		jsonEncode: jsonEncode,
		jsonDecode: jsonDecode,
		Package: { encode: packageEncode, decode: packageDecode },
		Message: { encode: messageEncode, decode: messageDecode },
		Protobuf: { encode: protobufEncode, decode: protobufDecode },
		handshakeRequest: handshakeRequest,
	};

	if (typeof module !== 'undefined' && module.exports)
		module.exports = Protocol;
	else
		root.Protocol = Protocol;
})(typeof self !== 'undefined' ? self : this);
