"""Pipeline and task ids, and the resource kind registry."""

from __future__ import annotations

import re

import pytest
from odin_core.spec import canonical_kind, known_kinds, new_pipe_id, register_kind, task_id
from odin_core.spec.kinds import kind_aliases

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        pytest.param("flow", "flow-", id="plain"),
        pytest.param("my.flow.v2", "my-flow-v2-", id="dots"),
        pytest.param("My_Flow", "my-flow-", id="upper-underscore"),
        pytest.param("a--b", "a-b-", id="no-double-dash"),
        pytest.param("...", "flow-", id="nothing-left"),
        pytest.param("x" * 100, "x" * 54 + "-", id="long"),
    ],
)
def test_new_pipe_id(name: str, prefix: str) -> None:
    pipe_id = new_pipe_id(name)
    assert pipe_id.startswith(prefix)
    assert len(pipe_id) == len(prefix) + 8 <= 63
    assert LABEL.fullmatch(pipe_id)
    assert "--" not in pipe_id


def test_new_pipe_ids_differ() -> None:
    assert len({new_pipe_id("flow") for _ in range(1000)}) == 1000


def test_task_id() -> None:
    assert task_id("flow-abc12345", "train") == "flow-abc12345--train"


@pytest.mark.parametrize(
    ("spelling", "kind"),
    [
        *(pytest.param(s, "Pod", id=f"pod-{s}") for s in ("Pod", "pod", "po", "POD")),
        *(pytest.param(s, "Job", id=f"job-{s}") for s in ("Job", "job", "batchjob")),
        *(pytest.param(s, "Deployment", id=f"deploy-{s}") for s in ("deploy", "Deployment")),
        *(pytest.param(s, "Service", id=f"svc-{s}") for s in ("svc", "service")),
        *(pytest.param(s, "TFJob", id=f"tf-{s}") for s in ("tfjob", "tf", "TFJob")),
        *(
            pytest.param(s, "PyTorchJob", id=f"pt-{s}")
            for s in ("pytorchjob", "pytjob", "ptjob", "pytorch", "PyTorchJob")
        ),
        *(pytest.param(s, "MPIJob", id=f"mpi-{s}") for s in ("mpijob", "mpi", "MPIJob")),
        *(pytest.param(s, "ElasticJob", id=f"ej-{s}") for s in ("elasticjob", "ej", "elastic")),
        pytest.param(" svc ", "Service", id="spaces"),
        pytest.param("cronjob", None, id="unknown"),
        pytest.param(3, None, id="not-a-string"),
    ],
)
def test_canonical_kind(spelling: str, kind: str | None) -> None:
    assert canonical_kind(spelling) == kind


def test_known_kinds() -> None:
    assert known_kinds()[:8] == ["Pod", "Job", "Deployment", "Service", "TFJob", "PyTorchJob", "MPIJob", "ElasticJob"]


def test_register_kind() -> None:
    register_kind("RayJob", "ray")
    register_kind("rayjob", "rj")  # more aliases for a known kind, any case
    assert canonical_kind("RJ") == canonical_kind("ray") == "RayJob"
    assert "RayJob" in known_kinds()
    assert set(kind_aliases("RayJob")) == {"rayjob", "ray", "rj"}
    with pytest.raises(ValueError, match="already names Pod"):
        register_kind("Other", "po")
