"""Leases and stop requests of the MongoDB store, written so that every server gets them right.

MongoDB updates one document atomically; FerretDB v1.24 on SQLite does not: it reads the matching
documents, then writes them back whole, outside any transaction (measured: four clients racing a
compare-and-set ``update_one`` on six runs had 32 extra winners in five trials, and a heartbeat
racing a commit on the same document lost the commit's changes). So, on both:

* **No two processes write one document concurrently in normal operation.** The run document is
  written only by its lease holder (commits); heartbeats go to ``beats`` (one document per run:
  owner, heartbeat, active), stop requests to ``stops`` (inserted once: the first request stands).
* **Every change of epoch is claimed first**: inserting ``{_id: "<run>:<epoch>"}`` into ``claims``
  succeeds for exactly one claimant (a unique index, which every MongoDB-protocol server enforces),
  and only the winner then moves the run document to that epoch. A claimant that dies between its
  claim and the update leaves a claim the run never reached; one older than ``ABANDONED_AFTER_S`` is
  stepped over, a younger one means another core is taking the run over right now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from ..model import RunStatus
from .base import Lease, LeaseInfo
from .common import Retrying

ABANDONED_AFTER_S = 60.0
ACTIVE = [s.value for s in RunStatus if not s.is_terminal]
ENDED = [s.value for s in RunStatus if s.is_terminal]


def beat_doc(run_id: str, owner: str, now: float, submitted: float) -> dict[str, Any]:
    return {"_id": run_id, "owner": owner, "heartbeat": now, "active": True, "submitted": submitted}


class MongoLeases:
    """The lease half of ``MongoStore`` (which provides ``db``, ``retry`` and ``_flush_leftovers``)."""

    retry: Retrying

    @property
    def db(self) -> Any:
        raise NotImplementedError

    async def _flush_leftovers(self, run_ids: Sequence[str]) -> None:
        raise NotImplementedError

    async def _advance(
        self, expect: Lease, condition: dict[str, Any], owner: str, now: float, **changes: Any
    ) -> Lease | None:
        """Move a run held at exactly ``expect`` (whose document matches ``condition``) to ``owner`` at a new epoch."""
        held = {"_id": expect.run_id, "owner": expect.owner, "epoch": expect.epoch}
        doc = await self.db.runs.find_one({**held, **condition}, {"submitted": 1})
        if doc is None:
            return None
        epoch = expect.epoch + 1
        top = await self.db.claims.find({"run": expect.run_id}).sort("epoch", DESCENDING).limit(1).to_list()
        if top and top[0]["epoch"] >= epoch:
            if top[0]["at"] > now - ABANDONED_AFTER_S:
                return None  # another core is taking this run over right now
            epoch = top[0]["epoch"] + 1
        try:
            await self.db.claims.insert_one(
                {"_id": f"{expect.run_id}:{epoch}", "run": expect.run_id, "epoch": epoch, "owner": owner, "at": now}
            )
        except DuplicateKeyError:
            return None
        # the heartbeat first: once the run document names the new owner, its heartbeat is fresh
        await self.db.beats.replace_one(
            {"_id": expect.run_id}, beat_doc(expect.run_id, owner, now, doc["submitted"]), upsert=True
        )
        done = await self.db.runs.update_one(held, {"$set": {"owner": owner, "epoch": epoch, **changes}})
        return Lease(expect.run_id, owner, epoch) if done.matched_count else None

    async def _stops(self, run_ids: Sequence[str]) -> dict[str, str]:
        if not run_ids:
            return {}
        found = await self.db.stops.find({"_id": {"$in": list(run_ids)}}).to_list()
        return {d["_id"]: d["reason"] for d in found}

    async def renew(self, owner: str, now: float) -> dict[str, str | None]:
        async def op() -> dict[str, str | None]:
            mine = {"owner": owner, "active": True}
            await self.db.beats.update_many(mine, {"$set": {"heartbeat": now}})
            held = [d["_id"] for d in await self.db.beats.find(mine, {"_id": 1}).to_list()]
            stops = await self._stops(held)
            return {run_id: stops.get(run_id) for run_id in held}

        result: dict[str, str | None] = await self.retry.write(op)
        return result

    async def claim_stale(self, owner: str, *, now: float, stale_before: float, limit: int = 100) -> list[Lease]:
        async def op() -> list[Lease]:
            quiet = (
                self.db.beats.find({"active": True, "heartbeat": {"$lt": stale_before}, "owner": {"$ne": owner}})
                .sort([("submitted", ASCENDING), ("_id", ASCENDING)])
                .limit(limit)
            )
            won = []
            for beat in await quiet.to_list():
                doc = await self.db.runs.find_one({"_id": beat["_id"]}, {"owner": 1, "epoch": 1, "status": 1})
                if doc is None or doc["status"] not in ACTIVE:
                    await self.db.beats.update_one({"_id": beat["_id"]}, {"$set": {"active": False}})
                    continue  # the run ended (or went) without its beat knowing: not a run to take over
                if doc["owner"] != beat["owner"]:
                    continue  # taken over a moment ago: the quiet heartbeat was its previous owner's
                expect = Lease(beat["_id"], doc["owner"], doc["epoch"])
                lease = await self._advance(expect, {"status": {"$in": ACTIVE}}, owner, now)
                if lease is not None:
                    won.append(lease)
            return won

        leases: list[Lease] = await self.retry.write(op)
        await self._flush_leftovers([lease.run_id for lease in leases])
        return leases

    async def take_over(self, expect: Lease, owner: str, now: float) -> Lease | None:
        lease = await self.retry.write(lambda: self._advance(expect, {"status": {"$in": ACTIVE}}, owner, now))
        if lease is not None:
            await self._flush_leftovers([lease.run_id])
        return lease

    async def lease_of(self, run_id: str) -> LeaseInfo | None:
        async def op() -> LeaseInfo | None:
            doc = await self.db.runs.find_one({"_id": run_id}, {"owner": 1, "epoch": 1})
            if doc is None:
                return None
            beat = await self.db.beats.find_one({"_id": run_id}, {"heartbeat": 1})
            return LeaseInfo(Lease(run_id, doc["owner"], doc["epoch"]), beat["heartbeat"] if beat else 0.0)

        info: LeaseInfo | None = await self.retry.read(op)
        return info

    async def release(self, owner: str, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self.retry.write(
                lambda: self.db.beats.update_many(
                    {"_id": {"$in": list(run_ids)}, "owner": owner}, {"$set": {"heartbeat": 0.0}}
                )
            )

    async def reopen_run(self, run_id: str, owner: str, now: float) -> Lease | None:
        ended = {"status": {"$in": ENDED}}

        async def op() -> Lease | None:
            doc = await self.db.runs.find_one({"_id": run_id, **ended}, {"owner": 1, "epoch": 1})
            if doc is None:
                return None
            await self.db.stops.delete_one({"_id": run_id})
            expect = Lease(run_id, doc["owner"], doc["epoch"])
            return await self._advance(expect, ended, owner, now, status=RunStatus.BUILDING.value)

        lease: Lease | None = await self.retry.write(op)
        if lease is not None:
            await self._flush_leftovers([run_id])
        return lease

    async def request_stop(self, run_id: str, reason: str) -> bool:
        async def op() -> bool:
            if await self.db.runs.find_one({"_id": run_id, "status": {"$in": ACTIVE}}, {"_id": 1}) is None:
                return False
            try:
                await self.db.stops.insert_one({"_id": run_id, "reason": reason})
            except DuplicateKeyError:
                return False  # the first request stands
            return True

        done: bool = await self.retry.write(op)
        return done
