"""Job stores: one contract (``JobStore``), three backends chosen by URL.

``sqlite:///PATH`` (embedded, the default), ``postgresql://USER@HOST:PORT/DB`` and
``mongodb://HOST:PORT/DB``. A password belongs in a file (``StoreSettings.password_file``), not in
the URL: URLs show up in process lists and logs.
"""

from __future__ import annotations

from ..settings import StoreSettings
from .base import JobStore, Lease, LeaseInfo, LeaseLost, match_pattern
from .common import redact

__all__ = [
    "JobStore",
    "Lease",
    "LeaseInfo",
    "LeaseLost",
    "StoreSettings",
    "make_store",
    "match_pattern",
    "migrate_store",
    "open_store",
    "redact",
]


def make_store(url: str, settings: StoreSettings | None = None) -> JobStore:
    """The store named by ``url``, not opened yet (the backend's client library is imported only now)."""
    from ..errors import InvalidRequest

    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from .sqlite import SqliteStore

        path = url.removeprefix("sqlite://").removeprefix("sqlite:")
        return SqliteStore("/" + path.lstrip("/") if path.startswith("//") else path)  # sqlite:////abs too
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(url, settings)
    if scheme in ("mongodb", "mongodb+srv"):
        from .mongo import MongoStore

        return MongoStore(url, settings)
    raise InvalidRequest(
        f"unsupported store URL {redact(url)!r}: use sqlite:///PATH, postgresql://HOST/DB or mongodb://HOST/DB"
    )


async def open_store(url: str, settings: StoreSettings | None = None) -> JobStore:
    """Open the store named by ``url``; an unreachable one raises ``UpstreamError`` with one clear message."""
    store = make_store(url, settings)
    await store.open()
    return store


async def migrate_store(url: str, settings: StoreSettings | None = None) -> str:
    """Open the store (which applies its migrations) and say where its schema stands, for ``odin-core migrate``."""
    store = await open_store(url, settings)
    try:
        return f"{redact(url)}: {store.schema}"
    finally:
        await store.close()
