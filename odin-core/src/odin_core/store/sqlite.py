"""The embedded default store: SQLite in WAL mode, one file under ``$ODIN_HOME``.

Records are kept as JSON next to the few columns that are queried. Several processes share one
file (six ``odin run``s on one home, ``odin status`` beside them): every write transaction is
``BEGIN IMMEDIATE`` (it takes the write lock up front, so no transaction ever has to upgrade a
read lock, the source of SQLITE_BUSY that no busy timeout can wait out), transactions are short,
and a transaction that still meets a locked database is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from ..errors import UpstreamError
from ..model import Event, RunRecord, RunStatus, TaskRecord
from .base import JobStore, Lease, LeaseInfo, LeaseLost, is_glob

log = logging.getLogger("odin.store")

BUSY_TIMEOUT_MS = 5000
"""How long SQLite itself waits for another process's write lock before answering SQLITE_BUSY."""
BUSY_RETRY_FOR_S = 60.0
"""How long a transaction is retried (with backoff) while the database stays locked."""

# Literal, so that SQLite can use the partial index on active runs (parameters would hide the values).
_ACTIVE_SQL = "status IN ('BUILDING','RUNNING')"
_ENDED = tuple(s.value for s in RunStatus if s.is_terminal)
assert {s.value for s in RunStatus if not s.is_terminal} == {"BUILDING", "RUNNING"}

# Versioned schema: entry i brings the database from user_version i to i + 1.
_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, job TEXT NOT NULL, status TEXT NOT NULL,
        submitted REAL NOT NULL, data TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '',
        heartbeat REAL NOT NULL DEFAULT 0, spec TEXT NOT NULL DEFAULT '{}',
        stop TEXT);  -- NULL, or why a stop was requested: written by other processes, never by the engine
    CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
    CREATE TABLE IF NOT EXISTS tasks (
        run_id TEXT NOT NULL, name TEXT NOT NULL, ord INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (run_id, name));
    CREATE TABLE IF NOT EXISTS events (
        run_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run_id, seq));
    """,
    f"""
    ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN name TEXT NOT NULL DEFAULT '';
    UPDATE runs SET name = coalesce(json_extract(data, '$.name'), '');
    CREATE INDEX IF NOT EXISTS runs_active_owner ON runs(owner) WHERE {_ACTIVE_SQL};
    CREATE INDEX IF NOT EXISTS runs_active_heartbeat ON runs(heartbeat) WHERE {_ACTIVE_SQL};
    CREATE INDEX IF NOT EXISTS runs_submitted ON runs(submitted DESC);
    CREATE INDEX IF NOT EXISTS runs_job ON runs(job, submitted DESC);
    """,
)
_RUN_COLUMNS = "data, stop, owner"


def _run(row: Any) -> RunRecord:
    """A run record from (data, stop, owner): the lease's owner, and a stop another process requested."""
    run = RunRecord.from_record(json.loads(row[0]))
    if row[2] != run.owner:
        run = run.evolve(owner=row[2])
    if row[1] is not None and not run.status.is_terminal and not run.stop_requested:
        run = run.evolve(stop_requested=True, message=row[1])
    return run


def _dump(d: dict) -> str:
    return json.dumps(d, separators=(",", ":"), default=str)


