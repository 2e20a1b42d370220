/*
 * A pomelo client over WebSocket that behaves on the wire like
 * pomelo-jsclient-websocket (see /work/shared/protocol.md sections 2-4):
 * handshake, ACK, server-driven heartbeats, request/response by id, notify,
 * pushes, kick. Request ids keep counting across connections.
 *
 * Usage:
 *   const c = new PomeloClient();
 *   c.on('disconnect', info => ...);     // {reason, code}: the server went away
 *   c.on('kick', info => ...);           // {reason}: KICK package
 *   c.onPush('onChat', body => ...);
 *   await c.connect(host, port);         // resolves after the handshake ACK
 *   const resp = await c.request('connector.entryHandler.enter', {...});
 *   c.disconnect();                      // deliberate: no 'disconnect' event
 */
(function (root) {
	'use strict';

	const P = typeof module !== 'undefined' && typeof require === 'function' ?
	    require('./protocol.js') : root.Protocol;
	const PT = P.PackageType;
	const MT = P.MessageType;

	const HANDSHAKE_OK = 200;
	const HANDSHAKE_OLD_CLIENT = 501;
	const HEARTBEAT_GAP_MS = 100;	/* same slack as the pomelo client */
	const WS_OPEN = 1;
	const PROTOS_KEY = 'protos';

	function own(obj, key) {
		return !!obj && Object.prototype.hasOwnProperty.call(obj, key);
	}

	const REAL_TIMERS = {
		setTimeout: (fn, ms) => setTimeout(fn, ms),
		clearTimeout: (id) => clearTimeout(id),
		now: () => Date.now(),
	};

	function defaultStorage() {
		try {
			return root.localStorage || null;
		} catch (e) {
			return null;	/* storage disabled or opaque origin */
		}
	}

	/* ws://host:port/, bracketing a bare IPv6 address. */
	function socketUrl(host, port) {
		const secure = root.location && root.location.protocol === 'https:';
		let h = String(host);
		if (h.includes(':') && h[0] !== '[')
			h = '[' + h + ']';
		return (secure ? 'wss://' : 'ws://') + h + (port ? ':' + port : '') + '/';
	}

	class PomeloClient {
		/*
		 * opts.WebSocket: constructor to use (tests pass a fake);
		 * opts.storage: a localStorage-like object for the protos cache, or null;
		 * opts.timers: {setTimeout, clearTimeout, now} (tests pass a fake clock).
		 */
		constructor(opts) {
			opts = opts || {};
			this._WebSocket = opts.WebSocket || root.WebSocket;
			this._storage = opts.storage !== undefined ? opts.storage : defaultStorage();
			this._timers = opts.timers || REAL_TIMERS;
			this._events = new Map();
			this._pushes = new Map();
			this._reqId = 0;
			this._protoVersion = 0;
			this._serverProtos = {};
			this._clientProtos = {};
			this._conn = null;
		}

		/* Lifecycle events: 'disconnect' {reason, code}, 'kick' {reason}. */
		on(event, fn) {
			this._listen(this._events, event, fn);
		}

		/* Server pushes by route, e.g. 'onChat'. */
		onPush(route, fn) {
			this._listen(this._pushes, String(route), fn);
		}

		_listen(map, key, fn) {
			if (!map.has(key))
				map.set(key, []);
			map.get(key).push(fn);
		}

		_emit(map, key, arg) {
			for (const fn of (map.get(key) || []).slice()) {
				try {
					fn(arg);
				} catch (e) {
					console.error('listener for', key, 'failed:', e);
				}
			}
		}

		get connected() {
			return !!this._conn && this._conn.state === 'working';
		}

		/* Opens a connection and handshakes; closes any previous one quietly. */
		connect(host, port) {
			this.disconnect();
			this._loadProtos();
			return new Promise((resolve, reject) => {
				const conn = {
					url: socketUrl(host, port),
					state: 'connecting',
					pending: new Map(),
					dict: null,
					abbrs: new Map(),
					hbInterval: 0,
					hbTimeout: 0,
					hbSendTimer: null,
					hbTimeoutTimer: null,
					deadline: 0,
					resolve: resolve,
					reject: reject,
				};
				let ws;
				try {
					ws = new this._WebSocket(conn.url);
				} catch (e) {
					reject(new Error('cannot connect to ' + conn.url + ': ' + e.message));
					return;
				}
				conn.ws = ws;
				this._conn = conn;
				ws.binaryType = 'arraybuffer';
				ws.onopen = () => this._onOpen(conn);
				ws.onmessage = (ev) => this._onMessage(conn, ev.data);
				ws.onclose = (ev) => this._onClose(conn, ev);
				ws.onerror = () => {};	/* a close event always follows */
			});
		}

		/* Closes the connection on purpose: pending requests fail, no event. */
		disconnect(why) {
			const conn = this._conn;
			if (!conn)
				return;
			this._finish(conn, new Error(why || 'disconnected'));
		}

		/* Sends a request; resolves with the decoded response body. */
		request(route, body) {
			const conn = this._conn;
			if (!conn || conn.state !== 'working')
				return Promise.reject(new Error('not connected'));
			const id = ++this._reqId;
			let pkg;
			try {
				pkg = this._encode(conn, id, route, body || {});
			} catch (e) {
				return Promise.reject(e);
			}
			return new Promise((resolve, reject) => {
				conn.pending.set(id, { route: route, resolve: resolve, reject: reject });
				this._send(conn, pkg);
			});
		}

		/* Sends a notify: no id, the server never answers. */
		notify(route, body) {
			const conn = this._conn;
			if (!conn || conn.state !== 'working')
				throw new Error('not connected');
			this._send(conn, this._encode(conn, 0, route, body || {}));
		}

		_encode(conn, id, route, body) {
			let bytes;
			if (own(this._clientProtos, route))
				bytes = P.Protobuf.encode(this._clientProtos, route, body);
			else
				bytes = P.jsonEncode(body);
			const code = own(conn.dict, route) ? conn.dict[route] : undefined;
			const compress = Number.isInteger(code) && code > 0;
			const msg = P.Message.encode(id, id ? MT.REQUEST : MT.NOTIFY,
			    compress, compress ? code : route, bytes);
			return P.Package.encode(PT.DATA, msg);
		}

		_send(conn, pkg) {
			if (conn.ws.readyState === WS_OPEN)
				conn.ws.send(pkg.buffer);
		}

		/* Like the pomelo client: the cached protos count only until replaced. */
		_loadProtos() {
			if (this._protoVersion !== 0 || !this._storage)
				return;
			try {
				const raw = this._storage.getItem(PROTOS_KEY);
				if (!raw)
					return;
				const protos = JSON.parse(raw);
				this._protoVersion = protos.version || 0;
				this._serverProtos = protos.server || {};
				this._clientProtos = protos.client || {};
			} catch (e) {
				console.warn('ignoring cached protos:', e);
			}
		}

		_saveProtos(protos) {
			this._protoVersion = protos.version || 0;
			this._serverProtos = protos.server || {};
			this._clientProtos = protos.client || {};
			if (!this._storage)
				return;
			try {
				this._storage.setItem(PROTOS_KEY, JSON.stringify(protos));
			} catch (e) {
				console.warn('cannot cache protos:', e);
			}
		}

		_onOpen(conn) {
			if (conn !== this._conn)
				return;
			conn.state = 'handshaking';
			const hs = P.handshakeRequest(this._protoVersion);
			this._send(conn, P.Package.encode(PT.HANDSHAKE, P.jsonEncode(hs)));
		}

		_onMessage(conn, data) {
			if (conn !== this._conn || typeof data === 'string')
				return;	/* the pomelo client ignores text frames too */
			let packages;
			try {
				packages = P.Package.decode(data);
			} catch (e) {
				console.warn('dropping malformed frame:', e.message);
				packages = [];
			}
			for (const pkg of packages) {
				if (conn !== this._conn)
					return;	/* a handler closed this connection */
				this._dispatch(conn, pkg);
			}
			/* Any traffic proves the server alive: push the deadline out. */
			if (conn.hbTimeout)
				conn.deadline = this._timers.now() + conn.hbTimeout;
		}

		_dispatch(conn, pkg) {
			switch (pkg.type) {
			case PT.HANDSHAKE:
				this._onHandshake(conn, pkg.body);
				break;
			case PT.HEARTBEAT:
				this._onHeartbeat(conn);
				break;
			case PT.DATA:
				this._onData(conn, pkg.body);
				break;
			case PT.KICK:
				this._onKick(conn, pkg.body);
				break;
			default:
				console.warn('ignoring package of type', pkg.type);
			}
		}

		_onHandshake(conn, body) {
			if (conn.state !== 'handshaking')
				return;
			let res = null;
			try {
				res = P.jsonDecode(body);
			} catch (e) {
				res = null;
			}
			const code = res && res.code;
			if (code !== HANDSHAKE_OK) {
				const why = code === HANDSHAKE_OLD_CLIENT ?
				    'client version not fullfill' : 'handshake fail';
				this._finish(conn, new Error(why));
				return;
			}
			const sys = res.sys || {};
			conn.hbInterval = sys.heartbeat ? sys.heartbeat * 1000 : 0;
			conn.hbTimeout = conn.hbInterval * 2;
			/* Like pomelo: the dict is replaced on every handshake. */
			conn.dict = sys.dict || null;
			if (conn.dict) {
				for (const route of Object.keys(conn.dict))
					conn.abbrs.set(Number(conn.dict[route]), route);
			}
			if (sys.protos)
				this._saveProtos(sys.protos);
			this._send(conn, P.Package.encode(PT.HANDSHAKE_ACK));
			conn.state = 'working';
			conn.resolve(res);
		}

		/*
		 * The server sends a HEARTBEAT after our ACK and after each of ours.
		 * We answer one interval later, then expect traffic within 2 intervals.
		 */
		_onHeartbeat(conn) {
			if (!conn.hbInterval)
				return;
			this._timers.clearTimeout(conn.hbTimeoutTimer);
			conn.hbTimeoutTimer = null;
			if (conn.hbSendTimer)
				return;
			conn.hbSendTimer = this._timers.setTimeout(() => {
				conn.hbSendTimer = null;
				this._send(conn, P.Package.encode(PT.HEARTBEAT));
				conn.deadline = this._timers.now() + conn.hbTimeout;
				this._armDeadline(conn, conn.hbTimeout);
			}, conn.hbInterval);
		}

		_armDeadline(conn, ms) {
			conn.hbTimeoutTimer = this._timers.setTimeout(() => this._checkDeadline(conn), ms);
		}

		_checkDeadline(conn) {
			const gap = conn.deadline - this._timers.now();
			if (gap > HEARTBEAT_GAP_MS) {
				this._armDeadline(conn, gap);
				return;
			}
			conn.hbTimeoutTimer = null;
			this._lost(conn, 'heartbeat timeout', 0);
		}

		_onData(conn, body) {
			let msg;
			try {
				msg = P.Message.decode(body);
			} catch (e) {
				console.warn('dropping malformed message:', e.message);
				return;
			}
			if (msg.id > 0) {
				this._onResponse(conn, msg);
				return;
			}
			let route = msg.route;
			if (msg.compressRoute) {
				route = conn.abbrs.get(msg.route);
				if (route === undefined) {
					/* Unknown code: pomelo emits {} under the number. */
					this._emit(this._pushes, String(msg.route), {});
					return;
				}
			}
			let value;
			try {
				value = this._decodeBody(route, msg.body);
			} catch (e) {
				console.warn('dropping push', route, e.message);
				return;
			}
			this._emit(this._pushes, route, value);
		}

		/* Responses carry no route: the request's route picks the decoder. */
		_onResponse(conn, msg) {
			const req = conn.pending.get(msg.id);
			if (!req) {
				console.warn('ignoring response to unknown id', msg.id);
				return;
			}
			conn.pending.delete(msg.id);
			let value;
			try {
				value = this._decodeBody(req.route, msg.body);
			} catch (e) {
				req.reject(e);
				return;
			}
			req.resolve(value);
		}

		_decodeBody(route, body) {
			if (own(this._serverProtos, route))
				return P.Protobuf.decode(this._serverProtos, route, body);
			return P.jsonDecode(body);
		}

		_onKick(conn, body) {
			let info;
			try {
				info = P.jsonDecode(body);
			} catch (e) {
				info = {};
			}
			if (info === null || typeof info !== 'object')
				info = {};
			this._emit(this._events, 'kick', info);
		}

		_onClose(conn, ev) {
			if (conn !== this._conn)
				return;
			const reason = ev && ev.reason ? ev.reason : 'connection closed';
			this._lost(conn, reason, ev ? ev.code : 0);
		}

		/*
		 * The connection died without us asking. Before the handshake that is
		 * a failed connect(); afterwards it is a 'disconnect' event.
		 */
		_lost(conn, reason, code) {
			const working = conn.state === 'working';
			const why = working ? reason : 'cannot connect to ' + conn.url;
			this._finish(conn, new Error(why));
			if (working)
				this._emit(this._events, 'disconnect', { reason: reason, code: code });
		}

		/* Tears a connection down once; every pending promise settles. */
		_finish(conn, err) {
			if (conn.state === 'closed')
				return;
			const wasConnecting = conn.state !== 'working';
			conn.state = 'closed';
			if (this._conn === conn)
				this._conn = null;
			this._timers.clearTimeout(conn.hbSendTimer);
			this._timers.clearTimeout(conn.hbTimeoutTimer);
			conn.ws.onopen = conn.ws.onmessage = conn.ws.onclose = null;
			try {
				conn.ws.close();
			} catch (e) {
				/* already closed */
			}
			if (wasConnecting)
				conn.reject(err);
			for (const req of conn.pending.values())
				req.reject(err);
			conn.pending.clear();
		}
	}

	if (typeof module !== 'undefined' && module.exports)
		module.exports = PomeloClient;
	else
		root.PomeloClient = PomeloClient;
})(typeof self !== 'undefined' ? self : this);
