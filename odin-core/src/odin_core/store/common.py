"""What the server-backed stores (PostgreSQL, MongoDB) share: settings, retries, safe URLs, JSON.

Pure helpers and one retry loop; each backend says which of its exceptions mean "the server is
unreachable right now" (worth waiting for) by passing them to ``Retrying``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

from ..errors import TemporaryError, UpstreamError
from ..model import RunRecord
from ..settings import StoreSettings

log = logging.getLogger("odin.store")

T = TypeVar("T")

BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 5.0


def redact(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def read_password(settings: StoreSettings) -> str | None:
    """The password from ``settings.password_file`` (stripped of its trailing newline), or None."""
    if not settings.password_file:
        return None
    path = Path(settings.password_file).expanduser()
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as e:
        raise UpstreamError(f"cannot read the store password file {path}: {e.strerror}") from e


def _no_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nul(v) for v in value]
    return value


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


try:  # several times faster than json for the records and events every commit writes
    import orjson

    _ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME

    def _compact(value: Any) -> str:
        """orjson's compact JSON, read back as ``json``'s would be (dataclasses and datetimes via ``str``,
        keys made strings); an integer beyond 64 bits, which orjson refuses, goes through ``json``.
        NaN and infinities become null (``json`` wrote tokens that PostgreSQL's jsonb refuses)."""
        try:
            return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
        except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a key it cannot write
            return _json(value)

except ImportError:  # pragma: no cover - orjson comes with odin-core[kubernetes]
    _compact = _json


def dumps(value: Any) -> str:
    """Compact JSON. NUL characters (which PostgreSQL's jsonb and BSON keys refuse) become U+FFFD."""
    text = _compact(value)
    if "\\u0000" in text:
        text = _compact(_no_nul(value))
    return text


def present_run(record: dict[str, Any], stop: str | None, owner: str) -> RunRecord:
    """A stored run record as readers see it: owned by its lease's owner, with a pending stop request."""
    run = RunRecord.from_record(record)
    if owner != run.owner:
        run = run.evolve(owner=owner)
    if stop is not None and not run.status.is_terminal and not run.stop_requested:
        run = run.evolve(stop_requested=True, message=stop)
    return run


class Retrying:
    """Runs store operations again while the server is unreachable, with jittered exponential backoff.

    ``transient`` are the exception types that mean "not reachable now" (``also`` may accept more).
    A write is retried for ``write_retry_for_s``, a read for ``read_retry_for_s``; then the operation
    fails with ``TemporaryError`` (the engine waits and tries again). Other exceptions pass at once.
    """

    def __init__(
        self,
        what: str,
        settings: StoreSettings,
        transient: tuple[type[BaseException], ...],
        also: Callable[[BaseException], bool] = lambda e: False,
    ) -> None:
        self.what = what
        self.settings = settings
        self.transient = transient
        self.also = also  # further exceptions that mean "unreachable" (decided by their text)
        self.outages = 0  # operations that met an unreachable server (tests and metrics read it)

    async def write(self, op: Callable[[], Awaitable[T]]) -> T:
        return await self._run(op, self.settings.write_retry_for_s)

    async def read(self, op: Callable[[], Awaitable[T]]) -> T:
        return await self._run(op, self.settings.read_retry_for_s)

    async def _run(self, op: Callable[[], Awaitable[T]], retry_for_s: float) -> T:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + retry_for_s
        delay = BACKOFF_FIRST_S
        first = True
        while True:
            try:
                return await op()
            except Exception as e:
                if not isinstance(e, self.transient) and not self.also(e):
                    raise
                if first:
                    self.outages += 1
                    first = False
                if loop.time() + delay > give_up:
                    raise TemporaryError(
                        f"{self.what} unreachable for {retry_for_s:.0f}s: {type(e).__name__}: {e}", delay_s=delay
                    ) from e
                log.warning("%s unreachable (%s: %s); retrying in %.2fs", self.what, type(e).__name__, e, delay)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, BACKOFF_MAX_S)
