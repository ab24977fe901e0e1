"""k8s/ without a cluster: both overlays render, the core's Role is exactly the executor's documented rules, the
NetworkPolicies let only the gateway reach the core, and every container is hardened and probed."""

from __future__ import annotations

from pathlib import Path

import pytest
from manifests import allowed_peers, documented_rules, pod_specs, render, rule_set

SECRET_WORDS = ("SECRET", "PASSWORD", "DSN", "TOKEN")


@pytest.fixture(scope="module")
def microk8s(tmp_path_factory: pytest.TempPathFactory):
    return render(tmp_path_factory.mktemp("microk8s"), "microk8s")


@pytest.fixture(scope="module")
def gke(tmp_path_factory: pytest.TempPathFactory):
    return render(tmp_path_factory.mktemp("gke"), "gke")


def test_microk8s_overlay_renders_every_part(microk8s) -> None:
    kinds = {
        (
            o["kind"],
            o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] in ("Secret", "ConfigMap") else o["metadata"]["name"],
        )
        for o in microk8s.objects
    }
    expected = {
        ("Namespace", "odin"),
        ("ServiceAccount", "odin-core"),
        ("ServiceAccount", "odin-http"),
        ("ServiceAccount", "midgard"),
        ("Role", "odin-core"),
        ("RoleBinding", "odin-core"),
        ("Role", "midgard"),
        ("ClusterRole", "odin-http-nodes"),
        ("ClusterRoleBinding", "odin-http-nodes"),
        ("Deployment", "odin-core"),
        ("Service", "odin-core"),
        ("Deployment", "odin-http"),
        ("Service", "odin-http"),
        ("StatefulSet", "odin-postgres"),
        ("Service", "odin-postgres"),
        ("DaemonSet", "midgard"),
        ("PersistentVolumeClaim", "odin-pipelines"),
        ("PersistentVolumeClaim", "odin-data"),
        ("Secret", "odin-db"),
        ("Secret", "odin-jwt"),
        ("Secret", "odin-admin"),
        ("Secret", "odin-nodes"),
        ("Secret", "odin-git"),
        ("ConfigMap", "odin-core-settings"),
        ("ConfigMap", "odin-http-settings"),
        ("NetworkPolicy", "odin-core"),
        ("NetworkPolicy", "odin-postgres"),
        ("NetworkPolicy", "odin-http"),
    }
    assert expected <= kinds, sorted(expected - kinds)
    assert {
        o["metadata"].get("namespace")
        for o in microk8s.objects
        if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")
    } == {"odin"}
    daemon = microk8s.one("DaemonSet", "midgard")["spec"]["template"]["spec"]
    assert daemon["runtimeClassName"] == "nvidia"
    assert daemon["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in daemon["tolerations"]
    assert all(c["spec"]["storageClassName"] == "microk8s-hostpath" for c in microk8s.of("PersistentVolumeClaim"))
    images = {c["image"] for t in pod_specs(microk8s.objects).values() for c in t["spec"]["containers"]}
    assert images == {
        "localhost/odin-core:0.1.0",
        "localhost/odin-http:0.1.0",
        "localhost/midgard:0.1.0",
        "docker.io/library/postgres:15",
    }


def test_gke_overlay_uses_an_external_database_and_the_nodes_driver(gke) -> None:
    assert not gke.of("StatefulSet") and not gke.of("NetworkPolicy", "odin-postgres")
    settings = next(c for c in gke.of("ConfigMap") if c["metadata"]["name"].startswith("odin-core-settings"))
    assert settings["data"]["ODIN_STORE"].startswith("postgresql://odin@10.")
    daemon = gke.one("DaemonSet", "midgard")["spec"]["template"]["spec"]
    assert "runtimeClassName" not in daemon and "nodeSelector" not in daemon
    term = daemon["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term[0]["matchExpressions"][0]["key"] == "cloud.google.com/gke-accelerator"
    assert {"name": "LD_LIBRARY_PATH", "value": "/usr/local/nvidia/lib64"} in daemon["containers"][0]["env"]
    claim = gke.one("PersistentVolumeClaim", "odin-pipelines")["spec"]
    assert claim["accessModes"] == ["ReadWriteMany"] and claim["storageClassName"] == "standard-rwx"
    assert all("PROJECT" in c["image"] for t in pod_specs(gke.objects).values() for c in t["spec"]["containers"])


def test_core_role_is_exactly_the_documented_rules(microk8s) -> None:
    role = microk8s.one("Role", "odin-core")
    assert rule_set(role["rules"]) == documented_rules()
    binding = microk8s.one("RoleBinding", "odin-core")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "odin-core", "namespace": "odin"}]
    assert binding["roleRef"]["name"] == "odin-core"
    assert rule_set(microk8s.one("Role", "midgard")["rules"]) == {("", "pods", "list")}
    assert rule_set(microk8s.one("ClusterRole", "odin-http-nodes")["rules"]) == {
        ("", "nodes", "get"),
        ("", "nodes", "list"),
    }


