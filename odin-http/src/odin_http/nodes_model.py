"""Pure: node reports in, the cluster's GPUs out. Validation, latest report and bounded history per node,
staleness, GPU-utilisation timelines of runs and tasks, and idle-GPU warnings. No I/O: ``now`` is an argument.

Listing 1,000 nodes must stay cheap while they report every second, so each node's listing entry is encoded to
JSON once, when its newest report arrives; a listing only joins those fragments, with the fields that change
with time (``stale``, ``ageS``) put in front.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from odin_core.constants import NODE_REPORT_VERSION

try:  # 5-10x faster than json on reports (1,000 nodes at 1 Hz); NaN/Infinity are refused on input, null on output
    import orjson

    def loads(data: bytes) -> Any:
        return orjson.loads(data)

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - the gateway declares orjson; this keeps the module usable without it

    def loads(data: bytes) -> Any:
        return json.loads(data, parse_constant=_refuse)

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def _refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")


NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # a Kubernetes node name (DNS-1123 subdomain)
RESOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]{0,250}$")  # run ids and task ids (<run>--<task>)
MAX_GPUS = 64
MAX_TASKS = 512
MAX_PROCESSES = 1024
MAX_REPORT_BYTES = 512 * 1024
RECENT_KEYS = 512  # per node, for duplicates: more than an agent's buffer (120 by default)


class ReportError(ValueError):
    """A report the gateway refuses; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Holding:
    """One task holding one GPU (or MIG instance) in one sample."""

    task_id: str
    run_id: str
    task: str
    gpu_uuid: str
    gpu_index: int | None
    mig_index: int | None
    used_memory: int | None
    gpu_util: float | None


@dataclass(frozen=True, slots=True)
class Sample:
    """The part of a report kept in the history: its time and which tasks held which GPU, how hard. A node without
    tasks costs one small object per report (1,000 nodes x 720 samples stay in tens of MiB)."""

    timestamp: float
    agent_id: str
    seq: int
    holdings: tuple[Holding, ...]


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ReportError(message)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def validate(report: Any) -> dict[str, Any]:
    """The report, checked: what the gateway relies on has the right type and size; else ``ReportError``."""
    _need(isinstance(report, dict), "a report is a JSON object")
    _need(report.get("version") == NODE_REPORT_VERSION, f"version must be {NODE_REPORT_VERSION}")
    node = report.get("node")
    _need(isinstance(node, str) and bool(NODE_NAME.match(node)), "node must be a Kubernetes node name")
    _need(isinstance(report.get("agentId"), str) and 0 < len(report["agentId"]) <= 64, "agentId: 1..64 characters")
    _need(_int(report.get("seq")) is not None and report["seq"] >= 0, "seq must be an integer >= 0")
    _need(_num(report.get("timestamp")) is not None, "timestamp must be a number (seconds since the epoch)")
    gpus, tasks = report.get("gpus"), report.get("tasks", [])
    _need(isinstance(gpus, list) and len(gpus) <= MAX_GPUS, f"gpus must be a list of at most {MAX_GPUS}")
    _need(all(isinstance(g, dict) for g in gpus), "every GPU is an object")
    _need(isinstance(tasks, list) and len(tasks) <= MAX_TASKS, f"tasks must be a list of at most {MAX_TASKS}")
    _need(all(isinstance(t, dict) for t in tasks), "every task entry is an object")
    procs = sum(len(g.get("processes") or []) for g in gpus if isinstance(g.get("processes") or [], list))
    _need(procs <= MAX_PROCESSES, f"at most {MAX_PROCESSES} processes per report")
    for key in ("host", "internalIp"):
        _need(report.get(key) is None or (isinstance(report[key], str) and len(report[key]) <= 253), f"{key}: a string")
    _need(isinstance(report.get("nvml", {}), dict) and isinstance(report.get("system", {}), dict),
          "nvml and system must be objects")  # fmt: skip
    return report


