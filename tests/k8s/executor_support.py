"""Helpers for the Kubernetes executor tests: a harness that collects reports, and kwok annotations."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubernetes import client
from odin_core.executors.base import Launch
from odin_core.executors.kubernetes import KubernetesExecutor
from odin_core.model import AttemptUpdate, TaskStatus
from odin_core.settings import KubernetesSettings
from odin_core.spec.model import TaskSpec

EXIT_CODE = "odin.ml/simulate-exit-code"
MESSAGE = "odin.ml/simulate-message"
OUTPUTS = "odin.ml/simulate-outputs"
DURATION = "odin.ml/simulate-duration"
RUN_LABEL = "odin.ml/run"
WAIT_S = 30.0
TERMINAL = (TaskStatus.SUCCEEDED, TaskStatus.FAILED)


def outputs(**values: Any) -> dict[str, str]:
    return {OUTPUTS: json.dumps(values)}


def fails(code: int, message: str = "boom") -> dict[str, str]:
    return {EXIT_CODE: str(code), MESSAGE: message}


def lasts(seconds: float) -> dict[str, str]:
    return {DURATION: f"{seconds:g}s"}


class Annotator:
    """The ``decorate`` hook: per-task annotations for kwok (``odin.ml/simulate-*``)."""

    def __init__(self, per_task: dict[str, Any] | None = None) -> None:
        self.per_task: dict[str, Any] = dict(per_task or {})  # task -> annotations, or launch -> annotations

    def __call__(self, launch: Launch) -> dict[str, dict[str, str]]:
        found = self.per_task.get(launch.task.name, {})
        return {"annotations": found(launch) if callable(found) else found}


def referenced_outputs(texts: Iterable[str]) -> dict[str, dict[str, str]]:
    """``^task.outputs.key`` references found in args → simulated outputs for each upstream task."""
    found: dict[str, dict[str, str]] = {}
    for text in texts:
        for task, key in re.findall(r"\^([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_]+)", text):
            found.setdefault(task, {})[key] = f"sim-{key}"
    return {task: {OUTPUTS: json.dumps(values)} for task, values in found.items()}


def task(name: str, kind: str = "Pod", **kw: Any) -> TaskSpec:
    return TaskSpec(name, "odin/task:test", ("python", "-c", "print(1)"), resource_type=kind, **kw)


class Harness:
    def __init__(self, kubeconfig: str, namespace: str, data: Path, **settings: Any) -> None:
        self.annotator = Annotator()
        self.settings = KubernetesSettings(kubeconfig=kubeconfig, namespace=namespace, **settings)
        self.executor = KubernetesExecutor(data, self.settings, decorate=self.annotator)
        self.data = data
        self.updates: list[AttemptUpdate] = []
        self._changed = asyncio.Event()
        self.executor.bind(self._on_update)

    def _on_update(self, update: AttemptUpdate) -> None:
        self.updates.append(update)
        self._changed.set()

    def launch(self, spec: TaskSpec, attempt: int = 1, run_id: str = "run-abc123") -> Launch:
        run_path = str(self.data / run_id)
        env = {"ODIN_TASK_ID": f"{run_id}--{spec.name}", "ODIN_ATTEMPT": str(attempt)}
        return Launch(run_id, spec, attempt, work_path=str(self.data), run_path=run_path, env=env)

    def of(self, name: str, attempt: int = 1) -> list[AttemptUpdate]:
        return [u for u in self.updates if u.name == name and u.attempt == attempt]

    async def wait(self, name: str, statuses: Iterable[TaskStatus] = TERMINAL, attempt: int = 1, **kw: Any):
        wanted = set(statuses)
        message = kw.get("message")

        def found() -> AttemptUpdate | None:
            for u in self.of(name, attempt):
                if u.status in wanted and (message is None or message in u.message):
                    return u
            return None

        async def loop() -> AttemptUpdate:
            while (hit := found()) is None:
                self._changed.clear()
                await self._changed.wait()
            return hit

        return await asyncio.wait_for(loop(), kw.get("timeout_s", WAIT_S))

    async def run(self, spec: TaskSpec, attempt: int = 1, run_id: str = "run-abc123", **annotations: str):
        if annotations:
            self.annotator.per_task[spec.name] = annotations
        await self.executor.submit(self.launch(spec, attempt, run_id))
        return await self.wait(spec.name, attempt=attempt)


def objects_with_run_label(api: client.ApiClient, namespace: str, run_id: str) -> list[str]:
    """Every object of the kinds Odin creates that still carries the run's label."""
    selector = f"{RUN_LABEL}={run_id}"
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    custom = client.CustomObjectsApi(api)
    found = [f"pod/{p.metadata.name}" for p in core.list_namespaced_pod(namespace, label_selector=selector).items]
    found += [f"svc/{s.metadata.name}" for s in core.list_namespaced_service(namespace, label_selector=selector).items]
    found += [
        f"deploy/{d.metadata.name}" for d in apps.list_namespaced_deployment(namespace, label_selector=selector).items
    ]
    found += [
        f"rs/{d.metadata.name}" for d in apps.list_namespaced_replica_set(namespace, label_selector=selector).items
    ]
    found += [f"job/{j.metadata.name}" for j in batch.list_namespaced_job(namespace, label_selector=selector).items]
    for group, version, plural in (
        ("kubeflow.org", "v1", "pytorchjobs"),
        ("kubeflow.org", "v1", "tfjobs"),
        ("kubeflow.org", "v1", "mpijobs"),
    ):
        items = custom.list_namespaced_custom_object(group, version, namespace, plural, label_selector=selector)
        found += [f"{plural}/{o['metadata']['name']}" for o in items["items"]]
    return found


async def wait_no_objects(api: client.ApiClient, namespace: str, run_id: str, timeout_s: float = WAIT_S) -> list[str]:
    """Objects go asynchronously (garbage collector, kwok's pod-delete stage): wait for none to be left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    left = await asyncio.to_thread(objects_with_run_label, api, namespace, run_id)
    while left and loop.time() < deadline:
        await asyncio.sleep(0.25)
        left = await asyncio.to_thread(objects_with_run_label, api, namespace, run_id)
    return left
