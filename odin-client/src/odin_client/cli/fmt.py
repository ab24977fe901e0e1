"""Pure formatting helpers: times, durations, statuses and machine-readable output."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

STATUS_STYLES = {
    "DONE": "bold green",
    "SUCCEEDED": "green",
    "TERMINATED": "bold red",
    "FAILED": "red",
    "RUNNING": "cyan",
    "BUILDING": "yellow",
    "PENDING": "yellow",
    "RETRYING": "magenta",
    "WAITING": "dim",
    "SKIPPED": "dim yellow",
    "CANCELLED": "yellow",
    "NOTE": "blue",
}


def clock(ts: float | None) -> str:
    """Local wall-clock time ``HH:MM:SS`` of an epoch timestamp ("-" when unknown)."""
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def date_time(ts: float | None) -> str:
    """Local ``YYYY-MM-DD HH:MM:SS`` of an epoch timestamp ("-" when unknown)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12.3s``, ``3m04s``, ``2h05m`` ("-" when unknown)."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def span(start: float | None, end: float | None, now: float | None = None) -> str:
    """Duration from ``start`` to ``end`` (or to ``now`` while it is still going)."""
    if start is None:
        return "-"
    stop = end if end is not None else (now if now is not None else time.time())
    return duration(stop - start)


def age(ts: float | None, now: float | None = None) -> str:
    """How long ago ``ts`` was: ``12s ago``, ``3m ago``, ``5h ago``, ``2d ago``; a date after a week."""
    if not ts:
        return "-"
    seconds = max((now if now is not None else time.time()) - ts, 0.0)
    if seconds < 60:
        return f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)}d ago"
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def compact(value: Any) -> str:
    """A value on one line: floats to 4 decimals, strings as they are, the rest as JSON."""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else "nan"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def styled(status: str) -> str:
    """Rich markup for a status word, coloured by meaning."""
    style = STATUS_STYLES.get(status)
    return f"[{style}]{status}[/]" if style else status


def plain(data: Any) -> Any:
    """JSON-compatible copy of ``data`` (tuples become lists, anything odd becomes a string)."""
    return json.loads(json.dumps(data, default=str))


def dump(data: Any, fmt: str) -> str:
    """``data`` as JSON or YAML text."""
    if fmt == "json":
        return json.dumps(plain(data), indent=2)
    return yaml.safe_dump(plain(data), sort_keys=False, allow_unicode=True, width=120).rstrip("\n")
