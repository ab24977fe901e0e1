"""Every kind the Kubernetes executor knows, against the real local control plane (kwok nodes)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from executor_support import WAIT_S, Harness, fails, lasts, outputs, task, wait_no_objects
from kubernetes import client
from odin_core.errors import PermanentError
from odin_core.executors.kubernetes import logs as L
from odin_core.model import TaskRecord, TaskStatus
from odin_core.spec.model import Resources

RUN = "run-abc123"
BATCH_KINDS = ["Pod", "Job", "PyTorchJob", "TFJob", "MPIJob", "ElasticJob"]
TRAINING = {"PyTorchJob", "TFJob", "MPIJob", "ElasticJob"}


@pytest.fixture
async def harness(kube, namespace, tmp_path: Path):
    """The training kinds are run by the real Kubeflow training operator of the local control plane."""
    h = Harness(kube.kubeconfig, namespace, tmp_path / "data", pending_timeout_s=60)
    yield h
    await h.executor.close()


@pytest.mark.parametrize("kind", BATCH_KINDS)
async def test_batch_kind_succeeds_with_outputs_from_the_termination_message(harness, kube, namespace, kind):
    spec = task("train", kind, num_workers=2 if kind in TRAINING else 1)
    done = await harness.run(spec, **outputs(model="s3://m/1", acc=0.9))
    assert done.status is TaskStatus.SUCCEEDED, done.message
    assert done.outputs == {"model": "s3://m/1", "acc": 0.9}
    assert TaskStatus.RUNNING in {u.status for u in harness.of("train")}
    log = (harness.data / RUN / ".odin" / "logs" / "train.log").read_text()
    assert "odin fake container" in log  # captured when the attempt ended


@pytest.mark.parametrize("kind", BATCH_KINDS)
async def test_batch_kind_fails_with_the_exit_code_and_message(harness, kind):
    done = await harness.run(task("bad", kind, num_workers=1), **fails(3, "CUDA out of memory"))
    assert done.status is TaskStatus.FAILED
    assert "CUDA out of memory" in done.message
    assert done.exit_code == 3


@pytest.mark.parametrize("kind", ["Deployment", "Service"])
async def test_long_running_kinds_succeed_when_available_and_stay_up(harness, kube, namespace, kind):
    done = await harness.run(task("serve", kind, num_workers=2, env={"ODIN_SERVICE_PORTS": "http:8080"}))
    assert done.status is TaskStatus.SUCCEEDED and "available" in done.message
    name = done.resource_id
    dep = client.AppsV1Api(kube.api_client).read_namespaced_deployment(name, namespace)
    assert dep.status.available_replicas == 2
    if kind == "Service":
        svc = client.CoreV1Api(kube.api_client).read_namespaced_service(name, namespace)
        assert svc.spec.ports[0].port == 8080
    removed = await harness.executor.cleanup(RUN, [TaskRecord(RUN, "serve", resource_type=kind)])
    assert removed == {"serve": True}
    assert await wait_no_objects(kube.api_client, namespace, RUN) == []


async def test_invalid_spec_is_rejected_with_the_api_servers_message(harness):
    spec = task("bad-cpu", cpu=Resources(requests="lots"))
    with pytest.raises(PermanentError) as err:
        await harness.executor.submit(harness.launch(spec))
    assert "rejected by the API server" in str(err.value)
    assert "quantities must match the regular expression" in str(err.value)
    assert harness.executor.attempts.get((RUN, "bad-cpu", 1)) is None


async def test_a_simple_pod_task_costs_two_writes(harness, kube, namespace):
    done = await harness.run(task("hello"), **outputs(x=1))
    assert done.status is TaskStatus.SUCCEEDED
    assert await harness.executor.cleanup(RUN, [TaskRecord(RUN, "hello")]) == {"hello": True}
    requests = harness.executor.api_requests
    assert requests.get("create") == 1 and requests.get("delete") == 1
    assert harness.executor.client.writes == 2
    assert "patch" not in requests and "update" not in requests
    assert await wait_no_objects(kube.api_client, namespace, RUN) == []


async def test_gpus_that_fit_are_scheduled(harness):
    done = await harness.run(task("eight", "PyTorchJob", num_gpus=8, num_workers=1))
    assert done.status is TaskStatus.SUCCEEDED, done.message


async def test_unschedulable_gpus_wait_with_the_schedulers_reason_then_fail(kube, namespace, tmp_path):
    h = Harness(kube.kubeconfig, namespace, tmp_path / "data", pending_timeout_s=3)
    try:
        await h.executor.submit(h.launch(task("huge", num_gpus=16)))
        waiting = await h.wait("huge", [TaskStatus.PENDING], message="Insufficient nvidia.com/gpu")
        assert "unschedulable" in waiting.message
        done = await h.wait("huge")
        assert done.status is TaskStatus.FAILED
        assert "still pending after 3s" in done.message and "Insufficient nvidia.com/gpu" in done.message
        assert await wait_no_objects(kube.api_client, namespace, RUN) == []  # removed so it holds nothing
    finally:
        await h.executor.close()


async def test_an_image_that_cannot_be_pulled_fails_the_attempt(harness, kube, namespace):
    spec = task("pull", node_selector={"no-such-node": "x"})  # stays unscheduled: we play the kubelet
    name = await harness.executor.submit(harness.launch(spec))
    await harness.wait("pull", [TaskStatus.PENDING], message="unschedulable")
    status = {"status": {"containerStatuses": [_waiting("main", "ErrImagePull", "pull access denied")]}}
    await asyncio.to_thread(client.CoreV1Api(kube.api_client).patch_namespaced_pod_status, name, namespace, status)
    done = await harness.wait("pull")
    assert done.status is TaskStatus.FAILED
    assert "ErrImagePull: pull access denied" in done.message


def _waiting(name: str, reason: str, message: str) -> dict:
    return {
        "name": name,
        "image": "odin/task:test",
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


async def test_logs_outlive_the_pod_and_events_explain_it(harness, kube, namespace):
    done = await harness.run(task("logged"))
    record = TaskRecord(RUN, "logged", status=TaskStatus.SUCCEEDED, attempt=1, resource_id=done.resource_id)
    events = await harness.executor.events(RUN, "logged")
    assert any(e["reason"] == "Scheduled" and e["source"] == "default-scheduler" for e in events)
    await harness.executor.cleanup(RUN, [record])
    assert await wait_no_objects(kube.api_client, namespace, RUN) == []
    lines = [line async for line in harness.executor.logs(record)]
    assert any("odin fake container" in line for line in lines)
    assert [line async for line in harness.executor.logs(record, lines=1)] == lines[-1:]


async def test_a_full_disk_under_the_captured_logs_holds_the_end_until_the_log_is_written(
    kube, namespace, small_disk, caplog
):
    """Before: the append's ENOSPC was logged as a traceback and the task reported done with its log lost."""
    h = Harness(kube.kubeconfig, namespace, small_disk.path / "data", pending_timeout_s=60)
    try:
        small_disk.fill()
        await h.executor.submit(h.launch(task("logged")))
        await h.wait("logged", [TaskStatus.RUNNING])
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while "is full" not in caplog.text:
            assert asyncio.get_running_loop().time() < deadline, "no warning about the full disk"
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.5)  # two more tries of the write, refused
        assert [u.status for u in h.of("logged") if u.status.is_terminal] == []
        assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
        pods = await asyncio.to_thread(client.CoreV1Api(kube.api_client).list_namespaced_pod, namespace)
        assert [p.metadata.name for p in pods.items] != []  # not removed before its log is kept
        small_disk.free()
        done = await h.wait("logged")
        assert done.status is TaskStatus.SUCCEEDED
        log_text = (h.data / RUN / ".odin" / "logs" / "logged.log").read_text()
        assert log_text.count("odin fake container started") == 1, log_text  # written once, whole
        assert log_text.endswith("odin fake container finished\n")
    finally:
        await h.executor.close()


