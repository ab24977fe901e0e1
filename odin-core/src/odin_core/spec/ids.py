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
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


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
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(SUFFIX_LENGTH))
    return f"{base}-{suffix}"


def check_run_id(value: object) -> str:
    """``value`` when it is a valid run id, else InvalidRequest saying why.

    A run id names a directory under the data path, Kubernetes objects and labels, so it must be a DNS-1123
    label (lowercase letters, digits and ``-``, at most 63 characters) without ``--``, which separates a run id
    from a task name in a task id. Anything else (``..``, ``/``, NUL, upper case) is refused before use.
    """
    if not isinstance(value, str) or not value:
        raise InvalidRequest("a run id is a non-empty string such as 'mnist-4k2j9x0b'")
    shown = repr(value if len(value) <= 80 else value[:80] + "...")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(f"invalid run id {shown}: longer than {MAX_ID_LENGTH} characters")
    if not _LABEL.fullmatch(value) or "--" in value:
        raise InvalidRequest(
            f"invalid run id {shown}: a run id is a DNS label (lowercase letters, digits and '-', starting and "
            "ending with a letter or digit) without '--'"
        )
    return value
