"""Processes the core may not have started: named by pid *and* start time, waited for without polling.

A pid alone is not an identity (pids are reused), so every reference carries the process start time
from ``/proc`` and is checked after a pidfd is opened: from then on the pidfd pins that very process,
and signals sent through it cannot reach another one. Where pidfds are missing (old kernels) waits
fall back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Any

from .local_supervisor import end_session, is_running, proc_stat

POLL_S = 0.25  # only without pidfd support


@dataclass(frozen=True)
class ProcRef:
    pid: int
    start: int

    @classmethod
    def of(cls, record: dict[str, Any] | None) -> ProcRef | None:
        """The process a record names (``{"pid": ..., "start": ...}``), or None for a broken record."""
        if not record:
            return None
        pid, start = record.get("pid"), record.get("start")
        if isinstance(pid, int) and isinstance(start, int) and pid > 0:
            return cls(pid, start)
        return None

    def running(self) -> bool:
        return is_running(self.pid, self.start)


def _pidfd(ref: ProcRef) -> int | None:
    """A pidfd of ``ref`` while it runs; None when it has ended (or the pid is another process's now).

    Raises ``NotImplementedError`` where pidfds are not supported.
    """
    if not hasattr(os, "pidfd_open"):
        raise NotImplementedError
    try:
        fd = os.pidfd_open(ref.pid)
    except ProcessLookupError:
        return None
    except OSError as e:
        raise NotImplementedError from e
    if ref.running():  # checked after opening: the pidfd names exactly this process
        return fd
    os.close(fd)
    return None


async def wait_ended(ref: ProcRef) -> None:
    """Return once ``ref`` has ended (at once when it already has)."""
    try:
        fd = _pidfd(ref)
    except NotImplementedError:
        while await asyncio.to_thread(ref.running):
            await asyncio.sleep(POLL_S)
        return
    if fd is None:
        return
    loop = asyncio.get_running_loop()
    ended = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def send(ref: ProcRef, sig: signal.Signals) -> bool:
    """Send ``sig`` to ``ref`` if it still runs; False when it does not (nothing else is signalled)."""
    try:
        fd = _pidfd(ref)
    except NotImplementedError:
        if not ref.running():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref.pid, sig)
            return True
        return False
    if fd is None:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def end_all(supervisor: ProcRef) -> bool:
    """SIGKILL the supervisor (if it runs) and every process left in its session; True when none is left.

    The session id is the supervisor's pid. While a session has members its id is never given to a new
    process, so a live process at that pid with another start time means the session had already ended.
    """
    st = proc_stat(supervisor.pid)
    if st is not None and st.start != supervisor.start:
        return True
    return end_session(supervisor.pid)
