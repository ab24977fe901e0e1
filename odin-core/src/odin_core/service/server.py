"""The WebSocket server: connections, authentication, bounded concurrency, graceful shutdown.

Each request runs as its own supervised task, so many can be in flight on one connection and a
slow stream never blocks another request. Sends on a connection are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..api import Odin
from ..errors import AuthError, InvalidRequest, OdinError
from ..tasks import TaskSet
from .auth import Grant, bearer, is_loopback, make_verifier
from .commands import COMMANDS, CONTROL_COMMANDS, CONTROL_SLOTS, OPEN_COMMANDS, Session
from .protocol import END, TooBusy, error_reply, extra_of, parse, reply

log = logging.getLogger("odin.service")
GOING_AWAY = 1001


@dataclass(frozen=True)
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = 30000
    """0 picks a free port (tests)."""
    root_path: Path = Path(".")
    """The pipelines root: START, SHOW and VALIDATE name jobs relative to it."""
    token: str | None = None
    """A shared secret clients present as a bearer token."""
    jwt_secret: str | None = None
    """The key of HS256 JWTs that the gateway signs; clients present such a JWT."""
    max_message_bytes: int = 1 << 20
    max_in_flight: int = 64
    """Requests in flight per connection; more get ERROR too_busy."""
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float = 20.0
    shutdown_grace_s: float = 10.0
    """How long one-shot replies in flight may take to finish at shutdown."""

    def check(self) -> None:
        if not is_loopback(self.host) and self.token is None and self.jwt_secret is None:
            raise InvalidRequest(
                f"refusing to listen on {self.host} without authentication: give --token-file or "
                "--jwt-secret-file (or set ODIN_TOKEN / ODIN_JWT_SECRET), or listen on 127.0.0.1"
            )


class Connection:
    def __init__(self, ws: ServerConnection, session: Session) -> None:
        self.ws = ws
        self.session = session
        self.tasks = TaskSet("conn")
        self._send_lock = asyncio.Lock()
        self._expiry: asyncio.TimerHandle | None = None
        self._protected: set[asyncio.Task[Any]] = set()  # requests in flight that need authority
        self._expired: set[asyncio.Task[Any]] = set()  # those ended because the grant expired
        session.on_grant = self._schedule_expiry

    async def send(self, frame: str) -> None:
        async with self._send_lock:
            await self.ws.send(frame)

    async def serve(self, settings: ServiceSettings) -> None:
        try:
            async for raw in self.ws:
                await self._accept(raw, settings)
        except ConnectionClosed:
            pass
        finally:
            if self._expiry is not None:
                self._expiry.cancel()
            await self.tasks.close()

    async def _accept(self, raw: str | bytes, settings: ServiceSettings) -> None:
        try:
            command, payload, extra = parse(raw)
            spare = CONTROL_SLOTS if command in CONTROL_COMMANDS else 0
            if len(self.tasks) >= settings.max_in_flight + spare:
                raise TooBusy(
                    f"more than {settings.max_in_flight} requests in flight on this connection: CANCEL some, "
                    "or wait for their replies"
                )
            key = str(extra["id"]) if "id" in extra else None
            if key is not None and key in self.session.streams:
                raise InvalidRequest(
                    f"id {key!r} is in use by a request still in flight on this connection: give each request "
                    "its own id (CANCEL needs it to tell them apart)"
                )
        except OdinError as e:
            await self.send(error_reply(e, extra_of(raw)))
            return
        except Exception as e:  # a bug: answer it, keep the connection and its other streams
            log.exception("a request could not be read")
            await self.send(error_reply(e, {}))
            return
        task = self.tasks.spawn(self._run(command, payload, extra), command)
        if command not in OPEN_COMMANDS:
            self._protected.add(task)
            task.add_done_callback(self._protected.discard)
        if key is not None:
            self.session.streams[key] = task
            task.add_done_callback(lambda _t: self.session.streams.pop(key, None))

    async def _run(self, command: str, payload: Any, extra: dict[str, Any]) -> None:
        try:
            s = self.session
            if command not in OPEN_COMMANDS and not s.authorized():
                why = "the token has expired: present a new one" if s.grant is not None else "authenticate first"
                raise AuthError(f'{why} (a bearer token on the handshake, or HELLO {{"token": ...}})')
            handler = COMMANDS.get(command)
            if handler is None:
                raise InvalidRequest(f"{command} not found.")
            async for status, response in handler(s, payload):
                await self.send(reply(status, response, extra))
                # A send into a socket buffer with room does not suspend: without this, a stream whose source
                # never waits either (a long log read in chunks) would hold the loop, and every other client,
                # until it ends.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            expired = task in self._expired
            self._expired.discard(task)  # type: ignore[arg-type]
            frame = error_reply(AuthError("the token has expired: this stream ended"), extra) if expired else None
            with contextlib.suppress(Exception):  # CANCEL, expiry, or the connection/server is closing
                await asyncio.shield(self.send(frame or reply(END, None, extra)))
            raise
        except ConnectionClosed:
            return
        except Exception as e:
            if not isinstance(e, OdinError):
                log.exception("%s failed", command)
            with contextlib.suppress(ConnectionClosed):
                await self.send(error_reply(e, extra))

    def _schedule_expiry(self, grant: Grant) -> None:
        """End the connection's protected streams when its (latest) grant expires."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if grant.expires_at is not None:
            delay = max(grant.expires_at - time.time(), 0.0)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        grant = self.session.grant
        if grant is not None and grant.valid():  # a newer grant, or the wall clock is a hair behind the timer
            self._schedule_expiry(grant)
            return
        for task in list(self._protected):
            self._expired.add(task)
            task.cancel()


