"""Rooms that move between chat servers under load (design.md §3 and §7), with the real
binaries and clients that log in through the gate like the web page.

A cluster is started by hand around a registry (no servers.json), every server on its own
loopback address; chat servers join at run time, drain on SIGTERM, crash on SIGKILL, and
are restarted one at a time under their ids. Meanwhile the load driver (tests/lib/
chatload.py) has a few hundred clients chat steadily, and its checker judges what every
client saw: no disconnects, every request answered, one sequence per room with every
message answered {} exactly once and each sender's messages in order, onAdd/onLeave
neither lost nor doubled.

Nothing here asserts on timing: times (drains, recoveries, the driver's own lag) are
measured and printed (pytest -s), and each test writes its numbers and problems to a JSON
file in its tmp dir. Every wait has a deadline."""
import asyncio
import json
import random
import signal
import statistics
import time

import pytest

import chatload
import harness
from hand import Hand
import pomelo
from pomelo import ENTER_ROUTE, SEND_ROUTE

EVICT_MS = 1500        # the registry's evictAfter: a SIGKILLed server is gone after ~1.5-2 s
HEARTBEAT_MS = 150     # every other server's heartbeat to the registry
WAIT = 30.0            # deadline for things that normally take a second or two

ROOMS, PER_ROOM = 20, 10   # 200 clients
PROCESSES = 2              # load worker processes (the machine has two cores)
LOAD_INTERVAL = (0.25, 0.5)
LOGIN_WAVE_PAUSE_S = 0.3


def require_built():
    missing = harness.missing_binaries(("registry", "chat", "connector", "gate"))
    if missing:
        pytest.fail(f"not built: {', '.join(missing)} (set TERN_BIN)", pytrace=False)


# ---- a cluster started by hand ----

def sees(node, stype, n):
    return node.metric("tern_membership_servers", -1, type=stype) == n


def wait_until(pred, what, timeout=WAIT):
    return harness.wait_until(pred, timeout, interval=0.05, what=what)


def wait_membership(hand, chats=None, connectors=None):
    """Waits until every running gate, connector and chat server sees `chats` chat servers
    and `connectors` connectors (None: as many as are running)."""
    chats = len(hand.of_type("chat")) if chats is None else chats
    connectors = len(hand.of_type("connector")) if connectors is None else connectors
    for n in hand.of_type("connector") + hand.of_type("gate"):
        wait_until(lambda n=n: sees(n, "chat", chats) and sees(n, "connector", connectors),
                   f"{n.label} to see {chats} chat servers and {connectors} connectors")
    for n in hand.of_type("chat"):
        wait_until(lambda n=n: sees(n, "connector", connectors),
                   f"{n.label} to see {connectors} connectors")


def start_cluster(tern, chats=2, connectors=2, spare_hosts=3):
    """A registry, chat servers chat-1.., connectors connector-1.. and gate-1, each on its
    own loopback address; returns (hand, hosts for servers started later)."""
    require_built()
    hosts = harness.loopback_hosts(2 + chats + connectors + spare_hosts)[1:]
    it = iter(hosts)
    hand = Hand(tern, EVICT_MS, HEARTBEAT_MS)
    hand.start("registry", "registry-1", next(it))
    for i in range(chats):
        hand.start("chat", f"chat-{i + 1}", next(it))
    for i in range(connectors):
        hand.start("connector", f"connector-{i + 1}", next(it))
    hand.start("gate", "gate-1", next(it))
    wait_membership(hand)
    return hand, list(it)


def gate_address(hand):
    g = hand.current["gate-1"]
    return g.host, g.client_port


def room_owners(hand, rids):
    """{rid: id of the chat server that creates the room}, found by entering a probe
    client into each room in turn through connector-1 and watching which chat server's
    room count grows. The probes leave again before this returns."""
    chats = hand.of_type("chat")
    conn = hand.current["connector-1"]

    def counts():
        return {c.id: c.metric("tern_chat_rooms") for c in chats}

    async def probe():
        owners, clients = {}, []
        before = counts()
        for rid in rids:
            c = await pomelo.Client.connect(conn.host, conn.client_port)
            clients.append(c)
            resp = await c.request(ENTER_ROUTE, {"username": "probe", "rid": rid})
            assert "users" in resp, resp
            after = counts()
            grown = [sid for sid in after if after[sid] > before[sid]]
            assert len(grown) == 1, (rid, before, after)
            owners[rid] = grown[0]
            before = after
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        return owners

    owners = harness.run_async(probe(), 60)
    try:  # the probes' rooms are normally gone at once; nothing depends on it
        wait_until(lambda: sum(counts().values()) == 0, "the probes' rooms to be gone", 5)
    except AssertionError:
        pass
    return owners


