"""A chat load driver that checks the room guarantees (design.md §7), for the integration
tests of room moves.

ChatLoad logs clients in through the gate the way the web page does (queryEntry, then
enter on the connector it names), has every client send room messages at a steady rate,
and records everything each client saw: every answer (body, send and answer time), every
push (route, body, arrival time) in order, and how its connection ended (close code, kick
reason, client-side heartbeat timeout, protocol violations).

The clients run in worker processes (this file run as `chatload.py worker`), so that a
two-core machine's event loops keep up with a few hundred clients and the test's own
thread stays free to start, stop and kill servers meanwhile. Each worker measures its
event loop's lag. Times are time.monotonic(), which is one clock for every process.

check(records, ...) turns the records into a list of human-readable problems (empty: every
guarantee held) and summary(records) into numbers; both are pure functions of the records,
which are plain JSON-able dicts:

  {"name", "rid", "session" (0 first login, 1 next, ...), "worker", "connector" "host:port",
   "entry" (queryEntry answer), "enter" (enter answer), "enter_t0", "entered_at",
   "sends": [[k, t_sent, t_answer, answer], ...]   (content is "<name>#<k>"; answer is the
                                                     body, or {"_timeout": s} / {"_lost": why})
   "pushes": [[t, route, body], ...],
   "closed_at", "close_code", "close_reason", "kick", "hb_timeout", "violations": [...],
   "closed_by_driver" (true: the connection was open when the driver closed every client
   at the end), "driver_close_at" (when it did; what arrived after is not judged)}
"""
import asyncio
import json
import os
import queue
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pomelo  # noqa: E402
from pomelo import ENTER_ROUTE, SEND_ROUTE  # noqa: E402

DEFAULT_INTERVAL = (0.25, 0.5)  # seconds between two sends of one client
REQUEST_TIMEOUT = 10.0          # a request unanswered this long counts as never answered
LOGIN_TIMEOUT = 10.0
LAG_TICK = 0.05                 # period of the event loop lag probe
MAX_EXAMPLES = 5                # examples quoted in one problem line
MAX_PER_KIND = 12               # problem lines of one kind before "... and N more"


def content_of(name, k):
    """The text of message k of sender name: "<name>#<k>"."""
    return f"{name}#{k}"


def parse_content(msg):
    """(sender, k) of a driver message, or None for anything else."""
    if not isinstance(msg, str) or "#" not in msg:
        return None
    name, _, k = msg.rpartition("#")
    return (name, int(k)) if name and k.isdigit() else None


def room_plan(rooms, per_room, room_prefix="room", name_prefix="u"):
    """[(name, rid), ...] for rooms x per_room clients with distinct names, interleaved
    (member 0 of every room, then member 1, ...) so that each room's logins are spread over
    the whole login and the gate's least-loaded choice puts each room on every connector."""
    out = []
    for m in range(per_room):
        for r in range(rooms):
            out.append((f"{name_prefix}{m * rooms + r}", f"{room_prefix}{r}"))
    return out


# ======================================================================================
# The checker (pure functions of the records)
# ======================================================================================

def _is_ok(answer):
    return answer == {}


def _answer_kind(answer):
    """'ok', 'timeout', 'lost' or 'error:<code>'."""
    if answer == {}:
        return "ok"
    if not isinstance(answer, dict):
        return f"error:{answer!r}"
    if "_timeout" in answer:
        return "timeout"
    if "_lost" in answer:
        return "lost"
    return f"error:{answer.get('code')}"


def _label(rec):
    return rec["name"] if not rec.get("session") else f"{rec['name']}(session {rec['session']})"


def _examples(items, n=MAX_EXAMPLES):
    items = list(items)
    text = ", ".join(str(x) for x in items[:n])
    return text + (f", ... ({len(items)} in all)" if len(items) > n else "")


def entered(rec):
    enter = rec.get("enter")
    return isinstance(enter, dict) and isinstance(enter.get("users"), list)


def lost_connection(rec):
    """The connection closed before the driver closed the clients at the end."""
    return rec.get("closed_at") is not None and not rec.get("closed_by_driver")


def pushes_until_close(rec):
    """rec's pushes up to the moment the driver began closing every client."""
    end = rec.get("driver_close_at")
    return [p for p in rec.get("pushes", []) if end is None or p[0] < end]


