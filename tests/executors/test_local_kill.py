"""Kill, stop, clean-up, detach and close of local attempts, also of attempts a previous core started."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import psutil
from odin_core.executors.local_spawn import LABEL
from odin_core.model import TaskStatus
from odin_core.settings import LocalSettings

from .conftest import (
    Gate,
    executions,
    live,
    make_launch,
    record,
    supervisor_pid,
    task_code,
    task_processes,
    wait_for,
    wait_gone,
)

IGNORE_TERM = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
SPAWN_CHILD = "import subprocess; subprocess.Popen(['sleep', '60'])"


async def test_kill_of_a_reattached_attempt_escalates_and_leaves_no_process(
    data: Path, gate: Gate, counter: Path, start_core, make_executor
):
    stubborn = make_launch(data, "k1", "stubborn", task_code(counter, gate=gate, extra=f"{IGNORE_TERM}; {SPAWN_CHILD}"))
    polite = make_launch(data, "k1", "polite", task_code(counter, gate=gate, extra=SPAWN_CHILD))
    core = await start_core([stubborn, polite], grace_s=0.5)
    await core.running(stubborn)
    await core.running(polite)
    await wait_for(lambda: len(task_processes(data)) == 4, "two tasks with a child each")
    await core.kill()
    executor, reports = make_executor(LocalSettings(kill_grace_s=0.5))
    assert await executor.recover([record(stubborn), record(polite)]) == []
    await asyncio.gather(executor.kill(record(stubborn)), executor.kill(record(polite)))
    assert not task_processes(data)
    assert not live(supervisor_pid(stubborn)) and not live(supervisor_pid(polite))
    assert (await reports.wait(stubborn, TaskStatus.FAILED)).exit_code == -9  # SIGKILL after the grace period
    assert (await reports.wait(polite, TaskStatus.FAILED)).message == "killed by signal SIGTERM: before"


async def test_cleanup_after_reattach_ends_every_attempt_of_the_run(
    data: Path, gate: Gate, counter: Path, start_core, make_executor
):
    one = make_launch(data, "k2", "one", task_code(counter, gate=gate, extra=SPAWN_CHILD))
    two = make_launch(data, "k2", "two", task_code(counter, gate=gate), attempt=2)
    other_run = make_launch(data, "k3", "keep", task_code(counter, gate=gate))
    core = await start_core([one, two, other_run])
    for la in (one, two, other_run):
        await core.running(la)
    await wait_for(lambda: len(executions(counter)) == 3, "the three tasks to execute")
    await core.kill()
    executor, reports = make_executor()
    await executor.recover([record(one), record(two), record(other_run)])
    removed = await executor.cleanup("k2", [record(one), record(two)])
    assert removed == {"one": False, "two": False}  # nothing of a local run lives in a cluster
    assert [p.environ()["ODIN_TASK_ID"] for p in task_processes(data)] == ["k3--keep"]
    gate.release()  # the other run was not touched
    await reports.wait(other_run, TaskStatus.SUCCEEDED)
    assert await executor.recover([record(one)]) == [record(one)]  # its records went with it
    again = make_launch(data, "k2", "one", task_code(counter))  # the same run id, made again
    await executor.submit(again)
    await reports.wait(again, TaskStatus.SUCCEEDED)
    assert executions(counter).count("k2--one.1") == 2


async def test_a_kill_during_submit_waits_for_the_claim_and_ends_the_attempt(
    data: Path, gate: Gate, counter: Path, make_executor
):
    la = make_launch(data, "k4", "early", task_code(counter, gate=gate))
    executor, reports = make_executor()
    submitting = asyncio.ensure_future(executor.submit(la))
    await asyncio.sleep(0)  # let the submit begin: the kill must wait for it, not find nothing and return
    await executor.kill(record(la))
    await submitting
    assert (await reports.wait(la, TaskStatus.FAILED)).exit_code == -15
    assert not live(supervisor_pid(la)) and not task_processes(data)


async def test_detach_stops_following_and_touches_nothing(data: Path, gate: Gate, counter: Path, make_executor):
    la = make_launch(data, "k5", "handed-over", task_code(counter, gate=gate, outputs={"ok": True}))
    first, first_reports = make_executor()
    await first.submit(la)
    await first_reports.wait(la, TaskStatus.RUNNING)
    await first.detach("k5")  # the run's lease went to another core
    sup = supervisor_pid(la)
    assert live(sup) and task_processes(data)
    second, second_reports = make_executor()
    assert await second.recover([record(la)]) == []
    gate.release()
    assert (await second_reports.wait(la, TaskStatus.SUCCEEDED)).outputs == {"ok": True}
    await wait_gone([sup])
    await asyncio.sleep(0)
    assert [u.status for u in first_reports.of(la)] == [TaskStatus.RUNNING]  # it no longer reports
    assert executions(counter) == ["k5--handed-over.1"]


async def test_close_leaves_attempts_running_for_the_next_core(data: Path, gate: Gate, counter: Path, make_executor):
    la = make_launch(data, "k6", "lives-on", task_code(counter, gate=gate))
    first, first_reports = make_executor()
    await first.submit(la)
    await first_reports.wait(la, TaskStatus.RUNNING)
    await first.close()  # a graceful shutdown of the core
    assert live(supervisor_pid(la)) and task_processes(data)
    second, second_reports = make_executor()
    await second.recover([record(la)])
    gate.release()
    await second_reports.wait(la, TaskStatus.SUCCEEDED)


async def test_sigterm_to_the_resource_pid_stops_the_task_gracefully(
    data: Path, gate: Gate, counter: Path, make_executor
):
    la = make_launch(data, "k7", "by-hand", task_code(counter, gate=gate, extra=SPAWN_CHILD))
    executor, reports = make_executor()
    resource_id = await executor.submit(la)
    await reports.wait(la, TaskStatus.RUNNING)
    os.kill(int(resource_id.removeprefix("pid:")), signal.SIGTERM)  # `kill <pid>` as `odin status` shows it
    assert (await reports.wait(la, TaskStatus.FAILED)).exit_code == -15
    await wait_gone([supervisor_pid(la)])
    assert not task_processes(data)


async def test_what_a_task_leaves_running_ends_with_it(data: Path, counter: Path, tmp_path: Path, make_executor):
    child = tmp_path / "child.pid"
    spawn = f"import subprocess; open({str(child)!r}, 'w').write(str(subprocess.Popen(['sleep', '60']).pid))"
    la = make_launch(data, "k8", "daemon", task_code(counter, extra=spawn, outputs={"ok": 1}))
    executor, reports = make_executor()
    await executor.submit(la)
    assert (await reports.wait(la, TaskStatus.SUCCEEDED)).outputs == {"ok": 1}
    assert not live(int(child.read_text()))  # killed before the result was recorded, as at a container's end


def _spares(mark: str) -> list[psutil.Process]:
    """Warm supervisors (started, waiting for a launch) of the executor whose environment carries ``mark``."""
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if p.status() != psutil.STATUS_ZOMBIE and LABEL in p.cmdline() and p.environ().get("MARK") == mark:
                found.append(p)
    return found


async def test_a_dead_spare_supervisor_is_replaced_and_close_dismisses_the_spare(
    data: Path, counter: Path, make_executor
):
    mark = f"spare-{os.getpid()}-{id(data)}"
    environ = {**os.environ, "MARK": mark}
    executor, reports = make_executor(LocalSettings(pass_env=("MARK",)), environ=environ)
    first = make_launch(data, "s1", "first", task_code(counter))
    await executor.submit(first)
    await reports.wait(first, TaskStatus.SUCCEEDED)
    await wait_for(lambda: len(_spares(mark)) == 1, "a warm supervisor for the next submit")
    for spare in _spares(mark):
        spare.kill()  # it dies before anyone handed it a launch
    second = make_launch(data, "s1", "second", task_code(counter, outputs={"ok": True}))
    await executor.submit(second)
    assert (await reports.wait(second, TaskStatus.SUCCEEDED)).outputs == {"ok": True}
    await executor.close()
    await wait_for(lambda: not _spares(mark), "the spare to go")
    assert executions(counter) == ["s1--first.1", "s1--second.1"]
