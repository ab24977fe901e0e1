"""The NVML adapter: raw readings of every GPU through ``pynvml``, and nothing else.

Each value is what NVML returned, in NVML's units (bytes, milliwatts, MHz, degrees C, enum numbers), or a
``Missing`` saying why there is none. Turning them into a report is ``report.py``'s job (pure). A call NVML answers
"not supported" is normal on many boards (fans on passive data-centre cards, power on some consumer cards, most
sensors of a MIG device) and never an error of the reading.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

from .constants import REASON_NO_LIBRARY

NOT_SUPPORTED = "not_supported"
NOT_FOUND = "not_found"
ERROR = "error"


@dataclass(frozen=True)
class Missing:
    """A value NVML did not give. ``code``: ``not_supported`` (the board has no such reading) or ``error``."""

    code: str
    message: str = ""


def is_missing(value: Any) -> bool:
    return isinstance(value, Missing)


@dataclass
class RawDevice:
    """One device's raw readings, by name (see ``FIELDS``); MIG devices of a GPU in ``mig``."""

    index: int
    values: dict[str, Any] = field(default_factory=dict)
    processes: list[dict[str, Any]] | Missing = field(default_factory=list)
    mig: list[RawDevice] = field(default_factory=list)


@dataclass
class RawNvml:
    """Everything one pass over NVML gave; ``reason`` is set (and ``devices`` empty) when NVML is unusable."""

    available: bool
    reason: str = ""
    driver_version: str | Missing = ""
    nvml_version: str | Missing = ""
    cuda_driver_version: int | Missing = 0
    devices: list[RawDevice] = field(default_factory=list)
    error: str = ""


_P = pynvml
# Readings of one full GPU: name -> (pynvml function, extra arguments after the handle).
FIELDS: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
    "name": (_P.nvmlDeviceGetName, ()),
    "brand": (_P.nvmlDeviceGetBrand, ()),
    "serial": (_P.nvmlDeviceGetSerial, ()),
    "uuid": (_P.nvmlDeviceGetUUID, ()),
    "minor_number": (_P.nvmlDeviceGetMinorNumber, ()),
    "pci": (_P.nvmlDeviceGetPciInfo, ()),
    "pstate": (_P.nvmlDeviceGetPerformanceState, ()),
    "utilization": (_P.nvmlDeviceGetUtilizationRates, ()),
    "temperature": (_P.nvmlDeviceGetTemperature, (_P.NVML_TEMPERATURE_GPU,)),
    "temp_shutdown": (_P.nvmlDeviceGetTemperatureThreshold, (_P.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,)),
    "temp_slowdown": (_P.nvmlDeviceGetTemperatureThreshold, (_P.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,)),
    "temp_gpu_max": (_P.nvmlDeviceGetTemperatureThreshold, (_P.NVML_TEMPERATURE_THRESHOLD_GPU_MAX,)),
    "temp_mem_max": (_P.nvmlDeviceGetTemperatureThreshold, (_P.NVML_TEMPERATURE_THRESHOLD_MEM_MAX,)),
    "power_usage": (_P.nvmlDeviceGetPowerUsage, ()),
    "power_limit": (_P.nvmlDeviceGetPowerManagementLimit, ()),
    "power_default_limit": (_P.nvmlDeviceGetPowerManagementDefaultLimit, ()),
    "power_enforced_limit": (_P.nvmlDeviceGetEnforcedPowerLimit, ()),
    "power_constraints": (_P.nvmlDeviceGetPowerManagementLimitConstraints, ()),
    "energy": (_P.nvmlDeviceGetTotalEnergyConsumption, ()),
    "clock_graphics": (_P.nvmlDeviceGetClockInfo, (_P.NVML_CLOCK_GRAPHICS,)),
    "clock_sm": (_P.nvmlDeviceGetClockInfo, (_P.NVML_CLOCK_SM,)),
    "clock_mem": (_P.nvmlDeviceGetClockInfo, (_P.NVML_CLOCK_MEM,)),
    "clock_video": (_P.nvmlDeviceGetClockInfo, (_P.NVML_CLOCK_VIDEO,)),
    "app_clock_graphics": (_P.nvmlDeviceGetApplicationsClock, (_P.NVML_CLOCK_GRAPHICS,)),
    "app_clock_mem": (_P.nvmlDeviceGetApplicationsClock, (_P.NVML_CLOCK_MEM,)),
    "max_clock_graphics": (_P.nvmlDeviceGetMaxClockInfo, (_P.NVML_CLOCK_GRAPHICS,)),
    "max_clock_sm": (_P.nvmlDeviceGetMaxClockInfo, (_P.NVML_CLOCK_SM,)),
    "max_clock_mem": (_P.nvmlDeviceGetMaxClockInfo, (_P.NVML_CLOCK_MEM,)),
    "max_clock_video": (_P.nvmlDeviceGetMaxClockInfo, (_P.NVML_CLOCK_VIDEO,)),
    "ecc_mode": (_P.nvmlDeviceGetEccMode, ()),
    "compute_mode": (_P.nvmlDeviceGetComputeMode, ()),
    "fan_speed": (_P.nvmlDeviceGetFanSpeed, ()),
    "mig_mode": (_P.nvmlDeviceGetMigMode, ()),
}

# Readings of a MIG device (the rest belongs to its parent GPU and NVML answers "not supported" for it).
MIG_FIELDS = ("name", "uuid", "utilization")
MIG_IDS: dict[str, Callable[..., Any]] = {
    "gpu_instance_id": _P.nvmlDeviceGetGpuInstanceId,
    "compute_instance_id": _P.nvmlDeviceGetComputeInstanceId,
}


