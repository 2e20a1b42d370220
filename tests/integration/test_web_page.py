"""The web chat page (web/) in a real browser against a real cluster: headless Chromium,
driven by chromedriver through python3-selenium (Debian packages chromium, chromium-driver,
python3-selenium), loads the page from the gate's client port and chats through the gate,
two connectors and two chat servers.

- the gate serves /selftest.html and the page's offline self-test passes in the browser;
- alice and bob (on different connectors) and carol join one room and see each other;
  a room message reaches everyone once, a private message reaches its target (and is
  echoed at the sender) but nobody else, a non-BMP message (sent by the page as CESU-8)
  arrives intact, a closed window shows up as onLeave, and a name already in the room
  gets the page's name-taken message;
- no page logs an error (the browser log through chromedriver, plus an error hook the
  test injects before any page script runs).

Skipped when chromium, chromedriver or selenium is not installed (scripts/install-deps.sh
installs them). Every wait has a deadline; no fixed sleeps.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import harness
import pomelo

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
except ImportError:  # pragma: no cover - depends on the machine
    webdriver = None

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WEB_ROOT = harness.SOURCE_DIR / "web"

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync")

# Deadline of one observable step (a page loading, a push arriving). Generous for an ASan
# build on a loaded two-core machine; a healthy run needs a fraction of a second per step.
STEP_TIMEOUT = 20.0
SELFTEST_TIMEOUT = 30.0

ROOM = "lobby"
NAME_TAKEN = "That name is already taken in this room. Please choose another name."

# Installed before any script of a page runs: records what window.onerror and
# unhandledrejection see, so errors count even where chromedriver's log is unavailable.
ERROR_HOOK = """
(function () {
	var errors = [];
	Object.defineProperty(window, '__ternErrors', { value: errors });
	window.addEventListener('error', function (e) {
		if (e.error || e.message)
			errors.push('error: ' + (e.message || String(e.error)) + ' at ' +
			    (e.filename || '?') + ':' + (e.lineno || 0));
	});
	window.addEventListener('unhandledrejection', function (e) {
		var r = e.reason;
		errors.push('unhandled rejection: ' + (r && r.stack ? r.stack : String(r)));
	});
})();
"""

# Every row of the chat history as [kind, nick line, text]; kind: room, private, system.
HISTORY_JS = """
return Array.from(document.querySelectorAll('#chatHistory .message')).map(function (r) {
	var kind = r.classList.contains('system') ? 'system' :
	    r.classList.contains('private') ? 'private' : 'room';
	return [kind, r.querySelector('.nick').textContent, r.querySelector('.msg-text').textContent];
});
"""

PAGE_STATE_JS = """
var error = document.getElementById('loginError');
return {
	chat: !document.getElementById('chatView').hidden,
	login: !document.getElementById('loginView').hidden,
	name: document.getElementById('name').textContent,
	room: document.getElementById('room').textContent,
	users: Array.from(document.querySelectorAll('#usersList option'))
	    .map(function (o) { return o.value; }).filter(function (v) { return v !== '*'; }),
	error: error.hidden ? null : error.textContent,
	entry: document.getElementById('entry').value,
	joinDisabled: document.getElementById('login').disabled,
	title: document.title,
};
"""


def browser_missing():
    """Why the browser tests cannot run here, or None."""
    if webdriver is None:
        return "python3-selenium is not installed (scripts/install-deps.sh installs it)"
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: install the Debian package {pkg} (scripts/install-deps.sh)"
    return None


pytestmark = pytest.mark.skipif(browser_missing() is not None,
                                reason=browser_missing() or "browser available")


def require_built():
    missing = harness.missing_binaries()
    if missing:
        pytest.fail(f"not built: {', '.join(missing)} (set TERN_BIN)", pytrace=False)


def web_topology(connectors, chats):
    """A topology whose gate serves this source tree's web/ directory."""
    return harness.Topology(connectors=connectors, chats=chats,
                            options={"gate": {"webRoot": str(WEB_ROOT)}})


