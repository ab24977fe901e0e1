"""The executor contract.

The engine hands an executor one attempt at a time (``submit``); the executor reports what
happens to it through the ``report`` callback as ``AttemptUpdate``s (PENDING with a reason,
RUNNING, SUCCEEDED with outputs, FAILED with a message). Reports about attempts the engine no
longer drives are ignored, so reporting twice is harmless.

Submitting the same attempt twice must not create two things, even from two processes (a core
that died after submitting, and the core that took its run over): names are derived from the
task id and the attempt number, and a second submit attaches to what the first created.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import constants as C
from ..model import AttemptUpdate, TaskRecord, TaskStatus
from ..spec.ids import task_id
from ..spec.model import TaskSpec

ReportFn = Callable[[AttemptUpdate], None]


@dataclass(frozen=True)
class Launch:
    """One attempt of a task, with references resolved and variables substituted."""

    run_id: str
    task: TaskSpec
    attempt: int
    work_path: str  # the job directory
    run_path: str  # DATA_PATH/<run id>
    env: dict[str, str] = field(default_factory=dict)  # ODIN_* and the task's env

    @classmethod
    def of(cls, run_id: str, task: TaskSpec, attempt: int, *, work_path: str, run_path: str) -> Launch:
        """The attempt as the engine launches it: the ``ODIN_*`` variables, then the task's own env."""
        env = {
            C.ENV_TASK_ID: task_id(run_id, task.name),
            C.ENV_TASK_NAME: task.name,
            C.ENV_PIPE_ID: run_id,
            C.ENV_ATTEMPT: str(attempt),
            C.ENV_RUN_PATH: run_path,
            C.ENV_TASK_PATH: f"{run_path}/{task.name}",
            C.ENV_WORK_PATH: work_path,
            **{k: v if isinstance(v, str) else json.dumps(v) for k, v in task.env.items()},
        }
        return cls(run_id, task, attempt, work_path=work_path, run_path=run_path, env=env)

    @property
    def task_id(self) -> str:
        return task_id(self.run_id, self.task.name)

    @property
    def task_path(self) -> str:
        return f"{self.run_path}/{self.task.name}"


class Executor(ABC):
    name: str = "executor"

    def __init__(self) -> None:
        self._report: ReportFn | None = None

    def bind(self, report: ReportFn) -> None:
        """Called once by the engine before any submit."""
        self._report = report

    def report(self, update: AttemptUpdate) -> None:
        if self._report is not None:
            self._report(update)

    def notes(self, tasks: list[TaskSpec]) -> list[str]:
        """Things a user should know before a run starts here (images not pulled, GPUs missing)."""
        return []

    @abstractmethod
    async def submit(self, launch: Launch) -> str:
        """Start the attempt (or attach to it if it was started already); return its resource id (pod name, pid).

        Raise ``TemporaryError`` for a failure worth retrying (429, 5xx, a reset connection: the engine
        tries again with backoff, not counting it against the task's retries), another ``OdinError``
        to refuse the attempt for good.
        """

    @abstractmethod
    async def kill(self, record: TaskRecord) -> None:
        """Stop the attempt of ``record`` if it still runs; never raises for a missing resource."""

    async def recover(self, records: list[TaskRecord]) -> list[TaskRecord]:
        """After a restart or a takeover: re-attach to the active attempts of ``records`` and keep following them.

        Report what is found (RUNNING; SUCCEEDED or FAILED with the real exit code, outputs and message,
        as an uninterrupted engine would have seen it); an attempt that was started but is gone without
        a result is reported FAILED (lost), so the task's retries apply. Return the records whose attempt
        was never started: the engine submits them again with the same attempt number.

        This default cannot re-attach to anything: every attempt is reported lost.
        """
        for rec in records:
            self.report(
                AttemptUpdate(
                    rec.run_id,
                    rec.name,
                    rec.attempt,
                    status=TaskStatus.FAILED,
                    message=f"lost: the {self.name} executor cannot re-attach to {rec.resource_id or 'it'} "
                    "after a restart",
                )
            )
        return []

    async def detach(self, run_id: str) -> None:
        """Stop following a run's attempts without touching them: another engine took the run over."""
        return None

    @abstractmethod
    def logs(
        self,
        record: TaskRecord,
        *,
        follow: bool = False,
        lines: int | None = None,
        container: str | None = None,
        until: Callable[[], Awaitable[bool]] | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[str]:
        """The task's log lines (every attempt, every pod); ``follow`` waits for more until ``until()`` is true.

        ``namespace``: where the request says the task's objects are (executors without namespaces ignore it).
        """

    async def events(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        """Executor-level events ({type, reason, source, message, timestamp}) of a run or task."""
        return []

    @abstractmethod
    async def cleanup(self, run_id: str, records: list[TaskRecord]) -> dict[str, bool]:
        """Remove every resource of the run; return, per task name, whether something was removed."""

    async def run_finished(self, run_id: str, records: list[TaskRecord]) -> None:
        """Called once when a run ends (DONE or TERMINATED): start time-to-live clocks, release what waits for it."""
        return None

    async def close(self) -> None:
        return None


def outputs_object(text: str) -> tuple[dict[str, Any], str | None]:
    """The outputs a task wrote (``$ODIN_OUTPUTS``: a JSON object; empty text, none), or the problem that fails its
    attempt. Strict JSON: NaN and infinities are refused, since records show them as null while a reference would
    pass them on as ``NaN``."""
    try:
        data = json.loads(text or "{}", parse_constant=_not_json, parse_float=_finite)
    except ValueError as e:
        return {}, f"${C.ENV_OUTPUTS} does not hold JSON: {e}"
    if not isinstance(data, dict):
        return {}, f"${C.ENV_OUTPUTS} must hold a JSON object, not {type(data).__name__}"
    return data, None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (write null, a number or a string)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond what a number can hold (write it as a string)")
    return value
