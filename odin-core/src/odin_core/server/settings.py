"""``ServerSettings``: how the WebSocket service listens, authenticates and bounds each connection."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import InvalidRequest

DEFAULT_PORT = 30000
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})

# Environment names (read only here): ODIN_SERVER_<FIELD in upper case>, e.g. ODIN_SERVER_PING_INTERVAL_S.
ENV_PREFIX = "ODIN_SERVER_"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    """0 picks a free port (tests); the bound port is logged and available as ``Service.port``."""
    root_path: Path = field(default_factory=Path.cwd)
    """The pipelines root: START, SHOW and VALIDATE name jobs relative to it."""
    token: str = field(default="", repr=False)
    """Shared secret clients present as a bearer token."""
    jwt_secret: str = field(default="", repr=False)
    """Key of HS256 JWTs (as the gateway signs them); signature and ``exp`` are verified."""
    max_size: int = 1 << 20
    """Largest frame accepted, in bytes; a larger one closes the connection with 1009."""
    max_in_flight: int = 64
    """Requests in flight at once on one connection; more get ERROR ``too_busy``."""
    outbox_size: int = 256
    """Replies queued for one connection before the slow-consumer policy applies."""
    slow_consumer_timeout_s: float = 10.0
    """How long a full outbox may stay full before the connection is closed with 1013."""
    ping_interval_s: float | None = 20.0
    """Heartbeat: the server pings each client this often (None: never)."""
    ping_timeout_s: float | None = 20.0
    """A client that does not answer a ping within this long is dropped."""
    shutdown_grace_s: float = 10.0
    """On SIGTERM, how long one-shot replies in flight may take before connections close with 1001."""
    show_max_bytes: int = 512 * 1024
    """SHOW reads at most this many bytes of a job's files in total."""

    @property
    def auth_required(self) -> bool:
        return bool(self.token or self.jwt_secret)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def check(self) -> None:
        """Refuse settings that would expose the engine: off loopback, a token is required."""
        if not self.loopback and not self.auth_required:
            raise InvalidRequest(
                f"refusing to listen on {self.host!r} without authentication: "
                "pass --token SECRET or --jwt-secret KEY (or listen on 127.0.0.1)"
            )
        if self.max_size < 1024 or self.max_in_flight < 1 or self.outbox_size < 1:
            raise InvalidRequest("max_size must be >= 1024, max_in_flight and outbox_size >= 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServerSettings:
        """Defaults, then ``ODIN_SERVER_*`` variables, then ``overrides`` that are not None (CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "root_path" in values:
            values["root_path"] = Path(str(values["root_path"])).expanduser().resolve()
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, raw: str) -> object:
    if name in ("port", "max_size", "max_in_flight", "outbox_size", "show_max_bytes"):
        return int(raw)
    if name in ("ping_interval_s", "ping_timeout_s"):
        return None if raw.lower() in ("", "none", "off", "0") else float(raw)
    if name.endswith("_s"):
        return float(raw)
    return raw


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
