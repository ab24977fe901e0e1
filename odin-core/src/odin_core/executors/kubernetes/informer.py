"""One shared watch per kind and namespace: list, watch from the last resourceVersion, relist on 410 Gone.

The watch runs on the event loop (a task reading an aiohttp stream: the chunked transfer is parsed
in C, no thread and no hand-off): the events of each read are decoded into the fields Odin reads
(``decoding``: a pod's managedFields and most of its spec are skipped) and applied at once, updating
the cache and calling ``on_event``. After a relist, objects that vanished meanwhile are
reported as DELETED.

The resourceVersion to resume from advances with every event and bookmark, and survives a broken
stream (the next watch resumes where the last one got to). 410 Gone, whether in the stream or as the
answer to opening the watch (a resourceVersion compacted away meanwhile), means relist.

``wanted(obj)`` (default: everything) says which objects the cache keeps: the executor keeps only the
objects of attempts it follows, so the cache does not grow with every run that ever ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp

from ...tasks import TaskSet
from .client import ApiError, KubeClient
from .decoding import Decode, event_decoder, list_decoder
from .resources import Resource

log = logging.getLogger("odin.k8s")
Obj = dict[str, Any]
OnEvent = Callable[[str, Obj], None]
Wanted = Callable[[Obj], bool]
LIST_PAGE = 500
_MAX_BACKOFF_S = 10.0


class Gone(Exception):
    """The resourceVersion is too old (410): relist."""


class Informer:
    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        namespace: str,
        selector: str | None,
        on_event: OnEvent,
        wanted: Wanted | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.selector = selector
        self.on_event = on_event
        self.wanted: Wanted = wanted or (lambda _obj: True)
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self.error: str = ""  # last list/watch failure, for diagnostics
        self.relists = 0
        self.gone = 0  # 410 Gone answers seen (in a stream or at watch open)
        self.rv: str | None = None  # where the next watch resumes (None: relist first)
        self._tasks = TaskSet("watch")
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._resp: aiohttp.ClientResponse | None = None
        self._decode_event: Decode = event_decoder(resource)
        self._decode_list: Decode = list_decoder(resource)

    def decode(self, line: bytes) -> Obj:
        """One line of the watch as an event (benchmarks wrap this to time it)."""
        return self._decode_event(line)

    def start(self) -> None:
        self._task = self._tasks.spawn(self._run(), self.resource.plural)

    def stop(self) -> None:
        """Stop watching: no event is applied from now on; the watch task is cancelled, its connection closed."""
        self._stopped = True
        self.break_stream()
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        """``stop``, and wait until the watch task has ended."""
        self.stop()
        await self._tasks.close()

    def break_stream(self) -> None:
        """Close the open watch's connection, as a network failure would (the watch resumes from ``rv``)."""
        resp = self._resp
        if resp is not None:
            resp.close()

    def forget(self, names: Iterable[str]) -> None:
        """Drop cached objects that are no longer wanted; later events about them are ignored as long as
        ``wanted`` says no."""
        for name in names:
            self.cache.pop(name, None)

    # -- list and watch ------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._stopped:
            try:
                if self.rv is None:
                    self.rv = await self._relist()
                await self._watch()
                failures = 0
            except Gone:
                self.rv = None
                self.gone += 1
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep watching: the API server may come back
                if self._stopped:
                    return
                failures += 1
                self.error = str(e)
                log.warning("watch of %s failed (%s); retrying", self.resource.plural, e)
                await asyncio.sleep(min(0.2 * 2**failures, _MAX_BACKOFF_S))

    async def _relist(self) -> str:
        items: list[Obj] = []
        query: dict[str, Any] = {"labelSelector": self.selector, "limit": LIST_PAGE}
        if self.selector is None:
            del query["labelSelector"]
        path = self.resource.path(self.namespace)
        while True:
            page = self._decode_list(await self.client.request("list", path, query=query, raw=True))
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query = {**query, "continue": token}
        self.relists += 1
        self._apply_sync([o for o in items if self.wanted(o)])
        self.synced.set()
        return str(page["metadata"]["resourceVersion"])

    async def _watch(self) -> None:
        """One watch request from ``self.rv``, advancing it with every event (also when the stream breaks)."""
        query = {
            "watch": "true",
            "labelSelector": self.selector,
            "resourceVersion": self.rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.client.settings.watch_timeout_s,
        }
        if self.selector is None:
            del query["labelSelector"]
        path = self.resource.path(self.namespace)
        try:
            self._resp = await self.client.stream("watch", path, query, self.client.settings.watch_timeout_s + 30)
        except ApiError as e:
            if e.status == 410:  # the resourceVersion was compacted away before the watch opened
                raise Gone from e
            raise
        try:
            async for events in _batches(self._resp, self.decode):
                batch: list[tuple[str, Obj]] = []
                try:
                    for event in events:
                        self.rv = self._handle(event, self.rv or "", batch)
                finally:
                    self._apply_all(batch)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise ApiError(0, "Unreachable", f"the watch of {self.resource.plural} broke: {e!r}") from e
        finally:
            resp, self._resp = self._resp, None
            with contextlib.suppress(Exception):
                resp.release()

    def _handle(self, event: Obj, rv: str, batch: list[tuple[str, Obj]]) -> str:
        kind, obj = event.get("type", ""), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise ApiError(int(obj.get("code") or 0), obj.get("reason", ""), obj.get("message", ""))
        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
        if kind != "BOOKMARK":
            batch.append((kind, obj))
        return rv

    # -- applying --------------------------------------------------------------------------------

    def _apply_all(self, batch: list[tuple[str, Obj]]) -> None:
        if self._stopped:
            return
        for kind, obj in batch:
            self._apply(kind, obj)

    def _apply(self, kind: str, payload: Obj) -> None:
        name = payload["metadata"]["name"]
        if kind == "DELETED":
            if self.cache.pop(name, None) is None and not self.wanted(payload):
                return
        elif self.wanted(payload):
            self.cache[name] = payload
        else:
            return
        self._emit(kind, payload)

    def _apply_sync(self, items: list[Obj]) -> None:
        fresh = {o["metadata"]["name"]: o for o in items}
        old, self.cache = self.cache, fresh
        for name, obj in old.items():
            if name not in fresh:
                self._emit("DELETED", obj)
        for name, obj in fresh.items():
            before = old.get(name)
            if before is None or before["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._emit("MODIFIED" if before else "ADDED", obj)

    def _emit(self, kind: str, obj: Obj) -> None:
        try:
            self.on_event(kind, obj)
        except Exception:
            log.exception("handling a %s event of %s failed", kind, self.resource.plural)


async def _batches(resp: aiohttp.ClientResponse, decode: Callable[[bytes], Obj]) -> AsyncIterator[list[Obj]]:
    """The watch's events, as many at a time as one read brought (a line each)."""
    rest = b""
    async for chunk in resp.content.iter_any():
        if b"\n" not in chunk:
            rest += chunk
            continue
        *lines, tail = (rest + chunk).split(b"\n")
        rest = tail
        events = [decode(line) for line in lines if line.strip()]
        if events:
            yield events
    if rest.strip():
        yield [decode(rest)]
