"""Pipeline and task ids: DNS-safe names that Kubernetes objects, labels and paths can carry."""

from __future__ import annotations

import re
import secrets

from ..constants import DEFAULT_PIPELINE_NAME

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
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(SUFFIX_LENGTH))
    return f"{base}-{suffix}"
