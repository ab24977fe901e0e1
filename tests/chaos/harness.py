"""The chaos harness: SIGKILL the core at a random moment, restart it, and compare with an uninterrupted run.

One *case* is a core command line (executor, store) plus its environment. One *iteration* submits
the chaos pipeline to a fresh core, kills the core (``SIGKILL``, no chance to clean up) after a
random delay, sometimes kills it again while it recovers, restarts it, and waits for the run's end.
The outcome is compared with a reference run that nobody interrupted:

- the same final status of the run and of every task, and the same outputs;
- every attempt executed exactly once (each execution appends ``<task> <attempt>`` to a counter
  file, and the attempts the store records are exactly the lines there);
- nothing orphaned (no process of the run left once it ended; the Kubernetes variant also checks pods).

Used by ``tests/chaos`` (a fixed number of iterations in CI) and ``bench/chaos.py`` (more, with figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from odin_client.remote import RemoteOdin
from odin_core.model import RunRecord, TaskRecord
from odin_core.store import JobStore, open_store

CORE = [sys.executable, "-m", "odin_core", "serve"]
SERVING = re.compile(r"serving (ws://\S+)")

# A diamond with retries, a failing branch and ^outputs references; each execution is counted once.
STEP = """\
import json, os, sys, time

name, attempt = os.environ["ODIN_TASK_NAME"], os.environ["ODIN_ATTEMPT"]
with open(os.environ["COUNTER"], "a") as counter:
    counter.write(f"{name} {attempt}\\n")
time.sleep(float(os.environ["STEP_S"]))
outputs = {}
if name == "prepare":
    outputs = {"n": 3}
elif name == "left":
    outputs = {"v": int(sys.argv[1]) * 2}
elif name == "right":
    if attempt == "1":
        sys.exit(3)
    outputs = {"v": int(sys.argv[1]) + 1}
elif name == "join":
    outputs = {"sum": int(sys.argv[1]) + int(sys.argv[2])}
elif name == "broken":
    sys.exit(7)
with open(os.environ["ODIN_OUTPUTS"], "w") as f:
    json.dump(outputs, f)
"""
PIPELINE = """\
name: chaos
on_failure: continue
x-step: &step
  image: python:3.12-slim
  command: python
  env: {{COUNTER: "{counter}", STEP_S: "{d}"}}
tasks:
  - {{name: prepare, <<: *step, args: ["$WORK_PATH/step.py"]}}
  - {{name: left, <<: *step, args: ["$WORK_PATH/step.py", "^prepare.outputs.n"]}}
  - {{name: right, <<: *step, args: ["$WORK_PATH/step.py", "^prepare.outputs.n"], retries: {{limit: 2, backoff: 0.2s}}}}
  - {{name: join, <<: *step, args: ["$WORK_PATH/step.py", "^left.outputs.v", "^right.outputs.v"]}}
  - {{name: broken, <<: *step, args: ["$WORK_PATH/step.py"], depends: [prepare], retries: {{limit: 1, backoff: 0.2s}}}}
  - {{name: after-broken, <<: *step, args: ["$WORK_PATH/step.py"], depends: [broken]}}
"""


def write_pipeline(root: Path, counter: Path, *, task_s: float = 0.6) -> str:
    """The chaos pipeline under ``root/chaos`` counting into ``counter``; returns the job name."""
    job = root / "chaos"
    job.mkdir(parents=True, exist_ok=True)
    (job / "main.yml").write_text(PIPELINE.format(d=task_s, counter=counter))
    (job / "step.py").write_text(STEP)
    return "chaos"


@dataclass
class Case:
    """How to start the core under test: extra ``odin-core serve`` arguments and environment."""

    root: Path
    home: Path
    store_url: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    leftovers: Callable[[str], list[str]] | None = None  # names of what a run left behind (pods) besides processes

    def command(self) -> list[str]:
        store = ("--store", self.store_url) if self.store_url else ()
        return [*CORE, "--root-path", str(self.root), "--home", str(self.home), "--port", "0", *store, *self.args]

    def environment(self) -> dict[str, str]:
        fast = {"ODIN_HEARTBEAT_S": "0.5", "ODIN_TAKEOVER_AFTER_S": "3"}
        return {**os.environ, **fast, **self.env}


class Core:
    """One ``odin-core serve`` process."""

    def __init__(self, case: Case, log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            case.command(), env=case.environment(), stdout=subprocess.PIPE, stderr=self.log, start_new_session=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        found = SERVING.search(line)
        if not found:
            self.kill()
            raise RuntimeError(f"the core did not start: {line!r}; see {log}")
        self.url = found.group(1)

    def kill(self) -> None:
        """SIGKILL: the core gets no chance to clean up (its tasks, in sessions of their own, live on)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()