def _dedup(seq):
    seen, out = set(), []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _is_contiguous_run(part, whole):
    """part appears in whole as one contiguous run (an empty part always does)."""
    if not part:
        return True
    try:
        i = whole.index(part[0])
    except ValueError:
        return False
    return whole[i:i + len(part)] == part


class _Problems:
    """Problem lines grouped by kind, with a cap per kind."""

    def __init__(self):
        self.lines = []
        self.count = {}

    def add(self, kind, text):
        n = self.count.get(kind, 0) + 1
        self.count[kind] = n
        if n <= MAX_PER_KIND:
            self.lines.append(f"{kind}: {text}")

    def result(self):
        out = list(self.lines)
        for kind, n in self.count.items():
            if n > MAX_PER_KIND:
                out.append(f"{kind}: ... and {n - MAX_PER_KIND} more problems of this kind")
        return out


def check(records, allow_errors=False, expected_closed=(), membership_frozen_after=None,
          t0=None):
    """The problems in records (see the module docstring), as human-readable lines starting
    with their kind; [] when every guarantee held:

    - login failed: queryEntry or enter did not succeed;
    - failed request (unless allow_errors): a send answered with an error body;
    - unanswered: a send with no answer within the driver's timeout, or lost with its
      connection (a request always gets a response);
    - disconnect: a connection closed that the driver did not close, unless its
      (name, session) is in expected_closed; kicks, heartbeat timeouts and close codes
      are quoted;
    - protocol violation: what the browser client would choke on;
    - unknown message / wrong sender: an onChat the driver never sent, or whose `from`
      is not its sender;
    - duplicate: a member received one message more than once;
    - reorder: a member received a sender's messages out of their sending order;
    - lost: a message answered {} that reached no member of its room;
    - gap: a member that was in the room for the whole run lacks messages that others
      received (or that were answered {}); or a member that joined late or left early saw
      messages that are not one contiguous run of the room's sequence;
    - order differs: two members received the same messages in different orders;
    - onAdd/onLeave: a duplicate onAdd, an onLeave of someone not listed, more of them
      than that user's logins and logouts, a member's final list of users that is not the
      room's, and (with membership_frozen_after=t) any onAdd/onLeave that arrived after t.

    Messages answered with an error may or may not appear, but if they do, they appear to
    every member at the same position. Members are the records whose enter succeeded; one
    "was in the room for the whole run" when it entered before the room's first send and
    its connection is still open. t0 (a time.monotonic()) makes the times printed relative.
    """
    p = _Problems()
    if t0 is None:
        t0 = min((r["enter_t0"] for r in records if r.get("enter_t0") is not None), default=0.0)
    expected_closed = {tuple(x) for x in expected_closed}

    def rel(t):
        return f"+{t - t0:.2f}s" if t is not None else "never"

    _check_sessions(records, p, allow_errors, expected_closed, rel)
    sends = _send_index(records)
    rooms = {}
    for rec in records:
        if entered(rec):
            rooms.setdefault(rec["rid"], []).append(rec)
    for rid in sorted(rooms):
        _check_room_chat(rid, rooms[rid], sends, p)
        _check_room_membership(rid, rooms[rid], p, membership_frozen_after, rel)
    return p.result()


def _check_sessions(records, p, allow_errors, expected_closed, rel):
    errors = {}
    for rec in records:
        who = _label(rec)
        if not entered(rec):
            p.add("login failed", f"{who} into {rec['rid']}: queryEntry answered "
                                  f"{rec.get('entry')!r}, enter answered {rec.get('enter')!r}")
            continue
        for k, t_sent, t_ans, answer in rec.get("sends", []):
            kind = _answer_kind(answer)
            if kind in ("timeout", "lost"):
                p.add("unanswered", f"{content_of(rec['name'], k)} sent at {rel(t_sent)} in "
                                    f"{rec['rid']}: {answer}")
            elif kind != "ok":
                errors.setdefault(kind, []).append(
                    f"{content_of(rec['name'], k)} at {rel(t_sent)} -> {json.dumps(answer)}")
        if lost_connection(rec) and (rec["name"], rec.get("session", 0)) not in expected_closed:
            why = [f"close code {rec.get('close_code')}"]
            if rec.get("close_reason"):
                why.append(f"reason {rec['close_reason']!r}")
            if rec.get("kick") is not None:
                why.append(f"kicked: {rec['kick']!r}")
            if rec.get("hb_timeout"):
                why.append("the client's heartbeat timeout fired (nothing from the server "
                           "for two heartbeat intervals, or the driver lagged)")
            p.add("disconnect", f"{who} in {rec['rid']} (connector {rec.get('connector')}) "
                                f"closed at {rel(rec['closed_at'])}: {'; '.join(why)}")
        for v in rec.get("violations", []):
            p.add("protocol violation", f"{who}: {v}")
    if not allow_errors:
        for kind in sorted(errors):
            items = errors[kind]
            p.add("failed request", f"{len(items)} sends answered with code "
                                    f"{kind.split(':', 1)[1]}, e.g. {_examples(items, 3)}")


