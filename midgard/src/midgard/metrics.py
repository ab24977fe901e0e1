"""Pure: a node report as Prometheus text, under the DCGM exporter's metric and label names where they exist.

Dashboards built for NVIDIA's dcgm-exporter read ``DCGM_FI_DEV_*`` series labelled ``gpu``, ``UUID``,
``pci_bus_id``, ``device``, ``modelName`` and ``Hostname`` (plus ``namespace``/``pod`` for the pod using the GPU and
``GPU_I_ID``/``GPU_I_PROFILE`` for MIG instances), so the same names are written here. What DCGM has no field for
(the Odin task on a GPU, the node's own figures, the agent's pushes) uses ``odin_*`` and ``midgard_*`` names.
The exposition is written directly (not with prometheus_client) because that library renames every counter to
``*_total``, and DCGM's energy counter has no such suffix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Getter = Callable[[dict[str, Any]], Any]

# (metric, type, help, value of a GPU entry)
GPU_METRICS: list[tuple[str, str, str, Getter]] = [
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda g: g["utilization"]["gpuUtil"]),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", lambda g: g["utilization"]["memoryUtil"]),
    ("DCGM_FI_DEV_FB_TOTAL", "gauge", "Framebuffer memory total (in MiB).", lambda g: g["fbMemoryUsage"]["total"]),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda g: g["fbMemoryUsage"]["used"]),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", lambda g: g["fbMemoryUsage"]["free"]),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).",
     lambda g: g["fbMemoryUsage"]["reserved"]),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda g: g["temperature"]["gpuTemp"]),
    ("DCGM_FI_DEV_SLOWDOWN_TEMP", "gauge", "Slowdown temperature (in C).",
     lambda g: g["temperature"]["gpuTempSlowThreshold"]),
    ("DCGM_FI_DEV_SHUTDOWN_TEMP", "gauge", "Shutdown temperature (in C).",
     lambda g: g["temperature"]["gpuTempShutdownThreshold"]),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda g: g["powerReadings"]["powerDraw"]),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Power management limit (in W).",
     lambda g: g["powerReadings"]["powerLimit"]),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", "gauge", "Default power management limit (in W).",
     lambda g: g["powerReadings"]["defaultPowerLimit"]),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT_MIN", "gauge", "Minimum power management limit (in W).",
     lambda g: g["powerReadings"]["minPowerLimit"]),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT_MAX", "gauge", "Maximum power management limit (in W).",
     lambda g: g["powerReadings"]["maxPowerLimit"]),
    ("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "gauge", "Enforced power limit (in W).",
     lambda g: g["powerReadings"]["enforcedPowerLimit"]),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
     lambda g: g["totalEnergyConsumption"]),
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda g: g["clocks"]["sm"]),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", lambda g: g["clocks"]["memory"]),
    ("DCGM_FI_DEV_VIDEO_CLOCK", "gauge", "Video clock frequency (in MHz).", lambda g: g["clocks"]["video"]),
    ("DCGM_FI_DEV_APP_SM_CLOCK", "gauge", "SM application clock (in MHz).",
     lambda g: g["applicationsClocks"]["graphics"]),
    ("DCGM_FI_DEV_APP_MEM_CLOCK", "gauge", "Memory application clock (in MHz).",
     lambda g: g["applicationsClocks"]["memory"]),
    ("DCGM_FI_DEV_MAX_SM_CLOCK", "gauge", "Maximum SM clock (in MHz).", lambda g: g["maxClocks"]["sm"]),
    ("DCGM_FI_DEV_MAX_MEM_CLOCK", "gauge", "Maximum memory clock (in MHz).", lambda g: g["maxClocks"]["memory"]),
    ("DCGM_FI_DEV_MAX_VIDEO_CLOCK", "gauge", "Maximum video clock (in MHz).", lambda g: g["maxClocks"]["video"]),
    ("DCGM_FI_DEV_PSTATE", "gauge", "Performance state (P-State) 0-15, 0 is highest.",
     lambda g: _num(g["performanceState"])),
    ("DCGM_FI_DEV_FAN_SPEED", "gauge", "Fan speed (in %).", lambda g: g["fanSpeed"]),
    ("DCGM_FI_DEV_ECC_CURRENT", "gauge", "ECC mode (1 enabled, 0 disabled).",
     lambda g: _enabled(g["eccMode"]["current"])),
    ("DCGM_FI_DEV_ECC_PENDING", "gauge", "ECC mode after reboot (1 enabled, 0 disabled).",
     lambda g: _enabled(g["eccMode"]["pending"])),
    ("DCGM_FI_DEV_MIG_MODE", "gauge", "MIG mode (1 enabled, 0 disabled).", lambda g: _enabled(g["migMode"]["current"])),
    ("DCGM_FI_DEV_COMPUTE_MODE", "gauge", "Compute mode (0 Default, 1 Excl. thread, 2 Prohibited, 3 Excl. process).",
     lambda g: {"Default": 0, "Exclusive_Thread": 1, "Prohibited": 2, "Exclusive_Process": 3}.get(g["computeMode"])),
]  # fmt: skip

MIG_METRICS: list[tuple[str, str, str, Getter]] = [
    ("DCGM_FI_DEV_FB_USED", "gauge", "", lambda m: m["fbMemoryUsage"]["used"]),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "", lambda m: m["fbMemoryUsage"]["free"]),
    ("DCGM_FI_DEV_FB_TOTAL", "gauge", "", lambda m: m["fbMemoryUsage"]["total"]),
]


def _num(pstate: str | None) -> int | None:
    return int(pstate[1:]) if pstate and pstate[1:].isdigit() else None


def _enabled(mode: str | None) -> int | None:
    return {"Enabled": 1, "Disabled": 0}.get(mode or "")


def escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, Any]) -> str:
    inner = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items() if v is not None)
    return "{" + inner + "}" if inner else ""


def _number(value: float | int) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def gpu_labels(gpu: dict[str, Any], host: str) -> dict[str, Any]:
    labels = {
        "gpu": gpu["index"],
        "UUID": gpu.get("uuid"),
        "pci_bus_id": gpu.get("pciBusId"),
        "device": f"nvidia{gpu['minorNumber']}" if gpu.get("minorNumber") is not None else None,
        "modelName": gpu.get("productName"),
        "Hostname": host,
    }
    holder = next((p for p in gpu.get("processes") or [] if p.get("pod")), None)
    if holder and not gpu.get("migDevices"):
        labels.update(namespace=holder["namespace"], pod=holder["pod"])
    return labels


def _mig_labels(gpu: dict[str, Any], mig: dict[str, Any], host: str) -> dict[str, Any]:
    labels = gpu_labels({**gpu, "processes": mig.get("processes"), "migDevices": []}, host)
    profile = (mig.get("productName") or "").rpartition(" MIG ")[2] or None
    labels.update(GPU_I_ID=mig.get("gpuInstanceId"), GPU_I_PROFILE=profile)
    return labels


class _Writer:
    def __init__(self) -> None:
        self.samples: dict[str, list[str]] = {}
        self.meta: dict[str, tuple[str, str]] = {}

    def add(self, name: str, kind: str, help: str, labels: dict[str, Any] | str, value: Any) -> None:
        """One sample; ``labels`` as a dict, or already formatted (``{a="b"}``) when many samples share them."""
        if value is None:
            return
        if isinstance(value, bool):
            value = int(value)
        if name not in self.meta:
            self.meta[name] = (kind, help)
        text = labels if isinstance(labels, str) else _labels(labels)
        self.samples.setdefault(name, []).append(f"{name}{text} {_number(value)}")

    def text(self) -> str:
        out = []
        for name, lines in self.samples.items():
            kind, help = self.meta[name]
            out.append(f"# HELP {name} {help or name}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(lines)
        return "\n".join(out) + "\n"


def _gpus(w: _Writer, report: dict[str, Any]) -> None:
    host = str(report.get("host") or report.get("node") or "")
    for gpu in report.get("gpus", []):
        if gpu.get("uuid") is None:
            continue
        labels = _labels(gpu_labels(gpu, host))
        for name, kind, help, get in GPU_METRICS:
            w.add(name, kind, help, labels, get(gpu))
        for mig in gpu.get("migDevices") or []:
            mig_labels = _labels(_mig_labels(gpu, mig, host))
            for name, kind, help, get in MIG_METRICS:
                w.add(name, kind, help, mig_labels, get(mig))


def _tasks(w: _Writer, report: dict[str, Any]) -> None:
    for t in report.get("tasks", []):
        labels = {"gpu": t["gpuIndex"], "UUID": t["gpuUuid"], "namespace": t["namespace"], "pod": t["pod"],
                  "odin_run": t["runId"], "odin_task": t["task"], "odin_task_id": t["taskId"]}  # fmt: skip
        w.add("odin_gpu_task_used_memory_mib", "gauge", "GPU memory used by an Odin task's processes (in MiB).",
              labels, t["usedMemory"])  # fmt: skip


def _system(w: _Writer, report: dict[str, Any]) -> None:
    s, node = report.get("system") or {}, {"node": report.get("node")}
    cpu, mem, load, net = s.get("cpu") or {}, s.get("memory") or {}, s.get("load") or {}, s.get("network") or {}
    w.add("midgard_node_cpu_percent", "gauge", "CPU use of the node over the last interval (in %).", node,
          cpu.get("percent"))  # fmt: skip
    w.add("midgard_node_memory_used_bytes", "gauge", "Memory used on the node.", node, mem.get("used"))
    w.add("midgard_node_memory_total_bytes", "gauge", "Memory of the node.", node, mem.get("total"))
    for period in ("1m", "5m", "15m"):
        w.add("midgard_node_load", "gauge", "Load average of the node.", {**node, "period": period}, load.get(period))
    w.add("midgard_node_network_received_bytes", "counter", "Bytes received (all interfaces but lo).", node,
          net.get("bytesRecv"))  # fmt: skip
    w.add("midgard_node_network_sent_bytes", "counter", "Bytes sent (all interfaces but lo).", node,
          net.get("bytesSent"))  # fmt: skip
    for d in s.get("disks") or []:
        w.add("midgard_node_disk_used_bytes", "gauge", "Used bytes of a mount point.", {**node, "path": d["path"]},
              d.get("used"))  # fmt: skip


def render(report: dict[str, Any] | None, agent: Iterable[tuple[str, str, str, float]] = ()) -> str:
    """The exposition text of ``report`` (none yet: only the agent's own series) and ``agent``'s counters."""
    w = _Writer()
    if report is not None:
        gpus = [g for g in report.get("gpus", []) if g.get("uuid")]
        w.add("DCGM_FI_DEV_COUNT", "gauge", "Number of Devices on the node.", {"Hostname": report.get("host")},
              len(gpus))  # fmt: skip
        _gpus(w, report)
        _tasks(w, report)
        _system(w, report)
        w.add("midgard_nvml_available", "gauge", "1 when NVML could be used on this node.", {},
              int(bool(report["nvml"]["available"])))  # fmt: skip
    for name, kind, help, value in agent:
        w.add(name, kind, help, {}, value)
    return w.text()
