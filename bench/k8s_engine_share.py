"""The engine's and the store's share of a one-step Kubernetes pipeline's CPU: the same one-step pipelines as
bench/k8s_throughput.py, through the real Engine and SQLite store, with an executor that finishes every attempt
at once (InstantExecutor), so what is left is the engine's and the store's own work.

    python bench/k8s_engine_share.py [--pipelines 1000] [--rate N]

``--rate N`` submits N pipelines a second instead of all at once, so that the store's commits come a few at a
time, as they do when pods start and end one by one on a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cpu_s
from odin_core.engine import Engine
from odin_core.executors.instant import InstantExecutor
from odin_core.spec.model import PipelineSpec, TaskSpec
from odin_core.store.sqlite import SqliteStore

WARM_UP = 20


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=0.0, help="pipelines submitted a second (default: all at once)")
    args = ap.parse_args()
    n = args.pipelines
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "odin.db")
        await store.open()
        engine = Engine(store, InstantExecutor(), root_path=Path(tmp), data_path=Path(tmp) / "data")
        await engine.start(adopt=False)
        spec = PipelineSpec("bench", (TaskSpec("step", "odin/task:bench", ("run",)),), job="bench")

        async def one(i: int = 0) -> None:
            if args.rate:
                await asyncio.sleep(i / args.rate)
            run = await engine.submit(spec)
            await engine.wait(run.run_id)

        await asyncio.gather(*(one() for _ in range(WARM_UP)))
        cpu0, t0 = cpu_s(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        cpu, elapsed = cpu_s() - cpu0, time.perf_counter() - t0
        await engine.close()
        await store.close()
    load = os.getloadavg()[0]
    pace = f"{args.rate:g} a second" if args.rate else "at once"
    print(f"{n} one-step pipelines, engine + SQLite store + InstantExecutor, submitted {pace} (load {load:.1f})")
    print(f"CPU per pipeline: {cpu / n * 1000:.2f} ms; {n / elapsed * 60:.0f} pipelines/min")


if __name__ == "__main__":
    asyncio.run(main())