def _send_index(records):
    """content -> (rid, answer kind, t_sent) over every session."""
    out = {}
    for rec in records:
        for k, t_sent, _t_ans, answer in rec.get("sends", []):
            out[content_of(rec["name"], k)] = (rec["rid"], _answer_kind(answer), t_sent)
    return out


def _chat_sequence(rec, rid, sends, p):
    """The msgs of rec's onChat pushes that a client sent to this room, in arrival order;
    reports the others and a wrong `from`."""
    seq = []
    for _t, route, body in pushes_until_close(rec):
        if route != "onChat":
            continue
        body = body if isinstance(body, dict) else {}
        msg = body.get("msg")
        parsed = parse_content(msg)
        if msg not in sends or sends[msg][0] != rid:
            p.add("unknown message", f"room {rid}: {_label(rec)} received {body!r}, which no "
                                     f"client sent to this room")
            continue  # reported; left out of the sequence checks
        if parsed and body.get("from") != parsed[0]:
            p.add("wrong sender", f"room {rid}: {_label(rec)} received {msg!r} from "
                                  f"{body.get('from')!r}")
        seq.append(msg)
    return seq


def _check_room_chat(rid, members, sends, p):
    first_send = min((s[1] for r in members for s in r.get("sends", [])), default=None)
    seqs = {}
    for rec in members:
        seq = _chat_sequence(rec, rid, sends, p)
        counts = {}
        for m in seq:
            counts[m] = counts.get(m, 0) + 1
        for m, n in counts.items():
            if n > 1:
                p.add("duplicate", f"room {rid}: {_label(rec)} received {m} {n} times")
        seqs[id(rec)] = _dedup(seq)

    # Sender order, grouped by the pair and listing the members that saw it.
    inversions = {}
    for rec in members:
        last = {}
        for m in seqs[id(rec)]:
            parsed = parse_content(m)
            if parsed is None:
                continue
            name, k = parsed
            if name in last and k < last[name][0]:
                inversions.setdefault((last[name][1], m), []).append(_label(rec))
            if name not in last or k > last[name][0]:
                last[name] = (k, m)
    for (later, earlier), who in inversions.items():
        p.add("reorder", f"room {rid}: {later} arrived before {earlier} (sent earlier by the "
                         f"same client) at {_examples(who)}")

    def whole_run(rec):
        return (not lost_connection(rec) and first_send is not None and
                rec.get("entered_at") is not None and rec["entered_at"] <= first_send)

    full = [r for r in members if whole_run(r)]
    partial = [r for r in members if not whole_run(r)]
    acked = [m for m, (r, kind, _t) in sends.items() if r == rid and kind == "ok"]
    if not full:
        return
    seen_by = {}
    for rec in full:
        for m in seqs[id(rec)]:
            seen_by.setdefault(m, []).append(rec)
    lost = sorted((m for m in acked if m not in seen_by), key=lambda m: sends[m][2])
    if lost:
        p.add("lost", f"room {rid}: {len(lost)} messages answered {{}} reached no member: "
                      f"{_examples(lost)}")
    union = set(seen_by) | set(acked)
    for rec in full:
        missing = union - set(seqs[id(rec)]) - set(lost)
        if missing:
            ordered = sorted(missing, key=lambda m: sends.get(m, (0, 0, 0))[2])
            p.add("gap", f"room {rid}: {_label(rec)} lacks {len(missing)} messages that other "
                         f"members received or that were answered {{}}: {_examples(ordered)}")
    common = set.intersection(*(set(seqs[id(r)]) for r in full))
    ref_rec = full[0]
    ref = [m for m in seqs[id(ref_rec)] if m in common]
    for rec in full[1:]:
        mine = [m for m in seqs[id(rec)] if m in common]
        if mine != ref:
            i = next(i for i, (a, b) in enumerate(zip(mine, ref)) if a != b)
            p.add("order differs", f"room {rid}: {_label(rec)} and {_label(ref_rec)} received "
                                   f"the same messages in different orders (first difference "
                                   f"at position {i}: {mine[i]} vs {ref[i]})")
    whole = seqs[id(ref_rec)]
    in_whole = set(whole)
    for rec in partial:
        part = [m for m in seqs[id(rec)] if m in in_whole]
        extra = [m for m in seqs[id(rec)] if m not in in_whole]
        if extra or not _is_contiguous_run(part, whole):
            p.add("gap", f"room {rid}: {_label(rec)} (in the room for part of the run) received "
                         f"messages that are not one contiguous run of the room's sequence"
                         + (f" (not in the room's sequence: {_examples(extra)})" if extra else ""))


