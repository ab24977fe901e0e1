"""Blocking calls on a thread of their own, in batches: one hand-off each way per batch, not per call.

``asyncio.to_thread`` costs a thread wake-up, a future chain and an event-loop wake-up for every call.
A :class:`BatchThread` collects the calls made during one pass of the event loop (and those made while
its thread is busy) and runs them as one batch, in the order they were made; their outcomes come back
to the loop in one ``call_soon_threadsafe``. Under load, one hand-off serves hundreds of calls; alone,
a call is a batch of one. Subclasses decide how a batch runs (the SQLite store wraps its writes in one
transaction).

A hand-off is not free: when calls come a few at a time, waking the thread and then the loop again costs
more than a short call itself (the SQLite store's commits of one-step pipelines arriving at 50 a second:
3.1–3.5 ms of CPU per pipeline through the thread, 1.9–2.4 ms run on the loop; ``bench/k8s_engine_share.py
--rate 50``, three pairs in ``docs/benchmarks.md``). So a subclass may run a small batch on the loop itself
(``run_inline``), when the thread is idle and every call of the batch says it is quick; it may decline
(``None``), and the batch goes to the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]
MAX_BATCH = 512
"""Calls per batch at most (a batch's outcomes wait for its last call)."""


class BatchThread(Generic[R]):
    """Runs ``fn(resource)`` calls on its thread; ``resource`` is what every call gets (a connection, None)."""

    def __init__(self, resource: R, thread: ThreadPoolExecutor | None = None, *, name: str = "odin-batch") -> None:
        self.resource = resource
        self._own_thread = thread is None
        self._thread = thread or ThreadPoolExecutor(1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._queue: list[tuple[Callable[[R], Any], asyncio.Future[Any], Any]] = []
        self._draining = False  # the thread has (or is about to get) the queue
        self._kicked = False  # a hand-over is scheduled on the loop
        self.batches = 0  # batches run (diagnostics, benchmarks)
        self.inline_batches = 0  # of them, run on the loop itself

    @property
    def busy(self) -> bool:
        """The thread has calls, or has just delivered a batch and not yet seen its queue empty: a call made now
        joins the thread's next batch (it is not offered to ``run_inline``)."""
        with self._lock:
            return self._draining or self._kicked

    async def call(self, fn: Callable[[R], T], tag: Any = None) -> T:
        """``fn(resource)`` on the thread (or on the loop: ``run_inline``), in a batch with the calls made in this pass
        of the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._queue.append((fn, future, tag))
            kick = not (self._draining or self._kicked)
            self._kicked = self._kicked or kick
        if kick:
            loop.call_soon(self._hand_over, loop)
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._kicked = False
            if self._draining or not self._queue:
                return
            self._draining = True
            items = self._queue if len(self._queue) <= self.inline_max else None
            if items is not None:
                self._queue = []
        if items is not None and self._inline(items):
            return
        try:
            self._thread.submit(self._drain, loop)
        except RuntimeError as e:  # closed: the calls waiting fail
            with self._lock:
                items, self._queue, self._draining = self._queue, [], False
            _deliver([(future, None, e) for _, future, _ in items])

    def _inline(self, items: list[tuple[Callable[[R], Any], asyncio.Future[Any], Any]]) -> bool:
        """Run ``items`` on the loop (the thread is idle: ``_draining`` is held); False: they go back to the queue's
        head, for the thread."""
        try:
            outcomes = self.run_inline(items)
        except BaseException as e:  # a bug, a resource gone, an interrupt: the callers hear of it, not wait forever
            with self._lock:
                self._draining = False
            why = e if isinstance(e, Exception) else RuntimeError(f"interrupted: {e!r}")
            _deliver([(future, None, why) for _, future, _ in items])
            if why is not e:
                raise
            return True
        with self._lock:
            if outcomes is None:
                self._queue[:0] = items
                return False
            self._draining = False
            self.batches += 1
            self.inline_batches += 1
        _deliver(outcomes)
        return True

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            with self._lock:
                items, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                if not items:
                    self._draining = False
                    return
            try:
                outcomes = self.run_batch(items)
            except BaseException as e:  # a bug: the batch's callers hear of it, and the thread goes on serving
                outcomes = [(future, None, e) for _, future, _ in items]
            self.batches += 1
            try:
                loop.call_soon_threadsafe(_deliver, outcomes)
            except RuntimeError:  # the loop is closed: nobody waits for these any more
                with self._lock:
                    self._queue, self._draining = [], False
                return

    def run_batch(self, items: list[tuple[Callable[[R], Any], asyncio.Future[Any], Any]]) -> list[Outcome]:
        """On the thread: every call in order, each outcome its own (a call that raises affects no other)."""
        return [outcome(future, fn, self.resource) for fn, future, _ in items]

    inline_max = 0
    """Batches of at most this many calls are offered to ``run_inline`` (0: every batch goes to the thread)."""

    def run_inline(self, items: list[tuple[Callable[[R], Any], asyncio.Future[Any], Any]]) -> list[Outcome] | None:
        """On the loop, the thread idle: the batch's outcomes, or None to leave it to the thread. Never blocks."""
        return None

    def close(self) -> None:
        if self._own_thread:
            self._thread.shutdown(wait=False)


def outcome(future: asyncio.Future[Any], fn: Callable[[Any], Any], resource: Any) -> Outcome:
    try:
        return future, fn(resource), None
    except BaseException as e:  # delivered to the caller, as if the call had raised there
        return future, None, e


def _deliver(outcomes: list[Outcome]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
