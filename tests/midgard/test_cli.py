"""The `midgard` command as a user runs it: a real process on this machine (which has no GPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from midgard.settings import AgentSettings, SettingsError, build, reference_rows

MIDGARD = [sys.executable, "-m", "midgard"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MIDGARD, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})  # fmt: skip


def test_once_on_this_machine_reports_zero_gpus_and_the_reason():
    done = run("--once", "--node-name", "cpu-node")
    assert done.returncode == 0, done.stderr
    rep = json.loads(done.stdout)
    assert rep["node"] == "cpu-node" and rep["gpus"] == []
    assert rep["nvml"] == {"available": False, "reason": rep["nvml"]["reason"], "error": None, "driverVersion": None,
                           "nvmlVersion": None, "cudaDriverVersion": None}  # fmt: skip
    assert "libnvidia-ml.so.1 not found" in rep["nvml"]["reason"]
    assert "0 GPUs: no NVIDIA driver" in done.stderr
    assert rep["system"]["memory"]["total"] > 0 and rep["system"]["cpu"]["count"] >= 1


def test_the_agent_serves_and_stops_on_sigterm():
    env = {**os.environ, "MIDGARD_PORT": "0", "MIDGARD_LISTEN_HOST": "127.0.0.1", "MIDGARD_INTERVAL_S": "0.2"}
    proc = subprocess.Popen(MIDGARD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # "midgard listening on HOST:PORT"
        assert line.startswith("midgard listening on"), proc.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/gpus", timeout=10) as r:
            assert json.loads(r.read())["gpus"] == []  # the line comes after the first reading
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_in_use_is_one_clear_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = run("--listen-host", "127.0.0.1", "--port", str(port))
    assert done.returncode == 2 and done.stderr.startswith("midgard: cannot listen on 127.0.0.1:")
    assert "Traceback" not in done.stderr


def test_settings_come_from_defaults_then_environment_then_flags():
    env = {"MIDGARD_INTERVAL_S": "2.5", "MIDGARD_POD_NAMESPACES": "odin, odin-gpu", "MIDGARD_PORT": "4000"}
    settings, _ = build(["--port", "5000"], env)
    assert (settings.interval_s, settings.port, settings.pod_namespaces) == (2.5, 5000, ("odin", "odin-gpu"))
    assert settings.gateway_url == "" and settings.proc_root == "/proc"
    done = run("--settings", env={"MIDGARD_GATEWAY_URL": "http://gw:9003"})
    assert json.loads(done.stdout)["gateway_url"] == "http://gw:9003"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        pytest.param(
            ["--interval-s", "soon"],
            {},
            "--interval-s / MIDGARD_INTERVAL_S = 'soon': expected float",
            id="not-a-number",
        ),
        pytest.param([], {"MIDGARD_INTERVAL_S": "0"}, "interval_s must be > 0", id="zero-interval"),
        pytest.param(["--port", "70000"], {}, "port must be 0..65535", id="port"),
        pytest.param([], {"MIDGARD_LOG_LEVEL": "loud"}, "log_level", id="log-level"),
    ],
)
def test_bad_settings_are_refused_with_what_to_fix(argv, env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        build(argv, env)


def test_the_node_token_is_never_a_flag(tmp_path):
    assert run("--token", "secret").returncode == 2
    token = tmp_path / "token"
    token.write_text("from-file\n")
    assert AgentSettings(token_file=str(token)).token() == "from-file"
    assert AgentSettings().token({"MIDGARD_TOKEN": " from-env "}) == "from-env"
    assert "from-file" not in json.dumps(AgentSettings(token_file=str(token)).public())


def test_in_cluster_api_address_and_the_reference():
    s = AgentSettings()
    assert s.kube_url({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}) == (
        "https://10.96.0.1:443"
    )
    assert s.kube_url({"KUBERNETES_SERVICE_HOST": "fd00::1"}) == "https://[fd00::1]:443"
    assert s.kube_url({}) == ""
    envs = [row[0] for row in reference_rows()]
    assert "MIDGARD_TOKEN" in envs and "MIDGARD_INTERVAL_S" in envs and len(envs) == len(set(envs))
