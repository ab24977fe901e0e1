"""Pure readings of Kubernetes objects: what an attempt's objects say about it (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ... import constants as C
from ...model import TaskStatus
from ..base import outputs_object

Obj = dict[str, Any]
MAX_MESSAGE = 1000
# Waiting reasons that never clear up by themselves: the attempt fails at once with the reason.
FATAL_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
PERMANENT_WAITING = frozenset({"InvalidImageName", "ErrImageNeverPull"})


@dataclass(frozen=True)
class Observation:
    """What an attempt's objects say: PENDING (with why), RUNNING, SUCCEEDED (with outputs) or FAILED."""

    status: TaskStatus
    message: str = ""
    exit_code: int | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    permanent: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)


def pending(message: str) -> Observation:
    return Observation(TaskStatus.PENDING, message)


def failed(message: str, *, exit_code: int | None = None, permanent: bool = False) -> Observation:
    return Observation(TaskStatus.FAILED, message[:MAX_MESSAGE], exit_code=exit_code, permanent=permanent)


def condition(obj: Obj, kind: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return cond
    return None


def is_true(obj: Obj, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def parse_outputs(message: str | None) -> tuple[dict[str, Any], str | None]:
    """A termination message as task outputs: a JSON object (empty message: no outputs)."""
    text = (message or "").strip()
    if not text:
        return {}, None
    if len(text.encode()) > C.MAX_OUTPUTS_BYTES:
        return {}, f"outputs are over {C.MAX_OUTPUTS_BYTES} bytes (write large data to files)"
    return outputs_object(text)


def container_status(pod: Obj, container: str | None = None) -> Obj | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for st in statuses:
        if container is None or st.get("name") == container:
            return st
    return statuses[0] if statuses else None


def terminated(pod: Obj, container: str | None = None) -> Obj | None:
    st = container_status(pod, container)
    return ((st or {}).get("state") or {}).get("terminated")


def pod_pending_reason(pod: Obj) -> Observation:
    """Why a Pending pod does not run yet; FAILED when the reason never clears up by itself."""
    name = pod["metadata"]["name"]
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (st.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in FATAL_WAITING:
            text = f"pod {name}: {reason}: {waiting.get('message') or st.get('image', '')}"
            return failed(text, permanent=reason in PERMANENT_WAITING)
        if reason:
            return pending(f"pod {name}: waiting for container {st.get('name')}: {reason}")
    scheduled = condition(pod, "PodScheduled")
    if scheduled is None:
        return pending(f"pod {name}: waiting to be scheduled")
    if scheduled.get("status") != "True":
        message = scheduled.get("message") or scheduled.get("reason") or "not scheduled"
        what = "waiting for a volume" if "PersistentVolumeClaim" in message else "unschedulable"
        return pending(f"pod {name}: {what}: {message}")
    return pending(f"pod {name}: scheduled on {pod.get('spec', {}).get('nodeName')}, starting containers")


def pod_observation(pod: Obj, container: str | None = None) -> Observation:
    """The attempt as one pod tells it (bare Pods, and the main pod of other kinds)."""
    current = phase(pod)
    if current == "Running":
        return Observation(TaskStatus.RUNNING)
    if current == "Succeeded":
        term = terminated(pod, container) or {}
        outputs, problem = parse_outputs(term.get("message"))
        if problem:
            return failed(problem, exit_code=0)
        return Observation(TaskStatus.SUCCEEDED, exit_code=0, outputs=outputs)
    if current == "Failed":
        return pod_failure(pod, container)
    return pod_pending_reason(pod)


def pod_failure(pod: Obj, container: str | None = None) -> Observation:
    status = pod.get("status") or {}
    term = terminated(pod, container)
    if term is None:
        text = status.get("message") or status.get("reason") or "pod failed"
        return failed(f"pod {pod['metadata']['name']}: {text}")
    code = term.get("exitCode")
    detail = (term.get("message") or "").strip() or term.get("reason") or status.get("message") or ""
    lines = [ln for ln in detail.splitlines() if ln.strip()]
    text = f"exit code {code}" + (f": {lines[-1].strip()}" if lines else "")
    return failed(text, exit_code=code)


def pods_pending(pods: list[Obj]) -> Observation | None:
    """The most useful reason among pods that do not run yet (a fatal one first), or None."""
    found: Observation | None = None
    for pod in pods:
        if phase(pod) != "Pending" or pod["metadata"].get("deletionTimestamp"):
            continue
        obs = pod_pending_reason(pod)
        if obs.status is TaskStatus.FAILED:
            return obs
        found = found or obs
    return found


def first_failed_pod(pods: list[Obj], container: str | None = None) -> Observation | None:
    for pod in pods:
        if phase(pod) == "Failed":
            return pod_failure(pod, container)
    return None
