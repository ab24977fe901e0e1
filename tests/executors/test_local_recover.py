"""Local attempts outlive the core, and a restarted core re-attaches: killed cores, exactly once, reused pids."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
from odin_core import constants as C
from odin_core.model import TaskStatus

from .conftest import (
    PY,
    Gate,
    executions,
    make_launch,
    record,
    supervisor_pid,
    task_code,
    task_processes,
    wait_for,
    wait_gone,
)


async def test_a_task_outlives_a_killed_core_and_a_new_core_sees_it_succeed(
    data: Path, gate: Gate, counter: Path, start_core, make_executor
):
    la = make_launch(data, "r1", "train", task_code(counter, gate=gate, outputs={"answer": 42}))
    core = await start_core([la])
    assert "resource_id" in await core.submitted(la)
    await core.running(la)
    await core.kill()
    sup = supervisor_pid(la)
    assert psutil.pid_exists(sup) and task_processes(data), "the attempt died with the core"

    executor, reports = make_executor()
    assert await executor.recover([record(la)]) == []  # started before: not to be submitted again
    assert (await reports.wait(la, TaskStatus.RUNNING)).resource_id == f"pid:{sup}"
    gate.release()
    done = await reports.wait(la, TaskStatus.SUCCEEDED)
    assert (done.exit_code, done.outputs) == (0, {"answer": 42})
    assert executions(counter) == ["r1--train.1"]
    await wait_gone([sup])
    assert not task_processes(data)


async def test_attempts_that_ended_while_no_core_ran_are_collected_from_their_records(
    data: Path, gate: Gate, counter: Path, start_core, make_executor
):
    ok = make_launch(data, "r2", "ok", task_code(counter, gate=gate, outputs={"n": [1, 2]}))
    bad = make_launch(data, "r2", "bad", task_code(counter, gate=gate, extra="print('boom: no data')", exit_code=3))
    core = await start_core([ok, bad])
    await core.running(ok)
    await core.running(bad)
    await core.kill()
    sups = [supervisor_pid(ok), supervisor_pid(bad)]
    gate.release(2)
    await wait_gone(sups)  # both ended with no core alive

    executor, reports = make_executor()
    assert await executor.recover([record(ok), record(bad, TaskStatus.PENDING)]) == []
    succeeded = await reports.wait(ok, TaskStatus.SUCCEEDED)
    failed = await reports.wait(bad, TaskStatus.FAILED)
    assert (succeeded.exit_code, succeeded.outputs) == (0, {"n": [1, 2]})
    assert (failed.exit_code, failed.message) == (3, "exit code 3: after")  # the log's last line
    assert [u.status for u in reports.of(bad)] == [TaskStatus.RUNNING, TaskStatus.FAILED]  # as a live core saw it
    assert sorted(executions(counter)) == ["r2--bad.1", "r2--ok.1"]


async def test_exactly_once_when_the_core_dies_and_the_engine_submits_again(
    data: Path, gate: Gate, counter: Path, start_core, make_executor
):
    la = make_launch(data, "r3", "step", task_code(counter, gate=gate, outputs={}))
    core = await start_core([la])
    first = await core.submitted(la)
    await core.kill()
    executor, reports = make_executor()
    assert await executor.recover([record(la, TaskStatus.PENDING)]) == []  # claimed: not to be started again
    assert await executor.submit(la) == first["resource_id"]  # a submit all the same attaches
    gate.release(3)
    await reports.wait(la, TaskStatus.SUCCEEDED)
    await wait_gone([supervisor_pid(la)])
    assert executions(counter) == ["r3--step.1"]


async def test_an_attempt_never_started_is_returned_to_be_submitted(data: Path, counter: Path, make_executor):
    la = make_launch(data, "r4", "fresh", task_code(counter, outputs={"v": 1}))
    executor, reports = make_executor()
    assert await executor.recover([record(la, TaskStatus.PENDING)]) == [record(la, TaskStatus.PENDING)]
    assert reports.updates == []
    await executor.submit(la)
    assert (await reports.wait(la, TaskStatus.SUCCEEDED)).outputs == {"v": 1}
    assert executions(counter) == ["r4--fresh.1"]


async def test_one_attempt_submitted_twice_here_and_by_other_cores_runs_once(
    data: Path, gate: Gate, counter: Path, start_core, make_executor
):
    la = make_launch(data, "r5", "once", task_code(counter, gate=gate, outputs={"k": "v"}))
    one, one_reports = make_executor()
    two, two_reports = make_executor()  # another core on the same data path
    other = await start_core([la])  # and one in another process, all at once
    ids = await asyncio.gather(one.submit(la), one.submit(la), two.submit(la))
    theirs = (await other.submitted(la))["resource_id"]
    assert len({*ids, theirs}) == 1
    await one_reports.wait(la, TaskStatus.RUNNING)
    gate.release(4)
    for reports in (one_reports, two_reports):
        assert (await reports.wait(la, TaskStatus.SUCCEEDED)).outputs == {"k": "v"}
    assert executions(counter) == ["r5--once.1"]


async def test_a_reused_pid_is_neither_adopted_nor_killed(data: Path, make_executor):
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # lives at the pid a record names
    try:
        la = make_launch(data, "r6", "ghost", "pass")
        attempt = Path(la.run_path) / C.RUN_META_DIR / C.LOCAL_ATTEMPTS_DIR / "ghost.1"
        attempt.mkdir(parents=True)
        start = int(Path(f"/proc/{stranger.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        claim = {"pid": stranger.pid, "start": start - 100, "claimed": 0.0, "grace_s": 1.0}  # an older process
        (attempt / C.LOCAL_CLAIM_FILE).write_text(json.dumps(claim))
        (attempt / C.LOCAL_TASK_FILE).write_text(json.dumps({"pid": stranger.pid, "start": start - 99}))
        executor, reports = make_executor()
        assert await executor.recover([record(la)]) == []
        lost = await reports.wait(la, TaskStatus.FAILED)
        assert lost.message.startswith("lost: ")
        await executor.kill(record(la))
        await executor.cleanup("r6", [record(la)])
        assert stranger.poll() is None, "a process that merely reuses a recorded pid was killed"
    finally:
        stranger.kill()
        stranger.wait()


async def test_a_killed_supervisor_fails_the_attempt_as_lost_and_leaves_nothing(
    data: Path, gate: Gate, counter: Path, tmp_path: Path, start_core, make_executor
):
    child = tmp_path / "child.pid"
    spawn = f"import subprocess; open({str(child)!r}, 'w').write(str(subprocess.Popen(['sleep', '60']).pid))"
    followed = make_launch(data, "r7", "here", task_code(counter, gate=gate, extra=spawn))
    executor, reports = make_executor()
    await executor.submit(followed)
    await reports.wait(followed, TaskStatus.RUNNING)
    await wait_for(lambda: child.exists() and child.read_text().isdigit(), "the task's child")
    os.kill(supervisor_pid(followed), signal.SIGKILL)
    lost = await reports.wait(followed, TaskStatus.FAILED)
    assert lost.message.startswith("lost: its supervisor"), lost.message
    await wait_gone([int(child.read_text())])
    assert not task_processes(data)

    child.unlink()
    adopted = make_launch(data, "r7", "there", task_code(counter, gate=gate, extra=spawn))
    core = await start_core([adopted])
    await core.running(adopted)
    await wait_for(lambda: child.exists() and child.read_text().isdigit(), "the task's child")
    await core.kill()
    os.kill(supervisor_pid(adopted), signal.SIGKILL)
    assert await executor.recover([record(adopted)]) == []
    assert (await reports.wait(adopted, TaskStatus.FAILED)).message.startswith("lost: ")
    await wait_gone([int(child.read_text())])
    assert not task_processes(data)


async def test_the_supervisor_argv_carries_no_environment(data: Path, gate: Gate, counter: Path, make_executor):
    la = make_launch(data, "r8", "quiet", task_code(counter, gate=gate), env={"API_KEY": "hunter2-in-env"})
    executor, reports = make_executor()
    await executor.submit(la)
    await reports.wait(la, TaskStatus.RUNNING)
    sup = psutil.Process(supervisor_pid(la))
    assert sup.cmdline()[:3] == [PY, "-I", "-S"] and not any("hunter2" in a for a in sup.cmdline())
    assert "hunter2-in-env" not in sup.environ().values()  # the supervisor itself runs without it
    assert [p.environ().get("API_KEY") for p in task_processes(data)] == ["hunter2-in-env"]
    gate.release()
    await reports.wait(la, TaskStatus.SUCCEEDED)
