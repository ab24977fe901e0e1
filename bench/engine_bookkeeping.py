"""Engine bookkeeping for very large DAGs with a no-op executor.

Runs 10,000- and 100,000-task layered DAGs (each task depends on two tasks of the layer before)
through the real engine and the real SQLite store, and reports total time, transitions per
second and peak memory. A transition is one persisted task or run state change (one event).

    .venv/bin/python bench/engine_bookkeeping.py [--sizes 10000 100000] [--store URL] [--json]

``--store`` runs on another store (e.g. ``postgresql://odin@127.0.0.1:PORT/bench`` from
``python3 tools/services/launch.py postgres``) instead of a fresh SQLite file.
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
from _common import layered_dag, machine, peak_rss_mib
from odin_core.engine import Engine
from odin_core.executors.instant import InstantExecutor
from odin_core.store import JobStore, open_store
from odin_core.store.sqlite import SqliteStore


async def one(n: int, tmp: Path, url: str = "") -> dict[str, float]:
    spec = layered_dag(n)
    store: JobStore = await open_store(url) if url else SqliteStore(tmp / f"bench-{n}.db")
    if not url:
        await store.open()
    engine = Engine(store, InstantExecutor(), root_path=tmp, data_path=tmp / "data")
    await engine.start(adopt=False)
    t0 = time.perf_counter()
    run = await engine.submit(spec)
    t_submit = time.perf_counter() - t0
    final = await engine.wait(run.run_id)
    total = time.perf_counter() - t0
    transitions = await store.last_seq(run.run_id)
    await engine.close()
    await store.close()
    assert final.status.value == "DONE", final
    return {
        "tasks": n,
        "edges": sum(len(t.depends) for t in spec.tasks),
        "submit_s": round(t_submit, 3),
        "total_s": round(total, 3),
        "transitions": transitions,
        "transitions_per_s": round(transitions / total),
        "us_per_task": round(total / n * 1e6, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--store", default="", help="store URL (default: a fresh SQLite file per size)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            results.append(await one(n, Path(tmp), args.store))
    if args.json:
        print(json.dumps({"machine": machine(), "results": results}, indent=2))
        return
    print(
        f"{'tasks':>8} {'edges':>8} {'submit s':>9} {'total s':>8} {'transitions':>11} {'trans/s':>8} "
        f"{'us/task':>8} {'peak MiB':>9}"
    )
    for r in results:
        print(
            f"{r['tasks']:>8} {r['edges']:>8} {r['submit_s']:>9} {r['total_s']:>8} {r['transitions']:>11} "
            f"{r['transitions_per_s']:>8} {r['us_per_task']:>8} {r['peak_rss_mib']:>9}"
        )


if __name__ == "__main__":
    asyncio.run(main())
