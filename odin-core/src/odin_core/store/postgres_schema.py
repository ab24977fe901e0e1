"""PostgreSQL store plumbing: what counts as an outage, the shipped migrations, the event feed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from importlib import resources

import asyncpg

from ..errors import UpstreamError
from ..settings import StoreSettings
from .common import read_password, redact

log = logging.getLogger("odin.store")

NOTIFY_CHANNEL = "odin_events"
"""Every commit with events notifies ``"<run id> <seq before its first event>"`` here."""
MIGRATION_LOCK = 0x0D1_57_0E
"""pg_advisory_xact_lock key: one migrating process at a time."""
FEED_QUEUE = 10_000
"""Notices buffered for a slow follower; past that they are dropped for one ("", 0): catch up from the store."""

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.ConnectionDoesNotExistError,  # the server closed the connection mid-operation
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full, out of memory
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)


def lost_connection(e: BaseException) -> bool:
    """asyncpg reports a connection closed under a transaction as a plain InterfaceError."""
    return isinstance(e, asyncpg.InterfaceError) and "connection is closed" in str(e)


def why(e: BaseException) -> str:
    """The first line of an error's text (or its type), for one-line messages."""
    text = str(e) or type(e).__name__
    return text.splitlines()[0] if text else type(e).__name__


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every shipped migration (``migrations/postgres/NNNN_*.sql``), in order."""
    folder = resources.files("odin_core.store") / "migrations" / "postgres"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return sorted(found)


async def apply_migrations(conn: asyncpg.Connection, where: str) -> tuple[int, int]:
    """Apply the migrations the database lacks, under an advisory lock; (version before, version after)."""
    known = migrations()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS odin_schema (version integer PRIMARY KEY, name text NOT NULL,"
            " applied timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM odin_schema")
        latest = known[-1][0] if known else 0
        if current > latest:
            raise UpstreamError(
                f"the PostgreSQL store {where} has schema version {current}, newer than this odin-core knows "
                f"({latest}): upgrade odin-core"
            )
        for version, name, sql in known:
            if version > current:
                await conn.execute(sql)
                await conn.execute("INSERT INTO odin_schema (version, name) VALUES ($1, $2)", version, name)
                log.info("PostgreSQL store %s: applied migration %s", where, name)
    return current, max(current, latest)


async def listen(dsn: str, settings: StoreSettings) -> AsyncGenerator[tuple[str, int], None]:
    """LISTEN on ``odin_events`` on a connection of its own, reconnecting when it drops.

    A ("", 0) follows each (re)connection: notices sent before it were not heard.
    """
    queue: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue(FEED_QUEUE)

    def offer(item: tuple[str, int] | None) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(("", 0) if item is not None else None)

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        run_id, _, seq = payload.rpartition(" ")
        if run_id and seq.isdigit():
            offer((run_id, int(seq)))

    while True:
        try:
            conn = await asyncpg.connect(dsn, password=read_password(settings), timeout=settings.connect_timeout_s)
        except (*TRANSIENT, asyncpg.PostgresError) as e:
            log.warning("PostgreSQL store %s: event feed unavailable (%s); retrying", redact(dsn), why(e))
            await asyncio.sleep(1.0)
            continue
        try:
            conn.add_termination_listener(lambda _c: offer(None))
            await conn.add_listener(NOTIFY_CHANNEL, on_notify)
            yield ("", 0)  # listening from now on: whatever came before, catch up from the store
            while (item := await queue.get()) is not None:
                yield item
        except TRANSIENT:
            pass
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
