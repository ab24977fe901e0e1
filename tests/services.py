"""Real database servers for tests: PostgreSQL and FerretDB (MongoDB protocol), see tools/services.

Session fixtures start one server of a kind when a test first asks for it and stop it at the end:
``postgres_server`` / ``mongo_server``. Function fixtures hand each test an empty database of its
own: ``postgres`` (a DSN) and ``mongo`` (a URL whose path names the database).

``ODIN_TEST_POSTGRES_DSN`` / ``ODIN_TEST_MONGO_URL`` point the tests at servers of your own instead
(the DSN must be allowed to create databases). A server that cannot be had fails the test in CI
(``CI`` set) and skips it elsewhere, saying what to run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

LAUNCHER = Path(__file__).resolve().parents[1] / "tools" / "services" / "launch.py"


def _load_launcher():
    """tools/services is not a package: load launch.py under a name that cannot clash."""
    spec = importlib.util.spec_from_file_location("odin_services_launch", LAUNCHER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


launch = _load_launcher()


def unavailable(message: str) -> None:
    """No server: a failure in CI, a skip (with what to run) on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@dataclass(frozen=True)
class ExternalPostgres:
    """A PostgreSQL server of the developer's (ODIN_TEST_POSTGRES_DSN); databases made with psql."""

    dsn: str

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        subprocess.run(["psql", "-X", "-q", "-d", self.dsn, "-c", f'CREATE DATABASE "{name}"'], check=True)
        return with_database(self.dsn, name)

    def drop_database(self, name: str) -> None:
        sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        subprocess.run(["psql", "-X", "-q", "-d", self.dsn, "-c", sql], check=False)

    def stop(self) -> None:
        pass


def _session_server(external_env: str, external: type, start) -> Iterator[object]:
    """A server of the developer's (named by ``external_env``), or one started now and stopped at the end."""
    given = os.environ.get(external_env)
    if given:
        yield external(given)
        return
    launch.reap()
    try:
        server = start()
    except launch.ServiceError as e:
        unavailable(str(e))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """One PostgreSQL server for the session (``.create_database()`` gives a fresh database's DSN)."""
    yield from _session_server("ODIN_TEST_POSTGRES_DSN", ExternalPostgres, launch.Postgres.start)


@pytest.fixture
def postgres(postgres_server) -> Iterator[str]:
    """The DSN of an empty database of this test's own."""
    dsn = postgres_server.create_database()
    yield dsn
    if isinstance(postgres_server, ExternalPostgres):
        postgres_server.drop_database(urlsplit(dsn).path.lstrip("/"))


@dataclass(frozen=True)
class ExternalMongo:
    url: str

    def url_for(self, database: str) -> str:
        return with_database(self.url, database)


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[object]:
    """One FerretDB server for the session (``.url_for(name)`` names a database on it)."""
    yield from _session_server("ODIN_TEST_MONGO_URL", ExternalMongo, launch.FerretDB.start)


@pytest.fixture
def mongo(mongo_server) -> str:
    """A MongoDB URL naming a database no other test uses (created on first write)."""
    return mongo_server.url_for(f"t_{uuid.uuid4().hex[:16]}")
