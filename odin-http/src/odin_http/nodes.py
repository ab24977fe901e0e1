"""The gateway's node/GPU module: midgard agents push here; ``/v1/nodes`` and ``/v1/gpus`` show the whole cluster.

Mount it on the gateway's aiohttp application with ``setup(app, NodeSettings.from_env())``. Routes:

- ``POST /v1/nodes/reports`` (node token): ``{"reports": [report, ...]}`` or one report; 202 with what was new.
- ``GET /v1/nodes``: every node (capacity, GPUs, host, internal IP, ``stale``), and idle-GPU ``warnings``.
- ``GET /v1/gpus``: every GPU of the cluster, each with its node.
- ``GET /v1/resources/{id}/gpus``: a run's or a task's GPU-utilisation timeline from the history.

The node token is not a user token: it only lets an agent report. It comes from a file (one or more tokens, one per
line, so tokens can be rotated without downtime) and is compared in constant time. Without one, reports are refused.
State is kept in this process (see ``nodes_model``); with several gateway replicas each holds the nodes that
reported to it.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from odin_core.constants import NODE_REPORTS_PATH
from odin_core.errors import AuthError, InvalidRequest, NotFound, OdinError

from .nodes_kube import NodeCapacity
from .nodes_model import MAX_REPORT_BYTES, RESOURCE_ID, NodeLimits, NodeRegistry, ReportError, dumps, loads, validate

log = logging.getLogger("odin_http.nodes")

MAX_REPORTS_PER_REQUEST = 100


@dataclass(frozen=True)
class NodeSettings:
    token_file: str = ""
    """``ODIN_NODES_TOKEN_FILE``: node tokens, one per line; empty: agents cannot report."""
    stale_after_s: float = 30.0
    """``ODIN_NODES_STALE_AFTER_S``: a node silent this long is listed as stale (with its last report)."""
    history_s: float = 3600.0
    """``ODIN_NODES_HISTORY_S``: how far back timelines reach."""
    history_points: int = 720
    """``ODIN_NODES_HISTORY_POINTS``: most samples kept per node (the memory bound)."""
    idle_after_s: float = 600.0
    """``ODIN_NODES_IDLE_AFTER_S``: warn when a task has left its GPU idle this long."""
    idle_util_percent: float = 5.0
    """``ODIN_NODES_IDLE_UTIL_PERCENT``: utilisation at or below this counts as idle."""
    max_body_bytes: int = 8 * 1024 * 1024
    """``ODIN_NODES_MAX_BODY_BYTES``: largest push request accepted."""
    kube_api_url: str = ""
    """``ODIN_NODES_KUBE_API_URL``: Kubernetes API for node capacity; default: in-cluster; "none": do not ask."""
    kube_token_file: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    """``ODIN_NODES_KUBE_TOKEN_FILE``: token for listing nodes (a ClusterRole with get/list on nodes)."""
    kube_ca_file: str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    """``ODIN_NODES_KUBE_CA_FILE``: CA bundle of the API server."""
    kube_refresh_s: float = 60.0
    """``ODIN_NODES_KUBE_REFRESH_S``: how often node capacity is listed again."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NodeSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, f in cls.__dataclass_fields__.items():
            raw, kind = env.get(f"ODIN_NODES_{name.upper()}"), type(f.default)
            if raw is not None:
                try:
                    values[name] = kind(raw)  # type: ignore[misc]
                except ValueError as e:
                    raise InvalidRequest(f"ODIN_NODES_{name.upper()}={raw!r}: expected {kind.__name__}") from e
        host = env.get("KUBERNETES_SERVICE_HOST")
        if not values.get("kube_api_url") and host:
            values["kube_api_url"] = f"https://{host}:{env.get('KUBERNETES_SERVICE_PORT', '443')}"
        return cls(**values)

    @classmethod
    def reference(cls) -> list[tuple[str, str]]:
        """(environment variable, default) of every setting, for the configuration reference."""
        return [(f"ODIN_NODES_{name.upper()}", str(f.default)) for name, f in cls.__dataclass_fields__.items()]

    def limits(self) -> NodeLimits:
        return NodeLimits(self.stale_after_s, self.history_s, self.history_points, self.idle_after_s,
                          self.idle_util_percent)  # fmt: skip


class NodeNotAllowed(AuthError):
    """A node token bound to one node was used to report another."""

    code = "forbidden"


