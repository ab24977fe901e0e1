"""The local executor: each attempt is a process on this machine, under a supervisor that outlives the core.

Every attempt runs under its own supervisor (``local_supervisor``), detached from the core: killing or
restarting the core leaves it running, and a restarted core re-attaches from the records the
supervisor keeps under ``<run>/.odin/attempts/`` (``recover``). An attempt is claimed on disk before
anything starts, so it runs at most once, whichever core submits it and how often.

The image is recorded, not pulled. stdout and stderr go to ``<run>/.odin/logs/<task>.log`` (every
attempt appended, later attempts under a header). A task publishes outputs by writing a JSON object to
the file named by ``$ODIN_OUTPUTS``. It runs in the job directory (``$ODIN_WORK_PATH``), so helper
files are found by relative paths, with a documented environment (``LocalSettings.task_env``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import marshal
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import constants as C
from ..errors import InvalidRequest, PermanentError, TemporaryError
from ..model import AttemptUpdate, TaskRecord, TaskStatus
from ..paths import confined
from ..settings import LocalSettings
from ..spec.model import TaskSpec
from ..tasks import TaskSet
from .base import Executor, Launch
from .local_env import inherited, task_env
from .local_files import (
    AttemptFiles,
    AttemptState,
    Key,
    attempt_header,
    attempts_dir,
    file_lines,
    final_update,
    list_attempts,
    log_path,
    outputs_path,
    read_state,
    tail_offset,
)
from .local_spawn import Supervisors
from .local_watch import ProcRef, end_all, send, wait_ended

__all__ = ["LocalExecutor", "count_gpus", "log_path", "outputs_path"]

STARTUP_POLL_S = 0.01  # how often a supervisor that claimed but has not started its task yet is looked at
KILL_MARGIN_S = 5.0  # beyond the grace period, before the core kills a supervisor that did not finish


def _arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def count_gpus() -> int:
    """GPUs visible through nvidia-smi (0 when there is none). Blocking: call it from a thread."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


@dataclass
class _Follow:
    resource_id: str
    task: asyncio.Task[None] | None = None


