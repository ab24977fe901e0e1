"""The job store on MongoDB (PyMongo's native async client): several cores sharing one database.

Atomic without multi-document transactions (which the server we test on, FerretDB, lacks):

* **One document per run** holds the run record, the fence of its lease (``owner``, ``epoch``),
  its task records (``tasks``: name -> record, ``order``: names in spec order) and an **outbox** of
  events not yet copied to the ``events`` collection. A commit is one ``update_one`` whose filter is
  the lease and whose update sets the run, the tasks and the new events at once: it lands whole or
  not at all. Only the lease holder writes this document (see ``mongo_leases`` for why that matters).
* Events are then copied to ``events`` (unique ``(run, seq)``: a repeated copy is harmless) and
  removed from the outbox. Readers merge the outbox (read first) with the collection, so an event
  is visible from the moment its commit lands, even if the writer dies before copying it; whoever
  takes the run over finishes the copy.
* Records are stored as JSON text inside the documents: a record's own keys (task outputs, args)
  are the user's and may hold ``.`` or ``$``, which document keys may not; nothing queries inside them.
* The instantiated spec lives in ``specs`` (it can be large and never changes); heartbeats, stop
  requests and epoch claims in ``beats``, ``stops`` and ``claims`` (``mongo_leases``).

Only features a real MongoDB has too: no transactions, change streams, ``$expr``, ``$lookup``,
TTL or partial indexes; regexes as ``$regex`` strings. A run's tasks share its 16 MB document,
which bounds a run to roughly 20,000 tasks on this backend (PostgreSQL has no such bound).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, OperationFailure, PyMongoError

from ..errors import Conflict, UpstreamError
from ..model import Event, RunRecord, TaskRecord
from .base import JobStore, Lease, LeaseLost, pattern_regex
from .common import Retrying, StoreSettings, dumps, present_run, read_password, redact
from .mongo_leases import ACTIVE, ENDED, MongoLeases, beat_doc

DEFAULT_DATABASE = "odin"
FEED_POLL_S = 0.2
"""How often ``follow`` looks for events committed by other processes."""
FEED_REMEMBER = 10_000
"""Runs whose last sequence number ``follow`` keeps in mind."""
FEED_SLACK_S = 5.0
"""How far back ``follow`` looks again each time (clocks of the writing cores may differ this much)."""
DUPLICATE_KEY = 11000
_RUN_FIELDS = {"record": 1, "owner": 1, "status": 1}

TRANSIENT: tuple[type[BaseException], ...] = (ConnectionFailure,)  # AutoReconnect, timeouts, server selection
_FULL_DISK = ("database or disk is full", "no space left on device", "disk quota exceeded")
"""How a server says that its disk is full: FerretDB passes its backend's error on (SQLite's SQLITE_FULL, the
kernel's ENOSPC through PostgreSQL) as an InternalError with that text; MongoDB itself stops, and is unreachable."""


def out_of_space(e: BaseException) -> bool:
    """A server refusing a write for lack of disk: waited out like an unreachable one (runs pause, then go on)."""
    if not isinstance(e, OperationFailure):
        return False
    text = str((e.details or {}).get("errmsg") or e).lower()
    return any(words in text for words in _FULL_DISK)


_INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    "runs": [
        [("submitted", DESCENDING), ("run_id", ASCENDING)],
        [("status", ASCENDING), ("submitted", DESCENDING)],
        [("job", ASCENDING), ("submitted", DESCENDING)],
        [("name", ASCENDING)],
        [("status", ASCENDING), ("completed", ASCENDING)],
        [("touched", ASCENDING)],
    ],
    "beats": [[("owner", ASCENDING), ("active", ASCENDING)], [("active", ASCENDING), ("heartbeat", ASCENDING)]],
    "events": [[("run", ASCENDING), ("seq", ASCENDING)]],  # unique, see open()
    "claims": [[("run", ASCENDING), ("epoch", DESCENDING)]],
}


def key(name: str) -> str:
    """A task name as a document key (MongoDB keys may not hold ``.`` or start with ``$``)."""
    return name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def _run(doc: Mapping[str, Any], stops: Mapping[str, str]) -> RunRecord:
    return present_run(json.loads(doc["record"]), stops.get(doc["_id"]), doc.get("owner", ""))


