"""Starting, probing and stopping the component processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

POLL_INTERVAL_S = 0.1


def spawn(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a component in its own session (it outlives the launcher), output to `log_path`."""
    with log_path.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def is_running(pid: int, binary: Path) -> bool:
    """True if `pid` is a live (not zombie) process running `binary` (guards against PID reuse)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except (OSError, IndexError):
        return False
    return state != "Z" and argv0 == str(binary)


def wait_healthy(
    proc: subprocess.Popen, check: Callable[[], tuple[bool, str]], *, timeout_s: float
) -> tuple[bool, str]:
    """Poll `check` until it passes, the process exits, or `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            return False, f"process exited with code {proc.returncode}"
        ok, detail = check()
        if ok:
            return True, detail
        if time.monotonic() > deadline:
            return False, f"not healthy after {timeout_s:.0f}s (last answer: {detail})"
        time.sleep(POLL_INTERVAL_S)


def stop(pids: Sequence[int], *, timeout_s: float) -> None:
    """Stop `pids` one after the other (dependents first: the API server hangs on shutdown if
    etcd is already gone): SIGTERM, wait up to `timeout_s`, then SIGKILL."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _exists(pid) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S / 2)
        if _exists(pid):
            _signal(pid, signal.SIGKILL)
        _reap(pid)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open(errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except FileNotFoundError:
        return "(no log file)"


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _exists(pid: int) -> bool:
    _reap(pid)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _reap(pid: int) -> None:
    """Collect the exit status when `pid` is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
