"""Runs, tasks and events as the HTTP API shows them (camelCase, ISO 8601 times). Pure."""

from __future__ import annotations

from typing import Any

from odin_core.model import Event, RunView, TaskRecord, TaskStatus

from .gitstore.names import job_id
from .gitstore.snapshots import gateway_job
from .wire import camel, iso

_TIME_NAMES = {
    "submitted": "submitTime",
    "started": "startTime",
    "completed": "completionTime",
    "retry_at": "retryTime",
    "deadline": "deadline",
    "time": "time",
}
_LEGACY = {
    TaskStatus.SUCCEEDED: "SUCCEEDED",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.PENDING: "RUNNING",
    TaskStatus.RUNNING: "RUNNING",
}


def record(value: dict[str, Any]) -> dict[str, Any]:
    """A core record (times as epoch seconds) in camelCase with ISO times; tasks too."""
    out: dict[str, Any] = {}
    for key, v in value.items():
        if key in _TIME_NAMES:
            out[_TIME_NAMES[key]] = iso(v) if isinstance(v, int | float) else v
        elif key == "tasks" and isinstance(v, list):
            out["tasks"] = [record(t) for t in v]
        elif key == "outputs" or key == "data":
            out[key] = v  # user data: keys kept as written
        else:
            out[camel(key)] = v
    if "job" in out and isinstance(out["job"], str):
        out["job"], commit = gateway_job(out["job"])
        out.setdefault("commit", commit or out.get("version", ""))
    return out


def task(t: TaskRecord) -> dict[str, Any]:
    return {
        "id": t.task_id,
        "task": t.task_id,
        "name": t.name,
        "status": _LEGACY.get(t.status, "MISSING"),
        "state": t.status.value,
        "attempt": t.attempt,
        "command": list(t.command),
        "image": t.image,
        "args": list(t.args),
        "resourceType": t.resource_type,
        "resourceId": t.resource_id,
        "submitTime": iso(t.submitted),
        "startTime": iso(t.started),
        "completionTime": iso(t.completed),
        "exitCode": t.exit_code,
        "message": t.message,
        "outputs": t.outputs,
    }


def pipeline(view: RunView, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    r = view.run
    job, commit = gateway_job(r.job)
    meta = meta or {}
    return {
        "id": r.run_id,
        "name": r.name,
        "job": job,
        "jobId": job_id(job),
        "version": r.version,
        "commit": r.version or commit,
        "definition": f"/v1/jobs/{job_id(job)}?commit={r.version or commit}",
        "status": r.status.value,
        "message": r.message,
        "submitTime": iso(r.submitted),
        "completionTime": iso(r.completed),
        "executor": r.executor,
        "stopRequested": r.stop_requested,
        "startedBy": meta.get("username"),
        "tasks": [task(t) for t in view.tasks],
    }


def event(e: Event) -> dict[str, Any]:
    return {
        "run": e.run_id,
        "seq": e.seq,
        "time": iso(e.time),
        "kind": e.kind,
        "status": e.status,
        "task": e.task,
        "message": e.message,
        "data": e.data,
    }


def legacy_event(e: dict[str, Any]) -> dict[str, Any]:
    """An event of the core's legacy EVENTS reply (Kubernetes events' shape) as the first gateway wrote it."""
    return {
        "eventType": e.get("type", ""),
        "reason": e.get("reason", ""),
        "source": e.get("source", ""),
        "message": e.get("message", ""),
        "timestamp": e.get("timestamp"),
    }
