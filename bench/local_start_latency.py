"""What the local executor's supervisor costs per attempt: its start latency, against a bare process.

For each of ``--attempts`` attempts of ``true``, one after another:

- supervised (the local executor): submit() call → submit() returned (a supervisor has claimed the
  attempt and started the task), and submit() call → SUCCEEDED reported (the result record read back).
  The executor keeps one supervisor warm, started after each submit; one after another, a submit often
  waits for the rest of that start;
- bare (what the executor did before supervisors): asyncio.create_subprocess_exec("true") → spawned,
  and → reaped.

    .venv/bin/python bench/local_start_latency.py [--attempts 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, summary
from odin_core.executors.base import Launch
from odin_core.executors.local import LocalExecutor
from odin_core.model import AttemptUpdate, TaskStatus
from odin_core.spec.model import TaskSpec

TRUE = shutil.which("true") or "/bin/true"


async def supervised(data: Path, n: int) -> tuple[list[float], list[float]]:
    executor = LocalExecutor(data)
    done: dict[str, asyncio.Event] = {}

    def report(u: AttemptUpdate) -> None:
        if u.status is TaskStatus.SUCCEEDED:
            done[u.name].set()

    executor.bind(report)
    started, ended = [], []
    for i in range(n):
        name = f"t{i}"
        done[name] = asyncio.Event()
        launch = Launch("bench", TaskSpec(name, "busybox", (TRUE,)), 1, "", str(data / "bench"), {})
        t0 = time.perf_counter()
        await executor.submit(launch)
        started.append((time.perf_counter() - t0) * 1000)
        await asyncio.wait_for(done[name].wait(), 60)
        ended.append((time.perf_counter() - t0) * 1000)
    await executor.close()
    return started, ended


async def bare(n: int) -> tuple[list[float], list[float]]:
    started, ended = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(TRUE, start_new_session=True)
        started.append((time.perf_counter() - t0) * 1000)
        await proc.wait()
        ended.append((time.perf_counter() - t0) * 1000)
    return started, ended


def _row(values: list[float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in summary(values).items()}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sup_start, sup_end = await supervised(Path(tmp), args.attempts)
    bare_start, bare_end = await bare(args.attempts)
    result = {
        "attempts": args.attempts,
        "supervised_ms": {"started": _row(sup_start), "succeeded": _row(sup_end)},
        "bare_ms": {"spawned": _row(bare_start), "reaped": _row(bare_end)},
    }
    if args.json:
        print(json.dumps({"machine": machine(), **result}, indent=2))
        return
    print(f"{args.attempts} attempts of `true`, one after another (ms: p50 / p99 / max)")
    for label, values in (
        ("supervised: submit -> started", sup_start),
        ("supervised: submit -> SUCCEEDED", sup_end),
        ("bare: spawn", bare_start),
        ("bare: spawn -> reaped", bare_end),
    ):
        s = _row(values)
        print(f"  {label:34} {s['p50']:8} / {s['p99']:8} / {s['max']:8}")


if __name__ == "__main__":
    asyncio.run(main())
