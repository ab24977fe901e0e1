"""In-process fan-out of run events to subscribers, with resumable replay from the store.

Each subscriber has a bounded queue (``queue_size``). Slow-consumer policy:
- a subscriber of **one run** whose queue overflows is marked lagged; on its next read it replays
  from the store after the last sequence number it saw (page by page), so it loses nothing and
  sees nothing twice;
- a subscriber of **every run** (no backlog to replay from) gets an explicit ``Lagged`` item once it
  has read what was queued: per run, the sequence number after which its events were dropped, so
  it can fetch them (a per-run watch with ``after_seq``). Events of the dropped span that arrive
  until the ``Lagged`` is read are dropped too; live delivery then resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from .model import Event
from .store.base import JobStore
from .tasks import TaskSet

DEFAULT_QUEUE = 1024
REPLAY_PAGE = 500
"""Events read from the store per query while a subscriber catches up."""
RELAY_RETRY_S = 1.0
"""Pause before the relay reopens a failed feed or retries a failed read."""

log = logging.getLogger("odin.hub")


@dataclass(frozen=True)
class Lagged:
    """A watcher of every run fell behind: for each run, the last sequence number it had when events were dropped."""

    resume: dict[str, int]


@dataclass(eq=False)
class _Sub:
    run_id: str | None
    size: int
    queue: asyncio.Queue[Event] = field(init=False)
    lagged: bool = False
    dropped: dict[str, int] = field(default_factory=dict)  # run -> seq before its first dropped event

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.size)

    def offer(self, ev: Event) -> None:
        if not self.lagged:
            try:
                self.queue.put_nowait(ev)
                return
            except asyncio.QueueFull:
                self.lagged = True
        if self.run_id is None:
            self.dropped.setdefault(ev.run_id, ev.seq - 1)


class Hub:
    def __init__(self, store: JobStore, *, queue_size: int = DEFAULT_QUEUE) -> None:
        self.store = store
        self.queue_size = queue_size
        self._subs: set[_Sub] = set()
        # events other processes commit to a shared store reach watchers here through a relay
        self._published: dict[str, int] = {}  # run -> highest seq published (each event once)
        self._relay = TaskSet("hub")
        self._relaying: object | None = None  # the live relay's token; None: the next watcher starts one

    def publish(self, events: list[Event]) -> None:
        fresh = [ev for ev in events if ev.seq > self._published.get(ev.run_id, 0)]
        for ev in fresh:
            self._published[ev.run_id] = ev.seq
        for sub in list(self._subs):
            for ev in fresh:
                if sub.run_id is None or sub.run_id == ev.run_id:
                    sub.offer(ev)

    def _follow_others(self) -> None:
        """While anyone watches, relay the events other cores commit (if the store has a feed)."""
        if self._relaying is None and (feed := self.store.follow()) is not None:
            token = self._relaying = object()
            self._relay.spawn(self._relay_feed(feed, token), "relay")

    async def _relay_feed(self, feed: AsyncGenerator[tuple[str, int], None], token: object) -> None:
        """Relays notices until nobody watches; a feed or a read that fails is retried, never given up on.

        ``_relaying`` is cleared the moment this relay decides to stop, before its feed's close is
        awaited: a watcher arriving during that close starts a relay of its own (``publish`` drops
        what two relays would both deliver)."""
        current: AsyncGenerator[tuple[str, int], None] | None = feed
        try:
            while current is not None:
                try:
                    async with contextlib.aclosing(current):
                        async for run_id, after in current:
                            if not self._subs:
                                self._relaying = None  # the next watcher starts a new relay
                                return
                            await self._relay_notice(run_id, after)
                except Exception as e:  # a feed that broke is reopened while anyone watches
                    log.warning("event relay: the store's feed failed (%s); reopening it in %.0f s", e, RELAY_RETRY_S)
                await asyncio.sleep(RELAY_RETRY_S)
                current = self.store.follow() if self._subs else None  # a new feed catches up with ("", 0) first
        finally:
            if self._relaying is token:
                self._relaying = None

    async def _relay_notice(self, run_id: str, after: int) -> None:
        while self._subs:
            try:
                if run_id:
                    await self._relay_run(run_id, max(after, self._published.get(run_id, 0)))
                else:  # the feed may have missed notices: catch up every run someone watches
                    for watched in {s.run_id for s in self._subs if s.run_id}:
                        await self._relay_run(watched, self._published.get(watched, 0))
                return
            except Exception as e:  # the store is down: its watchers wait, they are not abandoned
                log.warning("event relay: reading run %s's events failed (%s); retrying", run_id or "(all)", e)
                await asyncio.sleep(RELAY_RETRY_S)

    async def close(self) -> None:
        await self._relay.close()

    async def _relay_run(self, run_id: str, after: int) -> None:
        while page := await self.store.events(run_id, after_seq=after, limit=REPLAY_PAGE):
            self.publish(page)
            after = page[-1].seq

    async def watch(self, run_id: str | None, *, after_seq: int = 0) -> AsyncIterator[Event | Lagged]:
        """Events after ``after_seq``: the stored backlog, then live ones, in order, each once.

        Events are persisted before they are published, so whatever a gap or a lag hides is in the
        store. ``run_id=None`` follows every run live (no backlog), with ``Lagged`` when it falls behind.
        """
        sub = _Sub(run_id, self.queue_size)
        self._subs.add(sub)
        self._follow_others()
        try:
            if run_id is None:
                async for item in self._every_run(sub):
                    yield item
            else:
                async for ev in self._one_run(sub, run_id, after_seq):
                    yield ev
        finally:
            self._subs.discard(sub)

    async def _every_run(self, sub: _Sub) -> AsyncIterator[Event | Lagged]:
        while True:
            if sub.lagged and sub.queue.empty():
                lagged, sub.dropped = Lagged(dict(sub.dropped)), {}
                sub.lagged = False
                yield lagged
            yield await sub.queue.get()

    async def _one_run(self, sub: _Sub, run_id: str, after_seq: int) -> AsyncIterator[Event]:
        last = after_seq
        replay = True
        while True:
            if replay or sub.lagged:
                replay, sub.lagged = False, False
                sub.queue = asyncio.Queue(self.queue_size)
                async for ev in self._replay(run_id, last):
                    last = ev.seq
                    yield ev
            ev = await sub.queue.get()
            if ev.seq <= last:
                continue
            if ev.seq != last + 1:  # a gap: what it hides is in the store
                replay = True
                continue
            last = ev.seq
            yield ev

    async def _replay(self, run_id: str, after_seq: int) -> AsyncIterator[Event]:
        while True:
            page = await self.store.events(run_id, after_seq=after_seq, limit=REPLAY_PAGE)
            for ev in page:
                yield ev
            if len(page) < REPLAY_PAGE:
                return
            after_seq = page[-1].seq
