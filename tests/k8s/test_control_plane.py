"""The local control plane behaves like the cluster Odin targets: real API server validation,
real Job controller and scheduler, and kwok stages that move pods through their phases.

Every wait is a watch with a timeout, never a sleep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

WAIT_TIMEOUT_S = 30
KUBEFLOW = ("kubeflow.org", "v1")
GPU = "nvidia.com/gpu"
GPU_NODES = {"kwok-gpu-0", "kwok-gpu-1"}
# Label and annotation names shared with Odin's executors.
RUN_LABEL = "odin.ml/run"
TASK_LABEL = "odin.ml/task"
LONG_RUNNING_LABEL = "odin.ml/long-running"
EXIT_CODE_ANNOTATION = "odin.ml/simulate-exit-code"
MESSAGE_ANNOTATION = "odin.ml/simulate-message"
OUTPUTS_ANNOTATION = "odin.ml/simulate-outputs"
DURATION_ANNOTATION = "odin.ml/simulate-duration"


# --- helpers ---------------------------------------------------------------------------------


def watch_until(list_fn: Callable, predicate: Callable, *args, create: Callable | None = None, **kwargs) -> list:
    """List, call `create` (if any), then watch from the listed resourceVersion until
    `predicate(obj)`; returns every object state seen, so tests can check the path taken."""
    listed = list_fn(*args, **kwargs)
    if create is not None:
        create()
    seen = list(listed.items)
    if any(predicate(obj) for obj in seen):
        return seen
    rv = listed.metadata.resource_version
    stream = watch.Watch().stream(list_fn, *args, resource_version=rv, timeout_seconds=WAIT_TIMEOUT_S, **kwargs)
    for event in stream:
        seen.append(event["object"])
        if predicate(event["object"]):
            return seen
    raise AssertionError(f"condition not met within {WAIT_TIMEOUT_S}s; last states: {seen[-3:]}")


def pod_manifest(name: str, *, annotations=None, labels=None, gpus: int = 0) -> dict:
    resources = {"limits": {GPU: str(gpus)}} if gpus else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "odin/task:test", "resources": resources}],
        },
    }


def by_name(name: str) -> dict:
    return {"field_selector": f"metadata.name={name}"}


def phase_is(*phases: str) -> Callable:
    return lambda pod: pod.status.phase in phases


def terminated(pod) -> client.V1ContainerStateTerminated:
    return pod.status.container_statuses[0].state.terminated


def pytorchjob(name: str, replica_specs) -> dict:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": replica_specs},
    }


def replica(replicas=1) -> dict:
    template = {"spec": {"containers": [{"name": "pytorch", "image": "odin/train:test"}]}}
    return {"replicas": replicas, "restartPolicy": "OnFailure", "template": template}


@pytest.fixture
def core(kube) -> client.CoreV1Api:
    return client.CoreV1Api(kube.api_client)


@pytest.fixture
def batch(kube) -> client.BatchV1Api:
    return client.BatchV1Api(kube.api_client)


@pytest.fixture
def custom(kube) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_client)


def run_pod(core, namespace: str, manifest: dict, until: Callable) -> list:
    """Create a pod and watch it until `until(pod)`; returns every state seen."""
    return watch_until(
        core.list_namespaced_pod,
        until,
        namespace,
        create=lambda: core.create_namespaced_pod(namespace, manifest),
        **by_name(manifest["metadata"]["name"]),
    )


# --- version and launcher --------------------------------------------------------------------


def test_version_is_pinned_release(kube):
    info = client.VersionApi(kube.api_client).get_code()
    assert (info.git_version, info.major, info.minor) == ("v1.36.3", "1", "36")


def test_launcher_status_reports_healthy(kube):
    if kube.state_dir is None:
        pytest.skip("cluster given by ODIN_TEST_KUBECONFIG is not managed by the launcher")
    launcher = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "k8s", "cluster.py")
    env = {**os.environ, "ODIN_K8S_STATE": str(kube.state_dir)}
    result = subprocess.run([sys.executable, launcher, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(maxsplit=1) for line in result.stdout.splitlines())
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        assert lines[component].startswith("running"), result.stdout
    assert lines["cluster"] == "healthy"
    assert kube.kubeconfig in result.stdout


# --- pods driven by kwok stages ----------------------------------------------------------------


def test_pod_runs_then_succeeds(core, namespace):
    seen = run_pod(core, namespace, pod_manifest("plain"), phase_is("Succeeded"))
    phases = [pod.status.phase for pod in seen]
    assert "Running" in phases
    assert phases.index("Running") < phases.index("Succeeded")
    assert terminated(seen[-1]).exit_code == 0


def test_outputs_annotation_becomes_termination_message(core, namespace):
    outputs = json.dumps({"accuracy": 0.93, "model": 's3://bucket/model "v1"'})
    manifest = pod_manifest("outputs", annotations={OUTPUTS_ANNOTATION: outputs})
    pod = run_pod(core, namespace, manifest, phase_is("Succeeded", "Failed"))[-1]
    assert pod.status.phase == "Succeeded"
    assert json.loads(terminated(pod).message) == json.loads(outputs)


@pytest.mark.parametrize(("code", "expected"), [("3", 3), ("137", 137), ("not-a-number", 1)])
def test_failure_annotation_fails_pod_with_exit_code_and_message(core, namespace, code, expected):
    annotations = {EXIT_CODE_ANNOTATION: code, MESSAGE_ANNOTATION: "CUDA out of memory"}
    manifest = pod_manifest("fails", annotations=annotations)
    pod = run_pod(core, namespace, manifest, phase_is("Succeeded", "Failed"))[-1]
    assert pod.status.phase == "Failed"
    state = terminated(pod)
    assert (state.exit_code, state.reason, state.message) == (expected, "Error", "CUDA out of memory")


def test_duration_annotation_delays_completion(core, namespace):
    manifest = pod_manifest("slow", annotations={DURATION_ANNOTATION: "3s"})
    pod = run_pod(core, namespace, manifest, phase_is("Succeeded"))[-1]
    state = terminated(pod)
    assert (state.finished_at - state.started_at).total_seconds() >= 2.5


def deployment_manifest(name: str) -> dict:
    pod = pod_manifest(name, labels={"app": name})
    pod["spec"]["restartPolicy"] = "Always"
    template = {"metadata": {"labels": {"app": name}}, "spec": pod["spec"]}
    spec = {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def start_long_running(kube, namespace: str, how: str) -> None:
    core = client.CoreV1Api(kube.api_client)
    if how == "label":
        manifest = pod_manifest("server", labels={LONG_RUNNING_LABEL: "true", "app": "server"})
        core.create_namespaced_pod(namespace, manifest)
    else:
        client.AppsV1Api(kube.api_client).create_namespaced_deployment(namespace, deployment_manifest("server"))
    watch_until(core.list_namespaced_pod, phase_is("Running"), namespace, label_selector="app=server")


@pytest.mark.parametrize("how", ["label", "deployment"])
def test_long_running_pods_stay_running(kube, core, namespace, how):
    start_long_running(kube, namespace, how)
    # A short pod started later completes first: had the server pod been subject to the same
    # completion stage, it would have completed before it.
    run_pod(core, namespace, pod_manifest("short"), phase_is("Succeeded"))
    pods = core.list_namespaced_pod(namespace, label_selector="app=server").items
    assert [pod.status.phase for pod in pods] == ["Running"]


def test_pod_logs_are_served_through_kwok(core, namespace):
    run_pod(core, namespace, pod_manifest("logs"), phase_is("Succeeded"))
    text = core.read_namespaced_pod_log("logs", namespace, container="main")
    assert isinstance(text, str) and text.strip()


# --- scheduling -------------------------------------------------------------------------------


def test_gpu_request_that_fits_is_scheduled_on_a_gpu_node(core, namespace):
    pod = run_pod(core, namespace, pod_manifest("gpu8", gpus=8), phase_is("Running"))[-1]
    assert pod.spec.node_name in GPU_NODES


def unschedulable(pod) -> bool:
    conditions = pod.status.conditions or []
    return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions)


def test_gpu_request_larger_than_any_node_stays_pending(core, namespace):
    pod = run_pod(core, namespace, pod_manifest("gpu16", gpus=16), unschedulable)[-1]
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    condition = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert f"Insufficient {GPU}" in condition.message
    events = watch_until(
        core.list_namespaced_event,
        lambda e: e.reason == "FailedScheduling",
        namespace,
        field_selector="involvedObject.name=gpu16",
    )
    assert any(f"Insufficient {GPU}" in e.message for e in events if e.reason == "FailedScheduling")


# --- Jobs and training CRDs --------------------------------------------------------------------


def job_condition(job, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in job.status.conditions or [])


def job_manifest(name: str, labels: dict) -> dict:
    pod = pod_manifest(name, labels=labels)
    template = {"metadata": {"labels": labels}, "spec": pod["spec"]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {"backoffLimit": 0, "template": template},
    }


def test_job_completes_through_job_controller(batch, namespace):
    batch.create_namespaced_job(namespace, job_manifest("train", {RUN_LABEL: "r1"}))
    jobs = watch_until(
        batch.list_namespaced_job,
        lambda job: job_condition(job, "Complete"),
        namespace,
        **by_name("train"),
    )
    assert jobs[-1].status.succeeded == 1


def test_valid_pytorchjob_is_stored(custom, namespace):
    body = pytorchjob("ddp", {"Master": replica(), "Worker": replica(2)})
    custom.create_namespaced_custom_object(*KUBEFLOW, namespace, "pytorchjobs", body)
    stored = custom.get_namespaced_custom_object(*KUBEFLOW, namespace, "pytorchjobs", "ddp")
    assert stored["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param({}, "spec.pytorchReplicaSpecs: Required value", id="missing-replica-specs"),
        pytest.param(
            {"pytorchReplicaSpecs": {"Worker": replica("two")}},
            "spec.pytorchReplicaSpecs.Worker.replicas: Invalid value",
            id="replicas-not-integer",
        ),
        pytest.param(
            {"pytorchReplicaSpecs": {"Launcher": replica()}},
            "replica types must be one of: Master, Worker",
            id="unknown-replica-type",
        ),
        pytest.param(
            {"pytorchReplicaSpecs": {"Worker": {"replicas": 1}}},
            "spec.pytorchReplicaSpecs.Worker.template: Required value",
            id="missing-template",
        ),
    ],
)
def test_invalid_pytorchjob_is_rejected_by_api_server(custom, namespace, spec, message):
    body = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "bad"}}
    body["spec"] = spec
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(*KUBEFLOW, namespace, "pytorchjobs", body)
    assert raised.value.status == 422
    assert message in json.loads(raised.value.body)["message"]


@pytest.mark.parametrize(
    ("group", "version", "plural", "kind", "spec"),
    [
        ("kubeflow.org", "v1", "tfjobs", "TFJob", {"tfReplicaSpecs": {"Worker": replica()}}),
        (
            "kubeflow.org",
            "v1",
            "mpijobs",
            "MPIJob",
            {"slotsPerWorker": 8, "mpiReplicaSpecs": {"Launcher": replica(), "Worker": replica()}},
        ),
        (
            "elastic.iml.github.io",
            "v1alpha1",
            "elasticjobs",
            "ElasticJob",
            {"distributionStrategy": "AllreduceStrategy", "replicaSpecs": {"worker": replica()}},
        ),
    ],
    ids=["tfjob", "mpijob", "elasticjob"],
)
def test_other_training_crds_accept_valid_objects(custom, namespace, group, version, plural, kind, spec):
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": kind,
        "metadata": {"name": "j"},
        "spec": spec,
    }
    custom.create_namespaced_custom_object(group, version, namespace, plural, body)
    stored = custom.get_namespaced_custom_object(group, version, namespace, plural, "j")
    assert stored["spec"] == spec


def test_pytorchjob_replica_pod_completes_and_status_is_writable(core, custom, namespace):
    """No operator runs: a test plays it, creating the replica pod and writing CR status."""
    job = custom.create_namespaced_custom_object(
        *KUBEFLOW, namespace, "pytorchjobs", pytorchjob("owner", {"Master": replica()})
    )
    manifest = pod_manifest("owner-master-0", labels={"training.kubeflow.org/job-name": "owner"})
    manifest["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "name": "owner",
            "uid": job["metadata"]["uid"],
            "controller": True,
        }
    ]
    run_pod(core, namespace, manifest, phase_is("Succeeded"))
    status = {
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "PyTorchJobSucceeded"}],
        "replicaStatuses": {"Master": {"succeeded": 1}},
    }
    custom.patch_namespaced_custom_object_status(*KUBEFLOW, namespace, "pytorchjobs", "owner", {"status": status})
    stored = custom.get_namespaced_custom_object(*KUBEFLOW, namespace, "pytorchjobs", "owner")
    assert stored["status"]["replicaStatuses"]["Master"]["succeeded"] == 1


# --- cleanup by run label ----------------------------------------------------------------------


def test_deleting_by_run_label_leaves_nothing_behind(core, batch, namespace):
    run = f"run-{uuid.uuid4().hex[:6]}"
    labels = {RUN_LABEL: run, TASK_LABEL: "t"}
    selector = f"{RUN_LABEL}={run}"
    run_pod(core, namespace, pod_manifest("done", labels=labels), phase_is("Succeeded"))
    running = pod_manifest("serving", labels={**labels, LONG_RUNNING_LABEL: "true"})
    running["metadata"]["finalizers"] = ["odin.ml/test-finalizer"]
    run_pod(core, namespace, running, phase_is("Running"))
    batch.create_namespaced_job(namespace, job_manifest("stuck", {**labels, LONG_RUNNING_LABEL: "true"}))
    watch_until(core.list_namespaced_pod, phase_is("Running"), namespace, label_selector="job-name=stuck")

    batch.delete_collection_namespaced_job(namespace, label_selector=selector, propagation_policy="Background")
    core.delete_collection_namespaced_pod(namespace, label_selector=selector)

    for list_fn in (core.list_namespaced_pod, batch.list_namespaced_job):
        wait_gone(list_fn, namespace, selector)


def wait_gone(list_fn: Callable, namespace: str, selector: str) -> None:
    listed = list_fn(namespace, label_selector=selector)
    remaining = {obj.metadata.name for obj in listed.items}
    if not remaining:
        return
    stream = watch.Watch().stream(
        list_fn,
        namespace,
        label_selector=selector,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=WAIT_TIMEOUT_S,
    )
    for event in stream:
        name = event["object"].metadata.name
        if event["type"] == "DELETED":
            remaining.discard(name)
        elif event["type"] == "ADDED":
            remaining.add(name)
        if not remaining:
            return
    raise AssertionError(f"still present after {WAIT_TIMEOUT_S}s: {sorted(remaining)}")