class LocalExecutor(Executor):
    name = "local"

    def __init__(
        self, data_path: Path, settings: LocalSettings | None = None, *, environ: dict[str, str] | None = None
    ) -> None:
        """``environ``: the core's environment (default ``os.environ``), read once for what tasks inherit."""
        super().__init__()
        self.data_path = data_path
        self.settings = settings or LocalSettings()
        core_env = dict(os.environ if environ is None else environ)
        self._base_env = inherited(
            core_env, (*self.settings.task_env, *self.settings.pass_env), Path(sys.executable).parent
        )
        self._follows: dict[Key, _Follow] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._tasks = TaskSet("local")
        self._gpu_probe: concurrent.futures.Future[int] | None = None
        self._supervisors = Supervisors(self._base_env)

    # -- GPUs: probed once, in a thread ------------------------------------------------------

    def _gpus(self) -> concurrent.futures.Future[int]:
        if self._gpu_probe is None:
            self._gpu_probe = concurrent.futures.Future()
            probe = self._gpu_probe
            threading.Thread(target=lambda: probe.set_result(count_gpus()), name="odin-gpu-probe", daemon=True).start()
        return self._gpu_probe

    def bind(self, report: Callable[[AttemptUpdate], None]) -> None:
        super().bind(report)
        self._gpus()  # start probing now, long before a run asks

    @property
    def gpus(self) -> int:
        return self._gpus().result()

    def notes(self, tasks: list[TaskSpec]) -> list[str]:
        images = sorted({t.image for t in tasks})
        notes = [f"local executor: images are recorded, not pulled ({', '.join(images)})"]
        wanted = [t for t in tasks if t.num_gpus > 0]
        have = self.gpus if wanted else 0  # waits only if the probe started at bind() is still running
        for t in wanted:
            if t.num_gpus > have:
                action = "it will fail" if self.settings.gpu_policy == "fail" else "it runs without them"
                notes.append(f"task {t.name!r} asks for {t.num_gpus} GPU(s); this machine has {have}: {action}")
        return notes

    # -- submit: claim, start under a supervisor, follow ---------------------------------------

    async def submit(self, launch: Launch) -> str:
        key: Key = (launch.run_id, launch.task.name, launch.attempt)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if key in self._follows:
                    return self._follows[key].resource_id
                return await self._start(key, launch)
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _start(self, key: Key, launch: Launch) -> str:
        t = launch.task
        if t.num_gpus > 0 and self.settings.gpu_policy == "fail":
            have = await asyncio.wrap_future(self._gpus())
            if t.num_gpus > have:
                raise PermanentError(f"needs {t.num_gpus} GPU(s), this machine has {have}")
        run_path = self._run_path(launch.run_id)
        files = AttemptFiles.of(run_path, _name(t.name), launch.attempt)
        out_file = outputs_path(run_path, t.name, launch.attempt)
        log_file = log_path(run_path, t.name)
        cwd = await asyncio.to_thread(_prepare, launch, files, out_file, log_file)
        description = {
            "argv": [*t.command, *(_arg(a) for a in t.args)],
            "env": task_env(self._base_env, launch.env, out_file),
            "cwd": str(cwd),
            "log": str(log_file),
            "outputs": str(out_file),
            "claim": str(files.claim),
            "task": str(files.task),
            "result": str(files.result),
            "header": attempt_header(launch.attempt),
            "grace_s": self.settings.kill_grace_s,
            "max_outputs": C.MAX_OUTPUTS_BYTES,
        }
        reply = await self._supervisors.launch(marshal.dumps(description), log_file)
        word, _, rest = reply.partition(" ")
        if word == "error":
            raise PermanentError(rest)
        if word not in ("started", "taken", "stopped"):  # no answer: it died, before or after its claim
            state = await asyncio.to_thread(read_state, files)
            if state.claim is None and await asyncio.to_thread(_disk_full, files.dir):
                # nothing started (the claim is what starts an attempt): safe to submit again once there is space
                raise TemporaryError(
                    f"the disk holding {run_path} is full: {t.name!r} starts once space is freed", delay_s=5.0
                )
            if state.claim is None:
                raise PermanentError(f"the local supervisor did not start {t.name!r}; see `odin logs {launch.task_id}`")
        return await self._attach(key, files)

    async def _attach(self, key: Key, files: AttemptFiles) -> str:
        """Follow a claimed attempt (ours or another core's) until it ends; return its resource id."""
        if key in self._follows:
            return self._follows[key].resource_id
        follow = self._follows[key] = _Follow("")
        state = await asyncio.to_thread(read_state, files)
        sup = ProcRef.of(state.claim)
        follow.resource_id = f"pid:{sup.pid}" if sup else ""
        follow.task = self._tasks.spawn(self._follow(key, files, sup, state), f"{key[0]}--{key[1]}.{key[2]}")
        return follow.resource_id

    async def _follow(self, key: Key, files: AttemptFiles, sup: ProcRef | None, state: AttemptState) -> None:
        """Report RUNNING once the task has started, then how it ended (from the result record)."""
        rid = f"pid:{sup.pid}" if sup else ""
        try:
            if sup is not None:
                state = await self._until_started(files, sup, state)
            running = state.task is not None
            if running:
                self.report(AttemptUpdate(*key, TaskStatus.RUNNING, resource_id=rid))
            if state.result is None and sup is not None:
                await wait_ended(sup)
                state = await asyncio.to_thread(read_state, files)
                if state.task is not None and not running:
                    self.report(AttemptUpdate(*key, TaskStatus.RUNNING, resource_id=rid))
            if state.result is not None:
                log_file = log_path(self._run_path(key[0]), key[1])
                self.report(await asyncio.to_thread(final_update, key, state.result, log_file))
                return
            if sup is not None:
                await asyncio.to_thread(end_all, sup)
            who = f"its supervisor (pid {sup.pid})" if sup else "its supervisor"
            self.report(AttemptUpdate(*key, TaskStatus.FAILED, message=f"lost: {who} ended without recording a result"))
        finally:
            if self._follows.get(key) is not None and self._follows[key].task is asyncio.current_task():
                del self._follows[key]

    @staticmethod
    async def _until_started(files: AttemptFiles, sup: ProcRef, state: AttemptState) -> AttemptState:
        """Between its claim and the task's start a supervisor writes nothing for some milliseconds: a
        core that attached in that window (a second submit, a restart) looks again until it has."""
        while state.task is None and state.result is None and await asyncio.to_thread(sup.running):
            await asyncio.sleep(STARTUP_POLL_S)
            state = await asyncio.to_thread(read_state, files)
        return state

    # -- recover, kill, detach, cleanup --------------------------------------------------------

    async def recover(self, records: list[TaskRecord]) -> list[TaskRecord]:
        """Re-attach to the attempts of ``records``; return those that were never started (nothing on disk)."""
        never: list[TaskRecord] = []
        for rec in records:
            key: Key = (rec.run_id, rec.name, rec.attempt)
            if key in self._follows or key in self._locks:
                continue
            files = AttemptFiles.of(self._run_path(rec.run_id), _name(rec.name), rec.attempt)
            state = await asyncio.to_thread(read_state, files)
            if state.claim is not None and state.result is not None:
                # it ended while no core followed it: its follow runs here, not in a task of its own, so the run's
                # next decision (a stop that made another core take the run over, say) knows it ended
                await self._follow(key, files, ProcRef.of(state.claim), state)
            elif state.claim is not None:
                await self._attach(key, files)
            elif await asyncio.to_thread(_end_unsupervised, rec):
                self.report(
                    AttemptUpdate(*key, TaskStatus.FAILED, message="lost: it ran without a supervisor (older Odin)")
                )
            else:
                never.append(rec)
        return never

    async def kill(self, record: TaskRecord) -> None:
        key: Key = (record.run_id, record.name, record.attempt)
        lock = self._locks.get(key)
        if lock is not None:
            async with lock:  # a start in flight has claimed (or refused) the attempt afterwards
                pass
        files = AttemptFiles.of(self._run_path(record.run_id), _name(record.name), record.attempt)
        state = await asyncio.to_thread(read_state, files)
        sup = ProcRef.of(state.claim)
        if sup is None:
            await asyncio.to_thread(_end_unsupervised, record)
            return
        if state.result is not None:
            return
        grace = max(self.settings.kill_grace_s, float((state.claim or {}).get("grace_s", 0)))
        # The supervisor sends SIGTERM to the task's group, SIGKILL after the grace period, and records it.
        if await asyncio.to_thread(send, sup, signal.SIGTERM):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wait_ended(sup), grace + KILL_MARGIN_S)
        await asyncio.to_thread(end_all, sup)  # nothing is left behind, whatever the supervisor managed

    async def detach(self, run_id: str) -> None:
        """Stop following the run's attempts without touching them (another core follows them now)."""
        for key in [k for k in self._follows if k[0] == run_id]:
            follow = self._follows.pop(key)
            if follow.task is not None:
                follow.task.cancel()

    async def cleanup(self, run_id: str, records: list[TaskRecord]) -> dict[str, bool]:
        run_path = self._run_path(run_id)
        attempts = await asyncio.to_thread(list_attempts, run_path)
        await asyncio.gather(*(self.kill(TaskRecord(run_id, task, attempt=n)) for task, n in attempts))
        # The attempts' records are this executor's resources (as pods are the Kubernetes executor's): a run
        # made again under the same id must start its attempts, not find these. Logs and outputs stay.
        await asyncio.to_thread(shutil.rmtree, attempts_dir(run_path), True)
        return {r.name: False for r in records}

    async def close(self) -> None:
        """Stop following; the attempts go on (a restarted core re-attaches to them)."""
        await self._tasks.close()
        self._follows.clear()
        await self._supervisors.close()

    # -- logs ------------------------------------------------------------------------------------

    async def logs(
        self,
        record: TaskRecord,
        *,
        follow: bool = False,
        lines: int | None = None,
        container: str | None = None,
        until: Callable[[], Awaitable[bool]] | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[str]:
        path = log_path(self._run_path(record.run_id), _name(record.name))
        offset = await asyncio.to_thread(tail_offset, path, lines) if lines else 0
        async for line in file_lines(path, offset, until if follow else None):
            yield line

    def _run_path(self, run_id: str) -> Path:
        return confined(self.data_path, _name(run_id))


def _name(name: str) -> str:
    """A run id or task name used as one path component: never a path of its own."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise InvalidRequest(f"{name!r} cannot name a run or task directory")
    return name


def _prepare(launch: Launch, files: AttemptFiles, out_file: Path, log_file: Path) -> Path:
    """Create the attempt's directories; return its working directory: the job directory when it exists."""
    Path(launch.task_path).mkdir(parents=True, exist_ok=True)
    for d in (files.dir, out_file.parent, log_file.parent):
        d.mkdir(parents=True, exist_ok=True)
    work = Path(launch.work_path) if launch.work_path else None
    return work if work is not None and work.is_dir() else Path(launch.task_path)


def _disk_full(path: Path) -> bool:
    """No block left on the file system of ``path`` for this user (root's reserve aside)."""
    try:
        return os.statvfs(path).f_bavail == 0
    except OSError:
        return False


def _end_unsupervised(rec: TaskRecord) -> bool:
    """A task process of an Odin from before supervisors (``pid:N`` names the task itself): end it."""
    pid_text = rec.resource_id.removeprefix("pid:")
    if not rec.resource_id.startswith("pid:") or not pid_text.isdigit():
        return False
    try:
        environ = Path(f"/proc/{pid_text}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    ours = {f"{C.ENV_TASK_ID}={rec.task_id}".encode(), f"{C.ENV_ATTEMPT}={rec.attempt}".encode()}
    if not ours.issubset(environ):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(int(pid_text), signal.SIGKILL)
    return True
