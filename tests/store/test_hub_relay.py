"""The hub's relay of events another core commits to a shared store (PostgreSQL LISTEN, MongoDB's
tailing poll): it must serve every watcher, whenever it arrives and whatever the store does meanwhile.

``ours`` is the hub's store and ``theirs`` the other core's, two real stores on one server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import pytest
from odin_core.hub import Hub
from odin_core.model import Event, RunRecord
from odin_core.store import JobStore

RUN = "r1"
ARRIVES_S = 15.0  # a relayed event reaches a watcher well within this (a relay that died: never)


@pytest.fixture(params=["postgres", "mongo"])
def backend(request: pytest.FixtureRequest) -> str:
    """Only stores with a feed relay anything (SQLite has one writer)."""
    return str(request.param)


async def _run(store: JobStore):
    lease = await store.create_run(RunRecord(RUN, job="j", owner="theirs"), {}, [], [_event(1)], now=time.time())
    assert lease is not None
    return lease


def _event(seq: int) -> Event:
    return Event(RUN, seq, time.time(), "task", "RUNNING", "t")


async def _next(watch: AsyncIterator[object]) -> Event:
    ev = await asyncio.wait_for(anext(watch), ARRIVES_S)
    assert isinstance(ev, Event)
    return ev


async def test_a_watcher_arriving_while_the_last_relay_closes_its_feed_still_gets_other_cores_events(
    open_stores: Callable[..., Awaitable[JobStore]],
) -> None:
    """The relay stops at the first notice after its last watcher left, then closes its feed (real I/O: a
    connection's close). A watcher subscribing during that close must get a relay of its own."""
    ours, theirs = await open_stores(), await open_stores()
    closing, release = asyncio.Event(), asyncio.Event()
    real_follow = ours.follow

    async def slow_to_close() -> AsyncGenerator[tuple[str, int], None]:
        feed = real_follow()
        assert feed is not None
        try:
            async for notice in feed:
                yield notice
        finally:
            closing.set()
            await release.wait()  # the close takes a while: the new watcher arrives now
            await feed.aclose()

    ours.follow = slow_to_close  # type: ignore[method-assign]
    hub = Hub(ours)
    lease = await _run(theirs)
    first = hub.watch(RUN)
    assert (await _next(first)).seq == 1  # the stored backlog
    await first.aclose()  # nobody watches now
    await theirs.commit(lease, None, (), [_event(2)])  # the notice that ends the relay
    await asyncio.wait_for(closing.wait(), ARRIVES_S)
    second = hub.watch(RUN, after_seq=2)
    got = asyncio.ensure_future(_next(second))
    await asyncio.sleep(0.1)  # subscribed while the old relay's feed is still closing
    release.set()
    await theirs.commit(lease, None, (), [_event(3)])
    assert (await got).seq == 3
    await second.aclose()
    await hub.close()


async def test_the_relay_survives_a_failed_read_and_delivers_what_it_missed(
    open_stores: Callable[..., Awaitable[JobStore]],
) -> None:
    """A read of the relayed run's events fails (the store hiccups past its retries): the relay retries it
    instead of dying, and the watcher gets the event."""
    ours, theirs = await open_stores(), await open_stores()
    failures = {"left": 0}
    real_events = ours.events

    async def flaky_events(run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("the store went away")
        return await real_events(run_id, after_seq=after_seq, limit=limit)

    ours.events = flaky_events  # type: ignore[method-assign]
    hub = Hub(ours)
    lease = await _run(theirs)
    watch = hub.watch(RUN)
    assert (await _next(watch)).seq == 1
    await asyncio.sleep(1.0)  # the relay's feed is listening (LISTEN, or the first look of a poll)
    failures["left"] = 2
    await theirs.commit(lease, None, (), [_event(2)])
    assert (await _next(watch)).seq == 2
    assert failures["left"] == 0, "the relay read (and failed) twice before it delivered"
    await watch.aclose()
    await hub.close()
