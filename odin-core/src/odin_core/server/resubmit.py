"""RESUBMIT: a new run of a finished run's job that reuses every task that already succeeded.

Design (no engine change needed): the job is loaded again (fixes made since take effect), a new run is
created in the store with the reusable tasks already SUCCEEDED, carrying the old attempt's outputs,
times and args, and with the old run's data directory copied (minus the directories of tasks that run
again), so references (``^train.outputs.model``) and ``$RUN_PATH`` conventions keep working. The engine
then adopts the new run like any run of its own (``Engine.adopt_orphans``) and starts what is left.

A succeeded task is reused when the job still has a task of that name with the same image, command and
kind, and every task it depends on is reused too (whatever depends on a task that runs again runs again).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .. import constants as C
from ..api import Odin, git_version
from ..errors import Conflict
from ..model import Event, RunRecord, TaskRecord, TaskStatus
from ..spec import instantiate, load_pipeline, new_pipe_id, spec_to_dict
from ..spec.model import PipelineSpec, TaskSpec


@dataclass(frozen=True)
class Resubmitted:
    run: RunRecord
    source: str
    reused: list[str]
    rerun: list[str]


def reusable(spec: PipelineSpec, old: dict[str, TaskRecord]) -> set[str]:
    """Names of tasks whose previous success still holds (fixed point over the dependency graph)."""
    keep = {t.name for t in spec.tasks if _same_success(t, old.get(t.name))}
    changed = True
    while changed:
        changed = False
        for t in spec.tasks:
            if t.name in keep and not keep.issuperset(t.depends):
                keep.discard(t.name)
                changed = True
    return keep


def _same_success(t: TaskSpec, rec: TaskRecord | None) -> bool:
    return (
        rec is not None
        and rec.status is TaskStatus.SUCCEEDED
        and rec.image == t.image
        and tuple(rec.command) == tuple(t.command)
        and rec.resource_type == t.resource_type
    )


async def resubmit(odin: Odin, source_id: str, *, root: Path, run_id: str | None = None) -> Resubmitted:
    view = await odin.run(source_id)
    if not view.run.status.is_terminal:
        raise Conflict(f"run {source_id!r} is still {view.run.status.value}: stop it or wait for it first")
    old_spec = await odin.store.get_spec(source_id) or {}
    job_dir = Path(old_spec.get("path") or root / view.run.job)
    spec = await asyncio.to_thread(load_pipeline, job_dir, root=root if job_dir.is_relative_to(root) else None)
    version = await asyncio.to_thread(git_version, job_dir)
    old = {t.name: t for t in view.tasks}
    keep = reusable(spec, old)
    engine = odin.engine
    new_id = run_id or new_pipe_id(spec.name)
    inst = instantiate(spec, pipe_id=new_id, root_path=str(engine.root_path), data_path=str(engine.data_path))
    run = RunRecord(
        new_id, job=spec.job, name=spec.name, version=version, executor=engine.executor.name, owner=engine.owner
    )
    tasks = [_reused(old[t.name], new_id, source_id) if t.name in keep else _fresh(new_id, t) for t in inst.tasks]
    rerun = [t.name for t in inst.tasks if t.name not in keep]
    await asyncio.to_thread(_copy_data, engine.data_path / source_id, engine.data_path / new_id, rerun)
    events = _events(run, source_id, [t for t in tasks if t.name in keep])
    if not await odin.store.create_run(run, spec_to_dict(inst), tasks, events):
        raise Conflict(f"run id {new_id!r} is already used", run_id=new_id)
    engine.hub.publish(events)
    await engine.adopt_orphans(new_id)  # the new run is ours: the engine spawns its worker
    return Resubmitted(run, source_id, [t.name for t in inst.tasks if t.name in keep], rerun)


def _fresh(run_id: str, t: TaskSpec) -> TaskRecord:
    return TaskRecord(
        run_id,
        t.name,
        image=t.image,
        command=t.command,
        args=t.args,
        resource_type=t.resource_type,
        outputs=dict(t.outputs),
    )


def _reused(old: TaskRecord, run_id: str, source_id: str) -> TaskRecord:
    return old.evolve(run_id=run_id, message=f"reused from {source_id}", retry_at=None, deadline=None)


def _events(run: RunRecord, source_id: str, reused: list[TaskRecord]) -> list[Event]:
    now = time.time()
    names = ", ".join(t.name for t in reused) or "none"
    first = Event(run.run_id, 1, now, "run", run.status.value, message=f"resubmitted {source_id} (reusing: {names})")
    return [first] + [
        Event(run.run_id, i, now, "task", TaskStatus.SUCCEEDED.value, t.name, t.message, {"reused_from": source_id})
        for i, t in enumerate(reused, start=2)
    ]


def _copy_data(src: Path, dst: Path, rerun: list[str]) -> None:
    """Copy the old run's data, leaving out what the tasks that run again would write."""
    if not src.is_dir():
        return
    skip_logs = {f"{name}.log" for name in rerun}

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        if here == src:
            return {n for n in names if n in rerun}
        if here == src / C.RUN_META_DIR / "logs":
            return {n for n in names if n in skip_logs}
        if here == src / C.RUN_META_DIR / "outputs":
            return set(names)
        return set()

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True, symlinks=True)
