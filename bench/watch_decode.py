"""Decoding a pod watch's events: a full decode (orjson) against the executor's partial one (decoding.py).

Creates pods on the local control plane (kwok runs them), records the raw lines of a real watch of them
(ADDED, scheduled, running, succeeded, deleting, deleted), then decodes those lines many times each way in
this quiet process, with the garbage collector off while timing: CPU per event, and the dicts and lists
each decode builds (what the collector later walks and a watch's cache holds).

    python bench/watch_decode.py [--pods 3] [--repeat 2000] [--kubeconfig FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import orjson
from k8s_throughput import DURATION_ANNOTATION, cluster_kubeconfig, make_namespace
from odin_core.executors.base import Launch
from odin_core.executors.kubernetes import handler_for
from odin_core.executors.kubernetes.client import KubeClient, load_api_client
from odin_core.executors.kubernetes.decoding import event_decoder
from odin_core.executors.kubernetes.podspec import PodOptions
from odin_core.executors.kubernetes.resources import PODS
from odin_core.settings import KubernetesSettings
from odin_core.spec.model import TaskSpec


async def record(kubeconfig: str, pods: int) -> list[bytes]:
    """The raw lines of a watch that saw ``pods`` pods created, run, and deleted."""
    client = KubeClient(load_api_client(KubernetesSettings(kubeconfig=kubeconfig)), KubernetesSettings(qps=0))
    ns = make_namespace(client)
    handler = handler_for("Pod")
    assert handler is not None
    task = TaskSpec("step", "odin/task:bench", ("run",))
    lines: list[bytes] = []
    resp = await client.stream("watch", PODS.path(ns), {"watch": "true", "labelSelector": "odin.ml/run"}, 120)

    async def read() -> None:
        rest = b""
        async for chunk in resp.content.iter_any():
            *done, rest = (rest + chunk).split(b"\n")
            lines.extend(line for line in done if line.strip())

    reader = asyncio.ensure_future(read())
    try:
        names = [f"decode-{i}" for i in range(pods)]
        for name in names:
            opts = PodOptions({"odin.ml/run": "decode"}, {DURATION_ANNOTATION: "200ms"}, (), handler.container)
            body = handler.manifests(Launch(name, task, 1, work_path="/", run_path="/"), name, opts)[0]
            await client.request("create", PODS.path(ns), body=body)
        await until(lines, pods, lambda ev: (ev["object"].get("status") or {}).get("phase") == "Succeeded")
        for name in names:
            await client.request("delete", PODS.path(ns, name))
        await until(lines, pods, lambda ev: ev["type"] == "DELETED")
    finally:
        reader.cancel()
        resp.close()
        await client.request("delete", f"/api/v1/namespaces/{ns}")
        await client.aclose()
    return lines


async def until(lines: list[bytes], pods: int, seen: Any) -> None:
    """Wait (30 s at most) until ``seen(event)`` held for an event of each of the ``pods`` pods."""
    for _ in range(300):
        events = [orjson.loads(line) for line in lines]
        if len({ev["object"]["metadata"]["name"] for ev in events if seen(ev)}) >= pods:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the pods did not get there within 30 s")


def containers(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(containers(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(containers(v) for v in value)
    return 0


def timed(decode: Any, lines: list[bytes], repeat: int) -> float:
    """Median over 5 runs of the CPU per event, in µs (collector off)."""
    runs = []
    for _ in range(5):
        gc.collect()
        gc.disable()
        try:
            t = time.thread_time()
            for _ in range(repeat):
                for line in lines:
                    decode(line)
            runs.append((time.thread_time() - t) / (repeat * len(lines)) * 1e6)
        finally:
            gc.enable()
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2000, help="decodes of every recorded line, per timing run")
    ap.add_argument("--kubeconfig")
    args = ap.parse_args()
    lines = asyncio.run(record(cluster_kubeconfig(args.kubeconfig), args.pods))
    sizes = [len(line) for line in lines]
    print(f"{len(lines)} watch events of {args.pods} pods, {min(sizes)}-{max(sizes)} bytes each")
    partial = event_decoder(PODS)
    for name, decode in (("full (orjson)", orjson.loads), ("partial (decoding.py)", partial)):
        built = statistics.mean(containers(decode(line)) for line in lines)
        print(f"{name:22} {timed(decode, lines, args.repeat):6.2f} µs per event, {built:5.1f} dicts and lists")


if __name__ == "__main__":
    main()
