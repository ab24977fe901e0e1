"""Pipeline and task ids: DNS-safe names that Kubernetes objects, labels and paths can carry."""

from __future__ import annotations

import re
import secrets

from ..constants import DEFAULT_PIPELINE_NAME
from ..errors import InvalidRequest

MAX_ID_LENGTH = 63  # a DNS-1123 label, the strictest name Kubernetes asks for
SUFFIX_LENGTH = 8
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


def task_id(pipe_id: str, task_name: str) -> str:
    """``<pipeline id>--<task name>``: the id of a task inside one run (the legacy format)."""
    return f"{pipe_id}--{task_name}"


def new_pipe_id(name: str) -> str:
    """``<name>-<8 random base36 chars>``, lowercase and a valid DNS-1123 label.

    Characters a label may not hold (the ``.`` a pipeline name may contain, ``_``, upper case) become ``-``, and
    a long name is cut so the id stays within 63 characters. 36**8 ids make a clash between runs of one job
    practically impossible, and the store rejects a duplicate anyway.
    """
    base = _NOT_LABEL.sub("-", name.lower()).strip("-")
    base = re.sub("-{2,}", "-", base) or DEFAULT_PIPELINE_NAME
    base = base[: MAX_ID_LENGTH - SUFFIX_LENGTH - 1].rstrip("-")
    return f"{base}-{_base36(secrets.randbelow(36**SUFFIX_LENGTH))}"


def _base36(n: int) -> str:
    """``n`` in ``SUFFIX_LENGTH`` base-36 digits (one random draw per id, not one per character)."""
    digits = []
    for _ in range(SUFFIX_LENGTH):
        n, d = divmod(n, 36)
        digits.append(_ALPHABET[d])
    return "".join(digits)


_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def _check_label(value: object, what: str, example: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"a {what} is a string such as {example!r}, not {type(value).__name__}")
    shown = repr(value[:80]) + ("…" if len(value) > 80 else "")
    rule = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
    if len(value) > MAX_ID_LENGTH or not _LABEL.fullmatch(value):
        raise InvalidRequest(f"invalid {what} {shown}: a {what} is a DNS label ({rule})", value=shown)
    return value


def check_run_id(value: object) -> str:
    """``value`` when it is a valid run id: a DNS-1123 label of at most 63 characters without ``--``.

    Every run id that comes from outside (CLI, WebSocket, HTTP, Python API) passes here before it
    names a record, a directory or a Kubernetes object, so none can climb out of its root (``../x``).
    """
    run_id = _check_label(value, "run id", "train-1a2b3c4d")
    if "--" in run_id:
        raise InvalidRequest(f"invalid run id {run_id!r}: '--' separates a run id from a task name (<run id>--<task>)")
    return run_id


def check_task_name(value: object) -> str:
    """``value`` when it is a valid task name (a DNS-1123 label)."""
    return _check_label(value, "task name", "train")


def split_resource(resource: object) -> tuple[str, str | None]:
    """``<run id>--<task>`` → (run id, task); a plain run id → (run id, None); both parts validated."""
    if not isinstance(resource, str):
        raise InvalidRequest(f"a resource is a run id or <run id>--<task>, not {type(resource).__name__}")
    run_id, sep, task = resource.partition("--")
    return check_run_id(run_id), (check_task_name(task) if sep else None)
