"""Job stores: one contract (``JobStore``), several backends chosen by URL."""

from __future__ import annotations

from .base import JobStore, match_pattern

__all__ = ["JobStore", "match_pattern", "open_store"]


async def open_store(url: str) -> JobStore:
    """Open the store named by ``url`` (``sqlite:///path/odin.db``)."""
    if url.startswith("sqlite:"):
        from .sqlite import SqliteStore

        store: JobStore = SqliteStore(url.removeprefix("sqlite://").removeprefix("sqlite:"))
    else:
        raise ValueError(f"unsupported store URL {url!r}: use sqlite:///PATH")
    await store.open()
    return store
