"""The wire format: envelopes, the one table of error codes, and the legacy shapes of records.

Pure: no sockets here. ``server`` moves these messages; ``commands`` produces them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidRequest, OdinError
from ..model import CleanupResult, Event, RunView, TaskRecord, TaskStatus

PROTOCOL_VERSION = 1
OK, ERROR, END = "OK", "ERROR", "END"
_RESERVED = ("command", "request")

# The one place where an error becomes a code on the wire (OdinError subclasses carry theirs).
ERROR_CODES = ("invalid_request", "invalid_pipeline", "not_found", "unauthorized", "conflict", "too_busy", "internal")


class TooBusy(OdinError):
    code = "too_busy"


def parse(raw: str | bytes) -> tuple[str, Any, dict[str, Any]]:
    """(command, payload, extra keys) of a request frame, or InvalidRequest saying what is wrong."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError as e:
            raise InvalidRequest("frames must be UTF-8 JSON text") from e
    try:
        msg = json.loads(raw)
    except ValueError as e:
        raise InvalidRequest(f"not JSON: {e}") from e
    if not isinstance(msg, dict):
        raise InvalidRequest(f"a request is a JSON object, not {type(msg).__name__}")
    command = msg.get("command")
    if not isinstance(command, str) or not command:
        raise InvalidRequest('a request needs "command": a string such as "STATUS"')
    return command.upper(), msg.get("request"), {k: v for k, v in msg.items() if k not in _RESERVED}


def extra_of(raw: str | bytes) -> dict[str, Any]:
    """The extra keys of a frame that failed to parse, so even its ERROR reply can be correlated."""
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in msg.items() if k not in _RESERVED} if isinstance(msg, dict) else {}


def reply(status: str, response: Any, extra: dict[str, Any]) -> str:
    return json.dumps({**extra, "status": status, "response": response}, default=str)


def error_reply(exc: BaseException, extra: dict[str, Any]) -> str:
    """An ERROR frame: the readable message as ``response`` (legacy clients print it), the code in ``error``."""
    error = exc.to_dict() if isinstance(exc, OdinError) else {"code": "internal", "message": f"internal error: {exc!r}"}
    if error["code"] not in ERROR_CODES:
        error["code"] = "internal"
    return json.dumps({**extra, "status": ERROR, "response": error["message"], "error": error}, default=str)


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


_LEGACY = {
    TaskStatus.SUCCEEDED: "SUCCEEDED",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.PENDING: "RUNNING",
    TaskStatus.RUNNING: "RUNNING",
}


def legacy_task_status(status: TaskStatus) -> str:
    """The first Odin's resource statuses: RUNNING, SUCCEEDED, FAILED, MISSING (never created)."""
    return _LEGACY.get(status, "MISSING")


def task_entry(t: TaskRecord) -> dict[str, Any]:
    return {
        "task": t.task_id,
        "name": t.name,
        "status": legacy_task_status(t.status),
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


_TIMES = ("submitted", "started", "completed", "retry_at", "deadline")


def wire_record(record: dict[str, Any]) -> dict[str, Any]:
    """A run or task record as sent: its timestamps as ISO 8601 strings (tasks too)."""
    out: dict[str, Any] = {k: iso(v) if k in _TIMES and isinstance(v, int | float) else v for k, v in record.items()}
    tasks = out.get("tasks")
    if isinstance(tasks, list):
        out["tasks"] = [wire_record(t) for t in tasks]
    return out


def status_entry(view: RunView) -> dict[str, Any]:
    r = view.run
    record = r.to_record()
    record["tasks"] = [t.to_record() for t in view.tasks]
    record = wire_record(record)
    return {
        "pipeline_status": {
            "label": r.run_id,
            "job": r.job,
            "version": r.version,
            "status": r.status.value,
            "submitted": iso(r.submitted),
            "completed": iso(r.completed),
            "message": r.message,
        },
        "task_statuses": [task_entry(t) for t in view.tasks],
        "record": record,
    }


def cleanup_entry(c: CleanupResult) -> dict[str, Any]:
    return {
        "task_id": c.task_id,
        "cleaned_from_k8s": c.cleaned_from_k8s,
        "purged_from_db": c.purged_from_db,
        "removed_from_fs": c.removed_from_fs,
    }


def event_entry(e: Event) -> dict[str, Any]:
    """An Odin event on the wire (WATCH): the record, with ``run`` for the run id."""
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


def legacy_event(e: Event) -> dict[str, Any]:
    """An Odin event in the first Odin's EVENTS shape (that of Kubernetes events)."""
    bad = e.status in ("FAILED", "TERMINATED", "RETRYING", "CANCELLED")
    subject = f"task {e.task}" if e.task else f"run {e.run_id}"
    return {
        "type": "Warning" if bad else "Normal",
        "reason": e.status.capitalize(),
        "source": "odin",
        "message": f"{subject}: {e.message}" if e.message else subject,
        "timestamp": iso(e.time),
    }


_PROGRESS = {
    "PENDING": "Submitting {id}",
    "RUNNING": "Running {id}",
    "SUCCEEDED": "Done running {id}",
    "RETRYING": "Retrying {id}: {msg}",
    "FAILED": "Failed {id}: {msg}",
    "SKIPPED": "Skipped {id}: {msg}",
    "CANCELLED": "Cancelled {id}: {msg}",
}


def progress_line(e: Event) -> str | None:
    """START's legacy progress strings ("Submitting <task id>", "Done running <task id>", …)."""
    if e.kind == "task":
        pattern = _PROGRESS.get(e.status)
        return pattern.format(id=f"{e.run_id}--{e.task}", msg=e.message) if pattern else None
    if e.kind == "note":
        return f"Note: {e.message}"
    if e.status == "DONE":
        return f"Pipeline {e.run_id} DONE"
    if e.status == "TERMINATED":
        return f"Pipeline {e.run_id} TERMINATED: {e.message}"
    return None
