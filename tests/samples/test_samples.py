"""End-to-end: every sample through the real `odin` command in a subprocess, with a private ODIN_HOME."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
VARIANTS = {"logreg", "forest", "svm", "boosting"}
RUN_TIMEOUT_S = 120


def odin_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m odin_client`."""
    script = Path(sys.executable).parent / "odin"
    if script.is_file():
        return [str(script)]
    found = shutil.which("odin")
    return [found] if found else [sys.executable, "-m", "odin_client"]


class OdinProcess:
    def __init__(self, home: Path, command: list[str]) -> None:
        self.home = home
        self.command = command
        self.env = {**os.environ, "ODIN_HOME": str(home), "NO_COLOR": "1"}

    def __call__(
        self, *args: str, code: int | None = 0, timeout: float = RUN_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.command, *args], env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        if code is not None:
            assert done.returncode == code, f"odin {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str, code: int | None = 0) -> Any:
        return json.loads(self(*args, "-o", "json", code=code).stdout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.command, *args],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture
def odin(tmp_path: Path) -> OdinProcess:
    return OdinProcess(tmp_path / "home", odin_command())


def tasks_of(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in record["tasks"]}


def test_python_dash_m_odin_client_works(tmp_path: Path) -> None:
    odin = OdinProcess(tmp_path / "home", [sys.executable, "-m", "odin_client"])
    assert "Usage: odin" in odin("--help").stdout
    assert "samples/hello: valid (1 task)" in odin("validate", "samples/hello").stdout


def test_hello(odin: OdinProcess) -> None:
    done = odin("run", "samples/hello", "--run-id", "hello-e2e")
    assert "run hello-e2e DONE in " in done.stdout
    assert odin("logs", "hello-e2e--greet").stdout == "hello from hello-e2e--greet\n"


def test_ml_sweep(odin: OdinProcess) -> None:
    done = odin("run", "samples/ml-sweep", "--run-id", "ml-sweep-e2e", "-o", "json")
    record = json.loads(done.stdout)
    assert record["status"] == "DONE", done.stderr
    tasks = tasks_of(record)
    best = tasks["evaluate"]["outputs"]["best_model"]
    assert best in VARIANTS
    assert tasks["evaluate"]["outputs"]["test_accuracy"] > 0.9
    assert set(tasks["evaluate"]["outputs"]["candidates"]) == VARIANTS
    report = Path(tasks["report"]["outputs"]["report_path"])
    assert report.is_file() and report.parent == odin.home / "data" / "ml-sweep-e2e" / "report"
    text = report.read_text()
    assert f"Digits sweep: {best} wins" in text and f"**{best}**" in text
    # the run ends by showing what it was for: the winner, its score, where the report is
    summary = done.stderr[done.stderr.index("run ml-sweep-e2e DONE in") :].splitlines()
    assert summary[1] == "outputs of report (odin data ml-sweep-e2e--report):", done.stderr
    shown = dict(line.split(None, 1) for line in summary[2:6])
    assert shown["best_model"] == best
    assert float(shown["best_score"]) == pytest.approx(tasks["evaluate"]["outputs"]["best_score"], abs=1e-4)
    assert shown["report_path"] == str(report)
    trainings = [tasks[f"train-{v}"] for v in sorted(VARIANTS)]
    for t in trainings:
        assert Path(t["outputs"]["model_path"]).is_file()
        assert 0.8 < t["outputs"]["val_accuracy"] <= 1.0
    # every training ran while every other one was running: the latest start precedes the earliest end
    assert max(t["started"] for t in trainings) < min(t["completed"] for t in trainings)


