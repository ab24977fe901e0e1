"""Chaos figures: kill -9 of the core at random moments, and the time to recover a backlog after a restart.

    python bench/chaos.py [--iterations 100] [--seed 1] [--recover-runs 1000] [--store URL]

Part 1 runs the harness of tests/chaos (a diamond with retries, a failing branch and ^outputs
references on the local executor) ``--iterations`` times, each time SIGKILLing the core after a
random delay (sometimes twice) and restarting it, and prints: iterations, kill points, runs
identical to the uninterrupted one, attempts executed twice, processes left behind.

Part 2 submits ``--recover-runs`` runs of a one-task pipeline whose task waits on a file, with
``ODIN_MAX_PARALLEL_TOTAL`` bounding how many tasks run at once, SIGKILLs the core, restarts it and
measures the time until the restarted core holds the lease of every unfinished run, and then until
all of them are DONE once the file appears.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

from harness import Case, Core, chaos
from odin_client.remote import RemoteOdin
from odin_core.store import open_store

WAITER = """\
name: waiter
tasks:
  - name: wait
    image: python:3.12-slim
    command: ["python", "-c", "import os,time\\nwhile not os.path.exists('{gate}'): time.sleep(0.2)"]
"""


async def part_chaos(args: argparse.Namespace, tmp: Path) -> None:
    case = Case(root=tmp / "pipelines", home=tmp / "home", store_url=args.store)
    started = time.monotonic()
    reference, f = await chaos(case, args.iterations, seed=args.seed)
    took = time.monotonic() - started
    kills = sorted(f.kill_points)
    print(f"chaos: {f.iterations} iterations, seed {args.seed}, store {args.store or 'sqlite (embedded)'}")
    print(f"  uninterrupted run: {reference.status}, {len(reference.executions)} executions")
    print(f"  kill points: min {kills[0]:.2f}s, median {statistics.median(kills):.2f}s, max {kills[-1]:.2f}s")
    print(
        f"  identical to the uninterrupted run: {f.identical}/{f.iterations} ({100 * f.identical / f.iterations:.0f}%)"
    )
    print(f"  attempts executed twice: {f.attempts_twice}; orphans: {f.orphans}; wall time {took:.0f}s")
    for problem in f.problems[:20]:
        print(f"  ! {problem}")


async def part_recover(args: argparse.Namespace, tmp: Path) -> None:
    n = args.recover_runs
    gate = tmp / "gate"
    root = tmp / "pipelines-recover"
    (root / "waiter").mkdir(parents=True)
    (root / "waiter" / "main.yml").write_text(textwrap.dedent(WAITER.format(gate=gate)))
    case = Case(root=root, home=tmp / "home-recover", store_url=args.store, env={"ODIN_MAX_PARALLEL_TOTAL": "20"})
    case.home.mkdir(parents=True)
    log = case.home / "core.log"
    core = Core(case, log)
    async with RemoteOdin(core.url) as client:
        t0 = time.monotonic()
        ids = [(await client.submit("waiter")).run_id for _ in range(n)]
        submit_s = time.monotonic() - t0
    core.kill()
    store = await open_store(args.store or f"sqlite:///{case.home / 'odin.db'}")
    try:
        old = {r.owner for r in await store.list_runs(active_only=True)}
        t0 = time.monotonic()
        core = Core(case, log)
        start_s = time.monotonic() - t0
        while True:
            owners = {r.owner for r in await store.list_runs(active_only=True)}
            if not owners & old:
                break
            await asyncio.sleep(0.05)
        adopt_s = time.monotonic() - t0
        gate.touch()
        while len(await store.list_runs(active_only=True)) > 0:
            await asyncio.sleep(0.2)
        finish_s = time.monotonic() - t0
        done = sum(1 for r in await store.list_runs(pattern="waiter") if r.status.value == "DONE")
    finally:
        core.kill()
        await store.close()
    print(f"recovery: {n} unfinished runs (max 20 tasks at once), store {args.store or 'sqlite (embedded)'}")
    print(f"  submitted in {submit_s:.1f}s; restarted core listening after {start_s:.2f}s")
    print(f"  every run adopted {adopt_s:.2f}s after the restart; all {done}/{len(ids)} DONE after {finish_s:.1f}s")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--recover-runs", type=int, default=1000)
    p.add_argument("--store", default="", help="store URL (default: the embedded SQLite store)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="odin-chaos-") as tmp:
        if args.iterations:
            await part_chaos(args, Path(tmp))
        if args.recover_runs:
            await part_recover(args, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
