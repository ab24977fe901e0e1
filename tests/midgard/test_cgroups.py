"""Pod UID and container id from real /proc/<pid>/cgroup texts of the layouts kubelets produce."""

from __future__ import annotations

import pytest
from midgard.cgroups import CgroupFacts, parse

UID = "3e8f1c2a-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
U_ = UID.replace("-", "_")
CID = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

V1_CGROUPFS = f"""12:pids:/kubepods/burstable/pod{UID}/{CID}
11:hugetlb:/kubepods/burstable/pod{UID}/{CID}
10:memory:/kubepods/burstable/pod{UID}/{CID}
9:devices:/kubepods/burstable/pod{UID}/{CID}
4:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}
1:name=systemd:/kubepods/burstable/pod{UID}/{CID}
0::/
"""
_BE = f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{U_}.slice/docker-{CID}.scope"
V1_SYSTEMD_DOCKER = f"11:memory:{_BE}\n1:name=systemd:{_BE}\n"
V2_SYSTEMD_CONTAINERD = (
    f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{U_}.slice/cri-containerd-{CID}.scope\n"
)
V2_SYSTEMD_CRIO_GUARANTEED = f"0::/kubepods.slice/kubepods-pod{U_}.slice/crio-{CID}.scope\n"
V2_CGROUPFS_GUARANTEED = f"0::/kubepods/pod{UID}/{CID}\n"
V1_CONTAINERD_SYSTEMD_COLON = (
    f"1:name=systemd:/system.slice/containerd.service/kubepods-burstable-pod{U_}.slice:cri-containerd:{CID}\n"
)
V2_FROM_INSIDE_A_NAMESPACE = f"0::/../../kubepods-besteffort-pod{U_}.slice/cri-containerd-{CID}.scope\n"
KIND_NESTED = (
    f"0::/system.slice/docker-5b7c.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
    f"kubelet-kubepods-besteffort-pod{U_}.slice/cri-containerd-{CID}.scope\n"
)
DOCKER_PLAIN = f"0::/docker/{CID}\n"
HOST_SESSION = "0::/user.slice/user-1000.slice/session-3.scope\n"
NAMESPACED_ROOT = "0::/\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(V1_CGROUPFS, CgroupFacts(UID, CID, "", "burstable"), id="v1-cgroupfs"),
        pytest.param(V1_SYSTEMD_DOCKER, CgroupFacts(UID, CID, "docker", "besteffort"), id="v1-systemd-docker"),
        pytest.param(V2_SYSTEMD_CONTAINERD, CgroupFacts(UID, CID, "containerd", "burstable"), id="v2-containerd"),
        pytest.param(V2_SYSTEMD_CRIO_GUARANTEED, CgroupFacts(UID, CID, "cri-o", "guaranteed"), id="v2-crio-guaranteed"),
        pytest.param(V2_CGROUPFS_GUARANTEED, CgroupFacts(UID, CID, "", "guaranteed"), id="v2-cgroupfs-guaranteed"),
        pytest.param(V1_CONTAINERD_SYSTEMD_COLON, CgroupFacts(UID, CID, "containerd", "burstable"), id="v1-colon"),
        pytest.param(V2_FROM_INSIDE_A_NAMESPACE, CgroupFacts(UID, CID, "containerd", "besteffort"), id="v2-cgroupns"),
        pytest.param(KIND_NESTED, CgroupFacts(UID, CID, "containerd", "besteffort"), id="kind-nested"),
        pytest.param(DOCKER_PLAIN, CgroupFacts("", CID, "docker", ""), id="docker-no-pod"),
        pytest.param(HOST_SESSION, CgroupFacts(), id="host-process"),
        pytest.param(NAMESPACED_ROOT, CgroupFacts(), id="namespaced-root"),
        pytest.param("", CgroupFacts(), id="empty"),
    ],
)
def test_layouts(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("garbage without colons\n\x00\xff", id="garbage"),
        pytest.param("0::/kubepods/podnot-a-uid/abc\n", id="pod-without-uid"),
        pytest.param(f"0::/kubepods/pod{UID}x/{CID}\n", id="uid-with-trailing-junk"),
        pytest.param("0::/" + "a/" * 20000 + "\n", id="very-long"),
    ],
)
def test_hostile_or_broken_text_gives_nothing(text):
    assert not parse(text).in_pod