def _check_room_membership(rid, members, p, frozen_after, rel):
    logins, logouts = {}, {}
    for rec in members:
        logins[rec["name"]] = logins.get(rec["name"], 0) + 1
        if lost_connection(rec):
            logouts[rec["name"]] = logouts.get(rec["name"], 0) + 1
    present = {r["name"] for r in members if not lost_connection(r)}
    for rec in members:
        who = _label(rec)
        roster = list(rec["enter"]["users"])
        if rec["name"] not in roster:
            p.add("onAdd/onLeave", f"room {rid}: {who}'s enter answer {rec['enter']!r} does not "
                                   f"list itself")
        if len(set(roster)) != len(roster):
            p.add("onAdd/onLeave", f"room {rid}: {who}'s enter answer lists a user twice: "
                                   f"{roster}")
        roster = set(roster)
        adds, leaves = {}, {}
        for t, route, body in pushes_until_close(rec):
            if route not in ("onAdd", "onLeave"):
                continue
            user = body.get("user") if isinstance(body, dict) else None
            if frozen_after is not None and t > frozen_after:
                p.add("onAdd/onLeave", f"room {rid}: {who} got {route} {user!r} at {rel(t)}, "
                                       f"while nobody entered or left")
            if route == "onAdd":
                adds[user] = adds.get(user, 0) + 1
                if user in roster:
                    p.add("onAdd/onLeave", f"room {rid}: {who} got a duplicate onAdd {user!r} "
                                           f"at {rel(t)} ({user!r} was already listed)")
                roster.add(user)
            else:
                leaves[user] = leaves.get(user, 0) + 1
                if user not in roster:
                    p.add("onAdd/onLeave", f"room {rid}: {who} got onLeave {user!r} at "
                                           f"{rel(t)}, who was not listed")
                roster.discard(user)
        for user, n in adds.items():
            if n > logins.get(user, 0):
                p.add("onAdd/onLeave", f"room {rid}: {who} got {n} onAdd {user!r} for "
                                       f"{logins.get(user, 0)} logins of {user!r}")
        for user, n in leaves.items():
            if n > logouts.get(user, 0):
                p.add("onAdd/onLeave", f"room {rid}: {who} got {n} onLeave {user!r} for "
                                       f"{logouts.get(user, 0)} logouts of {user!r}")
        if not lost_connection(rec) and roster != present:
            p.add("onAdd/onLeave", f"room {rid}: {who} ends up listing {len(roster)} users, "
                                   f"the room holds {len(present)}: missing "
                                   f"{sorted(present - roster)}, extra {sorted(roster - present)}")


def summary(records):
    """Numbers over the records: sessions, sent, acked, errors by code, unanswered,
    deliveries (onChat pushes), onAdd/onLeave pushes, disconnects, clients per connector."""
    out = {"sessions": len(records), "entered": 0, "sent": 0, "acked": 0, "errors": {},
           "unanswered": 0, "deliveries": 0, "onAdd": 0, "onLeave": 0, "disconnects": 0,
           "kicks": 0, "connectors": {}}
    for rec in records:
        out["entered"] += entered(rec)
        c = rec.get("connector")
        if c:
            out["connectors"][c] = out["connectors"].get(c, 0) + 1
        for _k, _ts, _ta, answer in rec.get("sends", []):
            out["sent"] += 1
            kind = _answer_kind(answer)
            if kind == "ok":
                out["acked"] += 1
            elif kind in ("timeout", "lost"):
                out["unanswered"] += 1
            else:
                code = kind.split(":", 1)[1]
                out["errors"][code] = out["errors"].get(code, 0) + 1
        for _t, route, _b in pushes_until_close(rec):
            if route == "onChat":
                out["deliveries"] += 1
            elif route in ("onAdd", "onLeave"):
                out[route] += 1
        if lost_connection(rec):
            out["disconnects"] += 1
        if rec.get("kick") is not None:
            out["kicks"] += 1
    return out


