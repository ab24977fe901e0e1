"""The Kubeflow training operator on the local control plane: its real CRDs, the webhook certificate its
cert rotator expects, its validating webhooks (pointed at loopback), and its command line.

The operator (``cmd/training-operator.v1`` of ``github.com/kubeflow/training-operator``, built by
tools/k8s/build.sh from tools/k8s/operator/go.mod) is deployed in a cluster as a pod behind the Service
``training-operator.kubeflow``, with its webhook certificate mounted from a Secret. Here it runs as a
process on loopback, so:

- the Secret ``kubeflow/training-operator-webhook-cert`` is created already filled with a CA and a serving
  certificate valid for the Service's DNS name (what the rotator checks, so it keeps them) *and* for
  127.0.0.1 (what the API server dials);
- the certificate files go where the operator reads them, ``/tmp/k8s-webhook-server/serving-certs`` (a path
  fixed in the operator), as the kubelet would mount them. That path is machine-wide, so every local
  cluster shares one webhook certificate (generated once, kept in the operator's cache);
- the ValidatingWebhookConfiguration is the operator's own (``manifests/base/webhook``) with each
  ``clientConfig.service`` replaced by ``url: https://127.0.0.1:<port><path>``.
Gang scheduling stays off: it needs Volcano or the scheduler-plugins scheduler, neither of which runs here.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import os
import socket
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from . import pki
from .kubeapi import KubeApi
from .layout import LOOPBACK

VERSION = "v1.8.1"
NAME = "training-operator"
NAMESPACE = "kubeflow"  # MY_POD_NAMESPACE: where the rotator looks for its Secret
SECRET = "training-operator-webhook-cert"
SERVICE_DNS = f"training-operator.{NAMESPACE}.svc"
CA_NAME = "training-operator-ca"
WEBHOOK_CONFIG = "validator.training-operator.kubeflow.org"
CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")
# Longer than the rotator's 90-day look-ahead (else it replaces the certificate with one lacking the IP).
WEBHOOK_VALIDITY = dt.timedelta(days=3 * 365)
# Reconciles in parallel per kind (the operator's default, 1, makes it the bottleneck of a burst of jobs).
CONTROLLER_THREADS = 4
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
VWC_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
# CRDs an earlier version of this tooling installed in place of the operator's (ElasticJob is now a
# PyTorchJob with an elasticPolicy); an upgrade removes them.
RETIRED_CRDS = ("elasticjobs.elastic.iml.github.io",)


@dataclass(frozen=True)
class OperatorPorts:
    metrics: int
    probe: int
    webhook: int

    @classmethod
    def allocate(cls) -> OperatorPorts:
        socks = [socket.socket() for _ in fields(cls)]
        try:
            for s in socks:
                s.bind((LOOPBACK, 0))
            return cls(*(s.getsockname()[1] for s in socks))
        finally:
            for s in socks:
                s.close()


@dataclass(frozen=True)
class OperatorFiles:
    """What build.sh leaves in the operator's cache: the binary and the module's manifests."""

    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "bin" / NAME

    @property
    def crds(self) -> list[Path]:
        return sorted((self.root / "manifests" / "crds").glob("*.yaml"))

    @property
    def webhooks(self) -> Path:
        return self.root / "manifests" / "webhook" / "manifests.yaml"

    @property
    def pki(self) -> Path:
        return self.root / "webhook-pki"


def argv(files: OperatorFiles, kubeconfig: Path, ports: OperatorPorts) -> list[str]:
    return [
        str(files.binary),
        f"--kubeconfig={kubeconfig}",
        f"--metrics-bind-address={LOOPBACK}:{ports.metrics}",
        f"--health-probe-bind-address={LOOPBACK}:{ports.probe}",
        f"--webhook-server-port={ports.webhook}",
        f"--controller-threads={CONTROLLER_THREADS}",
        "--zap-devel=false",
        "--zap-log-level=info",
    ]


def environment() -> dict[str, str]:
    return {**os.environ, "MY_POD_NAMESPACE": NAMESPACE}


def readyz_url(ports: OperatorPorts) -> str:
    return f"http://{LOOPBACK}:{ports.probe}/readyz"


# -- the webhook certificate -------------------------------------------------------------------


def webhook_pki(files: OperatorFiles) -> dict[str, bytes]:
    """``ca.crt``, ``ca.key``, ``tls.crt``, ``tls.key``: made once, shared by every local cluster."""
    files.pki.mkdir(parents=True, exist_ok=True)
    with (files.pki / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        names = ("ca.crt", "ca.key", "tls.crt", "tls.key")
        if not all((files.pki / n).is_file() for n in names):
            ca, server = pki.webhook_pair(
                ca_name=CA_NAME, dns_name=SERVICE_DNS, ips=(LOOPBACK,), validity=WEBHOOK_VALIDITY
            )
            ca.write(files.pki, "ca")
            server.write(files.pki, "tls")
        return {n: (files.pki / n).read_bytes() for n in names}


def mount_certificate(material: dict[str, bytes]) -> None:
    """Put the serving certificate where the operator reads it (atomically: a running one watches it)."""
    CERT_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        target = CERT_DIR / name
        with contextlib.suppress(FileNotFoundError):
            if target.read_bytes() == material[name]:
                continue
        tmp = target.with_name(f".{name}.{os.getpid()}")
        tmp.write_bytes(material[name])
        tmp.chmod(0o600)
        tmp.replace(target)


# -- objects -------------------------------------------------------------------------------------


def install(api: KubeApi, files: OperatorFiles, ports: OperatorPorts) -> None:
    """The operator's CRDs (server-side apply: they are too big for a last-applied annotation), its
    namespace, its pre-filled Secret and its webhooks."""
    for path in files.crds:
        crd = yaml.safe_load(path.read_text())
        api.apply(f"{CRD_PATH}/{crd['metadata']['name']}", crd)
    for name in RETIRED_CRDS:
        api.delete(f"{CRD_PATH}/{name}")
    material = webhook_pki(files)
    mount_certificate(material)
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in material.items()},
    }
    api.apply(f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}", secret)
    api.apply(f"{VWC_PATH}/{WEBHOOK_CONFIG}", webhook_config(files, ports, material["ca.crt"]))


def webhook_config(files: OperatorFiles, ports: OperatorPorts, ca_pem: bytes) -> dict:
    """The operator's ValidatingWebhookConfiguration, each webhook dialled on loopback."""
    config = yaml.safe_load(files.webhooks.read_text())
    config["metadata"] = {"name": WEBHOOK_CONFIG, "labels": {"control-plane": "kubeflow-training-operator"}}
    for hook in config["webhooks"]:
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {
            "url": f"https://{LOOPBACK}:{ports.webhook}{path}",
            "caBundle": base64.b64encode(ca_pem).decode(),
        }
    return config
