"""The gateway for tests: a real core (WebSocket, local executor) on a pipelines root, real PostgreSQL (the
``postgres`` fixture of tests/services.py), a real git repository, the gateway on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from http_support import CORE_SECRET, Running, gateway_settings
from odin_http.app import serve


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The pipelines root: the core's --root-path, where the gateway exports the commits it runs."""
    path = tmp_path / "pipelines"
    path.mkdir()
    return path


@pytest.fixture
async def core_url(make_server: Callable[..., Awaitable[Any]]) -> str:
    server = await make_server(jwt_secret=CORE_SECRET)
    return str(server.url)


@pytest.fixture
def gateway_dsn(request: pytest.FixtureRequest) -> str:
    """An empty PostgreSQL database: the ``postgres`` fixture of tests/services.py (tools/services)."""
    try:
        return str(request.getfixturevalue("postgres"))
    except pytest.FixtureLookupError:
        message = "no `postgres` fixture: tests/services.py (tools/services, from main) is needed"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
async def make_gateway(root: Path, gateway_dsn: str, core_url: str) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Start a gateway (settings overridable by group); all are stopped at the end."""
    contexts: list[Any] = []
    session = aiohttp.ClientSession()

    async def make(**overrides: Any) -> Running:
        ctx = serve(gateway_settings(root, gateway_dsn, core_url, **overrides))
        gateway, url = await ctx.__aenter__()
        contexts.append(ctx)
        return Running(gateway, url, session)

    yield make
    for ctx in reversed(contexts):
        await ctx.__aexit__(None, None, None)
    await session.close()


@pytest.fixture
async def gw(make_gateway: Callable[..., Awaitable[Running]]) -> Running:
    return await make_gateway()
