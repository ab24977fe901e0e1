"""``SyncOdinClient``: ``RemoteOdin`` for code without an event loop, generated from it (not a second client).

Every public method of the async client is available under the same name: coroutines run on a private event-loop
thread and return their result; async iterators (``watch``, ``logs``, ``stream``) become plain generators.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from .remote import RemoteOdin

T = TypeVar("T")
_END = object()


class Blocking:
    """Runs an async client (made by ``factory`` on a private loop thread) behind blocking methods."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="odin-client-loop", daemon=True)
        self._thread.start()

        async def make() -> Any:
            return factory()  # on the loop thread: whatever it binds belongs to that loop

        self._client = self._run(make())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.iscoroutine(result):
                return self._run(result)
            if isinstance(result, AsyncIterator):
                return self._iterate(result)
            return result

        return call

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _iterate(self, items: AsyncIterator[Any]) -> Iterator[Any]:
        async def step() -> Any:
            return await anext(items, _END)

        try:
            while (item := self._run(step())) is not _END:
                yield item
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                self._run(aclose())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncOdinClient(Blocking):
    """``RemoteOdin``'s methods, blocking: ``with SyncOdinClient(url) as odin: odin.status()``."""

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        super().__init__(lambda: RemoteOdin(url, token=token, **options))


__all__ = ["Blocking", "SyncOdinClient"]
