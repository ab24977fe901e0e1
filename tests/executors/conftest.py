"""Fixtures for the local executor's own tests: real processes, a core that can be SIGKILLed, no mocks.

- ``Launch``es of small Python tasks (``make_launch``) that append a line to a counter file each time
  they execute, and may block on a ``Gate`` (a FIFO) until the test lets them go on.
- ``start_core``: a core in a subprocess (``core_proc.py``) that submits launches and can be killed.
- ``Reports``: the AttemptUpdates an executor reported, awaited by condition with a timeout.
- process checks through psutil, independent of the executor's own ``/proc`` code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from odin_core import constants as C
from odin_core.executors.base import Launch
from odin_core.executors.local import LocalExecutor
from odin_core.model import AttemptUpdate, TaskRecord, TaskStatus
from odin_core.settings import LocalSettings
from odin_core.spec.model import TaskSpec

PY = sys.executable
CORE = str(Path(__file__).with_name("core_proc.py"))
TIMEOUT_S = 30.0


def make_launch(
    data: Path,
    run_id: str,
    name: str,
    code: str,
    *,
    attempt: int = 1,
    work_path: Path | None = None,
    env: dict[str, str] | None = None,
    command: tuple[str, ...] | None = None,
) -> Launch:
    """An attempt of a Python task, with the ODIN_* variables the engine sets."""
    task = TaskSpec(name, "python:3.12-slim", command or (PY, "-c", code))
    launch = Launch.of(run_id, task, attempt, work_path=str(work_path or ""), run_path=str(data / run_id))
    return replace(launch, env={**launch.env, **(env or {})})


def launch_to_dict(launch: Launch) -> dict[str, Any]:
    return {
        "run_id": launch.run_id,
        "name": launch.task.name,
        "attempt": launch.attempt,
        "command": [*launch.task.command, *launch.task.args],
        "work_path": launch.work_path,
        "run_path": launch.run_path,
        "env": launch.env,
    }


def record(launch: Launch, status: TaskStatus = TaskStatus.RUNNING, resource_id: str = "") -> TaskRecord:
    """The task record an engine holds for ``launch`` while it is active."""
    return TaskRecord(launch.run_id, launch.task.name, status, attempt=launch.attempt, resource_id=resource_id)


def key(launch: Launch) -> tuple[str, str, int]:
    return (launch.run_id, launch.task.name, launch.attempt)


class Gate:
    """A FIFO a task blocks on (``Gate.wait``) until the test calls ``release``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self._fd = os.open(path, os.O_RDWR)  # held open: a task's open() never blocks, its read() does

    @property
    def wait(self) -> str:
        return f"open({str(self.path)!r}, 'rb', buffering=0).read(1)"

    def release(self, n: int = 1) -> None:
        os.write(self._fd, b"x" * n)

    def close(self) -> None:
        os.close(self._fd)


def task_code(
    counter: Path,
    *,
    gate: Gate | None = None,
    outputs: dict[str, Any] | None = None,
    exit_code: int = 0,
    extra: str = "",
) -> str:
    """A task that records each execution in ``counter``, says ``before``, waits at ``gate``, says ``after``."""
    lines = [
        "import json, os, sys",
        f"open({str(counter)!r}, 'a').write(os.environ['ODIN_TASK_ID'] + '.' + os.environ['ODIN_ATTEMPT'] + '\\n')",
        extra,
        "print('before', flush=True)",
        gate.wait if gate else "",
        "print('after', flush=True)",
        f"json.dump({outputs!r}, open(os.environ['ODIN_OUTPUTS'], 'w'))" if outputs is not None else "",
        f"sys.exit({exit_code})",
    ]
    return "\n".join(line for line in lines if line)


def executions(counter: Path) -> list[str]:
    return counter.read_text().splitlines() if counter.exists() else []


@dataclass
class Reports:
    """The AttemptUpdates a bound executor reported, in order."""

    updates: list[AttemptUpdate] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, update: AttemptUpdate) -> None:
        self.updates.append(update)
        self._changed.set()

    def of(self, launch: Launch) -> list[AttemptUpdate]:
        return [u for u in self.updates if (u.run_id, u.name, u.attempt) == key(launch)]

    async def wait(self, launch: Launch, status: TaskStatus, timeout: float = TIMEOUT_S) -> AttemptUpdate:
        """The first update of ``launch`` with ``status``, waiting for it if it has not come yet."""
        deadline = time.monotonic() + timeout
        while True:
            found = [u for u in self.of(launch) if u.status is status]
            if found:
                return found[0]
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {status.value} for {key(launch)}; got {self.of(launch)}")
            await asyncio.wait_for(self._changed.wait(), left)


