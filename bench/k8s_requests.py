"""CPU per API request of the executor's client: GETs of one object through ``KubeClient.request``, in flight
``--concurrency`` at a time, on a running cluster (``make cluster-up``).

What it counts: this process's CPU (user + system) over the requests, divided by their number; the
client-side rate limit is lifted (QPS and burst 100,000), so this is the client's own cost per exchange
(aiohttp, TLS, JSON decode of the answer), with the API server on the same machine. On the local control
plane, the CPU of each of its processes over the same window too (what a request costs the server; their
idle work over the window included).

    python bench/k8s_requests.py --kubeconfig ~/.cache/odin/cluster/kubeconfig [--requests 3000] [--concurrency 32]
    python bench/k8s_requests.py --target pod-log --raw   # a running pod's log, as a capture reads it
    python bench/k8s_requests.py --target pod --raw       # the same pod's object, for comparison
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
from k8s_throughput import DURATION_ANNOTATION, ControlPlane, make_namespace
from odin_core.executors.kubernetes.client import KubeClient, load_api_client
from odin_core.settings import KubernetesSettings


async def running_pod(client: KubeClient, ns: str) -> str:
    """A pod (kwok, running for an hour) in ``ns``, once it runs (its log is served from then on): its path."""
    pod = {
        "metadata": {"name": "bench", "annotations": {DURATION_ANNOTATION: "1h"}},
        "spec": {"containers": [{"name": "main", "image": "odin/task:bench"}]},
    }
    path = f"/api/v1/namespaces/{ns}/pods"
    await client.request("create", path, body=pod)
    for _ in range(300):
        got = await client.request("get", f"{path}/bench")
        if (got.get("status") or {}).get("phase") == "Running":
            return f"{path}/bench"
        await asyncio.sleep(0.1)
    raise TimeoutError(f"pod bench in {ns} is not Running after 30 s")


async def measure(
    client: KubeClient, args: argparse.Namespace, path: str, raw: bool, plane: ControlPlane
) -> tuple[float, float, dict[str, float]]:
    """CPU of this process, wall time, and the control plane's CPU over the requests."""
    # warm: every connection opened (one request in flight per connection), tokens read
    await asyncio.gather(*(client.request("get", path, raw=raw) for _ in range(args.concurrency)))
    left = args.requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await client.request("get", path, raw=raw)

    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    server0, cpu0, t0 = plane.cpu(), cpu_s(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    if profiler is not None:
        profiler.disable()
    cpu, wall, server = cpu_s() - cpu0, time.perf_counter() - t0, plane.since(server0)
    if profiler is not None:
        profiler.dump_stats(args.profile)
    return cpu, wall, server


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", default=os.path.expanduser("~/.cache/odin/cluster/kubeconfig"))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--path", default="/api/v1/namespaces/default", help="what each request GETs")
    ap.add_argument(
        "--target",
        choices=("path", "pod", "pod-log"),
        default="path",
        help="GET --path, or a running pod (kwok) made in a fresh namespace, or that pod's log",
    )
    ap.add_argument("--raw", action="store_true", help="leave the answer undecoded (as creates and deletes do)")
    ap.add_argument("--profile", help="write a cProfile (CPU time) of the requests to this file")
    args = ap.parse_args()
    settings = KubernetesSettings(kubeconfig=args.kubeconfig, qps=100_000, burst=100_000)
    client = KubeClient(load_api_client(settings), settings)
    plane = ControlPlane(args.kubeconfig)
    ns = make_namespace(client) if args.target != "path" else None
    path, raw = args.path, args.raw or args.target == "pod-log"  # a log is text
    try:
        if ns is not None:
            pod = await running_pod(client, ns)
            path = f"{pod}/log" if args.target == "pod-log" else pod
        cpu, wall, server = await measure(client, args, path, raw, plane)
    finally:
        if ns is not None:
            await client.request("delete", f"/api/v1/namespaces/{ns}")
        await client.aclose()
    undecoded = " (answers not decoded)" if raw else ""
    print(f"{args.requests} GETs of {path}, {args.concurrency} in flight{undecoded} (load {os.getloadavg()[0]:.1f})")
    print(f"CPU per request: {cpu / args.requests * 1e6:.0f} µs; {args.requests / wall:.0f} requests/s")
    if server:
        parts = ", ".join(f"{k} {v / args.requests * 1e6:.0f}" for k, v in sorted(server.items(), key=lambda x: -x[1]))
        print(f"control plane CPU per request (µs, idle work included): {parts}")


if __name__ == "__main__":
    asyncio.run(main())
