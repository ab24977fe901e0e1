"""Pipelines, engines and fault injectors for the engine tests (real SQLite store, real local executor)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import psutil
from odin_core.engine import Engine
from odin_core.executors.local import LocalExecutor
from odin_core.model import RunRecord, TaskRecord
from odin_core.spec.model import PipelineSpec, TaskSpec

PY = sys.executable


def task(name: str, code: str, **kw: Any) -> TaskSpec:
    return TaskSpec(name, "python:3.12-slim", (PY, "-c", code), **kw)


def pipeline(*tasks: TaskSpec, **kw: Any) -> PipelineSpec:
    return PipelineSpec("p", tuple(tasks), job="p", **kw)


async def run_to_end(engine: Engine, spec: PipelineSpec, **kw: Any) -> tuple[RunRecord, dict[str, TaskRecord]]:
    await engine.start(adopt=False)
    run = await engine.submit(spec, **kw)
    final = await asyncio.wait_for(engine.wait(run.run_id), 60)
    return final, {t.name: t for t in await engine.store.get_tasks(run.run_id)}


async def until(predicate: Any, timeout_s: float = 20.0, *, every_s: float = 0.02) -> None:
    """Wait for ``await predicate()`` (or ``predicate()``) to be true; fail after ``timeout_s``.

    For conditions that live in another process or in the store, where no event tells us.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(every_s)


def task_process_alive(pid: int, task_id: str) -> bool:
    """Whether ``pid`` is still the live process of ``task_id`` (pids are reused quickly on a busy machine)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("ODIN_TASK_ID") == task_id
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def local_executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(data_dir(tmp_path))