def _is_busy(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def _glob(pattern: str) -> str:
    """fnmatch's ``[!...]`` is SQLite GLOB's ``[^...]``; the rest means the same."""
    return pattern.replace("[!", "[^")


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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: transactions are begun explicitly (BEGIN IMMEDIATE) by _tx
            self._db = await aiosqlite.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            await self._retry_busy(self._setup)
        except (OSError, sqlite3.Error) as e:
            await self.close()
            raise UpstreamError(f"cannot open the SQLite store {self.path}: {e}") from e

    async def _setup(self) -> None:
        await self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self._migrate()

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        if row is not None and row[0] >= len(_MIGRATIONS):
            return
        async with self._tx():  # another process may be migrating too: read the version under the write lock
            async with self.db.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
            version = row[0] if row else 0
            for i, script in enumerate(_MIGRATIONS[version:], start=version):
                for statement in filter(str.strip, script.split(";")):
                    await self.db.execute(statement)
                log.debug("sqlite store %s: schema version %d", self.path, i + 1)
            await self.db.execute(f"PRAGMA user_version={len(_MIGRATIONS)}")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _retry_busy(self, fn: Any) -> Any:
        """Run ``fn()`` (a whole transaction) again while another process keeps the database locked."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + BUSY_RETRY_FOR_S
        delay = 0.01
        while True:
            try:
                return await fn()
            except sqlite3.OperationalError as e:
                if not _is_busy(e) or loop.time() > give_up:
                    raise
                log.debug("sqlite store %s busy (%s); retrying in %.2fs", self.path, e, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[None]:
        """One write transaction (BEGIN IMMEDIATE); rolled back when anything in it fails."""
        async with self._write:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def _write_tx(self, body: Any) -> Any:
        """``body()`` inside a write transaction, retried as a whole while the database is busy."""

        async def attempt() -> Any:
            async with self._tx():
                return await body()

        return await self._retry_busy(attempt)

    # -- writes by the driving engine ------------------------------------------------------------

    async def create_run(
        self,
        run: RunRecord,
        spec: dict[str, Any],
        tasks: Sequence[TaskRecord],
        events: Sequence[Event],
        *,
        now: float,
    ) -> Lease | None:
        async def body() -> Lease | None:
            cur = await self.db.execute(
                "INSERT OR IGNORE INTO runs (run_id, job, status, submitted, data, owner, heartbeat, spec, stop,"
                " epoch, name) VALUES (?,?,?,?,?,?,?,?,NULL,1,?)",
                (
                    run.run_id,
                    run.job,
                    run.status.value,
                    run.submitted,
                    _dump(run.to_record()),
                    run.owner,
                    now,
                    _dump(spec),
                    run.name,
                ),
            )
            if cur.rowcount == 0:
                return None
            await self.db.executemany(
                "INSERT INTO tasks VALUES (?,?,?,?)",
                [(t.run_id, t.name, i, _dump(t.to_record())) for i, t in enumerate(tasks)],
            )
            await self._write_events(events)
            return Lease(run.run_id, run.owner, 1)

        result: Lease | None = await self._write_tx(body)
        return result

    async def commit(
        self, lease: Lease, run: RunRecord | None, tasks: Sequence[TaskRecord] = (), events: Sequence[Event] = ()
    ) -> None:
        async def body() -> None:
            async with self.db.execute(
                "SELECT 1 FROM runs WHERE run_id=? AND owner=? AND epoch=?", (lease.run_id, lease.owner, lease.epoch)
            ) as cur:
                if await cur.fetchone() is None:
                    raise LeaseLost(lease)
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

        await self._write_tx(body)

    async def _write_events(self, events: Sequence[Event]) -> None:
        if events:
            await self.db.executemany(
                "INSERT INTO events VALUES (?,?,?)", [(e.run_id, e.seq, _dump(e.to_record())) for e in events]
            )

    # -- leases ----------------------------------------------------------------------------------

    async def renew(self, owner: str, now: float) -> dict[str, str | None]:
        async def body() -> dict[str, str | None]:
            async with self.db.execute(
                f"UPDATE runs SET heartbeat=? WHERE owner=? AND {_ACTIVE_SQL} RETURNING run_id, stop", (now, owner)
            ) as cur:
                return {r[0]: r[1] for r in await cur.fetchall()}

        held: dict[str, str | None] = await self._write_tx(body)
        return held

    async def claim_stale(self, owner: str, *, now: float, stale_before: float, limit: int = 100) -> list[Lease]:
        async def body() -> list[Lease]:
            async with self.db.execute(
                f"SELECT run_id, epoch FROM runs WHERE {_ACTIVE_SQL} AND heartbeat<? AND owner<>?"
                " ORDER BY submitted LIMIT ?",
                (stale_before, owner, limit),
            ) as cur:
                rows = await cur.fetchall()
            await self.db.executemany(
                "UPDATE runs SET owner=?, epoch=?, heartbeat=? WHERE run_id=? AND epoch=?",
                [(owner, r[1] + 1, now, r[0], r[1]) for r in rows],
            )
            return [Lease(r[0], owner, r[1] + 1) for r in rows]

        leases: list[Lease] = await self._write_tx(body)
        return leases

    async def take_over(self, expect: Lease, owner: str, now: float) -> Lease | None:
        async def body() -> Lease | None:
            cur = await self.db.execute(
                f"UPDATE runs SET owner=?, epoch=epoch+1, heartbeat=? WHERE run_id=? AND owner=? AND epoch=?"
                f" AND {_ACTIVE_SQL}",
                (owner, now, expect.run_id, expect.owner, expect.epoch),
            )
            return Lease(expect.run_id, owner, expect.epoch + 1) if cur.rowcount else None

        lease: Lease | None = await self._write_tx(body)
        return lease

    async def lease_of(self, run_id: str) -> LeaseInfo | None:
        async with self.db.execute("SELECT owner, epoch, heartbeat FROM runs WHERE run_id=?", (run_id,)) as cur:
            row = await cur.fetchone()
        return LeaseInfo(Lease(run_id, row[0], row[1]), row[2]) if row else None

    async def release(self, owner: str, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return

        async def body() -> None:
            await self.db.executemany(
                "UPDATE runs SET heartbeat=0 WHERE owner=? AND run_id=?", [(owner, r) for r in run_ids]
            )

        await self._write_tx(body)

    async def reopen_run(self, run_id: str, owner: str, now: float) -> Lease | None:
        async def body() -> Lease | None:
            async with self.db.execute(
                "UPDATE runs SET status=?, stop=NULL, owner=?, epoch=epoch+1, heartbeat=?,"
                # the record too, so a reader (a watch started right after) sees the run active again
                " data=json_set(data, '$.status', ?, '$.completed', NULL, '$.stop_requested', json('false'))"
                " WHERE run_id=? AND status IN (?,?) RETURNING epoch",
                (RunStatus.BUILDING.value, owner, now, RunStatus.BUILDING.value, run_id, *_ENDED),
            ) as cur:
                row = await cur.fetchone()
            return Lease(run_id, owner, row[0]) if row else None

        lease: Lease | None = await self._write_tx(body)
        return lease

    # -- writes by anyone ------------------------------------------------------------------------

    async def request_stop(self, run_id: str, reason: str) -> bool:
        async def body() -> bool:
            cur = await self.db.execute(
                f"UPDATE runs SET stop=? WHERE run_id=? AND stop IS NULL AND {_ACTIVE_SQL}", (reason, run_id)
            )
            return cur.rowcount > 0

        done: bool = await self._write_tx(body)
        return done

    async def delete_run(self, run_id: str) -> bool:
        async def body() -> bool:
            cur = await self.db.execute("DELETE FROM runs WHERE run_id=?", (run_id,))
            await self.db.execute("DELETE FROM tasks WHERE run_id=?", (run_id,))
            await self.db.execute("DELETE FROM events WHERE run_id=?", (run_id,))
            return cur.rowcount > 0

        done: bool = await self._write_tx(body)
        return done

    # -- reads -----------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id=?", (run_id,)) as cur:
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

    async def list_runs(
        self, *, pattern: str = "", active_only: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[RunRecord]:
        where: list[str] = []
        params: list[Any] = []
        if active_only:
            where.append(_ACTIVE_SQL)
        if pattern and is_glob(pattern):
            where.append("(run_id GLOB ? OR job GLOB ? OR name GLOB ?)")
            params += [_glob(pattern)] * 3
        elif pattern:
            where.append("(instr(run_id, ?) > 0 OR instr(job, ?) > 0 OR instr(name, ?) > 0)")
            params += [pattern] * 3
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY submitted DESC, run_id LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
        async with self.db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [_run(r) for r in rows]

    async def events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        async with self.db.execute(
            "SELECT data FROM events WHERE run_id=? AND seq>? ORDER BY seq LIMIT ?",
            (run_id, after_seq, -1 if limit is None else limit),
        ) as cur:
            rows = await cur.fetchall()
        return [Event.from_record(json.loads(r[0])) for r in rows]

    async def ended_before(self, before: float, *, limit: int = 100) -> list[str]:
        async with self.db.execute(
            "SELECT run_id FROM runs WHERE status IN (?,?) AND json_extract(data, '$.completed') < ?"
            " ORDER BY json_extract(data, '$.completed'), run_id LIMIT ?",
            (*_ENDED, before, limit),
        ) as cur:
            return [r[0] for r in await cur.fetchall()]

    async def last_seq(self, run_id: str) -> int:
        async with self.db.execute("SELECT MAX(seq) FROM events WHERE run_id=?", (run_id,)) as cur:
            row = await cur.fetchone()
        return int(row[0] or 0) if row else 0
