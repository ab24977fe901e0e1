"""Starting local supervisors, with one kept warm: a submit hands its launch to a supervisor already running.

A supervisor costs a Python start (~25 ms on the reference machine, see ``bench/local_start_latency.py``),
so after each submit the next supervisor is started in the background: started, detached and waiting
for a launch description on its stdin. It claims nothing until it gets one; if the core goes away first,
it reads end-of-file and exits. A spare that died meanwhile is replaced by a fresh supervisor on the spot
(it had claimed nothing, or the fresh one finds its claim and attaches).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from ..errors import PermanentError
from . import local_supervisor

# `python -I -S -c BOOT`: isolated from PYTHON* variables and the site packages (the supervisor needs builtins
# only), and imported rather than run as a script so its compiled bytecode is reused (~15 ms a start).
_HERE = str(Path(local_supervisor.__file__).resolve().parent)
BOOT = f"import sys; sys.path.append({_HERE!r}); from local_supervisor import main; sys.exit(main())"
LABEL = "odin-local-supervisor"  # for `ps`; nothing of the task is in the argv, its environment goes on stdin


class Supervisors:
    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._filling: asyncio.Future[subprocess.Popen[bytes] | None] | None = None
        self._closed = False

    def _start(self, stderr: Path | None) -> subprocess.Popen[bytes]:
        """A supervisor; ``stderr`` None makes a spare, which sends its stderr to the task's log once it
        knows the task (a fresh one that cannot start says why in the task's log)."""
        argv = [sys.executable, "-I", "-S", "-c", BOOT, LABEL]
        pipe = subprocess.PIPE
        try:
            with open(stderr or os.devnull, "ab") as err:
                return subprocess.Popen(argv, stdin=pipe, stdout=pipe, stderr=err, env=self._env, cwd="/")
        except OSError as e:
            raise PermanentError(f"cannot start the local supervisor ({sys.executable}): {e.strerror}") from e

    async def launch(self, description: bytes, log_file: Path) -> str:
        """Hand ``description`` to a supervisor; its one-line answer ("" when it died without one)."""
        spare = await self._take()
        self._fill()
        if spare is not None:
            answer = await asyncio.to_thread(_talk, spare, description)
            if answer:
                return answer
        fresh = await asyncio.to_thread(self._start, log_file)
        return await asyncio.to_thread(_talk, fresh, description)

    async def _take(self) -> subprocess.Popen[bytes] | None:
        """The spare, waiting for it if it is still starting (it is nearer to ready than a fresh start).

        Taken at once, so concurrent submits start fresh supervisors instead of queueing for it."""
        filling, self._filling = self._filling, None
        if filling is None:
            return None
        try:
            return await asyncio.shield(filling)  # the thread goes on whatever happens to this submit
        except asyncio.CancelledError:
            if self._filling is None and not self._closed:
                self._filling = filling  # still there for the next submit
            else:
                filling.add_done_callback(_dismiss)
            raise

    def _fill(self) -> None:
        """Start the next spare in the background (a thread: not cancelled, so never lost half-started)."""
        if self._closed or self._filling is not None:
            return
        loop = asyncio.get_running_loop()
        self._filling = loop.run_in_executor(None, self._start_quietly)

    def _start_quietly(self) -> subprocess.Popen[bytes] | None:
        try:
            return self._start(None)
        except PermanentError:
            return None

    async def close(self) -> None:
        """Dismiss the spare: it reads end-of-file, claims nothing and exits."""
        self._closed = True
        filling, self._filling = self._filling, None
        spare = await filling if filling is not None else None
        if spare is not None:
            await asyncio.to_thread(_talk, spare, b"")


def _dismiss(filling: asyncio.Future[subprocess.Popen[bytes] | None]) -> None:
    """A spare nobody will use: end-of-file on its stdin and it exits (its first process is reaped later)."""
    proc = None if filling.cancelled() or filling.exception() else filling.result()
    if proc is not None and proc.stdin is not None:
        proc.stdin.close()


def _talk(proc: subprocess.Popen[bytes], description: bytes) -> str:
    """Write the launch description, return the answer line. The supervisor answers and closes its stdout, so
    this returns once it has answered (or died); its first process exits as soon as it has detached (reaped here)."""
    try:
        answer, _ = proc.communicate(description)
    except (BrokenPipeError, ValueError):  # it died before reading
        proc.wait()
        return ""
    return answer.decode(errors="replace").strip()