async def test_multi_pod_logs_are_prefixed_by_pod(harness):
    done = await harness.run(task("dist", "PyTorchJob", num_workers=2))
    lines = (harness.data / RUN / ".odin" / "logs" / "dist.log").read_text().splitlines()
    pods = {line.split("]")[0].strip("[") for line in lines}
    assert pods == {f"{done.resource_id}-master-0", f"{done.resource_id}-worker-0", f"{done.resource_id}-worker-1"}


async def test_follow_streams_a_running_task_until_it_ends(harness):
    await harness.executor.submit(harness.launch(task("follow")))
    harness.annotator.per_task["follow"] = lasts(2)
    await harness.wait("follow", [TaskStatus.RUNNING])
    record = TaskRecord(RUN, "follow", status=TaskStatus.RUNNING, attempt=1)
    lines = [line async for line in harness.executor.logs(record, follow=True)]
    assert any("odin fake container" in line for line in lines)


def test_a_follows_streams_that_outlive_its_loop_end_without_raising(kube, namespace, tmp_path: Path, monkeypatch):
    """A follow's reader threads can end after the event loop that read them has closed (a follow abandoned by a
    server that stopped): each drops what is left instead of raising ``Event loop is closed`` in its thread."""
    raised: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", raised.append)

    async def follow_then_stop() -> tuple[L.Follower, str]:
        h = Harness(kube.kubeconfig, namespace, tmp_path / "data", pending_timeout_s=60)
        try:
            await h.executor.submit(h.launch(task("follow")))
            await h.wait("follow", [TaskStatus.RUNNING])
            attempt = h.executor.attempts.latest(RUN, "follow")
            assert attempt is not None
            follower = L.Follower(await h.executor.connect(), namespace, None, None)
            pod = attempt.pod_names()[0]
            follower.add(pod, False)
            assert "odin fake container" in await asyncio.wait_for(follower.queue.get(), 30)  # the stream is open
            return follower, pod
        finally:
            await h.executor.close()

    follower, pod = asyncio.run(follow_then_stop())
    streams = [t for t in threading.enumerate() if t.name == f"odin-log-{pod}"]
    assert streams, "the stream ended with its loop: this test would not see the fault"
    follower.close()  # the loop has closed: the streams end now, and each sends its end marker to a closed loop
    for t in streams:
        t.join(10)
    assert [t for t in streams if t.is_alive()] == []
    assert raised == []
