"""Job-store operations per second on each backend, on the engine's access pattern.

Each backend gets a fresh store on a server started by tools/services (PostgreSQL 15 with
fsync=off, FerretDB v1.24.2 on SQLite) or a SQLite file. Measured, in this order:
- create: ``create_run`` of a 20-task run with 2 events;
- commit 1 run: fenced commits of one run, each one task record and one event (as a worker does);
- commit 16 runs: the same from 16 runs at once (16 workers of one engine);
- renew: one heartbeat of an owner with 16 active runs among all the ended ones;
- get_tasks / get_run: reads of a 20-task run (STATUS);
- list_runs: a page of 20, newest first, with a glob pattern, over every run in the store.

    .venv/bin/python bench/store_ops.py [--backends sqlite postgres mongo] [--commits 600] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine
from odin_core.model import Event, RunRecord, RunStatus, TaskRecord, TaskStatus
from odin_core.settings import StoreSettings
from odin_core.store import JobStore, Lease, open_store

LAUNCH = Path(__file__).resolve().parents[1] / "tools" / "services" / "launch.py"
TASKS = 20


def _launcher() -> Any:
    spec = importlib.util.spec_from_file_location("odin_services_launch", LAUNCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def records(run_id: str, owner: str) -> tuple[RunRecord, list[TaskRecord], list[Event]]:
    run = RunRecord(run_id, job="bench/job", name="bench", owner=owner)
    tasks = [TaskRecord(run_id, f"t{i}", image="python:3.11", command=("python", "-c", "pass")) for i in range(TASKS)]
    events = [Event(run_id, 1, time.time(), "run", "BUILDING"), Event(run_id, 2, time.time(), "run", "RUNNING")]
    return run, tasks, events


async def create(store: JobStore, run_id: str, owner: str = "bench") -> Lease:
    run, tasks, events = records(run_id, owner)
    lease = await store.create_run(run, {"name": "bench"}, tasks, events, now=time.time())
    assert lease is not None
    return lease


async def drive(store: JobStore, lease: Lease, commits: int) -> None:
    """A worker's commits: one task record (cycling through the run's tasks) and one event each."""
    tasks = await store.get_tasks(lease.run_id)
    seq = await store.last_seq(lease.run_id)
    for i in range(commits):
        t = tasks[i % TASKS].evolve(status=TaskStatus.RUNNING, attempt=1 + i // TASKS)
        seq += 1
        await store.commit(lease, None, [t], [Event(lease.run_id, seq, time.time(), "task", "RUNNING", t.name)])


async def rate(n: int, fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await fn()
    return n / (time.perf_counter() - t0)


async def bench(url: str, commits: int) -> dict[str, float]:
    store = await open_store(url, StoreSettings(pool_size=16))
    out: dict[str, float] = {}
    try:
        counter = iter(range(10**9))
        out["create_per_s"] = round(await rate(200, lambda: create(store, f"c-{next(counter)}")))
        for i in range(200):  # ended runs: renew must not touch them
            lease = Lease(f"c-{i}", "bench", 1)
            run = await store.get_run(lease.run_id)
            assert run is not None
            await store.commit(lease, run.evolve(status=RunStatus.DONE, completed=time.time()))
        lease = await create(store, "one")
        t0 = time.perf_counter()
        await drive(store, lease, commits)
        out["commit_1_run_per_s"] = round(commits / (time.perf_counter() - t0))
        leases = [await create(store, f"par-{i}", "engine") for i in range(16)]
        per = max(commits // 16, 10)
        t0 = time.perf_counter()
        await asyncio.gather(*(drive(store, lease, per) for lease in leases))
        out["commit_16_runs_per_s"] = round(16 * per / (time.perf_counter() - t0))
        out["renew_per_s"] = round(await rate(100, lambda: store.renew("engine", time.time())))
        out["get_tasks_per_s"] = round(await rate(300, lambda: store.get_tasks("one")))
        out["get_run_per_s"] = round(await rate(300, lambda: store.get_run("one")))
        out["list_runs_page_per_s"] = round(await rate(100, lambda: store.list_runs(pattern="par-*", limit=20)))
        out["runs_in_store"] = len(await store.list_runs())
    finally:
        await store.close()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgres", "mongo"])
    ap.add_argument("--commits", type=int, default=600)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    launch = _launcher()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            server = None
            if backend == "sqlite":
                url = f"sqlite:///{tmp}/bench.db"
            elif backend == "postgres":
                server = launch.Postgres.start()
                url = server.create_database("bench")
            else:
                server = launch.FerretDB.start()
                url = server.url_for("bench")
            try:
                results[backend] = await bench(url, args.commits)
            finally:
                if server is not None:
                    server.stop()
    settings = {
        "tasks_per_run": TASKS,
        "commits": args.commits,
        "postgres": "15, fsync=off",
        "mongo": "FerretDB v1.24.2 on SQLite",
    }
    if args.json:
        print(json.dumps({"machine": machine(), "settings": settings, "results": results}, indent=2))
        return
    print(f"store operations per second ({machine()}; {settings})")
    keys = list(next(iter(results.values())))
    print(f"{'operation':22}" + "".join(f"{b:>12}" for b in results))
    for k in keys:
        print(f"{k:22}" + "".join(f"{results[b][k]:>12}" for b in results))


if __name__ == "__main__":
    asyncio.run(main())
