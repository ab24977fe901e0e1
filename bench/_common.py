"""Shared helpers of the benchmarks: a no-op executor, DAG shapes, and measurement."""

from __future__ import annotations

import platform
import resource
import statistics
from typing import Any

from odin_core.spec.model import PipelineSpec, TaskSpec


def layered_dag(n: int, width: int = 100, fan_in: int = 2) -> PipelineSpec:
    """``n`` tasks in layers of ``width``; each task depends on ``fan_in`` tasks of the layer before."""
    tasks = []
    for i in range(n):
        layer, pos = divmod(i, width)
        deps = (
            () if layer == 0 else tuple(sorted({f"t{(layer - 1) * width + (pos + k) % width}" for k in range(fan_in)}))
        )
        tasks.append(TaskSpec(f"t{i}", "busybox", ("true",), depends=deps))
    return PipelineSpec("bench", tuple(tasks), job="bench")


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used, every thread included."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def sys_s() -> float:
    """Of ``cpu_s``, the seconds spent in the kernel (system calls: sockets, files, thread wake-ups)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(round(p / 100 * (len(ordered) - 1)), len(ordered) - 1)]


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "max": max(values),
    }
