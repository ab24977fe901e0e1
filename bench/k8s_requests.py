"""CPU per API request of the executor's client: GETs of one object through ``KubeClient.request``, in flight
``--concurrency`` at a time, on a running cluster (``make cluster-up``).

What it counts: this process's CPU (user + system) over the requests, divided by their number; the
client-side rate limit is lifted (QPS and burst 100,000), so this is the client's own cost per exchange
(aiohttp, TLS, JSON decode of the answer), with the API server on the same machine.

    python bench/k8s_requests.py --kubeconfig ~/.cache/odin/cluster/kubeconfig [--requests 3000] [--concurrency 32]
    python bench/k8s_requests.py --kubeconfig ... --profile req.pstats   # then python -m pstats req.pstats
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cpu_s
from odin_core.executors.kubernetes.client import KubeClient, load_api_client
from odin_core.settings import KubernetesSettings


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", default=os.path.expanduser("~/.cache/odin/cluster/kubeconfig"))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--path", default="/api/v1/namespaces/default", help="what each request GETs")
    ap.add_argument("--raw", action="store_true", help="leave the answer undecoded (as creates and deletes do)")
    ap.add_argument("--profile", help="write a cProfile (CPU time) of the requests to this file")
    args = ap.parse_args()
    settings = KubernetesSettings(kubeconfig=args.kubeconfig, qps=100_000, burst=100_000)
    client = KubeClient(load_api_client(settings), settings)
    # warm: every connection opened (one request in flight per connection), tokens read
    await asyncio.gather(*(client.request("get", args.path) for _ in range(args.concurrency)))
    left = args.requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await client.request("get", args.path, raw=args.raw)

    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    cpu0, t0 = cpu_s(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    cpu, wall = cpu_s() - cpu0, time.perf_counter() - t0
    await client.aclose()
    raw = " (answers not decoded)" if args.raw else ""
    print(f"{args.requests} GETs of {args.path}, {args.concurrency} in flight{raw} (load {os.getloadavg()[0]:.1f})")
    print(f"CPU per request: {cpu / args.requests * 1e6:.0f} µs; {args.requests / wall:.0f} requests/s")


if __name__ == "__main__":
    asyncio.run(main())
