"""The WebSocket server: connections, authentication, bounded concurrency, graceful shutdown.

Each request runs as its own supervised task, so many can be in flight on one connection and a
slow stream never blocks another request. Sends on a connection are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from .auth import bearer, is_loopback, make_verifier
from .commands import COMMANDS, OPEN_COMMANDS, Session
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
                f"refusing to listen on {self.host} without authentication: give --token or --jwt-secret "
                "(or listen on 127.0.0.1)"
            )


class Connection:
    def __init__(self, ws: ServerConnection, session: Session) -> None:
        self.ws = ws
        self.session = session
        self.tasks = TaskSet("conn")
        self._send_lock = asyncio.Lock()

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
            await self.tasks.close()

    async def _accept(self, raw: str | bytes, settings: ServiceSettings) -> None:
        try:
            command, payload, extra = parse(raw)
            if len(self.tasks) >= settings.max_in_flight:
                raise TooBusy(f"more than {settings.max_in_flight} requests in flight on this connection")
        except OdinError as e:
            await self.send(error_reply(e, extra_of(raw)))
            return
        task = self.tasks.spawn(self._run(command, payload, extra), command)
        if "id" in extra:
            key = str(extra["id"])
            self.session.streams[key] = task
            task.add_done_callback(lambda _t: self.session.streams.pop(key, None))

    async def _run(self, command: str, payload: Any, extra: dict[str, Any]) -> None:
        try:
            handler = COMMANDS.get(command)
            if handler is None:
                raise InvalidRequest(f"{command} not found.")
            s = self.session
            if s.auth_required and not s.authenticated and command not in OPEN_COMMANDS:
                raise AuthError('authenticate first: a bearer token on the handshake, or HELLO {"token": ...}')
            async for status, response in handler(s, payload):
                await self.send(reply(status, response, extra))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # CANCEL, or the connection/server is closing
                await asyncio.shield(self.send(reply(END, None, extra)))
            raise
        except ConnectionClosed:
            return
        except Exception as e:
            if not isinstance(e, OdinError):
                log.exception("%s failed", command)
            with contextlib.suppress(ConnectionClosed):
                await self.send(error_reply(e, extra))


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
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        self._url = f"ws://{host}:{port}"
        log.info("odin-core serving on %s (root %s, executor %s)", self.url, s.root_path, self.odin.executor.name)

    def _check_token(self, conn: ServerConnection, request: Request) -> Response | None:
        token = bearer(request.headers.get("Authorization"))
        if token is not None and self.verify is not None and not self.verify(token):
            return conn.respond(HTTPStatus.UNAUTHORIZED, "invalid bearer token\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        token = bearer(ws.request.headers.get("Authorization")) if ws.request else None
        session = Session(
            self.odin,
            self.settings.root_path,
            self.verify or (lambda _t: False),
            authenticated=token is not None,
            auth_required=self.verify is not None,
        )
        conn = Connection(ws, session)
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
        for conn in list(self._connections):
            await conn.ws.close(GOING_AWAY, "server shutting down")
        await self._server.wait_closed()
        self._server = None


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
