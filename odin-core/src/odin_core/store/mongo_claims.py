"""Lease changes on MongoDB that have exactly one winner on every MongoDB-protocol server.

A compare-and-set ``update_one`` (filter on the old owner and epoch) is atomic on MongoDB, but
FerretDB v1.24's SQLite backend finds the matching documents before it updates them, outside any
transaction: four clients racing such an update on six runs had 32 extra winners in five trials
(measured). A unique index, though, is enforced by every such server. So an epoch is *claimed*
first: inserting ``{_id: "<run>:<epoch>"}`` into ``claims`` succeeds for exactly one claimant,
and only the winner then moves the run document to that epoch.

A claimant that dies between its claim and the update leaves a claim the run never reached; a
claim older than ``ABANDONED_AFTER_S`` is stepped over (the next claim takes the epoch after it),
a younger one means someone else is taking the run over right now.
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from .base import Lease

ABANDONED_AFTER_S = 60.0


async def advance(
    db: Any, expect: Lease, condition: dict[str, Any], owner: str, now: float, changes: dict[str, Any]
) -> Lease | None:
    """Move a run held at exactly ``expect`` (and matching ``condition``) to ``owner`` at a new epoch.

    ``changes`` are set on the run document with the new lease. None when the run is not held at
    ``expect`` (any more), does not match ``condition``, or another claimant wins.
    """
    held = {"_id": expect.run_id, "owner": expect.owner, "epoch": expect.epoch}
    if await db.runs.find_one({**held, **condition}, {"_id": 1}) is None:
        return None
    epoch = expect.epoch + 1
    top = await db.claims.find({"run": expect.run_id}).sort("epoch", DESCENDING).limit(1).to_list()
    if top and top[0]["epoch"] >= epoch:
        if top[0]["at"] > now - ABANDONED_AFTER_S:
            return None  # someone is taking this run over right now
        epoch = top[0]["epoch"] + 1
    try:
        await db.claims.insert_one(
            {"_id": f"{expect.run_id}:{epoch}", "run": expect.run_id, "epoch": epoch, "owner": owner, "at": now}
        )
    except DuplicateKeyError:
        return None
    done = await db.runs.update_one(held, {"$set": {"owner": owner, "epoch": epoch, "heartbeat": now, **changes}})
    return Lease(expect.run_id, owner, epoch) if done.matched_count else None
