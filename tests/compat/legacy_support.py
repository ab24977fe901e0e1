"""What the compatibility tests share: where the original client connects, and what one run of it gave."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Endpoint:
    """Where the original client connects: ``--scheme --host --port``."""

    scheme: str
    host: str
    port: int

    def args(self) -> list[str]:
        return ["--scheme", self.scheme, "--host", self.host, "--port", str(self.port)]


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def out(self) -> str:
        """stdout without colour codes."""
        return ANSI.sub("", self.stdout)

    @property
    def logged(self) -> list[str]:
        """What the client logged (its logger writes to stderr, each line twice: two handlers on one logger),
        once per line, in order."""
        lines = ANSI.sub("", self.stderr).splitlines()
        doubled = len(lines) % 2 == 0 and lines[::2] == lines[1::2]
        return lines[::2] if doubled else lines


LegacyCli = Callable[..., Awaitable["Result"]]
