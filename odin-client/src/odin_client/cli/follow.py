"""Following a run until it ends, and what Ctrl-C, SIGTERM and SIGHUP do meanwhile.

Who drives the run decides what a signal may do. A run on a server (``--server``) goes on without this
process, so a signal only ends the following ("detach"); stopping it takes an explicit yes. An embedded
``odin run`` *is* the run's engine: leaving would orphan it, so a signal stops the run, and Ctrl-C on a
terminal asks first. ``decide`` is the whole policy, pure; ``follow`` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from odin_core.model import Event

from .progress import Display


class Outcome(StrEnum):
    ENDED = "ended"  # the run ended by itself
    STOPPED = "stopped"  # this process asked it to stop; it then ended
    DETACHED = "detached"  # this process stopped following; the run goes on (on a server)


class Action(StrEnum):
    ASK = "ask"
    STOP = "stop"
    DETACH = "detach"
    CONTINUE = "continue"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Policy:
    remote: bool  # the run is driven elsewhere (a server): it goes on without this process
    interactive: bool  # someone at a terminal can answer a question
    background: bool = False  # a detached driver (no terminal): SIGHUP means nothing to it
    hint: str = ""  # the global options to repeat in suggested commands (`--server URL `)


def reason(sig: int, policy: Policy) -> str:
    """The run's message when a signal stops it."""
    if sig == signal.SIGINT:
        return "interrupted by the user"
    who = "its background driver" if policy.background else "`odin run`"
    if sig == signal.SIGHUP:
        return f"stopped: the terminal of {who} closed (`odin run --detach` runs outlive the terminal)"
    return f"stopped: {who} got {signal.Signals(sig).name}"


def decide(sig: int, policy: Policy, *, stopping: bool) -> Action:
    """What one signal does while a run is followed."""
    if sig == signal.SIGHUP and policy.background:
        return Action.IGNORE
    if policy.remote:
        if sig == signal.SIGINT and policy.interactive and not stopping:
            return Action.ASK
        return Action.DETACH
    if stopping:
        return Action.IGNORE  # the run is already being stopped: wait for its end
    if sig == signal.SIGINT and policy.interactive:
        return Action.ASK
    return Action.STOP


def answer(text: str, policy: Policy) -> Action:
    """The action a typed answer (or an empty line / end of input) stands for."""
    word = text.strip().lower()
    if word in ("y", "yes", "s", "stop"):
        return Action.STOP
    if policy.remote:
        return Action.CONTINUE if word in ("c", "continue", "w", "watch") else Action.DETACH
    return Action.CONTINUE


def question(run_id: str, policy: Policy) -> str:
    if policy.remote:
        return f"stop run {run_id} on the server? [y]es / [N]o, leave it running / [c]ontinue watching: "
    return f"stop run {run_id}? this process drives it [y]es / [N]o, keep watching: "


def detached_lines(run_id: str, policy: Policy) -> list[str]:
    h = policy.hint
    return [
        f"left run {run_id} running on the server",
        f"  follow it: odin {h}status {run_id}  |  odin {h}logs {run_id} -f",
        f"  stop it:   odin {h}stop {run_id}",
    ]