# ---- running a load and reporting ----

def open_load(hand, tmp_path, rooms=ROOMS, per_room=PER_ROOM, processes=PROCESSES):
    """A ChatLoad with rooms x per_room clients logged in through the gate (and their
    onAdd pushes arrived). Returns (load, login answers).

    They log in in waves of one client per room, a short pause apart: the gate sends each
    client to the connector with the fewest connections as last reported in heartbeats, so
    a burst of logins lands on one connector; waves spread every room over both."""
    load = chatload.ChatLoad(gate_address(hand), tmp_path / "load", processes=processes)
    try:
        plan = chatload.room_plan(rooms, per_room)
        infos = []
        for w in range(per_room):
            infos += load.login(plan[w * rooms:(w + 1) * rooms])
            time.sleep(LOGIN_WAVE_PAUSE_S)
        failed = [i for i in infos if not chatload.entered(i)]
        assert not failed, f"{len(failed)} logins failed, e.g. {failed[:3]}"
        load.settle(quiet=0.5, timeout=15)
    except BaseException:
        load.kill()
        raise
    return load, infos


def finish(load, quiet=2.0):
    """Stops the sends, waits until the last pushes arrived, closes the clients; returns
    (records, stats before closing, seconds the settling took or None)."""
    load.stop()
    settled = load.settle(quiet=quiet, timeout=30)
    stats = load.stats()
    return load.close(), stats, settled


def report(tmp_path, title, records, stats, problems, extra=None):
    """Prints what the run did and writes it (with the problems) to tmp_path/report.json;
    the records go to tmp_path/records.json. Returns the report dict."""
    s = chatload.summary(records)
    out = {"test": title, "summary": s, "lag": stats["lag"], "problems": problems}
    out.update(extra or {})
    path = tmp_path / "report.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    (tmp_path / "records.json").write_text(json.dumps(records))
    spread = chatload.rooms_by_connector(records)
    one_connector = sorted(r for r, by in spread.items() if len(by) < 2)
    print(f"\n== {title}")
    print(f"   clients {s['sessions']} (entered {s['entered']}) per connector "
          f"{s['connectors']}; rooms on a single connector: {one_connector or 'none'}")
    print(f"   sent {s['sent']}, answered {{}} {s['acked']}, errors {s['errors']}, "
          f"unanswered {s['unanswered']}, onChat deliveries {s['deliveries']}, "
          f"onAdd {s['onAdd']}, onLeave {s['onLeave']}, disconnects {s['disconnects']}")
    print(f"   driver event loop lag: {chatload.lag_report(stats)}")
    for k, v in (extra or {}).items():
        print(f"   {k}: {v}")
    print(f"   problems: {len(problems)}; report written to {path}")
    for p in problems:
        print(f"   - {p}")
    return out


def assert_no_problems(title, problems):
    assert not problems, f"{title}: {len(problems)} problems:\n" + "\n".join(problems)


def sleep_until(t):
    time.sleep(max(0.0, t - time.monotonic()))


def joiner_takes_rooms(node, problems, timeout):
    """A chat server that joined while rooms exist takes over its share of them without
    any client entering anew (planned moves hand the rooms over) within timeout seconds
    (the time until the test's next step; at least half a second)."""
    timeout = max(0.5, timeout)
    try:
        wait_until(lambda: node.metric("tern_chat_rooms") > 0,
                   f"{node.label} to own rooms", timeout)
    except AssertionError:
        problems.append(f"move: {node.label} joined but owns no room {timeout:.1f}s later "
                        f"(tern_chat_rooms = {node.metric('tern_chat_rooms')}): no room was "
                        f"handed over to it")


