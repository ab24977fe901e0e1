"""Deleting what an attempt or a run created: kill, clean-up, time-to-live (a base of the executor).

Object names are derived from the task id and the attempt number, so clean-up deletes by name
what every recorded attempt of a run may have created (a 404 means already gone) and needs no
list: a run whose attempts this process never followed (another core ran it, or it ended and was
pruned) is cleaned up the same way. Only when the records say nothing does it fall back to listing
every kind by the run's label.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ... import constants as C
from ...model import TaskRecord
from ...settings import KubernetesSettings
from ..base import Executor
from .attempts import Attempt, AttemptIndex, Endings
from .client import ApiError, KubeClient
from .handlers import KindHandler, handler_for, handlers
from .names import label_value, object_name
from .resources import PODS, Resource
from .updates import labels_of

Obj = dict[str, Any]
Target = tuple[Resource, str, str]  # resource, object name, task name


class Removal(Executor):
    """Needs ``attempts``, ``_after``, ``connect``, ``namespace``, ``settings``, ``_capture`` and ``_prune``."""

    settings: KubernetesSettings
    attempts: AttemptIndex
    _after: Endings

    async def connect(self) -> KubeClient:
        raise NotImplementedError

    @property
    def namespace(self) -> str:
        raise NotImplementedError

    async def _capture(self, attempt: Attempt) -> None:
        raise NotImplementedError

    def _prune(self, run_id: str) -> None:
        raise NotImplementedError

    async def _delete(self, resource: Resource, name: str) -> bool:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": self.settings.delete_propagation}
        client = await self.connect()
        try:
            await client.request("delete", resource.path(self.namespace, name), body=body, raw=True)  # unread answer
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def _delete_objects(self, handler: KindHandler, name: str) -> bool:
        results = [await self._delete(r, name) for r in (handler.resource, *handler.extra_resources)]
        return any(results)

    async def _delete_attempt(self, attempt: Attempt) -> bool:
        return await self._delete_objects(attempt.handler, attempt.name)

    async def kill(self, record: TaskRecord) -> None:
        attempt = self.attempts.get((record.run_id, record.name, record.attempt))
        if attempt is not None:
            attempt.done = True
            attempt.cancel_timer()
            await self._capture(attempt)
            await self._delete_attempt(attempt)
            return
        handler = handler_for(record.resource_type)
        if handler is not None and record.attempt > 0:
            await self._delete_objects(handler, object_name(record.task_id, record.attempt, limit=handler.name_limit))

    async def cleanup(self, run_id: str, records: list[TaskRecord]) -> dict[str, bool]:
        """Delete everything the run's attempts created, of every kind; logs are captured first."""
        await asyncio.gather(*self._after.of_run(run_id), return_exceptions=True)
        for attempt in self.attempts.of_run(run_id):
            attempt.done = True
            attempt.cancel_timer()
            await self._capture(attempt)
        targets = self._targets(run_id, records) or await self._listed_targets(run_id, records)
        removed: dict[str, bool] = {}
        for resource, name, task in targets:
            if await self._delete(resource, name):
                removed[task] = True
        self._prune(run_id)
        return {r.name: removed.get(r.name, False) for r in records}

    def _targets(self, run_id: str, records: list[TaskRecord]) -> list[Target]:
        """Every object every recorded attempt (and every followed one) may have created, by name."""
        found: dict[tuple[str, str], Target] = {}
        attempts = [(r.name, r.resource_type, n, r.task_id) for r in records for n in range(1, r.attempt + 1)]
        attempts += [(a.task, a.handler.kind, a.number, f"{run_id}--{a.task}") for a in self.attempts.of_run(run_id)]
        for task, kind, number, task_id in attempts:
            handler = handler_for(kind)
            if handler is None:
                continue
            name = object_name(task_id, number, limit=handler.name_limit)
            for resource in (handler.resource, *handler.extra_resources):
                found[(resource.plural, name)] = (resource, name, task)
        return list(found.values())

    async def _listed_targets(self, run_id: str, records: list[TaskRecord]) -> list[Target]:
        """Objects with the run's label, of every kind (when the records name no attempt)."""
        value = label_value(run_id)
        by_label = {label_value(r.name): r.name for r in records}
        resources = {r.plural: r for h in handlers() for r in (h.resource, *h.extra_resources)}
        found: list[Target] = []
        for resource in resources.values():
            for obj in await self._list_run(resource, value):
                if resource == PODS and obj["metadata"].get("ownerReferences"):
                    continue  # removed with their owner by the garbage collector
                task = by_label.get(labels_of(obj).get(C.LABEL_TASK, ""), "")
                found.append((resource, obj["metadata"]["name"], task))
        return found

    async def _list_run(self, resource: Resource, run_label: str) -> list[Obj]:
        query = {"labelSelector": f"{C.LABEL_RUN}={run_label}"}
        client = await self.connect()
        try:
            return (await client.request("list", resource.path(self.namespace), query=query)).get("items") or []
        except ApiError as e:
            if e.status == 404:  # a CRD that is not installed
                return []
            raise

    async def _expire(self, run_id: str, records: list[TaskRecord], ttl: float) -> None:
        await asyncio.sleep(ttl)
        await self.cleanup(run_id, records)
