"""One shared watch per kind and namespace: list, watch from the last resourceVersion, relist on 410 Gone.

The watch runs in a daemon thread (blocking HTTP); every event is handed to the event loop with
``loop.call_soon_threadsafe``, where the cache is updated and ``on_event`` is called. After a relist,
objects that vanished meanwhile are reported as DELETED.

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
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import urllib3

from .client import ApiError, KubeClient, loads
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
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._resp: urllib3.HTTPResponse | None = None
        self._thread = threading.Thread(target=self._run, name=f"odin-watch-{resource.plural}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()
            with contextlib.suppress(Exception):
                resp.close()

    # -- thread side ---------------------------------------------------------------------------

    def forget(self, names: Iterable[str]) -> None:
        """Drop cached objects (loop side) that are no longer wanted; later events about them are ignored
        as long as ``wanted`` says no."""
        for name in names:
            self.cache.pop(name, None)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if self.rv is None:
                    self.rv = self._relist()
                self._watch()
                failures = 0
            except Gone:
                self.rv = None
                self.gone += 1
            except Exception as e:  # keep watching: the API server may come back
                if self._stop.is_set():
                    return
                failures += 1
                self.error = str(e)
                log.warning("watch of %s failed (%s); retrying", self.resource.plural, e)
                self._stop.wait(min(0.2 * 2**failures, _MAX_BACKOFF_S))

    def _relist(self) -> str:
        items: list[Obj] = []
        query: dict[str, Any] = {"labelSelector": self.selector, "limit": LIST_PAGE}
        if self.selector is None:
            del query["labelSelector"]
        path = self.resource.path(self.namespace)
        while True:
            page = self.client.request_sync("list", path, query=query)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query = {**query, "continue": token}
        self.relists += 1
        self._deliver("SYNC", [o for o in items if self.wanted(o)])
        return str(page["metadata"]["resourceVersion"])

    def _watch(self) -> None:
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
            self._resp = self.client.stream_sync("watch", path, query, self.client.settings.watch_timeout_s + 30)
        except ApiError as e:
            if e.status == 410:  # the resourceVersion was compacted away before the watch opened
                raise Gone from e
            raise
        try:
            for events in _batches(self._resp):
                batch: list[tuple[str, Obj]] = []
                try:
                    for event in events:
                        self.rv = self._handle(event, self.rv or "", batch)
                finally:
                    self._deliver_all(batch)
        finally:
            self._resp.release_conn()
            self._resp = None

    def _handle(self, event: Obj, rv: str, batch: list[tuple[str, Obj]]) -> str:
        kind, obj = event.get("type", ""), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise ApiError(int(obj.get("code") or 0), obj.get("reason", ""), obj.get("message", ""))
        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
        if kind != "BOOKMARK" and (kind == "DELETED" or self.wanted(obj)):
            batch.append((kind, obj))
        return rv

    def _deliver(self, kind: str, payload: Any) -> None:
        if not self._stop.is_set():
            self._loop.call_soon_threadsafe(self._apply, kind, payload)

    def _deliver_all(self, batch: list[tuple[str, Obj]]) -> None:
        """The events of one read in one hand-over: one wake-up of the loop, not one per event."""
        if batch and not self._stop.is_set():
            self._loop.call_soon_threadsafe(self._apply_all, batch)

    # -- loop side -----------------------------------------------------------------------------

    def _apply_all(self, batch: list[tuple[str, Obj]]) -> None:
        for kind, obj in batch:
            self._apply(kind, obj)

    def _apply(self, kind: str, payload: Any) -> None:
        if kind == "SYNC":
            self._apply_sync(payload)
            self.synced.set()
            return
        name = payload["metadata"]["name"]
        if kind == "DELETED":
            if self.cache.pop(name, None) is None and not self.wanted(payload):
                return
        elif self.wanted(payload):  # asked again on the loop: a run may have ended since the thread asked
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


def _batches(resp: urllib3.HTTPResponse) -> Iterator[list[Obj]]:
    """The watch's events, as many at a time as one read brought (a line each)."""
    buf = b""
    for chunk in resp.stream(65536, decode_content=True):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        events = [loads(line) for line in lines if line.strip()]
        if events:
            yield events
    if buf.strip():
        yield [loads(buf)]