def drain(hand, sid, problems, timings):
    """SIGTERM to sid and wait for its exit (the harness SIGKILLs it after its stop grace,
    which counts as a failure); the time it took is printed, not judged."""
    code, took = hand.stop_timed(sid)
    timings[f"{sid} drain (s)"] = round(took, 2)
    if code != 0:
        problems.append(f"drain: {sid} exited with status {code!r} after SIGTERM")
    return took


# ---- steady load, no moves: the driver itself ----

def checker_blind_spots(records, t_start):
    """Breaks real records in three ways (one member misses a message; one gets a message
    twice; a message answered {} reaches nobody) and returns what the checker failed to
    see in each: the checker is not vacuous on what the driver records."""
    def chat_pushes(rec):
        return [i for i, p in enumerate(rec["pushes"]) if p[1] == "onChat"]

    out = []
    rid = records[0]["rid"]
    room = [i for i, r in enumerate(records) if r["rid"] == rid]
    msg = records[room[0]]["pushes"][chat_pushes(records[room[0]])[5]][2]["msg"]
    cases = {"gap": lambda rs: rs[room[1]]["pushes"].pop(
                 next(i for i in chat_pushes(rs[room[1]]) if rs[room[1]]["pushes"][i][2]["msg"]
                      == msg)),
             "duplicate": lambda rs: rs[room[1]]["pushes"].insert(
                 chat_pushes(rs[room[1]])[7], rs[room[1]]["pushes"][chat_pushes(rs[room[1]])[6]]),
             "lost": lambda rs: [rs[i].__setitem__("pushes", [
                 p for p in rs[i]["pushes"] if p[1] != "onChat" or p[2]["msg"] != msg])
                 for i in room]}
    for kind, damage in cases.items():
        broken = json.loads(json.dumps(records))
        damage(broken)
        got = chatload.check(broken, membership_frozen_after=t_start, t0=t_start)
        if [p.split(":", 1)[0] for p in got] != [kind]:
            out.append(f"checker: records with one {kind} made it report {got}")
    return out


def test_steady_load_without_moves(tern, tmp_path):
    """200 clients over two connectors and two chat servers chat for 15 s: the checker
    finds nothing. This is the driver's own test: it must pass on a steady cluster."""
    hand, _ = start_cluster(tern, chats=2)
    load, _ = open_load(hand, tmp_path)
    with load:
        t_start = load.start(LOAD_INTERVAL, duration=15)
        load.wait_sent(timeout=60)
        rooms = {n.id: n.metric("tern_chat_rooms") for n in hand.of_type("chat")}
        records, stats, settled = finish(load)
    problems = chatload.check(records, membership_frozen_after=t_start, t0=t_start)
    report(tmp_path, "steady load, no moves", records, stats, problems,
           {"rooms per chat server at the end": rooms, "settled after (s)": settled})
    assert_no_problems("steady load", problems)
    assert_no_problems("the checker on broken records", checker_blind_spots(records, t_start))
    # It did load: every client sent (the checker saw every send answered {}), over both
    # connectors.
    assert min(len(r["sends"]) for r in records) >= 5, chatload.summary(records)
    assert len(chatload.summary(records)["connectors"]) == 2, chatload.summary(records)


# ---- planned moves ----

def test_chat_servers_join_and_drain_under_load(tern, tmp_path):
    """Under steady chat, chat-3 joins, chat-1 drains (SIGTERM), chat-4 joins: no client
    notices anything but the rooms keep going."""
    hand, spare = start_cluster(tern, chats=2)
    problems, timings = [], {}
    load, _ = open_load(hand, tmp_path)
    with load:
        t_start = load.start(LOAD_INTERVAL, duration=60)
        sleep_until(t_start + 3)
        hand.start("chat", "chat-3", spare[0])
        wait_membership(hand)
        joiner_takes_rooms(hand.current["chat-3"], problems, t_start + 8 - time.monotonic())
        drain(hand, "chat-1", problems, timings)
        wait_membership(hand)
        sleep_until(t_start + 13)
        hand.start("chat", "chat-4", spare[1])
        wait_membership(hand)
        joiner_takes_rooms(hand.current["chat-4"], problems, t_start + 18 - time.monotonic())
        rooms = {n.id: n.metric("tern_chat_rooms") for n in hand.of_type("chat")}
        records, stats, settled = finish(load)
    problems += chatload.check(records, membership_frozen_after=t_start, t0=t_start)
    timings.update({"rooms per chat server at the end": rooms, "settled after (s)": settled})
    report(tmp_path, "join chat-3, drain chat-1, join chat-4", records, stats, problems, timings)
    assert_no_problems("join and drain under load", problems)


