"""Following a run: a pure model of its tasks fed by events, and three ways to show it.

``RunProgress`` turns the event stream into task records (no I/O). ``LiveDisplay`` redraws a task
table in place on a terminal; ``LineDisplay`` prints one line per change when output is a file or
a pipe; ``QuietDisplay`` (``--no-watch``) prints nothing until the summary.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from odin_core.model import Event, RunRecord, RunStatus, TaskRecord, TaskStatus
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape

from .fmt import clock
from .render import run_header, task_table


class RunProgress:
    """The latest known state of a run's tasks, rebuilt from its events."""

    def __init__(self, run: RunRecord, tasks: Iterable[TaskRecord]) -> None:
        self.run = run
        self.tasks: dict[str, TaskRecord] = {t.name: t for t in tasks}

    @classmethod
    def fresh(cls, run: RunRecord, tasks: Iterable[TaskRecord]) -> RunProgress:
        """The state before the run's first event; replaying its events from seq 1 rebuilds the rest."""
        blank = {"status": TaskStatus.WAITING, "attempt": 0, "started": None, "completed": None, "message": ""}
        return cls(
            run.evolve(status=RunStatus.BUILDING, completed=None, message=""),
            [t.evolve(resource_id="", **blank) for t in tasks],
        )

    def apply(self, ev: Event) -> bool:
        """Fold one event in; False when it changes nothing worth showing."""
        if ev.kind == "run":
            changed = ev.status != self.run.status.value or ev.message != self.run.message
            done = ev.time if ev.status in (RunStatus.DONE.value, RunStatus.TERMINATED.value) else None
            self.run = self.run.evolve(status=RunStatus(ev.status), message=ev.message, completed=done)
            return changed
        if ev.kind != "task" or ev.task not in self.tasks:
            return False
        old = self.tasks[ev.task]
        new = _task_after(old, ev)
        self.tasks[ev.task] = new
        return (old.status, old.attempt, old.message) != (new.status, new.attempt, new.message)


def _task_after(rec: TaskRecord, ev: Event) -> TaskRecord:
    status = TaskStatus(ev.status)
    attempt = int(ev.data.get("attempt", rec.attempt))
    changes: dict[str, object] = {
        "status": status,
        "attempt": attempt,
        "message": ev.message,
        "resource_id": ev.data.get("resource_id", rec.resource_id),
    }
    if status is TaskStatus.PENDING:
        changes.update(started=None, completed=None)
    elif status is TaskStatus.RUNNING and (rec.status is not TaskStatus.RUNNING or rec.attempt != attempt):
        changes.update(started=ev.time, completed=None)
    elif status.is_terminal or status is TaskStatus.RETRYING:
        changes["completed"] = ev.time
    return rec.evolve(**changes)


class Display(Protocol):
    def start(self) -> None: ...
    def event(self, ev: Event) -> None: ...
    def note(self, text: str) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def close(self) -> None: ...


class QuietDisplay:
    """``--no-watch``: the run id at submit, nothing else until the summary."""

    def __init__(self, progress: RunProgress, console: Console) -> None:
        self.progress = progress
        self.console = console

    def start(self) -> None:
        self.console.print(self.progress.run.run_id, markup=False)

    def event(self, ev: Event) -> None:
        self.progress.apply(ev)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False)

    def pause(self) -> None:
        """Stop drawing (a question is asked); ``resume`` draws again."""
        return None

    def resume(self) -> None:
        return None

    def close(self) -> None:
        return None


class LineDisplay(QuietDisplay):
    """One plain line per change: ``HH:MM:SS task train RUNNING (attempt 1)``."""

    def start(self) -> None:
        return None  # the run's first event says it was submitted

    def event(self, ev: Event) -> None:
        if ev.kind == "note":
            self.note(f"note: {ev.message}")
        elif self.progress.apply(ev):
            self.console.print(event_line(ev), markup=False)


def event_line(ev: Event) -> str:
    """The plain-text line of a run or task event."""
    if ev.kind == "run":
        text = f"{clock(ev.time)} run {ev.run_id} {ev.status}"
    else:
        attempt = ev.data.get("attempt")
        text = f"{clock(ev.time)} task {ev.task} {ev.status}" + (f" (attempt {attempt})" if attempt else "")
    return f"{text}: {ev.message}" if ev.message else text


class LiveDisplay(QuietDisplay):
    """An in-place task table on a terminal, redrawn on every event and a few times a second."""

    def __init__(self, progress: RunProgress, console: Console) -> None:
        super().__init__(progress, console)
        self._live = Live(_Screen(progress), console=console, refresh_per_second=4, transient=False)

    def start(self) -> None:
        self._live.start()

    def event(self, ev: Event) -> None:
        if ev.kind == "note":
            self.note(f"[blue]note:[/] {escape(ev.message)}")
        elif self.progress.apply(ev):
            self._live.refresh()

    def note(self, text: str) -> None:
        self.console.print(text)

    def pause(self) -> None:
        self._live.stop()

    def resume(self) -> None:
        self._live.start()

    def close(self) -> None:
        self._live.refresh()
        self._live.stop()


class _Screen:
    """What the live view draws; rendered again on every refresh so running durations tick."""

    def __init__(self, progress: RunProgress) -> None:
        self.progress = progress

    def __rich__(self) -> RenderableType:
        now = time.time()
        return Group(run_header(self.progress.run, now=now), task_table(self.progress.tasks.values(), now=now))


def make_display(progress: RunProgress, console: Console, *, watch: bool) -> Display:
    if not watch:
        return QuietDisplay(progress, console)
    if console.is_terminal:
        return LiveDisplay(progress, console)
    return LineDisplay(progress, console)


__all__ = ["Display", "LineDisplay", "LiveDisplay", "QuietDisplay", "RunProgress", "event_line", "make_display"]
