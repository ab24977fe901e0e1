"""What ending or interrupting an `odin run` does to its run, on a real terminal and with real signals.

A run on a server goes on whatever happens to the client that started it (Ctrl-C asks first; SIGTERM, SIGHUP, a
closed terminal and SIGKILL leave it running). An embedded `odin run` is its run's engine: Ctrl-C asks, and a
signal or a closed terminal ends the run cleanly rather than leaving it orphaned.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from odin_core.api import Odin
from odin_core.model import RunStatus, TaskStatus
from odin_core.service import Service
from terminal import CTRL_C, Terminal
from websockets.asyncio.client import connect

pytestmark = pytest.mark.timeout(120)
CLI = [sys.executable, "-m", "odin_client"]
GATED = f"""\
name: gated
tasks:
  - name: wait
    image: busybox
    command: {sys.executable}
    args: ["-c", "import os, time\\nwhile not os.path.exists('$ROOT_PATH/open-$PIPE_ID'): time.sleep(0.05)"]
"""


@pytest.fixture
def root(root: Path) -> Path:
    (root / "gated").mkdir()
    (root / "gated" / "main.yml").write_text(GATED)
    return root


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    return {**clean, "ODIN_HOME": str(tmp_path / "home")}  # embedded runs share the store of the `odin` fixture


async def task_running(odin: Odin, run_id: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            view = await odin.run(run_id)
            if view.tasks[0].status is TaskStatus.RUNNING:
                return
        except Exception:
            pass
        assert time.monotonic() < deadline, f"{run_id}: its task did not start"
        await asyncio.sleep(0.05)


async def ended(odin: Odin, run_id: str, timeout_s: float = 30) -> RunStatus:
    """The final status of a run this test process does not drive (read from the store)."""
    deadline = time.monotonic() + timeout_s
    while not (run := (await odin.run(run_id)).run).status.is_terminal:
        assert time.monotonic() < deadline, f"{run_id} is still {run.status}"
        await asyncio.sleep(0.05)
    return run.status


async def following(*args: str, env: dict[str, str], cwd: Path) -> tuple[asyncio.subprocess.Process, bytes]:
    """`odin ARGS` without a terminal, read until it shows the task RUNNING (its signal handlers are in place by
    then); the process and what it printed so far."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert proc.stdout is not None
    shown = b""
    while b"task wait RUNNING" not in shown:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, shown.decode()
        shown += line
    return proc, shown


# -- remote: the run lives on the server ---------------------------------------------------------------------------


async def test_ctrl_c_on_a_terminal_asks_and_enter_leaves_the_remote_run_running(
    server: Service, odin: Odin, root: Path, env, tmp_path
) -> None:
    term = Terminal([*CLI, "--server", server.url, "run", "gated", "--run-id", "gated-ask"], env=env, cwd=str(tmp_path))
    try:
        await asyncio.to_thread(term.expect, r"wait\s+RUNNING")
        term.type(CTRL_C)
        await asyncio.to_thread(term.expect, r"stop run gated-ask on the server\? \[y\]es / \[N\]o")
        term.type(b"\n")
        shown = await asyncio.to_thread(term.expect, r"stop it: +odin --server \S+ stop gated-ask")
        assert "left run gated-ask running on the server" in shown
        assert await asyncio.to_thread(term.wait) == 130
    finally:
        term.close()
    assert (await odin.run("gated-ask")).run.status is RunStatus.RUNNING
    (root / "open-gated-ask").write_text("")
    assert (await odin.wait("gated-ask")).status is RunStatus.DONE


async def test_ctrl_c_then_yes_stops_the_remote_run(server: Service, odin: Odin, env, tmp_path) -> None:
    term = Terminal([*CLI, "--server", server.url, "run", "gated", "--run-id", "gated-yes"], env=env, cwd=str(tmp_path))
    try:
        await asyncio.to_thread(term.expect, r"wait\s+RUNNING")
        term.type(CTRL_C)
        await asyncio.to_thread(term.expect, r"stop run gated-yes on the server\?")
        term.type(b"y\n")
        await asyncio.to_thread(term.expect, r"run gated-yes TERMINATED after [\d.]+s: interrupted by the user")
        assert await asyncio.to_thread(term.wait) == 130
    finally:
        term.close()
    assert (await odin.run("gated-yes")).tasks[0].status is TaskStatus.CANCELLED