def test_rolling_restart_of_every_chat_server(tern, tmp_path):
    """Under steady chat, every chat server in turn: SIGTERM, wait for its exit, start it
    again under the same id, wait until everyone sees it, next."""
    hand, _ = start_cluster(tern, chats=2)
    problems, timings = [], {}
    load, _ = open_load(hand, tmp_path)
    with load:
        t_start = load.start(LOAD_INTERVAL, duration=60)
        sleep_until(t_start + 3)
        for sid in ("chat-1", "chat-2"):
            host = hand.current[sid].host
            drain(hand, sid, problems, timings)
            wait_membership(hand)
            t0 = time.monotonic()
            hand.start("chat", sid, host)
            wait_membership(hand)
            timings[f"{sid} back and seen by all (s)"] = round(time.monotonic() - t0, 2)
            time.sleep(3)
        rooms = {n.id: n.metric("tern_chat_rooms") for n in hand.of_type("chat")}
        records, stats, settled = finish(load)
    problems += chatload.check(records, membership_frozen_after=t_start, t0=t_start)
    timings.update({"rooms per chat server at the end": rooms, "settled after (s)": settled})
    report(tmp_path, "rolling restart of chat-1 and chat-2", records, stats, problems, timings)
    assert_no_problems("rolling restart", problems)


# ---- crash ----

def test_chat_server_crash_recovery_time(tern, tmp_path):
    """Under steady chat, chat-2 is SIGKILLed. Nobody is disconnected; sends may fail
    during the outage, then succeed again and reach everyone in order. For each room that
    chat-2 owned, the time from the kill to the first delivery of a message sent after it
    is measured and printed."""
    hand, _ = start_cluster(tern, chats=2)
    rids = [f"room{r}" for r in range(ROOMS)]
    owners = room_owners(hand, rids)
    victim_rooms = sorted((r for r in rids if owners[r] == "chat-2"), key=lambda r: int(r[4:]))
    assert victim_rooms, f"no room on chat-2: {owners}"
    after_kill = 14.0
    problems = []
    load, _ = open_load(hand, tmp_path)
    with load:
        t_start = load.start(LOAD_INTERVAL, duration=60)
        sleep_until(t_start + 4)
        t_kill = time.monotonic()
        hand.stop("chat-2", signal.SIGKILL)
        wait_membership(hand)
        t_evicted = time.monotonic()
        sleep_until(t_kill + after_kill)
        records, stats, settled = finish(load)

    problems += chatload.check(records, allow_errors=True, t0=t_start,
                               membership_frozen_after=t_start)
    recovery = {}
    for rid in victim_rooms:
        t = chatload.first_delivery_after(records, rid, t_kill)
        recovery[rid] = None if t is None else round(t - t_kill, 3)
        if t is None:
            problems.append(f"recovery: room {rid} (owned by chat-2): no message sent after "
                            f"the kill was delivered in the {after_kill:.0f}s that followed")
    # After the recovery every client is answered {} again: its last sends succeed.
    failing = {}
    for rec in records:
        bad = [f"{chatload.content_of(rec['name'], k)} -> {json.dumps(a)}"
               for k, _ts, _ta, a in rec["sends"][-3:] if a != {}]
        if chatload.entered(rec) and bad:
            failing.setdefault(rec["rid"], []).append(bad[-1])
    for rid, bad in sorted(failing.items()):
        problems.append(f"recovery: room {rid} (on {owners[rid]} before the kill): {len(bad)} "
                        f"clients still fail at the end of the run, e.g. {bad[0]}")
    found = sorted(v for v in recovery.values() if v is not None)
    numbers = {"rooms owned by chat-2": victim_rooms,
               "eviction seen by everyone after (s)": round(t_evicted - t_kill, 2),
               "recovery per room (s after SIGKILL)": recovery,
               "recovery min/median/max (s)": (found[0], statistics.median(found), found[-1])
               if found else None,
               "rooms never recovered": sorted(r for r, v in recovery.items() if v is None),
               "settled after (s)": settled}
    out = report(tmp_path, "SIGKILL of chat-2 under load", records, stats, problems, numbers)
    rec_path = tmp_path / "recovery.json"
    rec_path.write_text(json.dumps({k: out[k] for k in numbers}, indent=2) + "\n")
    print(f"   recovery times written to {rec_path}")
    assert_no_problems("chat server crash", problems)


