"""tern-chat-cli against the real servers: scripted (--send-file, --wait-messages,
exit statuses) and interactive in a tmux session (typing, the screen, /who, /quit)."""
import os
import shutil
import subprocess
import time

import pytest

from conftest import CLI, cli_args, harness, run, start

TIME = r"\[\d\d:\d\d:\d\d\]"


def test_scripted_send_and_wait(tern, procs, tmp_path):
    cluster = tern.cluster(connectors=2, chats=1)
    bob = start(procs, cli_args(cluster, "bob", "r1", "--wait-messages", 2, "--timeout", 30))
    bob.wait_line(r"\* joined room r1 as bob; users: bob$", 30)
    script = tmp_path / "lines.txt"
    # Bob leaves after the second message, so /who comes before it.
    script.write_text("hello bob\n\n/who\n/w bob a secret\n")
    code, out = run(cli_args(cluster, "alice", "r1", "--send-file", script, "--timeout", 30),
                    timeout=60)
    assert code == 0, out
    assert "users: bob, alice" in out, out
    assert "[private to bob] alice: a secret" in out, out
    assert "users in r1 (2): bob, alice" in out, out
    assert bob.wait(30) == 0, bob.output()
    bob.wait_line(rf"^{TIME} \* alice joined$", 1)
    bob.wait_line(rf"^{TIME} alice: hello bob$", 1)
    bob.wait_line(rf"^{TIME} \[private\] alice: a secret$", 1)
    bob.wait_line(r"\* done$", 1)


def test_quiet_prints_messages_only(tern, procs):
    cluster = tern.cluster(connectors=1, chats=1)
    carol = start(procs, cli_args(cluster, "carol", "r2", "--count", 1, "--timeout", 30,
                                  "--quiet"))
    # Quiet: no status line says carol is in the room; ask the room instead.
    def carol_in_room():
        code, out = run(cli_args(cluster, "dave", "r2", "--send-file", "-", "--timeout", 10),
                        timeout=30, stdin_text="/who\n")
        assert code == 0, out
        return "carol" in out

    harness.wait_until(carol_in_room, 30, what="carol in room r2")
    code, out = run(cli_args(cluster, "dave", "r2", "--timeout", 10), timeout=30,
                    stdin_text="hi carol\n")
    assert code == 0, out
    assert carol.wait(30) == 0, carol.output()
    assert carol.lines[-1].endswith("] dave: hi carol"), carol.output()
    assert not any(" * " in line for line in carol.lines), carol.output()


def test_exit_statuses(tern, procs):
    cluster = tern.cluster(connectors=1, chats=1)
    # The name is taken in that room: 2.
    bob = start(procs, cli_args(cluster, "bob", "r1", "--wait-messages", 1, "--timeout", 30))
    bob.wait_line(r"\* joined room r1", 30)
    code, out = run(cli_args(cluster, "bob", "r1", "--timeout", 10), timeout=30, stdin_text="")
    assert code == 2, out
    assert "the name bob is already taken in room r1" in out, out
    bob.kill()
    # Nothing arrives before the timeout: 3.
    code, out = run(cli_args(cluster, "erin", "r3", "--wait-messages", 1, "--timeout", 1),
                    timeout=30)
    assert code == 3, out
    assert "timeout after 1 s" in out, out
    # Nobody at the gate's address: 1.
    code, out = run([CLI, "--host", "127.0.0.1", "--port", 1, "--name", "x", "--room", "r"],
                    timeout=30, stdin_text="hi\n")
    assert code == 1, out
    assert "cannot connect" in out, out
    # Usage: 64.
    code, out = run([CLI, "--name", "no spaces allowed", "--room", "r"], timeout=10)
    assert code == 64, out
    code, out = run([CLI, "--room", "r"], timeout=10)
    assert code == 64 and "--name is required" in out, out
    code, out = run([CLI, "--help"], timeout=10)
    assert code == 0 and "--send-file" in out, out


# ---- interactive, in tmux ----

class Tmux:
    """A private tmux server (its own socket) running one window."""

    def __init__(self, name, command, width=120, height=30):
        self.sock = f"tern-cli-test-{os.getpid()}-{name}"
        self.target = "t"
        self._tmux("new-session", "-d", "-s", self.target, "-x", str(width), "-y", str(height),
                   command)

    def _tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              check=check, timeout=10)

    def keys(self, *keys):
        self._tmux("send-keys", "-t", self.target, *keys)

    def screen(self):
        r = self._tmux("capture-pane", "-p", "-t", self.target, check=False)
        return r.stdout if r.returncode == 0 else ""

    def alive(self):
        return self._tmux("has-session", "-t", self.target, check=False).returncode == 0

    def wait_screen(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; screen:\n{self.screen()}")

    def wait_text(self, needle, timeout=20):
        return self.wait_screen(lambda s: needle in s, timeout, repr(needle))

    def close(self):
        self._tmux("kill-server", check=False)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_interactive_in_tmux(tern, procs):
    cluster = tern.cluster(connectors=1, chats=1)
    host, port = cluster.gate_address()
    # The shell reports the exit status and keeps the window for the last screen.
    command = f"{CLI} --host {host} --port {port} --name carol --room r9; echo EXIT=$?; sleep 60"
    tmux = Tmux("interactive", command)
    try:
        tmux.wait_text("joined room r9 as carol; users: carol")
        tmux.wait_text("carol@r9>")  # capture-pane drops trailing spaces
        # What carol types is sent to the room, and comes back from the server.
        tmux.keys("hello from carol", "Enter")
        tmux.wait_text("carol: hello from carol")
        # A message arriving while she types does not swallow her half-typed line.
        tmux.keys("half typed")
        code, out = run(cli_args(cluster, "bob", "r9", "--timeout", 20), timeout=30,
                        stdin_text="hi carol\n")
        assert code == 0, out
        screen = tmux.wait_text("bob: hi carol")
        assert "* bob joined" in screen, screen
        tmux.wait_text("* bob left")
        screen = tmux.wait_screen(lambda s: s.rstrip().endswith("carol@r9> half typed"), 10,
                                  "the half-typed line below the messages")
        # Ctrl-U clears it; /who lists the room; unknown commands are explained.
        tmux.keys("C-u", "/who", "Enter")
        tmux.wait_text("users in r9 (1): carol")
        tmux.keys("/nope", "Enter")
        tmux.wait_text("unknown command /nope (try /help)")
        # A private message to herself arrives marked.
        tmux.keys("/w carol note to self", "Enter")
        tmux.wait_text("[private] carol: note to self")
        tmux.keys("/quit", "Enter")
        screen = tmux.wait_text("EXIT=", 15)
        assert "EXIT=0" in screen, screen
        assert "carol@r9> " not in screen, screen  # the terminal was restored
    finally:
        tmux.close()
