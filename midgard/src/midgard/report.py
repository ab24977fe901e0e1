"""Pure: the node report built from raw NVML readings, process facts and the node's system figures.

No I/O here: everything arrives as data (``nvml.RawNvml``, ``ProcFacts`` per pid, ``PodFacts`` per pod UID) and a
JSON-ready dict comes out. Values NVML did not give become ``null``; the GPU's ``notSupported`` lists the fields the
board has no reading for, ``errors`` the ones that failed for another reason (what the GPU check looks at).
The GPU keys keep the original agent's names where the original client reads them (``id``, ``productName``,
``powerReadings``, ``utilization``, ``processes[].pid/process_name/used_memory``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import constants as C
from .nvml import NOT_SUPPORTED, Missing, RawDevice, RawNvml

COMPUTE_MODES = {0: "Default", 1: "Exclusive_Thread", 2: "Prohibited", 3: "Exclusive_Process"}
BRANDS = {0: "Unknown", 1: "Quadro", 2: "Tesla", 3: "NVS", 4: "GRID", 5: "GeForce", 6: "Titan", 13: "NVIDIA RTX",
          14: "NVIDIA", 15: "GeForce RTX", 16: "Titan RTX"}  # fmt: skip
ENABLED = {0: "Disabled", 1: "Enabled"}


@dataclass(frozen=True)
class ProcFacts:
    """What the host says about one process: its name and, from its cgroup, its pod and container."""

    name: str = ""
    pod_uid: str = ""
    container_id: str = ""


@dataclass(frozen=True)
class PodFacts:
    """One pod as the Kubernetes API describes it; ``task_id`` empty for pods that are not Odin tasks."""

    uid: str
    namespace: str
    name: str
    run_id: str = ""
    task: str = ""
    task_id: str = ""


NOT_READ = Missing("error", "not read")


class _Fields:
    """Collects the values of one device, noting which were not supported and which failed."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values
        self.not_supported: list[str] = []
        self.errors: dict[str, str] = {}

    def get(self, raw: str, field: str, convert: Any = None, part: int | None = None) -> Any:
        value = self.values.get(raw, NOT_READ)
        if isinstance(value, Missing):
            if value.code == NOT_SUPPORTED:
                self.not_supported.append(field)
            else:
                self.errors[field] = value.message or value.code
            return None
        if part is not None:
            value = value[part]
        return convert(value) if convert else value

    def sub(self, raw: str, key: str, field: str, convert: Any = None) -> Any:
        """A field of a struct reading (``memory.used``); the whole struct may be missing."""
        value = self.values.get(raw, NOT_READ)
        if isinstance(value, Missing):
            return self.get(raw, field)
        if value.get(key) is None:  # the struct of this driver has no such member (v1 memory: no "reserved")
            self.not_supported.append(field)
            return None
        return convert(value[key]) if convert else value[key]


def _mib(n: int) -> int:
    return int(n) // C.MIB


def _watts(mw: int) -> float:
    return round(mw / 1000.0, 2)


def _memory(f: _Fields) -> dict[str, Any]:
    return {
        "total": f.sub("memory", "total", "fbMemoryUsage.total", _mib),
        "used": f.sub("memory", "used", "fbMemoryUsage.used", _mib),
        "free": f.sub("memory", "free", "fbMemoryUsage.free", _mib),
        "reserved": f.sub("memory", "reserved", "fbMemoryUsage.reserved", _mib),
        "unit": C.UNIT_MIB,
    }


def _utilization(f: _Fields) -> dict[str, Any]:
    return {
        "gpuUtil": f.sub("utilization", "gpu", "utilization.gpuUtil"),
        "memoryUtil": f.sub("utilization", "memory", "utilization.memoryUtil"),
        "unit": C.UNIT_PERCENT,
    }


def _temperature(f: _Fields) -> dict[str, Any]:
    return {
        "gpuTemp": f.get("temperature", "temperature.gpuTemp"),
        "gpuTempSlowThreshold": f.get("temp_slowdown", "temperature.gpuTempSlowThreshold"),
        "gpuTempShutdownThreshold": f.get("temp_shutdown", "temperature.gpuTempShutdownThreshold"),
        "gpuTempMaxOperating": f.get("temp_gpu_max", "temperature.gpuTempMaxOperating"),
        "memoryTempMaxOperating": f.get("temp_mem_max", "temperature.memoryTempMaxOperating"),
        "unit": C.UNIT_CELSIUS,
    }


