"""Local hand-off latency: a dependent's start minus its parent's exit, over a 200-task chain.

Each task is a real process (`true`) started by the local executor; the engine persists every
transition to SQLite. The parent's exit time is taken when its process is reaped, the child's
start when its process has been spawned.

    .venv/bin/python bench/handoff_latency.py [--tasks 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, summary
from odin_core.engine import Engine
from odin_core.executors.local import LocalExecutor
from odin_core.model import AttemptUpdate, TaskStatus
from odin_core.spec.model import PipelineSpec, TaskSpec
from odin_core.store.sqlite import SqliteStore


class TimedLocal(LocalExecutor):
    """The local executor, noting when each process was spawned and when it was reaped."""

    def __init__(self, data_path: Path) -> None:
        super().__init__(data_path)
        self.spawned: dict[str, float] = {}
        self.exited: dict[str, float] = {}

    async def submit(self, launch):  # type: ignore[no-untyped-def]
        rid = await super().submit(launch)
        self.spawned[launch.task.name] = time.perf_counter()
        return rid

    def report(self, update: AttemptUpdate) -> None:
        if update.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
            self.exited[update.name] = time.perf_counter()
        super().report(update)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.tasks
    spec = PipelineSpec(
        "chain",
        tuple(TaskSpec(f"t{i}", "busybox", ("true",), depends=(f"t{i - 1}",) if i else ()) for i in range(n)),
        job="chain",
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "odin.db")
        await store.open()
        executor = TimedLocal(Path(tmp) / "data")
        engine = Engine(store, executor, root_path=Path(tmp), data_path=Path(tmp) / "data")
        await engine.start(adopt=False)
        t0 = time.perf_counter()
        run = await engine.submit(spec)
        final = await engine.wait(run.run_id)
        total = time.perf_counter() - t0
        await engine.close()
        await executor.close()
        await store.close()
    assert final.status.value == "DONE", final
    gaps = [(executor.spawned[f"t{i}"] - executor.exited[f"t{i - 1}"]) * 1000 for i in range(1, n)]
    result = {"tasks": n, "total_s": round(total, 3), "handoff_ms": {k: round(v, 2) for k, v in summary(gaps).items()}}
    if args.json:
        print(json.dumps({"machine": machine(), **result}, indent=2))
    else:
        h = result["handoff_ms"]
        print(f"{n}-task chain in {total:.2f}s; hand-off p50 {h['p50']} ms, p99 {h['p99']} ms, max {h['max']} ms")


if __name__ == "__main__":
    asyncio.run(main())
