"""k8s/ as the tests use it: an overlay rendered by kubectl's kustomize into a namespace of the test's own (with
secrets made as a user makes them), the core's rules as docs/kubernetes.md documents them, and who may reach whom
under the NetworkPolicies."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from deploy_support import REPO, gen_secrets, require

K8S = REPO / "k8s"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
CLUSTER_SCOPED = ("Namespace", "ClusterRole", "ClusterRoleBinding")

# A test's kustomization over an overlay: its own namespace, and a suffix on the cluster-wide RBAC names so
# parallel sessions on one control plane do not clash.
TEST_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {namespace}
resources:
  - ../k8s/overlays/{overlay}
transformers:
  - cluster-suffix.yaml
"""
SUFFIX_TRANSFORMER = """\
apiVersion: builtin
kind: PrefixSuffixTransformer
metadata:
  name: cluster-suffix
suffix: -{suffix}
fieldSpecs:
  - kind: ClusterRole
    path: metadata/name
  - kind: ClusterRoleBinding
    path: metadata/name
"""


@dataclass(frozen=True)
class Rendered:
    objects: list[dict[str, Any]]
    yaml_file: Path
    secrets_dir: Path

    def of(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = self.of(kind, name)
        return found


def kustomize(folder: Path) -> list[dict[str, Any]]:
    require(shutil.which("kubectl") is not None, "kubectl is missing (its kustomize renders k8s/)")
    proc = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def render(tmp: Path, overlay: str, *, namespace: str = "", suffix: str = "") -> Rendered:
    """Copy k8s/ to ``tmp``, write the overlay's secrets with tools/images/gen_secrets.py, render it (into
    ``namespace`` with ``suffix`` on cluster-wide names when given)."""
    shutil.copytree(K8S, tmp / "k8s", ignore=shutil.ignore_patterns("secrets"))
    secrets = tmp / "k8s" / "overlays" / overlay / "secrets"
    gen_secrets.write(secrets)
    folder = tmp / "k8s" / "overlays" / overlay
    if namespace:
        folder = tmp / "test"
        folder.mkdir()
        (folder / "kustomization.yaml").write_text(TEST_KUSTOMIZATION.format(namespace=namespace, overlay=overlay))
        (folder / "cluster-suffix.yaml").write_text(SUFFIX_TRANSFORMER.format(suffix=suffix))
    objects = kustomize(folder)
    out = tmp / f"{overlay}.yaml"
    out.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return Rendered(objects, out, secrets)


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Workload name -> its pod template."""
    return {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] in WORKLOADS}


def documented_rules() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of the Role in docs/kubernetes.md's "RBAC: what the core needs"."""
    text = (REPO / "docs" / "kubernetes.md").read_text()
    section = text.split("## RBAC", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, flags=re.S)
    assert block, "docs/kubernetes.md has no RBAC yaml block"
    return rule_set(yaml.safe_load(block.group(1))["rules"])


def rule_set(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


# --- NetworkPolicy: who may open a connection to which pod and port (ingress, matchLabels selectors) -------------


def allowed_peers(objects: list[dict[str, Any]], target_labels: dict[str, str], port: int) -> set[str] | None:
    """The workloads (by name) whose pods may connect to a pod with ``target_labels`` on ``port`` under the
    rendered NetworkPolicies; None when any source may (no policy selects the pod, or a rule without ``from``)."""
    policies = [
        p for p in objects if p["kind"] == "NetworkPolicy" and _selects(p["spec"]["podSelector"], target_labels)
    ]
    if not policies:
        return None
    pods = {name: t["metadata"]["labels"] for name, t in pod_specs(objects).items()}
    peers: set[str] = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            if rule.get("ports") and port not in [p["port"] for p in rule["ports"]]:
                continue
            if "from" not in rule:
                return None
            for source in rule["from"]:
                assert set(source) == {"podSelector"}, f"only podSelector peers are evaluated here: {source}"
                peers |= {name for name, labels in pods.items() if _selects(source["podSelector"], labels)}
    return peers


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are evaluated here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
