"""One shared watch per kind and namespace: list, watch from the last resourceVersion, relist on 410 Gone.

The watch runs in a daemon thread (blocking HTTP); every event is handed to the event loop with
``loop.call_soon_threadsafe``, where the cache is updated and ``on_event`` is called. After a relist,
objects that vanished meanwhile are reported as DELETED.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import urllib3

from .client import ApiError, KubeClient
from .resources import Resource

log = logging.getLogger("odin.k8s")
Obj = dict[str, Any]
OnEvent = Callable[[str, Obj], None]
LIST_PAGE = 500
_MAX_BACKOFF_S = 10.0


class Gone(Exception):
    """The resourceVersion is too old (410): relist."""


class Informer:
    def __init__(
        self, client: KubeClient, resource: Resource, namespace: str, selector: str, on_event: OnEvent
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.selector = selector
        self.on_event = on_event
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self.error: str = ""  # last list/watch failure, for diagnostics
        self.relists = 0
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

    def _run(self) -> None:
        rv: str | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                rv = self._watch(rv)
                failures = 0
            except Gone:
                rv = None
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
        path = self.resource.path(self.namespace)
        while True:
            page = self.client.request_sync("list", path, query=query)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query = {**query, "continue": token}
        self.relists += 1
        self._deliver("SYNC", items)
        return str(page["metadata"]["resourceVersion"])

    def _watch(self, rv: str) -> str:
        query = {
            "watch": "true",
            "labelSelector": self.selector,
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.client.settings.watch_timeout_s,
        }
        path = self.resource.path(self.namespace)
        self._resp = self.client.stream_sync("watch", path, query, self.client.settings.watch_timeout_s + 30)
        try:
            for event in _events(self._resp):
                rv = self._handle(event, rv)
        except ApiError as e:
            if e.status == 410:
                raise Gone from e
            raise
        finally:
            self._resp.release_conn()
            self._resp = None
        return rv

    def _handle(self, event: Obj, rv: str) -> str:
        kind, obj = event.get("type", ""), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise ApiError(int(obj.get("code") or 0), obj.get("reason", ""), obj.get("message", ""))
        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
        if kind != "BOOKMARK":
            self._deliver(kind, obj)
        return rv

    def _deliver(self, kind: str, payload: Any) -> None:
        if not self._stop.is_set():
            self._loop.call_soon_threadsafe(self._apply, kind, payload)

    # -- loop side -----------------------------------------------------------------------------

    def _apply(self, kind: str, payload: Any) -> None:
        if kind == "SYNC":
            self._apply_sync(payload)
            self.synced.set()
            return
        name = payload["metadata"]["name"]
        if kind == "DELETED":
            self.cache.pop(name, None)
        else:
            self.cache[name] = payload
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


def _events(resp: urllib3.HTTPResponse) -> Iterator[Obj]:
    buf = b""
    for chunk in resp.stream(65536, decode_content=True):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if buf.strip():
        yield json.loads(buf)
