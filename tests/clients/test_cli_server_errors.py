"""`odin --server` for everyday use, and the errors a user meets there, each one line with what to do next:
status/validate/show/resubmit/--detach against a real core, `odin-core serve` on a port in use or a missing root,
absolute job paths."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from odin_core.api import Odin
from odin_core.model import RunStatus
from odin_core.service import Service

pytestmark = pytest.mark.timeout(120)


async def odin_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "odin_client", *args, cwd=cwd, env={**clean, "NO_COLOR": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def serve(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    return subprocess.run(
        [sys.executable, "-m", "odin_core", "serve", "--home", str(tmp_path / "serve-home"), *args],
        env=clean, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_serve_on_a_port_in_use(root: Path, tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = serve("--port", str(port), "--root-path", str(root), tmp_path=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), done.stderr
    assert "address already in use" in done.stderr and "--port" in done.stderr


def test_serve_with_a_root_path_that_does_not_exist(tmp_path: Path) -> None:
    done = serve("--port", "0", "--root-path", str(tmp_path / "nowhere"), tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        f"error: --root-path '{tmp_path / 'nowhere'}' is not a directory: give the directory that holds the jobs\n"
    )


async def test_status_is_one_line_a_run_and_complete(server: Service, odin: Odin, tmp_path: Path) -> None:
    for run_id in ("hello-s1", "hello-s2"):
        await odin.wait((await odin.submit(Path(odin.engine.root_path) / "hello", run_id=run_id)).run_id)
    code, out, err = await odin_cli("--server", server.url, "status", cwd=tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "TASKS", "AGE", "DURATION", "MESSAGE"]
    assert [line.split()[:3] for line in lines[1:]] == [["hello-s2", "DONE", "1/1"], ["hello-s1", "DONE", "1/1"]]
    code, out, _ = await odin_cli("--server", server.url, "status", "--limit", "1", "-o", "json", cwd=tmp_path)
    [entry] = json.loads(out)
    assert entry["run"]["run_id"] == "hello-s2" and entry["tasks"][0]["status"] == "SUCCEEDED"
    code, out, _ = await odin_cli("--server", server.url, "status", "--tasks", "hello-s1", cwd=tmp_path)
    assert out.splitlines()[0] == "hello-s1 --> DONE" and out.splitlines()[3].split()[:2] == ["greet", "SUCCEEDED"]


async def test_validate_and_show_ask_the_server(server: Service, tmp_path: Path) -> None:
    # the jobs exist only under the server's root, not in the CLI's directory
    code, out, err = await odin_cli("--server", server.url, "validate", "hello", "team/bad", cwd=tmp_path)
    assert code == 1, out + err
    assert out == "hello: valid (1 task)\n"
    assert err.startswith("team/bad: invalid\nteam/bad/main.yml:3:") and "pipeline is invalid" in err, err
    code, out, _ = await odin_cli("--server", server.url, "validate", "hello", "-o", "json", cwd=tmp_path)
    assert json.loads(out) == [{"job": "hello", "valid": True, "tasks": 1, "problems": []}]
    code, out, err = await odin_cli("--server", server.url, "show", "pair", "-o", "json", cwd=tmp_path)
    assert code == 0, err
    spec = json.loads(out)
    assert (spec["name"], spec["job"]) == ("pair", "pair")
    assert [t["name"] for t in spec["tasks"]] == ["first", "second"]
    code, out, _ = await odin_cli("--server", server.url, "show", "pair", "--graph", cwd=tmp_path)
    assert out.startswith("pair: 2 task(s), 2 level(s)") and re.search(r"2  second +<- first", out), out
    code, _, err = await odin_cli("--server", server.url, "show", "no/such", cwd=tmp_path)
    assert code == 1 and err.startswith("error: no job 'no/such'") and len(err.splitlines()) == 1, err


async def test_an_absolute_job_path_inside_the_root_is_accepted(server: Service, root: Path, tmp_path: Path) -> None:
    code, out, err = await odin_cli("--server", server.url, "run", str(root / "hello"), "--no-watch", cwd=tmp_path)
    assert code == 0 and re.search(r"^run hello-\w+ DONE in ", out, re.M), out + err
    code, _, err = await odin_cli("--server", server.url, "run", str(tmp_path), cwd=tmp_path)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: job '{tmp_path}' is outside the pipelines root; name it relative to the root"), err


async def test_detach_and_resubmit_on_the_server(server: Service, odin: Odin, root: Path, tmp_path: Path) -> None:
    code, out, err = await odin_cli("--server", server.url, "run", "slow", "--run-id", "slow-bg", "-d", cwd=tmp_path)
    assert code == 0 and out == "slow-bg\n", out + err
    assert "running on the server" in err and f"odin --server {server.url} stop slow-bg" in err
    assert (await odin.run("slow-bg")).run.status is RunStatus.RUNNING  # it returned while the run goes on
    await odin.stop("slow-bg")
    assert (await odin.wait("slow-bg")).status is RunStatus.TERMINATED

    code, out, err = await odin_cli("--server", server.url, "run", "sad", "--run-id", "sad-re", cwd=tmp_path)
    assert code == 1, out + err
    code, out, err = await odin_cli("--server", server.url, "resubmit", "sad-re", cwd=tmp_path)
    assert code == 1, out + err  # it fails again (nothing was fixed), the same way
    assert "resubmitted run sad-re: reusing 0 succeeded task(s), running 2 again (boom, never)" in out
    assert re.search(r"^\d\d:\d\d:\d\d task boom FAILED \(attempt 2\)", out, re.M), out
    assert re.search(r"^run sad-re TERMINATED after [\d.]+s: task 'boom' failed", out, re.M), out
    code, out, _ = await odin_cli("--server", server.url, "resubmit", "sad-re", "--detach", "-o", "json", cwd=tmp_path)
    assert code == 0 and json.loads(out)["run_id"] == "sad-re"
    assert (await odin.wait("sad-re")).status is RunStatus.TERMINATED
