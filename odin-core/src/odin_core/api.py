"""``Odin``: the engine, a store and an executor behind one small async API.

This is what the CLI uses in embedded mode and what the WebSocket server serves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from . import constants as C
from .engine import Engine
from .errors import Conflict, InvalidRequest, NotFound
from .executors.base import Executor
from .model import CleanupResult, Event, RunRecord, RunView, TaskRecord
from .paths import confined
from .settings import Settings
from .spec import check_run_id, load_pipeline, split_resource
from .store import JobStore, open_store


def split_task_id(resource: str) -> tuple[str, str | None]:
    """``<run id>--<task>`` → (run id, task); a plain run id → (run id, None); InvalidRequest for a bad id."""
    return split_resource(resource)


def git_version(path: Path) -> str:
    """The commit of the git work tree holding ``path`` ("" when it is not one)."""
    if shutil.which("git") is None:
        return ""
    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=False, timeout=10
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def make_executor(settings: Settings) -> Executor:
    if settings.executor == "local":
        from .executors.local import LocalExecutor

        return LocalExecutor(settings.data, settings.local)
    if settings.executor == "kubernetes":
        from .executors.kubernetes import KubernetesExecutor

        return KubernetesExecutor(settings.data, settings.kubernetes)
    raise InvalidRequest(f"unknown executor {settings.executor!r}; known: local, kubernetes")


class Odin:
    def __init__(self, settings: Settings, store: JobStore, executor: Executor, *, root: Path) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.engine = Engine(store, executor, root_path=root, data_path=settings.data, settings=settings.engine)
        self._others: dict[str, Executor] = {}  # executors of runs started elsewhere with another executor

    @classmethod
    async def open(
        cls, settings: Settings | None = None, *, executor: Executor | None = None, root: Path | None = None
    ) -> Odin:
        settings = settings or Settings.from_env()
        store = await open_store(settings.store, settings.store_settings)
        return cls(settings, store, executor or make_executor(settings), root=root or Path.cwd())

    async def __aenter__(self) -> Odin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.engine.close()
        for executor in (self.executor, *self._others.values()):
            await executor.close()
        await self.store.close()

    def executor_for(self, run: RunRecord) -> Executor:
        """The executor a run was started with: logs, events and clean-up go through it."""
        if run.executor in ("", self.executor.name):
            return self.executor
        if run.executor not in self._others:
            self._others[run.executor] = make_executor(dataclasses.replace(self.settings, executor=run.executor))
        return self._others[run.executor]

    # -- runs --------------------------------------------------------------------------------

    async def submit(self, job_dir: str | Path, *, run_id: str | None = None, adopt: bool = False) -> RunRecord:
        """Validate the pipeline in ``job_dir`` (SpecError lists every problem) and start a run."""
        given = Path(job_dir)
        job_dir = given.resolve()
        root = self.engine.root_path.resolve()
        inside = job_dir.is_relative_to(root)
        shown = None if inside else (given / C.MAIN_FILE).as_posix()  # problems name the file as the user did
        spec = await asyncio.to_thread(load_pipeline, job_dir, root=root if inside else job_dir.parent, shown=shown)
        version = await asyncio.to_thread(git_version, job_dir)
        await self.engine.start(adopt=adopt)
        return await self.engine.submit(spec, run_id=run_id, version=version)

    async def watch(self, run_id: str, *, after_seq: int = 0) -> AsyncIterator[Event]:
        """A run's events after ``after_seq`` until its end: the stored backlog, then live ones."""
        async for ev in self.engine.watch(check_run_id(run_id), after_seq=after_seq):
            if isinstance(ev, Event):  # a single run's stream replays instead of lagging
                yield ev

    async def wait(self, run_id: str) -> RunRecord:
        return await self.engine.wait(run_id)

    async def stop(self, run_id: str, reason: str = "stopped by user", *, wait_s: float | None = None) -> RunRecord:
        """Stop a run (see ``Engine.stop``); with ``wait_s``, wait that long for it to end."""
        return await self.engine.stop(run_id, reason, wait_s=wait_s)

    async def resubmit(self, run_id: str) -> dict[str, Any]:
        """Run an ended run again, reusing every task that succeeded."""
        reused, rerun = await self.engine.resubmit(run_id)
        return {"run_id": run_id, "reused": reused, "rerun": rerun}

    # -- reading -----------------------------------------------------------------------------

    async def run(self, run_id: str) -> RunView:
        run = await self.store.get_run(check_run_id(run_id))
        if run is None:
            raise NotFound(f"no run {run_id!r}; `odin status` lists the runs")
        return RunView(run, tuple(await self.store.get_tasks(run_id)))

    async def status(
        self, pattern: str = "", *, active_only: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[RunView]:
        """Runs matching ``pattern`` (id, job or pipeline name; see ``store.base.match_pattern``), newest first."""
        runs = await self.store.list_runs(pattern=pattern, active_only=active_only, limit=limit, offset=offset)
        return [RunView(r, tuple(await self.store.get_tasks(r.run_id))) for r in runs]

    async def task(self, resource: str) -> TaskRecord:
        run_id, name = split_task_id(resource)
        if name is None:
            raise InvalidRequest(f"{resource!r} is not a task id (<run id>--<task>)")
        view = await self.run(run_id)
        for t in view.tasks:
            if t.name == name:
                return t
        raise NotFound(f"run {run_id!r} has no task {name!r}; it has: {', '.join(t.name for t in view.tasks)}")

    async def data(self, resource: str) -> dict[str, Any]:
        """The record of a run (with its tasks) or of one task."""
        run_id, name = split_task_id(resource)
        if name is not None:
            return (await self.task(resource)).to_record()
        view = await self.run(run_id)
        record = view.run.to_record()
        record["tasks"] = [t.to_record() for t in view.tasks]
        return record

    async def events(self, resource: str, *, after_seq: int = 0) -> list[Event]:
        run_id, name = split_task_id(resource)
        await self.run(run_id)
        events = await self.store.events(run_id, after_seq=after_seq)
        return [e for e in events if name is None or e.task == name]

    async def cluster_events(self, resource: str) -> list[dict[str, Any]]:
        """What the executor saw of a run or task ({type, reason, source, message, timestamp}): Kubernetes events."""
        run_id, name = split_task_id(resource)
        view = await self.run(run_id)
        return await self.executor_for(view.run).events(run_id, name)

    async def logs(
        self, resource: str, *, follow: bool = False, lines: int | None = None, namespace: str | None = None
    ) -> AsyncIterator[str]:
        record = await self.task(resource)
        executor = self.executor_for((await self.run(record.run_id)).run)

        gone: str | None = None  # the run's driver, once found gone: nobody will ever say the task ended

        async def ended() -> bool:
            nonlocal gone
            if (await self.task(resource)).status.is_terminal:
                return True
            gone = await self.engine.driver_gone(record.run_id)
            return gone is not None

        async for line in executor.logs(record, follow=follow, lines=lines, until=ended, namespace=namespace):
            yield line
        if gone is not None:
            raise Conflict(
                f"nothing follows {resource} any more: {gone}, which drove its run, is gone; "
                f"`odin stop {record.run_id}` takes the run over and ends it (what its tasks finished is kept)"
            )

    async def cleanup(self, run_id: str, *, db: bool = False, fs: bool = False) -> list[CleanupResult]:
        """Remove a run's resources (and with ``db``/``fs`` its records and files).

        An active run is stopped first and waited for; one that another live process drives and that
        does not end within ``engine.cleanup_wait_s`` is refused (Conflict): nothing is ever deleted
        under a live driver.
        """
        view = await self.run(run_id)
        if not view.run.status.is_terminal:
            run = await self.stop(run_id, "cleaned up", wait_s=self.settings.engine.cleanup_wait_s)
            if not run.status.is_terminal:
                raise Conflict(
                    f"run {run_id!r} is still {run.status.value}, driven by {run.owner}: it was asked to stop "
                    "but has not ended yet; run the clean-up again once `odin status` shows it ended",
                    run_id=run_id,
                )
            view = await self.run(run_id)
        removed = await self.executor_for(view.run).cleanup(run_id, list(view.tasks))
        run_dir = confined(self.settings.data, run_id)
        fs_done = fs and run_dir.exists()
        if fs_done:
            await asyncio.to_thread(shutil.rmtree, run_dir, True)
        if db:
            await self.store.delete_run(run_id)
        return [
            CleanupResult(t.task_id, removed.get(t.name, False), purged_from_db=db, removed_from_fs=fs_done)
            for t in view.tasks
        ]


__all__ = ["C", "Odin", "git_version", "make_executor", "split_task_id"]
