"""Where a local control plane keeps its files, and which loopback ports it listens on."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass, fields
from pathlib import Path

from .kubeapi import KubeApi

KUBE_VERSION = "v1.36.3"
LOOPBACK = "127.0.0.1"

# Everything `down` may delete; the state dir itself is removed only when nothing else is in it,
# so a mistaken ODIN_K8S_STATE cannot wipe unrelated files.
_OWNED = ("pki", "logs", "etcd", "kwok", "kubeconfigs", "kubeconfig", "state.json")


@dataclass(frozen=True)
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def allocate(cls) -> Ports:
        """Free loopback ports, all held open together so that none is handed out twice."""
        socks = [socket.socket() for _ in fields(cls)]
        try:
            for s in socks:
                s.bind((LOOPBACK, 0))
            return cls(*(s.getsockname()[1] for s in socks))
        finally:
            for s in socks:
                s.close()


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def kwok(self) -> Path:
        return self.root / "kwok"

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (client certificate in group system:masters)."""
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.yaml"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def admin_api(self, ports: Ports) -> KubeApi:
        return KubeApi.with_client_cert(
            f"https://{LOOPBACK}:{ports.apiserver}",
            ca=self.pki / "ca.crt",
            cert=self.pki / "admin.crt",
            key=self.pki / "admin.key",
        )

    def create(self) -> None:
        for d in (self.pki, self.logs, self.etcd_data, self.kwok, self.root / "kubeconfigs"):
            d.mkdir(parents=True, exist_ok=True)
        self.etcd_data.chmod(0o700)

    def remove(self) -> None:
        for name in _OWNED:
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if self.root.is_dir() and not any(self.root.iterdir()):
            self.root.rmdir()