def rooms_by_connector(records):
    """{rid: {connector: [names]}} of the sessions that entered."""
    out = {}
    for rec in records:
        if entered(rec):
            out.setdefault(rec["rid"], {}).setdefault(rec["connector"], []).append(rec["name"])
    return out


def first_delivery_after(records, rid, t):
    """The earliest arrival, at any member of room rid, of an onChat push of a message that
    was sent after time t; None when there is none."""
    sent_at = {}
    for rec in records:
        if rec["rid"] == rid:
            for k, t_sent, _ta, _a in rec.get("sends", []):
                sent_at[content_of(rec["name"], k)] = t_sent
    best = None
    for rec in records:
        if rec["rid"] != rid:
            continue
        for tp, route, body in rec.get("pushes", []):
            if route == "onChat" and isinstance(body, dict):
                ts = sent_at.get(body.get("msg"))
                if ts is not None and ts > t and (best is None or tp < best):
                    best = tp
    return best


# ======================================================================================
# The worker process: clients on one event loop
# ======================================================================================

class RecordingClient(pomelo.Client):
    """A pomelo.Client that stamps every push with its arrival time into `log` (a list of
    [t, route, body]) instead of keeping it for next_push."""

    log = None
    counts = None  # route -> pushes, shared by a worker's clients
    last = None    # [time of the latest push], shared likewise

    def _on_push(self, msg):
        super()._on_push(msg)
        t = time.monotonic()
        route, body = self.pushes.pop()
        self._unread_pushes.clear()
        if self.log is not None:
            self.log.append([t, route, body])
        if self.counts is not None:
            self.counts[route] = self.counts.get(route, 0) + 1
            self.last[0] = t


class _Session:
    def __init__(self, name, rid, index, worker):
        self.client = None
        self.rec = {"name": name, "rid": rid, "session": index, "worker": worker,
                    "connector": None, "entry": None, "enter": None, "enter_t0": None,
                    "entered_at": None, "sends": [], "pushes": [], "closed_at": None,
                    "close_code": None, "close_reason": None, "kick": None,
                    "closed_by_driver": False, "driver_close_at": None, "hb_timeout": False,
                    "violations": []}
        self.outstanding = 0

    def finalize(self):
        c = self.client
        if c is not None:
            self.rec["close_code"] = c.close_code
            self.rec["close_reason"] = c.close_reason
            self.rec["kick"] = c.kick_reason
            self.rec["hb_timeout"] = c.heartbeat_timed_out
            self.rec["violations"] = list(c.violations)
        return self.rec


