"""Records for the store contract tests: runs with tasks and events, as an engine would write them."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from odin_core.model import Event, RunRecord, RunStatus, TaskRecord, TaskStatus
from odin_core.store import JobStore, Lease

T0 = 1_700_000_000.0  # submission times count from here, one second apart unless a test says otherwise
TASKS = ("prep", "train", "eval")


def run_record(
    run_id: str, *, job: str = "team/job", name: str = "flow", owner: str = "A", at: float = T0
) -> RunRecord:
    return RunRecord(run_id, job=job, name=name, owner=owner, submitted=at)


def task_records(run_id: str, names: tuple[str, ...] = TASKS) -> list[TaskRecord]:
    return [TaskRecord(run_id, n, image="python:3.11", command=("python", f"{n}.py")) for n in names]


def event(run_id: str, seq: int, status: str = "RUNNING", task: str = "", message: str = "") -> Event:
    return Event(run_id, seq, T0 + seq, "task" if task else "run", status, task, message)


async def create(
    store: JobStore, run_id: str, *, owner: str = "A", at: float = T0, now: float = T0, **kw: str
) -> Lease:
    """A new run with three tasks and its first event, held by ``owner``."""
    run = run_record(run_id, owner=owner, at=at, **kw)
    lease = await store.create_run(
        run, {"name": "flow", "tasks": list(TASKS)}, task_records(run_id), [event(run_id, 1, "BUILDING")], now=now
    )
    assert lease == Lease(run_id, owner, 1)
    return lease


async def finish(store: JobStore, lease: Lease, status: RunStatus = RunStatus.DONE, *, at: float = T0 + 60) -> None:
    """End a run the way the engine does: every task and the run, with their events."""
    run = await store.get_run(lease.run_id)
    assert run is not None
    tasks = [t.evolve(status=TaskStatus.SUCCEEDED, completed=at) for t in await store.get_tasks(lease.run_id)]
    seq = await store.last_seq(lease.run_id)
    events = [event(lease.run_id, seq + 1, status.value)]
    await store.commit(lease, run.evolve(status=status, completed=at), tasks, events)


@contextlib.asynccontextmanager
async def sqlite_write_lock(path: Path) -> AsyncIterator[threading.Event]:
    """A second connection to the SQLite file (as another `odin run` would hold) takes its write lock and holds
    it until the event it yields is set (at the latest on leaving)."""
    locked, release = threading.Event(), threading.Event()

    def other_process() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(10)
        db.execute("COMMIT")
        db.close()

    holder = threading.Thread(target=other_process)
    holder.start()
    await asyncio.to_thread(locked.wait, 10)
    try:
        yield release
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
