"""The job-store contract every backend implements.

A store holds runs, their tasks and a per-run event log. ``commit`` writes a batch of changes
in one transaction: the engine persists every transition of a pass before acting on the next.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ..model import Event, RunRecord, TaskRecord


class JobStore(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def create_run(
        self, run: RunRecord, spec: dict[str, Any], tasks: Sequence[TaskRecord], events: Sequence[Event]
    ) -> bool:
        """Insert a new run with its instantiated spec; return False (writing nothing) if the id exists."""

    @abstractmethod
    async def get_spec(self, run_id: str) -> dict[str, Any] | None:
        """The instantiated spec a run was created with (kept apart: it can be large)."""

    @abstractmethod
    async def commit(
        self, run: RunRecord | None, tasks: Sequence[TaskRecord] = (), events: Sequence[Event] = ()
    ) -> None:
        """Write a run record, task records and events atomically."""

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    async def get_tasks(self, run_id: str) -> list[TaskRecord]: ...

    @abstractmethod
    async def list_runs(self, *, active_only: bool = False) -> list[RunRecord]:
        """Every run (newest first), or only those not terminal."""

    @abstractmethod
    async def events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]: ...

    @abstractmethod
    async def last_seq(self, run_id: str) -> int: ...

    @abstractmethod
    async def request_stop(self, run_id: str, reason: str) -> bool:
        """Flag an active run for stopping (kept apart from the record its engine writes); False if not active."""

    @abstractmethod
    async def reopen_run(self, run_id: str, owner: str, now: float) -> bool:
        """Make an ended run active again under ``owner`` (clearing any stop request); False if it is not ended."""

    @abstractmethod
    async def claim_runs(
        self, owner: str, *, now: float, stale_before: float, run_id: str | None = None
    ) -> list[RunRecord]:
        """Take over every active run (or just ``run_id``) whose owner sent no heartbeat since ``stale_before``.

        Returns every active run ``owner`` holds afterwards.
        """

    @abstractmethod
    async def heartbeat(self, owner: str, now: float) -> None:
        """Mark every active run of ``owner`` as still driven."""

    @abstractmethod
    async def delete_run(self, run_id: str) -> bool: ...

    async def find_runs(self, pattern: str = "") -> list[RunRecord]:
        return [r for r in await self.list_runs() if match_pattern(pattern, r.run_id, r.job)]


def match_pattern(pattern: str, *values: str) -> bool:
    """Legacy STATUS patterns: a glob when it has wildcards, else a substring of the id or job."""
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return any(fnmatch.fnmatchcase(v, pattern) for v in values)
    return any(pattern in v for v in values)
