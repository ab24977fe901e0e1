"""Pod: one bare pod per attempt, ``restartPolicy: Never`` (Odin retries with a fresh pod)."""

from __future__ import annotations

from ...base import Launch
from ..podspec import PodOptions, pod_spec
from ..resources import PODS
from ..status import Observation, pending, pod_observation
from .base import KindHandler, Obj


class PodHandler(KindHandler):
    kind = "Pod"
    resource = PODS

    def manifests(self, launch: Launch, name: str, opts: PodOptions) -> list[Obj]:
        pod = self.manifest_head(name, opts)
        pod["spec"] = pod_spec(launch, opts)
        return [pod]

    def observe(self, obj: Obj | None, pods: list[Obj]) -> Observation:
        pod = obj or (pods[0] if pods else None)
        if pod is None:
            return pending("pod created, not seen yet")
        return pod_observation(pod, self.container)