def _text(value: Any) -> str:
    """Interned: the same task and GPU ids recur in every sample of the history; one copy of each is kept."""
    return sys.intern(str(value or ""))


def sample_of(report: Mapping[str, Any]) -> Sample:
    holdings = tuple(
        Holding(
            task_id=_text(t.get("taskId")),
            run_id=_text(t.get("runId")),
            task=_text(t.get("task")),
            gpu_uuid=_text(t.get("gpuUuid")),
            gpu_index=_int(t.get("gpuIndex")),
            mig_index=_int(t.get("migIndex")),
            used_memory=_int(t.get("usedMemory")),
            gpu_util=_num(t.get("gpuUtil")),
        )
        for t in report.get("tasks", [])
        if t.get("taskId")
    )
    return Sample(float(report["timestamp"]), _text(report["agentId"]), int(report["seq"]), holdings)


@dataclass
class IdleState:
    since: float  # first sample holding it
    busy_at: float  # last sample in which the GPU was used above the threshold (or ``since``)
    holding: Holding


@dataclass
class NodeState:
    name: str
    latest: dict[str, Any]
    fragment: bytes  # the listing entry, encoded once
    last_seen: float
    history: deque[Sample] = field(default_factory=deque)
    idle: dict[tuple[str, str], IdleState] = field(default_factory=dict)
    seen: dict[tuple[str, int], None] = field(default_factory=dict)  # recent (agentId, seq): resent batches


@dataclass(frozen=True)
class NodeLimits:
    stale_after_s: float = 30.0
    history_s: float = 3600.0
    history_points: int = 720
    idle_after_s: float = 600.0
    idle_util_percent: float = 5.0


def legacy_gpu(gpu: Mapping[str, Any]) -> dict[str, Any]:
    """A GPU as ``/v1/nodes`` lists it: the report's entry, with what the original client computes on always there.

    The original ``odin-gpus`` does ``int()`` on the power draw and limit and on each process's memory, splits ``id``
    on ``:`` and calls string methods on ``productName``: an unknown value there (a consumer board without a power
    reading, a GPU lost from the bus) would crash it. So, here only, an unknown power or memory figure is written as
    0 and named in ``legacyZeroed``; ``/v1/gpus`` keeps them ``null``.
    """
    out = dict(gpu)
    zeroed = []
    power = dict(gpu.get("powerReadings") or {"unit": "W"})
    for key in ("powerDraw", "powerLimit"):
        if _num(power.get(key)) is None:
            power[key] = 0
            zeroed.append(f"powerReadings.{key}")
    out["powerReadings"] = power
    out["utilization"] = gpu.get("utilization") or {"gpuUtil": None, "unit": "%"}
    if not isinstance(gpu.get("id"), str) or ":" not in gpu["id"]:
        out["id"] = f"unknown:{gpu.get('index')}"
    if not isinstance(gpu.get("productName"), str):
        out["productName"] = "unknown"
    procs = []
    for p in gpu.get("processes") or []:
        if _num(p.get("used_memory")) is None:
            p = {**p, "used_memory": 0}
            zeroed.append(f"processes[{p.get('pid')}].used_memory")
        procs.append(p)
    out["processes"] = procs
    if zeroed:
        out["legacyZeroed"] = zeroed
    return out


def entry_of(report: Mapping[str, Any], capacity: Mapping[str, Any] | None) -> dict[str, Any]:
    """A node as ``GET /v1/nodes`` lists it (the original shape: capacity, GPUs, host, internal IP)."""
    return {
        "name": report["node"],
        "host": report.get("host") or report["node"],
        "internalIp": report.get("internalIp"),
        "capacity": dict(capacity) if capacity else capacity_from_report(report),
        "capacitySource": "kubernetes" if capacity else "agent",
        "gpus": [legacy_gpu(g) for g in report["gpus"]],
        "tasks": report.get("tasks", []),
        "nvml": report.get("nvml"),
        "system": report.get("system"),
        "agentId": report["agentId"],
        "seq": report["seq"],
        "lastReport": report.get("time"),
        "timestamp": report["timestamp"],
    }


