"""The gateway for tests: a real core (WebSocket, local executor) on a pipelines root, real PostgreSQL (the
``postgres`` fixture of tests/services.py), a real git repository, the gateway on a free loopback port."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from odin_http.app import Gateway, serve
from odin_http.settings import (
    AuthSettings,
    CoreSettings,
    DatabaseSettings,
    GitSettings,
    Secret,
    ServerSettings,
    Settings,
)

ADMIN = "root"
ADMIN_PASSWORD = "root-password-for-tests"
CORE_SECRET = secrets.token_hex(32)
USER_SECRET = secrets.token_hex(32)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The pipelines root: the core's --root-path, where the gateway exports the commits it runs."""
    path = tmp_path / "pipelines"
    path.mkdir()
    return path


def gateway_settings(root: Path, dsn: str, core_url: str, **overrides: Any) -> Settings:
    base = Settings(
        server=ServerSettings(host="127.0.0.1", port=0),
        core=CoreSettings(url=core_url, jwt_secret=Secret(CORE_SECRET), request_timeout_s=20.0),
        database=DatabaseSettings(dsn=Secret(dsn), pool_max=5),
        auth=AuthSettings(
            jwt_secret=Secret(USER_SECRET),
            root_username=ADMIN,
            root_password=Secret(ADMIN_PASSWORD),
            base_delay_s=0.5,
            max_delay_s=2.0,
        ),
        git=GitSettings(root=root),
    )
    return replace(base, **overrides)


@dataclass
class Running:
    gateway: Gateway
    url: str
    session: aiohttp.ClientSession

    def u(self, path: str) -> str:
        return f"{self.url}{path}"

    async def login(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> dict[str, Any]:
        async with self.session.post(self.u("/v1/auth"), json={"username": username, "password": password}) as r:
            assert r.status == 200, await r.text()
            return await r.json()  # type: ignore[no-any-return]

    async def token(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> dict[str, str]:
        return {"Authorization": f"Bearer {(await self.login(username, password))['accessToken']}"}

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.u(path), **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body

    async def add_user(self, name: str, password: str = "user-password-1", role: str = "user") -> dict[str, str]:
        admin = await self.token()
        status, body = await self.call(
            "POST", "/v1/users", json={"user": {"username": name, "password": password, "role": role}}, headers=admin
        )
        assert status == 200, body
        return await self.token(name, password)


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
