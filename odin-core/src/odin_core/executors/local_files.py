"""Where a local run keeps its files, and what the executor reads back from them.

``<run>/.odin/logs/<task>.log``: stdout and stderr of every attempt (later ones under a header).
``<run>/.odin/outputs/<task>.<attempt>.json``: the file ``$ODIN_OUTPUTS`` names.
``<run>/.odin/attempts/<task>.<attempt>/``: the records of one attempt's supervisor (see
``local_supervisor``): the claim, the task process, the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import constants as C
from ..model import AttemptUpdate, TaskStatus
from .base import outputs_object

Key = tuple[str, str, int]  # run id, task name, attempt


def log_path(run_path: str | Path, task: str) -> Path:
    return Path(run_path) / C.RUN_META_DIR / "logs" / f"{task}.log"


def outputs_path(run_path: str | Path, task: str, attempt: int) -> Path:
    return Path(run_path) / C.RUN_META_DIR / "outputs" / f"{task}.{attempt}.json"


def attempts_dir(run_path: str | Path) -> Path:
    return Path(run_path) / C.RUN_META_DIR / C.LOCAL_ATTEMPTS_DIR


@dataclass(frozen=True)
class AttemptFiles:
    """The record files of one attempt."""

    dir: Path

    @classmethod
    def of(cls, run_path: str | Path, task: str, attempt: int) -> AttemptFiles:
        return cls(attempts_dir(run_path) / f"{task}.{attempt}")

    @property
    def claim(self) -> Path:
        return self.dir / C.LOCAL_CLAIM_FILE

    @property
    def task(self) -> Path:
        return self.dir / C.LOCAL_TASK_FILE

    @property
    def result(self) -> Path:
        return self.dir / C.LOCAL_RESULT_FILE


@dataclass(frozen=True)
class AttemptState:
    """What the records of one attempt say; None where a record does not exist (yet)."""

    claim: dict[str, Any] | None
    task: dict[str, Any] | None
    result: dict[str, Any] | None


def read_json(path: Path) -> dict[str, Any] | None:
    """A record, or None when there is none (records are written whole: link or rename)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_state(files: AttemptFiles) -> AttemptState:
    # The result first: a supervisor that ends between two reads is then seen with its claim.
    result = read_json(files.result)
    return AttemptState(read_json(files.claim), read_json(files.task), result)


def list_attempts(run_path: str | Path) -> list[tuple[str, int]]:
    """(task, attempt) of every attempt claimed under a run."""
    try:
        names = [p.name for p in attempts_dir(run_path).iterdir()]
    except OSError:
        return []
    found = []
    for name in names:
        task, _, attempt = name.rpartition(".")
        if task and attempt.isdigit():
            found.append((task, int(attempt)))
    return found


def final_update(key: Key, result: dict[str, Any], log_file: Path) -> AttemptUpdate:
    """How an attempt ended, from its result record (the same for a live core and a restarted one)."""
    if result.get("error"):
        return AttemptUpdate(*key, TaskStatus.FAILED, message=str(result["error"]), permanent=True)
    code = result.get("exit_code")
    outputs, problem = parse_outputs(result)
    if code == 0 and problem is None:
        return AttemptUpdate(*key, TaskStatus.SUCCEEDED, exit_code=0, outputs=outputs)
    message = problem or exit_message(code if isinstance(code, int) else -1, log_file)
    return AttemptUpdate(*key, TaskStatus.FAILED, exit_code=code, message=message)


def parse_outputs(result: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The task's outputs object, or a problem that fails the attempt."""
    if "outputs_size" in result:
        size = result["outputs_size"]
        return {}, f"outputs are {size} bytes; the limit is {C.MAX_OUTPUTS_BYTES} (write large data to files)"
    if "outputs_error" in result:
        return {}, str(result["outputs_error"])
    text = result.get("outputs")
    if text is None:
        return {}, None
    return outputs_object(text)


def exit_message(code: int, log_file: Path) -> str:
    text = f"killed by signal {_signal_name(-code)}" if code < 0 else f"exit code {code}"
    last = last_line(log_file)
    return f"{text}: {last}" if last else text


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def last_line(path: Path, max_bytes: int = 4096) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(path.stat().st_size - max_bytes, 0))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip() and not ln.startswith(ATTEMPT_HEADER_START)]
    return lines[-1][:300] if lines else ""


ATTEMPT_HEADER_START = "----- attempt"


def attempt_header(attempt: int) -> str:
    """The line above the log of every attempt after the first."""
    return f"{ATTEMPT_HEADER_START} {attempt} -----\n" if attempt > 1 else ""


READ_CHUNK = 1 << 20
"""A log is read this much at a time: a reader's memory stays bounded however long the log is, and the loop gets a
turn between two chunks."""
FOLLOW_POLL_S = 0.1  # `logs -f`: how often a quiet log file is read again


def read_from(path: Path, offset: int, limit: int = READ_CHUNK) -> bytes:
    """At most ``limit`` bytes of the file from ``offset`` (nothing if the file is missing)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; a missing file is no error)
    except FileNotFoundError:
        return b""
    with f:
        f.seek(offset)
        return f.read(limit)


def tail_offset(path: Path, lines: int) -> int:
    """Where the file's last ``lines`` lines begin (a last line without its newline counts), read backwards in
    chunks: ``logs --lines 20`` of a log of gigabytes reads its end, not all of it. 0 for a missing file."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return 0
    with f:
        pos = f.seek(0, os.SEEK_END)
        if pos:
            f.seek(pos - 1)
            pos -= f.read(1) == b"\n"  # a final newline ends the last line, it starts no new one
        need = lines
        while pos > 0:
            start = max(0, pos - READ_CHUNK)
            f.seek(start)
            block = f.read(pos - start)
            end = len(block)
            while (end := block.rfind(b"\n", 0, end)) >= 0:
                need -= 1
                if need == 0:
                    return start + end + 1
            pos = start
    return 0


async def file_lines(
    path: Path, offset: int = 0, until: Callable[[], Awaitable[bool]] | None = None
) -> AsyncIterator[str]:
    """The file's lines from ``offset``, read a chunk at a time off the loop. At its end: with ``until``, wait for
    more (polled) until ``until()`` says the writer is done; without it, stop (a last line without its newline
    is yielded at the end)."""
    buf = b""
    while True:
        chunk = await asyncio.to_thread(read_from, path, offset)
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
