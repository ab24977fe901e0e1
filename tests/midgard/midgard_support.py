"""Helpers shared by the midgard tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from midgard.settings import AgentSettings
from midgard.testing import fake_nvml

BOARDS = fake_nvml.board_names()


def settings(**overrides: Any) -> AgentSettings:
    """Agent settings for tests: loopback, any port, a fast interval; ``overrides`` win."""
    base: dict[str, Any] = {"node_name": "gpu-node-1", "host": "gpu-node-1", "listen_host": "127.0.0.1", "port": 0,
                            "interval_s": 0.05, "internal_ip": "10.0.0.7"}  # fmt: skip
    base.update(overrides)
    return AgentSettings(**base)


def report_for(node: str, *, ts: float, seq: int, agent_id: str = "agent-1", util: float | None = 50.0,
               task_id: str | None = "sweep-ab12--train", gpus: int = 1) -> dict[str, Any]:  # fmt: skip
    """A small valid node report (what an agent sends), for the gateway's own tests and benchmarks."""
    gpu_list = [
        {"index": i, "id": f"00000000:{0x10 + i:02X}:00.0", "uuid": f"GPU-{node}-{i}", "productName": "Tesla T4",
         "utilization": {"gpuUtil": util, "memoryUtil": 1, "unit": "%"},
         "fbMemoryUsage": {"total": 15360, "used": 1000, "free": 14360, "unit": "MiB"},
         "powerReadings": {"powerDraw": 30.5, "powerLimit": 70.0, "unit": "W"},
         "temperature": {"gpuTemp": 40, "unit": "C"}, "processes": []}
        for i in range(gpus)
    ]  # fmt: skip
    tasks = []
    if task_id:
        run = task_id.split("--")[0]
        tasks = [{"taskId": task_id, "runId": run, "task": task_id.split("--")[-1], "namespace": "odin",
                  "pod": f"{task_id}-1", "gpuUuid": f"GPU-{node}-0", "gpuIndex": 0, "migIndex": None,
                  "pids": [100], "usedMemory": 900, "gpuUtil": util}]  # fmt: skip
    return {"version": 1, "node": node, "host": node, "internalIp": "10.0.0.9", "agentId": agent_id, "seq": seq,
            "time": "2026-01-01T00:00:00.000Z", "timestamp": ts, "intervalS": 1.0,
            "nvml": {"available": True}, "gpus": gpu_list, "tasks": tasks,
            "system": {"cpu": {"count": 16}, "memory": {"total": 64 * 2**30}}}  # fmt: skip


def load_conftest(path: Any, name: str) -> Any:
    """Another suite's conftest as a module of its own name (its fixtures re-exported by ours; tests/ is no package)."""
    import importlib.util
    import sys

    folder = str(Path(path).parent)  # its own support modules (http_support, ...) live beside it
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