class Browser:
    """One headless Chromium (its own profile directory) showing one page."""

    def __init__(self, label, workdir):
        self.label = label
        self.profile = tempfile.mkdtemp(prefix=f"chromium-{label}-", dir=workdir)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={self.profile}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(CHROMEDRIVER, log_path=str(Path(workdir) / f"chromedriver-{label}.log"))
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(STEP_TIMEOUT)
        self.driver.set_script_timeout(STEP_TIMEOUT)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": ERROR_HOOK})
        self.log = []            # every browser log entry seen so far
        self.log_supported = True
        self.closed = False

    # -- observing --

    def drain_log(self):
        """Moves the browser log entries that chromedriver holds into self.log."""
        if self.closed or not self.log_supported:
            return self.log
        try:
            self.log += self.driver.get_log("browser")
        except WebDriverException:
            self.log_supported = False
        return self.log

    def hooked_errors(self):
        """What the injected error hook recorded on the current page."""
        return self.driver.execute_script("return window.__ternErrors || [];")

    def state(self):
        return self.driver.execute_script(PAGE_STATE_JS)

    def history(self):
        return [tuple(row) for row in self.driver.execute_script(HISTORY_JS)]

    def chat_rows(self):
        """The history without system notices."""
        return [row for row in self.history() if row[0] != "system"]

    def users(self):
        return sorted(self.state()["users"])

    def describe(self):
        """The page's state and log, for failure messages."""
        if self.closed:
            return f"[{self.label}] closed; log: {self.log}"
        try:
            return (f"[{self.label}] state={json.dumps(self.state(), ensure_ascii=False)}\n"
                    f"[{self.label}] history={self.history()}\n"
                    f"[{self.label}] log={self.drain_log()}")
        except WebDriverException as e:
            return f"[{self.label}] cannot read the page: {e}"

    # -- acting --

    def open(self, url):
        self.driver.get(url)

    def login(self, name, room):
        """Types name and room into the login form and submits it."""
        d = self.driver
        for field, value in (("loginUser", name), ("channelList", room)):
            el = d.find_element(By.ID, field)
            el.clear()
            el.send_keys(value)
        d.find_element(By.ID, "login").click()

    def send(self, text, target="*"):
        """Picks the recipient, types text and presses Enter. ChromeDriver types only BMP
        characters, so text beyond the BMP is put into the field by script; the page
        reads the field's value either way."""
        d = self.driver
        Select(d.find_element(By.ID, "usersList")).select_by_value(target)
        entry = d.find_element(By.ID, "entry")
        if all(ord(c) < 0x10000 for c in text):
            entry.send_keys(text)
        else:
            d.execute_script("arguments[0].value = arguments[1];", entry, text)
        assert entry.get_property("value") == text
        entry.send_keys(Keys.ENTER)

    def close(self):
        """Closes the window (the page's connections go with it) and the browser."""
        if self.closed:
            return
        self.drain_log()
        try:
            self.driver.close()
        except WebDriverException:
            pass
        finally:
            self.driver.quit()
            self.closed = True


class Scene:
    """The browsers of one test and the cluster they talk to; waits that fail with
    everything a reader needs (every page's state and log, every server's output)."""

    def __init__(self, workdir, cluster):
        self.workdir = workdir
        self.cluster = cluster
        self.browsers = []

    def browser(self, label):
        b = Browser(label, self.workdir)
        self.browsers.append(b)
        return b

    def wait(self, predicate, what, timeout=STEP_TIMEOUT):
        try:
            return harness.wait_until(predicate, timeout, interval=0.05, what=what)
        except AssertionError as e:
            self.fail(str(e))

    def fail(self, message):
        pages = "\n".join(b.describe() for b in self.browsers)
        servers = self.cluster.outputs() if self.cluster else ""
        pytest.fail(f"{message}\n---- pages ----\n{pages}\n---- servers ----\n{servers}",
                    pytrace=False)

    def close_all(self):
        for b in self.browsers:
            b.close()


@pytest.fixture
def scene(tmp_path, tern):
    """A Scene whose browsers are closed before the `tern` fixture stops the servers."""
    s = Scene(tmp_path, None)
    yield s
    s.close_all()


