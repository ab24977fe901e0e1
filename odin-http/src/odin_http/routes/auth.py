"""Logging in and out: ``POST /v1/auth`` (form or JSON) → an access token and a refresh token; refresh; logout."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import constants as C
from ..access import require_user
from ..errors import AuthError
from ..keys import CLAIMS, GATEWAY
from ..openapi import json_body, op, ref
from ..passwords import verify_password
from ..users import User
from ..wire import body_object, reply, string_field

P = C.PREFIX


def _tokens(gw: Any, user: User) -> dict[str, Any]:
    access = gw.issuer.issue(user.username, user.role, user.token_version, kind=C.TOKEN_ACCESS)
    refresh = gw.issuer.issue(user.username, user.role, user.token_version, kind=C.TOKEN_REFRESH)
    s = gw.settings.auth
    return {
        "message": access.token,  # the first Odin's clients read the token from here
        "accessToken": access.token,
        "refreshToken": refresh.token,
        "tokenType": "Bearer",
        "expiresIn": s.access_ttl_s,
        "refreshExpiresIn": s.refresh_ttl_s,
        "user": user.to_wire(),
    }


async def login(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    body = await body_object(request, form=True)
    username = string_field(body, "username", max_len=64)
    password = string_field(body, "password", max_len=1024)
    address = request.remote or "unknown"
    await gw.throttle.check(username, address)
    found = await gw.users.password_hash(username)
    ok = await verify_password(found[1] if found else None, password)
    if not ok or found is None:
        await gw.throttle.failed(username, address)
        gw.metrics.logins.labels("failed").inc()
        raise AuthError("wrong user name or password")
    await gw.throttle.succeeded(username)
    gw.metrics.logins.labels("ok").inc()
    return reply(_tokens(gw, found[0]))


async def refresh(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    body = await body_object(request, form=True)
    claims = gw.issuer.verify(string_field(body, "refresh_token", max_len=4096), kind=C.TOKEN_REFRESH)
    user = await gw.users.session(claims.subject, claims.version, claims.token_id)
    if user is None:
        raise AuthError("refresh token revoked: log in again")
    if not await gw.users.revoke(claims.token_id, claims.expires):
        raise AuthError("refresh token already used: log in again")
    return reply(_tokens(gw, user))


async def logout(request: web.Request) -> web.Response:
    """Revoke this access token and (when given) its refresh token; ``everywhere`` revokes every token of the user."""
    gw = request.app[GATEWAY]
    user = await require_user(request)
    body = await body_object(request)
    claims = request[CLAIMS]
    await gw.users.revoke(claims.token_id, claims.expires)
    given = body.get("refresh_token")
    if isinstance(given, str) and given:
        try:
            r = gw.issuer.verify(given, kind=C.TOKEN_REFRESH)
        except AuthError:
            r = None
        if r is not None and r.subject == user.username:
            await gw.users.revoke(r.token_id, r.expires)
    if body.get("everywhere") is True:
        await gw.users.revoke_all(user.username)
    return reply({"message": "logged out"})


def setup_routes(app: web.Application, gateway: object) -> None:
    app.router.add_post(f"{P}/auth", login)
    app.router.add_post(f"{P}/auth/refresh", refresh)
    app.router.add_post(f"{P}/auth/logout", logout)


_CREDENTIALS = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
}
_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": _CREDENTIALS},
        "application/x-www-form-urlencoded": {"schema": _CREDENTIALS},
    },
}
_REFRESH = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["refreshToken"],
                "properties": {"refreshToken": {"type": "string"}},
            }
        }
    },
}
_LOGOUT = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"refreshToken": {"type": "string"}, "everywhere": {"type": "boolean"}},
            }
        }
    }
}
OPENAPI = {
    "paths": {
        f"{P}/auth": {
            "post": op(
                "Log in: an access token (`message`, `accessToken`) and a refresh token",
                tag="auth",
                ok=json_body(ref("Tokens")),
                body=_BODY,
                errors=("400", "401", "429"),
            )
        },
        f"{P}/auth/refresh": {
            "post": op(
                "A new token pair for a refresh token (each refresh token works once)",
                tag="auth",
                ok=json_body(ref("Tokens")),
                body=_REFRESH,
                errors=("400", "401"),
            )
        },
        f"{P}/auth/logout": {
            "post": op(
                "Revoke this token (and its refresh token; or every token of the user)",
                tag="auth",
                ok=json_body({"type": "object", "properties": {"message": {"type": "string"}}}),
                body=_LOGOUT,
                auth="user",
            )
        },
    },
    "schemas": {
        "Tokens": {
            "type": "object",
            "required": ["message", "accessToken", "refreshToken", "tokenType", "expiresIn", "user"],
            "properties": {
                "message": {"type": "string"},
                "accessToken": {"type": "string"},
                "refreshToken": {"type": "string"},
                "tokenType": {"const": "Bearer"},
                "expiresIn": {"type": "integer"},
                "refreshExpiresIn": {"type": "integer"},
                "user": ref("User"),
            },
        }
    },
}
