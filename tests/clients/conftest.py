"""A real core server (``odin_core.service``) on a free loopback port, over a pipelines root of small local jobs."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from odin_core.api import Odin
from odin_core.service import Service, ServiceSettings, serve_odin
from odin_core.settings import Settings

PY = sys.executable


def task(name: str, code: str, *, depends: str | None = None) -> str:
    after = f", depends: {depends}" if depends else ""
    return f'  - {{name: {name}, image: busybox, command: {PY}, args: ["-c", "{code}"]{after}}}\n'


JOBS = {
    "hello": "name: hello\ntasks:\n" + task("greet", "print('hello'); print('from odin')"),
    "pair": "name: pair\ntasks:\n"
    + task("first", "print('one'); print('two')")
    + task("second", "print('second here')", depends="first"),
    # a run whose events come over ~1.5 s: room to drop the connection mid-stream
    "chain": "name: chain\ntasks:\n"
    + "".join(
        task(f"t{i}", f"import time; time.sleep(0.15); print({i})", depends=f"t{i - 1}" if i else None)
        for i in range(6)
    ),
    "sad": "name: sad\ntasks:\n"
    + task("boom", "import sys; print('about to fail'); sys.exit(4)")
    + task("never", "pass", depends="boom"),
    "slow": "name: slow\ntasks:\n" + task("wait", "import time; time.sleep(60)"),
    "team/bad": "name: bad\ntasks:\n  - {name: a_b, image: x}\n",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "pipelines"
    for job, text in JOBS.items():
        (base / job).mkdir(parents=True)
        (base / job / "main.yml").write_text(textwrap.dedent(text))
    return base


@pytest.fixture
async def odin(tmp_path: Path, root: Path) -> AsyncIterator[Odin]:
    o = await Odin.open(Settings.from_env({"ODIN_HOME": str(tmp_path / "home")}), root=root)
    yield o
    await o.close()


@pytest.fixture
async def make_server(odin: Odin, root: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
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
