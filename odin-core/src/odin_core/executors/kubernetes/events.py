"""Kubernetes events of a run's or a task's objects, as ``{type, reason, source, message, timestamp}``."""

from __future__ import annotations

import re
from typing import Any

from .client import KubeClient
from .names import dns_name
from .resources import EVENTS

Obj = dict[str, Any]


def name_pattern(run_id: str, task: str | None) -> re.Pattern[str]:
    """Objects of a task are ``<task id>-<attempt>`` and what controllers derive from it (``…-master-0``)."""
    if task is None:
        return re.compile(rf"^{re.escape(dns_name(run_id))}--")
    base = dns_name(f"{run_id}--{task}")
    return re.compile(rf"^{re.escape(base)}-\d+(-.*)?$")


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


async def task_events(client: KubeClient, namespace: str, run_id: str, task: str | None) -> list[dict[str, Any]]:
    data = await client.request("list", EVENTS.path(namespace))
    pattern = name_pattern(run_id, task)
    found = [
        to_event(ev)
        for ev in data.get("items") or []
        if pattern.match((ev.get("involvedObject") or {}).get("name", ""))
    ]
    return sorted(found, key=lambda e: e["timestamp"])
