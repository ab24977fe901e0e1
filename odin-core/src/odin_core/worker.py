"""One run's reconcile loop: decide (``dag``), persist every transition and its events, then act.

A worker owns no state that the store does not have: ``Engine`` can rebuild it at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import constants as C
from .dag import DagState, Plan
from .errors import OdinError, TemporaryError
from .executors.base import Launch
from .model import AttemptUpdate, Event, RunRecord, RunStatus, TaskRecord, TaskStatus
from .spec import resolve_references, task_id
from .spec.model import TaskSpec

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("odin.engine")


@dataclass(frozen=True)
class Stop:
    reason: str


@dataclass(frozen=True)
class Wake:
    pass


class RunWorker:
    """Drives one run until it ends; its inbox takes executor reports, stop requests and wake-ups."""

    def __init__(self, engine: Engine, state: DagState, seq: int) -> None:
        self.engine = engine
        self.state = state
        self.seq = seq
        self.inbox: asyncio.Queue[AttemptUpdate | Stop | Wake] = asyncio.Queue()

    @property
    def run_id(self) -> str:
        return self.state.run.run_id

    def poke(self) -> None:
        self.inbox.put_nowait(Wake())

    async def run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:  # the engine is closing: the run stays active for a successor
            self.engine._workers.pop(self.run_id, None)
            raise
        except Exception as e:  # keep the run's record honest even when the engine has a bug
            log.exception("run %s: internal error", self.run_id)
            await self._crash(e)
        await self._tell_executor()
        self.engine._finished(self.run_id)

    async def _loop(self) -> None:
        while True:
            plan = self.state.decide(time.time(), self.engine.capacity())
            await self._persist(plan)
            await self._act(plan)
            if self.state.run.status.is_terminal:
                return
            if not self.inbox.empty():
                self._drain()
                continue
            timeout = None if plan.wake_at is None else max(plan.wake_at - time.time(), 0)
            with contextlib.suppress(TimeoutError):
                self._apply(await asyncio.wait_for(self.inbox.get(), timeout))
            self._drain()

    def _drain(self) -> None:
        while not self.inbox.empty():
            self._apply(self.inbox.get_nowait())

    def _apply(self, item: AttemptUpdate | Stop | Wake) -> None:
        if isinstance(item, AttemptUpdate):
            self.state.update(item, time.time())
        elif isinstance(item, Stop):
            self.state.request_stop(item.reason)

    async def _persist(self, plan: Plan) -> None:
        if not plan.changed and plan.run is None:
            return
        run_first = plan.run is not None and not plan.run.status.is_terminal
        events = [self._run_event(plan.run)] if run_first and plan.run else []
        events += [self._task_event(r) for r in plan.changed]
        if plan.run is not None and not run_first:
            events.append(self._run_event(plan.run))
        latest = list({r.name: r for r in plan.changed}.values())
        await asyncio.shield(self.engine.store.commit(plan.run, latest, events))
        self.engine.hub.publish(events)

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

    async def _act(self, plan: Plan) -> None:
        for rec in plan.kills:
            await self._kill(rec)
        if plan.starts:
            await asyncio.gather(*(self._start(rec) for rec in plan.starts))

    async def _kill(self, rec: TaskRecord) -> None:
        try:
            await self.engine.executor.kill(rec)
        except Exception:
            log.exception("run %s: could not kill %s", self.run_id, rec.name)

    async def _start(self, rec: TaskRecord) -> None:
        try:
            launch = self._launch(rec)
            resource_id = await self.engine.executor.submit(launch)
        except OdinError as e:
            permanent = not isinstance(e, TemporaryError)
            self.state.fail_start(rec.name, str(e), time.time(), permanent=permanent)
            return
        except Exception as e:
            log.exception("run %s: submit of %s failed", self.run_id, rec.name)
            self.state.fail_start(rec.name, f"submit failed: {e}", time.time(), permanent=False)
            return
        self.inbox.put_nowait(
            AttemptUpdate(self.run_id, rec.name, rec.attempt, TaskStatus.PENDING, resource_id=resource_id)
        )

    def _launch(self, rec: TaskRecord) -> Launch:
        spec = self.state.tasks[rec.name]
        task = _replace_task(
            spec,
            args=tuple(resolve_references(list(spec.args), self._lookup)),
            env=resolve_references(dict(spec.env), self._lookup),
            inputs=tuple(resolve_references(list(spec.inputs), self._lookup)),
        )
        run_path = str(self.engine.data_path / self.run_id)
        work_path = str(self.state.spec.path or self.engine.root_path / self.state.spec.job)
        env = {
            C.ENV_TASK_ID: task_id(self.run_id, rec.name),
            C.ENV_TASK_NAME: rec.name,
            C.ENV_PIPE_ID: self.run_id,
            C.ENV_ATTEMPT: str(rec.attempt),
            C.ENV_RUN_PATH: run_path,
            C.ENV_TASK_PATH: f"{run_path}/{rec.name}",
            C.ENV_WORK_PATH: work_path,
            **{k: v if isinstance(v, str) else json.dumps(v) for k, v in task.env.items()},
        }
        self.state.set_args(rec.name, task.args)
        return Launch(self.run_id, task, rec.attempt, work_path=work_path, run_path=run_path, env=env)

    def _lookup(self, name: str) -> dict[str, Any]:
        rec = self.state.records[name]
        return {**rec.to_record(), "id": rec.task_id, "task": rec.task_id}

    async def _tell_executor(self) -> None:
        try:
            await self.engine.executor.run_finished(self.run_id, list(self.state.records.values()))
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
        events = [self._run_event(run)]
        await asyncio.shield(self.engine.store.commit(run, (), events))
        self.engine.hub.publish(events)


def _replace_task(spec: TaskSpec, **changes: Any) -> TaskSpec:
    return dataclasses.replace(spec, **changes)