def log_problems(browser, allow_warnings=False):
    """Errors a page reported: SEVERE browser log entries (uncaught exceptions, failed
    loads, console.error), console warnings (the page warns only about server input it
    drops) unless allowed, and what the error hook caught."""
    problems = []
    for entry in browser.drain_log():
        if entry.get("level") == "SEVERE":
            problems.append(f"{browser.label}: {entry.get('source')}: {entry.get('message')}")
        elif (not allow_warnings and entry.get("level") == "WARNING"
              and entry.get("source") == "console-api"):
            problems.append(f"{browser.label}: warning: {entry.get('message')}")
    if not browser.closed:
        problems += [f"{browser.label}: {e}" for e in browser.hooked_errors()]
    return problems


# ---- 1. the self-test page, served by the gate ----

def test_selftest_page_passes_when_served_by_the_gate(tern, scene):
    require_built()
    cluster = tern.cluster(web_topology(connectors=1, chats=1))
    scene.cluster = cluster
    host, port = cluster.gate_address()

    status, body = harness.http_get(host, port, "/selftest.html")
    assert status == 200 and "<title>SELFTEST RUNNING</title>" in body, \
        f"GET /selftest.html from the gate: {status} {body[:300]!r}\n{cluster.outputs()}"

    page = scene.browser("selftest")
    page.open(f"http://{host}:{port}/selftest.html")
    title = scene.wait(lambda: page.driver.title != "SELFTEST RUNNING" and page.driver.title,
                       "the self-test verdict in the title", timeout=SELFTEST_TIMEOUT)
    if title != "SELFTEST PASS":
        log = page.driver.find_element(By.ID, "log").text
        scene.fail(f"self-test title {title!r}; its log:\n{log}")
    # The self-test feeds the client malformed frames on purpose and the client warns
    # about each; errors are still not allowed.
    problems = log_problems(page, allow_warnings=True)
    assert not problems, "\n".join(problems)
    cluster.assert_running()


# ---- 2 and 3. chatting through the real gate, connectors and chat servers ----

def query_entry(cluster, uid):
    """The gate's queryEntry answer for uid, asked the way the page asks."""
    host, port = cluster.gate_address()
    resp = harness.run_async(pomelo.query_entry(host, port, uid), timeout=15.0)
    assert isinstance(resp, dict) and resp.get("code") == 200, \
        f"queryEntry({uid!r}) answered {resp!r}\n{cluster.outputs()}"
    return resp["host"], resp["port"]


def names_on_two_connectors(cluster):
    """("alice", a bob name) that the gate sends to different connectors, and the
    connector (host, port) of each. The gate hashes the uid; "bob", "bob1", ... are tried
    in order, so the choice is deterministic for a given topology."""
    connectors = {cluster.client_address(sid)
                  for sid in cluster.topology.ids("connector")}
    alice_at = query_entry(cluster, "alice")
    assert alice_at in connectors, f"gate named {alice_at}, connectors are {connectors}"
    for suffix in [""] + [str(i) for i in range(1, 40)]:
        bob = "bob" + suffix
        bob_at = query_entry(cluster, bob)
        assert bob_at in connectors, f"gate named {bob_at}, connectors are {connectors}"
        if bob_at != alice_at:
            return ("alice", alice_at), (bob, bob_at)
    pytest.fail(f"the gate sends alice and bob..bob39 all to {alice_at}: it does not "
                f"spread uids over the {len(connectors)} connectors", pytrace=False)


def wait_connector_sessions(scene, cluster, addresses):
    """Waits until each connector holds as many sessions as there are pages whose gate
    answer (addresses: one connector (host, port) per page) named it: the pages went
    where the gate sent them."""
    for sid in cluster.topology.ids("connector"):
        want = addresses.count(cluster.client_address(sid))
        scene.wait(lambda sid=sid, want=want:
                   harness.sample(cluster.metrics(sid), "tern_connector_sessions") == want,
                   f"{sid}: tern_connector_sessions == {want}")


def join(scene, page, url, name, room=ROOM):
    page.open(url)
    scene.wait(lambda: page.state()["login"], f"{page.label}: the login form")
    page.login(name, room)
    state = scene.wait(lambda: (lambda s: s if s["chat"] else None)(page.state()),
                       f"{page.label}: joined {room} as {name}")
    assert state["name"] == name and state["room"] == room, state
    return state


def wait_users(scene, page, users):
    want = sorted(users)
    scene.wait(lambda: page.users() == want, f"{page.label}: user list {want}")


def wait_row(scene, page, row):
    """Waits until row (kind, nick line, text) is in page's history."""
    scene.wait(lambda: row in page.history(), f"{page.label}: history row {row}")


