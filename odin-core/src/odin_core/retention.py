"""Retention: a server purges runs that ended longer ago than ``StoreSettings.retention_s``.

Each expired run is cleaned up as ``odin cleanup --db --fs`` would: its executor's objects, its
files under the data path, then its records. The store finds the expired runs in the database
(``JobStore.ended_before``, an index on the end time), a page at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from .api import Odin
from .errors import OdinError
from .tasks import TaskSet

log = logging.getLogger("odin.retention")

PAGE = 100


async def purge_expired(odin: Odin, retention_s: float, *, now: float | None = None) -> list[str]:
    """Clean up every run that ended before ``now - retention_s``; returns their ids."""
    before = (time.time() if now is None else now) - retention_s
    purged: list[str] = []
    while ids := [i for i in await odin.store.ended_before(before, limit=PAGE) if i not in purged]:
        for run_id in ids:
            try:
                await odin.cleanup(run_id, db=True, fs=True)
            except OdinError as e:  # reopened meanwhile, or removed by someone else: not ours to purge now
                log.info("retention: run %s not purged: %s", run_id, e)
            purged.append(run_id)
    if purged:
        log.info("retention: purged %d run(s) that ended over %.0fs ago", len(purged), retention_s)
    return purged


@contextlib.asynccontextmanager
async def keep_for(odin: Odin, retention_s: float | None) -> AsyncIterator[None]:
    """While inside, purge expired runs now and then (every tenth of the retention, at most hourly)."""
    if retention_s is None:
        yield
        return
    every_s = min(max(retention_s / 10, 1.0), 3600.0)
    tasks = TaskSet("retention")

    async def loop() -> None:
        while True:
            try:
                await purge_expired(odin, retention_s)
            except Exception:
                log.exception("retention: purge failed; trying again in %.0fs", every_s)
            await asyncio.sleep(every_s)

    tasks.spawn(loop(), "purge")
    try:
        yield
    finally:
        await tasks.close()
