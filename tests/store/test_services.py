"""The throwaway database servers of tools/services that the store tests run against."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from pymongo import AsyncMongoClient
from services import LAUNCHER, launch

_seen: dict[str, str] = {}


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("round_", [1, 2])
async def test_postgres_gives_each_test_an_empty_database(postgres: str, round_: int) -> None:
    conn = await asyncpg.connect(postgres)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 0
        await conn.execute("CREATE TABLE marker (x int)")
        assert await conn.fetchval("SHOW fsync") == "off"
    finally:
        await conn.close()
    assert postgres not in _seen.values()
    _seen[f"pg{round_}"] = postgres


@pytest.mark.parametrize("round_", [1, 2])
async def test_mongo_gives_each_test_an_empty_database(mongo: str, round_: int) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo, serverSelectionTimeoutMS=5000)
    try:
        db = client.get_default_database()
        assert await db.list_collection_names() == []
        await db.marker.insert_one({"round": round_})
        assert (await db.marker.find_one({}, {"_id": 0})) == {"round": round_}
    finally:
        await client.close()
    assert mongo not in _seen.values()
    _seen[f"mongo{round_}"] = mongo


def test_servers_of_a_killed_owner_are_reaped(tmp_path: Path) -> None:
    """A test run killed before its teardown leaves a server behind; the next run stops it."""
    proc = subprocess.Popen(
        [sys.executable, str(LAUNCHER), "postgres"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("postgresql://"):
        proc.kill()
        pytest.fail(f"launcher printed {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}")
    port = int(line.rsplit(":", 1)[1].split("/")[0])
    assert _listening(port)
    leftovers = [d for d in launch.runtime_root().iterdir() if (d / "owner.pid").read_text() == str(proc.pid)]
    assert len(leftovers) == 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _listening(port), "the server outlives its killed owner until reaped"
    assert launch.reap() >= 1
    assert not _listening(port)
    assert not leftovers[0].exists()


def test_missing_ferretdb_binary_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ODIN_FERRETDB_BIN", str(tmp_path / "nope"))
    with pytest.raises(launch.ServiceError, match="make services"):
        launch.FerretDB.start()
