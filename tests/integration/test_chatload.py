"""The load driver's checker (tests/lib/chatload.py) on fabricated records: no servers.
Each case breaks one guarantee and the checker must report exactly that one."""
import chatload

OK = {}
BUSY = {"code": 503, "error": True, "message": "the chat server is unreachable"}


def problem_kinds(problems):
    return [p.split(":", 1)[0] for p in problems]


def chat(seq, t0=10.0):
    """onChat pushes of the messages in seq, 0.1 s apart from t0."""
    return [[t0 + 0.1 * i, "onChat", {"msg": m, "from": m.split("#")[0], "target": "*"}]
            for i, m in enumerate(seq)]


END = 50.0  # when the driver closed every client


def member(name, seq, sends=(), users=("a", "b", "c"), rid="r", session=0, entered_at=1.0,
           closed_at=None, extra_pushes=()):
    """One session's record as the driver leaves it: its sends [(k, answer)] 0.3 s apart
    from t=5, its onChat pushes of seq, extra (t, route, user) membership pushes, and,
    unless closed_at says the connection was lost before, closed by the driver at END."""
    pushes = chat(seq) + [[t, route, {"route": route, "user": u}] for t, route, u in extra_pushes]
    pushes.sort(key=lambda p: p[0])
    return {"name": name, "rid": rid, "session": session, "worker": 0,
            "connector": "127.0.0.9:1", "entry": {"code": 200}, "enter": {"users": list(users)},
            "enter_t0": 0.5, "entered_at": entered_at,
            "sends": [[k, 5.0 + 0.3 * k, 5.1 + 0.3 * k, ans] for k, ans in sends],
            "pushes": pushes, "closed_at": closed_at or END + 0.01, "close_code": 1000,
            "close_reason": None, "kick": None, "closed_by_driver": closed_at is None,
            "driver_close_at": END, "hb_timeout": False, "violations": []}


SEQ = ["a#0", "b#0", "c#0", "a#1", "b#1", "c#1", "a#2", "b#2", "c#2"]
SENDS = [(0, OK), (1, OK), (2, OK)]
# a entered first, then b, then c: a sees onAdd b and c, b sees onAdd c.
ADDS = {"a": [(0.8, "onAdd", "b"), (0.9, "onAdd", "c")], "b": [(0.9, "onAdd", "c")], "c": []}
USERS = {"a": ["a"], "b": ["a", "b"], "c": ["a", "b", "c"]}


def room(seqs=None, sends=None, **kw):
    seqs = seqs or {}
    sends = sends or {}
    return [member(n, seqs.get(n, SEQ), sends.get(n, SENDS), users=USERS[n],
                   extra_pushes=ADDS[n], **kw) for n in ("a", "b", "c")]


def test_checker_clean_run():
    records = room()
    # What arrives while the driver closes the clients is not judged.
    records[0]["pushes"].append([END + 0.02, "onLeave", {"user": "b"}])
    assert chatload.check(records, membership_frozen_after=4.0) == []
    s = chatload.summary(records)
    assert (s["sent"], s["acked"], s["deliveries"], s["onAdd"], s["disconnects"]) == \
        (9, 9, 27, 3, 0)


def test_checker_gap():
    problems = chatload.check(room({"c": [m for m in SEQ if m != "b#1"]}))
    assert problem_kinds(problems) == ["gap"], problems
    assert "c lacks 1 messages" in problems[0] and "b#1" in problems[0]


def test_checker_duplicate():
    problems = chatload.check(room({"b": SEQ[:4] + ["a#1"] + SEQ[4:]}))
    assert problem_kinds(problems) == ["duplicate"], problems
    assert "b received a#1 2 times" in problems[0]


def test_checker_reorder():
    # Every member sees a's messages 0 and 1 swapped: one order, but not a's.
    swapped = ["a#1", "b#0", "c#0", "a#0"] + SEQ[4:]
    problems = chatload.check(room({n: swapped for n in "abc"}))
    assert problem_kinds(problems) == ["reorder"], problems
    assert "a#1 arrived before a#0" in problems[0] and "a, b, c" in problems[0]


def test_checker_missing_acked_message():
    without = [m for m in SEQ if m != "c#2"]
    problems = chatload.check(room({n: without for n in "abc"}))
    assert problem_kinds(problems) == ["lost"], problems
    assert "c#2" in problems[0]


def test_checker_order_differs_between_members():
    other = ["b#0", "a#0"] + SEQ[2:]
    problems = chatload.check(room({"c": other}))
    assert problem_kinds(problems) == ["order differs"], problems
    assert "position 0" in problems[0]


