"""One async generator per command: it yields (status, response) pairs; the server sends them.

One-shot commands yield a single OK; streams yield OKs and then END. Raising an OdinError makes
the server answer ERROR with that error's code.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..api import Odin
from ..errors import AuthError, InvalidRequest, NotFound
from ..hub import Lagged
from ..spec import load_pipeline, validate_pipeline
from . import inputs as i
from .auth import Grant, Verifier
from .protocol import (
    END,
    OK,
    PROTOCOL_VERSION,
    cleanup_entry,
    data_record,
    event_entry,
    iso,
    lagged_entry,
    legacy_cluster_event,
    legacy_event,
    progress_line,
    status_entry,
    wire_record,
)

Reply = tuple[str, Any]
MAX_SHOW_FILE_BYTES = 1 << 20
MAX_SHOW_FILES = 1000
FEATURES = ["multiplex", "watch", "resume", "lagged", "stop", "validate", "resubmit", "cancel", "auth"]


@dataclass
class Session:
    """What one connection's commands share, including its authority (the grant of the token it presented)."""

    odin: Odin
    root: Path
    verify: Verifier  # a token's grant, or None when it is not valid
    auth_required: bool
    grant: Grant | None = None
    on_grant: Callable[[Grant], None] | None = None  # the connection schedules the grant's expiry
    streams: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    def authorized(self) -> bool:
        return not self.auth_required or (self.grant is not None and self.grant.valid())

    def accept(self, grant: Grant) -> None:
        self.grant = grant
        if self.on_grant is not None:
            self.on_grant(grant)


# -- commands ----------------------------------------------------------------------------------------


async def hello(s: Session, payload: Any) -> AsyncIterator[Reply]:
    token = payload.get("token") if isinstance(payload, dict) else None
    if token is not None:
        grant = s.verify(token) if isinstance(token, str) else None
        if grant is None or not grant.valid():
            raise AuthError("invalid or expired token")
        s.accept(grant)
    reply: dict[str, Any] = {
        "server": f"odin-core {__version__}",
        "protocol": PROTOCOL_VERSION,
        "features": FEATURES,
        "executor": s.odin.executor.name,
        "authenticated": s.authorized(),
    }
    if s.grant is not None and s.grant.expires_at is not None:
        reply["expires"] = iso(s.grant.expires_at)
    yield OK, reply


async def ping(s: Session, payload: Any) -> AsyncIterator[Reply]:
    yield OK, f"PONG {payload if payload is not None else ''}"


async def start(s: Session, payload: Any) -> AsyncIterator[Reply]:
    path = i.job_dir(s.root, i.field(payload, "job"))
    run_id = payload.get("run_id") if isinstance(payload, dict) else None
    # shielded: a client that goes away while the run is being created must not leave half a run behind
    run = await asyncio.shield(s.odin.submit(path, run_id=None if run_id is None else i.run_id(run_id)))
    yield OK, run.run_id
    if isinstance(payload, dict) and payload.get("watch") is False:
        return
    submitting: set[tuple[str, Any]] = set()  # an attempt's PENDING events after the first add no line
    async for ev in s.odin.watch(run.run_id):
        if ev.kind == "task" and ev.status == "PENDING":
            attempt = (ev.task, ev.data.get("attempt"))
            if attempt in submitting:
                continue
            submitting.add(attempt)
        line = progress_line(ev)
        if line:
            yield OK, line
    yield END, run.run_id


async def status(s: Session, payload: Any) -> AsyncIterator[Reply]:
    """Legacy entries carry exactly the first Odin's fields; ``"odin": true`` adds each run's full record."""
    if payload is not None and not isinstance(payload, str | dict):
        raise InvalidRequest('"request" of STATUS is a pattern (a string) or an object {"pattern"?: ...}')
    pattern = i.text(i.field(payload, "pattern", required=False) or "", "a STATUS pattern")
    full = i.flag(payload, "odin")
    page: dict[str, Any] = {}
    if full and isinstance(payload, dict):  # new clients page in the store: {"limit", "offset", "active_only"}
        if payload.get("limit") is not None:
            page["limit"] = i.seq(payload["limit"], "limit")
        page["offset"] = i.seq(payload.get("offset", 0), "offset")
        page["active_only"] = i.flag(payload, "active_only")
    yield OK, [status_entry(v, full=full) for v in await s.odin.status(pattern, **page)]


