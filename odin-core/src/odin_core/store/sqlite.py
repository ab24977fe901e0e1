"""The embedded default store: SQLite in WAL mode, one file under ``$ODIN_HOME``.

Records are kept as JSON next to the few columns that are queried. Several processes share one
file (six ``odin run``s on one home, ``odin status`` beside them): every write transaction is
``BEGIN IMMEDIATE`` (it takes the write lock up front, so no transaction ever has to upgrade a
read lock, the source of SQLITE_BUSY that no busy timeout can wait out), transactions are short,
and a transaction that still meets a locked database is retried with backoff.

The connection lives on one thread of its own, and **each store operation is one call on it** (a
whole transaction, or a whole read). Calls made while the thread is busy run as one batch
(``sqlite_queue``: group commit, each write in a savepoint of its own): one hand-off and one
event-loop wake-up per batch, however many runs' commits it holds. A short batch of runs' small
writes (``quick``) is written on the event loop itself while the thread is idle, without ever waiting
for a lock or checkpointing there (``sqlite_queue``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..errors import Conflict, TemporaryError, UpstreamError
from ..model import Event, RunRecord, RunStatus, TaskRecord
from .base import JobStore, Lease, LeaseInfo, LeaseLost, is_glob
from .common import dumps, present_run
from .sqlite_queue import QUICK, READ, WRITE, ConnectionQueue

log = logging.getLogger("odin.store")
T = TypeVar("T")
Conn = sqlite3.Connection

BUSY_TIMEOUT_MS = 5000
"""How long SQLite itself waits for another process's write lock before answering SQLITE_BUSY."""
QUICK_ROWS = 32
"""Task rows and events a run's write may hold to count as quick (written on the loop when it is idle)."""
BUSY_RETRY_FOR_S = 60.0
"""How long a transaction is retried (with backoff) while the database stays locked; then TemporaryError."""

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
    return present_run(json.loads(row[0]), row[1], row[2])


