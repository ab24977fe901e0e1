"""Pure parts of the Kubernetes executor: names, manifests, status readings, rate limiting, settings.

No control plane needed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from odin_core.errors import PermanentError, TemporaryError
from odin_core.executors.base import Launch
from odin_core.executors.kubernetes import KubernetesExecutor, adoption, names
from odin_core.executors.kubernetes import logs as L
from odin_core.executors.kubernetes.attempts import Attempt
from odin_core.executors.kubernetes.client import ApiError, TokenBucket, _retry_delay
from odin_core.executors.kubernetes.handlers import handler_for
from odin_core.executors.kubernetes.informer import Gone, Informer
from odin_core.executors.kubernetes.podspec import PodOptions, pod_spec
from odin_core.executors.kubernetes.resources import PYTORCHJOBS
from odin_core.executors.kubernetes.status import parse_outputs, pod_observation
from odin_core.executors.kubernetes.updates import no_controller, submit_error
from odin_core.executors.local_supervisor import disk_full
from odin_core.model import TaskRecord, TaskStatus
from odin_core.settings import KubernetesSettings, Settings
from odin_core.spec.model import (
    ConfigMapMount,
    EphemVolume,
    Mount,
    Resources,
    SecretMount,
    SecurityContext,
    TaskSpec,
)

OPTS = PodOptions({"odin.ml/run": "r"}, {"a": "b"}, ("regcred",), "main")


def launch(**kw) -> Launch:
    spec = TaskSpec("train", "img:1", ("python", "train.py"), args=("--n", 3, {"k": 1}), **kw)
    return Launch("run-1", spec, 2, work_path="/w", run_path="/d/run-1", env={"ODIN_TASK_ID": "run-1--train"})


@given(st.text(min_size=1, max_size=200), st.integers(min_value=1, max_value=999))
def test_object_names_are_always_dns_labels(task_id: str, attempt: int):
    name = names.object_name(task_id, attempt)
    assert names.is_dns_label(name) and name.endswith(f"-{attempt}")


@given(st.text(min_size=0, max_size=200))
def test_label_values_are_always_valid(text: str):
    value = names.label_value(text)
    assert len(value) <= 63 and names._LABEL_VALUE.match(value)


def test_distinct_long_ids_keep_distinct_names():
    a, b = "x" * 80 + "a", "x" * 80 + "b"
    assert names.object_name(a, 1) != names.object_name(b, 1)
    assert names.object_name("flow-ab12--train", 3) == "flow-ab12--train-3"  # valid ids stay readable


def test_pod_spec_maps_every_task_field():
    spec = pod_spec(
        launch(
            mounts=(Mount("data", "/data", claim="pvc-1"), Mount("shm", "/dev/shm")),
            ephem_volumes=(EphemVolume("shm", "", medium="Memory", size_limit="1Gi"),),
            secrets=(SecretMount("creds", "/etc/creds", sub_path="token", mode=256),),
            config_maps=(ConfigMapMount("cfg", "/etc/cfg"),),
            cpu=Resources(requests="500m", limits="2"),
            memory=Resources(requests="1Gi"),
            num_gpus=2,
            security_context=SecurityContext(run_as_user=1000, fs_group=2000),
            pull_policy="Always",
            node_selector={"gpu": "a100"},
        ),
        OPTS,
    )
    c = spec["containers"][0]
    assert spec["restartPolicy"] == "Never"
    assert c["command"] == ["python", "train.py"] and c["args"] == ["--n", "3", '{"k": 1}']
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "nvidia.com/gpu": "2"},
    }
    assert {"name": "ODIN_OUTPUTS", "value": "/dev/termination-log"} in c["env"]
    assert {"name": "ODIN_TASK_ID", "value": "run-1--train"} in c["env"]
    assert c["imagePullPolicy"] == "Always" and c["terminationMessagePath"] == "/dev/termination-log"
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["data"]["persistentVolumeClaim"] == {"claimName": "pvc-1"}
    assert vols["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert vols["secret-creds"]["secret"] == {"secretName": "creds", "defaultMode": 256}
    assert vols["config-cfg"]["configMap"] == {"name": "cfg"}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/etc/creds"]["subPath"] == "token" and mounts["/dev/shm"]["name"] == "shm"
    assert spec["securityContext"] == {"runAsUser": 1000, "fsGroup": 2000}
    assert spec["nodeSelector"] == {"gpu": "a100"} and spec["imagePullSecrets"] == [{"name": "regcred"}]


@pytest.mark.parametrize(
    ("kind", "field", "replicas"),
    [
        pytest.param("pytjob", "pytorchReplicaSpecs", {"Master": 1, "Worker": 3}, id="pytorch"),
        pytest.param("tfjob", "tfReplicaSpecs", {"Chief": 1, "Worker": 3}, id="tf"),
        pytest.param("mpi", "mpiReplicaSpecs", {"Launcher": 1, "Worker": 3}, id="mpi"),
        pytest.param("elastic", "pytorchReplicaSpecs", {"Worker": 3}, id="elastic"),
    ],
)
def test_training_kinds_have_todays_layouts(kind: str, field: str, replicas: dict[str, int]):
    handler = handler_for(kind)
    assert handler is not None
    [job] = handler.manifests(launch(num_workers=3, num_gpus=4, resource_type=handler.kind), "n", OPTS)
    specs = job["spec"][field]
    assert {k: v["replicas"] for k, v in specs.items()} == replicas
    assert all(v["restartPolicy"] == "Never" for v in specs.values())
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "None"}  # every replica's log is read at the end
    worker = specs["Worker"]
    assert worker["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert worker["template"]["metadata"]["labels"]["odin.ml/run"] == "r"
    if kind == "elastic":
        assert job["kind"] == "PyTorchJob"
        assert job["spec"]["elasticPolicy"] == {"minReplicas": 3, "maxReplicas": 3, "rdzvBackend": "c10d"}
    if kind == "mpi":
        assert job["spec"]["slotsPerWorker"] == 4
        assert "resources" not in specs["Launcher"]["template"]["spec"]["containers"][0]


def test_job_has_no_backoff_and_service_is_headless_without_ports():
    [job] = handler_for("Job").manifests(launch(), "n", OPTS)  # type: ignore[union-attr]
    assert job["spec"]["backoffLimit"] == 0
    _, svc = handler_for("svc").manifests(launch(), "n", OPTS)  # type: ignore[union-attr]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["selector"] == {"odin.ml/run": "r"}


def _pod(phase: str, **status) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": phase, **status}}


def _terminated(code: int, message: str = "") -> dict:
    return {"containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code, "message": message}}}]}


@pytest.mark.parametrize(
    ("pod", "status", "text"),
    [
        pytest.param(_pod("Running"), TaskStatus.RUNNING, "", id="running"),
        pytest.param(_pod("Succeeded", **_terminated(0, '{"a": 1}')), TaskStatus.SUCCEEDED, "", id="outputs"),
        pytest.param(_pod("Succeeded", **_terminated(0, "[1]")), TaskStatus.FAILED, "JSON object", id="bad-out"),
        pytest.param(_pod("Failed", **_terminated(2, "trace\nOOM")), TaskStatus.FAILED, "exit code 2: OOM", id="fail"),
        pytest.param(
            _pod("Pending", conditions=[{"type": "PodScheduled", "status": "False", "message": "0/3 nodes"}]),
            TaskStatus.PENDING,
            "unschedulable: 0/3 nodes",
            id="unschedulable",
        ),
        pytest.param(
            _pod(
                "Pending",
                containerStatuses=[
                    {"name": "main", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "x"}}}
                ],
            ),
            TaskStatus.FAILED,
            "ImagePullBackOff: x",
            id="image-pull",
        ),
        pytest.param(
            _pod(
                "Pending",
                conditions=[{"type": "PodScheduled", "status": "False", "message": "unbound PersistentVolumeClaims"}],
            ),
            TaskStatus.PENDING,
            "waiting for a volume",
            id="volume",
        ),
    ],
)
def test_pod_observations(pod: dict, status: TaskStatus, text: str):
    obs = pod_observation(pod, "main")
    assert obs.status is status and text in obs.message


def test_outputs_over_the_termination_message_limit_are_refused():
    assert parse_outputs(json.dumps({"x": "y" * 5000}))[1] is not None
    assert parse_outputs("") == ({}, None)


def test_token_bucket_allows_a_burst_then_paces():
    now = [0.0]
    bucket = TokenBucket(10, 3, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    now[0] = 10.0
    assert bucket.reserve() == 0


def test_429_retry_after_is_honoured():
    assert _retry_delay(ApiError(429, "TooManyRequests", "slow down", retry_after_s=7), 0) == 7
    assert ApiError(429, "", "").retryable and ApiError(503, "", "").retryable and not ApiError(422, "", "").retryable


def test_a_410_in_the_watch_stream_means_relist():
    informer = Informer.__new__(Informer)
    with pytest.raises(Gone):
        informer._handle({"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}, "5", [])


def test_relist_reports_objects_deleted_while_disconnected():
    seen: list[tuple[str, str]] = []
    informer = Informer.__new__(Informer)
    informer.cache = {"a": {"metadata": {"name": "a", "resourceVersion": "1"}}}
    informer.on_event = lambda kind, obj: seen.append((kind, obj["metadata"]["name"]))
    informer.wanted = lambda obj: True
    informer.resource = None  # type: ignore[assignment]
    informer._apply_sync([{"metadata": {"name": "b", "resourceVersion": "2"}}])
    assert seen == [("DELETED", "a"), ("ADDED", "b")]


@pytest.mark.parametrize(
    ("reference", "rec", "finding"),
    [
        pytest.param(True, {"resource_id": "x-1"}, "ADOPT", id="found"),
        pytest.param(True, {}, "ADOPT", id="found-before-its-id-was-recorded"),
        pytest.param(False, {"resource_id": "x-1"}, "LOST", id="gone"),
        pytest.param(False, {}, "NEVER_STARTED", id="never-started"),
    ],
)
def test_what_a_taking_over_core_makes_of_an_attempt(reference: bool, rec: dict, finding: str):
    record = TaskRecord("run-1", "train", status=TaskStatus.PENDING, attempt=2, **rec)
    obj = {"metadata": {"name": "run-1--train-2", "labels": names.identity_labels("run-1", "train", 2)}}
    grouped = adoption.by_identity([obj] if reference else [])
    found = adoption.decide(record, grouped.get(adoption.identity(record), []), [])
    assert found.finding is adoption.Finding[finding]


@pytest.mark.parametrize(
    ("status", "kind", "text"),
    [
        pytest.param(429, TemporaryError, "could not create", id="throttled"),
        pytest.param(503, TemporaryError, "could not create", id="unavailable"),
        pytest.param(0, TemporaryError, "could not create", id="connection-reset"),
        pytest.param(422, PermanentError, "rejected by the API server: bad field", id="invalid"),
        pytest.param(
            404, PermanentError, "CustomResourceDefinition pytorchjobs.kubeflow.org is not installed", id="crd"
        ),
    ],
)
def test_create_failures_are_temporary_or_permanent(status: int, kind: type, text: str):
    error = submit_error("PyTorchJob x", PYTORCHJOBS, ApiError(status, "Reason", "bad field"))
    assert isinstance(error, kind) and text in str(error)


def test_no_controller_message_names_the_kind_the_object_and_the_operator():
    handler = handler_for("PyTorchJob")
    assert handler is not None
    attempt = Attempt(("r", "t", 1), handler, "r--t-1", {}, "/d")
    assert no_controller(attempt, 60) == (
        "no controller has acted on PyTorchJob r--t-1 for 60 s — is the Kubeflow training operator installed?"
    )
    assert not handler.controller_acted({"metadata": {}}, []) and handler.controller_acted({"status": {"a": 1}}, [])


def test_elastic_bounds_come_from_the_task_env_and_are_checked():
    handler = handler_for("ElasticJob")
    assert handler is not None
    env = {"ODIN_ELASTIC_MIN_REPLICAS": "1", "ODIN_ELASTIC_MAX_REPLICAS": "4"}
    [job] = handler.manifests(launch(num_workers=2, resource_type="ElasticJob", env=env), "n", OPTS)
    assert job["spec"]["elasticPolicy"]["minReplicas"] == 1 and job["spec"]["elasticPolicy"]["maxReplicas"] == 4
    with pytest.raises(PermanentError, match="ODIN_ELASTIC_MIN_REPLICAS"):
        handler.manifests(
            launch(num_workers=2, resource_type="ElasticJob", env={"ODIN_ELASTIC_MIN_REPLICAS": "3"}), "n", OPTS
        )


def test_settings_from_env_understand_the_kubernetes_executor():
    s = Settings.from_env(
        {
            "ODIN_EXECUTOR": "kubernetes",
            "ODIN_KUBECONFIG": "/k/config",
            "ODIN_NAMESPACE": "ml",
            "ODIN_K8S_QPS": "80",
            "ODIN_K8S_IMAGE_PULL_SECRETS": "a, b",
            "ODIN_K8S_TTL_AFTER_FINISHED_S": "600",
        }
    )
    assert s.executor == "kubernetes" and s.kubernetes.kubeconfig == "/k/config" and s.kubernetes.namespace == "ml"
    assert s.kubernetes.qps == 80 and s.kubernetes.image_pull_secrets == ("a", "b")
    assert s.kubernetes.ttl_after_finished_s == 600


def test_the_custom_kind_sample_registers_a_working_handler():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "samples" / "custom-kind" / "raycluster_kind.py"
    spec = importlib.util.spec_from_file_location("odin_sample_raycluster_kind", path)
    assert spec and spec.loader
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    handler = handler_for("ray")
    assert handler is not None and handler.kind == "RayJob"
    [job] = handler.manifests(launch(num_workers=2, resource_type="RayJob"), "n", OPTS)
    assert job["apiVersion"] == "ray.io/v1" and job["spec"]["entrypoint"].startswith("python train.py")
    assert handler.observe({"status": {"jobStatus": "SUCCEEDED"}}, []).status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("kind", ["Job", "PyTorchJob"])
def test_a_job_that_succeeded_waits_for_its_pods_end_to_read_the_outputs(kind: str):
    """The job's watch can be ahead of the pods' watch: SUCCEEDED only with the pod's outputs."""
    handler = handler_for(kind)
    assert handler is not None
    done = {"status": {"conditions": [{"type": "Complete" if kind == "Job" else "Succeeded", "status": "True"}]}}
    labels = {"training.kubeflow.org/replica-type": "master", "training.kubeflow.org/replica-index": "0"}
    pod = {**_pod("Running"), "metadata": {"name": "p", "labels": labels}}
    assert handler.observe(done, [pod]).status is TaskStatus.RUNNING
    finished = {**_pod("Succeeded", **_terminated(0, '{"m": 1}')), "metadata": {"name": "p", "labels": labels}}
    finished["status"]["containerStatuses"][0]["name"] = handler.container
    seen = handler.observe(done, [finished])
    assert seen.status is TaskStatus.SUCCEEDED and seen.outputs == {"m": 1}


