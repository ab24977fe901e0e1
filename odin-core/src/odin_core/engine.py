"""The engine: one ``RunWorker`` per run it holds the lease of, a supervised heartbeat, and adoption.

Exactly one engine drives a run at a time, and the store says which (``store.base``: leases). The
engine's registry of workers changes only by identity (``_register`` / ``finished``), with no await
between getting a lease and registering its worker. The heartbeat renews every lease this engine
holds, delivers stop requests made by other processes, lets go of runs another engine took over, and
(on a server) adopts runs whose engine went quiet or died. When the store cannot be reached for long
enough that another engine could take over, the engine stops driving instead of racing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from .dag import DagState, SubmitRetry
from .errors import Conflict, NotFound, OdinError
from .executors.base import Executor
from .hub import Hub, Lagged
from .model import AttemptUpdate, Event, RunRecord, RunStatus, TaskRecord, TaskStatus
from .settings import EngineSettings
from .spec import check_run_id, instantiate, new_pipe_id, spec_from_dict, spec_to_dict
from .spec.model import PipelineSpec, TaskSpec
from .store.base import JobStore, Lease, LeaseInfo
from .tasks import TaskSet
from .worker import RunWorker, Stop

log = logging.getLogger("odin.engine")
STOP_POLL_S = 0.2
"""How often a stop waiting for a run driven by another process looks at the store."""


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
        self._adopting: set[str] = set()  # runs whose lease is ours and whose worker is being built
        self._tasks = TaskSet("engine")
        self._started = False
        self._adopt = False
        self._submit_retry = SubmitRetry(give_up_after_s=self.settings.submit_retry_for_s)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, adopt: bool = True) -> None:
        """Bind the executor and start the heartbeat; with ``adopt``, also take over orphaned runs.

        A long-lived server adopts; a one-shot CLI process drives only the runs it submits (and the
        runs it takes over to stop them).
        """
        if self._started:
            return
        self._started = True
        self._adopt = adopt
        self.executor.bind(self._on_update)
        if adopt:
            await self.adopt_orphans(dead_owners=True)
        self._tasks.spawn(self._heartbeat(), "heartbeat")

    async def close(self) -> None:
        """Stop driving runs; they stay active in the store and their leases are released for a successor."""
        held = list(self._workers)
        await self._tasks.close()
        await self.hub.close()
        self._workers.clear()
        try:
            await self.store.release(self.owner, held)
        except Exception:
            log.exception("could not release %d run lease(s); they will be taken over once stale", len(held))

    # -- leases ------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Supervised: no exception ends it; a lease it cannot renew in time is given up."""
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        delay = self.settings.heartbeat_s
        while True:
            await asyncio.sleep(delay)
            began, began_mono = time.time(), time.monotonic()
            try:
                held = await self.store.renew(self.owner, began)
            except Exception as e:
                since = loop.time() - last_ok
                log.warning(
                    "heartbeat: could not renew leases for %.1fs: %s", since, e if isinstance(e, OdinError) else repr(e)
                )
                if since >= self.settings.lease_grace * self.settings.takeover_after_s and self._workers:
                    log.error("heartbeat: leases not renewed for %.1fs: letting go of every run", since)
                    self._let_go(list(self._workers.values()))
                delay = min(delay * 2, self.settings.takeover_after_s / 4)
                continue
            last_ok, delay = loop.time(), self.settings.heartbeat_s
            try:
                await self._reconcile(held, began_mono)
                if self._adopt:
                    await self.adopt_orphans()
            except Exception:
                log.exception("heartbeat: reconciling leases failed; trying again on the next beat")

    async def _reconcile(self, held: dict[str, str | None], since: float) -> None:
        """Compare what the store says this engine holds with the workers it has."""
        for run_id, worker in list(self._workers.items()):
            if worker.since > since or worker.state.run.status.is_terminal:
                continue  # leased after the renew began, or ending: the answer says nothing about it
            if run_id in held:
                reason = held[run_id]
                if reason is not None and not worker.state.run.stop_requested:
                    worker.inbox.put_nowait(Stop(reason))
                continue
            info = await self.store.lease_of(run_id)
            if info is None or info.lease != worker.lease:
                log.warning("run %s: lease lost to %s; letting go", run_id, info.lease.owner if info else "nobody")
                self._let_go([worker])
        for run_id in held.keys() - self._workers.keys() - self._adopting:
            # ours in the store, but driven by no worker: a run let go after the store was away
            info = await self.store.lease_of(run_id)
            if info is not None and info.lease.owner == self.owner:
                lease = await self.store.take_over(info.lease, self.owner, time.time())
                if lease is not None:
                    await self._adopt_run(lease)

    def _let_go(self, workers: list[RunWorker]) -> None:
        for worker in workers:
            if worker.task is not None:
                worker.task.cancel()

    async def adopt_orphans(self, *, dead_owners: bool = False) -> list[str]:
        """Take over active runs whose engine went quiet (no heartbeat for ``takeover_after_s``).

        With ``dead_owners``, also runs whose engine is known dead: a process of this host that is gone.
        """
        now = time.time()
        leases = await self.store.claim_stale(
            self.owner, now=now, stale_before=now - self.settings.takeover_after_s, limit=self.settings.adopt_batch
        )
        if dead_owners:
            for run in await self.store.list_runs(active_only=True):
                if run.run_id not in self._workers and owner_is_dead(run.owner, self.owner):
                    lease = await self._take_over_if_gone(run.run_id)
                    if lease is not None:
                        leases.append(lease)
        for lease in leases:
            await self._adopt_run(lease)
        return [lease.run_id for lease in leases]

    async def driver_gone(self, run_id: str) -> str | None:
        """The engine that holds the active run's lease when it is gone (its process dead, or quiet for
        ``takeover_after_s``) and nobody drives the run: then nothing records what its tasks do. Else None."""
        info = await self.store.lease_of(run_id)
        if info is None or run_id in self._workers or not self._is_gone(info):
            return None
        return info.lease.owner

    async def _take_over_if_gone(self, run_id: str) -> Lease | None:
        """Take over an active run whose engine is dead, quiet for ``takeover_after_s``, or is this engine's past."""
        info = await self.store.lease_of(run_id)
        if info is None or not self._is_gone(info):
            return None
        return await self.store.take_over(info.lease, self.owner, time.time())

    def _is_gone(self, info: LeaseInfo) -> bool:
        owner = info.lease.owner
        stale = info.heartbeat < time.time() - self.settings.takeover_after_s
        return (
            (owner == self.owner and info.lease.run_id not in self._workers)
            or stale
            or owner_is_dead(owner, self.owner)
        )

    async def _adopt_run(self, lease: Lease) -> RunWorker | None:
        """Build the worker of a run whose lease was just taken, from the store; it re-attaches to its tasks."""
        self._adopting.add(lease.run_id)
        try:
            run = await self.store.get_run(lease.run_id)
            if run is None or run.status.is_terminal:
                return None
            tasks = await self.store.get_tasks(lease.run_id)
            spec = spec_from_dict(await self.store.get_spec(lease.run_id) or {})
            seq = await self.store.last_seq(lease.run_id)
        finally:
            self._adopting.discard(lease.run_id)
        state = DagState.from_records(spec, run.evolve(owner=self.owner), tasks, submit_retry=self._submit_retry)
        # Attempts its last engine decided to end (cancelled, or failed and to be retried) may still run if it died
        # between committing that and the kill: they are killed again (a no-op for those that ended).
        unsure = [t for t in tasks if t.status in (TaskStatus.CANCELLED, TaskStatus.RETRYING) and t.attempt > 0]
        worker = self._register(state, seq, lease, recover=[t for t in tasks if t.status.is_active], rekill=unsure)
        worker.poke()
        return worker

    # -- API ---------------------------------------------------------------------------------

    async def submit(self, spec: PipelineSpec, *, run_id: str | None = None, version: str = "") -> RunRecord:
        """Persist a new run and start driving it. Submitting a known ``run_id`` again returns that run."""
        if run_id:
            check_run_id(run_id)
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
        lease = await self.store.create_run(run, spec_to_dict(inst), tasks, events, now=time.time())
        if lease is None:
            existing = await self.store.get_run(run_id)
            assert existing is not None
            return self._same_job(existing, spec)
        self.hub.publish(events)
        state = DagState.from_records(inst, run, tasks, submit_retry=self._submit_retry)
        self._register(state, len(events), lease).poke()
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
        check_run_id(run_id)
        run = await self.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}; `odin status` lists the runs")
        if not run.status.is_terminal:
            gone = await self.driver_gone(run_id)
            why = f", but {gone}, which drove it, is gone" if gone else ""
            raise Conflict(
                f"run {run_id!r} is still {run.status.value}{why}: stop it first (`odin stop {run_id}`)"
                + ("" if gone else " or wait for its end")
            )
        tasks = await self.store.get_tasks(run_id)
        reused = [t.name for t in tasks if t.status.value == "SUCCEEDED"]
        if len(reused) == len(tasks):
            raise Conflict(f"every task of run {run_id!r} succeeded: nothing to resubmit")
        spec = spec_from_dict(await self.store.get_spec(run_id) or {})
        seq = await self.store.last_seq(run_id)
        await self.start(adopt=self._adopt)
        lease = await self.store.reopen_run(run_id, self.owner, time.time())
        if lease is None:
            raise Conflict(f"run {run_id!r} was resubmitted or changed meanwhile")
        # no await from here on: the lease and its worker come together
        state = DagState.reopened(spec, run.evolve(owner=self.owner), tasks, submit_retry=self._submit_retry)
        self._register(state, seq, lease).poke()
        return reused, [t.name for t in tasks if t.name not in reused]

    async def stop(self, run_id: str, reason: str = "stopped by user", *, wait_s: float | None = None) -> RunRecord:
        """Stop a run: at once when this engine drives it; else through the store, for its engine to see.

        A run whose engine is gone (dead, or quiet for ``takeover_after_s``) is taken over and stopped
        here. With ``wait_s``, wait up to that long for the run to end, taking it over if its engine
        goes quiet meanwhile. Returns the run's record as it is then.
        """
        check_run_id(run_id)
        run = await self.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}; `odin status` lists the runs")
        worker = self._workers.get(run_id)
        took_over = False
        if worker is not None:
            worker.inbox.put_nowait(Stop(reason))
        elif not run.status.is_terminal:
            await self.store.request_stop(run_id, reason)
            await self.start(adopt=self._adopt)
            worker = await self._stop_here_if_gone(run_id)
            took_over = worker is not None
        deadline = time.monotonic() + (wait_s or 0.0)
        while worker is None and wait_s and time.monotonic() < deadline:
            current = await self.store.get_run(run_id)
            if current is None or current.status.is_terminal:
                return current or run
            await asyncio.sleep(STOP_POLL_S)
            worker = await self._stop_here_if_gone(run_id)
            took_over = worker is not None
        if worker is not None and (wait_s or took_over):
            # a run taken over here is wound down here: the caller may be a process about to exit
            await _wait_event(worker.done, max(deadline - time.monotonic(), self.settings.stop_wait_s))
        return await self.store.get_run(run_id) or run

    async def _stop_here_if_gone(self, run_id: str) -> RunWorker | None:
        lease = await self._take_over_if_gone(run_id)
        return await self._adopt_run(lease) if lease is not None else None

    async def wait(self, run_id: str, timeout_s: float | None = None) -> RunRecord:
        """The run's record once this engine no longer drives it (at once when it does not).

        A run that ended here is answered with the record its worker committed last (no store read); one
        this engine let go of (lease lost, closing) is read from the store."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        ended: RunWorker | None = None
        while (worker := self._workers.get(run_id)) is not None:  # a resubmission may register a new one
            await asyncio.wait_for(worker.done.wait(), None if deadline is None else deadline - loop.time())
            ended = worker
        if ended is not None and ended.final is not None:
            return ended.final
        run = await self.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}")
        return run

    def driving(self, run_id: str) -> bool:
        return run_id in self._workers

    async def watch(self, run_id: str | None, *, after_seq: int = 0) -> AsyncIterator[Event | Lagged]:
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
            ended = isinstance(ev, Event) and run_id is not None and _is_run_end(ev)
            if ended and run_id is not None and ev.seq >= await self.store.last_seq(run_id):  # type: ignore[union-attr]
                return

    # -- what workers see of the engine (worker.WorkerContext) ------------------------------------

    def capacity(self) -> int | None:
        limit = self.settings.max_parallel_total
        if limit is None:
            return None
        return max(limit - sum(w.state.active for w in self._workers.values()), 0)

    def slots_freed(self) -> None:
        if self.settings.max_parallel_total is not None:
            for w in self._workers.values():
                if w.starved:
                    w.poke()

    def finished(self, worker: RunWorker) -> None:
        """A worker ended (its run ended, its lease was lost, or the engine let go): by identity only."""
        if self._workers.get(worker.run_id) is worker:
            del self._workers[worker.run_id]
        worker.done.set()
        self.slots_freed()

    # -- internals ---------------------------------------------------------------------------

    def _register(
        self,
        state: DagState,
        seq: int,
        lease: Lease,
        *,
        recover: list[TaskRecord] | None = None,
        rekill: list[TaskRecord] | None = None,
    ) -> RunWorker:
        worker = RunWorker(self, state, seq, lease, recover=recover or [], rekill=rekill or [])
        # a worker of an older lease of ours may still be winding down (a resubmission): it is fenced, and
        # removes itself from the registry only if it is still the one registered
        self._workers[lease.run_id] = worker
        worker.task = self._tasks.spawn(worker.run(), f"run:{lease.run_id}")
        return worker

    def _on_update(self, update: AttemptUpdate) -> None:
        worker = self._workers.get(update.run_id)
        if worker is not None:
            worker.inbox.put_nowait(update)


def owner_is_dead(owner: str, me: str) -> bool:
    """True when ``owner`` names an engine of this host whose process is gone (or is this process's past)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != os.uname().nodename or not pid_text.isdigit() or owner == me:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # the same pid with another engine id: a previous incarnation (a container restarted)
    return not _process_alive(pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: only its parent has not collected it yet
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


async def _wait_event(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)


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


def _is_run_end(ev: Event) -> bool:
    return ev.kind == "run" and ev.status in (RunStatus.DONE.value, RunStatus.TERMINATED.value)
