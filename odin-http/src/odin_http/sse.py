"""Server-sent events: a live stream with ids, resumable with ``Last-Event-ID`` (or ``?after=``), kept alive.

A supervised pump reads the source into a bounded queue; the response writes what comes, and a comment line when
nothing has come for ``KEEPALIVE_S``, so proxies keep the connection open. A client that goes away ends the pump,
which closes the source (the core's stream is cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from odin_core.tasks import TaskSet

from . import constants as C
from .errors import InvalidRequest, OdinError, error_body
from .keys import GATEWAY

KEEPALIVE_S = 15.0
QUEUE_SIZE = 256
_END = object()


def resume_from(request: web.Request) -> int:
    """The last id the client has: ``Last-Event-ID`` (a reconnecting EventSource sends it), else ``?after=``."""
    raw = request.headers.get(C.HEADER_LAST_EVENT_ID) or request.query.get("after") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"after / Last-Event-ID must be an integer, not {raw!r}") from None
    if value < 0:
        raise InvalidRequest("after / Last-Event-ID must be at least 0")
    return value


def frame(event: str, data: Any, ident: int | None = None) -> bytes:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n".encode()


async def stream(
    request: web.Request, source: AsyncIterator[tuple[int | None, str, Any]], *, end: Any = None
) -> web.StreamResponse:
    """Send ``(id, event, data)`` items as they come, then an ``end`` event (or an ``error`` event)."""
    metrics = request.app[GATEWAY].metrics
    response = web.StreamResponse(
        headers={"Content-Type": C.SSE_CONTENT_TYPE, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_SIZE)
    tasks = TaskSet("sse")

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)
            await queue.put(_END)
        except OdinError as e:
            await queue.put(e)
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    await response.prepare(request)
    metrics.streams.inc()
    tasks.spawn(pump(), "pump")
    try:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    item = await queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if item is _END:
                await response.write(frame("end", end))
                break
            if isinstance(item, OdinError):
                await response.write(frame("error", error_body(item)["error"]))
                break
            ident, event, data = item
            await response.write(frame(event, data, ident))
    except (ConnectionResetError, asyncio.CancelledError):
        await tasks.close()
        metrics.streams.dec()
        raise
    await tasks.close()
    metrics.streams.dec()
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