def _attempt_pod(attempt: Attempt, phase: str, *, scheduled: bool = False) -> dict:
    conditions = [{"type": "PodScheduled", "status": "True"}] if scheduled else []
    status = {"phase": phase, "conditions": conditions}
    return {"metadata": {"name": attempt.name, "labels": attempt.labels}, "spec": {"nodeName": "n1"}, "status": status}


async def test_pending_reasons_are_reported_once_they_last_and_never_after_the_attempt_runs(tmp_path, monkeypatch):
    """A pod that starts at once costs no write per reason it passed through; one that waits says why, with
    the latest reason, within PENDING_REPORT_S."""
    from odin_core.executors.kubernetes import executor as kx

    monkeypatch.setattr(kx, "PENDING_REPORT_S", 0.2)
    executor = kx.KubernetesExecutor(tmp_path)
    reports: list[tuple[TaskStatus, str]] = []
    executor.bind(lambda u: reports.append((u.status, u.message)))
    handler = handler_for("Pod")
    assert handler is not None

    def follow(attempt_no: int) -> Attempt:
        labels = names.identity_labels("run-1", "train", attempt_no)
        attempt = Attempt(("run-1", "train", attempt_no), handler, f"p{attempt_no}", labels, str(tmp_path))
        executor.attempts.add(attempt)
        return attempt

    fast = follow(1)
    executor._on_pod("ADDED", _attempt_pod(fast, "Pending"))
    executor._on_pod("MODIFIED", _attempt_pod(fast, "Pending", scheduled=True))
    executor._on_pod("MODIFIED", _attempt_pod(fast, "Running", scheduled=True))
    await asyncio.sleep(0.4)
    assert reports == [(TaskStatus.RUNNING, "")]
    assert fast.pending_report is None

    reports.clear()
    slow = follow(2)
    executor._on_pod("ADDED", _attempt_pod(slow, "Pending"))
    executor._on_pod("MODIFIED", _attempt_pod(slow, "Pending", scheduled=True))
    assert reports == []  # not yet: the reason has not lasted
    await asyncio.sleep(0.4)
    assert reports == [(TaskStatus.PENDING, f"pod {slow.name}: scheduled on n1, starting containers")]
    executor.attempts.remove(slow)
    executor.attempts.remove(fast)


