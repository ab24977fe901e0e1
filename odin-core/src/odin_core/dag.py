"""Pure decisions for one run: what to start, retry, time out, cancel, skip, or finish.

``DagState`` is rebuilt from a run's persisted records (``from_records``) and then kept up to
date incrementally, so each transition costs O(1) amortised plus the edges it touches: a
100,000-task DAG costs O(tasks + edges) in total. It performs no I/O: the engine persists what
it returns and acts on it.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .model import AttemptUpdate, RunRecord, RunStatus, TaskRecord, TaskStatus
from .spec.model import PipelineSpec, TaskSpec

EARLY_EXIT_OUTPUT = "odin_early_exit"


@dataclass
class Plan:
    """The result of one ``decide``: records to persist, then attempts to submit and to kill."""

    changed: list[TaskRecord] = field(default_factory=list)  # every transition in order (one event each)
    starts: list[TaskRecord] = field(default_factory=list)  # already PENDING with the new attempt number
    kills: list[TaskRecord] = field(default_factory=list)  # attempts whose executor resources must go
    run: RunRecord | None = None  # the run record when it changed
    wake_at: float | None = None  # call decide again at this time even if nothing happens


class DagState:
    def __init__(self, spec: PipelineSpec, run: RunRecord, records: Mapping[str, TaskRecord]) -> None:
        self.spec = spec
        self.run = run
        self.tasks: dict[str, TaskSpec] = {t.name: t for t in spec.tasks}
        self.children: dict[str, list[str]] = {t.name: [] for t in spec.tasks}
        for t in spec.tasks:
            for dep in t.depends:
                self.children[dep].append(t.name)
        self.records: dict[str, TaskRecord] = {}
        self._remaining: dict[str, int] = {}
        self._ready: deque[str] = deque()
        self._timers: list[tuple[float, str, int]] = []  # (time, name, attempt) for deadlines and retries
        self._active = 0
        self._terminal = 0
        self._failed: list[str] = []
        self._run_changed = False
        self._changes: list[TaskRecord] = []  # every transition since the last plan, in order
        for t in spec.tasks:
            self._index(records[t.name])
        for t in spec.tasks:
            self._remaining[t.name] = sum(1 for d in t.depends if self.records[d].status is not TaskStatus.SUCCEEDED)
            self._maybe_ready(t.name)
        for name in list(self._failed):
            self._skip_descendants(name)

    @classmethod
    def from_records(cls, spec: PipelineSpec, run: RunRecord, records: Iterable[TaskRecord]) -> DagState:
        return cls(spec, run, {r.name: r for r in records})

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def active(self) -> int:
        return self._active

    @property
    def finished(self) -> bool:
        return self._terminal == len(self.tasks)

    def _index(self, rec: TaskRecord) -> None:
        """Count a record that is new to the state."""
        self.records[rec.name] = rec
        self._active += rec.status.is_active
        self._terminal += rec.status.is_terminal
        if rec.status is TaskStatus.FAILED:
            self._failed.append(rec.name)
        if rec.status.is_active and rec.deadline is not None:
            heapq.heappush(self._timers, (rec.deadline, rec.name, rec.attempt))
        if rec.status is TaskStatus.RETRYING and rec.retry_at is not None:
            heapq.heappush(self._timers, (rec.retry_at, rec.name, rec.attempt))

    def _set(self, rec: TaskRecord) -> None:
        old = self.records[rec.name]
        self._active -= old.status.is_active
        self._terminal -= old.status.is_terminal
        self._index(rec)
        self._changes.append(rec)
        if rec.status is TaskStatus.SUCCEEDED and old.status is not TaskStatus.SUCCEEDED:
            for child in self.children[rec.name]:
                self._remaining[child] -= 1
                self._maybe_ready(child)
        elif rec.status in (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED):
            self._skip_descendants(rec.name)

    def _maybe_ready(self, name: str) -> None:
        if self._remaining[name] == 0 and self.records[name].status is TaskStatus.WAITING:
            self._ready.append(name)

    def _skip_descendants(self, name: str) -> None:
        todo = [name]
        while todo:
            for child in self.children[todo.pop()]:
                rec = self.records[child]
                if rec.status is TaskStatus.WAITING:
                    self._set(rec.evolve(status=TaskStatus.SKIPPED, message=f"upstream task {name!r} did not succeed"))
                    todo.append(child)

    def _take_changes(self) -> list[TaskRecord]:
        changes, self._changes = self._changes, []
        return changes

    # -- inputs ------------------------------------------------------------------------------

    def update(self, upd: AttemptUpdate, now: float) -> bool:
        """Apply an executor report; stale reports (old attempt, task no longer active) are ignored."""
        rec = self.records.get(upd.name)
        if rec is None or rec.attempt != upd.attempt or not rec.status.is_active:
            return False
        resource = {"resource_id": upd.resource_id} if upd.resource_id else {}
        if upd.status is TaskStatus.PENDING:
            return self._pending_news(rec, upd)
        if upd.status is TaskStatus.RUNNING:
            if rec.status is TaskStatus.RUNNING:
                return False
            self._set(rec.evolve(status=TaskStatus.RUNNING, started=now, message="", **resource))
        elif upd.status is TaskStatus.SUCCEEDED:
            self._succeed(rec, upd, now)
        else:
            self._fail_attempt(rec, now, upd.message, exit_code=upd.exit_code, permanent=upd.permanent)
        return True

    def _pending_news(self, rec: TaskRecord, upd: AttemptUpdate) -> bool:
        """Why an attempt is still pending, and the name of its resource: recorded only when new."""
        changes: dict[str, str] = {}
        if rec.status is TaskStatus.PENDING and upd.message != rec.message:
            changes["message"] = upd.message
        if upd.resource_id and upd.resource_id != rec.resource_id:
            changes["resource_id"] = upd.resource_id
        if changes:
            self._set(rec.evolve(**changes))
        return bool(changes)

    def _succeed(self, rec: TaskRecord, upd: AttemptUpdate, now: float) -> None:
        outputs = {**rec.outputs, **upd.outputs}
        self._set(
            rec.evolve(
                status=TaskStatus.SUCCEEDED,
                completed=now,
                exit_code=upd.exit_code or 0,
                message=upd.message,
                outputs=outputs,
                deadline=None,
            )
        )
        if self.tasks[rec.name].request_early_exit or outputs.get(EARLY_EXIT_OUTPUT) is True:
            self._set_run(early_exit=True, message=f"task {rec.name!r} asked the run to exit early")

    def _fail_attempt(
        self, rec: TaskRecord, now: float, message: str, *, exit_code: int | None = None, permanent: bool = False
    ) -> None:
        policy = self.tasks[rec.name].retries
        if not permanent and rec.attempt - rec.attempts_before <= policy.limit and not self._stopping:
            retry_at = now + policy.delay_s(rec.attempt)
            self._set(
                rec.evolve(
                    status=TaskStatus.RETRYING,
                    retry_at=retry_at,
                    exit_code=exit_code,
                    deadline=None,
                    message=f"attempt {rec.attempt} failed: {message}; retrying",
                )
            )
        else:
            self._set(
                rec.evolve(status=TaskStatus.FAILED, completed=now, exit_code=exit_code, message=message, deadline=None)
            )

    def fail_start(self, name: str, message: str, now: float, *, permanent: bool = True) -> None:
        """A start could not happen (unresolvable reference, executor refused)."""
        rec = self.records[name]
        if rec.status.is_active:
            self._fail_attempt(rec, now, message, permanent=permanent)

    def set_args(self, name: str, args: tuple[object, ...]) -> None:
        """Record the arguments an attempt really got (references resolved); persisted with the next plan."""
        rec = self.records[name]
        if tuple(rec.args) != tuple(args):
            self._set(rec.evolve(args=tuple(args)))

    def request_stop(self, reason: str = "stopped by user") -> None:
        if not self.run.stop_requested and not self.run.status.is_terminal:
            self._set_run(stop_requested=True, message=reason)

    def _set_run(self, **changes: object) -> None:
        self.run = self.run.evolve(**changes)
        self._run_changed = True

    # -- decisions ---------------------------------------------------------------------------

    @property
    def _stopping(self) -> bool:
        failed_stop = bool(self._failed) and self.spec.on_failure == "stop"
        return self.run.stop_requested or self.run.early_exit or failed_stop

    def decide(self, now: float, capacity: int | None = None) -> Plan:
        """Everything that should happen now; ``capacity`` bounds new starts (engine-wide slots)."""
        plan = Plan()
        if self.run.status.is_terminal:
            return plan
        if self.run.status is RunStatus.BUILDING:
            self._set_run(status=RunStatus.RUNNING)
        self._fire_timers(now, plan)
        if self._stopping:
            self._wind_down(now, plan)
        else:
            self._start_ready(now, capacity, plan)
        if self.finished:
            self._finish(now)
        plan.changed = self._take_changes()
        if self._run_changed:
            plan.run, self._run_changed = self.run, False
        plan.wake_at = self._next_timer()
        return plan

    def _fire_timers(self, now: float, plan: Plan) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, name, attempt = heapq.heappop(self._timers)
            rec = self.records[name]
            if rec.attempt != attempt:
                continue
            if rec.status.is_active and rec.deadline is not None and rec.deadline <= now:
                plan.kills.append(rec)
                timeout = self.tasks[name].timeout_s
                self._fail_attempt(rec, now, f"timed out after {timeout:g}s")
            elif rec.status is TaskStatus.RETRYING and rec.retry_at is not None and rec.retry_at <= now:
                self._ready.appendleft(name)

    def _next_timer(self) -> float | None:
        while self._timers:
            t, name, attempt = self._timers[0]
            rec = self.records[name]
            live = rec.attempt == attempt and (
                (rec.status.is_active and rec.deadline == t)
                or (rec.status is TaskStatus.RETRYING and rec.retry_at == t)
            )
            if live:
                return t
            heapq.heappop(self._timers)
        return None

    def _start_ready(self, now: float, capacity: int | None, plan: Plan) -> None:
        limit = self.spec.max_parallel
        while self._ready:
            if limit is not None and self._active >= limit:
                break
            if capacity is not None and len(plan.starts) >= capacity:
                break
            name = self._ready.popleft()
            rec = self.records[name]
            if rec.status not in (TaskStatus.WAITING, TaskStatus.RETRYING):
                continue
            timeout = self.tasks[name].timeout_s
            started = rec.evolve(
                status=TaskStatus.PENDING,
                attempt=rec.attempt + 1,
                submitted=rec.submitted or now,
                started=None,
                retry_at=None,
                deadline=now + timeout if timeout else None,
                exit_code=None,
                message="",
                resource_id="",
            )
            self._set(started)
            plan.starts.append(started)

    def _wind_down(self, now: float, plan: Plan) -> None:
        reason = self._stop_reason()
        for rec in list(self.records.values()):
            if rec.status.is_active:
                plan.kills.append(rec)
                self._set(rec.evolve(status=TaskStatus.CANCELLED, completed=now, message=reason, deadline=None))
            elif rec.status is TaskStatus.RETRYING:
                self._set(rec.evolve(status=TaskStatus.CANCELLED, completed=now, message=reason, retry_at=None))
            elif rec.status is TaskStatus.WAITING:
                self._set(rec.evolve(status=TaskStatus.SKIPPED, message=reason))
        self._ready.clear()

    def _stop_reason(self) -> str:
        if self.run.stop_requested:
            return self.run.message or "stopped by user"
        if self.run.early_exit:
            return self.run.message
        return f"run stopping: task {self._failed[0]!r} failed"

    def _finish(self, now: float) -> None:
        ok = (
            not self._failed
            and not self.run.stop_requested
            and all(r.status is TaskStatus.SUCCEEDED or self.run.early_exit for r in self.records.values())
        )
        if ok:
            self._set_run(status=RunStatus.DONE, completed=now)
        else:
            self._set_run(status=RunStatus.TERMINATED, completed=now, message=self._failure_message())

    def _failure_message(self) -> str:
        if self.run.stop_requested:
            return self.run.message or "stopped by user"
        if self._failed:
            first = self.records[self._failed[0]]
            more = f" (and {len(self._failed) - 1} more failed)" if len(self._failed) > 1 else ""
            return f"task {first.name!r} failed: {first.message}{more}"
        bad = next(r for r in self.records.values() if r.status is not TaskStatus.SUCCEEDED)
        return f"task {bad.name!r} ended {bad.status.value}: {bad.message}"
