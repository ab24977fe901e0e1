"""A PostgreSQL server that refuses a connection for lack of resources (SQLSTATE class 53: too many connections, a
full disk, out of memory) is waited out like an unreachable one, not reported as an error of the request."""

from __future__ import annotations

import asyncio
import os
import pwd
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from disks import mounted_small_disk
from full_disk_support import runs_wait_out_a_full_disk
from odin_core.model import RunRecord
from odin_core.settings import StoreSettings
from odin_core.store.postgres import PostgresStore
from services import launch, unavailable


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


async def test_a_full_disk_under_the_database_is_waited_out(postgres_server) -> None:
    """The database lives in a tablespace on a small real disk (a tmpfs) that fills up: the writes that need a new
    page get SQLSTATE 53100 ("could not extend file …: No space left on device") and wait; once space is freed they
    all land, each once."""
    if not isinstance(postgres_server, launch.Postgres):  # in CI a failure, as any missing component
        unavailable(
            "the full-disk test needs the tests' own PostgreSQL server (a tablespace on a disk of this machine)"
        )
    tag = uuid.uuid4().hex[:8]
    admin = await asyncpg.connect(postgres_server.dsn)
    with mounted_small_disk(postgres_server.dir / f"disk-{tag}", size="24m") as disk:
        space = disk.path / "space"
        space.mkdir()
        account = pwd.getpwnam(launch.SERVICE_ACCOUNT)
        os.chown(space, account.pw_uid, account.pw_gid)
        await admin.execute(f"CREATE TABLESPACE space_{tag} LOCATION '{space}'")
        await admin.execute(f"CREATE DATABASE full_{tag} TABLESPACE space_{tag}")
        store = PostgresStore(postgres_server.dsn_for(f"full_{tag}"), StoreSettings(write_retry_for_s=60))
        try:
            await store.open()
            made = await runs_wait_out_a_full_disk(store, disk)
            runs = await store.list_runs(limit=len(made) + 10)
            assert sorted(r.run_id for r in runs) == sorted(made)
        finally:
            await store.close()
            await admin.execute(f"DROP DATABASE IF EXISTS full_{tag} WITH (FORCE)")
            await admin.execute(f"DROP TABLESPACE IF EXISTS space_{tag}")
            await admin.close()