def test_log_appends_make_missing_directories_and_keep_every_attempt(tmp_path) -> None:
    path = tmp_path / "run-1" / ".odin" / "logs" / "step.log"
    L.append(path, "first ✓\n".encode())  # the run's first capture: its directories do not exist yet
    L.append(path, b"----- attempt 2 -----\nsecond\n")
    L.append(path, b"")
    assert path.read_text(encoding="utf-8") == "first ✓\n----- attempt 2 -----\nsecond\n"
    assert oct(path.stat().st_mode & 0o777) == oct(0o644 & ~_umask())
    big = "x" * (1 << 20) + "\n"
    L.append(path, big.encode())
    assert path.stat().st_size == len("first ✓\n----- attempt 2 -----\nsecond\n".encode()) + len(big)


def test_a_log_append_cut_short_by_a_full_disk_leaves_the_file_as_it_was(small_disk) -> None:
    path = small_disk.path / "run-1" / ".odin" / "logs" / "step.log"
    L.append(path, b"before\n")
    small_disk.fill()
    small_disk.make_room(256 * 1024)
    big = b"x" * (1 << 20) + b"\n"
    with pytest.raises(OSError) as refused:
        L.append(path, big)  # a quarter of it fits: written, then cut back off
    assert disk_full(refused.value)
    assert path.read_bytes() == b"before\n"
    small_disk.free()
    L.append(path, big)  # tried again: once, whole
    assert path.read_bytes() == b"before\n" + big


