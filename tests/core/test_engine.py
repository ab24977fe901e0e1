"""The engine against the real local executor and the real SQLite store."""

from __future__ import annotations

import asyncio
import time

import pytest
from engine_support import pipeline, run_to_end, task, task_process_alive, until
from odin_core.errors import Conflict
from odin_core.executors.local import log_path
from odin_core.model import RunStatus, TaskStatus
from odin_core.spec.model import PipelineSpec, RetryPolicy


async def test_outputs_flow_through_references(make_engine):
    engine = await make_engine()
    spec = pipeline(
        task("a", "import json,os; json.dump({'n': 41, 'path': '/x'}, open(os.environ['ODIN_OUTPUTS'], 'w'))"),
        task(
            "b",
            "import sys; print(int(sys.argv[1]) + 1, sys.argv[2])",
            args=("^a.outputs.n", "at {^a.outputs.path}"),
            depends=("a",),
        ),
    )
    final, tasks = await run_to_end(engine, spec)
    assert final.status is RunStatus.DONE, final.message
    assert tasks["a"].outputs == {"n": 41, "path": "/x"}
    assert tasks["b"].args == (41, "at /x")
    log = log_path(engine.data_path / final.run_id, "b").read_text()
    assert log == "42 at /x\n"


async def test_events_are_numbered_without_gaps_and_replayable(make_engine):
    engine = await make_engine()
    final, _ = await run_to_end(engine, pipeline(task("a", "pass"), task("b", "pass", depends=("a",))))
    events = await engine.store.events(final.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    watched = [e async for e in engine.watch(final.run_id, after_seq=2)]
    assert [e.seq for e in watched] == [e.seq for e in events[2:]]
    assert (watched[-1].kind, watched[-1].status) == ("run", "DONE")


async def test_failure_stops_siblings_and_names_the_cause(make_engine):
    engine = await make_engine()
    spec = pipeline(
        task("bad", "import sys; print('disk full'); sys.exit(3)"),
        task("slow", "import time; time.sleep(30)"),
        task("after", "pass", depends=("bad",)),
    )
    t0 = time.monotonic()
    final, tasks = await run_to_end(engine, spec)
    assert time.monotonic() - t0 < 20
    assert final.status is RunStatus.TERMINATED
    assert final.message == "task 'bad' failed: exit code 3: disk full"
    assert tasks["slow"].status is TaskStatus.CANCELLED
    assert tasks["after"].status is TaskStatus.SKIPPED


async def test_retry_then_success_and_timeout_kills_the_process(make_engine):
    engine = await make_engine()
    spec = pipeline(
        task(
            "flaky",
            "import os,sys; sys.exit(0 if os.environ['ODIN_ATTEMPT'] == '2' else 1)",
            retries=RetryPolicy(limit=2, backoff_s=0.05),
        ),
        task("hang", "import time; time.sleep(60)", timeout_s=0.5),
        on_failure="continue",
    )
    final, tasks = await run_to_end(engine, spec)
    assert (tasks["flaky"].status, tasks["flaky"].attempt) == (TaskStatus.SUCCEEDED, 2)
    assert (tasks["hang"].status, tasks["hang"].message) == (TaskStatus.FAILED, "timed out after 0.5s")
    assert final.status is RunStatus.TERMINATED


async def test_submit_with_the_same_run_id_is_idempotent(make_engine):
    engine = await make_engine()
    spec = pipeline(task("a", "pass"))
    await engine.start(adopt=False)
    first = await engine.submit(spec, run_id="fixed-1")
    again = await engine.submit(spec, run_id="fixed-1")
    assert again.run_id == first.run_id == "fixed-1"
    await engine.wait("fixed-1")
    assert len(await engine.store.list_runs()) == 1
    with pytest.raises(Conflict):
        await engine.submit(PipelineSpec("q", spec.tasks, job="other"), run_id="fixed-1")


async def test_parallelism_is_bounded_per_run_and_overall(make_engine, tmp_path):
    """At most 2 tasks of a run, and 3 in all, run at once, and both bounds are reached. Measured by the tasks'
    own processes, which append when they ran: the store is read run by run, and a sum of reads taken one after
    the other counted a slot twice when it passed from one run to another between two reads."""
    engine = await make_engine(max_parallel_total=3)
    spans = tmp_path / "spans"
    sleepy = (
        "import os, time\n"
        "t = time.time(); time.sleep(0.3)\n"
        f"with open({str(spans)!r}, 'a') as f: f.write('%s %r %r\\n' % (os.environ['ODIN_PIPE_ID'], t, time.time()))"
    )
    await engine.start(adopt=False)
    runs = [await engine.submit(pipeline(*(task(f"t{i}", sleepy) for i in range(4)), max_parallel=2)) for _ in range(3)]
    finals = [await asyncio.wait_for(engine.wait(r.run_id), 60) for r in runs]
    assert [f.status for f in finals] == [RunStatus.DONE] * 3
    ran = [line.split() for line in spans.read_text().splitlines()]
    assert sorted(r for r, _, _ in ran) == sorted(r.run_id for r in runs for _ in range(4))

    def peak(intervals: list[tuple[float, float]]) -> int:
        edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])  # ends first on a tie
        running = most = 0
        for _, step in edges:
            running += step
            most = max(most, running)
        return most

    assert peak([(float(a), float(b)) for _, a, b in ran]) == 3
    assert max(peak([(float(a), float(b)) for r, a, b in ran if r == run.run_id]) for run in runs) == 2