async def data(s: Session, payload: Any) -> AsyncIterator[Reply]:
    """The record of a run or task; with ``"odin": true`` exactly Odin's record, else with the first Odin's
    names added (``label``, ``submit_time``, a run's ``executed`` / ``executing`` / ``waiting``)."""
    record = await s.odin.data(i.resource(i.field(payload, "resource")))
    yield OK, {"success": True, "jobs": wire_record(record) if i.flag(payload, "odin") else data_record(record)}


async def events(s: Session, payload: Any) -> AsyncIterator[Reply]:
    resource = i.resource(i.field(payload, "resource"))
    if isinstance(payload, dict) and payload.get("namespace"):  # not used (events come from the run's own), but checked
        i.namespace(payload["namespace"])
    own = await s.odin.events(resource)
    cluster = await s.odin.cluster_events(resource)
    if i.flag(payload, "odin"):
        yield OK, {"events": [event_entry(e) for e in own], "cluster_events": cluster}
    else:
        yield OK, [legacy_event(e) for e in own] + [legacy_cluster_event(e) for e in cluster]


async def logs(s: Session, payload: Any) -> AsyncIterator[Reply]:
    resource = i.resource(i.field(payload, "resource"))
    lines = payload.get("lines") if isinstance(payload, dict) else None
    lines = None if lines is None else i.seq(lines, "lines")
    namespace = payload.get("namespace") if isinstance(payload, dict) else None
    namespace = i.namespace(namespace) if namespace else None
    if i.flag(payload, "follow"):
        async for line in s.odin.logs(resource, follow=True, lines=lines, namespace=namespace):
            yield OK, line
    else:
        yield OK, await log_reply(s.odin.logs(resource, lines=lines, namespace=namespace))
    yield END, resource


MAX_REPLY_BYTES = (1 << 20) - (8 << 10)
"""A reply holds at most this much JSON text (a LOGS reply without follow, the log's last lines; SHOW, the files
that fit): a client's frame limit is 1 MiB by default (the websockets library's), and a longer reply would close
its connection."""


async def log_reply(lines: AsyncIterator[str]) -> str:
    """The last lines of ``lines`` that fit in a reply, under a line saying how many were left out (memory: one
    reply's worth, however long the log)."""
    kept: deque[str] = deque()
    sizes: deque[int] = deque()
    size = skipped = 0
    async for line in lines:
        kept.append(line)
        sizes.append(_json_size(line))
        size += sizes[-1]
        while size > MAX_REPLY_BYTES:
            kept.popleft()
            size -= sizes.popleft()
            skipped += 1
    if skipped:
        kept.appendleft(
            f"(the log's first {skipped:,} lines are left out: a reply holds its last {MAX_REPLY_BYTES >> 10:,} "
            "KiB at most; follow the log to stream every line, or ask for fewer lines)"
        )
    return "\n".join(kept)


def _json_size(line: str) -> int:
    """The characters ``line`` takes in a reply's JSON, with the newline that joins it to the next."""
    if line.isascii() and line.isprintable():
        return len(line) + line.count('"') + line.count("\\") + 2
    return len(json.dumps(line))  # its quotes stand for the newline's two characters


async def show(s: Session, payload: Any) -> AsyncIterator[Reply]:
    path = i.job_dir(s.root, i.field(payload, "job"))
    files = await asyncio.to_thread(read_files, path, s.root.resolve())
    yield OK, files