# ---- the name index moves with the room ----

ENTER_RACE = 50
RACE_SPREAD_S = 1.2   # the enters are spread over this window...
RACE_MOVE_AT_S = 0.3  # ...and the move starts this far into it
RACE_MEMBERS = 4      # members already in the raced room


def race_outcome(answers):
    """(winners, name-taken answers, 503 answers, anything else) of the raced enters."""
    wins = [a for a in answers if isinstance(a, dict) and isinstance(a.get("users"), list)]
    taken = [a for a in answers if a == {"code": 500, "error": True}]
    busy = [a for a in answers if isinstance(a, dict) and a.get("code") == 503]
    other = [a for a in answers if not (a in wins or a in taken or a in busy)]
    return wins, taken, busy, other


async def race(hand, rid, name, move, members):
    """50 clients (connected first, alternating over the connectors) enter `name` into rid
    at moments spread over RACE_SPREAD_S; RACE_MOVE_AT_S into it, move() starts in a
    thread. Returns
    (answers, move's result, problems about the room's members)."""
    conns = hand.of_type("connector")
    clients = await asyncio.gather(*(pomelo.Client.connect(conns[i % len(conns)].host,
                                                           conns[i % len(conns)].client_port)
                                     for i in range(ENTER_RACE)))
    rng = random.Random(rid)
    offsets = sorted(rng.uniform(0, RACE_SPREAD_S) for _ in clients)

    async def enter(c, delay):
        await asyncio.sleep(delay)
        try:
            return await c.request(ENTER_ROUTE, {"username": name, "rid": rid}, timeout=15)
        except Exception as e:  # noqa: BLE001 - counted as "other"
            return f"{type(e).__name__}: {e}"

    async def move_later():
        await asyncio.sleep(RACE_MOVE_AT_S)
        return await asyncio.to_thread(move)

    moving = asyncio.ensure_future(move_later())
    answers = await asyncio.gather(*(enter(c, d) for c, d in zip(clients, offsets)))
    moved = await moving
    problems = []
    wins, _, _, _ = race_outcome(answers)
    if len(wins) == 1:
        winner = clients[answers.index(wins[0])]
        listed = set(wins[0]["users"])
        want = {f"m{i}" for i in range(RACE_MEMBERS)} | {name}
        if listed != want:
            problems.append(f"enter race in {rid}: the winner's enter listed {sorted(listed)}, "
                            f"the room holds {sorted(want)}")
        # The room still works for everyone, the winner included, and each member heard of
        # the newcomer exactly once.
        body = {"rid": rid, "content": f"after-{name}", "from": "m0", "target": "*"}
        ans = await members[0].request(SEND_ROUTE, body, timeout=15)
        if ans != {}:
            problems.append(f"enter race in {rid}: a member's send after the move answered {ans}")
        for who, c in [(f"m{i}", m) for i, m in enumerate(members)] + [(name, winner)]:
            try:
                while (await c.next_push("onChat", timeout=10))[1].get("msg") != body["content"]:
                    pass
            except (asyncio.TimeoutError, pomelo.ConnectionLost) as e:
                problems.append(f"enter race in {rid}: {who} never received the message sent "
                                f"after the move ({e})")
        for i, m in enumerate(members):
            adds = [b.get("user") for r, b in m.unread_pushes("onAdd")]
            if adds.count(name) != 1:
                problems.append(f"enter race in {rid}: member m{i} got {adds.count(name)} "
                                f"onAdd {name!r} (want exactly 1): {adds}")
    for i, m in enumerate(members):
        if m.is_closed:
            problems.append(f"enter race in {rid}: member m{i} was disconnected "
                            f"(kick {m.kick_reason!r}, close code {m.close_code})")
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return answers, moved, problems


