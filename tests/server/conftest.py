"""A real core server on a free loopback port, over a pipelines root of small local jobs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from odin_core.api import Odin
from odin_core.service import ServiceSettings, serve_odin
from odin_core.settings import Settings
from server_support import JOBS


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "pipelines"
    for job, text in JOBS.items():
        (base / job).mkdir(parents=True)
        (base / job / "main.yml").write_text(textwrap.dedent(text))
    return base


@pytest.fixture
async def odin(tmp_path: Path, root: Path):
    o = await Odin.open(Settings.from_env({"ODIN_HOME": str(tmp_path / "home")}), root=root)
    yield o
    await o.close()


@pytest.fixture
async def make_server(odin: Odin, root: Path):
    started = []

    async def make(**settings: Any):
        ctx = serve_odin(odin, ServiceSettings(host="127.0.0.1", port=0, root_path=root, **settings))
        server = await ctx.__aenter__()
        started.append(ctx)
        return server

    yield make
    for ctx in reversed(started):
        await ctx.__aexit__(None, None, None)


@pytest.fixture
async def server(make_server):
    return await make_server()
