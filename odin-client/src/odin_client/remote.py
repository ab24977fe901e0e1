"""``RemoteOdin``: the ``odin_core.api.Odin`` API served by ``odin-core serve`` over one WebSocket (docs/protocol.md).

Requests are multiplexed on one connection by an ``id`` extra key: a supervised reader task hands every reply to the
queue of its request. ``watch`` survives a dropped connection: it reconnects and resumes with ``after_seq`` = the last
seq it yielded, so nothing is lost and nothing comes twice. An ``ERROR`` reply raises the ``odin_core.errors`` class
of its code (``ERRORS``). Records come back as the same dataclasses the in-process API returns (times as epoch
seconds), so the CLI runs unchanged on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import time
from collections.abc import AsyncGenerator
from datetime import datetime
from pathlib import Path
from typing import Any

from odin_core.errors import AuthError, Conflict, InvalidRequest, NotFound, OdinError, Problem, SpecError, UpstreamError
from odin_core.model import CleanupResult, Event, RunRecord, RunView, TaskRecord
from odin_core.tasks import TaskSet
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

log = logging.getLogger("odin.client")

PROTOCOL_VERSION = 1
TIME_FIELDS = frozenset({"submitted", "started", "completed", "retry_at", "deadline", "time"})
RECONNECT_DELAYS_S = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)  # then the last one, until reconnect_timeout_s has passed
_GONE = object()  # put on every pending queue when the connection ends

# THE mapping from an ERROR reply's code to the exception raised (invalid_pipeline builds a SpecError).
ERRORS: dict[str, type[OdinError]] = {
    "invalid_request": InvalidRequest,
    "not_found": NotFound,
    "unauthorized": AuthError,
    "conflict": Conflict,
    "upstream": UpstreamError,
}


class Disconnected(OdinError):
    """The server cannot be reached, or the connection dropped before the reply came."""

    code = "unavailable"


def error_from_reply(msg: dict[str, Any]) -> OdinError:
    """The exception an ``ERROR`` reply stands for (``error.code`` picks the class; the message is the server's)."""
    error: dict[str, Any] = msg["error"] if isinstance(msg.get("error"), dict) else {}
    code = str(error.get("code") or "internal")
    message = str(error.get("message") or msg.get("response") or "request failed")
    details: dict[str, Any] = error["details"] if isinstance(error.get("details"), dict) else {}
    if code == "invalid_pipeline":
        fields = {f.name for f in dataclasses.fields(Problem)}
        problems = [Problem(**{k: v for k, v in p.items() if k in fields}) for p in details.get("problems") or []]
        return SpecError(problems)
    cls = ERRORS.get(code)
    if cls is not None:
        return cls(message, **details)
    exc = OdinError(message, **details)
    exc.code = code  # too_busy, internal, unavailable, …: kept for callers that branch on it
    return exc


def _epoch(value: Any) -> Any:
    return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else value


def decode_record(record: dict[str, Any]) -> dict[str, Any]:
    """A wire record with its ISO 8601 times as epoch seconds (as the in-process API returns them)."""
    out = {k: _epoch(v) if k in TIME_FIELDS else v for k, v in record.items()}
    if isinstance(out.get("tasks"), list):
        out["tasks"] = [decode_record(t) for t in out["tasks"]]
    return out


def decode_event(wire: dict[str, Any]) -> Event:
    """A WATCH event (``run``, ISO ``time``) as Odin's Event."""
    record = decode_record(wire)
    record.setdefault("run_id", record.pop("run", ""))
    return Event.from_record(record)


def decode_view(record: dict[str, Any]) -> RunView:
    if "tasks" not in record:
        raise NotFound(f"{record.get('task_id', '?')!r} is a task, not a run")
    record = decode_record(record)
    return RunView(RunRecord.from_record(record), tuple(TaskRecord.from_record(t) for t in record["tasks"]))


@dataclasses.dataclass(eq=False)
class _Connection:
    """One WebSocket and the queues of the requests in flight on it."""

    ws: ClientConnection
    pending: dict[int, asyncio.Queue[Any]] = dataclasses.field(default_factory=dict)
    closed: bool = False

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    log.warning("ignoring a frame that is not JSON: %.200r", raw)
                    continue
                rid = msg.get("id") if isinstance(msg, dict) else None
                queue = self.pending.get(rid) if isinstance(rid, int) else None
                if queue is not None:
                    queue.put_nowait(msg)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            for queue in self.pending.values():
                queue.put_nowait(_GONE)


class _RemoteEngine:
    """Stands in for ``Odin.engine`` where the CLI reads it: the server's engine drives what it is given."""

    owner = ""


class _RemoteStore:
    """Stands in for ``Odin.store`` where the CLI reads it (``odin stop`` polls ``get_run``)."""

    def __init__(self, odin: RemoteOdin) -> None:
        self._odin = odin

    async def get_run(self, run_id: str) -> RunRecord | None:
        try:
            return (await self._odin.run(run_id)).run
        except NotFound:
            return None


class RemoteOdin:
    """The in-process ``Odin`` API, served by a remote core. Use as ``async with RemoteOdin(url) as odin``."""

    def __init__(
        self, url: str, *, token: str | None = None, open_timeout_s: float = 10.0, reconnect_timeout_s: float = 30.0
    ) -> None:
        self.url = url
        self._token = token
        self._open_timeout_s = open_timeout_s
        self._reconnect_timeout_s = reconnect_timeout_s
        self._ids = itertools.count(1)
        self._conn: _Connection | None = None
        self._connect_lock = asyncio.Lock()
        self._readers = TaskSet("odin-client")
        self._closed = False
        self.engine = _RemoteEngine()
        self.store = _RemoteStore(self)

    def __repr__(self) -> str:
        return f"RemoteOdin({self.url!r})"  # never the token

    async def __aenter__(self) -> RemoteOdin:
        await self._connection()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connection(self) -> ClientConnection | None:
        """The current WebSocket (None before the first request and after a drop)."""
        return self._conn.ws if self._conn is not None and not self._conn.closed else None

    async def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.ws.close()
        await self._readers.close()

    # -- the connection ----------------------------------------------------------------------

    async def _connection(self) -> _Connection:
        async with self._connect_lock:
            if self._closed:
                raise Disconnected("this client is closed")
            if self._conn is not None and not self._conn.closed:
                return self._conn
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
            try:
                ws = await connect(
                    self.url, additional_headers=headers, max_size=None, open_timeout=self._open_timeout_s
                )
            except InvalidURI as e:
                raise InvalidRequest(f"{self.url!r} is not a WebSocket URL (ws://host:port): {e}") from None
            except InvalidStatus as e:
                if e.response.status_code in (401, 403):
                    raise AuthError(f"the Odin server at {self.url} refused the token (HTTP 401)") from None
                raise Disconnected(f"cannot connect to the Odin server at {self.url}: {e}") from None
            except (OSError, TimeoutError, InvalidHandshake) as e:
                raise Disconnected(f"cannot connect to the Odin server at {self.url}: {e}") from None
            self._conn = _Connection(ws)
            self._readers.spawn(self._conn.read(), f"reader:{self.url}")
            return self._conn

    async def _exchange(
        self, command: str, payload: Any, *, oneshot: bool = False
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Send one request; yield its OK and END replies (END last); raise on ERROR or a dropped connection.

        Leaving a stream early cancels it on the server (CANCEL).
        """
        conn = await self._connection()
        rid = next(self._ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        conn.pending[rid] = queue
        done = False
        try:
            try:
                await conn.ws.send(json.dumps({"command": command, "request": payload, "id": rid}))
            except ConnectionClosed as e:
                raise Disconnected(f"connection to {self.url} lost: {e}") from None
            while True:
                msg = await queue.get()
                if msg is _GONE:
                    raise Disconnected(f"connection to {self.url} lost during {command}")
                status = msg.get("status")
                if status == "ERROR":
                    done = True
                    raise error_from_reply(msg)
                done = oneshot or status == "END"
                yield msg
                if done:
                    return
        finally:
            conn.pending.pop(rid, None)
            if not done and not conn.closed:
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send(json.dumps({"command": "CANCEL", "request": rid, "id": next(self._ids)}))

    async def request(self, command: str, payload: Any = None) -> Any:
        """A one-shot command: the response of its OK reply."""
        async with contextlib.aclosing(self._exchange(command, payload, oneshot=True)) as replies:
            msg = await anext(replies)
        return msg["response"]

    async def stream(self, command: str, payload: Any = None) -> AsyncGenerator[Any, None]:
        """A stream command: the response of every OK reply, until END."""
        async with contextlib.aclosing(self._exchange(command, payload)) as replies:
            async for msg in replies:
                if msg.get("status") == "END":
                    return
                yield msg["response"]

    # -- runs --------------------------------------------------------------------------------

    async def submit(self, job_dir: str | Path, *, run_id: str | None = None) -> RunRecord:
        """Start the job (a path relative to the server's root path); the run's record."""
        payload: dict[str, Any] = {"job": str(job_dir), "watch": False}
        if run_id:
            payload["run_id"] = run_id
        # Without watch, the first OK (the run id) is all there is to read: an END after it is ignored.
        started = await self.request("START", payload)
        if not isinstance(started, str):
            raise OdinError(f"START {job_dir} answered no run id")
        record = (await self.run(started)).run
        self.engine.owner = record.owner  # the server drives the runs it starts: `odin run` follows them
        return record

    async def watch(self, run_id: str, *, after_seq: int = 0) -> AsyncGenerator[Event, None]:
        """Events after ``after_seq`` until the run ends; a dropped connection is resumed where it stopped."""
        last = after_seq
        lost_since: float | None = None
        for attempt in itertools.count():
            try:
                async with contextlib.aclosing(self.stream("WATCH", {"run": run_id, "after_seq": last})) as items:
                    async for item in items:
                        event = decode_event(item)
                        if event.seq <= last:
                            continue
                        last, lost_since = event.seq, None
                        yield event
                return
            except Disconnected as e:
                now = time.monotonic()
                lost_since = lost_since or now
                if self._closed or now - lost_since > self._reconnect_timeout_s:
                    raise
                delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
                log.info("watch %s: %s; resuming after seq %d in %.2fs", run_id, e, last, delay)
                await asyncio.sleep(delay)

    async def wait(self, run_id: str) -> RunRecord:
        async with contextlib.aclosing(self.watch(run_id)) as events:
            async for _ in events:
                pass
        return (await self.run(run_id)).run

    async def stop(self, run_id: str, reason: str = "stopped by user", *, wait_s: float | None = None) -> RunRecord:
        """Ask the server to stop the run; with ``wait_s``, follow it (WATCH) until it ends or that long passes."""
        await self.request("STOP", {"run": run_id, "reason": reason})
        if wait_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._until_end(run_id), wait_s)
        return (await self.run(run_id)).run

    async def _until_end(self, run_id: str) -> None:
        async for _ev in self.watch(run_id):
            pass

    async def resubmit(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("RESUBMIT", {"run": run_id})
        return result

    # -- reading -----------------------------------------------------------------------------

    async def run(self, run_id: str) -> RunView:
        return decode_view(await self._data(run_id))

    async def status(
        self, pattern: str = "", *, active_only: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[RunView]:
        """Runs matching ``pattern`` (newest first), a page of them, from each STATUS entry's ``record``.

        An entry without one (a server that sends only the legacy shape) is read with DATA.
        """
        # "odin": true asks for each run's whole record too (legacy entries carry only the first Odin's fields),
        # and pages in the server's store
        request = {"pattern": pattern, "odin": True, "limit": limit, "offset": offset, "active_only": active_only}
        entries = await self.request("STATUS", request)

        async def record(entry: dict[str, Any]) -> dict[str, Any]:
            if isinstance(entry.get("record"), dict):
                return dict(entry["record"])
            return await self._data(entry["pipeline_status"]["label"])

        return [decode_view(r) for r in await asyncio.gather(*(record(e) for e in entries))]

    async def task(self, resource: str) -> TaskRecord:
        if "--" not in resource:
            raise InvalidRequest(f"{resource!r} is not a task id (<run id>--<task>)")
        return TaskRecord.from_record(decode_record(await self._data(resource)))

    async def data(self, resource: str) -> dict[str, Any]:
        """The record of a run (with its tasks) or of one task."""
        return decode_record(await self._data(resource))

    async def _data(self, resource: str) -> dict[str, Any]:
        reply = await self.request("DATA", {"resource": resource, "odin": True})  # Odin's record, not the legacy one
        record: dict[str, Any] = reply["jobs"]
        return record

    async def events(self, resource: str, *, after_seq: int = 0) -> list[Event]:
        reply = await self.request("EVENTS", {"resource": resource, "odin": True})
        return [e for e in map(decode_event, reply["events"]) if e.seq > after_seq]

    async def cluster_events(self, resource: str) -> list[dict[str, Any]]:
        """What the executor saw of a run or task ({type, reason, source, message, timestamp})."""
        reply = await self.request("EVENTS", {"resource": resource, "odin": True})
        events: list[dict[str, Any]] = reply["cluster_events"]
        return events

    async def logs(self, resource: str, *, follow: bool = False, lines: int | None = None) -> AsyncGenerator[str, None]:
        """A task's log, line by line (with ``follow``, until the task ends)."""
        payload: dict[str, Any] = {"resource": resource, "follow": follow}
        if lines is not None:
            payload["lines"] = lines
        async with contextlib.aclosing(self.stream("LOGS", payload)) as items:
            async for item in items:
                if follow:
                    yield str(item).removesuffix("\n")
                else:
                    for line in str(item).splitlines():
                        yield line

    async def cleanup(self, run_id: str, *, db: bool = False, fs: bool = False) -> list[CleanupResult]:
        reply = await self.request("CLEANUP", {"work": run_id, "purge_db": db, "purge_fs": fs})
        fields = {f.name for f in dataclasses.fields(CleanupResult)}
        return [CleanupResult(**{k: v for k, v in r.items() if k in fields}) for r in reply]

    # -- the rest of the protocol ------------------------------------------------------------

    async def ping(self, text: str = "") -> str:
        return str(await self.request("PING", text))

    async def hello(self) -> dict[str, Any]:
        reply: dict[str, Any] = await self.request("HELLO", {"protocol": PROTOCOL_VERSION})
        return reply

    async def show(self, job: str | Path) -> dict[str, str]:
        """Every file of the job (relative to the server's root path): {filename: content}."""
        files: dict[str, str] = await self.request("SHOW", str(job))
        return files

    async def validate(self, job: str | Path) -> dict[str, Any]:
        """{"valid", "tasks", "problems"} for the job (relative to the server's root path)."""
        result: dict[str, Any] = await self.request("VALIDATE", str(job))
        return result


__all__ = ["ERRORS", "Disconnected", "RemoteOdin", "decode_event", "decode_record", "error_from_reply"]
