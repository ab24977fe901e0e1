"""A tiny stand-in for the training operators (nothing plays them on the local control plane).

For every PyTorchJob / TFJob / MPIJob / ElasticJob created in a namespace it creates the replica pods
the real operator would (template labels + the operator's job-name / replica-type / replica-index
labels, owner reference to the CR), marks the CR Created/Running, and once the pods end writes
Succeeded or Failed on the CR's status subresource. kwok moves the pods through their phases.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

KUBEFLOW = {"PyTorchJob": "pytorchjobs", "TFJob": "tfjobs", "MPIJob": "mpijobs"}
REPLICA_FIELD = {"PyTorchJob": "pytorchReplicaSpecs", "TFJob": "tfReplicaSpecs", "MPIJob": "mpiReplicaSpecs"}
KUBEFLOW_LABELS = (
    "training.kubeflow.org/job-name",
    "training.kubeflow.org/replica-type",
    "training.kubeflow.org/replica-index",
)
ELASTIC_LABELS = ("elasticjob.dlrover/name", "elasticjob.dlrover/replica-type", "elasticjob.dlrover/replica-index")
WATCH_S = 60


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kind:
    def __init__(self, kind: str, group: str, version: str, plural: str, field: str, labels: tuple[str, ...]) -> None:
        self.kind, self.group, self.version, self.plural, self.field, self.labels = (
            kind,
            group,
            version,
            plural,
            field,
            labels,
        )


KINDS = [Kind(k, "kubeflow.org", "v1", p, REPLICA_FIELD[k], KUBEFLOW_LABELS) for k, p in KUBEFLOW.items()]
KINDS.append(Kind("ElasticJob", "elastic.iml.github.io", "v1alpha1", "elasticjobs", "replicaSpecs", ELASTIC_LABELS))


class OperatorSim:
    """Start with ``start()``; ``stop()`` ends the watches. ``handled`` names every CR it drove."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.handled: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> OperatorSim:
        for kind in KINDS:
            self._spawn(self._watch_kind, kind)
        return self

    def stop(self) -> None:
        self._stop.set()

    def _spawn(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _watch_kind(self, kind: Kind) -> None:
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                self.custom.list_namespaced_custom_object,
                kind.group,
                kind.version,
                self.namespace,
                kind.plural,
                timeout_seconds=5,
            )
            for event in stream:
                if self._stop.is_set():
                    return
                obj = event["object"]
                if event["type"] == "ADDED" and obj["metadata"]["name"] not in self.handled:
                    self.handled.append(obj["metadata"]["name"])
                    self._spawn(self._drive, kind, obj)

    def _drive(self, kind: Kind, job: dict) -> None:
        name = job["metadata"]["name"]
        pods = self._create_pods(kind, job)
        self._set_status(kind, name, "Running", "JobRunning")
        failed = self._wait_pods(kind.labels[0], name, pods)
        if failed:
            self._set_status(kind, name, "Failed", "JobFailed", f"{kind.kind} {name} failed: pod {failed} failed")
        else:
            self._set_status(kind, name, "Succeeded", "JobSucceeded", f"{kind.kind} {name} succeeded")

    def _create_pods(self, kind: Kind, job: dict) -> list[str]:
        name, uid = job["metadata"]["name"], job["metadata"]["uid"]
        owner = {
            "apiVersion": f"{kind.group}/{kind.version}",
            "kind": kind.kind,
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
        names = []
        for rtype, spec in job["spec"][kind.field].items():
            for i in range(spec.get("replicas", 1)):
                template = copy.deepcopy(spec["template"])
                meta = template.setdefault("metadata", {})
                pod_name = f"{name}-{rtype.lower()}-{i}"
                meta.update(name=pod_name, ownerReferences=[owner])
                meta.setdefault("labels", {}).update(dict(zip(kind.labels, (name, rtype.lower(), str(i)), strict=True)))
                template["spec"]["restartPolicy"] = "Never"
                self.core.create_namespaced_pod(self.namespace, {"apiVersion": "v1", "kind": "Pod", **template})
                names.append(pod_name)
        return names

    def _wait_pods(self, job_label: str, name: str, pods: list[str]) -> str | None:
        done: dict[str, str] = {}
        while len(done) < len(pods) and not self._stop.is_set():
            stream = watch.Watch().stream(
                self.core.list_namespaced_pod,
                self.namespace,
                label_selector=f"{job_label}={name}",
                timeout_seconds=WATCH_S,
            )
            for event in stream:
                pod = event["object"]
                if event["type"] == "DELETED":
                    return None  # the job is being deleted
                if pod.status.phase in ("Succeeded", "Failed"):
                    done[pod.metadata.name] = pod.status.phase
                if len(done) >= len(pods):
                    break
        return next((p for p, ph in done.items() if ph == "Failed"), None)

    def _set_status(self, kind: Kind, name: str, ctype: str, reason: str, message: str = "") -> None:
        try:
            obj = self.custom.get_namespaced_custom_object(kind.group, kind.version, self.namespace, kind.plural, name)
        except ApiException:
            return
        conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] != ctype]
        for c in conditions:
            c["status"] = "False"
        now = _now()
        conditions.append(
            {
                "type": ctype,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }
        )
        obj["status"] = {"conditions": conditions, "startTime": now}
        with contextlib.suppress(ApiException):
            self.custom.replace_namespaced_custom_object_status(
                kind.group, kind.version, self.namespace, kind.plural, name, obj
            )
