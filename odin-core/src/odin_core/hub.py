"""In-process fan-out of run events to subscribers, with resumable replay from the store.

Each subscriber has a bounded queue. Slow-consumer policy: a subscriber whose queue is full is
marked lagged and its live queue dropped; on its next read it replays from the store after the
last sequence number it saw, so it loses nothing and sees nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .model import Event
from .store.base import JobStore

DEFAULT_QUEUE = 1024


@dataclass(eq=False)
class _Sub:
    run_id: str | None
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(DEFAULT_QUEUE))
    lagged: bool = False


class Hub:
    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._subs: set[_Sub] = set()

    def publish(self, events: list[Event]) -> None:
        for sub in list(self._subs):
            for ev in events:
                if sub.run_id is not None and sub.run_id != ev.run_id:
                    continue
                try:
                    sub.queue.put_nowait(ev)
                except asyncio.QueueFull:
                    sub.lagged = True
                    break

    async def watch(self, run_id: str | None, *, after_seq: int = 0) -> AsyncIterator[Event]:
        """Events after ``after_seq``: the stored backlog, then live ones, in order, each once.

        Events are persisted before they are published, so whatever a gap or a lag hides is in
        the store. ``run_id=None`` follows every run live (no backlog).
        """
        sub = _Sub(run_id)
        self._subs.add(sub)
        last = after_seq
        replay = run_id is not None
        try:
            while True:
                if replay or sub.lagged:
                    replay, sub.lagged = False, False
                    sub.queue = asyncio.Queue(DEFAULT_QUEUE)
                    for ev in await self.store.events(run_id, after_seq=last) if run_id else []:
                        last = ev.seq
                        yield ev
                ev = await sub.queue.get()
                if run_id is not None:
                    if ev.seq <= last:
                        continue
                    if ev.seq != last + 1:
                        replay = True
                        continue
                    last = ev.seq
                yield ev
        finally:
            self._subs.discard(sub)
