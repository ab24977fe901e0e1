"""One async generator per command: it yields (status, response) pairs; the server sends them.

One-shot commands yield a single OK; streams yield OKs and then END. Raising an OdinError makes
the server answer ERROR with that error's code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..api import Odin
from ..errors import AuthError, InvalidRequest, NotFound
from ..hub import Lagged
from ..spec import load_pipeline, validate_pipeline
from .protocol import (
    END,
    OK,
    PROTOCOL_VERSION,
    cleanup_entry,
    event_entry,
    legacy_event,
    progress_line,
    status_entry,
    wire_record,
)

Reply = tuple[str, Any]
MAX_SHOW_FILE_BYTES = 1 << 20
FEATURES = ["multiplex", "watch", "resume", "stop", "validate", "resubmit", "cancel", "auth"]


@dataclass
class Session:
    """What one connection's commands share."""

    odin: Odin
    root: Path
    verify: Callable[[str], bool]  # checks a token
    authenticated: bool
    auth_required: bool
    streams: dict[str, asyncio.Task[Any]] = field(default_factory=dict)


# -- payload helpers --------------------------------------------------------------------------------


def _field(payload: Any, key: str, *, required: bool = True) -> Any:
    """``payload[key]`` of a dict payload, or the payload itself when a bare string is allowed."""
    if isinstance(payload, dict):
        value = payload.get(key)
    elif isinstance(payload, str):
        value = payload
    else:
        value = None
    if required and (not isinstance(value, str) or not value):
        raise InvalidRequest(f'"request" must be a string or an object with a string "{key}"')
    return value


def _flag(payload: Any, key: str) -> bool:
    return bool(payload.get(key)) if isinstance(payload, dict) else False


def job_dir(root: Path, job: Any) -> Path:
    """The job directory under ``root`` (a name relative to it, or an absolute path inside it); names that would
    leave it (``..``, an absolute path elsewhere) are refused."""
    if not isinstance(job, str) or not job.strip():
        raise InvalidRequest('a job is a path relative to the pipelines root, e.g. "team/train"')
    name = job.strip().replace("__", "/")
    path = (root / name).resolve()  # an absolute name stays absolute: accepted when it lies inside the root
    if not path.is_relative_to(root.resolve()):
        raise InvalidRequest(
            f"job {job!r} is outside the pipelines root; name it relative to the root, e.g. team/train"
        )
    if not (path / "main.yml").is_file():
        raise NotFound(f"no job {job!r}: {name}/main.yml does not exist under the pipelines root")
    return path


# -- commands ----------------------------------------------------------------------------------------


async def hello(s: Session, payload: Any) -> AsyncIterator[Reply]:
    token = payload.get("token") if isinstance(payload, dict) else None
    if token is not None:
        if not isinstance(token, str) or not s.verify(token):
            raise AuthError("invalid token")
        s.authenticated = True
    yield (
        OK,
        {
            "server": f"odin-core {__version__}",
            "protocol": PROTOCOL_VERSION,
            "features": FEATURES,
            "executor": s.odin.executor.name,
            "authenticated": s.authenticated or not s.auth_required,
        },
    )


async def ping(s: Session, payload: Any) -> AsyncIterator[Reply]:
    yield OK, f"PONG {payload if payload is not None else ''}"


async def start(s: Session, payload: Any) -> AsyncIterator[Reply]:
    path = job_dir(s.root, _field(payload, "job"))
    run_id = payload.get("run_id") if isinstance(payload, dict) else None
    if run_id is not None and not isinstance(run_id, str):
        raise InvalidRequest('"run_id" must be a string')
    # shielded: a client that goes away while the run is being created must not leave half a run behind
    run = await asyncio.shield(s.odin.submit(path, run_id=run_id))
    yield OK, run.run_id
    if isinstance(payload, dict) and payload.get("watch") is False:
        return
    async for ev in s.odin.watch(run.run_id):
        line = progress_line(ev)
        if line:
            yield OK, line
    yield END, run.run_id


async def status(s: Session, payload: Any) -> AsyncIterator[Reply]:
    pattern = _field(payload, "pattern", required=False) or ""
    if not isinstance(pattern, str):
        raise InvalidRequest('"request" must be a pattern string')
    yield OK, [status_entry(v) for v in await s.odin.status(pattern)]


async def data(s: Session, payload: Any) -> AsyncIterator[Reply]:
    yield OK, {"success": True, "jobs": wire_record(await s.odin.data(_field(payload, "resource")))}


