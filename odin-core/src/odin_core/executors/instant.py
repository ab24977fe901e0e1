"""An executor whose every attempt succeeds at once, running nothing.

What is left to measure with it is the engine's own bookkeeping (bench/engine_bookkeeping.py), and
what is left to test is the engine's contract with executors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from ..model import AttemptUpdate, TaskRecord, TaskStatus
from .base import Executor, Launch


class InstantExecutor(Executor):
    name = "instant"

    def __init__(self) -> None:
        super().__init__()
        self.finished: list[str] = []  # runs the engine said had ended, in order

    async def submit(self, launch: Launch) -> str:
        key = (launch.run_id, launch.task.name, launch.attempt)
        self.report(AttemptUpdate(*key, TaskStatus.RUNNING))
        self.report(AttemptUpdate(*key, TaskStatus.SUCCEEDED, exit_code=0))
        return "instant"

    async def kill(self, record: TaskRecord) -> None:
        return None

    async def logs(
        self,
        record: TaskRecord,
        *,
        follow: bool = False,
        lines: int | None = None,
        container: str | None = None,
        until: Callable[[], Awaitable[bool]] | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[str]:
        nothing: tuple[str, ...] = ()
        for line in nothing:
            yield line

    async def cleanup(self, run_id: str, records: list[TaskRecord]) -> dict[str, bool]:
        return {}

    async def run_finished(self, run_id: str, records: list[TaskRecord]) -> None:
        self.finished.append(run_id)
