"""The job-store contract (store/base.py), one suite for SQLite, PostgreSQL and MongoDB (FerretDB).

Every test runs once per backend against a real server (tests/store/conftest.py); what one
backend does, the others must do identically.
"""

from __future__ import annotations

import asyncio

import pytest
from contract_support import T0, TASKS, create, event, finish, run_record, task_records
from odin_core.errors import Conflict, UpstreamError
from odin_core.model import RunStatus, TaskStatus
from odin_core.store import Lease, LeaseLost, open_store


async def test_a_new_run_is_held_at_epoch_1_and_reads_back(store) -> None:
    lease = await create(store, "r1")
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.BUILDING and run.owner == "A"
    assert [t.name for t in await store.get_tasks("r1")] == list(TASKS)
    assert await store.get_spec("r1") == {"name": "flow", "tasks": list(TASKS)}
    assert [e.seq for e in await store.events("r1")] == [1]
    assert await store.last_seq("r1") == 1
    info = await store.lease_of("r1")
    assert info is not None and info.lease == lease and info.heartbeat == T0


async def test_creating_an_existing_id_writes_nothing(store) -> None:
    await create(store, "r1")
    other = run_record("r1", job="other/job", owner="B")
    assert await store.create_run(other, {}, task_records("r1", ("x",)), [event("r1", 1, "X")], now=T0) is None
    run = await store.get_run("r1")
    assert run is not None and run.job == "team/job" and run.owner == "A"
    assert [t.name for t in await store.get_tasks("r1")] == list(TASKS)
    assert [e.status for e in await store.events("r1")] == ["BUILDING"]


async def test_unknown_runs_read_as_missing(store) -> None:
    assert await store.get_run("nope") is None
    assert await store.get_spec("nope") is None
    assert await store.get_tasks("nope") == []
    assert await store.events("nope") == []
    assert await store.last_seq("nope") == 0
    assert await store.lease_of("nope") is None
    assert await store.delete_run("nope") is False


async def test_a_commit_writes_run_tasks_and_events_together(store) -> None:
    lease = await create(store, "r1")
    run = await store.get_run("r1")
    tasks = await store.get_tasks("r1")
    running = tasks[1].evolve(status=TaskStatus.RUNNING, attempt=1, resource_id="pid-7", outputs={"acc": 0.9})
    await store.commit(
        lease, run.evolve(status=RunStatus.RUNNING), [running], [event("r1", 2), event("r1", 3, "RUNNING", "train")]
    )
    assert (await store.get_run("r1")).status is RunStatus.RUNNING
    after = await store.get_tasks("r1")
    assert [t.name for t in after] == list(TASKS), "spec order is kept"
    assert after[1] == running and after[0] == tasks[0]
    assert [(e.seq, e.task) for e in await store.events("r1")] == [(1, ""), (2, ""), (3, "train")]
    assert await store.last_seq("r1") == 3
    await store.commit(lease, None, [], [event("r1", 4, "NOTE")])  # events alone
    assert await store.last_seq("r1") == 4


async def test_a_commit_under_a_lost_lease_writes_nothing(store) -> None:
    lease = await create(store, "r1")
    run = await store.get_run("r1")
    for stale in (Lease("r1", "A", 2), Lease("r1", "B", 1), Lease("gone", "A", 1)):
        with pytest.raises(LeaseLost) as lost:
            await store.commit(stale, run.evolve(status=RunStatus.DONE), task_records("r1")[:1], [event("r1", 2)])
        assert lost.value.lease == stale
        with pytest.raises(LeaseLost):
            await store.commit(stale, None, [], [event("r1", 2)])  # events alone are fenced too
    assert (await store.get_run("r1")).status is RunStatus.BUILDING
    assert await store.last_seq("r1") == 1
    await store.commit(lease, run.evolve(status=RunStatus.RUNNING), [], [event("r1", 2)])


