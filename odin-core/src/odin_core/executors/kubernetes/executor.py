"""The Kubernetes executor: one object (or a few) per attempt, status from shared watches.

A simple Pod task costs two API writes: the create at submit and the delete at clean-up. Status
comes from one watch per kind and namespace (label selector ``odin.ml/run``) shared by every run;
nothing is polled. Each watch caches only the objects of the attempts this process follows, and a
run's attempts are forgotten when it ends, so a long-lived core's memory does not grow with the runs
it has driven. See docs/kubernetes.md for the design, the settings and the RBAC rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ... import constants as C
from ...errors import PermanentError
from ...model import TaskRecord, TaskStatus
from ...settings import KubernetesSettings
from ...spec.model import TaskSpec
from ...tasks import TaskSet
from ..base import Launch
from ..local_supervisor import disk_full
from . import adoption
from . import logs as L
from .attempts import Attempt, AttemptIndex, Endings
from .client import ApiError, KubeClient, load_api_client
from .events import is_task_event
from .handlers import KindHandler, handler_for
from .handlers.registry import resource_of
from .informer import Informer
from .names import ANNOTATION_RUN_ID, ANNOTATION_TASK_NAME, identity_labels, label_value, object_name
from .podspec import PodOptions
from .reading import Reading
from .resources import EVENTS, PODS, Resource
from .status import Observation, failed, pending
from .updates import labels_of, lost, lost_attempt, no_controller, submit_error, update

log = logging.getLogger("odin.k8s")
Obj = dict[str, Any]
PENDING_REPORT_S = 1.0
"""A reason an attempt is pending for is reported once it has lasted this long (an attempt that starts
at once costs no write per reason it passed through); RUNNING, the end, and failures are reported at once."""
Decorate = Callable[[Launch], dict[str, dict[str, str]]]
FULL_PAUSE_S = 1.0
"""Between two tries of a captured log's write while its disk is full."""
FULL_WARN_EVERY_S = 60.0
"""A full disk under the captured logs is warned about when first met, then once a minute while it lasts."""