async def events(s: Session, payload: Any) -> AsyncIterator[Reply]:
    resource = _field(payload, "resource")
    own = await s.odin.events(resource)
    cluster = await s.odin.cluster_events(resource)
    if _flag(payload, "odin"):
        yield OK, {"events": [event_entry(e) for e in own], "cluster_events": cluster}
    else:
        yield OK, [legacy_event(e) for e in own] + cluster


async def logs(s: Session, payload: Any) -> AsyncIterator[Reply]:
    resource = _field(payload, "resource")
    lines = payload.get("lines") if isinstance(payload, dict) else None
    if lines is not None and (not isinstance(lines, int) or lines < 0):
        raise InvalidRequest('"lines" must be a non-negative integer')
    if _flag(payload, "follow"):
        async for line in s.odin.logs(resource, follow=True, lines=lines):
            yield OK, line
    else:
        yield OK, "\n".join([line async for line in s.odin.logs(resource, lines=lines)])
    yield END, resource


async def show(s: Session, payload: Any) -> AsyncIterator[Reply]:
    path = job_dir(s.root, _field(payload, "job"))
    files = await asyncio.to_thread(_read_files, path)
    yield OK, files


def _read_files(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            size = f.stat().st_size
            too_big = f"<{size} bytes: larger than {MAX_SHOW_FILE_BYTES}>"
            out[str(rel)] = too_big if size > MAX_SHOW_FILE_BYTES else f.read_text(errors="replace")
    return out


async def cleanup(s: Session, payload: Any) -> AsyncIterator[Reply]:
    run_id = _field(payload, "work")
    results = await s.odin.cleanup(run_id, db=_flag(payload, "purge_db"), fs=_flag(payload, "purge_fs"))
    yield OK, [cleanup_entry(c) for c in results]


async def stop(s: Session, payload: Any) -> AsyncIterator[Reply]:
    run_id = _field(payload, "run")
    reason = payload.get("reason") if isinstance(payload, dict) else None
    run = await s.odin.stop(run_id, reason if isinstance(reason, str) and reason else "stopped by user")
    yield OK, {"run_id": run.run_id, "status": run.status.value}


async def validate(s: Session, payload: Any) -> AsyncIterator[Reply]:
    path = job_dir(s.root, _field(payload, "job"))
    problems = await asyncio.to_thread(validate_pipeline, path, root=s.root)
    tasks = 0 if problems else len((await asyncio.to_thread(load_pipeline, path, root=s.root)).tasks)
    yield OK, {"valid": not problems, "tasks": tasks, "problems": [p.to_dict() for p in problems]}


async def resubmit(s: Session, payload: Any) -> AsyncIterator[Reply]:
    yield OK, await s.odin.resubmit(_field(payload, "run"))


async def watch(s: Session, payload: Any) -> AsyncIterator[Reply]:
    if payload is not None and not isinstance(payload, dict):
        raise InvalidRequest('"request" must be an object {"run"?: id, "after_seq"?: n}')
    payload = payload or {}
    run_id, after = payload.get("run"), payload.get("after_seq", 0)
    if run_id is not None and not isinstance(run_id, str):
        raise InvalidRequest('"run" must be a run id')
    if not isinstance(after, int) or after < 0:
        raise InvalidRequest('"after_seq" must be a non-negative integer')
    async for ev in s.odin.watch(run_id, after_seq=after) if run_id else s.odin.engine.watch(None):
        if isinstance(ev, Lagged):  # events were dropped for this slow watcher: WATCH each run from resume[run]
            yield OK, {"lagged": True, "resume": ev.resume}
        else:
            yield OK, event_entry(ev)
    yield END, run_id


async def cancel(s: Session, payload: Any) -> AsyncIterator[Reply]:
    task = s.streams.get(str(payload))
    if task is None:
        raise NotFound(f"no stream with id {payload!r} on this connection")
    task.cancel()
    yield OK, f"cancelled {payload}"


COMMANDS: dict[str, Callable[[Session, Any], AsyncIterator[Reply]]] = {
    "HELLO": hello,
    "PING": ping,
    "START": start,
    "STATUS": status,
    "DATA": data,
    "EVENTS": events,
    "LOGS": logs,
    "SHOW": show,
    "CLEANUP": cleanup,
    "STOP": stop,
    "VALIDATE": validate,
    "RESUBMIT": resubmit,
    "WATCH": watch,
    "CANCEL": cancel,
}
OPEN_COMMANDS = frozenset({"HELLO", "PING"})  # allowed before authentication
