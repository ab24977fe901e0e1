"""The Kubernetes executor: one object (or a few) per attempt, status from shared watches.

A simple Pod task costs two API writes: the create at submit and the delete at clean-up. Status
comes from one watch per kind and namespace (label selector ``odin.ml/run``) shared by every run;
nothing is polled. See docs/kubernetes.md for the design, the settings and the RBAC rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from ... import constants as C
from ...errors import PermanentError
from ...model import TaskRecord, TaskStatus
from ...settings import KubernetesSettings
from ...spec.model import TaskSpec
from ...tasks import TaskSet
from ..base import Executor, Launch
from . import logs as L
from .attempts import Attempt, AttemptIndex, Key
from .client import ApiError, KubeClient, load_api_client
from .events import task_events
from .handlers import KindHandler, handler_for, handlers
from .handlers.registry import resource_of
from .informer import Informer
from .names import ANNOTATION_RUN_ID, ANNOTATION_TASK_NAME, identity_labels, label_value, object_name
from .podspec import PodOptions
from .resources import PODS, Resource
from .status import Observation, failed
from .updates import labels_of, lost, lost_attempt, submit_error, update

log = logging.getLogger("odin.k8s")
Obj = dict[str, Any]
Decorate = Callable[[Launch], dict[str, dict[str, str]]]
RECOVER_SYNC_TIMEOUT_S = 30.0


class KubernetesExecutor(Executor):
    name = "kubernetes"

    def __init__(
        self,
        data_path: Path | str,
        settings: KubernetesSettings | None = None,
        *,
        api_client: Any = None,
        decorate: Decorate | None = None,
    ) -> None:
        """``decorate(launch)`` may return ``{"labels": {...}, "annotations": {...}}`` for the attempt's pods
        (a testing aid: kwok's ``odin.ml/simulate-*`` annotations)."""
        super().__init__()
        self.data_path = Path(data_path)
        self.settings = settings or KubernetesSettings()
        self.decorate = decorate
        self.attempts = AttemptIndex()
        self._api_client = api_client
        self._client: KubeClient | None = None
        self._informers: dict[str, Informer] = {}
        self._tasks = TaskSet("kubernetes")
        self._after: dict[Key, asyncio.Task[Any]] = {}

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def client(self) -> KubeClient:
        if self._client is None:
            api = self._api_client or load_api_client(self.settings)
            self._client = KubeClient(api, self.settings)
        return self._client

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def api_requests(self) -> dict[str, int]:
        """API requests sent so far, by verb (create, delete, list, watch, get, ...)."""
        return dict(self.client.api_requests)

    def informer(self, resource: Resource) -> Informer:
        """The shared watch of ``resource`` in the namespace, started on first use."""
        inf = self._informers.get(resource.plural)
        if inf is None:
            on_event = self._on_pod if resource == PODS else self._object_handler(resource)
            inf = Informer(self.client, resource, self.namespace, C.LABEL_RUN, on_event)
            self._informers[resource.plural] = inf
            inf.start()
        return inf

    def notes(self, tasks: list[TaskSpec]) -> list[str]:
        return [f"kubernetes executor: namespace {self.namespace!r}, QPS {self.settings.qps:g}/{self.settings.burst}"]

    # -- submit ---------------------------------------------------------------------------------

    async def submit(self, launch: Launch) -> str:
        handler = handler_for(launch.task.resource_type)
        if handler is None:
            raise PermanentError(f"the kubernetes executor cannot run kind {launch.task.resource_type!r}")
        name = object_name(launch.task_id, launch.attempt, limit=handler.name_limit)
        labels = identity_labels(launch.run_id, launch.task.name, launch.attempt)
        manifests = handler.manifests(launch, name, self._pod_options(launch, handler, labels))
        attempt = Attempt((launch.run_id, launch.task.name, launch.attempt), handler, name, labels, launch.run_path)
        self.attempts.add(attempt)
        self.informer(PODS)
        self.informer(handler.resource)
        try:
            await self._create_all(manifests)
        except BaseException:
            self.attempts.remove(attempt)
            raise
        attempt.timer = asyncio.get_running_loop().call_later(
            self.settings.pending_timeout_s, self._pending_expired, attempt
        )
        self._evaluate(attempt)
        return name

    def _pod_options(self, launch: Launch, handler: KindHandler, labels: dict[str, str]) -> PodOptions:
        extra = self.decorate(launch) if self.decorate else {}
        annotations = {
            ANNOTATION_RUN_ID: launch.run_id,
            ANNOTATION_TASK_NAME: launch.task.name,
            **self.settings.pod_annotations,
            **extra.get("annotations", {}),
        }
        pod_labels = {**self.settings.pod_labels, **extra.get("labels", {}), **labels}
        return PodOptions(pod_labels, annotations, self.settings.image_pull_secrets, handler.container)

    async def _create_all(self, manifests: list[Obj]) -> None:
        created: list[Obj] = []
        for m in manifests:
            try:
                await self._create(m)
            except Exception:
                for done in created:
                    await self._delete(resource_of(done), done["metadata"]["name"])
                raise
            created.append(m)

    async def _create(self, manifest: Obj) -> None:
        resource = resource_of(manifest)
        what = f"{manifest['kind']} {manifest['metadata']['name']}"
        try:
            await self.client.request("create", resource.path(self.namespace), body=manifest)
        except ApiError as e:
            if e.status == 409 and e.reason == "AlreadyExists":
                return  # the same attempt submitted twice: one object
            raise submit_error(what, e) from e

    # -- watching -------------------------------------------------------------------------------

    def _on_pod(self, kind: str, pod: Obj) -> None:
        attempt = self.attempts.for_labels(pod["metadata"].get("labels") or {})
        if attempt is None:
            return
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            attempt.pods.pop(name, None)
        else:
            attempt.pods[name] = pod
        if attempt.handler.resource == PODS and name == attempt.name:
            self._main_changed(attempt, kind, pod)
        else:
            self._evaluate(attempt)

    def _object_handler(self, resource: Resource) -> Callable[[str, Obj], None]:
        def on_event(kind: str, obj: Obj) -> None:
            attempt = self.attempts.for_object(resource.plural, obj["metadata"]["name"])
            if attempt is not None:
                self._main_changed(attempt, kind, obj)

        return on_event

    def _main_changed(self, attempt: Attempt, kind: str, obj: Obj) -> None:
        if kind == "DELETED":
            attempt.obj = None
            if not attempt.done:
                self._finish(attempt, failed(f"{obj.get('kind', 'object')} {attempt.name} was deleted"))
            return
        attempt.obj = obj
        self._evaluate(attempt)

    def _evaluate(self, attempt: Attempt) -> None:
        if attempt.done:
            return
        obs = attempt.handler.observe(attempt.obj, attempt.pod_list())
        if obs.status is TaskStatus.RUNNING:
            attempt.running_seen = True
            attempt.cancel_timer()
        if obs == attempt.last:
            return
        attempt.last = obs
        if obs.is_terminal:
            self._finish(attempt, obs)
        else:
            self.report(update(attempt, obs))

    def _pending_expired(self, attempt: Attempt) -> None:
        if attempt.done or attempt.running_seen:
            return
        why = attempt.last.message if attempt.last and attempt.last.message else "never scheduled"
        self._finish(attempt, failed(f"still pending after {self.settings.pending_timeout_s:g}s: {why}"))

    def _finish(self, attempt: Attempt, obs: Observation) -> None:
        attempt.done = True
        attempt.last = obs
        attempt.cancel_timer()
        # An attempt that failed while something still waits or runs (image pull, pending timeout) is
        # removed at once so it holds no node resources; finished ones stay until clean-up (or TTL).
        remove = obs.status is TaskStatus.FAILED and (not attempt.pods or not attempt.all_pods_finished())
        task = self._tasks.spawn(self._end(attempt, obs, remove), f"end:{attempt.name}")
        self._after[attempt.key] = task
        key = attempt.key
        task.add_done_callback(lambda _t: self._after.pop(key, None))

    async def _end(self, attempt: Attempt, obs: Observation, remove: bool) -> None:
        """Logs first (so they are readable once the end is reported), then the report, then removal."""
        try:
            if not attempt.handler.long_running:
                await self._capture(attempt)
        finally:
            self.report(update(attempt, obs))
        if remove:
            await self._delete_attempt(attempt)

    async def _capture(self, attempt: Attempt) -> None:
        if attempt.captured or not self.settings.capture_logs:
            return
        attempt.captured = True
        try:
            await L.capture(
                self.client,
                self.namespace,
                attempt.run_path,
                attempt.task,
                attempt.number,
                attempt.pod_names(),
                attempt.handler.container,
            )
        except Exception:
            log.exception("could not capture the logs of %s", attempt.name)

    # -- deleting -------------------------------------------------------------------------------

    async def _delete(self, resource: Resource, name: str) -> bool:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": self.settings.delete_propagation}
        try:
            await self.client.request("delete", resource.path(self.namespace, name), body=body)
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

    # -- recover --------------------------------------------------------------------------------

    async def recover(self, records: list[TaskRecord]) -> list[TaskRecord]:
        """Re-attach to the objects of active attempts (found through the shared watches), or report them lost."""
        found: list[Attempt] = []
        for rec in records:
            handler = handler_for(rec.resource_type)
            if handler is None:
                self.report(lost(rec, f"kind {rec.resource_type!r} has no handler"))
                continue
            name = object_name(rec.task_id, rec.attempt, limit=handler.name_limit)
            labels = identity_labels(rec.run_id, rec.name, rec.attempt)
            attempt = Attempt(
                (rec.run_id, rec.name, rec.attempt), handler, name, labels, str(self.data_path / rec.run_id)
            )
            self.attempts.add(attempt)
            found.append(attempt)
        informers = {self.informer(PODS), *(self.informer(a.handler.resource) for a in found)}
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)), RECOVER_SYNC_TIMEOUT_S)
        for attempt in found:
            self._reattach(attempt)
        return []

    def _reattach(self, attempt: Attempt) -> None:
        inf = self._informers[attempt.handler.resource.plural]
        attempt.obj = inf.cache.get(attempt.name)
        if attempt.obj is None:
            self.attempts.remove(attempt)
            self.report(lost_attempt(attempt))
            return
        pods = self._informers[PODS.plural].cache.values()
        attempt.pods = {p["metadata"]["name"]: p for p in pods if self.attempts.for_labels(labels_of(p)) is attempt}
        attempt.timer = asyncio.get_running_loop().call_later(
            self.settings.pending_timeout_s, self._pending_expired, attempt
        )
        self._evaluate(attempt)

    # -- reading --------------------------------------------------------------------------------

    async def logs(
        self,
        record: TaskRecord,
        *,
        follow: bool = False,
        lines: int | None = None,
        container: str | None = None,
        until: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[str]:
        text = L.read_file(L.log_path(self.data_path / record.run_id, record.name), None)
        attempt = self.attempts.latest(record.run_id, record.name)
        live = attempt is not None and not attempt.captured and bool(attempt.pods)
        if live and not follow:
            assert attempt is not None
            text += await L.snapshot(self.client, self.namespace, attempt.pod_names(), container=container, tail=lines)
        for line in text[-lines:] if lines else text:
            yield line
        if not (follow and live and attempt is not None):
            return
        follower = L.Follower(self.client, self.namespace, container, lines)
        tracked = attempt

        def finished() -> bool:
            return tracked.done and tracked.all_pods_finished()

        async for line in follower.lines(tracked.pod_names, finished, until):
            yield line

    async def events(self, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
        return await task_events(self.client, self.namespace, run_id, task)

    # -- clean-up -------------------------------------------------------------------------------

    async def cleanup(self, run_id: str, records: list[TaskRecord]) -> dict[str, bool]:
        """Delete every object with the run's label, of every kind; logs are captured first."""
        pending = [t for k, t in list(self._after.items()) if k[0] == run_id]
        await asyncio.gather(*pending, return_exceptions=True)
        for attempt in self.attempts.of_run(run_id):
            attempt.done = True
            await self._capture(attempt)
        by_label = {label_value(r.name): r.name for r in records}
        removed: dict[str, bool] = {}
        for resource, obj in await self._objects_of_run(run_id, records):
            if await self._delete(resource, obj["metadata"]["name"]):
                task = by_label.get(labels_of(obj).get(C.LABEL_TASK, ""), "")
                removed[task] = True
        for attempt in self.attempts.of_run(run_id):
            self.attempts.remove(attempt)
        return {r.name: removed.get(r.name, False) for r in records}

    async def _objects_of_run(self, run_id: str, records: list[TaskRecord]) -> list[tuple[Resource, Obj]]:
        """Objects of the kinds the run's tasks use (every kind when the records do not say)."""
        value = label_value(run_id)
        kinds = [r.resource_type for r in records] + [a.handler.kind for a in self.attempts.of_run(run_id)]
        used = [h for h in map(handler_for, kinds) if h is not None] or handlers()
        resources = {r.plural: r for h in used for r in (h.resource, *h.extra_resources)}
        found: list[tuple[Resource, Obj]] = []
        for resource in resources.values():
            for obj in await self._list_run(resource, value):
                if resource == PODS and obj["metadata"].get("ownerReferences"):
                    continue  # removed with their owner by the garbage collector
                found.append((resource, obj))
        return found

    async def _list_run(self, resource: Resource, run_label: str) -> list[Obj]:
        inf = self._informers.get(resource.plural)
        if inf is not None and inf.synced.is_set():
            return [o for o in inf.cache.values() if labels_of(o).get(C.LABEL_RUN) == run_label]
        query = {"labelSelector": f"{C.LABEL_RUN}={run_label}"}
        try:
            return (await self.client.request("list", resource.path(self.namespace), query=query)).get("items") or []
        except ApiError as e:
            if e.status == 404:  # a CRD that is not installed
                return []
            raise

    async def run_finished(self, run_id: str, records: list[TaskRecord]) -> None:
        """With ``ttl_after_finished_s``, everything the run created goes that long after it ended."""
        ttl = self.settings.ttl_after_finished_s
        if ttl is not None:
            self._tasks.spawn(self._expire(run_id, records, ttl), f"ttl:{run_id}")

    async def _expire(self, run_id: str, records: list[TaskRecord], ttl: float) -> None:
        await asyncio.sleep(ttl)
        await self.cleanup(run_id, records)

    async def close(self) -> None:
        for inf in self._informers.values():
            inf.stop()
        self._informers.clear()
        await self._tasks.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._client.close)