async def test_stop_from_another_engine_process_is_noticed(make_engine):
    driver = await make_engine(heartbeat_s=0.2)
    other = await make_engine()
    await driver.start(adopt=False)
    run = await driver.submit(pipeline(task("long", "import time; time.sleep(60)")))
    await asyncio.sleep(0.3)
    await other.stop(run.run_id, "stopped elsewhere")
    final = await asyncio.wait_for(driver.wait(run.run_id), 10)
    assert (final.status, final.message) == (RunStatus.TERMINATED, "stopped elsewhere")


async def test_a_new_engine_takes_over_an_orphaned_run(make_engine, tmp_path):
    """The first engine goes away mid-run; the second rebuilds the run from the store, re-attaches to the
    attempt of b that is still running (local attempts outlive their engine) and finishes the run."""
    first = await make_engine()
    go = tmp_path / "go"
    spec = pipeline(
        task("a", "pass"),
        task(
            "b",
            f"import os,time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.02)",
            depends=("a",),
            retries=RetryPolicy(limit=1, backoff_s=0.0),
        ),
        task("c", "pass", depends=("b",)),
    )
    await first.start(adopt=False)
    run = await first.submit(spec)
    while (await first.store.get_tasks(run.run_id))[1].status is not TaskStatus.RUNNING:
        await asyncio.sleep(0.05)
    await first.close()  # the engine is gone; its attempt of b goes on
    second = await make_engine(takeover_after_s=0.0, heartbeat_s=0.2)
    await second.start(adopt=True)
    go.touch()
    final = await asyncio.wait_for(second.wait(run.run_id), 30)
    tasks = {t.name: t for t in await second.store.get_tasks(run.run_id)}
    assert final.status is RunStatus.DONE, final.message
    assert tasks["b"].attempt == 1 and tasks["c"].status is TaskStatus.SUCCEEDED  # b ran once, not again
    events = await second.store.events(run.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert not any("lost" in e.message for e in events if e.task == "b")


async def test_stop_takes_over_a_run_whose_engine_is_gone(make_engine):
    first = await make_engine()
    await first.start(adopt=False)
    run = await first.submit(
        pipeline(task("long", "import time; time.sleep(60)"), task("next", "pass", depends=("long",)))
    )
    while (await first.store.get_tasks(run.run_id))[0].status is not TaskStatus.RUNNING:
        await asyncio.sleep(0.05)
    pid = int((await first.store.get_tasks(run.run_id))[0].resource_id.removeprefix("pid:"))
    await first.close()  # e.g. `odin run` was killed
    stopper = await make_engine(takeover_after_s=0.0)  # e.g. `odin stop` in another shell
    await stopper.stop(run.run_id, "stopped after the crash")
    final = await asyncio.wait_for(stopper.wait(run.run_id), 15)
    tasks = {t.name: t.status for t in await stopper.store.get_tasks(run.run_id)}
    assert (final.status, final.message) == (RunStatus.TERMINATED, "stopped after the crash")
    assert tasks == {"long": TaskStatus.CANCELLED, "next": TaskStatus.SKIPPED}
    await until(lambda: not task_process_alive(pid, f"{run.run_id}--long"), 10)  # SIGKILL is delivered async


async def test_resubmit_reuses_every_task_that_succeeded(make_engine, tmp_path):
    engine = await make_engine()
    marker = tmp_path / "fixed"
    spec = pipeline(
        task("a", "import json,os; json.dump({'v': 1}, open(os.environ['ODIN_OUTPUTS'], 'w'))"),
        task("b", f"import os,sys; sys.exit(0 if os.path.exists({str(marker)!r}) else 4)", depends=("a",)),
        task("c", "import sys; print(sys.argv[1])", args=("^a.outputs.v",), depends=("b",)),
    )
    first, tasks = await run_to_end(engine, spec)
    assert first.status is RunStatus.TERMINATED
    assert (tasks["b"].status, tasks["c"].status) == (TaskStatus.FAILED, TaskStatus.SKIPPED)
    marker.touch()  # the cause is fixed
    reused, rerun = await engine.resubmit(first.run_id)
    assert (reused, rerun) == (["a"], ["b", "c"])
    final = await asyncio.wait_for(engine.wait(first.run_id), 30)
    tasks = {t.name: t for t in await engine.store.get_tasks(first.run_id)}
    assert final.status is RunStatus.DONE, final.message
    assert [tasks[n].attempt for n in "abc"] == [1, 2, 1]  # a was not run again
    events = await engine.store.events(first.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    with pytest.raises(Conflict):
        await engine.resubmit(first.run_id)