def test_retry_then_inspect_and_clean_up(odin: OdinProcess) -> None:
    done = odin("run", "samples/retry", "--run-id", "retry-e2e", code=1)
    assert "run retry-e2e TERMINATED" in done.stdout
    assert "task 'slow' failed: timed out after 1s" in done.stdout
    assert "odin logs retry-e2e--slow" in done.stdout

    [status] = odin.json("status", "retry-e2e")
    assert status["run"]["status"] == "TERMINATED"
    tasks = tasks_of(status)
    assert (tasks["flaky"]["status"], tasks["flaky"]["attempt"]) == ("SUCCEEDED", 2)
    assert tasks["after-flaky"]["status"] == "SUCCEEDED"
    assert tasks["slow"]["status"] == "FAILED" and "timed out" in tasks["slow"]["message"]
    line = odin("status", "retry-e2e").stdout.splitlines()[1]
    assert line.split()[:3] == ["retry-e2e", "TERMINATED", "2/3"] and line.endswith("timed out after 1s")
    assert odin("status", "retry-e2e", "--tasks").stdout.startswith("retry-e2e --> TERMINATED\n")

    log = odin("logs", "retry-e2e--flaky", "-f", timeout=20).stdout
    assert log.splitlines() == [
        "attempt 1 of retry-e2e--flaky",
        "failing on purpose",
        "----- attempt 2 -----",
        "attempt 2 of retry-e2e--flaky",
        "succeeded",
    ]
    assert "its attempt count is 2" in odin("logs", "retry-e2e--after-flaky").stdout

    events = odin.json("events", "retry-e2e")
    flaky = [(e["status"], e["data"].get("attempt")) for e in events if e["task"] == "flaky"]
    assert ("RETRYING", 1) in flaky and ("SUCCEEDED", 2) in flaky
    assert "slow" in odin("events", "retry-e2e").stdout

    cleaned = odin.json("cleanup", "retry-e2e", "--db", "--fs")
    assert {c["task_id"] for c in cleaned} == {f"retry-e2e--{n}" for n in ("flaky", "after-flaky", "slow")}
    assert all(c["purged_from_db"] and c["removed_from_fs"] for c in cleaned)
    assert odin.json("status") == []
    assert not (odin.home / "data" / "retry-e2e").exists()


LONG = """\
name: long
tasks:
  - name: nap
    image: busybox:1.36
    command: sleep
    args: ["120"]
  - name: after
    image: busybox:1.36
    command: echo
    depends: nap
"""


@pytest.fixture
def long_job(tmp_path: Path) -> Path:
    job = tmp_path / "long"
    job.mkdir()
    (job / "main.yml").write_text(textwrap.dedent(LONG))
    return job


@pytest.fixture
def running(odin: OdinProcess, long_job: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str | None]]]:
    """`odin run` of a long pipeline in another process, its output lines in a queue; killed if left over."""
    proc = odin.start("run", str(long_job), "--run-id", "long-e2e")
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, name="odin-run-output", daemon=True).start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for_line(lines: queue.Queue[str | None], needle: str, timeout: float = 30) -> list[str]:
    """Lines read until one contains ``needle`` (fails after ``timeout`` or at end of output)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        assert line is not None, f"output ended before {needle!r}:\n" + "\n".join(seen)
        seen.append(line)
        if needle in line:
            return seen


def rest_of(lines: queue.Queue[str | None]) -> list[str]:
    out = []
    while (line := lines.get(timeout=30)) is not None:
        out.append(line)
    return out


def test_stop_from_another_process(odin: OdinProcess, running: Any) -> None:
    proc, lines = running
    wait_for_line(lines, "task nap RUNNING")
    asked = time.monotonic()
    stopped = odin("stop", "long-e2e", timeout=60)
    assert "stop requested for run long-e2e" in stopped.stdout
    assert "run long-e2e TERMINATED" in stopped.stdout and "stopped by user" in stopped.stdout
    assert proc.wait(timeout=30) == 1
    assert time.monotonic() - asked < 15  # the heartbeat notices the request within a few seconds
    tail = "\n".join(rest_of(lines))
    assert "run long-e2e TERMINATED" in tail
    tasks = tasks_of(odin.json("status", "long-e2e")[0])
    assert (tasks["nap"]["status"], tasks["after"]["status"]) == ("CANCELLED", "SKIPPED")


def test_ctrl_c_stops_the_run_and_exits_130(odin: OdinProcess, running: Any) -> None:
    proc, lines = running
    wait_for_line(lines, "task nap RUNNING")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    tail = "\n".join(rest_of(lines))
    assert "stopping run long-e2e (its running tasks are being ended)" in tail
    assert "run long-e2e TERMINATED" in tail
    [status] = odin.json("status", "long-e2e")
    assert status["run"]["status"] == "TERMINATED"
    assert tasks_of(status)["nap"]["status"] == "CANCELLED"