@dataclass
class Core:
    """A core in its own process (``core_proc.py``); what it printed, parsed."""

    proc: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)

    async def read_until(self, done: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT_S) -> dict[str, Any]:
        for line in self.lines:
            if done(line):
                return line
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            assert raw, f"the core ended (exit code {self.proc.returncode}) after {self.lines}"
            line = json.loads(raw)
            self.lines.append(line)
            if done(line):
                return line

    async def submitted(self, launch: Launch) -> dict[str, Any]:
        return await self.read_until(lambda d: d.get("submitted") == list(key(launch)))

    async def running(self, launch: Launch) -> dict[str, Any]:
        def is_running(d: dict[str, Any]) -> bool:
            u = d.get("update") or {}
            return [u.get("run_id"), u.get("name"), u.get("attempt")] == list(key(launch)) and u["status"] == "RUNNING"

        return await self.read_until(is_running)

    async def kill(self) -> None:
        """kill -9 of the core, as in a crash."""
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def start_core(data: Path) -> AsyncIterator[Callable[..., Awaitable[Core]]]:
    cores: list[Core] = []

    async def start(launches: list[Launch], *, env: dict[str, str] | None = None, grace_s: float = 5.0) -> Core:
        proc = await asyncio.create_subprocess_exec(
            PY, CORE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env or dict(os.environ)
        )
        assert proc.stdin is not None
        job = {"data": str(data), "launches": [launch_to_dict(la) for la in launches], "grace_s": grace_s}
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
        core = Core(proc)
        cores.append(core)
        return core

    yield start
    for core in cores:
        if core.proc.returncode is None:
            await core.kill()


@pytest.fixture
async def make_executor(data: Path) -> AsyncIterator[Callable[..., tuple[LocalExecutor, Reports]]]:
    """Executors in this process, each bound to its own Reports; closed at the end, then nothing of the
    test's runs may be left running (whatever is, is killed so no test leaves processes behind)."""
    made: list[LocalExecutor] = []

    def make(settings: LocalSettings | None = None, **kw: Any) -> tuple[LocalExecutor, Reports]:
        executor = LocalExecutor(data, settings, **kw)
        reports = Reports()
        executor.bind(reports)
        made.append(executor)
        return executor, reports

    yield make
    for executor in made:
        await executor.close()
    with contextlib.suppress(AssertionError):  # a supervisor that just recorded a result is still exiting
        await wait_gone([p.pid for p in leftovers(data)], timeout=10)
    left = leftovers(data)
    for p in left:
        with _gone():
            p.kill()
    assert not left, f"processes of the test's runs were left running: {left}"


# -- processes, seen through psutil --------------------------------------------------------------


class _gone:
    """Ignore a process that ended meanwhile."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        return isinstance(exc, psutil.NoSuchProcess | psutil.ZombieProcess | psutil.AccessDenied)


def live(pid: int) -> bool:
    """True when ``pid`` runs (a zombie has ended: it only waits for its parent to collect it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def task_processes(data: Path) -> list[psutil.Process]:
    """Live processes of any task under ``data`` (tasks and their children carry ODIN_RUN_PATH)."""
    found = []
    for p in psutil.process_iter():
        with _gone():
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get(C.ENV_RUN_PATH, "").startswith(str(data)):
                found.append(p)
    return found


def supervisor_pid(launch: Launch) -> int:
    claim = Path(launch.run_path) / C.RUN_META_DIR / C.LOCAL_ATTEMPTS_DIR / f"{launch.task.name}.{launch.attempt}"
    return int(json.loads((claim / C.LOCAL_CLAIM_FILE).read_text())["pid"])


def leftovers(data: Path) -> list[psutil.Process]:
    """Live tasks and supervisors of the runs under ``data``."""
    procs = task_processes(data)
    for claim in data.glob(f"*/{C.RUN_META_DIR}/{C.LOCAL_ATTEMPTS_DIR}/*/{C.LOCAL_CLAIM_FILE}"):
        pid = int(json.loads(claim.read_text())["pid"])
        if live(pid) and "local_supervisor" in " ".join(psutil.Process(pid).cmdline()):
            procs.append(psutil.Process(pid))
    return procs


async def wait_gone(pids: list[int], timeout: float = TIMEOUT_S) -> None:
    """Wait until none of ``pids`` runs."""
    deadline = time.monotonic() + timeout
    while any(live(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if live(p)]}"
        await asyncio.sleep(0.02)


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    g = Gate(tmp_path / "gate")
    yield g
    g.close()


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    return tmp_path / "executions.txt"
