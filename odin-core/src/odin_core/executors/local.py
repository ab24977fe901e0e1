"""The local executor: each attempt is a process on this machine, in its own task directory.

The image is recorded, not pulled. stdout and stderr go to ``<run>/.odin/logs/<task>.log``
(every attempt appended, later attempts under a header). A task publishes outputs by writing a
JSON object to the file named by ``$ODIN_OUTPUTS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from .. import constants as C
from ..errors import PermanentError
from ..model import AttemptUpdate, TaskRecord, TaskStatus
from ..settings import LocalSettings
from ..spec.model import TaskSpec
from ..tasks import TaskSet
from .base import Executor, Launch

_Key = tuple[str, str, int]  # run id, task name, attempt
FOLLOW_POLL_S = 0.1


def _arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def log_path(run_path: str | Path, task: str) -> Path:
    return Path(run_path) / C.RUN_META_DIR / "logs" / f"{task}.log"


def outputs_path(run_path: str | Path, task: str, attempt: int) -> Path:
    return Path(run_path) / C.RUN_META_DIR / "outputs" / f"{task}.{attempt}.json"


def count_gpus() -> int:
    """GPUs visible through nvidia-smi (0 when there is none)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, data_path: Path, settings: LocalSettings | None = None) -> None:
        super().__init__()
        self.data_path = data_path
        self.settings = settings or LocalSettings()
        self._procs: dict[_Key, asyncio.subprocess.Process] = {}
        self._tasks = TaskSet("local")
        self._gpus: int | None = None

    @property
    def gpus(self) -> int:
        if self._gpus is None:
            self._gpus = count_gpus()
        return self._gpus

    def notes(self, tasks: list[TaskSpec]) -> list[str]:
        images = sorted({t.image for t in tasks})
        notes = [f"local executor: images are recorded, not pulled ({', '.join(images)})"]
        for t in tasks:
            if t.num_gpus > self.gpus:
                action = "it will fail" if self.settings.gpu_policy == "fail" else "it runs without them"
                notes.append(f"task {t.name!r} asks for {t.num_gpus} GPU(s); this machine has {self.gpus}: {action}")
        return notes

    async def submit(self, launch: Launch) -> str:
        t = launch.task
        if t.num_gpus > self.gpus and self.settings.gpu_policy == "fail":
            raise PermanentError(f"needs {t.num_gpus} GPU(s), this machine has {self.gpus}")
        task_dir = Path(launch.task_path)
        task_dir.mkdir(parents=True, exist_ok=True)
        out_file = outputs_path(launch.run_path, t.name, launch.attempt)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.unlink(missing_ok=True)
        log_file = log_path(launch.run_path, t.name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = [*t.command, *(_arg(a) for a in launch.task.args)]
        with open(log_file, "ab") as log:
            if launch.attempt > 1:
                log.write(f"----- attempt {launch.attempt} -----\n".encode())
                log.flush()
            proc = await self._spawn(argv, task_dir, self._env(launch, out_file), log)
        key = (launch.run_id, t.name, launch.attempt)
        self._procs[key] = proc
        self.report(AttemptUpdate(*key, TaskStatus.RUNNING, resource_id=f"pid:{proc.pid}"))
        self._tasks.spawn(self._follow(key, proc, out_file, log_file), f"{launch.task_id}.{launch.attempt}")
        return f"pid:{proc.pid}"

    @staticmethod
    async def _spawn(argv: list[str], cwd: Path, env: dict[str, str], log: Any) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError) as e:
            raise PermanentError(f"cannot run {argv[0]!r}: {e.strerror}") from e

    @staticmethod
    def _env(launch: Launch, out_file: Path) -> dict[str, str]:
        env = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)  # `python` in a task means the interpreter Odin runs on
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env.update({k: str(v) for k, v in launch.env.items()})
        env[C.ENV_OUTPUTS] = str(out_file)
        return env

    async def _follow(self, key: _Key, proc: asyncio.subprocess.Process, out_file: Path, log_file: Path) -> None:
        code = await proc.wait()
        self._procs.pop(key, None)
        outputs, problem = _read_outputs(out_file)
        if code == 0 and problem is None:
            self.report(AttemptUpdate(*key, TaskStatus.SUCCEEDED, exit_code=0, outputs=outputs))
            return
        self.report(
            AttemptUpdate(*key, TaskStatus.FAILED, exit_code=code, message=problem or _exit_message(code, log_file))
        )

    async def kill(self, record: TaskRecord) -> None:
        proc = self._procs.get((record.run_id, record.name, record.attempt))
        if proc is None or proc.returncode is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.settings.kill_grace_s)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)

    async def recover(self, records: list[TaskRecord]) -> list[TaskRecord]:
        """Processes of a previous engine cannot be followed: end them, then report them lost."""
        for rec in records:
            if rec.resource_id.startswith("pid:") and _is_task_process(int(rec.resource_id[4:]), rec.task_id):
                _signal_group(int(rec.resource_id[4:]), signal.SIGKILL)
        return await super().recover(records)

    async def logs(
        self,
        record: TaskRecord,
        *,
        follow: bool = False,
        lines: int | None = None,
        container: str | None = None,
        until: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[str]:
        path = log_path(self.data_path / record.run_id, record.name)
        text = await asyncio.to_thread(_read_text, path)
        all_lines = text.splitlines(keepends=True)
        partial = "" if text.endswith("\n") or not all_lines else all_lines.pop()
        for line in all_lines[-lines:] if lines else all_lines:
            yield line.rstrip("\n")
        if not follow:
            if partial:
                yield partial
            return
        async for line in _tail(path, len(text.encode()) - len(partial.encode()), until):
            yield line

    async def cleanup(self, run_id: str, records: list[TaskRecord]) -> dict[str, bool]:
        for key in [k for k in self._procs if k[0] == run_id]:
            rec = next((r for r in records if r.name == key[1]), None)
            if rec is not None:
                await self.kill(rec.evolve(attempt=key[2]))
        return {r.name: False for r in records}

    async def close(self) -> None:
        await self._tasks.close()


def _read_from(path: Path, offset: int) -> bytes:
    if not path.exists():
        return b""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()


def _read_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def _tail(path: Path, offset: int, until: Callable[[], Awaitable[bool]] | None) -> AsyncIterator[str]:
    buf = b""
    while True:
        chunk = await asyncio.to_thread(_read_from, path, offset)
        offset += len(chunk)
        buf += chunk
        *done, buf = buf.split(b"\n")
        for line in done:
            yield line.decode(errors="replace")
        if not chunk:
            if until is None or await until():
                if buf:
                    yield buf.decode(errors="replace")
                return
            await asyncio.sleep(FOLLOW_POLL_S)


def _read_outputs(path: Path) -> tuple[dict[str, Any], str | None]:
    if not path.exists():
        return {}, None
    raw = path.read_bytes()
    if len(raw) > C.MAX_OUTPUTS_BYTES:
        return {}, f"outputs are {len(raw)} bytes; the limit is {C.MAX_OUTPUTS_BYTES} (write large data to files)"
    try:
        data = json.loads(raw or b"{}")
    except ValueError as e:
        return {}, f"${C.ENV_OUTPUTS} does not hold JSON: {e}"
    if not isinstance(data, dict):
        return {}, f"${C.ENV_OUTPUTS} must hold a JSON object, not {type(data).__name__}"
    return data, None


def _exit_message(code: int, log_file: Path) -> str:
    text = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    last = _last_line(log_file)
    return f"{text}: {last}" if last else text


def _last_line(path: Path, max_bytes: int = 4096) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(path.stat().st_size - max_bytes, 0))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip() and not ln.startswith("----- attempt")]
    return lines[-1][:300] if lines else ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _is_task_process(pid: int, task_id: str) -> bool:
    """True when ``pid`` still is the process we started for ``task_id`` (pids get reused)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{C.ENV_TASK_ID}={task_id}".encode() in environ.split(b"\0")
