"""Run and task state as frozen records; statuses as str enums with predicates.

These records are what the store persists and what every pass of the engine is rebuilt from.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    BUILDING = "BUILDING"  # accepted, tasks being prepared
    RUNNING = "RUNNING"  # at least one task may still run
    DONE = "DONE"  # every task succeeded (or was allowed to stop early)
    TERMINATED = "TERMINATED"  # failed, stopped or timed out; ``message`` says why

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.DONE, RunStatus.TERMINATED)


class TaskStatus(StrEnum):
    WAITING = "WAITING"  # dependencies not finished yet
    PENDING = "PENDING"  # handed to the executor, not running yet (image pull, scheduling)
    RUNNING = "RUNNING"  # the executor reports it running
    RETRYING = "RETRYING"  # an attempt failed; the next starts after ``retry_at``
    SUCCEEDED = "SUCCEEDED"  # finished with exit code 0
    FAILED = "FAILED"  # failed for good (attempts exhausted, timeout, invalid reference)
    SKIPPED = "SKIPPED"  # never started: an upstream task failed, or the run stopped early
    CANCELLED = "CANCELLED"  # was running or waiting when the run was stopped

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_TASK

    @property
    def is_active(self) -> bool:
        """Occupies a parallelism slot (an executor resource may exist)."""
        return self in (TaskStatus.PENDING, TaskStatus.RUNNING)


_TERMINAL_TASK = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED})


_FIELDS: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    """The field names of a record class, looked up once (``dataclasses.fields`` is slow on hot paths)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _shallow(record: Any) -> dict[str, Any]:
    """A record's fields as a dict (records hold only JSON values; asdict's deep copy is slow on hot paths)."""
    values = record.__dict__
    return {name: values[name] for name in _names(type(record))}


def _evolve(record: Any, changes: dict[str, Any]) -> Any:
    """``dataclasses.replace`` for the records here (no ``__post_init__``, no init-only fields), without its
    per-call field introspection: a copy of the instance's fields with ``changes`` applied."""
    names = _names(type(record))
    for key in changes:
        if key not in names:
            raise TypeError(f"{type(record).__name__} has no field {key!r}")
    new = object.__new__(type(record))
    new.__dict__.update(record.__dict__)  # frozen: no __setattr__, but the new instance's dict may be filled
    new.__dict__.update(changes)
    return new


def now() -> float:
    return time.time()


@dataclass(frozen=True)
class TaskRecord:
    run_id: str
    name: str
    status: TaskStatus = TaskStatus.WAITING
    attempt: int = 0  # number of attempts started so far
    attempts_before: int = 0  # attempts made before the run was last resubmitted (retries count after them)
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[Any, ...] = ()  # after variable substitution and reference resolution
    resource_type: str = "Pod"
    resource_id: str = ""  # executor's name for the current attempt (pod name, pid)
    submitted: float | None = None  # first attempt handed to the executor
    started: float | None = None  # current attempt started running
    completed: float | None = None
    retry_at: float | None = None
    deadline: float | None = None  # current attempt times out at this time
    exit_code: int | None = None
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        return f"{self.run_id}--{self.name}"

    def evolve(self, **changes: Any) -> TaskRecord:
        return _evolve(self, changes)  # type: ignore[no-any-return]

    def to_record(self) -> dict[str, Any]:
        d = _shallow(self)
        d["status"] = self.status.value
        d["command"] = list(self.command)
        d["args"] = list(self.args)
        d["task_id"] = self.task_id
        return d

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> TaskRecord:
        names = _names(cls)
        kw = {k: v for k, v in d.items() if k in names}
        kw["status"] = TaskStatus(kw.get("status", "WAITING"))
        kw["command"] = tuple(kw.get("command") or ())
        kw["args"] = tuple(kw.get("args") or ())
        kw["outputs"] = dict(kw.get("outputs") or {})
        return cls(**kw)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    job: str
    name: str = ""
    version: str = ""  # git commit of the pipelines root at launch, "" when not a git tree
    status: RunStatus = RunStatus.BUILDING
    submitted: float = field(default_factory=now)
    completed: float | None = None
    message: str = ""
    executor: str = "local"
    stop_requested: bool = False
    early_exit: bool = False  # a task asked the run to stop early after it succeeded
    owner: str = ""  # the engine instance that drives the run; another one takes over when it goes quiet

    def evolve(self, **changes: Any) -> RunRecord:
        return _evolve(self, changes)  # type: ignore[no-any-return]

    def to_record(self) -> dict[str, Any]:
        d = _shallow(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> RunRecord:
        names = _names(cls)
        kw = {k: v for k, v in d.items() if k in names}
        kw["status"] = RunStatus(kw.get("status", "BUILDING"))
        kw["stop_requested"] = bool(kw.get("stop_requested"))
        kw["early_exit"] = bool(kw.get("early_exit"))
        return cls(**kw)


@dataclass(frozen=True)
class Event:
    """One change of a run, numbered per run from 1 without gaps."""

    run_id: str
    seq: int
    time: float
    kind: str  # "run" or "task"
    status: str
    task: str = ""
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return _shallow(self)

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> Event:
        names = _names(cls)
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class RunView:
    """A run with its tasks, as shown to users."""

    run: RunRecord
    tasks: tuple[TaskRecord, ...]


@dataclass(frozen=True)
class CleanupResult:
    task_id: str
    cleaned_from_k8s: bool = False
    purged_from_db: bool = False
    removed_from_fs: bool = False


@dataclass(frozen=True)
class AttemptUpdate:
    """What an executor reports about one attempt of a task."""

    run_id: str
    name: str
    attempt: int
    status: TaskStatus  # PENDING (with a reason), RUNNING, SUCCEEDED or FAILED
    exit_code: int | None = None
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    resource_id: str = ""
    permanent: bool = False  # a failure no retry can fix (invalid spec rejected by the cluster)
