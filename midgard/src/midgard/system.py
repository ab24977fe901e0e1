"""The host adapter for the node itself (psutil): CPU, memory, disks, load and network, in plain numbers.

Bytes stay bytes here (the report says so in each unit key); percentages are 0..100. A mount point that cannot be
read is reported with its error instead of failing the reading.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import psutil


class SystemReader:
    """Keeps psutil's CPU counters between readings so ``cpu.percent`` covers the last interval."""

    def __init__(self, disk_paths: Sequence[str] = ("/",)) -> None:
        self.disk_paths = tuple(disk_paths)
        self.boot_time = psutil.boot_time()
        psutil.cpu_percent(interval=None)  # the first call only starts the counters

    def read(self) -> dict[str, Any]:
        return {
            "cpu": self._cpu(),
            "memory": self._memory(),
            "disks": [self._disk(p) for p in self.disk_paths],
            "load": self._load(),
            "network": self._network(),
            "uptimeS": round(time.time() - self.boot_time, 1),
        }

    @staticmethod
    def _cpu() -> dict[str, Any]:
        return {"count": psutil.cpu_count(logical=True), "percent": psutil.cpu_percent(interval=None)}

    @staticmethod
    def _memory() -> dict[str, Any]:
        vm = psutil.virtual_memory()
        return {"total": vm.total, "available": vm.available, "used": vm.used, "percent": vm.percent, "unit": "B"}

    @staticmethod
    def _disk(path: str) -> dict[str, Any]:
        try:
            du = psutil.disk_usage(path)
        except OSError as e:
            return {"path": path, "error": e.strerror or str(e)}
        return {"path": path, "total": du.total, "used": du.used, "free": du.free, "percent": du.percent, "unit": "B"}

    @staticmethod
    def _load() -> dict[str, float] | None:
        try:
            one, five, fifteen = os.getloadavg()
        except OSError:
            return None
        return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2)}

    @staticmethod
    def _network() -> dict[str, Any]:
        total = {"bytesSent": 0, "bytesRecv": 0, "packetsSent": 0, "packetsRecv": 0, "errIn": 0, "errOut": 0}
        for nic, c in psutil.net_io_counters(pernic=True).items():
            if nic == "lo":
                continue
            for key, value in zip(total, (c.bytes_sent, c.bytes_recv, c.packets_sent, c.packets_recv, c.errin,
                                          c.errout), strict=True):  # fmt: skip
                total[key] += value
        return {**total, "unit": "B"}