async def test_small_log_appends_are_written_on_the_loop_and_large_or_many_on_the_file_thread(
    tmp_path, until_idle
) -> None:
    appends = L.Appends()
    try:
        path = tmp_path / "run-0" / ".odin" / "logs" / "step.log"
        await appends.append(path, "first\n")
        assert (appends.batches, appends.inline_batches) == (1, 1)

        big = "x" * (L.INLINE_BYTES + 1)
        await appends.append(path, big)
        assert (appends.batches, appends.inline_batches) == (2, 1)

        others = [tmp_path / f"run-{i}" / ".odin" / "logs" / "step.log" for i in range(1, appends.inline_max + 2)]
        await asyncio.gather(*(appends.append(p, f"{p.parent.parent.parent.name}\n") for p in others))
        assert appends.inline_batches == 1  # more appends than inline_max in one pass: the thread's
        await until_idle(appends)  # the thread delivers, then looks at its queue once more before it sleeps

        await asyncio.gather(*(appends.append(p, "again\n") for p in others[: appends.inline_max]))
        assert appends.inline_batches == 2
    finally:
        appends.close()
    assert path.read_text() == "first\n" + big
    assert [p.read_text() for p in others] == [
        f"run-{i}\n" + ("again\n" if i <= appends.inline_max else "") for i in range(1, len(others) + 1)
    ]


