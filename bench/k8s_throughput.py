"""Kubernetes executor throughput: one-step pipelines per minute from one core process (kwok nodes).

Side by side in one run: (1) the floor, the same pods created straight through the API with the
same client-side rate limit and watched to completion; (2) Odin, one-step pipelines through the
real Engine (SQLite store) and the Kubernetes executor. Prints pipelines/min, API requests per task,
submit→Running p50/p99, and the CPU and memory of this process. Loopback only, bounded in time.

    python bench/k8s_throughput.py [--pipelines 1000] [--qps 50 --burst 100] [--kubeconfig PATH]

Without --kubeconfig a local control plane is started (tools/k8s, state in $ODIN_K8S_STATE).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import resource
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentile
from odin_core.engine import Engine
from odin_core.executors.kubernetes import KubernetesExecutor
from odin_core.executors.kubernetes.client import KubeClient, load_api_client
from odin_core.executors.kubernetes.resources import PODS
from odin_core.model import AttemptUpdate, RunStatus, TaskStatus
from odin_core.settings import KubernetesSettings
from odin_core.spec.model import PipelineSpec, TaskSpec
from odin_core.store import JobStore, open_store
from odin_core.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]
DURATION_ANNOTATION = "odin.ml/simulate-duration"


def usage() -> tuple[float, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rss_kib = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() // 1024
    return ru.ru_utime + ru.ru_stime, rss_kib


def cluster_kubeconfig(given: str | None) -> str:
    if given:
        return given
    spec = importlib.util.spec_from_file_location("odin_k8s_cluster", REPO / "tools" / "k8s" / "cluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    cluster, _ = module.ensure_cluster()
    return str(cluster.kubeconfig)


def make_namespace(client: KubeClient) -> str:
    name = f"odin-bench-{uuid.uuid4().hex[:6]}"
    client.request_sync("create", "/api/v1/namespaces", body={"metadata": {"name": name}})
    path = f"/api/v1/namespaces/{name}/serviceaccounts/default"
    for _ in range(200):
        try:
            client.request_sync("get", path)
            return name
        except Exception:
            time.sleep(0.1)
    raise TimeoutError("no default ServiceAccount")


# -- the floor ---------------------------------------------------------------------------------------


def floor_pod(name: str, duration: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"odin.ml/run": "floor"}, "annotations": {DURATION_ANNOTATION: duration}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "odin/task:bench"}]},
    }


async def floor(client: KubeClient, ns: str, n: int, duration: str, timeout_s: float) -> dict:
    """Create n pods (same rate limit), watch them to Succeeded, then delete them."""
    submitted: dict[str, float] = {}
    running: dict[str, float] = {}
    done: set[str] = set()
    finished = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def on_event(obj: dict) -> None:
        name, phase = obj["metadata"]["name"], (obj.get("status") or {}).get("phase")
        if phase in ("Running", "Succeeded") and name in submitted:
            running.setdefault(name, time.perf_counter())
        if phase == "Succeeded":
            done.add(name)
            if len(done) >= n:
                finished.set()

    def watch() -> None:
        listed = client.request_sync("list", PODS.path(ns), query={"limit": 1})
        rv = listed["metadata"]["resourceVersion"]
        query = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": int(timeout_s)}
        resp = client.stream_sync("watch", PODS.path(ns), query, timeout_s + 5)
        buf = b""
        for chunk in resp.stream(65536):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                loop.call_soon_threadsafe(on_event, json.loads(line)["object"])
            if stop.is_set():
                return

    threading.Thread(target=watch, daemon=True).start()
    await asyncio.sleep(0.3)
    cpu0, _ = usage()
    t0 = time.perf_counter()

    async def create(i: int) -> None:
        name = f"floor-{i}"
        submitted[name] = time.perf_counter()
        await client.request("create", PODS.path(ns), body=floor_pod(name, duration))

    await asyncio.gather(*(create(i) for i in range(n)))
    await asyncio.wait_for(finished.wait(), timeout_s)
    elapsed = time.perf_counter() - t0
    cpu1, rss = usage()
    stop.set()
    await asyncio.gather(*(client.request("delete", PODS.path(ns, f"floor-{i}")) for i in range(n)))
    lat = [running[k] - submitted[k] for k in running]
    return {
        "elapsed_s": elapsed,
        "per_min": n / elapsed * 60,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "cpu_s": cpu1 - cpu0,
        "rss_mib": rss / 1024,
    }


# -- Odin ------------------------------------------------------------------------------------------------


async def odin(settings: KubernetesSettings, n: int, timeout_s: float, data: Path, store_url: str = "") -> dict:
    store: JobStore = await open_store(store_url) if store_url else SqliteStore(data / "odin.db")
    if not store_url:
        await store.open()
    executor = KubernetesExecutor(data / "runs", settings)
    engine = Engine(store, executor, root_path=data, data_path=data / "runs")
    await engine.start(adopt=False)
    submitted: dict[str, float] = {}
    running: dict[str, float] = {}
    bound = executor._report

    def record(update: AttemptUpdate) -> None:
        if update.status is TaskStatus.RUNNING:
            running.setdefault(update.run_id, time.perf_counter())
        if bound is not None:
            bound(update)

    executor._report = record
    spec = PipelineSpec("bench", (TaskSpec("step", "odin/task:bench", ("run",)),), job="bench")
    executor.informer(PODS)
    await asyncio.sleep(0.3)
    cpu0, _ = usage()
    t0 = time.perf_counter()

    async def one() -> RunStatus:
        t = time.perf_counter()
        run = await engine.submit(spec)
        submitted[run.run_id] = t
        return (await engine.wait(run.run_id)).status

    statuses = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), timeout_s)
    elapsed = time.perf_counter() - t0
    cpu1, rss = usage()
    reads_before_cleanup = dict(executor.api_requests)
    for run_id in submitted:
        await executor.cleanup(run_id, list(await store.get_tasks(run_id)))
    requests = executor.api_requests
    lat = [running[k] - submitted[k] for k in running if k in submitted]
    await engine.close()
    await executor.close()
    await store.close()
    return {
        "elapsed_s": elapsed,
        "per_min": n / elapsed * 60,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "cpu_s": cpu1 - cpu0,
        "rss_mib": rss / 1024,
        "done": sum(s is RunStatus.DONE for s in statuses),
        "requests": requests,
        "before_cleanup": reads_before_cleanup,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", type=int, default=1000)
    ap.add_argument("--qps", type=float, default=50.0)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--duration", default="200ms", help="simulated run time of each pod (kwok)")
    ap.add_argument("--capture-logs", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--kubeconfig")
    ap.add_argument("--store", default="", help="store URL (default: a fresh SQLite file), e.g. postgresql://...")
    args = ap.parse_args()
    kubeconfig = cluster_kubeconfig(args.kubeconfig)
    base = KubernetesSettings(kubeconfig=kubeconfig, qps=args.qps, burst=args.burst)
    admin = KubeClient(load_api_client(base), KubernetesSettings(kubeconfig=kubeconfig, qps=0))
    ns = make_namespace(admin)
    n = args.pipelines
    print(
        f"{n} one-step pipelines, client QPS {args.qps:g} burst {args.burst}, pod run time {args.duration}, "
        f"log capture {'on' if args.capture_logs else 'off'}, namespace {ns}"
    )
    try:
        limited = KubeClient(load_api_client(base), base)
        f = await floor(limited, ns, n, args.duration, args.timeout)
        settings = KubernetesSettings(
            kubeconfig=kubeconfig,
            namespace=ns,
            qps=args.qps,
            burst=args.burst,
            capture_logs=args.capture_logs,
            pod_annotations={DURATION_ANNOTATION: args.duration},
        )
        with tempfile.TemporaryDirectory() as tmp:
            o = await odin(settings, n, args.timeout, Path(tmp), args.store)
    finally:
        admin.request_sync("delete", f"/api/v1/namespaces/{ns}")
    req = o["requests"]
    writes = sum(v for k, v in req.items() if k in ("create", "delete", "patch", "update", "deletecollection"))
    print(f"{'':24}{'floor (plain pods)':>20}{'odin':>14}")
    print(f"{'pipelines/min':24}{f['per_min']:>20.0f}{o['per_min']:>14.0f}")
    print(f"{'wall time (s)':24}{f['elapsed_s']:>20.1f}{o['elapsed_s']:>14.1f}")
    print(f"{'submit->Running p50 (ms)':24}{f['p50'] * 1000:>20.0f}{o['p50'] * 1000:>14.0f}")
    print(f"{'submit->Running p99 (ms)':24}{f['p99'] * 1000:>20.0f}{o['p99'] * 1000:>14.0f}")
    print(f"{'CPU of this process (s)':24}{f['cpu_s']:>20.1f}{o['cpu_s']:>14.1f}")
    print(f"{'RSS of this process (MiB)':24}{f['rss_mib']:>20.0f}{o['rss_mib']:>14.0f}")
    print(f"odin runs DONE: {o['done']}/{n}; API requests: {req}")
    print(
        f"per task: {sum(req.values()) / n:.2f} requests, {writes / n:.2f} writes (create + delete at clean-up); "
        f"before clean-up: {o['before_cleanup']}"
    )


if __name__ == "__main__":
    asyncio.run(main())
