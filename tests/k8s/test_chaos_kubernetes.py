"""``kill -9`` of a core on the Kubernetes executor at random moments, against the real control plane: every
run ends as an uninterrupted one, no attempt gets a second pod, no pod is left running or pending.

The harness is tests/chaos/harness.py's; the core is tests/k8s/chaos_core.py (the real server, with the
chaos pipeline's steps played by kwok). An execution is a pod: a watch of the namespace writes
``<task> <attempt>`` to the harness's counter file for every pod it sees created (by uid).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from kubernetes import client, watch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
from harness import Case, chaos

ITERATIONS = int(os.environ.get("ODIN_CHAOS_K8S_ITERATIONS", "10"))
CORE = Path(__file__).with_name("chaos_core.py")
ENDED = ("Succeeded", "Failed")


class KubeCase(Case):
    def __init__(self, root: Path, home: Path, kubeconfig: str, namespace: str, api: client.ApiClient) -> None:
        super().__init__(root=root, home=home, leftovers=self._leftovers)
        self.kubeconfig, self.namespace, self.core = kubeconfig, namespace, client.CoreV1Api(api)

    def command(self) -> list[str]:
        store = ["--store", self.store_url] if self.store_url else []
        return [
            sys.executable,
            str(CORE),
            *("--root-path", str(self.root), "--home", str(self.home), "--port", "0"),
            *("--kubeconfig", self.kubeconfig, "--namespace", self.namespace),
            *store,
        ]

    def _leftovers(self, run_id: str) -> list[str]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"odin.ml/run={run_id}").items
        return [f"pod {p.metadata.name} ({p.status.phase})" for p in pods if p.status.phase not in ENDED]


class PodCounter:
    """Writes ``<task> <attempt>`` to ``counter`` for every pod created in the namespace."""

    def __init__(self, api: client.ApiClient, namespace: str, counter: Path) -> None:
        self.core, self.namespace, self.counter = client.CoreV1Api(api), namespace, counter
        self.seen: set[str] = set()
        self.watch = watch.Watch()
        self.ready = threading.Event()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._count()
        except Exception:  # the namespace goes away at the end of the test
            if not self.stopped:
                raise

    def _count(self) -> None:
        listed = self.core.list_namespaced_pod(self.namespace)
        self.seen.update(p.metadata.uid for p in listed.items)
        self.ready.set()
        stream = self.watch.stream(
            self.core.list_namespaced_pod, self.namespace, resource_version=listed.metadata.resource_version
        )
        for event in stream:
            pod = event["object"]
            labels = pod.metadata.labels or {}
            if pod.metadata.uid in self.seen or "odin.ml/task" not in labels:
                continue
            self.seen.add(pod.metadata.uid)
            with self.counter.open("a") as f:
                f.write(f"{labels['odin.ml/task']} {labels['odin.ml/attempt']}\n")

    def __enter__(self) -> PodCounter:
        self.counter.parent.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped = True
        self.watch.stop()


@pytest.mark.timeout(1500)
async def test_killing_a_kubernetes_core_at_random_moments_changes_nothing(kube, namespace, tmp_path: Path) -> None:
    case = KubeCase(tmp_path / "pipelines", tmp_path / "home", kube.kubeconfig, namespace, kube.api_client)
    with PodCounter(kube.api_client, namespace, case.home / "executions.txt"):
        reference, figures = await chaos(case, ITERATIONS, seed=11)
    assert reference.status == "TERMINATED"  # the broken branch fails; the rest succeeds
    assert reference.tasks["join"] == ("SUCCEEDED", 1, {"sum": 10})
    assert reference.tasks["right"][1] == 2 and reference.tasks["after-broken"][0] == "SKIPPED"
    assert not figures.problems, "\n".join(figures.problems)
    assert (figures.identical, figures.attempts_twice, figures.orphans) == (ITERATIONS, 0, 0)