def _run_fields(run: RunRecord) -> dict[str, Any]:
    return {
        "status": run.status.value,
        "completed": run.completed,
        "record": dumps(run.to_record()),
    }


def _event_doc(e: Mapping[str, Any]) -> dict[str, Any]:
    return {"_id": f"{e['run_id']}:{e['seq']}", "run": e["run_id"], "seq": e["seq"], "record": dumps(e)}


class MongoStore(MongoLeases, JobStore):
    def __init__(self, url: str, settings: StoreSettings | None = None) -> None:
        self.url = url
        self.settings = settings or StoreSettings()
        self.retry = Retrying(f"MongoDB store {redact(url)}", self.settings, TRANSIENT, out_of_space)
        self._client: AsyncMongoClient | None = None
        self._db: Any = None
        self._copied: dict[str, list[int]] = {}  # run -> events copied to ``events``, still in its outbox

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
            "order": [t.name for t in tasks],
            "tasks": {key(t.name): dumps(t.to_record()) for t in tasks},
            "outbox": {str(e.seq): dumps(e.to_record()) for e in events},
            "seq": max((e.seq for e in events), default=0),
            "touched": time.time(),
        }
        tries = 0

        async def op() -> Lease | None:
            nonlocal tries
            tries += 1
            await self.db.specs.replace_one({"_id": run.run_id}, {"_id": run.run_id, "spec": dumps(spec)}, upsert=True)
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
            await self.db.beats.replace_one(
                {"_id": run.run_id}, beat_doc(run.run_id, run.owner, now, run.submitted), upsert=True
            )
            await self.db.stops.delete_one({"_id": run.run_id})  # left by a deleted run of the same id
            await self.db.events.delete_many({"run": run.run_id})  # the same (ours are still in the outbox)
            return Lease(run.run_id, run.owner, 1)

        lease = await self.retry.write(op)
        if lease is not None:
            await self._flush(run.run_id, [e.to_record() for e in events], tidy=False)
        return lease

    async def commit(
        self, lease: Lease, run: RunRecord | None, tasks: Sequence[TaskRecord] = (), events: Sequence[Event] = ()
    ) -> None:
        # several round trips: a cancelled caller lets them finish rather than leave the connection mid-way
        await asyncio.shield(self._commit(lease, run, tasks, events))

    async def _commit(
        self, lease: Lease, run: RunRecord | None, tasks: Sequence[TaskRecord], events: Sequence[Event]
    ) -> None:
        fields: dict[str, Any] = _run_fields(run) if run is not None else {}
        for t in tasks:
            fields[f"tasks.{key(t.name)}"] = dumps(t.to_record())
        records = [json.loads(dumps(e.to_record())) for e in events]  # as they read back
        for r in records:
            fields[f"outbox.{r['seq']}"] = dumps(r)
        where: dict[str, Any] = {"_id": lease.run_id, "owner": lease.owner, "epoch": lease.epoch}
        if records:
            fields["seq"] = max(r["seq"] for r in records)
            fields["touched"] = time.time()  # what followers on other cores poll for
            where["seq"] = {"$lt": min(r["seq"] for r in records)}
        if not fields:
            fields["epoch"] = lease.epoch  # nothing to write: still check the lease

        update: dict[str, Any] = {"$set": fields}
        copied = self._copied.pop(lease.run_id, [])  # the previous commit's events, in ``events`` by now
        setting = {r["seq"] for r in records}  # a number set again (a duplicate: refused below) is not also unset
        if unset := [seq for seq in copied if seq not in setting]:
            update["$unset"] = {f"outbox.{seq}": "" for seq in unset}

        async def op() -> None:
            done = await self.db.runs.update_one(where, update)
            if done.matched_count == 0:
                if copied:  # not dropped from the outbox this time: the next commit does it
                    self._copied.setdefault(lease.run_id, []).extend(copied)
                await self._refused(lease, records)

        await self.retry.write(op)
        ended = run is not None and run.status.is_terminal
        if ended:  # no heartbeat for an ended run
            await self.retry.write(lambda: self.db.beats.update_one({"_id": lease.run_id}, {"$set": {"active": False}}))
        await self._flush(lease.run_id, records, tidy=ended)

    async def _refused(self, lease: Lease, records: list[dict[str, Any]]) -> None:
        """A commit matched nothing: the lease is gone, a sequence number is taken, or (a retry) it had landed."""
        doc = await self.db.runs.find_one({"_id": lease.run_id}, {"owner": 1, "epoch": 1, "seq": 1, "outbox": 1})
        if doc is None or (doc["owner"], doc["epoch"]) != (lease.owner, lease.epoch) or not records:
            raise LeaseLost(lease)
        stored = {e["seq"]: e for e in await self._events_after(lease.run_id, min(r["seq"] for r in records) - 1, doc)}
        if any(stored.get(r["seq"]) != r for r in records):
            seq = min(r["seq"] for r in records)
            raise Conflict(f"run {lease.run_id!r} already has an event {seq}", run_id=lease.run_id, seq=seq)

    async def _flush(self, run_id: str, records: Sequence[Mapping[str, Any]], *, tidy: bool = True) -> None:
        """Copy committed events from a run's outbox to ``events``; then drop them from the outbox now
        (``tidy``), or with the run's next commit (one write fewer per commit: on FerretDB each write
        of a document scans its collection)."""
        if not records:
            return

        async def op() -> None:
            try:
                await self.db.events.insert_many([_event_doc(r) for r in records], ordered=False)
            except BulkWriteError as e:
                if any(err.get("code") != DUPLICATE_KEY for err in e.details.get("writeErrors", [])):
                    raise
            if tidy:
                await self.db.runs.update_one({"_id": run_id}, {"$unset": {f"outbox.{r['seq']}": "" for r in records}})

        await self.retry.write(op)
        if not tidy:
            self._copied.setdefault(run_id, []).extend(r["seq"] for r in records)

    async def _flush_leftovers(self, run_ids: Sequence[str]) -> None:
        """Finish the event copies a previous owner did not (it died between its commit and the copy)."""
        if not run_ids:
            return
        docs = await self.retry.write(
            lambda: self.db.runs.find({"_id": {"$in": list(run_ids)}, "outbox": {"$ne": {}}}, {"outbox": 1}).to_list()
        )
        for doc in docs:
            if doc.get("outbox"):
                await self._flush(doc["_id"], [json.loads(e) for e in doc["outbox"].values()])

    # -- writes by anyone --------------------------------------------------------------------------

    async def delete_run(self, run_id: str) -> bool:
        async def op() -> bool:
            done = await self.db.runs.delete_one({"_id": run_id})
            await self.db.events.delete_many({"run": run_id})
            await self.db.specs.delete_one({"_id": run_id})
            await self.db.claims.delete_many({"run": run_id})
            await self.db.beats.delete_one({"_id": run_id})
            await self.db.stops.delete_one({"_id": run_id})
            return bool(done.deleted_count)

        return await self.retry.write(op)

    async def ended_before(self, before: float, *, limit: int = 100) -> list[str]:
        found = self.db.runs.find({"status": {"$in": ENDED}, "completed": {"$lt": before}}, {"_id": 1})
        docs = await self.retry.read(
            lambda: found.sort([("completed", ASCENDING), ("_id", ASCENDING)]).limit(limit).to_list()
        )
        return [d["_id"] for d in docs]

    # -- reads ---------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        async def op() -> RunRecord | None:
            doc = await self.db.runs.find_one({"_id": run_id}, _RUN_FIELDS)
            return _run(doc, await self._stops([run_id])) if doc else None

        run: RunRecord | None = await self.retry.read(op)
        return run

    async def get_spec(self, run_id: str) -> dict[str, Any] | None:
        if await self.retry.read(lambda: self.db.runs.find_one({"_id": run_id}, {"_id": 1})) is None:
            return None
        doc = await self.retry.read(lambda: self.db.specs.find_one({"_id": run_id}))
        return dict(json.loads(doc["spec"])) if doc else None

    async def get_tasks(self, run_id: str) -> list[TaskRecord]:
        doc = await self.retry.read(lambda: self.db.runs.find_one({"_id": run_id}, {"order": 1, "tasks": 1}))
        if doc is None:
            return []
        return [TaskRecord.from_record(json.loads(doc["tasks"][key(n)])) for n in doc["order"]]

    async def list_runs(
        self, *, pattern: str = "", active_only: bool = False, limit: int | None = None, offset: int = 0
    ) -> list[RunRecord]:
        where: dict[str, Any] = {}
        if active_only:
            where["status"] = {"$in": ACTIVE}
        if pattern:
            regex = {"$regex": pattern_regex(pattern), "$options": ""}
            where["$or"] = [{"run_id": regex}, {"job": regex}, {"name": regex}]

        async def op() -> list[RunRecord]:
            cursor = self.db.runs.find(where, _RUN_FIELDS).sort([("submitted", DESCENDING), ("run_id", ASCENDING)])
            if offset:
                cursor = cursor.skip(offset)
            if limit is not None:
                if limit <= 0:
                    return []
                cursor = cursor.limit(limit)
            docs = await cursor.to_list()
            stops = await self._stops([d["_id"] for d in docs if d["status"] in ACTIVE])
            return [_run(d, stops) for d in docs]

        runs: list[RunRecord] = await self.retry.read(op)
        return runs

    async def _events_after(
        self, run_id: str, after_seq: int, doc: Mapping[str, Any] | None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Stored events after ``after_seq`` merged with those still in the outbox of ``doc`` (read first)."""
        outbox = [e for e in map(json.loads, (doc or {}).get("outbox", {}).values()) if e["seq"] > after_seq]
        cursor = self.db.events.find({"run": run_id, "seq": {"$gt": after_seq}}, {"record": 1}).sort("seq", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        merged = {r["seq"]: r for r in (json.loads(d["record"]) for d in await cursor.to_list())}
        merged.update((e["seq"], e) for e in outbox)
        return [merged[s] for s in sorted(merged)][:limit]

    async def events(self, run_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        if limit is not None and limit <= 0:
            return []

        async def op() -> list[dict[str, Any]]:
            doc = await self.db.runs.find_one({"_id": run_id}, {"outbox": 1})
            return await self._events_after(run_id, after_seq, doc, limit)

        return [Event.from_record(r) for r in await self.retry.read(op)]

    def follow(self) -> AsyncGenerator[tuple[str, int], None]:
        return self._follow()

    async def _follow(self) -> AsyncGenerator[tuple[str, int], None]:
        """A tailing query (change streams may be missing): runs whose events moved since the last look."""
        seen: dict[str, tuple[int, float]] = {}  # run -> (seq, touched) as last looked at
        since = time.time() - FEED_SLACK_S
        first = True
        while True:
            try:
                docs = await self.db.runs.find({"touched": {"$gte": since}}, {"seq": 1, "touched": 1}).to_list()
            except TRANSIENT:
                await asyncio.sleep(1.0)
                yield ("", 0)
                continue
            for d in sorted(docs, key=lambda d: d["touched"]):
                before = seen.get(d["_id"], (0, 0.0))[0]
                seen[d["_id"]] = (d["seq"], d["touched"])
                if d["seq"] > before and not first:
                    yield (d["_id"], before)
            if first:  # what the first look found happened before anyone followed: catch up from the store
                first = False
                yield ("", 0)
            newest = max((t for _, t in seen.values()), default=since + FEED_SLACK_S)
            since = max(since, newest - FEED_SLACK_S)  # writers' clocks differ: look a little back
            if len(seen) > FEED_REMEMBER:  # forget the runs that moved least recently
                seen = dict(sorted(seen.items(), key=lambda kv: kv[1][1])[-FEED_REMEMBER // 2 :])
            await asyncio.sleep(FEED_POLL_S)

    async def last_seq(self, run_id: str) -> int:
        doc = await self.retry.read(lambda: self.db.runs.find_one({"_id": run_id}, {"seq": 1}))
        return int(doc.get("seq", 0)) if doc else 0
