"""`odin run --detach` on the embedded engine: the id comes back at once and a background driver, in a session of its
own, drives the run to its end after the terminal that started it has gone."""

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

import pytest

pytestmark = pytest.mark.timeout(120)
PTY_SPAWN = "import pty, sys; pty.spawn(sys.argv[1:])"  # a terminal: the command is its session leader


class Odin:
    def __init__(self, home: Path, cwd: Path) -> None:
        self.home, self.cwd = home, cwd
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
        self.env = {**clean, "ODIN_HOME": str(home), "NO_COLOR": "1"}
        self.command = [sys.executable, "-m", "odin_client"]

    def __call__(self, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.command, *args], env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=60
        )
        if code is not None:
            assert done.returncode == code, f"odin {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}"
        return done

    def in_terminal(self, *args: str) -> str:
        """Run `odin ARGS` on a pseudo-terminal that closes when it exits (as a terminal window would)."""
        done = subprocess.run(
            [sys.executable, "-c", PTY_SPAWN, *self.command, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def record(self, run_id: str) -> dict[str, Any]:
        return json.loads(self("data", run_id, "-o", "json").stdout)

    def wait_for(self, run_id: str, statuses: set[str], timeout_s: float = 60) -> dict[str, Any]:
        """Poll the run's record (another process drives it) until its status is one of ``statuses``."""
        deadline = time.monotonic() + timeout_s
        while True:
            record = self.record(run_id)
            if record["status"] in statuses:
                return record
            assert time.monotonic() < deadline, f"run {run_id} is still {record['status']}"
            time.sleep(0.2)


@pytest.fixture
def odin(tmp_path: Path) -> Odin:
    return Odin(tmp_path / "home", tmp_path)


@pytest.fixture
def gated_job(tmp_path: Path) -> tuple[Path, Path]:
    """A job whose task waits for a gate file the test creates, so the run is surely alive when the terminal goes."""
    gate = tmp_path / "gate"
    job = tmp_path / "gated"
    job.mkdir()
    script = job / "wait.py"
    script.write_text(
        "import json, os, time\n"
        f"while not os.path.exists({str(gate)!r}):\n"
        "    time.sleep(0.05)\n"
        "open(os.environ['ODIN_OUTPUTS'], 'w').write(json.dumps({'answer': 42}))\n"
    )
    (job / "main.yml").write_text(
        textwrap.dedent(f"""\
            name: gated
            tasks:
              - {{name: wait, image: busybox:1.36, command: {sys.executable}, args: [{script}]}}
            """)
    )
    return job, gate


def driver_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_detached_run_outlives_the_terminal_that_started_it(odin, gated_job) -> None:
    job, gate = gated_job
    started = json.loads(odin.in_terminal("run", str(job), "--run-id", "gated-bg", "--detach", "-o", "json"))
    assert started["run_id"] == "gated-bg" and started["status"] == "RUNNING"
    pid = started["driver_pid"]
    # the terminal has closed (its session got SIGHUP); the driver lives on, in a session of its own
    assert driver_alive(pid) and os.getsid(pid) == pid
    assert odin.record("gated-bg")["status"] == "RUNNING"
    gate.write_text("")
    record = odin.wait_for("gated-bg", {"DONE", "TERMINATED"})
    assert record["status"] == "DONE", record["message"]
    assert record["tasks"][0]["outputs"] == {"answer": 42}
    log = Path(started["log"])
    assert log == odin.home / "drivers" / "gated-bg.log"
    text = log.read_text()
    assert "task wait RUNNING (attempt 1)" in text and "run gated-bg DONE in " in text
    assert "outputs of wait (odin data gated-bg--wait):" in text


def test_detach_prints_the_id_and_how_to_follow_and_stop(odin, gated_job) -> None:
    job, gate = gated_job
    done = odin("run", str(job), "--run-id", "gated-words", "--detach")
    assert done.stdout == "gated-words\n"
    assert "running in the background (driver pid " in done.stderr
    assert "odin status gated-words" in done.stderr and "odin stop gated-words" in done.stderr
    # `odin stop` from anywhere ends it: the driver sees the request on its heartbeat
    stopped = odin("stop", "gated-words", "--timeout", "30")
    assert "run gated-words TERMINATED" in stopped.stdout and "stopped by user" in stopped.stdout
    gate.write_text("")


def test_sigterm_to_the_driver_stops_the_run(odin, gated_job) -> None:
    job, _ = gated_job
    started = json.loads(odin("run", str(job), "--run-id", "gated-term", "--detach", "-o", "json").stdout)
    os.kill(started["driver_pid"], signal.SIGTERM)
    record = odin.wait_for("gated-term", {"DONE", "TERMINATED"})
    assert record["status"] == "TERMINATED"
    assert record["message"] == "stopped: its background driver got SIGTERM"
    assert record["tasks"][0]["status"] == "CANCELLED"


def test_detach_of_an_invalid_pipeline_starts_nothing(odin, tmp_path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "main.yml").write_text("tasks:\n  - {name: a, image: x}\n")
    done = odin("run", str(bad), "--detach", code=2)
    assert "main.yml:2:" in done.stderr and "pipeline is invalid: 1 problem" in done.stderr
    assert not (odin.home / "drivers").exists()


def test_detach_with_the_id_of_an_ended_run_says_so(odin, gated_job) -> None:
    job, gate = gated_job
    gate.write_text("")
    odin("run", str(job), "--run-id", "gated-again", "--no-watch")
    done = odin("run", str(job), "--run-id", "gated-again", "--detach")
    assert done.stdout == "gated-again\n"
    assert "run gated-again exists already and has ended DONE" in done.stderr


def test_resubmit_detach(odin, gated_job) -> None:
    job, gate = gated_job
    started = json.loads(odin("run", str(job), "--run-id", "gated-re", "--detach", "-o", "json").stdout)
    odin("stop", "gated-re", "--timeout", "30")
    gate.write_text("")
    again = json.loads(odin("resubmit", "gated-re", "--detach", "-o", "json").stdout)
    assert again["run_id"] == "gated-re" and again["driver_pid"] != started["driver_pid"]
    assert odin.wait_for("gated-re", {"DONE", "TERMINATED"})["status"] == "DONE"
    assert (
        "resubmitted run gated-re: reusing 0 succeeded task(s), running 1 again (wait)"
        in Path(again["log"]).read_text()
    )
    assert odin("resubmit", "gated-re", "--detach", code=1).stderr.startswith("error: every task of run")
