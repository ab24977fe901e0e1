"""Several `odin` processes on one ODIN_HOME, and processes that die: real processes, one SQLite file.

These are the faults a terminal user meets: parallel experiments launched together, an `odin run`
killed (a closed laptop, `kill -9`), and `odin stop` / `odin cleanup` from another shell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

ODIN = str(Path(sys.executable).parent / "odin")
ROUNDS = 10
PARALLEL = 6

SMALL = """\
name: small
tasks:
  - name: a
    image: busybox
    command: ["python", "-c", "import json,os; json.dump({'x': 1}, open(os.environ['ODIN_OUTPUTS'], 'w'))"]
  - name: b
    image: busybox
    command: ["python", "-c", "import sys; assert sys.argv[1] == '1'"]
    args: ["^a.outputs.x"]
  - name: c
    image: busybox
    command: ["python", "-c", "pass"]
    depends: [a]
"""

LONG = """\
name: long
tasks:
  - name: sleeper
    image: busybox
    command: ["python", "-c", "import time; time.sleep(120)"]
"""


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "ODIN_HOME": str(home), "NO_COLOR": "1"}


def _odin(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ODIN, *args], env=_env(home), capture_output=True, text=True, timeout=timeout)


def _job(tmp_path: Path, name: str, text: str) -> Path:
    job = tmp_path / name
    job.mkdir(exist_ok=True)
    (job / "main.yml").write_text(textwrap.dedent(text))
    return job


def _record(home: Path, run_id: str) -> dict[str, Any]:
    out = _odin(home, "data", run_id, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _wait_running(home: Path, run_id: str, task: str, timeout_s: float = 60) -> dict[str, Any]:
    """Poll the store (another process drives the run) until ``task`` runs; its record."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = _odin(home, "data", f"{run_id}--{task}", "-o", "json")
        if out.returncode == 0 and json.loads(out.stdout)["status"] == "RUNNING":
            return json.loads(out.stdout)
        time.sleep(0.1)
    raise AssertionError(f"{run_id}--{task} did not start within {timeout_s}s")


def _start_driver(home: Path, job: Path, run_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ODIN, "run", str(job), "--run-id", run_id, "--no-watch"],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _no_process_of(run_id: str) -> bool:
    for p in psutil.process_iter(["environ"]):
        try:
            if (p.info["environ"] or {}).get("ODIN_PIPE_ID") == run_id:
                return False
        except (psutil.Error, OSError):
            continue
    return True