class NodeTokens:
    """The accepted node tokens, re-read when their file changes (rotation without a restart).

    One token per line; ``TOKEN NODE`` binds a token to one node name (that agent can then report only itself),
    a token alone may report any node. Lines starting with ``#`` are comments.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self._mtime: float | None = None
        self._tokens: tuple[tuple[bytes, str], ...] = ()

    def _load(self) -> tuple[tuple[bytes, str], ...]:
        if self.path is None:
            return ()
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return ()
        if mtime != self._mtime:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            words = [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]
            self._tokens = tuple((w[0].encode(), w[1] if len(w) > 1 else "") for w in words)
            self._mtime = mtime
        return self._tokens

    def check(self, header: str | None) -> str:
        """The node the token is bound to ("" for any node); ``AuthError`` when it is missing or wrong."""
        tokens = self._load()
        if not tokens:
            raise AuthError("node reports are disabled on this gateway: set ODIN_NODES_TOKEN_FILE")
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise AuthError("missing node token: send Authorization: Bearer <node token>")
        presented, found, bound = given.strip().encode(), False, ""
        for token, node in tokens:  # no early exit: the time taken does not say which token matched
            if hmac.compare_digest(presented, token):
                found, bound = True, node
        if not found:
            raise AuthError("wrong node token")
        return bound


REGISTRY = web.AppKey("odin_nodes_registry", NodeRegistry)
TOKENS = web.AppKey("odin_nodes_tokens", NodeTokens)
CAPACITY = web.AppKey("odin_nodes_capacity", NodeCapacity)

_STATUS = {AuthError: 401, InvalidRequest: 400, NotFound: 404}


def _error(e: OdinError, status: int | None = None) -> web.Response:
    code = status or next((s for cls, s in _STATUS.items() if isinstance(e, cls)), 500)
    return web.json_response({"error": {"code": e.code, "message": e.message}}, status=code)


async def _body(request: web.Request, limit: int) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
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
    settings: NodeSettings = request.app[SETTINGS]
    try:
        bound = request.app[TOKENS].check(request.headers.get("Authorization"))
        reports = _reports(await _body(request, settings.max_body_bytes))
        other = next((r["node"] for r in reports if bound and r["node"] != bound), None)
        if other is not None:
            raise NodeNotAllowed(f"this node token belongs to node {bound}, not {other}")
    except NodeNotAllowed as e:
        return _error(e, 403)
    except OdinError as e:
        return _error(e)
    except web.HTTPRequestEntityTooLarge as e:
        return _error(InvalidRequest(f"request larger than {settings.max_body_bytes} bytes"), e.status)
    new = request.app[REGISTRY].ingest(reports, time.time())
    return web.json_response({"accepted": len(reports), "new": new}, status=202)


async def nodes(request: web.Request) -> web.Response:
    body = request.app[REGISTRY].listing(time.time())
    return web.Response(body=body, content_type="application/json")


async def gpus(request: web.Request) -> web.Response:
    reg = request.app[REGISTRY]
    now = time.time()
    body = dumps({"gpus": reg.gpus(now), "warnings": reg.warnings(now)})
    return web.Response(body=body, content_type="application/json")


async def resource_gpus(request: web.Request) -> web.Response:
    rid = request.match_info["id"]
    if not RESOURCE_ID.match(rid):
        return _error(InvalidRequest("not a run or task id (lowercase letters, digits, '-', '.')"))
    reg = request.app[REGISTRY]
    points = reg.timeline(rid)
    if not points:
        return _error(NotFound(f"no GPU use recorded for {rid} in the last {reg.limits.history_s:g} s"))
    tasks = sorted({p["taskId"] for p in points})
    warnings = [w for w in reg.warnings(time.time()) if w["taskId"] in tasks]
    kind = "task" if "--" in rid else "run"
    return web.json_response({"id": rid, "kind": kind, "tasks": tasks, "points": points, "warnings": warnings})


SETTINGS = web.AppKey("odin_nodes_settings", NodeSettings)


def setup(app: web.Application, settings: NodeSettings) -> NodeRegistry:
    """Add the node routes, the registry and (when Kubernetes is reachable) the capacity refresher to ``app``."""
    registry = NodeRegistry(settings.limits())
    app[SETTINGS] = settings
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
        log.warning("ODIN_NODES_TOKEN_FILE is not set: midgard agents cannot report to this gateway")
    return registry


async def _start_capacity(app: web.Application) -> None:
    app[CAPACITY].start()


async def _stop_capacity(app: web.Application) -> None:
    await app[CAPACITY].close()
