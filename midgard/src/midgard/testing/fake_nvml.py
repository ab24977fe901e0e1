"""A stand-in for ``libnvidia-ml.so.1`` that replays a recorded board table, below the real ``pynvml``.

There is no GPU on the machines that run the tests, so this is the one place a recording stands in for a component:
at the C function boundary of the NVML library. ``pynvml`` runs unchanged on top of it (its structs, its versioned
entry points, its error classes); each attribute of ``FakeNvmlLibrary`` is a real ctypes function pointer with the
C signature of that NVML function, which fills its out-parameters from the table, or returns the recorded NVML
error code. The tables (``boards/*.json``) say where their values come from.

Table format: ``{"system": {c_function: value}, "devices": [{c_function: value, "mig": [device, ...]}]}``. A
value is the C result (numbers in NVML's units: bytes, mW, mJ, MHz, C), a ``{"<arg>": value}`` map for functions
taking an enum argument (sensor, clock, threshold type), or an error name (``"NOT_SUPPORTED"``, ``"NOT_FOUND"``, ...).
A function missing from the table returns NVML_ERROR_UNKNOWN and is listed in ``unrecorded``, so a test can prove
its table covers every call the adapter makes; a function this library does not implement is missing, exactly as
in an older driver (pynvml raises NVMLError_FunctionNotFound).
"""

from __future__ import annotations

import ctypes
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ctypes import POINTER, c_char, c_int, c_uint, c_ulonglong, c_void_p, cast
from importlib import resources
from pathlib import Path
from typing import Any

import pynvml

SUCCESS = 0
ERRORS = {name[len("NVML_ERROR_") :]: getattr(pynvml, name) for name in dir(pynvml) if name.startswith("NVML_ERROR_")}

# C signatures, by argument kind: h = device handle, u = unsigned int in, p = pointer out.
SIGNATURES: dict[str, str] = {
    "nvmlInitWithFlags": "u",
    "nvmlShutdown": "",
    "nvmlSystemGetDriverVersion": "pu",
    "nvmlSystemGetNVMLVersion": "pu",
    "nvmlSystemGetCudaDriverVersion": "p",
    "nvmlDeviceGetCount_v2": "p",
    "nvmlDeviceGetHandleByIndex_v2": "up",
    "nvmlDeviceGetMigDeviceHandleByIndex": "hup",
}
_SCALAR = "hp"
_STRING = "hpu"
_ENUM = "hup"
_PAIR = "hpp"
for _name in [
    "Brand",
    "MinorNumber",
    "PerformanceState",
    "PowerUsage",
    "PowerManagementLimit",
    "PowerManagementDefaultLimit",
    "EnforcedPowerLimit",
    "FanSpeed",
    "ComputeMode",
    "MaxMigDeviceCount",
    "GpuInstanceId",
    "ComputeInstanceId",
    "Index",
]:
    SIGNATURES[f"nvmlDeviceGet{_name}"] = _SCALAR
for _name in ["Name", "Serial", "UUID"]:
    SIGNATURES[f"nvmlDeviceGet{_name}"] = _STRING
for _name in ["Temperature", "TemperatureThreshold", "ClockInfo", "MaxClockInfo", "ApplicationsClock"]:
    SIGNATURES[f"nvmlDeviceGet{_name}"] = _ENUM
for _name in ["EccMode", "MigMode", "PowerManagementLimitConstraints"]:
    SIGNATURES[f"nvmlDeviceGet{_name}"] = _PAIR
for _name in ["PciInfo_v3", "MemoryInfo", "MemoryInfo_v2", "UtilizationRates", "TotalEnergyConsumption"]:
    SIGNATURES[f"nvmlDeviceGet{_name}"] = _SCALAR
SIGNATURES["nvmlDeviceGetComputeRunningProcesses_v3"] = "hpp"

_KIND = {"h": c_void_p, "u": c_uint, "p": c_void_p}
_STRUCTS: dict[str, type[ctypes.Structure]] = {
    "nvmlDeviceGetPciInfo_v3": pynvml.nvmlPciInfo_t,
    "nvmlDeviceGetMemoryInfo": pynvml.c_nvmlMemory_t,
    "nvmlDeviceGetMemoryInfo_v2": pynvml.c_nvmlMemory_v2_t,
    "nvmlDeviceGetUtilizationRates": pynvml.c_nvmlUtilization_t,
}


