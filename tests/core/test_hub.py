"""The hub's slow-consumer policy: a lagging watcher of one run loses nothing; of every run, it is told."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from odin_core.hub import Hub, Lagged
from odin_core.model import Event, RunRecord
from odin_core.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "odin.db")
    await s.open()
    yield s
    await s.close()


async def _run(store: SqliteStore, run_id: str):
    first = Event(run_id, 1, time.time(), "run", "BUILDING")
    lease = await store.create_run(RunRecord(run_id, job="j", owner="me"), {}, [], [first], now=time.time())
    assert lease is not None
    return lease


def _events(run_id: str, start: int, n: int) -> list[Event]:
    return [Event(run_id, seq, time.time(), "task", "RUNNING", "t") for seq in range(start, start + n)]


async def test_a_slow_watcher_of_one_run_replays_what_overflowed_page_by_page(store) -> None:
    hub = Hub(store, queue_size=8)
    lease = await _run(store, "r1")
    watch = hub.watch("r1")
    assert (await anext(watch)).seq == 1
    for start in range(2, 1202, 100):  # 1,200 events, persisted then published, while the watcher sleeps
        batch = _events("r1", start, 100)
        await store.commit(lease, None, (), batch)
        hub.publish(batch)
    seqs = [(await anext(watch)).seq for _ in range(1200)]
    assert seqs == list(range(2, 1202))
    await watch.aclose()


async def test_a_slow_watcher_of_every_run_is_told_what_it_missed(store) -> None:
    hub = Hub(store, queue_size=4)
    watch = hub.watch(None)
    first = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)  # subscribed
    hub.publish(_events("a", 1, 3) + _events("b", 1, 3))  # 6 events into a queue of 4
    got = [await first] + [await anext(watch) for _ in range(3)]
    assert [(e.run_id, e.seq) for e in got] == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    lagged = await anext(watch)
    assert lagged == Lagged({"b": 1})  # b's events after seq 1 were dropped
    hub.publish(_events("c", 1, 1))  # live delivery resumes
    assert (await anext(watch)).run_id == "c"
    await watch.aclose()
