"""CPU per record of the stores' JSON encoding (``odin_core.store.common.dumps``) against the standard library's.

Every commit encodes the run's changed records and its events: 10.9 ``dumps`` calls per one-step pipeline
on the Kubernetes executor at QPS 1,000 (the call count in the ``--profile`` of ``bench/k8s_throughput.py
--pipelines 1000 --qps 1000 --burst 1000 --only odin``). Encoded here: a RUNNING task
record and its event, as a worker writes them, ``--n`` times each; process CPU time.

    .venv/bin/python bench/store_json.py [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine
from odin_core.model import Event, TaskRecord, TaskStatus
from odin_core.store.common import dumps


def records() -> list[dict[str, Any]]:
    run, resource = "bench-3f2a9c1d", "bench-3f2a9c1d-step-1"
    task = TaskRecord(
        run, "step", TaskStatus.RUNNING, 1, image="odin/task:bench", command=("run",), resource_id=resource,
        submitted=1764677400.12, started=1764677401.5, message="running on node kwok-node-0",
    )  # fmt: skip
    data = {"attempt": 1, "resource_id": resource}
    event = Event(run, 4, 1764677401.5, "task", "RUNNING", "step", task.message, data)
    return [task.to_record(), event.to_record()]


def per_record_us(encode: Callable[[Any], str], recs: list[dict[str, Any]], n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        for r in recs:
            encode(r)
    return (time.process_time() - t0) / (n * len(recs)) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    recs = records()
    stdlib = per_record_us(lambda v: json.dumps(v, separators=(",", ":"), default=str), recs, args.n)
    ours = per_record_us(dumps, recs, args.n)
    print(f"{machine()}; {args.n} x {len(recs)} records")
    print(f"json.dumps (compact): {stdlib:.2f} µs per record")
    print(f"store dumps:          {ours:.2f} µs per record ({stdlib / ours:.1f}x)")


if __name__ == "__main__":
    main()
