"""The reconcile loop: persisted state in, decisions from ``dag``, actions through an executor.

One ``RunWorker`` per active run. Each pass: ask ``DagState.decide``, persist every transition
and its events in one store commit, then act (kill, submit). Executor reports arrive in the
worker's inbox. Everything a worker knows can be rebuilt from the store, which is what
``Engine.start`` does for runs whose previous engine went away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from .dag import DagState
from .errors import Conflict, NotFound
from .executors.base import Executor
from .hub import Hub
from .model import AttemptUpdate, Event, RunRecord, RunStatus, TaskRecord, TaskStatus
from .settings import EngineSettings
from .spec import instantiate, new_pipe_id, spec_from_dict, spec_to_dict
from .spec.model import PipelineSpec, TaskSpec
from .store.base import JobStore
from .tasks import TaskSet
from .worker import RunWorker, Stop

log = logging.getLogger("odin.engine")


class Engine:
    def __init__(
        self,
        store: JobStore,
        executor: Executor,
        *,
        root_path: Path,
        data_path: Path,
        settings: EngineSettings | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.root_path = root_path
        self.data_path = data_path
        self.settings = settings or EngineSettings()
        self.hub = Hub(store)
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._workers: dict[str, RunWorker] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._tasks = TaskSet("engine")
        self._started = False
        self._adopt = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, adopt: bool = True) -> None:
        """Bind the executor and start the heartbeat; with ``adopt``, also take over orphaned runs.

        A long-lived server adopts; a one-shot CLI process drives only the runs it submits.
        """
        if self._started:
            return
        self._started = True
        self._adopt = adopt
        self.executor.bind(self._on_update)
        if adopt:
            await self.adopt_orphans()
        self._tasks.spawn(self._heartbeat(), "heartbeat")

    async def adopt_orphans(self, run_id: str | None = None) -> list[str]:
        """Take over active runs (or just ``run_id``) whose engine went quiet, rebuilding them from the store."""
        now = time.time()
        runs = await self.store.claim_runs(
            self.owner, now=now, stale_before=now - self.settings.takeover_after_s, run_id=run_id
        )
        adopted = [r for r in runs if r.run_id not in self._workers]
        for run in adopted:
            tasks = await self.store.get_tasks(run.run_id)
            spec = spec_from_dict(await self.store.get_spec(run.run_id) or {})
            worker = self._spawn(run, spec, tasks, await self.store.last_seq(run.run_id))
            active = [t for t in tasks if t.status.is_active]
            if active:
                log.info("run %s: re-attaching %d active task(s)", run.run_id, len(active))
                await self.executor.recover(active)
            worker.poke()
        return [r.run_id for r in adopted]

    async def close(self) -> None:
        """Stop driving runs (they stay active in the store for another engine to take over)."""
        await self._tasks.close()
        self._workers.clear()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            await self.store.heartbeat(self.owner, time.time())
            for run_id, worker in list(self._workers.items()):
                rec = await self.store.get_run(run_id)
                if rec is not None and rec.stop_requested and not worker.state.run.stop_requested:
                    worker.inbox.put_nowait(Stop(rec.message or "stopped by user"))
            if self._adopt:
                await self.adopt_orphans()

    # -- API ---------------------------------------------------------------------------------

    async def submit(self, spec: PipelineSpec, *, run_id: str | None = None, version: str = "") -> RunRecord:
        """Persist a new run and start driving it. Submitting a known ``run_id`` again returns that run."""
        if run_id:
            existing = await self.store.get_run(run_id)
            if existing is not None:
                return self._same_job(existing, spec)
        run_id = run_id or new_pipe_id(spec.name)
        inst = instantiate(spec, pipe_id=run_id, root_path=str(self.root_path), data_path=str(self.data_path))
        run = RunRecord(
            run_id, job=spec.job, name=spec.name, version=version, executor=self.executor.name, owner=self.owner
        )
        tasks = [_task_record(run_id, t) for t in inst.tasks]
        events = [Event(run_id, 1, run.submitted, "run", run.status.value, message=f"submitted {spec.job}")]
        events += [
            Event(run_id, 1 + i, run.submitted, "note", "NOTE", message=n)
            for i, n in enumerate(self.executor.notes(list(inst.tasks)), start=1)
        ]
        if not await self.store.create_run(run, spec_to_dict(inst), tasks, events):
            existing = await self.store.get_run(run_id)
            assert existing is not None
            return self._same_job(existing, spec)
        self.hub.publish(events)
        self._spawn(run, inst, tasks, len(events)).poke()
        return run

    @staticmethod
    def _same_job(existing: RunRecord, spec: PipelineSpec) -> RunRecord:
        if existing.job != spec.job:
            raise Conflict(
                f"run id {existing.run_id!r} is already used by job {existing.job!r}", run_id=existing.run_id
            )
        return existing

    async def resubmit(self, run_id: str) -> tuple[list[str], list[str]]:
        """Run an ended run again in place, reusing every task that succeeded; returns (reused, rerun).

        The run keeps its id, paths and event log; tasks that did not succeed start over as WAITING
        with a fresh retry budget, so a fixed cause (data, quota, a flaky node) needs no full re-run.
        """
        run = await self.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}; `odin status` lists the runs")
        if not run.status.is_terminal:
            raise Conflict(f"run {run_id!r} is still {run.status.value}: stop it first or wait for its end")
        tasks = await self.store.get_tasks(run_id)
        rerun = [t for t in tasks if t.status is not TaskStatus.SUCCEEDED]
        if not rerun:
            raise Conflict(f"every task of run {run_id!r} succeeded: nothing to resubmit")
        await self.start(adopt=self._adopt)
        if not await self.store.reopen_run(run_id, self.owner, time.time()):
            raise Conflict(f"run {run_id!r} was resubmitted or changed meanwhile")
        worker = await self._resume(run, tasks, rerun)
        worker.poke()
        return [t.name for t in tasks if t.status is TaskStatus.SUCCEEDED], [t.name for t in rerun]

    async def _resume(self, run: RunRecord, tasks: list[TaskRecord], rerun: list[TaskRecord]) -> RunWorker:
        now = time.time()
        fresh = {t.name: _restart(t) for t in rerun}
        tasks = [fresh.get(t.name, t) for t in tasks]
        run = run.evolve(
            status=RunStatus.BUILDING,
            completed=None,
            stop_requested=False,
            early_exit=False,
            owner=self.owner,
            message=f"resubmitted: reusing {len(tasks) - len(rerun)} succeeded task(s), running {len(rerun)} again",
        )
        seq = await self.store.last_seq(run.run_id)
        events = [Event(run.run_id, seq + 1, now, "run", run.status.value, message=run.message)]
        events += [
            Event(run.run_id, seq + 2 + i, now, "task", t.status.value, t.name, t.message, {"attempt": t.attempt})
            for i, t in enumerate(fresh.values())
        ]
        await self.store.commit(run, list(fresh.values()), events)
        self.hub.publish(events)
        spec = spec_from_dict(await self.store.get_spec(run.run_id) or {})
        self._done.pop(run.run_id, None)
        return self._spawn(run, spec, tasks, seq + len(events))

    async def stop(self, run_id: str, reason: str = "stopped by user") -> RunRecord:
        """Stop a run: at once when this engine drives it; else through the store, for its engine to see.

        A run whose engine is gone (no heartbeat for ``takeover_after_s``) is taken over and stopped here.
        """
        run = await self.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}; `odin status` lists the runs")
        worker = self._workers.get(run_id)
        if worker is not None:
            worker.inbox.put_nowait(Stop(reason))
        elif not run.status.is_terminal and await self.store.request_stop(run_id, reason):
            await self.start(adopt=self._adopt)
            await self.adopt_orphans(run_id)
        return run

    async def wait(self, run_id: str, timeout_s: float | None = None) -> RunRecord:
        done = self._done.get(run_id)
        if done is not None:
            await asyncio.wait_for(done.wait(), timeout_s)
        run = await self.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}")
        return run

    async def watch(self, run_id: str | None, *, after_seq: int = 0) -> AsyncIterator[Event]:
        """Events of a run after ``after_seq`` until its end (or, with no run, every run's live events)."""
        if run_id is not None:
            run = await self.store.get_run(run_id)
            if run is None:
                raise NotFound(f"no run {run_id!r}; `odin status` lists the runs")
            if run.status.is_terminal and after_seq >= await self.store.last_seq(run_id):
                return
        async for ev in self.hub.watch(run_id, after_seq=after_seq):
            yield ev
            # a resubmitted run has several ends in its log: only the latest one ends the stream
            if run_id is not None and _is_run_end(ev) and ev.seq >= await self.store.last_seq(run_id):
                return

    def capacity(self) -> int | None:
        limit = self.settings.max_parallel_total
        if limit is None:
            return None
        return max(limit - sum(w.state.active for w in self._workers.values()), 0)

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, run: RunRecord, spec: PipelineSpec, tasks: list[TaskRecord], seq: int) -> RunWorker:
        worker = RunWorker(self, DagState.from_records(spec, run, tasks), seq)
        self._workers[run.run_id] = worker
        self._done.setdefault(run.run_id, asyncio.Event())
        self._tasks.spawn(worker.run(), f"run:{run.run_id}")
        return worker

    def _on_update(self, update: AttemptUpdate) -> None:
        worker = self._workers.get(update.run_id)
        if worker is not None:
            worker.inbox.put_nowait(update)

    def _finished(self, run_id: str) -> None:
        self._workers.pop(run_id, None)
        self._done.setdefault(run_id, asyncio.Event()).set()
        if self.settings.max_parallel_total is not None:
            for w in self._workers.values():
                w.poke()


def _task_record(run_id: str, t: TaskSpec) -> TaskRecord:
    return TaskRecord(
        run_id,
        t.name,
        image=t.image,
        command=t.command,
        args=t.args,
        resource_type=t.resource_type,
        outputs=dict(t.outputs),
    )


def _restart(t: TaskRecord) -> TaskRecord:
    return t.evolve(
        status=TaskStatus.WAITING,
        attempts_before=t.attempt,
        retry_at=None,
        deadline=None,
        started=None,
        completed=None,
        exit_code=None,
        resource_id="",
        message="resubmitted",
    )


def _is_run_end(ev: Event) -> bool:
    return ev.kind == "run" and ev.status in (RunStatus.DONE.value, RunStatus.TERMINATED.value)
