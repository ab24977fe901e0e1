"""The job store on PostgreSQL (asyncpg): for several core processes sharing one database.

A connection pool; versioned migrations shipped in ``migrations/postgres`` and applied at open
under an advisory lock (two cores starting together migrate once); records as ``jsonb`` beside
the queried columns. Every fenced write runs in one transaction whose first statement checks the
lease (``... WHERE owner = $ AND epoch = $``, row-locked until commit, so a takeover waits for
it), and takeovers are compare-and-set updates. Each commit notifies ``odin_events`` so that
cores that do not drive a run can follow its events (``follow``).

While the server is unreachable, operations are retried (``common.Retrying``); a commit is safe
to retry because it is idempotent: the lease check passes again and events already written with
the same content are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import asyncpg

from ..errors import Conflict, UpstreamError
from ..model import Event, RunRecord, TaskRecord
from .base import JobStore, Lease, LeaseInfo, LeaseLost, is_glob, pattern_regex
from .common import Retrying, StoreSettings, dumps, present_run, read_password, redact
from .postgres_schema import NOTIFY_CHANNEL, TRANSIENT, apply_migrations, listen, lost_connection, why

log = logging.getLogger("odin.store")

_ACTIVE = "status IN ('BUILDING','RUNNING')"  # literal: the partial indexes apply
_ENDED = "status IN ('DONE','TERMINATED')"
_RUN_COLUMNS = "record, stop, owner"


def _run(row: Any) -> RunRecord:
    return present_run(row[0], row[1], row[2])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=dumps, decoder=json.loads, schema="pg_catalog")


class PostgresStore(JobStore):
    def __init__(self, dsn: str, settings: StoreSettings | None = None) -> None:
        self.dsn = dsn
        self.settings = settings or StoreSettings()
        self.retry = Retrying(f"PostgreSQL store {redact(dsn)}", self.settings, TRANSIENT, lost_connection)
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                password=read_password(self.settings),
                min_size=1,
                max_size=self.settings.pool_size,
                timeout=self.settings.connect_timeout_s,
                command_timeout=None,
                init=_init_connection,
            )
            async with self.pool.acquire() as conn:
                before, after = await self.migrate(conn)
            self.schema = f"schema version {after}" + (f" (migrated from {before})" if before != after else "")
        except (*TRANSIENT, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as e:
            await self.close()
            raise UpstreamError(f"cannot open the PostgreSQL store {redact(self.dsn)}: {why(e)}") from e

    async def migrate(self, conn: asyncpg.Connection) -> tuple[int, int]:
        """Bring the schema up to date; returns (version before, version after)."""
        return await apply_migrations(conn, redact(self.dsn))

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    # -- writes by the driving engine ----------------------------------------------------------

    async def create_run(
        self,
        run: RunRecord,
        spec: dict[str, Any],
        tasks: Sequence[TaskRecord],
        events: Sequence[Event],
        *,
        now: float,
    ) -> Lease | None:
        tries = 0

        async def op() -> Lease | None:
            nonlocal tries
            tries += 1
            async with self._tx() as conn:
                row = await conn.fetchrow(
                    "INSERT INTO runs (run_id, job, name, status, submitted, completed, record, spec, owner, epoch,"
                    " heartbeat) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,1,$10) ON CONFLICT (run_id) DO NOTHING"
                    " RETURNING epoch",
                    run.run_id,
                    run.job,
                    run.name,
                    run.status.value,
                    run.submitted,
                    run.completed,
                    run.to_record(),
                    spec,
                    run.owner,
                    now,
                )
                if row is None:
                    return await self._landed_before(conn, run, tries)
                await conn.execute(
                    "INSERT INTO tasks (run_id, name, ord, record)"
                    " SELECT $1, e->>'name', (o - 1)::int, e FROM jsonb_array_elements($2) WITH ORDINALITY AS t(e, o)",
                    run.run_id,
                    [t.to_record() for t in tasks],
                )
                await self._write_events(conn, run.run_id, events)
                return Lease(run.run_id, run.owner, 1)

        return await self.retry.write(op)

    @staticmethod
    async def _landed_before(conn: asyncpg.Connection, run: RunRecord, tries: int) -> Lease | None:
        """The run exists: when this is a retry and the row is the one our first try wrote, that try landed."""
        if tries == 1:
            return None
        row = await conn.fetchrow("SELECT owner, epoch, submitted FROM runs WHERE run_id=$1", run.run_id)
        if row is not None and (row[0], row[1], row[2]) == (run.owner, 1, run.submitted):
            return Lease(run.run_id, run.owner, 1)
        return None

    async def commit(
        self, lease: Lease, run: RunRecord | None, tasks: Sequence[TaskRecord] = (), events: Sequence[Event] = ()
    ) -> None:
        # several round trips: a cancelled caller lets them finish rather than leave the connection mid-way
        await asyncio.shield(self._commit(lease, run, tasks, events))

    async def _commit(
        self, lease: Lease, run: RunRecord | None, tasks: Sequence[TaskRecord], events: Sequence[Event]
    ) -> None:
        async def op() -> None:
            async with self._tx() as conn:
                if run is not None:
                    done = await conn.execute(
                        "UPDATE runs SET status=$4, record=$5, completed=$6 WHERE run_id=$1 AND owner=$2 AND epoch=$3",
                        lease.run_id,
                        lease.owner,
                        lease.epoch,
                        run.status.value,
                        run.to_record(),
                        run.completed,
                    )
                    held = done != "UPDATE 0"
                else:
                    held = await conn.fetchval(
                        "SELECT true FROM runs WHERE run_id=$1 AND owner=$2 AND epoch=$3 FOR SHARE",
                        lease.run_id,
                        lease.owner,
                        lease.epoch,
                    )
                if not held:
                    raise LeaseLost(lease)
                if tasks:
                    await conn.execute(
                        "UPDATE tasks t SET record = e FROM jsonb_array_elements($2) e"
                        " WHERE t.run_id = $1 AND t.name = e->>'name'",
                        lease.run_id,
                        [t.to_record() for t in tasks],
                    )
                await self._write_events(conn, lease.run_id, events)

        await self.retry.write(op)

    async def _write_events(self, conn: asyncpg.Connection, run_id: str, events: Sequence[Event]) -> None:
        """Insert events; one already stored with the same content is a retried commit and is skipped."""
        if not events:
            return
        records = [e.to_record() for e in events]
        written = await conn.fetch(
            "INSERT INTO events (run_id, seq, record) SELECT $1, (e->>'seq')::bigint, e FROM jsonb_array_elements($2) e"
            " ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq",
            run_id,
            records,
        )
        if len(written) < len(records):
            stored = dict(
                await conn.fetch(
                    "SELECT seq, record FROM events WHERE run_id=$1 AND seq = ANY($2::bigint[])",
                    run_id,
                    [e.seq for e in events],
                )
            )
            fresh = {r["seq"] for r in written}
            for e in events:
                if e.seq not in fresh and stored.get(e.seq) != json.loads(dumps(e.to_record())):
                    raise Conflict(f"run {run_id!r} already has an event {e.seq}", run_id=run_id, seq=e.seq)
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, f"{run_id} {min(e.seq for e in events) - 1}")

    # -- leases --------------------------------------------------------------------------------

    async def renew(self, owner: str, now: float) -> dict[str, str | None]:
        async def op() -> dict[str, str | None]:
            rows = await self.pool.fetch(
                f"UPDATE runs SET heartbeat=$2 WHERE owner=$1 AND {_ACTIVE} RETURNING run_id, stop", owner, now
            )
            return {r[0]: r[1] for r in rows}

        return await self.retry.write(op)

    async def claim_stale(self, owner: str, *, now: float, stale_before: float, limit: int = 100) -> list[Lease]:
        async def op() -> list[Lease]:
            rows = await self.pool.fetch(
                "UPDATE runs r SET owner=$1, epoch=r.epoch+1, heartbeat=$2 FROM ("
                f" SELECT run_id FROM runs WHERE {_ACTIVE} AND heartbeat < $3 AND owner <> $1"
                " ORDER BY submitted LIMIT $4 FOR UPDATE SKIP LOCKED) s"
                " WHERE r.run_id = s.run_id RETURNING r.run_id, r.epoch, r.submitted",
                owner,
                now,
                stale_before,
                limit,
            )
            return [Lease(r[0], owner, r[1]) for r in sorted(rows, key=lambda r: (r[2], r[0]))]

        return await self.retry.write(op)

    async def take_over(self, expect: Lease, owner: str, now: float) -> Lease | None:
        async def op() -> Lease | None:
            epoch = await self.pool.fetchval(
                f"UPDATE runs SET owner=$4, epoch=epoch+1, heartbeat=$5 WHERE run_id=$1 AND owner=$2 AND epoch=$3"
                f" AND {_ACTIVE} RETURNING epoch",
                expect.run_id,
                expect.owner,
                expect.epoch,
                owner,
                now,
            )
            return Lease(expect.run_id, owner, epoch) if epoch is not None else None

        return await self.retry.write(op)

    async def lease_of(self, run_id: str) -> LeaseInfo | None:
        async def op() -> LeaseInfo | None:
            row = await self.pool.fetchrow("SELECT owner, epoch, heartbeat FROM runs WHERE run_id=$1", run_id)
            return LeaseInfo(Lease(run_id, row[0], row[1]), row[2]) if row else None

        return await self.retry.read(op)

    async def release(self, owner: str, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return

        async def op() -> None:
            await self.pool.execute(
                "UPDATE runs SET heartbeat=0 WHERE owner=$1 AND run_id = ANY($2::text[])", owner, list(run_ids)
            )

        await self.retry.write(op)

    async def reopen_run(self, run_id: str, owner: str, now: float) -> Lease | None:
        async def op() -> Lease | None:
            epoch = await self.pool.fetchval(
                f"UPDATE runs SET status='BUILDING', stop=NULL, owner=$2, epoch=epoch+1, heartbeat=$3"
                f" WHERE run_id=$1 AND {_ENDED} RETURNING epoch",
                run_id,
                owner,
                now,
            )
            return Lease(run_id, owner, epoch) if epoch is not None else None

        return await self.retry.write(op)

    # -- writes by anyone --------------------------------------------------------------------------

    async def request_stop(self, run_id: str, reason: str) -> bool:
        async def op() -> bool:
            done = await self.pool.execute(
                f"UPDATE runs SET stop=$2 WHERE run_id=$1 AND stop IS NULL AND {_ACTIVE}", run_id, reason
            )
            return bool(done != "UPDATE 0")

        return await self.retry.write(op)

    async def delete_run(self, run_id: str) -> bool:
        async def op() -> bool:
            return bool(await self.pool.execute("DELETE FROM runs WHERE run_id=$1", run_id) != "DELETE 0")

        return await self.retry.write(op)

    async def ended_before(self, before: float, *, limit: int = 100) -> list[str]:
        rows = await self.retry.read(
            lambda: self.pool.fetch(
                f"SELECT run_id FROM runs WHERE {_ENDED} AND completed < $1 ORDER BY completed, run_id LIMIT $2",
                before,
                limit,
            )
        )
        return [r[0] for r in rows]

    # -- reads ---------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self.retry.read(
            lambda: self.pool.fetchrow(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id=$1", run_id)
        )
        return _run(row) if row else None

    async def get_spec(self, run_id: str) -> dict[str, Any] | None:
        spec = await self.retry.read(lambda: self.pool.fetchval("SELECT spec FROM runs WHERE run_id=$1", run_id))
        return dict(spec) if spec is not None else None

    async def get_tasks(self, run_id: str) -> list[TaskRecord]:
        rows = await self.retry.read(
            lambda: self.pool.fetch("SELECT record FROM tasks WHERE run_id=$1 ORDER BY ord", run_id)
        )
        return [TaskRecord.from_record(r[0]) for r in rows]

    async def list_runs(
        self, *, pattern: str = "", active_only: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[RunRecord]:
        where: list[str] = []
        params: list[Any] = []
        if active_only:
            where.append(_ACTIVE)
        if pattern:
            params.append(pattern_regex(pattern) if is_glob(pattern) else pattern)
            test = "{} ~ $1" if is_glob(pattern) else "strpos({}, $1) > 0"
            where.append("(" + " OR ".join(test.format(c) for c in ("run_id", "job", "name")) + ")")
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        params += [limit, offset]
        sql += f" ORDER BY submitted DESC, run_id LIMIT ${len(params) - 1} OFFSET ${len(params)}"
        rows = await self.retry.read(lambda: self.pool.fetch(sql, *params))
        return [_run(r) for r in rows]

    async def events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        rows = await self.retry.read(
            lambda: self.pool.fetch(
                "SELECT record FROM events WHERE run_id=$1 AND seq>$2 ORDER BY seq LIMIT $3", run_id, after_seq, limit
            )
        )
        return [Event.from_record(r[0]) for r in rows]

    def follow(self) -> AsyncGenerator[tuple[str, int], None]:
        return listen(self.dsn, self.settings)

    async def last_seq(self, run_id: str) -> int:
        seq = await self.retry.read(
            lambda: self.pool.fetchval("SELECT coalesce(max(seq), 0) FROM events WHERE run_id=$1", run_id)
        )
        return int(seq)
