"""``make_engine``: engines on one SQLite file and the real local executor, closed at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from engine_support import data_dir, local_executor
from odin_core.engine import Engine
from odin_core.executors.base import Executor
from odin_core.settings import EngineSettings
from odin_core.store.sqlite import SqliteStore

MakeEngine = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[MakeEngine]:
    """``await make_engine(executor=None, store_class=SqliteStore, **EngineSettings fields)``."""
    made: list[Engine] = []

    async def make(*, executor: Executor | None = None, store_class: type = SqliteStore, **settings: Any) -> Engine:
        store = store_class(tmp_path / "odin.db")
        await store.open()
        engine = Engine(
            store,
            executor or local_executor(tmp_path),
            root_path=tmp_path,
            data_path=data_dir(tmp_path),
            settings=EngineSettings(**settings),
        )
        made.append(engine)
        return engine

    yield make
    for engine in reversed(made):
        await engine.close()
        await engine.executor.close()
        await engine.store.close()