def capacity_from_report(report: Mapping[str, Any]) -> dict[str, str]:
    """Kubernetes-style quantities from the agent's own figures (when the gateway has no Kubernetes access)."""
    system = report.get("system") or {}
    cpu = (system.get("cpu") or {}).get("count")
    memory = (system.get("memory") or {}).get("total")
    out = {"nvidia.com/gpu": str(len(report["gpus"]))}
    if _int(cpu) is not None:
        out["cpu"] = str(cpu)
    if isinstance(memory, int):
        out["memory"] = f"{memory // 1024}Ki"
    return out


def _encode(entry: dict[str, Any]) -> bytes:
    return dumps(entry)[1:]  # without the opening brace: the listing puts the time-dependent fields first


class NodeRegistry:
    """Every node's latest report and bounded history, for one gateway process."""

    def __init__(self, limits: NodeLimits) -> None:
        self.limits = limits
        self.nodes: dict[str, NodeState] = {}
        self.capacity: dict[str, dict[str, Any]] = {}
        self.accepted = 0
        self.duplicates = 0

    # -- ingest -------------------------------------------------------------------------------------------------
    def ingest(self, reports: Iterable[dict[str, Any]], now: float) -> int:
        """Add validated reports (oldest first or not); returns how many were new."""
        new = 0
        for rep in reports:
            new += self._one(rep, now)
        self.accepted += new
        return new

    def _one(self, rep: dict[str, Any], now: float) -> int:
        name = rep["node"]
        state = self.nodes.get(name)
        key = (rep["agentId"], rep["seq"])
        if state is not None and key in state.seen:
            self.duplicates += 1
            state.last_seen = now
            return 0
        sample = sample_of(rep)
        if state is None:
            state = NodeState(name, rep, self._fragment(rep), now)
            self.nodes[name] = state
        state.last_seen = now
        state.seen[key] = None
        if len(state.seen) > RECENT_KEYS:  # an agent resends at most its buffer: older keys cannot come back
            del state.seen[next(iter(state.seen))]
        if rep["timestamp"] >= state.latest["timestamp"]:
            state.latest, state.fragment = rep, self._fragment(rep)
            _track_idle(state, sample, self.limits.idle_util_percent)
        if sample.holdings:  # timelines are of tasks: a sample without one would only take memory
            _insert(state.history, sample)
        _prune(state.history, now - self.limits.history_s, self.limits.history_points)
        return 1

    def _fragment(self, rep: dict[str, Any]) -> bytes:
        return _encode(entry_of(rep, self.capacity.get(rep["node"])))

    def set_capacity(self, capacity: Mapping[str, dict[str, Any]]) -> None:
        """Kubernetes' view of the nodes (name -> status.capacity); re-encodes the nodes whose capacity changed."""
        for name, cap in capacity.items():
            if self.capacity.get(name) != cap:
                self.capacity[name] = dict(cap)
                if name in self.nodes:
                    self.nodes[name].fragment = self._fragment(self.nodes[name].latest)

    # -- reads --------------------------------------------------------------------------------------------------
    def is_stale(self, state: NodeState, now: float) -> bool:
        return now - state.last_seen > self.limits.stale_after_s

    def listing(self, now: float) -> bytes:
        """``{"nodes": [...], "warnings": [...]}`` as JSON bytes: reported nodes, then Kubernetes-only ones."""
        parts = [b'{"nodes":[']
        for name in sorted(self.nodes):  # one join at the end: no per-node copy of the 5-10 KiB fragments
            st = self.nodes[name]
            stale = b"true" if self.is_stale(st, now) else b"false"
            parts += [b'{"stale":', stale, b',"ageS":', str(round(now - st.last_seen, 1)).encode(), b",", st.fragment,
                      b","]  # fmt: skip
        for name in sorted(self.capacity.keys() - self.nodes.keys()):
            parts += [dumps(_unreported(name, self.capacity[name])), b","]
        if parts[-1] == b",":
            parts.pop()
        parts += [b'],"warnings":', dumps(self.warnings(now)), b"}"]
        return b"".join(parts)

    def gpus(self, now: float) -> list[dict[str, Any]]:
        out = []
        for name in sorted(self.nodes):
            st = self.nodes[name]
            stale = self.is_stale(st, now)
            for gpu in st.latest["gpus"]:
                out.append({"node": name, "host": st.latest.get("host") or name, "stale": stale, **gpu})
        return out

    def warnings(self, now: float) -> list[dict[str, Any]]:
        """A task holding a GPU it has left idle (at most ``idle_util_percent``) for ``idle_after_s`` or longer."""
        out = []
        for name in sorted(self.nodes):
            st = self.nodes[name]
            if self.is_stale(st, now):
                continue
            for idle in st.idle.values():
                idle_s = st.latest["timestamp"] - idle.busy_at
                if idle_s >= self.limits.idle_after_s:
                    h = idle.holding
                    out.append({
                        "code": "gpu_idle", "node": name, "taskId": h.task_id, "runId": h.run_id,
                        "gpuUuid": h.gpu_uuid, "gpuIndex": h.gpu_index, "idleS": round(idle_s, 1),
                        "message": f"task {h.task_id} holds GPU {h.gpu_index} on {name} but has used at most "
                        f"{self.limits.idle_util_percent:g}% of it for {idle_s / 60:.0f} min",
                    })  # fmt: skip
        return out

    def timeline(self, resource_id: str) -> list[dict[str, Any]]:
        """Every history point of a run (id without ``--``) or a task, across nodes, oldest first."""
        is_task = "--" in resource_id
        points = []
        for name, st in self.nodes.items():
            for s in st.history:
                for h in s.holdings:
                    if (h.task_id == resource_id) if is_task else (h.run_id == resource_id):
                        points.append({"timestamp": s.timestamp, "node": name, "taskId": h.task_id,
                                       "gpuUuid": h.gpu_uuid, "gpuIndex": h.gpu_index, "migIndex": h.mig_index,
                                       "gpuUtil": h.gpu_util, "usedMemory": h.used_memory})  # fmt: skip
        points.sort(key=lambda p: (p["timestamp"], p["taskId"], p["gpuUuid"]))
        return points