async def test_an_event_number_is_taken_once(store) -> None:
    lease = await create(store, "r1")
    run = await store.get_run("r1")
    with pytest.raises(Conflict) as refused:
        await store.commit(lease, run.evolve(status=RunStatus.DONE), [], [event("r1", 1, "DUPLICATE")])
    assert not isinstance(refused.value, LeaseLost), "the lease holds: the event number is what is refused"
    assert (await store.get_run("r1")).status is RunStatus.BUILDING, "the refused commit wrote nothing"
    assert [e.status for e in await store.events("r1")] == ["BUILDING"]


@pytest.mark.parametrize("round_", range(4))
async def test_two_engines_racing_for_a_stale_run_one_wins(open_stores, round_: int) -> None:
    a, b, c = await open_stores(), await open_stores(), await open_stores()
    leases = [await create(a, f"r{i}", owner="dead", at=T0 + i) for i in range(6)]
    won_b, won_c = await asyncio.gather(
        b.claim_stale("B", now=T0 + 100, stale_before=T0 + 50), c.claim_stale("C", now=T0 + 100, stale_before=T0 + 50)
    )
    ids_b, ids_c = {x.run_id for x in won_b}, {x.run_id for x in won_c}
    assert not ids_b & ids_c, "no run has two winners"
    assert ids_b | ids_c == {x.run_id for x in leases}
    for winner, store in ((won_b, b), (won_c, c)):
        for lease in winner:
            assert lease.epoch == 2
            run = await store.get_run(lease.run_id)
            assert run.owner == lease.owner
            await store.commit(lease, run.evolve(status=RunStatus.RUNNING), [], [event(lease.run_id, 2)])
    for old in leases:  # the superseded engine
        with pytest.raises(LeaseLost):
            await a.commit(old, None, [], [event(old.run_id, 3)])


async def test_take_over_is_a_compare_and_set(open_stores) -> None:
    a, b, c = await open_stores(), await open_stores(), await open_stores()
    lease = await create(a, "r1")
    results = await asyncio.gather(*(s.take_over(lease, o, T0 + 5) for s, o in ((b, "B"), (c, "C"), (b, "B2"))))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].epoch == 2
    assert (await a.lease_of("r1")).lease == winners[0]
    assert await a.take_over(lease, "D", T0 + 6) is None, "the old lease is gone"
    await finish(b if winners[0].owner.startswith("B") else c, winners[0])
    assert await a.take_over(winners[0], "D", T0 + 7) is None, "an ended run is not taken over"


async def test_stale_claims_take_only_other_owners_quiet_active_runs(store) -> None:
    await create(store, "fresh", owner="A", now=T0 + 90)
    await create(store, "mine", owner="B", now=T0)
    ended = await create(store, "ended", owner="A", now=T0)
    await finish(store, ended)
    for i in range(5):
        await create(store, f"quiet{i}", owner="A", at=T0 + 10 - i, now=T0)
    first = await store.claim_stale("B", now=T0 + 100, stale_before=T0 + 50, limit=3)
    assert [x.run_id for x in first] == ["quiet4", "quiet3", "quiet2"], "oldest submissions first, at most limit"
    rest = await store.claim_stale("B", now=T0 + 100, stale_before=T0 + 50)
    assert [x.run_id for x in rest] == ["quiet1", "quiet0"]
    assert await store.claim_stale("B", now=T0 + 100, stale_before=T0 + 50) == []


async def test_renew_touches_only_the_owners_active_runs(store) -> None:
    held = [await create(store, f"a{i}", owner="A") for i in range(3)]
    await finish(store, held[2])
    await create(store, "b0", owner="B")
    assert await store.renew("A", T0 + 30) == {"a0": None, "a1": None}
    assert (await store.lease_of("a0")).heartbeat == T0 + 30
    assert (await store.lease_of("a2")).heartbeat == T0, "an ended run's heartbeat is left alone"
    assert (await store.lease_of("b0")).heartbeat == T0
    assert await store.request_stop("a1", "quota exceeded")
    assert await store.renew("A", T0 + 31) == {"a0": None, "a1": "quota exceeded"}
    taken = await store.take_over(held[0], "C", T0 + 32)
    assert taken is not None
    assert await store.renew("A", T0 + 33) == {"a1": "quota exceeded"}, "a run taken over is missing from the answer"


