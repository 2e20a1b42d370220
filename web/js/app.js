/*
 * The chat page: the chatofpomelo flow on top of PomeloClient.
 *   login: gate.gateHandler.queryEntry {uid} -> {code, host, port}, then
 *          connector.entryHandler.enter {username, rid} -> {users} or {error}
 *   chat:  chat.chatHandler.send {rid, content, from, target}
 *   pushes: onChat {msg, from, target}, onAdd {user}, onLeave {user}
 * Every server-provided string reaches the DOM through textContent only.
 */
(function () {
	'use strict';

	const GATE_PORT = 3014;
	const NAME_MAX = 20;
	const NAME_RE = /^[a-zA-Z0-9_\u4e00-\u9fa5]+$/;
	const HISTORY_MAX = 1000;
	const TIP_MS = 3000;
	const TIPS_MAX = 4;

	const TEXT = {
		noServer: 'There is no server to log in, please wait.',
		length: 'Name and room must be 1 to 20 characters long.',
		chars: 'Name and room may contain only letters, digits, \'_\' and Chinese characters.',
		taken: 'That name is already taken in this room. Please choose another name.',
	};

	/* An error whose message is meant for the user as it is. */
	class LoginError extends Error {}

	const byId = (id) => document.getElementById(id);
	const ui = {
		loginView: byId('loginView'),
		loginForm: byId('loginForm'),
		user: byId('loginUser'),
		room: byId('channelList'),
		join: byId('login'),
		error: byId('loginError'),
		chatView: byId('chatView'),
		history: byId('chatHistory'),
		toolbar: byId('toolbar'),
		name: byId('name'),
		roomName: byId('room'),
		logout: byId('logout'),
		target: byId('usersList'),
		entry: byId('entry'),
		userList: byId('userList'),
		userCount: byId('userCount'),
		tips: byId('tips'),
	};

	const client = new PomeloClient();
	const state = {
		view: 'login',		/* 'login' | 'joining' | 'chat' */
		username: '',
		rid: '',
		users: [],
		unread: 0,
		title: document.title,
	};

	/* ------------------------------------------------------------ helpers */

	function pad2(n) {
		return n < 10 ? '0' + n : String(n);
	}

	function timeString(date) {
		return pad2(date.getHours()) + ':' + pad2(date.getMinutes());
	}

	function textElement(tag, className, text) {
		const node = document.createElement(tag);
		if (className)
			node.className = className;
		node.textContent = text;
		return node;
	}

	function validate(name, room) {
		if (!name.length || name.length > NAME_MAX || !room.length ||
		    room.length > NAME_MAX)
			return TEXT.length;
		if (!NAME_RE.test(name) || !NAME_RE.test(room))
			return TEXT.chars;
		return null;
	}

	/* The gate is the server that served this page, or ?gate=host:port. */
	function gateAddress() {
		const param = new URLSearchParams(location.search).get('gate');
		if (param) {
			const m = /^(.+):(\d+)$/.exec(param);
			return m ? { host: m[1], port: Number(m[2]) } :
			    { host: param, port: GATE_PORT };
		}
		return {
			host: location.hostname || 'localhost',
			port: Number(location.port) || GATE_PORT,
		};
	}

	/* A connector that advertises a wildcard address means "same host". */
	function connectorHost(host, gateHost) {
		if (!host || host === '0.0.0.0' || host === '::' || host === '[::]')
			return gateHost;
		return String(host);
	}

	/* ------------------------------------------------------------- views */

	function showError(text) {
		ui.error.textContent = text;
		ui.error.hidden = false;
	}

	function setBusy(busy) {
		ui.join.disabled = busy;
		ui.user.disabled = busy;
		ui.room.disabled = busy;
		ui.join.textContent = busy ? 'Joining...' : 'Join';
	}

	function showLogin(notice) {
		state.view = 'login';
		ui.chatView.hidden = true;
		ui.loginView.hidden = false;
		ui.error.hidden = true;
		if (notice)
			showError(notice);
		clearUnread();
		ui.user.focus();
	}

	function showChat(users) {
		state.view = 'chat';
		ui.name.textContent = state.username;
		ui.roomName.textContent = state.rid;
		setUsers(users);
		ui.loginView.hidden = true;
		ui.chatView.hidden = false;
		ui.entry.value = '';
		ui.entry.focus();
		scrollToEnd();
	}

	function scrollToEnd() {
		ui.history.scrollTop = ui.history.scrollHeight;
	}

	function appendRow(row) {
		const h = ui.history;
		const atEnd = h.scrollHeight - h.scrollTop - h.clientHeight < 40;
		h.appendChild(row);
		while (h.childElementCount > HISTORY_MAX)
			h.firstElementChild.remove();
		if (atEnd)
			scrollToEnd();
	}

	function addMessage(from, target, text) {
		const row = document.createElement('div');
		row.className = 'message';
		if (target !== '*')
			row.classList.add('private');
		if (from === state.username)
			row.classList.add('self');
		const to = target === '*' ? 'all' : target;
		row.append(textElement('span', 'date', timeString(new Date())),
		    textElement('span', 'nick', from + ' says to ' + to + ':'),
		    textElement('span', 'msg-text', text));
		appendRow(row);
	}

	function addNotice(text) {
		const row = document.createElement('div');
		row.className = 'message system';
		row.append(textElement('span', 'date', timeString(new Date())),
		    textElement('span', 'nick', '*'),
		    textElement('span', 'msg-text', text));
		appendRow(row);
	}

	function tip(text) {
		const node = textElement('div', 'tip', text);
		ui.tips.appendChild(node);
		while (ui.tips.childElementCount > TIPS_MAX)
			ui.tips.firstElementChild.remove();
		setTimeout(() => node.remove(), TIP_MS);
	}

	function bumpUnread() {
		if (!document.hidden)
			return;
		state.unread++;
		document.title = '(' + state.unread + ') ' + state.title;
	}

	function clearUnread() {
		state.unread = 0;
		document.title = state.title;
	}

	/* ------------------------------------------------------------- users */

	function option(value, label) {
		const node = textElement('option', '', label);
		node.value = value;
		return node;
	}

	function userItem(name) {
		const button = textElement('button', name === state.username ? 'me' : '',
		    name === state.username ? name + ' (you)' : name);
		button.type = 'button';
		button.title = 'Talk to ' + name;
		button.addEventListener('click', () => {
			ui.target.value = name;
			ui.entry.focus();
		});
		const li = document.createElement('li');
		li.appendChild(button);
		return li;
	}

	function renderUsers() {
		const selected = ui.target.value;
		ui.target.replaceChildren(option('*', 'all'),
		    ...state.users.map((u) => option(u, u)));
		if (selected !== '*' && !state.users.includes(selected))
			addNotice(selected + ' left: your messages now go to all.');
		ui.target.value = state.users.includes(selected) ? selected : '*';
		ui.userList.replaceChildren(...state.users.map(userItem));
		ui.userCount.textContent = '(' + state.users.length + ')';
	}

	function setUsers(list) {
		state.users = [];
		ui.target.value = '*';
		for (const u of Array.isArray(list) ? list : []) {
			if (!state.users.includes(String(u)))
				state.users.push(String(u));
		}
		renderUsers();
	}

	function addUser(name) {
		if (!state.users.includes(name))
			state.users.push(name);
		renderUsers();
	}

	function removeUser(name) {
		state.users = state.users.filter((u) => u !== name);
		renderUsers();
	}

	/* ------------------------------------------------------------ flows */

	async function enterRoom(name, room) {
		const gate = gateAddress();
		await client.connect(gate.host, gate.port);
		const entry = await client.request('gate.gateHandler.queryEntry', { uid: name });
		client.disconnect();
		if (!entry || entry.code === 500 || !entry.port)
			throw new LoginError(TEXT.noServer);

		ui.history.replaceChildren();
		await client.connect(connectorHost(entry.host, gate.host), entry.port);
		const res = await client.request('connector.entryHandler.enter',
		    { username: name, rid: room });
		if (!res || res.error)
			throw new LoginError(TEXT.taken);
		if (res.code !== undefined && res.code !== 200)
			throw new LoginError('The server could not let you in (code ' + res.code + ').');
		return res;
	}

	async function join() {
		const name = ui.user.value;
		const room = ui.room.value;
		const problem = validate(name, room);
		if (problem) {
			showError(problem);
			return;
		}
		ui.error.hidden = true;
		state.view = 'joining';
		state.username = name;
		state.rid = room;
		setBusy(true);
		try {
			const res = await enterRoom(name, room);
			showChat(res.users);
		} catch (err) {
			client.disconnect();
			showLogin(err instanceof LoginError ? err.message :
			    'Login failed: ' + err.message);
		} finally {
			setBusy(false);
		}
	}

	function sendEntry() {
		const text = ui.entry.value;
		if (/^\s*$/.test(text) || !client.connected)
			return;
		const me = state.username;
		const target = ui.target.value || '*';
		const body = { rid: state.rid, content: text, from: me, target: target };
		client.request('chat.chatHandler.send', body).then((res) => {
			if (ui.entry.value === text)
				ui.entry.value = '';
			if (res && res.code !== undefined && res.code !== 200) {
				addNotice('Message not delivered (code ' + res.code + ').');
				return;
			}
			/* The server sends private messages to the target only. */
			if (target !== '*' && target !== me)
				addMessage(me, target, text);
		}, () => {
			/* The connection dropped; the disconnect handler reports it. */
		});
	}

	/* ------------------------------------------------------------ wiring */

	client.onPush('onChat', (data) => {
		if (!data || data.msg === undefined || data.msg === null)
			return;
		const from = String(data.from);
		addMessage(from, String(data.target), String(data.msg));
		if (from !== state.username) {
			tip('New message from ' + from + '.');
			bumpUnread();
		}
	});

	client.onPush('onAdd', (data) => {
		if (!data || data.user === undefined || data.user === null)
			return;
		addUser(String(data.user));
		tip(data.user + ' joined the room.');
	});

	client.onPush('onLeave', (data) => {
		if (!data || data.user === undefined || data.user === null)
			return;
		removeUser(String(data.user));
		tip(data.user + ' left the room.');
	});

	client.on('kick', (info) => {
		const reason = info.reason !== undefined ? String(info.reason) : 'no reason given';
		const text = 'Kicked by the server: ' + reason;
		client.disconnect(text);
		if (state.view === 'chat')
			showLogin(text);
	});

	client.on('disconnect', (info) => {
		/* While joining, the failed request reports the problem itself. */
		if (state.view === 'chat')
			showLogin('Disconnected from the server (' + info.reason + ').');
	});

	ui.loginForm.addEventListener('submit', (e) => {
		e.preventDefault();
		if (state.view === 'login')
			join();
	});

	ui.toolbar.addEventListener('submit', (e) => e.preventDefault());

	ui.entry.addEventListener('keydown', (e) => {
		/* Enter that confirms an IME composition is not a send. */
		if (e.key !== 'Enter' || e.isComposing || e.keyCode === 229)
			return;
		e.preventDefault();
		sendEntry();
	});

	ui.logout.addEventListener('click', () => {
		client.disconnect();
		showLogin();
	});

	document.addEventListener('visibilitychange', () => {
		if (!document.hidden)
			clearUnread();
	});

	showLogin();
})();
