"""The SQLite store writes a run's small commits on the event loop, and never waits or checkpoints there.

What runs where is read from SQLite itself: the connection's trace callback records the thread of every
statement it executes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from contract_support import create, event, sqlite_write_lock
from odin_core.store.sqlite import QUICK_ROWS, SqliteStore
from odin_core.store.sqlite_queue import CHECKPOINT_EVERY

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def trace(store: SqliteStore) -> list[tuple[int, str]]:
    """(thread id, SQL) of every statement the store's connection runs from now on."""
    seen: list[tuple[int, str]] = []
    store._db.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))
    return seen


def threads_of(seen: list[tuple[int, str]], word: str) -> set[int]:
    return {t for t, sql in seen if word in sql}


async def test_a_runs_commit_is_written_on_the_loop_and_reads_and_large_writes_on_the_thread(store) -> None:
    lease = await create(store, "r1")
    seen = trace(store)
    loop_thread = threading.get_ident()

    await store.commit(lease, None, [], [event("r1", 2)])
    assert threads_of(seen, "INSERT INTO events") == {loop_thread}
    seen.clear()

    assert await store.last_seq("r1") == 2
    assert loop_thread not in threads_of(seen, "SELECT")  # reads may be long: the thread's
    seen.clear()

    many = [event("r1", seq) for seq in range(3, 3 + QUICK_ROWS + 1)]
    await store.commit(lease, None, [], many)
    assert threads_of(seen, "INSERT INTO events") and loop_thread not in threads_of(seen, "INSERT INTO events")
    assert await store.last_seq("r1") == 3 + QUICK_ROWS


async def test_a_commit_meeting_another_process_lock_waits_on_the_thread_while_the_loop_runs(store) -> None:
    """Without the no-wait BEGIN on the loop, SQLite's busy wait (up to 5 s) would hold the whole event loop."""
    lease = await create(store, "r1")
    seen = trace(store)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async with sqlite_write_lock(store.path) as release:
        ticking = asyncio.create_task(ticker())
        asyncio.get_running_loop().call_later(1.0, release.set)
        t0 = time.monotonic()
        await store.commit(lease, None, [], [event("r1", 2)])
        waited = time.monotonic() - t0
        ticking.cancel()

    assert waited >= 0.9
    assert ticks >= 40, ticks  # the loop kept running while the commit waited: 100 ticks in an idle second
    assert threading.get_ident() not in threads_of(seen, "INSERT INTO events")
    assert await store.last_seq("r1") == 2


async def test_the_wal_is_checkpointed_on_the_thread_so_it_stays_bounded(store, tmp_path: Path) -> None:
    lease = await create(store, "r1")
    wal = Path(f"{store.path}-wal")
    seen = trace(store)
    seq = 1

    async def commits(n: int) -> int:
        nonlocal seq
        for _ in range(n):
            seq += 1
            await store.commit(lease, None, [], [event("r1", seq, message="x" * 2000)])
        return wal.stat().st_size

    after_two = await commits(2 * CHECKPOINT_EVERY)
    after_six = await commits(4 * CHECKPOINT_EVERY)

    checkpointing = threads_of(seen, "wal_checkpoint")
    assert checkpointing and threading.get_ident() not in checkpointing
    assert after_six <= after_two * 1.5, (after_two, after_six)  # without checkpoints the WAL grows with each commit
    assert await store.last_seq("r1") == seq