def _missing(e: pynvml.NVMLError) -> Missing:
    if e.value == pynvml.NVML_ERROR_NOT_SUPPORTED:
        return Missing(NOT_SUPPORTED)
    if e.value == pynvml.NVML_ERROR_NOT_FOUND:
        return Missing(NOT_FOUND)
    return Missing(ERROR, _text(e))


def _text(e: pynvml.NVMLError) -> str:
    try:
        return str(e)
    except Exception:  # pynvml asks the library for unknown codes; never let that fail a reading
        return f"NVML error {getattr(e, 'value', '?')}"


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or a ``Missing`` when NVML has no value for it."""
    try:
        return fn(*args)
    except pynvml.NVMLError as e:
        return _missing(e)


def _memory(handle: Any) -> Any:
    """v2 memory info (``used`` without the driver's reservation, as nvidia-smi shows it); v1 on older drivers."""
    value = call(pynvml.nvmlDeviceGetMemoryInfo, handle, pynvml.nvmlMemory_v2)
    if isinstance(value, Missing) and value.code != NOT_SUPPORTED:
        return call(pynvml.nvmlDeviceGetMemoryInfo, handle)
    return value


def _processes(handle: Any) -> list[dict[str, Any]] | Missing:
    procs = call(pynvml.nvmlDeviceGetComputeRunningProcesses, handle)
    if isinstance(procs, Missing):
        return procs
    return [
        {
            "pid": int(p.pid),
            "used_bytes": p.usedGpuMemory,
            "gpu_instance_id": getattr(p, "gpuInstanceId", None),
            "compute_instance_id": getattr(p, "computeInstanceId", None),
        }
        for p in procs
    ]


def _struct(value: Any, names: tuple[str, ...]) -> Any:
    """A ctypes struct as a plain dict of the named fields (bytes decoded), a Missing unchanged."""
    if isinstance(value, Missing):
        return value
    out = {}
    for n in names:
        v = getattr(value, n, None)
        out[n] = v.decode(errors="replace") if isinstance(v, bytes) else v
    return out


def _plain(name: str, value: Any) -> Any:
    if name == "pci":
        return _struct(value, ("busId", "domain", "bus", "device", "pciDeviceId", "pciSubSystemId"))
    if name == "utilization":
        return _struct(value, ("gpu", "memory"))
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def read_device(index: int) -> RawDevice:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    dev = RawDevice(index)
    for name, (fn, args) in FIELDS.items():
        dev.values[name] = _plain(name, call(fn, handle, *args))
    dev.values["memory"] = _struct(_memory(handle), ("total", "used", "free", "reserved"))
    dev.processes = _processes(handle)
    mig = dev.values["mig_mode"]
    if isinstance(mig, list) and mig and mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE:
        dev.mig = _read_mig(handle)
    return dev


def _read_mig(parent: Any) -> list[RawDevice]:
    count = call(pynvml.nvmlDeviceGetMaxMigDeviceCount, parent)
    if isinstance(count, Missing):
        return []
    out = []
    for i in range(count):
        handle = call(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, parent, i)
        if isinstance(handle, Missing):  # an empty slot
            continue
        dev = RawDevice(i)
        for name in MIG_FIELDS:
            fn, args = FIELDS[name]
            dev.values[name] = _plain(name, call(fn, handle, *args))
        for name, fn in MIG_IDS.items():
            dev.values[name] = call(fn, handle)
        dev.values["memory"] = _struct(_memory(handle), ("total", "used", "free", "reserved"))
        dev.processes = _processes(handle)
        out.append(dev)
    return out


class NvmlReader:
    """Owns NVML's initialisation; ``read()`` is one pass over every device (blocking: call it in a thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self.reason = ""

    def open(self) -> bool:
        with self._lock:
            if self._ready:
                return True
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as e:
                self.reason = _init_reason(e)
                return False
            self._ready, self.reason = True, ""
            return True

    def close(self) -> None:
        with self._lock:
            if self._ready:
                call(pynvml.nvmlShutdown)
                self._ready = False

    def read(self) -> RawNvml:
        if not self.open():
            return RawNvml(available=False, reason=self.reason)
        with self._lock:
            return self._read()

    def _read(self) -> RawNvml:
        raw = RawNvml(available=True)
        raw.driver_version = call(pynvml.nvmlSystemGetDriverVersion)
        raw.nvml_version = call(pynvml.nvmlSystemGetNVMLVersion)
        raw.cuda_driver_version = call(pynvml.nvmlSystemGetCudaDriverVersion)
        count = call(pynvml.nvmlDeviceGetCount)
        if isinstance(count, Missing):
            raw.error = f"cannot count GPUs: {count.message or count.code}"
            return raw
        for i in range(count):
            try:
                raw.devices.append(read_device(i))
            except pynvml.NVMLError as e:  # the handle itself (a GPU fallen off the bus): report the others
                raw.devices.append(RawDevice(i, values={"error": _text(e)}))
        return raw


def _init_reason(e: pynvml.NVMLError) -> str:
    if e.value == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return REASON_NO_LIBRARY
    if e.value == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return "NVIDIA driver not loaded (libnvidia-ml is present but the kernel module is not)"
    if e.value == pynvml.NVML_ERROR_NO_PERMISSION:
        return "no permission to use NVML (the agent needs access to /dev/nvidiactl)"
    return f"NVML cannot start: {_text(e)}"
