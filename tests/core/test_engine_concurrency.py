"""The engine and store under many concurrent runs, and the executor's end-of-run hook."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from odin_core.engine import Engine
from odin_core.executors.instant import InstantExecutor
from odin_core.model import RunStatus
from odin_core.spec.model import PipelineSpec, TaskSpec
from odin_core.store.sqlite import SqliteStore


@pytest.fixture
async def engine(tmp_path: Path):
    store = SqliteStore(tmp_path / "odin.db")
    await store.open()
    executor = InstantExecutor()
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
