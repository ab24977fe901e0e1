"""What the gateway tests share besides fixtures: the test accounts, settings, and a running gateway's client.

(Test modules import these from here, never from ``conftest``: several suites have a conftest module.)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from odin_http.app import Gateway
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
