"""Kubernetes events of a run's or a task's objects, as ``{type, reason, source, message, timestamp}`` (pure).

Events carry no labels; the executor's one watch of the namespace's events keeps those whose object is
named like Odin's (``<run id>--<task>-<attempt>`` and what controllers derive from it), and the API
server's event time-to-live (one hour by default) bounds how many there are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .names import dns_name

Obj = dict[str, Any]


def name_pattern(run_id: str, task: str | None) -> re.Pattern[str]:
    """Objects of a task are ``<task id>-<attempt>`` and what controllers derive from it (``…-master-0``)."""
    if task is None:
        return re.compile(rf"^{re.escape(dns_name(run_id))}--")
    base = dns_name(f"{run_id}--{task}")
    return re.compile(rf"^{re.escape(base)}-\d+(-.*)?$")


def involved_name(ev: Obj) -> str:
    return (ev.get("involvedObject") or {}).get("name", "")


def is_task_event(ev: Obj) -> bool:
    """An event about an object named like a task's (task ids are ``<run id>--<task>``)."""
    return "--" in involved_name(ev)


def to_event(ev: Obj) -> dict[str, Any]:
    source = ev.get("source") or {}
    involved = ev.get("involvedObject") or {}
    return {
        "type": ev.get("type", ""),
        "reason": ev.get("reason", ""),
        "source": source.get("component") or ev.get("reportingComponent", ""),
        "message": ev.get("message", ""),
        "timestamp": ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp") or "",
        "object": f"{involved.get('kind', '')}/{involved.get('name', '')}",
    }


def task_events(events: Iterable[Obj], run_id: str, task: str | None) -> list[dict[str, Any]]:
    pattern = name_pattern(run_id, task)
    found = [to_event(ev) for ev in events if pattern.match(involved_name(ev))]
    return sorted(found, key=lambda e: e["timestamp"])
