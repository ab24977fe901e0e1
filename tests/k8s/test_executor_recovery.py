"""Trustworthy runs on the real control plane: adoption after a restart or takeover, idempotent submits,
detaching, watches that survive 410 Gone and broken streams, refusals, missing CRDs, idle controllers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from executor_support import WAIT_S, Harness, lasts, outputs, task
from kubernetes import client
from odin_core.engine import Engine
from odin_core.errors import PermanentError
from odin_core.executors.kubernetes import KubernetesExecutor, register_handler
from odin_core.executors.kubernetes.handlers.training import TrainingJobHandler
from odin_core.executors.kubernetes.informer import Informer
from odin_core.executors.kubernetes.resources import PODS, Resource
from odin_core.model import RunStatus, TaskRecord, TaskStatus
from odin_core.settings import KubernetesSettings
from odin_core.spec.model import PipelineSpec, Resources
from odin_core.store.sqlite import SqliteStore

RUN = "run-abc123"
IDLE = Resource("test.odin.ml", "v1", "idlejobs", "IdleJob")
NO_CRD = Resource("test.odin.ml", "v1", "nocrdjobs", "NoCrdJob")


class IdleJobHandler(TrainingJobHandler):
    """A training-like kind whose CRD the test installs and for which no controller runs."""

    kind = "IdleJob"
    resource = IDLE
    replica_specs = "replicaSpecs"
    primary = "Main"
    controller = "the IdleJob operator"


class NoCrdJobHandler(IdleJobHandler):
    kind = "NoCrdJob"
    resource = NO_CRD


register_handler(IdleJobHandler())
register_handler(NoCrdJobHandler())


def idle_crd() -> dict:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": IDLE.crd},
        "spec": {
            "group": IDLE.group,
            "names": {"kind": IDLE.kind, "plural": IDLE.plural, "singular": "idlejob"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def idle_kind(kube):
    ext = client.ApiextensionsV1Api(kube.api_client)
    try:
        ext.create_custom_resource_definition(idle_crd())
    except client.exceptions.ApiException as e:
        if e.status != 409:
            raise
    w = __import__("kubernetes").watch.Watch()
    for event in w.stream(
        ext.list_custom_resource_definition, field_selector=f"metadata.name={IDLE.crd}", timeout_seconds=30
    ):
        conds = event["object"].status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conds):
            w.stop()
    yield IDLE


async def test_a_second_executor_adopts_what_the_first_started_and_creates_nothing(kube, namespace, tmp_path):
    first = Harness(kube.kubeconfig, namespace, tmp_path / "data")
    first.annotator.per_task.update(slow={**lasts(3), **outputs(ok=True)}, unrecorded=lasts(3))
    slow = await first.executor.submit(first.launch(task("slow")))
    await first.executor.submit(first.launch(task("unrecorded")))  # killed before it recorded the id
    await first.wait("slow", [TaskStatus.RUNNING])
    await first.executor.close()  # the core died; its pods keep running

    second = Harness(kube.kubeconfig, namespace, tmp_path / "data")
    try:
        records = [
            TaskRecord(RUN, "slow", status=TaskStatus.RUNNING, attempt=1, resource_id=slow),
            TaskRecord(RUN, "unrecorded", status=TaskStatus.PENDING, attempt=1),
            TaskRecord(RUN, "gone", status=TaskStatus.RUNNING, attempt=1, resource_type="Job", resource_id="x-1"),
            TaskRecord(RUN, "fresh", status=TaskStatus.PENDING, attempt=1),
        ]
        never = await second.executor.recover(records)
        assert [r.name for r in never] == ["fresh"]  # nothing exists, nothing was recorded
        lost = await second.wait("gone")
        assert lost.status is TaskStatus.FAILED and lost.message.startswith("lost:")
        done = await second.wait("slow")
        assert done.status is TaskStatus.SUCCEEDED and done.outputs == {"ok": True}
        assert (await second.wait("unrecorded")).status is TaskStatus.SUCCEEDED
        assert "create" not in second.executor.api_requests  # adopted, never created again
        log = (second.data / RUN / ".odin" / "logs" / "slow.log").read_text()
        assert "odin fake container" in log  # logs follow as if never interrupted
    finally:
        await second.executor.close()


async def test_an_attempt_that_ended_while_no_core_followed_it_is_reported_before_recover_returns(
    kube, namespace, tmp_path
):
    """Before, its end came later, from a task of its own: a core that adopted the run to stop it cancelled a task
    that had succeeded (the worker decides on what it knows once recover returns)."""
    first = Harness(kube.kubeconfig, namespace, tmp_path / "data")
    first.annotator.per_task.update(quick=lasts(1))
    name = await first.executor.submit(first.launch(task("quick")))
    await first.wait("quick", [TaskStatus.RUNNING])
    await first.executor.close()  # the core died; its pod runs on, then ends
    core = client.CoreV1Api(kube.api_client)
    for _ in range(int(WAIT_S * 10)):
        if core.read_namespaced_pod(name, namespace).status.phase == "Succeeded":
            break
        await asyncio.sleep(0.1)
    second = Harness(kube.kubeconfig, namespace, tmp_path / "data")
    try:
        record = TaskRecord(RUN, "quick", status=TaskStatus.RUNNING, attempt=1, resource_id=name)
        assert await second.executor.recover([record]) == []
        assert [u.status for u in second.of("quick")] == [TaskStatus.SUCCEEDED]  # already, not later
    finally:
        await second.executor.close()


async def test_submitting_an_attempt_another_core_created_adopts_it(kube, namespace, tmp_path):
    first = Harness(kube.kubeconfig, namespace, tmp_path / "data")
    first.annotator.per_task["once"] = {**lasts(2), **outputs(n=1)}
    name = await first.executor.submit(first.launch(task("once")))
    await first.executor.close()
    second = Harness(kube.kubeconfig, namespace, tmp_path / "data")
    second.annotator.per_task["once"] = {**lasts(2), **outputs(n=1)}
    try:
        assert await second.executor.submit(second.launch(task("once"))) == name  # AlreadyExists: adopted
        assert await second.executor.submit(second.launch(task("once"))) == name  # and again: the same
        done = await second.wait("once")
        assert done.status is TaskStatus.SUCCEEDED and done.outputs == {"n": 1}
        pods = client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace, label_selector="odin.ml/task=once")
        assert [p.metadata.name for p in pods.items] == [name]
        assert second.executor.api_requests["create"] == 1  # the one that was answered AlreadyExists
    finally:
        await second.executor.close()


async def test_detach_stops_following_and_touches_nothing(kube, namespace, tmp_path):
    h = Harness(kube.kubeconfig, namespace, tmp_path / "data")
    h.annotator.per_task["long"] = lasts(2)
    try:
        name = await h.executor.submit(h.launch(task("long")))
        await h.wait("long", [TaskStatus.RUNNING])
        await h.executor.detach(RUN)
        assert h.executor.attempts.of_run(RUN) == []
        core = client.CoreV1Api(kube.api_client)
        await _wait_pod_phase(core, namespace, name, "Succeeded")  # it went on without us
        assert [u.status for u in h.of("long") if u.status is TaskStatus.SUCCEEDED] == []
        assert all(not inf.cache for inf in h.executor._informers.values() if inf.resource == PODS)
    finally:
        await h.executor.close()


async def _wait_pod_phase(core, namespace: str, name: str, phase: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        pod = await asyncio.to_thread(core.read_namespaced_pod, name, namespace)
        if pod.status.phase == phase:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"pod {name} not {phase} after {WAIT_S}s")


async def _changed(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), WAIT_S)
    event.clear()


async def test_a_watch_opened_at_a_compacted_resource_version_relists(kube, namespace, tmp_path):
    """The API server answers a watch from a long-gone resourceVersion with 410 Gone: relist, then watch."""
    executor = KubernetesExecutor(tmp_path, KubernetesSettings(kubeconfig=kube.kubeconfig, namespace=namespace))
    core = client.CoreV1Api(kube.api_client)
    pod = {"metadata": {"name": "before", "labels": {"odin.ml/run": "r"}}, "spec": _spec()}
    await asyncio.to_thread(core.create_namespaced_pod, namespace, pod)
    seen = asyncio.Event()
    names: list[str] = []

    def on_event(kind: str, obj: dict) -> None:
        names.append(obj["metadata"]["name"])
        seen.set()

    inf = Informer(await executor.connect(), PODS, namespace, "odin.ml/run", on_event)
    inf.rv = "1"  # as if resumed from a version compacted away long ago
    try:
        inf.start()
        await asyncio.wait_for(inf.synced.wait(), WAIT_S)
        assert inf.gone >= 1 and inf.relists >= 1 and "before" in inf.cache
        pod["metadata"]["name"] = "after"
        await asyncio.to_thread(core.create_namespaced_pod, namespace, pod)
        while "after" not in names:
            await _changed(seen)
    finally:
        await inf.aclose()
        await executor.close()


async def test_a_broken_watch_resumes_from_the_advanced_resource_version(kube, namespace, tmp_path):
    executor = KubernetesExecutor(tmp_path, KubernetesSettings(kubeconfig=kube.kubeconfig, namespace=namespace))
    core = client.CoreV1Api(kube.api_client)
    seen = asyncio.Event()
    names: list[str] = []

    def on_event(kind: str, obj: dict) -> None:
        names.append(obj["metadata"]["name"])
        seen.set()

    inf = Informer(await executor.connect(), PODS, namespace, "odin.ml/run", on_event)
    try:
        inf.start()
        await asyncio.wait_for(inf.synced.wait(), WAIT_S)
        listed_at = inf.rv
        pod = {"metadata": {"name": "one", "labels": {"odin.ml/run": "r"}}, "spec": _spec()}
        await asyncio.to_thread(core.create_namespaced_pod, namespace, pod)
        while "one" not in names:
            await _changed(seen)
        assert int(inf.rv or 0) > int(listed_at or 0)
        assert inf._resp is not None
        inf.break_stream()  # the connection breaks mid-stream
        pod["metadata"]["name"] = "two"
        await asyncio.to_thread(core.create_namespaced_pod, namespace, pod)
        while "two" not in names:
            await _changed(seen)
        assert inf.relists == 1 and inf.gone == 0  # resumed, not relisted
    finally:
        await inf.aclose()
        await executor.close()


def _spec() -> dict:
    return {"restartPolicy": "Never", "containers": [{"name": "main", "image": "odin/task:test"}]}


async def test_a_refused_object_fails_the_run_with_the_api_servers_message(kube, namespace, tmp_path: Path):
    store = SqliteStore(tmp_path / "odin.db")
    await store.open()
    settings = KubernetesSettings(kubeconfig=kube.kubeconfig, namespace=namespace)
    executor = KubernetesExecutor(tmp_path / "data", settings)
    engine = Engine(store, executor, root_path=tmp_path, data_path=tmp_path / "data")
    try:
        await engine.start(adopt=False)
        bad = task("bad-cpu", cpu=Resources(requests="lots"))
        run = await engine.submit(PipelineSpec("refused", (bad,), job="refused"))
        final = await asyncio.wait_for(engine.wait(run.run_id), WAIT_S)
        [rec] = await store.get_tasks(run.run_id)
    finally:
        await engine.close()
        await executor.close()
        await store.close()
    assert final.status is RunStatus.TERMINATED
    assert rec.status is TaskStatus.FAILED
    assert "rejected by the API server" in rec.message and "quantities must match the regular expression" in rec.message


async def test_a_kind_whose_crd_is_missing_fails_at_submit_naming_it(kube, namespace, tmp_path):
    h = Harness(kube.kubeconfig, namespace, tmp_path / "data")
    try:
        with pytest.raises(PermanentError) as err:
            await h.executor.submit(h.launch(task("t", "NoCrdJob")))
        assert "NoCrdJob" in str(
            err.value
        ) and "CustomResourceDefinition nocrdjobs.test.odin.ml is not installed" in str(err.value)
    finally:
        await h.executor.close()


async def test_a_kind_no_controller_acts_on_says_so_then_fails(kube, namespace, tmp_path, idle_kind):
    store = SqliteStore(tmp_path / "odin.db")
    await store.open()
    settings = KubernetesSettings(
        kubeconfig=kube.kubeconfig, namespace=namespace, no_controller_after_s=1, pending_timeout_s=4
    )
    executor = KubernetesExecutor(tmp_path / "data", settings)
    engine = Engine(store, executor, root_path=tmp_path, data_path=tmp_path / "data")
    try:
        await engine.start(adopt=False)
        run = await engine.submit(PipelineSpec("idle", (task("train", "IdleJob"),), job="idle"))
        final = await asyncio.wait_for(engine.wait(run.run_id), WAIT_S)
        [rec] = await store.get_tasks(run.run_id)
        events = await store.events(run.run_id)
    finally:
        await engine.close()
        await executor.close()
        await store.close()
    name = rec.resource_id
    warning = f"no controller has acted on IdleJob {name} for 1 s — is the IdleJob operator installed?"
    assert any(e.kind == "task" and e.status == "PENDING" and e.message == warning for e in events), events
    assert final.status is RunStatus.TERMINATED and rec.status is TaskStatus.FAILED
    assert rec.message == f"still pending after 4s: {warning}"


async def test_logs_honour_the_requests_namespace(kube, namespace, tmp_path):
    """A core serving several namespaces: LOGS for a task in another namespace reads that namespace's pods."""
    core = client.CoreV1Api(kube.api_client)
    labels = {"odin.ml/run": RUN, "odin.ml/task": "elsewhere", "odin.ml/attempt": "1"}
    pod = {"metadata": {"name": f"{RUN}--elsewhere-1", "labels": labels}, "spec": _spec()}
    await asyncio.to_thread(core.create_namespaced_pod, namespace, pod)
    await _wait_pod_phase(core, namespace, pod["metadata"]["name"], "Succeeded")
    settings = KubernetesSettings(kubeconfig=kube.kubeconfig, namespace="default")
    executor = KubernetesExecutor(tmp_path / "data", settings)
    try:
        record = TaskRecord(RUN, "elsewhere", status=TaskStatus.SUCCEEDED, attempt=1)
        here = [line async for line in executor.logs(record)]
        there = [line async for line in executor.logs(record, namespace=namespace)]
    finally:
        await executor.close()
    assert here == [] and any("odin fake container" in line for line in there)