async def fill_room(hand, rid):
    """RACE_MEMBERS clients m0.. in rid, alternating over the connectors, onAdds read."""
    conns = hand.of_type("connector")
    members = []
    for i in range(RACE_MEMBERS):
        conn = conns[i % len(conns)]
        c = await pomelo.Client.connect(conn.host, conn.client_port)
        resp = await c.request(ENTER_ROUTE, {"username": f"m{i}", "rid": rid})
        assert "users" in resp, resp
        members.append(c)
    for i, m in enumerate(members):
        for _ in range(RACE_MEMBERS - 1 - i):
            await m.next_push("onAdd", timeout=10)
    return members


def test_concurrent_enters_of_one_name_while_the_room_moves(tern, tmp_path):
    """50 enters of one new name into a room with members, spread over the moment the
    room moves: (a) to chat-3 as it joins, (b) away from chat-1 as it drains. Exactly one
    enter succeeds each time (the name index moves with the room); the others are told
    the name is taken (500) or to retry (503)."""
    hand, spare = start_cluster(tern, chats=3)
    rids = [f"race{i}" for i in range(24)]
    owners = room_owners(hand, rids)
    to_join = next((r for r in rids if owners[r] == "chat-3"), None)
    to_drain = next((r for r in rids if owners[r] == "chat-1"), None)
    assert to_join and to_drain, owners
    chat3_host = hand.current["chat-3"].host
    code = hand.stop("chat-3")  # empty: its rooms go nowhere; it comes back in (a)
    assert code == 0
    wait_membership(hand)
    problems, outcome = [], {}

    async def scenario():
        held = []
        # (a) to_join lives on chat-1 or chat-2 now and moves to chat-3 when it joins.
        members = await fill_room(hand, to_join)
        held += members

        def join():
            t0 = time.monotonic()
            hand.start("chat", "chat-3", chat3_host)
            wait_membership(hand)
            return round(time.monotonic() - t0, 2)

        answers, took, found = await race(hand, to_join, "neo", join, members)
        problems.extend(found)
        outcome[f"(a) {to_join} moves to chat-3 as it joins"] = (answers, took)
        # (b) to_drain lives on chat-1 and moves away when chat-1 drains.
        members = await fill_room(hand, to_drain)
        held += members
        timings = {}

        def leave():
            drain(hand, "chat-1", problems, timings)
            wait_membership(hand)
            return timings

        answers, took, found = await race(hand, to_drain, "trinity", leave, members)
        problems.extend(found)
        outcome[f"(b) {to_drain} moves away from chat-1 as it drains"] = (answers, took)
        await asyncio.gather(*(c.close() for c in held), return_exceptions=True)

    harness.run_async(scenario(), timeout=120)
    summary = {}
    print("\n== concurrent enters of one name while the room moves")
    for what, (answers, took) in outcome.items():
        wins, taken, busy, other = race_outcome(answers)
        others = {}
        for a in other:
            key = f"code {a.get('code')}" if isinstance(a, dict) else str(a)[:80]
            others[key] = others.get(key, 0) + 1
        summary[what] = {"successes": len(wins), "name taken (500)": len(taken),
                         "retry (503)": len(busy), "other answers": others,
                         "move took": took, "winners' answers": wins}
        print(f"   {what}: {summary[what]}")
        if len(wins) != 1:
            problems.append(f"enter race: {what}: {len(wins)} of {ENTER_RACE} enters of one "
                            f"name succeeded (want exactly 1): {wins}; the others: "
                            f"{len(taken)} name taken, {len(busy)} retry (503), {others}")
    for p in problems:
        print(f"   - {p}")
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"races": summary, "problems": problems}, indent=2) + "\n")
    print(f"   report written to {path}")
    assert_no_problems("concurrent enters while the room moves", problems)


# ---- connector crash ----

