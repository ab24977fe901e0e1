"""The wire format: envelopes, the one table of error codes, and the legacy shapes of records.

Pure: no sockets here. ``server`` moves these messages; ``commands`` produces them.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidRequest, OdinError
from ..model import CleanupResult, Event, RunStatus, RunView, TaskRecord, TaskStatus

PROTOCOL_VERSION = 1
OK, ERROR, END = "OK", "ERROR", "END"
_RESERVED = ("command", "request")

# The one place where an error becomes a code on the wire (OdinError subclasses carry theirs).
ERROR_CODES = ("invalid_request", "invalid_pipeline", "not_found", "unauthorized", "conflict", "too_busy", "internal")


class TooBusy(OdinError):
    code = "too_busy"


MAX_DEPTH = 32  # nesting of a request's JSON; real requests use 3


def _constant(name: str) -> Any:
    raise InvalidRequest(f"{name} is not JSON: send numbers as finite values")


def _loads(raw: str | bytes) -> Any:
    """JSON text to data, refusing what strict JSON forbids (NaN, Infinity) and nesting past MAX_DEPTH."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError as e:
            raise InvalidRequest("frames must be UTF-8 JSON text") from e
    try:
        data = json.loads(raw, parse_constant=_constant)
    except RecursionError as e:
        raise InvalidRequest(f"a request may nest at most {MAX_DEPTH} levels deep") from e
    except ValueError as e:
        raise InvalidRequest(f"not JSON: {e}") from e
    if depth(data) > MAX_DEPTH:
        raise InvalidRequest(f"a request may nest at most {MAX_DEPTH} levels deep")
    return data


def depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse(raw: str | bytes) -> tuple[str, Any, dict[str, Any]]:
    """(command, payload, extra keys) of a request frame, or InvalidRequest saying what is wrong."""
    msg = _loads(raw)
    if not isinstance(msg, dict):
        raise InvalidRequest(f"a request is a JSON object, not {type(msg).__name__}")
    command = msg.get("command")
    if not isinstance(command, str) or not command:
        raise InvalidRequest('a request needs "command": a string such as "STATUS"')
    if len(command) > 64 or not command.isascii() or not command.isprintable():
        raise InvalidRequest("unknown command: commands are short words such as STATUS")
    return command.upper(), msg.get("request"), {k: v for k, v in msg.items() if k not in _RESERVED}


def extra_of(raw: str | bytes) -> dict[str, Any]:
    """The extra keys of a frame that failed to parse, so even its ERROR reply can be correlated (those that
    are themselves too deep, or the whole frame when it is not JSON at all, are left out)."""
    try:  # numbers too long to be ints (the reason the frame failed, maybe) are dropped, not the whole frame
        msg = json.loads(raw, parse_constant=lambda _name: None, parse_int=_short_int)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(msg, dict):
        return {}
    return {k: v for k, v in msg.items() if k not in _RESERVED and depth(v) < MAX_DEPTH}


def _short_int(digits: str) -> int | None:
    return int(digits) if len(digits) <= 4000 else None  # Python's int() refuses more than 4,300 digits


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null: replies are strict JSON that every client can parse."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _dumps(message: dict[str, Any]) -> str:
    try:
        return json.dumps(message, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(message), default=str, allow_nan=False)


def reply(status: str, response: Any, extra: dict[str, Any]) -> str:
    return _dumps({**extra, "status": status, "response": response})


def error_reply(exc: BaseException, extra: dict[str, Any]) -> str:
    """An ERROR frame: the readable message as ``response`` (legacy clients print it), the code in ``error``."""
    error = exc.to_dict() if isinstance(exc, OdinError) else {"code": "internal", "message": f"internal error: {exc!r}"}
    if error["code"] not in ERROR_CODES:
        error["code"] = "internal"
    return _dumps({**extra, "status": ERROR, "response": error["message"], "error": error})


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def legacy_task_status(status: TaskStatus, run: RunStatus) -> str:
    """The first Odin's task state: the list of the run record it sat in (``executed``, ``executing``,
    ``waiting``), or ``terminated`` for a task that failed or was stopped (or was running when its run ended)."""
    if status is TaskStatus.SUCCEEDED:
        return "executed"
    if status in (TaskStatus.WAITING, TaskStatus.SKIPPED):
        return "waiting"
    if status in (TaskStatus.FAILED, TaskStatus.CANCELLED) or run is RunStatus.TERMINATED:
        return "terminated"
    return "executing"


