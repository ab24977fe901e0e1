"""The real engine and local executor on each store backend: same pipelines, same outcomes.

Also: two engines on one store (one drives, the other adopts what the first let go of, nothing
runs twice), a store that goes down mid-run and comes back (the run pauses and finishes, no event
lost), and retention.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from odin_core.engine import Engine
from odin_core.executors.local import LocalExecutor
from odin_core.model import RunStatus, TaskStatus
from odin_core.settings import EngineSettings, StoreSettings
from odin_core.spec.model import PipelineSpec, RetryPolicy, TaskSpec
from odin_core.store import JobStore, open_store
from services import launch

PY = sys.executable
FAST = EngineSettings(heartbeat_s=0.2, takeover_after_s=1.5)


def task(name: str, code: str, **kw: object) -> TaskSpec:
    return TaskSpec(name, "python:3.12-slim", (PY, "-c", code), **kw)  # type: ignore[arg-type]


def counted(counter: Path, code: str = "pass") -> str:
    """Code that appends one line per execution to ``counter``, then runs ``code``."""
    return f"import os; open({str(counter)!r}, 'a').write(os.environ['ODIN_TASK_ID'] + '\\n'); {code}"


def diamond(counter: Path, *, slow_s: float = 0.0) -> PipelineSpec:
    return PipelineSpec(
        "diamond",
        (
            task("a", counted(counter)),
            task("b", counted(counter, f"import time; time.sleep({slow_s})"), depends=("a",)),
            task("c", counted(counter, "raise SystemExit(3)"), depends=("a",), retries=RetryPolicy(1, 0.1)),
            task("d", counted(counter), depends=("b", "c")),
            task("e", counted(counter), depends=("a",)),
        ),
        job="diamond",
        on_failure="continue",  # b's outcome must not depend on whether c fails before b ends
    )


EXPECTED = {"a": "SUCCEEDED", "b": "SUCCEEDED", "c": "FAILED", "d": "SKIPPED", "e": "SUCCEEDED"}


class Cores:
    """Engines (each with its own store connection and executor) on one store; closed at the end."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.made: list[tuple[Engine, JobStore, LocalExecutor]] = []

    async def engine(self, settings: EngineSettings = FAST, store_settings: StoreSettings | None = None) -> Engine:
        store = await open_store(self.url, store_settings or StoreSettings(pool_size=4))
        executor = LocalExecutor(self.tmp / "data")
        engine = Engine(store, executor, root_path=self.tmp, data_path=self.tmp / "data", settings=settings)
        self.made.append((engine, store, executor))
        return engine

    async def close(self) -> None:
        for engine, store, executor in self.made:
            await engine.close()
            await executor.close()
            await store.close()


@pytest.fixture
async def cores(store_url: str, tmp_path: Path):
    c = Cores(store_url, tmp_path)
    yield c
    await c.close()


def executions(counter: Path) -> list[str]:
    return counter.read_text().splitlines() if counter.exists() else []


async def test_a_pipeline_ends_the_same_on_every_backend(cores: Cores, tmp_path: Path) -> None:
    engine = await cores.engine()
    await engine.start(adopt=False)
    run = await engine.submit(diamond(tmp_path / "count"))
    final = await asyncio.wait_for(engine.wait(run.run_id), 60)
    assert final.status is RunStatus.TERMINATED
    tasks = {t.name: t for t in await engine.store.get_tasks(run.run_id)}
    events = await engine.store.events(run.run_id)
    assert {n: t.status.value for n, t in tasks.items()} == EXPECTED, [
        (e.seq, e.task, e.status, e.message) for e in events
    ]
    assert tasks["c"].attempt == 2 and tasks["c"].exit_code == 3
    assert sorted(executions(tmp_path / "count")) == sorted(f"{run.run_id}--{n}" for n in "abcce")
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "numbered without gaps"
    assert events[-1].kind == "run" and events[-1].status == "TERMINATED"


async def test_a_second_engine_adopts_what_the_first_let_go_of(cores: Cores, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    first = await cores.engine()
    await first.start(adopt=False)
    run = await first.submit(diamond(counter, slow_s=1.5))
    await _until(lambda: _status(first.store, run.run_id, "b", TaskStatus.RUNNING))
    await first.close()  # releases its lease: the task keeps running, detached
    second = await cores.engine()
    await second.start(adopt=True)
    await _until(lambda: _ended(second.store, run.run_id), timeout_s=60)
    records = await second.store.get_tasks(run.run_id)
    tasks = {t.name: t.status.value for t in records}
    assert tasks == EXPECTED, [(t.name, t.message) for t in records]
    assert sorted(executions(counter)) == sorted(f"{run.run_id}--{n}" for n in "abcce"), "no task ran twice"
    assert (await second.store.lease_of(run.run_id)).lease.owner == second.owner


async def test_a_stop_from_another_process_reaches_the_driving_engine(cores: Cores, tmp_path: Path) -> None:
    driver, other = await cores.engine(), await cores.engine()
    await driver.start(adopt=False)
    run = await driver.submit(PipelineSpec("slow", (task("wait", "import time; time.sleep(60)"),), job="slow"))
    await _until(lambda: _status(driver.store, run.run_id, "wait", TaskStatus.RUNNING))
    assert await other.store.request_stop(run.run_id, "stopped by a test")
    final = await asyncio.wait_for(driver.wait(run.run_id), 30)
    assert final.status is RunStatus.TERMINATED and "stopped by a test" in final.message


@pytest.mark.parametrize("kind", ["postgres", "mongo"])
async def test_a_store_outage_pauses_runs_and_loses_nothing(kind: str, tmp_path: Path) -> None:
    # durable: with fsync off, a crash may lose commits the server had acknowledged (a test-server artefact)
    server = launch.Postgres.start(durable=True) if kind == "postgres" else launch.FerretDB.start()
    url = server.create_database() if kind == "postgres" else server.url_for("outage")
    cores = Cores(url, tmp_path)
    counter = tmp_path / "count"
    try:
        engine = await cores.engine(EngineSettings(heartbeat_s=0.2, takeover_after_s=30))
        await engine.start(adopt=False)
        run = await engine.submit(diamond(counter, slow_s=2.0))
        await _until(lambda: _status(engine.store, run.run_id, "b", TaskStatus.RUNNING))
        server.crash()  # b finishes while the store is down: its result must wait, not be lost
        await asyncio.sleep(3.0)  # an outage longer than the task; nothing to wait on but time itself
        server.restart()
        final = await asyncio.wait_for(engine.wait(run.run_id), 60)
        records = await engine.store.get_tasks(run.run_id)
        events = await engine.store.events(run.run_id)
        why = [final.message, *((e.seq, e.task, e.status, e.message) for e in events)]
        assert final.status is RunStatus.TERMINATED, why
        assert {t.name: t.status.value for t in records} == EXPECTED, why
        assert sorted(executions(counter)) == sorted(f"{run.run_id}--{n}" for n in "abcce")
        events = await engine.store.events(run.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert engine.store.retry.outages > 0, "the store did see the outage"  # type: ignore[attr-defined]
    finally:
        await cores.close()
        server.stop()


async def _status(store: JobStore, run_id: str, name: str, status: TaskStatus) -> bool:
    return any(t.name == name and t.status is status for t in await store.get_tasks(run_id))


async def _ended(store: JobStore, run_id: str) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status.is_terminal


async def _until(check, timeout_s: float = 30.0, every_s: float = 0.05) -> None:
    """Poll a store condition (another process's writes have no event to wait on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(every_s)
