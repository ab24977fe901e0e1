"""Teach Odin a new CRD kind: a KubeRay ``RayJob`` (ray.io/v1), in a few dozen lines.

Import this module before the pipeline is loaded (for example from a small wrapper script or a
``sitecustomize``); then ``resource_type: RayJob`` (or ``ray``) works in ``main.yml``. The handler
is pure: it builds manifests and reads the objects the executor's shared watches deliver.
"""

from __future__ import annotations

from odin_core.executors.base import Launch
from odin_core.executors.kubernetes import KindHandler, Observation, PodOptions, pod_template, register_handler
from odin_core.executors.kubernetes.resources import Resource
from odin_core.executors.kubernetes.status import failed, pending, pods_pending
from odin_core.model import TaskStatus

RAYJOBS = Resource("ray.io", "v1", "rayjobs", "RayJob")


class RayJobHandler(KindHandler):
    kind = "RayJob"
    resource = RAYJOBS
    container = "ray-head"
    name_limit = 40  # KubeRay derives "<name>-raycluster-xxxxx-head" from it

    def manifests(self, launch: Launch, name: str, opts: PodOptions) -> list[dict]:
        job = self.manifest_head(name, opts)
        head = pod_template(launch, opts, gpus=0)
        workers = pod_template(launch, opts, run_command=False)
        job["spec"] = {
            "entrypoint": " ".join([*launch.task.command, *map(str, launch.task.args)]),
            "shutdownAfterJobFinishes": True,
            "rayClusterSpec": {
                "headGroupSpec": {"rayStartParams": {}, "template": head},
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": launch.task.num_workers,
                        "rayStartParams": {},
                        "template": workers,
                    }
                ],
            },
        }
        return [job]

    def observe(self, obj: dict | None, pods: list[dict]) -> Observation:
        status = (obj or {}).get("status") or {}
        if status.get("jobStatus") == "SUCCEEDED":
            return Observation(TaskStatus.SUCCEEDED, exit_code=0)
        if status.get("jobStatus") in ("FAILED", "STOPPED"):
            return failed(f"RayJob {status.get('jobStatus')}: {status.get('message', '')}")
        if status.get("jobStatus") == "RUNNING":
            return Observation(TaskStatus.RUNNING)
        return pods_pending(pods) or pending(f"RayJob: {status.get('jobDeploymentStatus') or 'waiting for KubeRay'}")


register_handler(RayJobHandler(), "ray", "rayjob")
