/*
 * Self-test for protocol.js and client.js. In a browser (selftest.html) it
 * writes "SELFTEST PASS" or "SELFTEST FAIL: ..." into the title and the page;
 * under Node (`node web/js/selftest.js`) it prints the same and sets the exit
 * code. It uses no network and no real timers: the client runs against a fake
 * WebSocket and a fake clock, so everything finishes before the load event.
 */
(function (root) {
	'use strict';

	const inNode = typeof document === 'undefined' && typeof require === 'function';
	const P = inNode ? require('./protocol.js') : root.Protocol;
	const PomeloClient = inNode ? require('./client.js') : root.PomeloClient;
	const PT = P.PackageType;
	const MT = P.MessageType;

	/* ------------------------------------------------------------ helpers */

	function unhex(text) {
		const clean = text.replace(/\s+/g, '');
		const out = new Uint8Array(clean.length / 2);
		for (let i = 0; i < out.length; i++)
			out[i] = parseInt(clean.substr(i * 2, 2), 16);
		return out;
	}

	function hex(bytes) {
		return Array.from(bytes, (b) => (b < 16 ? '0' : '') + b.toString(16)).join(' ');
	}

	function hexOf(text) {
		return hex(P.strencode(text));
	}

	function fail(what) {
		throw new Error(what);
	}

	function check(cond, what) {
		if (!cond)
			fail(what);
	}

	function deepEqual(a, b) {
		if (a === b)
			return true;
		if (!a || !b || typeof a !== 'object' || typeof b !== 'object')
			return false;
		if (Array.isArray(a) !== Array.isArray(b))
			return false;
		const ka = Object.keys(a);
		if (ka.length !== Object.keys(b).length)
			return false;
		return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) &&
		    deepEqual(a[k], b[k]));
	}

	function eq(actual, expected, what) {
		if (!deepEqual(actual, expected)) {
			fail(what + ': got ' + JSON.stringify(actual) + ', want ' +
			    JSON.stringify(expected));
		}
	}

	function eqBytes(actual, expectedHex, what) {
		const want = hex(unhex(expectedHex));
		const got = hex(actual);
		if (got !== want)
			fail(what + ':\n  got  ' + got + '\n  want ' + want);
	}

	function throwsProtocolError(fn, what) {
		try {
			fn();
		} catch (e) {
			if (e instanceof P.ProtocolError)
				return;
			fail(what + ': threw ' + e.name + ': ' + e.message);
		}
		fail(what + ': did not throw');
	}

	const tests = [];

	function test(name, fn) {
		tests.push({ name: name, fn: fn });
	}

	/* ----------------------------------------------- vectors (section 8) */

	const V = {
		clientHandshake: '01 00 00 4b 7b 22 73 79 73 22 3a 7b 22 74 79 70 65 22 3a 22 6a 73 2d 77 65 62 73 6f 63 6b 65 74 22 2c 22 76 65 72 73 69 6f 6e 22 3a 22 30 2e 30 2e 31 22 2c 22 72 73 61 22 3a 7b 7d 2c 22 70 72 6f 74 6f 56 65 72 73 69 6f 6e 22 3a 30 7d 7d',
		serverHandshake: '01 00 00 22 7b 22 63 6f 64 65 22 3a 32 30 30 2c 22 73 79 73 22 3a 7b 22 68 65 61 72 74 62 65 61 74 22 3a 33 7d 7d',
		ack: '02 00 00 00',
		heartbeat: '03 00 00 00',
		enter: '04 00 00 41 00 01 1c 63 6f 6e 6e 65 63 74 6f 72 2e 65 6e 74 72 79 48 61 6e 64 6c 65 72 2e 65 6e 74 65 72 7b 22 75 73 65 72 6e 61 6d 65 22 3a 22 61 6c 69 63 65 22 2c 22 72 69 64 22 3a 22 72 6f 6f 6d 31 22 7d',
		enterDictPrefix: '04 00 00 26 01 02 00 02 7b 22 75 73 65 72 6e 61 6d 65',
		queryEntry: '04 00 00 2d 00 01 1b 67 61 74 65 2e 67 61 74 65 48 61 6e 64 6c 65 72 2e 71 75 65 72 79 45 6e 74 72 79 7b 22 75 69 64 22 3a 22 61 6c 69 63 65 22 7d',
		gateResponse: '04 00 00 2d 04 01 7b 22 63 6f 64 65 22 3a 32 30 30 2c 22 68 6f 73 74 22 3a 22 31 32 37 2e 30 2e 30 2e 31 22 2c 22 70 6f 72 74 22 3a 33 30 35 30 7d',
		enterResponse: '04 00 00 15 04 02 7b 22 75 73 65 72 73 22 3a 5b 22 61 6c 69 63 65 22 5d 7d',
		emptyResponse: '04 00 00 04 04 01 7b 7d',
		onAdd: '04 00 00 25 06 05 6f 6e 41 64 64 7b 22 72 6f 75 74 65 22 3a 22 6f 6e 41 64 64 22 2c 22 75 73 65 72 22 3a 22 62 6f 62 22 7d',
		onChatJson: '04 00 00 30 06 06 6f 6e 43 68 61 74 7b 22 6d 73 67 22 3a 22 68 69 22 2c 22 66 72 6f 6d 22 3a 22 61 6c 69 63 65 22 2c 22 74 61 72 67 65 74 22 3a 22 2a 22 7d',
		onChatPb: '04 00 00 16 06 06 6f 6e 43 68 61 74 0a 02 68 69 12 05 61 6c 69 63 65 1a 01 2a',
		notifyMsg: '02 15 63 68 61 74 2e 63 68 61 74 48 61 6e 64 6c 65 72 2e 73 65 6e 64 7b 7d',
		request300: '00 ac 02 01 61 7b 7d',
		kick: '05 00 00 11 7b 22 72 65 61 73 6f 6e 22 3a 22 6b 69 63 6b 22 7d',
		onChatPbBody: '0a 02 68 69 12 05 61 6c 69 63 65 1a 01 2a',
	};

	/* Pomelo's parsed serverProtos for the demo (protocol.md section 2). */
	const DEMO_PROTOS = {
		server: {
			onChat: {
				msg: { option: 'required', type: 'string', tag: 1 },
				from: { option: 'required', type: 'string', tag: 2 },
				target: { option: 'required', type: 'string', tag: 3 },
				__messages: {},
				__tags: { 1: 'msg', 2: 'from', 3: 'target' },
			},
		},
		client: {},
		version: '2zWPnSlRsRxjqgcU215Uxg==',
	};

	const DEMO_DICT = {
		'chat.chatHandler.send': 1,
		'connector.entryHandler.enter': 2,
		'gate.gateHandler.queryEntry': 3,
	};

	const ONCHAT = { msg: 'hi', from: 'alice', target: '*' };

	function onePackage(hexText) {
		const pkgs = P.Package.decode(unhex(hexText).buffer);
		eq(pkgs.length, 1, 'package count');
		return pkgs[0];
	}

	function dataMessage(hexText) {
		const pkg = onePackage(hexText);
		eq(pkg.type, PT.DATA, 'package type');
		return P.Message.decode(pkg.body);
	}

	test('8.1 client handshake', () => {
		const hs = P.handshakeRequest(0);
		eqBytes(P.Package.encode(PT.HANDSHAKE, P.jsonEncode(hs)), V.clientHandshake,
		    'handshake package');
		const pkg = onePackage(V.clientHandshake);
		eq(pkg.type, PT.HANDSHAKE, 'type');
		eq(P.jsonDecode(pkg.body), hs, 'body');
	});

	test('8.2 server handshake response', () => {
		const pkg = onePackage(V.serverHandshake);
		eq(pkg.type, PT.HANDSHAKE, 'type');
		eq(pkg.body.length, 34, 'body length');
		eq(P.jsonDecode(pkg.body), { code: 200, sys: { heartbeat: 3 } }, 'body');
	});

	test('8.3 handshake ACK and heartbeat', () => {
		eqBytes(P.Package.encode(PT.HANDSHAKE_ACK), V.ack, 'ack');
		eqBytes(P.Package.encode(PT.HEARTBEAT), V.heartbeat, 'heartbeat');
		const pkg = onePackage(V.heartbeat);
		eq(pkg.type, PT.HEARTBEAT, 'type');
		eq(pkg.body.length, 0, 'empty body');
	});

	test('8.4 enter request, string route and dict code', () => {
		const body = P.jsonEncode({ username: 'alice', rid: 'room1' });
		const msg = P.Message.encode(1, MT.REQUEST, false,
		    'connector.entryHandler.enter', body);
		eqBytes(P.Package.encode(PT.DATA, msg), V.enter, 'string route');
		const dm = dataMessage(V.enter);
		eq([dm.type, dm.id, dm.compressRoute, dm.route],
		    [MT.REQUEST, 1, false, 'connector.entryHandler.enter'], 'decoded head');
		eq(P.jsonDecode(dm.body), { username: 'alice', rid: 'room1' }, 'decoded body');

		const packed = P.Package.encode(PT.DATA,
		    P.Message.encode(2, MT.REQUEST, true, 2, body));
		eqBytes(packed, '04 00 00 26 01 02 00 02 ' + hex(body), 'dict route');
		check(hex(packed).startsWith(V.enterDictPrefix), 'dict route prefix');
		const cm = P.Message.decode(P.Package.decode(packed)[0].body);
		eq([cm.id, cm.compressRoute, cm.route], [2, true, 2], 'decoded dict head');
	});

	test('8.5 gate request', () => {
		const msg = P.Message.encode(1, MT.REQUEST, false, 'gate.gateHandler.queryEntry',
		    P.jsonEncode({ uid: 'alice' }));
		eqBytes(P.Package.encode(PT.DATA, msg), V.queryEntry, 'queryEntry');
	});

	test('8.6 responses', () => {
		const cases = [
			[V.gateResponse, 1, { code: 200, host: '127.0.0.1', port: 3050 }],
			[V.enterResponse, 2, { users: ['alice'] }],
			[V.emptyResponse, 1, {}],
		];
		for (const [bytes, id, body] of cases) {
			const m = dataMessage(bytes);
			eq([m.type, m.id, m.route], [MT.RESPONSE, id, null], 'head of ' + bytes);
			eq(P.jsonDecode(m.body), body, 'body of ' + bytes);
			const again = P.Message.encode(id, MT.RESPONSE, false, null, P.jsonEncode(body));
			eqBytes(P.Package.encode(PT.DATA, again), bytes, 're-encoded');
		}
	});

	test('8.7 pushes: JSON and protobuf', () => {
		let m = dataMessage(V.onAdd);
		eq([m.type, m.id, m.route], [MT.PUSH, 0, 'onAdd'], 'onAdd head');
		eq(P.jsonDecode(m.body), { route: 'onAdd', user: 'bob' }, 'onAdd body');

		m = dataMessage(V.onChatJson);
		eq([m.type, m.route], [MT.PUSH, 'onChat'], 'onChat head');
		eq(P.jsonDecode(m.body), ONCHAT, 'onChat JSON body');

		m = dataMessage(V.onChatPb);
		eq([m.type, m.route], [MT.PUSH, 'onChat'], 'onChat pb head');
		eq(P.Protobuf.decode(DEMO_PROTOS.server, 'onChat', m.body), ONCHAT, 'pb body');

		const push = P.Message.encode(0, MT.PUSH, false, 'onChat',
		    P.Protobuf.encode(DEMO_PROTOS.server, 'onChat', ONCHAT));
		eqBytes(P.Package.encode(PT.DATA, push), V.onChatPb, 're-encoded pb push');
	});

	test('8.8 notify and request id 300', () => {
		const n = P.Message.encode(0, MT.NOTIFY, false, 'chat.chatHandler.send',
		    P.jsonEncode({}));
		eqBytes(n, V.notifyMsg, 'notify message');
		eqBytes(P.Package.encode(PT.DATA, n), '04 00 00 19 ' + V.notifyMsg, 'wrapped');
		const dm = P.Message.decode(unhex(V.notifyMsg));
		eq([dm.type, dm.id, dm.route], [MT.NOTIFY, 0, 'chat.chatHandler.send'], 'decoded');

		eqBytes(P.Message.encode(300, MT.REQUEST, false, 'a', P.jsonEncode({})),
		    V.request300, 'id 300');
		const r = P.Message.decode(unhex(V.request300));
		eq([r.id, r.route], [300, 'a'], 'decoded id 300');
	});

	test('8.9 kick', () => {
		const pkg = onePackage(V.kick);
		eq(pkg.type, PT.KICK, 'type');
		eq(P.jsonDecode(pkg.body), { reason: 'kick' }, 'body');
	});

	test('4 protobuf onChat encoding', () => {
		eqBytes(P.Protobuf.encode(DEMO_PROTOS.server, 'onChat', ONCHAT),
		    V.onChatPbBody, 'onChat');
	});

	test('1 several packages in one frame', () => {
		const frame = unhex(V.heartbeat + V.onAdd + V.kick);
		const pkgs = P.Package.decode(frame);
		eq(pkgs.map((p) => p.type), [PT.HEARTBEAT, PT.DATA, PT.KICK], 'types');
		eq(P.Message.decode(pkgs[1].body).route, 'onAdd', 'middle package');
		eq(P.Package.decode(new Uint8Array(0)), [], 'empty frame');
	});

	test('6.4 UTF-8: CESU-8 out, 1-3 (and 4) byte sequences in', () => {
		eqBytes(P.strencode('\u{1F600}'), 'ed a0 bd ed b8 80', 'emoji as CESU-8');
		eq(P.strdecode(unhex('ed a0 bd ed b8 80')), '\u{1F600}', 'CESU-8 back');
		eq(P.strdecode(unhex('f0 9f 98 80')), '\u{1F600}', '4-byte UTF-8');
		eqBytes(P.strencode('a\u00e9\u4e2d'), '61 c3 a9 e4 b8 ad', '1-3 bytes');
		eq(P.strdecode(unhex('61 c3 a9 e4 b8 ad')), 'a\u00e9\u4e2d', 'decode 1-3 bytes');
		eq(P.strdecode(unhex('ff 61 e4 b8')), '\ufffda\ufffd\ufffd', 'malformed');
		eq(P.strdecode(unhex('c0 80')), '\ufffd\ufffd', 'overlong');
		const long = 'x\u4e2d'.repeat(70000);
		eq(P.strdecode(P.strencode(long)), long, 'long string');
		const body = P.jsonEncode({ msg: '\u{1F600}<b>&"' });
		eq(P.jsonDecode(body).msg, '\u{1F600}<b>&"', 'JSON round trip');
		eq(P.jsonDecode(P.strencode('{"m":"\\ud83d\\ude00"}')).m, '\u{1F600}', '\\u escapes');
	});

	test('malformed input throws ProtocolError', () => {
		throwsProtocolError(() => P.Package.decode(unhex('04 00 00')), 'short header');
		throwsProtocolError(() => P.Package.decode(unhex('04 00 00 05 00')), 'short body');
		throwsProtocolError(() => P.Package.decode(unhex('03 00 00 00 04')), 'trailing byte');
		throwsProtocolError(() => P.Message.decode(new Uint8Array(0)), 'empty message');
		throwsProtocolError(() => P.Message.decode(unhex('04 80')), 'truncated id');
		throwsProtocolError(() => P.Message.decode(unhex('04 80 80 80 80 80 01')), 'long id');
		throwsProtocolError(() => P.Message.decode(unhex('06 05 6f 6e')), 'short route');
		throwsProtocolError(() => P.Message.decode(unhex('07 01')), 'short route code');
		throwsProtocolError(() => P.Message.decode(unhex('0a 00')), 'message type 5');
		throwsProtocolError(() => P.Message.encode(1, MT.REQUEST, false, 'r'.repeat(256),
		    null), 'route over 255 bytes');
		throwsProtocolError(() => P.Package.encode(PT.DATA, { length: 0x1000000 }),
		    'body over 2^24-1');
		throwsProtocolError(() => P.Protobuf.decode(DEMO_PROTOS.server, 'onChat',
		    unhex('0a 05 68 69')), 'pb short string');
		throwsProtocolError(() => P.Protobuf.decode(DEMO_PROTOS.server, 'onChat',
		    unhex('0a')), 'pb missing length');
		throwsProtocolError(() => P.Protobuf.encode(DEMO_PROTOS.server, 'onChat',
		    { msg: 'x' }), 'pb missing required field');
	});

	test('random bytes never crash the decoders', () => {
		let seed = 0x2545f491;
		const rnd = () => {
			seed ^= seed << 13;
			seed ^= seed >>> 17;
			seed ^= seed << 5;
			return (seed >>> 0) / 4294967296;
		};
		const tryIt = (fn) => {
			try {
				fn();
			} catch (e) {
				if (!(e instanceof P.ProtocolError))
					throw e;
			}
		};
		for (let n = 0; n < 3000; n++) {
			const bytes = new Uint8Array(Math.floor(rnd() * 40));
			for (let i = 0; i < bytes.length; i++)
				bytes[i] = rnd() < 0.3 ? Math.floor(rnd() * 8) : Math.floor(rnd() * 256);
			tryIt(() => P.Package.decode(bytes));
			tryIt(() => P.Message.decode(bytes));
			tryIt(() => P.Protobuf.decode(DEMO_PROTOS.server, 'onChat', bytes));
			check(typeof P.strdecode(bytes) === 'string', 'strdecode');
		}
	});

	test('protobuf: nested, repeated, signed, floats, unknown tags', () => {
		const set = {
			'area.info': {
				id: { option: 'required', type: 'uInt32', tag: 1 },
				delta: { option: 'optional', type: 'sInt32', tag: 2 },
				scores: { option: 'repeated', type: 'uInt32', tag: 3 },
				names: { option: 'repeated', type: 'string', tag: 4 },
				pos: { option: 'optional', type: 'Pos', tag: 5 },
				items: { option: 'repeated', type: 'Item', tag: 6 },
				ratio: { option: 'optional', type: 'double', tag: 7 },
				__messages: {
					Pos: {
						x: { option: 'required', type: 'float', tag: 1 },
						y: { option: 'required', type: 'int32', tag: 2 },
					},
				},
			},
			'message Item': {
				name: { option: 'required', type: 'string', tag: 1 },
			},
		};
		const value = {
			id: 300, delta: -5, scores: [1, 200, 70000], names: ['a', '\u4e2d'],
			pos: { x: 1.5, y: -1 }, items: [{ name: 'x' }, { name: 'y' }], ratio: 0.1,
		};
		const bytes = P.Protobuf.encode(set, 'area.info', value);
		eq(P.Protobuf.decode(set, 'area.info', bytes), value, 'round trip');
		eqBytes(bytes.subarray(0, 5), '08 ac 02 10 09', 'uInt32 300, sInt32 -5');
		/* tag 9 (varint) and tag 10 (length-delimited) are unknown: skipped */
		const extra = unhex('48 05 52 02 68 69 ' + hex(bytes));
		eq(P.Protobuf.decode(set, 'area.info', extra), value, 'unknown tags skipped');
	});

	/* --------------------------------------------------- client harness */

	class FakeClock {
		constructor() {
			this.t = 1700000000000;
			this.seq = 0;
			this.timers = new Map();
		}

		setTimeout(fn, ms) {
			this.timers.set(++this.seq, { at: this.t + Math.max(0, ms), fn: fn });
			return this.seq;
		}

		clearTimeout(id) {
			this.timers.delete(id);
		}

		now() {
			return this.t;
		}

		advance(ms) {
			const end = this.t + ms;
			for (;;) {
				let next = null;
				for (const [id, tm] of this.timers) {
					if (tm.at <= end && (!next || tm.at < next[1].at))
						next = [id, tm];
				}
				if (!next)
					break;
				this.timers.delete(next[0]);
				this.t = next[1].at;
				next[1].fn();
			}
			this.t = end;
		}
	}

	class MemStorage {
		constructor() {
			this.map = new Map();
		}

		getItem(k) {
			return this.map.has(k) ? this.map.get(k) : null;
		}

		setItem(k, v) {
			this.map.set(k, String(v));
		}
	}

	function fakeSocketClass(sockets) {
		return class FakeSocket {
			constructor(url) {
				this.url = url;
				this.readyState = 0;
				this.sent = [];
				this.closed = false;
				sockets.push(this);
			}

			send(buf) {
				check(this.readyState === 1, 'send on a socket that is not open');
				check(buf instanceof ArrayBuffer, 'send takes an ArrayBuffer');
				this.sent.push(new Uint8Array(buf.slice(0)));
			}

			close() {
				this.readyState = 3;
				this.closed = true;
				const handler = this.onclose;	/* a real close event comes later */
				if (handler)
					Promise.resolve().then(() => handler({ code: 1005, reason: '' }));
			}

			open() {
				this.readyState = 1;
				this.onopen({});
			}

			deliver(data) {
				const u = typeof data === 'string' ? unhex(data) : data;
				this.onmessage({ data: u.buffer.slice(u.byteOffset, u.byteOffset + u.length) });
			}

			deliverText(text) {
				this.onmessage({ data: text });
			}

			serverClose(code, reason) {
				this.readyState = 3;
				if (this.onclose)
					this.onclose({ code: code, reason: reason });
			}
		};
	}

	function harness(storage) {
		const h = {
			sockets: [],
			clock: new FakeClock(),
			events: [],
			pushes: [],
		};
		h.client = new PomeloClient({
			WebSocket: fakeSocketClass(h.sockets),
			storage: storage || new MemStorage(),
			timers: h.clock,
		});
		h.client.on('disconnect', (e) => h.events.push(['disconnect', e]));
		h.client.on('kick', (e) => h.events.push(['kick', e]));
		for (const route of ['onAdd', 'onChat', 'onLeave', '7'])
			h.client.onPush(route, (b) => h.pushes.push([route, b]));
		return h;
	}

	function hsResponse(obj) {
		return P.Package.encode(PT.HANDSHAKE, P.jsonEncode(obj));
	}

	function response(id, obj) {
		return P.Package.encode(PT.DATA,
		    P.Message.encode(id, MT.RESPONSE, false, null, P.jsonEncode(obj)));
	}

	function concat(...parts) {
		const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
		let off = 0;
		for (const p of parts) {
			out.set(p, off);
			off += p.length;
		}
		return out;
	}

	const tick = () => Promise.resolve();

	async function rejects(promise, what) {
		try {
			await promise;
		} catch (e) {
			return e;
		}
		fail(what + ': did not reject');
	}

	/* Connects h.client and completes the handshake with resp. */
	async function handshake(h, host, port, resp) {
		const p = h.client.connect(host, port);
		const ws = h.sockets[h.sockets.length - 1];
		ws.open();
		ws.deliver(hsResponse(resp));
		await p;
		return ws;
	}

	const EMPTY_PROTOS = { server: {}, client: {}, version: 'c1' };

	test('client: the chatofpomelo login flow byte for byte', async () => {
		const h = harness();
		const p = h.client.connect('gate.example', 3014);
		const gate = h.sockets[0];
		eq(gate.url, 'ws://gate.example:3014/', 'gate url');
		eq(gate.binaryType, 'arraybuffer', 'binaryType');
		gate.open();
		eqBytes(gate.sent[0], V.clientHandshake, 'first handshake');
		gate.deliver(hsResponse({ code: 200, sys: { protos: EMPTY_PROTOS, useProto: true } }));
		await p;
		eqBytes(gate.sent[1], V.ack, 'ACK right after the handshake response');

		let r = h.client.request('gate.gateHandler.queryEntry', { uid: 'alice' });
		eqBytes(gate.sent[2], V.queryEntry, 'queryEntry is request id 1');
		gate.deliver(V.gateResponse);
		eq(await r, { code: 200, host: '127.0.0.1', port: 3050 }, 'gate answer');
		h.client.disconnect();
		check(gate.closed, 'gate socket closed');
		await tick();
		await tick();
		eq(h.events, [], 'a deliberate disconnect emits nothing');

		const conn = await handshake(h, '127.0.0.1', 3050, {
			code: 200,
			sys: { heartbeat: 3, dict: DEMO_DICT, routeToCode: DEMO_DICT,
			    codeToRoute: { 1: 'chat.chatHandler.send' }, dictVersion: 's2r1',
			    useDict: true, useProto: true },
		});
		eq(conn.url, 'ws://127.0.0.1:3050/', 'connector url');
		eqBytes(conn.sent[0], '01 00 00 4e ' + hexOf('{"sys":{"type":"js-websocket",' +
		    '"version":"0.0.1","rsa":{},"protoVersion":"c1"}}'), 'second handshake');
		eqBytes(conn.sent[1], V.ack, 'second ACK');

		r = h.client.request('connector.entryHandler.enter', { username: 'alice', rid: 'room1' });
		eqBytes(conn.sent[2], '04 00 00 26 01 02 00 02 ' +
		    hexOf('{"username":"alice","rid":"room1"}'), 'enter: id 2, code 2');
		conn.deliver(V.enterResponse);
		eq(await r, { users: ['alice'] }, 'enter answer');

		const send = { rid: 'room1', content: 'hi', from: 'alice', target: '*' };
		r = h.client.request('chat.chatHandler.send', send);
		const body = P.jsonEncode(send);
		eqBytes(conn.sent[3], hex(P.Package.encode(PT.DATA,
		    P.Message.encode(3, MT.REQUEST, true, 1, body))), 'send: id 3, code 1');
		conn.deliver(response(3, {}));
		eq(await r, {}, 'send answer');

		h.client.notify('connector.entryHandler.leave', {});
		eqBytes(conn.sent[4], '04 00 00 20 02 1c ' +
		    hexOf('connector.entryHandler.leave{}'), 'notify: no id, string route');
	});

	test('client: heartbeats follow the server, time out after 2 intervals', async () => {
		const h = harness();
		const ws = await handshake(h, 'h', 1, { code: 200, sys: { heartbeat: 3 } });
		eq(ws.sent.length, 2, 'handshake + ACK');
		h.clock.advance(10000);
		eq(ws.sent.length, 2, 'no heartbeat before the server sends one');

		ws.deliver(V.heartbeat);
		h.clock.advance(2999);
		eq(ws.sent.length, 2, 'nothing before one interval');
		h.clock.advance(1);
		eqBytes(ws.sent[2], V.heartbeat, 'heartbeat after 3 s');

		h.clock.advance(20);
		ws.deliver(V.heartbeat);
		ws.deliver(V.heartbeat);	/* a duplicate must not double the schedule */
		h.clock.advance(3000);
		eq(ws.sent.length, 4, 'one heartbeat per interval');
		eqBytes(ws.sent[3], V.heartbeat, 'second heartbeat');

		/* Silence except one push 3 s in: the deadline moves to 9 s. */
		h.clock.advance(3000);
		ws.deliver(V.onAdd);
		eq(h.pushes, [['onAdd', { route: 'onAdd', user: 'bob' }]], 'push delivered');
		h.clock.advance(5999);
		eq(h.events, [], 'still alive before the moved deadline');
		h.clock.advance(1);
		eq(h.events, [['disconnect', { reason: 'heartbeat timeout', code: 0 }]], 'timeout');
		check(ws.closed, 'socket closed on timeout');
		const e = await rejects(h.client.request('a.b.c', {}), 'request after timeout');
		eq(e.message, 'not connected', 'request after timeout');
	});

	test('client: no heartbeat without sys.heartbeat (the gate)', async () => {
		const h = harness();
		const ws = await handshake(h, 'h', 1, { code: 200, sys: {} });
		ws.deliver(V.heartbeat);
		h.clock.advance(60000);
		eq(ws.sent.length, 2, 'no heartbeat sent');
		eq(h.events, [], 'no timeout');
	});

	test('client: several packages in one frame', async () => {
		const h = harness();
		const ws = await handshake(h, 'h', 1, { code: 200, sys: { heartbeat: 1 } });
		const r = h.client.request('x.y.z', {});
		ws.deliver(concat(unhex(V.heartbeat), unhex(V.onAdd), response(1, { ok: 1 }),
		    unhex(V.onChatJson)));
		eq(await r, { ok: 1 }, 'response from the middle of a frame');
		eq(h.pushes.map((x) => x[0]), ['onAdd', 'onChat'], 'both pushes');
		h.clock.advance(1000);
		eqBytes(ws.sent[ws.sent.length - 1], V.heartbeat, 'heartbeat scheduled');
	});

	test('client: protobuf pushes and the protos cache', async () => {
		const storage = new MemStorage();
		let h = harness(storage);
		let ws = await handshake(h, 'h', 1, { code: 200, sys: { protos: DEMO_PROTOS } });
		eq(JSON.parse(storage.getItem('protos')), DEMO_PROTOS, 'protos cached');
		ws.deliver(V.onChatPb);
		eq(h.pushes, [['onChat', ONCHAT]], 'protobuf onChat decoded');

		/* A fresh page load sends the cached version and uses the protos. */
		h = harness(storage);
		ws = await handshake(h, 'h', 1, { code: 200, sys: {} });
		check(P.strdecode(ws.sent[0]).includes('"protoVersion":"2zWPnSlRsRxjqgcU215Uxg=="'),
		    'cached protoVersion sent');
		ws.deliver(V.onChatPb);
		eq(h.pushes, [['onChat', ONCHAT]], 'cached protos used');

		/* A server that sends empty protos overrides a stale cache. */
		h = harness(storage);
		ws = await handshake(h, 'h', 1, { code: 200, sys: { protos: EMPTY_PROTOS } });
		ws.deliver(V.onChatJson);
		eq(h.pushes, [['onChat', ONCHAT]], 'JSON onChat after cache reset');
		eq(JSON.parse(storage.getItem('protos')), EMPTY_PROTOS, 'cache replaced');
	});

	test('client: dict pushes, unknown codes, text frames, bad frames', async () => {
		const h = harness();
		const ws = await handshake(h, 'h', 1, { code: 200, sys: { dict: { onLeave: 9 } } });
		ws.deliver(P.Package.encode(PT.DATA, P.Message.encode(0, MT.PUSH, true, 9,
		    P.jsonEncode({ user: 'bob' }))));
		ws.deliver(P.Package.encode(PT.DATA, P.Message.encode(0, MT.PUSH, true, 7,
		    P.jsonEncode({ user: 'bob' }))));
		ws.deliverText('{"not":"binary"}');
		ws.deliver('04 00 00 09 06');	/* truncated: dropped */
		ws.deliver(concat(response(42, {}), unhex(V.onAdd)));	/* unknown id */
		eq(h.pushes, [['onLeave', { user: 'bob' }], ['7', {}],
		    ['onAdd', { route: 'onAdd', user: 'bob' }]], 'pushes');
		check(h.client.connected, 'still connected');
	});

	test('client: handshake refused', async () => {
		for (const [code, why] of [[500, 'handshake fail'], [501, 'client version not fullfill']]) {
			const h = harness();
			const p = h.client.connect('h', 1);
			const ws = h.sockets[0];
			ws.open();
			ws.deliver(hsResponse({ code: code }));
			const e = await rejects(p, 'connect with code ' + code);
			eq(e.message, why, 'error for ' + code);
			eq(ws.sent.length, 1, 'no ACK after ' + code);
			check(ws.closed, 'socket closed after ' + code);
			eq(h.events, [], 'no disconnect event');
		}
	});

	test('client: kick, server close, unreachable server', async () => {
		let h = harness();
		let ws = await handshake(h, 'h', 1, { code: 200, sys: {} });
		const pending = h.client.request('chat.chatHandler.send', {});
		ws.deliver(V.kick);
		eq(h.events, [['kick', { reason: 'kick' }]], 'kick event');
		ws.serverClose(1000, '');
		eq(h.events[1], ['disconnect', { reason: 'connection closed', code: 1000 }],
		    'disconnect after kick');
		await rejects(pending, 'pending request on close');

		h = harness();
		const p = h.client.connect('nowhere', 1);
		h.sockets[0].serverClose(1006, '');
		const e = await rejects(p, 'connect to a dead server');
		eq(e.message, 'cannot connect to ws://nowhere:1/', 'connect error');
		eq(h.events, [], 'no disconnect event before the handshake');

		h = harness();
		h.client.connect('::1', 3050).catch(() => {});
		eq(h.sockets[0].url, 'ws://[::1]:3050/', 'IPv6 url');
		h.client.disconnect();
	});

	/* ------------------------------------------------------------ runner */

	async function run() {
		const lines = [];
		const failures = [];
		for (const t of tests) {
			try {
				await t.fn();
				lines.push('ok     ' + t.name);
			} catch (e) {
				lines.push('FAILED ' + t.name + ': ' + e.message);
				failures.push(t.name);
			}
		}
		const verdict = failures.length ? 'SELFTEST FAIL: ' + failures.join('; ') :
		    'SELFTEST PASS';
		lines.push('', verdict + ' (' + (tests.length - failures.length) + '/' +
		    tests.length + ' tests)');
		return { verdict: verdict, text: lines.join('\n'), ok: !failures.length };
	}

	run().then((r) => {
		if (inNode) {
			console.log(r.text);
			process.exitCode = r.ok ? 0 : 1;
			return;
		}
		document.title = r.verdict;
		document.getElementById('verdict').textContent = r.verdict;
		document.getElementById('log').textContent = r.text;
	}, (e) => {
		const verdict = 'SELFTEST FAIL: runner crashed: ' + e.message;
		if (inNode) {
			console.log(verdict);
			process.exitCode = 1;
			return;
		}
		document.title = verdict;
		document.getElementById('verdict').textContent = verdict;
	});
})(typeof self !== 'undefined' ? self : this);
