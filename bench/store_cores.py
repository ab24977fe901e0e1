"""Several cores on one PostgreSQL (or MongoDB) store: adoption after a kill, and two cores against one.

adopt: a core process submits ``--runs`` runs whose first task never reports back, and is killed
    (SIGKILL). A surviving core adopts them once their heartbeats are older than the takeover
    time, re-attaches (its executor finds each attempt finished), and finishes every run. Printed:
    seconds from the kill to the first adoption and to the last run ending.
throughput: ``--runs`` runs of a 10-task chain with an executor that succeeds at once, driven by
    one core process, then split between two core processes on the same store. Printed: runs and
    task transitions per second for each.

    .venv/bin/python bench/store_cores.py [--store postgres|mongo] [--runs 1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine
from odin_core.engine import Engine
from odin_core.executors.base import Launch
from odin_core.executors.instant import InstantExecutor
from odin_core.model import AttemptUpdate, TaskRecord, TaskStatus
from odin_core.settings import EngineSettings, StoreSettings
from odin_core.spec.model import PipelineSpec, TaskSpec
from odin_core.store import JobStore, open_store

LAUNCH = Path(__file__).resolve().parents[1] / "tools" / "services" / "launch.py"
TAKEOVER_S = 3.0
HANDOVER = EngineSettings(heartbeat_s=0.5, takeover_after_s=TAKEOVER_S, adopt_batch=100)


class Hanging(InstantExecutor):
    """Starts nothing and never reports: the killed core's attempts are left in flight."""

    async def submit(self, launch: Launch) -> str:
        return f"hang-{launch.run_id}-{launch.task.name}"


class Reattaching(InstantExecutor):
    """Re-attaches to every attempt it is given and finds it finished."""

    async def recover(self, records: list[TaskRecord]) -> list[TaskRecord]:
        for r in records:
            self.report(AttemptUpdate(r.run_id, r.name, r.attempt, TaskStatus.RUNNING))
            self.report(AttemptUpdate(r.run_id, r.name, r.attempt, TaskStatus.SUCCEEDED, exit_code=0))
        return []


def chain(n: int) -> PipelineSpec:
    tasks = [TaskSpec(f"t{i}", "busybox", ("true",), depends=(f"t{i - 1}",) if i else ()) for i in range(n)]
    return PipelineSpec("bench", tuple(tasks), job="bench")


async def engine_on(url: str, executor: InstantExecutor, tmp: Path) -> tuple[Engine, JobStore]:
    store = await open_store(url, StoreSettings(pool_size=8))
    return Engine(store, executor, root_path=tmp, data_path=tmp / "data", settings=HANDOVER), store


async def ended(store: JobStore, run_ids: list[str], timeout_s: float) -> float:
    """Wait (polling the store: the runs are another process's) until every run ended; when it was."""
    deadline = time.monotonic() + timeout_s
    pending = set(run_ids)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} run(s) still active")
        active = {r.run_id for r in await store.list_runs(active_only=True)}
        pending &= active
        if pending:
            await asyncio.sleep(0.1)
    return time.monotonic()


# -- roles run in child processes -------------------------------------------------------------------


async def victim(url: str, runs: int, tmp: Path) -> None:
    engine, _ = await engine_on(url, Hanging(), tmp)
    await engine.start(adopt=False)
    for _ in range(runs):
        await engine.submit(chain(2))
    print("ready", flush=True)
    await asyncio.Event().wait()  # until killed


async def worker(url: str, runs: int, tmp: Path) -> None:
    engine, store = await engine_on(url, InstantExecutor(), tmp)
    await engine.start(adopt=False)
    print("ready", flush=True)
    sys.stdin.readline()  # go
    t0 = time.monotonic()
    ids = [(await engine.submit(chain(10))).run_id for _ in range(runs)]
    for run_id in ids:
        await engine.wait(run_id)
    print(json.dumps({"runs": runs, "seconds": time.monotonic() - t0}), flush=True)
    await engine.close()
    await store.close()


def spawn(role: str, url: str, runs: int, tmp: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--url", url, "--runs", str(runs), "--tmp", str(tmp)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", f"{role} did not start"
    return proc


# -- the measurements -----------------------------------------------------------------------------


async def adopt(url: str, runs: int, tmp: Path) -> dict[str, Any]:
    proc = spawn("victim", url, runs, tmp)
    store = await open_store(url)
    run_ids = [r.run_id for r in await store.list_runs(active_only=True)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    survivor, survivor_store = await engine_on(url, Reattaching(), tmp)
    adopting = asyncio.ensure_future(survivor.start(adopt=True))
    oldest = run_ids[-1]
    while (info := await store.lease_of(oldest)) is None or info.lease.owner != survivor.owner:
        await asyncio.sleep(0.02)
    first = time.monotonic()
    await adopting
    done = await ended(store, run_ids, 600)
    tasks_ok = True
    for run_id in run_ids:
        tasks_ok = tasks_ok and all(t.status is TaskStatus.SUCCEEDED for t in await store.get_tasks(run_id))
    await survivor.close()
    await survivor_store.close()
    await store.close()
    return {
        "runs": len(run_ids),
        "takeover_after_s": TAKEOVER_S,
        "oldest_run_adopted_after_kill_s": round(first - killed, 2),
        "all_finished_after_kill_s": round(done - killed, 2),
        "all_tasks_succeeded": tasks_ok,
        "note": "same host: the survivor sees the killed pid is gone and does not wait for takeover_after_s",
    }


def throughput(url: str, runs: int, tmp: Path, cores: int) -> dict[str, Any]:
    procs = [spawn("worker", url, runs // cores, tmp) for _ in range(cores)]
    t0 = time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline()) for p in procs if p.stdout is not None]
    wall = time.monotonic() - t0
    for p in procs:
        p.wait(60)
    n = sum(r["runs"] for r in results)
    return {
        "cores": cores,
        "runs": n,
        "seconds": round(wall, 2),
        "runs_per_s": round(n / wall, 1),
        "task_transitions_per_s": round(n * 10 * 3 / wall),
    }


def _launcher() -> Any:
    spec = importlib.util.spec_from_file_location("odin_services_launch", LAUNCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", choices=["postgres", "mongo"], default="postgres")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--role", choices=["victim", "worker"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "victim":
        return await victim(args.url, args.runs, args.tmp)
    if args.role == "worker":
        return await worker(args.url, args.runs, args.tmp)
    launch = _launcher()
    server = launch.Postgres.start() if args.store == "postgres" else launch.FerretDB.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            make = server.create_database if args.store == "postgres" else server.url_for
            results = {
                "adopt": await adopt(make("adopt"), args.runs, Path(tmp)),
                "one_core": throughput(make("one"), args.runs, Path(tmp), 1),
                "two_cores": throughput(make("two"), args.runs, Path(tmp), 2),
            }
    finally:
        server.stop()
    settings = {"store": args.store, "runs": args.runs, "heartbeat_s": 0.5, "takeover_after_s": TAKEOVER_S}
    if args.json:
        print(json.dumps({"machine": machine(), "settings": settings, "results": results}, indent=2))
    else:
        print(f"several cores on one store ({machine()}; {settings})")
        for name, r in results.items():
            print(f"{name:10} {r}")


if __name__ == "__main__":
    asyncio.run(main())
