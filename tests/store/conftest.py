"""The backends fixture: every contract test runs on SQLite, PostgreSQL and MongoDB (FerretDB).

``store_url`` names a fresh, empty store of the test's backend; ``open_stores`` opens as many
stores on it as a test needs (two engines = two stores, each with its own connections) and closes
them at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from odin_core.store import JobStore, StoreSettings, open_store

BACKENDS = ["sqlite", "postgres", "mongo"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'odin.db'}"
    return str(request.getfixturevalue(backend))  # the postgres / mongo fixtures of tests/services.py


# Tests wait out outages on purpose in their own tests; elsewhere a dead server should fail fast.
FAST = StoreSettings(connect_timeout_s=5.0, write_retry_for_s=5.0, read_retry_for_s=5.0, pool_size=4)


@pytest.fixture
async def open_stores(store_url: str) -> AsyncIterator[Callable[..., Awaitable[JobStore]]]:
    opened: list[JobStore] = []

    async def make(settings: StoreSettings = FAST) -> JobStore:
        store = await open_store(store_url, settings)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_stores: Callable[..., Awaitable[JobStore]]) -> JobStore:
    return await open_stores()
