"""The agent's own HTTP server: the original per-node ``GET /v1/gpus``, the full report, Prometheus, health."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import constants as C
from . import metrics
from .agent import Agent

AGENT_KEY = web.AppKey("agent", Agent)
CONTENT_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _latest(request: web.Request) -> dict[str, Any] | None:
    return request.app[AGENT_KEY].latest


async def gpus(request: web.Request) -> web.Response:
    rep = _latest(request)
    if rep is None:
        return _error(503, "not_ready", "no reading yet; try again in a few seconds")
    body = {"node": rep["node"], "host": rep["host"], "internalIp": rep["internalIp"], "time": rep["time"],
            "nvml": rep["nvml"], "gpus": rep["gpus"]}  # fmt: skip
    return web.json_response(body, dumps=_dumps)


async def full_report(request: web.Request) -> web.Response:
    rep = _latest(request)
    if rep is None:
        return _error(503, "not_ready", "no reading yet; try again in a few seconds")
    return web.json_response(rep, dumps=_dumps)


async def prometheus(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    text = metrics.render(agent.latest, agent.own_metrics())
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_PROMETHEUS})


async def health(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    rep = agent.latest
    body = {"ok": agent.healthy(), "seq": agent.seq, "gpus": len(rep["gpus"]) if rep else None,
            "nvml": rep["nvml"] if rep else None}  # fmt: skip
    return web.json_response(body, status=200 if body["ok"] else 503)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def make_app(agent: Agent) -> web.Application:
    app = web.Application(client_max_size=1024)  # the agent takes no request bodies
    app[AGENT_KEY] = agent
    app.router.add_get(C.PATH_GPUS, gpus)
    app.router.add_get(C.PATH_REPORT, full_report)
    app.router.add_get(C.PATH_METRICS, prometheus)
    app.router.add_get(C.PATH_HEALTH, health)
    return app


async def serve(agent: Agent, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the server; returns the runner (to clean up) and the bound port (for port 0)."""
    runner = web.AppRunner(make_app(agent), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return runner, sockets[0].getsockname()[1] if sockets else port