def send(scene, page, text, target="*"):
    """Sends and waits for the server's answer (the page clears the field on it)."""
    page.send(text, target)
    scene.wait(lambda: page.state()["entry"] == "",
               f"{page.label}: the answer to chat.chatHandler.send {text!r}")


def test_two_browsers_chat_through_gate_and_two_connectors(tern, scene):
    require_built()
    cluster = tern.cluster(web_topology(connectors=2, chats=2))
    scene.cluster = cluster
    gate_host, gate_port = cluster.gate_address()
    url = f"http://{gate_host}:{gate_port}/"
    (alice_name, alice_at), (bob_name, bob_at) = names_on_two_connectors(cluster)
    bob_says = f"{bob_name} says to"

    # alice, then bob on the other connector: each sees the other (bob from the enter
    # answer, alice through onAdd).
    alice = scene.browser("alice")
    state = join(scene, alice, url, alice_name)
    assert state["users"] == [alice_name], state
    bob = scene.browser("bob")
    join(scene, bob, url, bob_name)
    wait_users(scene, bob, [alice_name, bob_name])
    wait_users(scene, alice, [alice_name, bob_name])

    carol = scene.browser("carol")
    join(scene, carol, url, "carol")
    everyone = [alice_name, bob_name, "carol"]
    for page in (alice, bob, carol):
        wait_users(scene, page, everyone)
    wait_connector_sessions(scene, cluster, [alice_at, bob_at, query_entry(cluster, "carol")])

    # A room message reaches all three, the sender included.
    hello = ("room", f"{alice_name} says to all:", "hello room")
    send(scene, alice, "hello room")
    for page in (alice, bob, carol):
        wait_row(scene, page, hello)

    # bob -> alice privately: at alice from the server, at bob as the page's echo. Then a
    # room message from bob: the room's order is one sequence, so once carol has it, a
    # misdelivered private message would have reached her before it.
    secret = ("private", f"{bob_says} {alice_name}:", "psst alice")
    send(scene, bob, "psst alice", target=alice_name)
    wait_row(scene, alice, secret)
    wait_row(scene, bob, secret)
    after = ("room", f"{bob_says} all:", "after the secret")
    send(scene, bob, "after the secret")
    for page in (alice, bob, carol):
        wait_row(scene, page, after)

    # Beyond the BMP: the page encodes U+1F600 as two 3-byte surrogates (CESU-8); every
    # page must get the same string back.
    emoji = ("room", f"{alice_name} says to all:", "hi \U0001F600")
    send(scene, alice, emoji[2])
    for page in (alice, bob, carol):
        wait_row(scene, page, emoji)

    # Each message exactly once, in the room's order; carol never saw the secret.
    assert alice.chat_rows() == [hello, secret, after, emoji], alice.describe()
    assert bob.chat_rows() == [hello, secret, after, emoji], bob.describe()
    assert carol.chat_rows() == [hello, after, emoji], carol.describe()

    # bob closes his window: alice and carol get onLeave.
    bob_problems = log_problems(bob)
    bob.close()
    wait_users(scene, alice, [alice_name, "carol"])
    wait_users(scene, carol, [alice_name, "carol"])

    # A second "alice" in the same room gets the name-taken message and stays on the
    # login form; the same name in another room is fine.
    dup = scene.browser("alice-again")
    dup.open(url)
    scene.wait(lambda: dup.state()["login"], "alice-again: the login form")
    dup.login(alice_name, ROOM)
    state = scene.wait(lambda: (lambda s: s if s["error"] and not s["joinDisabled"]
                                else None)(dup.state()),
                       "alice-again: the login error")
    assert state["error"] == NAME_TAKEN and state["login"] and not state["chat"], state
    assert alice.users() == [alice_name, "carol"], alice.describe()
    dup.login(alice_name, "elsewhere")
    scene.wait(lambda: dup.state()["chat"], "alice-again: joined room elsewhere")
    assert dup.users() == [alice_name], dup.describe()

    # 3. No page reported an error or dropped anything the servers sent.
    problems = bob_problems
    for page in (alice, carol, dup):
        problems += log_problems(page)
    if problems:
        scene.fail("the pages reported problems:\n" + "\n".join(problems))
    cluster.assert_running()
