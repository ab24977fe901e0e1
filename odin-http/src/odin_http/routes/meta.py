"""ping, app, health and readiness probes, Prometheus metrics, the OpenAPI document and the API page."""

from __future__ import annotations

from aiohttp import web

from .. import __version__
from .. import constants as C
from ..apidocs import render_page
from ..keys import GATEWAY
from ..openapi import json_body, op
from ..wire import reply

P = C.PREFIX


async def ping(request: web.Request) -> web.Response:
    return reply("pong")


async def app_info(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    core_up = await gw.core.ready()
    gw.metrics.core_up.set(1 if core_up else 0)
    head = await gw.pipelines.head()
    return reply(
        {
            "rootPath": str(gw.pipelines.root),
            "version": head or "",
            "dirty": False,
            "coreStatus": "up" if core_up else "down",
            "coreUrl": gw.core.url,
            "gateway": f"odin-http {__version__}",
        }
    )


async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers (it does not ask the core or the database)."""
    return reply({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Readiness: the database and the core both answer."""
    gw = request.app[GATEWAY]
    checks = {"database": await _database_up(gw), "core": await gw.core.ready()}
    gw.metrics.core_up.set(1 if checks["core"] else 0)
    ok = all(checks.values())
    return reply({"status": "ready" if ok else "unready", "checks": checks}, status=200 if ok else 503)


async def _database_up(gw: object) -> bool:
    try:
        await gw.users.pool.fetchval("SELECT 1")  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


async def metrics(request: web.Request) -> web.Response:
    body = request.app[GATEWAY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def openapi(request: web.Request) -> web.Response:
    return reply(request.app[GATEWAY].openapi)


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=render_page(request.app[GATEWAY].openapi), content_type="text/html")


def setup_routes(app: web.Application, gateway: object) -> None:
    app.router.add_get(f"{P}/ping", ping)
    app.router.add_get(f"{P}/app", app_info)
    app.router.add_get(f"{P}/health", health)
    app.router.add_get(f"{P}/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get(f"{P}/openapi.json", openapi)
    app.router.add_get(f"{P}/docs", docs)


_STATUS = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
_TEXT = {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
_HTML = {"description": "the API page", "content": {"text/html": {"schema": {"type": "string"}}}}
OPENAPI = {
    "paths": {
        f"{P}/ping": {"get": op("Is the gateway up?", tag="meta", ok=json_body({"const": "pong"}), errors=())},
        f"{P}/app": {
            "get": op(
                "The pipelines root, its git version and the core's status",
                tag="meta",
                ok=json_body({"$ref": "#/components/schemas/AppInfo"}),
                errors=(),
            )
        },
        f"{P}/health": {"get": op("Liveness probe", tag="meta", ok=json_body(_STATUS), errors=())},
        f"{P}/ready": {
            "get": op("Readiness probe: the database and the core answer", tag="meta", ok=json_body(_STATUS), errors=())
        },
        "/metrics": {"get": op("Prometheus metrics", tag="meta", ok=_TEXT, errors=())},
        f"{P}/openapi.json": {"get": op("This document", tag="meta", ok=json_body({"type": "object"}), errors=())},
        f"{P}/docs": {"get": op("The API, readable", tag="meta", ok=_HTML, errors=())},
    },
    "schemas": {
        "AppInfo": {
            "type": "object",
            "required": ["rootPath", "version", "dirty", "coreStatus"],
            "properties": {
                "rootPath": {"type": "string"},
                "version": {"type": "string"},
                "dirty": {"type": "boolean"},
                "coreStatus": {"enum": ["up", "down"]},
                "coreUrl": {"type": "string"},
                "gateway": {"type": "string"},
            },
        }
    },
}
