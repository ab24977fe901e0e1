"""Job and file names from outside, validated: nothing they name can leave the job inside the repository.

Pure. A job id in a URL writes ``/`` as ``__`` (``team__train`` is ``team/train``). Refused: empty names, ``.`` and
``..``, absolute paths, hidden components (``.git``, ``.odin``), backslashes and control characters, and lengths
past the limits.
"""

from __future__ import annotations

import re

from ..errors import InvalidRequest

COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
FILE_COMPONENT = re.compile(r"^[^/\\\x00-\x1f\x7f]+$")
MAX_COMPONENT = 128
MAX_JOB = 256
MAX_FILE = 512
MAX_DEPTH = 8


def job_path(job_id: object) -> str:
    """``team__train`` or ``team/train`` → ``team/train``; InvalidRequest saying what is wrong otherwise."""
    if not isinstance(job_id, str) or not job_id.strip():
        raise InvalidRequest("a job name is needed, e.g. `train` or `team__train` for team/train")
    name = job_id.strip().replace("__", "/")
    if name.startswith("/") or len(name) > MAX_JOB:
        raise InvalidRequest(f"job {job_id!r}: a job is a relative path of at most {MAX_JOB} characters")
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        raise InvalidRequest(f"job {job_id!r}: at most {MAX_DEPTH} levels of folders")
    for part in parts:
        if not COMPONENT.match(part) or part in (".", "..") or len(part) > MAX_COMPONENT or "__" in part:
            raise InvalidRequest(
                f"job {job_id!r}: {part!r} is not allowed (letters, digits, '.', '_', '+', '-'; no leading '.')"
            )
    return name


def job_id(path: str) -> str:
    """The URL form of a job path (``team/train`` → ``team__train``)."""
    return path.replace("/", "__")


def file_path(name: object) -> str:
    """A file name inside a job (``configs/a.yml``), normalised; InvalidRequest for one that could leave it."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("a file name is needed, e.g. main.yml")
    text = name.strip()
    while text.startswith("./"):
        text = text[2:]
    if text.startswith("/") or "\\" in text or len(text) > MAX_FILE:
        raise InvalidRequest(f"file {name!r}: a file is a relative path of at most {MAX_FILE} characters")
    parts = text.split("/")
    if len(parts) > MAX_DEPTH:
        raise InvalidRequest(f"file {name!r}: at most {MAX_DEPTH} levels of folders")
    for part in parts:
        if part in ("", ".", "..") or part.startswith(".") or not FILE_COMPONENT.match(part):
            raise InvalidRequest(f"file {name!r}: {part!r} is not allowed (no '..', no hidden or empty parts)")
        if len(part) > MAX_COMPONENT:
            raise InvalidRequest(f"file {name!r}: a part is at most {MAX_COMPONENT} characters")
    return "/".join(parts)
