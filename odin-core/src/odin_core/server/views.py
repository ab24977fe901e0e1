"""Records and events in the shapes the wire carries (legacy shapes for legacy commands). Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..model import Event, RunStatus, RunView, TaskRecord, TaskStatus

TIME_FIELDS = ("submitted", "started", "completed", "retry_at", "deadline", "time")

# Our task statuses in the first Odin's per-resource vocabulary (RUNNING, SUCCEEDED, FAILED, MISSING).
LEGACY_TASK_STATUS = {
    TaskStatus.WAITING: "MISSING",  # nothing exists yet
    TaskStatus.PENDING: "RUNNING",
    TaskStatus.RUNNING: "RUNNING",
    TaskStatus.RETRYING: "RUNNING",  # the task as a whole is still going
    TaskStatus.SUCCEEDED: "SUCCEEDED",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.SKIPPED: "MISSING",  # never created
    TaskStatus.CANCELLED: "FAILED",
}

_PROGRESS = {
    TaskStatus.PENDING.value: "Submitting {id}",
    TaskStatus.RUNNING.value: "Running {id}",
    TaskStatus.SUCCEEDED.value: "Done running {id}",
    TaskStatus.RETRYING.value: "Retrying {id}: {message}",
    TaskStatus.FAILED.value: "Failed {id}: {message}",
    TaskStatus.SKIPPED.value: "Skipped {id}: {message}",
    TaskStatus.CANCELLED.value: "Cancelled {id}: {message}",
}


def iso(ts: float | None) -> str | None:
    """ISO 8601 in UTC with microseconds (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def from_iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def with_iso_times(record: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if k in TIME_FIELDS and isinstance(v, int | float) else v for k, v in record.items()}


def progress_line(ev: Event) -> str | None:
    """A legacy START progress string for one event (None for events legacy clients never saw)."""
    if ev.kind == "task":
        template = _PROGRESS.get(ev.status)
        if template is None:
            return None
        line = template.format(id=f"{ev.run_id}--{ev.task}", message=ev.message or "no reason given")
        return line.removesuffix(": no reason given") if ev.status == TaskStatus.CANCELLED.value else line
    if ev.kind == "run":
        if ev.status in (RunStatus.BUILDING.value, RunStatus.RUNNING.value) and not ev.message:
            return f"Pipeline {ev.run_id} {ev.status}"
        return f"Pipeline {ev.run_id} {ev.status}" + (f": {ev.message}" if ev.message else "")
    return ev.message or None


def wire_event(ev: Event) -> dict[str, Any]:
    """A WATCH event: Odin's Event with ``run`` for ``run_id`` and an ISO 8601 ``time``."""
    return {
        "run": ev.run_id,
        "seq": ev.seq,
        "time": iso(ev.time),
        "kind": ev.kind,
        "status": ev.status,
        "task": ev.task,
        "message": ev.message,
        "data": ev.data,
    }


def legacy_event(ev: Event) -> dict[str, Any]:
    """A store event as a Kubernetes-style event {type, reason, source, message, timestamp}."""
    warning = ev.status in ("FAILED", "RETRYING", "TERMINATED", "CANCELLED")
    what = f"task {ev.task}" if ev.task else ev.kind
    return {
        "type": "Warning" if warning else "Normal",
        "reason": ev.status.capitalize() if ev.kind != "note" else "Note",
        "source": "odin",
        "message": f"{what}: {ev.message}" if ev.message else f"{what} {ev.status}",
        "timestamp": iso(ev.time),
    }


def legacy_task(t: TaskRecord) -> dict[str, Any]:
    return {
        "task": t.task_id,
        "name": t.name,
        "status": LEGACY_TASK_STATUS[t.status],
        "state": t.status.value,
        "attempt": t.attempt,
        "command": list(t.command),
        "image": t.image,
        "args": list(t.args),
        "resource_type": t.resource_type,
        "resource_id": t.resource_id,
        "submitted": iso(t.submitted),
        "completed": iso(t.completed),
        "message": t.message,
    }


def legacy_status(view: RunView) -> dict[str, Any]:
    run = view.run
    return {
        "pipeline_status": {
            "label": run.run_id,
            "job": run.job,
            "version": run.version,
            "status": run.status.value,
            "submitted": iso(run.submitted),
            "completed": iso(run.completed),
            "message": run.message,
        },
        "task_statuses": [legacy_task(t) for t in view.tasks],
    }
