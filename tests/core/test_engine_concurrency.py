"""The engine and store under many concurrent runs, and the executor's end-of-run hook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from odin_core.engine import Engine
from odin_core.executors.base import Executor, Launch
from odin_core.model import AttemptUpdate, RunStatus, TaskRecord, TaskStatus
from odin_core.spec.model import PipelineSpec, TaskSpec
from odin_core.store.sqlite import SqliteStore


class Instant(Executor):
    """Succeeds every attempt at once; remembers which runs it was told had finished."""

    name = "instant"

    def __init__(self) -> None:
        super().__init__()
        self.finished: list[str] = []

    async def submit(self, launch: Launch) -> str:
        key = (launch.run_id, launch.task.name, launch.attempt)
        self.report(AttemptUpdate(*key, TaskStatus.RUNNING))
        self.report(AttemptUpdate(*key, TaskStatus.SUCCEEDED, exit_code=0))
        return "x"

    async def kill(self, record: TaskRecord) -> None:
        return None

    async def logs(
        self,
        record: TaskRecord,
        *,
        follow: bool = False,
        lines: int | None = None,
        container: str | None = None,
        until: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[str]:
        return
        yield ""

    async def cleanup(self, run_id: str, records: list[TaskRecord]) -> dict[str, bool]:
        return {}

    async def run_finished(self, run_id: str, records: list[TaskRecord]) -> None:
        self.finished.append(run_id)


@pytest.fixture
async def engine(tmp_path: Path):
    store = SqliteStore(tmp_path / "odin.db")
    await store.open()
    executor = Instant()
    eng = Engine(store, executor, root_path=tmp_path, data_path=tmp_path / "data")
    await eng.start(adopt=False)
    yield eng
    await eng.close()
    await store.close()


SPEC = PipelineSpec("p", (TaskSpec("step", "img", ("run",)),), job="p")


async def test_many_concurrent_submits_all_finish(engine: Engine):
    async def one() -> RunStatus:
        run = await engine.submit(SPEC)
        return (await engine.wait(run.run_id)).status

    results = await asyncio.gather(*(one() for _ in range(300)), return_exceptions=True)
    assert all(r is RunStatus.DONE for r in results), {repr(r) for r in results}


async def test_engine_tells_the_executor_when_a_run_ends(engine: Engine):
    run = await engine.submit(SPEC)
    await asyncio.wait_for(engine.wait(run.run_id), 10)
    await asyncio.sleep(0)
    assert engine.executor.finished == [run.run_id]  # type: ignore[attr-defined]
