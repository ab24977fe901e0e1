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
from odin_core.store.sqlite_queue import CHECKPOINT_EVERY, CHECKPOINT_ROWS

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def trace(store: SqliteStore) -> list[tuple[int, str]]:
    """(thread id, SQL) of every statement the store's connection runs from now on."""
    seen: list[tuple[int, str]] = []
    store._db.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))
    return seen


def threads_of(seen: list[tuple[int, str]], word: str) -> set[int]:
    return {t for t, sql in seen if word in sql}


async def test_a_runs_commit_is_written_on_the_loop_and_reads_and_large_writes_on_the_thread(store, until_idle) -> None:
    lease = await create(store, "r1")
    seen = trace(store)
    loop_thread = threading.get_ident()
    await until_idle(store._queue)  # the thread delivers, then looks at its queue once more before it sleeps

    await store.commit(lease, None, [], [event("r1", 2)])
    assert threads_of(seen, "INSERT INTO events") == {loop_thread}
    seen.clear()

    assert await store.last_seq("r1") == 2
    reading = threads_of(seen, "SELECT")
    assert reading and loop_thread not in reading  # reads may be long: the thread's
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
    assert ticks >= 20, ticks  # the loop kept running while the commit waited: 100 ticks in an idle second
    writing = threads_of(seen, "INSERT INTO events")
    assert writing and threading.get_ident() not in writing
    assert await store.last_seq("r1") == 2


async def test_the_wal_is_checkpointed_on_the_thread_so_it_stays_bounded(store) -> None:
    """Lone commits (written on the loop) and wide batches (31 runs at once, on the thread) alike: the WAL is
    checkpointed by what was written, off the loop (SQLite's own checkpoints, which would run inside a commit
    on the loop, are off: the trace callback would not see those)."""
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    leases = [await create(store, f"r{i}") for i in range(32)]
    wal = Path(f"{store.path}-wal")
    seen = trace(store)
    seq = 1
    text = "x" * 2000

    async def lone(n: int) -> int:
        nonlocal seq
        for _ in range(n):
            seq += 1
            await store.commit(leases[0], None, [], [event("r0", seq, message=text)])
        return wal.stat().st_size

    async def wide(n: int) -> int:
        for _ in range(n):
            seqs = [await store.last_seq(x.run_id) + 1 for x in leases[1:]]
            await asyncio.gather(
                *(
                    store.commit(x, None, [], [event(x.run_id, q, message=text)])
                    for x, q in zip(leases[1:], seqs, strict=True)
                )
            )
        return wal.stat().st_size

    lone_sizes = [await lone(2 * CHECKPOINT_EVERY), await lone(6 * CHECKPOINT_EVERY)]
    wide_sizes = [await wide(CHECKPOINT_ROWS // 16), await wide(CHECKPOINT_ROWS // 4)]

    checkpointing = threads_of(seen, "wal_checkpoint")
    assert checkpointing and threading.get_ident() not in checkpointing
    # Without checkpoints the WAL grows with each commit; checkpointed by transactions, not rows, the wide
    # batches' WAL would be 31 times the lone commits'.
    assert lone_sizes[1] <= lone_sizes[0] * 1.5, lone_sizes
    assert max(wide_sizes) <= 2 * max(lone_sizes), (lone_sizes, wide_sizes)
    assert await store.last_seq("r0") == seq
    assert await store.last_seq("r31") == 1 + CHECKPOINT_ROWS // 16 + CHECKPOINT_ROWS // 4
