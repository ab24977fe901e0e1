"""A run's or task's events, record and logs; logs followed live (SSE, resumable by line number)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from .. import constants as C
from .. import views
from ..access import reader
from ..errors import InvalidRequest
from ..keys import GATEWAY
from ..openapi import PAGE_PARAMS, json_body, op, param, ref
from ..sse import resume_from, stream
from ..wire import paginate, query_flag, reply

P = C.PREFIX
RESOURCE_MAX = 256


def _resource(request: web.Request) -> str:
    resource = request.match_info["id"]
    if len(resource) > RESOURCE_MAX:
        raise InvalidRequest("a resource is a run id or a task id (<run id>--<task>)")
    return resource


def _lines(request: web.Request) -> int | None:
    raw = request.query.get("lines")
    if raw is None:
        return None
    try:
        lines = int(raw)
    except ValueError:
        raise InvalidRequest("lines must be a positive integer") from None
    if lines < 1:
        raise InvalidRequest("lines must be a positive integer")
    return lines


async def events(request: web.Request) -> web.Response:
    await reader(request)
    core = request.app[GATEWAY].core
    resource = _resource(request)
    after = resume_from(request)
    own = await core.call(core.events(resource, after_seq=after))
    legacy = await core.call(core.request("EVENTS", {"resource": resource}))  # the core's legacy shape
    chunk, page = paginate(request, own)
    return reply(
        {
            "events": [views.legacy_event(e) for e in legacy],
            "runEvents": [views.event(e) for e in chunk],
            "page": page,
        }
    )


async def data(request: web.Request) -> web.Response:
    await reader(request)
    core = request.app[GATEWAY].core
    return reply(views.record(await core.call(core.data(_resource(request)))))


async def logs(request: web.Request) -> web.StreamResponse:
    """A task's log: a JSON string, ``text/plain`` when asked for (Accept), or followed live with ``follow``."""
    await reader(request)
    core = request.app[GATEWAY].core
    resource = _resource(request)
    lines = _lines(request)
    if "--" not in resource:
        raise InvalidRequest(f"{resource!r} is a run: logs belong to tasks (<run id>--<task>)")
    if query_flag(request, "follow"):
        return await _follow(request, resource, lines)
    text = "\n".join([line async for line in _read(core, resource, lines)])
    if "text/plain" in request.headers.get("Accept", "") and "json" not in request.headers.get("Accept", ""):
        return web.Response(text=text + ("\n" if text else ""), content_type="text/plain")
    return reply(text)


async def _read(core: Any, resource: str, lines: int | None) -> AsyncIterator[str]:
    await core.call(core.task(resource))  # 404 for an unknown task
    async for line in core.logs(resource, lines=lines):
        yield line


async def _follow(request: web.Request, resource: str, lines: int | None) -> web.StreamResponse:
    core = request.app[GATEWAY].core
    after = resume_from(request)
    await core.call(core.task(resource))

    async def source() -> AsyncIterator[tuple[int | None, str, Any]]:
        number = 0
        async for line in core.logs(resource, follow=True, lines=lines):
            number += 1
            if number > after:
                yield number, "line", line

    return await stream(request, source(), end={"resource": resource})


def setup_routes(app: web.Application, gateway: object) -> None:
    app.router.add_get(f"{P}/resources/{{id}}/events", events)
    app.router.add_get(f"{P}/resources/{{id}}/data", data)
    app.router.add_get(f"{P}/resources/{{id}}/logs", logs)


_ID = param("id", "path", doc="a run id, or a task id <run id>--<task>")
_LEGACY_EVENT = {
    "type": "object",
    "required": ["eventType", "reason", "source", "message"],
    "properties": {
        "eventType": {"type": "string"},
        "reason": {"type": "string"},
        "source": {"type": "string"},
        "message": {"type": "string"},
        "timestamp": {"type": ["string", "null"]},
    },
}
_LOGS = {
    "description": "the log: a JSON string (text/plain when asked for); with follow, server-sent events "
    "(`event: line`, id = line number), then `event: end`",
    "content": {
        "application/json": {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string"}},
        C.SSE_CONTENT_TYPE: {"schema": {"type": "string"}},
    },
}
OPENAPI = {
    "paths": {
        f"{P}/resources/{{id}}/events": {
            "get": op(
                "Events of a run or task: the first Odin's shape in `events`, Odin's own in `runEvents`",
                tag="resources",
                auth="read",
                errors=("400", "404"),
                params=[
                    _ID,
                    param("after", schema={"type": "integer", "minimum": 0}, doc="only after this seq"),
                    *PAGE_PARAMS,
                ],
                ok=json_body(
                    {
                        "type": "object",
                        "required": ["events", "runEvents", "page"],
                        "properties": {
                            "events": {"type": "array", "items": _LEGACY_EVENT},
                            "runEvents": {"type": "array", "items": ref("RunEvent")},
                            "page": ref("Page"),
                        },
                    }
                ),
            )
        },
        f"{P}/resources/{{id}}/data": {
            "get": op(
                "The record of a run (with its tasks) or of a task",
                tag="resources",
                auth="read",
                params=[_ID],
                ok=json_body({"type": "object"}),
                errors=("400", "404"),
            )
        },
        f"{P}/resources/{{id}}/logs": {
            "get": op(
                "A task's log, every attempt; `follow` streams it live (resume with Last-Event-ID/after)",
                tag="resources",
                auth="read",
                ok=_LOGS,
                errors=("400", "404"),
                params=[
                    _ID,
                    param("follow", schema={"type": "boolean"}),
                    param("lines", schema={"type": "integer", "minimum": 1}, doc="only the last N"),
                    param("after", schema={"type": "integer", "minimum": 0}, doc="lines already read"),
                ],
            )
        },
    },
}
