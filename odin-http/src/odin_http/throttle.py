"""Failed logins slow further attempts down, per user name and per client address (state in PostgreSQL).

``retry_after`` is the pure decision; ``LoginThrottle`` keeps the counts where every replica sees them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import asyncpg

from .errors import Throttled
from .settings import AuthSettings


def retry_after(failures: int, last_failure: float, now: float, s: AuthSettings) -> float:
    """Seconds until the next attempt is allowed (0: now). Below ``max_failures`` there is no delay; from there
    the delay doubles with every failure, up to ``max_delay_s``; failures older than the window are forgotten."""
    if failures < s.max_failures or now - last_failure > s.failure_window_s:
        return 0.0
    delay = min(s.base_delay_s * 2 ** (failures - s.max_failures), s.max_delay_s)
    return max(0.0, last_failure + delay - now)


def keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username.lower()}", f"addr:{address}"


class LoginThrottle:
    def __init__(self, pool: asyncpg.Pool, settings: AuthSettings) -> None:
        self._pool = pool
        self._s = settings

    async def check(self, username: str, address: str, *, now: float | None = None) -> None:
        """Raise Throttled when either key must still wait."""
        now = time.time() if now is None else now
        rows = await self._pool.fetch(
            "SELECT key, failures, last_failure FROM login_failures WHERE key = ANY($1::text[])",
            list(keys(username, address)),
        )
        wait = max((retry_after(r["failures"], r["last_failure"].timestamp(), now, self._s) for r in rows), default=0)
        if wait > 0:
            raise Throttled(
                f"too many failed logins: try again in {wait:.0f}s" if wait >= 1 else "too many failed logins",
                retry_after_s=wait,
            )

    async def failed(self, username: str, address: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        when = datetime.fromtimestamp(now, UTC)
        window = self._s.failure_window_s
        await self._pool.executemany(
            """
            INSERT INTO login_failures (key, failures, last_failure) VALUES ($1, 1, $2)
            ON CONFLICT (key) DO UPDATE SET
              failures = CASE WHEN login_failures.last_failure < $2 - make_interval(secs => $3)
                              THEN 1 ELSE login_failures.failures + 1 END,
              last_failure = $2
            """,
            [(k, when, float(window)) for k in keys(username, address)],
        )

    async def succeeded(self, username: str) -> None:
        """A good password clears the user's count (the address keeps its own: one user's success says nothing
        about the other names an address tried)."""
        await self._pool.execute("DELETE FROM login_failures WHERE key = $1", keys(username, "")[0])