async def test_released_runs_are_taken_over_at_once(store) -> None:
    await create(store, "r1", owner="A", now=T0 + 100)
    await create(store, "r2", owner="A", now=T0 + 100)
    assert await store.claim_stale("B", now=T0 + 101, stale_before=T0 + 90) == []
    await store.release("A", ["r1"])
    await store.release("B", ["r2"])  # not B's: no effect
    assert [x.run_id for x in await store.claim_stale("B", now=T0 + 101, stale_before=T0 + 90)] == ["r1"]


async def test_reopen_makes_an_ended_run_active_under_a_new_epoch(store) -> None:
    lease = await create(store, "r1")
    assert await store.reopen_run("r1", "B", T0 + 5) is None, "an active run is not reopened"
    assert await store.reopen_run("nope", "B", T0 + 5) is None
    await finish(store, lease, RunStatus.TERMINATED)
    again = await store.reopen_run("r1", "B", T0 + 100)
    assert again == Lease("r1", "B", 2)
    info = await store.lease_of("r1")
    assert info.lease == again and info.heartbeat == T0 + 100
    assert await store.renew("B", T0 + 101) == {"r1": None}, "the reopened run is active"
    with pytest.raises(LeaseLost):
        await store.commit(lease, None, [], [event("r1", 3)])
    run = await store.get_run("r1")
    await store.commit(again, run.evolve(status=RunStatus.BUILDING, completed=None), [], [event("r1", 3, "BUILDING")])
    assert (await store.get_run("r1")).owner == "B"


async def test_stop_requests_are_kept_apart_from_the_engines_writes(store) -> None:
    lease = await create(store, "r1")
    assert await store.request_stop("r1", "stopped by alice")
    assert not await store.request_stop("r1", "stopped by bob"), "the first request stands"
    run = await store.get_run("r1")
    assert run.stop_requested and run.message == "stopped by alice"
    await store.commit(lease, run.evolve(status=RunStatus.RUNNING, stop_requested=False, message=""), [], [])
    assert (await store.get_run("r1")).stop_requested, "a commit does not clear another process's request"
    await finish(store, lease, RunStatus.TERMINATED)
    assert not await store.request_stop("r1", "too late"), "only active runs"
    again = await store.reopen_run("r1", "A", T0 + 200)
    assert again is not None and (await store.lease_of("r1")) is not None
    assert await store.renew("A", T0 + 201) == {"r1": None}, "reopening clears the request"
    assert not await store.request_stop("nope", "x")


async def test_delete_removes_everything(store) -> None:
    lease = await create(store, "r1")
    await finish(store, lease)
    assert await store.delete_run("r1")
    assert await store.get_run("r1") is None and await store.get_tasks("r1") == [] and await store.events("r1") == []
    assert await store.get_spec("r1") is None and await store.last_seq("r1") == 0
    assert not await store.delete_run("r1")
    await create(store, "r1")  # the id is free again, with none of the old events
    assert [e.seq for e in await store.events("r1")] == [1]


async def test_events_page_in_order(store) -> None:
    lease = await create(store, "r1")
    await store.commit(lease, None, [], [event("r1", s) for s in range(2, 31)])
    assert [e.seq for e in await store.events("r1", after_seq=10, limit=5)] == [11, 12, 13, 14, 15]
    assert [e.seq for e in await store.events("r1", after_seq=28)] == [29, 30]
    assert await store.events("r1", after_seq=30) == []
    assert await store.events("r1", limit=0) == []