class _Worker:
    def __init__(self, wid, gate, request_timeout, seed):
        self.wid = wid
        self.gate = tuple(gate)
        self.request_timeout = request_timeout
        self.rng = random.Random(seed * 1000 + wid)
        self.sessions = []
        self.by_name = {}
        self.next_k = {}
        self.stopping = False
        self.send_tasks = []
        self.lags = []
        self.watchers = []
        self.route_counts = {}
        self.last_push = [None]

    # -- login --

    async def _login_one(self, name, rid, sem):
        index = len([s for s in self.sessions if s.rec["name"] == name])
        s = _Session(name, rid, index, self.wid)
        self.sessions.append(s)
        self.by_name[name] = s
        rec = s.rec
        async with sem:
            rec["enter_t0"] = time.monotonic()
            state = pomelo.BrowserState()
            try:
                entry = await pomelo.query_entry(*self.gate, name, state, LOGIN_TIMEOUT)
            except Exception as e:  # noqa: BLE001 - recorded, judged by check()
                rec["entry"] = {"_error": repr(e)}
                return
            rec["entry"] = entry
            if not isinstance(entry, dict) or entry.get("code") != 200:
                return
            try:
                c = await RecordingClient.connect(entry["host"], entry["port"], state=state,
                                                  timeout=LOGIN_TIMEOUT)
            except Exception as e:  # noqa: BLE001
                rec["enter"] = {"_error": f"connect: {e!r}"}
                return
            c.log, c.counts, c.last = rec["pushes"], self.route_counts, self.last_push
            s.client = c
            rec["connector"] = f"{entry['host']}:{entry['port']}"
            self.watchers.append(asyncio.ensure_future(self._watch(s)))
            try:
                rec["enter"] = await c.request(ENTER_ROUTE, {"username": name, "rid": rid},
                                               timeout=LOGIN_TIMEOUT)
            except Exception as e:  # noqa: BLE001
                rec["enter"] = {"_error": repr(e)}
            rec["entered_at"] = time.monotonic()

    async def _watch(self, s):
        await s.client.closed.wait()
        s.rec["closed_at"] = time.monotonic()

    async def login(self, clients, concurrency=16):
        sem = asyncio.Semaphore(concurrency)
        await asyncio.gather(*(self._login_one(n, r, sem) for n, r in clients))
        return [{"name": s.rec["name"], "rid": s.rec["rid"], "session": s.rec["session"],
                 "connector": s.rec["connector"], "enter": s.rec["enter"]}
                for s in self.sessions[-len(clients):]] if clients else []

    # -- sending --

    async def _send_loop(self, s, interval, count, end):
        c, rec = s.client, s.rec
        name = rec["name"]
        sent = 0
        next_at = time.monotonic() + self.rng.uniform(0, interval[1])
        while not self.stopping and (count is None or sent < count):
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.stopping or (end is not None and time.monotonic() >= end) or c.is_closed:
                break
            k = self.next_k.get(name, 0)
            self.next_k[name] = k + 1
            entry = [k, time.monotonic(), None, None]
            rec["sends"].append(entry)
            s.outstanding += 1
            try:
                entry[3] = await c.request(SEND_ROUTE, {"rid": rec["rid"],
                                                        "content": content_of(name, k),
                                                        "from": name, "target": "*"},
                                           timeout=self.request_timeout)
            except pomelo.RequestTimeout:
                entry[3] = {"_timeout": self.request_timeout}
            except pomelo.ConnectionLost as e:
                entry[3] = {"_lost": str(e)}
            except Exception as e:  # noqa: BLE001 - recorded, judged by check()
                entry[3] = {"_lost": repr(e)}
            entry[2] = time.monotonic()
            s.outstanding -= 1
            sent += 1
            next_at = entry[1] + self.rng.uniform(*interval)
            if isinstance(entry[3], dict) and "_lost" in entry[3]:
                break

    def start(self, interval, count, duration, names=None):
        self.stopping = False
        end = time.monotonic() + duration if duration else None
        for s in self.sessions:
            if s.client is None or s.client.is_closed or not entered(s.rec):
                continue
            if names is not None and s.rec["name"] not in names:
                continue
            if s is not self.by_name.get(s.rec["name"]):
                continue  # an older session of a name that logged in again
            self.send_tasks.append(asyncio.ensure_future(
                self._send_loop(s, tuple(interval), count, end)))

    async def wait_sent(self):
        await asyncio.gather(*self.send_tasks, return_exceptions=True)
        self.send_tasks = [t for t in self.send_tasks if not t.done()]

    async def stop(self):
        self.stopping = True
        await self.wait_sent()

    # -- observation --

    async def lag_probe(self):
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(LAG_TICK)
            self.lags.append(loop.time() - t - LAG_TICK)

    def lag_stats(self):
        lags = sorted(self.lags) or [0.0]
        return {"samples": len(self.lags), "max": lags[-1],
                "p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
                "mean": statistics.fmean(lags)}

    def stats(self):
        routes = dict(self.route_counts)
        last = self.last_push[0]
        sends = [e for s in self.sessions for e in s.rec["sends"]]
        return {"sessions": len(self.sessions),
                "closed": sum(1 for s in self.sessions if s.rec["closed_at"] is not None),
                "pushes": sum(routes.values()), "routes": routes, "last_push": last,
                "sent": len(sends), "acked": sum(1 for e in sends if e[3] == {}),
                "outstanding": sum(s.outstanding for s in self.sessions),
                "sending": sum(1 for t in self.send_tasks if not t.done()),
                "lag": self.lag_stats()}

    def records(self):
        return [s.finalize() for s in self.sessions]

    async def close(self):
        self.stopping = True
        now = time.monotonic()
        for s in self.sessions:
            s.rec["closed_by_driver"] = s.rec["closed_at"] is None
            s.rec["driver_close_at"] = now
        await asyncio.gather(*(s.client.close() for s in self.sessions if s.client),
                             return_exceptions=True)
        for t in self.watchers:
            t.cancel()


