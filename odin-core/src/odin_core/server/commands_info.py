"""Commands that read: STATUS, DATA, EVENTS, LOGS, SHOW, CLEANUP, PING."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..api import split_task_id
from ..errors import InvalidRequest
from .context import Context, Reply, as_object, get, text
from .protocol import END, OK
from .views import legacy_event, legacy_status, wire_event, with_iso_times


async def ping(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    yield OK, f"PONG {'' if payload is None else payload}"


async def status(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    pattern = text("" if payload is None else payload, "a pattern of run ids")
    yield OK, [legacy_status(view) for view in await ctx.odin.status(pattern)]


async def data(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    record = await ctx.odin.data(get(as_object(payload, key="resource"), "resource", str))
    if "tasks" in record:
        record["tasks"] = [with_iso_times(t) for t in record["tasks"]]
    yield OK, {"success": True, "jobs": with_iso_times(record)}


async def events(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    """The run's own events (``source: odin``), then what the executor saw (Kubernetes events)."""
    req = as_object(payload, key="resource")
    resource = get(req, "resource", str)
    get(req, "namespace", str, None)  # one namespace per executor: accepted, not needed
    ours = await ctx.odin.events(resource)
    cluster = await ctx.odin.cluster_events(resource)
    if get(req, "odin", bool, False):
        yield OK, {"events": [wire_event(e) for e in ours], "cluster_events": cluster}
        return
    yield OK, [legacy_event(e) for e in ours] + cluster


async def logs(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    """follow: one OK per line until the task ends; else one OK with the whole text. Then END."""
    req = as_object(payload, key="resource")
    resource = get(req, "resource", str)
    follow = get(req, "follow", bool, False)
    lines = get(req, "lines", int, None)
    container = get(req, "container", str, None)
    get(req, "namespace", str, None)
    record = await ctx.odin.task(resource)
    executor = ctx.odin.executor_for((await ctx.odin.run(record.run_id)).run)

    async def ended() -> bool:
        return (await ctx.odin.task(resource)).status.is_terminal

    stream = executor.logs(record, follow=follow, lines=lines, container=container, until=ended)
    if follow:
        async for line in stream:
            yield OK, line
    else:
        yield OK, "\n".join([line async for line in stream])
    yield END, resource


async def show(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    job = as_object(payload, key="job").get("job")
    yield OK, await asyncio.to_thread(read_job, ctx.job_dir(job), ctx.settings.show_max_bytes)


def read_job(job_dir: Path, limit: int) -> dict[str, str]:
    """Every file of a job (hidden files and folders left out), by path relative to the job."""
    files: dict[str, str] = {}
    total = 0
    for path in sorted(job_dir.rglob("*")):
        rel = path.relative_to(job_dir)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file() or path.is_symlink():
            continue
        total += path.stat().st_size
        if total > limit:
            raise InvalidRequest(f"the job's files hold more than {limit} bytes; read them with the gateway")
        files[rel.as_posix()] = path.read_text(errors="replace")
    return files


async def cleanup(ctx: Context, payload: Any) -> AsyncIterator[Reply]:
    req = as_object(payload, key="work")
    run_id, _ = split_task_id(get(req, "work", str))
    done = await ctx.odin.cleanup(run_id, db=get(req, "purge_db", bool, False), fs=get(req, "purge_fs", bool, False))
    yield (
        OK,
        [
            {
                "task_id": c.task_id,
                "cleaned_from_k8s": c.cleaned_from_k8s,
                "purged_from_db": c.purged_from_db,
                "removed_from_fs": c.removed_from_fs,
            }
            for c in done
        ],
    )
