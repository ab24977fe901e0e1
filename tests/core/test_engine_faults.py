"""The engine under faults: failed starts, temporary executor errors, lost leases, a failing store, races.

Every test here failed (hung, or ended wrong) on the engine before fenced leases and outcome-driven
decisions. Faults are injected around the real components: subclasses of the real local executor and
SQLite store that fail on purpose where a real cluster or disk would.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import psutil
import pytest
from engine_support import data_dir, pipeline, run_to_end, task, until
from odin_core.engine import Engine
from odin_core.errors import InvalidRequest, TemporaryError
from odin_core.executors.base import Launch
from odin_core.executors.local import LocalExecutor
from odin_core.model import RunRecord, RunStatus, TaskRecord, TaskStatus
from odin_core.spec.model import RetryPolicy, TaskSpec
from odin_core.store.sqlite import SqliteStore

WRITE_OUTPUT = "import json,os; json.dump({'n': 1}, open(os.environ['ODIN_OUTPUTS'], 'w'))"
SLEEP = "import time; time.sleep({})"


class FlakyExecutor(LocalExecutor):
    """Refuses the first ``failures`` submits of task ``name`` as a busy API server would (429)."""

    def __init__(self, data: Path, name: str, failures: int) -> None:
        super().__init__(data)
        self.name_to_fail, self.failures, self.refused = name, failures, 0

    async def submit(self, launch: Launch) -> str:
        if launch.task.name == self.name_to_fail and self.refused < self.failures:
            self.refused += 1
            raise TemporaryError("429 Too Many Requests", delay_s=0.05)
        return await super().submit(launch)


class GatedEnd(LocalExecutor):
    """Holds the end of a run (``run_finished``) until ``release`` is set: the run is winding down meanwhile."""

    def __init__(self, data: Path) -> None:
        super().__init__(data)
        self.winding_down = asyncio.Event()
        self.release = asyncio.Event()

    async def run_finished(self, run_id: str, records: list[TaskRecord]) -> None:
        if not self.release.is_set():
            self.winding_down.set()
            await self.release.wait()


class CountedReads(SqliteStore):
    """Counts ``get_run`` calls (the reads ``Engine.wait`` may make)."""

    reads = 0

    async def get_run(self, run_id: str) -> RunRecord | None:
        self.reads += 1
        return await super().get_run(run_id)


class LockedRenew(SqliteStore):
    """A store whose heartbeat writes fail while ``locked`` is set (another process holds the database)."""

    locked = False
    renew_calls = 0

    async def renew(self, owner: str, now: float) -> dict[str, str | None]:
        type(self).renew_calls += 1
        if type(self).locked:
            raise sqlite3.OperationalError("database is locked")
        return await super().renew(owner, now)


@pytest.fixture(autouse=True)
def _unlock() -> None:
    LockedRenew.locked, LockedRenew.renew_calls = False, 0


# -- runs never hang -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "b",
    [
        pytest.param(task("b", "print(1)", args=("^a.outputs.nope",), depends=("a",)), id="unresolvable-reference"),
        pytest.param(TaskSpec("b", "img", ("/no/such/command",), depends=("a",)), id="missing-command"),
    ],
)
async def test_a_start_failure_after_the_first_pass_ends_the_run(make_engine, b: TaskSpec) -> None:
    engine = await make_engine()
    final, tasks = await run_to_end(engine, pipeline(task("a", WRITE_OUTPUT), b, task("c", "pass", depends=("b",))))
    assert final.status is RunStatus.TERMINATED
    assert tasks["b"].status is TaskStatus.FAILED
    assert tasks["c"].status is TaskStatus.SKIPPED
    assert ("nope" in tasks["b"].message) or ("/no/such/command" in tasks["b"].message), tasks["b"].message
    assert final.message.startswith("task 'b' failed")


async def test_temporary_submit_errors_are_retried_without_using_the_tasks_retries(make_engine, tmp_path) -> None:
    executor = FlakyExecutor(data_dir(tmp_path), "b", failures=3)
    engine = await make_engine(executor=executor)
    final, tasks = await run_to_end(engine, pipeline(task("a", "pass"), task("b", "pass", depends=("a",))))
    assert final.status is RunStatus.DONE, final.message
    assert executor.refused == 3
    assert tasks["b"].attempt == 1  # no retries configured, and none consumed
    messages = [e.message for e in await engine.store.events(final.run_id) if e.task == "b"]
    assert sum("429 Too Many Requests" in m for m in messages) == 3


async def test_a_submit_that_keeps_failing_temporarily_gives_up(make_engine, tmp_path) -> None:
    executor = FlakyExecutor(data_dir(tmp_path), "a", failures=10**6)
    engine = await make_engine(executor=executor, submit_retry_for_s=0.3)
    spec = pipeline(task("a", "pass", retries=RetryPolicy(limit=1, backoff_s=0.01)))
    final, tasks = await run_to_end(engine, spec)
    assert final.status is RunStatus.TERMINATED
    assert tasks["a"].status is TaskStatus.FAILED
    assert tasks["a"].attempt == 2  # gave up on attempt 1, then the task's one retry gave up too
    assert "could not be submitted" in tasks["a"].message


async def test_engine_wide_slots_are_reused_as_soon_as_a_task_ends(make_engine) -> None:
    engine = await make_engine(max_parallel_total=2)
    await engine.start(adopt=False)
    first = await engine.submit(pipeline(task("quick", "pass"), task("slow", SLEEP.format(4))))
    second = await engine.submit(pipeline(task("only", "pass")))
    done = await asyncio.wait_for(engine.wait(second.run_id), 30)
    assert done.status is RunStatus.DONE
    slow = {t.name: t for t in await engine.store.get_tasks(first.run_id)}["slow"]
    assert slow.status is TaskStatus.RUNNING, "the second run had to wait for the whole first run"
    await engine.stop(first.run_id)


# -- ownership: registry by identity, fenced writes, a supervised heartbeat ------------------------


async def test_resubmitting_a_run_while_it_winds_down_keeps_the_new_worker(make_engine, tmp_path) -> None:
    executor = GatedEnd(data_dir(tmp_path))
    engine = await make_engine(executor=executor)
    await engine.start(adopt=False)
    marker = tmp_path / "fixed"
    flaky = task("t", f"import os,sys; sys.exit(0 if os.path.exists({str(marker)!r}) else 1)", depends=("ok",))
    run = await engine.submit(pipeline(task("ok", "pass"), flaky))
    await asyncio.wait_for(executor.winding_down.wait(), 30)  # ended in the store; its worker still winding down
    assert (await engine.store.get_run(run.run_id)).status is RunStatus.TERMINATED
    marker.touch()
    reused, rerun = await engine.resubmit(run.run_id)
    assert (reused, rerun) == (["ok"], ["t"])
    executor.release.set()  # the old worker finishes now: it must not unregister the new one
    final = await asyncio.wait_for(engine.wait(run.run_id), 30)
    assert final.status is RunStatus.DONE, final.message


async def test_an_engine_whose_leases_were_taken_over_lets_go_quietly(make_engine) -> None:
    stuck = await make_engine(store_class=LockedRenew, heartbeat_s=0.1, lease_grace=1000)
    await stuck.start(adopt=False)
    a = task("a", SLEEP.format(0.5), retries=RetryPolicy(limit=1, backoff_s=0.01))  # lost if not re-attached
    run = await stuck.submit(pipeline(a, task("b", "pass", depends=("a",))))
    waiting = asyncio.ensure_future(stuck.wait(run.run_id))  # answered when it lets go: from the store
    LockedRenew.locked = True  # its heartbeat stops reaching the store; it keeps driving (huge grace)
    successor = await make_engine(heartbeat_s=0.1, takeover_after_s=0.5)
    await successor.start(adopt=True)
    await until(lambda: successor.driving(run.run_id))
    await until(lambda: not stuck.driving(run.run_id))  # refused commits, or the heartbeat, made it let go
    seen_by_stuck = await asyncio.wait_for(waiting, 30)
    assert seen_by_stuck.owner == successor.owner  # not the record the stuck engine held when it let go
    final = await asyncio.wait_for(successor.wait(run.run_id), 30)
    assert final.status is RunStatus.DONE, final.message
    assert final.owner == successor.owner
    events = await successor.store.events(run.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert not [e for e in events if "internal error" in e.message]


async def test_the_heartbeat_survives_store_errors_and_still_sees_stops(make_engine) -> None:
    driver = await make_engine(store_class=LockedRenew, heartbeat_s=0.05, lease_grace=1000)
    await driver.start(adopt=False)
    run = await driver.submit(pipeline(task("a", SLEEP.format(60))))
    LockedRenew.locked = True
    calls = LockedRenew.renew_calls
    await until(lambda: LockedRenew.renew_calls >= calls + 3)  # three failed beats
    LockedRenew.locked = False
    other = await make_engine()  # `odin stop` in another shell: the driver sees it on its next beat
    await other.store.request_stop(run.run_id, "stopped from elsewhere")
    final = await asyncio.wait_for(driver.wait(run.run_id), 30)
    assert final.status is RunStatus.TERMINATED
    assert final.message == "stopped from elsewhere"


async def test_an_engine_that_cannot_renew_stops_driving_then_picks_its_runs_up_again(make_engine) -> None:
    engine = await make_engine(store_class=LockedRenew, heartbeat_s=0.05, lease_grace=0.01, takeover_after_s=30)
    await engine.start(adopt=False)
    a = task("a", SLEEP.format(1), retries=RetryPolicy(limit=1, backoff_s=0.01))  # lost if not re-attached
    run = await engine.submit(pipeline(a, task("b", "pass", depends=("a",))))
    LockedRenew.locked = True
    await until(lambda: not engine.driving(run.run_id))
    LockedRenew.locked = False

    async def ended() -> bool:
        current = await engine.store.get_run(run.run_id)
        return current is not None and current.status.is_terminal

    await until(ended, 60)
    final = await engine.store.get_run(run.run_id)
    assert final is not None and final.status is RunStatus.DONE, final


async def test_the_heartbeat_touches_only_active_runs(make_engine) -> None:
    engine = await make_engine()
    await engine.start(adopt=False)
    for _ in range(30):
        ended = await engine.submit(pipeline(task("a", "pass")))
        await engine.wait(ended.run_id)
    live = await engine.submit(pipeline(task("a", SLEEP.format(30))))
    held = await engine.store.renew(engine.owner, time.time())
    assert held == {live.run_id: None}
    plan = await engine.store.explain(
        "UPDATE runs SET heartbeat=1 WHERE owner='x' AND status IN ('BUILDING','RUNNING')"
    )
    assert "runs_active_owner" in plan, plan
    await engine.stop(live.run_id)


# -- ids from outside ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../victim", "/etc", "..", "a--b", "UPPER", "x" * 64, "nul\x00byte", ""])
async def test_hostile_run_ids_are_refused_before_anything_is_touched(make_engine, tmp_path, bad: str) -> None:
    engine: Engine = await make_engine()
    await engine.start(adopt=False)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(InvalidRequest):
        await engine.submit(pipeline(task("a", "pass")), run_id=bad or "-")
    for call in (engine.stop, engine.resubmit):
        with pytest.raises(InvalidRequest):
            await call(bad)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


async def test_wait_answers_a_run_that_ended_here_with_its_committed_record(make_engine) -> None:
    engine = await make_engine(store_class=CountedReads)
    await engine.start(adopt=False)
    store = engine.store
    assert isinstance(store, CountedReads)
    for code in ("import time; time.sleep(0.3)", "import time; time.sleep(0.3); raise SystemExit(3)"):
        run = await engine.submit(pipeline(task("a", code)))  # still running when waited for
        reads = store.reads
        final = await asyncio.wait_for(engine.wait(run.run_id), 30)
        assert store.reads == reads  # what its worker committed last, not read back
        stored = await store.get_run(run.run_id)
        assert stored is not None and final.to_record() == stored.to_record()
        assert final.status.is_terminal and final.completed
        reads = store.reads
        assert (await engine.wait(run.run_id)).to_record() == stored.to_record()  # no longer driven: read
        assert store.reads == reads + 1


async def test_a_task_whose_kill_a_crash_cut_short_is_killed_by_the_core_that_adopts_the_run(make_engine) -> None:
    """A core that dies between committing a task's end (CANCELLED) and its kill leaves the task running; before,
    nothing ever killed it: the next core re-attached only to active tasks, and ended the run."""
    first = await make_engine()
    await first.start(adopt=False)
    run = await first.submit(pipeline(task("long", SLEEP.format(60))))

    async def running() -> TaskRecord | None:
        (rec,) = await first.store.get_tasks(run.run_id)
        return rec if rec.status is TaskStatus.RUNNING else None

    await until(running)
    rec = await running()
    assert rec is not None
    pid = int(rec.resource_id.removeprefix("pid:"))  # the supervisor's
    worker = first._workers[run.run_id]
    cancelled = rec.evolve(status=TaskStatus.CANCELLED, message="stopped by user", completed=time.time())
    await first.store.commit(worker.lease, None, [cancelled], [])  # the intent landed; the core dies before acting
    await first.close()  # lets go of the run, its attempts go on
    assert psutil.pid_exists(pid)

    second = await make_engine()
    await second.start(adopt=True)
    final = await asyncio.wait_for(second.wait(run.run_id), 60)
    assert final.status.is_terminal
    await until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
