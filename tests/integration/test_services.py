"""Issue "foundation" acceptance: every service binary starts from a servers.json entry or
from environment variables alone, prints exactly one `ready` log line once listening,
serves /healthz, /readyz and /metrics on its admin port, exits 0 on SIGTERM and on SIGINT
without a sanitizer report, and refuses a bad configuration with exit status 2 and one
message naming the problem."""
import json
import signal
import socket

import pytest

import harness

TYPES = ("registry", "chat", "connector", "gate")


def require_built(stype):
    missing = harness.missing_binaries([stype])
    if missing:
        pytest.fail(f"not built: {missing[0]} (set TERN_BIN)", pytrace=False)
    return str(harness.binary(stype))


def single(stype):
    """A topology with one server of stype (plus the registry the others report to)."""
    return harness.Topology(registry=True, chats=int(stype == "chat"),
                            connectors=int(stype == "connector"), gate=stype == "gate")


def assert_listening(host, port, what):
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as e:
        pytest.fail(f"{what} {host}:{port} does not accept connections after ready: {e}")


def assert_log_format(server, sid):
    """Every stderr line is a log line of this server; exactly one is `ready`."""
    lines = server.output().splitlines()
    for line in lines:
        rec = harness.parse_log_line(line)
        assert rec is not None, f"not a log line: {line!r}\n{server.output()}"
        assert rec["id"] == sid, f"log line with server id {rec['id']!r}: {line!r}"
    ready = harness.ready_lines(server)
    assert len(ready) == 1, f"expected one ready line, got {len(ready)}:\n{server.output()}"
    return harness.parse_log_line(ready[0])


def assert_admin_port(host, port, sid):
    status, body = harness.http_get(host, port, "/healthz")
    assert status == 200, f"{sid} /healthz: {status} {body!r}"
    status, body = harness.http_get(host, port, "/readyz")
    assert status == 200, f"{sid} /readyz after ready: {status} {body!r}"
    status, body = harness.http_get(host, port, "/metrics")
    assert status == 200, f"{sid} /metrics: {status}"
    samples = harness.parse_metrics(body)
    rss = harness.sample(samples, "process_resident_memory_bytes")
    assert rss is not None and rss > 0, f"{sid}: no process_resident_memory_bytes:\n{body}"


def check_listening_ports(entry, stype):
    host = entry["host"]
    if stype in harness.FRONTEND_TYPES:
        assert_listening(entry.get("clientHost", host), entry["clientPort"], "client port")
    if stype != "gate":
        assert_listening(host, entry["port"], "internal port")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("stype", TYPES)
def test_starts_serves_admin_and_stops(tern, stype, sig):
    require_built(stype)
    topo = single(stype)
    cluster = tern.cluster(topo)
    sid = f"{stype}-server-1"
    entry = topo.entry(sid)
    server = cluster.server(sid)

    rec = assert_log_format(server, sid)
    assert rec["module"] == "main" and rec["level"] == "INFO", rec
    assert harness.log_fields(rec["message"]).get("type") == stype, rec
    check_listening_ports(entry, stype)
    assert_admin_port(entry["host"], entry["adminPort"], sid)

    code = cluster.stop_server(sid, sig)
    assert code == 0, f"{sid} exited {code} on {sig.name}:\n{server.output()}"
    assert_log_format(server, sid)  # still one ready line, nothing but log lines
    assert harness.sanitizer_report(server.output()) is None, server.output()


def test_whole_cluster_starts_and_stops(tern):
    for stype in TYPES:
        require_built(stype)
    topo = harness.Topology(connectors=2, chats=2)
    cluster = tern.cluster(topo)
    for entry in topo.all():
        sid = entry["id"]
        stype = topo.type_of(sid)
        assert_log_format(cluster.server(sid), sid)
        check_listening_ports(entry, stype)
        assert cluster.admin_get(sid, "/readyz")[0] == 200, sid
    problems = cluster.stop()
    assert not problems, harness.describe_problems(problems)


def env_only_settings(stype, sid, registry):
    """TERN_* variables that configure a server completely, with no file."""
    env = {"TERN_CONFIG": "none", "TERN_ID": sid, "TERN_ENV": "test", "TERN_HOST": "127.0.0.1",
           "TERN_ADMIN_PORT": str(harness.free_port()), "TERN_REGISTRY": registry}
    if stype != "gate":
        env["TERN_PORT"] = str(harness.free_port())
    if stype in harness.FRONTEND_TYPES:
        env["TERN_CLIENT_HOST"] = "127.0.0.1"
        env["TERN_CLIENT_PORT"] = str(harness.free_port())
    if stype == "gate":
        env["TERN_WEB_ROOT"] = ""
    return env


