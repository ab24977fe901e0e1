"""Deployment and Service: long-running tasks, SUCCEEDED once Available, up until the run is cleaned up.

``Deployment`` creates a Deployment of ``num_workers`` replicas. ``Service`` creates the same
Deployment plus a Service of the same name in front of its pods: headless (DNS names for the pods)
unless the task's env sets ``ODIN_SERVICE_PORTS`` ("8080" or "http:8080,grpc:9000").
"""

from __future__ import annotations

from .... import constants as C
from ....model import TaskStatus
from ...base import Launch
from ..names import ENV_SERVICE_PORTS
from ..podspec import PodOptions, pod_template
from ..resources import DEPLOYMENTS, SERVICES
from ..status import Observation, condition, failed, is_true, pending, phase, pods_pending
from .base import KindHandler, Obj


def parse_ports(text: str) -> list[Obj]:
    ports = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, _, number = item.rpartition(":")
        port: Obj = {"port": int(number), "targetPort": int(number), "protocol": "TCP"}
        ports.append({"name": name or f"p{number}", **port})
    return ports


class DeploymentHandler(KindHandler):
    kind = "Deployment"
    resource = DEPLOYMENTS
    long_running = True

    def pod_labels(self, name: str) -> dict[str, str]:
        return {C.LABEL_LONG_RUNNING: "true"}

    def manifests(self, launch: Launch, name: str, opts: PodOptions) -> list[Obj]:
        dep = self.manifest_head(name, opts)
        dep["spec"] = {
            "replicas": max(launch.task.num_workers, 1),
            "selector": {"matchLabels": dict(opts.labels)},
            "template": pod_template(launch, opts, restart_policy="Always", labels=self.pod_labels(name)),
        }
        return [dep]

    def observe(self, obj: Obj | None, pods: list[Obj]) -> Observation:
        if obj is None:
            return pending("deployment created, not seen yet")
        status, wanted = obj.get("status") or {}, (obj.get("spec") or {}).get("replicas", 1)
        if is_true(obj, "Available") and status.get("availableReplicas", 0) >= wanted:
            return Observation(TaskStatus.SUCCEEDED, exit_code=0, message=f"available ({wanted} replica(s))")
        progressing = condition(obj, "Progressing") or {}
        if progressing.get("status") == "False":
            return failed(f"deployment: {progressing.get('reason')}: {progressing.get('message', '')}")
        blocked = pods_pending(pods)
        if blocked is not None:
            return blocked
        if any(phase(p) == "Running" for p in pods):
            return Observation(TaskStatus.RUNNING)
        return pending("waiting for the deployment's pods")


class ServiceHandler(DeploymentHandler):
    kind = "Service"
    extra_resources = (SERVICES,)

    def manifests(self, launch: Launch, name: str, opts: PodOptions) -> list[Obj]:
        [dep] = super().manifests(launch, name, opts)
        svc = self.manifest_head(name, opts)
        svc["apiVersion"], svc["kind"] = SERVICES.api_version, SERVICES.kind
        ports = parse_ports(launch.task.env.get(ENV_SERVICE_PORTS, ""))
        svc["spec"] = {"selector": dict(opts.labels), **({"ports": ports} if ports else {"clusterIP": "None"})}
        return [dep, svc]