def test_network_policies_let_only_the_gateway_reach_the_core(microk8s) -> None:
    labels = {n: t["metadata"]["labels"] for n, t in pod_specs(microk8s.objects).items()}
    assert allowed_peers(microk8s.objects, labels["odin-core"], 30000) == {"odin-http"}
    assert allowed_peers(microk8s.objects, labels["odin-core"], 22) == set(), "another port of the core is open"
    assert allowed_peers(microk8s.objects, labels["odin-postgres"], 5432) == {"odin-core", "odin-http"}
    assert allowed_peers(microk8s.objects, labels["odin-http"], 9003) is None  # the front door
    assert allowed_peers(microk8s.objects, labels["odin-http"], 30000) == set()
    # A task pod (labelled by the executor, not by us) is selected by no policy: tasks reach each other.
    assert allowed_peers(microk8s.objects, {"odin.ml/run": "r", "odin.ml/task": "t"}, 8080) is None


def test_every_container_is_hardened_probed_and_keeps_secrets_in_files(microk8s) -> None:
    for name, template in pod_specs(microk8s.objects).items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
            assert c.get("readinessProbe") and c.get("livenessProbe"), f"{name} lacks probes"
            for item in c.get("env", []):
                if any(w in item["name"] for w in SECRET_WORDS):
                    assert item["name"].endswith("_FILE"), f"{name}: {item['name']} carries a secret"
    for cm in microk8s.of("ConfigMap"):
        for key, value in cm["data"].items():
            if any(w in key for w in SECRET_WORDS):
                assert key.endswith("_FILE") and value.startswith("/run/secrets/"), f"{key} holds a secret"
    gateway = pod_specs(microk8s.objects)["odin-http"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/v1/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/v1/health"


def test_secrets_are_generated_from_the_files_a_user_makes(microk8s, tmp_path: Path) -> None:
    import base64

    db = next(s for s in microk8s.of("Secret") if s["metadata"]["name"].startswith("odin-db-"))
    password = (microk8s.secrets_dir / "db_password").read_text()
    assert base64.b64decode(db["data"]["db_password"]).decode() == password
    assert f":{password}@odin-postgres:5432/odin" in base64.b64decode(db["data"]["gateway_dsn"]).decode()
    assert (microk8s.secrets_dir.stat().st_mode & 0o777) == 0o700


def test_the_optional_training_operator_is_the_version_the_tests_run() -> None:
    import re

    from deploy_support import REPO

    pinned = (REPO / "k8s" / "optional" / "training-operator" / "kustomization.yaml").read_text()
    tested = re.search(r'^VERSION = "(v[\d.]+)"', (REPO / "tools/k8s/localk8s/operator.py").read_text(), re.M)
    assert tested, "tools/k8s/localk8s/operator.py names no VERSION"
    assert f"manifests/overlays/standalone?ref={tested.group(1)}" in pinned