def read_files(path: Path, root: Path) -> dict[str, str]:
    """Every file of a job directory, by relative name; hidden files skipped; a link that leaves ``root``
    (``/etc/passwd``) is listed with a note in place of its content, never read. The reply fits a client's default
    frame limit (``MAX_REPLY_BYTES`` of JSON): once it is full, a last entry ``...`` says what was left out."""
    out: dict[str, str] = {}
    room = MAX_REPLY_BYTES - 1024  # for the last entry
    files = [f for f in sorted(path.rglob("*")) if f.is_file()]
    files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(path).parts)]
    for n, f in enumerate(files):
        rel = str(f.relative_to(path))
        if n >= MAX_SHOW_FILES:
            out["..."] = f"<more than {MAX_SHOW_FILES} files: the rest are not shown>"
            break
        text: str | None
        try:
            real = i.inside(root, f, rel)
        except InvalidRequest:
            text = "<not shown: a link to a file outside the pipelines root>"
        else:
            size = real.stat().st_size
            if size > MAX_SHOW_FILE_BYTES:
                text = f"<{size} bytes: larger than {MAX_SHOW_FILE_BYTES}>"
            else:  # None: the reply is full
                text = real.read_text(errors="replace") if size <= room else None
        if text is not None:
            room -= len(json.dumps(rel)) + len(json.dumps(text)) + 4  # as JSON: escapes included
        if text is None or room < 0:
            out["..."] = f"<{len(files) - n} files not shown: a reply holds {MAX_REPLY_BYTES >> 10:,} KiB at most>"
            break
        out[rel] = text
    return out


async def cleanup(s: Session, payload: Any) -> AsyncIterator[Reply]:
    run_id = i.run_id(i.field(payload, "work"))
    results = await s.odin.cleanup(run_id, db=i.flag(payload, "purge_db"), fs=i.flag(payload, "purge_fs"))
    yield OK, [cleanup_entry(c) for c in results]


async def stop(s: Session, payload: Any) -> AsyncIterator[Reply]:
    run_id = i.run_id(i.field(payload, "run"))
    reason = payload.get("reason") if isinstance(payload, dict) else None
    reason = i.text(reason, '"reason"') if reason else "stopped by user"
    run = await s.odin.stop(run_id, reason)
    yield OK, {"run_id": run.run_id, "status": run.status.value}


async def validate(s: Session, payload: Any) -> AsyncIterator[Reply]:
    path = i.job_dir(s.root, i.field(payload, "job"))
    problems = await asyncio.to_thread(validate_pipeline, path, root=s.root)
    tasks = 0 if problems else len((await asyncio.to_thread(load_pipeline, path, root=s.root)).tasks)
    yield OK, {"valid": not problems, "tasks": tasks, "problems": [p.to_dict() for p in problems]}


async def resubmit(s: Session, payload: Any) -> AsyncIterator[Reply]:
    yield OK, await s.odin.resubmit(i.run_id(i.field(payload, "run")))


async def watch(s: Session, payload: Any) -> AsyncIterator[Reply]:
    """One run's events from ``after_seq`` until it ends; or every run's live events, with an explicit
    ``lagged`` message (per run: the last seq sent) whenever this watcher fell behind and events were dropped."""
    if payload is not None and not isinstance(payload, dict):
        raise InvalidRequest('"request" must be an object {"run"?: id, "after_seq"?: n}')
    payload = payload or {}
    run_id = payload.get("run")
    after = i.seq(payload.get("after_seq", 0), "after_seq")
    if run_id is not None:
        async for ev in s.odin.watch(i.run_id(run_id), after_seq=after):
            yield OK, event_entry(ev)
        yield END, run_id
        return
    async for item in s.odin.engine.watch(None):
        yield OK, lagged_entry(item) if isinstance(item, Lagged) else event_entry(item)


async def cancel(s: Session, payload: Any) -> AsyncIterator[Reply]:
    task = s.streams.get(str(payload))
    if task is None:
        raise NotFound(f"no stream with id {payload!r} on this connection")
    if task is asyncio.current_task():
        raise InvalidRequest(f"CANCEL {payload!r} names its own id: give it an id of its own")
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
CONTROL_COMMANDS = frozenset({"HELLO", "PING", "CANCEL"})
"""Answered even when a connection has as many requests in flight as it may (``max_in_flight``), in
``CONTROL_SLOTS`` more: the way out of that state (CANCEL), a liveness check and a token's renewal must not wait
for a slot (and a client that sends them without reading the replies still holds a bounded number)."""
CONTROL_SLOTS = 8