def _umask() -> int:
    """This process's umask, read without changing it (Linux: /proc/self/status)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)


def test_an_engine_launch_carries_the_odin_variables_then_the_task_env_into_the_pod(tmp_path) -> None:
    """``Launch.of`` is the engine's launch (the worker's, and the k8s bench floor's): what the pod gets."""
    task = TaskSpec("train", "img", ("python", "t.py"), env={"LR": "0.1", "CFG": {"depth": 2}})
    launch = Launch.of("run-1", task, 2, work_path="/jobs/j", run_path="/data/run-1")
    assert list(launch.env.items()) == [
        ("ODIN_TASK_ID", "run-1--train"),
        ("ODIN_TASK_NAME", "train"),
        ("ODIN_PIPE_ID", "run-1"),
        ("ODIN_ATTEMPT", "2"),
        ("ODIN_RUN_PATH", "/data/run-1"),
        ("ODIN_TASK_PATH", "/data/run-1/train"),
        ("ODIN_WORK_PATH", "/jobs/j"),
        ("LR", "0.1"),
        ("CFG", '{"depth": 2}'),
    ]
    settings = KubernetesSettings(namespace="ns", pod_annotations={"x": "y"}, pod_labels={"team": "a"})
    handler = handler_for("Pod")
    assert handler is not None
    name, labels, (pod,) = KubernetesExecutor(tmp_path, settings).objects(launch, handler)
    assert name == pod["metadata"]["name"] == "run-1--train-2"
    assert pod["metadata"]["labels"] == {"team": "a", **labels}
    assert labels == {"odin.ml/run": "run-1", "odin.ml/task": "train", "odin.ml/attempt": "2"}
    assert pod["metadata"]["annotations"] == {"odin.ml/run-id": "run-1", "odin.ml/task-name": "train", "x": "y"}
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert {k: env[k] for k in launch.env} == launch.env