def test_checker_failed_requests():
    # b#1 answered 503 and delivered nowhere; c#1 answered 503 but delivered to everyone
    # at one position: both are fine when errors are allowed (a crash), not otherwise.
    sends = {"b": [(0, OK), (1, BUSY), (2, OK)], "c": [(0, OK), (1, BUSY), (2, OK)]}
    seq = [m for m in SEQ if m != "b#1"]
    records = room({n: seq for n in "abc"}, sends)
    assert chatload.check(records, allow_errors=True) == []
    problems = chatload.check(records)
    assert problem_kinds(problems) == ["failed request"], problems
    assert "2 sends answered with code 503" in problems[0]
    assert chatload.summary(records)["errors"] == {"503": 2}


def test_checker_failed_message_seen_by_some_members_only():
    sends = {"c": [(0, OK), (1, BUSY), (2, OK)]}
    records = room({"a": [m for m in SEQ if m != "c#1"]}, sends)
    problems = chatload.check(records, allow_errors=True)
    assert problem_kinds(problems) == ["gap"], problems
    assert "a lacks 1 messages" in problems[0] and "c#1" in problems[0]


def test_checker_unanswered_and_unknown():
    sends = {"a": [(0, OK), (1, OK), (2, {"_timeout": 10.0})]}
    records = room({"b": SEQ + ["zed#1"]}, sends)
    problems = chatload.check(records)
    assert sorted(problem_kinds(problems)) == ["unanswered", "unknown message"], problems


def test_checker_disconnect_and_a_partial_member():
    # c's connection closed after 4 messages (it saw a prefix): a disconnect, unless
    # expected; either way its prefix is a contiguous run, and a and b lose nothing.
    records = room()
    records[2]["pushes"] = [p for p in records[2]["pushes"] if p[1] != "onChat"] + chat(SEQ[:4])
    records[2]["closed_at"] = 11.0
    records[2]["closed_by_driver"] = False
    records[2]["kick"] = "missed messages"
    for r in records[:2]:
        r["pushes"].append([12.0, "onLeave", {"route": "onLeave", "user": "c"}])
    problems = chatload.check(records)
    assert problem_kinds(problems) == ["disconnect"], problems
    assert "kicked: 'missed messages'" in problems[0]
    assert chatload.check(records, expected_closed=[("c", 0)]) == []
    # A partial member whose messages are not one run of the room's sequence: a gap.
    records[2]["pushes"] = chat(["a#0", "c#0"])
    problems = chatload.check(records, expected_closed=[("c", 0)])
    assert problem_kinds(problems) == ["gap"], problems
    assert "not one contiguous run" in problems[0]


def test_checker_membership_pushes():
    # A spurious onLeave + onAdd of b at a while nobody left, after the load started.
    records = room()
    records[0]["pushes"] += [[11.0, "onLeave", {"user": "b"}], [11.5, "onAdd", {"user": "b"}]]
    problems = chatload.check(records, membership_frozen_after=4.0)
    kinds = problem_kinds(problems)
    assert set(kinds) == {"onAdd/onLeave"}, problems
    text = "\n".join(problems)
    assert "got onLeave 'b' at" in text and "1 onLeave 'b' for 0 logouts" in text
    # A duplicate onAdd, and a missing one (b never hears of c).
    records = room()
    records[0]["pushes"].append([0.95, "onAdd", {"user": "c"}])
    records[1]["pushes"] = [p for p in records[1]["pushes"] if p[1] != "onAdd"]
    problems = chatload.check(records)
    text = "\n".join(problems)
    assert problem_kinds(problems) == ["onAdd/onLeave"] * 3, problems
    assert "duplicate onAdd 'c'" in text and "2 onAdd 'c' for 1 logins" in text
    assert "b ends up listing 2 users, the room holds 3: missing ['c']" in text


def test_checker_log_in_again():
    # c's connection died (expected), it logged in again: a and b saw one onLeave and one
    # onAdd; the new session joined late and saw the tail of the room's sequence.
    records = room({"c": SEQ[:3]})
    records[2]["closed_at"] = 10.5
    records[2]["closed_by_driver"] = False
    for r in records[:2]:
        r["pushes"] += [[10.6, "onLeave", {"user": "c"}], [10.7, "onAdd", {"user": "c"}]]
        r["pushes"].sort(key=lambda p: p[0])
    again = member("c", SEQ[6:], sends=[], session=1, entered_at=10.7)
    again["pushes"] = chat(SEQ[6:], t0=10.8)
    records.append(again)
    assert chatload.check(records, expected_closed=[("c", 0)]) == []
    # An onLeave too many is reported.
    records[0]["pushes"].append([10.65, "onLeave", {"user": "c"}])
    records[0]["pushes"].sort(key=lambda p: p[0])
    problems = chatload.check(records, expected_closed=[("c", 0)])
    assert "2 onLeave 'c' for 1 logouts" in "\n".join(problems), problems


def test_checker_content_and_plan():
    assert chatload.parse_content(chatload.content_of("u17", 42)) == ("u17", 42)
    assert chatload.parse_content("hello") is None
    plan = chatload.room_plan(3, 2)
    assert plan == [("u0", "room0"), ("u1", "room1"), ("u2", "room2"),
                    ("u3", "room0"), ("u4", "room1"), ("u5", "room2")]
