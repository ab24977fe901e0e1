"""Paths that come from ids: every path Odin writes or deletes is resolved and checked to lie in its root."""

from __future__ import annotations

from pathlib import Path

from .errors import InvalidRequest


def confined(root: Path, *parts: str) -> Path:
    """``root / parts…``, resolved, refusing anything that would leave ``root`` (``..``, absolute parts, symlinks).

    Ids are validated where they enter (``spec.ids.check_run_id``); this is the second fence, at the place
    where the filesystem is touched.
    """
    base = root.resolve()
    path = base.joinpath(*parts).resolve()
    if path == base or not path.is_relative_to(base):
        raise InvalidRequest(f"{'/'.join(parts)!r} is not a path inside {base}")
    return path
