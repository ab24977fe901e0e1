"""The embedded default store: SQLite in WAL mode, one file under ``$ODIN_HOME``.

Records are kept as JSON next to the few columns that are queried. Several processes may read
while one engine writes (WAL), which is how ``odin status`` watches a run started by ``odin run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from ..model import Event, RunRecord, RunStatus, TaskRecord
from .base import JobStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, job TEXT NOT NULL, status TEXT NOT NULL,
    submitted REAL NOT NULL, data TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '',
    heartbeat REAL NOT NULL DEFAULT 0, spec TEXT NOT NULL DEFAULT '{}',
    stop TEXT);  -- NULL, or why a stop was requested: written by other processes, never by the engine's commits
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL, name TEXT NOT NULL, ord INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run_id, seq));
"""
_ACTIVE = tuple(s.value for s in RunStatus if not s.is_terminal)
_MARKS = ",".join("?" * len(_ACTIVE))


def _run(row: Any) -> RunRecord:
    """A run record from (data, stop): a stop requested by another process shows as ``stop_requested``."""
    run = RunRecord.from_record(json.loads(row[0]))
    if row[1] is not None and not run.status.is_terminal and not run.stop_requested:
        run = run.evolve(stop_requested=True, message=row[1])
    return run


def _dump(d: dict) -> str:
    return json.dumps(d, separators=(",", ":"), default=str)


class SqliteStore(JobStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._db: aiosqlite.Connection | None = None
        self._write = asyncio.Lock()  # one connection: write transactions must not interleave

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, timeout=30)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[None]:
        """One write transaction at a time; rolled back when anything in it fails."""
        async with self._write:
            try:
                yield
            except BaseException:
                await self.db.rollback()
                raise
            await self.db.commit()

    async def create_run(
        self, run: RunRecord, spec: dict[str, Any], tasks: Sequence[TaskRecord], events: Sequence[Event]
    ) -> bool:
        async with self._tx():
            cur = await self.db.execute(
                "INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?,NULL)",
                (
                    run.run_id,
                    run.job,
                    run.status.value,
                    run.submitted,
                    _dump(run.to_record()),
                    run.owner,
                    run.submitted,
                    _dump(spec),
                ),
            )
            if cur.rowcount == 0:
                return False
            await self.db.executemany(
                "INSERT INTO tasks VALUES (?,?,?,?)",
                [(t.run_id, t.name, i, _dump(t.to_record())) for i, t in enumerate(tasks)],
            )
            await self._write_events(events)
            return True

    async def commit(
        self, run: RunRecord | None, tasks: Sequence[TaskRecord] = (), events: Sequence[Event] = ()
    ) -> None:
        async with self._tx():
            if run is not None:
                await self.db.execute(
                    "UPDATE runs SET status=?, data=? WHERE run_id=?",
                    (run.status.value, _dump(run.to_record()), run.run_id),
                )
            if tasks:
                await self.db.executemany(
                    "UPDATE tasks SET data=? WHERE run_id=? AND name=?",
                    [(_dump(t.to_record()), t.run_id, t.name) for t in tasks],
                )
            await self._write_events(events)

    async def _write_events(self, events: Sequence[Event]) -> None:
        if events:
            await self.db.executemany(
                "INSERT INTO events VALUES (?,?,?)", [(e.run_id, e.seq, _dump(e.to_record())) for e in events]
            )

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self.db.execute("SELECT data, stop FROM runs WHERE run_id=?", (run_id,)) as cur:
            row = await cur.fetchone()
        return _run(row) if row else None

    async def get_spec(self, run_id: str) -> dict[str, Any] | None:
        async with self.db.execute("SELECT spec FROM runs WHERE run_id=?", (run_id,)) as cur:
            row = await cur.fetchone()
        return json.loads(row[0]) if row else None

    async def get_tasks(self, run_id: str) -> list[TaskRecord]:
        async with self.db.execute("SELECT data FROM tasks WHERE run_id=? ORDER BY ord", (run_id,)) as cur:
            rows = await cur.fetchall()
        return [TaskRecord.from_record(json.loads(r[0])) for r in rows]

    async def list_runs(self, *, active_only: bool = False) -> list[RunRecord]:
        sql = "SELECT data, stop FROM runs"
        params: tuple = ()
        if active_only:
            sql += f" WHERE status IN ({_MARKS})"
            params = _ACTIVE
        async with self.db.execute(sql + " ORDER BY submitted DESC", params) as cur:
            rows = await cur.fetchall()
        return [_run(r) for r in rows]

    async def events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        sql = "SELECT data FROM events WHERE run_id=? AND seq>? ORDER BY seq"
        params: tuple = (run_id, after_seq)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        async with self.db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [Event.from_record(json.loads(r[0])) for r in rows]

    async def last_seq(self, run_id: str) -> int:
        async with self.db.execute("SELECT MAX(seq) FROM events WHERE run_id=?", (run_id,)) as cur:
            row = await cur.fetchone()
        return int(row[0] or 0) if row else 0

    async def request_stop(self, run_id: str, reason: str) -> bool:
        async with self._tx():
            cur = await self.db.execute(
                f"UPDATE runs SET stop=? WHERE run_id=? AND stop IS NULL AND status IN ({_MARKS})",
                (reason, run_id, *_ACTIVE),
            )
            return cur.rowcount > 0

    async def reopen_run(self, run_id: str, owner: str, now: float) -> bool:
        ended = tuple(s.value for s in RunStatus if s.is_terminal)
        async with self._tx():
            cur = await self.db.execute(
                "UPDATE runs SET status=?, stop=NULL, owner=?, heartbeat=? WHERE run_id=? AND status IN (?,?)",
                (RunStatus.BUILDING.value, owner, now, run_id, *ended),
            )
            return cur.rowcount > 0

    async def claim_runs(
        self, owner: str, *, now: float, stale_before: float, run_id: str | None = None
    ) -> list[RunRecord]:
        only = " AND run_id=?" if run_id else ""
        async with self._tx():
            await self.db.execute(
                f"UPDATE runs SET owner=?, heartbeat=? WHERE status IN ({_MARKS}) AND heartbeat<? AND owner<>?{only}",
                (owner, now, *_ACTIVE, stale_before, owner, *((run_id,) if run_id else ())),
            )
            async with self.db.execute(
                f"SELECT data, stop FROM runs WHERE owner=? AND status IN ({_MARKS}) ORDER BY submitted",
                (owner, *_ACTIVE),
            ) as cur:
                rows = await cur.fetchall()
        return [_run(r).evolve(owner=owner) for r in rows]

    async def heartbeat(self, owner: str, now: float) -> None:
        async with self._tx():
            await self.db.execute("UPDATE runs SET heartbeat=? WHERE owner=?", (now, owner))

    async def delete_run(self, run_id: str) -> bool:
        async with self._tx():
            cur = await self.db.execute("DELETE FROM runs WHERE run_id=?", (run_id,))
            await self.db.execute("DELETE FROM tasks WHERE run_id=?", (run_id,))
            await self.db.execute("DELETE FROM events WHERE run_id=?", (run_id,))
            return cur.rowcount > 0