async def test_closing_the_terminal_leaves_the_remote_run_running(
    server: Service, odin: Odin, root: Path, env, tmp_path
) -> None:
    term = Terminal([*CLI, "--server", server.url, "run", "gated", "--run-id", "gated-hup"], env=env, cwd=str(tmp_path))
    await asyncio.to_thread(term.expect, r"wait\s+RUNNING")
    term.close()
    await asyncio.to_thread(term.wait)
    assert (await odin.run("gated-hup")).run.status is RunStatus.RUNNING
    (root / "open-gated-hup").write_text("")
    assert (await odin.wait("gated-hup")).status is RunStatus.DONE


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
async def test_a_signal_to_the_client_leaves_the_remote_run_running(
    server: Service, odin: Odin, root: Path, env, tmp_path, sig
) -> None:
    run_id = f"gated-{sig.name.lower()}"
    proc, shown = await following("--server", server.url, "run", "gated", "--run-id", run_id, env=env, cwd=tmp_path)
    proc.send_signal(sig)
    rest, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == (-9 if sig is signal.SIGKILL else 130), (shown + rest).decode()
    if sig is not signal.SIGKILL:
        assert f"left run {run_id} running on the server" in rest.decode()
    assert (await odin.run(run_id)).run.status is RunStatus.RUNNING
    (root / f"open-{run_id}").write_text("")
    assert (await odin.wait(run_id)).status is RunStatus.DONE


async def test_a_client_gone_while_its_start_is_in_flight_leaves_a_whole_run(server: Service, odin: Odin) -> None:
    """The run is created, then the client disconnects before the server has started driving it."""
    created, go_on = asyncio.Event(), asyncio.Event()
    create_run = odin.store.create_run

    async def create_then_stall(*args, **kwargs):
        result = await create_run(*args, **kwargs)
        created.set()
        await go_on.wait()  # the START request is cancelled here when its connection goes
        return result

    odin.store.create_run = create_then_stall  # type: ignore[method-assign]
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"command": "START", "request": {"job": "hello", "run_id": "hello-gone"}, "id": 1}))
        await asyncio.wait_for(created.wait(), 30)
    deadline = time.monotonic() + 10
    while server._connections:  # the server has noticed and cancelled the connection's requests
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    go_on.set()
    assert await ended(odin, "hello-gone") is RunStatus.DONE


# -- embedded: this process is the run's engine ---------------------------------------------------------------------


async def test_embedded_ctrl_c_asks_no_keeps_going_and_a_second_ctrl_c_stops(odin: Odin, root: Path, env) -> None:
    term = Terminal([*CLI, "run", "gated", "--run-id", "gated-emb"], env=env, cwd=str(root))
    try:
        await asyncio.to_thread(term.expect, r"wait\s+RUNNING")
        term.type(CTRL_C)
        await asyncio.to_thread(term.expect, r"stop run gated-emb\? this process drives it")
        term.type(b"n\n")
        await asyncio.to_thread(term.expect, r"still following run gated-emb; Ctrl-C again to stop it")
        assert (await odin.run("gated-emb")).run.status is RunStatus.RUNNING
        term.type(CTRL_C)
        await asyncio.to_thread(term.expect, r"stop run gated-emb\?")
        term.type(CTRL_C)  # a second Ctrl-C while asked: yes
        await asyncio.to_thread(term.expect, r"run gated-emb TERMINATED after [\d.]+s: interrupted by the user")
        assert await asyncio.to_thread(term.wait) == 130
    finally:
        term.close()
    assert (await odin.run("gated-emb")).tasks[0].status is TaskStatus.CANCELLED


async def test_closing_the_terminal_of_an_embedded_run_ends_it_cleanly(odin: Odin, root: Path, env) -> None:
    term = Terminal([*CLI, "run", "gated", "--run-id", "gated-emb-hup"], env=env, cwd=str(root))
    await asyncio.to_thread(term.expect, r"wait\s+RUNNING")
    term.close()
    assert await asyncio.to_thread(term.wait) == 130
    view = await odin.run("gated-emb-hup")
    assert view.run.status is RunStatus.TERMINATED
    assert view.run.message.startswith("stopped: the terminal of `odin run` closed (`odin run --detach` runs outlive")
    assert view.tasks[0].status is TaskStatus.CANCELLED  # ended, not left running without an engine


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
async def test_a_signal_without_a_terminal_stops_an_embedded_run(odin: Odin, root: Path, env, sig) -> None:
    run_id = f"gated-emb-{sig.name.lower()}"
    proc, shown = await following("run", "gated", "--run-id", run_id, env=env, cwd=root)
    proc.send_signal(sig)
    rest, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, (shown + rest).decode()
    run = (await odin.run(run_id)).run
    assert run.status is RunStatus.TERMINATED
    assert run.message == ("interrupted by the user" if sig is signal.SIGINT else "stopped: `odin run` got SIGTERM")
