"""Training-operator kinds: PyTorchJob, TFJob, MPIJob (kubeflow.org/v1), and ElasticJob, an elastic PyTorchJob.

Every kind has one primary replica (Master, Chief, Launcher; ElasticJob: worker 0) that runs the
task's command and whose termination message carries the outputs, plus ``num_workers`` Worker
replicas with ``num_gpus`` GPUs each. The Kubeflow training operator (v1.8) creates the replica pods
and decides the job's fate; its conditions (Succeeded / Failed / Running) decide the attempt's, and
the replica pods (labelled by the operator, and carrying Odin's labels copied from the template)
explain a wait and give outputs and failure details. Every replica runs with ``restartPolicy: Never``
(Odin retries with a fresh job) and ``cleanPodPolicy: None`` so that every replica's log can be read
when the job ends; clean-up deletes the job and the garbage collector its pods.

``ElasticJob``: the original Odin created ``elastic.pytorch.org`` ElasticJobs, whose operator is long
archived; today it means a PyTorchJob with an ``elasticPolicy`` (torchrun's c10d rendezvous), the
way the training operator runs elastic PyTorch: ``max(num_workers, 1)`` Worker replicas and no
Master, ``minReplicas`` = ``maxReplicas`` = that number unless the task's env sets
``ODIN_ELASTIC_MIN_REPLICAS`` / ``ODIN_ELASTIC_MAX_REPLICAS``. Worker 0 reports the outputs.
"""

from __future__ import annotations

from typing import ClassVar

from .... import constants as C
from ....errors import PermanentError
from ....model import TaskStatus
from ...base import Launch
from ..names import (
    ENV_ELASTIC_MAX,
    ENV_ELASTIC_MIN,
    KUBEFLOW_JOB_NAME,
    KUBEFLOW_REPLICA_INDEX,
    KUBEFLOW_REPLICA_TYPE,
)
from ..podspec import PodOptions, pod_template
from ..resources import MPIJOBS, PYTORCHJOBS, TFJOBS
from ..status import (
    Observation,
    condition,
    failed,
    first_failed_pod,
    is_true,
    pending,
    phase,
    pod_observation,
    pods_pending,
)
from .base import KindHandler, Obj

NAME_LIMIT = 48  # operators name pods and services "<job>-<replica type>-<index>"


class TrainingJobHandler(KindHandler):
    replica_specs: ClassVar[str]
    """The spec field holding the replica specs (``pytorchReplicaSpecs``)."""
    primary: ClassVar[str]
    """Replica type running the task's command (``Master``)."""
    worker: ClassVar[str] = "Worker"
    job_label: ClassVar[str] = KUBEFLOW_JOB_NAME
    type_label: ClassVar[str] = KUBEFLOW_REPLICA_TYPE
    index_label: ClassVar[str] = KUBEFLOW_REPLICA_INDEX
    primary_gpus: ClassVar[bool] = True
    """Whether the primary replica gets ``num_gpus`` too (an MPI launcher does not)."""
    name_limit = NAME_LIMIT
    controller = "the Kubeflow training operator"

    def replicas(self, launch: Launch, opts: PodOptions) -> dict[str, Obj]:
        gpus = launch.task.num_gpus
        primary = pod_template(launch, opts, gpus=gpus if self.primary_gpus else 0)
        specs = {self.primary: {"replicas": 1, "restartPolicy": "Never", "template": primary}}
        if launch.task.num_workers > 0:
            worker = pod_template(launch, opts, gpus=gpus)
            specs[self.worker] = {"replicas": launch.task.num_workers, "restartPolicy": "Never", "template": worker}
        return specs

    def extra_spec(self, launch: Launch) -> Obj:
        return {}

    def manifests(self, launch: Launch, name: str, opts: PodOptions) -> list[Obj]:
        job = self.manifest_head(name, opts)
        job["spec"] = {
            self.replica_specs: self.replicas(launch, opts),
            "runPolicy": {"cleanPodPolicy": "None"},
            **self.extra_spec(launch),
        }
        return [job]

    def primary_pod(self, pods: list[Obj]) -> Obj | None:
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            if labels.get(self.type_label, "").lower() == self.primary.lower() and labels.get(
                self.index_label, "0"
            ) in ("0", ""):
                return pod
        return None

    def observe(self, obj: Obj | None, pods: list[Obj]) -> Observation:
        if obj is not None and is_true(obj, "Succeeded"):
            main = self.primary_pod(pods)
            if main is None:  # gone already: nothing to read outputs from
                return Observation(TaskStatus.SUCCEEDED, exit_code=0)
            if phase(main) == "Succeeded":
                return pod_observation(main, self.container)
            # The job's watch can be ahead of the pods' watch: wait for the primary pod's end (its outputs).
            return Observation(TaskStatus.RUNNING)
        if obj is not None and is_true(obj, "Failed"):
            cond = condition(obj, "Failed") or {}
            detail = first_failed_pod(pods, self.container)
            text = f"{self.kind} failed: {cond.get('reason', '')}: {cond.get('message', '')}".rstrip(": ")
            if detail is None:
                return failed(text)
            return failed(f"{text}; {detail.message}", exit_code=detail.exit_code)
        blocked = pods_pending(pods)
        if blocked is not None and blocked.status is TaskStatus.FAILED:
            return blocked
        if (obj is not None and is_true(obj, "Running")) or any(phase(p) == "Running" for p in pods):
            return Observation(TaskStatus.RUNNING)
        return blocked or pending(f"waiting for the training operator to start the {self.kind}'s replicas")