def _unreported(name: str, capacity: Mapping[str, Any]) -> dict[str, Any]:
    return {"stale": False, "ageS": None, "name": name, "host": name, "internalIp": None, "capacity": dict(capacity),
            "capacitySource": "kubernetes", "gpus": [], "tasks": [], "nvml": None, "agent": "no report from a "
            "midgard agent on this node"}  # fmt: skip


def _insert(history: deque[Sample], sample: Sample) -> None:
    if not history or history[-1].timestamp <= sample.timestamp:
        history.append(sample)
        return
    items = sorted([*history, sample], key=lambda s: s.timestamp)  # a late (buffered) report: rare
    history.clear()
    history.extend(items)


def _prune(history: deque[Sample], oldest: float, points: int) -> None:
    while history and (history[0].timestamp < oldest or len(history) > points):
        history.popleft()


def _track_idle(state: NodeState, sample: Sample, threshold: float) -> None:
    seen = {}
    for h in sample.holdings:
        key = (h.task_id, h.gpu_uuid)
        prev = state.idle.get(key)
        busy = h.gpu_util is None or h.gpu_util > threshold  # unknown utilisation (MIG) never warns
        if prev is None:
            seen[key] = IdleState(sample.timestamp, sample.timestamp, h)
        else:
            seen[key] = IdleState(prev.since, sample.timestamp if busy else prev.busy_at, h)
    state.idle = seen