@dataclass(frozen=True)
class Outcome:
    status: str
    tasks: dict[str, tuple[str, int, dict[str, Any]]]  # name -> (status, attempts, outputs)
    executions: tuple[str, ...]  # counter lines, sorted
    leftovers: tuple[str, ...]

    @property
    def attempts_twice(self) -> int:
        return len(self.executions) - len(set(self.executions))

    def same_as(self, other: Outcome) -> bool:
        return (self.status, self.tasks, set(self.executions)) == (other.status, other.tasks, set(other.executions))


async def _ended(store: JobStore, run_id: str, timeout_s: float) -> RunRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = await store.get_run(run_id)
        if run is not None and run.status.is_terminal:
            return run
        await asyncio.sleep(0.1)
    raise TimeoutError(f"run {run_id} did not end within {timeout_s}s")


def _processes_of(run_id: str) -> list[str]:
    found = []
    for p in psutil.process_iter(["pid", "environ"]):
        with contextlib.suppress(psutil.Error, OSError):
            if (p.info["environ"] or {}).get("ODIN_PIPE_ID") == run_id and p.status() != psutil.STATUS_ZOMBIE:
                found.append(f"pid {p.info['pid']}")
    return found


def _attempts(tasks: list[TaskRecord]) -> dict[str, tuple[str, int, dict[str, Any]]]:
    return {t.name: (t.status.value, t.attempt, dict(t.outputs)) for t in tasks}


async def run_once(case: Case, job: str, counter: Path, *, kill_after_s: float | None, rng: random.Random) -> Outcome:
    """Submit one run; with ``kill_after_s``, SIGKILL the core then (maybe twice) and restart it."""
    case.home.mkdir(parents=True, exist_ok=True)
    counter.write_text("")
    logs = case.home / "core.log"
    core = Core(case, logs)
    try:
        async with RemoteOdin(core.url) as client:
            run = await client.submit(job)
        if kill_after_s is not None:
            await asyncio.sleep(kill_after_s)
            core.kill()
            if rng.random() < 0.3:  # and once more, while it recovers
                core = Core(case, logs)
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                core.kill()
            core = Core(case, logs)
        store = await open_store(case.store_url or f"sqlite:///{case.home / 'odin.db'}")
        try:
            final = await _ended(store, run.run_id, 120)
            tasks = await store.get_tasks(run.run_id)
        finally:
            await store.close()
    finally:
        core.kill()
    await asyncio.sleep(0.2)  # a killed task's SIGKILL is delivered asynchronously
    left = _processes_of(run.run_id) + (case.leftovers(run.run_id) if case.leftovers else [])
    executions = tuple(sorted(counter.read_text().split("\n")[:-1]))
    return Outcome(final.status.value, _attempts(tasks), executions, tuple(left))


@dataclass
class Figures:
    iterations: int = 0
    identical: int = 0
    attempts_twice: int = 0
    orphans: int = 0
    kill_points: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def chaos(case: Case, iterations: int, *, seed: int = 0) -> tuple[Outcome, Figures]:
    """The reference run, then ``iterations`` killed ones; every difference is listed in ``problems``."""
    rng = random.Random(seed)
    counter = case.home / "executions.txt"
    job = write_pipeline(case.root, counter)
    started = time.monotonic()
    reference = await run_once(case, job, counter, kill_after_s=None, rng=rng)
    clean_s = time.monotonic() - started
    figures = Figures()
    for i in range(iterations):
        kill = rng.uniform(0.0, clean_s)
        outcome = await run_once(case, job, counter, kill_after_s=kill, rng=rng)
        figures.iterations += 1
        figures.kill_points.append(kill)
        figures.identical += outcome.same_as(reference) and not outcome.attempts_twice
        figures.attempts_twice += outcome.attempts_twice
        figures.orphans += len(outcome.leftovers)
        for problem in _differences(reference, outcome):
            figures.problems.append(f"iteration {i} (killed after {kill:.2f}s): {problem}")
    return reference, figures


def _differences(reference: Outcome, outcome: Outcome) -> Iterator[str]:
    if outcome.status != reference.status:
        yield f"run ended {outcome.status}, uninterrupted {reference.status}"
    for name, want in reference.tasks.items():
        if outcome.tasks.get(name) != want:
            yield f"task {name}: {outcome.tasks.get(name)} (uninterrupted: {want})"
    if outcome.attempts_twice:
        yield f"{outcome.attempts_twice} attempt(s) executed twice: {outcome.executions}"
    if set(outcome.executions) != set(reference.executions):
        yield f"executions {outcome.executions}, uninterrupted {reference.executions}"
    if outcome.leftovers:
        yield f"left behind: {', '.join(outcome.leftovers)}"
