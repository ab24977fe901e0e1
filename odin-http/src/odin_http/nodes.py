"""The gateway's node/GPU module: midgard agents push here; ``/v1/nodes`` and ``/v1/gpus`` show the whole cluster.

A route module of the gateway (listed in ``odin_http.modules``): ``setup_routes``, ``OPENAPI``, and its settings
group ``[nodes]`` (``ODIN_HTTP_NODES_*``). ``setup(app, NodesSettings())`` mounts it on any aiohttp application
(the tests and benchmarks do, without the rest of the gateway). Routes:

- ``POST /v1/nodes/reports`` (node token): ``{"reports": [report, ...]}`` or one report; 202 with what was new.
- ``GET /v1/nodes``: every node (capacity, GPUs, host, internal IP, ``stale``), and idle-GPU ``warnings``.
- ``GET /v1/gpus``: every GPU of the cluster, each with its node.
- ``GET /v1/resources/{id}/gpus``: a run's or a task's GPU-utilisation timeline from the history.

The reads follow the gateway's ``server.public_reads`` like its other read routes. State is kept in this process
(see ``nodes_model``); with several gateway replicas each holds the nodes that reported to it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from odin_core.constants import NODE_REPORTS_PATH

from .errors import InvalidRequest, NotFound, OdinError, TooLarge, error_body, status_of
from .nodes_kube import NodeCapacity
from .nodes_model import MAX_REPORT_BYTES, RESOURCE_ID, NodeLimits, NodeRegistry, ReportError, dumps, loads, validate
from .nodes_openapi import openapi
from .nodes_tokens import NodeNotAllowed, NodeTokens
from .settings import build_group, setting

log = logging.getLogger("odin.http.nodes")

SECTION = "nodes"
MAX_REPORTS_PER_REQUEST = 100
SA = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class NodesSettings:
    token_file: str = setting(
        "", "Node tokens, one per line (`TOKEN NODE` binds one to a node); empty: agents cannot report."
    )
    stale_after_s: float = setting(30.0, "A node silent this long is listed as stale (with its last report).")
    history_s: float = setting(3600.0, "How far back run and task GPU timelines reach.")
    history_points: int = setting(720, "Most samples kept per node (only samples in which a task holds a GPU).")
    idle_after_s: float = setting(600.0, "Warn when a task has held a GPU this long without using it.")
    idle_util_percent: float = setting(5.0, "GPU utilisation at or below this counts as idle.")
    max_body_bytes: int = setting(8 * 1024 * 1024, "Largest node-report request accepted (413 above it).")
    kube_api_url: str = setting(
        "https://kubernetes.default.svc", "Kubernetes API for node capacity; `none`: do not ask."
    )
    kube_token_file: str = setting(f"{SA}/token", "Token for listing nodes (a ClusterRole with get/list on nodes).")
    kube_ca_file: str = setting(f"{SA}/ca.crt", "CA bundle of the Kubernetes API server.")
    kube_refresh_s: float = setting(60.0, "How often node capacity is listed again.")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NodesSettings:
        """This group alone (``ODIN_HTTP_NODES_*``), for an app that mounts only this module."""
        return build_group(cls, SECTION, os.environ if env is None else env, {})  # type: ignore[no-any-return]

    def limits(self) -> NodeLimits:
        return NodeLimits(self.stale_after_s, self.history_s, self.history_points, self.idle_after_s,
                          self.idle_util_percent)  # fmt: skip


SETTINGS = NodesSettings
OPENAPI = openapi(NODE_REPORTS_PATH)
REGISTRY = web.AppKey("odin_nodes_registry", NodeRegistry)
TOKENS = web.AppKey("odin_nodes_tokens", NodeTokens)
CAPACITY = web.AppKey("odin_nodes_capacity", NodeCapacity)
NODE_SETTINGS = web.AppKey("odin_nodes_settings", NodesSettings)


def _error(e: OdinError) -> web.Response:
    return web.json_response(error_body(e), status=status_of(e))


async def _may_read(request: web.Request) -> None:
    """Inside the gateway, reads need what its other read routes need (a token when public reads are off)."""
    from .keys import GATEWAY

    if GATEWAY in request.app:
        from .access import reader

        await reader(request)


async def _body(request: web.Request, limit: int) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"request larger than {limit} bytes")
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"request larger than {limit} bytes")
    try:
        return loads(data)
    except ValueError as e:
        raise InvalidRequest(f"the body is not JSON: {e}") from e


def _reports(body: Any) -> list[dict[str, Any]]:
    reports = body.get("reports") if isinstance(body, dict) and "reports" in body else [body]
    if not isinstance(reports, list) or not 0 < len(reports) <= MAX_REPORTS_PER_REQUEST:
        raise InvalidRequest(f"reports must be a list of 1..{MAX_REPORTS_PER_REQUEST} node reports")
    out = []
    for i, rep in enumerate(reports):
        try:
            out.append(validate(rep))
        except ReportError as e:
            raise InvalidRequest(f"report {i}: {e}") from e
        if len(dumps(rep)) > MAX_REPORT_BYTES:
            raise InvalidRequest(f"report {i}: larger than {MAX_REPORT_BYTES} bytes")
    return out


async def push(request: web.Request) -> web.Response:
    settings = request.app[NODE_SETTINGS]
    try:
        bound = request.app[TOKENS].check(request.headers.get("Authorization"))
        reports = _reports(await _body(request, settings.max_body_bytes))
        other = next((r["node"] for r in reports if bound and r["node"] != bound), None)
        if other is not None:
            raise NodeNotAllowed(f"this node token belongs to node {bound}, not {other}")
    except OdinError as e:
        return _error(e)
    new = request.app[REGISTRY].ingest(reports, time.time())
    return web.json_response({"accepted": len(reports), "new": new}, status=202)


async def nodes(request: web.Request) -> web.Response:
    try:
        await _may_read(request)
    except OdinError as e:
        return _error(e)
    return web.Response(body=request.app[REGISTRY].listing(time.time()), content_type="application/json")


async def gpus(request: web.Request) -> web.Response:
    try:
        await _may_read(request)
    except OdinError as e:
        return _error(e)
    reg, now = request.app[REGISTRY], time.time()
    return web.Response(body=dumps({"gpus": reg.gpus(now), "warnings": reg.warnings(now)}),
                        content_type="application/json")  # fmt: skip


async def resource_gpus(request: web.Request) -> web.Response:
    rid = request.match_info["id"]
    reg = request.app[REGISTRY]
    try:
        await _may_read(request)
        if not RESOURCE_ID.match(rid):
            raise InvalidRequest("not a run or task id (lowercase letters, digits, '-', '.')")
        points = reg.timeline(rid)
        if not points:
            raise NotFound(f"no GPU use recorded for {rid} in the last {reg.limits.history_s:g} s")
    except OdinError as e:
        return _error(e)
    tasks = sorted({p["taskId"] for p in points})
    warnings = [w for w in reg.warnings(time.time()) if w["taskId"] in tasks]
    kind = "task" if "--" in rid else "run"
    return web.json_response({"id": rid, "kind": kind, "tasks": tasks, "points": points, "warnings": warnings})


def setup(app: web.Application, settings: NodesSettings) -> NodeRegistry:
    """Add the node routes, the registry and (when Kubernetes is reachable) the capacity refresher to ``app``."""
    registry = NodeRegistry(settings.limits())
    app[NODE_SETTINGS] = settings
    app[REGISTRY] = registry
    app[TOKENS] = NodeTokens(settings.token_file)
    app[CAPACITY] = NodeCapacity(registry, url=settings.kube_api_url, token_file=settings.kube_token_file,
                                 ca_file=settings.kube_ca_file, refresh_s=settings.kube_refresh_s)  # fmt: skip
    app.router.add_post(NODE_REPORTS_PATH, push)
    app.router.add_get("/v1/nodes", nodes)
    app.router.add_get("/v1/gpus", gpus)
    app.router.add_get("/v1/resources/{id}/gpus", resource_gpus)
    app.on_startup.append(_start_capacity)
    app.on_cleanup.append(_stop_capacity)
    if not settings.token_file:
        log.warning("ODIN_HTTP_NODES_TOKEN_FILE is not set: midgard agents cannot report to this gateway")
    return registry


def setup_routes(app: web.Application, gateway: Any) -> None:
    """The gateway's module hook (``odin_http.modules``)."""
    modules = getattr(gateway.settings, "modules", {})  # settings built by hand may lack the modules' groups
    setup(app, modules[SECTION] if SECTION in modules else NodesSettings())


async def _start_capacity(app: web.Application) -> None:
    app[CAPACITY].start()


async def _stop_capacity(app: web.Application) -> None:
    await app[CAPACITY].close()