async def test_records_round_trip_exactly(store) -> None:
    lease = await create(store, "r1")
    run = await store.get_run("r1")
    t = (await store.get_tasks("r1"))[0].evolve(
        status=TaskStatus.FAILED,
        attempt=3,
        args=("--lr", 0.001, 3, True, None, {"nested": [1, "two"]}),
        outputs={"score": 0.123456789, "text": 'naïve ✓ "quoted" \\ back', "val.acc": 1, "$odd": {"a.b": [2]}},
        exit_code=137,
        message="OOMKilled\nline two",
        started=T0 + 0.25,
        completed=T0 + 1.5,
    )
    ended = run.evolve(status=RunStatus.TERMINATED, completed=T0 + 2.0, message="task prep failed", early_exit=True)
    await store.commit(lease, ended, [t], [event("r1", 2, "FAILED", "prep", "exit code 137")])
    assert (await store.get_tasks("r1"))[0] == t
    assert await store.get_run("r1") == ended
    assert (await store.events("r1", after_seq=1))[0] == event("r1", 2, "FAILED", "prep", "exit code 137")


async def test_a_nul_character_does_not_break_a_commit(store) -> None:
    lease = await create(store, "r1")
    t = (await store.get_tasks("r1"))[0].evolve(message="bad\x00output")
    await store.commit(lease, None, [t], [event("r1", 2, "FAILED", "prep", "bad\x00output")])
    assert (await store.get_tasks("r1"))[0].message in ("bad\x00output", "bad\ufffdoutput")


async def test_a_reopened_store_has_everything(open_stores, store_url) -> None:
    first = await open_stores()
    lease = await create(first, "r1")
    await first.close()
    second = await open_stores()
    assert (await second.lease_of("r1")).lease == lease
    assert await second.last_seq("r1") == 1
    await finish(second, lease)


async def test_an_unreachable_store_is_one_clear_error(backend, tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    url = {
        "sqlite": f"sqlite:///{tmp_path / 'file'}/odin.db",
        "postgres": f"postgresql://odin:secret@127.0.0.1:{port}/odin",
        "mongo": f"mongodb://odin:secret@127.0.0.1:{port}/odin",
    }[backend]
    if backend == "sqlite":
        (tmp_path / "file").write_text("a file where a directory should be")
    from odin_core.store import StoreSettings

    with pytest.raises(UpstreamError) as e:
        await open_store(url, StoreSettings(connect_timeout_s=1.0))
    text = str(e.value)
    assert "\n" not in text.strip() and "secret" not in text


async def test_heartbeats_and_stop_requests_racing_commits_lose_nothing(open_stores) -> None:
    """Other processes write beside the driving engine all the time; none of its commits may be lost."""
    engine, other = await open_stores(), await open_stores()
    lease = await create(engine, "r1")
    run = await engine.get_run("r1")
    tasks = await engine.get_tasks("r1")
    rounds = 40

    async def commits() -> None:
        for i in range(rounds):
            changed = tasks[i % len(tasks)].evolve(attempt=i + 1, message=f"round {i}")
            await engine.commit(
                lease, run.evolve(status=RunStatus.RUNNING, message=f"round {i}"), [changed], [event("r1", i + 2)]
            )

    async def beats() -> None:
        for i in range(rounds):
            await engine.renew("A", T0 + i)
            await other.lease_of("r1")
        assert await other.request_stop("r1", "stop racing")

    await asyncio.gather(commits(), beats())
    assert (await engine.get_run("r1")).message == "stop racing", "the stop request shows"
    assert [e.seq for e in await other.events("r1")] == list(range(1, rounds + 2))
    latest = {t.name: t.attempt for t in await other.get_tasks("r1")}
    assert latest == {TASKS[(rounds - 3 + k) % 3]: rounds - 2 + k for k in range(3)}
    assert await engine.renew("A", T0 + 99) == {"r1": "stop racing"}


async def test_ended_runs_are_found_for_retention_oldest_first(store) -> None:
    for i, end in enumerate([T0 + 300, T0 + 100, T0 + 200]):
        await finish(store, await create(store, f"old{i}"), at=end)
    await create(store, "active")
    assert await store.ended_before(T0 + 250) == ["old1", "old2"]
    assert await store.ended_before(T0 + 1000, limit=2) == ["old1", "old2"]
    assert await store.ended_before(T0 + 50) == []
