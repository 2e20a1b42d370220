"""A request whose answer cannot come in time ends with the timeout error at its
deadline, exactly once: the chat server behind it is stopped with SIGSTOP (and resumed
with SIGCONT, after which requests succeed again)."""
import os
import signal

from conftest import probe_args, run


def test_request_deadline_with_a_stopped_chat_server(tern):
    cluster = tern.cluster(connectors=1, chats=1)
    chat = cluster.server("chat-server-1")
    try:
        code, out = run(probe_args(cluster, "deadline", "--stop-pid", chat.proc.pid,
                                   "--deadline-ms", 500, "--timeout", 40), timeout=90)
    finally:
        # Whatever happened, the chat server must run again to stop cleanly.
        os.kill(chat.proc.pid, signal.SIGCONT)
    assert code == 0, out
    assert "deadline err=timed out" in out or "ok deadline_ms=500" in out, out
    assert "calls=1" in out, out