class PyTorchJobHandler(TrainingJobHandler):
    kind = "PyTorchJob"
    resource = PYTORCHJOBS
    container = "pytorch"
    replica_specs = "pytorchReplicaSpecs"
    primary = "Master"


class TFJobHandler(TrainingJobHandler):
    kind = "TFJob"
    resource = TFJOBS
    container = "tensorflow"
    replica_specs = "tfReplicaSpecs"
    primary = "Chief"


class MPIJobHandler(TrainingJobHandler):
    """The launcher runs the command (``mpirun …``) without GPUs; workers get ``num_gpus`` each."""

    kind = "MPIJob"
    resource = MPIJOBS
    container = "mpi"
    replica_specs = "mpiReplicaSpecs"
    primary = "Launcher"
    primary_gpus = False

    def extra_spec(self, launch: Launch) -> Obj:
        return {"slotsPerWorker": max(launch.task.num_gpus, 1)}

    def replicas(self, launch: Launch, opts: PodOptions) -> dict[str, Obj]:
        """MPI workers are daemons (sshd) that the launcher's ``mpirun`` drives: they run until the job ends
        (labelled long-running, which the local control plane's kwok stages honour)."""
        specs = super().replicas(launch, opts)
        if self.worker in specs:
            specs[self.worker]["template"]["metadata"]["labels"][C.LABEL_LONG_RUNNING] = "true"
        return specs


class ElasticJobHandler(PyTorchJobHandler):
    """An elastic PyTorchJob: Workers only (worker 0 is the primary), ``elasticPolicy`` min/max replicas."""

    kind = "ElasticJob"
    primary = "Worker"

    def replicas(self, launch: Launch, opts: PodOptions) -> dict[str, Obj]:
        template = pod_template(launch, opts, gpus=launch.task.num_gpus)
        count = max(launch.task.num_workers, 1)
        return {self.primary: {"replicas": count, "restartPolicy": "Never", "template": template}}

    def extra_spec(self, launch: Launch) -> Obj:
        count = max(launch.task.num_workers, 1)
        low = _replicas_setting(launch, ENV_ELASTIC_MIN, count)
        high = _replicas_setting(launch, ENV_ELASTIC_MAX, count)
        if not 1 <= low <= count <= high:
            raise PermanentError(
                f"ElasticJob {launch.task.name!r}: needs {ENV_ELASTIC_MIN} ({low}) <= num_workers ({count}) "
                f"<= {ENV_ELASTIC_MAX} ({high}), and at least 1"
            )
        return {"elasticPolicy": {"minReplicas": low, "maxReplicas": high, "rdzvBackend": "c10d"}}


def _replicas_setting(launch: Launch, name: str, default: int) -> int:
    text = launch.task.env.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise PermanentError(f"ElasticJob {launch.task.name!r}: {name} must be a whole number, not {text!r}") from None
