"""``HttpOdin``: ``odin_client.remote.RemoteOdin``'s API, served by the HTTP gateway (``odin-http``, docs/gateway.md).

The same methods return the same records (``RunView``, ``TaskRecord``, ``Event``, times as epoch seconds), so the
``odin`` CLI runs unchanged on the embedded engine, a core over WebSocket, or the gateway. ``watch`` and
``logs(follow=True)`` read the gateway's server-sent events and resume after the last id they yielded when the
connection drops. Beyond the core's API: log in and out (tokens kept by ``TokenCache``, refreshed once on a 401),
users, and the git-backed job definitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncGenerator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from odin_core.errors import AuthError, OdinError
from odin_core.model import CleanupResult, Event, RunRecord, RunView, TaskRecord, TaskStatus

from .remote import Disconnected, error_from_reply

TOKEN_FILE_ENV = "ODIN_TOKEN_FILE"
DEFAULT_TOKEN_FILE = "~/.config/odin/tokens.json"
RECONNECT_DELAYS_S = (0.1, 0.25, 0.5, 1.0, 2.0)
_SNAKE = re.compile(r"(?<=[a-z0-9])([A-Z])")
_TIMES = {"submitTime": "submitted", "startTime": "started", "completionTime": "completed", "retryTime": "retry_at"}


def _epoch(value: Any) -> float | None:
    return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else value


def _snake(name: str) -> str:
    return _SNAKE.sub(lambda m: "_" + m.group(1).lower(), name)


def task_record(run_id: str, t: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        run_id=run_id,
        name=t["name"],
        status=TaskStatus(t.get("state") or "WAITING"),
        attempt=int(t.get("attempt") or 0),
        image=t.get("image", ""),
        command=tuple(t.get("command") or ()),
        args=tuple(t.get("args") or ()),
        resource_type=t.get("resourceType", "Pod"),
        resource_id=t.get("resourceId", ""),
        submitted=_epoch(t.get("submitTime")),
        started=_epoch(t.get("startTime")),
        completed=_epoch(t.get("completionTime")),
        exit_code=t.get("exitCode"),
        message=t.get("message", ""),
        outputs=dict(t.get("outputs") or {}),
    )


def run_view(p: dict[str, Any]) -> RunView:
    run = RunRecord.from_record(
        {
            "run_id": p["id"],
            "job": p.get("job", ""),
            "name": p.get("name", ""),
            "version": p.get("version", ""),
            "status": p["status"],
            "submitted": _epoch(p.get("submitTime")) or 0.0,
            "completed": _epoch(p.get("completionTime")),
            "message": p.get("message", ""),
            "executor": p.get("executor", ""),
            "stop_requested": p.get("stopRequested", False),
        }
    )
    return RunView(run, tuple(task_record(run.run_id, t) for t in p.get("tasks", [])))


def snake_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record of the gateway (camelCase, ISO times) as the in-process API returns it."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in _TIMES:
            out[_TIMES[key]] = _epoch(value)
        elif key in ("deadline", "time"):
            out[key] = _epoch(value)
        elif key == "tasks" and isinstance(value, list):
            out["tasks"] = [snake_record(t) for t in value]
        elif key in ("outputs", "data"):
            out[key] = value
        else:
            out[_snake(key)] = value
    return out


def event_of(wire: dict[str, Any]) -> Event:
    return Event.from_record({**wire, "run_id": wire.get("run", ""), "time": _epoch(wire.get("time")) or 0.0})


class TokenCache:
    """Tokens per server in one JSON file that only its owner can read (0600 in a 0700 folder)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or os.environ.get(TOKEN_FILE_ENV) or DEFAULT_TOKEN_FILE).expanduser()

    def _all(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, server: str) -> dict[str, Any]:
        entry = self._all().get(server.rstrip("/"))
        return entry if isinstance(entry, dict) else {}

    def put(self, server: str, entry: dict[str, Any] | None) -> None:
        data = self._all()
        if entry is None:
            data.pop(server.rstrip("/"), None)
        else:
            data[server.rstrip("/")] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)


class _Engine:
    owner = ""  # runs started through the gateway are driven by the core: `odin run` follows them


