"""The gateway's one connection to the core: ``odin_client.remote.RemoteOdin`` over the core's WebSocket protocol.

Every request of every HTTP client is multiplexed on it. When the core drops, the next request reconnects, and live
streams (``watch``) resume after the last sequence number they delivered, so a follower loses nothing and sees
nothing twice. With ``core.jwt_secret`` the gateway presents a short-lived HS256 JWT, signed anew at each connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from odin_client.remote import Disconnected, RemoteOdin

from .errors import Unavailable
from .settings import CoreSettings
from .tokens import core_token

T = TypeVar("T")


class CoreClient(RemoteOdin):
    def __init__(self, settings: CoreSettings) -> None:
        token = settings.token.reveal() or None
        super().__init__(
            settings.url,
            token=token,
            open_timeout_s=settings.open_timeout_s,
            reconnect_timeout_s=settings.reconnect_timeout_s,
        )
        self.core_settings = settings

    def __repr__(self) -> str:
        return f"CoreClient({self.url!r})"

    async def _connection(self) -> Any:
        s = self.core_settings
        if s.jwt_secret and self.connection is None:  # a fresh token for every new connection
            self._token = core_token(s.jwt_secret.reveal(), s.token_ttl_s)
        return await super()._connection()

    async def call(self, awaitable: Awaitable[T]) -> T:
        """One request, bounded by ``request_timeout_s``; an unreachable core is a 503."""
        try:
            async with asyncio.timeout(self.core_settings.request_timeout_s):
                return await awaitable
        except TimeoutError:
            limit = self.core_settings.request_timeout_s
            raise Unavailable(f"the core at {self.url} did not answer in {limit:g}s") from None
        except Disconnected as e:
            raise Unavailable(f"the core is unavailable: {e}") from None

    async def ready(self) -> bool:
        try:
            await self.call(self.ping("ready"))
        except Exception:
            return False
        return True
