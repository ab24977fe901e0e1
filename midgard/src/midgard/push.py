"""Pushing reports to the gateway: a bounded buffer, batches, and exponential backoff while the gateway is away.

The decisions (what to send next, how long to wait, what a reply means) are pure methods of ``PushState``; the
``Pusher`` only does the HTTP. A full buffer drops its oldest report (counted). A refused token (401/403) is
retried with backoff too: the token file may be rotated, and nothing else would recover the node.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from . import constants as C

log = logging.getLogger("midgard.push")

SENT, RETRY, DROP = "sent", "retry", "drop"


def outcome(status: int) -> str:
    """What an HTTP status from the gateway means for the batch that got it."""
    if 200 <= status < 300:
        return SENT
    if status in (400, 413, 422):  # this batch will never be accepted: drop it, keep going
        return DROP
    return RETRY  # 401/403 (token), 404 (gateway without the node module yet), 429, 5xx


@dataclass
class PushState:
    """The buffer and the backoff; everything here is decided without I/O."""

    capacity: int
    interval_s: float
    backoff_max_s: float
    buffer: deque[dict[str, Any]] = field(default_factory=deque)
    failures: int = 0
    dropped: int = 0
    sent: int = 0
    rejected: int = 0
    jitter: Callable[[], float] = random.random

    def add(self, report: dict[str, Any]) -> None:
        if len(self.buffer) >= self.capacity:
            self.buffer.popleft()
            self.dropped += 1
        self.buffer.append(report)

    def batch(self) -> list[dict[str, Any]]:
        return list(self.buffer)[: C.MAX_REPORTS_PER_PUSH]

    def settle(self, batch_len: int, result: str) -> None:
        if result == RETRY:
            self.failures += 1
            return
        for _ in range(min(batch_len, len(self.buffer))):
            self.buffer.popleft()
        if result == SENT:
            self.sent += batch_len
        else:
            self.rejected += batch_len
        self.failures = 0

    def delay(self) -> float:
        """Seconds to wait before the next try: 0 while healthy, else doubling (with jitter) up to the maximum."""
        if self.failures == 0:
            return 0.0
        base = min(self.backoff_max_s, self.interval_s * 2 ** (self.failures - 1))
        return base * (0.5 + self.jitter() / 2)


class Pusher:
    """Sends what ``PushState`` says, to ``<gateway>/v1/nodes/reports`` with the node token."""

    def __init__(self, url: str, token: Callable[[], str], state: PushState, timeout_s: float) -> None:
        self.url = url.rstrip("/") + C.NODE_REPORTS_PATH
        self.token = token
        self.state = state
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.last_problem = ""
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def flush(self) -> bool:
        """Send batches until the buffer is empty or the gateway fails; True when everything went."""
        while self.state.buffer:
            batch = self.state.batch()
            result = await self._send(batch)
            self.state.settle(len(batch), result)
            if result == RETRY:
                return False
        return True

    async def _send(self, batch: list[dict[str, Any]]) -> str:
        try:
            token = self.token()
        except OSError as e:
            self._problem(f"cannot read the node token: {e}")
            return RETRY
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._session.post(self.url, json={"reports": batch}, headers=headers) as resp:
                body = (await resp.text())[:300]
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            self._problem(f"gateway {self.url} unreachable: {type(e).__name__}: {e}")
            return RETRY
        result = outcome(status)
        if result == SENT:
            if self.last_problem:
                log.info("gateway %s accepts reports again", self.url)
            self.last_problem = ""
        else:
            self._problem(_explain(status, body, self.url))
        return result

    def _problem(self, message: str) -> None:
        if message != self.last_problem:  # one line per new problem, not one per interval
            log.warning("%s (%d report(s) buffered)", message, len(self.state.buffer))
        self.last_problem = message


def _explain(status: int, body: str, url: str) -> str:
    if status in (401, 403):
        return f"gateway {url} refused the node token (HTTP {status}): check MIDGARD_TOKEN_FILE / MIDGARD_TOKEN"
    return f"gateway {url} answered HTTP {status}: {body}"
