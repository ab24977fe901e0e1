"""Typed keys of what the application and each request carry."""

from __future__ import annotations

from typing import Any

from aiohttp import web

GATEWAY: web.AppKey[Any] = web.AppKey("odin.gateway")  # app.Gateway
SETTINGS: web.AppKey[Any] = web.AppKey("odin.settings")  # settings.Settings
USER: web.RequestKey[Any] = web.RequestKey("odin.user")  # users.User | None, once the token is checked
CLAIMS: web.RequestKey[Any] = web.RequestKey("odin.claims")  # tokens.Claims of the request's token
