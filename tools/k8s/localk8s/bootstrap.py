"""Files a fresh control plane needs (certificates, kubeconfigs, kwok config) and the objects
installed through its API once it serves (fake nodes)."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from . import pki
from .kubeapi import ApiError, wait_until
from .layout import LOOPBACK, Layout, Ports

TOOLS_DIR = Path(__file__).resolve().parents[1]
NODES_FILE = TOOLS_DIR / "nodes.yaml"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
# Client identities: CN is the user, O the groups. The controller manager runs every controller
# under its own identity (no per-controller service accounts), so it needs system:masters.
CLIENTS = {
    "admin": ("odin-admin", ("system:masters",)),
    "kube-controller-manager": ("system:kube-controller-manager", ("system:masters",)),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "kwok": ("odin-kwok", ("system:masters",)),
    "training-operator": ("odin-training-operator", ("system:masters",)),
}
FAKE_LOG_LINES = (
    "odin fake container started (simulated by kwok, no real process runs)",
    "odin fake container finished",
)


def write_pki(layout: Layout) -> None:
    ca = pki.CertificateAuthority.create()
    ca.pair.write(layout.pki, "ca")
    ca.issue_server("kube-apiserver").write(layout.pki, "apiserver")
    ca.issue_server("kwok").write(layout.pki, "kwok-serving")
    for name, (user, groups) in CLIENTS.items():
        ca.issue_client(user, groups).write(layout.pki, name)
    sa = pki.service_account_key()
    (layout.pki / "sa.pub").write_bytes(sa.cert_pem)
    (layout.pki / "sa.key").write_bytes(sa.key_pem)
    (layout.pki / "sa.key").chmod(0o600)


def add_client(layout: Layout, ports: Ports, name: str) -> None:
    """A client certificate and kubeconfig for a component added to a running cluster (an upgrade)."""
    ca = pki.CertificateAuthority.load(layout.pki, "ca")
    user, groups = CLIENTS[name]
    ca.issue_client(user, groups).write(layout.pki, name)
    _write_kubeconfig(layout, layout.component_kubeconfig(name), name, f"https://{LOOPBACK}:{ports.apiserver}")


def write_configs(layout: Layout, ports: Ports) -> None:
    server = f"https://{LOOPBACK}:{ports.apiserver}"
    _write_kubeconfig(layout, layout.kubeconfig, "admin", server)
    for name in CLIENTS:
        _write_kubeconfig(layout, layout.component_kubeconfig(name), name, server)
    _write_kwok_logs(layout)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write_kubeconfig(layout: Layout, path: Path, client: str, server: str) -> None:
    pki_dir = layout.pki
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "odin-local",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": _b64(pki_dir / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": client,
                "user": {
                    "client-certificate-data": _b64(pki_dir / f"{client}.crt"),
                    "client-key-data": _b64(pki_dir / f"{client}.key"),
                },
            }
        ],
        "contexts": [{"name": "odin-local", "context": {"cluster": "odin-local", "user": client}}],
        "current-context": "odin-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _write_kwok_logs(layout: Layout) -> None:
    """Every container's log (kubectl logs / read_namespaced_pod_log) is one fixed file."""
    log_file = layout.kwok / "container.log"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    log_file.write_text("".join(f"{stamp} stdout F {line}\n" for line in FAKE_LOG_LINES))
    config = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterLogs",
        "metadata": {"name": "odin-fake-logs"},
        "spec": {"logs": [{"logsFile": str(log_file)}]},
    }
    (layout.kwok / "logs.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def install_objects(layout: Layout, ports: Ports) -> None:
    """The fake nodes (the training operator's CRDs come with it, see operator.install)."""
    api = layout.admin_api(ports)
    for node in yaml.safe_load_all(NODES_FILE.read_text()):
        api.create("/api/v1/nodes", node)


def update_nodes(layout: Layout, ports: Ports) -> None:
    """Bring the fake nodes of a running cluster to nodes.yaml's capacity (an upgrade: kwok keeps what is set)."""
    api = layout.admin_api(ports)
    for node in yaml.safe_load_all(NODES_FILE.read_text()):
        status = {"status": {k: node["status"][k] for k in ("capacity", "allocatable")}}
        path = f"/api/v1/nodes/{node['metadata']['name']}/status"
        api.request("PATCH", path, status, content_type="application/merge-patch+json")


def wait_cluster_ready(layout: Layout, ports: Ports, *, timeout_s: float, report: Callable[[str], None]) -> None:
    """Fake nodes Ready, CRDs Established, and the default ServiceAccount exists."""
    api = layout.admin_api(ports)
    expected_nodes = {n["metadata"]["name"] for n in yaml.safe_load_all(NODES_FILE.read_text())}
    checks = {
        "fake nodes Ready": lambda: _nodes_ready(api, expected_nodes),
        "CRDs Established": lambda: _crds_established(api),
        "default ServiceAccount": lambda: _exists(api, "/api/v1/namespaces/default/serviceaccounts/default"),
    }
    for what, check in checks.items():
        started = time.monotonic()
        ok, detail = wait_until(check, timeout_s=timeout_s)
        if not ok:
            raise TimeoutError(f"timed out waiting for {what}: {detail}")
        report(f"{what} ({time.monotonic() - started:.1f}s)")


def _condition(obj: dict, kind: str) -> str | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond.get("status")
    return None


def _nodes_ready(api, expected: set[str]) -> tuple[bool, str]:
    nodes = api.get("/api/v1/nodes")["items"]
    ready = {n["metadata"]["name"] for n in nodes if _condition(n, "Ready") == "True"}
    missing = sorted(expected - ready)
    return not missing, f"not Ready yet: {', '.join(missing)}"


def _crds_established(api) -> tuple[bool, str]:
    crds = api.get(CRD_PATH)["items"]
    pending = [c["metadata"]["name"] for c in crds if _condition(c, "Established") != "True"]
    return not pending, f"not Established yet: {', '.join(pending)}"


def _exists(api, path: str) -> tuple[bool, str]:
    try:
        api.get(path)
    except ApiError as e:
        return False, str(e)
    return True, ""
