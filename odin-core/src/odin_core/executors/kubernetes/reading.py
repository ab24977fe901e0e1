"""Reading what attempts wrote: logs (captured files, live pods, followed streams) and Kubernetes events
(a base of the executor, after ``Removal``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from ... import constants as C
from ...model import TaskRecord
from ..local_files import file_lines, tail_offset
from . import logs as L
from .events import task_events
from .informer import Informer
from .names import label_value
from .removal import Removal
from .resources import EVENTS, PODS, Resource

SYNC_TIMEOUT_S = 30.0


class Reading(Removal):
    """Needs ``data_path`` and ``informer`` besides what ``Removal`` needs."""

    data_path: Path

    async def informer(self, resource: Resource) -> Informer:
        raise NotImplementedError

    async def logs(
        self,
        record: TaskRecord,
        *,
        follow: bool = False,
        lines: int | None = None,
        container: str | None = None,
        until: Callable[[], Awaitable[bool]] | None = None,
        namespace: str | None = None,
    ) -> AsyncIterator[str]:
        """The task's captured log, then its live pods' logs. ``namespace`` (the LOGS request's): a namespace
        other than this executor's is read directly, its pods found by the task's labels (no follow there)."""
        path = L.log_path(self.data_path / record.run_id, record.name)
        offset = await asyncio.to_thread(tail_offset, path, lines) if lines else 0  # the captured log's last lines
        if namespace and namespace != self.namespace:
            text = [line async for line in file_lines(path, offset)]
            text += await self._other_namespace_logs(record, namespace, container, lines)
            for line in text[-lines:] if lines else text:
                yield line
            return
        attempt = self.attempts.latest(record.run_id, record.name)
        live = attempt is not None and not attempt.captured and bool(attempt.pods)
        if live and not follow:
            assert attempt is not None
            client = await self.connect()
            text = [line async for line in file_lines(path, offset)]
            text += await L.snapshot(client, self.namespace, attempt.pod_names(), container=container, tail=lines)
            for line in text[-lines:] if lines else text:
                yield line
            return
        async for line in file_lines(path, offset):  # a chunk at a time: a long captured log is never held whole
            yield line
        if not (follow and live and attempt is not None):
            return
        follower = L.Follower(await self.connect(), self.namespace, container, lines)
        tracked = attempt

        def finished() -> bool:
            return tracked.done and tracked.all_pods_finished()

        async for line in follower.lines(tracked.pod_names, finished, until):
            yield line

    async def _other_namespace_logs(
        self, record: TaskRecord, namespace: str, container: str | None, lines: int | None
    ) -> list[str]:
        client = await self.connect()
        selector = f"{C.LABEL_RUN}={label_value(record.run_id)},{C.LABEL_TASK}={label_value(record.name)}"
        listed = await client.request("list", PODS.path(namespace), query={"labelSelector": selector})
        pods = sorted(p["metadata"]["name"] for p in listed.get("items") or [])
        return await L.snapshot(client, namespace, pods, container=container, tail=lines) if pods else []

    async def events(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        """Kubernetes events of the run's (or task's) objects, from one shared watch of the namespace's events."""
        inf = await self.informer(EVENTS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(inf.synced.wait(), SYNC_TIMEOUT_S)
        return task_events(inf.cache.values(), run_id, task)
