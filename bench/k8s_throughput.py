"""Kubernetes executor throughput and latency: one-step pipelines from one core process (kwok nodes).

Side by side in one run, with the same client and the same client-side rate limit:
(1) the floor: the same objects created straight through the API, watched to completion, deleted;
(2) Odin: one-step pipelines through the real Engine (SQLite store) and the Kubernetes executor, each
run cleaned up (``cleanup``) as soon as it ends.

What is counted: the wall time runs from the first submission until the last object is deleted, so
both columns include their clean-up deletes (the floor: create + delete per object; Odin: create, the
log read of its capture, delete). CPU is this process's (user + system) over the same window; on a
local control plane (``make cluster-up``: the pids in ``state.json`` beside the kubeconfig) the CPU of
each of its processes (API server, etcd, kwok, scheduler, controller manager, training operator) over
the window too, which is what each side costs the server.
On the 2-core test machine the control plane shares the CPUs, and one round's figures vary by 15% or
more from run to run; ``--rounds N`` runs floor and Odin alternately N times (the floor first in odd
rounds, Odin first in even ones: the side that runs second pays for the control plane's work left from
the first) and reports the medians.

    python bench/k8s_throughput.py --pipelines 1000 --qps 1000 --burst 1000     # throughput, limit lifted
    python bench/k8s_throughput.py --pipelines 1000 --qps 1000 --burst 1000 --rounds 5   # medians of 5 rounds
    python bench/k8s_throughput.py --pipelines 1000                             # throughput at QPS 50
    python bench/k8s_throughput.py --pipelines 300 --rate 10                    # latency at 10 pipelines/s
    python bench/k8s_throughput.py --pipelines 200 --kind PyTorchJob --workers 2 --qps 1000 --burst 1000
    python bench/k8s_throughput.py --pipelines 1000 --qps 1000 --burst 1000 --only odin --profile odin.pstats \
        --time-decode     # where Odin's CPU goes: python -m pstats odin.pstats, then sort tottime, stats 40

Without --kubeconfig a local control plane is started (tools/k8s, state in $ODIN_K8S_STATE).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.util
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import fs_inodes
from _common import cpu_s, percentile, sys_s
from odin_core.engine import Engine
from odin_core.executors.base import Launch
from odin_core.executors.kubernetes import KubernetesExecutor, handler_for
from odin_core.executors.kubernetes.client import KubeClient, load_api_client
from odin_core.executors.kubernetes.informer import Informer
from odin_core.executors.kubernetes.resources import PODS, Resource
from odin_core.executors.kubernetes.status import is_true
from odin_core.model import AttemptUpdate, RunStatus, TaskStatus
from odin_core.settings import KubernetesSettings
from odin_core.spec.ids import new_pipe_id
from odin_core.spec.model import PipelineSpec, TaskSpec
from odin_core.store import JobStore, open_store
from odin_core.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]
DURATION_ANNOTATION = "odin.ml/simulate-duration"
IMAGE = "odin/task:bench"
JOB = "bench"  # the pipelines' name and job: Odin's run ids are bench-<8 chars>, and so are the floor's


def proc_cpu(stat: str) -> float | None:
    """CPU seconds (user + system) from a /proc ``stat`` file (a process's or a thread's); None if it is gone."""
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, by thread name."""
    found: dict[str, float] = {}
    for thread in threading.enumerate():
        if (cpu := proc_cpu(f"/proc/self/task/{thread.native_id}/stat")) is not None:
            found[thread.name] = found.get(thread.name, 0.0) + cpu
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class ControlPlane:
    """CPU of the local control plane's processes over a window: what each side costs the server.

    ``make cluster-up`` writes their pids to ``state.json`` beside the kubeconfig; for any other
    cluster nothing is known and every figure is empty."""

    def __init__(self, kubeconfig: str) -> None:
        try:
            data = json.loads((Path(kubeconfig).parent / "state.json").read_text())
        except (OSError, ValueError):  # not a local cluster, or its state caught mid-write: nothing known
            data = {}
        pids: dict[str, int] = dict(data.get("pids") or {})
        if (operator := data.get("operator")) and operator.get("pid"):
            pids["training-operator"] = operator["pid"]
        self.pids = {name: pid for name, pid in pids.items() if _comm(pid) == name[:15]}  # not a reused pid

    def cpu(self) -> dict[str, float]:
        """CPU seconds of each process now."""
        found = {name: proc_cpu(f"/proc/{pid}/stat") for name, pid in self.pids.items()}
        return {name: cpu for name, cpu in found.items() if cpu is not None}

    def since(self, before: dict[str, float]) -> dict[str, float]:
        return {name: cpu - before[name] for name, cpu in self.cpu().items() if name in before}


