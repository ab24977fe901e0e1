"""Fixtures shared by the suites that talk to a real core server (tests/server, tests/clients), ``until_idle``
and ``small_disk``.

Each suite defines ``root``: the pipelines root with the jobs it needs. These fixtures put the
in-process engine on it and serve it on a free loopback port.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from disks import SmallDisk, mounted_small_disk
from odin_core.api import Odin
from odin_core.batching import BatchThread
from odin_core.service import Service, ServiceSettings, serve_odin
from odin_core.settings import Settings

# Real PostgreSQL and FerretDB servers: the postgres / mongo fixtures (tests/services.py).
pytest_plugins = ["services"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 16 MiB tmpfs mounted at ``tmp_path/disk``."""
    with mounted_small_disk(tmp_path / "disk") as disk:
        yield disk


@pytest.fixture
def until_idle() -> Callable[[BatchThread[Any]], Awaitable[None]]:
    """``await until_idle(batches)``: until a batch thread has delivered its last batch and seen its queue empty
    (a call made before that joins the thread's next batch; one made after may run on the loop)."""

    async def wait(batches: BatchThread[Any], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while batches.busy:
            assert time.monotonic() < deadline, "the batch thread stayed busy"
            await asyncio.sleep(0.001)

    return wait


@pytest.fixture
def write_jobs(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """``write_jobs({"team/job": yaml_text, ...})``: a pipelines root under ``tmp_path`` holding those jobs."""

    def write(jobs: dict[str, str]) -> Path:
        base = tmp_path / "pipelines"
        for job, text in jobs.items():
            (base / job).mkdir(parents=True)
            (base / job / "main.yml").write_text(textwrap.dedent(text))
        return base

    return write


@pytest.fixture
async def odin(tmp_path: Path, root: Path) -> AsyncIterator[Odin]:
    """The engine in this process, its store and run data in ``tmp_path/home``."""
    o = await Odin.open(Settings.from_env({"ODIN_HOME": str(tmp_path / "home")}), root=root)
    yield o
    await o.close()


@pytest.fixture
async def make_server(odin: Odin, root: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """Start a server (settings may be overridden); every one started is stopped at the end."""
    started: list[Any] = []

    async def make(**settings: Any) -> Service:
        ctx = serve_odin(odin, ServiceSettings(**{"host": "127.0.0.1", "port": 0, "root_path": root, **settings}))
        server = await ctx.__aenter__()
        started.append(ctx)
        return server

    yield make
    for ctx in reversed(started):
        await ctx.__aexit__(None, None, None)


@pytest.fixture
async def server(make_server: Callable[..., Awaitable[Service]]) -> Service:
    return await make_server()
