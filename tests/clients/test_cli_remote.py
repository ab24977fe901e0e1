"""``odin --server URL …``: the CLI drives a remote core exactly as it drives the embedded engine."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from odin_core.api import Odin
from odin_core.model import RunStatus
from odin_core.service import Service

pytestmark = pytest.mark.timeout(90)


async def odin_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m odin_client ARGS`` as a subprocess (the server keeps running on this loop meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "odin_client",
        *args,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_watch_streams_a_remote_run(server: Service, odin: Odin, tmp_path: Path) -> None:
    # the job is named relative to the server's root: it does not exist in the CLI's directory
    code, out, err = await odin_cli("--server", server.url, "run", "pair", "--run-id", "pair-cli", cwd=tmp_path)
    assert code == 0, out + err
    assert re.search(r"^\d\d:\d\d:\d\d task first RUNNING \(attempt 1\)$", out, re.M), out
    assert re.search(r"^\d\d:\d\d:\d\d task second SUCCEEDED \(attempt 1\)$", out, re.M), out
    assert re.search(r"^run pair-cli DONE in \d+\.\ds$", out, re.M), out
    assert (await odin.run("pair-cli")).run.status is RunStatus.DONE  # the server ran it, not the CLI

    code, out, _ = await odin_cli("--server", server.url, "status", "pair-cli", "-o", "json", cwd=tmp_path)
    assert code == 0 and json.loads(out)[0]["run"]["run_id"] == "pair-cli"
    code, out, _ = await odin_cli("--server", server.url, "logs", "pair-cli--first", cwd=tmp_path)
    assert (code, out) == (0, "one\ntwo\n")
    code, out, _ = await odin_cli("--server", server.url, "logs", "pair-cli", cwd=tmp_path)
    assert code == 0 and "first  | one" in out and "second | second here" in out
    code, out, _ = await odin_cli("--server", server.url, "data", "pair-cli", "-o", "json", cwd=tmp_path)
    assert code == 0 and json.loads(out)["status"] == "DONE"
    code, out, _ = await odin_cli("--server", server.url, "events", "pair-cli", "-o", "json", cwd=tmp_path)
    assert code == 0 and json.loads(out)[-1]["status"] == "DONE"
    code, out, _ = await odin_cli("--server", server.url, "cleanup", "pair-cli", "--db", "-o", "json", cwd=tmp_path)
    assert code == 0 and all(r["purged_from_db"] for r in json.loads(out))
    assert await odin.store.get_run("pair-cli") is None


async def test_run_json_and_exit_codes(server: Service, tmp_path: Path) -> None:
    env = {"ODIN_SERVER": server.url}  # the option's environment variable
    code, out, err = await odin_cli("run", "hello", "--no-watch", "-o", "json", cwd=tmp_path, env=env)
    assert code == 0, err
    assert json.loads(out)["status"] == "DONE"
    code, out, err = await odin_cli("run", "sad", cwd=tmp_path, env=env)
    assert code == 1 and re.search(r"^run sad-\w+ TERMINATED", out, re.M), out + err
    code, out, err = await odin_cli("run", "team/bad", cwd=tmp_path, env=env)
    assert code == 2 and "pipeline is invalid" in err and "main.yml:" in err, err
    code, _, err = await odin_cli("run", "no/such/job", cwd=tmp_path, env=env)
    assert code == 1 and "no job" in err, err
    code, _, err = await odin_cli("status", "-o", "json", cwd=tmp_path, env={"ODIN_SERVER": "ws://127.0.0.1:9"})
    assert code == 1 and "cannot connect" in err and "Traceback" not in err, err


async def test_interrupt_leaves_a_remote_run_running_and_stop_ends_it(
    server: Service, odin: Odin, tmp_path: Path
) -> None:
    args = ("--server", server.url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "odin_client", *args, "run", "slow", "--run-id", "slow-cli", cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    shown = b""
    while b"task wait RUNNING" not in shown:  # the CLI is following the run: its Ctrl-C handler is in place
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the CLI ended before the task ran"
        shown += line
    proc.send_signal(signal.SIGINT)  # Ctrl-C without a terminal: the CLI stops following; the run goes on
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, (shown + stdout).decode() + stderr.decode()
    assert "left run slow-cli running on the server" in stdout.decode()
    assert (await odin.run("slow-cli")).run.status is RunStatus.RUNNING
    code, out, err = await odin_cli(*args, "stop", "slow-cli", cwd=tmp_path)
    assert code == 0 and "run slow-cli TERMINATED" in out, out + err

    run = await odin.submit(Path(odin.engine.root_path) / "slow", run_id="slow-stop")
    await _until(lambda: _task_running(odin, run.run_id))
    code, out, err = await odin_cli(*args, "stop", run.run_id, cwd=tmp_path)
    assert code == 0, out + err
    assert "stop requested for run slow-stop" in out and "TERMINATED" in out
    code, out, _ = await odin_cli(*args, "stop", run.run_id, cwd=tmp_path)
    assert code == 0 and "has already ended TERMINATED" in out


async def _task_running(odin: Odin, run_id: str) -> bool:
    try:
        view = await odin.run(run_id)
    except Exception:
        return False
    return any(t.status.value == "RUNNING" for t in view.tasks)


async def _until(check, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_token_from_the_environment(make_server, tmp_path: Path) -> None:
    server = await make_server(token="cli-secret")
    code, _, err = await odin_cli("--server", server.url, "status", cwd=tmp_path, env={"ODIN_TOKEN": "cli-secret"})
    assert code == 0, err
    code, _, err = await odin_cli("--server", server.url, "status", cwd=tmp_path, env={"ODIN_TOKEN": "wrong"})
    assert code == 1 and "wrong" not in err, err
    assert err == f"error: the Odin server at {server.url} refused the token (HTTP 401); check --token / ODIN_TOKEN\n"
    code, _, err = await odin_cli("--server", server.url, "status", cwd=tmp_path)
    assert code == 1, err
    assert err == f"error: the Odin server at {server.url} needs a token: pass --token TOKEN or set ODIN_TOKEN\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_against_odin_core_serve(root: Path, tmp_path: Path) -> None:
    """The real server process (`python -m odin_core serve`), and the CLI as a user runs it."""
    port = _free_port()
    env = {**os.environ, "ODIN_HOME": str(tmp_path / "server-home"), "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "odin_core", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*cmd, "--root-path", str(root)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "odin-core serve did not start listening"
            time.sleep(0.05)
        url = f"ws://127.0.0.1:{port}"
        cli = [sys.executable, "-m", "odin_client", "--server", url]
        env_cli = {**os.environ, "NO_COLOR": "1", "ODIN_HOME": str(tmp_path / "cli-home")}
        result = subprocess.run([*cli, "run", "chain"], cwd=tmp_path, env=env_cli, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"^run chain-\w+ DONE in", result.stdout, re.M), result.stdout
        status = subprocess.run([*cli, "status", "-o", "json"], env=env_cli, capture_output=True, text=True)
        assert status.returncode == 0, status.stderr
        assert [r["run"]["status"] for r in json.loads(status.stdout)] == ["DONE"]
        assert not (tmp_path / "cli-home").exists()  # nothing ran in the CLI's embedded engine
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