def _handle_value(index: int, mig: int | None = None) -> int:
    return 0x10000 * (index + 1) + (0x100 * (mig + 1) if mig is not None else 0)


class FakeNvmlLibrary:
    """Replays ``board`` (a parsed table); ``calls`` counts every C call, ``unrecorded`` lists missing entries."""

    def __init__(self, board: dict[str, Any]) -> None:
        self.board = board
        self.calls: dict[str, int] = {}
        self.unrecorded: list[str] = []
        self.seconds = 0.0  # time spent inside this library's functions (the replay's own cost)
        self._fns: dict[str, Any] = {}
        self._handles: dict[int, tuple[str, dict[str, Any]]] = {}
        for i, dev in enumerate(board.get("devices", [])):
            self._handles[_handle_value(i)] = (f"device {i}", dev)
            for j, mig in enumerate(dev.get("mig") or []):
                if mig is not None:
                    self._handles[_handle_value(i, j)] = (f"device {i} mig {j}", mig)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in SIGNATURES or name in self.board.get("absent", ()):
            raise AttributeError(name)
        if name not in self._fns:
            proto = ctypes.CFUNCTYPE(c_int, *(_KIND[k] for k in SIGNATURES[name]))
            self._fns[name] = proto(self._wrap(name))
        return self._fns[name]

    # -- dispatch ---------------------------------------------------------------------------------------------
    def _wrap(self, name: str) -> Callable[..., int]:
        special = getattr(type(self), f"_c_{name}", None)

        def fn(*args: Any) -> int:
            started = time.perf_counter()
            self.calls[name] = self.calls.get(name, 0) + 1
            try:
                return int(special(self, *args)) if special else self._dispatch(name, list(args))
            except Exception as e:  # a C callback must not raise: report it as NVML's "unknown error"
                self.unrecorded.append(f"{name}: {type(e).__name__}: {e}")
                return ERRORS["UNKNOWN"]
            finally:
                self.seconds += time.perf_counter() - started

        return fn

    def _dispatch(self, name: str, args: list[Any]) -> int:
        sig = SIGNATURES[name]
        table, where = (self.board.get("system", {}), "system") if "h" not in sig else self._device(args.pop(0))
        if name not in table:
            self.unrecorded.append(f"{where}: {name}")
            return ERRORS["UNKNOWN"]
        value = table[name]
        if sig == _ENUM and isinstance(value, dict):
            key = str(args.pop(0))
            if key not in value:
                self.unrecorded.append(f"{where}: {name}({key})")
                return ERRORS["UNKNOWN"]
            value = value[key]
        elif sig == _ENUM:
            args.pop(0)
        if isinstance(value, str) and value in ERRORS and name not in _TEXT_FUNCTIONS:
            return ERRORS[value]
        return self._write(name, sig, value, args)

    def _device(self, handle: int | None) -> tuple[dict[str, Any], str]:
        if handle not in self._handles:
            raise KeyError(f"unknown device handle {handle!r}")
        where, table = self._handles[handle]
        return table, where

    def _write(self, name: str, sig: str, value: Any, args: list[Any]) -> int:
        if name in _STRUCTS:
            _fill(_STRUCTS[name].from_address(args[0]), value)
        elif name == "nvmlDeviceGetTotalEnergyConsumption":
            cast(args[0], POINTER(c_ulonglong))[0] = int(value)
        elif name in _TEXT_FUNCTIONS:
            return _write_text(args[0], args[1], value)
        elif sig.endswith("pp"):
            cast(args[0], POINTER(c_uint))[0], cast(args[1], POINTER(c_uint))[0] = (int(v) for v in value)
        else:
            cast(args[0], POINTER(c_int if name == "nvmlSystemGetCudaDriverVersion" else c_uint))[0] = int(value)
        return SUCCESS

    # -- functions with behaviour beyond "return the recorded value" --------------------------------------------
    def _c_nvmlInitWithFlags(self, flags: int) -> int:
        return ERRORS[self.board["init"]] if "init" in self.board else SUCCESS

    def _c_nvmlShutdown(self) -> int:
        return SUCCESS

    def _c_nvmlDeviceGetCount_v2(self, out: int) -> int:
        cast(out, POINTER(c_uint))[0] = len(self.board.get("devices", []))
        return SUCCESS

    def _c_nvmlDeviceGetHandleByIndex_v2(self, index: int, out: int) -> int:
        devices = self.board.get("devices", [])
        if index >= len(devices):
            return ERRORS["INVALID_ARGUMENT"]
        if "handle_error" in devices[index]:  # e.g. a GPU fallen off the bus: GPU_IS_LOST
            return ERRORS[devices[index]["handle_error"]]
        c_void_p.from_address(out).value = _handle_value(index)
        return SUCCESS

    def _c_nvmlDeviceGetMigDeviceHandleByIndex(self, handle: int, index: int, out: int) -> int:
        table, _ = self._device(handle)
        migs = table.get("mig") or []
        if index >= len(migs) or migs[index] is None:
            return ERRORS["NOT_FOUND"]
        c_void_p.from_address(out).value = _handle_value(handle // 0x10000 - 1, index)
        return SUCCESS

    def _c_nvmlDeviceGetComputeRunningProcesses_v3(self, handle: int, count_p: int, infos: int | None) -> int:
        table, where = self._device(handle)
        name = "nvmlDeviceGetComputeRunningProcesses_v3"
        if name not in table:
            self.unrecorded.append(f"{where}: {name}")
            return ERRORS["UNKNOWN"]
        procs = table[name]
        if isinstance(procs, str):
            return ERRORS[procs]
        count = cast(count_p, POINTER(c_uint))
        if not procs:
            count[0] = 0
            return SUCCESS
        if infos is None or count[0] < len(procs):
            count[0] = len(procs)
            return ERRORS["INSUFFICIENT_SIZE"]
        array = cast(infos, POINTER(pynvml.c_nvmlProcessInfo_v3_t))
        for i, p in enumerate(procs):
            _fill(array[i], p)
        count[0] = len(procs)
        return SUCCESS


_TEXT_FUNCTIONS = {
    "nvmlSystemGetDriverVersion",
    "nvmlSystemGetNVMLVersion",
    "nvmlDeviceGetName",
    "nvmlDeviceGetSerial",
    "nvmlDeviceGetUUID",
}


def _fill(struct: ctypes.Structure, values: dict[str, Any]) -> None:
    for key, value in values.items():
        setattr(struct, key, value.encode() if isinstance(value, str) else value)


def _write_text(buf: int, size: int, value: str) -> int:
    if value in ERRORS:
        return ERRORS[value]
    data = value.encode() + b"\0"
    if len(data) > size:
        return ERRORS["INSUFFICIENT_SIZE"]
    ctypes.memmove(buf, (c_char * len(data)).from_buffer_copy(data), len(data))
    return SUCCESS


# -- tables and installation ----------------------------------------------------------------------------------
def board_names() -> list[str]:
    files = resources.files(__package__).joinpath("boards").iterdir()
    return sorted(p.name[: -len(".json")] for p in files if p.name.endswith(".json"))


def load_board(name_or_path: str) -> dict[str, Any]:
    """A recorded table by name (``a100-sxm4-80gb``) or by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    text = resources.files(__package__).joinpath("boards", f"{name_or_path}.json").read_text(encoding="utf-8")
    return json.loads(text)


def replicate(board: dict[str, Any], count: int) -> dict[str, Any]:
    """A node of ``count`` GPUs cut from ``board``'s devices (cycled), each with its own index, uuid and bus id."""
    devices = board["devices"]
    out = []
    for i in range(count):
        dev = json.loads(json.dumps(devices[i % len(devices)]))
        dev["nvmlDeviceGetUUID"] = f"GPU-{i:08x}-0000-4000-8000-{i:012x}"
        dev["nvmlDeviceGetMinorNumber"] = i
        pci = dict(dev["nvmlDeviceGetPciInfo_v3"])
        pci.update(bus=0x10 + i, busId=f"00000000:{0x10 + i:02X}:00.0")
        dev["nvmlDeviceGetPciInfo_v3"] = pci
        out.append(dev)
    return {**board, "devices": out}


@contextmanager
def installed(board: dict[str, Any]) -> Iterator[FakeNvmlLibrary]:
    """pynvml talks to a ``FakeNvmlLibrary`` replaying ``board`` until the block ends."""
    fake = FakeNvmlLibrary(board)
    saved = pynvml.nvmlLib
    install(fake)
    try:
        yield fake
    finally:
        pynvml._nvmlGetFunctionPointer_cache.clear()
        pynvml.nvmlLib = saved


def install(fake: FakeNvmlLibrary) -> None:
    """Point pynvml at ``fake`` for the rest of the process (the benchmark's replay agent uses this)."""
    pynvml._nvmlGetFunctionPointer_cache.clear()
    pynvml.nvmlLib = fake