class Follower:
    """Shows a run's events until it ends, reacting to signals as ``decide`` says."""

    def __init__(self, odin: Any, run_id: str, display: Display, policy: Policy) -> None:
        self.odin = odin
        self.run_id = run_id
        self.display = display
        self.policy = policy
        self.stopping = False

    async def run(self, signals: asyncio.Queue[int], *, after_seq: int = 0) -> Outcome:
        try:
            async with asyncio.TaskGroup() as group:
                watching = group.create_task(self._watch(after_seq), name=f"follow:{self.run_id}")
                reacting = group.create_task(self._react(signals), name=f"signals:{self.run_id}")
                await asyncio.wait({watching, reacting}, return_when=asyncio.FIRST_COMPLETED)
                watching.cancel()
                reacting.cancel()
        except BaseExceptionGroup as failed:  # e.g. the server went away: raise the error itself, not a group
            raise first_error(failed) from None
        if reacting.done() and not reacting.cancelled():
            return Outcome.DETACHED
        return Outcome.STOPPED if self.stopping else Outcome.ENDED

    async def _watch(self, after_seq: int) -> None:
        async for ev in self.odin.watch(self.run_id, after_seq=after_seq):
            if isinstance(ev, Event):  # not a Lagged marker: a run's own watch replays instead
                self.display.event(ev)

    async def _react(self, signals: asyncio.Queue[int]) -> None:
        """Returns only to detach."""
        while True:
            sig = await signals.get()
            if sig == signal.SIGHUP and not self.policy.background:
                _silence()  # the terminal is gone: writing to it would fail
            action = decide(sig, self.policy, stopping=self.stopping)
            if action is Action.ASK:
                action = await self._ask(signals)
            if action is Action.STOP:
                await self._stop(reason(sig, self.policy))
            elif action is Action.DETACH:
                for line in detached_lines(self.run_id, self.policy):
                    self.display.note(line)
                return
            elif action is Action.CONTINUE:
                self.display.note(f"still following run {self.run_id}; Ctrl-C again to stop it")
            elif self.stopping and sig == signal.SIGINT:
                self.display.note(f"run {self.run_id} is stopping: its running tasks are being ended")

    async def _ask(self, signals: asyncio.Queue[int]) -> Action:
        """Ask whether to stop; a second Ctrl-C while asking means yes."""
        self.display.pause()
        try:
            console = getattr(self.display, "console", None)
            prompt = question(self.run_id, self.policy)
            if console is not None:
                console.print(prompt, end="", markup=False)
                console.file.flush()
            async with asyncio.TaskGroup() as group:
                typed = group.create_task(_read_line(), name="ask:line")
                again = group.create_task(signals.get(), name="ask:signal")
                await asyncio.wait({typed, again}, return_when=asyncio.FIRST_COMPLETED)
                typed.cancel()
                again.cancel()
            if console is not None:
                console.print()
            if again.done() and not again.cancelled():
                return Action.STOP
            return answer(typed.result(), self.policy)
        finally:
            self.display.resume()

    async def _stop(self, reason: str) -> None:
        self.stopping = True
        where = "on the server" if self.policy.remote else "its running tasks are being ended"
        self.display.note(f"stopping run {self.run_id} ({where})")
        await self.odin.stop(self.run_id, reason)


async def follow(
    odin: Any, run_id: str, display: Display, policy: Policy, signals: asyncio.Queue[int], *, after_seq: int = 0
) -> Outcome:
    """Follow the run, reacting to the signals caught (``catching_signals``), queued ones first."""
    return await Follower(odin, run_id, display, policy).run(signals, after_seq=after_seq)


@contextlib.contextmanager
def catching_signals() -> Iterator[asyncio.Queue[int]]:
    """SIGINT, SIGTERM and SIGHUP queued instead of killing the process, from before a run is created until it is
    followed: a signal in between is acted on as soon as the run is followed, never leaving a run without a driver."""
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[int] = asyncio.Queue()
    handled = _install(loop, signals.put_nowait)
    try:
        yield signals
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first error of a task group (errors such as Disconnected must reach the CLI's handler unwrapped)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _install(loop: asyncio.AbstractEventLoop, callback: Any) -> list[signal.Signals]:
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, callback, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            continue
        handled.append(sig)
    return handled


async def _read_line() -> str:
    """One line typed on stdin ("" at end of input), without blocking the loop or leaving a thread behind."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    try:
        return os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return ""


def _silence() -> None:
    """Point stdout and stderr, where they are a terminal, at /dev/null: after a hang-up writing there fails, and the
    run must still be ended cleanly."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                if os.isatty(fd):
                    os.dup2(devnull, fd)
        os.close(devnull)


def interactive(console: Any) -> bool:
    """A person can answer: stdin and the progress output are both a terminal."""
    try:
        return sys.stdin.isatty() and bool(console.is_terminal)
    except (AttributeError, ValueError):
        return False


__all__ = [
    "Action",
    "Outcome",
    "Policy",
    "answer",
    "catching_signals",
    "decide",
    "detached_lines",
    "first_error",
    "follow",
    "interactive",
    "reason",
]
