"""``odin run --detach`` on the embedded engine: a background driver process that outlives the terminal.

The command validates the pipeline, then starts ``python -m odin_client _drive …`` in a session of its
own (no controlling terminal, so closing the terminal sends it no SIGHUP), stdin from /dev/null and
stdout/stderr appended to ``$ODIN_HOME/drivers/<run id>.log``. The driver creates (or resubmits) the run,
writes one JSON line on an inherited pipe (``{"run_id", "status"}`` or ``{"error", "exit"}``), closes it
and drives the run to its end. The command returns as soon as that line arrives.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odin_core.errors import OdinError

from .common import CliState

READY_TIMEOUT_S = 60.0
DRIVER_COMMAND = "_drive"
SECRETS = ("ODIN_TOKEN", "ODIN_JWT_SECRET")  # a driver serves no clients: it needs neither


@dataclass(frozen=True)
class Started:
    run_id: str
    status: str
    pid: int
    log: Path
    existing: bool = False

    def to_record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "driver_pid": self.pid,
            "log": str(self.log),
            "existing": self.existing,
        }


class DriverFailed(OdinError):
    """The background driver reported an error, or died, before the run was under way."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def driver_log(home: Path, run_id: str) -> Path:
    return home / "drivers" / f"{run_id}.log"


def start_driver(cli_state: CliState, run_id: str, *, job_dir: Path | None = None, resubmit: bool = False) -> Started:
    """Start the background driver of ``run_id`` (a new run of ``job_dir``, or a resubmission) and wait
    until it has the run under way."""
    settings = cli_state.settings()
    log = driver_log(settings.home, run_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "odin_client", DRIVER_COMMAND, "--run-id", run_id]
    args += ["--resubmit"] if resubmit else ["--job", str(Path(job_dir or ".").resolve())]
    env = {k: v for k, v in cli_state.environment().items() if k not in SECRETS}
    read_end, write_end = os.pipe()
    try:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*args, "--ready-fd", str(write_end)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(write_end,),
                close_fds=True,
            )
        os.close(write_end)
        write_end = -1
        message = _read_ready(read_end, READY_TIMEOUT_S)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    return _started(message, proc, log)


def _started(message: dict[str, Any] | None, proc: subprocess.Popen[bytes], log: Path) -> Started:
    if message is None:
        code = proc.poll()
        if code is None:
            raise DriverFailed(
                f"the background driver (pid {proc.pid}) did not start the run within {READY_TIMEOUT_S:g}s; "
                f"it may still: see its log {log}"
            )
        raise DriverFailed(f"the background driver exited ({code}) before the run started: {_last_line(log)}")
    if "error" in message:
        proc.wait(timeout=10)
        raise DriverFailed(str(message["error"]), exit_code=int(message.get("exit", 1)))
    return Started(
        str(message["run_id"]), str(message["status"]), proc.pid, log, existing=bool(message.get("existing"))
    )


def _read_ready(fd: int, timeout_s: float) -> dict[str, Any] | None:
    """The driver's one JSON line, or None if it closed the pipe (died) or the time ran out."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\n", 1)[0]
    try:
        message = json.loads(line) if line else None
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    return f"{lines[-1]} (log: {log})" if lines else f"see its log {log}"


class ReadyPipe:
    """The driver's side of the pipe: one JSON line, sent once, then the pipe is closed (the command returns)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def send(self, message: dict[str, Any]) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return  # sent already (its number may belong to another file by now: never write to it again)
        with contextlib.suppress(OSError):  # the command gave up waiting: the run goes on regardless
            os.write(fd, (json.dumps(message) + "\n").encode())
        with contextlib.suppress(OSError):
            os.close(fd)


__all__ = ["DRIVER_COMMAND", "DriverFailed", "ReadyPipe", "Started", "driver_log", "start_driver"]
