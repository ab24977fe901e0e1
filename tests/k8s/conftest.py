"""Fixtures for tests against a real local control plane (tools/k8s, see docs/testing.md).

`kube` (session): reuses the cluster named by ODIN_TEST_KUBECONFIG, or a healthy one started by
`make cluster-up`, or starts one (and stops it at the end unless ODIN_K8S_KEEP=1).
`namespace` (function): a fresh namespace, ready for pods, deleted afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config, watch

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = REPO_ROOT / "tools" / "k8s" / "cluster.py"
NAMESPACE_READY_TIMEOUT_S = 30


def _load_launcher():
    """tools/k8s is not a package: load cluster.py under a name that cannot clash."""
    spec = importlib.util.spec_from_file_location("odin_k8s_cluster", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


local_cluster = _load_launcher()


@dataclass(frozen=True)
class Kube:
    kubeconfig: str
    api_client: client.ApiClient
    # State dir of a launcher-managed cluster (None for an external ODIN_TEST_KUBECONFIG cluster).
    state_dir: Path | None


def _api_client(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def _external(kubeconfig: str) -> Kube:
    state_dir = Path(kubeconfig).resolve().parent
    managed = (state_dir / "state.json").is_file()
    return Kube(kubeconfig, _api_client(kubeconfig), state_dir if managed else None)


def _missing_binaries(cluster: local_cluster.Cluster) -> None:
    missing = cluster.missing_binaries()
    if not missing or cluster.is_healthy():
        return
    message = (
        f"control-plane binaries missing ({', '.join(missing)} in {cluster.settings.bin_dir}); "
        "run `make cluster-up` (or `bash tools/k8s/build.sh`)"
    )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    external = os.environ.get("ODIN_TEST_KUBECONFIG")
    if external:
        yield _external(external)
        return
    cluster = local_cluster.Cluster()
    _missing_binaries(cluster)
    cluster, started = local_cluster.ensure_cluster(cluster.settings)
    kubeconfig = str(cluster.kubeconfig)
    api_client = _api_client(kubeconfig)
    try:
        yield Kube(kubeconfig, api_client, cluster.settings.state_dir)
    finally:
        api_client.close()
        if started and os.environ.get("ODIN_K8S_KEEP") != "1":
            cluster.down()


def _wait_default_service_account(core: client.CoreV1Api, name: str) -> None:
    """Pods are refused until the service-account controller has created `default`."""
    selector = "metadata.name=default"
    found = core.list_namespaced_service_account(name, field_selector=selector)
    if found.items:
        return
    stream = watch.Watch().stream(
        core.list_namespaced_service_account,
        name,
        field_selector=selector,
        resource_version=found.metadata.resource_version,
        timeout_seconds=NAMESPACE_READY_TIMEOUT_S,
    )
    for _event in stream:
        return
    raise TimeoutError(f"ServiceAccount default not created in {name}")


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    core = client.CoreV1Api(kube.api_client)
    name = f"odin-test-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        _wait_default_service_account(core, name)
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