def _power(f: _Fields) -> dict[str, Any]:
    return {
        "powerDraw": f.get("power_usage", "powerReadings.powerDraw", _watts),
        "powerLimit": f.get("power_limit", "powerReadings.powerLimit", _watts),
        "defaultPowerLimit": f.get("power_default_limit", "powerReadings.defaultPowerLimit", _watts),
        "enforcedPowerLimit": f.get("power_enforced_limit", "powerReadings.enforcedPowerLimit", _watts),
        "minPowerLimit": f.get("power_constraints", "powerReadings.minPowerLimit", _watts, part=0),
        "maxPowerLimit": f.get("power_constraints", "powerReadings.maxPowerLimit", _watts, part=1),
        "unit": C.UNIT_WATT,
    }


def _clocks(f: _Fields, prefix: str, field: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    names = {"graphics": "graphics", "sm": "sm", "mem": "memory", "video": "video"}
    out: dict[str, Any] = {names[k]: f.get(f"{prefix}{k}", f"{field}.{names[k]}") for k in kinds}
    out["unit"] = C.UNIT_MHZ
    return out


def _mode_pair(f: _Fields, raw: str, field: str) -> dict[str, Any]:
    return {
        "current": f.get(raw, f"{field}.current", ENABLED.get, part=0),
        "pending": f.get(raw, f"{field}.pending", ENABLED.get, part=1),
    }


def _processes(raw: list[dict[str, Any]] | Missing, f: _Fields, facts: Mapping[int, ProcFacts],
               pods: Mapping[str, PodFacts]) -> list[dict[str, Any]]:  # fmt: skip
    if isinstance(raw, Missing):
        if raw.code == NOT_SUPPORTED:
            f.not_supported.append("processes")
        else:
            f.errors["processes"] = raw.message or raw.code
        return []
    return [process_entry(p, facts.get(p["pid"], ProcFacts()), pods) for p in raw]


def process_entry(p: Mapping[str, Any], fact: ProcFacts, pods: Mapping[str, PodFacts]) -> dict[str, Any]:
    used = p.get("used_bytes")
    pod = pods.get(fact.pod_uid) if fact.pod_uid else None
    gi, ci = p.get("gpu_instance_id"), p.get("compute_instance_id")
    return {
        "pid": p["pid"],
        "process_name": fact.name,
        "used_memory": _mib(used) if used is not None else None,
        "gpuInstanceId": None if gi in (None, C.NVML_NO_INSTANCE) else gi,
        "computeInstanceId": None if ci in (None, C.NVML_NO_INSTANCE) else ci,
        "podUid": fact.pod_uid or None,
        "containerId": fact.container_id or None,
        "namespace": pod.namespace if pod else None,
        "pod": pod.name if pod else None,
        "runId": (pod.run_id or None) if pod else None,
        "task": (pod.task or None) if pod else None,
        "taskId": (pod.task_id or None) if pod else None,
    }


def gpu_entry(dev: RawDevice, facts: Mapping[int, ProcFacts], pods: Mapping[str, PodFacts]) -> dict[str, Any]:
    f = _Fields(dev.values)
    if "error" in dev.values and len(dev.values) == 1:
        return {"index": dev.index, "id": None, "uuid": None, "errors": {"device": dev.values["error"]}}
    bus_id = f.sub("pci", "busId", "pciBusId")
    device_id = f.sub("pci", "pciDeviceId", "pciDeviceId", lambda n: f"0x{n:08X}")
    gpu: dict[str, Any] = {
        "index": dev.index,
        "id": bus_id,
        "uuid": f.get("uuid", "uuid"),
        "productName": f.get("name", "productName"),
        "productBrand": f.get("brand", "productBrand", lambda b: BRANDS.get(b, f"brand {b}")),
        "serial": f.get("serial", "serial"),
        "pciBusId": bus_id,
        "pciDeviceId": device_id,
        "minorNumber": f.get("minor_number", "minorNumber"),
        "performanceState": f.get("pstate", "performanceState", lambda n: f"P{n}"),
        "computeMode": f.get("compute_mode", "computeMode", lambda m: COMPUTE_MODES.get(m, str(m))),
        "migMode": _mode_pair(f, "mig_mode", "migMode"),
        "fbMemoryUsage": _memory(f),
        "utilization": _utilization(f),
        "temperature": _temperature(f),
        "powerReadings": _power(f),
        "totalEnergyConsumption": f.get("energy", "totalEnergyConsumption"),
        "clocks": _clocks(f, "clock_", "clocks", ("graphics", "sm", "mem", "video")),
        "applicationsClocks": _clocks(f, "app_clock_", "applicationsClocks", ("graphics", "mem")),
        "maxClocks": _clocks(f, "max_clock_", "maxClocks", ("graphics", "sm", "mem", "video")),
        "eccMode": _mode_pair(f, "ecc_mode", "eccMode"),
        "fanSpeed": f.get("fan_speed", "fanSpeed"),
        "processes": _processes(dev.processes, f, facts, pods),
        "migDevices": [mig_entry(m, facts, pods) for m in dev.mig],
    }
    gpu["notSupported"], gpu["errors"] = f.not_supported, f.errors
    return gpu


def mig_entry(dev: RawDevice, facts: Mapping[int, ProcFacts], pods: Mapping[str, PodFacts]) -> dict[str, Any]:
    f = _Fields(dev.values)
    entry = {
        "index": dev.index,
        "uuid": f.get("uuid", "uuid"),
        "productName": f.get("name", "productName"),
        "gpuInstanceId": f.get("gpu_instance_id", "gpuInstanceId"),
        "computeInstanceId": f.get("compute_instance_id", "computeInstanceId"),
        "fbMemoryUsage": _memory(f),
        "utilization": _utilization(f),
        "processes": _processes(dev.processes, f, facts, pods),
    }
    entry["notSupported"], entry["errors"] = f.not_supported, f.errors
    return entry


def all_pids(raw: RawNvml) -> set[int]:
    """Every pid NVML reported on any GPU or MIG device (whose host facts the agent then looks up)."""
    pids: set[int] = set()
    for dev in raw.devices:
        for d in (dev, *dev.mig):
            if isinstance(d.processes, list):
                pids.update(p["pid"] for p in d.processes)
    return pids


def task_summary(gpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Which Odin task holds which GPU, and how much of its memory: one entry per (task, GPU)."""
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for gpu in gpus:
        for dev, procs in _holders(gpu):
            for p in procs:
                if not p.get("taskId"):
                    continue
                key = (p["taskId"], dev["uuid"] or "")
                entry = held.setdefault(key, {
                    "taskId": p["taskId"], "runId": p["runId"], "task": p["task"], "namespace": p["namespace"],
                    "pod": p["pod"], "gpuUuid": dev["uuid"], "gpuIndex": gpu["index"], "migIndex": dev.get("_mig"),
                    "pids": [], "usedMemory": 0, "gpuUtil": gpu.get("utilization", {}).get("gpuUtil"),
                })  # fmt: skip
                entry["pids"].append(p["pid"])
                entry["usedMemory"] += p["used_memory"] or 0
    return list(held.values())


def _holders(gpu: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    if gpu.get("migDevices"):
        return [({**m, "_mig": m["index"]}, m["processes"]) for m in gpu["migDevices"]]
    return [(gpu, gpu.get("processes", []))]


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def nvml_status(raw: RawNvml) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        return None if isinstance(v, Missing) or v in ("", 0) else v

    return {
        "available": raw.available,
        "reason": raw.reason or None,
        "error": raw.error or None,
        "driverVersion": plain(raw.driver_version),
        "nvmlVersion": plain(raw.nvml_version),
        "cudaDriverVersion": plain(raw.cuda_driver_version),
    }


@dataclass(frozen=True)
class Identity:
    """Who is reporting: fixed for the agent's lifetime (``agent_id`` is new at every start)."""

    node: str
    host: str
    internal_ip: str
    agent_id: str
    interval_s: float
    version: str


def build_report(ident: Identity, raw: RawNvml, *, facts: Mapping[int, ProcFacts], pods: Mapping[str, PodFacts],
                 system: dict[str, Any], seq: int, now: float) -> dict[str, Any]:  # fmt: skip
    gpus = [gpu_entry(d, facts, pods) for d in raw.devices]
    return {
        "version": C.NODE_REPORT_VERSION,
        "node": ident.node,
        "host": ident.host,
        "internalIp": ident.internal_ip or None,
        "agentId": ident.agent_id,
        "agentVersion": ident.version,
        "seq": seq,
        "time": iso(now),
        "timestamp": round(now, 3),
        "intervalS": ident.interval_s,
        "nvml": nvml_status(raw),
        "gpus": gpus,
        "tasks": task_summary(gpus),
        "system": system,
    }
