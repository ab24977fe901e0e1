"""The midgard tests that need the real control plane reuse tests/k8s' fixtures (`kube`, `namespace`).

tests/ is not a package, so the fixtures are loaded from that conftest by path under a name of their own.
`make test-fast` leaves this folder out, as it leaves out tests/k8s.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from midgard_support import load_conftest

_k8s = load_conftest(Path(__file__).resolve().parents[2] / "k8s" / "conftest.py", "odin_k8s_test_fixtures")

kube = _k8s.kube
namespace = _k8s.namespace


@pytest.fixture
def service_account_token(kube: Any, tmp_path: Path) -> Iterator[Callable[..., tuple[str, str]]]:
    """``make(namespace, name, rules, cluster=False)``: a ServiceAccount bound to a Role (or ClusterRole) with
    exactly ``rules``; returns (token file, CA file). Cluster-wide objects are deleted at the end."""
    core, rbac = client.CoreV1Api(kube.api_client), client.RbacAuthorizationV1Api(kube.api_client)
    cluster_objects: list[str] = []

    def make(ns: str, name: str, rules: list[dict[str, Any]], *, cluster: bool = False) -> tuple[str, str]:
        core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
        role = {"metadata": {"name": name}, "rules": rules}
        subject = [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
        if cluster:
            cname = f"{ns}-{name}"
            rbac.create_cluster_role({**role, "metadata": {"name": cname}})
            rbac.create_cluster_role_binding({"metadata": {"name": cname}, "subjects": subject,
                                              "roleRef": {"kind": "ClusterRole", "name": cname,
                                                          "apiGroup": "rbac.authorization.k8s.io"}})  # fmt: skip
            cluster_objects.append(cname)
        else:
            rbac.create_namespaced_role(ns, role)
            rbac.create_namespaced_role_binding(ns, {"metadata": {"name": name}, "subjects": subject,
                                                     "roleRef": {"kind": "Role", "name": name,
                                                                 "apiGroup": "rbac.authorization.k8s.io"}})  # fmt: skip
        request = core.create_namespaced_service_account_token(name, ns, {"spec": {"expirationSeconds": 3600}})
        token = tmp_path / f"{ns}-{name}.token"
        token.write_text(request.status.token)
        return str(token), ca_file(kube, tmp_path)

    yield make
    for cname in cluster_objects:
        rbac.delete_cluster_role_binding(cname)
        rbac.delete_cluster_role(cname)


def ca_file(kube: Any, tmp_path: Path) -> str:
    """The API server's CA as a file (the kubeconfig may hold it inline)."""
    conf = kube.api_client.configuration
    if conf.ssl_ca_cert:
        return str(conf.ssl_ca_cert)
    import yaml

    cfg = yaml.safe_load(Path(kube.kubeconfig).read_text())
    data = cfg["clusters"][0]["cluster"]["certificate-authority-data"]
    path = tmp_path / "ca.crt"
    path.write_bytes(base64.b64decode(data))
    return str(path)


def api_url(kube: Any) -> str:
    return str(kube.api_client.configuration.host)
