"""A control plane started by the launcher before it ran the training operator is upgraded in place by `up`:
same API server, same kubeconfig (test sessions using it carry on), the operator and its real CRDs added.

Starts a cluster of its own (about 20 s) next to the shared one."""

from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import local_cluster

CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
SLIM_ELASTIC_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "elasticjobs.elastic.iml.github.io"},
    "spec": {
        "group": "elastic.iml.github.io",
        "names": {"kind": "ElasticJob", "plural": "elasticjobs", "singular": "elasticjob"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


@pytest.fixture
def own_cluster(kube, tmp_path):
    shared = local_cluster.Settings.from_env()
    settings = local_cluster.Settings(
        bin_dir=shared.bin_dir, state_dir=tmp_path / "cluster", operator_dir=shared.operator_dir
    )
    cluster = local_cluster.Cluster(settings)
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down(quiet=True)


def _as_left_by_the_old_launcher(cluster) -> dict:
    """Kill the operator and drop it from state.json, and put back the slim CRD the old launcher installed."""
    state = json.loads(cluster.layout.state_file.read_text())
    os.kill(state["operator"]["pid"], signal.SIGKILL)
    os.waitpid(state["operator"]["pid"], 0)
    del state["operator"]
    cluster.layout.state_file.write_text(json.dumps(state))
    api = cluster.layout.admin_api(local_cluster.Ports(**state["ports"]))
    api.create(CRD, SLIM_ELASTIC_CRD)
    status = {"status": {"capacity": {"ephemeral-storage": None}, "allocatable": {"ephemeral-storage": None}}}
    api.request("PATCH", "/api/v1/nodes/kwok-cpu-0/status", status, content_type="application/merge-patch+json")
    return state


def test_an_old_cluster_is_upgraded_in_place(own_cluster):
    before = _as_left_by_the_old_launcher(own_cluster)
    kubeconfig = own_cluster.kubeconfig.read_text()
    assert not own_cluster.is_healthy()  # the old cluster needs the operator

    assert own_cluster.up() == own_cluster.kubeconfig
    assert own_cluster.is_healthy()
    after = json.loads(own_cluster.layout.state_file.read_text())
    assert after["pids"] == before["pids"] and after["ports"] == before["ports"]  # nothing restarted
    assert own_cluster.kubeconfig.read_text() == kubeconfig
    api = own_cluster.layout.admin_api(local_cluster.Ports(**after["ports"]))
    names = {c["metadata"]["name"] for c in api.get(CRD)["items"]}
    assert "elasticjobs.elastic.iml.github.io" not in names
    assert {"pytorchjobs.kubeflow.org", "tfjobs.kubeflow.org", "mpijobs.kubeflow.org"} <= names
    crd = api.get(f"{CRD}/pytorchjobs.kubeflow.org")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "elasticPolicy" in spec["properties"]  # the operator's own CRD, not a slim copy
    node = api.get("/api/v1/nodes/kwok-cpu-0")
    assert "ephemeral-storage" in node["status"]["allocatable"]  # the MPI launcher needs some