def test_six_odin_runs_on_one_home_all_finish_done_ten_rounds_in_a_row(tmp_path: Path) -> None:
    home = tmp_path / "home"
    job = _job(tmp_path, "small", SMALL)
    for round_ in range(ROUNDS):
        procs = [
            subprocess.Popen(
                [ODIN, "run", str(job), "--no-watch", "-o", "json"],
                env=_env(home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PARALLEL)
        ]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, f"round {round_}: exit {p.returncode}\n{err[-2000:]}"
            record = json.loads(out)
            assert record["status"] == "DONE", record["message"]
    listing = json.loads(_odin(home, "status", "small", "--all", "-o", "json").stdout)
    assert len(listing) == ROUNDS * PARALLEL
    assert {v["run"]["status"] for v in listing} == {"DONE"}


def test_stop_right_after_the_driving_odin_run_was_killed_ends_the_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    driver = _start_driver(home, _job(tmp_path, "long", LONG), "long-killed")
    _wait_running(home, "long-killed", "sleeper")
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything in its session: not the task's own
    driver.wait(10)
    stopped = _odin(home, "stop", "long-killed", "--timeout", "30")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    record = _record(home, "long-killed")
    assert record["status"] == "TERMINATED"
    assert record["message"] == "stopped by user"
    assert _no_process_of("long-killed"), "the task outlived the stop"


THREE = """\
name: three
tasks:
  - {name: a, image: busybox, command: ["python", "-c", "import time; time.sleep(120)"]}
  - {name: b, image: busybox, command: ["python", "-c", "import time; time.sleep(120)"]}
  - {name: c, image: busybox, command: ["python", "-c", "import time; time.sleep(120)"]}
"""

SHORT = """\
name: short
tasks:
  - {name: a, image: busybox, command: ["python", "-c", "import time; time.sleep(3); print('end')"]}
"""


@pytest.mark.parametrize("how", ["sigint", "stop"])
def test_a_stopped_run_ends_every_task_it_runs_before_it_is_recorded_as_ended(tmp_path: Path, how: str) -> None:
    """Before: the run's end was committed (and `odin run` exited) while only the first task's kill was done;
    the other two tasks ran on, with nothing left to end them."""
    home = tmp_path / "home"
    driver = _start_driver(home, _job(tmp_path, "three", THREE), "three-1")
    for task in "abc":
        _wait_running(home, "three-1", task)
    if how == "sigint":
        driver.send_signal(signal.SIGINT)
    else:
        assert _odin(home, "stop", "three-1").returncode == 0
    driver.wait(60)
    record = _record(home, "three-1")
    assert record["status"] == "TERMINATED"
    assert _no_process_of("three-1"), "a task outlived its run's end"


def test_a_task_that_ended_while_its_driver_was_dead_keeps_its_success_when_the_run_is_stopped(tmp_path: Path) -> None:
    """Before: the core that took the run over to stop it cancelled the task before hearing it had succeeded,
    so `odin resubmit` would have run it again."""
    home = tmp_path / "home"
    driver = _start_driver(home, _job(tmp_path, "short", SHORT), "short-1")
    _wait_running(home, "short-1", "a")
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(10)
    deadline = time.monotonic() + 30
    while not _no_process_of("short-1") and time.monotonic() < deadline:  # the task runs on, then ends
        time.sleep(0.2)
    stopped = _odin(home, "stop", "short-1", "--timeout", "30")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    task = _record(home, "short-1--a")
    assert task["status"] == "SUCCEEDED", task


BACKOFF = """\
name: backoff
on_failure: continue
tasks:
  - name: stubborn
    image: busybox
    command: ["python", "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    timeout: 1s
  - name: flaky
    image: busybox
    command: ["python", "-c", "import time; time.sleep(0.5); raise SystemExit(1)"]
    retries: {limit: 1, backoff: 2s}
"""


def test_a_task_in_its_kill_grace_period_holds_up_no_other_tasks_retry(tmp_path: Path) -> None:
    """Before: the worker awaited the timed-out task's kill (5 s of grace, the task ignoring SIGTERM) before any
    other decision, so the other task's 2 s back-off lasted 6-7 s."""
    home = tmp_path / "home"
    done = _odin(home, "run", str(_job(tmp_path, "backoff", BACKOFF)), "--run-id", "backoff-1", "--no-watch")
    assert done.returncode != 0  # both fail for good
    events = json.loads(_odin(home, "events", "backoff-1--flaky", "-o", "json").stdout)
    retrying = next(e["time"] for e in events if e["status"] == "RETRYING")
    again = next(e["time"] for e in events if e["status"] == "PENDING" and e["data"]["attempt"] == 2)
    assert 1.9 < again - retrying < 4, f"the retry came {again - retrying:.1f} s after the failure"


NUL_OUTPUT = """\
name: nul
tasks:
  - name: a
    image: busybox
    command: ["python", "-c", "import json,os; json.dump({'x': 'a' + chr(0)}, open(os.environ['ODIN_OUTPUTS'], 'w'))"]
  - {name: b, image: busybox, command: ["python", "-c", "pass"], args: ["^a.outputs.x"]}
"""


def test_an_argument_that_becomes_a_nul_at_run_time_fails_its_task_saying_so(tmp_path: Path) -> None:
    """Before: the exec's ValueError skipped the supervisor's report: "exit code 127" and an empty log."""
    home = tmp_path / "home"
    assert _odin(home, "run", str(_job(tmp_path, "nul", NUL_OUTPUT)), "--run-id", "nul-1", "--no-watch").returncode
    task = _record(home, "nul-1--b")
    assert task["status"] == "FAILED" and "NUL character" in task["message"], task


def test_following_a_run_whose_driver_died_ends_saying_so_and_what_to_do(tmp_path: Path) -> None:
    """Before: `odin logs -f` waited forever for an end that nobody would ever record."""
    home = tmp_path / "home"
    driver = _start_driver(home, _job(tmp_path, "long", LONG), "long-orphan")
    _wait_running(home, "long-orphan", "sleeper")
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(10)
    try:
        follow = _odin(home, "logs", "long-orphan--sleeper", "-f", timeout=30)
        assert follow.returncode == 1, follow.stdout + follow.stderr
        assert "which drove its run, is gone" in follow.stderr and "odin stop long-orphan" in follow.stderr
        again = _odin(home, "resubmit", "long-orphan")
        assert again.returncode == 1 and "which drove it, is gone" in again.stderr, again.stderr
    finally:
        assert _odin(home, "stop", "long-orphan", "--timeout", "30").returncode == 0
    assert _no_process_of("long-orphan")


def test_cleanup_of_a_run_another_process_drives_stops_it_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    driver = _start_driver(home, _job(tmp_path, "long", LONG), "long-live")
    _wait_running(home, "long-live", "sleeper")
    cleaned = _odin(home, "cleanup", "long-live", "--db", "--fs", "-o", "json")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert driver.wait(30) == 1  # its run ended TERMINATED: stopped by the clean-up
    assert _odin(home, "data", "long-live").returncode != 0  # purged
    assert not (home / "data" / "long-live").exists()
    assert _no_process_of("long-live")


HOLD_LEASE = """
import asyncio, sys, time
from odin_core.store.sqlite import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    info = await store.lease_of(sys.argv[2])
    lease = await store.take_over(info.lease, "elsewhere:1:deadbeef", time.time())
    print("holding", lease.epoch, flush=True)
    while True:  # a live driver (its heartbeat goes on) that never acts on stop requests
        await store.renew(lease.owner, time.time())
        await asyncio.sleep(0.2)

asyncio.run(main())
"""


def test_cleanup_refuses_to_delete_under_a_live_driver_that_does_not_stop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    driver = _start_driver(home, _job(tmp_path, "long", LONG), "long-held")
    _wait_running(home, "long-held", "sleeper")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LEASE, str(home / "odin.db"), "long-held"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("holding")
        env = {**_env(home), "ODIN_CLEANUP_WAIT_S": "2"}
        cleaned = subprocess.run(
            [ODIN, "cleanup", "long-held", "--db", "--fs"], env=env, capture_output=True, text=True, timeout=60
        )
        assert cleaned.returncode != 0
        assert "still RUNNING" in cleaned.stderr + cleaned.stdout, cleaned.stderr
        assert "Traceback" not in cleaned.stderr
        assert _record(home, "long-held")["status"] == "RUNNING"  # nothing deleted
        assert (home / "data" / "long-held").exists()
    finally:
        holder.kill()
        holder.wait()
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(10)


@pytest.fixture(autouse=True)
def _no_leftovers():
    yield
    for p in psutil.process_iter(["environ"]):
        try:
            if (p.info["environ"] or {}).get("ODIN_PIPE_ID", "").startswith(("long-", "small-")):
                p.kill()
        except (psutil.Error, OSError):
            continue