class KubernetesExecutor(Reading):
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
        self._connecting: asyncio.Lock | None = None
        self._informers: dict[str, Informer] = {}
        self._tasks = TaskSet("kubernetes")
        self._after = Endings()
        self._forgetting: set[asyncio.Task[Any]] = set()
        self._files: L.Appends | None = None  # log captures' file appends, batched

    # -- plumbing -------------------------------------------------------------------------------

    async def connect(self) -> KubeClient:
        """The client, made on first use in a thread (loading a kubeconfig reads files, may run a plugin)."""
        if self._client is None:
            self._connecting = self._connecting or asyncio.Lock()
            async with self._connecting:
                if self._client is None:
                    api = self._api_client or await asyncio.to_thread(load_api_client, self.settings)
                    self._client = KubeClient(api, self.settings)
        return self._client

    @property
    def client(self) -> KubeClient:
        """The client once connected (benchmarks and tests read its counters)."""
        if self._client is None:
            raise RuntimeError("the Kubernetes executor is not connected yet: await connect() first")
        return self._client

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def api_requests(self) -> dict[str, int]:
        """API requests sent so far, by verb (create, delete, list, watch, get, ...)."""
        return dict(self._client.api_requests) if self._client else {}

    async def informer(self, resource: Resource) -> Informer:
        """The shared watch of ``resource`` in the namespace, started on first use."""
        inf = self._informers.get(resource.plural)
        if inf is None:
            client = await self.connect()
            inf = self._informers.get(resource.plural)
        if inf is None:
            inf = self._make_informer(client, resource)
            self._informers[resource.plural] = inf
            inf.start()
        return inf

    def _make_informer(self, client: KubeClient, resource: Resource) -> Informer:
        if resource == EVENTS:  # events carry no labels: keep those of objects named like Odin's
            return Informer(client, resource, self.namespace, None, lambda _k, _o: None, is_task_event)
        if resource == PODS:
            return Informer(client, resource, self.namespace, C.LABEL_RUN, self._on_pod, self._followed_pod)
        wanted = self._followed_object(resource)
        return Informer(client, resource, self.namespace, C.LABEL_RUN, self._object_handler(resource), wanted)

    def _followed_pod(self, pod: Obj) -> bool:
        return self.attempts.for_labels(labels_of(pod)) is not None

    def _followed_object(self, resource: Resource) -> Callable[[Obj], bool]:
        return lambda obj: self.attempts.for_object(resource.plural, obj["metadata"]["name"]) is not None

    def notes(self, tasks: list[TaskSpec]) -> list[str]:
        return [f"kubernetes executor: namespace {self.namespace!r}, QPS {self.settings.qps:g}/{self.settings.burst}"]

    # -- submit ---------------------------------------------------------------------------------

    async def submit(self, launch: Launch) -> str:
        """Create the attempt's objects; idempotent per (run, task, attempt), across processes too: an object
        that already exists (AlreadyExists) is this attempt's, and is followed instead of created again."""
        handler = handler_for(launch.task.resource_type)
        if handler is None:
            raise PermanentError(f"the kubernetes executor cannot run kind {launch.task.resource_type!r}")
        known = self.attempts.get((launch.run_id, launch.task.name, launch.attempt))
        if known is not None:
            return known.name
        name, labels, manifests = self.objects(launch, handler)
        attempt = Attempt((launch.run_id, launch.task.name, launch.attempt), handler, name, labels, launch.run_path)
        self.attempts.add(attempt)
        try:
            await self.informer(PODS)
            await self.informer(handler.resource)
            await self._create_all(manifests)
        except BaseException:
            self.attempts.remove(attempt)
            raise
        self._arm(attempt)
        self._evaluate(attempt)
        return name

    def objects(self, launch: Launch, handler: KindHandler) -> tuple[str, dict[str, str], list[Obj]]:
        """The attempt's object name, identity labels and the manifests ``submit`` creates (no I/O; the
        k8s bench's floor creates these very objects)."""
        name = object_name(launch.task_id, launch.attempt, limit=handler.name_limit)
        labels = identity_labels(launch.run_id, launch.task.name, launch.attempt)
        return name, labels, handler.manifests(launch, name, self._pod_options(launch, handler, labels))

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
                fresh = await self._create(m)
            except Exception:
                for done in created:
                    await self._delete(resource_of(done), done["metadata"]["name"])
                raise
            if fresh:
                created.append(m)

    async def _create(self, manifest: Obj) -> bool:
        """True if created, False if it already existed (the same attempt, submitted before)."""
        resource = resource_of(manifest)
        what = f"{manifest['kind']} {manifest['metadata']['name']}"
        client = await self.connect()
        try:
            await client.request("create", resource.path(self.namespace), body=manifest, raw=True)  # unread answer
        except ApiError as e:
            if e.status == 409 and e.reason == "AlreadyExists":
                return False
            raise submit_error(what, resource, e) from e
        return True

    def _arm(self, attempt: Attempt) -> None:
        """The pending timeout, and (kinds served by an add-on controller) the no-controller warning."""
        loop = asyncio.get_running_loop()
        attempt.timer = loop.call_later(self.settings.pending_timeout_s, self._pending_expired, attempt)
        if attempt.handler.controller and self.settings.no_controller_after_s < self.settings.pending_timeout_s:
            attempt.watchdog = loop.call_later(self.settings.no_controller_after_s, self._no_controller, attempt)

    # -- watching -------------------------------------------------------------------------------

    def _on_pod(self, kind: str, pod: Obj) -> None:
        attempt = self.attempts.for_labels(labels_of(pod))
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
        if attempt.warned and not attempt.handler.controller_acted(attempt.obj, attempt.pod_list()):
            return  # keep saying that no controller acts
        if obs == attempt.last:
            return
        attempt.last = obs
        if obs.is_terminal:
            self._finish(attempt, obs)
        elif obs.status is TaskStatus.PENDING:
            if attempt.pending_report is None:
                loop = asyncio.get_running_loop()
                attempt.pending_report = loop.call_later(PENDING_REPORT_S, self._report_pending, attempt)
        else:  # RUNNING: its timers, the pending report's too, were cancelled above
            self.report(update(attempt, obs))

    def _report_pending(self, attempt: Attempt) -> None:
        """The latest pending reason, if the attempt still waits (reasons between two reports are skipped)."""
        attempt.pending_report = None
        if not attempt.done and attempt.last is not None and attempt.last.status is TaskStatus.PENDING:
            self.report(update(attempt, attempt.last))

    def _no_controller(self, attempt: Attempt) -> None:
        attempt.watchdog = None
        if attempt.done or attempt.handler.controller_acted(attempt.obj, attempt.pod_list()):
            return
        obs = pending(no_controller(attempt, self.settings.no_controller_after_s))
        attempt.warned = True
        attempt.last = obs
        attempt.cancel_pending_report()
        log.warning("%s", obs.message)
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
        # A failed attempt whose pods still wait or run (image pull, pending timeout) is removed at once, so
        # it holds no node resources; finished ones stay until clean-up (or TTL), except for replicas that
        # outlive a job that ended (MPI workers, PyTorch workers after their master): those pods go once
        # their logs are captured (the operator does not recreate pods of a finished job).
        unfinished = bool(attempt.pods) and not attempt.all_pods_finished()
        remove = obs.status is TaskStatus.FAILED and (unfinished or not attempt.pods)
        self._after.add(attempt.key, self._tasks.spawn(self._end(attempt, obs, remove), f"end:{attempt.name}"))

    async def _end(self, attempt: Attempt, obs: Observation, remove: bool) -> None:
        """Logs first (so they are readable once the end is reported), then the report, then removal."""
        try:
            if not attempt.handler.long_running:
                await self._capture(attempt)
        finally:
            self.report(update(attempt, obs))
        if remove:
            await self._delete_attempt(attempt)
        elif not attempt.handler.long_running and attempt.handler.resource != PODS:
            for pod in attempt.unfinished_pods():
                await self._delete(PODS, pod)

    async def _capture(self, attempt: Attempt) -> None:
        if attempt.captured or not self.settings.capture_logs:
            return
        attempt.captured = True
        try:
            await L.capture(
                await self.connect(),
                self.namespace,
                attempt.run_path,
                attempt.task,
                attempt.number,
                attempt.pod_names(),
                attempt.handler.container,
                self._append,
            )
        except Exception:
            log.exception("could not capture the logs of %s", attempt.name)

    async def _append(self, path: Path, text: str) -> None:
        """Append to a captured log (appends of one loop pass are one batch: on the loop when small, else the
        executor's file thread). A full disk is waited out: the attempt's end is reported, and its objects
        removed, once its log is written (so the log is not lost, and the run pauses as on the store's full disk)."""
        self._files = self._files or L.Appends()
        waited = 0.0
        while True:
            try:
                await self._files.append(path, text)
            except OSError as e:
                if not disk_full(e):
                    raise
                if waited % FULL_WARN_EVERY_S == 0:
                    log.warning(
                        "the disk holding %s is full (%s): the captured log waits to be written, and the task's end "
                        "to be reported; free space there and it goes on",
                        path,
                        e.strerror,
                    )
                await asyncio.sleep(FULL_PAUSE_S)
                waited += FULL_PAUSE_S
                continue
            if waited:
                log.warning("the captured log %s is written after %.0f s of a full disk", path, waited)
            return

    # -- adopting, letting go, forgetting -------------------------------------------------------

    async def recover(self, records: list[TaskRecord]) -> list[TaskRecord]:
        """Follow the attempts of ``records`` found on the cluster by their labels, as if never interrupted;
        report the ones started whose objects are gone as FAILED (lost); return the ones never started."""
        followed: list[tuple[TaskRecord, Attempt]] = []
        for rec in records:
            handler = handler_for(rec.resource_type)
            if handler is None:
                self.report(lost(rec, f"kind {rec.resource_type!r} has no handler"))
                continue
            known = self.attempts.get((rec.run_id, rec.name, rec.attempt))
            if known is not None:
                continue  # already followed by this process
            name = object_name(rec.task_id, rec.attempt, limit=handler.name_limit)
            labels = identity_labels(rec.run_id, rec.name, rec.attempt)
            attempt = Attempt(
                (rec.run_id, rec.name, rec.attempt), handler, name, labels, str(self.data_path / rec.run_id)
            )
            self.attempts.add(attempt)
            followed.append((rec, attempt))
        for resource in {PODS, *(a.handler.resource for _, a in followed)}:
            await self.informer(resource)  # events from now on reach the attempts
        main, pods = await self._find([rec for rec, _ in followed], {a.handler.resource for _, a in followed})
        never: list[TaskRecord] = []
        for rec, attempt in followed:
            key = adoption.identity(rec)
            found = adoption.decide(rec, main.get((attempt.handler.resource.plural, key), []), pods.get(key, []))
            if found.finding is adoption.Finding.ADOPT:
                self._adopt(attempt, found)
                continue
            self.attempts.remove(attempt)
            if found.finding is adoption.Finding.LOST:
                self.report(lost_attempt(attempt))
            else:
                never.append(rec)
        # Attempts that ended while no core followed them are reported (their logs captured first) before this
        # returns, so the run's next decision knows it: a stop that made this core take the run over must not
        # cancel a task that had succeeded.
        ended = [end for run_id in {rec.run_id for rec, _ in followed} for end in self._after.of_run(run_id)]
        await asyncio.gather(*ended, return_exceptions=True)
        return never

    async def _find(
        self, records: list[TaskRecord], resources: set[Resource]
    ) -> tuple[dict[tuple[str, adoption.LabelKey], list[Obj]], dict[adoption.LabelKey, list[Obj]]]:
        """The objects and pods of the records' runs, one list per kind and run, grouped by identity."""
        main: dict[tuple[str, adoption.LabelKey], list[Obj]] = {}
        pods: dict[adoption.LabelKey, list[Obj]] = {}
        for run_label in {label_value(r.run_id) for r in records}:
            for key, objs in adoption.by_identity(await self._list_run(PODS, run_label)).items():
                pods.setdefault(key, []).extend(objs)
            for resource in resources:
                listed = pods if resource == PODS else adoption.by_identity(await self._list_run(resource, run_label))
                for key, objs in listed.items():
                    main.setdefault((resource.plural, key), []).extend(objs)
        return main, pods

    def _adopt(self, attempt: Attempt, found: adoption.Found) -> None:
        """Listed objects fill in what the watch has not delivered yet (the watch's copy is newer)."""
        if attempt.obj is None and found.obj is not None:
            attempt.obj = found.obj
        for pod in found.pods:
            attempt.pods.setdefault(pod["metadata"]["name"], pod)
        self._arm(attempt)
        self._evaluate(attempt)

    async def detach(self, run_id: str) -> None:
        """Stop following the run's attempts without touching their objects (another core follows them now)."""
        for task in self._after.of_run(run_id):
            task.cancel()
        self._prune(run_id)

    def _prune(self, run_id: str) -> None:
        """Forget the run: its attempts, and their objects in the watches' caches (the caches keep only
        followed attempts' objects, so these are all the run's; once forgotten, events about them are ignored)."""
        for attempt in self.attempts.of_run(run_id):
            self.attempts.remove(attempt)
            pods = self._informers.get(PODS.plural)
            if pods is not None:
                pods.forget([*attempt.pods, attempt.name])
            main = self._informers.get(attempt.handler.resource.plural)
            if main is not None:
                main.forget([attempt.name])

    async def run_finished(self, run_id: str, records: list[TaskRecord]) -> None:
        """The run's attempts are forgotten once their ends are handled; with ``ttl_after_finished_s``,
        everything the run created goes that long after it ended."""
        if self._after.of_run(run_id):
            forgetting = self._tasks.spawn(self._forget_when_ended(run_id), f"forget:{run_id}")
            self._forgetting.add(forgetting)
            forgetting.add_done_callback(self._forgetting.discard)
        else:  # the usual case: every end was handled before the worker heard of it
            self._prune(run_id)
        ttl = self.settings.ttl_after_finished_s
        if ttl is not None:
            self._tasks.spawn(self._expire(run_id, records, ttl), f"ttl:{run_id}")

    async def settled(self) -> None:
        """Wait until every ended attempt's end is handled and every ended run is forgotten."""
        while self._after or self._forgetting:
            await asyncio.gather(*self._after.all(), *self._forgetting, return_exceptions=True)

    def followed(self) -> dict[str, int]:
        """What this executor holds in memory: attempts, runs, cached objects per watch."""
        cached = {f"cached {plural}": len(inf.cache) for plural, inf in self._informers.items()}
        return {"attempts": len(self.attempts), "runs": self.attempts.runs(), "ending": len(self._after), **cached}

    async def _forget_when_ended(self, run_id: str) -> None:
        await asyncio.gather(*self._after.of_run(run_id), return_exceptions=True)
        self._prune(run_id)

    async def close(self) -> None:
        informers = list(self._informers.values())
        self._informers.clear()
        for inf in informers:
            await inf.aclose()
        await self._tasks.close()
        if self._files is not None:
            self._files.close()
            self._files = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
