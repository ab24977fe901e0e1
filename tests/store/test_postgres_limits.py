"""A PostgreSQL server that refuses a connection for lack of resources (SQLSTATE class 53: too many connections, a
full disk, out of memory) is waited out like an unreachable one, not reported as an error of the request."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from odin_core.model import RunRecord
from odin_core.settings import StoreSettings
from odin_core.store.postgres import PostgresStore


async def test_a_role_out_of_connections_is_waited_out(postgres: str) -> None:
    """The core's role may open 2 connections (as when other clients hold the rest of ``max_connections``) while
    its pool would open 8: the reads and writes made together wait for a free connection, and all succeed."""
    role = f"odin_limited_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(postgres)
    database = parts.path.lstrip("/")
    admin = await asyncpg.connect(postgres)
    await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2")
    await admin.execute(f'GRANT ALL ON DATABASE "{database}" TO {role}')
    await admin.execute(f"GRANT ALL ON SCHEMA public TO {role}")
    limited = urlunsplit((parts.scheme, f"{role}@{parts.hostname}:{parts.port}", parts.path, parts.query, ""))
    store = PostgresStore(limited, StoreSettings(pool_size=8, read_retry_for_s=20, write_retry_for_s=20))
    try:
        await store.open()
        runs = [RunRecord(f"r{i}", job="j", owner="me") for i in range(24)]
        leases = await asyncio.gather(*(store.create_run(r, {}, [], [], now=0.0) for r in runs))
        assert all(lease is not None for lease in leases)
        reads = await asyncio.gather(*(store.get_run(r.run_id) for r in runs))
        assert [r.run_id for r in reads if r is not None] == [r.run_id for r in runs]
        assert store.retry.outages > 0, "the role's limit was never met: the test proves nothing"
    finally:
        await store.close()
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()
