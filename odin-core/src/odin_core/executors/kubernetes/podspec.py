"""Pod templates from task fields (pure: a Launch in, manifest dicts out)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ... import constants as C
from ...spec.model import Resources, TaskSpec
from ..base import Launch
from .names import GPU_RESOURCE, dns_name

Obj = dict[str, Any]
# FallbackToLogsOnError rather than File: on success the message is exactly the file (outputs stay
# exact); on a failure with an empty file the kubelet uses the log tail, a better failure reason.
TERMINATION_POLICY = "FallbackToLogsOnError"


@dataclass(frozen=True)
class PodOptions:
    """What a pod template needs besides the launch."""

    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    image_pull_secrets: tuple[str, ...] = ()
    container: str = "main"


def _arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _quantities(cpu: Resources | None, memory: Resources | None, gpus: int) -> Obj:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for name, res in (("cpu", cpu), ("memory", memory)):
        if res is not None and res.requests:
            requests[name] = str(res.requests)
        if res is not None and res.limits:
            limits[name] = str(res.limits)
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _env(launch: Launch) -> list[Obj]:
    env = {**{k: str(v) for k, v in launch.env.items()}, C.ENV_OUTPUTS: C.K8S_OUTPUTS_PATH}
    return [{"name": k, "value": v} for k, v in env.items()]


def volumes_and_mounts(task: TaskSpec) -> tuple[list[Obj], list[Obj]]:
    """Volumes and mounts of every storage field; a mount without ``claim`` names a volume defined elsewhere."""
    volumes: dict[str, Obj] = {}
    mounts: list[Obj] = []
    for m in task.mounts:
        if m.claim:
            volumes.setdefault(m.name, {"name": m.name, "persistentVolumeClaim": {"claimName": m.claim}})
        mounts.append({"name": m.name, "mountPath": m.path})
    for e in task.ephem_volumes:
        empty = {k: v for k, v in (("medium", e.medium), ("sizeLimit", e.size_limit)) if v}
        volumes.setdefault(e.name, {"name": e.name, "emptyDir": empty})
        if e.path:
            mounts.append({"name": e.name, "mountPath": e.path})
    for s in task.secrets:
        vol = dns_name(f"secret-{s.name}")
        secret: Obj = {"secretName": s.name, **({"defaultMode": s.mode} if s.mode is not None else {})}
        volumes.setdefault(vol, {"name": vol, "secret": secret})
        mounts.append({"name": vol, "mountPath": s.path, "readOnly": True, **_sub_path(s.sub_path)})
    for c in task.config_maps:
        vol = dns_name(f"config-{c.name}")
        volumes.setdefault(vol, {"name": vol, "configMap": {"name": c.name}})
        mounts.append({"name": vol, "mountPath": c.path, "readOnly": True, **_sub_path(c.sub_path)})
    return list(volumes.values()), mounts


def _sub_path(sub_path: str | None) -> Obj:
    return {"subPath": sub_path} if sub_path else {}


def container(launch: Launch, opts: PodOptions, *, gpus: int | None = None, run_command: bool = True) -> Obj:
    task = launch.task
    _, mounts = volumes_and_mounts(task)
    c: Obj = {
        "name": opts.container,
        "image": task.image,
        "imagePullPolicy": task.pull_policy,
        "env": _env(launch),
        "terminationMessagePath": C.K8S_OUTPUTS_PATH,
        "terminationMessagePolicy": TERMINATION_POLICY,
    }
    if run_command:
        c["command"] = list(task.command)
        c["args"] = [_arg(a) for a in task.args]
    resources = _quantities(task.cpu, task.memory, task.num_gpus if gpus is None else gpus)
    if resources:
        c["resources"] = resources
    if mounts:
        c["volumeMounts"] = mounts
    return c


def pod_spec(launch: Launch, opts: PodOptions, *, restart_policy: str = "Never", **container_kw: Any) -> Obj:
    task = launch.task
    volumes, _ = volumes_and_mounts(task)
    spec: Obj = {"restartPolicy": restart_policy, "containers": [container(launch, opts, **container_kw)]}
    if volumes:
        spec["volumes"] = volumes
    if task.node_selector:
        spec["nodeSelector"] = dict(task.node_selector)
    if opts.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in opts.image_pull_secrets]
    sc = task.security_context
    if sc is not None:
        ctx = {"runAsUser": sc.run_as_user, "runAsGroup": sc.run_as_group, "fsGroup": sc.fs_group}
        spec["securityContext"] = {k: v for k, v in ctx.items() if v is not None}
    return spec


def metadata(name: str | None, opts: PodOptions, *, labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"labels": {**opts.labels, **(labels or {})}}
    if name is not None:
        meta = {"name": name, **meta}
    if opts.annotations:
        meta["annotations"] = dict(opts.annotations)
    return meta


def pod_template(launch: Launch, opts: PodOptions, *, labels: dict[str, str] | None = None, **kw: Any) -> Obj:
    return {"metadata": metadata(None, opts, labels=labels), "spec": pod_spec(launch, opts, **kw)}