class Service:
    """Serves an ``Odin`` over WebSocket; ``url`` once started."""

    def __init__(self, odin: Odin, settings: ServiceSettings) -> None:
        settings.check()
        self.odin = odin
        self.settings = settings
        self.verify = make_verifier(token=settings.token, jwt_secret=settings.jwt_secret)
        self._server: Server | None = None
        self._connections: set[Connection] = set()
        self._url = ""

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the service is not started")
        return self._url

    async def start(self) -> None:
        await self.odin.engine.start(adopt=True)
        s = self.settings
        try:
            self._server = await serve(
                self._handle,
                s.host,
                s.port,
                max_size=s.max_message_bytes,
                ping_interval=s.ping_interval_s,
                ping_timeout=s.ping_timeout_s,
                process_request=self._check_token,
                server_header="odin-core",
            )
        except OSError as e:
            raise InvalidRequest(
                f"cannot listen on {s.host}:{s.port}: {e.strerror or e} (is another server using it? pick --port)"
            ) from e
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        self._url = f"ws://{host}:{port}"
        log.info("odin-core serving on %s (root %s, executor %s)", self.url, s.root_path, self.odin.executor.name)

    def _check_token(self, conn: ServerConnection, request: Request) -> Response | None:
        """Refuse a handshake with a bad bearer token (401) or a malformed Authorization (400)."""
        try:
            token = bearer(request.headers.get_all("Authorization"))
        except InvalidRequest as e:
            return conn.respond(HTTPStatus.BAD_REQUEST, f"{e}\n")
        if token is not None and self.verify is not None:
            grant = self.verify(token)
            if grant is None or not grant.valid():
                return conn.respond(HTTPStatus.UNAUTHORIZED, "invalid or expired bearer token\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        session = Session(
            self.odin, self.settings.root_path, self.verify or _refuse, auth_required=self.verify is not None
        )
        conn = Connection(ws, session)
        token = bearer(ws.request.headers.get_all("Authorization")) if ws.request else None
        grant = session.verify(token) if token is not None else None
        if grant is not None:
            session.accept(grant)
        self._connections.add(conn)
        try:
            await conn.serve(self.settings)
        finally:
            self._connections.discard(conn)

    async def stop(self) -> None:
        """Stop accepting, give one-shot replies in flight some time, then close with 1001."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_grace_s
        while any(len(c.tasks) for c in self._connections) and asyncio.get_running_loop().time() < deadline:
            if all(_only_streams(c) for c in self._connections):
                break
            await asyncio.sleep(0.05)
        # all at once: a client that stopped reading holds its close for close_timeout, not everyone's
        await asyncio.gather(*(c.ws.close(GOING_AWAY, "server shutting down") for c in list(self._connections)))
        await self._server.wait_closed()
        self._server = None


def _refuse(_token: str) -> Grant | None:
    return None


def _only_streams(conn: Connection) -> bool:
    """Streams (WATCH, LOGS -f, START) never finish by themselves: shutdown does not wait for them."""
    return set(conn.tasks.names()) <= {"WATCH", "START", "LOGS"}


@contextlib.asynccontextmanager
async def serve_odin(odin: Odin, settings: ServiceSettings) -> AsyncIterator[Service]:
    service = Service(odin, settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
