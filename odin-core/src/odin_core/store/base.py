"""The job-store contract every backend implements (SQLite, PostgreSQL, MongoDB).

A store holds runs, their tasks, the instantiated spec of each run and a per-run event log
numbered from 1 without gaps.

**Run leases.** Exactly one engine drives a run at a time, and the store says which: each active
run carries a lease, ``(owner, epoch)``, and a heartbeat time. ``create_run`` hands out epoch 1;
every takeover (``claim_stale``, ``take_over``) and every ``reopen_run`` bumps the epoch. Every
write of a run's state (``commit``) carries the lease it was decided under and is refused with
``LeaseLost``, writing nothing, when the run is no longer held at exactly that lease: a superseded
engine can never overwrite its successor's work. Only two writes are not fenced, because other
processes make them: ``request_stop`` (a column the engine's commits never touch) and
``delete_run`` (clean-up, which the API allows only once no live engine drives the run).

**Backends** must make ``commit`` atomic (one transaction, or one document update) and make each
takeover a compare-and-set on ``(owner, epoch)`` so that of several engines racing for a run
exactly one wins. ``tests/store`` runs one contract suite against every backend.
"""

from __future__ import annotations

import fnmatch
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict
from ..model import Event, RunRecord, TaskRecord


@dataclass(frozen=True)
class Lease:
    """The right to write one run's state: ``owner`` holds ``run_id`` at ``epoch``."""

    run_id: str
    owner: str
    epoch: int


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a run and when they last proved it (``heartbeat``, seconds since the epoch)."""

    lease: Lease
    heartbeat: float


class LeaseLost(Conflict):
    """A fenced write was refused: another engine took the run over (or it was deleted)."""

    code = "conflict"

    def __init__(self, lease: Lease) -> None:
        super().__init__(
            f"run {lease.run_id!r} is no longer driven by {lease.owner} at epoch {lease.epoch}",
            run_id=lease.run_id,
        )
        self.lease = lease


class JobStore(ABC):
    """See the module docstring for the lease contract."""

    schema = "schema up to date"
    """Where the store's schema stands after ``open`` (``odin-core migrate`` prints it)."""

    # -- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date; an unreachable store raises ``UpstreamError``."""

    @abstractmethod
    async def close(self) -> None: ...

    # -- writes by the driving engine (fenced) ---------------------------------------------------

    @abstractmethod
    async def create_run(
        self,
        run: RunRecord,
        spec: dict[str, Any],
        tasks: Sequence[TaskRecord],
        events: Sequence[Event],
        *,
        now: float,
    ) -> Lease | None:
        """Insert a new run held by ``run.owner`` at epoch 1, heartbeat ``now``; None (writing nothing) if it exists."""

    @abstractmethod
    async def commit(
        self, lease: Lease, run: RunRecord | None, tasks: Sequence[TaskRecord] = (), events: Sequence[Event] = ()
    ) -> None:
        """Write a run record, task records and events atomically, if the run is still held at ``lease``.

        Raises ``LeaseLost`` (writing nothing) otherwise. Event sequence numbers are unique per run.
        Cancelling the caller never leaves a commit half-done: it lands whole or not at all (a store whose
        commit takes several round trips finishes it in the background), so callers need no shield.
        """

    # -- leases ------------------------------------------------------------------------------

    @abstractmethod
    async def renew(self, owner: str, now: float) -> dict[str, str | None]:
        """Heartbeat: every active run held by ``owner`` gets heartbeat ``now``.

        Returns, for each active run ``owner`` still holds, the reason of a pending stop request
        (None when there is none). A run missing from the answer was taken over or has ended.
        Touches only active runs (an index serves it), however many ended runs ``owner`` drove.
        """

    @abstractmethod
    async def claim_stale(self, owner: str, *, now: float, stale_before: float, limit: int = 100) -> list[Lease]:
        """Take over up to ``limit`` active runs of other owners whose heartbeat is older than ``stale_before``.

        Oldest submissions first. Each takeover bumps the epoch; of several claimants exactly one wins a run.
        """

    @abstractmethod
    async def take_over(self, expect: Lease, owner: str, now: float) -> Lease | None:
        """Take over one active run if it is still held at exactly ``expect`` (its owner is known to be gone).

        None when the run is not active or another lease holds it by now.
        """

    @abstractmethod
    async def lease_of(self, run_id: str) -> LeaseInfo | None:
        """The current lease of a run and its heartbeat (None for an unknown run)."""

    @abstractmethod
    async def release(self, owner: str, run_ids: Sequence[str]) -> None:
        """Let go of runs at shutdown: their heartbeat is cleared so another engine takes them over at once."""

    @abstractmethod
    async def reopen_run(self, run_id: str, owner: str, now: float) -> Lease | None:
        """Make an ended run BUILDING again under ``owner`` at a new epoch, clearing any stop request.

        None when the run is unknown or not ended.
        """

    # -- writes by anyone (not fenced) --------------------------------------------------------

    @abstractmethod
    async def request_stop(self, run_id: str, reason: str) -> bool:
        """Flag an active run for stopping (kept apart from the record its engine writes); False if not active."""

    @abstractmethod
    async def delete_run(self, run_id: str) -> bool:
        """Remove a run, its tasks, spec and events; False when there was none."""

    # -- reads -------------------------------------------------------------------------------

    @abstractmethod
    async def ended_before(self, before: float, *, limit: int = 100) -> list[str]:
        """Ids of up to ``limit`` ended runs whose ``completed`` time is before ``before``, oldest first (retention)."""

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run record; a pending stop request of an active run shows as ``stop_requested`` and ``message``."""

    @abstractmethod
    async def get_spec(self, run_id: str) -> dict[str, Any] | None:
        """The instantiated spec a run was created with (kept apart: it can be large)."""

    @abstractmethod
    async def get_tasks(self, run_id: str) -> list[TaskRecord]:
        """The run's task records in spec order."""

    @abstractmethod
    async def list_runs(
        self, *, pattern: str = "", active_only: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[RunRecord]:
        """Runs newest first, matching ``pattern`` (see ``match_pattern``), in the database, paged."""

    @abstractmethod
    async def events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        """Events of a run with ``seq > after_seq`` in order, at most ``limit``."""

    @abstractmethod
    async def last_seq(self, run_id: str) -> int:
        """The highest event sequence number of a run (0 when it has none)."""

    def follow(self) -> AsyncGenerator[tuple[str, int], None] | None:
        """Notices ``(run_id, after_seq)``: a run has new events after ``after_seq``, committed by any process.

        For cores sharing a store: the hub relays the events other cores commit to its watchers (it
        reads them from the store). Notices may repeat; ``("", 0)`` means some may have been missed
        (the feed reconnected). None: this store has no feed (one process writes it).
        """
        return None


# -- one pattern semantics on every backend ---------------------------------------------------

PATTERN_FIELDS = ("run_id", "job", "name")
"""A pattern is matched against these fields of a run: its id, its job path and its pipeline name."""


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def match_pattern(pattern: str, *values: str) -> bool:
    """STATUS patterns: a glob (``*``, ``?``, ``[...]``, case-sensitive, whole value) when it has wildcards,
    else a substring. A run matches when any of its ``PATTERN_FIELDS`` does; "" matches every run.
    """
    if not pattern:
        return True
    if is_glob(pattern):
        return any(fnmatch.fnmatchcase(v, pattern) for v in values)
    return any(pattern in v for v in values)


def pattern_regex(pattern: str) -> str:
    """The anchored regular expression (POSIX ERE and PCRE alike) that means what ``match_pattern`` means.

    For backends that match in the database with a regex (PostgreSQL ``~``, MongoDB ``$regex``).
    """
    if not is_glob(pattern):
        return re.escape(pattern)
    out, i = ["^"], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if j < 0:
                out.append(r"\[")
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return "".join(out)
