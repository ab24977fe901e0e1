"""Launcher for Odin's local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok simulating the nodes, and the Kubeflow training operator), built by tools/k8s/build.sh.

    python tools/k8s/cluster.py up       # start (no-op when healthy); last stdout line: kubeconfig path
    python tools/k8s/cluster.py down     # stop every component by PID and delete the state dir
    python tools/k8s/cluster.py status   # one line per component; exit 1 when not healthy
    python tools/k8s/cluster.py env      # shell exports for KUBECONFIG / ODIN_TEST_KUBECONFIG

Importable: `Cluster` and `ensure_cluster()` (used by tests/k8s/conftest.py). Progress goes to stderr.
Only the standard library, `cryptography` and `PyYAML` are used.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from localk8s import bootstrap, components, processes
from localk8s import operator as op
from localk8s.kubeapi import ApiError, probe
from localk8s.layout import KUBE_VERSION, Layout, Ports

HERE = Path(__file__).resolve().parent
ALL_NAMES = (*components.NAMES, op.NAME)


class ClusterError(Exception):
    """The control plane could not be started or inspected."""


class BinariesMissing(ClusterError):
    """tools/k8s/build.sh has not been run (or ODIN_K8S_CACHE points elsewhere)."""


@dataclass(frozen=True)
class Settings:
    """Where binaries and runtime state live, and how long to wait for them."""

    bin_dir: Path
    state_dir: Path
    operator_dir: Path
    component_timeout_s: float = 60.0
    cluster_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        cache_home = Path.home() / ".cache" / "odin"
        cache = Path(env.get("ODIN_K8S_CACHE") or cache_home / f"k8s-{KUBE_VERSION}")
        state = Path(env.get("ODIN_K8S_STATE") or cache_home / "cluster")
        operator = Path(env.get("ODIN_K8S_OPERATOR_CACHE") or cache_home / f"training-operator-{op.VERSION}")
        return cls(bin_dir=cache / "bin", state_dir=state, operator_dir=operator)


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


class Cluster:
    """One local control plane, identified by its state directory."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.layout = Layout(self.settings.state_dir)
        self.operator_files = op.OperatorFiles(self.settings.operator_dir)

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    def binary(self, name: str) -> Path:
        return self.operator_files.binary if name == op.NAME else self.settings.bin_dir / name

    def missing_binaries(self) -> list[str]:
        missing = [n for n in ALL_NAMES if not self.binary(n).is_file()]
        if not self.operator_files.crds:
            missing.append(f"the training operator's CRDs in {self.operator_files.root}")
        return missing

    def is_healthy(self) -> bool:
        """Every component runs and answers, the training operator included (a cluster started by an
        earlier version of this launcher, without it, is not healthy: `up` upgrades it in place)."""
        state = self._read_state()
        if state is None or not self._base_alive(state) or not self._operator_alive(state):
            return False
        ok, _ = probe(op.readyz_url(op.OperatorPorts(**state["operator"]["ports"])))
        return ok and self._base_ready(state)

    def status(self) -> dict[str, str]:
        """Component name -> human-readable state."""
        state = self._read_state() or {}
        pids = {**state.get("pids", {}), op.NAME: (state.get("operator") or {}).get("pid")}
        return {name: self._describe(name, pids.get(name)) for name in ALL_NAMES}

    def up(self) -> Path:
        """Start the control plane unless a healthy one is running; returns the kubeconfig."""
        with self._locked():
            return self._up()

    def down(self, *, quiet: bool = False) -> None:
        """Stop every recorded component (SIGTERM, then SIGKILL) and delete the state dir."""
        with self._locked():
            self._down(quiet=quiet)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down between processes (two terminals, parallel test sessions)."""
        lock_path = self.layout.root.with_name(self.layout.root.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _up(self) -> Path:
        if self.is_healthy():
            log(f"already running (state in {self.layout.root})")
            return self.kubeconfig
        missing = self.missing_binaries()
        if missing:
            raise BinariesMissing(f"missing {', '.join(missing)}: run `bash tools/k8s/build.sh` (or `make cluster-up`)")
        state = self._read_state()
        if state is not None and self._base_alive(state) and self._base_ready(state):
            return self._upgrade(state)
        self._down(quiet=True)
        started = time.monotonic()
        try:
            self._start()
        except (ApiError, OSError, TimeoutError) as e:
            self._stop_processes()
            raise ClusterError(f"control plane did not start: {e}") from e
        except BaseException:
            self._stop_processes()
            raise
        log(f"control plane up in {time.monotonic() - started:.1f}s, state in {self.layout.root}")
        return self.kubeconfig

    def _upgrade(self, state: dict) -> Path:
        """A running control plane without (a live) training operator: add it, keeping ports and kubeconfig,
        so test sessions using the cluster carry on."""
        log("control plane is running without the training operator: installing it in place")
        ports = Ports(**state["ports"])
        previous = (state.get("operator") or {}).get("pid")
        if previous and self._alive(op.NAME, previous):  # another version
            processes.stop([previous], timeout_s=self.settings.stop_timeout_s)
        if not self.layout.component_kubeconfig(op.NAME).is_file():
            bootstrap.add_client(self.layout, ports, op.NAME)
        try:
            bootstrap.update_nodes(self.layout, ports)
            self._start_operator(ports, state["pids"])
        except (ApiError, OSError, TimeoutError) as e:
            raise ClusterError(f"the training operator did not start: {e}") from e
        return self.kubeconfig

    def _down(self, *, quiet: bool) -> None:
        self._stop_processes(quiet=quiet)
        self.layout.remove()

    def _start(self) -> None:
        self.layout.create()
        ports = Ports.allocate()
        bootstrap.write_pki(self.layout)
        bootstrap.write_configs(self.layout, ports)
        specs = components.specs(self.settings.bin_dir, self.layout, ports)
        procs: dict[str, subprocess.Popen] = {}
        for spec in specs:
            procs[spec.name] = processes.spawn(spec.argv, self.layout.log_file(spec.name))
            self._write_state(ports, {n: p.pid for n, p in procs.items()})
            if spec.name in components.BLOCKING:
                self._await(spec, procs[spec.name])
            if spec.name == "kube-apiserver":
                bootstrap.install_objects(self.layout, ports)
        for spec in specs:
            if spec.name not in components.BLOCKING:
                self._await(spec, procs[spec.name])
        self._start_operator(ports, {n: p.pid for n, p in procs.items()})

    def _start_operator(self, ports: Ports, pids: dict[str, int]) -> None:
        """Install the operator's CRDs, certificate and webhooks, wait for the cluster, then start it."""
        api = self.layout.admin_api(ports)
        operator_ports = op.OperatorPorts.allocate()
        op.install(api, self.operator_files, operator_ports)
        bootstrap.wait_cluster_ready(self.layout, ports, timeout_s=self.settings.cluster_timeout_s, report=log)
        kubeconfig = self.layout.component_kubeconfig(op.NAME)
        argv = op.argv(self.operator_files, kubeconfig, operator_ports)
        proc = processes.spawn(argv, self.layout.log_file(op.NAME), env=op.environment())
        self._write_state(ports, pids, operator={"pid": proc.pid, "ports": dataclasses.asdict(operator_ports)})
        health = components.Spec(op.NAME, argv, lambda: probe(op.readyz_url(operator_ports)))
        self._await(health, proc)

    def _await(self, spec: components.Spec, proc: subprocess.Popen) -> None:
        started = time.monotonic()
        ok, detail = processes.wait_healthy(proc, spec.health, timeout_s=self.settings.component_timeout_s)
        if not ok:
            tail = processes.tail(self.layout.log_file(spec.name))
            raise ClusterError(
                f"{spec.name} did not become ready: {detail}\n"
                f"--- last lines of {self.layout.log_file(spec.name)} ---\n{tail}"
            )
        log(f"{spec.name} ready ({time.monotonic() - started:.1f}s)")

    def _stop_processes(self, *, quiet: bool = False) -> None:
        state = self._read_state()
        if not state:
            return
        pids = {**state["pids"], op.NAME: (state.get("operator") or {}).get("pid")}
        alive = {n: p for n, p in pids.items() if self._alive(n, p)}
        order = [n for n in reversed(ALL_NAMES) if n in alive]
        processes.stop([alive[n] for n in order], timeout_s=self.settings.stop_timeout_s)
        if not quiet:
            log(f"stopped {', '.join(order) or 'nothing (no component was running)'}")

    def _alive(self, name: str, pid: int | None) -> bool:
        return pid is not None and processes.is_running(pid, self.binary(name))

    def _base_alive(self, state: dict) -> bool:
        return all(self._alive(n, state["pids"].get(n)) for n in components.NAMES)

    def _base_ready(self, state: dict) -> bool:
        ok, _ = self.layout.admin_api(Ports(**state["ports"])).probe("/readyz")
        return ok

    def _operator_alive(self, state: dict) -> bool:
        info = state.get("operator") or {}
        return info.get("version") == op.VERSION and self._alive(op.NAME, info.get("pid"))

    def _describe(self, name: str, pid: int | None) -> str:
        if pid is None:
            return "not started"
        return f"running (pid {pid})" if self._alive(name, pid) else f"not running (pid {pid})"

    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.layout.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _write_state(self, ports: Ports, pids: dict[str, int], operator: dict | None = None) -> None:
        state: dict = {"ports": dataclasses.asdict(ports), "pids": pids, "kubeconfig": str(self.kubeconfig)}
        if operator is not None:
            state["operator"] = {"version": op.VERSION, **operator}
        self.layout.state_file.write_text(json.dumps(state, indent=2))


def ensure_cluster(settings: Settings | None = None) -> tuple[Cluster, bool]:
    """Return a healthy cluster and whether this call started it."""
    cluster = Cluster(settings)
    if cluster.is_healthy():
        return cluster, False
    cluster.up()
    return cluster, True


def _cmd_status(cluster: Cluster) -> int:
    for name, state in cluster.status().items():
        print(f"{name:<24} {state}")
    healthy = cluster.is_healthy()
    print(f"{'cluster':<24} {'healthy' if healthy else 'not healthy'}")
    if healthy:
        print(f"{'kubeconfig':<24} {cluster.kubeconfig}")
    return 0 if healthy else 1


def _cmd_env(cluster: Cluster) -> int:
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"export ODIN_TEST_KUBECONFIG={cluster.kubeconfig}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    cluster = Cluster()
    try:
        if args.command == "up":
            print(cluster.up())
        elif args.command == "down":
            cluster.down()
        elif args.command == "status":
            return _cmd_status(cluster)
        else:
            return _cmd_env(cluster)
    except ClusterError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
