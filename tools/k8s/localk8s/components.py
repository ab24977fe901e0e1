"""Command lines and health probes of the five control-plane components."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .kubeapi import insecure_context, probe
from .layout import LOOPBACK, Layout, Ports

NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# Later components need these to be serving before they start.
BLOCKING = frozenset({"etcd", "kube-apiserver"})
STAGES_DIR = Path(__file__).resolve().parents[1] / "stages"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
FAKE_NODE_SELECTOR = "kwok.x-k8s.io/node=fake"
NODE_LEASE_S = 40


@dataclass(frozen=True)
class Spec:
    name: str
    argv: list[str]
    health: Callable[[], tuple[bool, str]]


def specs(bin_dir: Path, layout: Layout, ports: Ports) -> list[Spec]:
    """All components in start order."""
    builders = (_etcd, _apiserver, _controller_manager, _scheduler, _kwok)
    return [build(bin_dir, layout, ports) for build in builders]


def _etcd(bin_dir: Path, layout: Layout, ports: Ports) -> Spec:
    client, peer = f"http://{LOOPBACK}:{ports.etcd}", f"http://{LOOPBACK}:{ports.etcd_peer}"
    argv = [
        str(bin_dir / "etcd"),
        "--name=odin",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=odin={peer}",
        "--unsafe-no-fsync",  # test data only: durability is not worth the latency
        "--log-level=warn",
    ]
    return Spec("etcd", argv, lambda: probe(f"{client}/health"))


def _apiserver(bin_dir: Path, layout: Layout, ports: Ports) -> Spec:
    pki = layout.pki
    argv = [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://{LOOPBACK}:{ports.etcd}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        # Published in kube-system/extension-apiserver-authentication; without it the controller
        # manager and scheduler log "missing content for CA bundle" every few seconds. No
        # certificate with this CN is ever issued, so the header path is unusable.
        f"--requestheader-client-ca-file={pki / 'ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--endpoint-reconciler-type=none",
        "--allow-privileged=true",
        # Pod logs: the API server dials kwok, which plays the kubelet on the node's InternalIP.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--profiling=false",
    ]
    api = layout.admin_api(ports)
    return Spec("kube-apiserver", argv, lambda: api.probe("/readyz"))


def _common_client_flags(layout: Layout, name: str, port: int) -> list[str]:
    kubeconfig = layout.component_kubeconfig(name)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        "--profiling=false",
    ]


def _secure_healthz(port: int) -> Callable[[], tuple[bool, str]]:
    ctx = insecure_context()  # self-signed serving certificate, loopback only
    return lambda: probe(f"https://{LOOPBACK}:{port}/healthz", ctx)


def _controller_manager(bin_dir: Path, layout: Layout, ports: Ports) -> Spec:
    name = "kube-controller-manager"
    argv = [
        str(bin_dir / name),
        *_common_client_flags(layout, name, ports.controller_manager),
        f"--service-account-private-key-file={layout.pki / 'sa.key'}",
        f"--root-ca-file={layout.pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={layout.pki / 'ca.crt'}",
        f"--cluster-signing-key-file={layout.pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Controllers act as the manager itself (its certificate is in system:masters, see
        # bootstrap.CLIENTS); per-controller service-account credentials cost ~5 s of start-up
        # (measured) for RBAC realism Odin's tests do not need.
        "--use-service-account-credentials=false",
    ]
    return Spec(name, argv, _secure_healthz(ports.controller_manager))


def _scheduler(bin_dir: Path, layout: Layout, ports: Ports) -> Spec:
    name = "kube-scheduler"
    argv = [str(bin_dir / name), *_common_client_flags(layout, name, ports.scheduler)]
    return Spec(name, argv, _secure_healthz(ports.scheduler))


def _kwok(bin_dir: Path, layout: Layout, ports: Ports) -> Spec:
    configs = [*sorted(STAGES_DIR.glob("*.yaml")), layout.kwok / "logs.yaml"]
    argv = [
        str(bin_dir / "kwok"),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--manage-nodes-with-annotation-selector={FAKE_NODE_SELECTOR}",
        *(f"--config={path}" for path in configs),
        f"--node-ip={LOOPBACK}",
        f"--node-port={ports.kwok}",
        f"--server-address={LOOPBACK}:{ports.kwok}",
        f"--tls-cert-file={layout.pki / 'kwok-serving.crt'}",
        f"--tls-private-key-file={layout.pki / 'kwok-serving.key'}",
        f"--node-lease-duration-seconds={NODE_LEASE_S}",
        f"--cidr={POD_CIDR}",
    ]
    return Spec("kwok", argv, lambda: probe(f"http://{LOOPBACK}:{ports.kwok}/healthz"))
