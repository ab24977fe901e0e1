"""PostgreSQL (asyncpg): one pool, and versioned migrations applied once under an advisory lock.

Several gateway replicas may start at once on one database: the lock makes exactly one apply each migration.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

from .errors import Unavailable
from .settings import DatabaseSettings

log = logging.getLogger("odin.http.db")
MIGRATION_LOCK = 0x0D1_4770  # pg_advisory_xact_lock key of the gateway's migrations


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("odin_http").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply the migrations this database lacks; the versions applied now."""
    applied: list[int] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS odin_http_migrations "
            "(version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM odin_http_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO odin_http_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.append(version)
            log.info("applied migration %s", name)
    return applied


async def open_pool(settings: DatabaseSettings) -> asyncpg.Pool:
    if not settings.dsn:
        raise ValueError("database.dsn is required: set ODIN_HTTP_DATABASE_DSN (or ODIN_HTTP_DATABASE_DSN_FILE)")
    try:
        pool = await asyncpg.create_pool(
            settings.dsn.reveal(),
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            timeout=settings.connect_timeout_s,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        raise Unavailable(f"cannot connect to PostgreSQL: {type(e).__name__}: {e}") from None
    await migrate(pool)
    return pool
