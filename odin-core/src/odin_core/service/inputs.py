"""What a request may carry: payload fields, run and task ids, job paths confined to the pipelines root.

Everything from a client passes through here before it touches the store or the file system, so a hostile
value (``../../victim``, an absolute path, a NUL byte, a 10 kB name, a link out of the root) is refused with
``invalid_request`` and a readable message, never an ``internal`` error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..constants import MAIN_FILE
from ..errors import InvalidRequest, NotFound
from ..spec.ids import check_run_id, check_task_name, split_resource

MAX_TEXT = 1024  # patterns, reasons, job paths: far longer than any real one
MAX_PATH_PART = 255  # NAME_MAX of every common file system
MAX_SEQ = 2**62  # fits every store's integer column


def field(payload: Any, key: str, *, required: bool = True) -> Any:
    """``payload[key]`` of a dict payload, or the payload itself when a bare string is allowed."""
    if isinstance(payload, dict):
        value = payload.get(key)
    elif isinstance(payload, str):
        value = payload
    else:
        value = None
    if required and (not isinstance(value, str) or not value):
        raise InvalidRequest(f'"request" must be a string or an object with a string "{key}"')
    return value


def flag(payload: Any, key: str) -> bool:
    return bool(payload.get(key)) if isinstance(payload, dict) else False


def text(value: Any, what: str, *, limit: int = MAX_TEXT) -> str:
    """A free-text value (a pattern, a reason): a string without NUL, at most ``limit`` characters."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string")
    if "\x00" in value:
        raise InvalidRequest(f"{what} must not contain NUL characters")
    if len(value) > limit:
        raise InvalidRequest(f"{what} is longer than {limit} characters")
    return value


def run_id(value: Any) -> str:
    """A run id (a DNS label without ``--``), or InvalidRequest."""
    return check_run_id(value)


def namespace(value: Any) -> str:
    """A Kubernetes namespace: a DNS label (checked like a task name)."""
    return check_task_name(text(value, '"namespace"', limit=63))


def resource(value: Any) -> str:
    """``<run id>`` or ``<run id>--<task>``: both parts checked before the id is used anywhere."""
    split_resource(value)
    return str(value)


def seq(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise InvalidRequest(f'"{what}" must be a non-negative integer')
    return value


def job_dir(root: Path, job: Any) -> Path:
    """The job directory under ``root``, refusing names and links that would leave it.

    ``__`` spells ``/`` (as over HTTP). The directory and its ``main.yml`` are resolved (links followed) and
    must both lie inside the resolved root.
    """
    if not isinstance(job, str) or not job.strip():
        raise InvalidRequest('a job is a path relative to the pipelines root, e.g. "team/train"')
    name = text(job, "a job path").strip().replace("__", "/")
    if Path(name).is_absolute():  # a path on the server's own disk: fine when it lies inside the root
        name = _relative_to_root(root, Path(name), job)
    if any(len(part) > MAX_PATH_PART for part in Path(name).parts):
        raise InvalidRequest(f"job {job[:80]!r}...: a path component is longer than {MAX_PATH_PART} characters")
    base = root.resolve()
    path = inside(base, base / name, f"job {job!r}")
    if not inside(base, path / MAIN_FILE, f"job {job!r}: {MAIN_FILE}").is_file():
        raise NotFound(f"no job {job!r}: {name}/{MAIN_FILE} does not exist under the pipelines root")
    return path


def _relative_to_root(root: Path, path: Path, job: str) -> str:
    for base in (root, root.resolve()):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()  # '..' parts left are refused by ``inside``
    raise InvalidRequest(f"job {job!r} is outside the pipelines root; name it relative to the root (team/train)")


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved (links followed), or InvalidRequest when it leaves the resolved ``root``."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a link loop, an over-long path
        raise InvalidRequest(f"{what}: cannot be resolved ({e})") from e
    if not resolved.is_relative_to(root):
        raise InvalidRequest(f"{what} is outside the pipelines root (a '..' or a link that leaves it)")
    return resolved
