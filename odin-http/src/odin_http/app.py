"""The aiohttp application: the gateway's parts built once, the middlewares, and the route modules mounted."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from . import constants as C
from . import modules as route_modules
from .db import open_pool
from .errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    OdinError,
    Throttled,
    TooLarge,
    Unavailable,
    error_body,
    status_of,
)
from .gitstore.store import Pipelines
from .keys import GATEWAY, SETTINGS
from .metrics import Metrics
from .openapi import document
from .passwords import hash_password
from .settings import Settings
from .throttle import LoginThrottle
from .tokens import TokenIssuer
from .upstream import CoreClient
from .users import UserStore, check_username

log = logging.getLogger("odin.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Gateway:
    """What route modules share; built once at start-up."""

    settings: Settings
    users: UserStore
    throttle: LoginThrottle
    issuer: TokenIssuer
    pipelines: Pipelines
    core: CoreClient
    metrics: Metrics
    openapi: dict[str, Any]


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except OdinError as e:
        return _error_response(e)
    except web.HTTPRequestEntityTooLarge:
        return _error_response(TooLarge("the request body is too large"))
    except web.HTTPNotFound:
        return _error_response(NotFound(f"no route {request.method} {request.path}; see {C.PREFIX}/openapi.json"))
    except web.HTTPMethodNotAllowed as e:
        return _error_response(
            MethodNotAllowed(f"{request.method} is not allowed here; allowed: {', '.join(sorted(e.allowed_methods))}")
        )
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return web.json_response({"error": {"code": "invalid_request", "message": e.reason}}, status=e.status)
    except (UnicodeDecodeError, ValueError) as e:
        return _error_response(InvalidRequest(f"malformed request: {e}"))
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.TooManyConnectionsError) as e:
        log.warning("%s %s: the users database is unavailable: %s", request.method, _route_name(request), e)
        return _error_response(Unavailable("the users database is unavailable; try again shortly"))
    except Exception:
        log.exception("%s %s failed", request.method, _route_name(request))
        return _error_response(OdinError("internal error; the gateway's log has the details"))


def _error_response(error: OdinError) -> web.Response:
    headers = {C.HEADER_RETRY_AFTER: str(max(1, round(error.retry_after_s)))} if isinstance(error, Throttled) else None
    return web.json_response(error_body(error), status=status_of(error), headers=headers)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics: Metrics = request.app[GATEWAY].metrics
    start = time.perf_counter()
    response = await handler(request)
    route = _route_name(request)
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    metrics.latency.labels(request.method, route).observe(time.perf_counter() - start)
    return response


async def bootstrap_admin(users: UserStore, settings: Settings) -> bool:
    """Create the root admin at first start (no user yet), from the configured secret; never a default password."""
    auth = settings.auth
    if not auth.root_password:
        if await users.count() == 0:
            log.warning(
                "no user exists and no root password is set (ODIN_HTTP_AUTH_ROOT_PASSWORD_FILE): nobody can log in"
            )
        return False
    if len(auth.root_password.reveal()) < auth.min_password_length:
        raise ValueError(f"the root password must have at least {auth.min_password_length} characters")
    name = check_username(auth.root_username)
    created = await users.create_first_admin(name, await hash_password(auth.root_password.reveal()))
    if created:
        log.info("created the root admin %r", name)
    return created


def make_app(gateway: Gateway) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, errors_middleware],
        client_max_size=gateway.settings.server.max_body_bytes,
    )
    app[GATEWAY] = gateway
    app[SETTINGS] = gateway.settings
    for module in route_modules.load():
        module.setup_routes(app, gateway)
    return app


@asynccontextmanager
async def open_gateway(settings: Settings, *, pool: asyncpg.Pool | None = None) -> AsyncIterator[Gateway]:
    """Every part of the gateway, opened in order and closed in reverse."""
    issuer = TokenIssuer(settings.auth)
    own_pool = pool is None
    pool = pool or await open_pool(settings.database)
    core = CoreClient(settings.core)
    try:
        users = UserStore(pool)
        await bootstrap_admin(users, settings)
        gateway = Gateway(
            settings=settings,
            users=users,
            throttle=LoginThrottle(pool, settings.auth),
            issuer=issuer,
            pipelines=Pipelines(settings),
            core=core,
            metrics=Metrics(),
            openapi=document(route_modules.load()),
        )
        yield gateway
    finally:
        await core.close()
        if own_pool:
            await pool.close()


@asynccontextmanager
async def serve(settings: Settings, *, pool: asyncpg.Pool | None = None) -> AsyncIterator[tuple[Gateway, str]]:
    """The gateway listening on ``server.host:server.port``; yields it and its base URL."""
    async with open_gateway(settings, pool=pool) as gateway:
        runner = web.AppRunner(make_app(gateway), shutdown_timeout=settings.server.shutdown_grace_s, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr,attr-defined]
        host, port = sockets[0].getsockname()[:2]
        try:
            yield gateway, f"http://{host}:{port}"
        finally:
            await runner.cleanup()
