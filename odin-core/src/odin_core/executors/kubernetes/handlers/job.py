"""Job (batch/v1): ``backoffLimit: 0`` since Odin retries; the Job's conditions decide."""

from __future__ import annotations

from ....model import TaskStatus
from ...base import Launch
from ..podspec import PodOptions, pod_template
from ..resources import JOBS
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


class JobHandler(KindHandler):
    kind = "Job"
    resource = JOBS

    def manifests(self, launch: Launch, name: str, opts: PodOptions) -> list[Obj]:
        job = self.manifest_head(name, opts)
        job["spec"] = {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "template": pod_template(launch, opts),
        }
        return [job]

    def observe(self, obj: Obj | None, pods: list[Obj]) -> Observation:
        if obj is not None and is_true(obj, "Complete"):
            done = [p for p in pods if phase(p) == "Succeeded"]
            if done:
                return pod_observation(done[0], self.container)
            # The Job's watch can be ahead of the pods' watch: wait for the pod's end (its outputs), if any.
            return Observation(TaskStatus.RUNNING) if pods else Observation(TaskStatus.SUCCEEDED, exit_code=0)
        if obj is not None and is_true(obj, "Failed"):
            cond = condition(obj, "Failed") or {}
            from_pod = first_failed_pod(pods, self.container)
            return from_pod or failed(f"job failed: {cond.get('reason')}: {cond.get('message', '')}")
        if any(phase(p) != "Pending" for p in pods):  # running, or finished and the Job not updated yet
            return Observation(TaskStatus.RUNNING)
        return pods_pending(pods) or pending("waiting for the Job controller to create the pod")
