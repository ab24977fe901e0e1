"""The job store on MongoDB (PyMongo's native async client): several cores sharing one database.

Atomic without multi-document transactions (which the server we test on, FerretDB, lacks):

* **One document per run** holds the run record, the lease (``owner``, ``epoch``, ``heartbeat``),
  the stop request, its task records (``tasks``: name -> record, ``order``: names in spec order)
  and an **outbox** of events not yet copied to the ``events`` collection. A commit is one
  ``update_one`` whose filter is the lease (``owner``, ``epoch``) and whose update sets the run,
  the tasks and the new events at once: it either lands whole or not at all.
* Events are then copied to ``events`` (unique ``(run, seq)``: a repeated copy is harmless) and
  removed from the outbox. Readers merge the outbox (read first) with the collection, so an event
  is visible from the moment its commit lands, even if the writer dies before copying it; whoever
  takes the run over finishes the copy.
* The instantiated spec lives in ``specs`` (it can be large and never changes).

Only features a real MongoDB has too: no transactions, change streams, ``$expr``, ``$lookup``,
TTL or partial indexes; regexes as ``$regex`` strings. A run's tasks share its 16 MB document,
which bounds a run to roughly 20,000 tasks on this backend (PostgreSQL has no such bound).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError

from ..errors import Conflict, UpstreamError
from ..model import Event, RunRecord, RunStatus, TaskRecord
from .base import JobStore, Lease, LeaseInfo, LeaseLost, pattern_regex
from .common import Retrying, StoreSettings, no_nul, present_run, read_password, redact
from .mongo_claims import advance

DEFAULT_DATABASE = "odin"
DUPLICATE_KEY = 11000
_ACTIVE = [s.value for s in RunStatus if not s.is_terminal]
_ENDED = [s.value for s in RunStatus if s.is_terminal]
_RUN_FIELDS = {"record": 1, "stop": 1, "owner": 1}

TRANSIENT: tuple[type[BaseException], ...] = (ConnectionFailure,)  # AutoReconnect, timeouts, server selection

_INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    "runs": [
        [("submitted", DESCENDING), ("run_id", ASCENDING)],
        [("status", ASCENDING), ("submitted", DESCENDING)],
        [("job", ASCENDING), ("submitted", DESCENDING)],
        [("name", ASCENDING)],
        [("owner", ASCENDING), ("status", ASCENDING)],
        [("status", ASCENDING), ("heartbeat", ASCENDING)],
        [("status", ASCENDING), ("completed", ASCENDING)],
    ],
    "events": [[("run", ASCENDING), ("seq", ASCENDING)]],  # unique, see open()
    "claims": [[("run", ASCENDING), ("epoch", DESCENDING)]],
}


def key(name: str) -> str:
    """A task name as a document key (MongoDB keys may not hold ``.`` or start with ``$``)."""
    return name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def _run(doc: Mapping[str, Any]) -> RunRecord:
    return present_run(doc["record"], doc.get("stop"), doc.get("owner", ""))


def _run_fields(run: RunRecord) -> dict[str, Any]:
    return {
        "status": run.status.value,
        "completed": run.completed,
        "record": no_nul(run.to_record()),
    }


def _event_doc(e: Mapping[str, Any]) -> dict[str, Any]:
    return {"_id": f"{e['run_id']}:{e['seq']}", "run": e["run_id"], "seq": e["seq"], "record": dict(e)}


class MongoStore(JobStore):
    def __init__(self, url: str, settings: StoreSettings | None = None) -> None:
        self.url = url
        self.settings = settings or StoreSettings()
        self.retry = Retrying(f"MongoDB store {redact(url)}", self.settings, TRANSIENT)
        self._client: AsyncMongoClient | None = None
        self._db: Any = None

    @property
    def db(self) -> Any:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        timeout_ms = int(self.settings.connect_timeout_s * 1000)
        password = read_password(self.settings)
        extra: dict[str, Any] = {"password": password} if password is not None else {}
        try:
            self._client = AsyncMongoClient(
                self.url,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                maxPoolSize=self.settings.pool_size,
                retryWrites=False,  # retried here, idempotently; the server we test on has no sessions
                tz_aware=False,
                **extra,
            )
            self._db = self._client.get_default_database(DEFAULT_DATABASE)
            await self._db.command("ping")
            for name, indexes in _INDEXES.items():
                for fields in indexes:
                    await self._db[name].create_index(fields, unique=name == "events")
        except (PyMongoError, ValueError, TypeError) as e:
            await self.close()
            raise UpstreamError(f"cannot open the MongoDB store {redact(self.url)}: {str(e).split(',')[0]}") from e

    async def close(self) -> None:
        if self._client is not None:
            client, self._client, self._db = self._client, None, None
            await client.close()

    # -- writes by the driving engine ----------------------------------------------------------

    async def create_run(
        self,
        run: RunRecord,
        spec: dict[str, Any],
        tasks: Sequence[TaskRecord],
        events: Sequence[Event],
        *,
        now: float,
    ) -> Lease | None:
        doc = {
            "_id": run.run_id,
            "run_id": run.run_id,
            "job": run.job,
            "name": run.name,
            "submitted": run.submitted,
            **_run_fields(run),
            "owner": run.owner,
            "epoch": 1,
            "heartbeat": now,
            "stop": None,
            "order": [t.name for t in tasks],
            "tasks": {key(t.name): no_nul(t.to_record()) for t in tasks},
            "outbox": {str(e.seq): no_nul(e.to_record()) for e in events},
            "seq": max((e.seq for e in events), default=0),
        }
        tries = 0

        async def op() -> Lease | None:
            nonlocal tries
            tries += 1
            await self.db.specs.replace_one({"_id": run.run_id}, {"_id": run.run_id, "spec": no_nul(spec)}, upsert=True)
            try:
                await self.db.runs.insert_one(dict(doc))
            except DuplicateKeyError:
                if tries == 1:
                    return None
                mine = await self.db.runs.find_one(
                    {"_id": run.run_id, "owner": run.owner, "epoch": 1}, {"submitted": 1}
                )
                if mine is None or mine.get("submitted") != run.submitted:
                    return None  # not the row our first try wrote
            # events left by a deleted run of the same id (ours are still in the outbox)
            await self.db.events.delete_many({"run": run.run_id})
            return Lease(run.run_id, run.owner, 1)

        lease = await self.retry.write(op)
        if lease is not None:
            await self._flush(run.run_id, [e.to_record() for e in events])
        return lease

    async def commit(
        self, lease: Lease, run: RunRecord | None, tasks: Sequence[TaskRecord] = (), events: Sequence[Event] = ()
    ) -> None:
        fields: dict[str, Any] = _run_fields(run) if run is not None else {}
        for t in tasks:
            fields[f"tasks.{key(t.name)}"] = no_nul(t.to_record())
        records = [no_nul(e.to_record()) for e in events]
        for r in records:
            fields[f"outbox.{r['seq']}"] = r
        where: dict[str, Any] = {"_id": lease.run_id, "owner": lease.owner, "epoch": lease.epoch}
        if records:
            fields["seq"] = max(r["seq"] for r in records)
            where["seq"] = {"$lt": min(r["seq"] for r in records)}
        if not fields:
            fields["epoch"] = lease.epoch  # nothing to write: still check the lease

        async def op() -> None:
            done = await self.db.runs.update_one(where, {"$set": fields})
            if done.matched_count == 0:
                await self._refused(lease, records)

        await self.retry.write(op)
        await self._flush(lease.run_id, records)

    async def _refused(self, lease: Lease, records: list[dict[str, Any]]) -> None:
        """A commit matched nothing: the lease is gone, a sequence number is taken, or (a retry) it had landed."""
        doc = await self.db.runs.find_one({"_id": lease.run_id}, {"owner": 1, "epoch": 1, "seq": 1, "outbox": 1})
        if doc is None or (doc["owner"], doc["epoch"]) != (lease.owner, lease.epoch) or not records:
            raise LeaseLost(lease)
        stored = {e["seq"]: e for e in await self._events_after(lease.run_id, min(r["seq"] for r in records) - 1, doc)}
        if any(stored.get(r["seq"]) != r for r in records):
            seq = min(r["seq"] for r in records)
            raise Conflict(f"run {lease.run_id!r} already has an event {seq}", run_id=lease.run_id, seq=seq)

    async def _flush(self, run_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Copy committed events from a run's outbox to ``events``, then drop them from the outbox."""
        if not records:
            return

        async def op() -> None:
            try:
                await self.db.events.insert_many([_event_doc(r) for r in records], ordered=False)
            except BulkWriteError as e:
                if any(err.get("code") != DUPLICATE_KEY for err in e.details.get("writeErrors", [])):
                    raise
            await self.db.runs.update_one({"_id": run_id}, {"$unset": {f"outbox.{r['seq']}": "" for r in records}})

        await self.retry.write(op)

    async def _flush_leftovers(self, run_ids: Sequence[str]) -> None:
        """Finish the event copies a previous owner did not (it died between its commit and the copy)."""
        if not run_ids:
            return
        docs = await self.retry.write(
            lambda: self.db.runs.find({"_id": {"$in": list(run_ids)}, "outbox": {"$ne": {}}}, {"outbox": 1}).to_list()
        )
        for doc in docs:
            if doc.get("outbox"):
                await self._flush(doc["_id"], list(doc["outbox"].values()))

    # -- leases --------------------------------------------------------------------------------

    async def renew(self, owner: str, now: float) -> dict[str, str | None]:
        async def op() -> dict[str, str | None]:
            which = {"owner": owner, "status": {"$in": _ACTIVE}}
            await self.db.runs.update_many(which, {"$set": {"heartbeat": now}})
            return {d["_id"]: d.get("stop") async for d in self.db.runs.find(which, {"stop": 1})}

        return await self.retry.write(op)

    async def claim_stale(self, owner: str, *, now: float, stale_before: float, limit: int = 100) -> list[Lease]:
        stale: dict[str, Any] = {"status": {"$in": _ACTIVE}, "heartbeat": {"$lt": stale_before}}

        async def op() -> list[Lease]:
            found = (
                self.db.runs.find({**stale, "owner": {"$ne": owner}}, {"owner": 1, "epoch": 1})
                .sort([("submitted", ASCENDING), ("run_id", ASCENDING)])
                .limit(limit)
            )
            won = []
            for doc in await found.to_list():
                lease = await advance(self.db, Lease(doc["_id"], doc["owner"], doc["epoch"]), stale, owner, now, {})
                if lease is not None:
                    won.append(lease)
            return won

        leases = await self.retry.write(op)
        await self._flush_leftovers([lease.run_id for lease in leases])
        return leases

    async def take_over(self, expect: Lease, owner: str, now: float) -> Lease | None:
        active = {"status": {"$in": _ACTIVE}}
        lease = await self.retry.write(lambda: advance(self.db, expect, active, owner, now, {}))
        if lease is not None:
            await self._flush_leftovers([lease.run_id])
        return lease

    async def lease_of(self, run_id: str) -> LeaseInfo | None:
        doc = await self.retry.read(
            lambda: self.db.runs.find_one({"_id": run_id}, {"owner": 1, "epoch": 1, "heartbeat": 1})
        )
        return LeaseInfo(Lease(run_id, doc["owner"], doc["epoch"]), doc["heartbeat"]) if doc else None

    async def release(self, owner: str, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self.retry.write(
                lambda: self.db.runs.update_many(
                    {"_id": {"$in": list(run_ids)}, "owner": owner}, {"$set": {"heartbeat": 0.0}}
                )
            )

    async def reopen_run(self, run_id: str, owner: str, now: float) -> Lease | None:
        ended = {"status": {"$in": _ENDED}}
        reopened = {"status": RunStatus.BUILDING.value, "stop": None}

        async def op() -> Lease | None:
            doc = await self.db.runs.find_one({"_id": run_id, **ended}, {"owner": 1, "epoch": 1})
            if doc is None:
                return None
            return await advance(self.db, Lease(run_id, doc["owner"], doc["epoch"]), ended, owner, now, reopened)

        lease = await self.retry.write(op)
        if lease is not None:
            await self._flush_leftovers([run_id])
        return lease

    # -- writes by anyone --------------------------------------------------------------------------

    async def request_stop(self, run_id: str, reason: str) -> bool:
        done = await self.retry.write(
            lambda: self.db.runs.update_one(
                {"_id": run_id, "stop": None, "status": {"$in": _ACTIVE}}, {"$set": {"stop": no_nul(reason)}}
            )
        )
        return bool(done.modified_count)

    async def delete_run(self, run_id: str) -> bool:
        async def op() -> bool:
            done = await self.db.runs.delete_one({"_id": run_id})
            await self.db.events.delete_many({"run": run_id})
            await self.db.specs.delete_one({"_id": run_id})
            await self.db.claims.delete_many({"run": run_id})
            return bool(done.deleted_count)

        return await self.retry.write(op)

    async def purge_ended(self, before: float, *, limit: int = 1000) -> list[str]:
        """Delete up to ``limit`` runs that ended before ``before`` (oldest first); returns their ids."""
        cursor = self.db.runs.find({"status": {"$in": _ENDED}, "completed": {"$lt": before}}, {"_id": 1})
        ids = await self.retry.read(lambda: cursor.sort("completed", ASCENDING).limit(limit).to_list())
        return [d["_id"] for d in ids if await self.delete_run(d["_id"])]

    # -- reads ---------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        doc = await self.retry.read(lambda: self.db.runs.find_one({"_id": run_id}, _RUN_FIELDS))
        return _run(doc) if doc else None

    async def get_spec(self, run_id: str) -> dict[str, Any] | None:
        if await self.retry.read(lambda: self.db.runs.find_one({"_id": run_id}, {"_id": 1})) is None:
            return None
        doc = await self.retry.read(lambda: self.db.specs.find_one({"_id": run_id}))
        return dict(doc["spec"]) if doc else None

    async def get_tasks(self, run_id: str) -> list[TaskRecord]:
        doc = await self.retry.read(lambda: self.db.runs.find_one({"_id": run_id}, {"order": 1, "tasks": 1}))
        if doc is None:
            return []
        return [TaskRecord.from_record(doc["tasks"][key(n)]) for n in doc["order"]]

    async def list_runs(
        self, *, pattern: str = "", active_only: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[RunRecord]:
        where: dict[str, Any] = {}
        if active_only:
            where["status"] = {"$in": _ACTIVE}
        if pattern:
            regex = {"$regex": pattern_regex(pattern), "$options": ""}
            where["$or"] = [{"run_id": regex}, {"job": regex}, {"name": regex}]

        async def op() -> list[dict[str, Any]]:
            cursor = self.db.runs.find(where, _RUN_FIELDS).sort([("submitted", DESCENDING), ("run_id", ASCENDING)])
            if offset:
                cursor = cursor.skip(offset)
            if limit is not None:
                if limit <= 0:
                    return []
                cursor = cursor.limit(limit)
            return await cursor.to_list()

        return [_run(d) for d in await self.retry.read(op)]

    async def _events_after(
        self, run_id: str, after_seq: int, doc: Mapping[str, Any] | None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Stored events after ``after_seq`` merged with those still in the outbox of ``doc`` (read first)."""
        outbox = [e for e in (doc or {}).get("outbox", {}).values() if e["seq"] > after_seq]
        cursor = self.db.events.find({"run": run_id, "seq": {"$gt": after_seq}}, {"record": 1}).sort("seq", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        merged = {d["record"]["seq"]: d["record"] for d in await cursor.to_list()}
        merged.update((e["seq"], e) for e in outbox)
        return [merged[s] for s in sorted(merged)][:limit]

    async def events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        if limit is not None and limit <= 0:
            return []

        async def op() -> list[dict[str, Any]]:
            doc = await self.db.runs.find_one({"_id": run_id}, {"outbox": 1})
            return await self._events_after(run_id, after_seq, doc, limit)

        return [Event.from_record(r) for r in await self.retry.read(op)]

    async def last_seq(self, run_id: str) -> int:
        doc = await self.retry.read(lambda: self.db.runs.find_one({"_id": run_id}, {"seq": 1}))
        return int(doc.get("seq", 0)) if doc else 0
