"""Odin's error hierarchy: each error has a stable ``code`` and structured ``details``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class OdinError(Exception):
    """Base of every error Odin raises on purpose."""

    code = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **({"details": self.details} if self.details else {})}


@dataclass(frozen=True)
class Problem:
    """One problem in a pipeline file, located by file, line, column and field path."""

    file: str
    line: int
    column: int
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
        }


class SpecError(OdinError):
    """A pipeline is invalid; ``problems`` lists every problem found."""

    code = "invalid_pipeline"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"pipeline is invalid ({len(self.problems)} problem(s)):\n{lines}")
        self.details = {"problems": [p.to_dict() for p in self.problems]}


class InvalidRequest(OdinError):
    code = "invalid_request"


class NotFound(OdinError):
    code = "not_found"


class Conflict(OdinError):
    code = "conflict"


class AuthError(OdinError):
    code = "unauthorized"


class UpstreamError(OdinError):
    """A system Odin depends on (Kubernetes, a database) failed."""

    code = "upstream"


class TemporaryError(UpstreamError):
    """A failure worth retrying after ``delay_s``."""

    def __init__(self, message: str, *, delay_s: float = 1.0, **details: Any) -> None:
        super().__init__(message, **details)
        self.delay_s = delay_s


class PermanentError(UpstreamError):
    """A failure that retrying will not fix."""
