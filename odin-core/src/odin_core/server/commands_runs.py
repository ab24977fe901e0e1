"""Commands that start, follow and stop runs: START, WATCH, STOP, RESUBMIT, VALIDATE."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..api import git_version
from ..errors import InvalidRequest, NotFound
from ..spec import load_pipeline, validate_pipeline
from .context import Context, Reply, as_object, get
from .protocol import END, OK
from .resubmit import resubmit
from .views import progress_line, wire_event


async def start(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    """Legacy START: OK with the run id, OK progress strings, END with the id (``watch: false``: no progress)."""
    req = as_object(payload, key="job")
    job_dir = ctx.job_dir(req.get("job"))
    run_id = get(req, "run_id", str, None)
    watch = get(req, "watch", bool, True)
    spec = await asyncio.to_thread(load_pipeline, job_dir, root=ctx.root)
    version = await asyncio.to_thread(git_version, job_dir)
    run = await ctx.odin.engine.submit(spec, run_id=run_id or None, version=version)
    yield OK, run.run_id
    if watch:
        async for ev in ctx.odin.watch(run.run_id):
            line = progress_line(ev)
            if line is not None:
                yield OK, line
    yield END, run.run_id


async def watch(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    """Every event of a run after ``after_seq``, each once and in order, then END when the run has ended."""
    req = as_object({} if payload is None else payload, key="run")
    run_id = get(req, "run", str, None)
    after = get(req, "after_seq", int, 0)
    if after < 0:
        raise InvalidRequest("'after_seq' must be >= 0")
    if run_id is None:
        async for ev in ctx.odin.engine.watch(None):
            yield OK, wire_event(ev)
        return
    view = await ctx.odin.run(run_id)
    last = await ctx.odin.store.last_seq(run_id)
    if not (view.run.status.is_terminal and after >= last):
        async for ev in ctx.odin.watch(run_id, after_seq=after):
            yield OK, wire_event(ev)
            last = ev.seq
    yield END, {"run": run_id, "last_seq": last}


async def stop(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    req = as_object(payload, key="run")
    run = await ctx.odin.stop(get(req, "run", str), get(req, "reason", str, "stopped by user"))
    yield OK, {"run_id": run.run_id, "status": run.status.value}


async def resubmit_run(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    req = as_object(payload, key="run")
    done = await resubmit(ctx.odin, get(req, "run", str), root=ctx.root, run_id=get(req, "run_id", str, None))
    yield OK, {"run_id": done.run.run_id, "source": done.source, "reused": done.reused, "rerun": done.rerun}


async def validate(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    """Problems of a job under the root, or of files sent inline (``{"files": {name: text}}``)."""
    req = as_object(payload, key="job")
    files = get(req, "files", dict, None)
    if files is not None:
        problems = await asyncio.to_thread(_validate_files, files)
    else:
        problems = await asyncio.to_thread(validate_pipeline, ctx.job_dir(req.get("job")), root=ctx.root)
    yield OK, {"valid": not problems, "problems": [p.to_dict() for p in problems]}


def _validate_files(files: dict[str, Any]) -> list[Any]:
    if not all(isinstance(v, str) for v in files.values()) or "main.yml" not in files:
        raise InvalidRequest("'files' maps file names to text and must hold main.yml")
    with tempfile.TemporaryDirectory(prefix="odin-validate-") as tmp:
        for name, content in files.items():
            path = (Path(tmp) / name).resolve()
            if not path.is_relative_to(Path(tmp).resolve()) or name.startswith("/"):
                raise InvalidRequest(f"file name {name!r} leaves the job directory")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        return validate_pipeline(Path(tmp))


__all__ = ["NotFound", "resubmit_run", "start", "stop", "validate", "watch"]
