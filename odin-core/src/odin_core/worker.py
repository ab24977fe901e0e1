"""One run's reconcile loop: decide (``dag``), persist every transition and its events, then act.

The loop is sans-I/O at its heart: ``DagState`` decides, the worker persists what it decided under the
run's lease and then acts, and **every outcome of acting** (a submit that worked, failed for good or
failed for now; what the executor found after a restart) comes back through the inbox as an input of
the next decision. Nothing changes the state behind the decision step's back, so nothing can be left
waiting for a wake-up that never comes.

A worker owns no state that the store does not have: an engine can rebuild it at any time. It sees
the engine only through ``WorkerContext``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .dag import DagState, Plan
from .errors import OdinError, TemporaryError
from .executors.base import Executor, Launch
from .hub import Hub
from .model import AttemptUpdate, Event, RunRecord, RunStatus, TaskRecord, TaskStatus
from .spec.model import TaskSpec
from .store.base import JobStore, Lease, LeaseLost

log = logging.getLogger("odin.engine")

STORE_RETRY_MAX_S = 5.0
"""Longest pause between two tries of a commit while the store is unreachable."""
RECOVER_RETRY_MAX_S = 30.0


@dataclass(frozen=True)
class Stop:
    reason: str


@dataclass(frozen=True)
class Wake:
    pass


@dataclass(frozen=True)
class SubmitFailed:
    name: str
    attempt: int
    message: str
    temporary: bool
    delay_s: float = 0.0


@dataclass(frozen=True)
class Relaunch:
    names: tuple[str, ...]


Message = AttemptUpdate | Stop | Wake | SubmitFailed | Relaunch


class WorkerContext(Protocol):
    """What a worker may use of its engine."""

    store: JobStore
    executor: Executor
    hub: Hub
    root_path: Path
    data_path: Path

    def capacity(self) -> int | None: ...

    def slots_freed(self) -> None: ...

    def finished(self, worker: RunWorker) -> None: ...


@dataclass(eq=False)
class RunWorker:
    """Drives one run until it ends or its lease is lost; its inbox takes every input of the next decision."""

    ctx: WorkerContext
    state: DagState
    seq: int
    lease: Lease
    recover: list[TaskRecord] = field(default_factory=list)  # active attempts to re-attach to first (adoption)
    rekill: list[TaskRecord] = field(default_factory=list)  # ended attempts a crash may have left running (adoption)
    inbox: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    starved: bool = False  # the last plan left ready tasks waiting for engine-wide slots
    since: float = field(default_factory=time.monotonic)  # when it got its lease
    final: RunRecord | None = None  # the ended run's record, once committed under the lease (``Engine.wait``)
    task: asyncio.Task[Any] | None = None  # set by the engine
    _killing: dict[str, asyncio.Future[None]] = field(default_factory=dict)  # kills in flight, by task name

    @property
    def run_id(self) -> str:
        return self.state.run.run_id

    def poke(self) -> None:
        self.inbox.put_nowait(Wake())

    async def run(self) -> None:
        try:
            await self._recover()
            await self._loop()
            await self._tell_executor()
        except LeaseLost:
            log.warning("run %s: another engine took it over; letting go", self.run_id)
            await self._detach()
        except asyncio.CancelledError:  # the engine lets go (closing, or it could not renew its leases)
            await asyncio.shield(self._detach())
            raise
        except Exception as e:  # keep the run's record honest even when the engine has a bug
            log.exception("run %s: internal error", self.run_id)
            with contextlib.suppress(LeaseLost):
                await self._crash(e)
                await self._tell_executor()
        finally:
            self.ctx.finished(self)

    async def _loop(self) -> None:
        active = self.state.active
        while not self.inbox.empty():  # what re-attaching found (attempts that ended meanwhile) comes first
            self._apply(self.inbox.get_nowait())
        while True:
            plan = self.state.decide(time.time(), self.ctx.capacity())
            self.starved = plan.starved
            ending = plan.run if plan.run is not None and plan.run.status.is_terminal else None
            held = ending is not None and bool(plan.kills or self._killing)
            if held:
                plan.run = None  # the run ends once the attempts it stops have ended, not before
            await self._persist(plan)
            if self.state.active < active:  # tasks ended since the last pass: other runs may start some
                self.ctx.slots_freed()
            active = self.state.active
            await self._act(plan)
            if self.state.run.status.is_terminal:  # decided in this pass, so committed above or just below
                if held:
                    await asyncio.gather(*self._killing.values())
                    await self._persist(Plan(run=ending))
                self.final = self.state.run
                return
            if self.inbox.empty():
                timeout = None if plan.wake_at is None else max(plan.wake_at - time.time(), 0)
                with contextlib.suppress(TimeoutError):
                    self._apply(await asyncio.wait_for(self.inbox.get(), timeout))
            while not self.inbox.empty():
                self._apply(self.inbox.get_nowait())

    def _apply(self, item: Message) -> None:
        now = time.time()
        if isinstance(item, AttemptUpdate):
            self.state.update(item, now)
        elif isinstance(item, SubmitFailed):
            self.state.submit_failed(
                item.name, item.attempt, item.message, now, temporary=item.temporary, delay_s=item.delay_s
            )
        elif isinstance(item, Relaunch):
            self.state.relaunch(item.names)
        elif isinstance(item, Stop):
            self.state.request_stop(item.reason)

    async def _recover(self) -> None:
        """After an adoption: re-attach to the attempts a previous engine left active (retried until it works), and
        kill again those it had decided to end (the run's end waits for these kills, as for its own)."""
        for rec in self.rekill:
            self._start_kill(rec)
        self.rekill = []
        if not self.recover:
            return
        log.info("run %s: re-attaching %d active task(s)", self.run_id, len(self.recover))
        delay = 0.5
        while True:
            try:
                never = await self.ctx.executor.recover(self.recover)
                break
            except Exception:
                log.exception("run %s: re-attaching failed; trying again in %.1fs", self.run_id, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECOVER_RETRY_MAX_S)
        self.recover = []
        if never:
            self.inbox.put_nowait(Relaunch(tuple(r.name for r in never)))

    # -- persisting ------------------------------------------------------------------------------

    async def _persist(self, plan: Plan) -> None:
        if not plan.changed and plan.run is None:
            return
        run_first = plan.run is not None and not plan.run.status.is_terminal
        events = [self._run_event(plan.run)] if run_first and plan.run else []
        events += [self._task_event(r) for r in plan.changed]
        if plan.run is not None and not run_first:
            events.append(self._run_event(plan.run))
        latest = list({r.name: r for r in plan.changed}.values())
        await self._commit(plan.run, latest, events)

    async def _commit(self, run: RunRecord | None, tasks: list[TaskRecord], events: list[Event]) -> None:
        """Fenced by the lease; while the store is unreachable the run pauses here (nothing acts before it)."""
        delay = 0.1
        while True:
            try:
                await self.ctx.store.commit(self.lease, run, tasks, events)  # cancel-safe: the store's contract
                break
            except TemporaryError as e:
                log.warning("run %s: store unavailable (%s); retrying in %.1fs", self.run_id, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX_S)
        self.ctx.hub.publish(events)

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _task_event(self, r: TaskRecord) -> Event:
        data: dict[str, Any] = {"attempt": r.attempt}
        if r.exit_code is not None:
            data["exit_code"] = r.exit_code
        if r.resource_id:
            data["resource_id"] = r.resource_id
        return Event(self.run_id, self._next(), time.time(), "task", r.status.value, r.name, r.message, data)

    def _run_event(self, run: RunRecord) -> Event:
        return Event(self.run_id, self._next(), time.time(), "run", run.status.value, message=run.message)

    # -- acting: outcomes go back into the inbox ---------------------------------------------------

    async def _act(self, plan: Plan) -> None:
        for rec in plan.kills:  # each in a task of its own: a task's grace period holds up no other decision
            self._start_kill(rec)
        if len(plan.starts) == 1:  # the usual case: no gather, and no task of its own
            await self._start(plan.starts[0], plan.tasks[plan.starts[0].name])
        elif plan.starts:
            await asyncio.gather(*(self._start(rec, plan.tasks[rec.name]) for rec in plan.starts))

    async def _kill(self, rec: TaskRecord) -> None:
        try:
            await self.ctx.executor.kill(rec)
        except Exception:
            log.exception("run %s: could not kill %s", self.run_id, rec.name)

    def _start_kill(self, rec: TaskRecord) -> None:
        self._killing[rec.name] = kill = asyncio.ensure_future(self._kill(rec))
        kill.add_done_callback(functools.partial(self._forget_kill, rec.name))

    def _forget_kill(self, name: str, kill: asyncio.Future[None]) -> None:  # its done-callback
        if self._killing.get(name) is kill:
            del self._killing[name]

    async def _start(self, rec: TaskRecord, task: TaskSpec) -> None:
        previous = self._killing.get(rec.name)
        if previous is not None:  # a retry of a task whose last attempt is still being ended: never two at once
            await previous
        try:
            resource_id = await self.ctx.executor.submit(self._launch(rec, task))
        except TemporaryError as e:
            self.inbox.put_nowait(SubmitFailed(rec.name, rec.attempt, str(e), temporary=True, delay_s=e.delay_s))
        except OdinError as e:
            self.inbox.put_nowait(SubmitFailed(rec.name, rec.attempt, str(e), temporary=False))
        except Exception as e:  # an executor bug or an unexpected client error: worth another try
            log.exception("run %s: submit of %s failed", self.run_id, rec.name)
            self.inbox.put_nowait(SubmitFailed(rec.name, rec.attempt, f"submit failed: {e!r}", temporary=True))
        else:
            self.inbox.put_nowait(
                AttemptUpdate(self.run_id, rec.name, rec.attempt, TaskStatus.PENDING, resource_id=resource_id)
            )

    def _launch(self, rec: TaskRecord, task: TaskSpec) -> Launch:
        run_path = str(self.ctx.data_path / self.run_id)
        work_path = str(self.state.spec.path or self.ctx.root_path / self.state.spec.job)
        return Launch.of(self.run_id, task, rec.attempt, work_path=work_path, run_path=run_path)

    # -- the end -----------------------------------------------------------------------------------

    async def _detach(self) -> None:
        try:
            await self.ctx.executor.detach(self.run_id)
        except Exception:
            log.exception("run %s: executor failed to let go of the run", self.run_id)

    async def _tell_executor(self) -> None:
        try:
            await self.ctx.executor.run_finished(self.run_id, list(self.state.records.values()))
        except Exception:
            log.exception("run %s: executor failed to handle the end of the run", self.run_id)

    async def _crash(self, error: Exception) -> None:
        for rec in self.state.records.values():
            if rec.status.is_active:
                await self._kill(rec)
        run = self.state.run.evolve(
            status=RunStatus.TERMINATED, completed=time.time(), message=f"internal error: {error!r}"
        )
        self.state.run = run
        await self._commit(run, [], [self._run_event(run)])
        self.final = run
