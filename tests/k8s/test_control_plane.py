"""The local control plane behaves like the cluster Odin targets: real API server validation,
real Job controller and scheduler, and kwok stages that move pods through their phases.

Every wait is a watch with a timeout, never a sleep.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

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


def replica(replicas=1, *, container: str = "pytorch") -> dict:
    template = {"spec": {"containers": [{"name": container, "image": "odin/train:test"}]}}
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
    components = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "training-operator")
    for component in components:
        assert lines[component].startswith("running"), result.stdout
    assert lines["cluster"] == "healthy"
    assert kube.kubeconfig in result.stdout


def test_the_api_server_passes_a_strict_tls_verifier(kube):
    """Python 3.13's default context verifies with VERIFY_X509_STRICT, which refuses a chain whose leaf has no
    Authority Key Identifier: the executor must reach the project's own cluster from every supported Python."""
    if kube.state_dir is None:
        pytest.skip("cluster given by ODIN_TEST_KUBECONFIG is not made by the launcher's PKI")
    if ssl.OPENSSL_VERSION_INFO < (3, 0):
        pytest.skip(f"{ssl.OPENSSL_VERSION} has no strict key-identifier checks to pass")
    pki = Path(kube.state_dir) / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    url = urlparse(kube.api_client.configuration.host)
    with (
        socket.create_connection((url.hostname, url.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=url.hostname) as tls,
    ):
        # the handshake above raised if the chain failed (a cluster made before the PKI had key identifiers:
        # `make cluster-down && make cluster-up`); the answer shows the client certificate was taken too
        tls.sendall(b"GET /api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert tls.recv(64).startswith(b"HTTP/1.1 200"), "the API server refused the admin client certificate"


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
    ("spec", "status", "message"),
    [
        pytest.param({}, 422, "spec.pytorchReplicaSpecs: Required value", id="missing-replica-specs"),
        pytest.param(
            {"pytorchReplicaSpecs": {"Worker": replica("two")}},
            422,
            "spec.pytorchReplicaSpecs.Worker.replicas in body must be of type integer",
            id="replicas-not-integer",
        ),
        pytest.param(
            {"pytorchReplicaSpecs": {"Launcher": replica()}},
            403,
            'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the request: '
            'spec.pytorchReplicaSpecs[Launcher]: Unsupported value: "Launcher"',
            id="unknown-replica-type",
        ),
        pytest.param(
            {"pytorchReplicaSpecs": {"Master": replica(container="main")}},
            403,
            "must have at least one container with name pytorch",
            id="wrong-container-name",
        ),
        pytest.param(
            {"pytorchReplicaSpecs": {"Master": replica(2)}},
            403,
            "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1",
            id="two-masters",
        ),
    ],
)
def test_invalid_pytorchjob_is_rejected_by_the_real_crd_and_webhook(custom, namespace, spec, status, message):
    """422: the operator's own CRD schema (API server); 403: the operator's validating webhook."""
    body = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "bad"}}
    body["spec"] = spec
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(*KUBEFLOW, namespace, "pytorchjobs", body)
    assert raised.value.status == status
    assert message in json.loads(raised.value.body)["message"]


@pytest.mark.parametrize(
    ("plural", "kind", "spec"),
    [
        ("tfjobs", "TFJob", {"tfReplicaSpecs": {"Worker": replica(container="tensorflow")}}),
        (
            "mpijobs",
            "MPIJob",
            {
                "slotsPerWorker": 8,
                "mpiReplicaSpecs": {"Launcher": replica(container="mpi"), "Worker": replica(container="mpi")},
            },
        ),
    ],
    ids=["tfjob", "mpijob"],
)
def test_other_training_crds_accept_valid_objects(custom, namespace, plural, kind, spec):
    body = {"apiVersion": "kubeflow.org/v1", "kind": kind, "metadata": {"name": "j"}, "spec": spec}
    custom.create_namespaced_custom_object(*KUBEFLOW, namespace, plural, body)
    stored = custom.get_namespaced_custom_object(*KUBEFLOW, namespace, plural, "j")
    field = next(k for k in spec if k.endswith("ReplicaSpecs"))
    assert stored["spec"][field].keys() == spec[field].keys()


def job_has(kind: str) -> Callable:
    return lambda job: any(
        c["type"] == kind and c["status"] == "True" for c in (job.get("status") or {}).get("conditions") or []
    )


def watch_job(custom, namespace: str, name: str, until: Callable) -> list:
    """watch_until for a PyTorchJob (custom objects come as dicts)."""
    args = (*KUBEFLOW, namespace, "pytorchjobs")
    listed = custom.list_namespaced_custom_object(*args, **by_name(name))
    seen = list(listed["items"])
    if any(until(job) for job in seen):
        return seen
    rv = listed["metadata"]["resourceVersion"]
    stream = watch.Watch().stream(
        custom.list_namespaced_custom_object,
        *args,
        resource_version=rv,
        timeout_seconds=WAIT_TIMEOUT_S,
        **by_name(name),
    )
    for event in stream:
        seen.append(event["object"])
        if until(event["object"]):
            return seen
    raise AssertionError(f"{name}: condition not met within {WAIT_TIMEOUT_S}s; last states: {seen[-2:]}")


def test_the_training_operator_runs_a_pytorchjob_on_kwok_nodes(core, custom, namespace):
    """The real operator creates the replica pods (owned by the job, with its labels), kwok runs them,
    and the operator writes Succeeded."""
    custom.create_namespaced_custom_object(
        *KUBEFLOW, namespace, "pytorchjobs", pytorchjob("ddp", {"Master": replica(), "Worker": replica(2)})
    )
    seen = watch_job(custom, namespace, "ddp", job_has("Succeeded"))
    assert job_has("Created")(seen[-1]) and seen[-1]["status"]["replicaStatuses"]["Master"]["succeeded"] == 1
    pods = core.list_namespaced_pod(namespace, label_selector="training.kubeflow.org/job-name=ddp").items
    assert sorted(p.metadata.name for p in pods) == ["ddp-master-0", "ddp-worker-0", "ddp-worker-1"]
    assert all(p.metadata.owner_references[0].kind == "PyTorchJob" for p in pods)
    assert {p.metadata.labels["training.kubeflow.org/replica-type"] for p in pods} == {"master", "worker"}


def test_a_failing_worker_fails_the_pytorchjob(custom, namespace):
    """restartPolicy Never: one failed worker fails the job while the master still runs."""
    master = replica()
    master["template"]["metadata"] = {"annotations": {DURATION_ANNOTATION: "60s"}}
    failing = replica()
    failing["restartPolicy"] = "Never"
    failing["template"]["metadata"] = {"annotations": {EXIT_CODE_ANNOTATION: "3", MESSAGE_ANNOTATION: "nccl"}}
    custom.create_namespaced_custom_object(
        *KUBEFLOW, namespace, "pytorchjobs", pytorchjob("bad", {"Master": master, "Worker": failing})
    )
    seen = watch_job(custom, namespace, "bad", job_has("Failed"))
    failed = next(c for c in seen[-1]["status"]["conditions"] if c["type"] == "Failed")
    assert "bad-worker-0" in failed["message"] or failed["reason"] == "PyTorchJobFailed", failed


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