class DecodeTimer:
    """Wraps the watches' event decoding (``Informer.decode``) to time each call in CPU (``time.thread_time``)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._real = Informer.decode

    def __enter__(self) -> DecodeTimer:
        real, times = self._real, self.times

        def timed(informer: Informer, raw: bytes) -> Any:
            t = time.thread_time()
            value = real(informer, raw)
            times.append(time.thread_time() - t)
            return value

        Informer.decode = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *_exc: object) -> None:
        Informer.decode = self._real  # type: ignore[method-assign]

    def summary(self) -> str:
        xs = sorted(self.times)
        if not xs:
            return "no watch events decoded"
        us = [percentile(xs, p) * 1e6 for p in (50, 99)]
        return f"{len(xs)} watch events decoded in {sum(xs):.2f} s CPU: p50 {us[0]:.0f} µs, p99 {us[1]:.0f} µs"


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


@dataclass
class Result:
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    rss_mib: float = 0.0
    sys_s: float = 0.0  # of cpu_s, in the kernel
    latencies: list[float] = field(default_factory=list)
    done: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    events: int = 0  # Odin: events recorded in the store, all runs together
    commits: int = 0  # Odin: store commits (fenced writes of a run's transitions) over the window
    reasons: int = 0  # Odin: of them, those recording only why a pending attempt still waits (its reason changed)
    threads: dict[str, float] = field(default_factory=dict)  # Odin: CPU seconds of each thread over the window
    server: dict[str, float] = field(default_factory=dict)  # CPU seconds of each control-plane process, same window
    server_cpu_s: float = 0.0  # their sum (in a median of rounds: the median of the rounds' sums)

    def __post_init__(self) -> None:
        self.server_cpu_s = self.server_cpu_s or sum(self.server.values())

    def per_min(self, n: int) -> float:
        return n / self.elapsed_s * 60 if self.elapsed_s else float("nan")  # nan: this side did not run


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
    for _ in range(300):
        try:
            client.request_sync("get", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return name
        except Exception:
            time.sleep(0.1)
    raise TimeoutError("no default ServiceAccount")


def the_task(kind: str, workers: int) -> TaskSpec:
    return TaskSpec("step", IMAGE, ("run",), resource_type=kind, num_workers=workers)


async def paced(n: int, rate: float | None, one: Callable[[int], Awaitable[None]]) -> None:
    """``one(i)`` for i < n: all at once, or ``rate`` a second."""
    if not rate:
        await asyncio.gather(*(one(i) for i in range(n)))
        return
    started, jobs = time.perf_counter(), []
    for i in range(n):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        jobs.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*jobs)


# -- the floor ---------------------------------------------------------------------------------------


class Floor:
    """Create the objects, watch them (one watch on the loop), delete each as soon as it is done."""

    def __init__(self, client: KubeClient, settings: KubernetesSettings, task: TaskSpec, data: Path) -> None:
        self.client, self.ns, self.data = client, settings.namespace, data
        self.handler = handler_for(task.resource_type)
        assert self.handler is not None
        self.executor = KubernetesExecutor(data / "runs", settings)  # only to make the objects (no I/O)
        self.resource: Resource = self.handler.resource
        self.task = task
        self.submitted: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.finished: dict[str, asyncio.Future[None]] = {}
        self.loop = asyncio.get_running_loop()

    def manifest(self, i: int) -> dict[str, Any]:
        """What Odin creates for the same task: the executor makes the objects of a launch made as the engine
        makes it (the ``ODIN_*`` env, identity labels, annotations), for a run id drawn as the engine draws
        one (same length) and the same paths under the data directory as Odin's side."""
        run_id = new_pipe_id(JOB)
        runs = self.data / "runs"
        launch = Launch.of(run_id, self.task, 1, work_path=str(self.data / JOB), run_path=str(runs / run_id))
        return self.executor.objects(launch, self.handler)[2][0]

    def on_event(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name not in self.submitted:
            return
        if self.resource == PODS:
            phase = (obj.get("status") or {}).get("phase")
            running, done = phase in ("Running", "Succeeded"), phase == "Succeeded"
        else:
            running, done = is_true(obj, "Running") or is_true(obj, "Succeeded"), is_true(obj, "Succeeded")
        if running:
            self.running.setdefault(name, time.perf_counter())
        future = self.finished.get(name)
        if done and future is not None and not future.done():
            future.set_result(None)

    async def one(self, i: int) -> None:
        m = self.manifest(i)
        name = m["metadata"]["name"]
        self.finished[name] = self.loop.create_future()
        self.submitted[name] = time.perf_counter()
        await self.client.request("create", self.resource.path(self.ns), body=m)
        await self.finished[name]
        await self.client.request("delete", self.resource.path(self.ns, name))

    async def run(self, n: int, rate: float | None, plane: ControlPlane) -> Result:
        # One watch, resumed and relisted as needed (the executor's Informer: a watch the API server
        # closes under load, e.g. for a slow reader, must not lose the floor its events).
        watch = Informer(self.client, self.resource, self.ns, "odin.ml/run", lambda _kind, obj: self.on_event(obj))
        watch.start()
        await asyncio.wait_for(watch.synced.wait(), 60)
        server0, cpu0, sys0, t0 = plane.cpu(), cpu_s(), sys_s(), time.perf_counter()
        await paced(n, rate, self.one)
        elapsed, cpu, server = time.perf_counter() - t0, cpu_s() - cpu0, plane.since(server0)
        kernel = sys_s() - sys0
        await watch.aclose()
        lat = [self.running[k] - self.submitted[k] for k in self.running]
        return Result(elapsed, cpu, rss_mib(), kernel, lat, n, dict(self.client.api_requests), server=server)


# -- Odin ------------------------------------------------------------------------------------------------


async def odin(
    settings: KubernetesSettings,
    task: TaskSpec,
    n: int,
    rate: float | None,
    data: Path,
    plane: ControlPlane,
    store_url: str = "",
    profile: str | None = None,
) -> Result:
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
    commits = reasons = 0
    commit = store.commit

    async def counted(lease: Any, run: Any, tasks: Any, events: Any, *args: Any, **kw: Any) -> None:
        nonlocal commits, reasons
        commits += 1
        reasons += run is None and bool(tasks) and all(t.status is TaskStatus.PENDING and t.message for t in tasks)
        await commit(lease, run, tasks, events, *args, **kw)

    store.commit = counted  # type: ignore[method-assign]
    spec = PipelineSpec(JOB, (task,), job=JOB)
    await executor.informer(PODS)
    await executor.informer(executor_resource(task))
    await asyncio.sleep(0.5)
    statuses: list[RunStatus] = []

    async def one(_i: int) -> None:
        t = time.perf_counter()
        run = await engine.submit(spec)
        submitted[run.run_id] = t
        final = await engine.wait(run.run_id)
        statuses.append(final.status)
        await executor.cleanup(run.run_id, list(await store.get_tasks(run.run_id)))

    # the loop's CPU by function (thread_time: CPU, not wall time; the profiler slows Python calls, not C)
    profiler = cProfile.Profile(time.thread_time) if profile else None
    threads0, server0 = thread_cpu(), plane.cpu()
    cpu0, sys0, t0 = cpu_s(), sys_s(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    await paced(n, rate, one)
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    elapsed, cpu, server = time.perf_counter() - t0, cpu_s() - cpu0, plane.since(server0)
    kernel = sys_s() - sys0
    latencies = [running[k] - submitted[k] for k in running if k in submitted]
    result = Result(elapsed, cpu, rss_mib(), kernel, latencies, server=server)
    result.threads = {k: v - threads0.get(k, 0.0) for k, v in thread_cpu().items()}
    result.done = sum(s is RunStatus.DONE for s in statuses)
    result.requests = executor.api_requests
    result.events = sum([await store.last_seq(run_id) for run_id in submitted])
    result.commits, result.reasons = commits, reasons
    await engine.close()
    await executor.close()
    await store.close()
    return result


def executor_resource(task: TaskSpec) -> Resource:
    handler = handler_for(task.resource_type)
    assert handler is not None
    return handler.resource


# -- report ----------------------------------------------------------------------------------------------


def bound_per_min(n: int, requests_per_task: int, qps: float, burst: int) -> float:
    """The best a task of ``requests_per_task`` requests can do under the token bucket (no other cost)."""
    seconds = max(n * requests_per_task - burst, 0) / qps
    return float("inf") if seconds == 0 else n / seconds * 60


def median(results: list[Result]) -> Result:
    """One Result for several rounds: the medians of each figure, every round's latencies, the largest RSS."""
    if len(results) == 1:
        return results[0]
    mid = statistics.median
    return Result(
        elapsed_s=mid([r.elapsed_s for r in results]),
        cpu_s=mid([r.cpu_s for r in results]),
        rss_mib=max(r.rss_mib for r in results),
        sys_s=mid([r.sys_s for r in results]),
        latencies=[x for r in results for x in r.latencies],
        done=round(mid([r.done for r in results])),
        requests={k: round(mid([r.requests.get(k, 0) for r in results])) for k in results[-1].requests},
        events=round(mid([r.events for r in results])),
        commits=round(mid([r.commits for r in results])),
        reasons=round(mid([r.reasons for r in results])),
        threads={k: mid([r.threads.get(k, 0.0) for r in results]) for k in {k for r in results for k in r.threads}},
        server={k: mid([r.server.get(k, 0.0) for r in results]) for k in {k for r in results for k in r.server}},
        server_cpu_s=mid([r.server_cpu_s for r in results]),
    )


def report_rounds(n: int, rounds: list[tuple[Result, Result]]) -> None:
    """A line per round (floor and Odin ran one after the other in each, taking turns going first), so the
    spread is visible."""
    for i, (f, o) in enumerate(rounds, start=1):
        plane = (
            f" (control plane {f.server_cpu_s / n * 1000:.1f} / {o.server_cpu_s / n * 1000:.1f} ms)"
            if f.server or o.server
            else ""
        )
        print(
            f"round {i}: floor {f.per_min(n):.0f}/min {f.cpu_s / n * 1000:.2f} ms CPU; "
            f"odin {o.per_min(n):.0f}/min {o.cpu_s / n * 1000:.2f} ms CPU; odin/floor {o.per_min(n) / f.per_min(n):.1%}"
            f"{plane}"
        )
    print(f"medians of {len(rounds)} rounds:")


def report(args: argparse.Namespace, f: Result, o: Result, rounds: int = 1) -> None:
    n = args.pipelines
    each = " (medians over the rounds, each taken on its own: parts need not add up)" if rounds > 1 else ""
    print(f"{'':28}{'floor':>14}{'odin':>14}")
    rows = [
        ("pipelines/min", f.per_min(n), o.per_min(n), "{:.0f}"),
        ("wall time incl. deletes (s)", f.elapsed_s, o.elapsed_s, "{:.1f}"),
        ("submit->Running p50 (ms)", percentile(f.latencies, 50) * 1000, percentile(o.latencies, 50) * 1000, "{:.0f}"),
        ("submit->Running p99 (ms)", percentile(f.latencies, 99) * 1000, percentile(o.latencies, 99) * 1000, "{:.0f}"),
        ("CPU of this process (s)", f.cpu_s, o.cpu_s, "{:.2f}"),
        ("CPU per pipeline (ms)", f.cpu_s / n * 1000, o.cpu_s / n * 1000, "{:.2f}"),
        ("  of it in the kernel (ms)", f.sys_s / n * 1000, o.sys_s / n * 1000, "{:.2f}"),
        ("RSS of this process (MiB)", f.rss_mib, o.rss_mib, "{:.0f}"),
    ]
    if f.server or o.server:
        rows.append(("control plane CPU/pipe (ms)", f.server_cpu_s / n * 1000, o.server_cpu_s / n * 1000, "{:.1f}"))
    for label, a, b, fmt in rows:
        print(f"{label:28}{fmt.format(a):>14}{fmt.format(b):>14}")
    req = {k: v for k, v in o.requests.items()}
    per_task = sum(v for k, v in req.items() if k in ("create", "delete", "get")) / n
    print(f"odin runs DONE: {o.done}/{n}; odin API requests: {req} ({per_task:.2f} create/get/delete per pipeline)")
    print(
        f"odin events recorded: {o.events / n:.1f} per pipeline; store commits: {o.commits / n:.1f} per pipeline, "
        f"{o.reasons / n:.2f} of them a pending attempt's new reason (reported once it has lasted 1 s)"
    )
    for side, r in (("floor", f), ("odin", o)):
        if r.server:
            parts = ", ".join(f"{k} {v / n * 1000:.2f}" for k, v in sorted(r.server.items(), key=lambda x: -x[1]))
            print(f"control plane CPU per pipeline during the {side}'s window (ms){each}: {parts}")
    if o.threads:
        shares = ", ".join(
            f"{name} {cpu / n * 1000:.2f}" for name, cpu in sorted(o.threads.items(), key=lambda x: -x[1])
        )
        print(f"odin CPU per pipeline by thread (ms){each}: {shares}")
    print(f"odin / floor throughput: {o.per_min(n) / f.per_min(n):.1%}")
    print(f"odin adds at p99: {(percentile(o.latencies, 99) - percentile(f.latencies, 99)) * 1000:.0f} ms")
    if args.qps > 0:
        per = round(per_task)
        best = bound_per_min(n, per, args.qps, args.burst)
        if best == float("inf"):
            print(
                f"QPS {args.qps:g}/burst {args.burst} lets all {n * per} requests go at once: the limit binds nothing"
            )
        else:
            print(
                f"best a {per}-request pipeline can do under QPS {args.qps:g}/burst {args.burst}: {best:.0f}/min; "
                f"odin reaches {o.per_min(n) / best:.1%} of it"
            )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", type=int, default=1000)
    ap.add_argument("--qps", type=float, default=50.0)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--rate", type=float, help="submit this many pipelines a second (default: all at once)")
    ap.add_argument("--kind", default="Pod", help="Pod, or a training kind (PyTorchJob) run by the real operator")
    ap.add_argument("--workers", type=int, default=0, help="num_workers of the task (training kinds)")
    ap.add_argument("--duration", default="200ms", help="simulated run time of each pod (kwok)")
    ap.add_argument("--capture-logs", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--kubeconfig")
    ap.add_argument("--store", default="", help="store URL (default: a fresh SQLite file), e.g. postgresql://...")
    ap.add_argument("--only", choices=("floor", "odin"), help="run one side only (profiling; no ratios)")
    ap.add_argument("--profile", metavar="FILE", help="cProfile (CPU time) of Odin's side to FILE (pstats)")
    ap.add_argument("--time-decode", action="store_true", help="time each watch event's decoding (CPU)")
    ap.add_argument(
        "--rounds", type=int, default=1, help="run floor and Odin this many times, alternately; report the medians"
    )
    ap.add_argument(
        "--data",
        metavar="DIR",
        help="where each side's temporary directory (store, run data) is made (default: TMPDIR)",
    )
    args = ap.parse_args()
    kubeconfig = cluster_kubeconfig(args.kubeconfig)
    base = KubernetesSettings(kubeconfig=kubeconfig, qps=args.qps, burst=args.burst)
    admin = KubeClient(load_api_client(base), KubernetesSettings(kubeconfig=kubeconfig, qps=0))
    ns = make_namespace(admin)
    task = the_task(args.kind, args.workers)
    n = args.pipelines
    pace = f"{args.rate:g}/s" if args.rate else "all at once"
    print(
        f"{n} one-step pipelines ({args.kind}, {args.workers} workers), submitted {pace}, client QPS {args.qps:g} "
        f"burst {args.burst}, pod run time {args.duration}, log capture {'on' if args.capture_logs else 'off'}, "
        f"namespace {ns}"
    )
    data = Path(args.data or tempfile.gettempdir())
    settings = KubernetesSettings(
        kubeconfig=kubeconfig,
        namespace=ns,
        qps=args.qps,
        burst=args.burst,
        capture_logs=args.capture_logs,
        pod_annotations={DURATION_ANNOTATION: args.duration},
    )
    plane = ControlPlane(kubeconfig)  # a local cluster's processes: what each side costs the server
    rounds: list[tuple[Result, Result]] = []

    async def floor_side() -> Result:
        if args.only == "odin":
            return Result()
        limited = KubeClient(load_api_client(base), base)  # a fresh client each round, as Odin's
        with tempfile.TemporaryDirectory(dir=data) as tmp:
            floor = Floor(limited, settings, task, Path(tmp))
            result = await asyncio.wait_for(floor.run(n, args.rate, plane), args.timeout)
        await limited.aclose()
        return result

    async def odin_side(r: int) -> Result:
        if args.only == "floor":
            return Result()
        decoding = DecodeTimer() if args.time_decode else None
        with tempfile.TemporaryDirectory(dir=data) as tmp, decoding or contextlib.nullcontext():
            side = odin(settings, task, n, args.rate, Path(tmp), plane, args.store, args.profile)
            result = await asyncio.wait_for(side, args.timeout)
        if decoding is not None:
            print(f"round {r + 1}, odin: {decoding.summary()}")
        return result

    try:
        for r in range(args.rounds):
            # Whichever side runs second meets the control plane still busy with the first side's objects
            # (their events, garbage collection), so the sides take turns going first: floor, Odin; Odin, floor; ...
            if r % 2 == 0:
                f = await floor_side()
                o = await odin_side(r)
            else:
                o = await odin_side(r)
                f = await floor_side()
            rounds.append((f, o))
    finally:
        admin.request_sync("delete", f"/api/v1/namespaces/{ns}")
    if len(rounds) > 1:
        report_rounds(n, rounds)
    report(args, median([f for f, _ in rounds]), median([o for _, o in rounds]), len(rounds))
    # Timed last (it makes and removes files there, which would slow the next inode allocations of a round): a
    # captured log's first write makes 3 directories and a file, which costs far more on some file systems.
    costs = fs_inodes.measure(data, 200, churn=False)
    print(
        f"data under {data}: a mkdir costs {costs['mkdir']:.0f} µs of CPU there, a file's creation "
        f"{costs['create']:.0f} µs, an append {costs['append']:.0f} µs (bench/fs_inodes.py, after the rounds)"
    )


if __name__ == "__main__":
    asyncio.run(main())