def test_connector_crash_others_see_onleave_and_users_log_in_again(tern, tmp_path):
    """Rooms with members on both connectors; connector-2 is SIGKILLed. Once it is
    evicted, the members on connector-1 see exactly one onLeave per user it held; those
    users log in again through the gate (which sends them to connector-1), enter the same
    rooms under the same names, and the others see onAdd for them; the rooms then chat."""
    hand, _ = start_cluster(tern, chats=2)
    problems, numbers = [], {}
    load, infos = open_load(hand, tmp_path, rooms=8, per_room=5, processes=1)
    victim = hand.current["connector-2"]
    survivor = hand.current["connector-1"]
    victim_addr = f"{victim.host}:{victim.client_port}"
    killed = [(i["name"], i["rid"]) for i in infos if i["connector"] == victim_addr]
    by_room = {}
    for i in infos:
        by_room.setdefault(i["rid"], []).append(i)
    shared = [r for r, members in by_room.items()
              if len({m["connector"] for m in members}) == 2]
    # onLeave pushes due: each killed user, to every member of its room on connector-1.
    due = sum(sum(1 for m in by_room[rid] if m["connector"] != victim_addr)
              for _n, rid in killed)
    with load:
        assert killed and shared, f"no room has members on both connectors: {by_room}"
        load.start(LOAD_INTERVAL, count=6)
        load.wait_sent(timeout=60)
        load.settle(quiet=1.0, timeout=20)
        before = load.stats()["routes"]
        t_kill = time.monotonic()
        hand.stop("connector-2", signal.SIGKILL)
        wait_membership(hand)
        numbers["eviction seen by everyone after (s)"] = round(time.monotonic() - t_kill, 2)
        try:
            load.wait_for(lambda st: st["routes"].get("onLeave", 0) >= before.get("onLeave", 0)
                          + due, 15, f"{due} onLeave pushes")
            numbers["onLeave pushes all in after (s)"] = round(time.monotonic() - t_kill, 2)
        except chatload.DriverError as e:
            problems.append(f"onLeave: {e}")
        again = load.login(killed)  # a failed enter is reported by the checker
        for a in again:
            if chatload.entered(a) and a["connector"] != f"{survivor.host}:{survivor.client_port}":
                problems.append(f"login again: {a['name']} was sent to {a['connector']}")
        # onAdd due at least: each user back, to the members that stayed in its room.
        try:
            load.wait_for(lambda st: st["routes"].get("onAdd", 0) >= before.get("onAdd", 0)
                          + due, 15, f"{due} onAdd pushes")
        except chatload.DriverError as e:
            problems.append(f"onAdd: {e}")
        load.settle(quiet=1.0, timeout=20)
        load.start(LOAD_INTERVAL, count=6)
        load.wait_sent(timeout=60)
        records, stats, settled = finish(load)

    killed_set = set(killed)
    expected_closed = [(r["name"], r["session"]) for r in records
                       if (r["name"], r["rid"]) in killed_set and r["session"] == 0]
    problems += chatload.check(records, expected_closed=expected_closed, t0=t_kill)
    # Exactly one onLeave per killed user at every member that stayed, after the kill,
    # and then one onAdd for the user's new session.
    wrong = {}
    for rec in records:
        if chatload.lost_connection(rec) or rec["session"] != 0:
            continue
        for name, rid in killed:
            if rid != rec["rid"] or name == rec["name"]:
                continue
            pushes = chatload.pushes_until_close(rec)
            leaves = [t for t, route, b in pushes if route == "onLeave" and b.get("user") == name]
            adds = [t for t, route, b in pushes
                    if route == "onAdd" and b.get("user") == name and t > t_kill]
            if len(leaves) != 1 or len(adds) != 1 or not leaves[0] < adds[0]:
                wrong.setdefault((rid, name), []).append(
                    f"{rec['name']} ({len(leaves)} onLeave, {len(adds)} onAdd)")
    for (rid, name), seen in sorted(wrong.items()):
        problems.append(f"onLeave/onAdd: room {rid}: after connector-2 died, not one onLeave "
                        f"then one onAdd {name!r} at {', '.join(seen)}")
    numbers.update({"users on connector-2": len(killed), "rooms shared by both connectors":
                    len(shared), "settled after (s)": settled})
    report(tmp_path, "SIGKILL of connector-2", records, stats, problems, numbers)
    assert_no_problems("connector crash", problems)
