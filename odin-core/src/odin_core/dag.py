"""Pure decisions for one run: what to start, retry, time out, cancel, skip, or finish.

``DagState`` is rebuilt from a run's persisted records (``from_records``) and then kept up to
date incrementally, so each transition costs O(1) amortised plus the edges it touches: a
100,000-task DAG costs O(tasks + edges) in total. It performs no I/O: the engine persists what
it returns and acts on it.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import OdinError
from .model import AttemptUpdate, RunRecord, RunStatus, TaskRecord, TaskStatus
from .spec.model import PipelineSpec, TaskSpec
from .spec.references import resolve_references

EARLY_EXIT_OUTPUT = "odin_early_exit"


@dataclass(frozen=True)
class SubmitRetry:
    """How the engine retries a submit that failed temporarily (429, 5xx, a reset connection).

    These retries do not consume the task's ``retries``: the task itself never ran.
    """

    backoff_s: float = 0.5
    factor: float = 2.0
    max_backoff_s: float = 30.0
    give_up_after_s: float = 600.0
    """After this long of temporary failures the attempt fails (and the task's own retries apply)."""

    def delay_s(self, failures: int, hint_s: float = 0.0) -> float:
        return max(min(self.backoff_s * self.factor ** max(failures - 1, 0), self.max_backoff_s), hint_s)


@dataclass
class Plan:
    """The result of one ``decide``: records to persist, then attempts to submit and to kill."""

    changed: list[TaskRecord] = field(default_factory=list)  # every transition in order (one event each)
    starts: list[TaskRecord] = field(default_factory=list)  # PENDING attempts to submit (new or never submitted)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)  # each start's task, references resolved
    kills: list[TaskRecord] = field(default_factory=list)  # attempts whose executor resources must go
    run: RunRecord | None = None  # the run record when it changed
    wake_at: float | None = None  # call decide again at this time even if nothing happens
    starved: bool = False  # ready tasks wait for engine-wide slots (``capacity``): decide again when one frees


class DagState:
    def __init__(
        self,
        spec: PipelineSpec,
        run: RunRecord,
        records: Mapping[str, TaskRecord],
        *,
        submit_retry: SubmitRetry | None = None,
    ) -> None:
        self.spec = spec
        self.submit_retry = submit_retry or SubmitRetry()
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
        self._relaunch: dict[str, None] = {}  # PENDING attempts to submit again (never started, or refused for now)
        self._submit_failures: dict[tuple[str, int], tuple[int, float]] = {}  # (name, attempt) -> (count, first)
        for t in spec.tasks:
            self._index(records[t.name])
        for t in spec.tasks:
            self._remaining[t.name] = sum(1 for d in t.depends if self.records[d].status is not TaskStatus.SUCCEEDED)
            self._maybe_ready(t.name)
        for name in list(self._failed):
            self._skip_descendants(name)

    @classmethod
    def from_records(
        cls,
        spec: PipelineSpec,
        run: RunRecord,
        records: Iterable[TaskRecord],
        *,
        submit_retry: SubmitRetry | None = None,
    ) -> DagState:
        return cls(spec, run, {r.name: r for r in records}, submit_retry=submit_retry)

    @classmethod
    def reopened(
        cls,
        spec: PipelineSpec,
        run: RunRecord,
        records: Iterable[TaskRecord],
        *,
        submit_retry: SubmitRetry | None = None,
    ) -> DagState:
        """An ended run made to run again in place: every task that did not succeed starts over as WAITING
        with a fresh retry budget; the run and those tasks are the first plan's changes (one event each)."""
        records = list(records)
        rerun = [r for r in records if r.status is not TaskStatus.SUCCEEDED]
        reused = len(records) - len(rerun)
        state = cls(spec, run, {r.name: r for r in records}, submit_retry=submit_retry)
        state._set_run(
            status=RunStatus.BUILDING,
            completed=None,
            stop_requested=False,
            early_exit=False,
            message=f"resubmitted: reusing {reused} succeeded task(s), running {len(rerun)} again",
        )
        state._failed.clear()
        for rec in rerun:
            state._reset(_restart(rec))
        return state

    def _reset(self, rec: TaskRecord) -> None:
        """Put a task back to WAITING outside the normal transitions (resubmission)."""
        old = self.records[rec.name]
        self._active -= old.status.is_active
        self._terminal -= old.status.is_terminal
        self._index(rec)
        self._changes.append(rec)
        self._remaining[rec.name] = sum(
            1 for d in self.tasks[rec.name].depends if self.records[d].status is not TaskStatus.SUCCEEDED
        )
        self._maybe_ready(rec.name)

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
        if rec.status in (TaskStatus.RETRYING, TaskStatus.PENDING) and rec.retry_at is not None:
            heapq.heappush(self._timers, (rec.retry_at, rec.name, rec.attempt))  # a retry, or a submit to retry

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

    def submit_failed(
        self, name: str, attempt: int, message: str, now: float, *, temporary: bool, delay_s: float = 0.0
    ) -> None:
        """The executor refused a submit: for good (the attempt fails for good), or for now (try again later).

        A temporary refusal keeps the attempt PENDING and sets ``retry_at``: it is submitted again then, with the
        same attempt number, without consuming the task's retries, until ``submit_retry.give_up_after_s``.
        """
        rec = self.records.get(name)
        if rec is None or rec.attempt != attempt or rec.status is not TaskStatus.PENDING:
            return
        if not temporary:
            self._submit_failures.pop((name, attempt), None)
            self._fail_attempt(rec, now, message, permanent=True)
            return
        count, first = self._submit_failures.get((name, attempt), (0, now))
        count += 1
        if now - first >= self.submit_retry.give_up_after_s:
            self._submit_failures.pop((name, attempt), None)
            self._fail_attempt(rec, now, f"could not be submitted for {now - first:.0f}s: {message}")
            return
        self._submit_failures[(name, attempt)] = (count, first)
        delay = self.submit_retry.delay_s(count, delay_s)
        self._set(rec.evolve(retry_at=now + delay, message=f"submit failed ({message}); trying again in {delay:.1f}s"))

    def relaunch(self, names: Iterable[str]) -> None:
        """Attempts that were never started (found so after a restart): submit them again, same attempt number."""
        for name in names:
            rec = self.records.get(name)
            if rec is not None and rec.status is TaskStatus.PENDING:
                self._relaunch[name] = None

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
            self._start_relaunches(now, plan)
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
            elif rec.status is TaskStatus.PENDING and rec.retry_at is not None and rec.retry_at <= now:
                self._relaunch[name] = None

    def _next_timer(self) -> float | None:
        while self._timers:
            t, name, attempt = self._timers[0]
            rec = self.records[name]
            live = rec.attempt == attempt and (
                (rec.status.is_active and rec.deadline == t)
                or (rec.status in (TaskStatus.RETRYING, TaskStatus.PENDING) and rec.retry_at == t)
            )
            if live:
                return t
            heapq.heappop(self._timers)
        return None

    def _start_relaunches(self, now: float, plan: Plan) -> None:
        relaunch, self._relaunch = self._relaunch, {}
        for name in relaunch:
            rec = self.records[name]
            if rec.status is not TaskStatus.PENDING:
                continue
            task = self._resolved(rec, now)
            if task is None:
                continue
            if rec.retry_at is not None:  # after a temporary refusal
                rec = rec.evolve(retry_at=None, message=f"submitting attempt {rec.attempt} again")
                self._set(rec)
            plan.starts.append(rec)
            plan.tasks[name] = task

    def _start_ready(self, now: float, capacity: int | None, plan: Plan) -> None:
        limit = self.spec.max_parallel
        while self._ready:
            if limit is not None and self._active >= limit:
                break
            if capacity is not None and len(plan.starts) >= capacity:
                plan.starved = True
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
            task = self._resolved(started, now)
            if task is None:
                continue
            started = started.evolve(args=task.args) if tuple(task.args) != tuple(started.args) else started
            self._set(started)
            plan.starts.append(started)
            plan.tasks[name] = task

    def _resolved(self, rec: TaskRecord, now: float) -> TaskSpec | None:
        """The task of an attempt with its references resolved; None (the attempt failed for good) if one cannot be."""
        spec = self.tasks[rec.name]
        try:
            return dataclasses.replace(
                spec,
                args=tuple(resolve_references(list(spec.args), self._lookup)),
                env=resolve_references(dict(spec.env), self._lookup),
                inputs=tuple(resolve_references(list(spec.inputs), self._lookup)),
            )
        except OdinError as e:
            self._set(rec.evolve(status=TaskStatus.FAILED, completed=now, message=str(e), deadline=None, retry_at=None))
            return None

    def _lookup(self, name: str) -> dict[str, Any]:
        rec = self.records[name]
        return {**rec.to_record(), "id": rec.task_id, "task": rec.task_id}

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


def _restart(t: TaskRecord) -> TaskRecord:
    return t.evolve(
        status=TaskStatus.WAITING,
        attempts_before=t.attempt,
        retry_at=None,
        deadline=None,
        started=None,
        completed=None,
        exit_code=None,
        resource_id="",
        message="resubmitted",
    )