async def _worker_main(args, out):
    w = _Worker(args["wid"], args["gate"], args["request_timeout"], args["seed"])
    loop = asyncio.get_running_loop()
    commands = asyncio.Queue()

    def read_stdin():
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line)
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    probe = asyncio.ensure_future(w.lag_probe())

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    while True:
        line = await commands.get()
        if line is None:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "login":
                reply({"ok": await w.login([tuple(x) for x in cmd["clients"]],
                                           cmd.get("concurrency", 16))})
            elif op == "start":
                w.start(cmd["interval"], cmd.get("count"), cmd.get("duration"),
                        set(cmd["names"]) if cmd.get("names") is not None else None)
                reply({"ok": time.monotonic()})
            elif op == "wait_sent":
                await w.wait_sent()
                reply({"ok": True})
            elif op == "stop":
                await w.stop()
                reply({"ok": True})
            elif op == "stats":
                reply({"ok": w.stats()})
            elif op == "records":
                reply({"ok": w.records()})
            elif op == "close":
                await w.close()
                reply({"ok": w.records()})
                break
            else:
                reply({"error": f"unknown op {op!r}"})
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
            reply({"error": f"{op}: {e!r}"})
    probe.cancel()


def worker_main(argv):
    """Entry point of a worker process: argv[0] is its JSON arguments; commands come as JSON
    lines on stdin, one JSON answer line per command on stdout."""
    args = json.loads(argv[0])
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # nothing but answers on the answer channel
    asyncio.run(_worker_main(args, out))


# ======================================================================================
# The test's side
# ======================================================================================

class DriverError(AssertionError):
    """A worker process failed or did not answer in time."""


