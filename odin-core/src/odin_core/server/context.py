"""What a command handler may use (the Odin API, the settings) and helpers to read payloads safely."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from .. import __version__
from ..api import Odin
from ..errors import InvalidRequest, NotFound
from .settings import ServerSettings

T = TypeVar("T")
Reply = tuple[str, Any]  # (status, response)
Handler = Callable[["Context", Any], AsyncIterator[Reply]]

SERVER_NAME = f"odin-core {__version__}"


@dataclass(frozen=True)
class Context:
    odin: Odin
    settings: ServerSettings

    @property
    def root(self) -> Path:
        return self.settings.root_path

    def job_dir(self, job: Any) -> Path:
        """The directory of a job named relative to the root; absolute paths and ``..`` are refused."""
        if not isinstance(job, str) or not job.strip():
            raise InvalidRequest("a job is a non-empty path relative to the pipelines root")
        parts = PurePosixPath(job.strip().replace("\\", "/"))
        if parts.is_absolute() or ".." in parts.parts or job.startswith("~"):
            raise InvalidRequest(f"job path {job!r} must be relative to the pipelines root, without '..'")
        path = (self.root / parts).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise InvalidRequest(f"job path {job!r} leaves the pipelines root")
        if not path.is_dir():
            raise NotFound(f"no job {job!r} under the pipelines root")
        return path


def as_object(payload: Any, *, key: str) -> dict[str, Any]:
    """A payload that is an object, or a bare string standing for ``{key: string}``."""
    if isinstance(payload, str):
        return {key: payload}
    if not isinstance(payload, dict):
        raise InvalidRequest(f"request must be an object (or a string {key}), not {type(payload).__name__}")
    return payload


def get(obj: dict[str, Any], key: str, kind: type[T] | tuple[type, ...], default: Any = ...) -> Any:
    """``obj[key]`` checked against ``kind`` (bool is not an int here); missing → ``default`` or an error."""
    if key not in obj or obj[key] is None:
        if default is ...:
            raise InvalidRequest(f"request needs {key!r}")
        return default
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise InvalidRequest(f"{key!r} must be {_names(kinds)}, not a boolean")
    if not isinstance(value, kinds):
        raise InvalidRequest(f"{key!r} must be {_names(kinds)}, not {type(value).__name__}")
    return value


def text(payload: Any, what: str) -> str:
    if not isinstance(payload, str):
        raise InvalidRequest(f"request must be a string ({what}), not {type(payload).__name__}")
    return payload


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)