_LEGACY_ORDER = {"executed": 0, "executing": 1, "terminated": 1, "waiting": 2}


def task_entry(t: TaskRecord, run: RunStatus) -> dict[str, Any]:
    """A STATUS row with exactly the first Odin's fields (its clients build a record type from them)."""
    return {
        "task": t.task_id,
        "status": legacy_task_status(t.status, run),
        "command": list(t.command),
        "name": t.name,
        "image": t.image,
        "resource_type": t.resource_type,
        "resource_id": t.resource_id or None,
        "submitted": iso(t.submitted),
        "completed": iso(t.completed),
    }


_TIMES = ("submitted", "started", "completed", "retry_at", "deadline")


def wire_record(record: dict[str, Any]) -> dict[str, Any]:
    """A run or task record as sent: its timestamps as ISO 8601 strings (tasks too)."""
    out: dict[str, Any] = {k: iso(v) if k in _TIMES and isinstance(v, int | float) else v for k, v in record.items()}
    tasks = out.get("tasks")
    if isinstance(tasks, list):
        out["tasks"] = [wire_record(t) for t in tasks]
    return out


def data_record(record: dict[str, Any]) -> dict[str, Any]:
    """DATA's record: Odin's own fields, plus the first Odin's names for them, so scripts reading ``label``,
    ``submit_time`` or a run's ``executed`` list keep working."""
    out = wire_record(record)
    legacy: dict[str, Any] = {"submit_time": out.get("submitted"), "completion_time": out.get("completed")}
    tasks = out.get("tasks")
    if isinstance(tasks, list):  # a run
        run = RunStatus(out["status"])
        lists: dict[str, list[str]] = {"executed": [], "executing": [], "waiting": []}
        for t in tasks:
            state = legacy_task_status(TaskStatus(t["status"]), run)
            lists["executing" if state == "terminated" else state].append(f"{t['run_id']}--{t['name']}")
        legacy |= {"label": out["run_id"], "error_message": out.get("message") or None, **lists}
        legacy["jobs"] = [f"{t['run_id']}--{t['name']}" for t in tasks]
    else:  # a task
        legacy |= {"label": f"{out['run_id']}--{out['name']}", "parent": out["run_id"]}
    return {**legacy, **out}


def status_entry(view: RunView, *, full: bool = False) -> dict[str, Any]:
    """A STATUS entry: the first Odin's ``pipeline_status`` and ``task_statuses`` with exactly its fields, tasks
    in its order (executed, executing, waiting); with ``full`` also ``record``, the run as DATA returns it."""
    r = view.run
    rows = [task_entry(t, r.status) for t in view.tasks]
    entry: dict[str, Any] = {
        "pipeline_status": {
            "label": r.run_id,
            "job": r.job,
            "version": r.version,
            "status": r.status.value,
            "submitted": iso(r.submitted),
            "completed": iso(r.completed),
        },
        "task_statuses": sorted(rows, key=lambda row: _LEGACY_ORDER[row["status"]]),
    }
    if full:
        record = r.to_record()
        record["tasks"] = [t.to_record() for t in view.tasks]
        entry["record"] = wire_record(record)
    return entry


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


_CLUSTER_EVENT_KEYS = ("type", "reason", "source", "message", "timestamp")


def legacy_cluster_event(e: dict[str, Any]) -> dict[str, Any]:
    """A cluster (Kubernetes) event with exactly the first Odin's keys, whatever else the executor recorded."""
    return {k: e.get(k) for k in _CLUSTER_EVENT_KEYS}


def lagged_entry(lagged: Any) -> dict[str, Any]:
    """WATCH (every run): this watcher fell behind and events were dropped. ``resume`` maps each run to the
    last seq sent for it; ``WATCH {"run": id, "after_seq": seq}`` replays the rest of that run."""
    resume = {str(run): int(seq) for run, seq in dict(lagged.resume).items()}
    return {
        "kind": "lagged",
        "resume": resume,
        "message": f"this watcher fell behind and missed events of {len(resume)} run(s); "
        'resume each with WATCH {"run": id, "after_seq": resume[id]}',
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