class _Store:
    def __init__(self, odin: HttpOdin) -> None:
        self._odin = odin

    async def get_run(self, run_id: str) -> RunRecord | None:
        try:
            return (await self._odin.run(run_id)).run
        except OdinError as e:
            if e.code == "not_found":
                return None
            raise


class HttpOdin:
    """``async with HttpOdin("https://host:9003", token=...) as odin``: the Odin API over the gateway."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        cache: TokenCache | None = None,
        timeout_s: float = 60.0,
        reconnect_timeout_s: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.cache = cache
        entry = cache.get(self.url) if cache is not None and token is None else {}
        self._token = token or entry.get("accessToken")
        self._refresh = entry.get("refreshToken")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._reconnect_timeout_s = reconnect_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.engine = _Engine()
        self.store = _Store(self)

    def __repr__(self) -> str:
        return f"HttpOdin({self.url!r})"  # never the token

    async def __aenter__(self) -> HttpOdin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    # -- requests ----------------------------------------------------------------------------------------------

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        """One request; the JSON (or text) answer. An error body raises its ``odin_core.errors`` class."""
        for attempt in (0, 1):
            try:
                async with self._http().request(
                    method, f"{self.url}{path}", headers={**self._headers(), **kw.pop("headers", {})},
                    timeout=self._timeout, **kw,
                ) as r:  # fmt: skip
                    body = await r.json() if r.content_type == "application/json" else await r.text()
                    if r.status == 401 and attempt == 0 and await self._refreshed():
                        continue
                    if r.status >= 400:
                        raise self._error(r.status, body)
                    return body
            except aiohttp.ClientConnectionError as e:
                raise Disconnected(f"cannot reach the Odin gateway at {self.url}: {e}") from None
            except TimeoutError:
                raise Disconnected(f"the Odin gateway at {self.url} did not answer in time") from None
        raise AssertionError("unreachable")

    @staticmethod
    def _error(status: int, body: Any) -> OdinError:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return error_from_reply({"error": error})
        return OdinError(f"HTTP {status}: {str(body)[:200]}")

    async def _refreshed(self) -> bool:
        """Trade the refresh token for a new pair (once per 401); False when there is none or it is refused."""
        if not self._refresh:
            return False
        refresh, self._refresh = self._refresh, None
        async with self._http().post(f"{self.url}/v1/auth/refresh", json={"refreshToken": refresh}) as r:
            if r.status != 200:
                return False
            self._remember(await r.json())
        return True

    def _remember(self, tokens: dict[str, Any]) -> None:
        self._token, self._refresh = tokens["accessToken"], tokens.get("refreshToken")
        if self.cache is not None:
            entry = {"accessToken": self._token, "refreshToken": self._refresh, "username": tokens["user"]["username"]}
            self.cache.put(self.url, entry)

    async def _events(self, path: str, after: int) -> AsyncGenerator[tuple[int, str, Any], None]:
        """Server-sent events of ``path`` after id ``after``; a dropped connection resumes after the last id."""
        last, lost_since, attempt = after, None, 0
        while True:
            try:
                async for ident, kind, data in self._sse(path, last):
                    if kind == "end":
                        return
                    if kind == "error":
                        raise self._error(500, {"error": data})
                    last, lost_since, attempt = ident, None, 0
                    yield ident, kind, data
                return
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, Disconnected) as e:
                now = time.monotonic()
                lost_since = lost_since or now
                if now - lost_since > self._reconnect_timeout_s:
                    raise Disconnected(f"lost the stream {path} at {self.url}: {e}") from None
                await asyncio.sleep(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)])
                attempt += 1

    async def _sse(self, path: str, after: int) -> AsyncGenerator[tuple[int, str, Any], None]:
        headers = {**self._headers(), "Accept": "text/event-stream", "Last-Event-ID": str(after)}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._http().get(f"{self.url}{path}", headers=headers, timeout=timeout) as r:
            if r.status >= 400:
                raise self._error(r.status, await r.json() if r.content_type == "application/json" else None)
            ident, kind = after, ""
            async for raw in r.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("id: "):
                    ident = int(line[4:])
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    yield ident, kind, json.loads(line[6:])
            raise aiohttp.ClientPayloadError("the stream ended without its end event")

    # -- the Odin API ------------------------------------------------------------------------------------------

    async def submit(
        self, job_dir: str | Path, *, run_id: str | None = None, context: dict[str, Any] | None = None,
        commit: str | None = None,
    ) -> RunRecord:  # fmt: skip
        """Start the job (its path in the gateway's repository; `/` may be written `__`); the run's record."""
        pipeline: dict[str, Any] = {"job": str(job_dir).strip("/")}
        if run_id:
            pipeline["id"] = run_id
        if commit:
            pipeline["commit"] = commit
        body = await self.request("POST", "/v1/pipelines", json={"pipeline": pipeline, "context": context or {}})
        return run_view(body["pipeline"]).run

    async def watch(self, run_id: str, *, after_seq: int = 0) -> AsyncGenerator[Event, None]:
        async with contextlib.aclosing(self._events(f"/v1/pipelines/{run_id}/events/live", after_seq)) as items:
            async for _ident, _kind, data in items:
                yield event_of(data)

    async def wait(self, run_id: str) -> RunRecord:
        async with contextlib.aclosing(self.watch(run_id)) as events:
            async for _ in events:
                pass
        return (await self.run(run_id)).run

    async def stop(self, run_id: str, reason: str = "stopped by user", *, wait_s: float | None = None) -> RunRecord:
        """Ask the gateway to stop the run; with ``wait_s``, follow it until it ends or that long passes."""
        body = await self.request("POST", f"/v1/pipelines/{run_id}/stop", json={"reason": reason})
        if wait_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(run_id), wait_s)
            return (await self.run(run_id)).run
        return run_view(body["pipeline"]).run

    async def resubmit(self, run_id: str) -> dict[str, Any]:
        body = await self.request("POST", f"/v1/pipelines/{run_id}/resubmit")
        return {"run_id": run_id, "reused": body["reused"], "rerun": body["rerun"]}

    async def run(self, run_id: str) -> RunView:
        return run_view((await self.request("GET", f"/v1/pipelines/{run_id}"))["pipeline"])

    async def status(
        self, pattern: str = "", *, active_only: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[RunView]:
        """Runs matching ``pattern``, newest first: ``limit`` of them (all when None) after skipping ``offset``
        (``active_only``: of the runs that have not ended, picked here from the gateway's pages)."""
        views: list[RunView] = []
        at: int | None = 0 if active_only else offset
        skip = offset if active_only else 0
        while at is not None and (limit is None or len(views) < skip + limit):
            size = 1000 if limit is None or active_only else min(limit - len(views), 1000)
            body = await self.request("GET", "/v1/pipelines", params={"q": pattern, "offset": at, "limit": size})
            views += [v for v in map(run_view, body["pipelines"]) if not (active_only and v.run.status.is_terminal)]
            at = body["page"]["next"]
        views = views[skip:]
        return views if limit is None else views[:limit]

    async def task(self, resource: str) -> TaskRecord:
        return TaskRecord.from_record(await self.data(resource))

    async def data(self, resource: str) -> dict[str, Any]:
        return snake_record(await self.request("GET", f"/v1/resources/{resource}/data"))

    async def events(self, resource: str, *, after_seq: int = 0) -> list[Event]:
        events: list[Event] = []
        offset: int | None = 0
        while offset is not None:
            params = {"after": after_seq, "offset": offset, "limit": 1000}
            body = await self.request("GET", f"/v1/resources/{resource}/events", params=params)
            events += [event_of(e) for e in body["runEvents"]]
            offset = body["page"]["next"]
        return events

    async def cluster_events(self, resource: str) -> list[dict[str, Any]]:
        body = await self.request("GET", f"/v1/resources/{resource}/events")
        return [
            {"type": e["eventType"], **{k: e.get(k) for k in ("reason", "source", "message", "timestamp")}}
            for e in body["events"]
            if e.get("source") != "odin"
        ]

    async def logs(self, resource: str, *, follow: bool = False, lines: int | None = None) -> AsyncGenerator[str, None]:
        params = f"?lines={lines}" if lines else ""
        if not follow:
            text = await self.request("GET", f"/v1/resources/{resource}/logs{params}")
            for line in str(text).splitlines():
                yield line
            return
        path = f"/v1/resources/{resource}/logs?follow=true" + (f"&lines={lines}" if lines else "")
        async with contextlib.aclosing(self._events(path, 0)) as items:
            async for _ident, _kind, line in items:
                yield str(line)

    async def cleanup(self, run_id: str, *, db: bool = False, fs: bool = False) -> list[CleanupResult]:
        params = {"db": str(db).lower(), "fs": str(fs).lower()}
        body = await self.request("DELETE", f"/v1/pipelines/{run_id}", params=params)
        return [
            CleanupResult(c["taskId"], c["cleanedFromK8s"], c["purgedFromDb"], c["removedFromFs"])
            for c in body["cleanups"]
        ]

    async def ping(self, text: str = "") -> str:
        return str(await self.request("GET", "/v1/ping"))

    async def hello(self) -> dict[str, Any]:
        info: dict[str, Any] = await self.request("GET", "/v1/app")
        return info

    async def show(self, job: str | Path) -> dict[str, str]:
        body = await self.request("GET", f"/v1/jobs/{_job(job)}")
        return {c["name"]: c["content"] for c in body["job"]["configs"]}

    async def validate(self, job: str | Path, *, context: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST", f"/v1/jobs/{_job(job)}/validate", json={"context": context or {}}
        )
        return result

    # -- the gateway's own -------------------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in; the tokens are kept (and cached, with a cache) for every later request."""
        async with self._http().post(
            f"{self.url}/v1/auth", json={"username": username, "password": password}, timeout=self._timeout
        ) as r:
            body = await r.json() if r.content_type == "application/json" else {}
            if r.status != 200:
                raise self._error(r.status, body)
        self._remember(body)
        return body["user"]  # type: ignore[no-any-return]

    async def logout(self) -> None:
        if self._token:
            with contextlib.suppress(AuthError):
                await self.request("POST", "/v1/auth/logout", json={"refreshToken": self._refresh})
        self._token = self._refresh = None
        if self.cache is not None:
            self.cache.put(self.url, None)

    async def users(self, query: str = "") -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = (await self.request("GET", "/v1/users", params={"q": query}))["users"]
        return users

    async def user(self, username: str) -> dict[str, Any]:
        user: dict[str, Any] = (await self.request("GET", f"/v1/users/{username}"))["user"]
        return user

    async def create_user(self, username: str, password: str, **fields: Any) -> dict[str, Any]:
        body = {"user": {"username": username, "password": password, **fields}}
        user: dict[str, Any] = (await self.request("POST", "/v1/users", json=body))["user"]
        return user

    async def update_user(self, username: str, **fields: Any) -> dict[str, Any]:
        user: dict[str, Any] = (await self.request("PUT", f"/v1/users/{username}", json={"user": fields}))["user"]
        return user

    async def delete_user(self, username: str) -> dict[str, Any]:
        user: dict[str, Any] = (await self.request("DELETE", f"/v1/users/{username}"))["user"]
        return user

    async def jobs(self, query: str = "") -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = (await self.request("GET", "/v1/jobs", params={"q": query}))["jobs"]
        return jobs

    async def job(self, job: str, *, commit: str | None = None) -> dict[str, Any]:
        params = {"commit": commit} if commit else {}
        found: dict[str, Any] = (await self.request("GET", f"/v1/jobs/{_job(job)}", params=params))["job"]
        return found

    async def create_job(self, job: str) -> dict[str, Any]:
        created: dict[str, Any] = (await self.request("POST", "/v1/jobs", json={"job": {"name": _job(job)}}))["job"]
        return created

    async def push(self, job: str, name: str, content: bytes, *, base: str | None = None) -> dict[str, Any]:
        """Write one file of a job (one commit); ``base`` refuses the write if the file changed since that commit."""
        headers = {"Content-Type": "application/octet-stream", **({"If-Match": base} if base else {})}
        written: dict[str, Any] = await self.request(
            "POST", f"/v1/jobs/{_job(job)}/files/{name}", data=content, headers=headers
        )
        return written

    async def history(self, job: str) -> list[dict[str, Any]]:
        commits: list[dict[str, Any]] = (await self.request("GET", f"/v1/jobs/{_job(job)}/history"))["commits"]
        return commits


def _job(job: str | Path) -> str:
    return str(job).strip("/").replace("/", "__")


def is_http(url: str | None) -> bool:
    return bool(url) and str(url).lower().startswith(("http://", "https://"))


__all__ = ["HttpOdin", "TokenCache", "is_http", "run_view", "snake_record"]
