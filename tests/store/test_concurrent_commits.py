"""Commits made at once (many runs' workers in one pass of the event loop) stay independent.

The SQLite store runs such commits as one batch in one transaction (group commit), each write in a
savepoint of its own; every backend must give each caller its own outcome: a refused write (a lost
lease, a duplicate event) is refused alone and writes nothing, the others are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from contract_support import create, event, sqlite_write_lock, task_records
from odin_core.errors import Conflict
from odin_core.model import RunStatus, TaskStatus
from odin_core.store import Lease, LeaseLost

RUNS = 20


async def test_commits_made_at_once_are_refused_or_written_each_on_its_own(store) -> None:
    leases = [await create(store, f"r{i}") for i in range(RUNS)]
    runs = [await store.get_run(lease.run_id) for lease in leases]

    def commit(i: int):  # run 3: a stale lease; run 7: an event number already taken; the rest: fine
        lease = Lease(leases[i].run_id, "B", 1) if i == 3 else leases[i]
        seq = 1 if i == 7 else 2
        task = task_records(lease.run_id)[0].evolve(status=TaskStatus.RUNNING)
        return store.commit(lease, runs[i].evolve(status=RunStatus.RUNNING), [task], [event(lease.run_id, seq)])

    outcomes = await asyncio.gather(*(commit(i) for i in range(RUNS)), return_exceptions=True)

    assert isinstance(outcomes[3], LeaseLost)
    assert isinstance(outcomes[7], Conflict) and not isinstance(outcomes[7], LeaseLost)
    assert [i for i, o in enumerate(outcomes) if o is not None] == [3, 7]
    for i, lease in enumerate(leases):
        run, tasks = await store.get_run(lease.run_id), await store.get_tasks(lease.run_id)
        refused = i in (3, 7)
        assert run.status is (RunStatus.BUILDING if refused else RunStatus.RUNNING), i
        assert tasks[0].status is (TaskStatus.WAITING if refused else TaskStatus.RUNNING), i
        assert await store.last_seq(lease.run_id) == (1 if refused else 2), i


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_groups_commits_made_at_once_into_few_transactions(store) -> None:
    leases = [await create(store, f"r{i}") for i in range(RUNS)]
    before = store._queue.batches
    await asyncio.gather(*(store.commit(lease, None, [], [event(lease.run_id, 2)]) for lease in leases))
    assert store._queue.batches - before < RUNS / 2  # without grouping: one batch (one transaction) per commit
    assert [await store.last_seq(lease.run_id) for lease in leases] == [2] * RUNS


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_commits_made_at_once_wait_out_another_process_holding_the_lock(store) -> None:
    leases = [await create(store, f"r{i}") for i in range(RUNS)]
    async with sqlite_write_lock(store.path) as release:
        asyncio.get_running_loop().call_later(1.0, release.set)
        t0 = time.monotonic()
        await asyncio.gather(*(store.commit(lease, None, [], [event(lease.run_id, 2)]) for lease in leases))
    assert time.monotonic() - t0 >= 0.9
    assert [await store.last_seq(lease.run_id) for lease in leases] == [2] * RUNS


async def test_a_cancelled_commit_lands_whole_or_not_at_all(store) -> None:
    """The worker does not shield its commits (store contract): a caller cancelled at any point of a commit
    leaves the run either as it was or with the whole commit (run, tasks and every event), and the store
    serves the next commit as usual. Cancelled after 0, 1, 2, ... passes of the loop, so the cancel lands
    before, inside and after the commit's round trips."""
    in_flight = 0
    for passes in range(12):
        lease = await create(store, f"c{passes}")
        run = await store.get_run(lease.run_id)
        tasks = [t.evolve(status=TaskStatus.RUNNING) for t in task_records(lease.run_id)]
        events = [event(lease.run_id, 2, task="prep"), event(lease.run_id, 3, task="train")]
        commit = asyncio.ensure_future(store.commit(lease, run.evolve(status=RunStatus.RUNNING), tasks, events))
        for _ in range(passes):
            await asyncio.sleep(0)
        in_flight += passes > 0 and not commit.done()
        commit.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await commit
        landed, seqs = await _landed(store, lease.run_id)
        deadline = time.monotonic() + SETTLE_S
        while not (all(landed) and seqs == [1, 2, 3]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # a commit finishing in the background (a shielded one) lands meanwhile
            landed, seqs = await _landed(store, lease.run_id)
        if not (all(landed) and seqs == [1, 2, 3]):
            assert not any(landed) and seqs == [1], (passes, landed, seqs)  # else a half-done commit
        seq = seqs[-1]
        await store.commit(lease, None, [], [event(lease.run_id, seq + 1)])  # the store still serves this run
        assert [e.seq for e in await store.events(lease.run_id)][-1] == seq + 1
    assert in_flight  # some cancels came while the commit was under way, not only before or after it


SETTLE_S = 3.0
"""How long a cancelled commit may take to land in the background before 'not at all' is concluded."""


async def _landed(store, run_id: str) -> tuple[tuple[bool, ...], list[int]]:
    """Which of the commit's records are written (run, then each task), and the run's event numbers."""
    run, tasks = await store.get_run(run_id), await store.get_tasks(run_id)
    landed = (run.status is RunStatus.RUNNING, *(t.status is TaskStatus.RUNNING for t in tasks))
    return landed, [e.seq for e in await store.events(run_id)]
