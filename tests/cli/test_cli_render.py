"""Pure pieces of the CLI: time and duration formatting, and the run progress rebuilt from events."""

from __future__ import annotations

import time

import pytest
from odin_client.cli.fmt import clock, duration, span
from odin_client.cli.progress import RunProgress, event_line
from odin_client.cli.render import failure_hints
from odin_core.model import Event, RunRecord, RunStatus, TaskRecord, TaskStatus


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(None, "-", id="unknown"),
        pytest.param(0, "0.0s", id="zero"),
        pytest.param(1.24, "1.2s", id="seconds"),
        pytest.param(59.94, "59.9s", id="under-a-minute"),
        pytest.param(60, "1m00s", id="a-minute"),
        pytest.param(184.9, "3m04s", id="minutes"),
        pytest.param(7500, "2h05m", id="hours"),
        pytest.param(-3, "0.0s", id="clock-skew"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_clock_is_local_time() -> None:
    ts = time.mktime((2024, 5, 6, 7, 8, 9, 0, 0, -1))
    assert clock(ts) == "07:08:09"
    assert clock(None) == "-"


def test_span_of_a_running_thing_uses_now() -> None:
    assert span(100.0, None, now=112.34) == "12.3s"
    assert span(100.0, 101.0, now=500.0) == "1.0s"
    assert span(None, 1.0) == "-"


def ev(seq: int, t: float, kind: str, status: str, task: str = "", message: str = "", **data: object) -> Event:
    return Event("r-1", seq, t, kind, status, task, message, dict(data))


def test_progress_rebuilds_attempts_and_times_from_events() -> None:
    run = RunRecord("r-1", job="j", status=RunStatus.DONE, completed=99.0)
    done = TaskRecord("r-1", "a", status=TaskStatus.SUCCEEDED, attempt=2, started=5.0, completed=6.0)
    progress = RunProgress.fresh(run, [done])
    assert progress.tasks["a"].status is TaskStatus.WAITING and progress.run.status is RunStatus.BUILDING
    steps = [
        ev(1, 1.0, "run", "RUNNING"),
        ev(2, 1.0, "task", "PENDING", "a", attempt=1),
        ev(3, 1.5, "task", "RUNNING", "a", attempt=1, resource_id="pid:1"),
        ev(4, 1.6, "task", "RUNNING", "a", attempt=1, resource_id="pid:1"),  # resource id noted again
        ev(5, 2.0, "task", "RETRYING", "a", "attempt 1 failed", attempt=1),
        ev(6, 3.0, "task", "PENDING", "a", attempt=2),
        ev(7, 3.5, "task", "RUNNING", "a", attempt=2),
        ev(8, 4.5, "task", "SUCCEEDED", "a", attempt=2),
        ev(9, 4.5, "run", "DONE"),
    ]
    shown = [progress.apply(e) for e in steps]
    assert shown == [True, True, True, False, True, True, True, True, True]
    task = progress.tasks["a"]
    assert (task.status, task.attempt, task.started, task.completed) == (TaskStatus.SUCCEEDED, 2, 3.5, 4.5)
    assert progress.run.status is RunStatus.DONE and progress.run.completed == 4.5


def test_progress_ignores_notes_and_unknown_tasks() -> None:
    progress = RunProgress(RunRecord("r-1", job="j"), [TaskRecord("r-1", "a")])
    assert not progress.apply(ev(1, 1.0, "note", "NOTE", message="hi"))
    assert not progress.apply(ev(2, 1.0, "task", "RUNNING", "zzz", attempt=1))


def test_event_lines() -> None:
    t = time.mktime((2024, 5, 6, 7, 8, 9, 0, 0, -1))
    assert event_line(ev(3, t, "task", "RUNNING", "train", attempt=1)) == "07:08:09 task train RUNNING (attempt 1)"
    assert event_line(ev(9, t, "run", "TERMINATED", message="task 'x' failed")) == (
        "07:08:09 run r-1 TERMINATED: task 'x' failed"
    )


@pytest.mark.parametrize(
    ("task", "lines"),
    [
        pytest.param(
            TaskRecord("r-1", "a", status=TaskStatus.FAILED, attempt=1, started=1.0, exit_code=3, message="exit 3"),
            ["  see its log: odin logs r-1--a"],
            id="ran",
        ),
        pytest.param(
            TaskRecord("r-1", "a", status=TaskStatus.FAILED, attempt=1, exit_code=1, message="exit code 1"),
            ["  see its log: odin logs r-1--a"],
            id="ended-before-reported-running",
        ),
        pytest.param(
            TaskRecord("r-1", "a", status=TaskStatus.FAILED, attempt=1, message="cannot run 'x': No such file"),
            [],
            id="never-started-named-by-the-run",
        ),
        pytest.param(
            TaskRecord("r-1", "b", status=TaskStatus.FAILED, attempt=2, attempts_before=1, message="reference: …"),
            ["  task 'b' failed: reference: …"],
            id="never-started-another-failure",
        ),
        pytest.param(
            TaskRecord("r-1", "a", status=TaskStatus.SKIPPED, message="an upstream task failed"),
            [],
            id="not-failed",
        ),
    ],
)
def test_failure_hints_point_to_a_log_only_when_there_is_one(task: TaskRecord, lines: list[str]) -> None:
    message = "task 'a' failed: cannot run 'x': No such file (and 1 more failed)"
    run = RunRecord("r-1", job="j", status=RunStatus.TERMINATED, message=message)
    assert failure_hints(run, [task]) == lines
