"""The full-disk check shared by the server stores' tests: writes made while the server's disk is full wait, and land
once each when space is freed."""

from __future__ import annotations

import asyncio
import time

from disks import SmallDisk
from odin_core.model import Event, RunRecord
from odin_core.store.base import JobStore

REFUSAL_WAIT_S = 30.0


async def runs_wait_out_a_full_disk(store: JobStore, disk: SmallDisk) -> list[str]:
    """Fill ``disk``, create runs (a few KB each, with one event) until the store has met a refusal, check that they
    wait, free the disk, check that each landed; the ids of the runs made while the disk was full."""
    retry = store.retry  # type: ignore[attr-defined]
    disk.fill()
    spec = {"tasks": [{"name": "x", "args": ["y" * 2000]}]}  # rows of a few KB: pages fill quickly
    made: dict[str, asyncio.Future[object]] = {}
    deadline = time.monotonic() + REFUSAL_WAIT_S
    while retry.outages == 0:
        assert time.monotonic() < deadline, "the disk never refused a write: the test proves nothing"
        for refused in (f for f in made.values() if f.done() and f.exception()):
            raise AssertionError("a write refused by the full disk was not waited out") from refused.exception()
        run = RunRecord(f"r{len(made)}", job="j", owner="me")
        started = Event(run.run_id, 1, 0.0, "run", "RUNNING")
        made[run.run_id] = asyncio.ensure_future(store.create_run(run, spec, [], [started], now=0.0))
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.5)  # the refused writes keep waiting
    assert not all(f.done() for f in made.values())
    assert not any(f.done() and f.exception() for f in made.values())
    disk.free()
    leases = await asyncio.wait_for(asyncio.gather(*made.values()), 60)
    assert all(lease is not None for lease in leases)
    for run_id in made:  # each run's event, once (on MongoDB copied from the run's outbox)
        assert [(e.seq, e.status) for e in await store.events(run_id)] == [(1, "RUNNING")], run_id
    return list(made)
