"""Tables and one-line summaries of runs, tasks, events and cleanups (pure: records in, renderables out)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from odin_core.model import CleanupResult, Event, RunRecord, RunStatus, RunView, TaskRecord, TaskStatus
from rich.markup import escape
from rich.table import Table

from .fmt import age, clock, compact, date_time, duration, span, styled


def _table(*columns: str, wide: Sequence[str] = ("message",)) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for name in columns:
        table.add_column(name.upper(), overflow="fold" if name in wide else "ellipsis", no_wrap=name not in wide)
    return table


def task_table(tasks: Iterable[TaskRecord], *, now: float | None = None) -> Table:
    """task, status, attempt, resource, started, duration, message."""
    table = _table("task", "status", "attempt", "resource", "started", "duration", "message")
    for t in tasks:
        table.add_row(
            escape(t.name),
            styled(t.status.value),
            str(t.attempt or "-"),
            escape(t.resource_id or "-"),
            clock(t.started),
            span(t.started, t.completed, now),
            escape(t.message),
        )
    return table


def run_header(run: RunRecord, *, now: float | None = None) -> str:
    """The legacy header ``<id> --> <STATUS>``."""
    return f"[bold]{escape(run.run_id)}[/] --> {styled(run.status.value)}"


def run_details(run: RunRecord, *, now: float | None = None) -> str:
    """job, submitted, duration (and the message of a TERMINATED run)."""
    parts = [
        f"job: {escape(run.job)}",
        f"submitted: {date_time(run.submitted)}",
        f"duration: {span(run.submitted, run.completed, now)}",
    ]
    if run.message:
        parts.append(f"message: {escape(run.message)}")
    return "  ".join(parts)


def runs_table(views: Iterable[RunView], *, now: float | None = None) -> Table:
    """One line a run: run, status, tasks succeeded/total, age, duration, message."""
    table = _table("run", "status", "tasks", "age", "duration", "message")
    for v in views:
        table.add_row(
            escape(v.run.run_id),
            styled(v.run.status.value),
            task_count(v.tasks),
            age(v.run.submitted, now),
            span(v.run.submitted, v.run.completed, now),
            escape(v.run.message),
        )
    return table


def task_count(tasks: Sequence[TaskRecord]) -> str:
    """``succeeded/total``."""
    return f"{sum(t.status is TaskStatus.SUCCEEDED for t in tasks)}/{len(tasks)}"


def events_table(events: Iterable[Event]) -> Table:
    """seq, time, kind, task, status, message."""
    table = _table("seq", "time", "kind", "task", "status", "message")
    for e in events:
        table.add_row(str(e.seq), clock(e.time), e.kind, escape(e.task or "-"), styled(e.status), escape(e.message))
    return table


def cluster_events_table(events: Iterable[dict[str, Any]]) -> Table:
    """Kubernetes events of a run's objects: time, type, reason, source, message."""
    table = _table("time", "type", "reason", "source", "message")
    for e in events:
        table.add_row(
            escape(str(e.get("timestamp") or "")),
            escape(str(e.get("type") or "")),
            escape(str(e.get("reason") or "")),
            escape(str(e.get("source") or "")),
            escape(str(e.get("message") or "")),
        )
    return table


def cleanup_table(results: Iterable[CleanupResult]) -> Table:
    """task id, cleaned from k8s, purged from db, removed from fs."""
    table = _table("task id", "cleaned from k8s", "purged from db", "removed from fs")
    for r in results:
        table.add_row(escape(r.task_id), _yes(r.cleaned_from_k8s), _yes(r.purged_from_db), _yes(r.removed_from_fs))
    return table


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def summary(run: RunRecord, tasks: Sequence[TaskRecord]) -> str:
    """``run <id> DONE in 12.3s`` or ``run <id> TERMINATED: <message>`` (markup)."""
    took = duration((run.completed or time.time()) - run.submitted)
    if run.status is RunStatus.DONE:
        return f"run {escape(run.run_id)} {styled('DONE')} in {took}"
    if run.status is RunStatus.TERMINATED:
        return f"run {escape(run.run_id)} {styled('TERMINATED')} after {took}: {escape(run.message)}"
    return f"run {escape(run.run_id)} is {styled(run.status.value)}"


def failure_hints(run: RunRecord, tasks: Sequence[TaskRecord], hint: str = "") -> list[str]:
    """Where to look next for each failed task (``hint``: the global options to repeat, `--server URL `).

    Its log when its failing attempt ran; otherwise (a reference that could not be resolved, a command that could
    not be started) the log is empty and the task's message is all there is: shown unless the run's message
    already says it.
    """
    lines = []
    for t in tasks:
        if t.status is not TaskStatus.FAILED:
            continue
        if ran(t):
            lines.append(f"  see its log: odin {hint}logs {t.task_id}")
        elif t.message and t.message not in run.message:
            lines.append(f"  task {t.name!r} failed: {t.message}")
    return lines


def ran(task: TaskRecord) -> bool:
    """Whether the task's current attempt ran, so that its log holds what it printed.

    ``started`` (set when the executor reports the attempt running) and ``exit_code`` are cleared when a new attempt
    begins; an attempt with neither never ran (refused before it was handed over, or its command could not be
    started) and left no log. Known from the record alone: no log is read for it.
    """
    return task.started is not None or task.exit_code is not None


def result_task(tasks: Sequence[TaskRecord]) -> TaskRecord | None:
    """The task whose outputs a run is for: the last one (in pipeline order) that succeeded with outputs."""
    done = [t for t in tasks if t.status is TaskStatus.SUCCEEDED and t.outputs]
    return done[-1] if done else None


def result_lines(tasks: Sequence[TaskRecord], hint: str = "") -> list[str]:
    """``outputs of <task>:`` and one ``  key  value`` line per output (plain text)."""
    task = result_task(tasks)
    if task is None:
        return []
    width = max(len(k) for k in task.outputs)
    lines = [f"outputs of {task.name} (odin {hint}data {task.task_id}):"]
    lines += [f"  {key.ljust(width)}  {compact(value)}" for key, value in task.outputs.items()]
    return lines


def status_record(run: RunRecord, tasks: Sequence[TaskRecord]) -> dict[str, Any]:
    """One entry of ``odin status -o json``: ``{run, tasks}``."""
    return {"run": run.to_record(), "tasks": [t.to_record() for t in tasks]}
