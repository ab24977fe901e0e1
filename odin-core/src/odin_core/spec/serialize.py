"""A spec as JSON-safe data and back, exactly: the engine stores the instantiated spec on the run record and
rebuilds the run from it after a restart, so nothing may be lost or change type on the way.

The data is also a pipeline file: every task field is spelled as in ``main.yml`` (``timeout``, ``retries:
{limit, backoff, factor, max_backoff}``), and the extra top-level keys (``format``, ``job``, ``path``,
``locations``) are ignored by the loader, so what ``odin show`` prints validates when saved as ``main.yml`` and
loads back to the same tasks.

Tuples become lists and come back as tuples; ``path`` is a string; ``locations`` are kept (small, and they
let run-time errors point at the file). Missing optional keys take their defaults, so records written before
a field existed still load, and so do records written with the attribute names (``timeout_s``, ``backoff_s``,
``max_backoff_s``) of earlier versions.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from .model import (
    ConfigMapMount,
    EphemVolume,
    Location,
    Mount,
    PipelineSpec,
    Resources,
    RetryPolicy,
    SecretMount,
    SecurityContext,
    TaskSpec,
)

FORMAT_VERSION = 1
# TaskSpec / RetryPolicy attribute -> the key a pipeline file spells it with, where they differ.
_TASK_KEYS = {"timeout_s": "timeout"}
_RETRY_KEYS = {"backoff_s": "backoff", "max_backoff_s": "max_backoff"}
_TASK_ATTRS = {v: k for k, v in _TASK_KEYS.items()}
_RETRY_ATTRS = {v: k for k, v in _RETRY_KEYS.items()}
_LISTS = {"mounts": Mount, "ephem_volumes": EphemVolume, "secrets": SecretMount, "config_maps": ConfigMapMount}
_OBJECTS = {"cpu": Resources, "memory": Resources, "security_context": SecurityContext, "retries": RetryPolicy}


_SCALARS = (str, int, float, bool, type(None))


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names, once per class (``dataclasses.fields`` is slow for every submit)."""
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None


def _plain(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    names = _field_names(value.__class__)
    return value if names is None else {n: _plain(getattr(value, n)) for n in names}


def _frozen(value: Any) -> Any:
    """Lists back to tuples, at any depth (the spec holds tuples, never lists)."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


def spec_to_dict(spec: PipelineSpec) -> dict[str, Any]:
    """JSON-safe data for :func:`spec_from_dict`."""
    return {
        "format": FORMAT_VERSION,
        "name": spec.name,
        "job": spec.job,
        "path": str(spec.path) if spec.path is not None else None,
        "max_parallel": spec.max_parallel,
        "on_failure": spec.on_failure,
        "tasks": [_task_doc(t) for t in spec.tasks],
        "locations": {k: [loc.file, loc.line, loc.column] for k, loc in spec.locations.items()},
    }


def spec_from_dict(data: dict[str, Any]) -> PipelineSpec:
    """The spec that :func:`spec_to_dict` produced ``data`` from."""
    return PipelineSpec(
        name=data["name"],
        tasks=tuple(_task(t) for t in data["tasks"]),
        job=data.get("job", ""),
        path=Path(data["path"]) if data.get("path") is not None else None,
        max_parallel=data.get("max_parallel"),
        on_failure=data.get("on_failure", "stop"),
        locations={k: Location(*v) for k, v in data.get("locations", {}).items()},
    )


def _task_doc(task: TaskSpec) -> dict[str, Any]:
    """A task as a pipeline file writes it."""
    doc = {_TASK_KEYS.get(k, k): v for k, v in _plain(task).items()}
    doc["retries"] = {_RETRY_KEYS.get(k, k): v for k, v in doc["retries"].items()}
    return doc


def _task(data: dict[str, Any]) -> TaskSpec:
    known = {f.name for f in dataclasses.fields(TaskSpec)}
    values: dict[str, Any] = {}
    for written, value in data.items():
        key = _TASK_ATTRS.get(written, written)
        if key == "retries" and isinstance(value, dict):
            value = {_RETRY_ATTRS.get(k, k): v for k, v in value.items()}
        if key not in known:
            continue  # written by a newer version: ignore rather than fail a restart
        if key in _LISTS:
            values[key] = tuple(_object(_LISTS[key], v) for v in value)
        elif key in _OBJECTS:
            values[key] = None if value is None else _object(_OBJECTS[key], value)
        elif key in ("node_selector", "env"):
            values[key] = dict(value)
        else:
            values[key] = _frozen(value) if isinstance(value, (list, dict)) else value
    return TaskSpec(**values)


def _object(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})
