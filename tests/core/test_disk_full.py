"""A full disk pauses runs; freeing space lets them go on, with every task run exactly once.

The disk is real: a small tmpfs (``small_disk``) that the test fills until the kernel answers ENOSPC,
under the SQLite store in one test and under the runs' data (where the local supervisors record how
their tasks ended) in the other. Before these tests, a full disk under the store ended the run as
TERMINATED ("internal error: database or disk is full", then a hung driverless run once that write
failed too), and one under the data killed the supervisor of a task that had just ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from engine_support import pipeline, task, until
from odin_core.engine import Engine
from odin_core.executors.local import LocalExecutor
from odin_core.model import RunStatus, TaskStatus
from odin_core.settings import EngineSettings
from odin_core.spec.model import PipelineSpec
from odin_core.store.sqlite import SqliteStore

PAUSE_S = 3.5
"""How long the disk stays full after the first task ended (longer than the engine's lease grace below)."""


def counted(counter: Path, name: str, gate: Path | None = None) -> str:
    """A task that waits for ``gate`` (if any), then appends its name to ``counter`` (outside the small disk)."""
    wait = f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\n" if gate else ""
    return f"import os, time\n{wait}open({str(counter)!r}, 'a').write({name!r} + '\\n')\n"


def executions(counter: Path) -> list[str]:
    return counter.read_text().split() if counter.exists() else []


def gated_pair(tmp_path: Path) -> tuple[PipelineSpec, Path, Path]:
    gate, counter = tmp_path / "gate", tmp_path / "counter"
    spec = pipeline(task("a", counted(counter, "a", gate)), task("b", counted(counter, "b"), depends=("a",)))
    return spec, gate, counter


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator:
    made: list[Engine] = []

    async def build(store_path: Path, data_path: Path) -> Engine:
        store = SqliteStore(store_path)
        await store.open()
        # a short lease, so that the pause outlasts the lease grace: the engine lets go and picks the run up again
        settings = EngineSettings(heartbeat_s=0.5, takeover_after_s=4.0)
        engine = Engine(store, LocalExecutor(data_path), root_path=tmp_path, data_path=data_path, settings=settings)
        made.append(engine)
        await engine.start(adopt=False)
        return engine

    yield build
    for engine in made:
        await engine.close()
        await engine.executor.close()
        await engine.store.close()


async def task_status(engine: Engine, run_id: str, name: str) -> TaskStatus:
    return {t.name: t.status for t in await engine.store.get_tasks(run_id)}[name]


async def ended(engine: Engine, run_id: str) -> bool:
    run = await engine.store.get_run(run_id)
    return run is not None and run.status.is_terminal


async def assert_done_once(engine: Engine, run_id: str, counter: Path) -> None:
    run = await engine.store.get_run(run_id)
    assert run is not None and run.status is RunStatus.DONE, run
    tasks = {t.name: t for t in await engine.store.get_tasks(run_id)}
    assert [(t.status, t.attempt, t.exit_code) for t in tasks.values()] == [(TaskStatus.SUCCEEDED, 1, 0)] * 2
    assert executions(counter) == ["a", "b"]  # each task ran once
    events = await engine.store.events(run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    ends = [(e.task, e.status) for e in events if e.kind == "task" and e.status == "SUCCEEDED"]
    assert ends == [("a", "SUCCEEDED"), ("b", "SUCCEEDED")]  # each end recorded once


async def test_a_full_disk_under_the_store_pauses_the_run_and_freeing_space_lets_it_go_on(
    small_disk, tmp_path: Path, make, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    engine = await make(small_disk.path / "odin.db", tmp_path / "data")
    spec, gate, counter = gated_pair(tmp_path)
    run = await engine.submit(spec)
    await until(lambda: _is(task_status(engine, run.run_id, "a"), TaskStatus.RUNNING))

    small_disk.fill()
    gate.touch()
    await until(lambda: executions(counter) == ["a"])
    await asyncio.sleep(PAUSE_S)  # a's end cannot be stored: the run waits, b is not started before it is

    assert executions(counter) == ["a"]
    current = await engine.store.get_run(run.run_id)  # reads still work
    assert current is not None and current.status is RunStatus.RUNNING
    assert await task_status(engine, run.run_id, "a") is TaskStatus.RUNNING
    assert "database or disk is full; free space on its disk" in caplog.text
    assert "internal error" not in caplog.text

    small_disk.free()
    await until(lambda: ended(engine, run.run_id), 30)
    await assert_done_once(engine, run.run_id, counter)


async def test_a_full_disk_under_the_run_data_holds_the_task_s_end_until_it_can_be_recorded(
    small_disk, tmp_path: Path, make
):
    engine = await make(tmp_path / "odin.db", small_disk.path / "data")
    spec, gate, counter = gated_pair(tmp_path)
    run = await engine.submit(spec)
    await until(lambda: _is(task_status(engine, run.run_id, "a"), TaskStatus.RUNNING))
    a = {t.name: t for t in await engine.store.get_tasks(run.run_id)}["a"]
    supervisor = psutil.Process(int(a.resource_id.removeprefix("pid:")))

    small_disk.fill()
    gate.touch()
    await until(lambda: executions(counter) == ["a"])
    await asyncio.sleep(PAUSE_S)

    # the supervisor waits for space to record how a ended: a stays RUNNING, is not lost, nor started again
    assert supervisor.is_running() and supervisor.status() != psutil.STATUS_ZOMBIE
    assert await task_status(engine, run.run_id, "a") is TaskStatus.RUNNING
    assert executions(counter) == ["a"]

    small_disk.free()
    await until(lambda: ended(engine, run.run_id), 30)
    await assert_done_once(engine, run.run_id, counter)
    await asyncio.to_thread(supervisor.wait, 10)


async def _is(status: object, expected: TaskStatus) -> bool:
    return await status is expected  # type: ignore[misc]


async def test_a_task_submitted_while_the_run_data_s_disk_is_full_starts_once_space_is_freed(
    small_disk, tmp_path: Path, make
):
    engine = await make(tmp_path / "odin.db", small_disk.path / "data")
    spec, gate, counter = gated_pair(tmp_path)
    gate.touch()
    small_disk.fill()
    run = await engine.submit(spec)
    await asyncio.sleep(PAUSE_S)  # its supervisor cannot claim the attempt: a is retried, not failed

    assert executions(counter) == []
    assert await task_status(engine, run.run_id, "a") is TaskStatus.PENDING
    events = await engine.store.events(run.run_id)
    assert any("is full: 'a' starts once space is freed" in e.message for e in events), events

    small_disk.free()
    await until(lambda: ended(engine, run.run_id), 30)
    await assert_done_once(engine, run.run_id, counter)