def _is_busy(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def _cannot_write(e: sqlite3.Error) -> bool:
    """A full disk (SQLITE_FULL) or a failed read or write of the file (SQLITE_IOERR, extended codes too): the
    file system's state, which freeing space or fixing the disk ends, not the request's."""
    code = getattr(e, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)


def _glob(pattern: str) -> str:
    """fnmatch's ``[!...]`` is SQLite GLOB's ``[^...]``; the rest means the same."""
    return pattern.replace("[!", "[^")


def _write_events(db: Conn, events: Sequence[Event]) -> None:
    if not events:
        return
    try:
        db.executemany("INSERT INTO events VALUES (?,?,?)", [(e.run_id, e.seq, dumps(e.to_record())) for e in events])
    except sqlite3.IntegrityError as e:
        raise Conflict(f"event {events[0].run_id}#{events[0].seq}… was written already", run_id=events[0].run_id) from e


class SqliteStore(JobStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._db: Conn | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._queue: ConnectionQueue | None = None

    # -- the connection's thread ------------------------------------------------------------------

    async def _call(self, fn: Callable[[Conn], T]) -> T:
        """``fn(connection)`` on the connection's thread (outside any transaction it does not begin itself)."""
        if self._queue is None:
            raise RuntimeError("store is not open")
        return await self._queue.call(fn, READ)

    async def _write(self, body: Callable[[Conn], T], *, quick: bool = False) -> T:
        """``body`` atomically in a BEGIN IMMEDIATE transaction (shared with the writes queued beside it, each in
        a savepoint of its own), retried while another process holds the lock. ``quick``: a few rows, which may
        be written on the event loop itself (``sqlite_queue``)."""
        if self._queue is None:
            raise RuntimeError("store is not open")
        queue, kind = self._queue, QUICK if quick else WRITE
        return await self._retry_busy(lambda: queue.call(body, kind))

    async def _retry_busy(self, op: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + BUSY_RETRY_FOR_S
        delay = 0.01
        while True:
            try:
                return await op()
            except sqlite3.OperationalError as e:
                if _cannot_write(e):  # the engine waits and tries again: runs pause where they are, none fails
                    why = f"the SQLite store {self.path} cannot write: {e}"
                    raise TemporaryError(f"{why}; free space on its disk (runs wait, then go on)", delay_s=2.0) from e
                if not _is_busy(e):
                    raise
                if loop.time() > give_up:
                    raise TemporaryError(f"the SQLite store {self.path} stayed locked: {e}", delay_s=1.0) from e
                log.debug("sqlite store %s busy (%s); retrying in %.2fs", self.path, e, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="odin-sqlite")
        try:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
            self._db = await asyncio.get_running_loop().run_in_executor(self._thread, self._connect)
            self._queue = ConnectionQueue(self._db, self._thread, busy_timeout_ms=BUSY_TIMEOUT_MS)
            await self._retry_busy(lambda: self._call(self._setup))
            await self._retry_busy(lambda: self._call(self._migrate))
        except (OSError, sqlite3.Error, TemporaryError) as e:
            await self.close()
            raise UpstreamError(f"cannot open the SQLite store {self.path}: {e}") from e

    def _connect(self) -> Conn:
        # autocommit mode: transactions are begun explicitly (BEGIN IMMEDIATE)
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)

    @staticmethod
    def _setup(db: Conn) -> None:
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the connection's thread checkpoints, never the loop (sqlite_queue)

    def _migrate(self, db: Conn) -> None:
        if db.execute("PRAGMA user_version").fetchone()[0] >= len(_MIGRATIONS):
            return
        db.execute("BEGIN IMMEDIATE")  # another process may be migrating too: read the version under the lock
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for i, script in enumerate(_MIGRATIONS[version:], start=version):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                log.debug("sqlite store %s: schema version %d", self.path, i + 1)
            db.execute(f"PRAGMA user_version={len(_MIGRATIONS)}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self.schema = f"schema version {len(_MIGRATIONS)} (migrated from {version})"

    async def close(self) -> None:
        if self._queue is not None:  # behind the calls queued before it, never beside an inline batch
            queue, self._queue = self._queue, None
            await queue.call(lambda db: db.close(), READ)
        self._db = None
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    async def explain(self, sql: str) -> str:
        """SQLite's query plan of ``sql`` (diagnostics: which index serves a query)."""
        rows = await self._call(lambda db: db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall())
        return " ".join(str(r[-1]) for r in rows)

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
        row = (run.run_id, run.job, run.status.value, run.submitted, dumps(run.to_record()), run.owner, now)
        rest = (dumps(spec), run.name)
        task_rows = [(t.run_id, t.name, i, dumps(t.to_record())) for i, t in enumerate(tasks)]

        def body(db: Conn) -> Lease | None:
            cur = db.execute(
                "INSERT OR IGNORE INTO runs (run_id, job, status, submitted, data, owner, heartbeat, spec, stop,"
                " epoch, name) VALUES (?,?,?,?,?,?,?,?,NULL,1,?)",
                (*row, *rest),
            )
            if cur.rowcount == 0:
                return None
            db.executemany("INSERT INTO tasks VALUES (?,?,?,?)", task_rows)
            _write_events(db, events)
            return Lease(run.run_id, run.owner, 1)

        return await self._write(body, quick=len(task_rows) + len(events) <= QUICK_ROWS)

    async def commit(
        self, lease: Lease, run: RunRecord | None, tasks: Sequence[TaskRecord] = (), events: Sequence[Event] = ()
    ) -> None:
        run_row = None if run is None else (run.status.value, dumps(run.to_record()), run.run_id)
        task_rows = [(dumps(t.to_record()), t.run_id, t.name) for t in tasks]

        def body(db: Conn) -> None:
            held = db.execute(
                "SELECT 1 FROM runs WHERE run_id=? AND owner=? AND epoch=?", (lease.run_id, lease.owner, lease.epoch)
            ).fetchone()
            if held is None:
                raise LeaseLost(lease)
            if run_row is not None:
                db.execute("UPDATE runs SET status=?, data=? WHERE run_id=?", run_row)
            if task_rows:
                db.executemany("UPDATE tasks SET data=? WHERE run_id=? AND name=?", task_rows)
            _write_events(db, events)

        await self._write(body, quick=len(task_rows) + len(events) <= QUICK_ROWS)

    # -- leases ----------------------------------------------------------------------------------

    async def renew(self, owner: str, now: float) -> dict[str, str | None]:
        def body(db: Conn) -> dict[str, str | None]:
            sql = f"UPDATE runs SET heartbeat=? WHERE owner=? AND {_ACTIVE_SQL} RETURNING run_id, stop"
            return {r[0]: r[1] for r in db.execute(sql, (now, owner)).fetchall()}

        return await self._write(body)

    async def claim_stale(self, owner: str, *, now: float, stale_before: float, limit: int = 100) -> list[Lease]:
        def body(db: Conn) -> list[Lease]:
            rows = db.execute(
                f"SELECT run_id, epoch FROM runs WHERE {_ACTIVE_SQL} AND heartbeat<? AND owner<>?"
                " ORDER BY submitted LIMIT ?",
                (stale_before, owner, limit),
            ).fetchall()
            db.executemany(
                "UPDATE runs SET owner=?, epoch=?, heartbeat=? WHERE run_id=? AND epoch=?",
                [(owner, r[1] + 1, now, r[0], r[1]) for r in rows],
            )
            return [Lease(r[0], owner, r[1] + 1) for r in rows]

        return await self._write(body)

    async def take_over(self, expect: Lease, owner: str, now: float) -> Lease | None:
        def body(db: Conn) -> Lease | None:
            cur = db.execute(
                f"UPDATE runs SET owner=?, epoch=epoch+1, heartbeat=? WHERE run_id=? AND owner=? AND epoch=?"
                f" AND {_ACTIVE_SQL}",
                (owner, now, expect.run_id, expect.owner, expect.epoch),
            )
            return Lease(expect.run_id, owner, expect.epoch + 1) if cur.rowcount else None

        return await self._write(body)

    async def lease_of(self, run_id: str) -> LeaseInfo | None:
        row = await self._call(
            lambda db: db.execute("SELECT owner, epoch, heartbeat FROM runs WHERE run_id=?", (run_id,)).fetchone()
        )
        return LeaseInfo(Lease(run_id, row[0], row[1]), row[2]) if row else None

    async def release(self, owner: str, run_ids: Sequence[str]) -> None:
        if run_ids:
            rows = [(owner, r) for r in run_ids]
            await self._write(lambda db: db.executemany("UPDATE runs SET heartbeat=0 WHERE owner=? AND run_id=?", rows))

    async def reopen_run(self, run_id: str, owner: str, now: float) -> Lease | None:
        building = RunStatus.BUILDING.value

        def body(db: Conn) -> Lease | None:
            row = db.execute(
                "UPDATE runs SET status=?, stop=NULL, owner=?, epoch=epoch+1, heartbeat=?,"
                # the record too, so a reader (a watch started right after) sees the run active again
                " data=json_set(data, '$.status', ?, '$.completed', NULL, '$.stop_requested', json('false'))"
                " WHERE run_id=? AND status IN (?,?) RETURNING epoch",
                (building, owner, now, building, run_id, *_ENDED),
            ).fetchone()
            return Lease(run_id, owner, row[0]) if row else None

        return await self._write(body)

    # -- writes by anyone ------------------------------------------------------------------------

    async def request_stop(self, run_id: str, reason: str) -> bool:
        sql = f"UPDATE runs SET stop=? WHERE run_id=? AND stop IS NULL AND {_ACTIVE_SQL}"
        return await self._write(lambda db: db.execute(sql, (reason, run_id)).rowcount > 0)

    async def delete_run(self, run_id: str) -> bool:
        def body(db: Conn) -> bool:
            cur = db.execute("DELETE FROM runs WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM tasks WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM events WHERE run_id=?", (run_id,))
            return cur.rowcount > 0

        return await self._write(body)

    # -- reads -----------------------------------------------------------------------------------

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self._retry_busy(lambda: self._call(lambda db: db.execute(sql, params).fetchall()))

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._rows(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id=?", (run_id,))
        return _run(rows[0]) if rows else None

    async def get_spec(self, run_id: str) -> dict[str, Any] | None:
        rows = await self._rows("SELECT spec FROM runs WHERE run_id=?", (run_id,))
        return json.loads(rows[0][0]) if rows else None

    async def get_tasks(self, run_id: str) -> list[TaskRecord]:
        rows = await self._rows("SELECT data FROM tasks WHERE run_id=? ORDER BY ord", (run_id,))
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
        return [_run(r) for r in await self._rows(sql, params)]

    async def events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        rows = await self._rows(
            "SELECT data FROM events WHERE run_id=? AND seq>? ORDER BY seq LIMIT ?",
            (run_id, after_seq, -1 if limit is None else limit),
        )
        return [Event.from_record(json.loads(r[0])) for r in rows]

    async def ended_before(self, before: float, *, limit: int = 100) -> list[str]:
        rows = await self._rows(
            "SELECT run_id FROM runs WHERE status IN (?,?) AND json_extract(data, '$.completed') < ?"
            " ORDER BY json_extract(data, '$.completed'), run_id LIMIT ?",
            (*_ENDED, before, limit),
        )
        return [r[0] for r in rows]

    async def last_seq(self, run_id: str) -> int:
        rows = await self._rows("SELECT MAX(seq) FROM events WHERE run_id=?", (run_id,))
        return int(rows[0][0] or 0) if rows else 0
