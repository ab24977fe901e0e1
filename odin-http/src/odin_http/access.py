"""Who a request speaks for: the bearer token verified (signature, expiry, issuer, audience, algorithm, type) and
checked against the user store (not revoked, same token version); the role taken from the store, not the token."""

from __future__ import annotations

from aiohttp import web

from . import constants as C
from .errors import AuthError, Forbidden
from .keys import CLAIMS, GATEWAY, SETTINGS, USER
from .tokens import bearer
from .users import User


async def current_user(request: web.Request) -> User | None:
    """The user of a request's token, None without one; AuthError for a token that is not good."""
    if USER in request:
        return request[USER]  # type: ignore[no-any-return]
    gw = request.app[GATEWAY]
    token = bearer(request.headers.get("Authorization"))
    user = None
    if token is not None:
        claims = gw.issuer.verify(token, kind=C.TOKEN_ACCESS)
        user = await gw.users.session(claims.subject, claims.version, claims.token_id)
        if user is None:
            raise AuthError("token revoked: log in again")
        request[CLAIMS] = claims
    request[USER] = user
    return user


async def require_user(request: web.Request, *, role: str | None = None) -> User:
    """The authenticated user (401 without a good token; 403 without ``role``)."""
    user = await current_user(request)
    if user is None:
        raise AuthError("this needs a bearer token: POST /v1/auth, then send `Authorization: Bearer <token>`")
    if role is not None and user.role != role and user.role != C.ROLE_ADMIN:
        raise Forbidden(f"this needs the {role} role")
    return user


async def reader(request: web.Request) -> User | None:
    """For read routes: anyone when ``server.public_reads``, else an authenticated user."""
    if request.app[SETTINGS].server.public_reads:
        return await current_user(request)
    return await require_user(request)


async def require_self_or_admin(request: web.Request, username: str) -> User:
    user = await require_user(request)
    if user.role != C.ROLE_ADMIN and user.username != username:
        raise Forbidden("a user may only read and change their own account")
    return user
