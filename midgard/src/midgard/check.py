"""Pure: does a report carry a real value for every GPU field the board supports?

A ``null`` is fine when the GPU's ``notSupported`` names the field (NVML said the board has no such reading); any
other ``null``, and anything in ``errors``, is a problem. The tests run this on every recorded board, and
``midgard/tools/gpu_check.py`` runs it on a real GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

SKIP = {"unit", "processes", "migDevices", "notSupported", "errors", "index"}


def leaves(entry: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every reading of a GPU or MIG entry."""
    for key, value in entry.items():
        if key in SKIP:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from leaves(value, f"{path}.")
        else:
            yield path, value


def problems(entry: dict[str, Any], where: str) -> list[str]:
    not_supported = set(entry.get("notSupported") or [])
    if "pciBusId" in not_supported:
        not_supported.add("id")  # ``id`` is the original name of the bus id
    errors = entry.get("errors") or {}
    out = [f"{where}: {path} is null but not marked unsupported" for path, v in leaves(entry)
           if v is None and path not in not_supported and path not in errors]  # fmt: skip
    out += [f"{where}: {path}: {message}" for path, message in errors.items()]
    return out


def report_problems(report: dict[str, Any], *, expect_gpus: bool = True) -> list[str]:
    out = []
    nvml = report.get("nvml") or {}
    if expect_gpus and not nvml.get("available"):
        out.append(f"NVML not available: {nvml.get('reason') or nvml.get('error')}")
    if expect_gpus and not report.get("gpus"):
        out.append("no GPU in the report")
    for gpu in report.get("gpus") or []:
        where = f"GPU {gpu.get('index')}"
        out += problems(gpu, where)
        for mig in gpu.get("migDevices") or []:
            out += problems(mig, f"{where} MIG {mig.get('index')}")
    return out


def table(report: dict[str, Any]) -> str:
    """Every reading of every GPU: path, value, and whether it is real, unsupported or a problem."""
    lines = [f"{'GPU':<8} {'field':<42} {'value':<28} status"]
    for gpu in report.get("gpus") or []:
        for entry, label in [(gpu, str(gpu.get("index")))] + [
            (m, f"{gpu.get('index')}/mig{m.get('index')}") for m in gpu.get("migDevices") or []
        ]:
            ns, errors = set(entry.get("notSupported") or []), entry.get("errors") or {}
            for path, value in leaves(entry):
                status = "ok" if value is not None else ("not supported" if path in ns or path == "id" else "MISSING")
                if path in errors:
                    status = f"ERROR {errors[path]}"
                lines.append(f"{label:<8} {path:<42} {str(value)[:28]:<28} {status}")
    return "\n".join(lines)