class _Proc:
    def __init__(self, wid, args, log_path):
        self.wid = wid
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-B", str(Path(__file__).resolve()), "worker", json.dumps(args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            bufsize=1)
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.answers.put(line)
        self.answers.put(None)

    def send(self, cmd):
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise DriverError(f"load worker {self.wid} is gone ({e!r}):\n{self.log_tail()}")

    def answer(self, op, timeout):
        try:
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise DriverError(f"load worker {self.wid}: no answer to {op!r} within "
                              f"{timeout:.0f}s:\n{self.log_tail()}") from None
        if line is None:
            raise DriverError(f"load worker {self.wid} exited (status {self.proc.poll()}) "
                              f"during {op!r}:\n{self.log_tail()}")
        msg = json.loads(line)
        if "error" in msg:
            raise DriverError(f"load worker {self.wid}: {msg['error']}\n{self.log_tail()}")
        return msg["ok"]

    def log_tail(self, n=40):
        self.log.flush()
        try:
            return "\n".join(Path(self.log_path).read_text().splitlines()[-n:])
        except OSError:
            return ""

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class ChatLoad:
    """Clients spread over `processes` worker processes, driven from the test's thread.

        load = ChatLoad(gate=(host, port), workdir=tmp_path, processes=2)
        load.login(room_plan(20, 10))            # queryEntry + enter, in parallel
        load.start(duration=20)                  # steady sends, in the background
        ...                                      # start, stop, kill servers meanwhile
        load.wait_sent(); load.settle()
        records = load.close()                   # closes the clients, returns the records
        problems = check(records)

    Every call has a deadline; a worker that dies or hangs raises DriverError."""

    def __init__(self, gate, workdir, processes=2, request_timeout=REQUEST_TIMEOUT, seed=1):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.request_timeout = request_timeout
        self.procs = [_Proc(i, {"wid": i, "gate": list(gate), "seed": seed,
                                "request_timeout": request_timeout},
                            self.workdir / f"load-worker-{i}.log") for i in range(processes)]
        self.owner = {}  # name -> worker index
        self._records = None

    def _all(self, cmd, timeout):
        for p in self.procs:
            p.send(cmd)
        return [p.answer(cmd["op"], timeout) for p in self.procs]

    def login(self, clients, concurrency=16, timeout=120.0):
        """Logs (name, rid) clients in through the gate; a name logged in before goes to the
        same worker (its message counter goes on). Returns [{name, rid, session,
        connector, enter}] of these logins."""
        per = [[] for _ in self.procs]
        for name, rid in clients:
            if name not in self.owner:
                self.owner[name] = len(self.owner) % len(self.procs)
            per[self.owner[name]].append([name, rid])
        for p, mine in zip(self.procs, per):
            p.send({"op": "login", "clients": mine, "concurrency": concurrency})
        out = []
        for p in self.procs:
            out += p.answer("login", timeout)
        return out

    def start(self, interval=DEFAULT_INTERVAL, duration=None, count=None, names=None):
        """Every logged-in client (or those in names) sends a message every
        uniform(*interval) seconds after its previous one was sent (waiting for each answer
        first), until count messages, duration seconds, or stop(). Returns at once with
        the start time."""
        cmd = {"op": "start", "interval": list(interval), "duration": duration, "count": count,
               "names": sorted(names) if names is not None else None}
        return min(self._all(cmd, 30.0))

    def wait_sent(self, timeout=120.0):
        """Waits until the send loops end by themselves (count or duration reached)."""
        self._all({"op": "wait_sent"}, timeout)

    def stop(self, timeout=None):
        """Stops sending; waits for the answers still due."""
        self._all({"op": "stop"}, timeout or self.request_timeout + 30.0)

    def stats(self):
        """Counters summed over the workers, plus each worker's event loop lag."""
        per = self._all({"op": "stats"}, 30.0)
        out = {"pushes": 0, "sent": 0, "acked": 0, "outstanding": 0, "sending": 0,
               "sessions": 0, "closed": 0, "routes": {}, "last_push": None,
               "lag": [s["lag"] for s in per]}
        for s in per:
            for k in ("pushes", "sent", "acked", "outstanding", "sending", "sessions", "closed"):
                out[k] += s[k]
            for r, n in s["routes"].items():
                out["routes"][r] = out["routes"].get(r, 0) + n
            if s["last_push"] is not None:
                out["last_push"] = max(out["last_push"] or 0, s["last_push"])
        return out

    def settle(self, quiet=1.5, timeout=20.0):
        """Waits until no answer is due and no push arrived for `quiet` seconds. Returns
        the seconds waited, or None if that did not happen within timeout."""
        t0 = time.monotonic()
        last, changed = None, t0
        while True:
            st = self.stats()
            now = time.monotonic()
            if st["pushes"] != last:
                last, changed = st["pushes"], now
            if st["outstanding"] == 0 and now - changed >= quiet:
                return now - t0
            if now - t0 > timeout:
                return None
            time.sleep(0.2)

    def wait_for(self, predicate, timeout, what):
        """Polls stats() until predicate(stats) holds; raises DriverError naming what."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if predicate(st):
                return st
            if time.monotonic() > deadline:
                counters = {k: st[k] for k in ("sessions", "closed", "sent", "acked",
                                               "outstanding", "routes")}
                raise DriverError(f"timed out after {timeout}s waiting for {what} "
                                  f"(driver counters: {counters})")
            time.sleep(0.2)

    def records(self):
        """Every session's record so far (see the module docstring)."""
        out = []
        for r in self._all({"op": "records"}, 60.0):
            out += r
        return out

    def close(self):
        """Closes every client and the workers; returns the final records."""
        if self._records is not None:
            return self._records
        out = []
        try:
            for r in self._all({"op": "close"}, 60.0):
                out += r
        finally:
            for p in self.procs:
                try:
                    p.proc.stdin.close()
                except OSError:
                    pass
                try:
                    p.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
                p.kill()
        self._records = out
        return out

    def kill(self):
        """Kills the workers (cleanup after a failure)."""
        for p in self.procs:
            p.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._records is None:
            try:
                if exc[0] is None:
                    self.close()
            finally:
                self.kill()


def lag_report(stats):
    """One line on the workers' event loop lag, from ChatLoad.stats()."""
    return "; ".join(f"worker {i}: max {lag['max'] * 1000:.0f} ms, p99 {lag['p99'] * 1000:.0f} ms"
                     f", mean {lag['mean'] * 1000:.1f} ms" for i, lag in enumerate(stats["lag"]))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
    else:
        sys.exit("usage: chatload.py worker '<json arguments>' (started by ChatLoad)")