@pytest.mark.parametrize("stype", TYPES)
def test_environment_only(tern, stype):
    binary = require_built(stype)
    require_built("registry")
    cluster = tern.cluster(harness.Topology(registry=False, chats=0, connectors=0, gate=False),
                           start=False)
    reg_port = harness.free_port()
    reg_env = env_only_settings("registry", "env-registry", f"127.0.0.1:{reg_port}")
    reg_env["TERN_PORT"] = str(reg_port)
    if stype == "registry":
        sid, env = "env-registry", reg_env
    else:
        cluster.spawn("env-registry", argv=[str(harness.binary("registry"))], env=reg_env)
        sid = f"env-{stype}"
        env = env_only_settings(stype, sid, reg_env["TERN_REGISTRY"])
    server = cluster.spawn(sid, argv=[binary], env=env)

    rec = assert_log_format(server, sid)
    assert harness.log_fields(rec["message"]).get("type") == stype, rec
    entry = {"host": "127.0.0.1", "port": int(env.get("TERN_PORT", 0)),
             "clientPort": int(env.get("TERN_CLIENT_PORT", 0))}
    check_listening_ports(entry, stype)
    assert_admin_port("127.0.0.1", int(env["TERN_ADMIN_PORT"]), sid)
    code = cluster.stop_server(sid, signal.SIGTERM)
    assert code == 0, server.output()


# ---- bad configurations ----

def bad_case(stype, case, tmp_path):
    """Builds one bad configuration: returns (argv, env, words the message must contain)."""
    binary = str(harness.binary(stype))
    topo = single(stype)
    sid = f"{stype}-server-1"
    entry = topo.entry(sid)
    path = tmp_path / "servers.json"
    env = {}
    needles = []
    argv_tail = []
    if case == "invalid_json":
        topo.write(path)
        path.write_text(path.read_text()[:-10] + ",,}")
        needles = [str(path), "json"]
    elif case == "unknown_id":
        sid = "nosuch-server-9"
        needles = [sid]
    elif case == "unknown_env":
        argv_tail = ["--env", "nosuch-env"]
        needles = ["nosuch-env"]
    elif case == "missing_config_file":
        path = tmp_path / "does-not-exist.json"
        needles = [str(path)]
    elif case == "missing_required":
        key = "clientPort" if stype in harness.FRONTEND_TYPES else "port"
        del entry[key]
        needles = [key]
    elif case == "port_out_of_range":
        key = "clientPort" if stype == "gate" else "port"
        entry[key] = 70000
        needles = [key, "70000"]
    elif case == "admin_port_out_of_range":
        entry["adminPort"] = 70000
        needles = ["adminPort", "70000"]
    elif case == "unknown_option":
        argv_tail = ["--no-such-option", "1"]
        needles = ["--no-such-option"]
    elif case == "bad_env_value":
        env = {"TERN_ADMIN_PORT": "twelve"}
        needles = ["TERN_ADMIN_PORT", "twelve"]
    else:
        raise ValueError(case)
    if not path.exists() and case != "missing_config_file":
        topo.write(path)
    argv = [binary, "--env", topo.env, "--id", sid, "--config", str(path)] + argv_tail
    return argv, env, needles


BAD_CASES = ("invalid_json", "unknown_id", "unknown_env", "missing_config_file",
             "missing_required", "port_out_of_range", "admin_port_out_of_range",
             "unknown_option", "bad_env_value")


@pytest.mark.parametrize("case", BAD_CASES)
@pytest.mark.parametrize("stype", TYPES)
def test_bad_configuration_is_refused(stype, case, tmp_path):
    require_built(stype)
    argv, env, needles = bad_case(stype, case, tmp_path)
    proc = harness.run_once(argv, env, timeout=30)
    report = f"argv={argv} env={env}\nstatus {proc.returncode}\nstderr:\n{proc.stderr}"
    assert harness.sanitizer_report(proc.stderr) is None, report
    assert proc.returncode == 2, report
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, "expected exactly one message on stderr\n" + report
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"message does not name {needle!r}\n" + report
    rec = harness.parse_log_line(lines[0])
    assert not (rec and rec["message"].startswith("ready")), report


@pytest.mark.parametrize("stype", TYPES)
def test_help(stype):
    binary = require_built(stype)
    proc = harness.run_once([binary, "--help"], timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "--id" in proc.stdout and "TERN_ID" in proc.stdout, proc.stdout
    assert "ready" not in proc.stderr
    proc = harness.run_once([binary, "--help-config"], timeout=30)
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len(table) > 3 and table[1].startswith("|---"), proc.stdout
    assert any("`TERN_ADMIN_PORT`" in line for line in table), proc.stdout


def test_topology_file_is_pomelo_format(tmp_path):
    """The harness's servers.json keeps pomelo's layout: {env: {type: [entries]}}."""
    topo = harness.Topology(connectors=2, chats=3, hosts=harness.loopback_hosts(2))
    doc = json.loads(topo.write(tmp_path / "s.json").read_text())
    env = doc["test"]
    assert [len(env[t]) for t in TYPES] == [1, 3, 2, 1]
    ports = [e[k] for e in topo.all() for k in ("port", "clientPort", "adminPort") if k in e]
    assert len(ports) == len(set(ports))
    assert {e["host"] for e in topo.all()} == {"127.0.0.1", "127.0.0.2"}
    assert all(e["frontend"] for t in ("gate", "connector") for e in env[t])
