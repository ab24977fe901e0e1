"""Pure: the pod UID and container id of a process, from the text of ``/proc/<pid>/cgroup``.

The kubelet puts every container in a cgroup under its pod's, and the path names the pod UID. The layouts differ:

- cgroup v1 (one line per controller, ``12:memory:/...``) and v2 (one line, ``0::/...``);
- the cgroupfs driver: ``/kubepods/burstable/pod<uid>/<container id>`` (UID with dashes);
- the systemd driver: ``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/<scope>``
  (dashes of the UID written as underscores), the scope named by the runtime: ``cri-containerd-<id>.scope``,
  ``crio-<id>.scope``, ``docker-<id>.scope``; containerd in some set-ups writes
  ``...pod<uid>.slice:cri-containerd:<id>``;
- Guaranteed pods have no QoS level (``/kubepods/pod<uid>``, ``kubepods-pod<uid>.slice``);
- seen from inside a cgroup namespace the path may start with ``/..``; plain Docker (no pod) is ``/docker/<id>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UID = r"[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}"
_POD = re.compile(rf"(?:^|[/-])pod({_UID})(?:\.slice)?(?=$|[/:])")
_SCOPE = re.compile(r"(?:cri-containerd|crio|docker|containerd)-([0-9a-f]{12,64})\.scope$")
_COLON = re.compile(r":(?:cri-containerd|crio|docker|containerd):([0-9a-f]{12,64})$")
_BARE = re.compile(r"/([0-9a-f]{64})$")
_RUNTIMES = {"cri-containerd": "containerd", "containerd": "containerd", "crio": "cri-o", "docker": "docker"}
_RUNTIME = re.compile(r"(cri-containerd|crio|docker|containerd)[-:][0-9a-f]{12,64}")
_QOS = re.compile(r"kubepods[-/.](burstable|besteffort)")


@dataclass(frozen=True)
class CgroupFacts:
    """What a process's cgroup says; empty strings where it says nothing."""

    pod_uid: str = ""
    container_id: str = ""
    runtime: str = ""
    qos: str = ""

    @property
    def in_pod(self) -> bool:
        return bool(self.pod_uid)


def paths(text: str) -> list[str]:
    """The cgroup paths of every line (``hierarchy:controllers:path``), v2's first."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) == 3 and parts[2]:
            out.append((parts[0] != "0", parts[2]))
    return [p for _, p in sorted(out, key=lambda t: t[0])]


def parse_path(path: str) -> CgroupFacts:
    pod = _POD.search(path)
    if not pod:
        container = _container(path)
        return CgroupFacts(container_id=container, runtime=_runtime(path) if container else "")
    qos = _QOS.search(path)
    return CgroupFacts(
        pod_uid=pod.group(1).replace("_", "-").lower(),
        container_id=_container(path),
        runtime=_runtime(path),
        qos=qos.group(1) if qos else "guaranteed",
    )


def _container(path: str) -> str:
    for pattern in (_SCOPE, _COLON, _BARE):
        m = pattern.search(path)
        if m:
            return m.group(1)
    return ""


def _runtime(path: str) -> str:
    m = _RUNTIME.search(path)
    if m:
        return _RUNTIMES[m.group(1)]
    return "docker" if path.startswith("/docker/") else ""


def parse(text: str) -> CgroupFacts:
    """The first path that names a pod wins; else whatever container a path names; else nothing."""
    found = [parse_path(p) for p in paths(text)]
    for facts in found:
        if facts.in_pod:
            return facts
    for facts in found:
        if facts.container_id:
            return facts
    return CgroupFacts()
